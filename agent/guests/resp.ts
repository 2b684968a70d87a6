// RESP2 (the Redis protocol) and the RESP3 reply types a guest may send after HELLO 3, in two forms:
// - respLibrary(): a self-contained factory that the VMM evaluates inside the guest's
//   sandbox (it references nothing outside its body). It works on byte strings (one char
//   per byte, 0–255), which is what guests use for bytes.
// - encodeCommand / RespReader: the same codec for code outside the sandbox (the
//   console's load client), taking and giving Uint8Array and UTF-8 strings.
import { Buffer } from 'node:buffer'

/** A parsed RESP2 value, with bulk and simple strings as byte strings. */
export type RespNode = { t: '+' | '-'; v: string } | { t: ':'; v: number } | { t: '$'; v: string | null } | { t: '*'; v: RespNode[] | null }

export interface RespLib {
  simple(s: string): string
  error(s: string): string
  int(n: number | bigint): string
  bulk(s: string | null): string
  /** an array of already-encoded replies (null: the nil array) */
  array(encoded: string[] | null): string
  /** an array of bulk strings (null items are nil bulks) */
  bulks(items: (string | null)[]): string
  /** a command as clients send it: an array of bulk strings */
  command(args: string[]): string
  // RESP3 (after HELLO 3): the guest picks these only for a connection that negotiated protocol 3
  /** a map of already-encoded keys and values, alternating: `%<pairs>` */
  map(encoded: string[]): string
  /** a set of already-encoded items: `~<n>` */
  set(encoded: string[]): string
  /** a double, given as Redis prints it (`1.5`, `inf`, `-inf`): `,<text>` */
  double(text: string): string
  /** the RESP3 null: `_` */
  nil(): string
  /** a boolean: `#t` / `#f` */
  bool(b: boolean): string
  /**
   * One command at `pos`: a RESP array of bulk strings, or an inline line of words.
   * null: incomplete, wait for more bytes. Throws Error('Protocol error: …') on bad input.
   * `args` is empty for an empty command (blank line, `*0`), which takes no reply.
   */
  parseCommand(buf: string, pos: number): { args: string[]; end: number } | null
  /** Any RESP2 value at `pos`; null: incomplete. Throws Error('Protocol error: …'). */
  parseValue(buf: string, pos: number): { value: RespNode; end: number } | null
}

