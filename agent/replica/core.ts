// The replica protocol: primary/backup replication in the style of VMware FT, written as a
// deterministic state machine (the shape of etcd's raft package). Events go in through
// step(); actions come out of takeActions(). Nothing in here touches a socket, a timer,
// the wall clock or a random source: `now` arrives with every event. That is what lets the
// same code run on hosts (behind the edge, agent/replica/edge.ts), in unit tests that feed
// it one event at a time, and in the seeded simulator (sim/) under a hostile network.
//
// The lecture's ideas, and where they live below:
//   logging channel ............ the primary's `unacked` entries, flush(), onAck(); the backup's onEntries()
//   Output Rule ................ `held` outputs, releaseHeld(), outputRuleAllows(); what a disk barrier kept is licensed
//                                by the entries that kept it, not by the completion's (noteBarriers())
//   backup output suppressed ... applyEntry() keeps outputs instead of releasing them
//   failure detection .......... onTick(): silence longer than the detector's learned timeout (detector.ts, at most
//                                suspectMs; silenceLimit() allows for large entries, a growing guest and this
//                                replica's own pauses), or (primary) an unacked entry or snapshot
//                                part waiting that long, makes the peer suspect; so does a message the channel refused
//   bounded messages ........... flush() bounds 'entries' by maxMessageBytes and slices larger entries (parts.ts);
//                                the snapshot goes in parts (SnapshotCutter), SNAPSHOT_WINDOW at a time
//   divergence ................. applyEntry(): at the first state-hash mismatch the backup reports and halts
//   go live, test-and-set ...... suspect(), onTasAnswer(), goLive(); the loser halts
//   generation, fencing ........ every message and disk request carries `gen`; other generations are dropped
//   duplicate output ........... a backup going live re-emits outputs after the primary's `releasedThrough`
//   restore redundancy ......... beginRestore(), onRegistered(), the snapshot handshake; a joining replica answers
//                                heartbeats with what it holds, so a slow snapshot is judged by progress, not silence
import type { ConnId, ExecResult, GuestInput, Output, SnapshotLoader, Vmm } from '../vmm/types.js'
import type { Action, DiskReq, DiskRes, Event, LogEntry, PeerMsg, ReplicaConfig, ReplicaId, Role, SilenceLimit, SilenceLimitBy, Telemetry } from './types.js'
import { approxBytes, describeInput, entryBytes } from './size.js'
import { EntryAssembly, SnapshotAssembly, SnapshotCutter, entryParts } from './parts.js'
import { FailureDetector, historyMs, REPORT_MS, TAIL_MARGIN } from './detector.js'
import { WindowExtreme } from './window-extreme.js'

/** duplicate acks naming one gap that make the primary resend it at once (the simulator's links reorder: one is not proof of loss) */
const DUP_ACKS_TO_RESEND = 2
/** snapshot parts in flight at once: enough to fill a fast link, little enough to hold in memory */
const SNAPSHOT_WINDOW = 4
/**
 * The largest snapshot part (the logging channel's message bound if that is smaller): the joining replica decodes
 * and loads one part per step, and a 4 MiB part (100,000 small keys) held its loop up to 1.4 s on a busy machine.
 */
export const SNAPSHOT_PART_BYTES = 512 * 1024
/**
 * Suspicion timeouts a restoring primary waits for the next snapshot part to be acknowledged by a
 * joining replica that answers its heartbeats. It is alive and the link carries messages, and parts
 * are resent every half timeout: a slow link or a busy new host gets several chances before the
 * primary gives up and goes on alone. Outputs are held meanwhile, so the wait stays bounded.
 */
const SNAPSHOT_PATIENCE = 4
/**
 * Bytes of a log entry either replica handles per millisecond, at the least, on a busy host: the primary runs the
 * input, encodes and authenticates it; the backup decodes and replays it. A peer that has lately handled an entry
 * of B bytes may be silent for about B / WORK_BYTES_PER_MS more than the detector learned while values were
 * small. The scale sweep's 256 KiB point showed it: silences of 84-200 ms against learned limits of 73-103 ms,
 * with neither event loop stalled 100 ms. Small entries add nothing (a 45-byte SET, 0 ms).
 */
export const WORK_BYTES_PER_MS = 2000
/**
 * Bytes of guest growth per millisecond of garbage-collection pause allowed for, while the detector's history is
 * younger than the growth: a guest grown by 16 MB (560,000 small keys) within the last minute allows 500 ms.
 */
export const HEAP_BYTES_PER_MS = 32_000
/** How long the largest recent entry keeps its allowance: large values tend to come in runs. */
export const WORK_WINDOW_MS = 10_000
const GUEST_SAMPLE_MS = 100

export const defaultReplicaConfig = (id: string, peer: string | null): ReplicaConfig => ({
  id,
  peer,
  mode: 'rsm',
  heartbeatMs: 50,
  suspectMs: 300,
  diskRetryMs: 100,
  maxUnackedEntries: 1024,
  maxUnackedBytes: 4 * 1024 * 1024,
  batchEntries: 64,
  maxMessageBytes: 4 * 1024 * 1024,
  hashEvery: 32
})

export interface CoreStatus {
  id: ReplicaId
  role: Role
  gen: number
  peer: ReplicaId | null
  /** primary: last entry executed; backup: last entry applied */
  lastEntry: number
  /** primary: the backup's cumulative ack; backup: the last ack it sent */
  acked: number
  unackedEntries: number
  unackedBytes: number
  heldOutputs: number
  stalled: boolean
  /** primary: all outputs of entries up to here have left; backup: the primary's last report */
  releasedThrough: number
  peerSuspected: boolean
  /** inputs waiting for room in the logging channel */
  queuedInputs: number
  /** the disk server has confirmed this generation (a primary releases nothing before) */
  genConfirmed: boolean
  /** a restore-redundancy handshake is under way */
  restoring: boolean
  /** the silence after which the peer is suspect now: the failure detector's learned timeout (at most suspectMs) */
  suspectAfterMs: number
  /** what set it */
  suspectLimit: SilenceLimit
}

/** An entry the backup has not acknowledged yet, kept for resending. */
interface Unacked {
  entry: LogEntry
  bytes: number
}

/** An output waiting for the Output Rule. */
interface Held {
  out: Output
  /**
   * the entry whose acknowledgement lets it leave: its own, or for what a completed disk barrier kept, the last entry
   * that kept an output for it (noteBarriers); `held` stays in the order outputs were produced, which this may not follow
   */
  entry: number
  at: number
  /** a disk write's place among its entry's writes: with gen and entry, its write id */
  index?: number
}

/** Outputs a backup suppressed, kept in case it goes live before the primary released them. */
interface Kept {
  n: number
  outputs: Output[]
  at: number
}

interface InFlightWrite {
  gen: number
  entry: number
  req: DiskReq
  sentAt: number
  /** sends so far: the retry interval doubles with each */
  attempts: number
  /**
   * An append (a write at an offset) not sent yet because a whole-block write of its block is unanswered: the disk
   * server takes an append where the block ends, and until that write lands the block may still hold older bytes of
   * the same length (a log restarted by FLUSHALL), which the append would extend. Sent once no such write is left.
   */
  waiting?: true
  /** times the disk server answered `out-of-order`: counted so that one that never stops is reported, once */
  refusals?: number
}

/**
 * An append refused as out of order this many times, with no earlier write to its block still unanswered, is
 * reported: nothing this replica still sends will fill the hole (with the retry interval doubling up to the
 * suspicion timeout, about 5 s at the defaults). It is still retried: a restored disk may yet take it.
 */
const OUT_OF_ORDER_REPORT_AFTER = 10

/** A guest's disk.sync() barrier, released: it completes once the writes released before it are answered. */
interface Sync {
  gen: number
  entry: number
  tag: number
  /**
   * the highest write id in flight when it was released: it completes once no write up to this one is in flight (ids
   * grow with each write and writesInFlight keeps them in that order, so the oldest in flight is its first key)
   */
  after: number
}

/** A snapshot on its way to a new backup. */
interface SnapshotOut {
  cutter: SnapshotCutter
  /** sent, not yet acknowledged, in part order */
  inFlight: Extract<PeerMsg, { t: 'snapshot' }>[]
  /** approxBytes of the whole snapshot */
  bytes: number
  sentAt: number
  /** since when no part has been acknowledged (or since the snapshot began) */
  progressAt: number
  /** the joining replica has answered at least once */
  heard: boolean
}

interface DiskCall {
  req: DiskReq
  sentAt: number
}

/** Registration of a generation at the disk server: at start, or to restore redundancy. */
interface Registration extends DiskCall {
  gen: number
  /** recover: boot from the disk server's contents after both replicas were down */
  purpose: 'start' | 'restore' | 'recover'
  peer: ReplicaId | null
}

export class ReplicaCore {
  private readonly cfg: ReplicaConfig
  private readonly vmm: Vmm
  private role: Role
  private gen: number
  private peer: ReplicaId | null
  private now: number
  private actions: Action[] = []

  // ---- logging channel, both sides
  private lastEntry = 0
  private acked = 0
  private releasedThrough = 0
  private lastHeard: number
  private lastSent: number
  /** when this replica last told its peer its own pauses (detector.ts, PauseReport) */
  private lastReported: number

