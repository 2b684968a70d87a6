// Ask an agent bundle what it can do before building a lab on it. Three answers, kept apart on
// purpose: the agent started a replica ('ok'); the agent started and said itself that this
// build has no replica role ('no-replica-role'); or the agent could not be brought up at all
// ('failed': bundle missing, exited, no ready line, died while starting the role). Only the
// agent's own refusal describes the build; a failure is our code crashing and carries the
// agent's stderr, so a caller (the tests above all) can fail with it instead of skipping.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AgentClient } from './agent-client.js'
import { DEFAULT_TIMING } from './lab.js'
import { LocalHost } from './local-host.js'

export type ProbeResult =
  | { outcome: 'ok'; replicaRole: true; reason: string }
  /** the agent is healthy and refused the role in its own words */
  | { outcome: 'no-replica-role'; replicaRole: false; reason: string }
  /** the agent could not be started or died: `reason` says where, `stderr` is what it printed */
  | { outcome: 'failed'; replicaRole: false; reason: string; stderr: string }

function tailOf(path: string, chars = 4000): string {
  try {
    return existsSync(path) ? readFileSync(path, 'utf8').slice(-chars).trim() : ''
  } catch {
    return ''
  }
}

export async function probeLocalAgent(bundle?: string): Promise<ProbeResult> {
  let host: LocalHost
  try {
    host = new LocalHost(bundle)
  } catch (err) {
    return { outcome: 'failed', replicaRole: false, reason: `no agent bundle to probe: ${(err as Error).message}`, stderr: '' }
  }
  const dir = mkdtempSync(join(tmpdir(), 'ftlab-probe-'))
  const stderr = () => [tailOf(join(dir, 'stderr.log')), tailOf(join(dir, 'agent.log'), 1500)].filter(Boolean).join('\n')
  let pid = 0
  let client: AgentClient | null = null
  try {
    const token = randomBytes(32).toString('hex')
    try {
      const started = await host.startAgent({ id: 'probe', labKey: randomBytes(32).toString('hex'), controlToken: token, controlPort: 0, dataDir: dir })
      pid = started.pid
      client = new AgentClient({ id: 'probe', where: host.describeControl(started.controlPort), token, connect: host.controlConnector(started.controlPort) })
    } catch (err) {
      return { outcome: 'failed', replicaRole: false, reason: `the agent did not start: ${(err as Error).message}`, stderr: stderr() }
    }
    const [channel, service, disk] = await host.freePorts(3)
    const ep = (port: number) => ({ host: '127.0.0.1', port })
    try {
      await client.start({
        role: 'replica',
        as: 'backup',
        gen: 1,
        guest: 'kv',
        mode: 'rsm',
        channel: ep(channel),
        service: ep(service),
        peer: null,
        disk: ep(disk),
        timing: DEFAULT_TIMING
      })
      return { outcome: 'ok', replicaRole: true, reason: 'the agent started a replica role' }
    } catch (err) {
      const msg = (err as Error).message
      // An agent that died answering `start` crashed in the role's code: never read that as
      // "this build has no role", whatever the lost connection's error says.
      if (!(await host.isAgentAlive(pid))) {
        return { outcome: 'failed', replicaRole: false, reason: `the agent (pid ${pid}) died while starting a replica: ${msg}`, stderr: stderr() }
      }
      if (/replica role not available/i.test(msg)) return { outcome: 'no-replica-role', replicaRole: false, reason: msg }
      // any other refusal (say, of this throwaway spec) from a live agent still means the role is there
      return { outcome: 'ok', replicaRole: true, reason: msg }
    }
  } finally {
    if (client) {
      await client.stop(1000).catch(() => {})
      client.close()
    }
    if (pid) await host.kill(pid)
    rmSync(dir, { recursive: true, force: true })
  }
}

/** One paragraph for a failed probe: what happened and the agent's stderr. */
export function describeProbe(p: ProbeResult): string {
  if (p.outcome !== 'failed') return p.reason
  return `${p.reason}${p.stderr ? `\n--- agent stderr ---\n${p.stderr}` : '\n(the agent printed nothing on stderr)'}`
}
