// Agent events → the console's events: raw `agent` events for the diagram and the feed,
// `mark`s for the timeline, and lines for the logging channel pane.
//
// Repeats are collapsed. An isolated primary retries test-and-set five times a second and
// says "unreachable" each time; the operator needs to read it once, and then to know that it
// keeps happening. The first occurrence passes; further ones within REPEAT_WINDOW_MS are
// counted; the next one after the window passes with `repeats` = how many were held back.
import type { HostId, Mark, ReplicaHostId } from '../api/contract.js'
import { HOST_IDS, REPLICA_IDS, asSilenceLimit, suspicionText } from '../api/contract.js'
import type { UnnumberedEvent } from '../api/event-log.js'
import type { LabEvent } from '../lab/lab-events.js'

export const REPEAT_WINDOW_MS = 5000

/** Counts repeats of one kind of event per key; says whether this one is shown. */
export class RepeatFilter {
  private readonly seen = new Map<string, { shownAt: number; held: number }>()

  constructor(private readonly windowMs = REPEAT_WINDOW_MS) {}

  /** null: hold this one back; otherwise show it, with how many were held back since the last shown. */
  admit(key: string, now: number): { repeats: number } | null {
    const s = this.seen.get(key)
    if (s && now - s.shownAt < this.windowMs) {
      s.held++
      return null
    }
    const repeats = s?.held ?? 0
    this.seen.set(key, { shownAt: now, held: 0 })
    return { repeats }
  }

  /** The condition ended (the host reached the disk server again): the next one is news. */
  forget(prefix: string): void {
    for (const k of this.seen.keys()) if (k.startsWith(prefix)) this.seen.delete(k)
  }

  clear(): void {
    this.seen.clear()
  }
}

export interface TranslatorSink {
  publish(ev: UnnumberedEvent): void
}

const isHost = (h: string | undefined): h is HostId => (HOST_IDS as readonly string[]).includes(h ?? '')

export class EventTranslator {
  private readonly repeats = new RepeatFilter()
  /** the primary's last ack per generation, to report acks as they advance */
  private readonly lastAcked = new Map<string, number>()

  constructor(
    private readonly sink: TranslatorSink,
    /** the replica a host's logging channel goes to, from the latest status */
    private readonly peerOf: (host: HostId) => string | null = () => null
  ) {}

  reset(): void {
    this.repeats.clear()
    this.lastAcked.clear()
  }

  translate(ev: LabEvent): void {
    if (ev.source === 'operator') return // the console marks its own actions
    if (!isHost(ev.host)) return
    const host = ev.host
    const d = ev.data
    const agent = (type: string, data: Record<string, unknown>) => this.sink.publish({ ts: ev.ts, topic: 'agent', host, type, data })
    const mark = (m: Mark) => this.sink.publish({ ts: ev.ts, topic: 'mark', mark: m })
    const line = (text: string) => this.channelLine(text, ev.ts)
    if (ev.source === 'lab') {
      if (ev.type === 'events-missed') line(`\x1b[33m── ${host}: ${String(d.missed)} events were lost from the agent's ring ──\x1b[0m`)
      else if (ev.type === 'protocol-error') mark({ kind: 'error', label: `${host}: control channel: ${String(d.message)}`, host })
      return
    }
    switch (ev.type) {
      case 'channel':
        this.onChannel(host, ev.ts, d)
        return
      case 'replica-role':
        agent('role', { role: d.role, gen: d.gen, reason: d.reason })
        if (d.role === 'halted') mark({ kind: 'halt', label: `${host} halts: ${String(d.reason)}`, host })
        return
      case 'role':
        // the agent took its role; the replica's own 'replica-role' events say what it became
        if (d.role === 'disk-server') agent('role', { role: 'disk-server', gen: 0, reason: 'lab start' })
        else agent('role', { role: d.as, gen: d.gen, reason: `started as ${String(d.as)}` })
        return
      case 'suspect': {
        const shown = this.repeats.admit(`${host}:suspect:${String(d.peer)}`, ev.ts)
        if (!shown) return
        const silent = Math.round(Number(d.silentMs))
        const limit = asSilenceLimit(d.limit)
        const timeoutMs = typeof d.timeoutMs === 'number' ? Math.round(d.timeoutMs) : undefined
        agent('suspect', { peer: d.peer, silentMs: silent, timeoutMs, ...(limit ? { limit } : {}), repeats: shown.repeats })
        mark({ kind: 'suspect', label: `${host} ${suspicionText({ ...d, silentMs: silent })}${again(shown.repeats)}`, host })
        return
      }
      case 'tas': {
        if (d.result === 'unreachable') {
          const shown = this.repeats.admit(`${host}:tas-unreachable`, ev.ts)
          if (!shown) return
          agent('tas', { gen: d.gen, result: d.result, repeats: shown.repeats })
          line(
            `\x1b[33m── ${host} cannot reach the test-and-set (gen ${String(d.gen)}): it holds its outputs and cannot go live${again(shown.repeats)} ──\x1b[0m`
          )
          return
        }
        this.repeats.forget(`${host}:tas-unreachable`)
        agent('tas', { gen: d.gen, result: d.result })
        mark({ kind: 'tas', label: `${host} ${String(d.result)} test-and-set (gen ${String(d.gen)})`, host })
        return
      }
      case 'go-live':
        this.repeats.forget(`${host}:`)
        agent('go-live', { gen: d.gen, replayed: d.replayed, reemitted: d.reemitted })
        mark({
          kind: 'go-live',
          label: `${host} goes live (gen ${String(d.gen)}${Number(d.reemitted) ? `, ${String(d.reemitted)} outputs re-emitted` : ''})`,
          host
        })
        line(
          `\x1b[1;33m── ${host} goes live in generation ${String(d.gen)}: replayed through entry ${String(d.replayed)}, re-emitted ${String(d.reemitted)} ──\x1b[0m`
        )
        return
      case 'diverged':
        agent('diverged', { n: d.n, primaryHash: d.primaryHash, backupHash: d.backupHash })
        mark({ kind: 'diverged', label: `${host}: replicas diverged at entry ${String(d.n)}`, host })
        return
      case 'fault': {
        const f = (d.fault ?? {}) as { kind?: string }
        agent('fault', { id: d.id, kind: f.kind, deadlineMs: Math.max(0, Number(d.healsAt) - ev.ts) })
        return
      }
      case 'heal':
        agent('heal', { id: d.id, why: d.reason })
        return
      case 'error':
      case 'agent-error': {
        const text = `${d.where ? `${String(d.where)}: ` : ''}${String(d.message)}`
        const shown = this.repeats.admit(`${host}:error:${text}`, ev.ts)
        if (!shown) return
        agent(ev.type, { ...d, repeats: shown.repeats })
        mark({ kind: 'error', label: `${host}: ${text}${again(shown.repeats)}`, host })
        return
      }
      default:
        // snapshot, stall, dropped, channel-link, disk-link, agent, …: shown as they are
        agent(ev.type, d)
    }
  }

