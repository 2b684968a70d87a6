// A seeded simulation of an FT Lab replica pair (TigerBeetle's VOPR, FoundationDB's
// simulator): the real ReplicaCore, the real replica edge (agent/replica/edge.ts, the code
// between the core and the sockets on a host) and the real DiskArbiter, with a fake clock,
// a hostile network, crashes, pauses, restore redundancy, and clients that check what they
// see. A run is a pure function of its seed; a failure says how to replay it.
//
// Faults: crashes of one replica of a working pair, of the new backup during restore, of a
// contender for the test-and-set; pauses; cuts of the peer, disk and client links, one way
// or both; isolation; disk-server restarts, and a disk link that loses, reorders and
// duplicates; SETs larger than the message bound. With the kv guest, whose state is on the
// disk server, also two failures in a row (the restorer, or the last replica serving, or a
// contender that may have won): the lab powers a replica on from disk, as drills do, and
// the clients check that no acknowledged write was lost.
//
// Every run ends drained: the clients stop sending, and a live primary and the backup of its
// generation must come to stand at one entry with equal state hashes (or the run fails for
// liveness); with kv, a guest booted from the disk server's blocks must then hold the live
// guest's keys, values and expiry times (sim/disk-check.ts).
import { DiskArbiter, MemoryBlockStore } from '../agent/disk/arbiter.js'
import { ReplicaCore } from '../agent/replica/core.js'
import type { Action, ReplicaConfig, Role } from '../agent/replica/types.js'
import type { Entropy, ReplicationMode, Vmm } from '../agent/vmm/types.js'
import { createVmm } from '../agent/vmm/vmm.js'
import { Checker, SimFailure } from './checker.js'
import { bootFromDisk, firstDurableDifference, syncsEveryWrite } from './disk-check.js'
import { MUTANTS, type MutantName } from './mutants.js'
import { Prng } from '../agent/prng.js'
import { encodeCommand } from './resp.js'
import { RegisterVmm } from './register-vmm.js'
import { SimClient, type RequestKind } from './client.js'
import { SimReplica, SimStream, type SimDiskEndpoint } from './replica.js'
import { EventQueue, Network, type LinkQuality } from './world.js'

export type GuestKind = 'register' | 'kv'
export type CoreFactory = (cfg: ReplicaConfig, vmm: Vmm, init: { role: 'primary' | 'backup' | 'joining' | 'recover'; gen: number; now: number }) => ReplicaCore
export type VmmFactory = (mode: ReplicationMode, entropy: Entropy) => Vmm

export interface SimOptions {
  seed: number
  guest?: GuestKind
  /** how to build a VMM; default: the guest's (register: the test guest; kv: the real VMM with the kv guest) */
  makeVmm?: VmmFactory
  /** how to build a replica core; default: the real one (tests swap in broken ones) */
  makeCore?: CoreFactory
  /** a deliberately broken core (sim/mutants.ts), by name: the test-only knob the mutant tests turn */
  mutant?: MutantName
  /** virtual ms with faults, then virtual ms healed, in which every client must make progress */
  faultMs?: number
  settleMs?: number
  /** virtual ms, after the settle period, in which the clients send nothing new and the pair must come to one entry */
  drainMs?: number
  clients?: number
}

export interface SimStats {
  seed: number
  mode: ReplicationMode
  completed: number
  goLives: number
  restores: number
  crashes: number
  pauses: number
  cuts: number
  stalls: number
  /** disk-server restarts (every connection breaks; the block store and the generation survive) */
  diskRestarts: number
  /** runs whose disk-server link reorders and duplicates (a retry on a fresh connection overtaking the original) */
  diskReorders: number
  /** crashes of a replica while a test-and-set of its generation was contended */
  contentionCrashes: number
  /** crashes of the replica restoring redundancy, before its new backup held the snapshot */
  restorerCrashes: number
  /** both replicas down (a second failure before redundancy was restored): the lab powered one on, booting from disk */
  doubleFailures: number
  /** slices of log entries larger than the message bound */
  entryParts: number
  /** disk writes the disk server refused from a replica that was no longer live */
  fenced: number
  messages: number
  dropped: number
  checks: number
  /** runs whose pair, drained at the end, stood at the same entry and whose guests were compared whole (all but endedAlone) */
  finalStatesCompared: number
  /** runs that ended with one replica serving alone (its restore of redundancy not done when the drain ran out) */
  endedAlone: number
  /** runs whose disk server's blocks booted a guest that was compared with the live one (kv) */
  diskContentsChecked: number
}

