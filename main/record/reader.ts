// Reads a recording for playback: the header, the marked moments and the damage at open;
// then the state at any moment (nearest keyframe before it + replay of the records after)
// and the records between two moments. A closed recording is found by its trailer and
// index; one whose console died is indexed by a scan of its frames, and damage (a cut or
// corrupted tail, a bad frame in the middle) is reported, never fatal.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import type { DrillRun, FaultInfo, LabStatus, LoadStatus, TermInfo } from '../api/contract.js'
import {
  blockMeta,
  BLOCK_META,
  decodeBlock,
  decodeJson,
  FRAME_HEAD,
  frameCrc,
  FrameType,
  MAGIC,
  MAX_FRAME,
  SYNC,
  type BlockRef,
  type Keyframe,
  type KeyframeRef,
  type RecordEntry,
  type RecordedHistory,
  type RecordedMark,
  type RecordingHeader,
  type RecordingIndex
} from './format.js'
import { DerivedState } from './state.js'

export class RecordingError extends Error {
  constructor(
    readonly path: string,
    message: string
  ) {
    super(`${path}: ${message}`)
    this.name = 'RecordingError'
  }
}

/** Damage found in a recording: where, how many bytes and (when known) records were dropped. */
export interface RecordingProblem {
  kind: 'truncated' | 'corrupt'
  offset: number
  bytes: number
  /** records lost, when the records after the damage tell; null when not known (a cut tail) */
  records: number | null
  message: string
}

export interface PlaybackState {
  t: number
  /** records applied */
  n: number
  status: LabStatus | null
  load: LoadStatus | null
  faults: FaultInfo[]
  /** the records of the last `recentMs` up to t, for the diagram and the terminals (shared with the reader's cache: do not change them) */
  recent: (RecordEntry & { n: number })[]
  /** marks up to t */
  marks: RecordedMark[]
  /** the terminals' states at t */
  terms: TermInfo[]
  /** the tail of each host terminal's output at t, by id */
  termOut: Record<string, string>
  /** the drill or soak runs known at t (their newest state up to t) */
  drills: DrillRun[]
}

export interface OpenOptions {
  /** check every frame's checksum at open, even when the index is intact (import does) */
  verify?: boolean
}

/**
 * Decoded records kept per open recording: a seek decodes the blocks of its window (8 s, 4000
 * records in a busy lab), so this holds the windows of the last ten or so seeks and a scrub
 * back and forth decodes little again (about 20 MB at most).
 */
const BLOCK_CACHE_RECORDS = 40_000

interface Frame {
  type: number
  offset: number
  payload: Buffer
  end: number
}

export class Recording {
  readonly problems: RecordingProblem[] = []
  header!: RecordingHeader
  /** true when the recording was closed (its index was written); false when the console died or the tail is damaged */
  closed = false
  records = 0
  t0 = 0
  t1 = 0
  marks: RecordedMark[] = []
  size = 0
  private blocks: BlockRef[] = []
  private keyframes: KeyframeRef[] = []
  /** the newest record time up to each block (block times need not be monotonic) */
  private maxT1: number[] = []
  /** decoded blocks, least recently used first: a scrub or a replay decodes each block once */
  private readonly cache = new Map<number, (RecordEntry & { n: number })[] | null>()
  private cachedRecords = 0
  /** each keyframe's lab status, decoded once: the charts' history of every seek reads up to 60 of them */
  private readonly keyStatus = new Map<number, LabStatus | null>()
  private fd: number

  private constructor(
    readonly path: string,
    opts: OpenOptions
  ) {
    try {
      this.fd = openSync(path, 'r')
    } catch (err) {
      throw new RecordingError(path, `cannot open: ${(err as Error).message}`)
    }
    try {
      this.load(opts)
    } catch (err) {
      closeSync(this.fd)
      throw err
    }
  }

  static open(path: string, opts: OpenOptions = {}): Recording {
    return new Recording(path, opts)
  }

