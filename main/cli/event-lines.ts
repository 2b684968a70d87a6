// `ftlab events` as an operator reads it: one line per event, the logging channel's
// telemetry (a 'channel' event every 200 ms per replica) summarised once a second per host,
// and a line that repeats (an isolated primary says "test-and-set unreachable" five times a
// second) printed once, then "… ×N" when something else happens on that host or at the end.
import type { LabEvent } from '../lab/lab-events.js'
import { formatDuration } from '../core/duration.js'
import { suspicionText } from '../api/contract.js'

const CHANNEL_WINDOW_MS = 1000

interface ChannelSum {
  firstTs: number
  lastTs: number
  entries: number
  bytes: number
  released: number
  holdMaxMs: number
  last: Record<string, unknown>
}

interface Repeat {
  text: string
  count: number
  firstTs: number
  lastTs: number
}

export class EventLines {
  private readonly channel = new Map<string, ChannelSum>()
  private readonly repeat = new Map<string, Repeat>()

  /** The lines `ev` adds (maybe none: a channel window still filling, a repeat). */
  push(ev: LabEvent): string[] {
    if (ev.type === 'caught-up') return []
    const host = ev.host ?? '-'
    const out: string[] = []
    if (ev.type === 'channel') {
      const sum = this.channel.get(host)
      if (sum && ev.ts - sum.firstTs >= CHANNEL_WINDOW_MS) out.push(...this.flushChannel(host))
      this.addChannel(host, ev)
      return out
    }
    // the channel summary of this host comes before what happens next on it
    out.push(...this.flushChannel(host))
    const text = describeEvent(ev)
    const r = this.repeat.get(host)
    if (r && r.text === text) {
      r.count++
      r.lastTs = ev.ts
      return out
    }
    out.push(...this.flushRepeat(host))
    this.repeat.set(host, { text, count: 0, firstTs: ev.ts, lastTs: ev.ts })
    out.push(line(ev.ts, host, ev.source, text))
    return out
  }

  /**
   * For a live stream: channel windows that are due, and the count of a line still
   * repeating (reported every `repeatEveryMs`, so a line that never stops still shows).
   */
  tick(now: number, repeatEveryMs = 5000): string[] {
    const out: string[] = []
    for (const [host, s] of this.channel) if (now - s.firstTs >= CHANNEL_WINDOW_MS) out.push(...this.flushChannel(host))
    for (const [host, r] of this.repeat) {
      if (r.count === 0 || now - r.firstTs < repeatEveryMs) continue
      out.push(...this.flushRepeat(host))
      this.repeat.set(host, { text: r.text, count: 0, firstTs: r.lastTs, lastTs: r.lastTs })
    }
    return out
  }

  /** Whatever is still held back: channel windows, repeat counts. */
  flush(): string[] {
    const hosts = new Set([...this.channel.keys(), ...this.repeat.keys()])
    return [...hosts].flatMap((h) => [...this.flushRepeat(h), ...this.flushChannel(h)])
  }

  private addChannel(host: string, ev: LabEvent): void {
    const d = ev.data
    const sum = this.channel.get(host) ?? { firstTs: ev.ts, lastTs: ev.ts, entries: 0, bytes: 0, released: 0, holdMaxMs: 0, last: d }
    sum.lastTs = ev.ts
    sum.entries += num(d.entries)
    sum.bytes += num(d.bytes)
    sum.released += num(d.released)
    sum.holdMaxMs = Math.max(sum.holdMaxMs, num(d.holdMaxMs))
    sum.last = d
    this.channel.set(host, sum)
  }

  private flushChannel(host: string): string[] {
    const s = this.channel.get(host)
    if (!s) return []
    this.channel.delete(host)
    const d = s.last
    const span = s.lastTs - s.firstTs
    const parts = [
      `channel ${str(d.role)} gen ${num(d.gen)}: ${s.entries} entries (${bytes(s.bytes)})${span > 0 ? ` in ${formatDuration(span)}` : ''}`,
      `last ${num(d.lastEntry)}, acked ${num(d.acked)}`,
      `${num(d.unackedEntries)} unacked`,
      `held ${num(d.heldOutputs)}`
    ]
    if (s.released) parts.push(`released ${s.released} (max hold ${round(s.holdMaxMs)} ms)`)
    return [line(s.firstTs, host, 'agent', parts.join(', '))]
  }

  private flushRepeat(host: string): string[] {
    const r = this.repeat.get(host)
    if (!r) return []
    this.repeat.delete(host)
    if (r.count === 0) return []
    return [line(r.lastTs, host, '', `… ×${r.count} more in ${formatDuration(r.lastTs - r.firstTs)}: ${r.text}`)]
  }
}

function line(ts: number, host: string, source: string, text: string): string {
  return `${new Date(ts).toISOString().slice(11, 23)}  ${host.padEnd(5)} ${source.padEnd(8)} ${text}`
}

