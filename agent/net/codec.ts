// A compact binary encoding of plain JS values for the logging channel and the disk
// protocol. JSON would turn every guest payload and disk block into base64; this keeps
// bytes as bytes and small integers as one byte. Decoding trusts nothing: every length
// is checked against what is left, so a hostile or torn payload yields a CodecError that
// names the offset, never a huge allocation or a stack overflow.
//
// Layout: one tag byte, then the value.
//   0x00 null  0x01 false  0x02 true
//   0x03 uint (varint)  0x04 negative int (varint of -n)  0x05 float64 LE
//   0x06 string (varint length, UTF-8)  0x07 bytes (varint length)
//   0x08 array (varint count, items)  0x09 object (varint count, key string + value pairs)
//   0x0a log entry of client data (a single entry, e.g. one sliced into entry-parts; see dataEntry)
//   0x0b an 'entries' message of the logging channel, its entries packed (see entriesMessage)
//   0x0c..0x13 log entry of state transfer (pages, diffs, outputs, I/O packed by position, see stateEntry)
//   0x20..0x3f string of length 0..31 (keys and short names)
//   0x40..0x7f one of the 64 strings of DICTIONARY (the protocol's keys and names)
//   0x80..0xff unsigned integer 0..127
// Varints are unsigned LEB128 up to 2^53 - 1 (at most 8 bytes).

import type { EntryBody, IoRequest, Output, PageDiff, PageWrite } from '../vmm/types.js'

export class CodecError extends Error {
  constructor(
    message: string,
    readonly offset: number
  ) {
    super(`${message} at offset ${offset}`)
    this.name = 'CodecError'
  }
}

const T_NULL = 0x00
const T_FALSE = 0x01
const T_TRUE = 0x02
const T_UINT = 0x03
const T_NINT = 0x04
const T_F64 = 0x05
const T_STR = 0x06
const T_BYTES = 0x07
const T_ARRAY = 0x08
const T_OBJECT = 0x09
const T_DATA_ENTRY = 0x0a
const T_ENTRIES = 0x0b
/** 0x0c..0x13: + 1 with a state hash, + 2 with diffs, + 4 the completion of a disk barrier (its tag) */
const T_STATE_ENTRY = 0x0c
const T_STATE_ENTRY_LAST = T_STATE_ENTRY + 7
const T_FIXSTR = 0x20
const T_DICT = 0x40
const FIXSTR_MAX = 31
const T_FIXUINT = 0x80
const FIXUINT_MAX = 127

// An entry inside a packed 'entries' message (T_ENTRIES) starts with one byte: its kind in the low
// nibble, flags in the high one. Packed kinds leave out gen (the message's) and n (the previous
// entry's plus one) and the keys; anything else travels whole (E_WHOLE) and still decodes equal.
const E_WHOLE = 0x00 // the entry as a general value
const E_DATA = 0x01 // client bytes: conn, length, bytes
const E_SYNCED = 0x02 // a disk barrier's completion: its tag
const E_STATE = 0x03 // a state-transfer entry: its body as stateBody packs it (with E_DIFFS, E_SYNCED_TAG)
const E_BATCH = 0x04 // several connections' bytes: a count, then each as E_DATA's conn, length, bytes
const E_KIND = 0x0f
const E_HASH = 0x10 // a state hash follows (a string value)
const E_NONDET = 0x20 // non-deterministic values follow (an array value); without it they are []
const E_HASH64 = 0x40 // the state hash as 8 raw bytes: it is 16 lowercase hex digits (memory.ts), 9 bytes less
const E_FLAGS = E_HASH | E_NONDET | E_HASH64
/** E_STATE only, which has no non-deterministic values: its body has `diffs` (E_NONDET's bit), `synced` (a varint follows the kind byte) */
const E_DIFFS = E_NONDET
const E_SYNCED_TAG = 0x80
/** a plain connection's id, `t:<n>`, travels as the varint n + 1; 0 means a string follows */
const PLAIN_CONN = /^t:(0|[1-9][0-9]{0,14})$/
const HEX16 = /^[0-9a-f]{16}$/

/**
 * Strings sent as one byte: the keys and names of the logging channel's and the disk protocol's
 * messages (replica/types.ts, vmm/types.ts). Both ends run the same bundle, so the list only has
 * to be the same on both; appending is safe, reordering changes the wire format. At most 64.
 */
export const DICTIONARY: readonly string[] = [
  't',
  'gen',
  'n',
  'body',
  'kind',
  'input',
  'nondet',
  'hash',
  'conn',
  'data',
  'entries',
  'releasedThrough',
  'nextConn',
  'ack',
  'part',
  'heartbeat',
  'from',
  'last',
  'entry-part',
  'at',
  'total',
  'bytes',
  'snapshot',
  'snapshot-ack',
  'pages',
  'outputs',
  'io',
  'state',
  'open',
  'close',
  'reply',
  'disk-write',
  'disk-sync',
  'disk-read',
  'disk-synced',
  'tag',
  'block',
  'timer',
  'id',
  'd',
  'v',
  'clock',
  'random',
  'replica',
  'refused',
  'op',
  'ok',
  'write',
  'read',
  'flush',
  'tas',
  'entry',
  'index',
  'error',
  'message',
  'done',
  'append',
  'guest',
  'status',
  'winner',
  'generation',
  'primary',
  'backup',
  'diverged'
]
const DICT_INDEX = new Map(DICTIONARY.map((w, i) => [w, i]))
if (DICTIONARY.length > 64 || DICT_INDEX.size !== DICTIONARY.length) throw new Error('codec: DICTIONARY must hold at most 64 distinct strings')

/** Nesting deeper than this is refused both ways (cycles on encode, stack exhaustion on decode). */
export const MAX_DEPTH = 256

const utf8Decoder = new TextDecoder('utf-8', { fatal: true })
const utf8Encoder = new TextEncoder()

/**
 * An encoder that reuses one growing scratch buffer, so encoding thousands of entries a
 * second allocates only the result. Not re-entrant; one per module is enough.
 */