  // ---- primary
  private unacked: Unacked[] = []
  private unackedBytes = 0
  /** highest entry sent on the channel; reset to `acked` to resend (go-back-n) */
  private sentThrough = 0
  private resendAt = 0
  /** the backup holds the state entry 1 starts from (false until a joining replica acks its snapshot) */
  private channelReady: boolean
  /** the disk server knows this generation; outputs wait for it as well as for the ack */
  private genConfirmed: boolean
  private held: Held[] = []
  private queue: GuestInput[] = []
  private stalled = false
  /** disk writes released but not yet accepted by the disk server, by request id */
  private writesInFlight = new Map<number, InFlightWrite>()
  /** how many of writesInFlight are whole-block writes, per block: what holds an append to the block back */
  private wholeInFlight = new Map<number, number>()
  private syncs: Sync[] = []
  /** the id of the last disk write released (see Sync.after) */
  private lastWriteId = 0
  /** barriers complete: one 'disk-synced' input, of the newest, runs when the actions are next taken (completeBarriers) */
  private synced: number[] = []
  /** pending disk barriers: the last entry that created one or kept an output for it (see noteBarriers) */
  private barrierEntry = new Map<number, { gen: number; n: number }>()
  private snapshotOut: SnapshotOut | null = null
  /**
   * Since when the oldest unacked entry has waited without progress (an ack, or a slice of a
   * large entry reaching the backup). A backup that answers but never acks (it hears nothing
   * from us: a one-way cut; or it cannot take what we send) is as good as silent.
   */
  private progressAt = 0
  /** bytes of entry acked + 1 the backup reported holding (entries sent in slices) */
  private partProgress = 0
  /** the gap (generation, entry and byte offset the backup stands at) the last duplicate acks named, and how many */
  private dupGap = ''
  private dupAcks = 0

  // ---- backup
  private kept: Kept[] = []
  /** entries that arrived ahead of a gap: applied once the gap is filled, never acked before */
  private early = new Map<number, LogEntry>()
  /** the next entry, arriving in slices */
  private assembly: EntryAssembly | null = null
  private diverged = false
  /** the last entry whose state hash matched the primary's: a divergence began after it */
  private verifiedThrough = 0
  /** joining: the snapshot parts so far; backup: the last part, to re-ack a resent one */
  private snapshotIn: SnapshotAssembly | null = null
  /** the largest entry of the last WORK_WINDOW_MS, and when: see workAllowance() */
  private work = { bytes: 0, at: -Infinity }
  /** the guest's size over the detector's history span, for its smallest: see growthAllowance() */
  private readonly guestSizes: WindowExtreme
  /** joining: the VMM's restore under way, fed each part as it comes (null where the VMM restores only whole) */
  private snapshotLoader: SnapshotLoader | null = null
  private snapshotParts = 0

  // ---- failure detection and the disk server
  private suspected = false
  /** how long a silence of the peer may last: learned from its messages (detector.ts) */
  private readonly detector: FailureDetector
  /**
   * A backup holds a guest worth going live with only once it applied an entry (the boot
   * entry first of all) or restored a snapshot. Until then it never suspects its primary.
   */
  private holdsState = false
  private tas: DiskCall | null = null
  private registration: Registration | null = null
  private nextDiskId = 1
  private nextConn = 1

  constructor(cfg: ReplicaConfig, vmm: Vmm, init: { role: 'primary' | 'backup' | 'joining' | 'recover'; gen: number; now: number }) {
    checkConfig(cfg)
    if (!Number.isSafeInteger(init.gen) || init.gen < 1) throw new Error(`ReplicaCore ${cfg.id}: generation must be a positive integer, got ${init.gen}`)
    // The replication mode is the VMM's (it decides what an entry carries); cfg.mode is informational.
    this.cfg = cfg
    this.vmm = vmm
    this.role = init.role === 'recover' ? 'live' : init.role
    this.gen = init.gen
    this.peer = init.role === 'recover' ? null : cfg.peer
    this.now = init.now
    this.lastHeard = init.now
    this.lastSent = init.now
    this.lastReported = init.now
    this.detector = new FailureDetector({ heartbeatMs: cfg.heartbeatMs, ceilingMs: cfg.suspectMs }, init.now)
    this.guestSizes = new WindowExtreme(historyMs(cfg.heartbeatMs), 'min')
    this.channelReady = init.role === 'primary'
    this.genConfirmed = false
    this.emitRole(`start as ${init.role} of generation ${init.gen}`)
    if (init.role === 'recover') {
      // Both replicas were down: this one boots the guest from what the disk server holds, alone, once the disk
      // server has begun the new generation with it. Until then the boot and every input wait.
      this.holdsState = true
      this.register(init.gen, 'recover', null)
      this.queue.push({ t: 'boot' })
      this.setStalled(true)
      return
    }
    if (init.role === 'primary') {
      // Register first: the disk server must know who may write before any output leaves.
      this.register(init.gen, 'start', this.peer)
      this.execute({ t: 'boot' })
    }
  }

  // ======================================================================== API

  step(ev: Event): void {
    if (this.role === 'halted') return
    if (typeof ev?.now === 'number' && ev.now > this.now) this.now = ev.now
    this.dispatch(ev)
  }

  /**
   * Completed barriers become one input, of the newest: it completes every barrier before it too (a barrier follows
   * every earlier write, so they are durable as well). An input like any other: logged, replayed by the backup. Run
   * when the actions are taken, so that a disk server's answers to a whole group commit, stepped one by one in a
   * turn, make one entry rather than one per barrier (each run through the guest on both replicas).
   */
  private completeBarriers(): void {
    if (this.synced.length === 0 || (this.role !== 'primary' && this.role !== 'live')) return
    let tag = this.synced[0]
    for (const t of this.synced) if (t > tag) tag = t
    this.synced = []
    this.onInput({ t: 'disk-synced', tag })
  }

  private dispatch(ev: Event): void {
    switch (ev?.t) {
      case 'tick':
        return this.onTick()
      case 'peer':
        return this.onPeer(ev.msg)
      case 'input':
        return this.onInput(ev.input)
      case 'disk':
        return this.onDisk(ev.res)
      case 'io-done':
        return
      case 'send-failed':
        return this.onSendFailed(ev.msg, ev.why)
      default:
        this.telemetry({ k: 'dropped', what: `event ${JSON.stringify((ev as { t?: unknown })?.t)}`, why: 'unknown event type' })
    }
  }

  /** Drains the pending actions, in order. Entries go out here, so inputs stepped together travel together. */
  takeActions(): Action[] {
    this.completeBarriers()
    this.flush()
    const out = this.actions
    this.actions = []
    return withoutSupersededWrites(out)
  }

  status(): CoreStatus {
    const limit = this.silenceLimitWhy()
    return {
      id: this.cfg.id,
      role: this.role,
      gen: this.gen,
      peer: this.peer,
      lastEntry: this.lastEntry,
      acked: this.acked,
      unackedEntries: this.unacked.length,
      unackedBytes: this.unackedBytes,
      heldOutputs: this.held.length,
      stalled: this.stalled,
      releasedThrough: this.releasedThrough,
      peerSuspected: this.suspected,
      queuedInputs: this.queue.length,
      genConfirmed: this.genConfirmed,
      restoring: this.registration?.purpose === 'restore' || this.snapshotOut !== null,
      suspectAfterMs: limit.ms,
      suspectLimit: limit
    }
  }

  /**
   * Restore redundancy: this live replica begins generation `newGen` with `peer` as its
   * backup. Register at the disk server, then ship a snapshot; the peer must be running as
   * 'joining' for `newGen`. Throws if this replica is not live or a restore is under way.
   */
  beginRestore(peer: string, newGen: number, now: number): void {
    const who = `restore redundancy on ${this.cfg.id}`
    if (this.role !== 'live') throw new Error(`${who}: this replica is ${this.role} in generation ${this.gen}; only a live replica can take a new backup`)
    if (this.registration) throw new Error(`${who}: a restore onto ${this.registration.peer} (generation ${this.registration.gen}) is already under way`)
    if (typeof peer !== 'string' || peer.length === 0 || peer === this.cfg.id)
      throw new Error(`${who}: the new backup must be another replica, got ${JSON.stringify(peer)}`)
    if (!Number.isSafeInteger(newGen) || newGen <= this.gen) throw new Error(`${who}: the new generation must be an integer above ${this.gen}, got ${newGen}`)
    if (now > this.now) this.now = now
    this.register(newGen, 'restore', peer)
    this.setStalled(true)
  }

  /** A fresh id for a plain TCP connection. The counter travels with the entries, so a backup that goes live never reuses one. */
  newConnId(): ConnId {
    return `t:${this.nextConn++}`
  }

  /**
   * The Output Rule: may an output produced by entry `n` leave now? Protected so that the
   * simulator can wire in a deliberately broken rule and prove its checker catches it.
   */
  protected outputRuleAllows(n: number, _out?: Output): boolean {
    if (this.cfg.noOutputRule === true) return true
    return this.genConfirmed && n <= this.acked
  }

  // ================================================================ time passes

