// A small RFC 6455 WebSocket server side, on a socket handed over by node:http's
// 'upgrade' event. Only what the console needs: text messages (binary ones are refused),
// ping/pong, the closing handshake, masking (required from clients), fragmentation with a
// bound on the whole message, and no extensions. The HTTP side (token, Origin, Host) is
// checked by server.ts before a connection gets here.
import { createHash } from 'node:crypto'
import type { Duplex } from 'node:stream'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

export enum Opcode {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xa
}

/** Close codes used here (RFC 6455 §7.4.1). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  Unsupported: 1003,
  InvalidData: 1007,
  Policy: 1008,
  TooBig: 1009,
  Internal: 1011
} as const

/** Sec-WebSocket-Accept for a client's Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64')
}

/** A Sec-WebSocket-Key is 16 random bytes, base64: 24 characters ending in '=='. */
export function isValidKey(key: string | undefined): key is string {
  return typeof key === 'string' && /^[A-Za-z0-9+/]{22}==$/.test(key)
}

/** Encodes one unmasked (server → client) frame. */
export function encodeFrame(opcode: Opcode, payload: Buffer, fin = true): Buffer {
  const len = payload.length
  let header: Buffer
  if (len < 126) {
    header = Buffer.alloc(2)
    header[1] = len
  } else if (len < 65536) {
    header = Buffer.alloc(4)
    header[1] = 126
    header.writeUInt16BE(len, 2)
  } else {
    header = Buffer.alloc(10)
    header[1] = 127
    header.writeBigUInt64BE(BigInt(len), 2)
  }
  header[0] = (fin ? 0x80 : 0) | opcode
  return Buffer.concat([header, payload])
}

export interface Frame {
  fin: boolean
  opcode: number
  payload: Buffer
}

/** Thrown by the parser; `code` is the close code to send. */
export class WsProtocolError extends Error {
  constructor(
    readonly code: number,
    message: string
  ) {
    super(message)
    this.name = 'WsProtocolError'
  }
}

/**
 * Incremental frame parser for client → server frames. Feed it bytes as they arrive;
 * it returns whole frames. It refuses unmasked frames, reserved bits, unknown opcodes,
 * fragmented or oversized control frames, and any frame whose payload alone would make
 * the message exceed `maxPayload` (checked on the header, before the bytes arrive).
 */
export class FrameParser {
  private buf: Buffer = Buffer.alloc(0)

  constructor(private readonly maxPayload: number) {}

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk
    const frames: Frame[] = []
    for (;;) {
      const f = this.next()
      if (!f) break
      frames.push(f)
    }
    return frames
  }

  private next(): Frame | null {
    const b = this.buf
    if (b.length < 2) return null
    const fin = (b[0] & 0x80) !== 0
    if (b[0] & 0x70) throw new WsProtocolError(CloseCode.ProtocolError, 'reserved bits set (no extensions were negotiated)')
    const opcode = b[0] & 0x0f
    const known = [Opcode.Continuation, Opcode.Text, Opcode.Binary, Opcode.Close, Opcode.Ping, Opcode.Pong] as number[]
    if (!known.includes(opcode)) throw new WsProtocolError(CloseCode.ProtocolError, `unknown opcode 0x${opcode.toString(16)}`)
    const masked = (b[1] & 0x80) !== 0
    if (!masked) throw new WsProtocolError(CloseCode.ProtocolError, 'client frames must be masked')
    let len = b[1] & 0x7f
    let offset = 2
    if (len === 126) {
      if (b.length < 4) return null
      len = b.readUInt16BE(2)
      offset = 4
    } else if (len === 127) {
      if (b.length < 10) return null
      const big = b.readBigUInt64BE(2)
      if (big > BigInt(this.maxPayload)) throw new WsProtocolError(CloseCode.TooBig, `frame of ${big} bytes exceeds the ${this.maxPayload}-byte limit`)
      len = Number(big)
      offset = 10
    }
    const isControl = opcode >= 0x8
    if (isControl && (!fin || len > 125)) {
      throw new WsProtocolError(CloseCode.ProtocolError, 'control frames must not be fragmented and carry at most 125 bytes')
    }
    if (len > this.maxPayload) throw new WsProtocolError(CloseCode.TooBig, `frame of ${len} bytes exceeds the ${this.maxPayload}-byte limit`)
    if (b.length < offset + 4 + len) return null
    const mask = b.subarray(offset, offset + 4)
    const payload = Buffer.from(b.subarray(offset + 4, offset + 4 + len))
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3]
    this.buf = b.subarray(offset + 4 + len)
    return { fin, opcode, payload }
  }
}

export interface WsOptions {
  /** largest message (all fragments together), bytes */
  maxMessageBytes: number
  /** largest number of fragments in one message */
  maxFragments?: number
  /** ping interval; a connection that has not answered the previous ping by the next is closed */
  pingIntervalMs?: number
  /** bytes queued on the socket beyond which the peer is too slow and is dropped */
  maxBufferedBytes?: number
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** One accepted WebSocket connection (server side). */
export class WsConnection {
  onMessage: (text: string) => void = () => {}
  onClose: (code: number, reason: string) => void = () => {}

  private readonly parser: FrameParser
  private fragments: Buffer[] = []
  private fragmentBytes = 0
  private fragmentOpcode = -1
  private closing = false
  private closed = false
  private awaitingPong = false
  private pingTimer: ReturnType<typeof setInterval> | null = null
  private readonly opts: Required<WsOptions>

