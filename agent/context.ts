// What a role (disk server, replica) gets from the agent: its configuration, where to
// report, the fault filter every link must use, and where to keep files. The replica
// runtime is started with one of these: `startReplica(spec, ctx)`.
import type { AgentBootConfig, AgentStatus, StartRole } from './control/protocol.js'
import type { FaultManager } from './faults/deadman.js'
import type { TransportFilter } from './faults/filter.js'
import type { Logger } from './log.js'

export interface AgentContext {
  boot: AgentBootConfig
  /** the lab key as bytes (boot.labKey decoded), for links */
  labKey: Uint8Array
  dataDir: string
  /** put an event into the ring buffer the console subscribes to */
  emit(type: string, data: Record<string, unknown>): void
  /** pass this to every link (logging channel, disk client), so injected faults apply to it */
  filter: TransportFilter
  faults: FaultManager
  log: Logger
}

/** A started role, as the agent sees it. */
export interface RoleHandle {
  /** figures merged into the agent's status answer */
  status(): Partial<AgentStatus>
  /** restore redundancy (replica role only) */
  restore?(req: { peer: { id: string; channel: { host: string; port: number } }; gen: number }): Promise<unknown>
  /** stop serving, close links and listeners, flush what must be durable */
  stop(): Promise<void>
}

export type ReplicaSpec = Extract<StartRole, { role: 'replica' }>
export type DiskServerSpec = Extract<StartRole, { role: 'disk-server' }>

/** The replica runtime's entry, written against this contract in agent/replica/runtime.ts. */
export type StartReplica = (spec: ReplicaSpec, ctx: AgentContext) => Promise<RoleHandle & { result?: unknown }>
