// Writes a recording as it happens. Records wait in memory at most `flushMs` (250 ms) and
// then go to the file as one checksummed, compressed block with a plain write(2): once
// written they survive the console's death (they are in the kernel's page cache), so a
// killed console loses at most the last quarter second.
//
// fsync policy: a write survives the process, not the machine. We fsync at a keyframe when
// the last fsync is 10 s old (fsyncMs), and at close, not per block: an fsync costs milliseconds to tens
// of milliseconds on a busy disk, four times a second would tax the lab being watched, and
// a machine crash is not what recordings must survive best. 'block' is there for who wants it.
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs'
import {
  encodeBlock,
  encodeFrame,
  encodeJson,
  FORMAT_VERSION,
  FrameType,
  MAGIC,
  type RecordEntry,
  type RecordedMark,
  type RecordingHeader,
  type RecordingIndex
} from './format.js'
import { DerivedState } from './state.js'

export interface WriterOptions {
  /** longest a record waits in memory before it is written (ms) */
  flushMs?: number
  /** a block is written early once its records reach this many bytes of JSON */
  blockBytes?: number
  /** a keyframe at least this often, in record time (ms) … (a seek replays at most this much) */
  keyframeMs?: number
  /** … or after this many records */
  keyframeRecords?: number
  fsync?: 'keyframe' | 'block' | 'never'
  /** with fsync 'keyframe': at most one fsync this often (ms, wall clock) */
  fsyncMs?: number
  /** a write failed (disk full…): the writer has stopped; the file keeps what was written */
  onError?: (err: Error) => void
}

export interface RecordingSummary {
  path: string
  records: number
  bytes: number
  t0: number
  t1: number
  marks: RecordedMark[]
}

export class RecordingWriter {
  private pending: string[] = []
  private pendingBytes = 0
  private pendingT0 = 0
  private pendingT1 = 0
  private pendingN0 = 0
  private timer: ReturnType<typeof setTimeout> | null = null
  private offset = 0
  private readonly state = new DerivedState()
  private lastKeyframe = { n: 0, t: 0 }
  private readonly blocks: RecordingIndex['blocks'] = []
  private readonly keyframes: RecordingIndex['keyframes'] = []
  private readonly allMarks: RecordedMark[] = []
  private t0 = 0
  private closed = false
  private lastFsync = Date.now()
  private failed: Error | null = null
  private readonly o: Required<Omit<WriterOptions, 'onError'>> & Pick<WriterOptions, 'onError'>

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly header: RecordingHeader,
    opts: WriterOptions
  ) {
    this.o = { flushMs: 250, blockBytes: 256 * 1024, keyframeMs: 2000, keyframeRecords: 2000, fsync: 'keyframe', fsyncMs: 10_000, ...opts }
    this.t0 = header.startedAt
    this.lastKeyframe.t = header.startedAt
    this.write(MAGIC)
    this.write(encodeFrame(FrameType.Header, encodeJson(header, false)))
    if (this.o.fsync !== 'never') fsyncSync(fd)
  }

  /** A new recording at `path` (never overwrites: an existing file is an error). */
  static create(path: string, header: Omit<RecordingHeader, 'format' | 'version'>, opts: WriterOptions = {}): RecordingWriter {
    const fd = openSync(path, 'wx', 0o600)
    try {
      return new RecordingWriter(path, fd, { format: 'ftlab-recording', version: FORMAT_VERSION, ...header }, opts)
    } catch (err) {
      closeSync(fd)
      throw err
    }
  }

  get records(): number {
    return this.state.n
  }

  /** records already in the file (the rest wait at most flushMs) */
  get written(): number {
    return this.state.n - this.pending.length
  }

  get bytes(): number {
    return this.offset
  }

  get error(): Error | null {
    return this.failed
  }

  append(r: RecordEntry): void {
    if (this.closed || this.failed) return
    const line = JSON.stringify(r)
    if (this.pending.length === 0) {
      this.pendingN0 = this.records
      this.pendingT0 = this.pendingT1 = r.t
      this.timer ??= setTimeout(() => this.safely(() => this.flush()), this.o.flushMs)
      this.timer.unref?.()
    }
    this.pending.push(line)
    this.pendingBytes += line.length
    if (r.t < this.pendingT0) this.pendingT0 = r.t
    if (r.t > this.pendingT1) this.pendingT1 = r.t
    this.state.apply(r)
    // record time also bounds the wait, so a writer fed faster than real time (a simulator, the bench) cuts blocks as a live one would
    if (this.pendingBytes >= this.o.blockBytes || this.pendingT1 - this.pendingT0 >= this.o.flushMs) this.safely(() => this.flush())
  }

  /** Writes what waits as one block, then a keyframe if one is due. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    if (this.pending.length === 0 || this.failed) return
    const offset = this.offset
    const payload = encodeBlock(this.pendingN0, this.pendingT0, this.pendingT1, this.pending)
    this.blocks.push([offset, this.pendingN0, this.pending.length, this.pendingT0, this.pendingT1])
    this.pending = []
    this.pendingBytes = 0
    this.write(encodeFrame(FrameType.Block, payload))
    if (this.o.fsync === 'block') fsyncSync(this.fd)
    if (this.state.t - this.lastKeyframe.t >= this.o.keyframeMs || this.state.n - this.lastKeyframe.n >= this.o.keyframeRecords) this.keyframe()
  }

  private keyframe(): void {
    const k = this.state.keyframe()
    this.allMarks.push(...k.marks)
    this.keyframes.push([this.offset, k.n, k.t])
    this.write(encodeFrame(FrameType.Keyframe, encodeJson(k, true)))
    this.lastKeyframe = { n: k.n, t: k.t }
    const now = Date.now()
    if (this.o.fsync !== 'never' && now - this.lastFsync >= this.o.fsyncMs) {
      fsyncSync(this.fd)
      this.lastFsync = now
    }
  }

  /** Writes the rest, the index and the trailer, and closes the file. */
  close(): RecordingSummary {
    if (!this.closed) {
      this.safely(() => {
        this.flush()
        if (this.failed) return
        this.allMarks.push(...this.state.marks)
        this.state.marks = []
        const index: RecordingIndex = {
          records: this.state.n,
          t0: this.t0,
          t1: Math.max(this.t0, this.state.t),
          blocks: this.blocks,
          keyframes: this.keyframes,
          marks: this.allMarks,
          closedAt: Date.now()
        }
        const at = this.offset
        this.write(encodeFrame(FrameType.Index, encodeJson(index, true)))
        const trailer = Buffer.allocUnsafe(8)
        trailer.writeDoubleLE(at, 0)
        this.write(encodeFrame(FrameType.Trailer, trailer))
        if (this.o.fsync !== 'never') fsyncSync(this.fd)
      })
      this.closed = true
      if (this.timer) clearTimeout(this.timer)
      this.timer = null
      try {
        closeSync(this.fd)
      } catch {
        // already reported by safely()
      }
    }
    return { path: this.path, records: this.state.n, bytes: this.offset, t0: this.t0, t1: Math.max(this.t0, this.state.t), marks: this.allMarks }
  }

  private write(buf: Buffer): void {
    let done = 0
    while (done < buf.length) done += writeSync(this.fd, buf, done, buf.length - done, this.offset + done)
    this.offset += buf.length
  }

  private safely(f: () => void): void {
    if (this.failed) return
    try {
      f()
    } catch (err) {
      this.failed = new Error(`recording ${this.path}: write failed: ${(err as Error).message}; the recording stops here (it opens up to this point)`)
      this.pending = []
      this.o.onError?.(this.failed)
    }
  }
}
