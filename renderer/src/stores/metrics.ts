import { defineStore } from 'pinia'
import { shallowRef, triggerRef } from 'vue'
import type { FaultInfo, LabStatus } from '../../../main/api/contract'
import { faultWhat } from '../model'

/** One point of the throughput and latency charts, taken from a status snapshot. */
export interface MetricSample {
  ts: number
  ops: number
  p50: number
  p99: number
  entries: number
  lag: number
}

/** A fault over its duration, drawn as a band on the charts and the space-time diagram. */
export interface FaultSpan {
  id: string
  kind: FaultInfo['kind']
  target: FaultInfo['target']
  label: string
  start: number
  /** null while the fault is open */
  end: number | null
}

/** the charts show at most this much history; a status snapshot comes about 4 times a second */
export const METRICS_WINDOW_MS = 10 * 60_000
const MAX_SAMPLES = 4 * 60 * 10 + 100
const MAX_SPANS = 300

/**
 * Client throughput and latency over time, and every fault's span. Fed from the status
 * snapshots of the event stream (a reloaded page replays the backend's ring through here,
 * so the charts come back). Arrays are replaced in place and triggered by hand: at 4
 * samples a second over ten minutes, copying them on every sample would be the cost.
 */
export const useMetricsStore = defineStore('metrics', () => {
  const samples = shallowRef<MetricSample[]>([])
  const spans = shallowRef<FaultSpan[]>([])
  const open = new Map<string, FaultSpan>()

  function record(status: LabStatus, ts: number): void {
    const s = samples.value
    const l = status.load
    const running = l.state === 'running'
    // a snapshot replayed twice (reload catch-up then live) or out of order adds nothing
    if (s.length && ts <= s[s.length - 1].ts) return
    s.push({
      ts,
      ops: running ? l.opsPerSec : 0,
      p50: running ? l.latencyMs.p50 : 0,
      p99: running ? l.latencyMs.p99 : 0,
      entries: status.channel?.entriesPerSec ?? 0,
      lag: status.channel?.lag ?? 0
    })
    let drop = 0
    while (drop < s.length && (s.length - drop > MAX_SAMPLES || s[drop].ts < ts - METRICS_WINDOW_MS)) drop++
    if (drop) s.splice(0, drop)
    triggerRef(samples)
    trackFaults(status.faults, ts)
  }

  function trackFaults(faults: FaultInfo[], ts: number): void {
    let changed = false
    const seen = new Set<string>()
    for (const f of faults) {
      seen.add(f.id)
      if (open.has(f.id)) continue
      const span: FaultSpan = { id: f.id, kind: f.kind, target: f.target, label: faultWhat(f), start: Math.min(f.startedAt, ts), end: null }
      const old = spans.value.find((x) => x.id === f.id)
      if (old) continue // healed already; an old snapshot replayed
      open.set(f.id, span)
      spans.value.push(span)
      changed = true
    }
    for (const [id, span] of open) {
      if (seen.has(id)) continue
      span.end = ts
      open.delete(id)
      changed = true
    }
    if (spans.value.length > MAX_SPANS) spans.value.splice(0, spans.value.length - MAX_SPANS)
    if (changed) triggerRef(spans)
  }

  /** a new lab: its figures start afresh */
  function clear(): void {
    samples.value = []
    spans.value = []
    open.clear()
  }

  return { samples, spans, record, clear }
})