export class Encoder {
  private buf: Uint8Array
  private view: DataView
  private pos = 0
  /** page keys of the state entries encoded so far in this value, most recent first (see stateEntry) */
  private stateKeys: readonly string[] = STATE_KEY_SEED

  constructor(initialBytes = 64 * 1024) {
    this.buf = new Uint8Array(initialBytes)
    this.view = new DataView(this.buf.buffer)
  }

  encode(value: unknown): Uint8Array {
    this.pos = 0
    this.stateKeys = STATE_KEY_SEED
    this.value(value, 0, '')
    const out = this.buf.slice(0, this.pos)
    // a one-off huge message should not pin its scratch buffer forever
    if (this.buf.length > 4 * 1024 * 1024) this.reset(64 * 1024)
    return out
  }

  private reset(size: number): void {
    this.buf = new Uint8Array(size)
    this.view = new DataView(this.buf.buffer)
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  private varint(v: number): void {
    this.ensure(8)
    const b = this.buf
    while (v >= 0x80) {
      b[this.pos++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    b[this.pos++] = v
  }

  private string(s: string): void {
    const d = DICT_INDEX.get(s)
    if (d !== undefined) {
      this.ensure(1)
      this.buf[this.pos++] = T_DICT + d
      return
    }
    // ASCII fast path: most keys and names; avoids TextEncoder's call overhead
    const n = s.length
    if (n <= FIXSTR_MAX) {
      let ascii = true
      for (let i = 0; i < n; i++) {
        if (s.charCodeAt(i) > 0x7f) {
          ascii = false
          break
        }
      }
      if (ascii) {
        this.ensure(1 + n)
        this.buf[this.pos++] = T_FIXSTR + n
        for (let i = 0; i < n; i++) this.buf[this.pos++] = s.charCodeAt(i)
        return
      }
    }
    // worst case 3 bytes per UTF-16 unit; write after a maximal varint, then move if shorter
    const max = n * 3
    this.ensure(1 + 8 + max)
    const tagAt = this.pos
    const bodyAt = tagAt + 9
    const { written } = utf8Encoder.encodeInto(s, this.buf.subarray(bodyAt, bodyAt + max))
    if (written <= FIXSTR_MAX) {
      this.buf[tagAt] = T_FIXSTR + written
      this.buf.copyWithin(tagAt + 1, bodyAt, bodyAt + written)
      this.pos = tagAt + 1 + written
      return
    }
    this.buf[this.pos++] = T_STR
    this.varint(written)
    this.buf.copyWithin(this.pos, bodyAt, bodyAt + written)
    this.pos += written
  }

  private value(v: unknown, depth: number, path: string): void {
    if (depth > MAX_DEPTH) throw new CodecError(`value nested deeper than ${MAX_DEPTH} (a cycle?) at ${path || 'the root'}`, this.pos)
    switch (typeof v) {
      case 'boolean':
        this.ensure(1)
        this.buf[this.pos++] = v ? T_TRUE : T_FALSE
        return
      case 'number':
        this.number(v)
        return
      case 'string':
        this.string(v)
        return
      case 'object':
        break
      default:
        throw new CodecError(`cannot encode a ${typeof v} at ${path || 'the root'}`, this.pos)
    }
    if (v === null) {
      this.ensure(1)
      this.buf[this.pos++] = T_NULL
      return
    }
    if (v instanceof Uint8Array) {
      this.ensure(1)
      this.buf[this.pos++] = T_BYTES
      this.rawBytes(v)
      return
    }
    if (Array.isArray(v)) {
      this.ensure(1)
      this.buf[this.pos++] = T_ARRAY
      this.varint(v.length)
      for (let i = 0; i < v.length; i++) {
        // like JSON: holes and undefined in arrays become null
        const item = v[i]
        this.value(item === undefined ? null : item, depth + 1, path)
      }
      return
    }
    if (this.entriesMessage(v as Record<string, unknown>, depth, path)) return
    if (this.dataEntry(v as Record<string, unknown>, depth, path)) return
    if (this.stateEntry(v as Record<string, unknown>)) return
    const proto = Object.getPrototypeOf(v)
    if (proto !== Object.prototype && proto !== null) {
      const name = (v as object).constructor?.name ?? 'object'
      throw new CodecError(`cannot encode a ${name} at ${path || 'the root'} (only plain objects, arrays, Uint8Array)`, this.pos)
    }
    const rec = v as Record<string, unknown>
    const keys = Object.keys(rec)
    let count = 0
    for (let i = 0; i < keys.length; i++) if (rec[keys[i]] !== undefined) count++
    this.ensure(1)
    this.buf[this.pos++] = T_OBJECT
    this.varint(count)
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]
      const item = rec[k]
      // like JSON: a key whose value is undefined is left out
      if (item === undefined) continue
      this.string(k)
      this.value(item, depth + 1, path ? `${path}.${k}` : k)
    }
  }

  /**
   * The logging channel's 'entries' message, `{ t: 'entries', gen, entries, releasedThrough, nextConn? }`,
   * with its entries packed: under load it carries a turn's client requests and disk-barrier
   * completions, and keys, generations and entry numbers would cost more than a small request.
   *   T_ENTRIES, varint gen, varint releasedThrough, varint nextConn + 1 (0: none), varint first n,
   *   varint count, then each entry: kind|flags byte and its fields (E_DATA, E_BATCH, E_SYNCED, E_STATE) or the whole
   *   entry (E_WHOLE).
   */
  private entriesMessage(m: Record<string, unknown>, depth: number, path: string): boolean {
    if (m.t !== 'entries') return false
    const { gen, entries, releasedThrough, nextConn } = m
    if (!isCount(gen) || !isCount(releasedThrough) || (nextConn !== undefined && !isCount(nextConn))) return false
    if (!Array.isArray(entries) || entries.length === 0 || countKeys(m) !== (nextConn === undefined ? 4 : 5)) return false
    if (Object.getPrototypeOf(m) !== Object.prototype && Object.getPrototypeOf(m) !== null) return false
    for (let i = 0; i < entries.length; i++) if (entries[i] === undefined) return false // the general path writes null
    const first = entries[0] as { n?: unknown } | null
    const firstN = typeof first === 'object' && first !== null && isCount(first.n) ? first.n : 0
    this.ensure(1)
    this.buf[this.pos++] = T_ENTRIES
    this.varint(gen)
    this.varint(releasedThrough)
    this.varint(nextConn === undefined ? 0 : nextConn + 1)
    this.varint(firstN)
    this.varint(entries.length)
    let next = firstN
    const at = path ? `${path}.entries` : 'entries'
    for (let i = 0; i < entries.length; i++) next = this.packedEntry(entries[i], gen, next, depth + 2, at)
    return true
  }

  /** One entry of a packed 'entries' message; returns the n the next entry is expected to have. */
  private packedEntry(e: unknown, gen: number, n: number, depth: number, path: string): number {
    const p = packable(e, gen, n)
    if (p === null) {
      const st = packableState(e)
      if (st !== null && st.gen === gen && st.n === n) {
        this.packedState(st.body, st.hash)
        return n + 1
      }
      this.ensure(1)
      this.buf[this.pos++] = E_WHOLE
      this.value(e, depth, path)
      return nextN(e, n)
    }
    const { input, nondet, hash } = p
    let flags = 0
    if (nondet.length > 0) flags |= E_NONDET
    if (hash !== undefined) flags |= HEX16.test(hash) ? E_HASH64 : E_HASH
    this.ensure(1)
    if (input.t === 'data') {
      this.buf[this.pos++] = E_DATA | flags
      this.packedConn(input.conn as string)
      this.rawBytes(input.data as Uint8Array)
    } else if (input.t === 'batch') {
      this.buf[this.pos++] = E_BATCH | flags
      const reads = input.reads as { conn: string; data: Uint8Array }[]
      this.varint(reads.length)
      for (const r of reads) {
        this.packedConn(r.conn)
        this.rawBytes(r.data)
      }
    } else {
      this.buf[this.pos++] = E_SYNCED | flags
      this.varint(input.tag as number)
    }
    if (flags & E_NONDET) this.value(nondet, depth + 1, path)
    if (flags & E_HASH64) {
      this.ensure(8)
      for (let i = 0; i < 16; i += 2) this.buf[this.pos++] = parseInt((hash as string).slice(i, i + 2), 16)
    } else if (flags & E_HASH) this.string(hash as string)
    return n + 1
  }

  /** A connection id in a packed entry: a plain one (`t:<n>`) as the varint n + 1, any other as 0 and the string. */
  private packedConn(conn: string): void {
    const plain = PLAIN_CONN.exec(conn)
    if (plain !== null && Number.isSafeInteger(Number(plain[1]) + 1)) this.varint(Number(plain[1]) + 1)
    else {
      this.varint(0)
      this.string(conn)
    }
  }

  /** A state-transfer entry inside an 'entries' message: a kind byte, the barrier's tag (E_SYNCED_TAG), the body, the hash. */
  private packedState(body: Extract<EntryBody, { kind: 'state' }>, hash: string | undefined): void {
    let kb = E_STATE
    if (body.diffs !== undefined) kb |= E_DIFFS
    if (body.synced !== undefined) kb |= E_SYNCED_TAG
    if (hash !== undefined) kb |= HEX16.test(hash) ? E_HASH64 : E_HASH
    this.ensure(1)
    this.buf[this.pos++] = kb
    if (body.synced !== undefined) this.varint(body.synced)
    this.stateBody(body)
    this.hash64(hash, kb)
  }

  private hash64(hash: string | undefined, kb: number): void {
    if (kb & E_HASH64) {
      this.ensure(8)
      for (let i = 0; i < 16; i += 2) this.buf[this.pos++] = parseInt((hash as string).slice(i, i + 2), 16)
    } else if (kb & E_HASH) this.string(hash as string)
  }

  /**
   * A log entry of client bytes, `{ gen, n, body: { kind: 'input', input: { t: 'data', conn, data }, nondet }, hash? }`,
   * packed by position: the keys and the nesting would cost more than a small request itself.
   * Anything else of that look (another key, a refusal, a non-integer) takes the general path.
   */
  private dataEntry(e: Record<string, unknown>, depth: number, path: string): boolean {
    const { gen, n, body, hash } = e
    if (typeof gen !== 'number' || typeof n !== 'number' || typeof body !== 'object' || body === null) return false
    if (!Number.isSafeInteger(gen) || gen < 0 || !Number.isSafeInteger(n) || n < 0) return false
    if (hash !== undefined && typeof hash !== 'string') return false
    if (countKeys(e) !== (hash === undefined ? 3 : 4)) return false
    const b = body as Record<string, unknown>
    if (b.kind !== 'input' || !Array.isArray(b.nondet) || countKeys(b) !== 3 || typeof b.input !== 'object' || b.input === null) return false
    const i = b.input as Record<string, unknown>
    if (i.t !== 'data' || typeof i.conn !== 'string' || !(i.data instanceof Uint8Array) || countKeys(i) !== 3) return false
    this.ensure(1)
    this.buf[this.pos++] = T_DATA_ENTRY
    this.varint(gen)
    this.varint(n)
    this.string(i.conn)
    this.rawBytes(i.data)
    this.value(b.nondet, depth + 1, path ? `${path}.body.nondet` : 'body.nondet')
    if (hash === undefined) {
      this.ensure(1)
      this.buf[this.pos++] = T_NULL
    } else this.string(hash)
    return true
  }

  /**
   * A state-transfer log entry, `{ gen, n, body: { kind: 'state', pages, outputs, io, diffs?, synced? }, hash? }`, packed
   * by position (the tag byte says which of hash, diffs and synced follow; synced as a varint after the hash). A page key
   * is sent against the key before it in the entry or a key of the state entries before it in the
   * same message (consecutive SETs touch the same pages: `g:kv:loglen`, `vmm:sync:<tag>`): one varint
   * ref * 8 + same * 4 + op (ref 0: the key before, r: the r-th key of the context; same: the key is that one; op: 0
   * deleted, 1 whole value, 2 diff, 3 whole value that is a decimal number), then, unless same, the units it shares
   * with it and the rest. Then the value (op 3: as a varint), or the diff's prefix, suffix and middle. Outputs and I/O requests are a kind byte and their fields. Anything else of
   * that look takes the general path, so decoding gives back exactly what was encoded. Each decode() starts from the
   * same context (STATE_KEY_SEED) as each encode() does: a message (or an entry sent in parts) decodes on its own.
   */
  private stateEntry(e: Record<string, unknown>): boolean {
    const p = packableState(e)
    if (p === null) return false
    const { gen, n, hash, body } = p
    this.ensure(1)
    this.buf[this.pos++] = T_STATE_ENTRY + (hash === undefined ? 0 : 1) + (body.diffs === undefined ? 0 : 2) + (body.synced === undefined ? 0 : 4)
    this.varint(gen)
    this.varint(n)
    if (hash !== undefined) this.string(hash)
    if (body.synced !== undefined) this.varint(body.synced)
    this.stateBody(body)
    return true
  }

  /** What follows a state entry's header, in both of its forms (T_STATE_ENTRY, E_STATE): pages, diffs, outputs, I/O. */
  private stateBody(b: Extract<EntryBody, { kind: 'state' }>): void {
    const { pages, outputs, io, diffs } = b
    const ctx = this.stateKeys
    const keys: string[] = []
    let prev = ''
    const key = (k: string, op: number): void => {
      // the same key as the one before, or as one of the entries before: its reference alone
      let ref = k === prev && keys.length > 0 ? 0 : ctx.indexOf(k) + 1
      if (ref > 0 || (k === prev && keys.length > 0)) this.varint(ref * 8 + 4 + op)
      else {
        // else the longest prefix it shares with one of them, and the rest
        let shared = sharedPrefix(prev, k)
        ref = 0
        for (let i = 0; i < ctx.length; i++) {
          const sh = sharedPrefix(ctx[i], k)
          if (sh > shared) {
            shared = sh
            ref = i + 1
          }
        }
        this.varint(ref * 8 + op)
        this.varint(shared)
        this.string(k.slice(shared))
      }
      keys.push(k)
      prev = k
    }
    this.varint(pages.length)
    for (const [k, v] of pages) {
      if (v === null) key(k, 0)
      else if (isDecimal(v)) {
        // counters, lengths, sequence numbers: a varint instead of their digits
        key(k, 3)
        this.varint(Number(v))
      } else {
        key(k, 1)
        this.string(v)
      }
    }
    const ds = diffs ?? []
    this.varint(ds.length)
    for (const [k, prefix, suffix, middle] of ds) {
      key(k, 2)
      this.varint(prefix)
      this.varint(suffix)
      this.string(middle)
    }
    this.varint(outputs.length)
    for (const o of outputs) {
      this.ensure(1)
      switch (o.t) {
        case 'reply':
          this.buf[this.pos++] = OUT_REPLY
          this.string(o.conn)
          this.rawBytes(o.data)
          break
        case 'close':
          this.buf[this.pos++] = OUT_CLOSE
          this.string(o.conn)
          break
        case 'disk-write':
          this.buf[this.pos++] = o.offset === undefined ? OUT_WRITE : OUT_APPEND
          this.varint(o.block)
          if (o.offset !== undefined) this.varint(o.offset)
          this.rawBytes(o.data)
          break
        case 'disk-sync':
          this.buf[this.pos++] = OUT_SYNC
          this.varint(o.tag)
          break
      }
    }
    this.varint(io.length)
    for (const r of io) {
      this.ensure(1)
      switch (r.t) {
        case 'disk-read':
          this.buf[this.pos++] = IO_READ
          this.varint(r.tag)
          this.varint(r.block)
          break
        case 'timer-set':
          this.buf[this.pos++] = IO_TIMER_SET
          this.varint(r.id)
          this.number(r.ms)
          break
        case 'timer-cancel':
          this.buf[this.pos++] = IO_TIMER_CANCEL
          this.varint(r.id)
          break
      }
    }
    this.stateKeys = nextStateKeys(keys, ctx)
  }

  /** varint length, then the bytes */
  private rawBytes(data: Uint8Array): void {
    this.varint(data.length)
    this.ensure(data.length)
    this.buf.set(data, this.pos)
    this.pos += data.length
  }

  private number(v: number): void {
    if (Number.isSafeInteger(v) && !Object.is(v, -0)) {
      if (v >= 0 && v <= FIXUINT_MAX) {
        this.ensure(1)
        this.buf[this.pos++] = T_FIXUINT + v
      } else if (v >= 0) {
        this.ensure(1)
        this.buf[this.pos++] = T_UINT
        this.varint(v)
      } else {
        this.ensure(1)
        this.buf[this.pos++] = T_NINT
        this.varint(-v)
      }
      return
    }
    this.ensure(9)
    this.buf[this.pos++] = T_F64
    this.view.setFloat64(this.pos, v, true)
    this.pos += 8
  }
}

// ---- state-transfer entries (T_STATE_ENTRY): the kinds of their outputs and I/O requests
const OUT_REPLY = 0
const OUT_CLOSE = 1
const OUT_WRITE = 2
const OUT_APPEND = 3
const OUT_SYNC = 4
const IO_READ = 0
const IO_TIMER_SET = 1
const IO_TIMER_CANCEL = 2

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

function isPageWrite(p: unknown): boolean {
  return Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && (typeof p[1] === 'string' || p[1] === null)
}

function isPageDiff(d: unknown): boolean {
  return Array.isArray(d) && d.length === 4 && typeof d[0] === 'string' && isUint(d[1]) && isUint(d[2]) && typeof d[3] === 'string'
}

function isPackableOutput(o: unknown): boolean {
  if (typeof o !== 'object' || o === null) return false
  const r = o as Record<string, unknown>
  switch (r.t) {
    case 'reply':
      return typeof r.conn === 'string' && r.data instanceof Uint8Array && countKeys(r) === 3
    case 'close':
      return typeof r.conn === 'string' && countKeys(r) === 2
    case 'disk-write':
      return isUint(r.block) && r.data instanceof Uint8Array && (r.offset === undefined ? countKeys(r) === 3 : isUint(r.offset) && countKeys(r) === 4)
    case 'disk-sync':
      return isUint(r.tag) && countKeys(r) === 2
    default:
      return false
  }
}

function isPackableIo(o: unknown): boolean {
  if (typeof o !== 'object' || o === null) return false
  const r = o as Record<string, unknown>
  switch (r.t) {
    case 'disk-read':
      return isUint(r.tag) && isUint(r.block) && countKeys(r) === 3
    case 'timer-set':
      return isUint(r.id) && typeof r.ms === 'number' && countKeys(r) === 3
    case 'timer-cancel':
      return isUint(r.id) && countKeys(r) === 2
    default:
      return false
  }
}

/**
 * The parts of a state-transfer entry that packs (Encoder.stateEntry, E_STATE): a generation, a number, a state body of
 * exactly the known fields with outputs and I/O requests of the known kinds, and an optional hash; null for anything
 * else, which takes the general path.
 */
function packableState(e: unknown): { gen: number; n: number; hash?: string; body: Extract<EntryBody, { kind: 'state' }> } | null {
  if (typeof e !== 'object' || e === null) return null
  const { gen, n, body, hash } = e as Record<string, unknown>
  if (!isUint(gen) || !isUint(n) || typeof body !== 'object' || body === null) return null
  if (hash !== undefined && typeof hash !== 'string') return null
  if (countKeys(e as Record<string, unknown>) !== (hash === undefined ? 3 : 4)) return null
  const b = body as Record<string, unknown>
  const { pages, outputs, io, diffs, synced } = b
  if (b.kind !== 'state' || !Array.isArray(pages) || !Array.isArray(outputs) || !Array.isArray(io)) return null
  if (diffs !== undefined && !Array.isArray(diffs)) return null
  if (synced !== undefined && !isUint(synced)) return null
  if (countKeys(b) !== 4 + (diffs === undefined ? 0 : 1) + (synced === undefined ? 0 : 1)) return null
  if (!pages.every(isPageWrite) || !(diffs ?? []).every(isPageDiff) || !outputs.every(isPackableOutput) || !io.every(isPackableIo)) return null
  const state = b as Extract<EntryBody, { kind: 'state' }>
  return hash === undefined ? { gen, n, body: state } : { gen, n, hash, body: state }
}

/** A canonical decimal integer below 10^15 ("0", "42"; not "042", "-1", "1e3"): it comes back the same from a varint. */
function isDecimal(v: string): boolean {
  const n = v.length
  if (n === 0 || n > 15 || (n > 1 && v.charCodeAt(0) === 0x30)) return false
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i)
    if (c < 0x30 || c > 0x39) return false
  }
  return true
}

