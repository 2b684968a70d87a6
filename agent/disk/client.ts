// A replica's client for the disk server: requests answered by id over an authenticated,
// self-reconnecting link, and a timeout that reports the server unreachable instead of
// waiting forever (the replica protocol decides whether to retry).
import { EventEmitter } from 'node:events'
import type { DiskReq, DiskRes } from '../replica/types.js'
import type { LinkFilter } from '../faults/filter.js'
import { type DialedLink, type DropReport, dialLink } from '../net/link.js'

export interface DiskClientOptions {
  selfId: string
  key: Uint8Array
  host: string
  port: number
  /** the disk server's agent id, if known: a server calling itself something else is refused */
  expectPeer?: string
  /** no answer within this long: the request fails as unreachable (default 2000 ms) */
  timeoutMs?: number
  filter?: LinkFilter
  minBackoffMs?: number
  maxBackoffMs?: number
}

export class DiskUnreachableError extends Error {
  constructor(
    message: string,
    readonly req: DiskReq
  ) {
    super(message)
    this.name = 'DiskUnreachableError'
  }
}

export interface DiskClientEvents {
  up: []
  down: [reason: string]
  unreachable: [req: DiskReq, message: string]
  dropped: [report: DropReport]
}

interface Pending {
  req: DiskReq
  /** the request as sent on the wire, with this client's own id */
  wire: DiskReq
  sent: boolean
  timer: NodeJS.Timeout
  resolve: (res: DiskRes) => void
  reject: (err: Error) => void
}

/** Distributes Omit over the request union, so each op keeps its own fields. */
export type DiskReqBody = DiskReq extends infer R ? (R extends DiskReq ? Omit<R, 'id'> & { id?: number } : never) : never

export class DiskClient extends EventEmitter<DiskClientEvents> {
  readonly link: DialedLink
  private readonly pending = new Map<number, Pending>()
  private nextWireId = 1
  private closed = false

  constructor(private readonly opts: DiskClientOptions) {
    super()
    this.link = dialLink({
      selfId: opts.selfId,
      key: opts.key,
      host: opts.host,
      port: opts.port,
      expectPeer: opts.expectPeer,
      filter: opts.filter,
      minBackoffMs: opts.minBackoffMs,
      maxBackoffMs: opts.maxBackoffMs
    })
    this.link.on('up', () => {
      // requests made while the link was down go out now; ones already sent are left to their timeout: the replica
      // protocol asks again (a write carries its write id, so the disk server applies it once and never over a newer one)
      for (const p of this.pending.values()) if (!p.sent) p.sent = this.link.send(p.wire)
      this.emit('up')
    })
    this.link.on('down', (reason) => this.emit('down', reason))
    this.link.on('dropped', (r) => this.emit('dropped', r))
    this.link.on('message', (msg) => this.onMessage(msg))
  }

  get connected(): boolean {
    return this.link.up
  }

  /**
   * Send a request and wait for its answer. The answer carries the caller's id (if given).
   * Rejects with DiskUnreachableError after the timeout, or when the client is closed.
   */
  request(body: DiskReqBody): Promise<DiskRes> {
    const callerId = body.id ?? 0
    const req = { ...body, id: callerId } as DiskReq
    if (this.closed) return Promise.reject(new DiskUnreachableError('disk client is closed', req))
    const wireId = this.nextWireId++
    const wire = { ...req, id: wireId } as DiskReq
    const timeoutMs = this.opts.timeoutMs ?? 2000
    return new Promise<DiskRes>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(wireId)
        const where = `${this.opts.host}:${this.opts.port}`
        const message = `disk server ${where} unreachable: no answer to ${req.op} (id ${callerId}) within ${timeoutMs} ms${this.link.up ? '' : ' (not connected)'}`
        this.emit('unreachable', req, message)
        reject(new DiskUnreachableError(message, req))
      }, timeoutMs)
      const p: Pending = { req, wire, sent: false, timer, resolve: (res) => resolve({ ...res, id: callerId }), reject }
      this.pending.set(wireId, p)
      p.sent = this.link.send(wire)
    })
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer)
      this.pending.delete(id)
      p.reject(new DiskUnreachableError(`disk client closed before ${p.req.op} (id ${p.req.id}) was answered`, p.req))
    }
    this.link.close()
  }

  private onMessage(msg: unknown): void {
    const res = msg as Partial<DiskRes> | null
    if (typeof res !== 'object' || res === null || typeof res.id !== 'number' || typeof res.ok !== 'boolean') {
      this.emit('dropped', { what: 'message', from: this.link.peerId ?? 'disk', why: 'disk answer is not a response object' })
      return
    }
    const p = this.pending.get(res.id)
    // an answer after its timeout: the caller has already been told; nothing to do
    if (!p) return
    this.pending.delete(res.id)
    clearTimeout(p.timer)
    p.resolve(res as DiskRes)
  }
}
