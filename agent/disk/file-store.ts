// A BlockStore on the local file system that survives the disk server's restart.
//
//   disk.img        fixed slots of (u32 length, blockSize bytes): a block keeps the exact
//                   length it was written with, so a never-written block reads as empty,
//                   as in MemoryBlockStore
//   disk.index      "FTBI", u32 block size, then u32 block numbers: every block ever written
//                   is in it (a block not in it reads as empty without a look at the image).
//                   A block's first write enters its whole group of INDEX_GROUP blocks, so
//                   the index grows, and needs an fsync of its own, once per group rather
//                   than once per block (the kv guest's log fills its blocks in order); which
//                   of a group's blocks hold data the slot lengths say, read once at open
//   disk.meta.json  the arbiter's metadata, replaced atomically (write, fsync, rename, fsync dir)
//
// Writes reach the page cache at once and the platter on flush() (fsync of image and index),
// like a disk with a write cache; the disk server flushes before it acknowledges a write
// (one fsync per batch, agent/disk/server.ts). An append's bytes and its slot's new length
// go in at the next flush, once per block per batch however many appends it took (a read
// or a whole-block write of the block sooner): until then the block reads, after a crash,
// as before the appends, none of which was acknowledged. Metadata is durable before saveMeta returns,
// because the arbiter answers a test-and-set only after it.
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { CountingBlockStore } from './arbiter.js'
import { writeFileAtomic } from './atomic-write.js'
import { DEFAULT_BLOCK_SIZE, spliceBlock } from './arbiter.js'

const INDEX_MAGIC = 0x46544249 // "FTBI"
const SLOT_HEADER = 4
/** blocks entered into the index together (see the layout above): 64 blocks of 4 KiB are 256 KiB of log */
export const INDEX_GROUP = 64

export class FileBlockStore implements CountingBlockStore {
  readonly blockSize: number
  private readonly imageFd: number
  private readonly indexFd: number
  /** blocks in the index: every block written, and the rest of their groups */
  private readonly indexed = new Set<number>()
  /**
   * The length of each block known to hold data (written, or found written at open). An append asks only for its
   * block's length (arbiter.ts): this answers without reading the block from the image.
   */
  private readonly lengths = new Map<number, number>()
  private readonly metaPath: string
  private closed = false
  /** the index grew since the last flush: only then does it need its own fsync */
  private indexDirty = false
  /** blocks appended to since the last flush: their slot's length is written then (see the layout above) */
  private readonly lengthDirty = new Set<number>()
  /**
   * Appends not yet in the image, per block: where they start and their bytes, contiguous (the arbiter admits an append
   * only at the block's length). They go in with one write per block at the flush, or before anything reads or replaces
   * the block: a batch of one-record appends (the kv guest's SETs, one input each) costs one write, not one each.
   */
  private readonly pendingAppends = new Map<number, { at: number; parts: Uint8Array[]; bytes: number }>()

  constructor(
    readonly dir: string,
    opts: { blockSize?: number } = {}
  ) {
    this.blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE
    if (!Number.isInteger(this.blockSize) || this.blockSize < 1) throw new Error(`FileBlockStore: blockSize must be a positive integer, got ${this.blockSize}`)
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    this.metaPath = join(dir, 'disk.meta.json')
    const indexPath = join(dir, 'disk.index')
    const fresh = !existsSync(indexPath)
    this.indexFd = openSync(indexPath, fresh ? 'w+' : 'r+', 0o600)
    try {
      if (fresh) {
        const h = Buffer.alloc(8)
        h.writeUInt32BE(INDEX_MAGIC, 0)
        h.writeUInt32BE(this.blockSize, 4)
        writeSync(this.indexFd, h, 0, 8, 0)
        fsyncSync(this.indexFd)
      } else {
        this.loadIndex(indexPath)
      }
      this.imageFd = openSync(join(dir, 'disk.img'), existsSync(join(dir, 'disk.img')) ? 'r+' : 'w+', 0o600)
      this.loadLengths()
    } catch (err) {
      closeSync(this.indexFd)
      throw err
    }
  }

  private loadIndex(path: string): void {
    const buf = readFileSync(path)
    if (buf.length < 8 || buf.readUInt32BE(0) !== INDEX_MAGIC)
      throw new Error(`${path} is not an FT Lab disk index; refusing to serve a disk image of unknown layout`)
    const size = buf.readUInt32BE(4)
    if (size !== this.blockSize) throw new Error(`${path} was created with block size ${size}, but block size ${this.blockSize} was asked for`)
    // a torn last entry (crash mid-append) is ignored: that block's first write was not flushed either
    for (let at = 8; at + 4 <= buf.length; at += 4) this.indexed.add(buf.readUInt32BE(at))
  }

  /** Which indexed blocks hold data, and how much: their slots' lengths (a block never written is a hole, length 0). */
  private loadLengths(): void {
    const head = Buffer.alloc(SLOT_HEADER)
    for (const block of this.indexed) {
      if (readSync(this.imageFd, head, 0, SLOT_HEADER, this.slot(block)) < SLOT_HEADER) continue
      const len = head.readUInt32BE(0)
      if (len > this.blockSize) throw new Error(`block ${block} in ${this.dir} is corrupt: length ${len} exceeds block size ${this.blockSize}`)
      if (len > 0) this.lengths.set(block, len)
    }
  }

