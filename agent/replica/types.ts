// The replica protocol's vocabulary: the lecture's names. The protocol itself
// (core.ts) is a deterministic state machine: Events in, Actions out. Sockets, clocks
// and processes live at the edge (edge.ts, bound to the world by runtime.ts on hosts and
// by sim/ in the simulator).
import type { EntryBody, GuestInput, IoRequest, Output, PageWrite, ReplicationMode } from '../vmm/types.js'
import type { DetectorLimitBy, PauseReport } from './detector.js'

export type ReplicaId = string
export type Role = 'primary' | 'backup' | 'live' | 'halted' | 'joining'
// primary: has a backup (logging channel up or expected); outputs wait for acks.
// live:    went live alone (no backup); outputs are released at once.
// backup:  replays entries; outputs suppressed.
// joining: a fresh replica waiting for the snapshot of a live primary.
// halted:  lost the test-and-set, or was told to stop; does nothing more.

/** One entry on the logging channel. `n` counts from 1 within a generation. */
export interface LogEntry {
  gen: number
  n: number
  body: EntryBody
  /** primary's state hash after this entry, every `hashEvery` entries (divergence check) */
  hash?: string
}

/** Logging channel, primary ⇄ backup. */
export type PeerMsg =
  /** `nextConn`: the primary's next plain-connection number, so a backup that goes live never reuses a `t:<n>` id */
  | { t: 'entries'; gen: number; entries: LogEntry[]; releasedThrough: number; nextConn?: number }
  /**
   * One slice of an entry too large for one message: bytes [at, at + bytes.length) of the entry's
   * codec encoding, `total` bytes in all. The backup assembles entry `n` only when it is the next one.
   */
  | { t: 'entry-part'; gen: number; n: number; at: number; total: number; bytes: Uint8Array; releasedThrough: number; nextConn?: number }
  /** `part`: bytes of entry n + 1 the backup holds so far (progress on an entry sent in parts) */
  | { t: 'ack'; gen: number; n: number; part?: number }
  /**
   * `pauses`, every REPORT_MS (detector.ts, PauseReport): the sender's longest pause of its last minute, and how long it
   * has watched its own ticks, both in ms; a fresh failure detector at the other end takes it for the history it lacks
   */
  | { t: 'heartbeat'; gen: number; from: ReplicaId; last: number; releasedThrough: number; pauses?: [longestMs: number, forMs: number] }
  /**
   * Part `part` of the snapshot (from 0; `done` on the last). Pages are cut to bound the message:
   * `append` says the first page continues the value of the previous part's last page.
   */
  | {
      t: 'snapshot'
      gen: number
      from: ReplicaId
      last: number
      part: number
      done: boolean
      guest: string
      hash: string
      pages: PageWrite[]
      append: boolean
      nextConn?: number
    }
  /** cumulative: the joining replica holds parts 0..part */
  | { t: 'snapshot-ack'; gen: number; from: ReplicaId; part: number }
  /** the backup's state hash differs at entry `n`; the divergence began at or after `since` (the entry after the last one whose hash matched). The backup has halted. */
  | { t: 'diverged'; gen: number; n: number; since: number; primaryHash: string; backupHash: string }

/** Disk-server protocol: block store, test-and-set per generation, fencing. */
export type DiskReq =
  | { id: number; op: 'read'; block: number }
  /**
   * A guest's disk write. (gen, entry, index) is its write id: the entry that produced it and its place among that
   * entry's writes, the same on primary and backup. Writes are retried until answered, so the disk server applies a
   * write only if its id is above the block's last one: a late duplicate never overwrites a newer write.
   * `offset`: the write appends `data` at that offset, which must be where the block ends (else 'out-of-order', to be
   * retried: an earlier write to the block has not arrived); without it `data` replaces the whole block.
   */
  | { id: number; op: 'write'; gen: number; from: ReplicaId; block: number; data: Uint8Array; offset?: number; entry?: number; index?: number }
  | { id: number; op: 'flush' }
  | { id: number; op: 'tas'; gen: number; from: ReplicaId }
  /** begin generation `gen` with this live primary (lab start, restore redundancy). Only the current live replica (or anyone, for gen 1 on an empty store) may ask. */
  /**
   * `recover`: both replicas were down and `from` boots the guest from the disk contents: the disk server begins the next
   * generation with it whoever was live (the operator, or the lab, has checked that no replica is alive).
   */
  | { id: number; op: 'generation'; gen: number; from: ReplicaId; primary: ReplicaId; backup: ReplicaId | null; recover?: boolean }
  | { id: number; op: 'status' }

export type DiskRes =
  | { id: number; ok: true; data?: Uint8Array; winner?: ReplicaId; status?: DiskStatus }
  | { id: number; ok: false; error: 'fenced' | 'tas-lost' | 'stale-generation' | 'bad-request' | 'io' | 'out-of-order'; message: string; winner?: ReplicaId }

