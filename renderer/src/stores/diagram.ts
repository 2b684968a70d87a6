import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { ApiEvent, HostId } from '../../../main/api/contract'

/** One agent event as the space-time diagram keeps it. */
export interface DiagramEvent {
  seq: number
  ts: number
  host: HostId
  type: string
  data: Record<string, unknown>
}

/** the diagram keeps this much history, whatever the rate */
export const DIAGRAM_KEEP_MS = 60_000
const MAX_EVENTS = 20_000

/** events the diagram draws; the rest (status windows, links, housekeeping) are not kept */
const DRAWN = new Set([
  'entries',
  'ack',
  'role',
  'replica-role',
  'suspect',
  'tas',
  'disk-tas',
  'go-live',
  'fault',
  'heal',
  'stall',
  'snapshot',
  'diverged',
  'dropped',
  'channel-link',
  'disk-link'
])

/**
 * The space-time diagram's memory: a ring of the last minute of agent events (at most
 * MAX_EVENTS, oldest dropped first), plus the view's state (paused, zoom, pan, focus).
 * The ring is deliberately not reactive: the canvas reads it every frame, and a version
 * counter tells it when something changed.
 */
export const useDiagramStore = defineStore('diagram', () => {
  let ring: DiagramEvent[] = []
  let head = 0
  /** bumped on every change; the canvas redraws when it moved */
  let version = 0

  const paused = ref(false)
  /** width of the visible window, ms */
  const spanMs = ref(8_000)
  /** right edge of the window while paused (console clock) */
  const pausedAt = ref(0)
  /** the event to highlight (evidence clicked elsewhere), by seq */
  const focusSeq = ref<number | null>(null)
  /** the moment focused (a timeline mark is not an agent event: it gets a line, not a ring) */
  const focusTs = ref<number | null>(null)
  /** where the clients are sending, for the clients lane's arrows */
  const loadTarget = ref<HostId | null>(null)
  /** console clock minus this page's clock, from the newest event (agents run on other clocks) */
  let skew = 0
  /** playback drives the diagram's clock (the recording's moment), null when live */
  let clock: (() => number) | null = null

  /** replayed: from the backend's ring after a reload, old by nature, so it says nothing about the clocks */
  function push(ev: Extract<ApiEvent, { topic: 'agent' }>, replayed = false): void {
    if (!DRAWN.has(ev.type)) return
    ring.push({ seq: ev.seq, ts: ev.ts, host: ev.host, type: ev.type, data: ev.data })
    // follows the console's clock where it runs ahead of this page's; events that arrive late
    // (agent times, polled) do not drag the live edge back and forth
    if (!replayed) skew = Math.max(skew * 0.98, ev.ts - Date.now())
    version++
    const live = ring.length - head
    if (live > MAX_EVENTS) head += live - MAX_EVENTS
    const cutoff = ev.ts - DIAGRAM_KEEP_MS
    while (head < ring.length && ring[head].ts < cutoff) head++
    // compact now and then rather than shifting on every event
    if (head > 4096 && head * 2 > ring.length) {
      ring = ring.slice(head)
      head = 0
    }
  }

  /** the events in the ring, oldest first (a view: do not keep it across frames) */
  function events(): { list: DiagramEvent[]; from: number } {
    return { list: ring, from: head }
  }

  /** the newest event's time, or 0 */
  function newestTs(): number {
    return ring.length > head ? ring[ring.length - 1].ts : 0
  }

  function size(): number {
    return ring.length - head
  }

  function getVersion(): number {
    return version
  }

  /** the console clock now, as well as this page can tell */
  function now(): number {
    return clock ? clock() : Date.now() + skew
  }

  /** Playback's clock in place of the console's, or null to follow the console again. */
  function setClock(c: (() => number) | null): void {
    clock = c
    version++
  }

  function setPaused(p: boolean): void {
    if (p && !paused.value) pausedAt.value = now()
    paused.value = p
    if (!p) {
      focusSeq.value = null
      focusTs.value = null
    }
    version++
  }

  function zoom(factor: number): void {
    spanMs.value = Math.min(DIAGRAM_KEEP_MS, Math.max(200, Math.round(spanMs.value * factor)))
    version++
  }

  /** move a paused window by ms (negative: back in time), within what the ring holds */
  function pan(ms: number): void {
    if (!paused.value) setPaused(true)
    const oldest = ring[head]?.ts ?? now()
    pausedAt.value = Math.min(now(), Math.max(oldest + spanMs.value / 2, pausedAt.value + ms))
    version++
  }

  /** pause with the event `seq` in the middle of the window, highlighted */
  function focus(seq: number, ts?: number): boolean {
    const ev = ring.slice(head).find((e) => e.seq === seq)
    const at = ev?.ts ?? ts
    if (at === undefined) return false
    paused.value = true
    focusSeq.value = seq
    focusTs.value = at
    pausedAt.value = at + spanMs.value / 2
    version++
    return !!ev
  }

  function clear(): void {
    ring = []
    head = 0
    version++
  }

  return {
    paused,
    spanMs,
    pausedAt,
    focusSeq,
    focusTs,
    loadTarget,
    push,
    events,
    newestTs,
    size,
    getVersion,
    now,
    setClock,
    setPaused,
    zoom,
    pan,
    focus,
    clear
  }
})
