// The console's end of one agent's control channel (agent/control/protocol.ts is the spec).
// The transport is a factory of byte streams, so the same client runs over a loopback
// socket (local lab) and over an SSH forwardOut stream (real hosts).
//
// A client belongs to one agent process: event seqs restart with a new process, so a
// fresh agent in a host's slot gets a fresh client.
import { EventEmitter } from 'node:events'
import { connect as netConnect } from 'node:net'
import type { Duplex } from 'node:stream'
import type { AgentEvent, AgentFault, AgentStatus, ControlEnvelope, ControlMessage, ControlRequest, Endpoint, StartRole } from '../../agent/control/protocol.js'
import { LineSplitter, LineTooLongError } from '../core/line-splitter.js'
import { describeSocketError } from '../core/socket-errors.js'

/** The protocol's line limit (1 MiB); characters bound bytes from below, which is the safe side. */
const MAX_LINE = 1 << 20

export type AgentClientErrorCode = 'unreachable' | 'auth' | 'timeout' | 'remote' | 'closed' | 'protocol'

export class AgentClientError extends Error {
  constructor(
    readonly code: AgentClientErrorCode,
    message: string
  ) {
    super(message)
    this.name = 'AgentClientError'
  }
}

export interface AgentClientOptions {
  /** the agent's id in the lab ('a', 'b', 'disk'): every message names it */
  id: string
  /** where the control channel goes, for messages: '127.0.0.1:41234', 'ssh host-b' */
  where: string
  token: string
  connect: () => Promise<Duplex>
  requestTimeoutMs?: number
  connectTimeoutMs?: number
  /** reconnect backoff for the event subscription */
  backoffInitialMs?: number
  backoffMaxMs?: number
}

export type AgentLinkState = 'up' | 'down'

interface Pending {
  resolve: (v: unknown) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
}

interface Conn {
  stream: Duplex
  pending: Map<number, Pending>
  closed: boolean
}

/** A factory for a loopback (or any plain TCP) control connection. */
export function tcpConnector(host: string, port: number): () => Promise<Duplex> {
  return () =>
    new Promise((resolve, reject) => {
      const s = netConnect({ host, port })
      s.setNoDelay(true)
      s.once('connect', () => {
        s.removeListener('error', reject)
        resolve(s)
      })
      s.once('error', reject)
    })
}

export class AgentClient extends EventEmitter {
  private readonly requestTimeoutMs: number
  private readonly connectTimeoutMs: number
  private readonly backoffInitialMs: number
  private readonly backoffMaxMs: number
  private conn: Conn | null = null
  private connecting: Promise<Conn> | null = null
  private nextId = 1
  private closed = false
  private readonly eventListeners = new Set<(ev: AgentEvent) => void>()
  private seq = 0
  private reconnectTimer: NodeJS.Timeout | null = null
  private backoffMs: number
  private linkState: AgentLinkState | null = null

  constructor(private readonly opts: AgentClientOptions) {
    super()
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000
    this.backoffInitialMs = opts.backoffInitialMs ?? 100
    this.backoffMaxMs = opts.backoffMaxMs ?? 5000
    this.backoffMs = this.backoffInitialMs
  }

  get id(): string {
    return this.opts.id
  }

  /** The seq of the last event delivered; a resumed subscription starts after it. */
  get lastSeq(): number {
    return this.seq
  }

  get connected(): boolean {
    return this.conn !== null && !this.conn.closed
  }

  async request<T = unknown>(req: ControlRequest, timeoutMs = this.requestTimeoutMs): Promise<T> {
    const conn = await this.ensureConnected()
    return (await this.send(conn, req, timeoutMs)) as T
  }

  hello(): Promise<unknown> {
    return this.request({ t: 'hello' })
  }

  status(timeoutMs?: number): Promise<AgentStatus> {
    return this.request<AgentStatus>({ t: 'status' }, timeoutMs)
  }

  start(spec: StartRole, timeoutMs?: number): Promise<unknown> {
    return this.request({ t: 'start', spec }, timeoutMs)
  }

