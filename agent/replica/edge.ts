// The replica's edge: it performs the protocol core's actions (core.ts is a pure state
// machine) through ports, and turns what the world does into the core's events. One piece
// of code for every place a replica runs: on a host, runtime.ts binds the ports to real
// sockets, timers and clocks; in the simulator (sim/) they are bound to a virtual clock and
// a seeded network. So the simulator checks the edge that runs on hosts, not a copy of it.
//
// This file imports nothing from `node:` (Buffer is Node's global): what it may touch is
// exactly what the ports offer.
import type { AgentStatus, Endpoint } from '../control/protocol.js'
import type { LinkFilter } from '../faults/filter.js'
import type { ConnId, GuestInput, IoRequest, Output, Vmm } from '../vmm/types.js'
import type { ReplicaCore } from './core.js'
import { ChannelTelemetry } from './telemetry.js'
import { ReadFastPath, newFastPathConn, type FastPathConn } from './fast-path.js'
import type { Action, DiskReq, DiskRes, Event, PeerMsg, ReplicaId, Telemetry } from './types.js'

/** A tick at least this late is reported as a 'loop-stall' event (the event loop was busy that long). */
export const LOOP_STALL_MS = 100

/** The session preamble an FT Lab client sends first, so it keeps its connection id across failover. */
export const SESSION_PREAMBLE = 'FTLAB-SESSION '
const MAX_PREAMBLE_BYTES = 256
/** how long a re-emitted reply waits for its session to reconnect to this replica */
export const SESSION_GRACE_MS = 10_000
/**
 * Bounds on replies kept for sessions that are away. Dropping one is always safe: the client
 * retries with the same seq and the guest answers from its reply table. A session client
 * has one request in flight, so the newest replies are the ones kept, up to this many bytes
 * (one input's replies are one output: an output above the bound is not kept at all).
 */
export const MAX_WAITING_BYTES_PER_SESSION = 1024 * 1024
/** all sessions together; past either bound the session fed longest ago goes first */
export const MAX_WAITING_BYTES = 64 * 1024 * 1024
export const MAX_WAITING_SESSIONS = 4096
/** the longest a client input's actions wait for the end of its event-loop turn (see EdgePorts.turnEnd) */
export const MAX_DEFER_MS = 2
/**
 * The most bytes of one connection gathered into one input (see EdgePorts.turnEnd): a 1 MiB SET read in
 * 64 KiB pieces is one log entry, not sixteen, while a client that pipelines without pause still has its
 * bytes logged every few MiB.
 */
export const MAX_INPUT_BYTES = 4 * 1024 * 1024
/**
 * The most client bytes one turn's end makes inputs of; the other connections' bytes wait for the next turn.
 * Sixteen clients' 256 KiB SETs (4 MiB) stepped, logged, encoded and authenticated in one turn held the
 * primary's event loop for 470 ms on a busy machine: no tick, no heartbeat, its backup's messages unread, and
 * the backup's learned timeout (75 ms) was long past. Each input is still whole (up to MAX_INPUT_BYTES).
 */
export const TURN_INPUT_BYTES = 256 * 1024
/** The most connections one turn's end makes an input of: 256 clients' SETs in one turn stalled the primary 120-170 ms. */
export const TURN_INPUTS = 64
/** the service traffic's name in the transport filter: `isolate` cuts clients off too */
export const CLIENTS_PEER = 'clients'

// ---------------------------------------------------------------- the ports

export interface ClockPort {
  /** monotonic ms, for the core */
  now(): number
  /** wall-clock ms (Date.now() on a host), for deadlines that outlive a role period */
  wall(): number
}

export interface TimerPort {
  set(fn: () => void, ms: number): unknown
  clear(handle: unknown): void
}