export interface DiskStatus {
  gen: number
  live: ReplicaId | null
  backup: ReplicaId | null
  tasWinner: ReplicaId | null
  blocks: number
  writes: number
  fenced: number
}

export interface ReplicaConfig {
  id: ReplicaId
  peer: ReplicaId | null
  mode: ReplicationMode
  /** heartbeat interval, ms */
  heartbeatMs: number
  /** silence on the logging channel longer than this makes the peer suspect, ms */
  suspectMs: number
  /** test-and-set request retried after this long without an answer, ms */
  diskRetryMs: number
  /** primary's logging-channel buffer: unacked entries before the primary stalls */
  maxUnackedEntries: number
  maxUnackedBytes: number
  /** at most this many entries in one 'entries' message (batching under load) */
  batchEntries: number
  /**
   * Bound on one logging-channel message, in approxBytes (size.ts). An entry above it travels in
   * 'entry-part' slices, the snapshot in parts. Keep it under a third of the link's frame limit:
   * approxBytes counts a string's UTF-16 units, and UTF-8 takes up to three bytes for one.
   */
  maxMessageBytes: number
  /** a state hash goes into every `hashEvery`-th entry */
  hashEvery: number
  /** drill experiment 'no-output-rule': outputs leave at once, unprotected (only drills set it) */
  noOutputRule?: boolean
}

/** What the edge tells the protocol. `now` is a monotonic clock in ms. */
export type Event =
  | { t: 'tick'; now: number }
  | { t: 'peer'; now: number; msg: PeerMsg }
  | { t: 'input'; now: number; input: GuestInput }
  | { t: 'disk'; now: number; res: DiskRes }
  | { t: 'io-done'; now: number; id: number } // reserved: completion of a released output the edge tracks
  /** the channel refused a message for good (too large, cannot be encoded): resending it cannot help */
  | { t: 'send-failed'; now: number; msg: PeerMsg; why: string }

/** What the protocol asks the edge to do. */
export type Action =
  /** `to`: the peer the protocol means (during restore redundancy the peer changes mid-batch) */
  | { t: 'send-peer'; msg: PeerMsg; to?: ReplicaId }
  /** `entry`: for a guest's disk write, the entry that produced it (the Output Rule holds it like a reply) */
  | { t: 'send-disk'; req: DiskReq; entry?: number }
  /** release an output to the world (reply to a client; disk writes go out as send-disk) */
  | { t: 'release'; out: Output; entry: number; heldMs: number }
  | { t: 'io'; req: IoRequest }
  | { t: 'role'; role: Role; gen: number; reason: string }
  | { t: 'stall'; on: boolean }
  | { t: 'telemetry'; ev: Telemetry }

/**
 * What set a replica's silence limit, the silence of its peer after which it suspects it (core.ts, silenceLimit): the
 * failure detector's timeout for the detector's own reasons (detector.ts, DetectorLimitBy); or, above it, an allowance
 * (named only from a heartbeat interval up) for a large entry being logged, for the guest's growth of the last minute, or TAIL_MARGIN times this replica's own
 * longest pause; or a snapshot going out, to a joining replica that has answered ('snapshot') or not yet ('joining'). Shown beside a suspicion, so that a failover's length explains itself.
 */
export type SilenceLimitBy = DetectorLimitBy | 'large-entry' | 'guest-growth' | 'own-pause' | 'snapshot' | 'joining'

export interface SilenceLimit {
  ms: number
  by: SilenceLimitBy
  /** the configured suspectMs: the most any of these allows, but for a snapshot going out */
  ceilingMs: number
  /** the failure detector's timeout alone */
  detectorMs: number
  /** how long the detector has learned the peer's heartbeats, and how long before it trusts them alone */
  learnedForMs: number
  learningMs: number
  /** allowed beyond the detector's timeout for large entries and the guest's growth */
  allowanceMs: number
  /** this replica's own longest pause of the last minute */
  ownPauseMs: number
  /** the peer's own report of its pauses, while it stands in for a history shorter than learningMs (detector.ts) */
  report?: PauseReport
}

/** Things worth showing and recording; never needed for correctness. */
export type Telemetry =
  | { k: 'entry'; n: number; bytes: number; input: string }
  | { k: 'ack'; n: number }
  /** `timeoutMs`: the silence limit in force when it suspected; `limit`: what set it (absent from older agents) */
  | { k: 'suspect'; peer: ReplicaId | null; silentMs: number; timeoutMs?: number; limit?: SilenceLimit }
  | { k: 'tas'; gen: number; result: 'won' | 'lost' | 'unreachable' }
  | { k: 'go-live'; gen: number; replayed: number; reemitted: number }
  /** `host`: the backup whose state differs; it has halted. `since`: the divergence began at or after this entry */
  | { k: 'diverged'; host: ReplicaId; n: number; since: number; primaryHash: string; backupHash: string }
  | { k: 'dropped'; what: string; why: string }
  | { k: 'snapshot'; gen: number; bytes: number; direction: 'sent' | 'received' }
