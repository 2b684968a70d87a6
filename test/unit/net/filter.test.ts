import { afterEach, describe, expect, it, vi } from 'vitest'
import { TransportFilter, validateFault } from '../../../agent/faults/filter.js'
import { FaultManager } from '../../../agent/faults/deadman.js'

describe('TransportFilter', () => {
  it('drops only the named peers in the named direction', () => {
    const f = new TransportFilter()
    f.set('x', { kind: 'drop', peers: ['b'], direction: 'out' })
    expect(f.outbound('b')).toBeNull()
    expect(f.inbound('b')).toBe(true)
    expect(f.outbound('disk')).toBe(0)
    f.set('x', { kind: 'drop', peers: ['b'], direction: 'in' })
    expect(f.outbound('b')).toBe(0)
    expect(f.inbound('b')).toBe(false)
    f.set('x', { kind: 'drop', peers: ['b', 'disk'], direction: 'both' })
    expect([f.outbound('b'), f.inbound('b'), f.outbound('disk'), f.inbound('disk')]).toEqual([null, false, null, false])
  })

  it('isolate cuts every peer both ways', () => {
    const f = new TransportFilter()
    f.set('iso', { kind: 'isolate' })
    expect([f.outbound('a'), f.inbound('a'), f.outbound('disk'), f.inbound('disk')]).toEqual([null, false, null, false])
    f.remove('iso')
    expect([f.outbound('a'), f.inbound('a')]).toEqual([0, true])
  })

  it('drops with the given probability, using the injected random source', () => {
    const draws = [0.1, 0.9, 0.29, 0.31]
    const f = new TransportFilter(() => draws.shift()!)
    f.set('p', { kind: 'drop', peers: ['b'], direction: 'out', probability: 0.3 })
    expect([f.outbound('b'), f.outbound('b'), f.outbound('b'), f.outbound('b')]).toEqual([null, 0, null, 0])
  })

  it('adds delay with jitter, summing delay faults', () => {
    const f = new TransportFilter(() => 0.5)
    f.set('d1', { kind: 'delay', peers: ['b'], ms: 100, jitterMs: 20 })
    f.set('d2', { kind: 'delay', peers: ['b', 'c'], ms: 5 })
    expect(f.outbound('b')).toBe(115)
    expect(f.outbound('c')).toBe(5)
    expect(f.inbound('b')).toBe(true)
  })

  it('validates faults field by field', () => {
    expect(validateFault({ kind: 'isolate' })).toBeNull()
    expect(validateFault({ kind: 'drop', peers: [], direction: 'in' })).toMatch(/fault\.peers/)
    expect(validateFault({ kind: 'drop', peers: ['b'], direction: 'sideways' })).toMatch(/fault\.direction/)
    expect(validateFault({ kind: 'drop', peers: ['b'], direction: 'in', probability: 2 })).toMatch(/fault\.probability/)
    expect(validateFault({ kind: 'delay', peers: ['b'], ms: -1 })).toMatch(/fault\.ms/)
    expect(validateFault({ kind: 'delay', peers: ['b'], ms: 1, jitterMs: 'x' })).toMatch(/fault\.jitterMs/)
    expect(validateFault({ kind: 'melt' })).toMatch(/fault\.kind/)
    expect(validateFault(null)).toMatch(/object/)
  })
})

describe('FaultManager (dead-man)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('heals a fault at its deadline even if nobody asks', () => {
    vi.useFakeTimers()
    const m = new FaultManager()
    const healed: string[] = []
    m.on('healed', (f, reason) => healed.push(`${f.id}:${reason}`))
    m.apply('cut', { kind: 'isolate' }, 1000)
    expect(m.filter.outbound('b')).toBeNull()
    vi.advanceTimersByTime(999)
    expect(m.list().map((f) => f.id)).toEqual(['cut'])
    vi.advanceTimersByTime(1)
    expect(healed).toEqual(['cut:deadline'])
    expect(m.filter.outbound('b')).toBe(0)
    expect(m.list()).toEqual([])
  })

  it("heals everything at once with '*'", () => {
    const m = new FaultManager()
    m.apply('a', { kind: 'drop', peers: ['b'], direction: 'both' }, 60_000)
    m.apply('b', { kind: 'delay', peers: ['b'], ms: 10 }, 60_000)
    expect(m.heal('*').sort()).toEqual(['a', 'b'])
    expect(m.filter.size).toBe(0)
    expect(m.heal('a')).toEqual([])
  })

  it('replaces a fault with the same id and reports when it heals', () => {
    const m = new FaultManager(undefined, () => 1000)
    m.apply('a', { kind: 'isolate' }, 500)
    const f = m.apply('a', { kind: 'drop', peers: ['b'], direction: 'out' }, 2000)
    expect(f.healsAt).toBe(3000)
    expect(m.list()).toHaveLength(1)
    expect(m.filter.outbound('c')).toBe(0)
    m.close()
  })

  it('refuses a fault without a usable deadline or with a bad id', () => {
    const m = new FaultManager()
    expect(() => m.apply('a', { kind: 'isolate' }, 0)).toThrow(/deadlineMs/)
    expect(() => m.apply('a', { kind: 'isolate' }, Infinity)).toThrow(/deadlineMs/)
    expect(() => m.apply('*', { kind: 'isolate' }, 10)).toThrow(/fault id/)
    expect(() => m.apply('a', { kind: 'drop' } as never, 10)).toThrow(/fault\.peers/)
    expect(m.list()).toEqual([])
  })
})
