// The recording file format (.ftrec), version 1. Append-only frames, each one checksummed,
// so a file cut anywhere (a killed console, a full disk) or damaged in the middle still
// opens: the reader keeps every frame whose checksum holds and reports the rest.
//
//   file    = MAGIC frame*
//   frame   = SYNC(4) type(u8) length(u32 LE) crc32(u32 LE) payload(length)
//             the crc covers type, length and payload; SYNC lets a reader find the next
//             frame after a damaged one (a false SYNC inside a payload fails its crc)
//   types   HEADER    JSON of RecordingHeader, uncompressed (the first frame)
//           BLOCK     BLOCK_META (n0 f64, count u32, t0 f64, t1 f64) then deflate-raw of
//                     one JSON record per line, compressed with a preset dictionary
//           KEYFRAME  deflate-raw JSON of Keyframe: the derived state after record n
//           INDEX     deflate-raw JSON of RecordingIndex (written at close)
//           TRAILER   the INDEX frame's offset, f64 LE (the file's last frame)
// A file without a valid TRAILER (the console died) is indexed by a scan of its frames.
import { crc32 as zlibCrc32, deflateRawSync, inflateRawSync } from 'node:zlib'
import type {
  ApiEvent,
  DrillRun,
  LabKind,
  LabStatus,
  LoadStatus,
  LoadVerdict,
  MarkKind,
  HostId,
  GuestName,
  ReplicationMode,
  TermInfo,
  Workload
} from '../api/contract.js'
import type { HistoryOp } from '../load/history.js'

export const FORMAT_VERSION = 1
export const MAGIC = Buffer.from('FTREC\x00\x01\n', 'latin1')
export const SYNC = Buffer.from([0xf7, 0x46, 0x54, 0x52])
export const FRAME_HEAD = 13
/** No frame is bigger: a larger length is damage, not data. */
export const MAX_FRAME = 64 * 1024 * 1024
export const BLOCK_META = 28
export const EXT = '.ftrec'

export const FrameType = { Header: 1, Block: 2, Keyframe: 3, Index: 4, Trailer: 5 } as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

/** What the recording is of, written once at its start. */
export interface RecordingHeader {
  format: 'ftlab-recording'
  version: number
  ftlabVersion: string
  startedAt: number
  lab: {
    kind: LabKind
    name: string
    guest: GuestName | null
    mode: ReplicationMode | null
    timing: { heartbeatMs: number; suspectMs: number } | null
    sim: { speed: number; seed: number } | null
    hosts: { id: HostId; machine: string; address: string }[]
  }
  console: { host: string; pid: number }
}

/**
 * One recorded line. ev: an ApiEvent as the console published it (its ts is the console
 * clock); req: an operator's request (params with secrets redacted); fail: that request
 * was refused; hist: part of a load run's client history (every operation, as the checkers
 * saw it), written when the run ends. t is the console clock in ms.
 */
export type RecordEntry =
  | { k: 'ev'; t: number; ev: ApiEvent }
  | { k: 'req'; t: number; method: string; params: unknown }
  | { k: 'fail'; t: number; method: string; error: string }
  | ({ k: 'hist'; t: number; part: number; parts: number } & RecordedHistory)

/**
 * A load run's client history: every operation with its invocation and completion (console
 * clock), the final read the checkers compared it with, and their verdict; enough to check
 * the run again from the recording. Long runs are split over several `hist` records of at
 * most HISTORY_PART_OPS operations each (same `run`, `part` 0…parts-1).
 */
export interface RecordedHistory {
  /** unique within the recording: the run number and its start time, e.g. "L3-1764612345678" */
  run: string
  workload: Workload
  startedAt: number
  clients: number
  keys: number
  ops: HistoryOp[]
  /** the final value of every key read after the run ([key, value]); null when the run was not checked */
  final: [string, string | null][] | null
  verdict: LoadVerdict | null
}

export const HISTORY_PART_OPS = 5000

/** A marked moment on the timeline, with the record it comes from. */
export interface RecordedMark {
  t: number
  n: number
  seq: number
  kind: MarkKind
  label: string
  host?: HostId
}

/** The derived state after record n-1 (n records applied). */
export interface Keyframe {
  n: number
  /** the newest record time seen so far (record times need not be monotonic) */
  t: number
  status: LabStatus | null
  load: LoadStatus | null
  /** marks since the previous keyframe (all marks = the keyframes' marks in order) */
  marks: RecordedMark[]
  /** terminals' last states by id (absent in recordings made before playback existed) */
  terms?: Record<string, TermInfo>
  /** the tail of each host terminal's output by id (absent likewise) */
  termOut?: Record<string, string>
  /** the newest state of the last few drill or soak runs by id (absent likewise) */
  drills?: Record<string, DrillRun>
}

export interface BlockRef {
  offset: number
  n0: number
  count: number
  t0: number
  t1: number
}

export interface KeyframeRef {
  offset: number
  n: number
  t: number
}

export interface RecordingIndex {
  records: number
  t0: number
  t1: number
  blocks: [offset: number, n0: number, count: number, t0: number, t1: number][]
  keyframes: [offset: number, n: number, t: number][]
  marks: RecordedMark[]
  closedAt: number
}

