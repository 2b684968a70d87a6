// A simulated lab behind the ConsoleBackend interface, for UI development and tests
// until the real lab (main/lab) is wired in. It is believable rather than faithful: roles,
// generations, a logging channel whose entries and acks count up with the load, the
// Output Rule's hold times, suspicion, test-and-set on the disk server, go-live with
// re-emitted outputs, restore redundancy, and faults that heal at their deadline.
//
// Time is a 100 ms tick. With { timers: false } nothing runs by itself and tests drive it
// with advance(ms); randomness comes from a seeded generator so runs repeat.
import { callHandler, type ApiHandlers, type ConsoleService } from './dispatch.js'
import {
  API_VERSION,
  ApiError,
  HOST_IDS,
  type ApiEvent,
  type ChannelStatus,
  type ConsoleInfo,
  type EventsSince,
  type FaultHealParams,
  type FaultInfo,
  type FaultInjectParams,
  type HostId,
  type HostStatus,
  type LabStartParams,
  type LabStatus,
  type LoadStartParams,
  type LoadStatus,
  type Mark,
  type MethodName,
  type ParamsOf,
  type ResultOf,
  type ReplicaHostId,
  downHostStatus,
  emptyInvariants,
  idleLoadStatus
} from './contract.js'
import { ApiEventLog } from './event-log.js'

export interface FakeBackendOptions {
  /** run the tick on a timer (default true); false: call advance() */
  timers?: boolean
  /** console clock at start, ms since epoch (default Date.now()) */
  startTime?: number
  seed?: number
  /** make lab.start fail with this message after the hosts are contacted (to show the error state) */
  startError?: string
  /** events kept for events.since */
  ringSize?: number
}

const TICK_MS = 100
const SUSPECT_MS = 600
const STATUS_EVERY_MS = 250
const MAX_UNACKED_BYTES = 4 * 1024 * 1024

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

interface SimHost extends Mutable<HostStatus> {
  /** last tick at which this host heard its peer */
  heardPeerAt: number
  suspecting: boolean
  tasAt: number | null
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export class FakeBackend implements ConsoleService {
  private now: number
  private readonly rand: () => number
  private readonly opts: FakeBackendOptions
  private readonly events: ApiEventLog
  private timer: ReturnType<typeof setInterval> | null = null
  private closed = false

  private state: LabStatus['state'] = 'stopped'
  private error: string | null = null
  private guest: LabStatus['guest'] = null
  private mode: LabStatus['mode'] = null
  private gen = 0
  private startedAt: number | null = null
  private hosts: Record<HostId, SimHost>
  private channel: (Mutable<ChannelStatus> & { recentHolds: number[]; entryAcc: number }) | null = null
  private faults: FaultInfo[] = []
  private faultCount = 0
  private load: LoadStatus = idleLoadStatus()
  private failoverUntil = 0
  private pending: { at: number; run: () => void }[] = []
  private lastStatusAt = 0
  private pidNext = 41000

  constructor(opts: FakeBackendOptions = {}) {
    this.opts = opts
    this.now = opts.startTime ?? Date.now()
    this.rand = mulberry32(opts.seed ?? 6824)
    this.events = new ApiEventLog(opts.ringSize ?? 10_000)
    this.hosts = {
      a: this.freshHost('a'),
      b: this.freshHost('b'),
      disk: this.freshHost('disk')
    }
    if (opts.timers !== false) {
      this.timer = setInterval(() => this.safeStep(TICK_MS), TICK_MS)
      this.timer.unref?.()
    }
  }

  // ----- ConsoleService ----------------------------------------------------------------

  private readonly handlers: ApiHandlers = {
    'console.info': () => this.info(),
    'lab.list': () => ({
      labs: [{ kind: 'simulated', name: 'simulated', running: this.state === 'running', detail: 'simulated: no processes', when: this.startedAt }]
    }),
    'lab.start': (p) => {
      if ((p.kind ?? 'simulated') !== 'simulated')
        throw new ApiError('unavailable', `lab.start: this console serves the simulated lab only (asked for kind "${p.kind}")`)
      return this.labStart(p)
    },
    'lab.open': () => this.unavailable('lab.open'),
    'lab.deploy': () => this.unavailable('lab.deploy'),
    'lab.stop': () => this.labStop(),
    'lab.teardown': () => this.unavailable('lab.teardown'),
    'lab.detach': () => this.unavailable('lab.detach'),
    'lab.status': () => this.labStatus(),
    'lab.restore': () => this.labRestore(),
    'lab.powerOn': (p) => this.powerOn(p.host),
    'labfile.check': () => this.unavailable('labfile.check'),
    'labfile.save': () => this.unavailable('labfile.save'),
    'fault.inject': (p) => this.faultInject(p),
    'fault.heal': async (p) => ({ warnings: [], ...(await this.faultHeal(p)) }),
    'load.start': (p) => this.loadStart(p),
    'load.stop': () => this.loadStop(),
    'prompt.answer': () => this.unavailable('prompt.answer'),
    'term.open': () => this.unavailable('term.open'),
    'term.input': () => this.unavailable('term.input'),
    'term.resize': () => this.unavailable('term.resize'),
    'term.reconnect': () => this.unavailable('term.reconnect'),
    'term.close': () => this.unavailable('term.close'),
    'term.list': () => ({ terms: [] }),
    'events.since': (p) => this.eventsSince(p.seq)
  }

  handle<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    return callHandler(this.handlers, method, params)
  }

