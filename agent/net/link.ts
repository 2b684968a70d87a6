// A Link is the message connection to one peer: it outlives TCP connections (a dialled
// link reconnects with backoff; a listener hands a returning peer's new connection to the
// same Link), keeps byte and message counters in both directions, and passes every
// message through the transport filter, so network faults apply to whole messages.
import { EventEmitter } from 'node:events'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { CodecError, decode, encode } from './codec.js'
import { DEFAULT_MAX_FRAME_BYTES } from './frame.js'
import { Session, checkKey, type DropReport, type SessionOptions } from './session.js'
import { PASS_FILTER, type LinkFilter } from '../faults/filter.js'

export type { DropReport } from './session.js'

export interface LinkStats {
  peer: string | null
  up: boolean
  bytesSent: number
  bytesReceived: number
  messagesSent: number
  messagesReceived: number
  /** messages the transport filter dropped (injected faults) */
  filteredOut: number
  filteredIn: number
  /** frames or connections refused (unauthenticated, replayed, malformed, oversized) */
  refused: number
  /** messages not sent because the link was down */
  unsent: number
  /** sessions that came up */
  connects: number
  /** bytes queued in the socket, not yet on the wire */
  bufferedBytes: number
}

export interface LinkEvents {
  message: [msg: unknown]
  up: [peerId: string]
  down: [reason: string]
  dropped: [report: DropReport]
}

export interface LinkCommon {
  selfId: string
  /** the per-lab key, 32 bytes */
  key: Uint8Array
  filter?: LinkFilter
  maxFrameBytes?: number
  handshakeTimeoutMs?: number
}

export class Link extends EventEmitter<LinkEvents> {
  private session: Session | null = null
  private closed = false
  private readonly delayed: { due: number; payload: Uint8Array }[] = []
  private delayTimer: NodeJS.Timeout | null = null
  private counts = { bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0, filteredOut: 0, filteredIn: 0, refused: 0, unsent: 0, connects: 0 }

  constructor(
    protected readonly common: LinkCommon,
    private knownPeer: string | null
  ) {
    super()
    checkKey(common.key)
  }

  get peerId(): string | null {
    return this.knownPeer
  }

  get up(): boolean {
    return this.session?.up === true
  }

  get isClosed(): boolean {
    return this.closed
  }

  /**
   * Send one message (any codec value). Returns false when it was not accepted: the link
   * is down, or the message cannot be encoded or is too large (reported as dropped).
   * A message the filter drops counts as accepted: to the sender, it is lost on the wire.
   */
  send(msg: unknown): boolean {
    return this.offer(msg) === 'accepted'
  }

  /**
   * Like send, but says why a message was not accepted: 'down' (it may pass once the link is
   * up again), or the reason it was refused for good (too large, cannot be encoded), which a
   * sender that resends must hear, or it would resend it forever.
   */
  offer(msg: unknown): 'accepted' | 'down' | { refused: string } {
    const s = this.session
    if (!s || !s.up || this.closed) {
      this.counts.unsent++
      return 'down'
    }
    const peer = this.knownPeer!
    const delay = (this.common.filter ?? PASS_FILTER).outbound(peer)
    if (delay === null) {
      this.counts.filteredOut++
      return 'accepted'
    }
    let payload: Uint8Array
    try {
      payload = encode(msg)
    } catch (err) {
      return this.refuseOutbound(err instanceof CodecError ? err.message : String(err))
    }
    const limit = this.common.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    if (payload.length > limit) return this.refuseOutbound(`message of ${payload.length} bytes exceeds the frame limit of ${limit}`)
    if (delay <= 0 && this.delayed.length === 0) return this.transmit(payload) ? 'accepted' : 'down'
    // a delayed message never overtakes an earlier one: TCP would not reorder them either
    const last = this.delayed.length ? this.delayed[this.delayed.length - 1].due : 0
    this.delayed.push({ due: Math.max(Date.now() + delay, last), payload })
    this.armDelay()
    return 'accepted'
  }

  /**
   * Put the messages sent so far on the wire now, rather than when the event-loop turn ends: for a sender whose own
   * turn-end work is done (the edge's drain, the disk server's group commit), so its frame does not wait a further
   * turn, in which new input would be handled first.
   */
  flush(): void {
    this.session?.flush()
  }