  get duration(): number {
    return this.t1 - this.t0
  }

  close(): void {
    try {
      closeSync(this.fd)
    } catch {
      // closed already
    }
  }

  // ----- opening ---------------------------------------------------------------------

  private load(opts: OpenOptions): void {
    this.size = fstatSync(this.fd).size
    const magic = this.read(0, MAGIC.length)
    if (magic.length < MAGIC.length || !magic.equals(MAGIC))
      throw new RecordingError(this.path, 'not an FT Lab recording (it does not start with the .ftrec signature)')
    const head = this.frameAt(MAGIC.length)
    if (!head.frame || head.frame.type !== FrameType.Header)
      throw new RecordingError(this.path, `its header frame at byte ${MAGIC.length} is ${head.why ?? 'not a header'}: nothing in it can be trusted`)
    try {
      this.header = decodeJson<RecordingHeader>(head.frame.payload, false)
    } catch (err) {
      throw new RecordingError(this.path, `its header does not decode: ${(err as Error).message}`)
    }
    if (this.header.format !== 'ftlab-recording' || this.header.version !== 1)
      throw new RecordingError(
        this.path,
        `format ${JSON.stringify(this.header.format)} version ${this.header.version} is not one this FT Lab reads (version 1)`
      )
    this.t0 = this.t1 = this.header.startedAt
    const index = opts.verify ? null : this.indexFromTrailer()
    if (index) {
      this.closed = true
      this.records = index.records
      this.t1 = index.t1
      this.blocks = index.blocks.map(([offset, n0, count, t0, t1]) => ({ offset, n0, count, t0, t1 }))
      this.keyframes = index.keyframes.map(([offset, n, t]) => ({ offset, n, t }))
      this.marks = index.marks
    } else {
      this.scan(head.frame.end)
    }
    let m = -Infinity
    this.maxT1 = this.blocks.map((b) => (m = Math.max(m, b.t1)))
  }

  private indexFromTrailer(): RecordingIndex | null {
    const trailerAt = this.size - FRAME_HEAD - 8
    if (trailerAt < MAGIC.length) return null
    const tr = this.frameAt(trailerAt)
    if (!tr.frame || tr.frame.type !== FrameType.Trailer || tr.frame.end !== this.size) return null
    const at = tr.frame.payload.readDoubleLE(0)
    const ix = this.frameAt(at)
    if (!ix.frame || ix.frame.type !== FrameType.Index || ix.frame.end !== trailerAt) return null
    try {
      return decodeJson<RecordingIndex>(ix.frame.payload, true)
    } catch {
      return null
    }
  }

  /** Indexes the file frame by frame, reporting what does not check out. */
  private scan(from: number): void {
    const buf = this.read(0, this.size)
    let pos = from
    let nextN = 0
    let lastCorrupt: RecordingProblem | null = null
    let afterKeyframe: BlockRef[] = []
    const marks: RecordedMark[] = []
    while (pos < buf.length) {
      const f = parseFrame(buf, pos)
      if (f.frame) {
        const fr = f.frame
        if (fr.type === FrameType.Block && fr.payload.length >= BLOCK_META) {
          const m = blockMeta(fr.payload)
          if (m.n0 > nextN && lastCorrupt) lastCorrupt.records = (lastCorrupt.records ?? 0) + (m.n0 - nextN)
          const b = { offset: fr.offset, ...m }
          this.blocks.push(b)
          afterKeyframe.push(b)
          nextN = m.n0 + m.count
          lastCorrupt = null
          if (m.count > 0) this.t1 = Math.max(this.t1, m.t1)
        } else if (fr.type === FrameType.Keyframe) {
          try {
            const k = decodeJson<Keyframe>(fr.payload, true)
            this.keyframes.push({ offset: fr.offset, n: k.n, t: k.t })
            marks.push(...k.marks)
            afterKeyframe = []
          } catch {
            // a keyframe whose checksum holds but does not decode was written by a broken writer: seek falls back to an earlier one
          }
        }
        pos = fr.end
        continue
      }
      // damage: find the next frame whose checksum holds
      let next = buf.indexOf(SYNC, pos + 1)
      while (next >= 0 && !parseFrame(buf, next).frame) next = buf.indexOf(SYNC, next + 1)
      if (next < 0) {
        const p: RecordingProblem = {
          kind: 'truncated',
          offset: pos,
          bytes: buf.length - pos,
          records: null,
          message: `the tail from byte ${pos} (${buf.length - pos} bytes) is ${f.why}: dropped; every record before it (${nextN}) is kept`
        }
        this.problems.push(p)
        break
      }
      lastCorrupt = {
        kind: 'corrupt',
        offset: pos,
        bytes: next - pos,
        records: 0,
        message: `bytes ${pos} to ${next} (${next - pos} bytes) are ${f.why}: skipped; reading resumes at the next good frame`
      }
      this.problems.push(lastCorrupt)
      pos = next
    }
    for (const p of this.problems) if (p.kind === 'corrupt') p.message += `; ${p.records} records lost`
    this.records = nextN
    // the marks after the last keyframe are in the blocks written since
    for (const b of afterKeyframe) {
      const recs = this.block(b)
      if (!recs) continue
      const st = new DerivedState()
      st.n = b.n0
      for (const r of recs) st.apply(r)
      marks.push(...st.marks)
    }
    this.marks = marks
  }