  private unavailable(method: string): never {
    throw new ApiError('unavailable', `${method}: the simulated lab has no hosts, terminals or lab files`)
  }

  info(): ConsoleInfo {
    return {
      apiVersion: API_VERSION,
      backend: 'simulated',
      shell: 'browser',
      lab: { kind: 'simulated', name: 'simulated' },
      canRememberSecrets: false,
      seq: this.events.seq
    }
  }

  async labStart(p: LabStartParams): Promise<LabStatus> {
    if (this.state !== 'stopped' && this.state !== 'error') {
      throw new ApiError('conflict', `lab.start: the lab is ${this.state}; stop it first`)
    }
    this.state = 'starting'
    this.error = null
    this.guest = p.guest
    this.mode = p.mode
    this.gen = 1
    this.startedAt = this.now
    this.faults = []
    this.load = idleLoadStatus()
    for (const id of HOST_IDS) this.hosts[id] = this.freshHost(id)
    this.mark({ kind: 'start', label: `lab start: guest ${p.guest}, ${p.mode}` })
    this.after(200, () => this.bootHost('disk', 'disk-server'))
    if (this.opts.startError) {
      const msg = this.opts.startError
      this.after(500, () => {
        this.state = 'error'
        this.error = msg
        this.hosts.a.error = msg
        this.mark({ kind: 'error', label: `lab start failed: ${msg}`, host: 'a' })
        this.emitStatus()
      })
      return this.snapshot()
    }
    this.after(400, () => this.bootHost('a', 'primary'))
    this.after(600, () => {
      this.bootHost('b', 'backup')
      this.state = 'running'
      this.channel = this.freshChannel('a', 'b')
      this.terminal(`\x1b[2m── generation ${this.gen}: logging channel a → b up ──\x1b[0m`)
      this.emitStatus()
    })
    this.emitStatus()
    return this.snapshot()
  }

  async labStop(): Promise<LabStatus> {
    if (this.state === 'stopped') return this.snapshot()
    this.state = 'stopping'
    this.pending = []
    this.emitStatus()
    this.after(300, () => {
      this.state = 'stopped'
      this.channel = null
      this.faults = []
      this.load = idleLoadStatus()
      for (const id of HOST_IDS) this.hosts[id] = this.freshHost(id)
      this.mark({ kind: 'stop', label: 'lab stopped' })
      this.emitLoad()
      this.emitStatus()
    })
    return this.snapshot()
  }

  async labStatus(): Promise<LabStatus> {
    return this.snapshot()
  }

  snapshotNow(): LabStatus {
    return this.snapshot()
  }

  loadStopNow(): LoadStatus {
    if (this.load.state === 'running') {
      this.load.state = 'idle'
      this.load.opsPerSec = 0
      this.emitLoad()
    }
    return { ...this.load }
  }

  /** Power a host back on: here, its power fault heals (the agent restarts empty). */
  async powerOn(host: HostId): Promise<LabStatus> {
    this.requireRunning('lab.powerOn')
    const f = this.faults.find((x) => x.kind === 'power' && x.target === host)
    if (!f) throw new ApiError('conflict', `lab.powerOn: host ${host}'s power is not cut`)
    this.heal(f, 'power on')
    this.emitStatus()
    return this.snapshot()
  }