export function respLibrary(): RespLib {
  const CRLF = '\r\n'
  const MAX_LINE = 64 * 1024
  const MAX_BULK = 512 * 1024 * 1024
  const MAX_ITEMS = 1024 * 1024

  function fail(what: string): never {
    throw new Error('Protocol error: ' + what)
  }

  /** the line at pos (without CRLF) and the position after it; null if no CRLF yet */
  function line(buf: string, pos: number): [string, number] | null {
    const at = buf.indexOf(CRLF, pos)
    if (at < 0) {
      if (buf.length - pos > MAX_LINE) fail('line longer than ' + MAX_LINE + ' bytes without CRLF')
      return null
    }
    return [buf.slice(pos, at), at + 2]
  }

  function integer(text: string, what: string): number {
    if (!/^-?[0-9]{1,18}$/.test(text)) fail('invalid ' + what + " '" + text.slice(0, 32) + "'")
    return Number(text)
  }

  /**
   * The integer line at pos (a length after '*' or '$') and the position after its CRLF; null if no CRLF yet.
   * Every command has several: the common form (-?digits CRLF) is read in place, without a slice or a
   * regular expression; anything else takes line() and integer(), so errors and limits are theirs.
   */
  function lengthLine(buf: string, pos: number, what: string): [number, number] | null {
    let i = pos
    const neg = buf.charCodeAt(i) === 45
    if (neg) i++
    let n = 0
    const from = i
    for (let c = buf.charCodeAt(i); c >= 48 && c <= 57; c = buf.charCodeAt(++i)) n = n * 10 + (c - 48)
    const digits = i - from
    if (digits > 0 && digits <= 15 && buf.charCodeAt(i) === 13 && buf.charCodeAt(i + 1) === 10) return [neg ? -n : n, i + 2]
    const l = line(buf, pos)
    return l === null ? null : [integer(l[0], what), l[1]]
  }

  function bulkAt(buf: string, pos: number): [string | null, number] | null {
    const l = lengthLine(buf, pos + 1, 'bulk length')
    if (l === null) return null
    const n = l[0]
    if (n === -1) return [null, l[1]]
    if (n < 0 || n > MAX_BULK) fail('invalid bulk length ' + n)
    if (buf.length < l[1] + n + 2) return null
    if (buf.charCodeAt(l[1] + n) !== 13 || buf.charCodeAt(l[1] + n + 1) !== 10) fail('bulk string not followed by CRLF')
    return [buf.slice(l[1], l[1] + n), l[1] + n + 2]
  }

  const ESC: Record<string, string> = { n: '\n', r: '\r', t: '\t', b: '\b', a: '\x07', '\\': '\\', '"': '"' }

  /** Split an inline command line the way redis-cli users expect: words, "quoted \x41 strings", 'single quoted'. */
  function splitInline(text: string): string[] {
    const out: string[] = []
    let i = 0
    while (i < text.length) {
      while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++
      if (i >= text.length) break
      let word = ''
      const q = text[i]
      if (q === '"' || q === "'") {
        i++
        for (;;) {
          if (i >= text.length) fail('unbalanced quotes in inline request')
          const c = text[i]
          if (c === q) {
            i++
            break
          }
          if (c === '\\' && i + 1 < text.length) {
            const e = text[i + 1]
            if (q === '"' && e === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
              word += String.fromCharCode(parseInt(text.slice(i + 2, i + 4), 16))
              i += 4
              continue
            }
            if (q === '"' && ESC[e] !== undefined) {
              word += ESC[e]
              i += 2
              continue
            }
            if (q === "'" && e === "'") {
              word += "'"
              i += 2
              continue
            }
          }
          word += c
          i++
        }
        if (i < text.length && text[i] !== ' ' && text[i] !== '\t') fail('closing quote must be followed by a space in inline request')
      } else {
        const start = i
        while (i < text.length && text[i] !== ' ' && text[i] !== '\t') i++
        word = text.slice(start, i)
      }
      out.push(word)
    }
    return out
  }

  function parseCommand(buf: string, pos: number): { args: string[]; end: number } | null {
    if (pos >= buf.length) return null
    if (buf[pos] !== '*') {
      const at = buf.indexOf('\n', pos)
      if (at < 0) {
        if (buf.length - pos > MAX_LINE) fail('inline request longer than ' + MAX_LINE + ' bytes')
        return null
      }
      const text = buf.slice(pos, at > pos && buf[at - 1] === '\r' ? at - 1 : at)
      return { args: splitInline(text), end: at + 1 }
    }
    const head = lengthLine(buf, pos + 1, 'multibulk length')
    if (head === null) return null
    const n = head[0]
    if (n > MAX_ITEMS) fail('invalid multibulk length ' + n)
    const args: string[] = []
    let p = head[1]
    for (let i = 0; i < n; i++) {
      if (p >= buf.length) return null
      if (buf.charCodeAt(p) !== 36) fail("expected '$', got '" + buf[p] + "'")
      const b = bulkAt(buf, p)
      if (b === null) return null
      if (b[0] === null) fail('nil bulk string in a command')
      args.push(b[0])
      p = b[1]
    }
    return { args, end: p }
  }

  function parseValue(buf: string, pos: number): { value: RespNode; end: number } | null {
    if (pos >= buf.length) return null
    const type = buf[pos]
    if (type === '$') {
      const b = bulkAt(buf, pos)
      return b === null ? null : { value: { t: '$', v: b[0] }, end: b[1] }
    }
    const l = line(buf, pos + 1)
    if (l === null) return null
    if (type === '+' || type === '-') return { value: { t: type, v: l[0] }, end: l[1] }
    if (type === ':') return { value: { t: ':', v: integer(l[0], 'integer') }, end: l[1] }
    if (type !== '*') fail("unknown reply type '" + type + "'")
    const n = integer(l[0], 'array length')
    if (n === -1) return { value: { t: '*', v: null }, end: l[1] }
    if (n < 0 || n > MAX_ITEMS) fail('invalid array length ' + n)
    const items: RespNode[] = []
    let p = l[1]
    for (let i = 0; i < n; i++) {
      const r = parseValue(buf, p)
      if (r === null) return null
      items.push(r.value)
      p = r.end
    }
    return { value: { t: '*', v: items }, end: p }
  }

  const bulk = (s: string | null): string => (s === null ? '$-1\r\n' : '$' + s.length + CRLF + s + CRLF)

  return {
    simple: (s) => '+' + s.replace(/[\r\n]/g, ' ') + CRLF,
    error: (s) => '-' + s.replace(/[\r\n]/g, ' ') + CRLF,
    int: (n) => ':' + String(n) + CRLF,
    bulk,
    array: (encoded) => (encoded === null ? '*-1\r\n' : '*' + encoded.length + CRLF + encoded.join('')),
    bulks: (items) => '*' + items.length + CRLF + items.map(bulk).join(''),
    command: (args) => '*' + args.length + CRLF + args.map(bulk).join(''),
    map: (encoded) => '%' + encoded.length / 2 + CRLF + encoded.join(''),
    set: (encoded) => '~' + encoded.length + CRLF + encoded.join(''),
    double: (text) => ',' + text + CRLF,
    nil: () => '_' + CRLF,
    bool: (b) => (b ? '#t' : '#f') + CRLF,
    parseCommand,
    parseValue
  }
}