  stats(): LinkStats {
    const s = this.session
    return {
      peer: this.knownPeer,
      up: this.up,
      ...this.counts,
      bytesSent: this.counts.bytesSent + (s?.bytesOut ?? 0),
      bytesReceived: this.counts.bytesReceived + (s?.bytesIn ?? 0),
      bufferedBytes: s?.bufferedBytes ?? 0
    }
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.clearDelayed()
    this.session?.close('link closed locally')
    this.onClose()
  }

  protected onClose(): void {}

  /** Take over a fresh TCP connection for this peer; an older one is closed. */
  attach(session: Session): void {
    if (this.closed) {
      session.close('link closed')
      return
    }
    const old = this.session
    this.session = session
    if (old) old.close('replaced by a newer connection from the same peer')
    let wasUp = false
    const onUp = (peerId: string) => {
      wasUp = true
      this.knownPeer = peerId
      this.counts.connects++
      this.emit('up', peerId)
    }
    session.on('dropped', (r) => {
      this.counts.refused++
      this.emit('dropped', r)
    })
    session.on('payload', (payload) => this.onPayload(session, payload))
    session.on('closed', (reason) => {
      // a finished session's bytes move into the link's totals
      this.counts.bytesReceived += session.bytesIn
      this.counts.bytesSent += session.bytesOut
      if (this.session !== session) return
      this.session = null
      this.clearDelayed()
      if (wasUp) this.emit('down', reason)
      this.afterSession(reason, wasUp)
    })
    if (session.up) onUp(session.peerId!)
    else session.once('up', onUp)
  }

  /** Hook for the dialling side: schedule a reconnect. */
  protected afterSession(_reason: string, _wasUp: boolean): void {}

  private onPayload(session: Session, payload: Buffer): void {
    const peer = session.peerId!
    if (!(this.common.filter ?? PASS_FILTER).inbound(peer)) {
      this.counts.filteredIn++
      return
    }
    let msg: unknown
    try {
      msg = decode(payload)
    } catch (err) {
      this.counts.refused++
      this.emit('dropped', {
        what: 'message',
        from: `${peer}@${session.remote}`,
        why: `malformed message: ${err instanceof CodecError ? err.message : String(err)}`
      })
      return
    }
    this.counts.messagesReceived++
    // a throwing listener is the listener's bug; it must not tear down the link
    try {
      this.emit('message', msg)
    } catch (err) {
      this.emit('dropped', { what: 'message', from: `${peer}@${session.remote}`, why: `message handler failed: ${(err as Error)?.message ?? String(err)}` })
    }
  }

  private transmit(payload: Uint8Array): boolean {
    const s = this.session
    if (!s || !s.sendPayload(payload)) {
      this.counts.unsent++
      return false
    }
    this.counts.messagesSent++
    return true
  }

  private armDelay(): void {
    if (this.delayTimer || this.delayed.length === 0) return
    const wait = Math.max(0, this.delayed[0].due - Date.now())
    this.delayTimer = setTimeout(() => {
      this.delayTimer = null
      const now = Date.now()
      while (this.delayed.length && this.delayed[0].due <= now) this.transmit(this.delayed.shift()!.payload)
      this.armDelay()
    }, wait)
  }

  private clearDelayed(): void {
    // messages still "in flight" when the connection goes are lost, as on a real network
    this.delayed.length = 0
    if (this.delayTimer) clearTimeout(this.delayTimer)
    this.delayTimer = null
  }

  private refuseOutbound(why: string): { refused: string } {
    this.counts.refused++
    this.emit('dropped', { what: 'message', from: this.common.selfId, why: `outbound message to ${this.knownPeer} refused: ${why}` })
    return { refused: why }
  }
}

export interface DialOptions extends LinkCommon {
  host: string
  port: number
  /** refuse a server that says it is someone else */
  expectPeer?: string
  minBackoffMs?: number
  maxBackoffMs?: number
}

/** A link that dials its peer and keeps redialling with exponential backoff until closed. */
export class DialedLink extends Link {
  private attempt = 0
  private retryTimer: NodeJS.Timeout | null = null
  private socket: Socket | null = null

  constructor(private readonly opts: DialOptions) {
    super(opts, opts.expectPeer ?? null)
    this.dial()
  }