  async labRestore(): Promise<LabStatus> {
    this.requireRunning('lab.restore')
    const live = (['a', 'b'] as const).find((id) => this.hosts[id].role === 'live')
    if (!live) {
      throw new ApiError('conflict', 'lab.restore: no replica is live alone; redundancy is already there or no replica survives')
    }
    const other: ReplicaHostId = live === 'a' ? 'b' : 'a'
    const o = this.hosts[other]
    if (this.faults.some((f) => f.target === other || f.target === 'a-b')) {
      throw new ApiError('conflict', `lab.restore: host ${other} still has a fault; heal it first`)
    }
    if (o.role === 'down') {
      // the agent is restarted on the host before the snapshot is shipped
      o.role = 'idle'
      o.pid = this.pidNext++
      o.reachable = true
      o.error = null
    }
    o.role = 'joining'
    o.uptimeMs = 0
    const newGen = this.gen + 1
    this.agent(other, 'role', { role: 'joining', gen: newGen, reason: 'restore redundancy' })
    this.mark({ kind: 'restore', label: `restore redundancy: ${live} → ${other} (gen ${newGen})`, host: other })
    this.after(900, () => {
      if (this.state !== 'running') return
      const bytes = 180_000 + Math.floor(this.rand() * 60_000)
      this.agent(live, 'snapshot', { gen: newGen, bytes, direction: 'sent' })
      this.agent(other, 'snapshot', { gen: newGen, bytes, direction: 'received' })
      this.gen = newGen
      this.setRole(live, 'primary', 'restore redundancy: new backup attached')
      this.setRole(other, 'backup', 'snapshot received')
      this.channel = this.freshChannel(live, other)
      this.terminal(`\x1b[2m── generation ${this.gen}: logging channel ${live} → ${other} up ──\x1b[0m`)
      this.emitStatus()
    })
    this.emitStatus()
    return this.snapshot()
  }

  async faultInject(p: FaultInjectParams): Promise<FaultInfo> {
    this.requireRunning('fault.inject')
    if (this.faults.some((f) => f.target === p.target && f.kind === p.kind)) {
      throw new ApiError('conflict', `fault.inject: ${p.target} already has a ${p.kind} fault; heal it first`)
    }
    const f: FaultInfo = {
      id: `f${++this.faultCount}`,
      target: p.target,
      kind: p.kind,
      params: { ...p.params },
      startedAt: this.now,
      healsAt: this.now + p.durationMs,
      path: 'sim',
      note: null,
      what: `${p.kind} ${p.target}`
    }
    this.faults.push(f)
    const host = (HOST_IDS as readonly string[]).includes(p.target) ? (p.target as HostId) : undefined
    this.mark({ kind: 'fault', label: `${p.kind} ${p.target}${describeParams(f)}`, host })
    if (host) {
      const h = this.hosts[host]
      this.agent(host, 'fault', { id: f.id, kind: p.kind, deadlineMs: p.durationMs })
      if (p.kind === 'power') {
        h.role = 'down'
        h.reachable = false
        h.pid = null
        h.memory = null
        h.error = 'agent not answering: power cut'
      } else if (p.kind === 'pause') {
        h.paused = true
        h.reachable = false
        h.error = 'agent not answering: paused (SIGSTOP)'
      } else if (p.kind === 'isolate') {
        h.isolated = true
      }
    }
    this.emitStatus()
    return f
  }

  async faultHeal(p: FaultHealParams): Promise<{ healed: string[] }> {
    const chosen = p.id === 'all' ? [...this.faults] : this.faults.filter((f) => f.id === p.id)
    if (p.id !== 'all' && chosen.length === 0) {
      throw new ApiError('conflict', `fault.heal: no active fault ${JSON.stringify(p.id)} (it may have healed at its deadline)`)
    }
    for (const f of chosen) this.heal(f, p.id === 'all' ? 'emergency stop' : 'operator')
    this.emitStatus()
    return { healed: chosen.map((f) => f.id) }
  }

  async loadStart(p: LoadStartParams): Promise<LoadStatus> {
    this.requireRunning('load.start')
    if (this.load.state === 'running') throw new ApiError('conflict', 'load.start: a load is already running; stop it first')
    this.load = {
      ...idleLoadStatus(),
      state: 'running',
      clients: p.clients,
      keys: p.keys,
      seconds: p.seconds,
      startedAt: this.now,
      target: this.servingReplica()
    }
    this.mark({ kind: 'start', label: `load: ${p.clients} clients, ${p.keys} keys, ${p.seconds} s` })
    this.emitLoad()
    return { ...this.load }
  }

