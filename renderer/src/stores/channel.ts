import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { ApiEvent } from '../../../main/api/contract'
import { formatAgentEvent } from '../format'
import { useLabStore } from './lab'

const BACKLOG_LINES = 1000

/**
 * The logging channel: its figures (from the status snapshot), a short history for the
 * sparklines, and the text stream for the channel terminal. Text is queued here and the
 * terminal drains it in batches, once per animation frame.
 */
export const useChannelStore = defineStore('channel', () => {
  const lab = useLabStore()
  const channel = computed(() => lab.status?.channel ?? null)
  const entriesHistory = ref<number[]>([])
  const lagHistory = ref<number[]>([])

  // not reactive on purpose: the terminal reads it imperatively, many lines a second
  let backlog: string[] = []
  const writers = new Set<(text: string) => void>()

  function sample(): void {
    const c = channel.value
    entriesHistory.value = [...entriesHistory.value.slice(-119), c?.entriesPerSec ?? 0]
    lagHistory.value = [...lagHistory.value.slice(-119), c?.lag ?? 0]
  }

  function write(text: string): void {
    backlog.push(text)
    if (backlog.length > BACKLOG_LINES) backlog = backlog.slice(-BACKLOG_LINES)
    for (const w of writers) w(text)
  }

  // Repeats collapse: "test-and-set unreachable" five times a second is one line every few
  // seconds with a count. Entries and acks are never repeats (their numbers move); any other
  // event with the same host, type and data as one shown less than REPEAT_MS ago is counted,
  // and the count is said on the next line shown for it.
  const REPEAT_MS = 5000
  const recent = new Map<string, { shownAt: number; hidden: number }>()

  // Entries and acks: at most BUSY_LINES a second are listed, the rest summed in one line a
  // second. Nobody reads two thousand lines a second, and writing them would cost the frames
  // the diagram needs; the diagram and the figures still get every one.
  const BUSY_LINES = 30
  let busyWindow = 0
  let busyShown = 0
  let busyHidden = 0
  let busyLast = 0

  function admitBusy(ev: Extract<ApiEvent, { topic: 'agent' }>): boolean {
    const w = Math.floor(ev.ts / 1000)
    if (w !== busyWindow) {
      if (busyHidden) write(`\x1b[2m           … and ${busyHidden} more entries/ack lines in that second (up to entry ${busyLast})\x1b[0m\r\n`)
      busyWindow = w
      busyShown = 0
      busyHidden = 0
    }
    if (busyShown < BUSY_LINES) {
      busyShown++
      return true
    }
    busyHidden++
    busyLast = Number(ev.data.last ?? ev.data.n) || busyLast
    return false
  }

  function pushEvent(ev: ApiEvent): void {
    if (ev.topic === 'terminal' && ev.stream === 'channel') write(ev.data)
    else if (ev.topic === 'agent') {
      if ((ev.type === 'entries' || ev.type === 'ack') && !admitBusy(ev)) return
      let suffix = ''
      if (ev.type !== 'entries' && ev.type !== 'ack') {
        const key = `${ev.host}|${ev.type}|${JSON.stringify(ev.data)}`
        const r = recent.get(key)
        if (r && ev.ts - r.shownAt < REPEAT_MS) {
          r.hidden++
          return
        }
        if (r?.hidden) suffix = `  \x1b[2m(×${r.hidden + 1} in the last ${Math.round((ev.ts - r.shownAt) / 1000)} s)\x1b[0m`
        if (recent.size > 256) recent.clear()
        recent.set(key, { shownAt: ev.ts, hidden: 0 })
      }
      const line = formatAgentEvent(ev)
      if (line) write(line + suffix + '\r\n')
    }
  }

  /** A terminal attaches: it gets the backlog once, then every new chunk. */
  function attach(writer: (text: string) => void): () => void {
    if (backlog.length) writer(backlog.join(''))
    writers.add(writer)
    return () => writers.delete(writer)
  }

  return { channel, entriesHistory, lagHistory, sample, pushEvent, attach }
})
