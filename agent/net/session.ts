// One authenticated TCP connection to a peer. Both sides send a hello (their id and a
// fresh nonce) at once; on a peer's hello each side answers with an ack MACed over the
// peer's nonce, which proves it holds the lab key *now*, on *this* connection. The
// session is up only once the peer's ack checks out, so a recorded hello replayed by
// someone without the key never makes a link come up under a stolen id.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { CodecError, decode, encode } from './codec.js'
import {
  DEFAULT_MAX_FRAME_BYTES,
  FrameReader,
  FrameType,
  HELLO_NONCE,
  KEY_BYTES,
  NONCE_BYTES,
  decodeBatch,
  encodeBatch,
  encodeFrame,
  verifyFrame,
  type RawFrame
} from './frame.js'

/** A frame or connection refused for a reason worth showing: what, from where, why. */
export interface DropReport {
  what: 'frame' | 'message' | 'connection'
  /** the peer's id once authenticated, else its address */
  from: string
  why: string
}

export interface SessionOptions {
  selfId: string
  key: Uint8Array
  maxFrameBytes?: number
  /** give up on a peer that has not completed the hello in this long */
  handshakeTimeoutMs?: number
  /** refuse a peer that says it is someone else */
  expectPeer?: string
}

export interface SessionEvents {
  up: [peerId: string]
  /** an authenticated, in-order message payload (codec bytes, not yet decoded) */
  payload: [payload: Buffer]
  dropped: [report: DropReport]
  closed: [reason: string]
}

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000
/** a turn's batch is sent early once it holds this many bytes, so one frame never waits on a huge turn */
const BATCH_FLUSH_BYTES = 256 * 1024
/** ... or once its oldest message has waited this long in a busy turn */
const BATCH_MAX_WAIT_MS = 2

export function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES)
    throw new Error(`lab key must be ${KEY_BYTES} bytes, got ${key instanceof Uint8Array ? key.length : typeof key}`)
}

export class Session extends EventEmitter<SessionEvents> {
  readonly remote: string
  peerId: string | null = null
  bytesIn = 0
  bytesOut = 0
  private readonly nonce = randomBytes(NONCE_BYTES)
  private peerNonce: Uint8Array | null = null
  private readonly reader: FrameReader
  private readonly maxFrameBytes: number
  private sendSeq = 0
  private lastPeerSeq = -1
  private isUp = false
  private closed = false
  private handshakeTimer: NodeJS.Timeout | null
  /** message payloads of this event-loop turn, sent as one frame when the turn ends (see flush) */
  private pending: Uint8Array[] = []
  private pendingBytes = 0
  private flushArmed = false
  /** when the oldest pending payload was handed over (ms) */
  private pendingSince = 0

