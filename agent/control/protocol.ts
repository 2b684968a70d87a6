// Control channel, console ⇄ agent. The agent listens on 127.0.0.1 only; the console
// reaches it directly (local lab) or through an SSH port-forward (real hosts).
// Wire format: one JSON object per line (UTF-8, '\n'-terminated, at most 1 MiB a line).
// The first line from the console must be {"t":"auth","token":...}; anything else, or a
// wrong token, closes the connection. Binary payloads never cross this channel.
import type { ReplicationMode } from '../vmm/types.js'
import type { Role, SilenceLimit } from '../replica/types.js'

export const CONTROL_PROTOCOL_VERSION = 1

/** Handed to a freshly started agent on stdin as one JSON line; never in argv. */
export interface AgentBootConfig {
  /** this host's id in the lab: 'a', 'b', 'disk', … */
  id: string
  /** 32 random bytes, hex: authenticates peer frames (logging channel, disk protocol) */
  labKey: string
  /** 32 random bytes, hex: authenticates the console on the control port */
  controlToken: string
  /** 0 = pick a free port; the agent prints {"ready":{"controlPort":N,"pid":P}} on stdout */
  controlPort: number
  /** where the agent keeps its files (disk image, logs, pid file) */
  dataDir: string
}

export interface Endpoint {
  host: string
  port: number
}

export interface TimingConfig {
  heartbeatMs: number
  suspectMs: number
}

export type StartRole =
  | { role: 'disk-server'; listen: Endpoint; blockSize: number }
  | {
      role: 'replica'
      /** primary or backup at lab start; 'joining' = restore redundancy onto this host */
      /** recover: both replicas were down; boot the guest from the disk server's contents, alone, in generation `gen` */
      as: 'primary' | 'backup' | 'joining' | 'recover'
      gen: number
      guest: string
      mode: ReplicationMode
      /** logging channel listen address (the backup listens, the primary connects) */
      channel: Endpoint
      /** client service port (RESP) */
      service: Endpoint
      peer: { id: string; channel: Endpoint } | null
      disk: Endpoint
      timing: TimingConfig
      /** opt-in read-only fast path (unsafe; see DESIGN.md) */
      readFastPath?: boolean
      /** drill experiment: no Output Rule, outputs leave before the backup has the entry (unsafe; only drills set it) */
      noOutputRule?: boolean
      /**
       * who breaks the tie when a replica suspects its peer: the disk server (default) or an
       * etcd cluster (an existing replicated store; the disk server then only stores blocks
       * and fences, learning the winner from it)
       */
      arbiter?: ArbiterSpec
    }

export type ArbiterSpec = { kind: 'disk' } | { kind: 'etcd'; endpoints: string[]; prefix?: string }

/** Faults the agent applies to itself (transport filter, process faults, dead-man). */
export type AgentFault =
  | { kind: 'drop'; peers: string[]; direction: 'in' | 'out' | 'both'; probability?: number }
  | { kind: 'delay'; peers: string[]; ms: number; jitterMs?: number }
  | { kind: 'isolate' }

export type ControlRequest =
  | { t: 'hello' }
  | { t: 'start'; spec: StartRole }
  | { t: 'status' }
  /** events after `since` (0 = everything still in the ring), then live ones */
  | { t: 'subscribe'; since: number }
  | { t: 'fault'; id: string; fault: AgentFault; deadlineMs: number }
  | { t: 'heal'; id: string | '*' }
  /** restore redundancy: a live replica ships a snapshot to `peer` and begins `gen` */
  | { t: 'restore'; peer: { id: string; channel: Endpoint }; gen: number }
  | { t: 'stop' }

export interface AgentStatus {
  id: string
  pid: number
  version: number
  uptimeMs: number
  role: Role | 'disk-server' | 'idle'
  gen: number
  guest?: string
  mode?: ReplicationMode
  /** logging channel figures (replica roles) */
  channel?: {
    connected: boolean
    lastEntry: number
    acked: number
    unackedEntries: number
    unackedBytes: number
    bytesSent: number
    bytesReceived: number
    entriesSent: number
    entriesReceived: number
    heldOutputs: number
    stalled: boolean
  }
  disk?: { gen: number; live: string | null; tasWinner: string | null; blocks: number; writes: number; fenced: number }
  faults: { id: string; fault: AgentFault; healsAt: number }[]
  /** Output Rule hold times of outputs released recently in the current role (replica roles) */
  outputRule?: { released: number; p50Ms: number; p99Ms: number; maxMs: number }
  /** replica role details */
  /** `clients`: client sockets at this replica; `guestConns`: connections the guest holds open (replicated state) */
  replica?: {
    peer: string | null
    releasedThrough: number
    peerSuspected: boolean
    /** the silence after which this replica suspects its peer now: its failure detector's learned timeout (absent from older agents) */
    suspectAfterMs?: number
    /** what set suspectAfterMs (absent from older agents) */
    suspectLimit?: SilenceLimit
    queuedInputs: number
    clients: number
    guestConns: number
    channelPort: number
    servicePort: number
  }
  memory: { rss: number; heapUsed: number; guestBytes: number }
}

/** An event in the agent's ring buffer. `ts` is the agent's wall clock (ms); the console maps it. */
export interface AgentEvent {
  seq: number
  ts: number
  type: string
  data: Record<string, unknown>
}

export type ControlMessage =
  { t: 'res'; id: number; ok: true; result: unknown } | { t: 'res'; id: number; ok: false; error: string } | { t: 'event'; ev: AgentEvent }

/**
 * Requests carry an id; responses echo it. `fault` and `heal` name a fault by its own id,
 * which cannot share the envelope's `id` field: on the wire the fault's id travels as
 * `faultId`, and the agent hands its handlers the ControlRequest with `id` = faultId.
 */
export type ControlEnvelope =
  | ({ id: number } & Exclude<ControlRequest, { t: 'fault' } | { t: 'heal' }>)
  | ({ id: number; faultId: string } & Omit<Extract<ControlRequest, { t: 'fault' }>, 'id'>)
  | ({ id: number; faultId: string | '*' } & Omit<Extract<ControlRequest, { t: 'heal' }>, 'id'>)
