// Authenticated framing for peer traffic (logging channel, disk protocol).
//
//   header (16 bytes): magic 'FT' | version u8 | type u8 | payload length u32 BE | seq u64 BE
//   payload (length bytes, codec)
//   tag (16 bytes): HMAC-SHA256(labKey, receiverNonce | header | payload), its first 128 bits
//   (truncated as in RFC 4868's HMAC-SHA-256-128: a forger still has to guess 128 bits, and a
//   frame per event-loop turn of small entries pays 16 bytes less)
//
// The tag covers the receiver's per-connection nonce, so a frame recorded on one
// connection fails on any other, and the sender's strictly increasing sequence number
// (in the header), so a frame re-sent within one connection is caught by the receiver.
// Hello frames cannot know the receiver's nonce yet and use an all-zero one; they prove
// nothing by themselves, which is why a session only counts as up after the peer's ack.
import { createHmac, timingSafeEqual } from 'node:crypto'

export const FRAME_MAGIC_0 = 0x46 // 'F'
export const FRAME_MAGIC_1 = 0x54 // 'T'
/**
 * 3: the codec packs 'entries' messages (codec.ts, T_ENTRIES). A peer of another version is refused at its
 * first header ("unsupported frame version"), rather than dropping the messages it cannot decode one by one.
 */
export const FRAME_VERSION = 3
export const HEADER_BYTES = 16
export const TAG_BYTES = 16
export const NONCE_BYTES = 16
export const KEY_BYTES = 32
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
/** A length above this cannot be a frame of ours at any setting: the stream is lost. */
export const ABSURD_FRAME_BYTES = 1024 * 1024 * 1024

/** Batch: several message payloads sent in one event-loop turn, one frame and one tag for all (see encodeBatch). */
export const FrameType = { Hello: 1, Ack: 2, Message: 3, Batch: 4 } as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

export const HELLO_NONCE: Uint8Array = new Uint8Array(NONCE_BYTES)

export interface RawFrame {
  type: number
  seq: number
  header: Buffer
  payload: Buffer
  tag: Buffer
}

export function frameTag(key: Uint8Array, nonce: Uint8Array, header: Uint8Array, payload: Uint8Array): Buffer {
  return createHmac('sha256', key).update(nonce).update(header).update(payload).digest()
}

export function encodeFrame(type: FrameType, seq: number, payload: Uint8Array, key: Uint8Array, receiverNonce: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length + TAG_BYTES)
  out[0] = FRAME_MAGIC_0
  out[1] = FRAME_MAGIC_1
  out[2] = FRAME_VERSION
  out[3] = type
  out.writeUInt32BE(payload.length, 4)
  out.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 8)
  out.writeUInt32BE(seq >>> 0, 12)
  out.set(payload, HEADER_BYTES)
  const tag = frameTag(key, receiverNonce, out.subarray(0, HEADER_BYTES), payload)
  tag.copy(out, HEADER_BYTES + payload.length, 0, TAG_BYTES)
  return out
}

/**
 * The payload of a Batch frame: each message as (varint length, bytes). One frame per turn
 * instead of one per message saves a tag, a header and a socket write per message.
 */
export function encodeBatch(payloads: readonly Uint8Array[], total: number): Uint8Array {
  const out = Buffer.allocUnsafe(total + payloads.length * 5)
  let at = 0
  for (const p of payloads) {
    let n = p.length
    while (n >= 0x80) {
      out[at++] = (n & 0x7f) | 0x80
      n >>>= 7
    }
    out[at++] = n
    out.set(p, at)
    at += p.length
  }
  return out.subarray(0, at)
}

/** Split a Batch frame's payload; throws an Error naming the offset when it is malformed (the frame is then dropped whole). */
export function decodeBatch(payload: Buffer): Buffer[] {
  const out: Buffer[] = []
  let at = 0
  while (at < payload.length) {
    const start = at
    let n = 0
    let shift = 0
    for (;;) {
      if (at >= payload.length) throw new Error(`batch frame: message length at offset ${start} runs past the end`)
      if (shift > 28) throw new Error(`batch frame: message length at offset ${start} is longer than 5 bytes`)
      const b = payload[at++]
      n += (b & 0x7f) * 2 ** shift
      shift += 7
      if (b < 0x80) break
    }
    if (n > payload.length - at) throw new Error(`batch frame: message of ${n} bytes at offset ${start} overruns the frame (${payload.length - at} left)`)
    out.push(payload.subarray(at, at + n))
    at += n
  }
  return out
}

