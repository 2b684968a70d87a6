// The deploy flow end to end against a "host" that is this machine's own /bin/sh in a temp
// HOME: the real remote scripts (detect, uploads with their hash checks, start, stop) run as
// they would over SSH, without the testbed. A fake PATH directory stands in for what differs
// between hosts (an old Node, another architecture, a full disk).
import { spawn, spawnSync } from 'node:child_process'
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
  writeSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { ExecResult, SshConnection } from '../../../main/ssh/connection.js'
import { deployAgent, DeployError, type DeployedAgent, type DeployProgress, type DeployTarget } from '../../../main/ssh/deploy.js'
import { SshError } from '../../../main/ssh/errors.js'
import { agentPidsScript, stopScript } from '../../../main/ssh/remote-scripts.js'
import { prepareRuntime } from '../../../main/ssh/runtime-cache.js'

const RUNTIME_VERSION = '22.1.0'

// What deploy needs of an agent: one boot line on stdin, a ready line on stdout, then it stays.
const STUB_AGENT = `
let buf = ''
process.stdin.on('data', (d) => {
  buf += d
  if (!buf.includes('\\n')) return
  process.stdin.destroy()
  process.stdout.write(JSON.stringify({ ready: { controlPort: 4321, pid: process.pid } }) + '\\n')
  setInterval(() => {}, 1000)
})
`

interface LocalHost {
  home: string
  bin: string
  conn: SshConnection
  commands: string[]
}

/** A connection whose commands run in this machine's sh with HOME and PATH of our choosing. */
function localHost(root: string, name: string): LocalHost {
  const home = join(root, name, 'home')
  const bin = join(root, name, 'bin')
  mkdirSync(home, { recursive: true })
  mkdirSync(bin, { recursive: true })
  const commands: string[] = []
  const exec = (command: string, opts: { stdin?: string | Buffer | Readable } = {}): Promise<ExecResult> =>
    new Promise((resolve, reject) => {
      commands.push(command)
      const p = spawn('sh', ['-c', command], { env: { HOME: home, PATH: `${bin}:${process.env.PATH}` }, stdio: ['pipe', 'pipe', 'pipe'] })
      const out: Buffer[] = []
      const err: Buffer[] = []
      p.stdout.on('data', (d: Buffer) => out.push(d))
      p.stderr.on('data', (d: Buffer) => err.push(d))
      p.stdin.on('error', () => {})
      p.on('error', reject)
      p.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }))
      if (opts.stdin instanceof Readable) opts.stdin.pipe(p.stdin)
      else p.stdin.end(opts.stdin)
    })
  const conn = { name: `local-${name}`, exec, close: () => {}, forwardOut: () => Promise.reject(new Error('no forwarding here')) }
  return { home, bin, conn: conn as unknown as SshConnection, commands }
}

const alive = (pid: number | undefined): string =>
  spawnSync('sh', ['-c', `kill -0 ${pid} 2>/dev/null && [ "$(sed 's/.*) //' /proc/${pid}/stat | cut -c1)" != Z ] && echo yes || echo no`], {
    encoding: 'utf8'
  }).stdout.trim()

/** `sleep` processes started with this HOME (the start script's watchdog runs one while it waits for the agent). */
function sleepsOf(home: string): number[] {
  const out: number[] = []
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')[0]
      if (!/(^|\/)sleep$/.test(argv0)) continue
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`HOME=${home}`)) out.push(Number(pid))
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return out
}

function script(path: string, body: string): void {
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o755)
}

