import { describe, expect, it } from 'vitest'
import { checkRun } from '../../../main/check/check-run.js'
import { checkCounters } from '../../../main/check/counters.js'
import { checkRegisterLinearizability } from '../../../main/check/linearizable.js'
import { checkLostWrites } from '../../../main/check/lost-writes.js'
import type { FinalRead, HistoryOp } from '../../../main/load/history.js'

let seq = 0
function op(o: Partial<HistoryOp> & Pick<HistoryOp, 'op' | 'key' | 'invokeMs'>): HistoryOp {
  return { client: 'c', seq: ++seq, completeMs: o.invokeMs + 1, status: 'ok', ...o }
}
const set = (key: string, value: string, at: number, end: number | null = at + 1, status: HistoryOp['status'] = 'ok') =>
  op({ op: 'set', key, value, invokeMs: at, completeMs: end, status, result: status === 'ok' ? 'OK' : undefined })
const get = (key: string, result: string | null, at: number, end = at + 1) => op({ op: 'get', key, result, invokeMs: at, completeMs: end })
const incr = (key: string, result: number | undefined, at: number, end: number | null = at + 1, status: HistoryOp['status'] = 'ok') =>
  op({ op: 'incr', key, result, invokeMs: at, completeMs: end, status })
const final = (o: Record<string, string | null>): FinalRead => new Map(Object.entries(o))

describe('no acknowledged write lost', () => {
  it('passes when the last acknowledged write is the final value', () => {
    const h = [set('r:0', 'a', 0), set('r:0', 'b', 10), set('r:1', 'c', 5)]
    expect(checkLostWrites(h, final({ 'r:0': 'b', 'r:1': 'c' })).valid).toBe(true)
  })

  it('passes when a concurrent write may have landed last', () => {
    // b and c overlap: either order is possible, so either final value is fine
    const h = [set('r:0', 'b', 0, 10), set('r:0', 'c', 5, 15)]
    expect(checkLostWrites(h, final({ 'r:0': 'b' })).valid).toBe(true)
    expect(checkLostWrites(h, final({ 'r:0': 'c' })).valid).toBe(true)
  })

  it('passes when an unanswered write overwrote an acknowledged one', () => {
    const h = [set('r:0', 'a', 0, 1), set('r:0', 'x', 5, null, 'unknown')]
    expect(checkLostWrites(h, final({ 'r:0': 'x' })).valid).toBe(true)
  })

  it('fails when an acknowledged write is gone: the final value was written before it', () => {
    const h = [set('r:0', 'a', 0, 1), set('r:0', 'b', 10, 11)]
    const v = checkLostWrites(h, final({ 'r:0': 'a' }))
    expect(v.valid).toBe(false)
    expect(v.evidence[0].message).toMatch(/r:0: 1 acknowledged write\(s\) lost/)
    expect(v.evidence[0].ops?.map((o) => o.value)).toEqual(['a', 'b'])
  })

  it('fails when the key vanished or holds a value nobody wrote', () => {
    expect(checkLostWrites([set('r:0', 'a', 0)], final({ 'r:0': null })).valid).toBe(false)
    expect(checkLostWrites([set('r:0', 'a', 0)], final({ 'r:0': 'zzz' })).valid).toBe(false)
  })

  it('a failed write cannot explain the final value', () => {
    const h = [set('r:0', 'a', 0, 1), set('r:0', 'f', 5, 6, 'fail')]
    expect(checkLostWrites(h, final({ 'r:0': 'f' })).valid).toBe(false)
  })

  it('says unknown when the final read missed a key', () => {
    expect(checkLostWrites([set('r:0', 'a', 0)], final({})).valid).toBe('unknown')
  })
})

describe('counters', () => {
  it('passes for increments that rise and a final value that counts them all', () => {
    const h = [incr('c:0', 1, 0), incr('c:0', 2, 10), get('c:0', '2', 20), incr('c:0', 3, 30)]
    expect(checkCounters(h, final({ 'c:0': '3' })).valid).toBe(true)
  })

  it('allows unanswered increments to have happened', () => {
    const h = [incr('c:0', 1, 0), incr('c:0', undefined, 10, null, 'unknown')]
    expect(checkCounters(h, final({ 'c:0': '2' })).valid).toBe(true)
    expect(checkCounters(h, final({ 'c:0': '1' })).valid).toBe(true)
  })

  it('fails when a counter goes backwards', () => {
    const h = [incr('c:0', 1, 0), incr('c:0', 2, 10), get('c:0', '1', 20)]
    const v = checkCounters(h, final({ 'c:0': '2' }))
    expect(v.valid).toBe(false)
    expect(v.evidence[0].message).toMatch(/went backwards: incr saw 2, then a later get saw 1/)
  })

  it('fails when the end value is below the acknowledged increments', () => {
    const h = [incr('c:0', 1, 0), incr('c:0', 2, 10), incr('c:0', 3, 20)]
    const v = checkCounters(h, final({ 'c:0': '2' }))
    expect(v.valid).toBe(false)
    expect(v.evidence.map((e) => e.message).join('\n')).toMatch(/below the 3 acknowledged INCRs/)
  })

  it('fails when an increment was applied twice', () => {
    const h = [incr('c:0', 1, 0), incr('c:0', 3, 10)]
    const v = checkCounters(h, final({ 'c:0': '3' }))
    expect(v.valid).toBe(false)
    expect(v.evidence.map((e) => e.message).join('\n')).toMatch(/applied twice/)
  })

  it('fails when two acknowledged increments saw the same value', () => {
    const h = [incr('c:0', 1, 0, 10), incr('c:0', 1, 5, 15)]
    expect(checkCounters(h, final({ 'c:0': '2' })).valid).toBe(false)
  })
})

