// Guest memory: string pages owned by the VMM, so that hashing, snapshots and state
// transfer never depend on the guest's cooperation.
//
// The state hash is a sum (mod 2^32, two independent lanes) of a per-page hash: adding
// and removing a page is O(page size), reading the hash is O(1), and the result does not
// depend on the order pages were written in (a backup that received a snapshot has the
// same pages in a different Map order). It is settled lazily: a page's old hash leaves the sum
// at its first write after a hash() and its new one joins at the next hash(), so a page written
// many times in between (a log buffer a pipelined input appends to 2,000 times, a large value
// arriving in parts) is hashed once, not once per write.
//
// A deleted page stays in the Map as a tombstone (the value undefined) until tombstones outnumber
// the pages, when the Map is rebuilt without them. V8's Map leaves a deleted entry in its bucket's
// chain until the table is rehashed, and a key written and deleted again and again (the kv guest's
// pending-log page, twice per write) piles its dead entries into one chain, which every lookup of
// that key walks: with a million keys in the Map, 130,000 dead entries and 670 µs of CPU per GET.
// A tombstone is overwritten in place when the key comes back.
import type { PageDiff, PageWrite } from './types.js'

const HEX = (n: number): string => (n >>> 0).toString(16).padStart(8, '0')

/** Two 32-bit lanes over key and value; the key length is mixed in so that ("ab","c") and ("a","bc") differ. */
function pageHash(key: string, value: string): [number, number] {
  let a = 0x811c9dc5
  let b = 0x9747b28c ^ key.length
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
    b ^= b >>> 15
  }
  a = Math.imul(a ^ (key.length + 0x9e37), 0x01000193)
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
    b ^= b >>> 15
  }
  b = Math.imul(b ^ value.length, 0x5bd1e995)
  b ^= b >>> 13
  return [a >>> 0, b >>> 0]
}

/** Pages at least this long keep their hash, so overwriting them hashes only the new value. */
const CACHE_HASH_FROM = 64
/** the most pages left stale before they are settled without a hash() */
const MAX_STALE_PAGES = 65_536
/** tombstones (deleted pages) the Map keeps before it may be rebuilt without them, when they also outnumber the pages */
const MIN_TOMBSTONES_TO_COMPACT = 4096

/** Pages shorter than this always travel whole: a diff's two lengths would cost about as much as they save. */
const DIFF_FROM = 16
/** What a diff costs beyond its middle bytes, about (its two lengths, their tags): a diff must save more than this. */
const DIFF_COST = 6

const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff
const isLowSurrogate = (c: number): boolean => c >= 0xdc00 && c <= 0xdfff

/**
 * `cur` as the common prefix and suffix it shares with `old` and the middle between them. Neither cut falls inside a
 * surrogate pair: the middle travels as UTF-8, which cannot carry half a pair (it would arrive as U+FFFD).
 */
export function pageDiff(key: string, old: string, cur: string): PageDiff {
  const max = Math.min(old.length, cur.length)
  let p = 0
  while (p < max && old.charCodeAt(p) === cur.charCodeAt(p)) p++
  if (p > 0 && p < cur.length && isHighSurrogate(cur.charCodeAt(p - 1))) p--
  let s = 0
  while (s < max - p && old.charCodeAt(old.length - 1 - s) === cur.charCodeAt(cur.length - 1 - s)) s++
  if (s > 0 && s < cur.length - p && isLowSurrogate(cur.charCodeAt(cur.length - s))) s--
  return [key, p, s, cur.slice(p, cur.length - s)]
}

/** `old` with a diff applied, or null if the diff does not fit it (the two sides' pages differ). */
export function applyPageDiff(old: string, prefix: number, suffix: number, middle: string): string | null {
  if (!Number.isSafeInteger(prefix) || !Number.isSafeInteger(suffix) || prefix < 0 || suffix < 0 || prefix + suffix > old.length) return null
  return old.slice(0, prefix) + middle + old.slice(old.length - suffix)
}

/** A change made during the current input, for rollback (a guest fault) and for state transfer (dirty pages). */
type Undo = [key: string, old: string | undefined]

export class Memory {
  /** the pages; a deleted one is a tombstone, undefined, until compact() (see the top of the file) */
  private pages = new Map<string, string | undefined>()
  /** pages that hold a value: pages.size less the tombstones */
  private live = 0
  /**
   * The hash of each big page as it joined the lanes: a cache (unhash computes a missing one). Entries are overwritten,
   * never deleted one by one, for the reason pages keeps tombstones; compact() drops those of pages gone or small.
   */
  private bigHashes = new Map<string, [number, number]>()
  private lane1 = 0
  private lane2 = 0
  /** pages written since the last hash(): their old hash has left the lanes, their current one has not joined yet */
  private stale = new Set<string>()
  private bytes = 0
  /** every write since beginInput, oldest first */
  private undo: Undo[] = []
  /** value of each touched page before the current input (undefined = absent) */
  private before = new Map<string, string | undefined>()
  /** the keys under each indexed prefix: keys() of one of them costs what it finds, not a scan of every page */
  private readonly index = new Map<string, Set<string>>()