  /** `deadlineMs`: the dead-man delay after which the agent heals the fault by itself. */
  fault(id: string, fault: AgentFault, deadlineMs: number): Promise<unknown> {
    return this.request({ t: 'fault', id, fault, deadlineMs })
  }

  heal(id: string | '*'): Promise<unknown> {
    return this.request({ t: 'heal', id })
  }

  restore(peer: { id: string; channel: Endpoint }, gen: number, timeoutMs?: number): Promise<unknown> {
    return this.request({ t: 'restore', peer, gen }, timeoutMs)
  }

  stop(timeoutMs?: number): Promise<unknown> {
    return this.request({ t: 'stop' }, timeoutMs)
  }

  /**
   * Receive the agent's events from `since` on (0 = everything still in its ring), then
   * live ones. The subscription outlives connection drops: it reconnects with backoff and
   * resumes after the last seq delivered, so no event is delivered twice.
   * Emits 'subscribed' with the agent's answer ({first, last, missed}) on every (re)subscribe.
   * Returns a function that ends this listener.
   */
  subscribe(listener: (ev: AgentEvent) => void, since = 0): () => void {
    const first = this.eventListeners.size === 0
    this.eventListeners.add(listener)
    if (first) {
      if (this.seq === 0) this.seq = since
      void this.resubscribe()
    }
    return () => {
      this.eventListeners.delete(listener)
    }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.eventListeners.clear()
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    this.reconnectTimer = null
    if (this.conn) this.dropConnection(this.conn, new AgentClientError('closed', `agent ${this.opts.id}: client closed`))
  }

  private label(): string {
    return `agent ${this.opts.id} at ${this.opts.where}`
  }

