// The codec's packed state-transfer entry: exact round trips (pages, deletions, diffs, every
// output and I/O kind, with and without hash), page keys sent against earlier entries of the
// same message, the general path for anything of another shape, and refusal of corrupt input.
import { describe, expect, it } from 'vitest'
import { CodecError, decode, encode } from '../../../agent/net/codec.js'
import type { LogEntry } from '../../../agent/replica/types.js'
import type { EntryBody } from '../../../agent/vmm/types.js'

const b = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'))

function state(pages: [string, string | null][], extra: Partial<Extract<EntryBody, { kind: 'state' }>> = {}): Extract<EntryBody, { kind: 'state' }> {
  const body: Extract<EntryBody, { kind: 'state' }> = { kind: 'state', pages, outputs: [], io: [], ...extra }
  // as the VMM makes them: a field that is not there is absent, not undefined
  for (const k of ['diffs', 'synced'] as const) if (body[k] === undefined) delete body[k]
  return body
}

describe('packed state entries', () => {
  it('round-trip every field exactly', () => {
    const entries = [
      { gen: 3, n: 1, body: state([]) },
      {
        gen: 3,
        n: 200_000,
        hash: '0123456789abcdef',
        body: state(
          [
            ['g:a', 'x'],
            ['g:b', null],
            ['g:ünï😀', 'väl😀'],
            ['', '']
          ],
          {
            diffs: [['g:big', 10, 20, 'mid']],
            outputs: [
              { t: 'reply', conn: 't:1', data: b('+OK\r\n') },
              { t: 'close', conn: 's:c9' },
              { t: 'disk-write', block: 0, data: b('FTKV1 9\n') },
              { t: 'disk-write', block: 70_000, data: b('S1:a1:b'), offset: 4000 },
              { t: 'disk-sync', tag: 12 }
            ],
            io: [
              { t: 'disk-read', tag: 5, block: 9 },
              { t: 'timer-set', id: 2, ms: 1.5 },
              { t: 'timer-cancel', id: 2 }
            ]
          }
        )
      },
      { gen: 3, n: 2, body: state([], { diffs: [] }) }
    ]
    for (const e of entries) expect(decode(encode(e))).toEqual(e)
    expect(decode(encode({ t: 'entries', gen: 3, entries, releasedThrough: 0 }))).toEqual({ t: 'entries', gen: 3, entries, releasedThrough: 0 })
  })

  it('send decimal values as numbers and give back the same strings, other look-alikes as strings', () => {
    const values = ['0', '7', '42', '775', '123456789012345', '1234567890123456', '042', '-1', '1e3', ' 1', '1.5', '', '00', '٣']
    const e = { gen: 1, n: 1, body: state(values.map((v, i) => [`k${i}`, v] as [string, string])) }
    expect(decode(encode(e))).toEqual(e)
    const digits = encode({ gen: 1, n: 1, body: state([['k', '123456']]) }).length
    const text = encode({ gen: 1, n: 1, body: state([['k', '12345a']]) }).length
    expect(digits).toBeLessThan(text - 2)
  })

  it('send keys repeated from earlier entries of the same message, or common ones, in a byte or two', () => {
    const keys = ['g:k:key:31', 'g:kv:count', 'g:kv:loglen', 'g:svc:sync', 'vmm:next-tag', 'vmm:sync:32']
    const entry = (i: number) => ({ gen: 1, n: i, body: state(keys.map((k) => [k.replace('31', String(31 + i)), String(i)] as [string, string])) })
    const one = encode({ t: 'entries', gen: 1, entries: [entry(0)], releasedThrough: 0 }).length
    const many = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(entry)
    const ten = encode({ t: 'entries', gen: 1, entries: many, releasedThrough: 0 })
    expect(decode(ten)).toEqual({ t: 'entries', gen: 1, entries: many, releasedThrough: 0 })
    // the first entry spells its keys out; the nine after it pay little for theirs
    expect(ten.length - one).toBeLessThan(9 * 35)
    // the kv guest's and the VMM's common pages cost little even to an entry alone in its message
    const alone = encode(entry(0)).length
    const odd = encode({ gen: 1, n: 0, body: state(keys.map((k) => ['z:' + k, '0'] as [string, string])) }).length
    expect(alone).toBeLessThan(odd - 40)
  })

  it('decode an entry on its own exactly as inside a message (each decode starts from the same context)', () => {
    const e1 = { gen: 1, n: 1, body: state([['g:k', '1']]) }
    const e2 = { gen: 1, n: 2, body: state([['g:k', '2']]) }
    encode({ t: 'entries', gen: 1, entries: [e1, e2], releasedThrough: 0 })
    expect(decode(encode(e2))).toEqual(e2)
  })

  it('leave entries of another shape to the general path, which keeps them as they are', () => {
    const odd = [
      { gen: 1, n: 1, body: { kind: 'state', pages: [['k', 5]], outputs: [], io: [] } },
      { gen: 1, n: 1, body: { kind: 'state', pages: [], outputs: [{ t: 'reply', conn: 'c', data: b('x'), extra: 1 }], io: [] } },
      { gen: 1, n: 1, body: { kind: 'state', pages: [], outputs: [], io: [], more: true } },
      { gen: -1, n: 1, body: state([]) }
    ]
    for (const e of odd) expect(decode(encode(e))).toEqual(e)
  })

  it('pack state entries inside an entries message without their generation and number, every field kept', () => {
    const body = (i: number): Extract<EntryBody, { kind: 'state' }> =>
      i % 2 === 0
        ? state([['vmm:sync:' + (40 + i), 's3:t:15:+OK\r\n']], {
            outputs: [
              { t: 'disk-write', block: 1, data: b('S1:k1:v'), offset: 7 },
              { t: 'disk-sync', tag: 40 + i }
            ]
          })
        : state([['g:svc:sync', null]], { synced: 39 + i, diffs: i === 3 ? [['g:big', 1, 2, 'm']] : undefined })
    const entries: LogEntry[] = [0, 1, 2, 3].map((i) => ({ gen: 4, n: 300 + i, body: body(i) }))
    entries[1].hash = '00112233445566ff'
    entries[2].hash = 'not hex'
    const msg = { t: 'entries', gen: 4, entries, releasedThrough: 299 }
    const packed = encode(msg)
    expect(decode(packed)).toEqual(msg)
    // each one as a whole entry would spell out its generation and number: about 4 bytes more each here
    const whole = entries.map((e) => encode(e).length + 1).reduce((x, y) => x + y, 0)
    expect(packed.length).toBeLessThan(whole - 4 * 3)
    // one whose generation or number is not the message's next travels whole, and still decodes equal
    const odd = { t: 'entries', gen: 4, entries: [entries[0], { ...entries[1], n: 900 }, { ...entries[2], gen: 3 }], releasedThrough: 0 }
    expect(decode(encode(odd))).toEqual(odd)
    // an entry alone (sliced entries travel so) keeps its barrier too
    expect(decode(encode(entries[1]))).toEqual(entries[1])
  })

  it('refuse a packed state entry with flags it cannot have', () => {
    const msg = encode({ t: 'entries', gen: 1, entries: [{ gen: 1, n: 1, body: state([]) }], releasedThrough: 0 })
    // T_ENTRIES, gen, releasedThrough, nextConn, first n, count, then the entry's kind byte
    expect(msg[6]).toBe(0x03)
    const synced = Uint8Array.from(msg)
    synced[6] = 0x83 // a barrier's tag, which is not there: the rest no longer fits
    expect(() => decode(synced)).toThrow(CodecError)
    const data = encode({
      t: 'entries',
      gen: 1,
      entries: [{ gen: 1, n: 1, body: { kind: 'input', input: { t: 'disk-synced', tag: 5 }, nondet: [] } }],
      releasedThrough: 0
    })
    const flagged = Uint8Array.from(data)
    flagged[6] |= 0x80 // only a state entry has a barrier flag
    expect(() => decode(flagged)).toThrow(/unknown flags/)
    const diffs = encode({ gen: 1, n: 1, body: state([], { diffs: [['g:x', 0, 0, 'y']] }) })
    const nodiffs = Uint8Array.from(diffs)
    nodiffs[0] -= 2 // says it has no diffs, yet one follows
    expect(() => decode(nodiffs)).toThrow(/diffs/)
  })

  it('refuse a truncated or corrupted packed entry with a CodecError', () => {
    const bytes = encode({ gen: 1, n: 1, body: state([['g:key', 'value']], { outputs: [{ t: 'disk-sync', tag: 1 }] }) })
    for (let cut = 1; cut < bytes.length; cut++) expect(() => decode(bytes.subarray(0, cut))).toThrow(CodecError)
    // a key that refers to a key beyond the context (the seed's 7 keys, as no entry came before)
    const bad = Uint8Array.from(bytes)
    // tag, gen, n, page count, then the key's head: 'g:key' against the seed's first key sharing 'g:k' (ref 1), a whole value
    expect(bad[4]).toBe(1 * 8 + 1)
    bad[4] = 11 * 8 + 4 + 1
    expect(() => decode(bad)).toThrow(CodecError)
  })
})