  /**
   * `indexed`: prefixes whose keys are listed often and are few (the VMM's pending disk barriers), kept in an index so
   * that listing them does not scan every page (a million keys of a guest).
   */
  constructor(
    private readonly maxBytes: number,
    indexed: readonly string[] = []
  ) {
    for (const p of indexed) this.index.set(p, new Set())
  }

  get(key: string): string | undefined {
    return this.pages.get(key)
  }

  has(key: string): boolean {
    return this.pages.get(key) !== undefined
  }

  set(key: string, value: string): void {
    if (typeof key !== 'string' || typeof value !== 'string') {
      throw new TypeError(`memory page ${JSON.stringify(String(key))}: key and value must be strings, got ${typeof key} and ${typeof value}`)
    }
    const old = this.pages.get(key)
    if (old === value) return
    const grow = value.length - (old === undefined ? -key.length : old.length)
    if (grow > 0 && this.bytes + grow > this.maxBytes) {
      throw new RangeError(`out of guest memory: ${this.bytes + grow} bytes would exceed the limit of ${this.maxBytes}`)
    }
    this.track(key, old)
    this.touch(key, old)
    this.pages.set(key, value)
    this.bytes += grow
    if (old === undefined) {
      this.live++
      if (this.index.size > 0) this.indexed(key, true)
    }
  }

  delete(key: string): void {
    const old = this.pages.get(key)
    if (old === undefined) return
    this.track(key, old)
    this.touch(key, old)
    this.remove(key)
    this.bytes -= key.length + old.length
    if (this.index.size > 0) this.indexed(key, false)
  }

  /** How many pages hold a value (tombstones not counted). */
  pageCount(): number {
    return this.live
  }

  /** Tombstones kept now (for tests: see the top of the file). */
  tombstones(): number {
    return this.pages.size - this.live
  }

  /** A page that held a value becomes a tombstone; the Map is rebuilt once tombstones outnumber the pages. */
  private remove(key: string): void {
    this.pages.set(key, undefined)
    this.live--
    const dead = this.pages.size - this.live
    if (dead >= MIN_TOMBSTONES_TO_COMPACT && dead > this.live) this.compact()
  }

  /** The pages again without tombstones, in a new Map: nothing depends on the Map's order (see keys()). */
  private compact(): void {
    const next = new Map<string, string | undefined>()
    for (const [k, v] of this.pages) if (v !== undefined) next.set(k, v)
    this.pages = next
    const hashes = new Map<string, [number, number]>()
    for (const [k, h] of this.bigHashes) if ((next.get(k)?.length ?? 0) >= CACHE_HASH_FROM) hashes.set(k, h)
    this.bigHashes = hashes
  }

  /** Keys under `prefix`, sorted: Map order depends on history (a restored snapshot differs), sorted order does not. */
  keys(prefix: string): string[] {
    const known = this.index.get(prefix)
    if (known !== undefined) return [...known].sort()
    const out: string[] = []
    for (const [k, v] of this.pages) if (v !== undefined && k.startsWith(prefix)) out.push(k)
    return out.sort()
  }

  hash(): string {
    this.settle()
    return HEX(this.lane1) + HEX(this.lane2)
  }

  sizeBytes(): number {
    return this.bytes
  }

  all(): PageWrite[] {
    const out: PageWrite[] = []
    for (const [k, v] of this.pages) if (v !== undefined) out.push([k, v])
    return out.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
  }

  clear(): void {
    this.pages = new Map()
    this.live = 0
    this.bigHashes = new Map()
    this.lane1 = this.lane2 = this.bytes = 0
    this.stale.clear()
    this.undo = []
    this.before = new Map()
    for (const set of this.index.values()) set.clear()
  }

  /**
   * Pages of a snapshot being restored, added to what is there (clear() first for a whole restore). None of a
   * guest write's bookkeeping: no undo or dirty record (a restore is not an input and is never rolled back), and
   * each page's hash joins the sum at once rather than through the stale set. A restore of a million keys through
   * set() kept a million undo records and a million-entry dirty map, most of what a joining replica spent while
   * it was silent. Throws, loading nothing, if a page is not a string pair; throws part-way if the pages exceed the
   * bound (the restore has failed then, and the replica is not used).
   */
  load(pages: readonly PageWrite[]): void {
    for (const p of pages) {
      if (!Array.isArray(p) || typeof p[0] !== 'string' || (typeof p[1] !== 'string' && p[1] !== null)) {
        throw new TypeError(`memory load: each page must be [key: string, value: string | null], got ${JSON.stringify(p)?.slice(0, 80)}`)
      }
    }
    for (const [key, value] of pages) {
      const old = this.pages.get(key)
      const grow = (value === null ? 0 : key.length + value.length) - (old === undefined ? 0 : key.length + old.length)
      if (grow > 0 && this.bytes + grow > this.maxBytes) {
        throw new RangeError(`out of guest memory: loading the snapshot needs more than ${this.bytes + grow} bytes, over the limit of ${this.maxBytes}`)
      }
      if (old !== undefined) {
        // a stale page's old hash has left the sum already; its current one has not joined
        if (this.stale.has(key)) this.stale.delete(key)
        else this.unhash(key, old)
      }
      if (value === null) {
        if (old !== undefined) this.remove(key)
      } else {
        this.pages.set(key, value)
        if (old === undefined) this.live++
        this.rehash(key, value)
      }
      this.bytes += grow
      // the indexed prefixes (the VMM's pending disk barriers) must list a restored page like a written one
      if ((old === undefined) !== (value === null) && this.index.size > 0) this.indexed(key, value !== null)
    }
  }

