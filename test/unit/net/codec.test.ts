import { describe, expect, it } from 'vitest'
import { CodecError, DICTIONARY, Encoder, MAX_DEPTH, decode, encode } from '../../../agent/net/codec.js'

function codecError(fn: () => unknown): CodecError {
  try {
    fn()
  } catch (err) {
    if (err instanceof CodecError) return err
    throw err
  }
  throw new Error('expected a CodecError')
}

describe('codec round-trips', () => {
  const values: [string, unknown][] = [
    ['null', null],
    ['true', true],
    ['false', false],
    ['zero', 0],
    ['fixint edge', 127],
    ['varint edge', 128],
    ['large int', 2 ** 40 + 3],
    ['max safe int', Number.MAX_SAFE_INTEGER],
    ['min safe int', Number.MIN_SAFE_INTEGER],
    ['negative', -1],
    ['float', 3.25],
    ['beyond safe int', 2 ** 60],
    ['NaN', NaN],
    ['infinity', -Infinity],
    ['empty string', ''],
    ['ascii', 'hello'],
    ['31 chars', 'a'.repeat(31)],
    ['32 chars', 'a'.repeat(32)],
    ['long ascii', 'x'.repeat(5000)],
    ['utf8 short', 'héllo ✓'],
    ['utf8 long', 'ünïcødé '.repeat(20)],
    ['emoji', '🚀 go live'],
    ['bytes', new Uint8Array([0, 1, 255])],
    ['empty bytes', new Uint8Array(0)],
    ['array', [1, 'two', null, [true, false]]],
    [
      'object',
      {
        t: 'entries',
        gen: 3,
        entries: [{ gen: 3, n: 1, body: { kind: 'input', input: { t: 'data', conn: 's:1', data: new Uint8Array([42]) }, nondet: [{ d: 'clock', v: 1.7e12 }] } }]
      }
    ],
    ['proto key', JSON.parse('{"__proto__": 1, "a": 2}')]
  ]
  for (const [name, v] of values) {
    it(`round-trips ${name}`, () => {
      const back = decode(encode(v))
      expect(back).toEqual(v)
    })
  }

  it('keeps -0 as -0', () => {
    expect(Object.is(decode(encode(-0)), -0)).toBe(true)
  })

  it('decodes a "__proto__" key as an own key, not a prototype', () => {
    const back = decode(encode(JSON.parse('{"__proto__": {"polluted": true}}'))) as Record<string, unknown>
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype)
    expect(Object.keys(back)).toEqual(['__proto__'])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('drops undefined object values and turns undefined array items into null, like JSON', () => {
    expect(decode(encode({ a: 1, b: undefined }))).toEqual({ a: 1 })
    expect(decode(encode([undefined, 1]))).toEqual([null, 1])
  })

  it('encodes Buffer as bytes and returns a copy independent of the input', () => {
    const enc = encode({ data: Buffer.from('abc') })
    const back = decode(enc) as { data: Uint8Array }
    enc.fill(0)
    expect(Array.from(back.data)).toEqual([97, 98, 99])
  })

  it('encodes small integers and short keys in one byte each', () => {
    expect(encode(5).length).toBe(1)
    expect(encode({ q: 1 }).length).toBe(1 + 1 + 1 + 1 + 1)
  })

  it("sends the protocol's keys and names as one byte each", () => {
    expect(DICTIONARY.length).toBeLessThanOrEqual(64)
    expect(encode('releasedThrough').length).toBe(1)
    expect(encode({ t: 'entries', gen: 3 }).length).toBe(2 + 1 + 1 + 1 + 1)
    expect(decode(encode({ t: 'entries', releasedThrough: 'ack' }))).toEqual({ t: 'entries', releasedThrough: 'ack' })
  })

  it('packs a log entry of client data into the request bytes plus a few bytes', () => {
    const data = new TextEncoder().encode('*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n')
    const entry = { gen: 2, n: 70_000, body: { kind: 'input', input: { t: 'data', conn: 't:12', data }, nondet: [] } }
    const enc = encode(entry)
    expect(enc.length).toBeLessThanOrEqual(data.length + 16)
    expect(decode(enc)).toEqual(entry)
    const hashed = { ...entry, hash: 'abc123', body: { ...entry.body, nondet: [{ d: 'clock', v: 1700000000000 }] } }
    expect(decode(encode(hashed))).toEqual(hashed)
  })

  it('keeps an entry that only looks like a data entry on the general path, whole', () => {
    const refused = {
      gen: 1,
      n: 2,
      body: { kind: 'input', input: { t: 'data', conn: 't:1', data: new Uint8Array([1]) }, nondet: [], refused: 'stack-overflow' }
    }
    const extra = { gen: 1, n: 2, body: { kind: 'input', input: { t: 'data', conn: 't:1', data: new Uint8Array([1]), more: 1 }, nondet: [] } }
    const fractional = { gen: 1.5, n: 2, body: { kind: 'input', input: { t: 'data', conn: 't:1', data: new Uint8Array([1]) }, nondet: [] } }
    for (const v of [refused, extra, fractional]) {
      expect(encode(v)[0]).toBe(0x09)
      expect(decode(encode(v))).toEqual(v)
    }
  })

  it('refuses a malformed data entry with the offset and what is wrong', () => {
    // tag, gen 1, n 2, conn given as the integer 5 instead of a string
    expect(codecError(() => decode(new Uint8Array([0x0a, 1, 2, 0x85, 0, 0x08, 0, 0x00]))).message).toMatch(/connection id is not a string at offset 0/)
    // data longer than what is left
    expect(codecError(() => decode(new Uint8Array([0x0a, 1, 2, 0x21, 0x41, 9, 1]))).message).toMatch(/absurd data entry length 9/)
    // hash of the wrong type
    expect(codecError(() => decode(new Uint8Array([0x0a, 1, 2, 0x21, 0x41, 0, 0x08, 0, 0x85]))).message).toMatch(/state hash/)
  })

  const setBytes = new TextEncoder().encode('*3\r\n$3\r\nSET\r\n$16\r\nkey:000000001234\r\n$3\r\nxxx\r\n')
  const dataEntry = (n: number, conn: string, extra: Record<string, unknown> = {}) => ({
    gen: 4,
    n,
    body: { kind: 'input', input: { t: 'data', conn, data: setBytes }, nondet: [] },
    ...extra
  })
  const syncedEntry = (n: number, tag: number) => ({ gen: 4, n, body: { kind: 'input', input: { t: 'disk-synced', tag }, nondet: [] } })

  it("packs an 'entries' message of requests and barrier completions into the requests' bytes plus a few per entry", () => {
    const entries = []
    for (let i = 0; i < 10; i++) entries.push(dataEntry(90_000 + 2 * i, `t:${200 + i}`), syncedEntry(90_001 + 2 * i, 300_000 + i))
    const msg = { t: 'entries', gen: 4, entries, releasedThrough: 89_990, nextConn: 251 }
    const enc = encode(msg)
    expect(enc[0]).toBe(0x0b)
    // per request: its bytes, a kind byte, the connection and the length (2 + 1); per completion: a kind byte and the tag (3)
    expect(enc.length).toBeLessThanOrEqual(10 * (setBytes.length + 4) + 10 * 4 + 12)
    expect(decode(enc)).toEqual(msg)
    const general = decode(new Encoder().encode({ ...msg, nextConn: undefined }))
    expect(general).toEqual({ t: 'entries', gen: 4, entries, releasedThrough: 89_990 })
  })

  it('packs session connections, non-deterministic values and state hashes, and keeps them exact', () => {
    const entries = [
      dataEntry(7, 's:client-9', { hash: '0123456789abcdef' }),
      { ...dataEntry(8, 't:0'), body: { kind: 'input', input: { t: 'data', conn: 't:0', data: setBytes }, nondet: [{ d: 'clock', v: 1.5e12 }] } },
      syncedEntry(9, 1),
      dataEntry(10, 't:007', { hash: 'not hex, kept as a string' }),
      dataEntry(11, 't:12', { hash: '0123456789ABCDEF' })
    ]
    const msg = { t: 'entries', gen: 4, entries, releasedThrough: 0 }
    const back = decode(encode(msg)) as typeof msg
    expect(back).toEqual(msg)
    expect(back.entries.map((e) => (e.body.input as { conn?: string }).conn)).toEqual(['s:client-9', 't:0', undefined, 't:007', 't:12'])
  })

  it("packs a turn's reads of several connections as one entry: each read's bytes plus its connection and length", () => {
    const reads = (conns: string[]) => conns.map((conn, i) => ({ conn, data: setBytes.subarray(0, setBytes.length - i) }))
    const readsEntry = (n: number, conns: string[], extra: Record<string, unknown> = {}) => ({
      gen: 4,
      n,
      body: { kind: 'input', input: { t: 'batch', reads: reads(conns) }, nondet: [] },
      ...extra
    })
    const plain = Array.from({ length: 20 }, (_, i) => `t:${300 + i}`)
    const msg = { t: 'entries', gen: 4, entries: [readsEntry(50, plain), syncedEntry(51, 9)], releasedThrough: 40 }
    const enc = encode(msg)
    expect(enc[0]).toBe(0x0b)
    const bytes = reads(plain).reduce((n, r) => n + r.data.length, 0)
    // per read: a 2-byte connection and a 1-byte length; per entry: a kind byte and the count; the completion 3
    expect(enc.length).toBeLessThanOrEqual(bytes + 20 * 3 + 2 + 3 + 8)
    expect(decode(enc)).toEqual(msg)
    // session connections, a state hash and non-deterministic values keep exact
    const mixed = {
      t: 'entries',
      gen: 4,
      entries: [
        {
          ...readsEntry(7, ['s:client-1', 't:0', 't:007'], { hash: '0123456789abcdef' }),
          body: { ...readsEntry(7, ['s:client-1', 't:0', 't:007']).body, nondet: [{ d: 'clock', v: 3 }] }
        }
      ],
      releasedThrough: 0
    }
    expect(decode(encode(mixed))).toEqual(mixed)
    // what only looks like reads (an empty list, an extra key in a read, a read without bytes) travels whole, and decodes equal
    for (const input of [
      { t: 'batch', reads: [] },
      { t: 'batch', reads: [{ conn: 't:1', data: setBytes, more: 1 }] },
      { t: 'batch', reads: [{ conn: 't:1', data: 'text' }] }
    ]) {
      const m = { t: 'entries', gen: 4, entries: [{ gen: 4, n: 1, body: { kind: 'input', input, nondet: [] } }], releasedThrough: 0 }
      expect(decode(encode(m))).toEqual(m)
    }
  })

  it('refuses a malformed batch entry with the offset and what is wrong', () => {
    // tag, gen 1, releasedThrough 0, no nextConn, first n 1, count 1, then a batch entry (kind 4)
    const head = [0x0b, 1, 0, 0, 1, 1, 0x04]
    expect(codecError(() => decode(new Uint8Array([...head, 0]))).message).toMatch(/batch entry without reads at offset 6/)
    expect(codecError(() => decode(new Uint8Array([...head, 3, 2, 1, 65]))).message).toMatch(/absurd batch entry count 3/)
    expect(codecError(() => decode(new Uint8Array([...head, 2, 2, 1, 65, 3, 9, 1]))).message).toMatch(/absurd batch entry #1 length 9/)
    expect(codecError(() => decode(new Uint8Array([...head, 1, 0, 0x85, 0]))).message).toMatch(/batch entry #0: the connection id is not a string/)
  })

  it('keeps entries that do not pack (another generation, a gap, a refusal, a timer) whole and in order inside a packed message', () => {
    const entries = [
      dataEntry(5, 't:1'),
      { gen: 3, n: 6, body: { kind: 'input', input: { t: 'data', conn: 't:1', data: setBytes }, nondet: [] } },
      dataEntry(9, 't:1'),
      { gen: 4, n: 10, body: { kind: 'input', input: { t: 'data', conn: 't:1', data: setBytes }, nondet: [], refused: 'stack-overflow' } },
      { gen: 4, n: 11, body: { kind: 'input', input: { t: 'timer', id: 3 }, nondet: [] } },
      { gen: 4, n: 12, body: { kind: 'state', pages: [['g:k', 'v']], outputs: [], io: [] } },
      syncedEntry(13, 2),
      null
    ]
    const msg = { t: 'entries', gen: 4, entries, releasedThrough: 3, nextConn: 0 }
    expect(encode(msg)[0]).toBe(0x0b)
    expect(decode(encode(msg))).toEqual(msg)
  })

  it("leaves an 'entries' message that does not have exactly the protocol's shape on the general path", () => {
    const entries = [dataEntry(1, 't:1')]
    for (const m of [
      { t: 'entries', gen: 4, entries: [], releasedThrough: 0 },
      { t: 'entries', gen: 4, entries, releasedThrough: -1 },
      { t: 'entries', gen: 4, entries, releasedThrough: 0, nextConn: 1.5 },
      { t: 'entries', gen: 4, entries, releasedThrough: 0, extra: true },
      { t: 'entries', gen: '4', entries, releasedThrough: 0 }
    ]) {
      expect(encode(m)[0]).toBe(0x09)
      expect(decode(encode(m))).toEqual(m)
    }
  })

  it('refuses a malformed packed entries message with the offset and what is wrong', () => {
    // tag, gen 1, releasedThrough 0, no nextConn, first n 1, count 0
    expect(codecError(() => decode(new Uint8Array([0x0b, 1, 0, 0, 1, 0]))).message).toMatch(/without entries at offset 0/)
    // count 5 with 1 byte left
    expect(codecError(() => decode(new Uint8Array([0x0b, 1, 0, 0, 1, 5, 2]))).message).toMatch(/absurd entries count 5/)
    // an unknown entry kind, then unknown flags
    expect(codecError(() => decode(new Uint8Array([0x0b, 1, 0, 0, 1, 1, 0x07]))).message).toMatch(/unknown entry kind 7 at offset 6/)
    expect(codecError(() => decode(new Uint8Array([0x0b, 1, 0, 0, 1, 1, 0x82, 1]))).message).toMatch(/unknown flags at offset 6/)
    // a data entry whose length runs past the end
    expect(codecError(() => decode(new Uint8Array([0x0b, 1, 0, 0, 1, 1, 0x01, 2, 9, 1]))).message).toMatch(/absurd data entry length 9/)
    // a state hash of 8 raw bytes cut short
    expect(codecError(() => decode(new Uint8Array([0x0b, 1, 0, 0, 1, 1, 0x42, 5, 1, 2]))).message).toMatch(/truncated state hash/)
    // a session connection id that is not a string
    expect(codecError(() => decode(new Uint8Array([0x0b, 1, 0, 0, 1, 1, 0x01, 0, 0x85, 0]))).message).toMatch(/connection id is not a string/)
  })

  it('grows its scratch buffer for large values', () => {
    const enc = new Encoder(16)
    const big = new Uint8Array(100_000).fill(7)
    const back = decode(enc.encode({ a: big, s: 'é'.repeat(1000) })) as { a: Uint8Array; s: string }
    expect(back.a).toEqual(big)
    expect(back.s.length).toBe(1000)
  })
})

describe('codec refuses what it cannot encode', () => {
  it.each([
    ['a function', () => 1, /function/],
    ['a bigint', 1n, /bigint/],
    ['undefined at the root', undefined, /undefined/],
    ['a Map', new Map(), /Map/],
    ['a Date', new Date(0), /Date/],
    ['a Uint16Array', new Uint16Array(2), /Uint16Array/]
  ])('refuses %s', (_, v, why) => {
    expect(codecError(() => encode(v)).message).toMatch(why)
  })

  it('refuses a cycle instead of overflowing the stack', () => {
    const a: Record<string, unknown> = {}
    a.self = a
    expect(codecError(() => encode(a)).message).toMatch(/deeper than/)
  })

  it('names the path of the bad value', () => {
    expect(codecError(() => encode({ outer: { inner: Symbol('x') } })).message).toMatch(/outer\.inner/)
  })
})

describe('codec refuses malformed input, naming the offset', () => {
  it('empty input', () => {
    const e = codecError(() => decode(new Uint8Array(0)))
    expect(e.offset).toBe(0)
    expect(e.message).toMatch(/truncated value tag/)
  })

  it('every truncation of a valid encoding', () => {
    const full = encode({ t: 'x', data: new Uint8Array([1, 2, 3]), list: [300, -5, 1.5, 'héllo'.repeat(10)] })
    for (let cut = 0; cut < full.length; cut++) {
      expect(() => decode(full.subarray(0, cut)), `cut at ${cut}`).toThrow(CodecError)
    }
  })

  it('trailing bytes', () => {
    const bytes = new Uint8Array([...encode(1), 0])
    const e = codecError(() => decode(bytes))
    expect(e.offset).toBe(1)
    expect(e.message).toMatch(/trailing/)
  })

  it('unknown tag', () => {
    const e = codecError(() => decode(new Uint8Array([0x08, 0x01, 0x1f])))
    expect(e.message).toMatch(/unknown tag 0x1f/)
    expect(e.offset).toBe(2)
  })

  it('absurd lengths and counts', () => {
    // bytes claiming 2^40 bytes
    expect(codecError(() => decode(new Uint8Array([0x07, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]))).message).toMatch(/absurd byte string length/)
    // array claiming a million items with three bytes left
    expect(codecError(() => decode(new Uint8Array([0x08, 0xc0, 0x84, 0x3d, 0, 0, 0]))).message).toMatch(/absurd array length/)
    expect(codecError(() => decode(new Uint8Array([0x09, 0x05, 0x21, 0x61, 0x00]))).message).toMatch(/absurd object size/)
    expect(codecError(() => decode(new Uint8Array([0x06, 0x05, 0x61]))).message).toMatch(/absurd string length/)
  })

  it('over-long varints and integers beyond 2^53', () => {
    expect(codecError(() => decode(new Uint8Array([0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).message).toMatch(/longer than 8 bytes/)
    expect(codecError(() => decode(new Uint8Array([0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]))).message).toMatch(/exceeds/)
    expect(codecError(() => decode(new Uint8Array([0x04, 0x00]))).message).toMatch(/zero/)
  })

  it('invalid UTF-8', () => {
    const e = codecError(() => decode(new Uint8Array([0x22, 0xc3, 0x28])))
    expect(e.message).toMatch(/UTF-8/)
    expect(e.offset).toBe(1)
  })

  it('non-string object keys and duplicate keys', () => {
    expect(codecError(() => decode(new Uint8Array([0x09, 0x01, 0x81, 0x81]))).message).toMatch(/key must be a string/)
    expect(codecError(() => decode(new Uint8Array([0x09, 0x02, 0x21, 0x61, 0x81, 0x21, 0x61, 0x82]))).message).toMatch(/duplicate object key "a"/)
  })

  it('nesting deeper than the limit', () => {
    const bytes: number[] = []
    for (let i = 0; i < MAX_DEPTH + 2; i++) bytes.push(0x08, 0x01)
    bytes.push(0x00)
    expect(codecError(() => decode(new Uint8Array(bytes))).message).toMatch(/deeper than/)
  })

  it('random garbage never throws anything but CodecError', () => {
    let seed = 12345
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff
    for (let i = 0; i < 2000; i++) {
      const len = rnd() % 40
      const bytes = new Uint8Array(len)
      for (let j = 0; j < len; j++) bytes[j] = rnd()
      try {
        decode(bytes)
      } catch (err) {
        expect(err).toBeInstanceOf(CodecError)
      }
    }
  })
})
