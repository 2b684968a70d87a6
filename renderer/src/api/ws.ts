import { ApiError, type ApiEvent, type EventsSince, type MethodName, type ResultOf, type WireMessage } from '../../../main/api/contract'
import type { ConnectionState, ConsoleClient } from './client'

const CALL_TIMEOUT_MS = 30_000
/** calls that wait on real machines (and, for a deploy, on the operator answering its questions) */
const LONG_CALLS: Partial<Record<MethodName, number>> = {
  'lab.deploy': 30 * 60_000,
  'lab.teardown': 5 * 60_000,
  'lab.restore': 5 * 60_000,
  'lab.powerOn': 5 * 60_000,
  'lab.open': 2 * 60_000,
  'lab.start': 2 * 60_000
}

interface Pending {
  resolve: (v: unknown) => void
  reject: (e: Error) => void
  timer: ReturnType<typeof setTimeout>
}

/**
 * Calls over the browser mode's WebSocket (/api?token=…). Reconnects with a growing
 * delay; after a reconnect it asks events.since for what it missed, so the stores see
 * one unbroken stream.
 */
export class WsClient implements ConsoleClient {
  readonly transport = 'websocket' as const
  private ws: WebSocket | null = null
  private nextId = 1
  private pending = new Map<number, Pending>()
  private eventListeners = new Set<(events: ApiEvent[]) => void>()
  private connListeners = new Set<(state: ConnectionState, detail: string | null) => void>()
  private state: ConnectionState = 'connecting'
  private detail: string | null = null
  private everOpened = false
  private retryMs = 500
  private resumeFrom: (() => number) | null = null
  /** live events that arrive while a catch-up is in flight wait here */
  private held: ApiEvent[] | null = null

  constructor(private readonly token: string) {
    if (!token) {
      this.setState('closed', 'no access token: open the address that `npm start` printed (it ends in #token=…)')
      return
    }
    this.connect()
  }

  setResumeFrom(seq: () => number): void {
    this.resumeFrom = seq
  }

  call<M extends MethodName>(method: M, params?: unknown): Promise<ResultOf<M>> {
    return new Promise<unknown>((resolve, reject) => {
      const ws = this.ws
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new ApiError('unavailable', `${method}: not connected to the console backend`))
        return
      }
      const id = this.nextId++
      const timeoutMs = LONG_CALLS[method] ?? CALL_TIMEOUT_MS
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new ApiError('unavailable', `${method}: no answer from the console backend within ${timeoutMs / 1000} s`))
      }, timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      ws.send(JSON.stringify({ id, method, params: params ?? {} }))
    }) as Promise<ResultOf<M>>
  }

  onEvents(listener: (events: ApiEvent[]) => void): () => void {
    this.eventListeners.add(listener)
    return () => this.eventListeners.delete(listener)
  }

  onConnection(listener: (state: ConnectionState, detail: string | null) => void): () => void {
    this.connListeners.add(listener)
    listener(this.state, this.detail)
    return () => this.connListeners.delete(listener)
  }

  private setState(state: ConnectionState, detail: string | null): void {
    this.state = state
    this.detail = detail
    for (const l of this.connListeners) l(state, detail)
  }

  private connect(): void {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api?token=${encodeURIComponent(this.token)}`
    const ws = new WebSocket(url)
    this.ws = ws
    ws.onopen = () => {
      const resumed = this.everOpened
      this.everOpened = true
      this.retryMs = 500
      this.setState('open', null)
      if (resumed && this.resumeFrom) void this.catchUp(this.resumeFrom())
    }
    ws.onmessage = (e: MessageEvent) => this.receive(String(e.data))
    ws.onclose = (e: CloseEvent) => {
      this.ws = null
      for (const [, p] of this.pending) {
        clearTimeout(p.timer)
        p.reject(new ApiError('unavailable', 'the connection to the console backend closed'))
      }
      this.pending.clear()
      // a browser cannot see the HTTP status of a refused upgrade: a connection that never
      // opened is most likely a wrong token or a console that is not running
      const why = this.everOpened
        ? `connection to the console backend lost${e.reason ? ` (${e.reason})` : ''}; reconnecting…`
        : 'the console backend refused the connection or is not running: check that `npm start` is still running and open the address it printed (with its #token=…)'
      this.setState(this.everOpened ? 'connecting' : 'closed', why)
      setTimeout(() => this.connect(), this.retryMs)
      this.retryMs = Math.min(this.retryMs * 2, 5000)
    }
  }

  private async catchUp(since: number): Promise<void> {
    this.held = []
    let missed: ApiEvent[] = []
    try {
      const r: EventsSince = await this.call('events.since', { seq: since })
      missed = r.events
    } catch {
      // the next status snapshot brings the screen up to date anyway
    }
    const held = this.held ?? []
    this.held = null
    const last = missed.length ? missed[missed.length - 1].seq : since
    const merged = [...missed, ...held.filter((e) => e.seq > last)]
    if (merged.length) this.emit(merged)
  }

  private emit(events: ApiEvent[]): void {
    if (this.held) {
      this.held.push(...events)
      return
    }
    for (const l of this.eventListeners) l(events)
  }

  private receive(text: string): void {
    let msg: WireMessage
    try {
      msg = JSON.parse(text) as WireMessage
    } catch {
      return
    }
    if (msg.t === 'events') {
      this.emit(msg.events)
      return
    }
    if (msg.t === 'res') {
      const p = this.pending.get(msg.id)
      if (!p) return
      this.pending.delete(msg.id)
      clearTimeout(p.timer)
      if (msg.ok) p.resolve(msg.result)
      else p.reject(new ApiError(msg.error.code, msg.error.message))
    }
  }
}
