// The slices of a large log entry may arrive out of order (a reconnect, the simulator's
// network); a slice ahead of a gap must be kept, not dropped for the primary to resend later.
import { describe, expect, it } from 'vitest'
import { EntryAssembly, entryParts } from '../../../agent/replica/parts.js'
import type { LogEntry } from '../../../agent/replica/types.js'

const entry: LogEntry = { n: 7, gen: 2, body: { kind: 'input', input: { t: 'random', value: 0.25 } } } as unknown as LogEntry

function slices(maxBytes: number) {
  return entryParts(entry, maxBytes, { releasedThrough: 0 }) as Extract<ReturnType<typeof entryParts>[number], { t: 'entry-part' }>[]
}

describe('entry assembly', () => {
  it('completes from slices that arrive in reverse order, reporting only the contiguous prefix as held', () => {
    const parts = slices(8)
    expect(parts.length).toBeGreaterThan(3)
    const a = new EntryAssembly(7, parts[0].total)
    for (const p of [...parts].reverse().slice(0, -1)) {
      expect(a.add(p.at, p.total, p.bytes)).toBe(true)
      expect(a.bytesHeld).toBe(0)
      expect(a.complete).toBe(false)
    }
    expect(a.add(parts[0].at, parts[0].total, parts[0].bytes)).toBe(true)
    expect(a.complete).toBe(true)
    expect(a.entry()).toEqual(entry)
  })

  it('ignores a slice it already holds and one from another encoding of the entry', () => {
    const parts = slices(8)
    const a = new EntryAssembly(7, parts[0].total)
    expect(a.add(parts[0].at, parts[0].total, parts[0].bytes)).toBe(true)
    expect(a.add(parts[0].at, parts[0].total, parts[0].bytes)).toBe(false)
    expect(a.add(parts[2].at, parts[2].total, parts[2].bytes)).toBe(true)
    expect(a.add(parts[2].at, parts[2].total, parts[2].bytes)).toBe(false)
    expect(a.add(parts[1].at, parts[1].total + 1, parts[1].bytes)).toBe(false)
    expect(a.bytesHeld).toBe(parts[0].bytes.length)
  })
})