  private async resubscribe(): Promise<void> {
    if (this.closed || this.eventListeners.size === 0) return
    try {
      const result = await this.request({ t: 'subscribe', since: this.seq })
      this.backoffMs = this.backoffInitialMs
      // {first, last, missed}: lets a reader know when it has caught up with the ring
      this.emit('subscribed', result)
    } catch (err) {
      this.setLink('down', err as Error)
      this.scheduleReconnect()
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.eventListeners.size === 0 || this.reconnectTimer) return
    const wait = this.backoffMs
    this.backoffMs = Math.min(this.backoffMaxMs, this.backoffMs * 2)
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null
      void this.resubscribe()
    }, wait)
    this.reconnectTimer.unref?.()
  }

  private setLink(state: AgentLinkState, err?: Error): void {
    if (this.linkState === state) return
    this.linkState = state
    this.emit('link', state, err)
  }

  private ensureConnected(): Promise<Conn> {
    if (this.closed) return Promise.reject(new AgentClientError('closed', `agent ${this.opts.id}: client closed`))
    if (this.conn && !this.conn.closed) return Promise.resolve(this.conn)
    if (!this.connecting) {
      this.connecting = this.openConnection().finally(() => {
        this.connecting = null
      })
    }
    return this.connecting
  }

  private async openConnection(): Promise<Conn> {
    let stream: Duplex
    const opening = this.opts.connect()
    try {
      stream = await withTimeout(opening, this.connectTimeoutMs, () => new Error(`no connection within ${this.connectTimeoutMs} ms`))
    } catch (err) {
      // a stream that arrives after we gave up must not linger
      opening.then(
        (s) => s.destroy(),
        () => {}
      )
      throw new AgentClientError('unreachable', `${this.label()}: ${describeSocketError(err)}`)
    }
    if (this.closed) {
      stream.destroy()
      throw new AgentClientError('closed', `agent ${this.opts.id}: client closed`)
    }
    const conn: Conn = { stream, pending: new Map(), closed: false }
    const splitter = new LineSplitter(MAX_LINE, (line) => this.onLine(conn, line))
    stream.on('data', (chunk: Buffer | string) => {
      try {
        splitter.push(chunk)
      } catch (err) {
        const why = err instanceof LineTooLongError ? err.message : String(err)
        this.dropConnection(conn, new AgentClientError('protocol', `${this.label()}: ${why}`))
      }
    })
    stream.on('error', (err) => this.dropConnection(conn, new AgentClientError('closed', `${this.label()}: ${describeSocketError(err)}`)))
    stream.on('close', () => this.dropConnection(conn, new AgentClientError('closed', `${this.label()}: connection closed`)))
    stream.write(JSON.stringify({ t: 'auth', token: this.opts.token }) + '\n')
    // The protocol does not answer `auth`; it closes on a bad token. So the first request
    // doubles as the handshake: a close before its answer means the token was refused.
    try {
      await this.send(conn, { t: 'hello' }, this.requestTimeoutMs)
    } catch (err) {
      this.dropConnection(conn, err as Error)
      if (err instanceof AgentClientError && err.code === 'closed') {
        throw new AgentClientError('auth', `agent ${this.opts.id}: bad token (the agent closed the control connection after authentication)`)
      }
      throw err
    }
    this.conn = conn
    this.setLink('up')
    return conn
  }

  private send(conn: Conn, req: ControlRequest, timeoutMs: number): Promise<unknown> {
    if (conn.closed) return Promise.reject(new AgentClientError('closed', `${this.label()}: connection closed`))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.pending.delete(id)
        reject(new AgentClientError('timeout', `agent ${this.opts.id}: no answer to '${req.t}' within ${timeoutMs} ms`))
      }, timeoutMs)
      conn.pending.set(id, { resolve, reject, timer })
      conn.stream.write(JSON.stringify(envelope(id, req)) + '\n')
    })
  }

  private onLine(conn: Conn, line: string): void {
    if (line.trim() === '') return
    let msg: ControlMessage
    try {
      msg = JSON.parse(line) as ControlMessage
    } catch {
      this.emit('protocol-error', new AgentClientError('protocol', `${this.label()}: a line that is not JSON: ${line.slice(0, 80)}`))
      return
    }
    if (msg && msg.t === 'res' && msg.id === 0 && !msg.ok) {
      // an answer to no request: the agent objecting to the connection itself
      this.emit('protocol-error', new AgentClientError('remote', `agent ${this.opts.id}: ${String(msg.error)}`))
      return
    }
    if (msg && msg.t === 'res' && typeof msg.id === 'number') {
      const p = conn.pending.get(msg.id)
      if (!p) return // answered after its timeout: the caller has moved on
      conn.pending.delete(msg.id)
      clearTimeout(p.timer)
      if (msg.ok) p.resolve(msg.result)
      else p.reject(new AgentClientError('remote', `agent ${this.opts.id}: ${String(msg.error)}`))
      return
    }
    if (msg && msg.t === 'event' && msg.ev && typeof msg.ev.seq === 'number') {
      // a resumed subscription may overlap what was already delivered; and with nobody
      // listening the seq stays put, so a later subscribe replays what was missed
      if (msg.ev.seq <= this.seq || this.eventListeners.size === 0) return
      this.seq = msg.ev.seq
      for (const l of [...this.eventListeners]) {
        try {
          l(msg.ev)
        } catch (err) {
          this.emit('listener-error', err)
        }
      }
      return
    }
    this.emit('protocol-error', new AgentClientError('protocol', `${this.label()}: unexpected message: ${line.slice(0, 80)}`))
  }

  private dropConnection(conn: Conn, err: Error): void {
    if (conn.closed) return
    conn.closed = true
    for (const p of conn.pending.values()) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    conn.pending.clear()
    conn.stream.destroy()
    if (this.conn === conn) {
      this.conn = null
      this.setLink('down', err)
      this.scheduleReconnect()
    }
  }
}

/** The wire form (ControlEnvelope): a fault's own id travels as `faultId`, the request's as `id`. */
export function envelope(id: number, req: ControlRequest): ControlEnvelope {
  if (req.t === 'fault' || req.t === 'heal') {
    const { id: faultId, ...rest } = req
    return { ...rest, id, faultId } as ControlEnvelope
  }
  return { ...req, id } as ControlEnvelope
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(onTimeout()), ms)
    p.then(
      (v) => {
        clearTimeout(t)
        resolve(v)
      },
      (e) => {
        clearTimeout(t)
        reject(e)
      }
    )
  })
}
