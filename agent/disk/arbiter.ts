// The disk server's decisions: block reads and writes, the test-and-set per generation,
// and fencing. Pure logic over a BlockStore, no sockets and no clocks, so the agent's disk
// server and the simulator run exactly the same rules.
import type { DiskReq, DiskRes, DiskStatus, ReplicaId } from '../replica/types.js'

export interface BlockStore {
  read(block: number): Uint8Array
  write(block: number, data: Uint8Array): void
  /**
   * Optional: the block becomes its first `offset` bytes followed by `data`, writing only `data` (and the length).
   * The arbiter has checked that the block holds exactly `offset` bytes. Without it the arbiter reads, splices, writes.
   */
  writeAt?(block: number, offset: number, data: Uint8Array): void
  /** Optional: the block's length (what `read(block).length` would be), without reading its bytes. */
  length?(block: number): number
  flush(): void
  loadMeta(): string | null
  saveMeta(json: string): void
}

/** A store that can say how many blocks hold data (for status); optional. */
export interface CountingBlockStore extends BlockStore {
  blockCount(): number
}

function isCounting(store: BlockStore): store is CountingBlockStore {
  return typeof (store as Partial<CountingBlockStore>).blockCount === 'function'
}

export class MemoryBlockStore implements CountingBlockStore {
  private readonly blocks = new Map<number, Uint8Array>()
  private meta: string | null = null

  read(block: number): Uint8Array {
    const b = this.blocks.get(block)
    return b ? b.slice() : new Uint8Array(0)
  }

  write(block: number, data: Uint8Array): void {
    // copy: the caller may reuse its buffer (codec output, socket chunk)
    this.blocks.set(block, data.slice())
  }

  writeAt(block: number, offset: number, data: Uint8Array): void {
    this.blocks.set(block, spliceBlock(this.blocks.get(block) ?? new Uint8Array(0), offset, data))
  }

  length(block: number): number {
    return this.blocks.get(block)?.length ?? 0
  }

  flush(): void {}

  loadMeta(): string | null {
    return this.meta
  }

  saveMeta(json: string): void {
    this.meta = json
  }

  blockCount(): number {
    return this.blocks.size
  }
}

/** What survives a restart: who may write, in which generation, who won the test-and-set. */
interface Meta {
  gen: number
  /** the primary registered when the generation began */
  primary: ReplicaId | null
  backup: ReplicaId | null
  /** the replica whose writes are accepted: the primary until a test-and-set is won, then the winner */
  live: ReplicaId | null
  tasWinner: ReplicaId | null
}

const EMPTY_META: Meta = { gen: 0, primary: null, backup: null, live: null, tasWinner: null }

export const DEFAULT_BLOCK_SIZE = 4096
export const DEFAULT_MAX_BLOCKS = 1 << 20

export interface DiskArbiterOptions {
  blockSize?: number
  /** block numbers run from 0 to maxBlocks - 1 */
  maxBlocks?: number
}

class BadRequest extends Error {}

