// Bounded messages on the logging channel. The link refuses a frame above its limit (16 MiB),
// and a guest decides how large its entries and its state are: a 9 MiB SET in state-transfer
// mode is a 9 MiB page in one entry, a 200 MiB guest is a 200 MiB snapshot. So an entry above
// the core's message bound travels as slices of its encoding, and the snapshot as parts cut
// between (and, for a large value, inside) pages. The snapshot is cut as it is sent, from the
// pages the VMM hands out, so a large guest is never copied whole into a message buffer.
import { decode, encode } from '../net/codec.js'
import type { PageWrite, Snapshot } from '../vmm/types.js'
import type { LogEntry, PeerMsg, ReplicaId } from './types.js'

/** The slices of one entry's encoding, each at most `maxBytes` long. */
export function entryParts(entry: LogEntry, maxBytes: number, extra: { releasedThrough: number; nextConn?: number }): PeerMsg[] {
  const bytes = encode(entry)
  const out: PeerMsg[] = []
  for (let at = 0; at < bytes.length; at += maxBytes) {
    // subarray: the slices share the one encoding; the edge copies each into its own frame
    out.push({
      t: 'entry-part',
      gen: entry.gen,
      n: entry.n,
      at,
      total: bytes.length,
      bytes: bytes.subarray(at, Math.min(bytes.length, at + maxBytes)),
      ...extra
    })
  }
  return out
}

/**
 * Collects the slices of one entry. TCP keeps them in order on a host, but a reconnect or the
 * simulator's network may not: a slice ahead of a gap is kept (the whole entry is at most
 * `total` bytes, so this is bounded) and used once the gap fills, rather than thrown away
 * for the primary to send again after its resend timer.
 */
export class EntryAssembly {
  private chunks: Uint8Array[] = []
  /** slices that arrived ahead of the contiguous prefix, by offset */
  private ahead = new Map<number, Uint8Array>()
  private held = 0

  constructor(
    readonly n: number,
    readonly total: number
  ) {}

  /** the contiguous prefix held: what the backup reports as progress */
  get bytesHeld(): number {
    return this.held
  }

  /** False when the slice brings nothing new (a resend of what is held, or not of this encoding). */
  add(at: number, total: number, bytes: Uint8Array): boolean {
    if (total !== this.total || !(bytes instanceof Uint8Array) || at < this.held || at + bytes.length > this.total) return false
    if (at > this.held) {
      if (this.ahead.has(at)) return false
      this.ahead.set(at, bytes)
      return true
    }
    this.chunks.push(bytes)
    this.held += bytes.length
    for (let next = this.ahead.get(this.held); next !== undefined; next = this.ahead.get(this.held)) {
      this.ahead.delete(this.held)
      this.chunks.push(next)
      this.held += next.length
    }
    return true
  }

  get complete(): boolean {
    return this.held === this.total
  }

  /** The entry, or a reason it is not one. */
  entry(): LogEntry | string {
    const all = new Uint8Array(this.total)
    let at = 0
    for (const c of this.chunks) {
      all.set(c, at)
      at += c.length
    }
    this.chunks = []
    let v: unknown
    try {
      v = decode(all)
    } catch (err) {
      return `entry ${this.n} does not decode: ${(err as Error).message}`
    }
    const e = v as LogEntry
    if (typeof e !== 'object' || e === null || e.n !== this.n || typeof e.gen !== 'number' || typeof e.body !== 'object' || e.body === null)
      return `entry ${this.n}: assembled value is not that entry`
    return e
  }
}

const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff

/** Cuts a snapshot into parts of at most about `maxBytes` (approxBytes), one part at a time. */
export class SnapshotCutter {
  private page = 0
  /** offset into the value of `page` where the next part starts */
  private offset = 0
  private produced = 0
  private finished = false

  constructor(
    private readonly snapshot: Snapshot,
    private readonly maxBytes: number,
    private readonly head: { gen: number; from: ReplicaId; last: number; nextConn?: number }
  ) {}

  get done(): boolean {
    return this.finished
  }

