// Runs the real agent bundle (built by the global setup) as it runs on a host: boot config
// on stdin, ready line on stdout, everything else over the control port.
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DiskClient } from '../../agent/disk/client.js'
import { controlClient, type TestControlClient } from '../unit/control/control-client.js'

const BUNDLE = 'out/agent/ftlab-agent.cjs'
const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ftlab-agent-'))
  cleanups.push(() => rmSync(d, { recursive: true, force: true }))
  return d
}

interface Running {
  child: ChildProcess
  controlPort: number
  exited: Promise<number | null>
}

async function spawnAgent(
  bootLine: string
): Promise<{ child: ChildProcess; stdout: Promise<string>; stderr: Promise<string>; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [BUNDLE], { stdio: ['pipe', 'pipe', 'pipe'] })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const collect = (s: NodeJS.ReadableStream) =>
    new Promise<string>((resolve) => {
      let out = ''
      s.setEncoding('utf8')
      s.on('data', (c: string) => {
        out += c
        if (out.includes('\n')) resolve(out)
      })
      s.on('end', () => resolve(out))
    })
  const stdout = collect(child.stdout!)
  const stderr = collect(child.stderr!)
  child.stdin!.end(bootLine + '\n')
  return { child, stdout, stderr, exited }
}

async function startAgent(boot: Record<string, unknown>): Promise<Running> {
  const { child, stdout, stderr, exited } = await spawnAgent(JSON.stringify(boot))
  const first = await Promise.race([stdout, exited.then(async () => `exited: ${await stderr}`)])
  const ready = JSON.parse(first.split('\n')[0]) as { ready: { controlPort: number; pid: number } }
  expect(ready.ready.pid).toBe(child.pid)
  return { child, controlPort: ready.ready.controlPort, exited }
}

function bootConfig(dataDir: string) {
  return { id: 'disk', labKey: randomBytes(32).toString('hex'), controlToken: randomBytes(32).toString('hex'), controlPort: 0, dataDir }
}

async function control(port: number, token: string): Promise<TestControlClient> {
  const c = await controlClient(port, token)
  cleanups.push(() => c.close())
  return c
}

function diskClient(id: string, port: number, labKey: string, timeoutMs = 5000): DiskClient {
  const c = new DiskClient({
    selfId: id,
    key: Buffer.from(labKey, 'hex'),
    host: '127.0.0.1',
    port,
    expectPeer: 'disk',
    timeoutMs,
    minBackoffMs: 10,
    maxBackoffMs: 100
  })
  cleanups.push(() => c.close())
  return c
}

