// Deleted pages stay as tombstones in guest memory (agent/vmm/memory.ts): V8's Map keeps a deleted
// entry in its bucket's chain until a rehash, so a key written and deleted over and over (the kv
// guest's pending-log page) made every lookup of it walk a chain of dead entries. What must hold:
// a key that comes and goes takes one entry, a deleted page is gone to every reader, and the Map is
// rebuilt once tombstones outnumber the pages, without changing what the guest sees or the hash.
import { describe, expect, it } from 'vitest'
import { Memory } from '../../../agent/vmm/memory.js'

function filled(n: number): Memory {
  const m = new Memory(1 << 30)
  m.beginInput()
  for (let i = 0; i < n; i++) m.set(`k:${i}`, `v${i}`)
  return m
}

/** What a reader of the memory sees, and its hash, against a fresh memory given the same pages. */
function sameAsFresh(m: Memory): void {
  const fresh = new Memory(1 << 30)
  for (const [k, v] of m.all()) fresh.set(k, v as string)
  expect(m.hash()).toBe(fresh.hash())
  expect(m.pageCount()).toBe(fresh.pageCount())
  expect(m.sizeBytes()).toBe(fresh.sizeBytes())
}

describe('memory tombstones', () => {
  it('gives a key written and deleted over and over one entry, not one per round', () => {
    const m = filled(1000)
    for (let i = 0; i < 50_000; i++) {
      m.set('kv:pend', `S3:key3:${i}`)
      m.delete('kv:pend')
      if (i % 1000 === 0) m.beginInput()
    }
    // a big page (its hash cached) coming and going, hashed in between as the replicas do every 32nd entry
    for (let i = 0; i < 2_000; i++) {
      m.set('kv:pend', `S3:key3:${'x'.repeat(100)}${i}`)
      if (i % 7 === 0) m.hash()
      m.delete('kv:pend')
    }
    expect(m.tombstones()).toBe(1)
    expect(m.pageCount()).toBe(1000)
    expect(m.has('kv:pend')).toBe(false)
    expect(m.get('kv:pend')).toBeUndefined()
    m.set('kv:pend', 'x')
    expect(m.tombstones()).toBe(0)
    expect(m.get('kv:pend')).toBe('x')
    sameAsFresh(m)
  })

  it('hides a deleted page from every reader: has, get, keys, all, the hash and the byte count', () => {
    const m = filled(10)
    m.delete('k:3')
    m.delete('k:3')
    expect(m.has('k:3')).toBe(false)
    expect(m.keys('k:')).toEqual(['k:0', 'k:1', 'k:2', 'k:4', 'k:5', 'k:6', 'k:7', 'k:8', 'k:9'])
    expect(m.all().map(([k]) => k)).not.toContain('k:3')
    expect(m.tombstones()).toBe(1)
    sameAsFresh(m)
    // a snapshot loaded with the page deleted, and a rollback of the input that deleted it
    m.load([
      ['k:4', null],
      ['k:3', 'back']
    ])
    expect(m.get('k:3')).toBe('back')
    expect(m.has('k:4')).toBe(false)
    sameAsFresh(m)
    m.beginInput()
    const mark = m.mark()
    m.delete('k:5')
    m.set('k:new', 'n')
    m.rollback(mark)
    expect(m.get('k:5')).toBe('v5')
    expect(m.has('k:new')).toBe(false)
    sameAsFresh(m)
  })

  it('is rebuilt without tombstones once they outnumber the pages, the guest seeing the same pages', () => {
    const m = filled(10_000)
    // big pages, whose hashes are cached, on both sides of the rebuild
    for (let i = 4_990; i < 5_010; i++) m.set(`k:${i}`, 'b'.repeat(80) + i)
    m.hash()
    for (let i = 0; i < 5_000; i++) m.delete(`k:${i}`)
    // 5,000 tombstones beside 5,000 pages: not yet
    expect(m.tombstones()).toBe(5_000)
    m.delete('k:5000')
    expect(m.tombstones()).toBe(0)
    expect(m.pageCount()).toBe(4_999)
    expect(m.get('k:4999')).toBeUndefined()
    expect(m.get('k:5001')).toBe('b'.repeat(80) + 5001)
    expect(m.keys('k:')).toHaveLength(4_999)
    sameAsFresh(m)
    // and after it, the cached hashes of the big pages that stayed still leave the sum right
    for (let i = 5_001; i < 5_010; i++) m.set(`k:${i}`, 'c'.repeat(90) + i)
    m.delete('k:5009')
    sameAsFresh(m)
    // a few thousand tombstones beside many pages stay: a rebuild costs the whole Map
    const big = filled(20_000)
    for (let i = 0; i < 6_000; i++) big.delete(`k:${i}`)
    expect(big.tombstones()).toBe(6_000)
    sameAsFresh(big)
  })
})