describe('deploy against a local sh host', () => {
  let root: string
  let bundle: string
  let cache: string
  const deployed: DeployedAgent[] = []

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ftlab-deploy-local-'))
    bundle = join(root, 'ftlab-agent.cjs')
    writeFileSync(bundle, STUB_AGENT)
    // a "runtime" that reports its version and otherwise is this machine's Node
    cache = join(root, 'cache')
    mkdirSync(join(cache, `node-v${RUNTIME_VERSION}-linux-x64`, 'bin'), { recursive: true })
    script(
      join(cache, `node-v${RUNTIME_VERSION}-linux-x64`, 'bin', 'node'),
      `[ "$1" = --version ] && { echo v${RUNTIME_VERSION}; exit 0; }\nexec ${process.execPath} "$@"\n# padding so that compression matters: ${'x'.repeat(4096)}`
    )
  })

  afterEach(async () => {
    for (const a of deployed.splice(0)) await a.stop().catch(() => {})
  })

  afterAll(() => {
    rmSync(root, { recursive: true, force: true })
  })

  const target = (h: LocalHost): DeployTarget => ({
    id: 'x',
    connect: async () => h.conn,
    boot: { id: 'x', labKey: 'k'.repeat(64), controlToken: 't'.repeat(64) }
  })

  it('uses the host Node when it is new enough, uploads only the bundle, then nothing on a second deploy', async () => {
    const h = localHost(root, 'with-node')
    const first = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
    deployed.push(first)
    expect(first.uploaded).toEqual({ agent: true, runtime: false })
    expect(first.nodePath).toBe('node')
    expect(readFileSync(join(h.home, '.ftlab', 'agent', 'ftlab-agent.cjs'), 'utf8')).toBe(STUB_AGENT)
    // cold: detect, then the bundle's upload, which starts the agent
    expect(h.commands).toHaveLength(2)
    expect(alive(first.pid)).toBe('yes')
    const events: DeployProgress[] = []
    const second = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache, onProgress: (p) => events.push(p) })
    deployed.push(second)
    expect(second.uploaded).toEqual({ agent: false, runtime: false })
    expect(events).toContainEqual(expect.objectContaining({ step: 'upload', state: 'skipped' }))
    // warm: one command found everything in place and started the agent
    expect(h.commands).toHaveLength(3)
    expect(alive(second.pid)).toBe('yes')
    // the boot line's dataDir is the host's own home
    expect(second.dataDir).toBe(join(h.home, '.ftlab', 'data'))
    expect(existsSync(join(h.home, '.ftlab', 'data'))).toBe(true)
    // the redeploy replaced the first agent (a zombie, where init does not reap, is gone too)
    expect(alive(first.pid)).toBe('no')
    // the start's watchdog went with its sleep once the agent was ready: nothing of it stays on the host
    for (let i = 0; i < 40 && sleepsOf(h.home).length > 0; i++) await new Promise((r) => setTimeout(r, 50))
    expect(sleepsOf(h.home)).toEqual([])
  })

  it('reads the ready line of the agent it started, not what a process still holding the last start’s fifo wrote', async () => {
    const h = localHost(root, 'stale-fifo')
    const first = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
    deployed.push(first)
    // A process of the last start that still holds the ready fifo (the stopped agent's threads or children, on their
    // way out) and has written into it: here a line that says ready for a pid that is no agent.
    const stale = openSync(join(h.home, '.ftlab', 'ready.fifo'), 'r+')
    try {
      writeSync(stale, JSON.stringify({ ready: { controlPort: 1, pid: 1 } }) + '\n')
      const second = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
      deployed.push(second)
      expect(second.pid).not.toBe(1)
      expect(alive(second.pid)).toBe('yes')
      expect(alive(first.pid)).toBe('no')
    } finally {
      closeSync(stale)
    }
  })

  it("asks the host's node for its version once, and again only when the binary is replaced", async () => {
    const h = localHost(root, 'node-stamp')
    const calls = join(root, 'node-stamp', 'calls')
    const fake = join(h.bin, 'node')
    const body = `[ "$1" = --version ] && { echo x >> ${calls}; echo v20.5.0; exit 0; }\nexec ${process.execPath} "$@"`
    script(fake, body)
    const count = (): number => (existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean).length : 0)
    deployed.push(await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache }))
    expect(count()).toBe(1)
    const warm = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
    deployed.push(warm)
    expect(count()).toBe(1)
    expect(warm.facts.systemNode).toBe('v20.5.0')
    // a replaced binary (a package upgrade writes a new file) is asked again
    rmSync(fake)
    script(fake, body.replace('v20.5.0', 'v20.10.0'))
    const upgraded = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
    deployed.push(upgraded)
    expect(count()).toBe(2)
    expect(upgraded.facts.systemNode).toBe('v20.10.0')
  })

  it('reports an agent that exits before its ready line at the start step, with the tail of its log', async () => {
    const h = localHost(root, 'crashing')
    const crashing = join(root, 'crashing', 'ftlab-agent.cjs')
    writeFileSync(crashing, "process.stderr.write('boot config rejected: boom\\n'); process.exit(3)\n")
    const err = (await deployAgent(target(h), { bundlePath: crashing, runtimeCacheDir: cache }).catch((e: unknown) => e)) as DeployError
    expect(err).toBeInstanceOf(DeployError)
    expect(err.step).toBe('start')
    expect(err.message).toMatch(
      /agent did not start on local-crashing .*: the agent exited \(status 3\) before it was ready; last lines of ~\/\.ftlab\/agent\.out:\nboot config rejected: boom/
    )
    // the same from the warm path, where the detect command starts it
    const again = (await deployAgent(target(h), { bundlePath: crashing, runtimeCacheDir: cache }).catch((e: unknown) => e)) as DeployError
    expect(again.step).toBe('start')
    expect(again.message).toMatch(/exited \(status 3\) before it was ready.*\nboot config rejected: boom/s)
    expect(h.commands).toHaveLength(3)
  })

  it('uploads the runtime where the host Node is too old, checks its hash on the host, and sends it again once it no longer matches', async () => {
    const h = localHost(root, 'old-node')
    script(join(h.bin, 'node'), 'echo v16.20.2')
    const cold = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
    deployed.push(cold)
    expect(cold.uploaded).toEqual({ agent: true, runtime: true })
    const remote = join(h.home, '.ftlab', 'runtime', `node-v${RUNTIME_VERSION}-linux-x64`, 'bin', 'node')
    expect(cold.nodePath).toBe(remote)
    expect(cold.nodeVersion).toBe(`v${RUNTIME_VERSION}`)
    expect(readFileSync(remote)).toEqual(readFileSync(join(cache, `node-v${RUNTIME_VERSION}-linux-x64`, 'bin', 'node')))
    // the runtime travelled as one of the cache's compressed copies (zstd where both ends have it), and that command started the agent
    const prepared = await prepareRuntime({ version: RUNTIME_VERSION, arch: 'x64', path: join(cache, `node-v${RUNTIME_VERSION}-linux-x64`, 'bin', 'node') })
    const runtimeCommand = h.commands.find((c) => c.includes(prepared.zst ? 'zstd -dcq' : 'gzip -dc'))
    expect(runtimeCommand).toBeDefined()
    expect(runtimeCommand).toContain('setsid')
    // a separate start command only when the bundle was not in place yet as the runtime landed (this runtime is 4 KiB)
    expect(h.commands.length).toBeLessThanOrEqual(4)

    const warm = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
    deployed.push(warm)
    expect(warm.uploaded).toEqual({ agent: false, runtime: false })

    // a runtime changed on the host is not run: it is replaced
    writeFileSync(remote, readFileSync(remote, 'utf8').replace('padding', 'PADDING'))
    const again = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
    deployed.push(again)
    expect(again.uploaded.runtime).toBe(true)
    expect(readFileSync(remote, 'utf8')).toContain('padding')
  })

  it("takes an untouched runtime at its upload stamp's hash, and hashes one modified since", async () => {
    const h = localHost(root, 'stamp')
    script(join(h.bin, 'node'), 'exit 127')
    const cold = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
    deployed.push(cold)
    const remote = cold.nodePath
    const stamp = `${remote}.sha256`
    const [sum, bytes] = readFileSync(stamp, 'utf8').trim().split(' ')
    expect(bytes).toBe(String(statSync(remote).size))
    // a stamp with another hash is believed while the binary is untouched: the runtime is sent again
    writeFileSync(stamp, `${'1'.repeat(64)} ${bytes}\n`)
    const stamped = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
    deployed.push(stamped)
    expect(stamped.uploaded.runtime).toBe(true)
    expect(readFileSync(stamp, 'utf8')).toBe(`${sum} ${bytes}\n`)
    // the same wrong stamp, but the binary modified after it: hashed, found right, not sent
    writeFileSync(stamp, `${'1'.repeat(64)} ${bytes}\n`)
    const later = new Date(Date.now() + 5000)
    utimesSync(remote, later, later)
    const hashed = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache })
    deployed.push(hashed)
    expect(hashed.uploaded.runtime).toBe(false)
  })

  it('refuses a runtime that arrives with another hash, leaving nothing in its place', async () => {
    const h = localHost(root, 'corrupt')
    script(join(h.bin, 'node'), 'exit 127')
    const rtDir = join(root, 'cache-corrupt', `node-v${RUNTIME_VERSION}-linux-x64`)
    mkdirSync(join(rtDir, 'bin'), { recursive: true })
    writeFileSync(join(rtDir, 'bin', 'node'), readFileSync(join(cache, `node-v${RUNTIME_VERSION}-linux-x64`, 'bin', 'node')))
    chmodSync(join(rtDir, 'bin', 'node'), 0o755)
    const prepared = await prepareRuntime({ version: RUNTIME_VERSION, arch: 'x64', path: join(rtDir, 'bin', 'node') })
    // the console's record of the hash no longer matches what it sends (as a corrupted transfer would look)
    const meta = JSON.parse(readFileSync(`${prepared.gzPath}.json`, 'utf8')) as { sha256: string }
    writeFileSync(
      `${prepared.gzPath}.json`,
      JSON.stringify({ ...meta, sha256: '0'.repeat(64), gzSha256: '0'.repeat(64), ...(prepared.zst ? { zstSha256: '0'.repeat(64) } : {}) })
    )
    const err = await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: join(root, 'cache-corrupt') }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DeployError)
    expect((err as DeployError).step).toBe('runtime')
    expect((err as DeployError).message).toMatch(/the runtime arrived with sha256 [0-9a-f]{64}, expected 0{64}: the upload was corrupted/)
    const dir = join(h.home, '.ftlab', 'runtime', `node-v${RUNTIME_VERSION}-linux-x64`, 'bin')
    expect(existsSync(join(dir, 'node'))).toBe(false)
    expect(existsSync(join(dir, 'node.partial'))).toBe(false)
  })

  it('names an uploaded runtime that cannot be executed on the host, at the runtime step', async () => {
    const h = localHost(root, 'unrunnable')
    script(join(h.bin, 'node'), 'exit 127')
    const rtDir = join(root, 'cache-unrunnable', `node-v${RUNTIME_VERSION}-linux-x64`)
    mkdirSync(join(rtDir, 'bin'), { recursive: true })
    // as a binary for another architecture would: execve fails, setsid says so and exits 127
    writeFileSync(join(rtDir, 'bin', 'node'), `#!/nonexistent/interpreter\n# ${'x'.repeat(4096)}\n`)
    chmodSync(join(rtDir, 'bin', 'node'), 0o755)
    const err = (await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: join(root, 'cache-unrunnable') }).catch((e: unknown) => e)) as DeployError
    expect(err).toBeInstanceOf(DeployError)
    expect(err.step).toBe('runtime')
    expect(err.message).toMatch(/uploaded Node runtime does not run on local-unrunnable: the agent exited \(status 127\) before it was ready/)
  })

  it('names the missing runtime and the command that caches one', async () => {
    const h = localHost(root, 'no-cache')
    script(join(h.bin, 'node'), 'exit 127')
    const empty = join(root, 'empty-cache')
    const err = (await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: empty }).catch((e: unknown) => e)) as DeployError
    expect(err).toBeInstanceOf(DeployError)
    expect(err.step).toBe('runtime')
    expect(err.message).toContain(
      `host has no Node, and no Node runtime for linux-x64 is cached in ${empty}; run: node scripts/fetch-node-runtime.mjs --arch x64`
    )
  })

  it('refuses an architecture it carries no runtime for', async () => {
    const h = localHost(root, 'riscv')
    script(join(h.bin, 'node'), 'exit 127')
    script(join(h.bin, 'uname'), 'case "$1" in -m) echo riscv64 ;; -sm) echo Linux riscv64 ;; *) echo Linux ;; esac')
    const err = (await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache }).catch((e: unknown) => e)) as DeployError
    expect(err.step).toBe('runtime')
    expect(err.message).toMatch(
      /host has no Node, and FT Lab carries Node runtimes only for x86_64 and aarch64 \(this host is riscv64\); install Node 18\+ on it/
    )
  })

  it('names a full disk before uploading, with what needed the room', async () => {
    const h = localHost(root, 'full')
    script(join(h.bin, 'node'), 'exit 127')
    script(join(h.bin, 'df'), 'echo "Filesystem 1024-blocks Used Available Capacity Mounted"; echo "fs 100 99 12 99% /"')
    const err = (await deployAgent(target(h), { bundlePath: bundle, runtimeCacheDir: cache }).catch((e: unknown) => e)) as DeployError
    expect(err.step).toBe('runtime')
    expect((err.error as SshError).kind).toBe('disk-full')
    expect(err.message).toMatch(/disk full on local-full: the Node runtime and the agent bundle \(.*\.ftlab\) needs \d+ KiB but only 12 KiB are free there/)
    expect(h.commands.some((c) => c.includes('gzip -dc'))).toBe(false)
  })
})

