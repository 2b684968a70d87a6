// The VMM's contract with the replica protocol and with guests.
//
// A guest is a deterministic program; everything non-deterministic reaches it as an
// input (logged by the primary, replayed by the backup) or as a value read from a
// device during the handling of an input (clock, random: also logged, as `nondet`).
// Connection ids are strings: `s:<clientId>` for FT Lab sessions (a client that
// reconnects to the new primary keeps its id, so re-emitted replies find it),
// `t:<n>` for plain TCP connections such as redis-cli's.

export type ConnId = string

/** Something the world hands the guest. Logged by the primary as one log entry. */
export type GuestInput =
  | { t: 'boot' }
  | { t: 'open'; conn: ConnId }
  | { t: 'data'; conn: ConnId; data: Uint8Array }
  /**
   * Several connections' bytes of one event-loop turn, in the order they came (each connection at most once): one
   * entry for them all, and one end of input for the guest (kv's group commit: one log write and one barrier for a
   * turn's writes, as Redis fsyncs an event-loop iteration's appends once). The edge sends a lone connection's bytes as
   * 'data'.
   */
  | { t: 'batch'; reads: { conn: ConnId; data: Uint8Array }[] }
  | { t: 'close'; conn: ConnId }
  | { t: 'disk-read'; tag: number; block: number; data: Uint8Array }
  | { t: 'timer'; id: number }
  /** every disk write the guest made before its disk.sync() with this tag is on stable storage */
  | { t: 'disk-synced'; tag: number }

/**
 * An externally visible output. Subject to the Output Rule: held until the backup
 * acknowledges the entry that produced it; suppressed on a backup.
 */
export type Output =
  | { t: 'reply'; conn: ConnId; data: Uint8Array }
  | { t: 'close'; conn: ConnId }
  /** `offset`: append `data` there (the block must end at it); without it `data` replaces the whole block */
  | { t: 'disk-write'; block: number; data: Uint8Array; offset?: number }
  /** a barrier after the guest's earlier disk writes: its completion comes back as the input 'disk-synced' */
  | { t: 'disk-sync'; tag: number }

/**
 * A request from the guest to its devices that is not visible outside: performed at
 * once by a primary, ignored by a backup, re-issued by a backup that goes live
 * (see Vmm.pendingIo).
 */
export type IoRequest = { t: 'disk-read'; tag: number; block: number } | { t: 'timer-set'; id: number; ms: number } | { t: 'timer-cancel'; id: number }

/** One non-deterministic value consumed by the guest while it handled an input. */
export type Nondet = { d: 'clock'; v: number } | { d: 'random'; v: number } | { d: 'replica'; v: string }

/** A memory page change, for state-transfer mode. `null` deletes the page. */
export type PageWrite = [key: string, value: string | null]

/**
 * A page changed in part, for state-transfer mode: its new value is the first `prefix` and the last `suffix` UTF-16
 * units of its value before the entry, with `middle` between. Sent instead of the whole page when smaller.
 */
export type PageDiff = [key: string, prefix: number, suffix: number, middle: string]

/** What a log entry carries, by replication mode. */
export type EntryBody =
  | {
      kind: 'input'
      input: GuestInput
      nondet: Nondet[]
      /** the primary refused this input (see ExecResult.refused): the backup applies the refusal without running the guest */
      refused?: Refusal
    }
  /**
   * `pages` whole or deleted, `diffs` changed in part (absent: none); each key at most once in the two. `synced`: the
   * entry is the completion of that disk barrier, and the backup first releases what the barrier held itself (its page
   * goes, the outputs held with it come first, before `outputs`), as the primary's VMM did before the guest ran; the
   * pages and diffs are what changed after that.
   */
  | { kind: 'state'; pages: PageWrite[]; outputs: Output[]; io: IoRequest[]; diffs?: PageDiff[]; synced?: number }

export type ReplicationMode = 'rsm' | 'state-transfer'

/**
 * Why the VMM refused an input on the primary: the guest ran out of stack, whose depth differs
 * between hosts, so the backup might not. A refused input has no effect on the guest's state;
 * its connection (if any) gets an error and is closed, since the guest lost bytes of its stream.
 */
export type Refusal = 'stack-overflow'

