import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DiskArbiter } from '../../../agent/disk/arbiter.js'
import { FileBlockStore, INDEX_GROUP } from '../../../agent/disk/file-store.js'

const dirs: string[] = []
const stores: FileBlockStore[] = []
afterEach(() => {
  while (stores.length) stores.pop()!.close()
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true })
})

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ftlab-disk-'))
  dirs.push(d)
  return d
}

function open(dir: string, blockSize = 16): FileBlockStore {
  const s = new FileBlockStore(dir, { blockSize })
  stores.push(s)
  return s
}

describe('FileBlockStore', () => {
  it('reads back exactly what was written, and empty for a block never written', () => {
    const s = open(tempDir())
    s.write(2, new Uint8Array([1, 2, 3]))
    s.write(0, new Uint8Array(16).fill(9))
    s.write(2, new Uint8Array([4]))
    expect(s.read(2)).toEqual(new Uint8Array([4]))
    expect(s.read(0)).toEqual(new Uint8Array(16).fill(9))
    expect(s.read(1)).toEqual(new Uint8Array(0))
    expect(s.read(1000)).toEqual(new Uint8Array(0))
    expect(s.blockCount()).toBe(2)
    expect(() => s.write(3, new Uint8Array(17))).toThrow(/exceed block size 16/)
  })

  it('keeps blocks, the block count and metadata across a reopen', () => {
    const dir = tempDir()
    const a = open(dir)
    a.write(5, new Uint8Array([7, 7]))
    a.saveMeta('{"gen":3}')
    a.flush()
    a.close()
    const b = open(dir)
    expect(b.read(5)).toEqual(new Uint8Array([7, 7]))
    expect(b.blockCount()).toBe(1)
    expect(b.loadMeta()).toBe('{"gen":3}')
  })

  it('writes metadata atomically with mode 0600 and leaves no temp file', () => {
    const dir = tempDir()
    const s = open(dir)
    expect(s.loadMeta()).toBeNull()
    s.saveMeta('{"gen":1}')
    s.saveMeta('{"gen":2}')
    expect(readFileSync(join(dir, 'disk.meta.json'), 'utf8')).toBe('{"gen":2}')
    expect(statSync(join(dir, 'disk.meta.json')).mode & 0o777).toBe(0o600)
    expect(() => statSync(join(dir, `disk.meta.json.tmp-${process.pid}`))).toThrow()
  })

  it('refuses an image made with another block size, or a foreign index', () => {
    const dir = tempDir()
    open(dir, 16).close()
    expect(() => new FileBlockStore(dir, { blockSize: 32 })).toThrow(/block size 16/)
    writeFileSync(join(dir, 'disk.index'), 'garbage!')
    expect(() => new FileBlockStore(dir, { blockSize: 16 })).toThrow(/not an FT Lab disk index/)
  })

  it('ignores a torn last index entry', () => {
    const dir = tempDir()
    const a = open(dir)
    a.write(1, new Uint8Array([1]))
    a.close()
    writeFileSync(join(dir, 'disk.index'), Buffer.concat([readFileSync(join(dir, 'disk.index')), Buffer.from([0, 0])]))
    expect(open(dir).blockCount()).toBe(1)
  })

  it('answers a length query that agrees with the block read back, after writes, appends and a reopen', () => {
    const dir = tempDir()
    const a = open(dir)
    a.write(7, new Uint8Array([1, 2, 3, 4, 5]))
    a.write(7, new Uint8Array([9, 9]))
    a.writeAt(7, 2, new Uint8Array([3, 3, 3]))
    a.writeAt(70, 0, new Uint8Array([1]))
    for (const b of [0, 6, 7, 8, 70, 5000]) expect(a.length(b)).toBe(a.read(b).length)
    expect(a.length(7)).toBe(5)
    a.flush()
    a.close()
    const b = open(dir)
    for (const n of [0, 6, 7, 8, 70, 5000]) expect(b.length(n)).toBe(b.read(n).length)
    expect(b.read(7)).toEqual(new Uint8Array([9, 9, 3, 3, 3]))
  })

  it("writes an append's bytes and its block's new length at the flush: a crash before it reads the block as before", () => {
    const dir = tempDir()
    const a = open(dir)
    a.write(5, new Uint8Array([1, 2]))
    a.flush()
    a.writeAt(5, 2, new Uint8Array([3]))
    a.writeAt(5, 3, new Uint8Array([4, 5]))
    expect(a.read(5)).toEqual(new Uint8Array([1, 2, 3, 4, 5]))
    // what a disk server killed now would find on restart: no append was acknowledged (that waits for the flush)
    const crashed = open(dir)
    expect(crashed.read(5)).toEqual(new Uint8Array([1, 2]))
    crashed.close()
    a.flush()
    const after = open(dir)
    expect(after.read(5)).toEqual(new Uint8Array([1, 2, 3, 4, 5]))
    expect(after.length(5)).toBe(5)
  })

  it("puts a batch's appends to a block into the image together at the flush; a read sees them sooner, a whole write supersedes them", () => {
    const dir = tempDir()
    const a = open(dir)
    // slot of block 5 with 16-byte blocks: 5 * (4 + 16); its bytes follow the 4-byte length
    // (the file may end before: a byte never written reads as 0)
    const image = (from: number, n: number) => {
      const got = readFileSync(join(dir, 'disk.img')).subarray(5 * 20 + 4 + from, 5 * 20 + 4 + from + n)
      return [...got, ...new Array<number>(n - got.length).fill(0)]
    }
    a.write(5, new Uint8Array([1, 2]))
    a.flush()
    a.writeAt(5, 2, new Uint8Array([3]))
    a.writeAt(5, 3, new Uint8Array([4, 5]))
    a.writeAt(5, 5, new Uint8Array([6]))
    expect(a.length(5)).toBe(6)
    expect(image(0, 6)).toEqual([1, 2, 0, 0, 0, 0])
    a.flush()
    expect(image(0, 6)).toEqual([1, 2, 3, 4, 5, 6])
    // a read of the block writes its pending appends first
    a.writeAt(5, 6, new Uint8Array([7, 8]))
    expect(a.read(5)).toEqual(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))
    expect(image(6, 2)).toEqual([7, 8])
    // a whole-block write replaces the block: appends pending before it never reach the image
    a.writeAt(5, 8, new Uint8Array([9, 9]))
    a.write(5, new Uint8Array([4, 4, 4]))
    a.writeAt(5, 3, new Uint8Array([5]))
    a.flush()
    expect(image(0, 10)).toEqual([4, 4, 4, 5, 5, 6, 7, 8, 0, 0])
    a.close()
    const b = open(dir)
    expect(b.read(5)).toEqual(new Uint8Array([4, 4, 4, 5]))
    expect(b.length(5)).toBe(4)
  })

  it('grows its index once per group of blocks, and counts and reads only the blocks written after a reopen', () => {
    const dir = tempDir()
    const a = open(dir)
    const indexBytes = () => statSync(join(dir, 'disk.index')).size
    a.write(0, new Uint8Array([1]))
    expect(indexBytes()).toBe(8 + 4 * INDEX_GROUP)
    for (let b = 1; b < INDEX_GROUP; b += 2) a.write(b, new Uint8Array([b]))
    expect(indexBytes()).toBe(8 + 4 * INDEX_GROUP)
    a.write(INDEX_GROUP + 3, new Uint8Array([2]))
    expect(indexBytes()).toBe(8 + 8 * INDEX_GROUP)
    const count = a.blockCount()
    expect(count).toBe(2 + INDEX_GROUP / 2)
    a.close()
    const b = open(dir)
    expect(b.blockCount()).toBe(count)
    expect(b.read(2)).toEqual(new Uint8Array(0))
    expect(b.read(3)).toEqual(new Uint8Array([3]))
    expect(b.read(INDEX_GROUP + 3)).toEqual(new Uint8Array([2]))
    expect(b.read(INDEX_GROUP + 4)).toEqual(new Uint8Array(0))
  })

  it('refuses use after close', () => {
    const s = new FileBlockStore(tempDir())
    s.close()
    expect(() => s.read(0)).toThrow(/closed/)
  })
})