// Deflate gains most on small blocks when it already knows the words every record repeats.
export const DICTIONARY = Buffer.from(
  [
    '"heldOutputs":0,"holdMs":{"p50":0,"p99":0,"max":0}},"faults":[],"load":{"state":"idle","workload":"kv","clients":0,"keys":0,"seconds":0,"startedAt":null,',
    '"opsPerSec":0,"latencyMs":{"p50":0,"p99":0},"completed":0,"retries":0,"duplicatesDropped":0,"errors":0,"failed":0,"target":null,"verdict":null},',
    '"invariants":{"liveByGen":[{"gen":1,"live":["a"]}],"splitBrain":false,"acknowledgedLost":null,"duplicatesDropped":0,"fencedWrites":0,"divergence":null,"evidence":[]}}}}',
    '{"id":"a","machine":"a","address":"127.0.0.1","reachable":true,"role":"primary","gen":1,"pid":null,"uptimeMs":0,"paused":false,"isolated":false,"notes":[],"canPowerOn":false,',
    '"memory":{"rss":0,"heapUsed":0},"disk":null,"error":null},{"id":"b","machine":"b","role":"backup",{"id":"disk","machine":"disk","role":"disk-server",',
    '"disk":{"gen":1,"live":null,"tasWinner":null,"blocks":0,"writes":0,"fenced":0}',
    '"channel":{"from":"a","to":"b","gen":1,"connected":true,"stalled":false,"lastEntry":0,"acked":0,"lag":0,"unackedEntries":0,"unackedBytes":0,"maxUnackedBytes":0,"entriesPerSec":0,"acksPerSec":0,"bytesPerSec":0,',
    '{"k":"ev","t":1,"ev":{"ts":1,"topic":"status","status":{"state":"running","kind":"local","name":"local","error":null,"guest":"kv","mode":"rsm","gen":1,"startedAt":1,"timing":{"heartbeatMs":100,"suspectMs":800},"sim":null,"spare":null,"hosts":[',
    '{"k":"ev","t":1,"ev":{"ts":1,"topic":"mark","mark":{"kind":"fault","label":"power cut a","host":"a"},"seq":1}}\n',
    '{"k":"req","t":1,"method":"fault.inject","params":{"target":"a","kind":"power","params":{},"durationMs":1000}}\n',
    '{"k":"ev","t":1,"ev":{"ts":1,"topic":"terminal","stream":"channel","data":"\\u001b[2m","seq":1}}\n',
    '{"k":"ev","t":1,"ev":{"ts":1,"topic":"agent","host":"a","type":"entry","data":{"n":1,"gen":1,"kind":"request","bytes":1},"seq":1}}\n',
    '{"k":"ev","t":1,"ev":{"ts":1,"topic":"agent","host":"b","type":"ack","data":{"n":1,"gen":1},"seq":1}}\n'
  ].join('')
)

export function deflate(data: Buffer): Buffer {
  return deflateRawSync(data, { level: 6, dictionary: DICTIONARY })
}

export function inflate(data: Buffer): Buffer {
  return inflateRawSync(data, { dictionary: DICTIONARY })
}

/** CRC-32 (IEEE), node:zlib's where it has one (Node ≥ 20.15), else a table. */
export const crc32: (data: Buffer, value?: number) => number = typeof zlibCrc32 === 'function' ? (d, v) => zlibCrc32(d, v) : tableCrc32

let table: Uint32Array | null = null
function tableCrc32(data: Buffer, value = 0): number {
  if (!table) {
    table = new Uint32Array(256)
    for (let i = 0; i < 256; i++) {
      let c = i
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
      table[i] = c >>> 0
    }
  }
  let c = ~value >>> 0
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xff] ^ (c >>> 8)
  return ~c >>> 0
}

/** One frame, ready to append. */
export function encodeFrame(type: FrameType, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEAD + payload.length)
  SYNC.copy(out, 0)
  out.writeUInt8(type, 4)
  out.writeUInt32LE(payload.length, 5)
  payload.copy(out, FRAME_HEAD)
  out.writeUInt32LE(frameCrc(out.subarray(4, 9), payload), 9)
  return out
}

export function frameCrc(typeAndLength: Buffer, payload: Buffer): number {
  return crc32(payload, crc32(typeAndLength))
}

export function encodeBlock(n0: number, t0: number, t1: number, lines: string[]): Buffer {
  const meta = Buffer.allocUnsafe(BLOCK_META)
  meta.writeDoubleLE(n0, 0)
  meta.writeUInt32LE(lines.length, 8)
  meta.writeDoubleLE(t0, 12)
  meta.writeDoubleLE(t1, 20)
  return Buffer.concat([meta, deflate(Buffer.from(lines.join('\n'), 'utf8'))])
}

export function blockMeta(payload: Buffer): { n0: number; count: number; t0: number; t1: number } {
  return { n0: payload.readDoubleLE(0), count: payload.readUInt32LE(8), t0: payload.readDoubleLE(12), t1: payload.readDoubleLE(20) }
}

/** The block's records, each with its number n (one JSON.parse for the block: much faster than one per line). */
export function decodeBlock(payload: Buffer): (RecordEntry & { n: number })[] {
  const n0 = payload.readDoubleLE(0)
  const text = inflate(payload.subarray(BLOCK_META)).toString('utf8')
  const recs = text === '' ? [] : (JSON.parse(`[${text.replaceAll('\n', ',')}]`) as (RecordEntry & { n: number })[])
  for (let i = 0; i < recs.length; i++) recs[i].n = n0 + i
  return recs
}

export function encodeJson(value: unknown, compress: boolean): Buffer {
  const b = Buffer.from(JSON.stringify(value), 'utf8')
  return compress ? deflate(b) : b
}

export function decodeJson<T>(payload: Buffer, compressed: boolean): T {
  return JSON.parse((compressed ? inflate(payload) : payload).toString('utf8')) as T
}