const REPLICAS = ['a', 'b'] as const
/** the crashes the simulator injects, as its trace names them */
const CRASHES = {
  pair: 'one of a working pair',
  'new-backup': 'the new backup, during restore redundancy',
  contention: 'during test-and-set contention',
  restorer: 'restoring redundancy, before the new backup holds the snapshot',
  second: 'a second failure before redundancy was restored'
} as const
const CLIENT_TIMEOUT_MS = 120
const EPOCH = 1_700_000_000_000

/** A replica incarnation and what the checker tracks of it (the role it acts in, as it acts). */
interface SimNode {
  replica: SimReplica
  id: string
  inc: number
  core: ReplicaCore
  vmm: Vmm
  role: Role
  gen: number
  stalled: boolean
  hashedAt: string
}

export const replayCommand = (seed: number, guest: GuestKind, mutant?: MutantName): string =>
  `npm run sim -- --seed ${seed} --guest ${guest}${mutant ? ` --mutant ${mutant}` : ''}`

export function runSimulation(opts: SimOptions): SimStats {
  const sim = new Simulation(opts)
  try {
    return sim.run()
  } catch (err) {
    const guest = opts.guest ?? 'register'
    const what = err instanceof SimFailure ? err.message : `crashed at t=${sim.q.now}ms: ${(err as Error)?.stack ?? String(err)}`
    throw new SimFailure(
      `simulation seed ${opts.seed} (${sim.mode}, guest ${guest}) failed: ${what}\n` +
        `replay: ${replayCommand(opts.seed, guest, opts.mutant)}\n` +
        `state:\n${sim.describe()}\n` +
        `last events:\n${sim.trace.join('\n')}`
    )
  }
}

class Simulation {
  readonly q = new EventQueue()
  readonly rng: Prng
  readonly mode: ReplicationMode
  readonly trace: string[] = []
  private readonly net: Network
  private readonly chaos: Prng
  private readonly checker: Checker
  /** the disk server's stable storage: it outlives the server process, which restarts */
  private readonly diskStore = new MemoryBlockStore()
  private arbiter = new DiskArbiter(this.diskStore, { maxBlocks: 1024 })
  private diskRun = 0
  private diskDown = false
  /** the guest keeps its state on the disk server (kv): a double failure is survivable, by booting from disk */
  private readonly recoverable: boolean
  private readonly nodes = new Map<string, SimNode>()
  private readonly clients: SimClient[] = []
  private readonly cfg: Omit<ReplicaConfig, 'id' | 'peer'>
  private readonly peerLink: LinkQuality
  private readonly clientLink: LinkQuality
  private readonly disk: SimDiskEndpoint
  /** the disk-server link: a TCP stream (in order), sometimes slow or lossy (a lost message is a request the core must ask again) */
  private readonly diskLink: LinkQuality
  private readonly faultMs: number
  private readonly settleMs: number
  private readonly drainMs: number
  private readonly makeVmm: VmmFactory
  private readonly makeCore: CoreFactory
  private readonly entropyFor: (id: string) => Entropy
  private faultsOn = true
  private stats: SimStats