/** The logging channel. Sends are fire-and-forget: the core resends what is not acknowledged. */
export interface PeerPort {
  /**
   * Returns why the channel refused the message for good (too large for a frame, cannot be
   * encoded), so the core hears it; nothing when it was accepted or the link is down.
   */
  send(to: ReplicaId, msg: PeerMsg): string | void
  /** have a channel to `peer` (a primary dials its backup; restore dials the new one) */
  connect(peer: { id: ReplicaId; channel: Endpoint }): void
  /** gone live alone: stop dialling */
  hangUp(): void
  connected(peer: ReplicaId): boolean
  stats(): { bytesSent: number; bytesReceived: number }
}

/**
 * The disk server (block store and test-and-set). `done` gets the answer, or null when no
 * answer came in time (the core retries by itself); `problem` is set for failures that are
 * not plain unreachability and are worth a log line.
 */
export interface DiskPort {
  request(req: DiskReq, done: (res: DiskRes | null, problem?: string) => void): void
}

/** One client's byte stream on the service port (a TCP socket on a host). */
export interface ClientPort {
  /** for messages: the client's address */
  readonly remote: string
  write(data: Uint8Array): void
  /** send `text` (if any) and close our side */
  end(text?: string): void
  destroy(): void
  /** stop reading (back-pressure while the core stalls) */
  pause(): void
  resume(): void
}

export interface EdgeLog {
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
}

export interface EdgePorts {
  clock: ClockPort
  timers: TimerPort
  peer: PeerPort
  disk: DiskPort
  /** the agent's transport filter: client traffic obeys `isolate` like every link */
  filter: LinkFilter
  emit(type: string, data: Record<string, unknown>): void
  log: EdgeLog
  /**
   * Run `fn` once this event-loop turn's I/O callbacks have run (setImmediate on a host).
   * Given, the edge gathers the client bytes of one turn (every TCP read, up to MAX_INPUT_BYTES of a
   * connection) into one input ('batch' when several connections sent), steps every client input, logging-channel message and disk
   * answer of a turn into the core and takes the core's actions once at the turn's end: the turn's
   * entries then leave as one logging-channel message (one frame, one ack) instead of one each.
   * Without it every read is an input and
   * every step is performed at once.
   */
  turnEnd?(fn: () => void): void
  /**
   * Optional: the turn's messages to the peer and the disk server are all handed over (the turnEnd drain has run);
   * put them on the wire now instead of at the next turn's end (a host's links batch a turn's messages into one frame).
   */
  sent?(): void
}

/** Watches every action before it is performed (the simulator's invariant checks). */
export interface EdgeObserver {
  action(a: Action): void
  /** after each core step and the actions it produced */
  stepped(): void
}

export interface EdgeOptions {
  self: ReplicaId
  guest: string
  mode: string
  heartbeatMs: number
  diskRetryMs: number
  observer?: EdgeObserver
  /** drill experiment 'read-fast-path' (fast-path.ts): reads answered from the guest's state, unlogged */
  readFastPath?: boolean
}

/** What the service-port binding calls for one accepted client connection. */
export interface ClientHandle {
  data(chunk: Uint8Array): void
  closed(): void
}

interface ServiceConn {
  port: ClientPort
  id: ConnId | null
  /** bytes before the connection's id is known (the preamble may be split) */
  head: Buffer
  /** the read fast path's view of this connection's stream (experiment only) */
  fast?: FastPathConn
  /** bytes read this event-loop turn, not yet an input (see EdgePorts.turnEnd) */
  gathered: Buffer[]
  gatheredBytes: number
}

/** The replica's edge: one per replica role, between its core and its ports. */
export class ReplicaEdge {
  readonly telemetry: ChannelTelemetry
  private readonly conns = new Map<ConnId, ServiceConn>()
  private readonly sockets = new Set<ServiceConn>()
  /** connections with bytes gathered this turn, in the order their first bytes came */
  private readonly gathering = new Set<ServiceConn>()
  /** connections told they are not served here: end() waits for the client's side, which may never come */
  private readonly refused = new Set<ClientPort>()
  /** replies re-emitted for a session that has not reconnected to this replica yet */
  private readonly waiting = new Map<ConnId, { data: Uint8Array[]; bytes: number; until: number }>()
  private waitingBytes = 0
  private readonly guestTimers = new Map<number, unknown>()
  private ticker: unknown = null
  private flusher: unknown = null
  private stalled = false
  private stopped = false
  /** events were stepped this turn and their actions wait for the turn's end (see stepInTurn) */
  private drainArmed = false
  /** when the oldest of those inputs was stepped: a long turn (large values) must not hold the channel silent */
  private deferredSince = 0
  /** why the role last changed: what a failed restore tells its caller */
  private roleReason = ''
  /** why the core last gave up a restore without a new generation (the disk server refused it) */
  private restoreDropped = ''
  readonly tickMs: number
  /** null unless the drill experiment 'read-fast-path' is on */
  readonly fastPath: ReadFastPath | null