  private onTick(): void {
    // a late tick means this replica was paused: the peer's messages may be waiting unread behind it
    const onTime = this.detector.tick(this.now)
    this.noteGuestSize()
    // A joining replica speaks only when spoken to: while this primary was too busy to send it parts (cutting, encoding
    // and authenticating megabytes of snapshot: 300-1000 ms per window at 560,000 keys on a busy machine) its silence
    // is ours, and so is its lack of progress. The restore at that size failed three times in a row, the joining
    // replica never stalled.
    if (!onTime && this.snapshotOut) {
      this.lastHeard = Math.max(this.lastHeard, this.now - this.cfg.heartbeatMs)
      this.snapshotOut.progressAt = Math.max(this.snapshotOut.progressAt, this.now - this.cfg.heartbeatMs)
    }
    this.retryDisk()
    if (this.role !== 'primary' && this.role !== 'backup') return
    // A backup that never got an entry from its primary has a guest that has not even
    // booted: it waits rather than take over with an empty guest.
    const mayJudge = (this.role === 'primary' || this.holdsState) && onTime
    if (mayJudge && !this.suspected && this.now - this.lastHeard > this.silenceLimit()) this.suspect()
    if (this.role === 'primary' && !this.suspected && this.channelReady && this.unacked.length > 0 && this.now - this.progressAt > this.progressLimit()) {
      this.telemetry({
        k: 'dropped',
        what: `the logging channel to ${this.peer}`,
        why: `entry ${this.acked + 1} unacknowledged for ${this.now - this.progressAt}ms although the backup answers`
      })
      this.suspect()
    }
    const snap = this.snapshotOut
    if (this.role === 'primary' && !this.suspected && snap && this.now - snap.progressAt > this.snapshotProgressLimit()) {
      // the joining replica answers (its heartbeat answers say what it holds) but takes no part: as good as dead
      this.telemetry({
        k: 'dropped',
        what: `the snapshot to ${this.peer}`,
        why: `part ${snap.inFlight[0]?.part ?? 0} unacknowledged for ${this.now - snap.progressAt}ms although the joining replica answers`
      })
      this.suspect()
    }
    if (this.role === 'primary') {
      this.maybeResend()
      this.maybeResendSnapshot()
    }
    // a heartbeat also goes, with the report of this replica's own pauses, every REPORT_MS however busy the channel
    if (this.now - this.lastSent >= this.cfg.heartbeatMs || this.now - this.lastReported >= REPORT_MS) this.sendHeartbeat()
  }

  /**
   * While a snapshot goes out the new backup says little: it answers heartbeats, but restores the
   * whole guest once the last part is in, which takes time in proportion to the guest (about
   * 10 MB/s assumed, a slow disk-less host). Without the allowance a large restore would always
   * look like a death. A joining replica that answers but acknowledges no part for longer than
   * snapshotProgressLimit() is given up on all the same.
   */
  private silenceLimit(): number {
    // A joining replica that has not answered once is a process still starting (a fresh Node, its modules, its first
    // connection): under CI's load one stayed silent 801 ms and the restore gave up on a replica that was fine. Until it
    // answers it has the patience a slow snapshot part gets; the outputs held meanwhile keep the wait bounded.
    if (this.snapshotOut && !this.snapshotOut.heard) return this.snapshotProgressLimit()
    if (this.snapshotOut) return this.cfg.suspectMs + Math.ceil(this.snapshotOut.bytes / 10_000)
    const learned = this.detector.timeoutMs()
    return Math.max(learned, Math.min(this.cfg.suspectMs, Math.max(learned + this.workAllowance() + this.growthAllowance(), this.pauseFloor())))
  }

  /** The silence limit and what set it (types.ts, SilenceLimit): told with a suspicion and in the status. */
  silenceLimitWhy(): SilenceLimit {
    const d = this.detector
    const work = this.workAllowance()
    const growth = this.growthAllowance()
    const ownPauseMs = d.ownPauseMs()
    const report = d.peerReport()
    const ms = this.silenceLimit()
    const detectorMs = d.timeoutMs()
    let by: SilenceLimitBy = d.limitBy()
    if (this.snapshotOut) by = this.snapshotOut.heard ? 'snapshot' : 'joining'
    else if (ms > detectorMs) {
      if (this.pauseFloor() >= detectorMs + work + growth) by = 'own-pause'
      // an allowance of less than a heartbeat (a guest that grew by a few keys) does not hide why the detector waits
      else if (work + growth >= this.cfg.heartbeatMs) by = work >= growth ? 'large-entry' : 'guest-growth'
    }
    return {
      ms,
      by,
      ceilingMs: this.cfg.suspectMs,
      detectorMs,
      learnedForMs: d.learnedForMs(),
      learningMs: d.learningMs(),
      allowanceMs: work + growth,
      ownPauseMs,
      ...(report !== null ? { report } : {})
    }
  }

  /**
   * Both replicas hold the same guest, and while it grows its garbage collections grow faster than the detector's
   * minute of history learns them: filling the kv guest at 25,000 keys/s, both replicas stalled 290-330 ms at 550,000
   * keys against learned limits of 228 and 509 ms, and a primary parsing a pipelined fill stalls longer than its
   * backup replaying it, so neither replica's own pauses (pauseFloor) speak for the other's. The peer may be silent
   * guest growth of the last minute / HEAP_BYTES_PER_MS more. A guest that has kept its size for a minute allows
   * nothing: the history has met its collections by then. (The model before, the guest's size, held the timeout at the
   * ceiling from about 800,000 small keys on, where the agents' longest collections took 20-75 ms: a failover there
   * took 900 ms.)
   */
  private growthAllowance(): number {
    const smallest = this.guestSizes.value()
    return smallest === undefined ? 0 : Math.floor(Math.max(0, this.vmm.memoryBytes() - smallest) / HEAP_BYTES_PER_MS)
  }

  /** Samples the guest's size for growthAllowance, on every tick. */
  private noteGuestSize(): void {
    const bytes = this.vmm.memoryBytes()
    const last = this.guestSizes.newest()
    // a growing guest is sampled every GUEST_SAMPLE_MS, not every tick: the queue stays short
    if (last !== undefined && last.value <= bytes && this.now - last.at < GUEST_SAMPLE_MS) this.guestSizes.forget(this.now)
    else this.guestSizes.add(this.now, bytes)
  }

  /**
   * Both replicas hold the same guest and run the same inputs, so a garbage collection that stopped this replica stops
   * its peer for about as long, often at the same moment: the replica that resumes first must not take the other's
   * pause for a death. The peer's silence may last TAIL_MARGIN times this replica's own longest pause of the last
   * minute, as the learned timeout is TAIL_MARGIN times the peer's longest silence: a floor under the timeout, not an
   * addition to it (added, a restored replica's own 40-60 ms pauses made failovers 110-180 ms against 60-80).
   */
  private pauseFloor(): number {
    return Math.ceil(TAIL_MARGIN * this.detector.ownPauseMs())
  }

  /** A large entry was logged (primary) or received (backup): both replicas have work of that size to do. */
  private noteWork(bytes: number): void {
    if (bytes >= this.work.bytes || this.now - this.work.at > WORK_WINDOW_MS) this.work = { bytes, at: this.now }
  }

  /** The silence beyond the learned timeout that the largest entry of the last WORK_WINDOW_MS allows for. */
  private workAllowance(): number {
    return this.now - this.work.at > WORK_WINDOW_MS ? 0 : Math.floor(this.work.bytes / WORK_BYTES_PER_MS)
  }

  private snapshotProgressLimit(): number {
    return SNAPSHOT_PATIENCE * this.cfg.suspectMs + Math.ceil((this.snapshotOut?.bytes ?? 0) / 10_000)
  }

  private sendHeartbeat(): void {
    // entries about to be flushed say everything a heartbeat would
    if (this.role === 'primary' && this.channelReady && this.sentThrough < this.lastEntry) return
    const hb: Extract<PeerMsg, { t: 'heartbeat' }> = {
      t: 'heartbeat',
      gen: this.gen,
      from: this.cfg.id,
      last: this.lastEntry,
      releasedThrough: this.reportedReleased()
    }
    if (this.now - this.lastReported >= REPORT_MS) {
      const r = this.detector.ownReport(this.now)
      hb.pauses = [Math.round(r.longestMs), Math.round(r.forMs)]
      this.lastReported = this.now
    }
    this.sendPeer(hb)
  }

  // ============================================================ primary: inputs

  private onInput(input: GuestInput): void {
    if (this.role !== 'primary' && this.role !== 'live') {
      this.telemetry({ k: 'dropped', what: `input ${describeInputSafe(input)}`, why: `a ${this.role} replica does not execute inputs` })
      return
    }
    if (this.queue.length > 0 || this.inputsWait()) {
      // Stalled: the edge has stopped reading client sockets; what still arrives waits here.
      // Only client data may be refused (the client retries); timers, disk results, opens
      // and closes are bounded by the guest itself and must not be lost.
      if ((input.t === 'data' || input.t === 'batch') && this.queue.length >= this.cfg.maxUnackedEntries) {
        this.telemetry({ k: 'dropped', what: `input ${describeInput(input)}`, why: 'logging channel full and input queue full' })
        return
      }
      this.queue.push(input)
      this.setStalled(true)
      return
    }
    this.execute(input)
  }