describe('finding the agent among all processes', () => {
  it('finds exactly the processes whose argument is this home’s bundle, and stop kills only those', async () => {
    const root = mkdtempSync(join(tmpdir(), 'ftlab-pids-'))
    const bundle = join(root, '.ftlab', 'agent', 'ftlab-agent.cjs')
    const keep = (arg: string) => spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', arg], { stdio: 'ignore', detached: true })
    const agent = keep(bundle)
    const decoys = [keep(`${bundle}.old`), keep(join(root, 'other', '.ftlab', 'agent', 'ftlab-agent.cjs'))]
    try {
      await new Promise((r) => setTimeout(r, 200))
      const env = { HOME: root, PATH: process.env.PATH }
      const found = spawnSync('sh', ['-c', `D="$HOME/.ftlab"; ${agentPidsScript('"$D/agent/ftlab-agent.cjs"')}`], { env, encoding: 'utf8' })
      expect(found.stdout.trim().split('\n')).toEqual([String(agent.pid)])
      const stopped = spawnSync('sh', ['-c', stopScript], { env, encoding: 'utf8' })
      expect(stopped.stdout).toBe('stopped\n')
      await new Promise((r) => setTimeout(r, 100))
      expect(alive(agent.pid)).toBe('no')
      expect(decoys.map((d) => alive(d.pid))).toEqual(['yes', 'yes'])
    } finally {
      for (const p of [agent, ...decoys]) p.kill('SIGKILL')
      rmSync(root, { recursive: true, force: true })
    }
  })
})