  // ----- playback --------------------------------------------------------------------

  /**
   * The state at console time t: every record in file order up to the first one later than t
   * applied to the nearest keyframe before it, and the records of the last `recentMs`.
   */
  stateAt(t: number, recentMs = 3000): PlaybackState {
    let st = new DerivedState()
    let ki = upperBound(this.keyframes, (k) => k.t <= t) - 1
    for (; ki >= 0; ki--) {
      const k = this.keyframeAt(this.keyframes[ki])
      if (k) {
        st = DerivedState.from(k)
        break
      }
    }
    const since = t - recentMs
    const fromRecent = upperBound(this.maxT1, (x) => x < since)
    const fromState = upperBound(this.blocks, (b) => b.n0 + b.count <= st.n)
    const recent: (RecordEntry & { n: number })[] = []
    let stop = false
    for (let bi = Math.min(fromRecent, fromState); bi < this.blocks.length && !stop; bi++) {
      const b = this.blocks[bi]
      const recs = this.block(b)
      if (!recs) continue
      for (let i = 0; i < recs.length; i++) {
        const r = recs[i]
        const n = b.n0 + i
        if (r.t > t) {
          stop = true
          break
        }
        if (n >= st.n) {
          st.n = n // a damaged block before this one leaves a gap
          st.apply(r)
        }
        if (r.t >= since) recent.push(r)
      }
    }
    const status = st.labStatus()
    return {
      t,
      n: st.n,
      status,
      load: st.load,
      faults: status?.faults ?? [],
      recent,
      marks: this.marks.filter((m) => m.n < st.n),
      terms: Object.values(st.terms),
      termOut: st.termOut,
      drills: Object.values(st.drills)
    }
  }

  /** The lab status at each keyframe with from ≤ t < to (one every 2 s or so): a cheap history for charts. */
  statusesAt(from: number, to: number): { t: number; status: LabStatus }[] {
    const out: { t: number; status: LabStatus }[] = []
    for (let i = upperBound(this.keyframes, (k) => k.t < from); i < this.keyframes.length && this.keyframes[i].t < to; i++) {
      const ref = this.keyframes[i]
      let s = this.keyStatus.get(ref.offset)
      if (s === undefined) {
        const k = this.keyframeAt(ref)
        s = k ? DerivedState.from(k).labStatus() : null
        this.keyStatus.set(ref.offset, s)
      }
      if (s) out.push({ t: ref.t, status: s })
    }
    return out
  }

