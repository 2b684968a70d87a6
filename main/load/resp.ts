// The bits of RESP (the Redis protocol) the load clients need: commands out as arrays of
// bulk strings, replies in through an incremental reader that never trusts a length.
export class RespError {
  constructor(readonly message: string) {}
  toString(): string {
    return `-${this.message}`
  }
}

/** `+OK` and bulk strings both arrive as strings; `$-1` and `*-1` as null. */
export type RespValue = string | number | null | RespError | RespValue[]

export class RespProtocolError extends Error {}

const MAX_BULK = 64 * 1024 * 1024
const MAX_ARRAY = 1 << 20
const MAX_DEPTH = 32

export function encodeCommand(args: readonly (string | number)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.from(String(a), 'utf8')
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** Encode a reply value (used by fake services in tests and by tools that echo replies). */
export function encodeValue(v: RespValue): Buffer {
  if (v === null) return Buffer.from('$-1\r\n')
  if (v instanceof RespError) return Buffer.from(`-${v.message}\r\n`)
  if (typeof v === 'number') return Buffer.from(`:${v}\r\n`)
  if (typeof v === 'string') {
    const b = Buffer.from(v, 'utf8')
    return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')])
  }
  return Buffer.concat([Buffer.from(`*${v.length}\r\n`), ...v.map(encodeValue)])
}

const INCOMPLETE = Symbol('incomplete')

/** Feed bytes as they come; take out every complete value. */
export class RespReader {
  private buf: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): RespValue[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    const out: RespValue[] = []
    for (;;) {
      const r = this.parse(0, 0)
      if (r === INCOMPLETE) break
      out.push(r.value)
      this.buf = this.buf.subarray(r.end)
      if (this.buf.length === 0) break
    }
    return out
  }

  private line(at: number): { text: string; end: number } | typeof INCOMPLETE {
    const cr = this.buf.indexOf('\r\n', at)
    if (cr < 0) {
      if (this.buf.length - at > 64 * 1024) throw new RespProtocolError('RESP header line longer than 64 KiB')
      return INCOMPLETE
    }
    return { text: this.buf.toString('utf8', at, cr), end: cr + 2 }
  }

  private parse(at: number, depth: number): { value: RespValue; end: number } | typeof INCOMPLETE {
    if (depth > MAX_DEPTH) throw new RespProtocolError(`RESP nesting deeper than ${MAX_DEPTH}`)
    if (at >= this.buf.length) return INCOMPLETE
    const type = String.fromCharCode(this.buf[at])
    const l = this.line(at + 1)
    if (l === INCOMPLETE) return INCOMPLETE
    switch (type) {
      case '+':
        return { value: l.text, end: l.end }
      case '-':
        return { value: new RespError(l.text), end: l.end }
      case ':': {
        const n = Number(l.text)
        if (!/^-?\d+$/.test(l.text) || !Number.isSafeInteger(n)) throw new RespProtocolError(`bad RESP integer ${JSON.stringify(l.text.slice(0, 40))}`)
        return { value: n, end: l.end }
      }
      case '$': {
        const len = lengthOf(l.text, MAX_BULK, 'bulk string')
        if (len < 0) return { value: null, end: l.end }
        if (this.buf.length < l.end + len + 2) return INCOMPLETE
        if (this.buf[l.end + len] !== 13 || this.buf[l.end + len + 1] !== 10) throw new RespProtocolError('RESP bulk string not followed by CRLF')
        return { value: this.buf.toString('utf8', l.end, l.end + len), end: l.end + len + 2 }
      }
      case '*': {
        const n = lengthOf(l.text, MAX_ARRAY, 'array')
        if (n < 0) return { value: null, end: l.end }
        const items: RespValue[] = []
        let end = l.end
        for (let i = 0; i < n; i++) {
          const r = this.parse(end, depth + 1)
          if (r === INCOMPLETE) return INCOMPLETE
          items.push(r.value)
          end = r.end
        }
        return { value: items, end }
      }
      default:
        throw new RespProtocolError(`unknown RESP type byte ${JSON.stringify(type)}`)
    }
  }
}

function lengthOf(text: string, max: number, what: string): number {
  if (!/^-?\d+$/.test(text)) throw new RespProtocolError(`bad RESP ${what} length ${JSON.stringify(text.slice(0, 40))}`)
  const n = Number(text)
  if (n < -1 || n > max) throw new RespProtocolError(`RESP ${what} length ${n} out of range`)
  return n
}
