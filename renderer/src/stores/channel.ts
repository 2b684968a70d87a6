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

  function emit(text: string): void {
    backlog.push(text)
    if (backlog.length > 2 * BACKLOG_LINES) backlog = backlog.slice(-BACKLOG_LINES)
    for (const w of writers) w(text)
  }

  // Lines wait REORDER_MS and leave sorted by time. The event stream is in the console's
  // order, but agents' events carry their own (earlier) times: at lab start the agents' role
  // lines arrive after the console's "generation 1" line although they happened before it.
  const REORDER_MS = 200
  let pending: { ts: number; n: number; text: string }[] = []
  let order = 0
  let timer: ReturnType<typeof setTimeout> | null = null

  function flush(): void {
    timer = null
    const lines = pending.sort((x, y) => x.ts - y.ts || x.n - y.n)
    pending = []
    for (const l of lines) emit(l.text)
  }

  function write(text: string, ts: number): void {
    pending.push({ ts, n: order++, text })
    if (!timer) timer = setTimeout(flush, REORDER_MS)
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
      if (busyHidden)
        write(`\x1b[2m           … and ${busyHidden} more entries/ack lines in that second (up to entry ${busyLast})\x1b[0m\r\n`, busyWindow * 1000 + 999)
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
    if (ev.topic === 'terminal' && ev.stream === 'channel') write(ev.data, ev.ts)
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
      if (line) write(line + suffix + '\r\n', ev.ts)
    }
  }

  /** Forgets the text and the figures' history (a playback seek, or back to live): attached terminals are reset. */
  function clear(): void {
    if (timer) clearTimeout(timer)
    timer = null
    pending = []
    backlog = []
    recent.clear()
    busyWindow = busyShown = busyHidden = busyLast = 0
    entriesHistory.value = []
    lagHistory.value = []
    for (const w of writers) w('\x1bc')
  }

  /** A terminal attaches: it gets the backlog once, then every new chunk. */
  function attach(writer: (text: string) => void): () => void {
    if (backlog.length) writer(backlog.join(''))
    writers.add(writer)
    return () => writers.delete(writer)
  }

  return { channel, entriesHistory, lagHistory, sample, pushEvent, attach, clear }
})
