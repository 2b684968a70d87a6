import { describe, expect, it } from 'vitest'
import type { LogEntry } from '../../../agent/replica/types.js'
import { ackMsgs, confirmedPrimary, deliver, entriesMsgs, ftreq, makeCore, peerMsgs, releases, telemetry } from './harness.js'

/** The primary's first few entries, as the backup would receive them. */
function primaryEntries(count: number, mode: 'rsm' | 'state-transfer' = 'rsm'): { entries: LogEntry[]; hashes: string[] } {
  const p = confirmedPrimary({ mode })
  const entries = [...entriesMsgs(p.start).flatMap((m) => m.entries)]
  const hashes = [p.vmm.stateHash()]
  for (let i = 1; i < count; i++) {
    p.core.step({ t: 'input', now: i, input: ftreq('c1', i, 'SET', 'k', String(i)) })
    entries.push(...entriesMsgs(p.core.takeActions()).flatMap((m) => m.entries))
    hashes.push(p.vmm.stateHash())
  }
  return { entries, hashes }
}

describe('backup: replaying the logging channel', () => {
  for (const mode of ['rsm', 'state-transfer'] as const) {
    it(`applies entries in order and reaches the primary's state (${mode})`, () => {
      const { entries, hashes } = primaryEntries(4, mode)
      const b = makeCore('backup', { mode })
      b.core.takeActions()
      b.core.step({ t: 'peer', now: 1, msg: { t: 'entries', gen: 1, entries, releasedThrough: 0 } })
      const a = b.core.takeActions()
      expect(ackMsgs(a)).toEqual([{ t: 'ack', gen: 1, n: 4 }])
      expect(releases(a)).toEqual([])
      expect(b.vmm.stateHash()).toBe(hashes[3])
      expect(b.vmm.peek('k')).toBe('3')
    })
  }

  it('ignores duplicates, holds entries that overtake a gap, and acks only what it has applied', () => {
    const { entries } = primaryEntries(4)
    const b = makeCore('backup')
    b.core.takeActions()
    const send = (es: LogEntry[]) => {
      b.core.step({ t: 'peer', now: 1, msg: { t: 'entries', gen: 1, entries: es, releasedThrough: 0 } })
      return ackMsgs(b.core.takeActions()).map((m) => m.n)
    }
    expect(send([entries[0]])).toEqual([1])
    expect(send([entries[2]])).toEqual([1]) // gap: 2 is missing, 3 waits
    expect(b.vmm.peek('k')).toBe(undefined)
    expect(send([entries[0], entries[1]])).toEqual([3]) // 1 is a duplicate; 2 fills the gap, 3 follows
    expect(b.vmm.peek('k')).toBe('2')
    expect(send([entries[1], entries[2], entries[3]])).toEqual([4])
    expect(b.vmm.peek('k')).toBe('3')
  })

  it('acks from a heartbeat that shows the primary is ahead, so the gap is resent', () => {
    const b = makeCore('backup')
    b.core.takeActions()
    b.core.step({ t: 'peer', now: 1, msg: { t: 'heartbeat', gen: 1, from: 'a', last: 3, releasedThrough: 0 } })
    expect(ackMsgs(b.core.takeActions())).toEqual([{ t: 'ack', gen: 1, n: 0 }])
  })

  it('drops messages of another generation', () => {
    const { entries } = primaryEntries(2)
    const b = makeCore('backup', { gen: 2 })
    b.core.takeActions()
    b.core.step({ t: 'peer', now: 1, msg: { t: 'entries', gen: 1, entries, releasedThrough: 0 } })
    const a = b.core.takeActions()
    expect(ackMsgs(a)).toEqual([])
    expect(telemetry(a)).toContainEqual({ k: 'dropped', what: 'entries of generation 1', why: 'this replica is in generation 2' })
    expect(b.core.status().lastEntry).toBe(0)
  })

  it('reports a state-hash mismatch once, with the entry where it began, and halts', () => {
    const { entries } = primaryEntries(3)
    const bad = entries.map((e) => (e.n >= 2 ? { ...e, hash: `bogus${e.n}` } : e))
    const b = makeCore('backup')
    b.core.takeActions()
    b.core.step({ t: 'peer', now: 1, msg: { t: 'entries', gen: 1, entries: bad, releasedThrough: 0 } })
    const a = b.core.takeActions()
    // entry 3 is never applied: the backup halted at the mismatch, and acks nothing from it on
    expect(b.core.status()).toMatchObject({ role: 'halted', lastEntry: 2 })
    expect(ackMsgs(a)).toEqual([])
    const diverged = telemetry(a).filter((t) => t.k === 'diverged')
    expect(diverged).toHaveLength(1)
    expect(diverged[0]).toMatchObject({ k: 'diverged', host: 'b', n: 2, since: 2, primaryHash: 'bogus2' })
    expect(peerMsgs(a)).toContainEqual(expect.objectContaining({ t: 'diverged', gen: 1, n: 2, since: 2, primaryHash: 'bogus2' }))

    // the primary shows it
    const p = confirmedPrimary()
    const pa = deliver(a, p.core, 2)
    expect(telemetry(pa)).toContainEqual(expect.objectContaining({ k: 'diverged', n: 2 }))
  })

  it('drops a malformed peer message with a reason instead of throwing', () => {
    const b = makeCore('backup')
    b.core.takeActions()
    b.core.step({ t: 'peer', now: 1, msg: { t: 'entries', gen: 1, entries: [{ n: 'x' }], releasedThrough: 0 } as never })
    b.core.step({ t: 'peer', now: 1, msg: null as never })
    const why = telemetry(b.core.takeActions()).map((t) => (t.k === 'dropped' ? t.why : ''))
    expect(why).toEqual(['entries: malformed entry list', 'not an object'])
  })

  it('does not execute inputs handed to it by mistake', () => {
    const b = makeCore('backup')
    b.core.takeActions()
    b.core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'k', 'v') })
    expect(telemetry(b.core.takeActions())).toMatchObject([{ k: 'dropped', why: 'a backup replica does not execute inputs' }])
    expect(b.vmm.peek('k')).toBeUndefined()
  })
})
