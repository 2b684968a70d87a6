import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, type SshConnection } from '../../main/ssh/connection.js'
import { deployAgent, deployAll, teardownHost, DeployError, type DeployProgress, type DeployTarget, type DeployedAgent } from '../../main/ssh/deploy.js'
import { SshError } from '../../main/ssh/errors.js'
import { KnownHosts } from '../../main/ssh/known-hosts.js'
import { defaultRuntimeCacheDir, findCachedRuntime, prepareRuntime } from '../../main/ssh/runtime-cache.js'
import { SshConfig } from '../../main/ssh/ssh-config.js'
import { labHost, readLab, testbed, testbedFor, testbedUnavailable, type Lab, type LabHost } from '../../scripts/testbed/harness.js'
import { lacks, skipNow } from '../support/skips.js'

const unavailable = lacks(testbedUnavailable())

// Stands in for the agent exactly as deploy sees it: one JSON boot line on stdin, a
// loopback control port, a ready line, <dataDir>/agent.json. Its control port answers one
// line saying whether the token matched and which Node runs it.
const STUB_AGENT = `
const fs = require('fs'), net = require('net'), path = require('path')
let buf = ''
process.stdin.on('data', (d) => {
  buf += d
  const i = buf.indexOf('\\n')
  if (i < 0) return
  process.stdin.destroy()
  const boot = JSON.parse(buf.slice(0, i))
  const srv = net.createServer((s) => s.once('data', (m) => {
    const req = JSON.parse(m)
    s.end(JSON.stringify({ id: boot.id, tokenOk: req.token === boot.controlToken, node: process.version }) + '\\n')
  }))
  srv.listen(boot.controlPort, '127.0.0.1', () => {
    const port = srv.address().port
    fs.mkdirSync(boot.dataDir, { recursive: true })
    fs.writeFileSync(path.join(boot.dataDir, 'agent.json'), JSON.stringify({ controlPort: port, pid: process.pid, version: 1, startedAt: Date.now() }))
    process.stdout.write(JSON.stringify({ ready: { controlPort: port, pid: process.pid } }) + '\\n')
  })
})
`

// A killed process may linger as a zombie where init does not reap orphans; that is gone too.
const aliveCmd = (pid: number): string =>
  `if kill -0 ${pid} 2>/dev/null && [ "$(sed 's/.*) //' /proc/${pid}/stat | cut -c1)" != Z ]; then echo alive; else echo gone; fi`

function ask(stream: Duplex, token: string): Promise<{ id: string; tokenOk: boolean; node: string }> {
  return new Promise((resolve, reject) => {
    let buf = ''
    stream.on('data', (d: Buffer) => {
      buf += d.toString()
      if (buf.includes('\n')) resolve(JSON.parse(buf.slice(0, buf.indexOf('\n'))))
    })
    stream.on('error', reject)
    stream.write(JSON.stringify({ token }) + '\n')
  })
}