/** At most this many keys of earlier state entries are kept to send keys against (refs up to 15 take one byte). */
const STATE_KEY_CONTEXT = 15

/**
 * The context a message's first state entry is sent against: the pages a kv write changes (the VMM's under `vmm:`, the
 * guest's under `g:`, agent/guests/kv.ts and service.ts), so that an entry alone in its message spells out none of
 * them. Like DICTIONARY, both ends run the same bundle: changing it changes the wire format. At most STATE_KEY_CONTEXT.
 */
const STATE_KEY_SEED: readonly string[] = ['g:kv:loglen', 'g:svc:sync', 'vmm:next-tag', 'vmm:sync:', 'g:kv:count', 'g:k:', 'vmm:conn:']

/** The context after an entry: its keys, then the older ones it did not repeat. */
function nextStateKeys(keys: string[], ctx: readonly string[]): string[] {
  const out = keys.slice(0, STATE_KEY_CONTEXT)
  for (let i = 0; i < ctx.length && out.length < STATE_KEY_CONTEXT; i++) if (!out.includes(ctx[i])) out.push(ctx[i])
  return out
}

/** Length of the common prefix of two keys, never ending inside a surrogate pair (the rest travels as UTF-8). */
function sharedPrefix(a: string, b: string): number {
  const max = Math.min(a.length, b.length)
  let i = 0
  while (i < max && a.charCodeAt(i) === b.charCodeAt(i)) i++
  if (i > 0 && i < b.length) {
    const c = b.charCodeAt(i - 1)
    if (c >= 0xd800 && c <= 0xdbff) i--
  }
  return i
}