export function verifyFrame(frame: RawFrame, key: Uint8Array, receiverNonce: Uint8Array): boolean {
  const expected = frameTag(key, receiverNonce, frame.header, frame.payload).subarray(0, TAG_BYTES)
  return frame.tag.length === TAG_BYTES && timingSafeEqual(expected, frame.tag)
}

/** What the reader found in the stream. `fatal` means the stream cannot be resynchronised. */
export type ReadResult = { kind: 'frame'; frame: RawFrame } | { kind: 'oversized'; length: number; type: number; seq: number } | { kind: 'fatal'; why: string }

/**
 * Splits a byte stream into frames without trusting it: the header is checked before a
 * body buffer is allocated, an oversized frame is skipped without buffering it, and
 * anything that makes frame boundaries unknowable is fatal.
 */
export class FrameReader {
  private readonly header = Buffer.alloc(HEADER_BYTES)
  private headerFill = 0
  private body: Buffer | null = null
  private bodyFill = 0
  private skipLeft = 0
  private fatal = false

  constructor(private readonly maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {}

  /** Feed a chunk; returns what completed in it, in order. Nothing is returned after a fatal result. */
  push(chunk: Uint8Array): ReadResult[] {
    const out: ReadResult[] = []
    let at = 0
    while (at < chunk.length && !this.fatal) {
      if (this.skipLeft > 0) {
        const n = Math.min(this.skipLeft, chunk.length - at)
        this.skipLeft -= n
        at += n
        continue
      }
      if (this.body) {
        const n = Math.min(this.body.length - this.bodyFill, chunk.length - at)
        this.body.set(chunk.subarray(at, at + n), this.bodyFill)
        this.bodyFill += n
        at += n
        if (this.bodyFill === this.body.length) {
          const body = this.body
          const len = body.length - TAG_BYTES
          this.body = null
          out.push({
            kind: 'frame',
            frame: {
              type: this.header[3],
              seq: this.headerSeq(),
              header: Buffer.from(this.header),
              payload: body.subarray(0, len),
              tag: body.subarray(len)
            }
          })
          this.headerFill = 0
        }
        continue
      }
      const n = Math.min(HEADER_BYTES - this.headerFill, chunk.length - at)
      this.header.set(chunk.subarray(at, at + n), this.headerFill)
      this.headerFill += n
      at += n
      // check the magic as soon as it is here, so garbage is refused without waiting for 16 bytes
      if (this.headerFill >= 1 && this.header[0] !== FRAME_MAGIC_0) return this.fail(out, `bad magic byte 0x${this.header[0].toString(16)}`)
      if (this.headerFill >= 2 && this.header[1] !== FRAME_MAGIC_1) return this.fail(out, `bad magic byte 0x${this.header[1].toString(16)}`)
      if (this.headerFill >= 3 && this.header[2] !== FRAME_VERSION)
        return this.fail(out, `unsupported frame version ${this.header[2]} (this agent speaks ${FRAME_VERSION})`)
      if (this.headerFill < HEADER_BYTES) continue
      const length = this.header.readUInt32BE(4)
      if (length > ABSURD_FRAME_BYTES) return this.fail(out, `absurd frame length ${length}`)
      if (length > this.maxFrameBytes) {
        out.push({ kind: 'oversized', length, type: this.header[3], seq: this.headerSeq() })
        this.skipLeft = length + TAG_BYTES
        this.headerFill = 0
        continue
      }
      this.body = Buffer.allocUnsafe(length + TAG_BYTES)
      this.bodyFill = 0
    }
    return out
  }

  /** Bytes of a frame started but not finished (for telling a torn stream from a clean close). */
  get partial(): boolean {
    return this.headerFill > 0 || this.body !== null || this.skipLeft > 0
  }

  private headerSeq(): number {
    return this.header.readUInt32BE(8) * 0x1_0000_0000 + this.header.readUInt32BE(12)
  }

  private fail(out: ReadResult[], why: string): ReadResult[] {
    this.fatal = true
    out.push({ kind: 'fatal', why })
    return out
  }
}