  private dial(): void {
    if (this.isClosed) return
    const socket = createConnection({ host: this.opts.host, port: this.opts.port })
    this.socket = socket
    const sessionOpts: SessionOptions = {
      selfId: this.opts.selfId,
      key: this.opts.key,
      maxFrameBytes: this.opts.maxFrameBytes,
      handshakeTimeoutMs: this.opts.handshakeTimeoutMs,
      expectPeer: this.opts.expectPeer
    }
    const onConnectError = () => this.scheduleRetry()
    socket.once('error', onConnectError)
    socket.once('connect', () => {
      socket.off('error', onConnectError)
      const session = new Session(socket, sessionOpts)
      session.once('up', () => (this.attempt = 0))
      this.attach(session)
    })
  }

  protected override afterSession(): void {
    this.scheduleRetry()
  }

  private scheduleRetry(): void {
    if (this.isClosed || this.retryTimer) return
    this.socket?.destroy()
    const min = this.opts.minBackoffMs ?? 100
    const max = this.opts.maxBackoffMs ?? 5000
    // full jitter keeps two agents that lost the same peer from redialling in lockstep
    const ceiling = Math.min(max, min * 2 ** Math.min(this.attempt, 20))
    const wait = min / 2 + Math.random() * (ceiling - min / 2)
    this.attempt++
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      this.dial()
    }, wait)
  }

  protected override onClose(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.retryTimer = null
    this.socket?.destroy()
  }
}

export function dialLink(opts: DialOptions): DialedLink {
  return new DialedLink(opts)
}

export interface ListenOptions extends LinkCommon {
  host: string
  /** 0 = any free port */
  port: number
}

export interface LinkListenerEvents {
  /** a peer connected and authenticated for the first time */
  link: [link: Link]
  /** anything refused, on any connection (before or after authentication) */
  dropped: [report: DropReport]
}

/** Accepts links from peers; the peer's id comes from its authenticated hello. */
export class LinkListener extends EventEmitter<LinkListenerEvents> {
  private readonly links = new Map<string, Link>()
  private readonly pending = new Set<Session>()
  private server: Server | null = null

  constructor(private readonly opts: ListenOptions) {
    super()
    checkKey(opts.key)
  }

  get port(): number {
    const a = this.server?.address()
    return typeof a === 'object' && a ? a.port : 0
  }

  /** The link to `peerId`, created if it has not connected yet (so handlers can be set up first). */
  link(peerId: string): Link {
    let l = this.links.get(peerId)
    if (!l) {
      l = new Link(this.opts, peerId)
      l.on('dropped', (r) => this.emit('dropped', r))
      this.links.set(peerId, l)
    }
    return l
  }

  allLinks(): Link[] {
    return [...this.links.values()]
  }

  listen(): Promise<this> {
    return new Promise((resolve, reject) => {
      const server = createServer((socket) => this.accept(socket))
      server.once('error', reject)
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject)
        server.on('error', (err) =>
          this.emit('dropped', { what: 'connection', from: `${this.opts.host}:${this.opts.port}`, why: `listener error: ${err.message}` })
        )
        this.server = server
        resolve(this)
      })
    })
  }

  async close(): Promise<void> {
    for (const s of this.pending) s.close('listener closed')
    this.pending.clear()
    for (const l of this.links.values()) l.close()
    const server = this.server
    this.server = null
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private accept(socket: Socket): void {
    let session: Session
    try {
      session = new Session(socket, {
        selfId: this.opts.selfId,
        key: this.opts.key,
        maxFrameBytes: this.opts.maxFrameBytes,
        handshakeTimeoutMs: this.opts.handshakeTimeoutMs
      })
    } catch (err) {
      socket.destroy()
      this.emit('dropped', { what: 'connection', from: `${socket.remoteAddress}:${socket.remotePort}`, why: String(err) })
      return
    }
    this.pending.add(session)
    const onDropped = (r: DropReport) => this.emit('dropped', r)
    session.on('dropped', onDropped)
    session.once('closed', () => this.pending.delete(session))
    session.once('up', (peerId) => {
      this.pending.delete(session)
      session.off('dropped', onDropped)
      const isNew = !this.links.has(peerId)
      const link = this.link(peerId)
      // announce first, so a handler set up on 'link' also hears this first 'up'
      if (isNew) this.emit('link', link)
      link.attach(session)
    })
  }
}

export async function listenLinks(opts: ListenOptions): Promise<LinkListener> {
  return new LinkListener(opts).listen()
}