  constructor(
    readonly core: ReplicaCore,
    readonly vmm: Vmm,
    private readonly ports: EdgePorts,
    private readonly opts: EdgeOptions
  ) {
    this.telemetry = new ChannelTelemetry((type, data) => ports.emit(type, data))
    this.tickMs = Math.max(5, Math.min(50, Math.floor(opts.heartbeatMs / 4)))
    this.fastPath = opts.readFastPath === true ? new ReadFastPath(vmm, opts.guest) : null
  }

  /** Arm the core's tick and the telemetry flush, and perform what the core asked at creation. */
  start(): void {
    const { timers } = this.ports
    let lastTick = this.ports.clock.now()
    const tick = () => {
      if (this.stopped) return
      this.ticker = timers.set(tick, this.tickMs)
      const now = this.ports.clock.now()
      // a tick this late means the event loop was busy (or the process paused): said, so that a suspicion
      // can be set beside the stalls of both replicas (the scale sweep and the saturated run read these)
      if (now - lastTick >= LOOP_STALL_MS) this.ports.emit('loop-stall', { ms: Math.round(now - lastTick), role: this.core.status().role })
      lastTick = now
      this.step({ t: 'tick', now })
      const t = this.ports.clock.wall()
      for (const [id, w] of this.waiting) if (w.until < t) this.takeWaiting(id)
    }
    this.ticker = timers.set(tick, this.tickMs)
    const flush = () => {
      if (this.stopped) return
      this.flusher = timers.set(flush, 200)
      this.telemetry.flush(this.core.status())
    }
    this.flusher = timers.set(flush, 200)
    this.perform(this.core.takeActions())
  }

  get isStopped(): boolean {
    return this.stopped
  }

  serving(): boolean {
    const r = this.core.status().role
    return r === 'primary' || r === 'live'
  }

  step(ev: Event): void {
    if (this.stopped) return
    try {
      this.core.step(ev)
    } catch (err) {
      // a fault in the protocol or the guest must be seen, not crash the host's agent
      this.ports.log.error('replica step failed', { event: ev.t, message: (err as Error).message })
      this.ports.emit('error', { where: `replica ${this.opts.self} step(${ev.t})`, message: (err as Error).message })
    }
    this.perform(this.core.takeActions())
  }

  /** A message arrived on the logging channel. */
  peerMessage(msg: PeerMsg): void {
    if (msg?.t === 'entries' && Array.isArray(msg.entries)) this.telemetry.received(msg.entries.length)
    this.stepInTurn({ t: 'peer', now: this.ports.clock.now(), msg })
  }

  /** Restore redundancy onto `peer` in generation `gen` (the answer comes with waitRestored). */
  beginRestore(peer: { id: ReplicaId; channel: Endpoint }, gen: number): void {
    this.ports.peer.connect(peer)
    this.core.beginRestore(peer.id, gen, this.ports.clock.now())
    this.restoreDropped = ''
    this.perform(this.core.takeActions())
    this.opts.observer?.stepped()
  }

