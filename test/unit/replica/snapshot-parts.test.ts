// A snapshot goes to a new backup in parts cut to the logging channel's message bound; the
// joining side puts them back together. Where no wire copies a message (the simulator, a
// loopback lab) the joining side holds the very parts the primary keeps for resending.
import { describe, expect, it } from 'vitest'
import { SnapshotAssembly, SnapshotCutter } from '../../../agent/replica/parts.js'
import { approxBytes } from '../../../agent/replica/size.js'
import type { PeerMsg } from '../../../agent/replica/types.js'
import type { Snapshot } from '../../../agent/vmm/types.js'

type Part = Extract<PeerMsg, { t: 'snapshot' }>

const snapshot: Snapshot = {
  guest: 'kv',
  hash: 'd7fdf59949991fce',
  pages: [
    ['g:kv:data', 'x'.repeat(300)],
    ['g:kv:tail', 'S5:c2:k22:v1R2:c27:1\n+OK\r\n'.repeat(120)],
    ['g:kv:gone', null],
    ['g:kv:meta', 'y'.repeat(50)]
  ]
}

function cut(maxBytes: number): Part[] {
  const cutter = new SnapshotCutter(snapshot, maxBytes, { gen: 4, from: 'a', last: 0, nextConn: 1 })
  const parts: Part[] = []
  for (let p = cutter.next(); p; p = cutter.next()) parts.push(p)
  return parts
}

/** the part's pages alone, as the cutter bounds them (the header and the list's brackets are the channel's allowance) */
const pageBytes = (p: Part) => approxBytes(p.pages)
const SLACK = 16

describe('snapshot parts', () => {
  it('cuts a value larger than the message bound into parts within the bound that reassemble to the snapshot', () => {
    const parts = cut(2000)
    expect(parts.length).toBeGreaterThan(2)
    for (const p of parts) expect(pageBytes(p)).toBeLessThanOrEqual(2000 + SLACK)
    const a = new SnapshotAssembly()
    for (const p of parts) expect(a.add(p)).toBe(true)
    expect(a.snapshot(parts.at(-1)!)).toEqual(snapshot)
  })

  it('leaves the parts it is handed as they were cut, so a resent part is still within the bound (seed 1043, kv)', () => {
    const parts = cut(2000)
    const asCut = structuredClone(parts)
    const a = new SnapshotAssembly()
    for (const p of parts) a.add(p)
    // the primary resends what it still holds in flight: the same objects
    expect(parts).toEqual(asCut)
    for (const p of parts) expect(pageBytes(p)).toBeLessThanOrEqual(2000 + SLACK)
  })

  it('keeps parts that overtook the one before them and completes once the gap fills, reporting only the parts held in order', () => {
    const parts = cut(400)
    expect(parts.length).toBeGreaterThan(4)
    const a = new SnapshotAssembly(8)
    for (const p of parts.slice(1, 4).reverse()) expect(a.add(p)).toBe(true)
    expect(a.held).toBe(0)
    expect(a.add(parts[2])).toBe(false) // held already, ahead of the gap
    expect(a.add(parts[0])).toBe(true)
    expect(a.held).toBe(4)
    for (const p of parts.slice(4)) a.add(p)
    expect(a.complete).toBe(true)
    expect(a.snapshot(a.last!)).toEqual(snapshot)
  })

  it('refuses a part further ahead than the primary keeps in flight, and one that does not continue the page before it', () => {
    const parts = cut(400)
    const a = new SnapshotAssembly(2)
    expect(a.add(parts[3])).toBe(false)
    expect(a.add(parts[0])).toBe(true)
    const stray: Part = { ...parts[1], pages: [['g:kv:other', 'z']], append: true }
    expect(a.add(stray)).toBe(false)
    expect(a.held).toBe(1)
  })

  it('with a sink, hands over each page whole as soon as it is, in order, also when parts overtake each other', () => {
    const parts = cut(400)
    const sunk: [string, string | null][] = []
    const sizes: number[] = []
    const a = new SnapshotAssembly(8, (pages) => {
      sizes.push(pages.length)
      sunk.push(...pages)
    })
    a.add(parts[1])
    expect(sunk).toEqual([]) // ahead of the gap: nothing loads out of order
    for (const p of [parts[0], ...parts.slice(2)]) expect(a.add(p)).toBe(true)
    expect(a.complete).toBe(true)
    // every page once and whole, in the snapshot's order, though the large ones came in many parts
    expect(sunk).toEqual(snapshot.pages)
    expect(sizes.length).toBeGreaterThan(1)
    expect(a.snapshot(parts.at(-1)!).pages).toEqual([])
  })
})
