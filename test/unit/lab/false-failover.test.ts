import { describe, expect, it } from 'vitest'
import { FAULT_GRACE_MS, FalseFailoverJudge } from '../../../main/lab/false-failover.js'
import type { LabEvent } from '../../../main/lab/lab-events.js'

const agent = (ts: number, host: string, type: string, data: Record<string, unknown>, incarnation = 1): LabEvent => ({
  ts,
  source: 'agent',
  host,
  type,
  data,
  agent: { seq: ts, ts, incarnation }
})
const operator = (ts: number, type: string, data: Record<string, unknown>): LabEvent => ({ ts, source: 'operator', type, data })
const lostTas = (ts: number, host: string, gen: number) => agent(ts, host, 'tas', { k: 'tas', gen, result: 'lost' })

describe('the false-failover judge', () => {
  it('counts a replica that lost the test-and-set with no fault anywhere: its peer went live while it was alive', () => {
    const j = new FalseFailoverJudge()
    expect(j.observe(agent(100, 'b', 'tas', { gen: 1, result: 'won' }))).toBeNull()
    expect(j.observe(lostTas(300, 'a', 1))).toEqual({ host: 'a', gen: 1, at: 300, why: 'lost the test-and-set of generation 1' })
    expect(j.count).toBe(1)
  })

  it('counts a deposed replica once per generation, though it reports both a fenced write and a lost test-and-set', () => {
    const j = new FalseFailoverJudge()
    j.observe(agent(200, 'a', 'replica-role', { role: 'halted', gen: 2, reason: 'the disk server fenced a write of entry 9: stale generation' }))
    j.observe(lostTas(210, 'a', 2))
    expect(j.count).toBe(1)
    expect(j.found[0].why).toMatch(/fenced a write/)
    // the same slot's next incarnation, deposed again in a later generation, is a second one
    j.observe(agent(900, 'a', 'tas', { gen: 4, result: 'lost' }, 2))
    expect(j.count).toBe(2)
  })

  it('does not count a go-live an operator fault explains: open, or healed within the grace', () => {
    const j = new FalseFailoverJudge()
    j.observe(operator(1_000, 'fault', { id: 'f1', kind: 'cut', healsAt: 61_000 }))
    expect(j.observe(lostTas(2_000, 'a', 1))).toBeNull()
    j.observe(operator(3_000, 'heal', { id: 'f1', healed: ['f1'] }))
    expect(j.observe(lostTas(3_000 + FAULT_GRACE_MS - 1, 'b', 2))).toBeNull()
    expect(j.explained).toBe(2)
    expect(j.observe(lostTas(3_000 + FAULT_GRACE_MS + 1, 'a', 3))).not.toBeNull()
    expect(j.count).toBe(1)
  })

  it('ends a fault at its dead-man deadline when no heal event came', () => {
    const j = new FalseFailoverJudge()
    j.observe(operator(1_000, 'fault', { id: 'f1', kind: 'pause', healsAt: 2_000 }))
    expect(j.observe(lostTas(2_000 + FAULT_GRACE_MS - 1, 'a', 1))).toBeNull()
    expect(j.observe(lostTas(2_000 + FAULT_GRACE_MS + 1, 'b', 2))).not.toBeNull()
  })

  it('keeps a power cut open until restore heals it, and heal all closes every fault', () => {
    const j = new FalseFailoverJudge()
    j.observe(operator(0, 'fault', { id: 'f1', kind: 'power', host: 'a' }))
    j.observe(operator(10, 'fault', { id: 'f2', kind: 'isolate', healsAt: 60_000 }))
    expect(j.observe(lostTas(50_000, 'b', 1))).toBeNull()
    j.observe(operator(50_100, 'heal', { id: 'all', healed: ['f2'] }))
    expect(j.observe(lostTas(50_100 + FAULT_GRACE_MS + 1, 'b', 2))).not.toBeNull()
  })

  it('ignores halts for other reasons and events of the console itself', () => {
    const j = new FalseFailoverJudge()
    j.observe(agent(10, 'a', 'replica-role', { role: 'halted', gen: 1, reason: 'diverged at entry 4' }))
    j.observe(agent(20, 'b', 'suspect', { peer: 'a', silentMs: 90 }))
    j.observe({ ts: 30, source: 'lab', host: 'a', type: 'agent-link-down', data: {} })
    expect(j.count).toBe(0)
  })
})
