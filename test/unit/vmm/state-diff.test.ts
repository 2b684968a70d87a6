// Finer dirty tracking for state transfer: a changed page travels as a diff against its value
// before the input when that is smaller; the backup applies it to its copy and recomputes the
// state hash, so a diff applied to the wrong copy shows as a divergence. Diffs and whole pages
// go through the codec's packed state entry and come back exactly.
import { describe, expect, it } from 'vitest'
import { decode, encode } from '../../../agent/net/codec.js'
import type { GuestDefinition } from '../../../agent/guests/api.js'
import { Memory, applyPageDiff, pageDiff } from '../../../agent/vmm/memory.js'
import type { EntryBody } from '../../../agent/vmm/types.js'
import { DivergenceError, createVmm } from '../../../agent/vmm/vmm.js'
import { seeded } from './harness.js'

/** `old` → `cur` through a diff, through the codec, and applied again. */
function roundTrip(old: string, cur: string): string | null {
  const d = pageDiff('k', old, cur)
  const body: EntryBody = { kind: 'state', pages: [], outputs: [], io: [], diffs: [d] }
  const back = decode(encode({ gen: 1, n: 2, body })) as { body: typeof body }
  expect(back.body).toEqual(body)
  const [, p, s, m] = back.body.diffs![0]
  return applyPageDiff(old, p, s, m)
}

describe('page diffs', () => {
  const cases: [string, string, string][] = [
    ['a changed middle', 'prefix-AAAA-suffix', 'prefix-BB-suffix'],
    ['a changed prefix', 'xxxx-the-same-rest', 'yy-the-same-rest'],
    ['a changed suffix', 'the-same-start-xxxx', 'the-same-start-yy'],
    ['growth at the end (an append)', 'abc', 'abcdefgh'],
    ['growth at the front', 'defgh', 'abcdefgh'],
    ['shrinking', 'abcdefgh', 'abgh'],
    ['to empty', 'abcdefgh', ''],
    ['from empty', '', 'abc'],
    ['nothing in common', 'abc', 'xyz'],
    ['repeats (prefix and suffix overlap in the old value)', 'aaaa', 'aaaaaa'],
    ['binary bytes 0-255', '\x00\xff\x80abc\x7f', '\x00\xff\x81abc\x7f\x00'],
    ['unicode (BMP)', 'héllo wörld ✓', 'héllo wörld ✗ ✓'],
    ['a surrogate pair changed in its low half', 'a😀b', 'a😁b'],
    ['a surrogate pair changed in its high half', 'a\ud83d\ude00b', 'a\ud83e\ude00b'],
    ['pairs next to the cut', '😀😀😀', '😀😁😀'],
    ['a pair inserted', 'ab', 'a😀b']
  ]
  for (const [what, old, cur] of cases) {
    it(`round-trips through the codec: ${what}`, () => {
      expect(roundTrip(old, cur)).toBe(cur)
    })
  }

  it('never cuts a surrogate pair, so the middle survives UTF-8', () => {
    const [, p, s, middle] = pageDiff('k', 'x😀y', 'x😁y')
    expect(middle).toBe('😁')
    expect([p, s]).toEqual([1, 1])
  })

  it('refuses to apply a diff that does not fit the copy', () => {
    expect(applyPageDiff('abc', 2, 2, 'x')).toBeNull()
    expect(applyPageDiff('abc', -1, 0, 'x')).toBeNull()
    expect(applyPageDiff('abc', 1, 1, 'x')).toBe('axc')
  })
})