  /** Run one input on the guest: it becomes log entry n; its outputs wait for the Output Rule. */
  private execute(input: GuestInput): void {
    const res = this.vmm.execute(input)
    const n = ++this.lastEntry
    const entry: LogEntry = { gen: this.gen, n, body: res.body }
    if (this.role === 'primary' && n % this.cfg.hashEvery === 0) entry.hash = this.vmm.stateHash()
    const bytes = entryBytes(entry)
    this.noteWork(bytes)
    this.telemetry({ k: 'entry', n, bytes, input: describeInput(input) })
    // the VMM refused the input (a guest stack overflow, whose depth differs between hosts); the entry carries the refusal
    if (res.refused !== undefined) this.telemetry({ k: 'dropped', what: `input ${describeInput(input)} (entry ${n})`, why: res.fault ?? res.refused })
    // Device requests are invisible to the world: performed at once, re-issued by a backup that goes live.
    for (const req of res.io) this.actions.push({ t: 'io', req })
    const outs = withWriteIndex(res.outputs, n, this.now)
    const licence = this.noteBarriers(res, n)
    if (licence < n) for (let i = 0; i < res.released!.outputs; i++) outs[i].entry = licence
    if (this.role === 'live') {
      for (const h of outs) this.release(h)
      this.releasedThrough = n
      return
    }
    if (this.unacked.length === 0) this.progressAt = this.now
    this.unacked.push({ entry, bytes })
    this.unackedBytes += bytes
    this.held.push(...outs)
    if (this.channelFull()) this.setStalled(true)
    this.releaseHeld()
  }

  /**
   * Notes which entry created or last kept outputs for each pending disk barrier, and, at a barrier's completion (entry
   * n), returns the entry whose acknowledgement licenses what the completed barriers kept: the last entry that created
   * one of them or kept an output for it. Those outputs were produced by such entries, and only leave once the
   * barrier's writes are durable; the completion's own entry adds nothing to them that the backup needs first. A backup
   * that goes live without the completion re-issues the barrier and sends the same bytes again (to connections that
   * ended with the old primary, or to clients that drop duplicates), as for any output after `releasedThrough`. So a
   * write's reply waits for one round trip to the backup and one to the disk server, not a second one to the backup.
   * n itself where a barrier's entry is unknown (created in an earlier generation, or by a VMM that does not say).
   */
  private noteBarriers(res: ExecResult, n: number): number {
    let licence = 0
    if (res.released !== undefined) {
      for (const tag of res.released.barriers) {
        const b = this.barrierEntry.get(tag)
        this.barrierEntry.delete(tag)
        licence = b === undefined || b.gen !== this.gen ? n : Math.max(licence, b.n)
      }
      if (res.released.barriers.length === 0) licence = n
    }
    for (const out of res.outputs) if (out.t === 'disk-sync') this.barrierEntry.set(out.tag, { gen: this.gen, n })
    // (a barrier of an earlier generation becomes known here too: what that generation kept for it is in the snapshot
    // the backup acknowledged before any entry)
    for (const tag of res.heldFor ?? []) this.barrierEntry.set(tag, { gen: this.gen, n })
    return res.released === undefined ? n : licence
  }

  private channelFull(): boolean {
    return this.role === 'primary' && (this.unacked.length >= this.cfg.maxUnackedEntries || this.unackedBytes >= this.cfg.maxUnackedBytes)
  }

  /**
   * Inputs wait while the logging channel is full, and while a restore is being registered:
   * the live replica pauses, so that nothing it outputs in between carries the generation the
   * disk server is about to retire (such a write would be fenced and lost).
   */
  private inputsWait(): boolean {
    return this.channelFull() || this.registration?.purpose === 'restore' || this.registration?.purpose === 'recover'
  }

  private setStalled(on: boolean): void {
    if (this.stalled === on) return
    this.stalled = on
    this.actions.push({ t: 'stall', on })
  }

  /** Run queued inputs while the channel has room; resume reading once it is empty. */
  private drainQueue(): void {
    while (this.queue.length > 0 && !this.inputsWait()) this.execute(this.queue.shift()!)
    if (this.queue.length === 0 && !this.inputsWait()) this.setStalled(false)
  }

  // ===================================================== primary: logging channel

  private flush(): void {
    if (this.role !== 'primary' || !this.channelReady) return
    const max = this.cfg.maxMessageBytes
    while (this.sentThrough < this.lastEntry) {
      // unacked[i] is entry acked + 1 + i
      const from = this.sentThrough - this.acked
      if (this.sentThrough === this.acked) this.resendAt = this.now + this.resendMs()
      if (this.unacked[from].bytes > max) {
        const big = this.unacked[from].entry
        for (const part of entryParts(big, max, { releasedThrough: this.reportedReleased(), nextConn: this.nextConn })) this.sendPeer(part)
        this.sentThrough = big.n
        continue
      }
      const batch: LogEntry[] = []
      let bytes = 0
      for (let i = from; i < this.unacked.length && batch.length < this.cfg.batchEntries; i++) {
        const u = this.unacked[i]
        if (batch.length > 0 && bytes + u.bytes > max) break
        batch.push(u.entry)
        bytes += u.bytes
      }
      this.sendPeer({ t: 'entries', gen: this.gen, entries: batch, releasedThrough: this.reportedReleased(), nextConn: this.nextConn })
      this.sentThrough = batch[batch.length - 1].n
    }
  }

  /** No ack progress for a while: go back and resend everything unacknowledged. */
  private maybeResend(): void {
    if (!this.channelReady || this.sentThrough <= this.acked || this.now < this.resendAt) return
    this.sentThrough = this.acked
    this.resendAt = this.now + this.resendMs()
  }

  /**
   * The backup answered something we sent after entry `n` (and, inside a sliced entry, after
   * byte `at`) yet still stands there. On a TCP link that means what filled the gap was lost;
   * the simulator's links also reorder, so it takes DUP_ACKS_TO_RESEND such answers (TCP's fast
   * retransmit, with a smaller threshold because the backup answers every message). Then resend
   * the gap rather than wait out resendMs: the next entry alone (the backup keeps what came
   * behind it, so it brings the backup level), or, inside a sliced entry, that entry's slices
   * from the gap on (more than one of a dozen slices may be lost; those the backup holds it
   * ignores). Under steady loss the timer alone let a healthy pair fall behind its progress
   * limit and suspect each other round after round (sim kv seed 24156), and a big SET waited
   * half a second slice by slice while its client gave up on it attempt after attempt (kv seed
   * 100095). Once per gap; a resend lost too waits for the timer.
   */
  private resendGap(n: number, at: number): void {
    if (!this.channelReady || this.sentThrough <= n || this.unacked.length === 0) return
    const gap = `${this.gen}:${n}:${at}`
    if (this.dupGap !== gap) {
      this.dupGap = gap
      this.dupAcks = 0
    }
    if (++this.dupAcks !== DUP_ACKS_TO_RESEND) return
    const next = this.unacked[0]
    const extra = { releasedThrough: this.reportedReleased(), nextConn: this.nextConn }
    if (next.bytes > this.cfg.maxMessageBytes) {
      const parts = entryParts(next.entry, this.cfg.maxMessageBytes, extra)
      const missing = parts.filter((p) => p.t === 'entry-part' && p.at + p.bytes.length > at)
      for (const p of missing.length > 0 ? missing : parts) this.sendPeer(p)
    } else {
      this.sendPeer({ t: 'entries', gen: this.gen, entries: [next.entry], ...extra })
    }
  }

  /**
   * Go back only once what is outstanding could have crossed and been applied: resending a
   * backup that is busy applying a large entry makes it (and us) busier still.
   */
  private resendMs(): number {
    return 2 * this.cfg.heartbeatMs + this.transferAllowance()
  }

  /** The suspicion timeout, plus the time the unacked bytes need (see transferAllowance). */
  private progressLimit(): number {
    return this.cfg.suspectMs + this.transferAllowance()
  }

  /**
   * Time for the unacked bytes to be sent, decoded and applied, at a rate (about 10 MB/s, UTF-8
   * may double a string) a loaded host manages. Small entries make it nothing; a 9 MiB value,
   * which the guest may resend in every entry of a state-transfer request, a second or two.
   */
  private transferAllowance(): number {
    return Math.ceil(this.unackedBytes / 10_000)
  }

  private onAck(n: number, what: string, part?: number): void {
    if (!Number.isSafeInteger(n) || n > this.lastEntry) {
      this.telemetry({ k: 'dropped', what, why: `acknowledges entry ${n} but the last entry is ${this.lastEntry}` })
      return
    }
    if (n === this.acked && typeof part === 'number' && part > this.partProgress) {
      // a slice of a large entry arrived: progress, though nothing is acked yet
      this.partProgress = part
      this.progressAt = this.now
      this.resendAt = this.now + this.resendMs()
      return
    }
    if (n <= this.acked) return
    this.acked = n
    this.partProgress = 0
    this.progressAt = this.now
    this.telemetry({ k: 'ack', n })
    while (this.unacked.length > 0 && this.unacked[0].entry.n <= n) this.unackedBytes -= this.unacked.shift()!.bytes
    if (this.sentThrough < n) this.sentThrough = n
    this.resendAt = this.now + this.resendMs()
    this.releaseHeld()
    this.drainQueue()
  }

