// Ask an agent bundle what it can do before building a lab on it: an agent built without the
// replica role answers `start` for a replica with an error, which is worth knowing up front
// (and lets tests that need the role say why they are skipped).
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AgentClient } from './agent-client.js'
import { DEFAULT_TIMING } from './lab.js'
import { LocalHost } from './local-host.js'

export interface ProbeResult {
  replicaRole: boolean
  /** the agent's own words when the role is missing, or why the probe failed */
  reason: string
}

export async function probeLocalAgent(bundle?: string): Promise<ProbeResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ftlab-probe-'))
  let host: LocalHost
  try {
    host = new LocalHost(bundle)
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    return { replicaRole: false, reason: (err as Error).message }
  }
  let pid = 0
  let client: AgentClient | null = null
  try {
    const token = randomBytes(32).toString('hex')
    const started = await host.startAgent({ id: 'probe', labKey: randomBytes(32).toString('hex'), controlToken: token, controlPort: 0, dataDir: dir })
    pid = started.pid
    client = new AgentClient({ id: 'probe', where: host.describeControl(started.controlPort), token, connect: host.controlConnector(started.controlPort) })
    const [channel, service, disk] = await host.freePorts(3)
    const ep = (port: number) => ({ host: '127.0.0.1', port })
    try {
      await client.start({ role: 'replica', as: 'backup', gen: 1, guest: 'kv', mode: 'rsm', channel: ep(channel), service: ep(service), peer: null, disk: ep(disk), timing: DEFAULT_TIMING })
      return { replicaRole: true, reason: 'the agent started a replica role' }
    } catch (err) {
      const msg = (err as Error).message
      // any other refusal (say, of this throwaway spec) still means the role is there
      if (/not available/i.test(msg)) return { replicaRole: false, reason: msg }
      return { replicaRole: true, reason: msg }
    }
  } catch (err) {
    return { replicaRole: false, reason: `the agent did not start: ${(err as Error).message}` }
  } finally {
    if (client) {
      await client.stop(1000).catch(() => {})
      client.close()
    }
    if (pid) await host.kill(pid)
    rmSync(dir, { recursive: true, force: true })
  }
}