describe('Memory.changes', () => {
  it('ships a big page changed in part as a diff, small and new pages whole, deleted pages as null, sorted by key', () => {
    const m = new Memory(1 << 20)
    const big = 'v'.repeat(1000)
    m.set('z:big', big)
    m.set('a:small', '1')
    m.set('m:gone', 'x')
    m.beginInput()
    m.set('z:big', big.slice(0, 500) + 'CHANGED' + big.slice(500))
    m.set('a:small', '2')
    m.delete('m:gone')
    m.set('b:new', big)
    m.set('c:same', 'q')
    m.delete('c:same')
    const { pages, diffs } = m.changes()
    expect(pages).toEqual([
      ['a:small', '2'],
      ['b:new', big],
      ['m:gone', null]
    ])
    expect(diffs).toEqual([['z:big', 500, 500, 'CHANGED']])
    // the same pages as dirty(), whatever form they take
    expect(
      m
        .dirty()
        .map(([k]) => k)
        .sort()
    ).toEqual(['a:small', 'b:new', 'm:gone', 'z:big'])
  })

  it('ships a page whole when the diff would not be smaller', () => {
    const m = new Memory(1 << 20)
    m.set('k', 'abcdefghijklmnopqrstuvwxyz')
    m.beginInput()
    m.set('k', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')
    expect(m.changes()).toEqual({ pages: [['k', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ']], diffs: [] })
  })
})

/** A guest that appends to one long page, and rewrites a field of it on request: most inputs change a page in part. */
const appender: GuestDefinition = {
  name: 'appender',
  description: 'test guest: appends to a long page',
  factory: (dev) => ({
    boot() {
      dev.mem.set('log', 'start:' + 'x'.repeat(200))
    },
    data(conn, bytes) {
      const log = dev.mem.get('log') ?? ''
      dev.mem.set('log', bytes[0] === '!' ? bytes + log.slice(bytes.length) : log + bytes)
      dev.nic.send(conn, '+' + dev.mem.get('log')!.length + '\r\n')
    }
  })
}

describe('state transfer with diffs', () => {
  const latin1 = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'))

  it('keeps the backup equal to the primary through the codec, with far fewer bytes than whole pages', () => {
    const primary = createVmm({ guest: 'appender', mode: 'state-transfer', entropy: seeded(1), definition: appender })
    const backup = createVmm({ guest: 'appender', mode: 'state-transfer', entropy: seeded(2), definition: appender })
    let n = 0
    const ship = (body: EntryBody): number => {
      const bytes = encode({ gen: 1, n: ++n, body })
      backup.replay((decode(bytes) as { body: EntryBody }).body)
      expect(backup.stateHash()).toBe(primary.stateHash())
      return bytes.length
    }
    ship(primary.execute({ t: 'boot' }).body)
    let sent = 0
    for (let i = 0; i < 50; i++) {
      const r = primary.execute({ t: 'data', conn: 't:1', data: latin1(i % 10 === 9 ? `!head${i}` : `rec${i};`) })
      expect(r.body.kind === 'state' && r.body.diffs?.length).toBe(1)
      sent += ship(r.body)
    }
    // the page grows to about 500 units: whole, 50 entries would carry some 18,000 bytes of it
    expect(sent).toBeLessThan(50 * 60)
  })

  it('a diff applied to a copy that differs is a divergence, and changes nothing', () => {
    const primary = createVmm({ guest: 'appender', mode: 'state-transfer', entropy: seeded(1), definition: appender })
    const backup = createVmm({ guest: 'appender', mode: 'state-transfer', entropy: seeded(2), definition: appender })
    backup.replay(primary.execute({ t: 'boot' }).body)
    const body = primary.execute({ t: 'data', conn: 't:1', data: latin1('more') }).body as Extract<EntryBody, { kind: 'state' }>
    const [k, , s, m] = body.diffs![0]
    const before = backup.stateHash()
    // a prefix longer than the backup's copy cannot fit
    expect(() => backup.replay({ ...body, diffs: [[k, 10_000, s, m]] })).toThrow(DivergenceError)
    expect(backup.stateHash()).toBe(before)
    // one that fits but is wrong lands, and the state hash (recomputed by the backup) no longer matches the primary's
    backup.replay({ ...body, diffs: [[k, 0, s, m]] })
    expect(backup.stateHash()).not.toBe(primary.stateHash())
  })
})
