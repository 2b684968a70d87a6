// The local lab's host and orchestration against the real agent bundle, for what works
// without the replica role: processes, the control channel, the disk server, process faults.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { AgentClient } from '../../main/lab/agent-client.js'
import { startLocalLab } from '../../main/lab/local-lab.js'
import { findAgentBundle, LocalHost } from '../../main/lab/local-host.js'
import { buildAgentWithoutReplicaRole } from '../support/agent.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
  cleanups.push(() => rmSync(d, { recursive: true, force: true }))
  return d
}

async function agent(host: LocalHost, id = 'x') {
  const dataDir = tempDir()
  const token = randomBytes(32).toString('hex')
  const started = await host.startAgent({ id, labKey: randomBytes(32).toString('hex'), controlToken: token, controlPort: 0, dataDir })
  cleanups.push(() => host.kill(started.pid))
  const client = new AgentClient({
    id,
    where: host.describeControl(started.controlPort),
    token,
    connect: host.controlConnector(started.controlPort),
    requestTimeoutMs: 2000
  })
  cleanups.push(() => client.close())
  return { ...started, client, dataDir }
}

describe('LocalHost with the real agent', () => {
  it('starts a detached agent that answers on its control port and writes agent.json', async () => {
    const host = new LocalHost()
    const a = await agent(host)
    expect(await host.isAgentAlive(a.pid)).toBe(true)
    const st = await a.client.status()
    expect(st).toMatchObject({ id: 'x', pid: a.pid, role: 'idle' })
    expect(existsSync(join(a.dataDir, 'agent.json'))).toBe(true)
  })

  it('runs the disk-server role over the control channel', async () => {
    const host = new LocalHost()
    const a = await agent(host, 'disk')
    const [port] = await host.freePorts(1)
    await a.client.start({ role: 'disk-server', listen: { host: '127.0.0.1', port }, blockSize: 4096 })
    expect((await a.client.status()).role).toBe('disk-server')
  })

  it('pauses and resumes an agent: silent while stopped, answering again after', async () => {
    const host = new LocalHost()
    const a = await agent(host)
    await a.client.status()
    await host.pause(a.pid)
    cleanups.push(() => host.resume(a.pid))
    await expect(a.client.status(300)).rejects.toThrow("agent x: no answer to 'status' within 300 ms")
    expect(await host.isAgentAlive(a.pid)).toBe(true)
    await host.resume(a.pid)
    await expect(a.client.status()).resolves.toMatchObject({ id: 'x' })
  })

  it('power cut: SIGKILL leaves no agent behind', async () => {
    const host = new LocalHost()
    const a = await agent(host)
    const before = Date.now()
    const killed = await host.kill(a.pid)
    // when the signal went: after the call began, before it returned (it returns once the process is gone)
    expect(killed?.at).toBeGreaterThanOrEqual(before)
    expect(killed?.at).toBeLessThanOrEqual(Date.now())
    expect(await host.isAgentAlive(a.pid)).toBe(false)
    expect(await host.kill(a.pid)).toBeNull()
  })

  it('reports the agent’s own words when it dies before it is ready', async () => {
    const dir = tempDir()
    const fake = join(dir, 'ftlab-agent.cjs')
    writeFileSync(fake, "process.stderr.write('boot config rejected: labKey must be 64 hex digits\\n'); process.exit(3)\n")
    const host = new LocalHost(fake)
    await expect(host.startAgent({ id: 'b', labKey: 'nope', controlToken: 't', controlPort: 0, dataDir: join(dir, 'b') })).rejects.toThrow(
      /agent b exited before it was ready \(exit code 3\): boot config rejected: labKey must be 64 hex digits/
    )
  })

  it('finds the agent bundle from the sources', () => {
    expect(findAgentBundle({})).toMatch(/out[\\/]agent[\\/]ftlab-agent\.cjs$/)
  })
})

describe('local lab without the replica role', () => {
  it('fails to start with the agent’s reason and leaves no process behind', async () => {
    const home = tempDir()
    const agentBundle = await buildAgentWithoutReplicaRole(tempDir())
    const err = await startLocalLab({ name: 'it' }, { home, agentBundle }).catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error).message).toMatch(/^lab 'it' did not start: agent b: replica role not available/)
    expect(existsSync(join(home, 'labs', 'it.json'))).toBe(false)
    // every agent that was started is gone (their data dirs hold their pids' logs)
    const host = new LocalHost(agentBundle)
    for (const d of readdirSync(join(home, 'labs', 'it'))) {
      const ready = /"pid":(\d+)/.exec(readFileSync(join(home, 'labs', 'it', d, 'stdout.log'), 'utf8'))
      expect(ready).not.toBeNull()
      expect(await host.isAgentAlive(Number(ready![1]))).toBe(false)
    }
  })
})