  constructor(opts: SimOptions) {
    this.rng = new Prng(opts.seed)
    const setup = this.rng.fork()
    this.net = new Network(this.q, this.rng.fork())
    this.chaos = this.rng.fork()
    this.checker = new Checker(() => this.q.now)
    this.mode = setup.chance(0.5) ? 'rsm' : 'state-transfer'
    this.faultMs = opts.faultMs ?? 3000
    this.settleMs = opts.settleMs ?? 1500
    this.drainMs = opts.drainMs ?? 3000
    this.cfg = {
      mode: this.mode,
      heartbeatMs: 20,
      suspectMs: 100,
      diskRetryMs: 40,
      maxUnackedEntries: setup.pick([4, 16, 64]),
      maxUnackedBytes: setup.pick([1500, 1 << 20]),
      batchEntries: setup.pick([1, 3, 16]),
      maxMessageBytes: 4 * 1024 * 1024,
      hashEvery: setup.pick([1, 2, 5])
    }
    this.peerLink = { drop: setup.float() * 0.06, duplicate: setup.float() * 0.04, minDelay: 1, maxDelay: setup.int(2, 12), fifo: false }
    // a client's stream is a TCP connection: in order; a lost segment breaks it
    this.clientLink = { drop: 0.01, duplicate: 0, minDelay: 1, maxDelay: 8, fifo: true }
    this.disk = {
      id: 'disk',
      epoch: () => this.diskRun,
      handle: (_from, req, answer) => {
        if (this.diskDown) return
        const res = this.arbiter.handle(req)
        if (!res.ok && res.error === 'fenced') this.stats.fenced++
        this.checker.onDiskAnswer(req, res)
        answer(res)
      }
    }
    this.makeVmm =
      opts.makeVmm ??
      (opts.guest === 'kv' ? (mode, entropy) => createVmm({ guest: 'kv', mode, entropy }) : (mode, entropy) => new RegisterVmm({ mode, entropy }))
    this.makeCore = opts.makeCore ?? (opts.mutant ? MUTANTS[opts.mutant] : (cfg, vmm, init) => new ReplicaCore(cfg, vmm, init))
    this.stats = {
      seed: opts.seed,
      mode: this.mode,
      completed: 0,
      goLives: 0,
      restores: 0,
      crashes: 0,
      pauses: 0,
      cuts: 0,
      stalls: 0,
      diskRestarts: 0,
      diskReorders: 0,
      contentionCrashes: 0,
      restorerCrashes: 0,
      doubleFailures: 0,
      entryParts: 0,
      fenced: 0,
      messages: 0,
      dropped: 0,
      checks: 0,
      finalStatesCompared: 0,
      endedAlone: 0,
      diskContentsChecked: 0
    }
    // each replica incarnation's devices get their own stream: the primary's reads must not depend on the backup's
    const entropySeed = setup.u32()
    this.diskLink = { drop: setup.pick([0, 0, 0.03]), duplicate: 0, minDelay: 1, maxDelay: setup.pick([4, 4, 40]), fifo: true }
    // drawn last, so the seeds' earlier draws stay what they were; small bounds cut ordinary
    // entries and snapshots into parts, as a 9 MiB value is cut on hosts
    this.cfg.maxMessageBytes = setup.pick([4 * 1024 * 1024, 4 * 1024 * 1024, 400, 2000])
    // (drawn after the above, for the same reason) a disk client that reconnects: a retry on a fresh connection may
    // overtake the original, which may still arrive, so the disk server sees requests out of order and twice
    if (setup.chance(1 / 3)) {
      this.diskLink = { ...this.diskLink, fifo: false, duplicate: setup.pick([0, 0.03]) }
      this.stats.diskReorders = 1
    }
    // clients that sometimes SET a value larger than the message bound: an entry (and a state-transfer page) in slices
    const bigValueBytes = this.cfg.maxMessageBytes < 1 << 20 ? setup.int(1, 3) * this.cfg.maxMessageBytes + setup.int(0, 99) : 0
    this.recoverable = opts.guest === 'kv'
    this.entropyFor = (id: string) => {
      const r = new Prng(entropySeed ^ hashId(id))
      return { now: () => EPOCH + this.q.now, u32: () => r.u32() }
    }
    const kinds: RequestKind[] = opts.guest === 'kv' ? ['set', 'get', 'incr', 'setpx', 'getpx'] : ['set', 'get', 'incr', 'time', 'rand', 'save']
    for (let i = 1; i <= (opts.clients ?? 4); i++) {
      this.clients.push(
        new SimClient({
          id: `c${i}`,
          kinds: [...kinds],
          bigValueBytes,
          rng: this.rng.fork(),
          q: this.q,
          checker: this.checker,
          timeoutMs: CLIENT_TIMEOUT_MS,
          connect: (client, to, sink) => {
            const node = this.nodes.get(to)
            if (!node) throw new Error(`no replica ${to}`)
            return new SimStream(this.net, this.q, client, node.replica, this.clientLink, sink)
          },
          targets: [...REPLICAS],
          onComplete: () => this.stats.completed++,
          log: (line) => this.log(line)
        })
      )
    }
  }