/** A block after an offset write: its first `offset` bytes, then `data` (what a whole-block write of the same result holds). */
export function spliceBlock(cur: Uint8Array, offset: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(offset + data.length)
  out.set(cur.subarray(0, offset))
  out.set(data, offset)
  return out
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export class DiskArbiter {
  readonly blockSize: number
  readonly maxBlocks: number
  private meta: Meta
  private writes = 0
  private fenced = 0
  /**
   * Each block's last write id (gen, entry, index), so a retried write that arrives after a newer one to the same block
   * is acknowledged without being applied. Kept in memory: a disk-server restart breaks every connection (no message
   * from before it arrives after it), and a replica stops retrying a write once a newer write to its block is answered.
   */
  private readonly versions = new Map<number, [number, number, number]>()
  /**
   * Which replica wrote each block's last version. Write ids order one replica's history; another replica's ids are of
   * another history where the Output Rule was off (the drill experiment: the live replica never had the entries the
   * primary wrote), so they are not compared with them.
   */
  private readonly writers = new Map<number, string>()

  constructor(
    private readonly store: BlockStore,
    opts: DiskArbiterOptions = {}
  ) {
    this.blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE
    this.maxBlocks = opts.maxBlocks ?? DEFAULT_MAX_BLOCKS
    if (!Number.isInteger(this.blockSize) || this.blockSize < 1) throw new Error(`DiskArbiter: blockSize must be a positive integer, got ${this.blockSize}`)
    if (!Number.isInteger(this.maxBlocks) || this.maxBlocks < 1) throw new Error(`DiskArbiter: maxBlocks must be a positive integer, got ${this.maxBlocks}`)
    this.meta = parseMeta(store.loadMeta())
  }

  handle(req: DiskReq): DiskRes {
    const id = typeof (req as { id?: unknown } | null)?.id === 'number' ? (req as { id: number }).id : 0
    try {
      return this.dispatch(req, id)
    } catch (err) {
      if (err instanceof BadRequest) return { id, ok: false, error: 'bad-request', message: err.message }
      return { id, ok: false, error: 'io', message: `disk store failed: ${(err as Error)?.message ?? String(err)}` }
    }
  }

  status(): DiskStatus {
    return {
      gen: this.meta.gen,
      live: this.meta.live,
      backup: this.meta.backup,
      tasWinner: this.meta.tasWinner,
      blocks: isCounting(this.store) ? this.store.blockCount() : 0,
      writes: this.writes,
      fenced: this.fenced
    }
  }

  private dispatch(req: DiskReq, id: number): DiskRes {
    if (typeof req !== 'object' || req === null) throw new BadRequest('disk request must be an object')
    if (!Number.isInteger(req.id)) throw new BadRequest('disk request: id must be an integer')
    switch (req.op) {
      case 'read': {
        const block = this.blockNumber(req.block)
        return { id, ok: true, data: this.store.read(block) }
      }
      case 'write':
        return this.write(req, id)
      case 'flush':
        this.store.flush()
        return { id, ok: true }
      case 'tas':
        return this.testAndSet(req, id)
      case 'generation':
        return this.generation(req, id)
      case 'status':
        return { id, ok: true, status: this.status() }
      default:
        throw new BadRequest(`disk request: unknown op ${JSON.stringify((req as { op?: unknown }).op)}`)
    }
  }

  private write(req: Extract<DiskReq, { op: 'write' }>, id: number): DiskRes {
    const gen = generationNumber(req.gen, 'write.gen')
    const from = replicaId(req.from, 'write.from')
    const block = this.blockNumber(req.block)
    if (!(req.data instanceof Uint8Array)) throw new BadRequest('write.data must be bytes')
    const offset = req.offset === undefined ? null : this.offsetIn(req.offset, req.data.length, block)
    if (req.data.length > this.blockSize) throw new BadRequest(`write.data is ${req.data.length} bytes, larger than the block size ${this.blockSize}`)
    const m = this.meta
    if (gen !== m.gen || from !== m.live) {
      this.fenced++
      const why = gen !== m.gen ? `generation ${gen} is not the current generation ${m.gen}` : `${from} is not the live replica (${m.live ?? 'none'})`
      return { id, ok: false, error: 'fenced', message: `write to block ${block} refused: ${why}`, winner: m.live ?? undefined }
    }
    const version = writeId(gen, req.entry, req.index)
    const last = version === null || this.writers.get(block) !== from ? undefined : this.versions.get(block)
    // a duplicate, or a late retry of a write a newer one has replaced: done already
    if (version !== null && last !== undefined && compareIds(version, last) <= 0) return { id, ok: true }
    if (offset !== null) {
      // An offset write appends: it must start where the block ends. Writes to one block can arrive out of order (a
      // retry on a fresh connection overtakes a lost original), and a later append landing first would leave a hole
      // that the earlier one, once superseded, would never fill; so it is refused and retried until its turn comes.
      // Only the block's length decides an append that lands where the block ends, the common case; its bytes are read
      // when it runs past the offset (a retry, or a history this write does not build on) or the store cannot append.
      const known = this.store.length?.(block)
      const cur = known === undefined || known > offset || !this.store.writeAt ? this.store.read(block) : null
      const curLength = cur === null ? known! : cur.length
      // The block runs past the offset with bytes this write does not build on, and the write is newer than the block's
      // last one (or of another replica's history): the replica live before wrote what this one never learned of. Under the Output Rule that cannot happen
      // (a write leaves only once the backup has its entry, and a fenced replica's writes are refused above); with the
      // rule off (the drill experiment) it does, and the newer write's view wins, as a whole-block write of it would:
      // the old bytes are cut off. (A stale write a restarted server applied, not knowing its id, is cut off the same way.)
      const diverged =
        cur !== null &&
        cur.length > offset &&
        version !== null &&
        this.versions.has(block) &&
        !sameBytes(cur.subarray(offset, Math.min(cur.length, offset + req.data.length)), req.data.subarray(0, Math.min(req.data.length, cur.length - offset)))
      if (curLength !== offset && !diverged) {
        // its bytes are there already: a retry of a write applied before this server's restart forgot its id
        if (cur !== null && cur.length >= offset + req.data.length && sameBytes(cur.subarray(offset, offset + req.data.length), req.data))
          return { id, ok: true }
        return {
          id,
          ok: false,
          error: 'out-of-order',
          message: `write of ${req.data.length} bytes at offset ${offset} of block ${block} refused: the block holds ${curLength} bytes, and an offset write must start where the block ends (an earlier write to it has not arrived yet: retry)`
        }
      }
      if (this.store.writeAt) this.store.writeAt(block, offset, req.data)
      else this.store.write(block, spliceBlock(cur!, offset, req.data))
      // after the store took it: a write the store failed is not done, and its retry must be applied
      if (version !== null) this.setVersion(block, version, from)
      this.writes++
      return { id, ok: true }
    }
    this.store.write(block, req.data)
    if (version !== null) this.setVersion(block, version, from)
    this.writes++
    return { id, ok: true }
  }

  private setVersion(block: number, version: [number, number, number], from: string): void {
    this.versions.set(block, version)
    this.writers.set(block, from)
  }

  private offsetIn(v: unknown, bytes: number, block: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > this.blockSize)
      throw new BadRequest(`write.offset must be an integer from 0 to the block size ${this.blockSize}, got ${describe(v)}`)
    if (v + bytes > this.blockSize)
      throw new BadRequest(`write of ${bytes} bytes at offset ${v} of block ${block} would end beyond the block size ${this.blockSize}`)
    return v
  }

  private testAndSet(req: Extract<DiskReq, { op: 'tas' }>, id: number): DiskRes {
    const gen = generationNumber(req.gen, 'tas.gen')
    const from = replicaId(req.from, 'tas.from')
    const m = this.meta
    if (gen < m.gen)
      return { id, ok: false, error: 'stale-generation', message: `test-and-set for generation ${gen} refused: the current generation is ${m.gen}` }
    if (gen === 1 && m.gen === 0) {
      // The primary died before its registration of generation 1 landed: it released nothing (outputs wait for that
      // registration), so the backup may take the generation. A late registration is then refused as stale.
      this.commit({ gen: 1, primary: null, backup: null, tasWinner: from, live: from })
      return { id, ok: true, winner: from }
    }
    if (gen > m.gen) throw new BadRequest(`test-and-set for generation ${gen}: that generation has not begun (current ${m.gen})`)
    if (m.tasWinner === null) {
      this.commit({ ...m, tasWinner: from, live: from })
      return { id, ok: true, winner: from }
    }
    // the winner asking again (its answer was lost) must hear the same verdict
    if (m.tasWinner === from) return { id, ok: true, winner: from }
    return { id, ok: false, error: 'tas-lost', message: `test-and-set for generation ${gen} already won by ${m.tasWinner}`, winner: m.tasWinner }
  }

  private generation(req: Extract<DiskReq, { op: 'generation' }>, id: number): DiskRes {
    const gen = generationNumber(req.gen, 'generation.gen')
    const from = replicaId(req.from, 'generation.from')
    const primary = replicaId(req.primary, 'generation.primary')
    if (req.backup !== null && typeof req.backup !== 'string') throw new BadRequest('generation.backup must be a replica id or null')
    const backup = req.backup === null ? null : replicaId(req.backup, 'generation.backup')
    if (gen < 1) throw new BadRequest(`generation.gen must be at least 1, got ${gen}`)
    const m = this.meta
    const fresh: Meta = { gen, primary, backup, live: primary, tasWinner: null }
    if (m.gen === 0) {
      this.commit(fresh)
      return { id, ok: true }
    }
    if (gen === m.gen && m.tasWinner === null && m.primary === primary && m.backup === backup) {
      // a retry of the request that began this generation (its answer was lost)
      return { id, ok: true }
    }
    // a retry of a recovery whose answer was lost
    if (req.recover === true && gen === m.gen && m.tasWinner === from && m.primary === from) return { id, ok: true, winner: from }
    if (gen <= m.gen) return { id, ok: false, error: 'stale-generation', message: `generation ${gen} refused: the current generation is ${m.gen}` }
    if (gen !== m.gen + 1) throw new BadRequest(`generation ${gen} refused: the next generation is ${m.gen + 1}`)
    // recovery after a double failure: whoever was live is down, so the booting replica takes over
    if (req.recover === true) {
      this.commit({ ...fresh, tasWinner: from })
      return { id, ok: true, winner: from }
    }
    if (from !== m.live) {
      this.fenced++
      return {
        id,
        ok: false,
        error: 'fenced',
        message: `generation ${gen} refused: ${from} is not the live replica (${m.live ?? 'none'})`,
        winner: m.live ?? undefined
      }
    }
    this.commit(fresh)
    return { id, ok: true }
  }

  /** Persist first, then adopt: an answer is only given for a state that survives a restart. */
  private commit(next: Meta): void {
    this.store.saveMeta(JSON.stringify(next))
    this.meta = next
  }

  private blockNumber(v: unknown): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= this.maxBlocks) {
      throw new BadRequest(`block must be an integer from 0 to ${this.maxBlocks - 1}, got ${describe(v)}`)
    }
    return v
  }
}