describe('DiskArbiter over a FileBlockStore', () => {
  it('takes an append where its block ends from the block length alone, and reads the block for a retry over its bytes', () => {
    const reads: number[] = []
    class Watched extends FileBlockStore {
      override read(block: number): Uint8Array {
        reads.push(block)
        return super.read(block)
      }
    }
    const s = new Watched(tempDir(), { blockSize: 16 })
    stores.push(s)
    const a = new DiskArbiter(s, { blockSize: 16 })
    a.handle({ id: 1, op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })
    expect(a.handle({ id: 2, op: 'write', gen: 1, from: 'a', block: 2, data: new Uint8Array([1, 2]), offset: 0 })).toMatchObject({ ok: true })
    expect(a.handle({ id: 3, op: 'write', gen: 1, from: 'a', block: 2, data: new Uint8Array([3]), offset: 2 })).toMatchObject({ ok: true })
    expect(a.handle({ id: 4, op: 'write', gen: 1, from: 'a', block: 2, data: new Uint8Array([5]), offset: 4 })).toMatchObject({
      ok: false,
      error: 'out-of-order'
    })
    expect(reads).toEqual([])
    // a retry (no write id) of bytes the block holds already is recognised by reading them
    expect(a.handle({ id: 5, op: 'write', gen: 1, from: 'a', block: 2, data: new Uint8Array([3]), offset: 2 })).toMatchObject({ ok: true })
    expect(reads).toEqual([2])
    expect(a.handle({ id: 6, op: 'read', block: 2 })).toEqual({ id: 6, ok: true, data: new Uint8Array([1, 2, 3]) })
  })

  it('a new arbiter over the same files keeps the generation, the live replica, the winner and the data', () => {
    const dir = tempDir()
    const s1 = open(dir)
    const a1 = new DiskArbiter(s1, { blockSize: 16 })
    a1.handle({ id: 1, op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })
    a1.handle({ id: 2, op: 'write', gen: 1, from: 'a', block: 4, data: new Uint8Array([42]) })
    expect(a1.handle({ id: 3, op: 'tas', gen: 1, from: 'b' })).toMatchObject({ ok: true, winner: 'b' })
    s1.close()
    const a2 = new DiskArbiter(open(dir), { blockSize: 16 })
    expect(a2.status()).toMatchObject({ gen: 1, live: 'b', backup: 'b', tasWinner: 'b', blocks: 1 })
    expect(a2.handle({ id: 4, op: 'tas', gen: 1, from: 'a' })).toMatchObject({ ok: false, error: 'tas-lost', winner: 'b' })
    expect(a2.handle({ id: 5, op: 'write', gen: 1, from: 'a', block: 4, data: new Uint8Array([0]) })).toMatchObject({ ok: false, error: 'fenced' })
    expect(a2.handle({ id: 6, op: 'read', block: 4 })).toEqual({ id: 6, ok: true, data: new Uint8Array([42]) })
  })
})
