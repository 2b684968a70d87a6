// Offset writes (appends inside a block): where their bytes land, that they survive a
// disk-server restart, that fencing refuses them as it refuses whole-block writes, and that
// an append arriving before the writes ahead of it is held back until they land.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DiskArbiter, MemoryBlockStore, spliceBlock, type BlockStore } from '../../../agent/disk/arbiter.js'
import { DiskClient } from '../../../agent/disk/client.js'
import { FileBlockStore } from '../../../agent/disk/file-store.js'
import { DiskServer } from '../../../agent/disk/server.js'
import type { DiskReq, DiskRes } from '../../../agent/replica/types.js'

const text = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'))
const str = (b: Uint8Array) => Buffer.from(b).toString('latin1')

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ftlab-offset-'))
  cleanups.push(() => rmSync(d, { recursive: true, force: true }))
  return d
}

function started(store: BlockStore = new MemoryBlockStore(), blockSize = 16): DiskArbiter {
  const arb = new DiskArbiter(store, { blockSize })
  expect(arb.handle({ id: 1, op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' }).ok).toBe(true)
  return arb
}

let nextId = 10
function write(arb: DiskArbiter, block: number, data: string, offset?: number, entry?: number, from = 'a'): DiskRes {
  const req: DiskReq = { id: nextId++, op: 'write', gen: 1, from, block, data: text(data) }
  if (offset !== undefined) req.offset = offset
  if (entry !== undefined) Object.assign(req, { entry, index: 0 })
  return arb.handle(req)
}

function read(arb: DiskArbiter, block: number): string {
  const r = arb.handle({ id: nextId++, op: 'read', block })
  if (!r.ok || !r.data) throw new Error(`read of block ${block} failed: ${JSON.stringify(r)}`)
  return str(r.data)
}

describe('offset writes at the arbiter', () => {
  it('cut off bytes the replaced live replica left past the offset when a newer write builds on less (the Output Rule off), and still refuse a hole', () => {
    const arb = started()
    expect(write(arb, 2, 'abc', undefined, 1)).toMatchObject({ ok: true })
    // the primary's append of an entry its backup never got: possible only with the Output Rule off
    expect(write(arb, 2, 'XYZ', 3, 5)).toMatchObject({ ok: true })
    expect(arb.handle({ id: nextId++, op: 'tas', gen: 1, from: 'b' })).toMatchObject({ ok: true, winner: 'b' })
    // b, live, appends its entry 4 where its view of the block ends: a's ids (entry 5) are of another history, and
    // b's view wins, as a whole-block write of it would
    expect(write(arb, 2, 'de', 3, 4, 'b')).toMatchObject({ ok: true })
    expect(read(arb, 2)).toBe('abcde')
    expect(write(arb, 2, 'f', 5, 6, 'b')).toMatchObject({ ok: true })
    // b's own late retry of an older write is done already, never applied; a hole is refused as before
    expect(write(arb, 2, 'zz', 3, 4, 'b')).toMatchObject({ ok: true })
    expect(write(arb, 2, 'q', 9, 7, 'b')).toMatchObject({ ok: false, error: 'out-of-order' })
    expect(read(arb, 2)).toBe('abcdef')
    // the deposed primary's writes are fenced, appends included
    expect(write(arb, 2, 'W', 5, 8, 'a')).toMatchObject({ ok: false, error: 'fenced' })
  })

  it('append at the offset where the block ends, leaving the bytes before untouched', () => {
    for (const store of [new MemoryBlockStore(), new FileBlockStore(tempDir(), { blockSize: 16 })]) {
      if (store instanceof FileBlockStore) cleanups.push(() => store.close())
      const arb = started(store)
      expect(write(arb, 2, 'abc')).toMatchObject({ ok: true })
      expect(write(arb, 2, 'de', 3)).toMatchObject({ ok: true })
      expect(write(arb, 2, 'fghij', 5)).toMatchObject({ ok: true })
      expect(read(arb, 2)).toBe('abcdefghij')
      expect(arb.status().writes).toBe(3)
      // a block never written holds nothing, so its first append is at 0
      expect(write(arb, 5, 'xy', 0)).toMatchObject({ ok: true })
      expect(read(arb, 5)).toBe('xy')
    }
  })

  it('leave the same block as rewriting it whole would', () => {
    const whole = started()
    const appended = started()
    let block = ''
    for (const rec of ['S1:a', '1:bS', '2:cd', '3:e'] as const) {
      block += rec
      write(whole, 1, block)
      write(appended, 1, rec, block.length - rec.length)
    }
    expect(read(appended, 1)).toBe(read(whole, 1))
  })

  it('refuse an append that does not start where the block ends as out-of-order, changing nothing', () => {
    const arb = started()
    write(arb, 1, 'abc')
    const ahead = write(arb, 1, 'zz', 5)
    expect(ahead).toMatchObject({ ok: false, error: 'out-of-order' })
    expect(ahead.ok === false && ahead.message).toMatch(/offset 5 of block 1 refused: the block holds 3 bytes/)
    // into the middle, with other bytes than are there: the same
    expect(write(arb, 1, 'Q', 1)).toMatchObject({ ok: false, error: 'out-of-order' })
    expect(read(arb, 1)).toBe('abc')
    expect(arb.status().writes).toBe(1)
  })

  it('apply an append that overtook the one before it once that one has landed (its retry)', () => {
    const arb = started()
    write(arb, 1, 'ab', undefined, 1)
    // entry 3's append arrives before entry 2's (lost on a broken connection, resent later)
    expect(write(arb, 1, 'ef', 4, 3)).toMatchObject({ ok: false, error: 'out-of-order' })
    expect(write(arb, 1, 'cd', 2, 2)).toMatchObject({ ok: true })
    expect(write(arb, 1, 'ef', 4, 3)).toMatchObject({ ok: true })
    expect(read(arb, 1)).toBe('abcdef')
    // a late duplicate of entry 2 is done already: it does not cut the block back
    expect(write(arb, 1, 'cd', 2, 2)).toMatchObject({ ok: true })
    expect(read(arb, 1)).toBe('abcdef')
  })

  it('answer a retry of an append applied before a restart (its write id forgotten) without applying it again', () => {
    const store = new MemoryBlockStore()
    const arb = started(store)
    write(arb, 1, 'ab', undefined, 1)
    write(arb, 1, 'cd', 2, 2)
    write(arb, 1, 'ef', 4, 3)
    const restarted = new DiskArbiter(store, { blockSize: 16 })
    expect(write(restarted, 1, 'cd', 2, 2)).toMatchObject({ ok: true })
    expect(read(restarted, 1)).toBe('abcdef')
  })

  it('fence an append from a replica that is not live, or of another generation, before looking at the block', () => {
    const arb = started()
    write(arb, 1, 'ab')
    expect(write(arb, 1, 'cd', 2, undefined, 'b')).toMatchObject({ ok: false, error: 'fenced' })
    expect(arb.handle({ id: nextId++, op: 'write', gen: 2, from: 'a', block: 1, data: text('cd'), offset: 2 })).toMatchObject({ ok: false, error: 'fenced' })
    // after the backup won the test-and-set, the deposed primary's append is refused, even one that would fit
    expect(arb.handle({ id: nextId++, op: 'tas', gen: 1, from: 'b' })).toMatchObject({ ok: true })
    const deposed = write(arb, 1, 'cd', 2, undefined, 'a')
    expect(deposed).toMatchObject({ ok: false, error: 'fenced', winner: 'b' })
    expect(read(arb, 1)).toBe('ab')
    expect(arb.status()).toMatchObject({ fenced: 3, writes: 1 })
  })

  it('refuse an offset outside the block, or bytes that would end beyond it, as a bad request', () => {
    const arb = started()
    expect(write(arb, 1, 'a', -1)).toMatchObject({ ok: false, error: 'bad-request' })
    expect(write(arb, 1, 'a', 1.5)).toMatchObject({ ok: false, error: 'bad-request' })
    expect(write(arb, 1, 'a', 17)).toMatchObject({ ok: false, error: 'bad-request' })
    const over = write(arb, 1, 'abcdefghijklmnop', 8)
    expect(over.ok === false && over.message).toMatch(/16 bytes at offset 8 of block 1 would end beyond the block size 16/)
    expect(arb.handle({ id: nextId++, op: 'write', gen: 1, from: 'a', block: 1, data: text('a'), offset: '0' as unknown as number })).toMatchObject({
      ok: false,
      error: 'bad-request'
    })
  })

  it('splice: the first offset bytes, then the data', () => {
    expect(str(spliceBlock(text('abcdef'), 2, text('XY')))).toBe('abXY')
    expect(str(spliceBlock(text('ab'), 2, text('')))).toBe('ab')
    expect(str(spliceBlock(new Uint8Array(0), 0, text('q')))).toBe('q')
  })
})

describe('FileBlockStore appends', () => {
  it('survive reopening the store (a disk-server restart) and keep the block length exact', () => {
    const dir = tempDir()
    const s = new FileBlockStore(dir, { blockSize: 16 })
    s.write(3, text('0123456789abcdef'))
    s.write(3, text('abc'))
    s.writeAt(3, 3, text('de'))
    s.writeAt(4, 0, text('new'))
    s.flush()
    s.close()
    const again = new FileBlockStore(dir, { blockSize: 16 })
    cleanups.push(() => again.close())
    // the longer whole write before is cut off where the append ended, as a whole write of 'abcde' would leave it
    expect(str(again.read(3))).toBe('abcde')
    expect(str(again.read(4))).toBe('new')
    expect(again.blockCount()).toBe(2)
  })
})

describe('offset writes through the disk server', () => {
  it('land at the right bytes, are acknowledged after the sync, and survive a restart of the server', async () => {
    const key = randomBytes(32)
    const dir = tempDir()
    const startOn = async (port: number) => {
      const store = new FileBlockStore(dir, { blockSize: 64 })
      const s = await DiskServer.start({ selfId: 'disk', key, host: '127.0.0.1', port, store, blockSize: 64 })
      return { s, store }
    }
    const first = await startOn(0)
    const port = first.s.port
    const a = new DiskClient({ selfId: 'a', key, host: '127.0.0.1', port, expectPeer: 'disk', timeoutMs: 3000, minBackoffMs: 10, maxBackoffMs: 50 })
    cleanups.push(() => a.close())
    expect(await a.request({ op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })).toMatchObject({ ok: true })
    expect(await a.request({ op: 'write', gen: 1, from: 'a', block: 1, data: text('FTKV'), entry: 1, index: 0 })).toMatchObject({ ok: true })
    expect(await a.request({ op: 'write', gen: 1, from: 'a', block: 1, data: text(' log'), offset: 4, entry: 2, index: 0 })).toMatchObject({ ok: true })
    expect(await a.request({ op: 'write', gen: 1, from: 'a', block: 1, data: text('!'), offset: 9, entry: 3, index: 0 })).toMatchObject({
      ok: false,
      error: 'out-of-order'
    })
    const down = once(a, 'down')
    await first.s.close()
    first.store.close()
    await down

    const second = await startOn(port)
    cleanups.push(async () => {
      await second.s.close()
      second.store.close()
    })
    expect(str(((await a.request({ op: 'read', block: 1 })) as { data: Uint8Array }).data)).toBe('FTKV log')
    // a retry of entry 2 after the restart is recognised by its bytes; entry 3 fits now
    expect(await a.request({ op: 'write', gen: 1, from: 'a', block: 1, data: text(' log'), offset: 4, entry: 2, index: 0 })).toMatchObject({ ok: true })
    expect(await a.request({ op: 'write', gen: 1, from: 'a', block: 1, data: text('!'), offset: 8, entry: 3, index: 0 })).toMatchObject({ ok: true })
    expect(str(((await a.request({ op: 'read', block: 1 })) as { data: Uint8Array }).data)).toBe('FTKV log!')
    // the backup's append is fenced on this path as on the whole-block one
    const b = new DiskClient({ selfId: 'b', key, host: '127.0.0.1', port, expectPeer: 'disk', timeoutMs: 3000, minBackoffMs: 10, maxBackoffMs: 50 })
    cleanups.push(() => b.close())
    expect(await b.request({ op: 'write', gen: 1, from: 'b', block: 1, data: text('?'), offset: 9 })).toMatchObject({ ok: false, error: 'fenced' })
    expect(str(((await a.request({ op: 'read', block: 1 })) as { data: Uint8Array }).data)).toBe('FTKV log!')
  })
})
