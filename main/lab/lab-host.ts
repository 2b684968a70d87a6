// How the lab orchestration reaches one machine. The local lab runs agents as child
// processes here; SSH-deployed hosts implement the same interface over an SSH connection.
import type { Duplex } from 'node:stream'
import type { AgentBootConfig } from '../../agent/control/protocol.js'

export interface StartedAgent {
  pid: number
  controlPort: number
}

export interface LabHost {
  /** the address peers and clients use for this host's services (logging channel, RESP, disk) */
  readonly address: string
  /** true when the host shares the console's wall clock, so agent timestamps need no mapping */
  readonly sameClock: boolean
  /** start an agent, hand it the boot config on stdin, wait for its ready line */
  startAgent(boot: AgentBootConfig, opts?: { readyTimeoutMs?: number }): Promise<StartedAgent>
  /** is `pid` a running FT Lab agent on this host (a stopped one counts as running) */
  isAgentAlive(pid: number): Promise<boolean>
  /** fail-stop: SIGKILL. False when no agent with that pid was running. */
  kill(pid: number): Promise<boolean>
  pause(pid: number): Promise<void>
  resume(pid: number): Promise<void>
  /** the dead-man for a pause: the host resumes `pid` after `ms` even without the console */
  scheduleResume(pid: number, ms: number): Promise<string>
  cancelScheduled(handle: string): Promise<void>
  /** a factory of control-channel streams to the agent's loopback control port */
  controlConnector(port: number): () => Promise<Duplex>
  /** how to name the control channel in messages: '127.0.0.1:41234', 'ssh host-b:41234' */
  describeControl(port: number): string
  /** ports free on the host's lab address, distinct from any handed out before */
  freePorts(n: number): Promise<number[]>
}