  /**
   * The records from number n on, in file order, up to the first one later than `to` (the
   * same stopping rule as stateAt, so reading on from a seek's n misses and repeats nothing),
   * at most `max` of them; with `upto`, up to record number upto whatever the times (a step
   * to one record must not stop at an earlier record stamped later). `next` is the number to read on from.
   */
  recordsFrom(n: number, to: number, max: number, upto?: number): { records: (RecordEntry & { n: number })[]; next: number; end: boolean } {
    const out: (RecordEntry & { n: number })[] = []
    let next = n
    for (
      let bi = Math.max(
        0,
        upperBound(this.blocks, (b) => b.n0 + b.count <= n)
      );
      bi < this.blocks.length;
      bi++
    ) {
      const b = this.blocks[bi]
      const recs = this.block(b)
      if (!recs) {
        next = Math.max(next, b.n0 + b.count) // a damaged block is skipped, as stateAt skips it
        continue
      }
      for (let i = Math.max(0, n - b.n0); i < recs.length; i++) {
        if ((upto === undefined ? recs[i].t > to : b.n0 + i > upto) || out.length >= max) return { records: out, next, end: false }
        out.push(recs[i])
        next = b.n0 + i + 1
      }
    }
    return { records: out, next: Math.max(next, this.records), end: true }
  }

  /** The load runs' client histories recorded in this file, parts joined, in the order the runs ended. */
  histories(): RecordedHistory[] {
    const runs = new Map<string, RecordedHistory>()
    for (const b of this.blocks) {
      for (const r of this.block(b) ?? []) {
        if (r.k !== 'hist') continue
        const h: RecordedHistory = {
          run: r.run,
          workload: r.workload,
          startedAt: r.startedAt,
          clients: r.clients,
          keys: r.keys,
          ops: r.ops,
          final: r.final,
          verdict: r.verdict
        }
        const got = runs.get(h.run)
        if (!got) runs.set(h.run, { ...h, ops: [...h.ops] })
        else {
          got.ops.push(...h.ops)
          if (h.final) got.final = h.final
          if (h.verdict) got.verdict = h.verdict
        }
      }
    }
    return [...runs.values()]
  }

  /**
   * The nearest record after (dir 1) or before (dir -1) record n that `match` accepts, or
   * null; looks at most `limit` records away (a step must not read an hour of file).
   */
  find(n: number, dir: 1 | -1, match: (r: RecordEntry) => boolean, limit = 200_000): (RecordEntry & { n: number }) | null {
    let bi = upperBound(this.blocks, (b) => b.n0 + b.count <= n)
    if (bi >= this.blocks.length) bi = this.blocks.length - 1
    let seen = 0
    for (; bi >= 0 && bi < this.blocks.length && seen < limit; bi += dir) {
      const b = this.blocks[bi]
      const recs = this.block(b)
      if (!recs) continue
      if (dir === 1) {
        for (let i = Math.max(0, n + 1 - b.n0); i < recs.length; i++, seen++) if (match(recs[i])) return recs[i]
      } else {
        for (let i = Math.min(recs.length - 1, n - 1 - b.n0); i >= 0; i--, seen++) if (match(recs[i])) return recs[i]
      }
    }
    return null
  }

  /** The records with from ≤ t ≤ to, in file order (shared with the reader's cache: do not change them). */
  *events(from = -Infinity, to = Infinity): Generator<RecordEntry & { n: number }> {
    for (let bi = upperBound(this.maxT1, (x) => x < from); bi < this.blocks.length; bi++) {
      const b = this.blocks[bi]
      if (b.t0 > to) return
      const recs = this.block(b)
      if (!recs) continue
      for (const r of recs) if (r.t >= from && r.t <= to) yield r
    }
  }

  // ----- frames ------------------------------------------------------------------------