function writeId(gen: number, entry: unknown, index: unknown): [number, number, number] | null {
  if (entry === undefined && index === undefined) return null
  if (typeof entry !== 'number' || !Number.isSafeInteger(entry) || entry < 0)
    throw new BadRequest(`write.entry must be a non-negative integer, got ${describe(entry)}`)
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0)
    throw new BadRequest(`write.index must be a non-negative integer, got ${describe(index)}`)
  return [gen, entry, index]
}

function compareIds(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2]
}

function generationNumber(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new BadRequest(`${field} must be a non-negative integer, got ${describe(v)}`)
  return v
}

function replicaId(v: unknown, field: string): ReplicaId {
  if (typeof v !== 'string' || v.length === 0 || v.length > 128) throw new BadRequest(`${field} must be a replica id (1 to 128 characters), got ${describe(v)}`)
  return v
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)
  if (v instanceof Uint8Array) return `${v.length} bytes`
  return String(v)
}

function parseMeta(json: string | null): Meta {
  if (json === null) return { ...EMPTY_META }
  let raw: unknown
  try {
    raw = JSON.parse(json)
  } catch (err) {
    throw new Error(`disk metadata is not valid JSON (${(err as Error).message}); refusing to start with an unknown generation`, { cause: err })
  }
  const r = raw as Partial<Meta>
  const idOrNull = (v: unknown) => v === null || (typeof v === 'string' && v.length > 0)
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.gen !== 'number' ||
    !Number.isSafeInteger(r.gen) ||
    r.gen < 0 ||
    !idOrNull(r.primary) ||
    !idOrNull(r.backup) ||
    !idOrNull(r.live) ||
    !idOrNull(r.tasWinner)
  ) {
    throw new Error(`disk metadata is malformed: ${json.slice(0, 200)}; refusing to start with an unknown generation`)
  }
  return { gen: r.gen, primary: r.primary ?? null, backup: r.backup ?? null, live: r.live ?? null, tasWinner: r.tasWinner ?? null }
}