  run(): SimStats {
    this.startNode('a', 'primary', 1)
    this.startNode('b', 'backup', 1)
    for (const c of this.clients) this.q.schedule(this.rng.int(0, 20), () => c.next())
    this.q.schedule(this.chaos.int(100, 300), () => this.injectFault())
    this.q.schedule(this.faultMs, () => this.healEverything())
    this.scheduleRestorer()
    const end = this.faultMs + this.settleMs
    const ticksAt = new Map<SimNode, number>()
    this.q.schedule(end - this.settleMs / 2, () => {
      for (const n of this.serving()) if (n.vmm instanceof RegisterVmm) ticksAt.set(n, n.vmm.ticks())
    })
    while (this.q.runNext(end)) {
      /* every event checks its own invariants */
    }
    for (const c of this.clients) c.checkProgress(end, this.settleMs / 2)
    // pending I/O resumes after go-live: the guest's periodic timer keeps firing on whoever serves
    for (const n of this.serving()) {
      const before = ticksAt.get(n)
      if (before !== undefined && n.vmm instanceof RegisterVmm && n.vmm.ticks() === before) {
        this.checker.fail(
          `the guest timer of ${n.id}#${n.inc} (${n.role}, generation ${n.gen}) has not fired for ${this.settleMs / 2}ms after every fault healed: a timer the guest armed was not re-armed (pending I/O not re-issued at go-live?)`
        )
      }
    }
    this.drainAndCompare(end)
    this.stats.messages = this.net.sent
    this.stats.dropped = this.net.dropped
    this.stats.checks = this.checker.checks
    return this.stats
  }

  /**
   * The end of every run: clients send no new requests, the pair drains (restore redundancy goes on, faults do not),
   * and then a live primary and a backup of its generation must stand at the same entry with the same guest state.
   * A pair that does not get there within drainMs is a liveness failure; a run that still has one replica serving
   * alone then (its restore not done) is counted (endedAlone). With the kv guest, the disk server's blocks must
   * also boot a guest whose durable state is the live guest's (sim/disk-check.ts).
   */
  private drainAndCompare(end: number): void {
    for (const c of this.clients) c.stop()
    const until = end + this.drainMs
    this.log(`DRAIN clients stop; the pair has until ${until}ms to stand at one entry`)
    let pair = this.convergedPair()
    while (!pair && this.q.runNext(until)) pair = this.convergedPair()
    if (pair) {
      const [p, b] = pair
      const entry = p.core.status().lastEntry
      const ph = p.vmm.stateHash()
      const bh = b.vmm.stateHash()
      if (ph !== bh)
        this.checker.fail(
          `final guest states differ: primary ${p.id}#${p.inc} and backup ${b.id}#${b.inc} both stand at entry ${entry} of generation ${p.gen} with state hashes ${ph} and ${bh}`
        )
      this.stats.finalStatesCompared++
      this.log(`DRAINED ${p.id} and ${b.id} stand at entry ${entry} of generation ${p.gen} with the same state`)
      this.checkDisk(p)
      return
    }
    const up = [...this.nodes.values()].filter((n) => n.replica.alive && n.role !== 'halted')
    const p = up.find((n) => n.role === 'primary')
    const b = up.find((n) => n.role === 'backup' && n.gen === p?.gen)
    if (p && b) {
      const ps = p.core.status()
      const bs = b.core.status()
      this.checker.fail(
        `liveness: primary ${p.id}#${p.inc} and backup ${b.id}#${b.inc} of generation ${p.gen} did not converge within ${this.drainMs}ms after every fault healed ` +
          `and the clients stopped: the primary stands at entry ${ps.lastEntry} (acked ${ps.acked}, ${ps.heldOutputs} outputs held, ${ps.queuedInputs} inputs queued, ` +
          `${p.vmm.pendingSyncs?.().length ?? 0} syncs pending), the backup at entry ${bs.lastEntry} (${bs.queuedInputs} inputs queued)`
      )
    }
    const live = up.find((n) => n.role === 'live')
    if (!live) {
      this.checker.fail(
        `liveness: no replica serves ${this.drainMs}ms after the clients stopped (${up.map((n) => `${n.id}#${n.inc} ${n.role} of generation ${n.gen}`).join(', ') || 'none is up'})`
      )
    }
    // one replica serves alone: its restore of redundancy did not finish; its guest still must match the disk
    this.stats.endedAlone++
    this.log(`DRAINED ${live.id} serves alone in generation ${live.gen}: restore redundancy not done`)
    if (this.quiescent(live)) this.checkDisk(live)
  }