  /** The Output Rule: outputs leave in entry order, each once the backup has its entry. */
  private releaseHeld(): void {
    while (this.held.length > 0 && this.outputRuleAllows(this.held[0].entry, this.held[0].out)) this.release(this.held.shift()!)
    if (this.genConfirmed && this.acked > this.releasedThrough) this.releasedThrough = this.acked
  }

  private release(h: Held): void {
    if (h.out.t === 'disk-write') {
      // carries gen and our id so the disk server can fence a replica that is no longer live, and the write id
      // (gen, entry, index) so a retry is applied once and never over a newer write
      const id = this.diskId()
      this.lastWriteId = id
      const req: DiskReq = { id, op: 'write', gen: this.gen, from: this.cfg.id, block: h.out.block, data: h.out.data, entry: h.entry, index: h.index ?? 0 }
      if (h.out.offset !== undefined) req.offset = h.out.offset
      if (req.offset !== undefined && this.wholeWriteUnanswered(req.block)) {
        this.writesInFlight.set(id, { gen: this.gen, entry: h.entry, req, sentAt: this.now, attempts: 0, waiting: true })
        return
      }
      this.actions.push({ t: 'send-disk', req, entry: h.entry })
      this.writesInFlight.set(id, { gen: this.gen, entry: h.entry, req, sentAt: this.now, attempts: 1 })
      if (req.offset === undefined) this.wholeInFlight.set(req.block, (this.wholeInFlight.get(req.block) ?? 0) + 1)
      return
    }
    if (h.out.t === 'disk-sync') {
      if (this.writesInFlight.size === 0) this.synced.push(h.out.tag)
      else this.syncs.push({ gen: this.gen, entry: h.entry, tag: h.out.tag, after: this.lastWriteId })
      return
    }
    this.actions.push({ t: 'release', out: h.out, entry: h.entry, heldMs: this.now - h.at })
  }

  /**
   * What the backup is told has left. A disk write counts only once the disk server took
   * it, so a backup going live re-emits any write still in flight (writes are idempotent).
   */
  private reportedReleased(): number {
    if (this.role === 'backup') return this.releasedThrough
    let r = this.releasedThrough
    for (const w of this.writesInFlight.values()) if (w.gen === this.gen && w.entry - 1 < r) r = w.entry - 1
    // a barrier counts once complete, so a backup that goes live completes every barrier it was told had left
    for (const s of this.syncs) if (s.gen === this.gen && s.entry - 1 < r) r = s.entry - 1
    return r
  }

  // ============================================================= peer messages

  private onPeer(msg: PeerMsg): void {
    const bad = malformed(msg)
    if (bad) {
      this.telemetry({ k: 'dropped', what: 'peer message', why: bad })
      return
    }
    if (this.role === 'joining') return this.onJoiningMessage(msg)
    if (msg.gen !== this.gen) {
      this.telemetry({ k: 'dropped', what: `${msg.t} of generation ${msg.gen}`, why: `this replica is in generation ${this.gen}` })
      return
    }
    if (this.role === 'live') {
      // Gone live: the logging channel of this generation is closed. Acking now would let the
      // old primary release outputs of entries this replica never applied.
      this.telemetry({ k: 'dropped', what: msg.t, why: 'live: the logging channel is closed' })
      return
    }
    this.detector.heard(this.now)
    this.lastHeard = this.now
    if (msg.t === 'heartbeat' && msg.pauses !== undefined && msg.from === this.peer)
      this.detector.peerReported({ longestMs: msg.pauses[0], forMs: msg.pauses[1] })
    if (this.role === 'primary') this.onPrimaryMessage(msg)
    else this.onBackupMessage(msg)
  }

  private onPrimaryMessage(msg: PeerMsg): void {
    switch (msg.t) {
      case 'ack':
        if (msg.n === this.acked && (msg.part ?? 0) === this.partProgress) this.resendGap(msg.n, msg.part ?? 0)
        return this.onAck(msg.n, `ack ${msg.n}`, msg.part)
      case 'heartbeat':
        if (msg.from !== this.peer) {
          this.telemetry({ k: 'dropped', what: `heartbeat from ${msg.from}`, why: `the backup of generation ${this.gen} is ${this.peer}` })
          return
        }
        // a backup's heartbeat carries its last applied entry: a cumulative ack that survives lost acks
        return this.onAck(msg.last, `heartbeat from ${msg.from}`)
      case 'snapshot-ack':
        if (this.snapshotOut && msg.from === this.peer) this.onSnapshotAck(msg.part)
        return
      case 'diverged':
        // The backup halted: its state is wrong and it will ack nothing more. Go on alone at
        // once (the test-and-set, as for a dead backup) rather than hold every output until
        // the silence is noticed.
        this.telemetry({
          k: 'diverged',
          host: this.peer ?? '',
          n: msg.n,
          since: typeof msg.since === 'number' ? msg.since : msg.n,
          primaryHash: String(msg.primaryHash),
          backupHash: String(msg.backupHash)
        })
        if (!this.suspected) this.suspect()
        return
      default:
        this.telemetry({ k: 'dropped', what: msg.t, why: 'a primary does not expect this from its backup' })
    }
  }

  private onBackupMessage(msg: PeerMsg): void {
    switch (msg.t) {
      case 'entries':
        return this.onEntries(msg)
      case 'entry-part':
        return this.onEntryPart(msg)
      case 'heartbeat':
        this.noteReleased(msg.releasedThrough)
        // the primary is ahead: say what we have, so it resends the gap
        if (msg.last > this.lastEntry) this.sendAck()
        return
      case 'snapshot':
        // our snapshot-ack was lost; the state is restored already and entries may have been applied since
        if (msg.from === this.peer) this.sendPeer({ t: 'snapshot-ack', gen: this.gen, from: this.cfg.id, part: this.snapshotParts - 1 })
        return
      default:
        this.telemetry({ k: 'dropped', what: msg.t, why: 'a backup does not expect this from its primary' })
    }
  }

  // ========================================================= backup: replaying

  private onEntries(msg: Extract<PeerMsg, { t: 'entries' }>): void {
    this.noteReleased(msg.releasedThrough)
    if (typeof msg.nextConn === 'number' && msg.nextConn > this.nextConn) this.nextConn = msg.nextConn
    // Holding early entries (bounded by what the primary may have outstanding) means a lost
    // or overtaken message costs one resend, not a resend of everything after it.
    const ahead = this.cfg.maxUnackedEntries + this.cfg.batchEntries
    for (const e of msg.entries) {
      // cheap beside the replay: a byte string's size is its length, approxBytes does not walk it
      this.noteWork(entryBytes(e))
      if (e.gen !== this.gen || e.n <= this.lastEntry) continue // duplicate
      if (e.n === this.lastEntry + 1) {
        if (!this.applyEntry(e)) return
      } else if (e.n - this.lastEntry <= ahead) this.early.set(e.n, e)
    }
    for (let next = this.early.get(this.lastEntry + 1); next; next = this.early.get(this.lastEntry + 1)) {
      this.early.delete(next.n)
      if (!this.applyEntry(next)) return
    }
    // cumulative: entries behind a gap are not acknowledged, so the primary resends from the gap
    this.sendAck()
  }

  private sendAck(): void {
    this.acked = this.lastEntry
    const part = this.assembly?.n === this.lastEntry + 1 ? this.assembly.bytesHeld : 0
    this.sendPeer(part > 0 ? { t: 'ack', gen: this.gen, n: this.lastEntry, part } : { t: 'ack', gen: this.gen, n: this.lastEntry })
  }

  /** A slice of an entry too large for one message. Only the next entry is assembled; slices of others are resent later. */
  private onEntryPart(msg: Extract<PeerMsg, { t: 'entry-part' }>): void {
    this.noteReleased(msg.releasedThrough)
    if (typeof msg.nextConn === 'number' && msg.nextConn > this.nextConn) this.nextConn = msg.nextConn
    if (msg.n !== this.lastEntry + 1) {
      if (msg.n <= this.lastEntry) this.sendAck() // a resend of what we have: say so
      return
    }
    // A resend starts again at 0; slices already held stay (the link keeps order, so the resend
    // brings the missing ones after them). Restarting would let a slow backup, resent to before
    // it acks, start over for ever.
    if (this.assembly?.n !== msg.n) this.assembly = new EntryAssembly(msg.n, msg.total)
    const a = this.assembly
    if (!a || a.n !== msg.n || !a.add(msg.at, msg.total, msg.bytes)) return this.sendAck()
    if (!a.complete) return this.sendAck()
    this.assembly = null
    const entry = a.entry()
    if (typeof entry === 'string') {
      this.telemetry({ k: 'dropped', what: `entry-part of entry ${msg.n}`, why: entry })
      return this.sendAck()
    }
    this.onEntries({ t: 'entries', gen: msg.gen, entries: [entry], releasedThrough: msg.releasedThrough, nextConn: msg.nextConn })
  }