  /** The primary's 200 ms channel window becomes an 'entries' event and an 'ack' event. */
  private onChannel(host: HostId, ts: number, d: Record<string, unknown>): void {
    if (d.role !== 'primary') return // the backup's window repeats the same entries
    const peer = this.peerOf(host) ?? (host === 'a' ? 'b' : 'a')
    const count = Number(d.entries) || 0
    if (count > 0) {
      const inputs = inputMix(Array.isArray(d.samples) ? (d.samples as { input?: unknown }[]) : [], count)
      this.sink.publish({ ts, topic: 'agent', host, type: 'entries', data: { to: peer, first: d.first, last: d.last, count, bytes: d.bytes, inputs } })
    }
    const acked = Number(d.acked) || 0
    const key = `${host}:${String(d.gen)}`
    if (acked > (this.lastAcked.get(key) ?? 0)) {
      this.lastAcked.set(key, acked)
      if ((REPLICA_IDS as readonly string[]).includes(peer)) {
        this.sink.publish({
          ts,
          topic: 'agent',
          host: peer as ReplicaHostId,
          type: 'ack',
          data: { n: acked, heldOutputs: d.heldOutputs, holdP50Ms: d.holdP50Ms, holdMaxMs: d.holdMaxMs }
        })
      }
    }
  }

  channelLine(text: string, ts = Date.now()): void {
    this.sink.publish({ ts, topic: 'terminal', stream: 'channel', data: text + '\r\n' })
  }
}

function again(repeats: number): string {
  return repeats > 0 ? ` (again; ${repeats} more since the last report)` : ''
}

/**
 * Which inputs a window of entries carried. The agent samples only the first few entries of
 * each window, so the sample's mix is scaled to the window's count, not shown as counted.
 */
export function inputMix(samples: { input?: unknown }[], count: number): Record<string, number> {
  const seen: Record<string, number> = {}
  for (const s of samples) {
    const kind = String(s.input ?? '?').split(' ')[0]
    seen[kind] = (seen[kind] ?? 0) + 1
  }
  const n = samples.length
  if (n === 0 || n >= count) return seen
  const out: Record<string, number> = {}
  let left = count
  const kinds = Object.entries(seen).sort((x, y) => y[1] - x[1])
  kinds.forEach(([k, v], i) => {
    const share = i === kinds.length - 1 ? left : Math.round((v * count) / n)
    out[k] = share
    left -= share
  })
  return out
}