describe('agent bundle, disk-server role', () => {
  it('boots from stdin, serves the disk over authenticated links, applies faults, and stops cleanly', async () => {
    const dir = join(tempDir(), 'data')
    const boot = bootConfig(dir)
    const agent = await startAgent(boot)
    // the console may go away: a closed stdout must not kill the agent
    agent.child.stdout!.destroy()

    const info = JSON.parse(readFileSync(join(dir, 'agent.json'), 'utf8'))
    expect(info).toMatchObject({ controlPort: agent.controlPort, pid: agent.child.pid, version: 1 })
    expect(typeof info.startedAt).toBe('string')
    expect(JSON.stringify(info)).not.toContain(boot.controlToken)
    expect(statSync(join(dir, 'agent.json')).mode & 0o777).toBe(0o600)
    expect(readFileSync(join(dir, 'agent.pid'), 'utf8').trim()).toBe(String(agent.child.pid))

    const c = await control(agent.controlPort, boot.controlToken)
    expect(await c.request({ t: 'hello' })).toMatchObject({ ok: true, result: { version: 1, id: 'disk' } })
    await c.request({ t: 'subscribe', since: 0 })
    const started = await c.request({ t: 'start', spec: { role: 'disk-server', listen: { host: '127.0.0.1', port: 0 }, blockSize: 512 } })
    expect(started).toMatchObject({ ok: true, result: { role: 'disk-server', listen: { host: '127.0.0.1' } } })
    const diskPort = (started as { result: { listen: { port: number } } }).result.listen.port
    expect(diskPort).toBeGreaterThan(0)
    expect(await c.request({ t: 'start', spec: { role: 'disk-server', listen: { host: '127.0.0.1', port: 0 }, blockSize: 512 } })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/already runs the disk-server role/)
    })

    const a = diskClient('a', diskPort, boot.labKey)
    const b = diskClient('b', diskPort, boot.labKey)
    expect(await a.request({ op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })).toMatchObject({ ok: true })
    expect(await a.request({ op: 'write', gen: 1, from: 'a', block: 7, data: new Uint8Array([1, 2, 3]) })).toMatchObject({ ok: true })
    expect(await b.request({ op: 'read', block: 7 })).toMatchObject({ ok: true, data: new Uint8Array([1, 2, 3]) })
    expect(await b.request({ op: 'tas', gen: 1, from: 'b' })).toMatchObject({ ok: true, winner: 'b' })
    expect(await a.request({ op: 'tas', gen: 1, from: 'a' })).toMatchObject({ ok: false, error: 'tas-lost', winner: 'b' })
    expect(await a.request({ op: 'write', gen: 1, from: 'a', block: 7, data: new Uint8Array([9]) })).toMatchObject({ ok: false, error: 'fenced' })
    await c.waitFor((m) => m.t === 'event' && m.ev.type === 'disk-tas' && m.ev.data.won === true)

    expect(await c.request({ t: 'status' })).toMatchObject({
      ok: true,
      result: { id: 'disk', role: 'disk-server', gen: 1, disk: { live: 'b', tasWinner: 'b', writes: 1, fenced: 1, blocks: 1 } }
    })

    // a fault cutting replica b off the disk server, healed by request
    expect(await c.request({ t: 'fault', faultId: 'cut-b', fault: { kind: 'drop', peers: ['b'], direction: 'both' }, deadlineMs: 60_000 })).toMatchObject({
      ok: true,
      result: { id: 'cut-b' }
    })
    // one connection per peer id: a second client calling itself b would take over b's link
    b.close()
    const bShort = diskClient('b', diskPort, boot.labKey, 300)
    await expect(bShort.request({ op: 'status' })).rejects.toThrow(/unreachable/)
    expect(await a.request({ op: 'status' })).toMatchObject({ ok: true })
    expect(await c.request({ t: 'status' })).toMatchObject({ result: { faults: [{ id: 'cut-b' }] } })
    expect(await c.request({ t: 'heal', faultId: '*' })).toMatchObject({ ok: true, result: { healed: ['cut-b'] } })
    expect(await bShort.request({ op: 'status' })).toMatchObject({ ok: true })

    // the dead-man heals a fault on its own
    await c.request({ t: 'fault', faultId: 'short', fault: { kind: 'isolate' }, deadlineMs: 50 })
    await c.waitFor((m) => m.t === 'event' && m.ev.type === 'heal' && m.ev.data.id === 'short' && m.ev.data.reason === 'deadline')
    expect(await c.request({ t: 'fault', faultId: 'x', fault: { kind: 'drop', peers: [], direction: 'in' }, deadlineMs: 10 })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/fault\.peers/)
    })
    expect(await c.request({ t: 'restore', peer: { id: 'c', channel: { host: '127.0.0.1', port: 1 } }, gen: 2 })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/replica role/)
    })

    expect(await c.request({ t: 'stop' })).toMatchObject({ ok: true })
    expect(await agent.exited).toBe(0)
    expect(existsSync(join(dir, 'agent.pid'))).toBe(false)
    expect(existsSync(join(dir, 'agent.json'))).toBe(false)
    const log = readFileSync(join(dir, 'agent.log'), 'utf8')
    expect(log).toMatch(/disk server stopped/)
    expect(log).not.toContain(boot.controlToken)
    expect(log).not.toContain(boot.labKey)

    // a restarted disk server remembers the generation, the winner and the data
    const again = await startAgent(boot)
    const c2 = await control(again.controlPort, boot.controlToken)
    const port2 = (
      (await c2.request({ t: 'start', spec: { role: 'disk-server', listen: { host: '127.0.0.1', port: 0 }, blockSize: 512 } })) as {
        result: { listen: { port: number } }
      }
    ).result.listen.port
    const a2 = diskClient('a', port2, boot.labKey)
    expect(await a2.request({ op: 'status' })).toMatchObject({ ok: true, status: { gen: 1, live: 'b', tasWinner: 'b' } })
    expect(await a2.request({ op: 'read', block: 7 })).toMatchObject({ ok: true, data: new Uint8Array([1, 2, 3]) })
    await c2.request({ t: 'stop' })
    expect(await again.exited).toBe(0)
  })

  it('refuses a bad role spec with an error that names the field', async () => {
    const boot = bootConfig(join(tempDir(), 'data'))
    const agent = await startAgent(boot)
    const c = await control(agent.controlPort, boot.controlToken)
    expect(await c.request({ t: 'start', spec: { role: 'disk-server', listen: { host: '127.0.0.1', port: 0 }, blockSize: 3 } })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/start\.spec\.blockSize/)
    })
    expect(await c.request({ t: 'start', spec: { role: 'disk-server', listen: { host: '127.0.0.1', port: 'x' }, blockSize: 512 } })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/start\.spec\.listen\.port/)
    })
    expect(await c.request({ t: 'start', spec: { role: 'witness' } })).toMatchObject({ ok: false, error: expect.stringMatching(/start\.spec\.role must be/) })
    expect(await c.request({ t: 'status' })).toMatchObject({ ok: true, result: { role: 'idle' } })
    agent.child.kill('SIGTERM')
    expect(await agent.exited).toBe(0)
  })

  it('keeps serving after SIGHUP (its console detached) and with stdin and stdout closed', async () => {
    const boot = bootConfig(join(tempDir(), 'data'))
    const agent = await startAgent(boot)
    agent.child.stdout!.destroy()
    agent.child.stderr!.destroy()
    agent.child.kill('SIGHUP')
    const c = await control(agent.controlPort, boot.controlToken)
    expect(await c.request({ t: 'status' })).toMatchObject({ ok: true, result: { role: 'idle', pid: agent.child.pid } })
    expect(agent.child.exitCode).toBeNull()
  })

  it('refuses a second agent on the same data directory', async () => {
    const boot = bootConfig(join(tempDir(), 'data'))
    await startAgent(boot)
    const second = await spawnAgent(JSON.stringify(boot))
    expect(await second.exited).toBe(2)
    expect(await second.stderr).toMatch(/another agent \(pid \d+\) is running/)
  })

  it.each([
    ['not JSON', 'hello', /not JSON/],
    ['a wrong lab key', JSON.stringify({ ...bootConfig('/tmp/x'), labKey: 'abc' }), /field "labKey" must be 64 hex characters/],
    ['a relative dataDir', JSON.stringify({ ...bootConfig('/tmp/x'), dataDir: 'data' }), /field "dataDir" must be an absolute path/],
    ['a bad port', JSON.stringify({ ...bootConfig('/tmp/x'), controlPort: 70000 }), /field "controlPort"/],
    ['a missing token', JSON.stringify({ ...bootConfig('/tmp/x'), controlToken: undefined }), /field "controlToken"/],
    ['an unknown field', JSON.stringify({ ...bootConfig('/tmp/x'), extra: 1 }), /unknown field "extra"/],
    ['nothing', '', /stdin closed before a boot config line/]
  ])('exits non-zero with a clear error on %s', async (_, line, why) => {
    const child = spawn(process.execPath, [BUNDLE], { stdio: ['pipe', 'pipe', 'pipe'] })
    let err = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (c: string) => (err += c))
    const exited = once(child, 'exit')
    child.stdin.end(line ? line + '\n' : '')
    const [code] = await exited
    expect(code).toBe(2)
    expect(JSON.parse(err.trim()).error).toMatch(why)
  })
})