  /** A live primary and the backup of its generation, at the same entry with nothing in flight between them; null if not (yet). */
  private convergedPair(): [SimNode, SimNode] | null {
    let p: SimNode | undefined
    let b: SimNode | undefined
    for (const n of this.nodes.values()) {
      if (!n.replica.alive || n.replica.paused) continue
      if (n.role === 'primary') p = n
      else if (n.role === 'backup') b = n
    }
    if (!p || !b || p.gen !== b.gen || !this.quiescent(p)) return null
    const ps = p.core.status()
    const bs = b.core.status()
    return bs.gen === ps.gen && bs.lastEntry === ps.lastEntry && bs.queuedInputs === 0 && ps.acked === ps.lastEntry ? [p, b] : null
  }

  /** Nothing of the serving replica is waiting: no queued input, no held output, no restore, no disk sync outstanding. */
  private quiescent(n: SimNode): boolean {
    const s = n.core.status()
    return s.genConfirmed && s.queuedInputs === 0 && s.heldOutputs === 0 && !s.restoring && (n.vmm.pendingSyncs?.().length ?? 0) === 0
  }

  /**
   * Disk contents match the acknowledged writes (kv): a guest booted from the disk server's blocks, as a power-on from
   * disk boots it, holds the live guest's keys, values and expiry times. Only with appendfsync always (sim/disk-check.ts).
   */
  private checkDisk(n: SimNode): void {
    if (!this.recoverable) return
    // the live guest's snapshot restarts its realm: harmless here, the run is over
    const live = n.vmm.snapshot().pages
    if (!syncsEveryWrite(live)) return
    const fresh = this.makeVmm(this.mode, this.entropyFor('disk-check'))
    bootFromDisk(fresh, this.diskStore)
    const diff = firstDurableDifference(live, fresh.snapshot().pages)
    if (diff !== null)
      this.checker.fail(`disk contents do not match the acknowledged writes of ${n.id}#${n.inc} (${n.role}, generation ${n.gen}): first difference at ${diff}`)
    this.stats.diskContentsChecked++
  }