describe.skipIf(unavailable !== null)(`deploy over SSH to the testbed${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let lab: Lab
  // a testbed that was already up is given back as it was, not taken down
  let release: (() => void) | undefined
  let home: string
  let bundle: string
  let bigBundle: string
  let knownHosts: KnownHosts
  let runtimeSkip: string | null = null
  const conns: SshConnection[] = []

  const open = async (h: { address: string; user: string; identity: string }): Promise<SshConnection> => {
    const c = await connect({
      host: h.address,
      user: h.user,
      identityFiles: [h.identity],
      knownHosts,
      confirmHostKey: async () => true,
      sshConfig: SshConfig.empty(),
      agent: false,
      readyTimeoutMs: 10_000
    })
    conns.push(c)
    return c
  }
  const target = (h: LabHost, token = randomBytes(32).toString('hex')): DeployTarget => ({
    id: h.id,
    connect: () => open(h),
    boot: { id: h.id, labKey: randomBytes(32).toString('hex'), controlToken: token }
  })

  beforeAll(async () => {
    release = testbedFor('--no-node', 'h2')
    lab = readLab()
    home = mkdtempSync(join(tmpdir(), 'ftlab-home-'))
    knownHosts = await KnownHosts.load({ readOnly: [], store: join(home, 'known_hosts') })
    bundle = join(home, 'ftlab-agent.cjs')
    writeFileSync(bundle, STUB_AGENT)
    bigBundle = join(home, 'big', 'ftlab-agent.cjs')
    mkdirSync(join(home, 'big'))
    writeFileSync(bigBundle, STUB_AGENT + '//' + 'x'.repeat(1024 * 1024) + '\n')
    if (!(await findCachedRuntime('x64'))) {
      try {
        execFileSync(process.execPath, ['scripts/fetch-node-runtime.mjs', '--arch', 'x64'], { stdio: 'pipe', timeout: 600_000 })
      } catch (e) {
        runtimeSkip = `no Node runtime cached in ${defaultRuntimeCacheDir()} and fetching one failed: ${String((e as { stderr?: Buffer }).stderr ?? e)
          .trim()
          .split('\n')
          .at(-1)}`
      }
    }
    // a cache from before the stripped zstd copy is prepared here (zstd -19: minutes of CPU on a busy machine, once), not inside a test's own timeout
    const cached = runtimeSkip ? null : await findCachedRuntime('x64')
    if (cached) await prepareRuntime(cached)
  }, 900_000)

  afterAll(() => {
    for (const c of conns) c.close()
    release?.()
    if (home) rmSync(home, { recursive: true, force: true })
  })

  it('deploys to every host in parallel while an unreachable one fails on its own', async () => {
    const h1 = labHost(lab, 'h1')
    const h3 = labHost(lab, 'h3')
    const ghost = { ...h1, id: 'ghost', address: lab.unusedAddress }
    const tokens = { h1: randomBytes(32).toString('hex'), h3: randomBytes(32).toString('hex') }
    const events: DeployProgress[] = []
    const outcomes = await deployAll([target(h1, tokens.h1), target(ghost), target(h3, tokens.h3)], { bundlePath: bundle, onProgress: (p) => events.push(p) })
    expect(outcomes.map((o) => [o.hostId, o.ok])).toEqual([
      ['h1', true],
      ['ghost', false],
      ['h3', true]
    ])
    const failed = outcomes[1]!
    if (failed.ok) throw new Error('unreachable')
    expect(failed.step).toBe('connect')
    expect(failed.error).toBeInstanceOf(SshError)
    expect((failed.error as SshError).kind).toBe('unreachable')
    expect(events).toContainEqual(expect.objectContaining({ hostId: 'ghost', step: 'connect', state: 'failed' }))
    for (const o of outcomes) {
      if (!o.ok) continue
      const a: DeployedAgent = o.agent
      expect(a.uploaded.agent).toBe(true)
      expect(events).toContainEqual(expect.objectContaining({ hostId: o.hostId, step: 'start', state: 'done' }))
      // The control channel is a port-forward to the agent's loopback port, which got its boot config.
      const reply = await ask(await a.connect(), tokens[o.hostId as 'h1' | 'h3'])
      expect(reply).toMatchObject({ id: o.hostId, tokenOk: true })
      // The boot config is on no command line and in no file on the host.
      const leak = await a.connection.exec(`cat /proc/${a.pid}/cmdline; grep -rl ${tokens[o.hostId as 'h1' | 'h3']} ~/.ftlab || true`)
      expect(leak.stdout.toString()).toContain('ftlab-agent.cjs')
      expect(leak.stdout.toString()).not.toContain(tokens[o.hostId as 'h1' | 'h3'])
    }
  })

  it('leaves the agent running after the SSH connection closes, and skips an unchanged bundle', async () => {
    const h1 = labHost(lab, 'h1')
    const first = await deployAgent(target(h1), { bundlePath: bundle })
    first.connection.close()
    const c = await open(h1)
    expect((await c.exec(aliveCmd(first.pid))).stdout.toString()).toBe('alive\n')
    const token = randomBytes(32).toString('hex')
    const events: DeployProgress[] = []
    const second = await deployAgent(target(h1, token), { bundlePath: bundle, onProgress: (p) => events.push(p) })
    expect(second.uploaded.agent).toBe(false)
    expect(events).toContainEqual(expect.objectContaining({ step: 'upload', state: 'skipped' }))
    // Redeploying replaced the old agent rather than leaving two behind.
    expect((await c.exec(aliveCmd(first.pid))).stdout.toString()).toBe('gone\n')
    expect(await ask(await second.connect(), token)).toMatchObject({ tokenOk: true })
  })

  it('uploads a Node runtime to a host without Node and runs the agent on it', async (ctx) => {
    if (runtimeSkip) skipNow(ctx, runtimeSkip)
    const h2 = labHost(lab, 'h2')
    expect(h2.node).toBe(false)
    // a runtime left there by an earlier run would be found and not sent
    await teardownHost(await open(h2))
    const token = randomBytes(32).toString('hex')
    const a = await deployAgent(target(h2, token), { bundlePath: bundle })
    const cached = await findCachedRuntime('x64')
    expect(a.facts.systemNode).toBeNull()
    expect(a.uploaded.runtime).toBe(true)
    expect(a.nodeVersion).toBe(`v${cached!.version}`)
    expect(await ask(await a.connect(), token)).toMatchObject({ tokenOk: true, node: `v${cached!.version}` })
    const again = await deployAgent(target(h2), { bundlePath: bundle })
    expect(again.uploaded).toEqual({ agent: false, runtime: false })
  }, 120_000)

  it('names a full disk as the reason an upload cannot happen', async () => {
    const h3 = labHost(lab, 'h3')
    const c = await open(h3)
    await teardownHost(c)
    testbed('-q', 'disk-limit', 'h3', '64')
    try {
      const err = await deployAgent(target(h3), { bundlePath: bigBundle }).then(
        () => null,
        (e: unknown) => e
      )
      expect(err).toBeInstanceOf(DeployError)
      expect((err as DeployError).step).toBe('upload')
      expect(((err as DeployError).error as SshError).kind).toBe('disk-full')
      expect((err as DeployError).message).toMatch(/disk full on ftlab3@10\.87\.0\.13:22: the agent bundle .* needs \d+ KiB but only \d+ KiB are free/)
    } finally {
      testbed('-q', 'disk-limit', 'h3', 'off')
    }
  })

  it('fails a powered-off host at connect with a precise error', async () => {
    const h3 = labHost(lab, 'h3')
    testbed('-q', 'power-off', 'h3')
    try {
      const [o] = await deployAll([target(h3)], { bundlePath: bundle })
      expect(o).toMatchObject({ hostId: 'h3', ok: false, step: 'connect' })
      if (o!.ok) throw new Error('unreachable')
      expect((o!.error as SshError).kind).toBe('refused')
    } finally {
      testbed('-q', 'power-on', 'h3')
    }
  })

  it('tears down: stops the agent and removes ~/.ftlab', async () => {
    const h1 = labHost(lab, 'h1')
    const a = await deployAgent(target(h1), { bundlePath: bundle })
    await teardownHost(a.connection)
    const r = await a.connection.exec(`${aliveCmd(a.pid)}; test -e ~/.ftlab && echo present || echo absent`)
    expect(r.stdout.toString()).toBe('gone\nabsent\n')
  })

  // Runs only once the real agent has landed (the placeholder bundle prints no ready line).
  it('deploys the real agent bundle and talks to it over the control channel', async () => {
    const real = 'out/agent/ftlab-agent.cjs'
    expect(existsSync(real) && readFileSync(real, 'utf8').includes('ready'), `${real} is built and prints a ready line`).toBe(true)
    const h1 = labHost(lab, 'h1')
    const token = randomBytes(32).toString('hex')
    const a = await deployAgent(target(h1, token), { bundlePath: real })
    const stream = await a.connect()
    const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let buf = ''
      stream.on('data', (d: Buffer) => {
        buf += d.toString()
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const msg = JSON.parse(buf.slice(0, i)) as Record<string, unknown>
          buf = buf.slice(i + 1)
          if (msg.t === 'res' && msg.id === 1) resolve(msg)
        }
      })
      stream.on('error', reject)
      stream.on('close', () => reject(new Error('the agent closed the control channel')))
      stream.write(JSON.stringify({ t: 'auth', token }) + '\n' + JSON.stringify({ id: 1, t: 'hello' }) + '\n')
    })
    expect(reply).toMatchObject({ t: 'res', id: 1, ok: true })
    stream.end()
    await teardownHost(a.connection)
  })

  it('refuses a missing bundle before touching any host', async () => {
    const h1 = labHost(lab, 'h1')
    let connected = false
    const t = { ...target(h1), connect: async () => ((connected = true), open(h1)) }
    await expect(deployAgent(t, { bundlePath: join(home, 'nope.cjs') })).rejects.toThrow(/agent bundle .*nope\.cjs is missing; build it with/)
    expect(connected).toBe(false)
  })
})
