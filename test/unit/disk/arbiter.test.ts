import { describe, expect, it } from 'vitest'
import { DiskArbiter, MemoryBlockStore, type BlockStore } from '../../../agent/disk/arbiter.js'
import type { DiskReq, DiskRes } from '../../../agent/replica/types.js'

const bytes = (...v: number[]) => new Uint8Array(v)

function started(store: BlockStore = new MemoryBlockStore()) {
  const arb = new DiskArbiter(store, { blockSize: 8 })
  expect(arb.handle({ id: 1, op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' }).ok).toBe(true)
  return arb
}

function fail(res: DiskRes) {
  if (res.ok) throw new Error(`expected a refusal, got ${JSON.stringify(res)}`)
  return res
}

describe('DiskArbiter', () => {
  it('reads a never-written block as zero-length and a written one as written', () => {
    const arb = started()
    const r0 = arb.handle({ id: 2, op: 'read', block: 3 })
    expect(r0).toMatchObject({ id: 2, ok: true })
    expect((r0 as { data: Uint8Array }).data.length).toBe(0)
    expect(arb.handle({ id: 3, op: 'write', gen: 1, from: 'a', block: 3, data: bytes(1, 2, 3) })).toEqual({ id: 3, ok: true })
    expect(arb.handle({ id: 4, op: 'read', block: 3 })).toEqual({ id: 4, ok: true, data: bytes(1, 2, 3) })
    expect(arb.status()).toMatchObject({ gen: 1, live: 'a', backup: 'b', tasWinner: null, blocks: 1, writes: 1, fenced: 0 })
  })

  it('fences writes from the backup, from an old generation and from a future one, and counts them', () => {
    const arb = started()
    expect(fail(arb.handle({ id: 2, op: 'write', gen: 1, from: 'b', block: 0, data: bytes(9) })).error).toBe('fenced')
    expect(fail(arb.handle({ id: 3, op: 'write', gen: 0, from: 'a', block: 0, data: bytes(9) })).error).toBe('fenced')
    expect(fail(arb.handle({ id: 4, op: 'write', gen: 2, from: 'a', block: 0, data: bytes(9) })).error).toBe('fenced')
    expect(arb.status().fenced).toBe(3)
    expect(arb.status().writes).toBe(0)
    expect((arb.handle({ id: 5, op: 'read', block: 0 }) as { data: Uint8Array }).data.length).toBe(0)
  })

  it('gives the test-and-set to the first requester; the winner wins again, the other loses with the winner named', () => {
    const arb = started()
    expect(arb.handle({ id: 2, op: 'tas', gen: 1, from: 'b' })).toEqual({ id: 2, ok: true, winner: 'b' })
    expect(arb.handle({ id: 3, op: 'tas', gen: 1, from: 'b' })).toEqual({ id: 3, ok: true, winner: 'b' })
    const lost = fail(arb.handle({ id: 4, op: 'tas', gen: 1, from: 'a' }))
    expect(lost.error).toBe('tas-lost')
    expect(lost.winner).toBe('b')
    expect(arb.status()).toMatchObject({ live: 'b', tasWinner: 'b' })
  })

  it('moves the write permission to the test-and-set winner (the old primary is fenced)', () => {
    const arb = started()
    arb.handle({ id: 2, op: 'tas', gen: 1, from: 'b' })
    expect(fail(arb.handle({ id: 3, op: 'write', gen: 1, from: 'a', block: 0, data: bytes(1) })).error).toBe('fenced')
    expect(arb.handle({ id: 4, op: 'write', gen: 1, from: 'b', block: 0, data: bytes(2) }).ok).toBe(true)
  })

  it('answers a test-and-set for an old generation with stale-generation', () => {
    const arb = started()
    arb.handle({ id: 2, op: 'generation', gen: 2, from: 'a', primary: 'a', backup: 'c' })
    expect(fail(arb.handle({ id: 3, op: 'tas', gen: 1, from: 'b' })).error).toBe('stale-generation')
    expect(fail(arb.handle({ id: 4, op: 'tas', gen: 7, from: 'b' })).error).toBe('bad-request')
  })

  it('starts generation current+1 only for the current live replica', () => {
    const arb = started()
    expect(fail(arb.handle({ id: 2, op: 'generation', gen: 2, from: 'b', primary: 'b', backup: null })).error).toBe('fenced')
    expect(fail(arb.handle({ id: 3, op: 'generation', gen: 3, from: 'a', primary: 'a', backup: 'c' })).error).toBe('bad-request')
    expect(fail(arb.handle({ id: 4, op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'c' })).error).toBe('stale-generation')
    expect(arb.handle({ id: 5, op: 'generation', gen: 2, from: 'a', primary: 'a', backup: 'c' }).ok).toBe(true)
    expect(arb.status()).toMatchObject({ gen: 2, live: 'a', backup: 'c', tasWinner: null })
  })

  it('accepts any generation on an empty store, and a retry of the request that began the current one', () => {
    const arb = new DiskArbiter(new MemoryBlockStore())
    expect(arb.handle({ id: 1, op: 'generation', gen: 5, from: 'x', primary: 'a', backup: 'b' }).ok).toBe(true)
    expect(arb.handle({ id: 2, op: 'generation', gen: 5, from: 'x', primary: 'a', backup: 'b' }).ok).toBe(true)
    expect(arb.status().gen).toBe(5)
  })

  it('lets a test-and-set winner begin the next generation (restore redundancy after go-live)', () => {
    const arb = started()
    arb.handle({ id: 2, op: 'tas', gen: 1, from: 'b' })
    expect(fail(arb.handle({ id: 3, op: 'generation', gen: 2, from: 'a', primary: 'a', backup: 'c' })).error).toBe('fenced')
    expect(arb.handle({ id: 4, op: 'generation', gen: 2, from: 'b', primary: 'b', backup: 'c' }).ok).toBe(true)
    expect(arb.status()).toMatchObject({ gen: 2, live: 'b', backup: 'c', tasWinner: null })
  })

  it('persists generation, live and winner before answering, so a new arbiter over the same store agrees', () => {
    const store = new MemoryBlockStore()
    const arb = started(store)
    arb.handle({ id: 2, op: 'tas', gen: 1, from: 'b' })
    const again = new DiskArbiter(store, { blockSize: 8 })
    expect(again.status()).toMatchObject({ gen: 1, live: 'b', tasWinner: 'b' })
    expect(fail(again.handle({ id: 3, op: 'tas', gen: 1, from: 'a' })).winner).toBe('b')
  })

  it('does not adopt a state it failed to persist', () => {
    const store = new MemoryBlockStore()
    const arb = started(store)
    store.saveMeta = () => {
      throw new Error('disk full')
    }
    const res = fail(arb.handle({ id: 2, op: 'tas', gen: 1, from: 'b' }))
    expect(res.error).toBe('io')
    expect(res.message).toMatch(/disk full/)
    expect(arb.status().tasWinner).toBeNull()
  })

  it('refuses malformed requests with bad-request naming the field', () => {
    const arb = started()
    const cases: [unknown, RegExp][] = [
      [{ id: 1, op: 'read', block: -1 }, /block/],
      [{ id: 1, op: 'read', block: 1.5 }, /block/],
      [{ id: 1, op: 'read', block: 1 << 20 }, /block/],
      [{ id: 1, op: 'write', gen: 1, from: 'a', block: 0, data: 'text' }, /write\.data/],
      [{ id: 1, op: 'write', gen: 1, from: 'a', block: 0, data: new Uint8Array(9) }, /block size/],
      [{ id: 1, op: 'tas', gen: 'one', from: 'a' }, /tas\.gen/],
      [{ id: 1, op: 'tas', gen: 1, from: '' }, /tas\.from/],
      [{ id: 1, op: 'generation', gen: 2, from: 'a', primary: 'a', backup: 7 }, /generation\.backup/],
      [{ id: 1, op: 'erase' }, /unknown op/],
      [{ op: 'status' }, /id/],
      [null, /object/]
    ]
    for (const [req, why] of cases) {
      const res = fail(arb.handle(req as DiskReq))
      expect(res.error, JSON.stringify(req)).toBe('bad-request')
      expect(res.message).toMatch(why)
    }
  })

  it('refuses to start over corrupt metadata rather than forget the generation', () => {
    const store = new MemoryBlockStore()
    store.saveMeta('{"gen":"x"}')
    expect(() => new DiskArbiter(store)).toThrow(/malformed/)
    store.saveMeta('{not json')
    expect(() => new DiskArbiter(store)).toThrow(/not valid JSON/)
  })

  it('applies a retried write once, and never lets a late duplicate overwrite a newer write to the same block', () => {
    const arb = started()
    const w = (id: number, entry: number, index: number, v: number): DiskReq => ({ id, op: 'write', gen: 1, from: 'a', block: 4, data: bytes(v), entry, index })
    expect(arb.handle(w(2, 5, 0, 1))).toEqual({ id: 2, ok: true })
    expect(arb.handle(w(3, 6, 1, 2))).toEqual({ id: 3, ok: true })
    // the retry of the first write arrives late: acknowledged, not applied
    expect(arb.handle(w(2, 5, 0, 1))).toEqual({ id: 2, ok: true })
    expect(arb.handle({ id: 4, op: 'read', block: 4 })).toEqual({ id: 4, ok: true, data: bytes(2) })
    expect(arb.status().writes).toBe(2)
    // a later generation orders above any entry of an earlier one
    expect(arb.handle({ id: 5, op: 'tas', gen: 1, from: 'a' }).ok).toBe(true)
    expect(arb.handle({ id: 6, op: 'generation', gen: 2, from: 'a', primary: 'a', backup: 'b' }).ok).toBe(true)
    expect(arb.handle({ id: 7, op: 'write', gen: 2, from: 'a', block: 4, data: bytes(3), entry: 1, index: 0 })).toEqual({ id: 7, ok: true })
    expect(arb.handle({ id: 8, op: 'read', block: 4 })).toEqual({ id: 8, ok: true, data: bytes(3) })
  })

  it('lets the backup take generation 1 when the primary died before registering it, and refuses the late registration', () => {
    const arb = new DiskArbiter(new MemoryBlockStore(), { blockSize: 8 })
    expect(arb.handle({ id: 1, op: 'tas', gen: 1, from: 'b' })).toEqual({ id: 1, ok: true, winner: 'b' })
    expect(arb.status()).toMatchObject({ gen: 1, live: 'b', tasWinner: 'b' })
    expect(fail(arb.handle({ id: 2, op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })).error).toBe('stale-generation')
    expect(fail(arb.handle({ id: 3, op: 'tas', gen: 1, from: 'a' })).error).toBe('tas-lost')
    expect(arb.handle({ id: 4, op: 'write', gen: 1, from: 'b', block: 0, data: bytes(1) }).ok).toBe(true)
  })

  it('begins the next generation with a replica recovering from disk after a double failure, fencing the old live replica', () => {
    const arb = started()
    expect(fail(arb.handle({ id: 2, op: 'generation', gen: 2, from: 'b', primary: 'b', backup: null })).error).toBe('fenced')
    const req: DiskReq = { id: 3, op: 'generation', gen: 2, from: 'b', primary: 'b', backup: null, recover: true }
    expect(arb.handle(req)).toEqual({ id: 3, ok: true, winner: 'b' })
    expect(arb.handle(req)).toEqual({ id: 3, ok: true, winner: 'b' }) // its answer was lost
    expect(arb.status()).toMatchObject({ gen: 2, live: 'b', tasWinner: 'b' })
    expect(fail(arb.handle({ id: 4, op: 'write', gen: 1, from: 'a', block: 0, data: bytes(1) })).error).toBe('fenced')
    expect(fail(arb.handle({ id: 5, op: 'generation', gen: 4, from: 'b', primary: 'b', backup: null, recover: true })).error).toBe('bad-request')
  })
})
