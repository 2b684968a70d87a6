// A seeded simulation of an FT Lab replica pair (TigerBeetle's VOPR, FoundationDB's
// simulator): the real ReplicaCore and the real DiskArbiter, with a fake clock, a hostile
// network, crashes, pauses, restore redundancy, and clients that check what they see.
// A run is a pure function of its seed; a failure says how to replay it.
import { DiskArbiter, MemoryBlockStore } from '../../agent/disk/arbiter.js'
import { ReplicaCore } from '../../agent/replica/core.js'
import type { Action, DiskReq, Event, ReplicaConfig, Role } from '../../agent/replica/types.js'
import type { Entropy, ReplicationMode, Vmm } from '../../agent/vmm/types.js'
import { Checker, SimFailure } from './checker.js'
import { Prng } from './prng.js'
import { encodeCommand } from './resp.js'
import { RegisterVmm } from './register-vmm.js'
import { SimClient } from './client.js'
import { EventQueue, Network, type LinkQuality } from './world.js'

export type GuestKind = 'register' | 'kv'
export type CoreFactory = (cfg: ReplicaConfig, vmm: Vmm, init: { role: 'primary' | 'backup' | 'joining'; gen: number; now: number }) => ReplicaCore
export type VmmFactory = (mode: ReplicationMode, entropy: Entropy) => Vmm

export interface SimOptions {
  seed: number
  guest?: GuestKind
  /** how to build a VMM; default: the register test guest */
  makeVmm?: VmmFactory
  /** how to build a replica core; default: the real one (tests swap in broken ones) */
  makeCore?: CoreFactory
  /** virtual ms with faults, then virtual ms healed, in which every client must make progress */
  faultMs?: number
  settleMs?: number
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
  messages: number
  dropped: number
  checks: number
}

const REPLICAS = ['a', 'b'] as const
const TICK_MS = 5
const CLIENT_TIMEOUT_MS = 120
const DISK_LINK: LinkQuality = { drop: 0, duplicate: 0, minDelay: 1, maxDelay: 4, fifo: true }

interface SimNode {
  id: string
  inc: number
  core: ReplicaCore
  vmm: Vmm
  alive: boolean
  paused: boolean
  /** deliveries that arrived while paused: a frozen process finds them in its socket buffers */
  inbox: (() => void)[]
  role: Role
  gen: number
  stalled: boolean
  /** client requests not read while stalled */
  parked: (() => void)[]
  timers: Map<number, number>
  hashedAt: string
}

export const replayCommand = (seed: number, guest: GuestKind): string => `FTLAB_SIM_SEED=${seed} FTLAB_SIM_GUEST=${guest} npx vitest run test/sim`