  /**
   * Resolves once the new backup holds the snapshot and the new generation runs. Fails as soon as
   * the restore cannot complete any more: this replica went live alone (it suspected the new
   * backup) or stayed live without the new generation (the disk server refused it), halted or stopped.
   */
  waitRestored(peer: { id: ReplicaId; channel: Endpoint }, gen: number, timeoutMs = 15_000): Promise<{ gen: number; backup: ReplicaId }> {
    const deadline = this.ports.clock.wall() + timeoutMs
    const onto = `restore redundancy onto ${peer.id} (${peer.channel.host}:${peer.channel.port})`
    return new Promise((resolve, reject) => {
      const check = () => {
        const s = this.core.status()
        if (s.gen === gen && s.role === 'primary' && !s.restoring) return resolve({ gen: s.gen, backup: peer.id })
        if (s.role === 'halted') return reject(new Error(`replica ${this.opts.self} halted during restore redundancy: ${this.roleReason}`))
        if (this.stopped) return reject(new Error(`replica ${this.opts.self} stopped during restore redundancy`))
        if (s.role === 'live' && s.gen >= gen) {
          return reject(
            new Error(
              `${onto} failed: ${this.opts.self} went live alone in generation ${s.gen} (${this.roleReason}); the new backup did not take the snapshot in time. Restore again`
            )
          )
        }
        if (s.role === 'live' && !s.restoring) {
          const why = this.restoreDropped || `${this.opts.self} is still live in generation ${s.gen}`
          return reject(new Error(`${onto} failed: ${why}. Check the disk server, then restore again`))
        }
        if (this.ports.clock.wall() > deadline) {
          return reject(
            new Error(
              `restore redundancy onto ${peer.id} (${peer.channel.host}:${peer.channel.port}) did not complete within ${Math.round(timeoutMs / 1000)} s; is it running as 'joining' for generation ${gen}?`
            )
          )
        }
        this.ports.timers.set(check, 20)
      }
      check()
    })
  }

  /** Stop serving: timers off, client connections closed. Links are the binding's to close. */
  stop(): void {
    this.stopped = true
    this.ports.timers.clear(this.ticker)
    this.ports.timers.clear(this.flusher)
    for (const t of this.guestTimers.values()) this.ports.timers.clear(t)
    this.guestTimers.clear()
    for (const c of this.sockets) c.port.destroy()
    for (const s of this.refused) s.destroy()
    this.gathering.clear()
  }

  status(where: { channelPort: number; servicePort: number }): Partial<AgentStatus> {
    const s = this.core.status()
    const t = this.telemetry.totals()
    const bytes = this.ports.peer.stats()
    return {
      role: s.role,
      gen: s.gen,
      guest: this.opts.guest,
      mode: this.opts.mode as AgentStatus['mode'],
      channel: {
        connected: s.peer !== null && this.ports.peer.connected(s.peer),
        lastEntry: s.lastEntry,
        acked: s.acked,
        unackedEntries: s.unackedEntries,
        unackedBytes: s.unackedBytes,
        bytesSent: bytes.bytesSent,
        bytesReceived: bytes.bytesReceived,
        entriesSent: t.entriesSent,
        entriesReceived: t.entriesReceived,
        heldOutputs: s.heldOutputs,
        stalled: s.stalled
      },
      outputRule: t.outputRule,
      replica: {
        peer: s.peer,
        releasedThrough: s.releasedThrough,
        peerSuspected: s.peerSuspected,
        suspectAfterMs: s.suspectAfterMs,
        suspectLimit: s.suspectLimit,
        queuedInputs: s.queuedInputs,
        clients: this.conns.size,
        guestConns: this.vmm.openConns().length,
        channelPort: where.channelPort,
        servicePort: where.servicePort
      },
      // the agent fills in the process figures; only the guest's size is the role's to say
      memory: { guestBytes: this.vmm.memoryBytes() } as AgentStatus['memory']
    }
  }

  // ------------------------------------------------------------ the client service

