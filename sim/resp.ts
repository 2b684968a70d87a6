// Just enough RESP (the Redis protocol) for the simulator's clients and its test guest:
// requests are arrays of bulk strings; replies are simple strings, integers, bulk strings,
// nulls, errors and arrays.
const enc = new TextEncoder()
const dec = new TextDecoder()

export function encodeCommand(args: readonly string[]): Uint8Array {
  let s = `*${args.length}\r\n`
  for (const a of args) s += `$${enc.encode(a).length}\r\n${a}\r\n`
  return enc.encode(s)
}

export type RespValue = string | number | null | RespValue[] | { err: string }

/** Parses one complete RESP value; throws with the offset on anything malformed or incomplete. */
export function parseResp(bytes: Uint8Array): RespValue {
  const text = dec.decode(bytes)
  const [v, end] = parseAt(text, 0)
  if (end !== text.length) throw new Error(`RESP: ${text.length - end} trailing characters at offset ${end}`)
  return v
}

/** Parses every complete RESP value in a chunk (a stream may carry several replies at once). */
export function parseRespAll(bytes: Uint8Array): RespValue[] {
  const text = dec.decode(bytes)
  const out: RespValue[] = []
  for (let at = 0; at < text.length; ) {
    const [v, end] = parseAt(text, at)
    out.push(v)
    at = end
  }
  return out
}

function parseAt(s: string, at: number): [RespValue, number] {
  const eol = s.indexOf('\r\n', at)
  if (eol < 0) throw new Error(`RESP: incomplete line at offset ${at}`)
  const head = s.slice(at + 1, eol)
  const next = eol + 2
  switch (s[at]) {
    case '+':
      return [head, next]
    case '-':
      return [{ err: head }, next]
    case ':':
      return [Number(head), next]
    case '$': {
      const len = Number(head)
      if (len < 0) return [null, next]
      // lengths are in bytes; the simulator only uses ASCII, where bytes and characters agree
      if (s.slice(next + len, next + len + 2) !== '\r\n') throw new Error(`RESP: bulk string of ${len} at offset ${at} is not terminated`)
      return [s.slice(next, next + len), next + len + 2]
    }
    case '*': {
      const n = Number(head)
      if (n < 0) return [null, next]
      const items: RespValue[] = []
      let p = next
      for (let i = 0; i < n; i++) {
        const [v, e] = parseAt(s, p)
        items.push(v)
        p = e
      }
      return [items, p]
    }
    default:
      throw new Error(`RESP: unexpected type byte ${JSON.stringify(s[at])} at offset ${at}`)
  }
}

export const respSimple = (s: string): string => `+${s}\r\n`
export const respInt = (n: number): string => `:${n}\r\n`
export const respBulk = (s: string | null): string => (s === null ? '$-1\r\n' : `$${enc.encode(s).length}\r\n${s}\r\n`)
export const respError = (s: string): string => `-${s}\r\n`