  // --- per-input bookkeeping -------------------------------------------------------

  beginInput(): void {
    this.undo = []
    this.before = new Map()
  }

  /** A mark to roll back to (see rollback). */
  mark(): number {
    return this.undo.length
  }

  /** Undo every write after `mark`, newest first. */
  rollback(mark: number): void {
    while (this.undo.length > mark) {
      const [key, old] = this.undo.pop() as Undo
      // stale again (a hash() may have come since the write): the restored value's hash joins at the next hash()
      const cur = this.pages.get(key)
      this.touch(key, cur)
      if (cur !== undefined) this.bytes -= key.length + cur.length
      if (old === undefined) {
        if (cur !== undefined) this.remove(key)
      } else {
        this.pages.set(key, old)
        if (cur === undefined) this.live++
        this.bytes += key.length + old.length
      }
      if ((cur === undefined) !== (old === undefined) && this.index.size > 0) this.indexed(key, old !== undefined)
    }
  }

  /** Pages whose value differs from before the current input: what a state-transfer entry carries. */
  dirty(): PageWrite[] {
    const out: PageWrite[] = []
    for (const [key, old] of this.before) {
      const cur = this.pages.get(key)
      if (cur !== old) out.push([key, cur === undefined ? null : cur])
    }
    return out
  }

  /**
   * The same pages as dirty(), sorted by key: each one whole (or deleted), or as a diff against its value before the
   * input where that is smaller (a changed field in a big hash or list, an append to a long value). With `since` (a
   * mark()), the changes after that point of the input, against the values the pages had there: what the VMM did
   * before it (released the outputs a completed disk barrier held) the backup does itself.
   */
  changes(since = 0): { pages: PageWrite[]; diffs: PageDiff[] } {
    const pages: PageWrite[] = []
    const diffs: PageDiff[] = []
    let before = this.before
    if (since > 0) {
      before = new Map()
      for (let i = since; i < this.undo.length; i++) {
        const [key, old] = this.undo[i]
        if (!before.has(key)) before.set(key, old)
      }
    }
    const keys = [...before.keys()].sort()
    for (const key of keys) {
      const old = before.get(key)
      const cur = this.pages.get(key)
      if (cur === old) continue
      if (cur === undefined || old === undefined || cur.length < DIFF_FROM) {
        pages.push([key, cur === undefined ? null : cur])
        continue
      }
      const d = pageDiff(key, old, cur)
      if (d[3].length + DIFF_COST < cur.length) diffs.push(d)
      else pages.push([key, cur])
    }
    return { pages, diffs }
  }

  private indexed(key: string, present: boolean): void {
    for (const [prefix, set] of this.index) {
      if (!key.startsWith(prefix)) continue
      if (present) set.add(key)
      else set.delete(key)
    }
  }

  private track(key: string, old: string | undefined): void {
    this.undo.push([key, old])
    if (!this.before.has(key)) this.before.set(key, old)
  }

  /** The first write to `key` since the last hash() takes its old value's hash out of the lanes. */
  private touch(key: string, old: string | undefined): void {
    if (this.stale.has(key)) return
    // a replica that hashes rarely (live alone) must not collect every key it writes
    if (this.stale.size >= MAX_STALE_PAGES) this.settle()
    this.stale.add(key)
    if (old !== undefined) this.unhash(key, old)
  }

  /** The stale pages' current hashes join the lanes. */
  private settle(): void {
    for (const key of this.stale) {
      const value = this.pages.get(key)
      if (value !== undefined) this.rehash(key, value)
    }
    this.stale.clear()
  }

  private rehash(key: string, value: string): void {
    const h = pageHash(key, value)
    if (value.length >= CACHE_HASH_FROM) this.bigHashes.set(key, h)
    this.lane1 = (this.lane1 + h[0]) >>> 0
    this.lane2 = (this.lane2 + h[1]) >>> 0
  }

  private unhash(key: string, value: string): void {
    // a big page's cached hash is its value's: rehash() overwrote it when that value joined the lanes
    const h = value.length >= CACHE_HASH_FROM ? this.bigHashes.get(key) : undefined
    const [a, b] = h ?? pageHash(key, value)
    this.lane1 = (this.lane1 - a) >>> 0
    this.lane2 = (this.lane2 - b) >>> 0
  }
}