/** One event in words; the fields an operator needs, not the raw JSON. */
export function describeEvent(ev: LabEvent): string {
  const d = ev.data
  switch (ev.type) {
    case 'role':
      return d.role === 'replica'
        ? `started as ${str(d.as)} of generation ${num(d.gen)}`
        : `started as ${str(d.role)}${d.listen ? ` on ${endpoint(d.listen)}` : ''}`
    case 'replica-role':
      return `now ${str(d.role)} in generation ${num(d.gen)}${d.reason ? `: ${str(d.reason)}` : ''}`
    case 'suspect':
      return suspicionText(d)
    case 'loop-stall':
      return `event loop stalled ${round(num(d.ms))} ms (as ${str(d.role)}): its timers and heartbeats waited that long`
    case 'tas':
      return `test-and-set for generation ${num(d.gen)}: ${str(d.result)}`
    case 'go-live':
      return `goes live in generation ${num(d.gen)} (replayed ${num(d.replayed)}, re-emitted ${num(d.reemitted)})`
    case 'diverged':
      return `DIVERGED at entry ${num(d.n)}: primary ${short(d.primaryHash)}, backup ${short(d.backupHash)}`
    case 'dropped':
      return `dropped ${str(d.what)}${d.from ? ` from ${str(d.from)}` : ''}: ${str(d.why)}`
    case 'snapshot':
      return `snapshot of generation ${num(d.gen)} ${str(d.direction)} (${bytes(num(d.bytes))})`
    case 'stall':
      return d.on ? 'logging channel full: clients paused' : 'logging channel drained: clients resumed'
    case 'channel-link':
      return `logging channel to ${str(d.peer ?? 'peer')} ${str(d.state)}${d.reason ? `: ${str(d.reason)}` : ''}`
    case 'disk-link':
      return `disk server link ${str(d.state)}${d.reason ? `: ${str(d.reason)}` : ''}`
    case 'disk-peer':
      return `replica ${str(d.peer)} ${d.up ? 'connected' : `disconnected${d.reason ? `: ${str(d.reason)}` : ''}`}`
    case 'disk-tas':
      return `test-and-set for generation ${num(d.gen)} from ${str(d.from)}: ${d.won ? 'won' : `refused (winner ${str(d.winner)})`}`
    case 'disk-generation':
      return `generation ${num(d.gen)} begins: primary ${str(d.primary)}, backup ${str(d.backup)}`
    case 'disk-fenced':
      return `fenced ${str(d.op)} from ${str(d.from)}: ${str(d.message)}`
    case 'arbiter':
      return `arbiter ${str(d.kind)} for generation ${num(d.gen)}${d.fencing ? `, fencing: ${str(d.fencing)}` : ''}`
    case 'fault':
      if (ev.source === 'operator')
        return `fault ${str(d.id ?? '')} ${str(d.what ?? d.kind)}${d.path ? ` via ${str(d.path)}` : ''}${typeof d.forMs === 'number' ? ` for ${formatDuration(d.forMs)}` : ''}${d.note ? ` (${str(d.note)})` : ''}`
      return `fault ${str(d.id)} applied${typeof d.healsAt === 'number' ? `, heals at ${new Date(d.healsAt).toISOString().slice(11, 19)}` : ''}`
    case 'heal':
      if (ev.source === 'operator') {
        const healed = Array.isArray(d.healed) ? d.healed.join(', ') : str(d.id)
        const warnings = Array.isArray(d.warnings) && d.warnings.length ? `; warnings: ${d.warnings.join('; ')}` : ''
        return `heal ${str(d.id)}${healed && healed !== d.id ? `: ${healed}` : ''}${warnings}`
      }
      return `fault ${str(d.id)} healed${d.reason ? ` (${str(d.reason)})` : ''}`
    case 'lab-start':
      return `lab started: ${str(d.guest)} guest, ${str(d.mode)} mode, generation ${num(d.gen)}`
    case 'restore-begin':
      return `restore begins: ${str(d.from)} → ${str(d.to)}, generation ${num(d.gen)}${d.machine && d.machine !== d.to ? ` on ${str(d.machine)}` : ''}`
    case 'restore':
      return `redundancy restored: ${str(d.from)} primary, ${str(d.to)} backup, generation ${num(d.gen)}`
    case 'power-on':
      return `power on ${str(d.host)} (${str(d.driver)}): ${str(d.detail)}`
    case 'agent':
      return d.state === 'started' ? `agent started (pid ${num(d.pid)})` : `agent ${str(d.state)}`
    case 'agent-error':
    case 'error':
    case 'protocol-error':
      return `${ev.type === 'error' ? 'error' : ev.type}${d.where ? ` in ${str(d.where)}` : ''}: ${str(d.message)}`
    default:
      return `${ev.type}${fields(d)}`
  }
}

function fields(d: Record<string, unknown>): string {
  const parts = Object.entries(d).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
  const s = parts.join(' ')
  return s ? ` ${s.length > 160 ? `${s.slice(0, 159)}…` : s}` : ''
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)
const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '-' : JSON.stringify(v))
const round = (v: number): number => Math.round(v * 10) / 10
const short = (v: unknown): string => str(v).slice(0, 12)

function endpoint(v: unknown): string {
  const e = v as { host?: unknown; port?: unknown }
  return `${str(e?.host)}:${str(e?.port)}`
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${round(n / 1024)} KiB`
  return `${round(n / 1024 / 1024)} MiB`
}