  async loadStop(): Promise<LoadStatus> {
    return this.loadStopNow()
  }

  eventsSince(since: number): EventsSince {
    return this.events.since(since)
  }

  subscribe(listener: (ev: ApiEvent) => void): () => void {
    return this.events.subscribe(listener)
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.events.unsubscribeAll()
  }

  /** Move the simulated clock on (tests; with timers the interval does this). */
  advance(ms: number): void {
    for (let left = ms; left > 0; left -= TICK_MS) this.step(Math.min(TICK_MS, left))
  }

  // ----- simulation --------------------------------------------------------------------

  private safeStep(dt: number): void {
    try {
      this.step(dt)
    } catch (err) {
      // a bug in the simulation must not take the console down: show it instead
      this.state = 'error'
      this.error = `simulated lab failed: ${err instanceof Error ? err.message : String(err)}`
      this.emitStatus()
    }
  }

  private step(dt: number): void {
    if (this.closed) return
    this.now += dt
    const due = this.pending.filter((p) => p.at <= this.now)
    this.pending = this.pending.filter((p) => p.at > this.now)
    for (const p of due) p.run()

    for (const f of [...this.faults]) if (f.healsAt !== null && f.healsAt <= this.now) this.heal(f, 'deadline')

    for (const id of HOST_IDS) {
      const h = this.hosts[id]
      if (h.pid !== null && !h.paused) {
        h.uptimeMs += dt
        h.memory = { rss: 58_000_000 + Math.floor(this.rand() * 3_000_000), heapUsed: 21_000_000 + Math.floor(this.rand() * 2_000_000) }
      }
    }
    if (this.state === 'running') {
      this.stepReplicas(dt)
      this.stepChannel(dt)
      this.stepLoad(dt)
    }
    if (this.now - this.lastStatusAt >= STATUS_EVERY_MS) this.emitStatus()
  }

  private canTalk(x: HostId, y: HostId): boolean {
    const hx = this.hosts[x]
    const hy = this.hosts[y]
    if (hx.pid === null || hy.pid === null || hx.paused || hy.paused || hx.isolated || hy.isolated) return false
    const link = [x, y].sort((p, q) => (p === 'disk' ? 1 : q === 'disk' ? -1 : p.localeCompare(q))).join('-')
    return !this.faults.some((f) => f.target === link && f.kind === 'cut')
  }

  private stepReplicas(_dt: number): void {
    for (const id of ['a', 'b'] as const) {
      const h = this.hosts[id]
      const peer: ReplicaHostId = id === 'a' ? 'b' : 'a'
      const active = h.role === 'primary' || h.role === 'backup'
      if (!active || h.pid === null || h.paused) continue
      if (this.canTalk(id, peer) && (this.hosts[peer].role === 'primary' || this.hosts[peer].role === 'backup')) {
        h.heardPeerAt = this.now
        h.suspecting = false
        continue
      }
      const silent = this.now - h.heardPeerAt
      if (!h.suspecting && silent >= SUSPECT_MS) {
        h.suspecting = true
        h.tasAt = this.now
        this.agent(id, 'suspect', { peer, silentMs: silent })
        this.mark({ kind: 'suspect', label: `${id} suspects ${peer} (silent ${silent} ms)`, host: id })
      }
      if (h.suspecting && h.tasAt !== null && this.now >= h.tasAt) {
        this.testAndSet(id)
      }
    }
  }