  private slot(block: number): number {
    return block * (SLOT_HEADER + this.blockSize)
  }

  read(block: number): Uint8Array {
    this.check()
    this.writeAppends(block)
    const len = this.lengths.get(block)
    if (len === undefined) return new Uint8Array(0)
    const out = new Uint8Array(len)
    const got = readSync(this.imageFd, out, 0, len, this.slot(block) + SLOT_HEADER)
    if (got < len) throw new Error(`block ${block} in ${this.dir} is truncated: read ${got} of ${len} bytes`)
    return out
  }

  /** The block's length, without reading it (an append needs no more). */
  length(block: number): number {
    this.check()
    return this.lengths.get(block) ?? 0
  }

  write(block: number, data: Uint8Array): void {
    this.check()
    if (data.length > this.blockSize) throw new Error(`block ${block}: ${data.length} bytes exceed block size ${this.blockSize}`)
    const buf = Buffer.allocUnsafe(SLOT_HEADER + data.length)
    buf.writeUInt32BE(data.length, 0)
    buf.set(data, SLOT_HEADER)
    // the block's earlier appends are superseded by this write, whole: they never reach the image
    this.pendingAppends.delete(block)
    writeSync(this.imageFd, buf, 0, buf.length, this.slot(block))
    this.lengths.set(block, data.length)
    if (!this.indexed.has(block)) this.indexGroupOf(block)
  }

  /** Enter the block's whole group into the index (the layout above says why), in one write. */
  private indexGroupOf(block: number): void {
    const first = block - (block % INDEX_GROUP)
    const add: number[] = []
    for (let b = first; b < first + INDEX_GROUP; b++) if (!this.indexed.has(b)) add.push(b)
    const e = Buffer.allocUnsafe(4 * add.length)
    add.forEach((b, i) => e.writeUInt32BE(b, 4 * i))
    writeSync(this.indexFd, e, 0, e.length, fstatSync(this.indexFd).size)
    for (const b of add) this.indexed.add(b)
    this.indexDirty = true
  }

  /**
   * An append (the arbiter has checked that the block holds exactly `offset` bytes): the new bytes go in place at the
   * flush (or sooner, see pendingAppends), then the slot's length. A crash before the length is written leaves the old
   * one, so the block reads as before the append, which was not acknowledged.
   */
  writeAt(block: number, offset: number, data: Uint8Array): void {
    this.check()
    if (offset + data.length > this.blockSize) throw new Error(`block ${block}: ${data.length} bytes at offset ${offset} exceed block size ${this.blockSize}`)
    if (!this.lengths.has(block)) {
      // a block never written holds nothing: the append is its first write
      this.write(block, offset === 0 ? data : spliceBlock(new Uint8Array(0), offset, data))
      return
    }
    const p = this.pendingAppends.get(block)
    if (p !== undefined && p.at + p.bytes === offset) {
      p.parts.push(data)
      p.bytes += data.length
    } else {
      // not where the pending bytes end (the arbiter does not ask this, but a store must not lose a write to it)
      this.writeAppends(block)
      this.pendingAppends.set(block, { at: offset, parts: [data], bytes: data.length })
    }
    this.lengths.set(block, offset + data.length)
    this.lengthDirty.add(block)
  }

  /** The block's pending appends into the image, in one write (its slot length stays for writeLengths). */
  private writeAppends(block: number): void {
    const p = this.pendingAppends.get(block)
    if (p === undefined) return
    this.pendingAppends.delete(block)
    const bytes = p.parts.length === 1 ? p.parts[0] : Buffer.concat(p.parts, p.bytes)
    writeSync(this.imageFd, bytes, 0, p.bytes, this.slot(block) + SLOT_HEADER + p.at)
  }

  /** The appends' bytes, then the slot lengths they changed, each block's written once. */
  private writeLengths(): void {
    for (const block of [...this.pendingAppends.keys()]) this.writeAppends(block)
    if (this.lengthDirty.size === 0) return
    const head = Buffer.allocUnsafe(SLOT_HEADER)
    for (const block of this.lengthDirty) {
      head.writeUInt32BE(this.lengths.get(block) ?? 0, 0)
      writeSync(this.imageFd, head, 0, SLOT_HEADER, this.slot(block))
    }
    this.lengthDirty.clear()
  }

  /** One fsync per batch is the disk server's cost per write under load: the index is synced only when it grew. */
  flush(): void {
    this.check()
    this.writeLengths()
    fsyncSync(this.imageFd)
    if (this.indexDirty) {
      fsyncSync(this.indexFd)
      this.indexDirty = false
    }
  }

  loadMeta(): string | null {
    try {
      return readFileSync(this.metaPath, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
  }

  saveMeta(json: string): void {
    this.check()
    writeFileAtomic(this.metaPath, json)
  }

  /** Blocks that hold data (a block written empty reads as never written, and is not counted after a reopen). */
  blockCount(): number {
    return this.lengths.size
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    try {
      this.writeLengths()
      fsyncSync(this.imageFd)
      fsyncSync(this.indexFd)
    } finally {
      closeSync(this.imageFd)
      closeSync(this.indexFd)
    }
  }

  private check(): void {
    if (this.closed) throw new Error(`disk store ${this.dir} is closed`)
  }
}
