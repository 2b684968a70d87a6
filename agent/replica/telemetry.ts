// Logging-channel figures for the console. Entries and acks come thousands a second, far
// too many to put one event each into the agent's ring (the console would see only the
// last second of a busy run), so they are summed here and reported every flush, with a
// few sample entries for the channel pane. Rare things (suspicion, go-live) go straight out.
import type { CoreStatus } from './core.js'
import type { PeerMsg } from './types.js'

const HOLD_SAMPLES = 4096
const SAMPLE_ENTRIES = 12

export interface OutputRuleFigures {
  /** outputs released in the current role (see newRolePeriod) */
  released: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

export class ChannelTelemetry {
  private window = {
    entries: 0,
    bytes: 0,
    first: 0,
    last: 0,
    ack: 0,
    samples: [] as { n: number; bytes: number; input: string }[],
    sentEntries: 0,
    holds: [] as number[]
  }
  private entriesSent = 0
  private entriesReceived = 0
  private releasedCount = 0
  /** a ring of recent hold times: enough for stable percentiles, bounded memory */
  private holds = new Float64Array(HOLD_SAMPLES)
  private holdCount = 0
  private holdMax = 0

  constructor(private readonly emit: (type: string, data: Record<string, unknown>) => void) {}

  entry(n: number, bytes: number, input: string): void {
    const w = this.window
    if (w.entries === 0) w.first = n
    w.entries++
    w.bytes += bytes
    w.last = n
    if (w.samples.length < SAMPLE_ENTRIES) w.samples.push({ n, bytes, input })
  }

  ack(n: number): void {
    this.window.ack = n
  }

  sent(msg: Extract<PeerMsg, { t: 'entries' }>): void {
    this.entriesSent += msg.entries.length
    this.window.sentEntries += msg.entries.length
  }

  received(count: number): void {
    this.entriesReceived += count
  }

  released(heldMs: number): void {
    this.releasedCount++
    this.holds[this.holdCount++ % HOLD_SAMPLES] = heldMs
    if (heldMs > this.holdMax) this.holdMax = heldMs
    this.window.holds.push(heldMs)
  }

  /**
   * Hold times mean something only within one role: a primary's are Output Rule waits, a
   * replica live alone releases at once. A role change starts the figures afresh, so the
   * figures of a primary in a new generation are not diluted by the zeros of its time alone.
   */
  newRolePeriod(): void {
    this.releasedCount = 0
    this.holdCount = 0
    this.holdMax = 0
  }

  totals(): { entriesSent: number; entriesReceived: number; outputRule: OutputRuleFigures } {
    return { entriesSent: this.entriesSent, entriesReceived: this.entriesReceived, outputRule: this.outputRule() }
  }

  outputRule(): OutputRuleFigures {
    const n = Math.min(this.holdCount, HOLD_SAMPLES)
    const sorted = Array.from(this.holds.subarray(0, n)).sort((a, b) => a - b)
    const at = (q: number) => (n ? sorted[Math.min(n - 1, Math.floor(q * n))] : 0)
    return { released: this.releasedCount, p50Ms: round(at(0.5)), p99Ms: round(at(0.99)), maxMs: round(this.holdMax) }
  }

  /** Emit one 'channel' event for the window, if anything happened in it. */
  flush(s: CoreStatus): void {
    const w = this.window
    if (w.entries === 0 && w.ack === 0 && w.holds.length === 0 && w.sentEntries === 0) return
    const holds = w.holds.sort((a, b) => a - b)
    this.emit('channel', {
      role: s.role,
      gen: s.gen,
      entries: w.entries,
      bytes: w.bytes,
      first: w.first,
      last: w.last,
      acked: s.acked,
      lastEntry: s.lastEntry,
      unackedEntries: s.unackedEntries,
      unackedBytes: s.unackedBytes,
      heldOutputs: s.heldOutputs,
      released: holds.length,
      holdP50Ms: holds.length ? round(holds[Math.floor(holds.length / 2)]) : 0,
      holdMaxMs: holds.length ? round(holds[holds.length - 1]) : 0,
      samples: w.samples
    })
    this.window = { entries: 0, bytes: 0, first: 0, last: 0, ack: 0, samples: [], sentEntries: 0, holds: [] }
  }
}

const round = (ms: number) => Math.round(ms * 1000) / 1000