  private testAndSet(id: ReplicaHostId): void {
    const h = this.hosts[id]
    const disk = this.hosts.disk
    const nextGen = this.gen + 1
    if (!this.canTalk(id, 'disk')) {
      this.agent(id, 'tas', { gen: nextGen, result: 'unreachable' })
      h.tasAt = this.now + 500 // retried: the disk server may come back
      return
    }
    if (disk.disk && disk.disk.gen >= nextGen && disk.disk.tasWinner && disk.disk.tasWinner !== id) {
      this.agent(id, 'tas', { gen: nextGen, result: 'lost' })
      this.mark({ kind: 'tas', label: `${id} lost test-and-set (gen ${nextGen})`, host: id })
      this.setRole(id, 'halted', `test-and-set lost to ${disk.disk.tasWinner}`)
      return
    }
    this.gen = nextGen
    if (disk.disk) disk.disk = { ...disk.disk, gen: nextGen, live: id, tasWinner: id }
    disk.gen = nextGen
    this.agent(id, 'tas', { gen: nextGen, result: 'won' })
    this.mark({ kind: 'tas', label: `${id} won test-and-set (gen ${nextGen})`, host: id })
    const wasBackup = h.role === 'backup'
    const replayed = wasBackup && this.channel ? this.channel.lastEntry - this.channel.acked + Math.floor(this.rand() * 3) : 0
    const reemitted = this.load.state === 'running' ? 2 + Math.floor(this.rand() * Math.min(12, this.load.clients + 2)) : 0
    this.setRole(id, 'live', wasBackup ? 'peer silent; won test-and-set' : 'backup silent; won test-and-set')
    this.agent(id, 'go-live', { gen: nextGen, replayed, reemitted })
    this.mark({ kind: 'go-live', label: `${id} goes live (gen ${nextGen}${reemitted ? `, ${reemitted} outputs re-emitted` : ''})`, host: id })
    this.terminal(`\x1b[1;33m── ${id} goes live in generation ${nextGen}: replayed ${replayed}, re-emitted ${reemitted} ──\x1b[0m`)
    h.suspecting = false
    h.tasAt = null
    this.channel = null
    if (this.load.state === 'running') {
      this.load.duplicatesDropped += reemitted
      this.load.target = id
      this.failoverUntil = this.now + 400
    }
    // the old primary, if it is still alive, learns it lost when it next asks
    const other: ReplicaHostId = id === 'a' ? 'b' : 'a'
    const o = this.hosts[other]
    if (o.role === 'primary' && o.pid !== null) {
      o.suspecting = true
      o.tasAt = this.now
    }
  }

  private stepChannel(dt: number): void {
    const c = this.channel
    if (!c || !c.from || !c.to) return
    const up = this.canTalk(c.from, c.to)
    c.connected = up
    const delay = this.faults.find((f) => f.target === 'a-b' && f.kind === 'delay')
    const loss = this.faults.find((f) => f.target === 'a-b' && f.kind === 'loss')
    const primaryAlive = this.hosts[c.from].pid !== null && !this.hosts[c.from].paused
    const running = this.load.state === 'running' && primaryAlive
    // guest inputs: client requests under load, plus the guest's own timer and clock reads
    const rate = (running ? Math.min(this.load.clients * 38, 4000) : 4) * (0.9 + 0.2 * this.rand())
    c.entryAcc += (rate * dt) / 1000
    const n = primaryAlive && !c.stalled ? Math.floor(c.entryAcc) : 0
    c.entryAcc -= n
    const bytes = n * (running ? 96 + Math.floor(this.rand() * 40) : 24)
    const firstNew = c.lastEntry + 1
    c.lastEntry += n
    c.unackedBytes += bytes
    if (n > 0) {
      this.agent(c.from, 'entries', {
        to: c.to,
        first: firstNew,
        last: c.lastEntry,
        count: n,
        bytes,
        inputs: running ? { data: n - 1, clock: 1 } : { timer: n }
      })
    }
    // acks: the backup acknowledges what it received, slower over a delayed or lossy link
    let ackTo = c.acked
    if (up && !this.hosts[c.to].paused) {
      const lagTarget = Math.ceil((rate * ((delay?.params.ms ?? 0) + 2)) / 1000)
      const lossy = loss ? this.rand() < (loss.params.probability ?? 0) : false
      ackTo = lossy ? c.acked : Math.max(c.acked, c.lastEntry - lagTarget)
    }
    const acked = ackTo - c.acked
    if (acked > 0) {
      const ackedBytes = Math.round((c.unackedBytes * acked) / Math.max(1, c.lastEntry - c.acked))
      c.unackedBytes = Math.max(0, c.unackedBytes - ackedBytes)
      c.acked = ackTo
      this.agent(c.to, 'ack', { n: c.acked })
      const base = (delay?.params.ms ?? 0) + 0.25 + this.rand() * 0.3
      for (let i = 0; i < Math.min(acked, 20); i++) c.recentHolds.push(base + this.rand() * (running ? 1.6 : 0.4))
      if (c.recentHolds.length > 400) c.recentHolds.splice(0, c.recentHolds.length - 400)
    }
    c.lag = c.lastEntry - c.acked
    c.unackedEntries = c.lag
    c.heldOutputs = running ? Math.min(c.lag, this.load.clients) : 0
    const wasStalled = c.stalled
    c.stalled = c.unackedBytes >= c.maxUnackedBytes
    if (c.stalled !== wasStalled) this.agent(c.from, 'stall', { on: c.stalled })
    const k = 1000 / dt
    c.entriesPerSec = ewma(c.entriesPerSec, n * k)
    c.acksPerSec = ewma(c.acksPerSec, acked > 0 ? k : 0)
    c.bytesPerSec = ewma(c.bytesPerSec, bytes * k)
    const sorted = [...c.recentHolds].sort((x, y) => x - y)
    c.holdMs = {
      p50: round2(sorted[Math.floor(sorted.length * 0.5)] ?? 0),
      p99: round2(sorted[Math.floor(sorted.length * 0.99)] ?? 0),
      max: round2(sorted[sorted.length - 1] ?? 0)
    }
  }