  constructor(
    private readonly socket: Socket,
    private readonly opts: SessionOptions
  ) {
    super()
    checkKey(opts.key)
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
    this.reader = new FrameReader(this.maxFrameBytes)
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 5000)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', (err) => this.close(`socket error: ${err.message}`))
    socket.on('close', () => this.close('connection closed by peer'))
    this.handshakeTimer = setTimeout(
      () => this.fail(`no authenticated hello within ${opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS} ms`),
      opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS
    )
    this.handshakeTimer.unref()
    this.write(FrameType.Hello, encode({ v: 1, id: opts.selfId, nonce: this.nonce }), HELLO_NONCE)
  }

  get up(): boolean {
    return this.isUp
  }

  /** Bytes handed to the socket and not yet sent (backpressure). */
  get bufferedBytes(): number {
    return this.socket.writableLength + this.pendingBytes
  }

  /**
   * Send one message payload (codec bytes). Returns false if the session is not up. Payloads
   * sent in one event-loop turn leave together at the end of the turn, in order, in one frame
   * (one HMAC, one socket write): under load a turn carries many entries or acks, and a frame
   * and a syscall each cost more than the entry itself.
   */
  sendPayload(payload: Uint8Array): boolean {
    if (!this.isUp || this.closed || !this.peerNonce) return false
    const now = performance.now()
    if (this.pending.length === 0) this.pendingSince = now
    this.pending.push(payload)
    this.pendingBytes += payload.length
    // keep a batch well inside the receiver's frame limit (each payload is at most the limit alone),
    // and a long turn from keeping the peer waiting (heartbeats are among the payloads)
    if (this.pendingBytes >= Math.min(BATCH_FLUSH_BYTES, this.maxFrameBytes / 2) || now - this.pendingSince >= BATCH_MAX_WAIT_MS) this.flush()
    else if (!this.flushArmed) {
      this.flushArmed = true
      setImmediate(() => {
        this.flushArmed = false
        this.flush()
      })
    }
    return true
  }

  /** Send this turn's payloads now: one as a Message frame, several as one Batch frame. */
  flush(): void {
    if (this.pending.length === 0) return
    const payloads = this.pending
    const total = this.pendingBytes
    this.pending = []
    this.pendingBytes = 0
    // closed meanwhile: the messages are lost with the connection, as bytes in flight would be
    if (this.closed || !this.peerNonce) return
    if (payloads.length === 1 || total + payloads.length * 5 > this.maxFrameBytes) {
      for (const p of payloads) this.write(FrameType.Message, p, this.peerNonce)
    } else this.write(FrameType.Batch, encodeBatch(payloads, total), this.peerNonce)
  }

  close(reason = 'closed locally'): void {
    if (this.closed) return
    this.closed = true
    this.isUp = false
    this.pending = []
    this.pendingBytes = 0
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer)
    this.socket.destroy()
    this.emit('closed', reason)
  }

  private get from(): string {
    return this.peerId ? `${this.peerId}@${this.remote}` : this.remote
  }

  private write(type: FrameType, payload: Uint8Array, receiverNonce: Uint8Array): void {
    const frame = encodeFrame(type, this.sendSeq++, payload, this.opts.key, receiverNonce)
    this.bytesOut += frame.length
    this.socket.write(frame)
  }

  private report(what: DropReport['what'], why: string): void {
    this.emit('dropped', { what, from: this.from, why })
  }

  /** The stream or the handshake is beyond repair: report and close. */
  private fail(why: string): void {
    if (this.closed) return
    this.report('connection', why)
    this.close(why)
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return
    this.bytesIn += chunk.length
    for (const r of this.reader.push(chunk)) {
      if (this.closed) return
      if (r.kind === 'fatal') return this.fail(`unreadable stream: ${r.why}`)
      if (r.kind === 'oversized') {
        this.report('frame', `frame of ${r.length} bytes exceeds the limit of ${this.maxFrameBytes}`)
        continue
      }
      this.onFrame(r.frame)
    }
  }

  private onFrame(f: RawFrame): void {
    switch (f.type) {
      case FrameType.Hello:
        return this.onHello(f)
      case FrameType.Ack:
        if (!this.peerNonce) return this.fail('ack before hello')
        if (!verifyFrame(f, this.opts.key, this.nonce)) return this.fail('ack not authenticated (wrong lab key?)')
        if (f.seq <= this.lastPeerSeq) return this.fail(`replayed ack (seq ${f.seq})`)
        this.lastPeerSeq = f.seq
        if (this.isUp) return this.report('frame', 'second ack on an established session')
        this.isUp = true
        if (this.handshakeTimer) clearTimeout(this.handshakeTimer)
        this.handshakeTimer = null
        this.emit('up', this.peerId!)
        return
      case FrameType.Message:
        if (!this.isUp) return this.fail('message before the handshake completed')
        if (!verifyFrame(f, this.opts.key, this.nonce))
          return this.report('frame', `message not authenticated (seq ${f.seq}): tampered, or from another session or key`)
        if (f.seq <= this.lastPeerSeq) return this.report('frame', `replayed message (seq ${f.seq}, last ${this.lastPeerSeq})`)
        this.lastPeerSeq = f.seq
        this.emit('payload', f.payload)
        return
      case FrameType.Batch: {
        if (!this.isUp) return this.fail('message before the handshake completed')
        if (!verifyFrame(f, this.opts.key, this.nonce))
          return this.report('frame', `batch not authenticated (seq ${f.seq}): tampered, or from another session or key`)
        if (f.seq <= this.lastPeerSeq) return this.report('frame', `replayed batch (seq ${f.seq}, last ${this.lastPeerSeq})`)
        this.lastPeerSeq = f.seq
        let payloads: Buffer[]
        try {
          payloads = decodeBatch(f.payload)
        } catch (err) {
          return this.report('frame', `malformed batch (seq ${f.seq}): ${(err as Error).message}`)
        }
        for (const p of payloads) {
          if (this.closed) return
          this.emit('payload', p)
        }
        return
      }
      default:
        // the length was intact, so the stream is still in step: skip just this frame
        this.report('frame', `unknown frame type ${f.type}`)
    }
  }

  private onHello(f: RawFrame): void {
    if (this.peerNonce) return this.report('frame', 'second hello on an established session')
    if (!verifyFrame(f, this.opts.key, HELLO_NONCE)) return this.fail('hello not authenticated (wrong lab key?)')
    let hello: unknown
    try {
      hello = decode(f.payload)
    } catch (err) {
      return this.fail(`malformed hello: ${err instanceof CodecError ? err.message : String(err)}`)
    }
    const h = hello as { v?: unknown; id?: unknown; nonce?: unknown }
    if (
      typeof h !== 'object' ||
      h === null ||
      h.v !== 1 ||
      typeof h.id !== 'string' ||
      h.id.length === 0 ||
      !(h.nonce instanceof Uint8Array) ||
      h.nonce.length !== NONCE_BYTES
    ) {
      return this.fail('malformed hello: needs v 1, a non-empty id and a 16-byte nonce')
    }
    if (this.opts.expectPeer !== undefined && h.id !== this.opts.expectPeer)
      return this.fail(`peer says it is ${JSON.stringify(h.id)}, expected ${JSON.stringify(this.opts.expectPeer)}`)
    if (h.id === this.opts.selfId) return this.fail(`peer claims this agent's own id ${JSON.stringify(h.id)}`)
    this.lastPeerSeq = f.seq
    this.peerId = h.id
    this.peerNonce = h.nonce
    this.write(FrameType.Ack, new Uint8Array(0), this.peerNonce)
  }
}
