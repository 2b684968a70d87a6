import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  FRAME_VERSION,
  FrameReader,
  FrameType,
  HEADER_BYTES,
  TAG_BYTES,
  decodeBatch,
  encodeBatch,
  encodeFrame,
  verifyFrame,
  type RawFrame
} from '../../../agent/net/frame.js'

const key = randomBytes(32)
const nonce = randomBytes(16)

function frames(results: ReturnType<FrameReader['push']>): RawFrame[] {
  return results.flatMap((r) => (r.kind === 'frame' ? [r.frame] : []))
}

describe('FrameReader', () => {
  it('reassembles frames split at every possible byte boundary', () => {
    const a = encodeFrame(FrameType.Message, 7, Buffer.from('hello'), key, nonce)
    const b = encodeFrame(FrameType.Message, 8, Buffer.from('world!'), key, nonce)
    const stream = Buffer.concat([a, b])
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = new FrameReader()
      const got = frames([...r.push(stream.subarray(0, cut)), ...r.push(stream.subarray(cut))])
      expect(got.map((f) => [f.seq, f.payload.toString()])).toEqual([
        [7, 'hello'],
        [8, 'world!']
      ])
      expect(got.every((f) => verifyFrame(f, key, nonce))).toBe(true)
      expect(r.partial).toBe(false)
    }
  })

  it('carries sequence numbers beyond 2^32', () => {
    const r = new FrameReader()
    const [f] = frames(r.push(encodeFrame(FrameType.Message, 2 ** 40 + 5, new Uint8Array(0), key, nonce)))
    expect(f.seq).toBe(2 ** 40 + 5)
  })

  it('rejects a tag made with another key or for another nonce', () => {
    const [f] = frames(new FrameReader().push(encodeFrame(FrameType.Message, 1, Buffer.from('x'), key, nonce)))
    expect(verifyFrame(f, randomBytes(32), nonce)).toBe(false)
    expect(verifyFrame(f, key, randomBytes(16))).toBe(false)
  })

  it('skips an oversized frame without buffering it and reads the next one', () => {
    const r = new FrameReader(100)
    const big = encodeFrame(FrameType.Message, 1, new Uint8Array(1000), key, nonce)
    const small = encodeFrame(FrameType.Message, 2, Buffer.from('ok'), key, nonce)
    const out = [...r.push(big.subarray(0, 500)), ...r.push(Buffer.concat([big.subarray(500), small]))]
    expect(out[0]).toMatchObject({ kind: 'oversized', length: 1000, seq: 1 })
    expect(frames(out).map((f) => f.payload.toString())).toEqual(['ok'])
  })

  it('gives up on bad magic at once and reports nothing after', () => {
    const r = new FrameReader()
    expect(r.push(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual([{ kind: 'fatal', why: 'bad magic byte 0x47' }])
    expect(r.push(encodeFrame(FrameType.Message, 1, Buffer.from('x'), key, nonce))).toEqual([])
  })

  it('gives up on an unknown version and on an absurd length', () => {
    const v = encodeFrame(FrameType.Message, 1, Buffer.from('x'), key, nonce)
    v[2] = 9
    expect(new FrameReader().push(v)[0]).toMatchObject({ kind: 'fatal', why: expect.stringMatching(/version 9/) })
    const h = Buffer.alloc(HEADER_BYTES + TAG_BYTES)
    h.set([0x46, 0x54, FRAME_VERSION, 3])
    h.writeUInt32BE(0xffffffff, 4)
    expect(new FrameReader().push(h)[0]).toMatchObject({ kind: 'fatal', why: expect.stringMatching(/absurd frame length/) })
  })
})

describe('batch frames', () => {
  it('carry several messages in order, the empty one and a long one too', () => {
    const msgs = [Buffer.from('one'), Buffer.alloc(0), Buffer.alloc(300, 7)]
    const body = encodeBatch(msgs, 303)
    expect(body.length).toBe(303 + 1 + 1 + 2)
    expect(decodeBatch(Buffer.from(body))).toEqual(msgs)
  })

  it('refuse a batch whose message overruns it, naming the offset', () => {
    expect(() => decodeBatch(Buffer.from([2, 0x61, 0x62, 9, 0x63]))).toThrow(/message of 9 bytes at offset 3 overruns the frame/)
    expect(() => decodeBatch(Buffer.from([0x80]))).toThrow(/length at offset 0 runs past the end/)
  })
})

describe('frame tags', () => {
  it('are the first 128 bits of the HMAC and fail on any changed bit of the payload', () => {
    const f = frames(new FrameReader().push(encodeFrame(FrameType.Message, 3, Buffer.from('payload'), key, nonce)))[0]
    expect(f.tag.length).toBe(16)
    expect(verifyFrame(f, key, nonce)).toBe(true)
    f.payload[0] ^= 1
    expect(verifyFrame(f, key, nonce)).toBe(false)
  })
})