  /** False when the entry could not be replayed: the backup has halted. */
  private applyEntry(e: LogEntry): boolean {
    let r: ReturnType<Vmm['replay']>
    try {
      r = this.vmm.replay(e.body)
    } catch (err) {
      // The VMM could not replay the entry (it throws DivergenceError when the guest reads other
      // non-deterministic values than the primary logged). The guest is now part-way through it,
      // in a state neither replica had. Left to throw, the backup would stay wedged: no ack for
      // this entry ever, yet its heartbeats keep the primary from suspecting it, so the primary
      // stalls for good once its channel fills. Report the divergence at this entry, then halt:
      // a silent backup is suspected, the primary wins the test-and-set and goes on alone, and
      // this guest, whose state is wrong, can never go live.
      const why = err instanceof Error ? err.message : String(err)
      this.divergedAt(e.n, e.n, e.hash ?? '', `replay failed: ${why}`, `could not replay entry ${e.n} of generation ${this.gen}: ${why}`)
      return false
    }
    this.lastEntry = e.n
    this.holdsState = true
    this.telemetry({
      k: 'entry',
      n: e.n,
      bytes: entryBytes(e),
      input: e.body.kind === 'input' ? describeInput(e.body.input) : `state ${e.body.pages.length + (e.body.diffs?.length ?? 0)} pages`
    })
    // Suppressed, but kept: if the primary dies before releasing them, this replica will.
    // a state entry's outputs as replay gave them: those it lists after those a completed barrier held (VMM pages)
    const outputs = r.outputs
    if (outputs.length > 0 && e.n > this.releasedThrough) this.keep({ n: e.n, outputs, at: this.now })
    if (e.hash !== undefined) {
      const mine = this.vmm.stateHash()
      if (mine !== e.hash) {
        // Acking on would let the primary count on a backup that could go live with the wrong state.
        const since = this.verifiedThrough + 1
        const where = since === e.n ? `entry ${e.n}` : `entries ${since}..${e.n}`
        this.divergedAt(
          e.n,
          since,
          e.hash,
          mine,
          `diverged from ${this.peer} in generation ${this.gen}: state hash ${mine} after entry ${e.n}, the primary's is ${e.hash} (began in ${where})`
        )
        return false
      }
      this.verifiedThrough = e.n
    }
    return true
  }

  /** The backup's state is not the primary's: say where, and stop. It never acks, never goes live. */
  private divergedAt(n: number, since: number, primaryHash: string, backupHash: string, reason: string): void {
    this.diverged = true
    this.telemetry({ k: 'diverged', host: this.cfg.id, n, since, primaryHash, backupHash })
    this.sendPeer({ t: 'diverged', gen: this.gen, n, since, primaryHash, backupHash })
    this.halt(reason)
  }

  private keep(k: Kept): void {
    this.kept.push(k)
    // The primary releases outputs as acks arrive and reports it, so this stays short; the bound
    // guards against a primary that never reports. Outputs dropped here are not re-emitted,
    // which costs a client a retry, answered from the guest's reply table.
    const limit = Math.max(16, 2 * this.cfg.maxUnackedEntries)
    while (this.kept.length > limit) {
      const old = this.kept.shift()!
      this.telemetry({ k: 'dropped', what: `outputs of entry ${old.n}`, why: `re-emission buffer full (${limit} entries)` })
    }
  }

  private noteReleased(n: number): void {
    if (!(n > this.releasedThrough)) return
    this.releasedThrough = n
    while (this.kept.length > 0 && this.kept[0].n <= n) this.kept.shift()
  }

  // ======================================================== restore redundancy

  private onJoiningMessage(msg: PeerMsg): void {
    if (msg.t === 'heartbeat' && msg.gen === this.gen && (this.peer === null || msg.from === this.peer)) {
      // The restoring primary judges us by what it hears: silent until the last part is in, we would look dead
      // whenever the snapshot is slow to arrive, and it would go live alone. Say we are here and what we hold
      // (-1: nothing yet); the primary's progress check still catches a replica that answers but takes no part.
      // Only the primary that registered this generation at the disk server sends heartbeats of it.
      this.peer = msg.from
      this.lastHeard = this.now
      this.sendPeer({ t: 'snapshot-ack', gen: this.gen, from: this.cfg.id, part: (this.snapshotIn?.held ?? 0) - 1 })
      return
    }
    if (msg.t !== 'snapshot' || msg.gen !== this.gen) {
      this.telemetry({ k: 'dropped', what: `${msg.t} of generation ${msg.gen}`, why: `joining: waiting for the snapshot of generation ${this.gen}` })
      return
    }
    this.peer = msg.from
    this.lastHeard = this.now
    // one joining replica takes one snapshot (a new restore is a new generation and a fresh replica),
    // so parts are never started over: a late duplicate of part 0 must not throw away what came since
    // (the primary keeps SNAPSHOT_WINDOW parts in flight: a part further ahead is not one it sent)
    if (!this.snapshotIn) {
      // where the VMM can, each part is loaded as it comes: a large guest restored in one step kept this replica
      // silent for seconds (the restoring primary then suspects it), each part's slice is short
      this.snapshotLoader = this.vmm.restoreInParts?.(msg.guest) ?? null
      const loader = this.snapshotLoader
      this.snapshotIn = new SnapshotAssembly(2 * SNAPSHOT_WINDOW, loader ? (pages) => loader.pages(pages) : undefined)
    }
    const have = this.snapshotIn
    have.add(msg)
    if (!have.last) {
      // say what we hold, in order: a resent or overtaken part sends the primary back to the gap
      if (have.held > 0) this.sendPeer({ t: 'snapshot-ack', gen: this.gen, from: this.cfg.id, part: have.held - 1 })
      return
    }
    const last = have.last
    const loader = this.snapshotLoader
    this.snapshotIn = null
    this.snapshotLoader = null
    this.snapshotParts = last.part + 1
    if (loader) loader.finish(last.hash)
    else this.vmm.restore(have.snapshot(last))
    if (typeof last.nextConn === 'number' && last.nextConn > this.nextConn) this.nextConn = last.nextConn
    this.lastEntry = last.last
    this.acked = last.last
    this.releasedThrough = last.last
    this.verifiedThrough = last.last
    this.lastHeard = this.now
    // a new primary: what was learned of the old peer (or of nobody) says nothing of it
    this.detector.reset(this.now)
    this.holdsState = true
    this.telemetry({ k: 'snapshot', gen: this.gen, bytes: this.vmm.memoryBytes(), direction: 'received' })
    this.setRole('backup', `restored the snapshot of ${last.from}`)
    this.sendPeer({ t: 'snapshot-ack', gen: this.gen, from: this.cfg.id, part: last.part })
  }

  /** The disk server took the new generation: from here on this replica is a primary again. */
  private startGeneration(gen: number, peer: ReplicaId): void {
    this.gen = gen
    this.peer = peer
    this.barrierEntry.clear()
    this.lastEntry = 0
    this.acked = 0
    this.releasedThrough = 0
    this.sentThrough = 0
    this.unacked = []
    this.unackedBytes = 0
    this.held = []
    this.kept = []
    this.diverged = false
    this.verifiedThrough = 0
    this.partProgress = 0
    this.suspected = false
    this.channelReady = false
    this.genConfirmed = true
    this.lastHeard = this.now
    // a new backup, likely a fresh process: learn it from scratch (the ceiling applies meanwhile)
    this.detector.reset(this.now)
    const snapshot = this.vmm.snapshot()
    const bytes = approxBytes(snapshot)
    const cutter = new SnapshotCutter(snapshot, Math.min(this.cfg.maxMessageBytes, SNAPSHOT_PART_BYTES), {
      gen,
      from: this.cfg.id,
      last: 0,
      nextConn: this.nextConn
    })
    this.snapshotOut = { cutter, inFlight: [], bytes, sentAt: this.now, progressAt: this.now, heard: false }
    this.setRole('primary', `restoring redundancy onto ${peer}`)
    this.sendSnapshotParts()
    this.telemetry({ k: 'snapshot', gen, bytes, direction: 'sent' })
  }

  /** Keep SNAPSHOT_WINDOW parts in flight; parts are cut only as they go, never all at once. */
  private sendSnapshotParts(): void {
    const out = this.snapshotOut!
    while (out.inFlight.length < SNAPSHOT_WINDOW && !out.cutter.done) {
      const part = out.cutter.next()!
      out.inFlight.push(part)
      this.sendPeer(part)
    }
  }

  private onSnapshotAck(part: number): void {
    const out = this.snapshotOut!
    if (typeof part !== 'number') return
    const before = out.inFlight.length
    while (out.inFlight.length > 0 && out.inFlight[0].part <= part) {
      const acked = out.inFlight.shift()!
      out.progressAt = this.now
      if (acked.done) {
        this.snapshotOut = null
        this.channelReady = true
        this.progressAt = this.now
        this.resendAt = this.now + this.resendMs()
        return
      }
    }
    if (out.inFlight.length < before) out.sentAt = this.now
    else if (!out.heard && out.inFlight.length > 0) {
      // The first answer, and it holds none of the parts: they went out before the new link was up and were lost
      // (a heartbeat that got an answer went after them on the same ordered link). Resend now, not a half timeout on.
      out.sentAt = this.now
      for (const p of out.inFlight) this.sendPeer(p)
    }
    out.heard = true
    this.sendSnapshotParts()
  }

  private maybeResendSnapshot(): void {
    if (!this.snapshotOut || this.now - this.snapshotOut.sentAt < this.cfg.suspectMs / 2) return
    this.snapshotOut.sentAt = this.now
    for (const part of this.snapshotOut.inFlight) this.sendPeer(part)
  }