export function runSimulation(opts: SimOptions): SimStats {
  const sim = new Simulation(opts)
  try {
    return sim.run()
  } catch (err) {
    const guest = opts.guest ?? 'register'
    const what = err instanceof SimFailure ? err.message : `crashed at t=${sim.q.now}ms: ${(err as Error)?.stack ?? String(err)}`
    throw new SimFailure(
      `simulation seed ${opts.seed} (${sim.mode}, guest ${guest}) failed: ${what}\n` +
        `replay: ${replayCommand(opts.seed, guest)}\n` +
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
  private readonly arbiter = new DiskArbiter(new MemoryBlockStore(), { maxBlocks: 1024 })
  private readonly nodes = new Map<string, SimNode>()
  private readonly clients: SimClient[] = []
  private readonly cfg: Omit<ReplicaConfig, 'id' | 'peer'>
  private readonly peerLink: LinkQuality
  private readonly clientLink: LinkQuality
  private readonly faultMs: number
  private readonly settleMs: number
  private readonly makeVmm: VmmFactory
  private readonly makeCore: CoreFactory
  private readonly entropyFor: (id: string) => Entropy
  private faultsOn = true
  private nextReadId = 1_000_000
  private nextTimerToken = 1
  private stats: SimStats

  constructor(private readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed)
    const setup = this.rng.fork()
    this.net = new Network(this.q, this.rng.fork())
    this.chaos = this.rng.fork()
    this.checker = new Checker(() => this.q.now)
    this.mode = setup.chance(0.5) ? 'rsm' : 'state-transfer'
    this.faultMs = opts.faultMs ?? 3000
    this.settleMs = opts.settleMs ?? 1500
    this.cfg = {
      mode: this.mode,
      heartbeatMs: 20,
      suspectMs: 100,
      diskRetryMs: 40,
      maxUnackedEntries: setup.pick([4, 16, 64]),
      maxUnackedBytes: setup.pick([1500, 1 << 20]),
      batchEntries: setup.pick([1, 3, 16]),
      hashEvery: setup.pick([1, 2, 5])
    }
    this.peerLink = { drop: setup.float() * 0.06, duplicate: setup.float() * 0.04, minDelay: 1, maxDelay: setup.int(2, 12), fifo: false }
    this.clientLink = { drop: 0.02, duplicate: 0.02, minDelay: 1, maxDelay: 8, fifo: false }
    this.makeVmm = opts.makeVmm ?? ((mode, e) => new RegisterVmm({ mode, entropy: e }))
    this.makeCore = opts.makeCore ?? ((cfg, vmm, init) => new ReplicaCore(cfg, vmm, init))
    this.stats = { seed: opts.seed, mode: this.mode, completed: 0, goLives: 0, restores: 0, crashes: 0, pauses: 0, cuts: 0, stalls: 0, messages: 0, dropped: 0, checks: 0 }
    // each replica incarnation's devices get their own stream: the primary's reads must not depend on the backup's
    const entropySeed = setup.u32()
    const epoch = 1_700_000_000_000
    this.entropyFor = (id: string) => {
      const r = new Prng(entropySeed ^ hashId(id))
      return { now: () => epoch + this.q.now, u32: () => r.u32() }
    }
    const kinds = opts.guest === 'kv' ? (['set', 'get', 'incr'] as const) : (['set', 'get', 'incr', 'time', 'rand', 'save'] as const)
    for (let i = 1; i <= (opts.clients ?? 4); i++) {
      this.clients.push(
        new SimClient({
          id: `c${i}`,
          kinds: [...kinds],
          rng: this.rng.fork(),
          q: this.q,
          checker: this.checker,
          timeoutMs: CLIENT_TIMEOUT_MS,
          send: (client, to, data) => this.net.send(client, to, this.clientLink, () => this.onClientRequest(to, client, data)),
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
    while (this.q.runNext(end)) {
      /* every event checks its own invariants */
    }
    for (const c of this.clients) c.checkProgress(end, this.settleMs / 2)
    this.stats.messages = this.net.sent
    this.stats.dropped = this.net.dropped
    this.stats.checks = this.checker.checks
    return this.stats
  }

  /** Where everything stands, for a failure report. */
  describe(): string {
    const nodes = [...this.nodes.values()].map((n) => {
      const s = n.core.status()
      const flags = [n.alive ? '' : 'dead', n.paused ? 'paused' : '', n.stalled ? 'stalled' : '', n.parked.length ? `${n.parked.length} parked` : ''].filter(Boolean)
      return `  ${n.id}#${n.inc} ${s.role} gen ${s.gen} last ${s.lastEntry} acked ${s.acked} held ${s.heldOutputs} queued ${s.queuedInputs} released ${s.releasedThrough} ${flags.join(' ')}`
    })
    return [...nodes, `  disk ${JSON.stringify(this.arbiter.status())}`, ...this.clients.map((c) => `  ${c.describe()}`)].join('\n')
  }

  private log(line: string): void {
    this.trace.push(`${String(this.q.now).padStart(6)}ms ${line}`)
    if (this.trace.length > (process.env.FTLAB_SIM_VERBOSE ? 2000 : 200)) this.trace.shift()
  }

  // ------------------------------------------------------------ replicas

  private startNode(id: string, role: 'primary' | 'backup' | 'joining', gen: number): SimNode {
    const prev = this.nodes.get(id)
    const vmm = this.makeVmm(this.mode, this.entropyFor(`${id}#${(prev?.inc ?? 0) + 1}`))
    const peer = REPLICAS.find((r) => r !== id) ?? null
    const core = this.makeCore({ ...this.cfg, id, peer: role === 'joining' ? null : peer }, vmm, { role, gen, now: this.q.now })
    const node: SimNode = { id, inc: (prev?.inc ?? 0) + 1, core, vmm, alive: true, paused: false, inbox: [], role, gen, stalled: false, parked: [], timers: new Map(), hashedAt: '' }
    this.nodes.set(id, node)
    this.log(`${id}#${node.inc} starts as ${role} of generation ${gen}`)
    this.afterStep(node)
    const tick = () => {
      if (this.nodes.get(id) !== node || !node.alive) return
      if (!node.paused) this.step(node, { t: 'tick', now: this.q.now })
      this.q.schedule(this.q.now + TICK_MS, tick)
    }
    this.q.schedule(this.q.now + this.rng.int(1, TICK_MS), tick)
    return node
  }

  /** Runs `fn` on the node if this incarnation is still up; holds it while the node is paused. */
  private deliver(node: SimNode | undefined, fn: () => void): void {
    if (!node || !node.alive || this.nodes.get(node.id) !== node) return
    if (node.paused) node.inbox.push(fn)
    else fn()
  }

  private step(node: SimNode, ev: Event): void {
    node.core.step(ev)
    this.afterStep(node)
  }

  private afterStep(node: SimNode): void {
    for (const a of node.core.takeActions()) this.perform(node, a)
    if (node.role === 'primary' || node.role === 'backup') {
      const s = node.core.status()
      const key = `${s.gen}:${s.lastEntry}`
      if (key !== node.hashedAt) {
        node.hashedAt = key
        this.checker.onHash(node.id, node.role, s.gen, s.lastEntry, node.vmm.stateHash())
      }
    }
  }

  private perform(node: SimNode, a: Action): void {
    this.checker.onAction(node.id, node.role, node.gen, a)
    switch (a.t) {
      case 'role':
        node.role = a.role
        node.gen = a.gen
        this.log(`${node.id}#${node.inc} -> ${a.role} (gen ${a.gen}): ${a.reason}`)
        if (a.role === 'live') this.stats.goLives++
        return
      case 'send-peer': {
        const to = a.to ?? REPLICAS.find((r) => r !== node.id)!
        if (a.msg.t === 'ack' && node.role === 'backup') this.checker.onAckSent(a.msg.gen, a.msg.n)
        if (a.msg.t === 'heartbeat' && node.role === 'backup') this.checker.onAckSent(a.msg.gen, a.msg.last)
        const msg = a.msg
        if (process.env.FTLAB_SIM_VERBOSE) this.log(`${node.id} -> ${to}: ${msg.t} ${msg.t === 'entries' ? msg.entries.map((e) => e.n).join(',') : msg.t === 'ack' ? msg.n : ''}`)
        this.net.send(node.id, to, this.peerLink, () => {
          const target = this.nodes.get(to)
          this.deliver(target, () => this.step(target!, { t: 'peer', now: this.q.now, msg }))
        })
        return
      }
      case 'send-disk':
        return this.sendDisk(node, a.req, (res) => this.step(node, { t: 'disk', now: this.q.now, res }))
      case 'release':
        if (a.out.t === 'reply' && a.out.conn.startsWith('s:')) {
          const { conn, data } = a.out
          const client = this.clients.find((c) => c.id === conn.slice(2))
          if (client) this.net.send(node.id, client.id, this.clientLink, () => client.onReply(data))
        }
        return
      case 'io':
        return this.performIo(node, a.req)
      case 'stall':
        node.stalled = a.on
        if (a.on) this.stats.stalls++
        else {
          const parked = node.parked
          node.parked = []
          for (const fn of parked) this.q.schedule(this.q.now, () => this.deliver(node, fn))
        }
        return
      case 'telemetry':
        if (a.ev.k === 'diverged') this.checker.fail(`${node.id} reports divergence at entry ${a.ev.n}: primary ${a.ev.primaryHash}, backup ${a.ev.backupHash}`)
        if (a.ev.k === 'tas' && a.ev.result !== 'unreachable') this.log(`${node.id} test-and-set gen ${a.ev.gen}: ${a.ev.result}`)
        return
    }
  }

  private sendDisk(node: SimNode, req: DiskReq, onAnswer: (res: ReturnType<DiskArbiter['handle']>) => void): void {
    this.net.send(node.id, 'disk', DISK_LINK, () => {
      const res = this.arbiter.handle(req)
      this.checker.onDiskAnswer(req, res)
      // the answer travels back on the same connection: a new incarnation never sees it
      this.net.send('disk', node.id, DISK_LINK, () => this.deliver(node, () => onAnswer(res)))
    })
  }

  private performIo(node: SimNode, req: Extract<Action, { t: 'io' }>['req']): void {
    const serving = () => node.role === 'primary' || node.role === 'live'
    switch (req.t) {
      case 'timer-set': {
        const token = this.nextTimerToken++
        node.timers.set(req.id, token)
        this.q.schedule(this.q.now + req.ms, () =>
          this.deliver(node, () => {
            if (node.timers.get(req.id) !== token || !serving()) return
            node.timers.delete(req.id)
            this.step(node, { t: 'input', now: this.q.now, input: { t: 'timer', id: req.id } })
          })
        )
        return
      }
      case 'timer-cancel':
        node.timers.delete(req.id)
        return
      case 'disk-read':
        this.sendDisk(node, { id: this.nextReadId++, op: 'read', block: req.block }, (res) => {
          if (!serving() || !res.ok) return
          this.step(node, { t: 'input', now: this.q.now, input: { t: 'disk-read', tag: req.tag, block: req.block, data: res.data ?? new Uint8Array(0) } })
        })
        return
    }
  }

  /** A client's request reaches a replica's service port. */
  private onClientRequest(to: string, client: string, data: Uint8Array): void {
    const node = this.nodes.get(to)
    const handle = () => {
      if (node!.role !== 'primary' && node!.role !== 'live') return // not serving: the client times out and follows
      if (node!.stalled) {
        node!.parked.push(handle)
        return
      }
      const conn = `s:${client}`
      if (!node!.vmm.isOpen(conn)) this.step(node!, { t: 'input', now: this.q.now, input: { t: 'open', conn } })
      this.step(node!, { t: 'input', now: this.q.now, input: { t: 'data', conn, data } })
    }
    this.deliver(node, handle)
  }

  // --------------------------------------------------------------- faults

  private injectFault(): void {
    if (!this.faultsOn) return
    const r = this.chaos
    const kind = r.pick(['crash', 'pause', 'pause', 'peer-cut', 'peer-cut', 'disk-cut', 'client-cut', 'isolate'] as const)
    const up = [...this.nodes.values()].filter((n) => n.alive && !n.paused)
    const victim = up.length > 0 ? r.pick(up) : undefined
    const long = r.int(20, 5 * this.cfg.suspectMs)
    if (victim) {
      switch (kind) {
        case 'crash': {
          // fail-stop of one replica of a working pair; the other must carry on
          const pair = [...this.nodes.values()]
          // (not while either is contending: killing a test-and-set winner before it learns it won
          // is a second failure, which primary/backup replication does not claim to survive)
          const working = pair.every((n) => n.alive && !n.paused && !n.core.status().peerSuspected)
          if (working && pair.some((n) => n.role === 'primary') && pair.some((n) => n.role === 'backup')) {
            victim.alive = false
            this.stats.crashes++
            this.log(`FAULT crash ${victim.id}#${victim.inc} (${victim.role})`)
          }
          break
        }
        case 'pause':
          victim.paused = true
          this.stats.pauses++
          this.log(`FAULT pause ${victim.id} for ${long}ms`)
          this.q.schedule(this.q.now + long, () => this.resume(victim))
          break
        case 'peer-cut': {
          const dir = r.pick(['both', 'a>b', 'b>a'] as const)
          const links: [string, string][] = dir === 'both' ? [['a', 'b'], ['b', 'a']] : [[dir[0], dir[2]]]
          this.cutFor(links, long, `peer link ${dir}`)
          break
        }
        case 'disk-cut':
          this.cutFor([[victim.id, 'disk'], ['disk', victim.id]], long, `${victim.id} <-> disk`)
          break
        case 'client-cut':
          this.cutFor(this.clients.flatMap((c): [string, string][] => [[c.id, victim.id], [victim.id, c.id]]), long, `clients <-> ${victim.id}`)
          break
        case 'isolate': {
          const others = ['disk', ...REPLICAS.filter((x) => x !== victim.id), ...this.clients.map((c) => c.id)]
          this.cutFor(others.flatMap((o): [string, string][] => [[o, victim.id], [victim.id, o]]), long, `isolate ${victim.id}`)
          break
        }
      }
    }
    this.q.schedule(this.q.now + r.int(100, 400), () => this.injectFault())
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
    if (!node.paused) return
    node.paused = false
    this.log(`HEAL resume ${node.id}#${node.inc}`)
    const inbox = node.inbox
    node.inbox = []
    for (const fn of inbox) this.deliver(node, fn)
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
      const live = [...this.nodes.values()].find((n) => n.alive && !n.paused && n.role === 'live' && !n.core.status().restoring)
      const other = live && this.nodes.get(REPLICAS.find((r) => r !== live.id)!)
      if (live && other && (!other.alive || other.role === 'halted' || other.role === 'joining')) {
        other.alive = false
        const gen = live.gen + 1
        this.startNode(other.id, 'joining', gen)
        this.stats.restores++
        this.log(`RESTORE ${live.id} onto a fresh ${other.id}, generation ${gen}`)
        live.core.beginRestore(other.id, gen, this.q.now)
        this.afterStep(live)
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