// ---------------------------------------------------------------------------------------
// Outside the sandbox.

/** The codec, for byte strings, in this realm. */
export const resp: RespLib = respLibrary()

/** Bytes to a byte string (one char per byte). */
export function bytesToByteString(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')
}

/** A byte string to a fresh, unshared Uint8Array. */
export function byteStringToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length)
  // most replies are a few bytes: a loop beats making a Buffer view to write through (chars above 255 keep their low byte, as latin1 does)
  if (s.length <= 64) for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  else Buffer.from(out.buffer, 0, out.length).write(s, 'latin1')
  return out
}

/** Encode a command for a RESP server; strings are sent as UTF-8. */
export function encodeCommand(args: (string | Uint8Array)[]): Uint8Array {
  return byteStringToBytes(resp.command(args.map((a) => (typeof a === 'string' ? Buffer.from(a, 'utf8').toString('latin1') : bytesToByteString(a)))))
}

/** An error reply from the server (`-ERR …`). */
export class RespError extends Error {
  override readonly name = 'RespError'
}

/** A reply, with simple and bulk strings decoded as UTF-8. */
export type RespValue = string | number | null | RespError | RespValue[]

function toValue(n: RespNode): RespValue {
  switch (n.t) {
    case '+':
    case '$':
      return n.v === null ? null : Buffer.from(n.v, 'latin1').toString('utf8')
    case '-':
      return new RespError(n.v)
    case ':':
      return n.v
    case '*':
      return n.v === null ? null : n.v.map(toValue)
  }
}

/**
 * Incremental reader of a server's replies: push() bytes as they arrive, then call next()
 * until it returns undefined. A malformed stream throws Error('Protocol error: …'); the
 * connection is then unusable.
 */
export class RespReader {
  private buf = ''
  private pos = 0

  push(chunk: Uint8Array): void {
    this.buf = (this.pos > 0 ? this.buf.slice(this.pos) : this.buf) + bytesToByteString(chunk)
    this.pos = 0
  }

  /** the next complete reply as a raw node (byte strings), or undefined */
  nextNode(): RespNode | undefined {
    const r = resp.parseValue(this.buf, this.pos)
    if (r === null) return undefined
    this.pos = r.end
    return r.value
  }

  /** the next complete reply, or undefined */
  next(): RespValue | undefined {
    const n = this.nextNode()
    return n === undefined ? undefined : toValue(n)
  }

  /** bytes received but not yet part of a complete reply */
  get buffered(): number {
    return this.buf.length - this.pos
  }
}