  /** The channel refused a message for good: resending cannot help, and the backup will never have what it needs. */
  private onSendFailed(msg: PeerMsg, why: string): void {
    const what = typeof msg?.t === 'string' ? `${msg.t} message to ${this.peer}` : 'peer message'
    this.telemetry({ k: 'dropped', what, why: `the logging channel refused it: ${why}` })
    if (this.role !== 'primary' || this.suspected) return
    if (msg?.t === 'entries' || msg?.t === 'entry-part' || msg?.t === 'snapshot') this.suspect()
  }

  // ======================================================= go live, or halt

  private suspect(): void {
    this.suspected = true
    const limit = this.silenceLimitWhy()
    this.telemetry({ k: 'suspect', peer: this.peer, silentMs: this.now - this.lastHeard, timeoutMs: limit.ms, limit })
    const req: DiskReq = { id: this.diskId(), op: 'tas', gen: this.gen, from: this.cfg.id }
    this.tas = { req, sentAt: this.now }
    this.actions.push({ t: 'send-disk', req })
  }

  private onTasAnswer(res: DiskRes): void {
    if (!res.ok && res.error === 'io') return // no verdict: retryDisk asks again
    this.tas = null
    if (!res.ok && res.error === 'bad-request') {
      // asking again would get the same answer forever: stop, and say why
      this.telemetry({ k: 'tas', gen: this.gen, result: 'lost' })
      this.halt(`the disk server refused the test-and-set for generation ${this.gen} as a bad request: ${res.message}`)
      return
    }
    if (res.ok && (res.winner === undefined || res.winner === this.cfg.id)) {
      this.telemetry({ k: 'tas', gen: this.gen, result: 'won' })
      this.goLive()
    } else {
      this.telemetry({ k: 'tas', gen: this.gen, result: 'lost' })
      const why = res.ok ? `won by ${res.winner}` : res.message
      this.halt(`lost the test-and-set for generation ${this.gen}: ${why}`)
    }
  }

  private goLive(): void {
    const was = this.role
    this.suspected = false
    this.genConfirmed = true
    // Winning the test-and-set proves the disk server knows this generation and that this
    // replica is live in it: a start registration still waiting for its (lost) answer is moot,
    // and a retry of it would now be refused and halt the only live replica.
    if (this.registration?.purpose === 'start') this.registration = null
    this.setRole('live', `won the test-and-set for generation ${this.gen}; ${this.peer ?? 'the peer'} is suspect`)
    let reemitted = 0
    if (was === 'primary') {
      // The backup is gone: nobody left to wait for. Release everything, in order.
      for (const h of this.held) this.release(h)
    } else {
      // The primary may have died before releasing outputs of entries we hold. Re-emit them:
      // clients drop duplicates by (client id, sequence number).
      const reissued = new Set<number>()
      for (const k of this.kept)
        for (const h of withWriteIndex(k.outputs, k.n, k.at)) {
          if (h.out.t === 'disk-sync') reissued.add(h.out.tag)
          this.release(h)
          reemitted++
        }
      // I/O the dead primary started but whose result never reached the log
      for (const req of this.vmm.pendingIo()) this.actions.push({ t: 'io', req })
      // barriers the primary completed (it reports one released only then) whose completion never reached the log
      for (const tag of this.vmm.pendingSyncs?.() ?? []) if (!reissued.has(tag)) this.synced.push(tag)
    }
    this.telemetry({ k: 'go-live', gen: this.gen, replayed: was === 'backup' ? this.lastEntry : 0, reemitted })
    this.held = []
    this.kept = []
    this.early.clear() // behind a gap: never acked, so their outputs never left
    this.assembly = null
    this.unacked = []
    this.unackedBytes = 0
    this.snapshotOut = null
    this.channelReady = false
    this.releasedThrough = this.lastEntry
    this.drainQueue()
  }

  private halt(reason: string): void {
    // Outputs released earlier in this step but not yet taken leave no more: the host takes a turn's actions at its
    // end, after the disk answer that fenced this replica (register seed 501721). Dropping them is safe: each one's
    // entry is acknowledged, so the replica that went live has it and answers a client's retry from its reply table,
    // and re-emits a disk write it was told had not left.
    this.actions = this.actions.filter((a) => a.t !== 'release' && !(a.t === 'send-disk' && a.req.op === 'write'))
    this.held = []
    this.queue = []
    this.kept = []
    this.early.clear()
    this.assembly = null
    this.snapshotIn = null
    this.snapshotLoader = null
    this.unacked = []
    this.unackedBytes = 0
    this.tas = null
    this.registration = null
    this.snapshotOut = null
    this.syncs = []
    this.synced = []
    this.setRole('halted', reason)
  }

  // ============================================================ disk server

  private register(gen: number, purpose: Registration['purpose'], peer: ReplicaId | null): void {
    const req: DiskReq = {
      id: this.diskId(),
      op: 'generation',
      gen,
      from: this.cfg.id,
      primary: this.cfg.id,
      backup: peer,
      ...(purpose === 'recover' ? { recover: true } : {})
    }
    this.registration = { req, sentAt: this.now, gen, purpose, peer }
    // A new generation fences every write of the old one: one still unanswered would be lost. retryDisk sends it
    // once they are all answered (the live replica takes no input meanwhile).
    if (this.restoreWaitsForWrites()) this.registration.sentAt = -Infinity
    else this.actions.push({ t: 'send-disk', req })
  }

  private restoreWaitsForWrites(): boolean {
    return this.registration?.purpose === 'restore' && this.writesInFlight.size > 0
  }

  private onDisk(res: DiskRes): void {
    if (typeof res !== 'object' || res === null || typeof res.id !== 'number') {
      this.telemetry({ k: 'dropped', what: 'disk reply', why: 'not an object with a numeric id' })
      return
    }
    if (this.tas && res.id === this.tas.req.id) return this.onTasAnswer(res)
    if (this.registration && res.id === this.registration.req.id) return this.onRegistered(res)
    const write = this.writesInFlight.get(res.id)
    if (write !== undefined) return this.onWriteAnswer(res, write)
    // A write is answered once per send: the retry of a write already accepted can come back fenced, after another
    // replica took over. That answer still says this replica is no longer live: it must never output again.
    if (!res.ok && res.error === 'fenced' && res.winner !== undefined && res.winner !== this.cfg.id && (this.role === 'primary' || this.role === 'live')) {
      return this.halt(`the disk server fenced a write (a retry answered late): ${res.message}`)
    }
    // the answer to a write settled already (a newer whole-block write's answer superseded it, or a retry was answered
    // first): expected, and under load there are thousands, so not worth a line each
    if (res.ok && res.id < this.nextDiskId) return
    this.telemetry({ k: 'dropped', what: `disk reply ${res.id}`, why: 'no request of this replica is waiting for it' })
  }

  private onRegistered(res: DiskRes): void {
    if (!res.ok && res.error === 'io') return // retried
    const reg = this.registration!
    this.registration = null
    if (reg.purpose === 'recover') {
      if (!res.ok) return this.halt(`the disk server refused to begin generation ${reg.gen} for recovery from disk: ${res.message}`)
      this.genConfirmed = true
      this.setRole('live', `booting the guest from the disk server's contents in generation ${reg.gen}, alone; restore redundancy to take a backup`)
      this.drainQueue()
      return
    }
    if (reg.purpose === 'start') {
      if (res.ok) {
        this.genConfirmed = true
        this.releaseHeld()
      } else {
        this.halt(`the disk server refused generation ${reg.gen}: ${res.message}`)
      }
      return
    }
    if (res.ok) this.startGeneration(reg.gen, reg.peer!)
    else this.telemetry({ k: 'dropped', what: `restore redundancy onto ${reg.peer}`, why: `the disk server refused generation ${reg.gen}: ${res.message}` })
    // inputs that waited for the answer run now: as entries of the new generation, or live as before
    this.drainQueue()
  }

  private onWriteAnswer(res: DiskRes, write: InFlightWrite): void {
    // the disk server could not store it, or an earlier append to its block has not arrived yet: retryDisk sends it again
    if (!res.ok && res.error === 'io') return
    if (!res.ok && res.error === 'out-of-order') {
      write.refusals = (write.refusals ?? 0) + 1
      if (write.refusals === OUT_OF_ORDER_REPORT_AFTER && !this.earlierWriteUnanswered(res.id, write)) {
        this.telemetry({
          k: 'dropped',
          what: `disk write of entry ${write.entry} (generation ${write.gen}), refused ${write.refusals} times`,
          why: `${res.message}; no earlier write of this replica to that block is unanswered, so the block on the disk server lacks bytes this replica wrote (was the disk replaced or wiped under the running guest?). It is still retried, and the replies waiting for it are held`
        })
      }
      return
    }
    const done = [res.id]
    // Only a whole-block write supersedes older writes and holds appends back; an append's answer (one per write
    // command under load) settles itself alone, and walking every write in flight for it twice was the primary's
    // busiest JavaScript without pipelining.
    const whole = write.req.op === 'write' && write.req.offset === undefined
    if (res.ok && whole) {
      // An older write to the same block that is still unanswered is superseded: asking again is pointless, and after a
      // disk-server restart (which forgets the blocks' last write ids) its retry could overwrite this newer write.
      for (const [id, w] of this.writesInFlight) if (id !== res.id && olderWriteToSameBlock(w.req, write.req)) done.push(id)
    }
    for (const id of done) {
      const w = this.writesInFlight.get(id)
      if (w?.req.op === 'write' && w.req.offset === undefined) {
        const left = (this.wholeInFlight.get(w.req.block) ?? 0) - 1
        if (left > 0) this.wholeInFlight.set(w.req.block, left)
        else this.wholeInFlight.delete(w.req.block)
      }
      this.writesInFlight.delete(id)
    }
    // a fenced replica sends nothing more: not even the appends that waited for this write
    if (whole && !(!res.ok && res.error === 'fenced' && write.gen === this.gen)) this.sendWaitingAppends()
    const oldest = this.writesInFlight.size === 0 ? Infinity : this.writesInFlight.keys().next().value!
    while (this.syncs.length > 0 && this.syncs[0].after < oldest) this.synced.push(this.syncs.shift()!.tag)
    if (this.registration && this.registration.sentAt === -Infinity && !this.restoreWaitsForWrites()) this.retryDisk()
    if (res.ok) return
    if (res.error === 'fenced' && write.gen === this.gen) {
      // Another replica is live in our generation: we must never output again.
      this.halt(`the disk server fenced a write of entry ${write.entry}: ${res.message}`)
      return
    }
    this.telemetry({ k: 'dropped', what: `disk write of entry ${write.entry} (generation ${write.gen})`, why: res.message })
  }

