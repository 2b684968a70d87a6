// How many bytes a log entry or snapshot takes on the logging channel, approximately.
// The primary bounds its logging-channel buffer in bytes, and the bound must not depend
// on which wire codec the edge uses, so the core measures the values themselves.
import type { GuestInput } from '../vmm/types.js'
import type { LogEntry } from './types.js'

/** Roughly the encoded size of a JSON-like value whose byte strings travel as raw bytes. */
export function approxBytes(v: unknown): number {
  if (v === null || v === undefined) return 1
  switch (typeof v) {
    case 'number':
      return 8
    case 'boolean':
      return 1
    case 'string':
      return v.length + 2
    case 'object': {
      if (v instanceof Uint8Array) return v.byteLength + 4
      let sum = 2
      if (Array.isArray(v)) {
        for (const x of v) sum += approxBytes(x) + 1
        return sum
      }
      // Object.entries' own enumerable string keys, without its arrays (this runs for every entry, on both replicas)
      for (const k in v) if (Object.prototype.hasOwnProperty.call(v, k)) sum += k.length + 3 + approxBytes((v as Record<string, unknown>)[k])
      return sum
    }
    default:
      return 0
  }
}

export function entryBytes(e: LogEntry): number {
  return approxBytes(e)
}

/** A short label for telemetry: what the guest was handed. */
export function describeInput(input: GuestInput): string {
  switch (input.t) {
    case 'boot':
      return 'boot'
    case 'open':
    case 'close':
      return `${input.t} ${input.conn}`
    case 'data':
      return `data ${input.conn} ${input.data.byteLength}B`
    case 'batch':
      return `batch ${input.reads.length} conns ${input.reads.reduce((n, r) => n + r.data.byteLength, 0)}B`
    case 'disk-read':
      return `disk-read block ${input.block}`
    case 'timer':
      return `timer ${input.id}`
    case 'disk-synced':
      return `disk-synced ${input.tag}`
  }
}