describe('register linearizability', () => {
  it('accepts a read of a concurrent write', () => {
    const h = [set('r:0', 'a', 0, 1), set('r:0', 'b', 5, 20), get('r:0', 'b', 6, 7), get('r:0', 'b', 21, 22)]
    expect(checkRegisterLinearizability(h).valid).toBe(true)
  })

  it('rejects a stale read after a newer write finished', () => {
    const h = [set('r:0', 'a', 0, 1), set('r:0', 'b', 5, 6), get('r:0', 'a', 10, 11)]
    const v = checkRegisterLinearizability(h)
    expect(v.valid).toBe(false)
    expect(v.evidence[0].key).toBe('r:0')
    expect(v.evidence[0].ops?.[0].result).toBe('a')
  })

  it('rejects reads that see two writes in opposite orders', () => {
    // a and b overlap; one reader sees b then a, which is fine alone, but then a reader
    // that starts later sees b again: the register cannot flip back
    const h = [set('r:0', 'a', 0, 100), set('r:0', 'b', 0, 100), get('r:0', 'b', 10, 11), get('r:0', 'a', 20, 21), get('r:0', 'b', 30, 31)]
    expect(checkRegisterLinearizability(h).valid).toBe(false)
  })

  it('lets an unanswered write take effect late, or never', () => {
    const late = [set('r:0', 'a', 0, 1), set('r:0', 'x', 2, null, 'unknown'), get('r:0', 'a', 5, 6), get('r:0', 'x', 10, 11)]
    expect(checkRegisterLinearizability(late).valid).toBe(true)
    const never = [set('r:0', 'a', 0, 1), set('r:0', 'x', 2, null, 'unknown'), get('r:0', 'a', 50, 51)]
    expect(checkRegisterLinearizability(never).valid).toBe(true)
    // but once seen it has happened: an older value cannot come back
    const flip = [set('r:0', 'a', 0, 1), set('r:0', 'x', 2, null, 'unknown'), get('r:0', 'x', 10, 11), get('r:0', 'a', 20, 21)]
    expect(checkRegisterLinearizability(flip).valid).toBe(false)
  })

  it('reads nothing before the first write', () => {
    expect(checkRegisterLinearizability([get('r:0', null, 0), set('r:0', 'a', 5)]).valid).toBe(true)
    expect(checkRegisterLinearizability([get('r:0', 'a', 0, 1), set('r:0', 'a', 5)]).valid).toBe(false)
  })

  it('keeps an early unanswered write open through a long history without losing its way', () => {
    const h: HistoryOp[] = [set('r:0', 'lost-reply', 0, null, 'unknown')]
    for (let i = 1; i < 4000; i++) h.push(i % 2 ? set('r:0', `v${i}`, i * 10, i * 10 + 5) : get('r:0', `v${i - 1}`, i * 10, i * 10 + 5))
    // the unanswered write lands at the very end: the last read sees it
    h.push(get('r:0', 'lost-reply', 50_000, 50_001))
    expect(checkRegisterLinearizability(h).valid).toBe(true)
  })

  it('says unknown when the search budget runs out', () => {
    // many overlapping writes and one read that no order satisfies: the search must try them all
    const h = Array.from({ length: 12 }, (_, i) => set('r:0', `w${i}`, 0, 1000))
    h.push(get('r:0', 'never', 10, 20))
    expect(checkRegisterLinearizability(h, { maxStatesPerKey: 50 }).valid).toBe('unknown')
  })

  it('handles a long sequential history quickly enough to be useful', () => {
    const h: HistoryOp[] = []
    for (let i = 0; i < 20_000; i++) h.push(i % 2 ? get('r:0', `v${i - 1}`, i * 10, i * 10 + 5) : set('r:0', `v${i}`, i * 10, i * 10 + 5))
    expect(checkRegisterLinearizability(h).valid).toBe(true)
  })
})

describe('checkRun', () => {
  it('is invalid if any checker finds a violation, with every checker reported', () => {
    const h = [set('r:0', 'a', 0, 1), set('r:0', 'b', 10, 11), incr('c:0', 1, 0)]
    const v = checkRun(h, final({ 'r:0': 'a', 'c:0': '1' }))
    expect(v.valid).toBe(false)
    expect(v.checks.map((c) => c.valid)).toEqual([false, true, true])
  })
})