  private earlierWriteUnanswered(id: number, write: InFlightWrite): boolean {
    if (write.req.op !== 'write') return false
    for (const [other, w] of this.writesInFlight) if (other < id && w.req.op === 'write' && w.req.block === write.req.block) return true
    return false
  }

  private wholeWriteUnanswered(block: number): boolean {
    return this.wholeInFlight.has(block)
  }

  /** Sends, in the order they were released, the appends whose block has no whole-block write unanswered any more. */
  private sendWaitingAppends(): void {
    for (const w of this.writesInFlight.values()) {
      if (!w.waiting || w.req.op !== 'write' || this.wholeWriteUnanswered(w.req.block)) continue
      delete w.waiting
      w.sentAt = this.now
      w.attempts = 1
      this.actions.push({ t: 'send-disk', req: w.req, entry: w.entry })
    }
  }

  private retryDisk(): void {
    // A write is sent again until the disk server answers it (the connection broke, a message was lost): its write
    // id makes the retry harmless. The interval doubles up to the suspicion timeout, so a long outage costs little.
    for (const w of this.writesInFlight.values()) {
      if (w.waiting) continue
      const wait = Math.min(this.cfg.diskRetryMs * 2 ** (w.attempts - 1), Math.max(this.cfg.diskRetryMs, this.cfg.suspectMs))
      if (this.now - w.sentAt < wait) continue
      w.sentAt = this.now
      w.attempts++
      this.actions.push({ t: 'send-disk', req: w.req, entry: w.entry })
    }
    for (const call of [this.tas, this.registration]) {
      if (!call || this.now - call.sentAt < this.cfg.diskRetryMs) continue
      if (call === this.registration && this.restoreWaitsForWrites()) continue
      if (call === this.tas) this.telemetry({ k: 'tas', gen: this.gen, result: 'unreachable' })
      call.sentAt = this.now
      this.actions.push({ t: 'send-disk', req: call.req })
    }
  }

  private diskId(): number {
    return this.nextDiskId++
  }

  // ================================================================ plumbing

  private sendPeer(msg: PeerMsg): void {
    this.lastSent = this.now
    this.actions.push(this.peer === null ? { t: 'send-peer', msg } : { t: 'send-peer', msg, to: this.peer })
  }

  private setRole(role: Role, reason: string): void {
    this.role = role
    this.emitRole(reason)
  }

  private emitRole(reason: string): void {
    this.actions.push({ t: 'role', role: this.role, gen: this.gen, reason })
  }

  private telemetry(ev: Telemetry): void {
    this.actions.push({ t: 'telemetry', ev })
  }
}

/**
 * The actions less every disk write that a later write of the same batch supersedes (olderWriteToSameBlock: a
 * whole-block write replaces everything written to its block before it; an append replaces nothing). The kv guest
 * rewrites its superblock for every input (and its log's blocks whole after a boot or FLUSHALL), so the entries one
 * ack releases carry many writes of the same block: only the newest need cross. The older ones stay in writesInFlight, as if sent: the newer one's answer settles them (onWriteAnswer), and
 * should it never come, retryDisk sends them like any unanswered write. Barriers still wait for both.
 */
function withoutSupersededWrites(actions: Action[]): Action[] {
  let newestWhole: Map<number, DiskReq> | null = null
  for (const a of actions) {
    if (a.t !== 'send-disk' || a.req.op !== 'write' || a.req.offset !== undefined) continue
    const prev = (newestWhole ??= new Map()).get(a.req.block)
    if (prev === undefined || olderWriteToSameBlock(prev, a.req)) newestWhole.set(a.req.block, a.req)
  }
  if (newestWhole === null) return actions
  const whole = newestWhole
  let dropped = false
  const kept = actions.filter((a) => {
    if (a.t !== 'send-disk' || a.req.op !== 'write') return true
    const w = whole.get(a.req.block)
    if (w === undefined || w === a.req || !olderWriteToSameBlock(a.req, w)) return true
    dropped = true
    return false
  })
  return dropped ? kept : actions
}

function olderWriteToSameBlock(a: DiskReq, b: DiskReq): boolean {
  if (a.op !== 'write' || b.op !== 'write' || a.block !== b.block || b.offset !== undefined) return false
  return a.gen < b.gen || (a.gen === b.gen && ((a.entry ?? 0) < (b.entry ?? 0) || ((a.entry ?? 0) === (b.entry ?? 0) && (a.index ?? 0) < (b.index ?? 0))))
}

/** An entry's outputs, ready to hold or release, each disk write numbered among the entry's writes (its write id). */
function withWriteIndex(outputs: Output[], entry: number, at: number): Held[] {
  let index = 0
  return outputs.map((out) => (out.t === 'disk-write' ? { out, entry, at, index: index++ } : { out, entry, at }))
}

function checkConfig(cfg: ReplicaConfig): void {
  if (typeof cfg?.id !== 'string' || cfg.id.length === 0) throw new Error('ReplicaConfig.id must be a non-empty string')
  for (const k of [
    'heartbeatMs',
    'suspectMs',
    'diskRetryMs',
    'maxUnackedEntries',
    'maxUnackedBytes',
    'batchEntries',
    'maxMessageBytes',
    'hashEvery'
  ] as const) {
    const v = cfg[k]
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`ReplicaConfig.${k} of ${cfg.id} must be a positive number, got ${v}`)
  }
  if (cfg.suspectMs <= cfg.heartbeatMs)
    throw new Error(
      `ReplicaConfig of ${cfg.id}: suspectMs (${cfg.suspectMs}) must exceed heartbeatMs (${cfg.heartbeatMs}), or every quiet moment looks like a failure`
    )
}

/** Why a peer message cannot be handled, or null. The edge decodes frames; this guards the core against a bad decoder. */
function malformed(msg: PeerMsg): string | null {
  if (typeof msg !== 'object' || msg === null) return 'not an object'
  if (typeof msg.gen !== 'number') return `${String(msg.t)}: gen is not a number`
  switch (msg.t) {
    case 'entries':
      if (!Array.isArray(msg.entries) || msg.entries.some((e) => typeof e?.n !== 'number' || typeof e.body !== 'object' || e.body === null))
        return 'entries: malformed entry list'
      return typeof msg.releasedThrough === 'number' ? null : 'entries: releasedThrough is not a number'
    case 'entry-part':
      if (typeof msg.n !== 'number' || typeof msg.at !== 'number' || typeof msg.total !== 'number' || !(msg.bytes instanceof Uint8Array))
        return 'entry-part: n, at, total or bytes missing'
      return typeof msg.releasedThrough === 'number' ? null : 'entry-part: releasedThrough is not a number'
    case 'ack':
      return typeof msg.n === 'number' ? null : 'ack: n is not a number'
    case 'heartbeat':
      if (msg.pauses !== undefined && !(Array.isArray(msg.pauses) && msg.pauses.length === 2 && msg.pauses.every((x) => typeof x === 'number' && x >= 0)))
        return 'heartbeat: pauses is not two non-negative numbers (the longest pause, and how long it was watched)'
      return typeof msg.last === 'number' && typeof msg.releasedThrough === 'number' ? null : 'heartbeat: last or releasedThrough is not a number'
    case 'snapshot':
      if (typeof msg.from !== 'string' || typeof msg.part !== 'number' || !Array.isArray(msg.pages)) return 'snapshot: missing sender, part or pages'
      return typeof msg.guest === 'string' && typeof msg.hash === 'string' && typeof msg.last === 'number' ? null : 'snapshot: missing guest, hash or last'
    case 'snapshot-ack':
      return typeof msg.from === 'string' && typeof msg.part === 'number' ? null : 'snapshot-ack: missing sender or part'
    case 'diverged':
      return null
    default:
      return `unknown message type ${JSON.stringify((msg as { t?: unknown }).t)}`
  }
}

function describeInputSafe(input: GuestInput): string {
  return typeof input?.t === 'string' ? describeInput(input) : 'malformed input'
}