  /** The replicas serving clients now (alive, not paused, primary or live). */
  private serving(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.replica.alive && !n.replica.paused && (n.role === 'primary' || n.role === 'live'))
  }

  /** Where everything stands, for a failure report. */
  describe(): string {
    const nodes = [...this.nodes.values()].map((n) => {
      const s = n.core.status()
      const flags = [n.replica.alive ? '' : 'dead', n.replica.paused ? 'paused' : '', n.stalled ? 'stalled' : ''].filter(Boolean)
      return `  ${n.id}#${n.inc} ${s.role} gen ${s.gen} last ${s.lastEntry} acked ${s.acked} held ${s.heldOutputs} queued ${s.queuedInputs} released ${s.releasedThrough} ${flags.join(' ')}`
    })
    return [...nodes, `  disk ${JSON.stringify(this.arbiter.status())}`, ...this.clients.map((c) => `  ${c.describe()}`)].join('\n')
  }

  private log(line: string): void {
    this.trace.push(`${String(this.q.now).padStart(6)}ms ${line}`)
    if (this.trace.length > (process.env.FTLAB_SIM_VERBOSE ? 2000 : 200)) this.trace.shift()
  }

  // ------------------------------------------------------------ replicas

  private startNode(id: string, role: 'primary' | 'backup' | 'joining' | 'recover', gen: number): SimNode {
    const prev = this.nodes.get(id)
    const inc = (prev?.inc ?? 0) + 1
    const vmm = this.makeVmm(this.mode, this.entropyFor(`${id}#${inc}`))
    const peer = REPLICAS.find((r) => r !== id) ?? null
    const core = this.makeCore({ ...this.cfg, id, peer: role === 'joining' ? null : peer }, vmm, { role, gen, now: this.q.now })
    // a replica booting from disk acts live from its first action (its outputs wait for the disk server's answer)
    const node = { id, inc, core, vmm, role: role === 'recover' ? 'live' : role, gen, stalled: false, hashedAt: '' } as SimNode
    node.replica = new SimReplica({
      id,
      inc,
      q: this.q,
      net: this.net,
      routes: { replica: (r) => this.nodes.get(r)?.replica, disk: this.disk },
      core,
      vmm,
      guest: vmm.guestName,
      heartbeatMs: this.cfg.heartbeatMs,
      diskRetryMs: this.cfg.diskRetryMs,
      diskTimeoutMs: Math.max(200, this.cfg.suspectMs),
      peerLink: this.peerLink,
      diskLink: this.diskLink,
      // the core bounds every message by maxMessageBytes; a little over it is the frame limit here, so a
      // core that sends an oversize message (a 9 MiB value on hosts) is caught, not silently delivered
      frameLimit: this.cfg.maxMessageBytes + 1024,
      onRefused: (msg, bytes) =>
        this.checker.fail(
          `${id} sent a ${msg.t} message of about ${bytes} bytes, above the channel's frame limit (maxMessageBytes ${this.cfg.maxMessageBytes})`
        ),
      epoch: EPOCH,
      observer: { action: (a) => this.observe(node, a), stepped: () => this.afterStep(node) },
      diskAnswered: (req, res) => {
        if (req.op === 'write' && !res.ok && res.error === 'fenced') this.checker.onFenced(id, req.gen)
      }
    })
    this.nodes.set(id, node)
    this.log(`${id}#${node.inc} starts as ${role} of generation ${gen}`)
    node.replica.start()
    return node
  }

  private afterStep(node: SimNode): void {
    if (node.role === 'primary' || node.role === 'backup') {
      const s = node.core.status()
      const key = `${s.gen}:${s.lastEntry}`
      if (key !== node.hashedAt) {
        node.hashedAt = key
        this.checker.onHash(node.id, node.role, s.gen, s.lastEntry, node.vmm.stateHash())
      }
    }
  }

  /** Every action the edge performs, judged with the role its replica had when it emitted it. */
  private observe(node: SimNode, a: Action): void {
    this.checker.onAction(node.id, node.role, node.gen, a)
    switch (a.t) {
      case 'role':
        if (a.role === 'live' && node.role !== 'live') this.stats.goLives++
        node.role = a.role
        node.gen = a.gen
        this.log(`${node.id}#${node.inc} -> ${a.role} (gen ${a.gen}): ${a.reason}`)
        return
      case 'send-peer': {
        if (a.msg.t === 'entry-part') this.stats.entryParts++
        if (a.msg.t === 'ack' && node.role === 'backup') this.checker.onAckSent(a.msg.gen, a.msg.n)
        if (a.msg.t === 'heartbeat' && node.role === 'backup') this.checker.onAckSent(a.msg.gen, a.msg.last)
        const msg = a.msg
        if (process.env.FTLAB_SIM_VERBOSE)
          this.log(`${node.id} -> ${a.to ?? '?'}: ${msg.t} ${msg.t === 'entries' ? msg.entries.map((e) => e.n).join(',') : msg.t === 'ack' ? msg.n : ''}`)
        return
      }
      case 'stall':
        node.stalled = a.on
        if (a.on) this.stats.stalls++
        return
      case 'telemetry':
        if (a.ev.k === 'diverged') this.checker.fail(`${node.id} reports divergence at entry ${a.ev.n}: primary ${a.ev.primaryHash}, backup ${a.ev.backupHash}`)
        if (a.ev.k === 'tas' && a.ev.result !== 'unreachable') this.log(`${node.id} test-and-set gen ${a.ev.gen}: ${a.ev.result}`)
        return
      default:
        return
    }
  }

  // --------------------------------------------------------------- faults

  private injectFault(): void {
    if (!this.faultsOn) return
    const r = this.chaos
    if (!this.started()) {
      // Lab.start returns only once the backup holds the boot entry (before that a dead primary is a failed
      // start, reported as one, and the backup rightly never goes live with an unbooted guest): faults begin then
      this.q.schedule(this.q.now + 10, () => this.injectFault())
      return
    }
    const kind = r.pick(['crash', 'crash', 'pause', 'pause', 'peer-cut', 'peer-cut', 'disk-cut', 'disk-restart', 'client-cut', 'isolate'] as const)
    const up = [...this.nodes.values()].filter((n) => n.replica.alive && !n.replica.paused)
    const victim = up.length > 0 ? r.pick(up) : undefined
    const long = r.int(20, 5 * this.cfg.suspectMs)
    if (victim) {
      switch (kind) {
        case 'crash': {
          const how = this.crashable(victim, r)
          if (how !== null) {
            victim.replica.kill()
            this.stats.crashes++
            if (how === 'contention') this.stats.contentionCrashes++
            if (how === 'restorer') this.stats.restorerCrashes++
            this.log(`FAULT crash ${victim.id}#${victim.inc} (${victim.role}, ${CRASHES[how]})`)
          }
          break
        }
        case 'disk-restart':
          this.restartDisk(long)
          break
        case 'pause':
          victim.replica.pause()
          this.stats.pauses++
          this.log(`FAULT pause ${victim.id} for ${long}ms`)
          this.q.schedule(this.q.now + long, () => this.resume(victim))
          break
        case 'peer-cut': {
          const dir = r.pick(['both', 'a>b', 'b>a'] as const)
          const links: [string, string][] =
            dir === 'both'
              ? [
                  ['a', 'b'],
                  ['b', 'a']
                ]
              : [[dir[0], dir[2]]]
          this.cutFor(links, long, `peer link ${dir}`)
          break
        }
        case 'disk-cut':
          this.cutFor(
            [
              [victim.id, 'disk'],
              ['disk', victim.id]
            ],
            long,
            `${victim.id} <-> disk`
          )
          break
        case 'client-cut':
          this.cutFor(
            this.clients.flatMap((c): [string, string][] => [
              [c.id, victim.id],
              [victim.id, c.id]
            ]),
            long,
            `clients <-> ${victim.id}`
          )
          break
        case 'isolate': {
          const others = ['disk', ...REPLICAS.filter((x) => x !== victim.id), ...this.clients.map((c) => c.id)]
          this.cutFor(
            others.flatMap((o): [string, string][] => [
              [o, victim.id],
              [victim.id, o]
            ]),
            long,
            `isolate ${victim.id}`
          )
          break
        }
      }
    }
    this.q.schedule(this.q.now + r.int(100, 400), () => this.injectFault())
  }

  private startedAt: number | null = null

  /** The lab is started, as Lab.start means it: the backup of generation 1 has applied the boot entry. */
  private started(): boolean {
    if (this.startedAt === null && [...this.nodes.values()].some((n) => n.role === 'backup' && n.core.status().lastEntry > 0)) this.startedAt = this.q.now
    return this.startedAt !== null
  }

  /**
   * Whether a crash of `victim` now is one the lab claims to survive, and which (null: not now). Primary/backup
   * replication survives one failure at a time; with a guest that keeps its state on the disk server (kv), a second
   * failure before redundancy is restored is survivable too, by booting from disk.
   */
  private crashable(victim: SimNode, r: Prng): keyof typeof CRASHES | null {
    const pair = [...this.nodes.values()]
    const other = pair.find((n) => n !== victim)
    const otherUp = other !== undefined && other.replica.alive && other.role !== 'halted'
    // fail-stop of one replica of a working pair; the other must carry on
    const working = pair.every((n) => n.replica.alive && !n.replica.paused && !n.core.status().peerSuspected)
    if (working && pair.some((n) => n.role === 'primary') && pair.some((n) => n.role === 'backup')) return 'pair'
    // the new backup during restore redundancy (not while it contends: it may have won already): its restorer carries on alone
    const restoring =
      (victim.role === 'joining' || (victim.role === 'backup' && other?.core.status().restoring === true)) && !victim.core.status().peerSuspected
    if (restoring && otherUp) return 'new-backup'
    if (pair.some((n) => n.replica.alive && n.core.status().peerSuspected)) {
      // The loser of a contended test-and-set, once the other has won: the winner carries on. Killing a contender
      // that may win before it learns so leaves nobody live: a double failure, survivable only from disk.
      const disk = this.arbiter.status()
      if (otherUp && other.gen === disk.gen && disk.tasWinner === other.id) return 'contention'
      if (this.recoverable && r.chance(0.5)) return 'contention'
      return null
    }
    if (!this.recoverable || !r.chance(0.5)) return null
    // a second failure in a row: the restorer before its new backup holds the snapshot, or the last replica serving
    if (victim.core.status().restoring) return 'restorer'
    if (!otherUp || other.role === 'joining') return 'second'
    return null
  }

  private crashRestorer(node: SimNode): void {
    if (!this.faultsOn || !node.replica.alive || node.replica.paused || !node.core.status().restoring) return
    node.replica.kill()
    this.stats.crashes++
    this.stats.restorerCrashes++
    this.log(`FAULT crash ${node.id}#${node.inc} (${node.role}, ${CRASHES.restorer})`)
  }

  /** The disk server process restarts: every connection breaks; its store and generation survive, the blocks' write ids do not. */
  private restartDisk(ms: number): void {
    if (this.diskDown) return
    this.diskDown = true
    this.diskRun++
    this.stats.diskRestarts++
    this.log(`FAULT disk server down for ${ms}ms, then restarts`)
    this.q.schedule(this.q.now + ms, () => {
      this.arbiter = new DiskArbiter(this.diskStore, { maxBlocks: 1024 })
      this.diskRun++
      this.diskDown = false
      this.log('HEAL disk server restarted')
    })
  }

  private cutFor(links: [string, string][], ms: number, what: string): void {
    this.stats.cuts++
    this.log(`FAULT cut ${what} for ${ms}ms`)
    for (const [f, t] of links) this.net.cut(f, t)
    this.q.schedule(this.q.now + ms, () => {
      if (!this.faultsOn) return
      for (const [f, t] of links) this.net.heal(f, t)
    })
  }

  private resume(node: SimNode): void {
    if (!node.replica.paused) return
    this.log(`HEAL resume ${node.id}#${node.inc}`)
    node.replica.resume()
  }

  private healEverything(): void {
    this.faultsOn = false
    this.net.healAll()
    this.log('HEAL everything; faults stop')
    for (const n of this.nodes.values()) this.resume(n)
  }

  /**
   * Restore redundancy, as an operator would: once one replica is live and the other is
   * dead or halted, start a fresh replica in its place and have the live one restore onto it.
   */
  private scheduleRestorer(): void {
    const check = () => {
      // Both replicas down (dead, halted, or a new backup whose restorer died): power on, as drills do, booting the
      // guest from the disk server in the next generation. Only a guest that keeps its state there survives it.
      const up = [...this.nodes.values()].filter((n) => n.replica.alive && (n.role === 'primary' || n.role === 'live' || n.role === 'backup'))
      if (up.length === 0 && this.recoverable) {
        for (const n of this.nodes.values()) n.replica.kill()
        const id = this.chaos.pick([...REPLICAS])
        const gen = this.arbiter.status().gen + 1
        this.stats.doubleFailures++
        this.log(`POWER-ON both replicas are down: ${id} boots from the disk server in generation ${gen}`)
        this.startNode(id, 'recover', gen)
      }
      const live = [...this.nodes.values()].find(
        (n) => n.replica.alive && !n.replica.paused && n.role === 'live' && n.core.status().genConfirmed && !n.core.status().restoring
      )
      const other = live && this.nodes.get(REPLICAS.find((r) => r !== live.id)!)
      if (live && other && (!other.replica.alive || other.role === 'halted' || other.role === 'joining')) {
        other.replica.kill()
        const gen = live.gen + 1
        this.startNode(other.id, 'joining', gen)
        this.stats.restores++
        this.log(`RESTORE ${live.id} onto a fresh ${other.id}, generation ${gen}`)
        live.replica.edge.beginRestore({ id: other.id, channel: { host: other.id, port: 0 } }, gen)
        // a crash of the restorer before its new backup holds the snapshot: rare if left to the fault draws
        // (a restore takes a few ms), so some restores get one on purpose
        if (this.recoverable && this.faultsOn && this.chaos.chance(0.15)) this.q.schedule(this.q.now + this.chaos.int(1, 20), () => this.crashRestorer(live))
      }
      this.q.schedule(this.q.now + 50, check)
    }
    this.q.schedule(50, check)
  }
}

function hashId(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h >>> 0
}

export { encodeCommand }