  /** A client connected to the service port. */
  accept(port: ClientPort): ClientHandle {
    if (!this.serving() || this.stopped) {
      // a backup's service is suppressed; tell the client plainly so it moves on
      this.refused.add(port)
      port.end(`-NOTLIVE ftlab replica ${this.opts.self} is ${this.core.status().role}, not serving\r\n`)
      return { data: () => {}, closed: () => void this.refused.delete(port) }
    }
    const c: ServiceConn = { port, id: null, head: Buffer.alloc(0), gathered: [], gatheredBytes: 0 }
    this.sockets.add(c)
    if (this.stalled) port.pause()
    return { data: (chunk) => this.onServiceData(c, chunk), closed: () => this.onServiceClosed(c) }
  }

  private onServiceClosed(c: ServiceConn): void {
    this.sockets.delete(c)
    // what the connection sent before it closed comes before its close
    this.flushGathered(c)
    if (c.id === null || this.conns.get(c.id) !== c) return
    this.conns.delete(c.id)
    // A plain connection is gone for good; an FT Lab session may come back (to us or the
    // peer). Log the close even if the guest has not seen the open yet (it may be queued
    // behind a stall): inputs keep their order, and a close of an unknown connection is a no-op.
    if (c.id.startsWith('t:') && this.serving()) this.input({ t: 'close', conn: c.id })
  }

  private onServiceData(c: ServiceConn, bytes: Uint8Array): void {
    if (this.stopped) return
    const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    // isolated: break the connection rather than lose part of its byte stream (see deliver)
    if (!this.ports.filter.inbound(CLIENTS_PEER)) return void c.port.destroy()
    if (c.id === null) {
      c.head = c.head.length ? Buffer.concat([c.head, chunk]) : chunk
      const text = c.head.subarray(0, Math.min(c.head.length, SESSION_PREAMBLE.length)).toString('latin1')
      if (SESSION_PREAMBLE.startsWith(text) && c.head.length < SESSION_PREAMBLE.length) return // wait for more
      let rest: Buffer
      if (text === SESSION_PREAMBLE) {
        const nl = c.head.indexOf('\n')
        if (nl < 0) {
          if (c.head.length > MAX_PREAMBLE_BYTES) this.refuse(c, 'session preamble too long')
          return
        }
        const clientId = c.head.subarray(SESSION_PREAMBLE.length, nl).toString('utf8').replace(/\r$/, '').trim()
        if (!/^[A-Za-z0-9._:-]{1,64}$/.test(clientId)) return this.refuse(c, `bad session client id ${JSON.stringify(clientId)}`)
        c.id = `s:${clientId}`
        rest = c.head.subarray(nl + 1)
      } else {
        c.id = this.core.newConnId()
        rest = c.head
      }
      c.head = Buffer.alloc(0)
      const prev = this.conns.get(c.id)
      if (prev && prev !== c) {
        // the old stream's last bytes belong before the new stream's 'open', which resets it in the guest
        this.flushGathered(prev)
        prev.port.destroy()
      }
      this.conns.set(c.id, c)
      // A new TCP connection is a new byte stream, also for a session the guest holds open
      // (a reconnect, or a session that followed the service here): the guest's partial
      // frame from the old stream must not be glued to this one's bytes. 'open' of an open
      // connection resets its stream in the guest; it is an input, so the backup does the same.
      this.input({ t: 'open', conn: c.id })
      if (this.fastPath) c.fast = newFastPathConn()
      const w = this.takeWaiting(c.id)
      if (w && w.until >= this.ports.clock.wall()) for (const d of w.data) c.port.write(d)
      if (rest.length && !this.answeredFast(c, c.id, rest)) this.clientData(c, c.id, rest)
      return
    }
    if (this.answeredFast(c, c.id, chunk)) return
    this.clientData(c, c.id, chunk)
  }