  private stepLoad(dt: number): void {
    const l = this.load
    if (l.state !== 'running') return
    if (l.startedAt !== null && this.now - l.startedAt >= l.seconds * 1000) {
      l.state = 'idle'
      l.opsPerSec = 0
      this.mark({ kind: 'stop', label: `load finished: ${l.completed} operations` })
      this.emitLoad()
      return
    }
    const serving = this.servingReplica()
    const failingOver = serving === null || this.now < this.failoverUntil
    if (failingOver) {
      l.retries += Math.ceil(l.clients * (dt / 250))
      l.opsPerSec = ewma(l.opsPerSec, 0)
      l.latencyMs = { p50: l.latencyMs.p50, p99: Math.max(l.latencyMs.p99, 250) }
    } else {
      const c = this.channel
      const hold = c ? c.holdMs.p50 : 0
      const ops = Math.min(l.clients * 38, 4000) * (0.92 + 0.16 * this.rand())
      l.completed += Math.round((ops * dt) / 1000)
      l.opsPerSec = ewma(l.opsPerSec, ops)
      l.latencyMs = { p50: round2(0.6 + hold + this.rand() * 0.2), p99: round2(2.1 + hold * 2 + this.rand() * 1.5) }
      l.target = serving
    }
    this.emitLoad()
  }

  private servingReplica(): ReplicaHostId | null {
    for (const id of ['a', 'b'] as const) {
      const h = this.hosts[id]
      if ((h.role === 'primary' || h.role === 'live') && h.pid !== null && !h.paused && !h.isolated) return id
    }
    return null
  }

  private heal(f: FaultInfo, why: string): void {
    this.faults = this.faults.filter((x) => x.id !== f.id)
    const host = (HOST_IDS as readonly string[]).includes(f.target) ? (f.target as HostId) : undefined
    this.mark({ kind: 'heal', label: `heal ${f.kind} ${f.target} (${why})`, host })
    if (!host) return
    const h = this.hosts[host]
    this.agent(host, 'heal', { id: f.id, why })
    if (f.kind === 'power') {
      // power back on: the agent restarts empty; restore redundancy makes it a backup again
      h.pid = this.pidNext++
      h.reachable = true
      h.uptimeMs = 0
      h.error = null
      h.role = host === 'disk' ? 'disk-server' : 'idle'
      if (host !== 'disk') h.gen = 0
    } else if (f.kind === 'pause') {
      h.paused = false
      h.reachable = true
      h.error = null
    } else if (f.kind === 'isolate') {
      h.isolated = false
    }
    // a replica that was silent while its peer went live finds the new generation and stops
    if (host !== 'disk' && (h.role === 'primary' || h.role === 'backup') && this.gen > h.gen) {
      this.setRole(host, 'halted', `generation ${this.gen} began without it`)
    }
  }

  private setRole(id: HostId, role: HostStatus['role'], reason: string): void {
    const h = this.hosts[id]
    h.role = role
    h.gen = role === 'halted' ? h.gen : this.gen
    this.agent(id, 'role', { role, gen: this.gen, reason })
    if (role === 'halted') this.mark({ kind: 'halt', label: `${id} halts: ${reason}`, host: id })
  }

