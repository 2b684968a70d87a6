// The lost-writes checker must also catch a final value that no write of the run could have
// produced, when none of the key's writes was acknowledged (or nothing wrote the key at all):
// keys live in the run's own namespace, so such a value came from nowhere.
import { describe, expect, it } from 'vitest'
import { checkLostWrites } from '../../../main/check/lost-writes.js'
import type { FinalRead, HistoryOp } from '../../../main/load/history.js'

const set = (key: string, value: string, status: HistoryOp['status'], invokeMs: number, completeMs: number | null): HistoryOp => ({
  client: 'c1',
  seq: invokeMs,
  op: 'set',
  key,
  value,
  invokeMs,
  completeMs,
  status,
  ...(status === 'ok' ? { result: 'OK' } : {})
})

describe('no acknowledged write lost: where the final value came from', () => {
  it('finds a final value that no write could have made, on a key whose writes all went unanswered', () => {
    const h = [set('r:0', 'a', 'unknown', 1, null), set('r:0', 'b', 'fail', 2, 3)]
    const final: FinalRead = new Map([['r:0', 'garbage']])
    const v = checkLostWrites(h, final)
    expect(v.valid).toBe(false)
    expect(v.evidence[0].message).toMatch(/never written/)
  })

  it('finds a value on a register key that the run never wrote', () => {
    const final: FinalRead = new Map([['r:1', 'x']])
    expect(checkLostWrites([], final).valid).toBe(false)
  })

  it('accepts what unanswered writes may have left, and keys still empty', () => {
    const h = [set('r:0', 'a', 'unknown', 1, null), set('r:2', 'z', 'fail', 1, 2)]
    const final: FinalRead = new Map<string, string | null>([
      ['r:0', 'a'],
      ['r:1', null],
      ['r:2', null],
      ['c:0', '3']
    ])
    expect(checkLostWrites(h, final).valid).toBe(true)
  })
})
