// How the lab orchestration reaches one machine. The local lab runs agents as child
// processes here; SSH-deployed hosts implement the same interface over an SSH connection,
// and add what only real machines have: network faults in the host's kernel and a power
// driver. Those are optional: a host without them gets the agents' own transport filter and
// a power cut that is a SIGKILL of its agent.
import type { Duplex } from 'node:stream'
import type { AgentBootConfig } from '../../agent/control/protocol.js'

export interface StartedAgent {
  pid: number
  controlPort: number
}

/**
 * One host's share of a lab network fault, in lab terms (the peers' lab addresses); the
 * host turns it into kernel rules. A cut or a loss is applied on one end only (the host drops
 * both what it sends and what it receives); a delay on both ends (netem delays egress only).
 */
export type KernelFaultShare =
  /** drop everything to and from the lab, sparing the console's management connection */
  | { kind: 'isolate'; peers: string[] }
  | { kind: 'cut'; peer: string; direction: 'out' | 'both' }
  | { kind: 'loss'; peer: string; percent: number }
  | { kind: 'delay'; peer: string; ms: number; jitterMs?: number }

export type KernelFaultPath = 'nft' | 'iptables' | 'netem'

/** What a host applied; kept in the lab state so any later console can heal it. */
export interface KernelFaultPart {
  path: KernelFaultPath
  /** one line for the operator: 'nft table inet ftlab_1a2b_3_0' */
  detail: string
  /** the host's own record of the fault (plain JSON), handed back to healKernelFault */
  record: unknown
}

/** A machine's power switch (a PDU command, a BMC, a hypervisor, the testbed's power-off). */
export interface HostPowerDriver {
  /** 'command', 'ipmi', 'libvirt', 'sysrq' */
  readonly kind: string
  readonly canPowerOn: boolean
  /** cut the power; resolves with what the tool said */
  off(): Promise<string>
  /** switch it on and wait until the host answers again; refused with the reason where the driver cannot */
  on(): Promise<string>
}

export interface LabHost {
  /** the address peers and clients use for this host's services (logging channel, RESP, disk) */
  readonly address: string
  /** true when the host shares the console's wall clock, so agent timestamps need no mapping */
  readonly sameClock: boolean
  /** how a fault through the agents' own filter is named in fault records (default 'agent-filter') */
  readonly filterPath?: 'agent-filter' | 'sim'
  /** start an agent, hand it the boot config on stdin, wait for its ready line */
  startAgent(boot: AgentBootConfig, opts?: { readyTimeoutMs?: number }): Promise<StartedAgent>
  /** is `pid` a running FT Lab agent on this host (a stopped one counts as running) */
  isAgentAlive(pid: number): Promise<boolean>
  /**
   * Fail-stop: SIGKILL. Resolves once the agent is gone, with when the signal went, on the host's own clock (ms since the
   * epoch: the lab maps it as it maps the agents' events, so a failover is timed from the kill, not from the call; absent
   * where the host cannot tell the time that finely); null when no agent with that pid was running.
   */
  kill(pid: number): Promise<{ at?: number } | null>
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

  // ——— optional: kernel-level network faults ———

  /** Why this host cannot apply `share` in its kernel for `forMs`, or null when it can. */
  kernelFaultUnavailable?(share: KernelFaultShare, forMs: number): Promise<string | null>
  /** Apply `share` under `id` ([a-z0-9_]{1,16}), with a dead-man on the host that heals it after `forMs`, console or not. */
  applyKernelFault?(id: string, share: KernelFaultShare, forMs: number): Promise<KernelFaultPart>
  /** Remove one applied share (idempotent). */
  healKernelFault?(part: KernelFaultPart): Promise<void>
  /** Emergency stop: remove every FT Lab kernel fault on this host, whoever applied it; returns what was removed. */
  clearKernelFaults?(): Promise<string[]>

  // ——— optional: a power driver ———

  /** The machine's power switch, or null when a power cut can only kill the agent. */
  powerDriver?(): HostPowerDriver | null
}