export interface ExecResult {
  body: EntryBody
  outputs: Output[]
  io: IoRequest[]
  /** set when the guest threw while handling the input (its changes were undone); for telemetry */
  fault?: string
  /** set when the VMM refused the input (fault says why); the entry body carries it so the backup does the same */
  refused?: Refusal
  /**
   * The pending disk barriers this input kept outputs for (nic.send or nic.close with `afterSync`). The replica
   * protocol notes which entry last did, so that what a barrier kept may leave as soon as that entry is acknowledged
   * and the barrier complete, without waiting for the completion's own entry. Optional: without it, a barrier's
   * outputs wait for the completion's entry.
   */
  heldFor?: number[]
  /**
   * A barrier's completion: the first `outputs` of `outputs` are what the completed barrier and the pending ones before
   * it (`barriers`) kept, in order; the guest's own outputs follow.
   */
  released?: { outputs: number; barriers: number[] }
}

export interface Snapshot {
  guest: string
  pages: PageWrite[]
  hash: string
}

/** The devices' source of non-determinism on the primary: real on hosts, seeded in the simulator. */
export interface Entropy {
  /** wall clock, ms since the epoch */
  now(): number
  /** uniform 32-bit unsigned integer */
  u32(): number
  /**
   * What the replica running the guest knows of itself and the replication (role, generation, logging-channel lag) as
   * `field:value` lines, for a guest's INFO. Optional: without it the guest reads ''. Logged like the clock.
   */
  replica?(): string
}

/** A restore under way: see Vmm.restoreInParts. */
export interface SnapshotLoader {
  pages(pages: PageWrite[]): void
  finish(hash: string): void
}

/**
 * The VMM as the replica protocol sees it. Implementations must be deterministic given
 * the same sequence of execute/replay calls and the same Entropy answers.
 */
export interface Vmm {
  readonly guestName: string
  readonly mode: ReplicationMode
  /** Primary: run the guest on one input, recording every non-deterministic value read. */
  execute(input: GuestInput): ExecResult
  /**
   * Backup: apply one entry (replay the input, or write the pages). Outputs come back so the caller can suppress or keep them.
   * Throws DivergenceError when this replica cannot reproduce the entry (other non-deterministic reads, or a stack
   * overflow the primary did not have): the replica must stop following this primary.
   */
  replay(body: EntryBody): { outputs: Output[]; io: IoRequest[]; fault?: string }
  /** Hash of the whole guest state; equal on primary and backup after the same entry. */
  stateHash(): string
  /**
   * The guest's whole state, to ship to a new backup. Also restarts this side's guest realm from it: JS
   * state a guest keeps outside memory pages (closures, globals) would otherwise survive here and be
   * fresh on the restored side. Call it only to ship a snapshot; for sizes use memoryBytes().
   */
  snapshot(): Snapshot
  /** Replace the guest's state with a snapshot, in a fresh guest realm. */
  restore(snapshot: Snapshot): void
  /**
   * restore() a slice at a time, for a snapshot that arrives in parts: the guest's state is cleared now, each
   * call of pages() loads the next pages (in the snapshot's order, each page whole), finish() starts the fresh
   * realm and checks the hash (throwing as restore() does). A joining replica loads each part as it comes,
   * so no single step holds its event loop for the whole guest (a million keys took seconds in one step).
   */
  restoreInParts?(guest: string): SnapshotLoader
  /** I/O the guest is still waiting on (disk reads without a result, armed timers). */
  pendingIo(): IoRequest[]
  /** tags of the guest's disk.sync() barriers whose 'disk-synced' has not been applied yet (optional: VMMs whose guests never sync) */
  pendingSyncs?(): number[]
  /** Is this connection known to the guest (open and not closed)? */
  isOpen(conn: ConnId): boolean
  /** Every connection the guest holds open, in a stable order. */
  openConns(): ConnId[]
  /** Size of the guest's memory in bytes (keys + values), for the UI and for bounds. */
  memoryBytes(): number
  /**
   * Drill experiment 'read-fast-path' only: the guest's answer to the one command in `data` on `conn` now
   * (its Guest.query handler), without it becoming an input. The guest runs on the current state and every
   * change it makes is undone, so the state (and its hash) is as before. Null unless the answer is exactly one
   * reply to `conn` and nothing else (no other output, no I/O, no fault), or when the guest does not know
   * `conn` or has no query handler: the caller then logs the input.
   * Optional: a VMM without it has no fast path.
   */
  query?(conn: ConnId, data: Uint8Array): Uint8Array | null
}