  /** The next part, or null after the last. */
  next(): Extract<PeerMsg, { t: 'snapshot' }> | null {
    if (this.finished) return null
    const pages: PageWrite[] = []
    const all = this.snapshot.pages
    const append = this.offset > 0
    let room = this.maxBytes
    while (this.page < all.length && room > 0) {
      const [key, value] = all[this.page]
      const cost = key.length + 8
      if (value === null) {
        if (pages.length > 0 && cost > room) break
        pages.push([key, null])
        room -= cost
        this.page++
        continue
      }
      const left = value.length - this.offset
      let take = Math.min(left, Math.max(0, room - cost))
      // a sliver of a large value is not worth its key: it starts the next part
      if (take < left && take < 4096 && pages.length > 0) break
      let end = this.offset + take
      // never split a surrogate pair: each half alone would be replaced in UTF-8
      if (end < value.length && end > this.offset && isHighSurrogate(value.charCodeAt(end - 1))) end--
      if (end === this.offset && left > 0) end = Math.min(value.length, this.offset + 2)
      take = end - this.offset
      pages.push([key, this.offset === 0 && end === value.length ? value : value.slice(this.offset, end)])
      room -= cost + take
      if (end === value.length) {
        this.page++
        this.offset = 0
      } else {
        this.offset = end
        break
      }
    }
    this.finished = this.page >= all.length
    const part = this.produced++
    return { t: 'snapshot', ...this.head, part, done: this.finished, guest: this.snapshot.guest, hash: this.snapshot.hash, pages, append }
  }
}

type SnapshotPart = Extract<PeerMsg, { t: 'snapshot' }>

/**
 * The joining side: puts the parts back together, in order. A part that overtook the one
 * before it (a reconnect, the simulator's network) is kept, up to `maxAhead` parts ahead
 * (the primary has no more in flight), and used once the gap fills: dropping it would cost
 * a resend round per overtaken part, and a large snapshot would crawl (a guest of many
 * values above the message bound took over a second on a lossy link).
 *
 * It never writes into a part it was handed: a message is the sender's too wherever no wire
 * copies it (the simulator, a loopback lab), and a part the primary resends must still be
 * the part it cut. Appending to a page held by reference grew part 1 of seed 1043 (kv) to
 * 3273 chars, above the 2000-byte bound it was cut to, when the primary resent it.
 */
export class SnapshotAssembly {
  private readonly pages: PageWrite[] = []
  private readonly ahead = new Map<number, SnapshotPart>()
  /** parts 0..held-1 are here */
  held = 0
  /** the last part, once every part is here */
  last: SnapshotPart | null = null

  /**
   * With a `sink`, pages go to it as soon as they are whole, in order (a page may continue into the next part, so the
   * last one waits for it), and snapshot() has none left: the joining replica loads each part as it comes.
   */
  constructor(
    private readonly maxAhead = 8,
    private readonly sink?: (pages: PageWrite[]) => void
  ) {}

  get complete(): boolean {
    return this.last !== null
  }

  /** False when the part brings nothing new: held already, too far ahead, or not the continuation of the part before. */
  add(msg: SnapshotPart): boolean {
    if (this.last !== null || !Number.isSafeInteger(msg.part) || msg.part < this.held || !Array.isArray(msg.pages)) return false
    if (msg.part > this.held) {
      if (msg.part - this.held > this.maxAhead || this.ahead.has(msg.part)) return false
      this.ahead.set(msg.part, msg)
      return true
    }
    if (!this.apply(msg)) return false
    for (let next = this.ahead.get(this.held); next !== undefined && this.last === null; next = this.ahead.get(this.held)) {
      this.ahead.delete(next.part)
      // not a continuation (another cut of the snapshot): dropped, the primary resends from the gap
      if (!this.apply(next)) break
    }
    return true
  }

  private apply(msg: SnapshotPart): boolean {
    let first = 0
    if (msg.append && msg.pages.length > 0 && this.pages.length > 0) {
      const last = this.pages[this.pages.length - 1]
      const more = msg.pages[0]
      if (last[0] !== more[0] || typeof last[1] !== 'string' || typeof more[1] !== 'string') return false
      // a page of our own replaces the last one: `last` may be the sender's array
      this.pages[this.pages.length - 1] = [last[0], last[1] + more[1]]
      first = 1
    }
    // a copy of each page: the next part appends to the last one, and a transport that hands objects over (rather
    // than codec bytes) would leave the tuple shared with the sender, who sends a part not yet acked again as it was
    for (let i = first; i < msg.pages.length; i++) this.pages.push([msg.pages[i][0], msg.pages[i][1]])
    this.held++
    if (msg.done) this.last = msg
    if (this.sink && this.pages.length > (msg.done ? 0 : 1)) {
      const whole = msg.done ? this.pages.splice(0) : this.pages.splice(0, this.pages.length - 1)
      this.sink(whole)
    }
    return true
  }

  snapshot(msg: SnapshotPart): Snapshot {
    return { guest: msg.guest, hash: msg.hash, pages: this.pages }
  }
}