  constructor(
    private readonly socket: Duplex,
    opts: WsOptions,
    head?: Buffer
  ) {
    this.opts = { maxFragments: 1024, pingIntervalMs: 20_000, maxBufferedBytes: 16 * 1024 * 1024, ...opts }
    this.parser = new FrameParser(this.opts.maxMessageBytes)
    socket.on('data', (chunk: Buffer) => this.receive(chunk))
    socket.on('error', () => this.finish(CloseCode.GoingAway, 'socket error'))
    socket.on('close', () => this.finish(CloseCode.GoingAway, 'connection lost'))
    if (this.opts.pingIntervalMs > 0) {
      this.pingTimer = setInterval(() => this.keepAlive(), this.opts.pingIntervalMs)
      this.pingTimer.unref?.()
    }
    if (head && head.length) this.receive(head)
  }

  get isOpen(): boolean {
    return !this.closing && !this.closed
  }

  sendText(text: string): void {
    if (!this.isOpen) return
    this.write(encodeFrame(Opcode.Text, Buffer.from(text, 'utf8')))
    const s = this.socket as Duplex & { writableLength?: number }
    if ((s.writableLength ?? 0) > this.opts.maxBufferedBytes) {
      this.close(CloseCode.Policy, 'client too slow: send buffer full')
    }
  }

  /** Starts the closing handshake; the socket ends when the client answers (or soon after). */
  close(code: number = CloseCode.Normal, reason = ''): void {
    if (this.closing || this.closed) return
    this.closing = true
    const r = Buffer.from(reason.slice(0, 100), 'utf8').subarray(0, 123)
    const payload = Buffer.alloc(2 + r.length)
    payload.writeUInt16BE(code, 0)
    r.copy(payload, 2)
    this.write(encodeFrame(Opcode.Close, payload))
    const t = setTimeout(() => this.socket.destroy(), 1000)
    t.unref?.()
    this.socket.end()
    this.finish(code, reason)
  }

  private write(buf: Buffer): void {
    if (this.closed || this.socket.destroyed) return
    this.socket.write(buf)
  }

  private keepAlive(): void {
    if (this.awaitingPong) {
      this.close(CloseCode.GoingAway, 'no pong')
      return
    }
    this.awaitingPong = true
    this.write(encodeFrame(Opcode.Ping, Buffer.alloc(0)))
  }

  private receive(chunk: Buffer): void {
    if (this.closed) return
    let frames: Frame[]
    try {
      frames = this.parser.push(chunk)
    } catch (err) {
      const e = err instanceof WsProtocolError ? err : new WsProtocolError(CloseCode.ProtocolError, String(err))
      this.close(e.code, e.message)
      return
    }
    for (const f of frames) {
      if (this.closing) return
      try {
        this.handle(f)
      } catch (err) {
        const e = err instanceof WsProtocolError ? err : new WsProtocolError(CloseCode.Internal, 'internal error')
        this.close(e.code, e.message)
        return
      }
    }
  }

  private handle(f: Frame): void {
    switch (f.opcode) {
      case Opcode.Ping:
        this.write(encodeFrame(Opcode.Pong, f.payload))
        return
      case Opcode.Pong:
        this.awaitingPong = false
        return
      case Opcode.Close: {
        if (f.payload.length === 1) throw new WsProtocolError(CloseCode.ProtocolError, 'close frame with a 1-byte payload')
        const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : CloseCode.Normal
        this.close(code === 1005 || code === 1006 || code === 1015 ? CloseCode.ProtocolError : CloseCode.Normal, '')
        return
      }
      case Opcode.Text:
      case Opcode.Binary:
        if (this.fragmentOpcode !== -1) throw new WsProtocolError(CloseCode.ProtocolError, 'new message before the previous one was finished')
        if (f.fin) return this.deliver(f.opcode, f.payload)
        this.fragmentOpcode = f.opcode
        this.addFragment(f.payload)
        return
      case Opcode.Continuation: {
        if (this.fragmentOpcode === -1) throw new WsProtocolError(CloseCode.ProtocolError, 'continuation frame without a message to continue')
        this.addFragment(f.payload)
        if (!f.fin) return
        const whole = Buffer.concat(this.fragments)
        const op = this.fragmentOpcode
        this.fragments = []
        this.fragmentBytes = 0
        this.fragmentOpcode = -1
        this.deliver(op, whole)
        return
      }
    }
  }

  private addFragment(p: Buffer): void {
    this.fragmentBytes += p.length
    if (this.fragmentBytes > this.opts.maxMessageBytes) {
      throw new WsProtocolError(CloseCode.TooBig, `message exceeds the ${this.opts.maxMessageBytes}-byte limit`)
    }
    if (this.fragments.length >= this.opts.maxFragments) {
      throw new WsProtocolError(CloseCode.TooBig, `message has more than ${this.opts.maxFragments} fragments`)
    }
    this.fragments.push(p)
  }

  private deliver(opcode: number, payload: Buffer): void {
    if (opcode === Opcode.Binary) throw new WsProtocolError(CloseCode.Unsupported, 'binary messages are not accepted')
    let text: string
    try {
      text = utf8.decode(payload)
    } catch {
      throw new WsProtocolError(CloseCode.InvalidData, 'text message is not valid UTF-8')
    }
    this.onMessage(text)
  }

  private finish(code: number, reason: string): void {
    if (this.closed) return
    this.closed = true
    this.closing = true
    if (this.pingTimer) clearInterval(this.pingTimer)
    this.pingTimer = null
    this.onClose(code, reason)
  }
}
