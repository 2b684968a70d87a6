// The soak's schedule: drawn from the seed alone, every fault one the console accepts, and a
// mix that covers every kind of fault the nemesis promises.
import { describe, expect, it } from 'vitest'
import { validateRequest } from '../../../main/api/contract.js'
import { describePlanned, planSoak, scheduleText } from '../../../main/soak/plan.js'

describe('the soak schedule', () => {
  it('is the same list for the same seed and another list for another seed', () => {
    const a = planSoak({ seed: 42, faults: 60, suspectMs: 800 })
    const b = planSoak({ seed: 42, faults: 60, suspectMs: 800 })
    const c = planSoak({ seed: 43, faults: 60, suspectMs: 800 })
    expect(b).toEqual(a)
    expect(scheduleText(b, '#')).toBe(scheduleText(a, '#'))
    expect(scheduleText(c, '#')).not.toBe(scheduleText(a, '#'))
  })

  it('asks the console only for faults its contract accepts, in time order, with the planned count', () => {
    const plan = planSoak({ seed: 7, faults: 300, suspectMs: 200 })
    expect(plan).toHaveLength(300)
    expect(plan.map((f) => f.n)).toEqual(plan.map((_, i) => i + 1))
    for (let i = 1; i < plan.length; i++) expect(plan[i].at).toBeGreaterThan(plan[i - 1].at)
    for (const f of plan) {
      const p = validateRequest('fault.inject', { target: f.target, kind: f.kind, params: f.params, durationMs: f.durationMs + 10_000 })
      expect(p.target).toBe(f.target)
      expect(f.durationMs).toBeGreaterThanOrEqual(100)
    }
  })

  it('covers power cuts, pauses, isolation, one-way and two-way cuts of the channel and the disk server, loss and delay', () => {
    const plan = planSoak({ seed: 3, faults: 300, suspectMs: 800 })
    const seen = new Set(
      plan.map((f) => (f.kind === 'cut' ? `cut ${f.target} ${f.params.direction}` : `${f.kind} ${f.target.includes('disk') ? 'disk' : f.target}`))
    )
    for (const want of ['power a', 'power b', 'pause a', 'pause b', 'isolate a', 'isolate b', 'isolate disk', 'loss disk', 'delay disk'])
      expect(seen, want).toContain(want)
    for (const dir of ['both', 'forward', 'backward']) {
      expect(seen).toContain(`cut a-b ${dir}`)
      expect([...seen].some((s) => s.startsWith('cut a-disk') || s.startsWith('cut b-disk'))).toBe(true)
    }
    expect(plan.some((f) => f.kind === 'loss' && f.target === 'a-b')).toBe(true)
    expect(plan.some((f) => f.kind === 'delay' && f.target === 'a-b')).toBe(true)
    // never a power cut of the disk server: nothing could bring it back under a running lab
    expect(plan.some((f) => f.kind === 'power' && f.target === 'disk')).toBe(false)
  })

  it('draws durations on both sides of the suspicion timeout, so some faults cause a failover and some do not', () => {
    const plan = planSoak({ seed: 9, faults: 200, suspectMs: 800 })
    expect(plan.some((f) => f.durationMs < 800)).toBe(true)
    expect(plan.some((f) => f.durationMs > 1600)).toBe(true)
  })

  it('plans double failures: a power cut of the other replica while the first is still down', () => {
    const plan = planSoak({ seed: 5, faults: 300, suspectMs: 800 })
    const doubles = plan.filter((f) => f.overlap)
    expect(doubles.length).toBeGreaterThan(0)
    for (const d of doubles) {
      const first = plan[d.n - 2]
      expect(first.kind).toBe('power')
      expect(d.kind).toBe('power')
      expect(d.target).not.toBe(first.target)
      expect(d.at).toBeLessThan(first.at + first.durationMs) // within the first one's down time…
      expect(d.at).toBeGreaterThan(first.at) // …and after it
    }
  })

  it('stops planning at the time bound', () => {
    const plan = planSoak({ seed: 1, faults: 1000, suspectMs: 800, maxMs: 60_000 })
    expect(plan.length).toBeLessThan(1000)
    expect(plan.length).toBeGreaterThan(0)
    expect(plan.every((f) => f.at <= 60_000)).toBe(true)
  })

  it('refuses a schedule of no faults, naming what was given', () => {
    expect(() => planSoak({ seed: 1, faults: 0, suspectMs: 800 })).toThrow(/positive integer, got 0/)
  })

  it('names faults as the console does', () => {
    expect(describePlanned({ target: 'a-b', kind: 'cut', params: { direction: 'backward' } })).toBe('cut b→a')
    expect(describePlanned({ target: 'b-disk', kind: 'loss', params: { probability: 0.3 } })).toBe('loss b↔disk 30%')
    expect(describePlanned({ target: 'a', kind: 'power', params: {} })).toBe('power cut a')
  })
})