/** Own keys whose value is not undefined (the keys the general path would write). */
function countKeys(o: Record<string, unknown>): number {
  let c = 0
  for (const k in o) if (Object.prototype.hasOwnProperty.call(o, k) && o[k] !== undefined) c++
  return c
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** The n after entry `e` in a packed message: both ends compute it alike from the value itself. */
function nextN(e: unknown, n: number): number {
  const en = typeof e === 'object' && e !== null ? (e as { n?: unknown }).n : undefined
  return isCount(en) ? en + 1 : n + 1
}

/**
 * The parts of an entry that packs as E_DATA, E_BATCH or E_SYNCED: generation `gen`, number `n`, an input
 * of client data (of one connection or several) or a barrier's completion, and nothing else (no refusal, no other key), so that
 * what is decoded equals what was encoded. Null for anything else.
 */
function packable(e: unknown, gen: number, n: number): { input: Record<string, unknown>; nondet: unknown[]; hash?: string } | null {
  if (typeof e !== 'object' || e === null || Object.getPrototypeOf(e) !== Object.prototype) return null
  const { gen: g, n: en, body, hash } = e as Record<string, unknown>
  if (g !== gen || en !== n || typeof body !== 'object' || body === null) return null
  if (hash !== undefined && typeof hash !== 'string') return null
  if (countKeys(e as Record<string, unknown>) !== (hash === undefined ? 3 : 4)) return null
  const b = body as Record<string, unknown>
  if (Object.getPrototypeOf(b) !== Object.prototype || b.kind !== 'input' || !Array.isArray(b.nondet) || countKeys(b) !== 3) return null
  const i = b.input
  if (typeof i !== 'object' || i === null || Object.getPrototypeOf(i) !== Object.prototype) return null
  const input = i as Record<string, unknown>
  if (input.t === 'data') {
    if (typeof input.conn !== 'string' || !(input.data instanceof Uint8Array) || countKeys(input) !== 3) return null
  } else if (input.t === 'batch') {
    const reads = input.reads
    if (!Array.isArray(reads) || reads.length === 0 || countKeys(input) !== 2) return null
    for (const r of reads) {
      if (typeof r !== 'object' || r === null || Object.getPrototypeOf(r) !== Object.prototype) return null
      const { conn, data } = r as Record<string, unknown>
      if (typeof conn !== 'string' || !(data instanceof Uint8Array) || countKeys(r as Record<string, unknown>) !== 2) return null
    }
  } else if (input.t === 'disk-synced') {
    if (!isCount(input.tag) || countKeys(input) !== 2) return null
  } else return null
  for (const x of b.nondet) if (x === undefined) return null // the general path writes null for it
  return hash === undefined ? { input, nondet: b.nondet } : { input, nondet: b.nondet, hash }
}

const shared = new Encoder()

/** Encode a plain value. Throws CodecError for functions, symbols, bigints, class instances, cycles. */
export function encode(value: unknown): Uint8Array {
  return shared.encode(value)
}

/**
 * Decode exactly one value occupying all of `bytes`. Byte strings in the result are
 * copies, so the input buffer may be reused at once.
 */
export function decode(bytes: Uint8Array): unknown {
  const d = new Decoder(bytes)
  const v = d.value(0)
  if (d.pos !== bytes.length) throw new CodecError(`${bytes.length - d.pos} trailing bytes after the value`, d.pos)
  return v
}

class Decoder {
  pos = 0
  /** page keys of the state entries decoded so far, most recent first: the encoder's context, rebuilt */
  private stateKeys: readonly string[] = STATE_KEY_SEED
  private readonly view: DataView

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new CodecError(`truncated ${what}: needs ${n} bytes, ${this.buf.length - this.pos} left`, this.pos)
  }

  private varint(what: string): number {
    const start = this.pos
    let v = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      if (this.pos >= this.buf.length) throw new CodecError(`truncated ${what}`, start)
      const b = this.buf[this.pos++]
      v += (b & 0x7f) * scale
      if ((b & 0x80) === 0) {
        if (v > Number.MAX_SAFE_INTEGER) throw new CodecError(`${what} ${v} exceeds 2^53 - 1`, start)
        return v
      }
      scale *= 0x80
    }
    throw new CodecError(`${what} longer than 8 bytes`, start)
  }

  /** A length or count that must fit in what is left (each item takes at least `unit` bytes). */
  private length(what: string, unit: number): number {
    const at = this.pos
    const n = this.varint(what)
    const left = this.buf.length - this.pos
    if (n * unit > left) throw new CodecError(`absurd ${what} ${n}: only ${left} bytes left`, at)
    return n
  }

  private str(n: number): string {
    const at = this.pos
    this.need(n, 'string')
    const end = at + n
    this.pos = end
    // short ASCII strings (keys, names) are built directly; the rest goes through the strict decoder
    if (n <= 24) {
      let out = ''
      let i = at
      for (; i < end; i++) {
        const c = this.buf[i]
        if (c > 0x7f) break
        out += String.fromCharCode(c)
      }
      if (i === end) return out
    }
    try {
      return utf8Decoder.decode(this.buf.subarray(at, end))
    } catch {
      throw new CodecError('string is not valid UTF-8', at)
    }
  }

  private key(): string {
    const at = this.pos
    this.need(1, 'object key')
    const tag = this.buf[this.pos++]
    if (tag >= T_FIXSTR && tag <= T_FIXSTR + FIXSTR_MAX) return this.str(tag - T_FIXSTR)
    if (tag === T_STR) return this.str(this.length('string length', 1))
    if (tag >= T_DICT && tag < T_FIXUINT) return this.dict(tag, at)
    throw new CodecError(`object key must be a string, found tag 0x${tag.toString(16)}`, at)
  }

  private dict(tag: number, at: number): string {
    const w = DICTIONARY[tag - T_DICT]
    if (w === undefined) throw new CodecError(`dictionary string ${tag - T_DICT} is not defined (an agent of another version?)`, at)
    return w
  }

  /** A packed 'entries' message (Encoder.entriesMessage). */
  private entriesMessage(depth: number, at: number): unknown {
    const gen = this.varint('entries generation')
    const releasedThrough = this.varint('entries releasedThrough')
    const nc = this.varint('entries nextConn')
    let n = this.varint('entries first number')
    // each entry takes at least one byte
    const count = this.length('entries count', 1)
    if (count === 0) throw new CodecError('packed entries message without entries', at)
    const entries = new Array<unknown>(count)
    for (let i = 0; i < count; i++) {
      const kindAt = this.pos
      this.need(1, 'entry kind')
      const kb = this.buf[this.pos++]
      const kind = kb & E_KIND
      if ((kb & ~(E_KIND | E_FLAGS | (kind === E_STATE ? E_SYNCED_TAG : 0))) !== 0 || (kb & E_HASH && kb & E_HASH64))
        throw new CodecError(`entry kind byte 0x${kb.toString(16)} has unknown flags`, kindAt)
      if (kind === E_WHOLE) {
        if (kb !== E_WHOLE) throw new CodecError('a whole entry takes no flags', kindAt)
        const e = this.value(depth + 2)
        entries[i] = e
        n = nextN(e, n)
        continue
      }
      if (kind === E_STATE) {
        const synced = kb & E_SYNCED_TAG ? this.varint('state entry synced tag') : undefined
        const entry: Record<string, unknown> = { gen, n, body: this.stateBody(depth + 2, kindAt, (kb & E_DIFFS) !== 0, synced) }
        this.entryHash(entry, kb, depth, kindAt)
        entries[i] = entry
        n++
        continue
      }
      let input: Record<string, unknown>
      if (kind === E_DATA) {
        const conn = this.packedConn(depth, kindAt, 'data entry')
        input = { t: 'data', conn, data: this.packedBytes('data entry length') }
      } else if (kind === E_BATCH) {
        // each read takes at least two bytes (its connection and its length)
        const count = this.length('batch entry count', 2)
        if (count === 0) throw new CodecError('batch entry without reads', kindAt)
        const reads = new Array<{ conn: string; data: Uint8Array }>(count)
        for (let r = 0; r < count; r++) {
          const conn = this.packedConn(depth, kindAt, `batch entry #${r}`)
          reads[r] = { conn, data: this.packedBytes(`batch entry #${r} length`) }
        }
        input = { t: 'batch', reads }
      } else if (kind === E_SYNCED) {
        input = { t: 'disk-synced', tag: this.varint('disk-synced tag') }
      } else throw new CodecError(`unknown entry kind ${kind}`, kindAt)
      let nondet: unknown[] = []
      if (kb & E_NONDET) {
        const v = this.value(depth + 3)
        if (!Array.isArray(v)) throw new CodecError('packed entry: the non-deterministic values are not an array', kindAt)
        nondet = v
      }
      const entry: Record<string, unknown> = { gen, n, body: { kind: 'input', input, nondet } }
      this.entryHash(entry, kb, depth, kindAt)
      entries[i] = entry
      n++
    }
    const msg: Record<string, unknown> = { t: 'entries', gen, entries, releasedThrough }
    if (nc > 0) msg.nextConn = nc - 1
    return msg
  }

  /** A packed entry's connection id (Encoder.packedConn). */
  private packedConn(depth: number, kindAt: number, what: string): string {
    const c = this.varint(`${what} connection`)
    if (c > 0) return `t:${c - 1}`
    const v = this.value(depth + 3)
    if (typeof v !== 'string') throw new CodecError(`${what}: the connection id is not a string`, kindAt)
    return v
  }

  /** A packed entry's bytes: a length, then that many bytes (a copy). */
  private packedBytes(what: string): Uint8Array {
    const len = this.length(what, 1)
    const data = new Uint8Array(len)
    data.set(this.buf.subarray(this.pos, this.pos + len))
    this.pos += len
    return data
  }

  /** The state hash of a packed entry, as its kind byte says (E_HASH64, E_HASH or none). */
  private entryHash(entry: Record<string, unknown>, kb: number, depth: number, kindAt: number): void {
    if (kb & E_HASH64) {
      this.need(8, 'state hash')
      let h = ''
      for (let j = 0; j < 8; j++) h += this.buf[this.pos++].toString(16).padStart(2, '0')
      entry.hash = h
    } else if (kb & E_HASH) {
      const h = this.value(depth + 2)
      if (typeof h !== 'string') throw new CodecError('packed entry: the state hash is not a string', kindAt)
      entry.hash = h
    }
  }

  private dataEntry(depth: number, at: number): unknown {
    const gen = this.varint('entry generation')
    const n = this.varint('entry number')
    const conn = this.value(depth + 1)
    if (typeof conn !== 'string') throw new CodecError('data entry: the connection id is not a string', at)
    const len = this.length('data entry length', 1)
    const data = new Uint8Array(len)
    data.set(this.buf.subarray(this.pos, this.pos + len))
    this.pos += len
    const nondet = this.value(depth + 1)
    if (!Array.isArray(nondet)) throw new CodecError('data entry: the non-deterministic values are not an array', at)
    const hash = this.value(depth + 1)
    if (hash !== null && typeof hash !== 'string') throw new CodecError('data entry: the state hash is neither a string nor null', at)
    const entry: Record<string, unknown> = { gen, n, body: { kind: 'input', input: { t: 'data', conn, data }, nondet } }
    if (hash !== null) entry.hash = hash
    return entry
  }

  private stateEntry(depth: number, at: number): unknown {
    const flags = this.buf[at] - T_STATE_ENTRY
    const gen = this.varint('entry generation')
    const n = this.varint('entry number')
    let hash: unknown
    if (flags & 1) {
      hash = this.value(depth + 1)
      if (typeof hash !== 'string') throw new CodecError('state entry: the state hash is not a string', at)
    }
    const synced = flags & 4 ? this.varint('state entry synced tag') : undefined
    const body = this.stateBody(depth, at, (flags & 2) !== 0, synced)
    const entry: Record<string, unknown> = { gen, n, body }
    if (hash !== undefined) entry.hash = hash
    return entry
  }

  /** A state entry's body after its header (Encoder.stateBody); `diffs`: the body has the field (else its count is 0). */
  private stateBody(depth: number, at: number, hasDiffs: boolean, synced: number | undefined): EntryBody {
    const str = (what: string): string => {
      const v = this.value(depth + 1)
      if (typeof v !== 'string') throw new CodecError(`state entry: ${what} is not a string`, at)
      return v
    }
    const ctx = this.stateKeys
    const keys: string[] = []
    let prev = ''
    const key = (): [string, number] => {
      const keyAt = this.pos
      const head = this.varint('page key')
      const op = head % 4
      const ref = Math.floor(head / 8)
      if (ref > ctx.length) throw new CodecError(`state entry: a page key refers to key ${ref} of ${ctx.length} before it`, keyAt)
      if (ref === 0 && keys.length === 0 && head & 4) throw new CodecError('state entry: the first page key refers to the key before it', keyAt)
      const base = ref === 0 ? prev : ctx[ref - 1]
      let k: string
      if (head & 4) k = base
      else {
        const shared = this.varint('shared key units')
        if (shared > base.length) throw new CodecError(`state entry: a page key shares ${shared} units with a key of ${base.length}`, keyAt)
        k = base.slice(0, shared) + str('a page key')
      }
      keys.push(k)
      prev = k
      return [k, op]
    }
    const pages: PageWrite[] = []
    const pageCount = this.length('state entry page count', 2)
    for (let i = 0; i < pageCount; i++) {
      const [k, op] = key()
      if (op === 2) throw new CodecError('state entry: a diff among the whole pages', at)
      pages.push([k, op === 0 ? null : op === 3 ? String(this.varint('page value')) : str('a page value')])
    }
    const diffs: PageDiff[] = []
    const diffCount = this.length('state entry diff count', 5)
    for (let i = 0; i < diffCount; i++) {
      const [k, op] = key()
      if (op !== 2) throw new CodecError('state entry: a whole page among the diffs', at)
      const prefix = this.varint('diff prefix')
      const suffix = this.varint('diff suffix')
      diffs.push([k, prefix, suffix, str('a diff middle')])
    }
    const bytes = (): Uint8Array => {
      const len = this.length('output bytes', 1)
      const data = new Uint8Array(len)
      data.set(this.buf.subarray(this.pos, this.pos + len))
      this.pos += len
      return data
    }
    const outputs: Output[] = []
    const outCount = this.length('state entry output count', 2)
    for (let i = 0; i < outCount; i++) {
      this.need(1, 'output kind')
      const kindAt = this.pos
      const kind = this.buf[this.pos++]
      if (kind === OUT_REPLY) outputs.push({ t: 'reply', conn: str('a reply connection'), data: bytes() })
      else if (kind === OUT_CLOSE) outputs.push({ t: 'close', conn: str('a closed connection') })
      else if (kind === OUT_WRITE) outputs.push({ t: 'disk-write', block: this.varint('disk-write block'), data: bytes() })
      else if (kind === OUT_APPEND) {
        const block = this.varint('disk-write block')
        const offset = this.varint('disk-write offset')
        outputs.push({ t: 'disk-write', block, data: bytes(), offset })
      } else if (kind === OUT_SYNC) outputs.push({ t: 'disk-sync', tag: this.varint('disk-sync tag') })
      else throw new CodecError(`state entry: unknown output kind ${kind}`, kindAt)
    }
    const io: IoRequest[] = []
    const ioCount = this.length('state entry I/O count', 2)
    for (let i = 0; i < ioCount; i++) {
      this.need(1, 'I/O kind')
      const kindAt = this.pos
      const kind = this.buf[this.pos++]
      if (kind === IO_READ) {
        const tag = this.varint('disk-read tag')
        io.push({ t: 'disk-read', tag, block: this.varint('disk-read block') })
      } else if (kind === IO_TIMER_SET) {
        const id = this.varint('timer id')
        const ms = this.value(depth + 1)
        if (typeof ms !== 'number') throw new CodecError('state entry: a timer delay is not a number', kindAt)
        io.push({ t: 'timer-set', id, ms })
      } else if (kind === IO_TIMER_CANCEL) io.push({ t: 'timer-cancel', id: this.varint('timer id') })
      else throw new CodecError(`state entry: unknown I/O kind ${kind}`, kindAt)
    }
    this.stateKeys = nextStateKeys(keys, ctx)
    const body: Extract<EntryBody, { kind: 'state' }> = { kind: 'state', pages, outputs, io }
    if (hasDiffs) body.diffs = diffs
    else if (diffs.length > 0) throw new CodecError('state entry: diffs in an entry that says it has none', at)
    if (synced !== undefined) body.synced = synced
    return body
  }

  value(depth: number): unknown {
    const at = this.pos
    if (depth > MAX_DEPTH) throw new CodecError(`value nested deeper than ${MAX_DEPTH}`, at)
    this.need(1, 'value tag')
    const tag = this.buf[this.pos++]
    if (tag >= T_FIXUINT) return tag - T_FIXUINT
    if (tag >= T_FIXSTR && tag <= T_FIXSTR + FIXSTR_MAX) return this.str(tag - T_FIXSTR)
    if (tag >= T_DICT) return this.dict(tag, at)
    switch (tag) {
      case T_DATA_ENTRY:
        return this.dataEntry(depth, at)
      case T_ENTRIES:
        return this.entriesMessage(depth, at)
      case T_STATE_ENTRY:
      case T_STATE_ENTRY + 1:
      case T_STATE_ENTRY + 2:
      case T_STATE_ENTRY + 3:
      case T_STATE_ENTRY + 4:
      case T_STATE_ENTRY + 5:
      case T_STATE_ENTRY + 6:
      case T_STATE_ENTRY_LAST:
        return this.stateEntry(depth, at)
      case T_NULL:
        return null
      case T_FALSE:
        return false
      case T_TRUE:
        return true
      case T_UINT:
        return this.varint('integer')
      case T_NINT: {
        const n = this.varint('integer')
        if (n === 0) throw new CodecError('negative integer encodes zero', at)
        return -n
      }
      case T_F64: {
        this.need(8, 'float64')
        const v = this.view.getFloat64(this.pos, true)
        this.pos += 8
        return v
      }
      case T_STR:
        return this.str(this.length('string length', 1))
      case T_BYTES: {
        const n = this.length('byte string length', 1)
        // a fresh Uint8Array even when the input is a Buffer (whose slice() is a view)
        const out = new Uint8Array(n)
        out.set(this.buf.subarray(this.pos, this.pos + n))
        this.pos += n
        return out
      }
      case T_ARRAY: {
        const n = this.length('array length', 1)
        const out = new Array<unknown>(n)
        for (let i = 0; i < n; i++) out[i] = this.value(depth + 1)
        return out
      }
      case T_OBJECT: {
        // each pair takes at least two bytes: a key tag and a value tag
        const n = this.length('object size', 2)
        const out: Record<string, unknown> = {}
        for (let i = 0; i < n; i++) {
          const keyAt = this.pos
          const k = this.key()
          if (Object.prototype.hasOwnProperty.call(out, k)) throw new CodecError(`duplicate object key ${JSON.stringify(k)}`, keyAt)
          const item = this.value(depth + 1)
          // a plain assignment of "__proto__" would change the prototype instead of adding a key
          if (k === '__proto__') Object.defineProperty(out, k, { value: item, enumerable: true, writable: true, configurable: true })
          else out[k] = item
        }
        return out
      }
      default:
        throw new CodecError(`unknown tag 0x${tag.toString(16).padStart(2, '0')}`, at)
    }
  }
}
