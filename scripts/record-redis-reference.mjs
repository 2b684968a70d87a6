#!/usr/bin/env node
// Records what Debian's redis-server answers to the kv comparison script
// (test/fixtures/kv-redis-script.json) into test/fixtures/kv-redis-reference.json, which
// test/unit/guests/kv-redis-compare.test.ts holds the kv guest to, reply for reply.
//
//   node scripts/record-redis-reference.mjs [--server /usr/bin/redis-server]
//
// It starts its own redis-server on a free loopback port with no persistence, sends the
// script's commands one at a time on one connection, and stores each reply's exact bytes.
// Re-record after changing the script; the test refuses a reference whose commands differ.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const scriptPath = join(root, 'test/fixtures/kv-redis-script.json')
const outPath = join(root, 'test/fixtures/kv-redis-reference.json')
const { values } = parseArgs({ options: { server: { type: 'string', default: 'redis-server' } } })

const version = spawnSync(values.server, ['--version'], { encoding: 'utf8' })
if (version.status !== 0) {
  console.error(
    `record-redis-reference: cannot run ${values.server} --version (${version.error?.message ?? version.stderr}); install Debian's redis-server (scripts/setup-machine.sh)`
  )
  process.exit(1)
}

/** End of the RESP2/RESP3 reply at pos in buf (latin1), or -1 if it is incomplete. */
function frameEnd(buf, pos) {
  const nl = buf.indexOf('\r\n', pos)
  if (nl < 0) return -1
  const t = buf[pos]
  const head = buf.slice(pos + 1, nl)
  let p = nl + 2
  if ('+-:_#,('.includes(t)) return p
  if ('$=!'.includes(t)) {
    const n = Number(head)
    if (n < 0) return p
    return buf.length >= p + n + 2 ? p + n + 2 : -1
  }
  if ('*~%>|'.includes(t)) {
    const n = Number(head)
    if (n < 0) return p
    const items = t === '%' || t === '|' ? 2 * n : n
    for (let i = 0; i < items; i++) {
      p = frameEnd(buf, p)
      if (p < 0) return -1
    }
    return t === '|' ? frameEnd(buf, p) : p
  }
  throw new Error(`record-redis-reference: unknown reply type ${JSON.stringify(t)} at byte ${pos}`)
}

const encode = (args) => '*' + args.length + '\r\n' + args.map((a) => '$' + Buffer.byteLength(a, 'latin1') + '\r\n' + a + '\r\n').join('')

const port = await new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port
    s.close(() => resolve(p))
  })
})
const server = spawn(values.server, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
  stdio: 'ignore'
})
try {
  const sock = await (async () => {
    for (let i = 0; i < 100; i++) {
      const s = await new Promise((resolve) => {
        const c = createConnection({ host: '127.0.0.1', port })
        c.once('connect', () => resolve(c))
        c.once('error', () => resolve(null))
      })
      if (s) return s
      await new Promise((r) => setTimeout(r, 50))
    }
    throw new Error(`record-redis-reference: redis-server did not listen on 127.0.0.1:${port} within 5 s`)
  })()
  let buf = ''
  let wake = null
  sock.on('data', (d) => {
    buf += d.toString('latin1')
    wake?.()
  })
  const { script } = JSON.parse(readFileSync(scriptPath, 'utf8'))
  const entries = []
  for (const item of script) {
    const e = Array.isArray(item) ? { cmd: item } : { ...item }
    sock.write(Buffer.from(encode(e.cmd), 'latin1'))
    let end
    while ((end = frameEnd(buf, 0)) < 0) await new Promise((r) => (wake = r))
    e.reply = buf.slice(0, end)
    buf = buf.slice(end)
    entries.push(e)
  }
  sock.end()
  const reference = { server: version.stdout.trim(), note: 'recorded by scripts/record-redis-reference.mjs; replies are byte strings (latin1)', entries }
  writeFileSync(outPath, JSON.stringify(reference, null, 1) + '\n')
  // the repository's own layout for JSON, so that `npm test`'s format check passes
  spawnSync(join(root, 'node_modules/.bin/prettier'), ['--write', outPath], { stdio: 'ignore' })
  console.log(`recorded ${entries.length} replies of ${reference.server} into ${outPath}`)
} finally {
  server.kill('SIGTERM')
}