  private block(b: BlockRef): (RecordEntry & { n: number })[] | null {
    const hit = this.cache.get(b.offset)
    if (hit !== undefined) {
      this.cache.delete(b.offset)
      this.cache.set(b.offset, hit)
      return hit
    }
    const f = this.frameAt(b.offset)
    let recs: (RecordEntry & { n: number })[] | null = null
    if (f.frame && f.frame.type === FrameType.Block) {
      try {
        recs = decodeBlock(f.frame.payload)
      } catch (err) {
        f.why = `not decodable (${(err as Error).message})`
      }
    }
    if (!recs && !this.problems.some((p) => p.offset === b.offset)) {
      this.problems.push({
        kind: 'corrupt',
        offset: b.offset,
        bytes: f.frame ? f.frame.end - b.offset : 0,
        records: b.count,
        message: `the block at byte ${b.offset} (records ${b.n0} to ${b.n0 + b.count - 1}) is ${f.why ?? 'not a block'}: its ${b.count} records are skipped`
      })
    }
    for (const [offset, old] of this.cache) {
      if (this.cachedRecords + b.count <= BLOCK_CACHE_RECORDS) break
      this.cache.delete(offset)
      this.cachedRecords -= old?.length ?? 0
    }
    this.cache.set(b.offset, recs)
    this.cachedRecords += recs?.length ?? 0
    return recs
  }

  private keyframeAt(k: KeyframeRef): Keyframe | null {
    const f = this.frameAt(k.offset)
    if (!f.frame || f.frame.type !== FrameType.Keyframe) return null
    try {
      return decodeJson<Keyframe>(f.frame.payload, true)
    } catch {
      return null
    }
  }

  private frameAt(offset: number): { frame: Frame | null; why?: string } {
    const head = this.read(offset, FRAME_HEAD)
    if (head.length < FRAME_HEAD) return { frame: null, why: 'cut short' }
    const len = head.readUInt32LE(5)
    if (!head.subarray(0, 4).equals(SYNC) || len > MAX_FRAME) return parseFrame(head, 0)
    return parseFrame(Buffer.concat([head, this.read(offset + FRAME_HEAD, len)]), 0, offset)
  }

  private read(offset: number, length: number): Buffer {
    const len = Math.max(0, Math.min(length, this.size - offset))
    const buf = Buffer.allocUnsafe(len)
    let done = 0
    while (done < len) {
      const n = readSync(this.fd, buf, done, len - done, offset + done)
      if (n === 0) break
      done += n
    }
    return buf.subarray(0, done)
  }
}

/** The frame at buf[pos], or why there is none; `base` is buf's offset in the file. */
function parseFrame(buf: Buffer, pos: number, base = 0): { frame: Frame | null; why?: string } {
  if (buf.length - pos < FRAME_HEAD) return { frame: null, why: `cut short (${buf.length - pos} bytes of a ${FRAME_HEAD}-byte frame head)` }
  if (buf[pos] !== SYNC[0] || buf[pos + 1] !== SYNC[1] || buf[pos + 2] !== SYNC[2] || buf[pos + 3] !== SYNC[3])
    return { frame: null, why: 'not a frame (no frame marker)' }
  const type = buf[pos + 4]
  const len = buf.readUInt32LE(pos + 5)
  if (len > MAX_FRAME || type < FrameType.Header || type > FrameType.Trailer) return { frame: null, why: `a damaged frame head (type ${type}, length ${len})` }
  const end = pos + FRAME_HEAD + len
  if (end > buf.length) return { frame: null, why: `cut short (a frame of ${len} bytes with ${buf.length - pos - FRAME_HEAD} present)` }
  const payload = buf.subarray(pos + FRAME_HEAD, end)
  if (frameCrc(buf.subarray(pos + 4, pos + 9), payload) !== buf.readUInt32LE(pos + 9)) return { frame: null, why: 'damaged (checksum mismatch)' }
  return { frame: { type, offset: base + pos, payload, end: base + end } }
}

/** The first index whose element fails `before` (elements satisfying it come first). */
function upperBound<T>(xs: readonly T[], before: (x: T) => boolean): number {
  let lo = 0
  let hi = xs.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (before(xs[mid])) lo = mid + 1
    else hi = mid
  }
  return lo
}