  private bootHost(id: HostId, role: HostStatus['role']): void {
    const h = this.hosts[id]
    h.pid = this.pidNext++
    h.reachable = true
    h.role = role
    h.gen = this.gen
    h.uptimeMs = 0
    h.heardPeerAt = this.now
    if (id === 'disk') h.disk = { gen: 1, live: 'a', tasWinner: null, blocks: 4096, writes: 0, fenced: 0 }
    this.agent(id, 'role', { role, gen: this.gen, reason: 'lab start' })
    this.emitStatus()
  }

  private freshHost(id: HostId): SimHost {
    return {
      ...downHostStatus(id),
      heardPeerAt: 0,
      suspecting: false,
      tasAt: null
    }
  }

  private freshChannel(from: ReplicaHostId, to: ReplicaHostId): NonNullable<FakeBackend['channel']> {
    this.hosts[from].heardPeerAt = this.now
    this.hosts[to].heardPeerAt = this.now
    return {
      from,
      to,
      gen: this.gen,
      connected: true,
      stalled: false,
      lastEntry: 0,
      acked: 0,
      lag: 0,
      unackedEntries: 0,
      unackedBytes: 0,
      maxUnackedBytes: MAX_UNACKED_BYTES,
      entriesPerSec: 0,
      acksPerSec: 0,
      bytesPerSec: 0,
      heldOutputs: 0,
      holdMs: { p50: 0, p99: 0, max: 0 },
      recentHolds: [],
      entryAcc: 0
    }
  }

  private requireRunning(method: string): void {
    if (this.state !== 'running') throw new ApiError('conflict', `${method}: the lab is ${this.state}; start it first`)
  }

  private after(ms: number, run: () => void): void {
    this.pending.push({ at: this.now + ms, run })
  }

  private snapshot(): LabStatus {
    const hosts = HOST_IDS.map((id) => {
      const { heardPeerAt: _h, suspecting: _s, tasAt: _t, ...pub } = this.hosts[id]
      return { ...pub, memory: pub.memory && { ...pub.memory }, disk: pub.disk && { ...pub.disk } }
    })
    let channel: ChannelStatus | null = null
    if (this.channel) {
      const { recentHolds: _r, entryAcc: _e, ...c } = this.channel
      channel = {
        ...c,
        entriesPerSec: Math.round(c.entriesPerSec),
        acksPerSec: Math.round(c.acksPerSec),
        bytesPerSec: Math.round(c.bytesPerSec),
        holdMs: { ...c.holdMs }
      }
    }
    return {
      state: this.state,
      kind: 'simulated',
      name: 'simulated',
      error: this.error,
      guest: this.guest,
      mode: this.mode,
      gen: this.gen,
      startedAt: this.startedAt,
      timing: { heartbeatMs: TICK_MS, suspectMs: SUSPECT_MS },
      sim: { speed: 1, seed: this.opts.seed ?? 6824 },
      spare: null,
      invariants: emptyInvariants(),
      hosts,
      channel,
      faults: this.faults.map((f) => ({ ...f, params: { ...f.params } })),
      load: { ...this.load, latencyMs: { ...this.load.latencyMs } }
    }
  }

  // ----- events ------------------------------------------------------------------------

  private emitStatus(): void {
    this.lastStatusAt = this.now
    this.events.publish({ ts: this.now, topic: 'status', status: this.snapshot() })
  }

  private emitLoad(): void {
    this.events.publish({ ts: this.now, topic: 'load', load: { ...this.load, latencyMs: { ...this.load.latencyMs } } })
  }

  private agent(host: HostId, type: string, data: Record<string, unknown>): void {
    this.events.publish({ ts: this.now, topic: 'agent', host, type, data })
  }

  private terminal(line: string): void {
    this.events.publish({ ts: this.now, topic: 'terminal', stream: 'channel', data: line + '\r\n' })
  }

  private mark(mark: Mark): void {
    this.events.publish({ ts: this.now, topic: 'mark', mark })
  }
}

function describeParams(f: FaultInfo): string {
  const p = f.params
  const parts: string[] = []
  if (p.direction) parts.push(p.direction)
  if (p.ms !== undefined) parts.push(`${p.ms} ms${p.jitterMs ? ` ±${p.jitterMs}` : ''}`)
  if (p.probability !== undefined) parts.push(`${Math.round(p.probability * 100)}%`)
  return parts.length ? ` (${parts.join(', ')})` : ''
}

function ewma(prev: number, sample: number): number {
  return prev * 0.7 + sample * 0.3
}

function round2(x: number): number {
  return Math.round(x * 100) / 100
}