  /**
   * A connection's bytes become an input at the end of the turn, with the rest of its bytes of
   * that turn (see EdgePorts.turnEnd). Not with the read fast path: a read it answers at once must
   * not overtake a write of the same connection that waits for the turn's end.
   */
  private clientData(c: ServiceConn, id: ConnId, chunk: Buffer): void {
    if (!this.ports.turnEnd || this.fastPath !== null || this.conns.get(id) !== c) {
      return this.input({ t: 'data', conn: id, data: new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength) })
    }
    c.gathered.push(chunk)
    c.gatheredBytes += chunk.length
    this.gathering.add(c)
    if (c.gatheredBytes >= MAX_INPUT_BYTES) this.flushGathered(c)
    else this.armTurnEnd()
  }

  /** The connection's gathered bytes as one input (in the order they came, up to MAX_INPUT_BYTES each). */
  private flushGathered(c: ServiceConn): void {
    const all = this.takeGathered(c)
    if (all === null || c.id === null) return
    for (let at = 0; at < all.length; at += MAX_INPUT_BYTES) {
      const n = Math.min(all.length - at, MAX_INPUT_BYTES)
      this.input({ t: 'data', conn: c.id, data: new Uint8Array(all.buffer, all.byteOffset + at, n) })
    }
  }

  /** The connection's gathered bytes, in the order they came; null when it has none (or no id). */
  private takeGathered(c: ServiceConn): Buffer | null {
    if (!this.gathering.delete(c) || c.id === null) return null
    const all = c.gathered.length === 1 ? c.gathered[0] : Buffer.concat(c.gathered, c.gatheredBytes)
    c.gathered = []
    c.gatheredBytes = 0
    return all
  }

  /**
   * The turn's gathered client bytes as one input: 'data' for one connection, 'batch' for several, which the guest
   * handles as one batch (one log write and one barrier for kv). At most TURN_INPUT_BYTES and TURN_INPUTS of them: the
   * rest waits for the next turn, after the loop's timers and reads. (Each connection's bytes here are under
   * MAX_INPUT_BYTES: clientData makes an input of them as soon as they reach it.)
   */
  private stepGathered(): void {
    let budget = TURN_INPUT_BYTES
    let left = TURN_INPUTS
    const reads: { conn: ConnId; data: Uint8Array }[] = []
    for (const c of this.gathering) {
      if (budget <= 0 || left-- <= 0) break
      budget -= c.gatheredBytes
      const all = this.takeGathered(c)
      if (all !== null && c.id !== null) reads.push({ conn: c.id, data: new Uint8Array(all.buffer, all.byteOffset, all.byteLength) })
    }
    if (reads.length === 1) this.input({ t: 'data', conn: reads[0].conn, data: reads[0].data })
    else if (reads.length > 1) this.input({ t: 'batch', reads })
  }

  /**
   * Experiment only: answer a read from the guest's current state, unlogged (fast-path.ts). Not
   * while the core holds inputs it has not run yet: the read would overtake them.
   */
  private answeredFast(c: ServiceConn, id: ConnId, bytes: Buffer): boolean {
    if (this.fastPath === null || c.fast === undefined) return false
    const reply = this.fastPath.offer(c.fast, id, bytes, this.serving() && this.core.status().queuedInputs === 0)
    if (reply === null) return false
    this.deliver({ t: 'reply', conn: id, data: reply })
    return true
  }

  private refuse(c: ServiceConn, why: string): void {
    c.port.end(`-ERR ftlab: ${why}\r\n`)
    this.ports.emit('dropped', { what: 'client connection', from: c.port.remote, why })
  }

  /** A client's input: with a turnEnd port, its actions are taken with the rest of the turn's. */
  private input(i: GuestInput): void {
    this.stepInTurn({ t: 'input', now: this.ports.clock.now(), input: i })
  }

  /**
   * Step the core now and take its actions at the end of this event-loop turn (with a turnEnd port;
   * without one, at once). Client inputs, logging-channel messages and disk answers all come this way:
   * a turn's requests, its acks' releases and its barrier completions then leave as one 'entries'
   * message in one frame, rather than one message (and its envelope) per event. Nothing the core
   * decides is changed or reordered by the wait: the Output Rule is the core's, the actions only leave later.
   */
  private stepInTurn(ev: Event): void {
    const turnEnd = this.ports.turnEnd
    if (!turnEnd) return this.step(ev)
    if (this.stopped) return
    try {
      this.core.step(ev)
    } catch (err) {
      this.ports.log.error('replica step failed', { event: ev.t, message: (err as Error).message })
      this.ports.emit('error', { where: `replica ${this.opts.self} step(${ev.t})`, message: (err as Error).message })
    }
    const now = this.ports.clock.now()
    if (this.drainArmed) {
      // a turn busy for longer than this sends what it has: the backup hears the primary, entries keep flowing
      if (now - this.deferredSince >= MAX_DEFER_MS) {
        this.deferredSince = now
        this.perform(this.core.takeActions())
      }
      return
    }
    this.armTurnEnd()
  }

  /** Have the turn's end step the gathered client bytes and perform the core's actions. */
  private armTurnEnd(): void {
    const turnEnd = this.ports.turnEnd
    if (this.drainArmed || !turnEnd) return
    this.drainArmed = true
    this.deferredSince = this.ports.clock.now()
    turnEnd(() => {
      // the turn's client bytes first, so that their actions leave with this drain
      if (!this.stopped) this.stepGathered()
      this.drainArmed = false
      if (this.stopped) return
      this.perform(this.core.takeActions())
      this.ports.sent?.()
      if (this.gathering.size > 0) this.armTurnEnd()
    })
  }

  private takeWaiting(id: ConnId) {
    const w = this.waiting.get(id)
    if (!w) return undefined
    this.waiting.delete(id)
    this.waitingBytes -= w.bytes
    return w
  }

  // ------------------------------------------------------------ performing actions

  private perform(actions: Action[]): void {
    const obs = this.opts.observer
    const refused: { msg: PeerMsg; why: string }[] = []
    for (const a of actions) {
      obs?.action(a)
      switch (a.t) {
        case 'send-peer': {
          const why = this.ports.peer.send(a.to ?? this.core.status().peer ?? '', a.msg)
          if (typeof why === 'string') refused.push({ msg: a.msg, why })
          if (a.msg.t === 'entries') this.telemetry.sent(a.msg)
          break
        }
        case 'send-disk': {
          const op = a.req.op
          this.ports.disk.request(a.req, (res, problem) => {
            // no answer: the core retries by itself (diskRetryMs); a replica that cannot
            // reach the disk server never goes live
            if (res) this.stepInTurn({ t: 'disk', now: this.ports.clock.now(), res })
            else if (problem) this.ports.log.warn('disk request failed', { op, message: problem })
          })
          break
        }
        case 'release':
          this.telemetry.released(a.heldMs)
          this.deliver(a.out)
          break
        case 'io':
          this.doIo(a.req)
          break
        case 'role':
          this.onRole(a.role, a.gen, a.reason)
          break
        case 'stall':
          this.stalled = a.on
          for (const c of this.sockets) {
            if (a.on) c.port.pause()
            else c.port.resume()
          }
          this.ports.emit('stall', { on: a.on })
          break
        case 'telemetry':
          this.onTelemetry(a.ev)
          break
      }
    }
    obs?.stepped()
    // after the batch, so the core's next actions never cut in between the ones it asked for before
    for (const r of refused) this.step({ t: 'send-failed', now: this.ports.clock.now(), msg: r.msg, why: r.why })
  }

  private onTelemetry(ev: Telemetry): void {
    if (ev.k === 'dropped' && ev.what.startsWith('restore redundancy onto')) this.restoreDropped = ev.why
    // A suspicion and its test-and-set also go to the agent's log, which outlives the event ring and the console: a
    // false failover in a test that tore its lab down left only the go-live there, not the silence and limit behind it.
    if (ev.k === 'suspect')
      this.ports.log.warn('suspect', { peer: ev.peer, silentMs: ev.silentMs, limitMs: ev.timeoutMs, by: ev.limit?.by, ownPauseMs: ev.limit?.ownPauseMs })
    else if (ev.k === 'tas') this.ports.log.info('test-and-set', { gen: ev.gen, result: ev.result })
    if (ev.k === 'entry') this.telemetry.entry(ev.n, ev.bytes, ev.input)
    else if (ev.k === 'ack') this.telemetry.ack(ev.n)
    else this.ports.emit(ev.k, { ...ev })
  }

  private deliver(out: Output): void {
    if (out.t === 'disk-write' || out.t === 'disk-sync') return // disk writes leave through send-disk; barriers are the core's
    const c = this.conns.get(out.conn)
    if (c && this.ports.filter.outbound(CLIENTS_PEER) === null) {
      // Isolated. The filter works on whole messages, but a client's TCP stream has no
      // message boundaries the filter could respect: dropping a chunk of it would corrupt
      // the stream. A cut network breaks the connection instead; the client reconnects.
      c.port.destroy()
      return
    }
    if (out.t === 'close') {
      c?.port.end()
      return
    }
    if (c) {
      c.port.write(out.data)
    } else if (out.conn.startsWith('s:')) {
      // the client's session has not reached this replica yet (e.g. just after go-live);
      // re-inserted, so the map stays in the order sessions were last fed
      const w = this.takeWaiting(out.conn) ?? { data: [], bytes: 0, until: 0 }
      w.data.push(out.data)
      w.bytes += out.data.length
      while (w.bytes > MAX_WAITING_BYTES_PER_SESSION) w.bytes -= w.data.shift()!.length
      if (w.data.length === 0) return
      w.until = this.ports.clock.wall() + SESSION_GRACE_MS
      this.waiting.set(out.conn, w)
      this.waitingBytes += w.bytes
      for (const id of this.waiting.keys()) {
        if (id === out.conn || (this.waiting.size <= MAX_WAITING_SESSIONS && this.waitingBytes <= MAX_WAITING_BYTES)) break
        this.takeWaiting(id)
      }
    }
  }

  private doIo(req: IoRequest): void {
    const { timers, clock } = this.ports
    switch (req.t) {
      case 'disk-read': {
        const ask = () =>
          this.ports.disk.request({ id: 0, op: 'read', block: req.block }, (res) => {
            if (this.stopped) return
            if (!res) {
              // the guest waits for this read; keep asking while this replica serves
              if (this.serving()) timers.set(ask, this.opts.diskRetryMs)
              return
            }
            if (res.ok)
              this.step({ t: 'input', now: clock.now(), input: { t: 'disk-read', tag: req.tag, block: req.block, data: res.data ?? new Uint8Array(0) } })
            else this.ports.emit('error', { where: `disk read of block ${req.block}`, message: res.message })
          })
        ask()
        break
      }
      case 'timer-set': {
        timers.clear(this.guestTimers.get(req.id))
        this.guestTimers.set(
          req.id,
          timers.set(() => {
            this.guestTimers.delete(req.id)
            this.step({ t: 'input', now: clock.now(), input: { t: 'timer', id: req.id } })
          }, req.ms)
        )
        break
      }
      case 'timer-cancel':
        timers.clear(this.guestTimers.get(req.id))
        this.guestTimers.delete(req.id)
        break
    }
  }

  private onRole(role: string, gen: number, reason: string): void {
    this.roleReason = reason
    this.ports.log.info('role', { role, gen, reason })
    this.ports.emit('replica-role', { role, gen, reason })
    this.telemetry.newRolePeriod()
    if (role === 'live') {
      // going live alone stops the logging channel
      this.ports.peer.hangUp()
      // Plain TCP connections do not move with the service (no virtual IP): those the old
      // primary held died with it. Close them in the guest, as a NIC would see them reset;
      // FT Lab sessions stay open, their clients reconnect here.
      for (const conn of this.vmm.openConns()) if (conn.startsWith('t:') && !this.conns.has(conn)) this.input({ t: 'close', conn })
    }
    if (role === 'halted') {
      for (const t of this.guestTimers.values()) this.ports.timers.clear(t)
      this.guestTimers.clear()
      for (const c of this.sockets) c.port.destroy()
      // bytes not yet logged are lost with the connections, as a primary's unread socket buffers are
      this.gathering.clear()
      // a halted replica serves no session again
      this.waiting.clear()
      this.waitingBytes = 0
    }
  }
}
