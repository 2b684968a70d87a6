import { defineStore } from 'pinia'
import { computed, ref, shallowRef } from 'vue'
import { PLAYBACK_JUMP_KINDS, type DrillRun, type PlaybackOpened, type PlaybackStep, type RecordingMark } from '../../../main/api/contract'
import { useClient } from '../api/client'
import { applyEvents, clearViews, resumeLive } from './feed'
import { useDiagramStore } from './diagram'
import { useLabStore } from './lab'
import { useLoadStore } from './load'
import { useSessionStore } from './session'
import { useTerminalStore } from './terminal'
import { useTimelineStore } from './timeline'

export const SPEEDS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50] as const
/** how often playing reads on, wall clock */
const TICK_MS = 100
/** at most this many events per read; a busier stretch plays slower than asked rather than freezing the page */
const READ_MAX = 4000

/**
 * A recording driving the UI. Opening one empties the views and keeps live events out of
 * them; a seek asks the console for the state at a moment and the recorded events of the
 * window before it, and feeds them to the same stores the live stream feeds (feed.ts), so
 * the host cards, channel pane, diagram, charts, invariants, marks and terminals all follow
 * the scrubber. Playing reads on from the seek record by record at 0.1x to 50x.
 */
export const usePlaybackStore = defineStore('playback', () => {
  const lab = useLabStore()
  const opened = shallowRef<PlaybackOpened | null>(null)
  /** the recording's moment the views show (console clock, ms) */
  const t = ref(0)
  /** records applied up to t: reads go on from here */
  let n = 0
  const playing = ref(false)
  const speed = ref<number>(1)
  const busy = ref(false)
  const error = ref<string | null>(null)
  /** drill and soak runs in the recording, as of t */
  const drills = ref<DrillRun[]>([])
  /** the agent event a step landed on */
  const stepped = ref<PlaybackStep | null>(null)
  let timer: ReturnType<typeof setInterval> | null = null
  let lastTick = 0
  let reading = false
  /** a seek asked for while another is in flight: only the newest is run next */
  let queuedSeek: number | null = null

  const active = computed(() => opened.value !== null)
  const name = computed(() => opened.value?.info.name ?? null)
  const t0 = computed(() => opened.value?.t0 ?? 0)
  const t1 = computed(() => opened.value?.t1 ?? 0)
  const marks = computed<RecordingMark[]>(() => opened.value?.marks ?? [])
  const jumpMarks = computed(() => marks.value.filter((m) => PLAYBACK_JUMP_KINDS.includes(m.kind)))

  function fail(err: unknown): void {
    error.value = err instanceof Error ? err.message : String(err)
  }

  async function open(recording: string): Promise<void> {
    if (opened.value) await close(false)
    busy.value = true
    error.value = null
    try {
      const o = await useClient().call('playback.open', { name: recording })
      opened.value = o
      lab.playback = o.info.name
      useDiagramStore().setClock(() => t.value)
      useSessionStore().closePicker()
      await seek(o.t0)
    } catch (err) {
      fail(err)
    } finally {
      busy.value = false
    }
  }

  /** Rebuilds every view at moment `at` from the nearest keyframe (the console keeps a seek under 100 ms in an hour-long recording). */
  async function seek(at: number): Promise<void> {
    const o = opened.value
    if (!o) return
    at = Math.min(o.t1, Math.max(o.t0, at))
    if (reading) {
      queuedSeek = at
      t.value = at
      return
    }
    reading = true
    try {
      for (let next: number | null = at; next !== null; next = queuedSeek) {
        queuedSeek = null
        const f = await useClient().call('playback.seek', { id: o.id, t: next })
        if (opened.value !== o) return
        clearViews()
        useTimelineStore().highlight(null)
        stepped.value = null
        const diagram = useDiagramStore()
        diagram.setPaused(false)
        t.value = f.t
        n = f.n
        const terminals = useTerminalStore()
        for (const term of f.terms) terminals.apply(term)
        drills.value = f.drills
        applyEvents(f.events, true)
        if (f.status) {
          lab.apply(f.status)
          useLoadStore().apply(f.status.load)
        } else lab.status = null
      }
    } catch (err) {
      fail(err)
      playing.value = false
    } finally {
      reading = false
    }
  }

  /** Reads on to moment `to` (or to record `upto`), feeding the views as the live stream would. */
  async function advance(to: number, upto?: number): Promise<void> {
    const o = opened.value
    if (!o || reading) return
    reading = true
    try {
      const c = await useClient().call('playback.read', { id: o.id, n, to, max: READ_MAX, ...(upto === undefined ? {} : { upto }) })
      if (opened.value !== o) return
      n = c.n
      t.value = Math.min(o.t1, c.t)
      applyEvents(c.events)
      if (c.end) {
        t.value = o.t1
        pause()
      }
    } catch (err) {
      fail(err)
      pause()
    } finally {
      reading = false
    }
    if (queuedSeek !== null) await seek(queuedSeek)
  }

  function tick(): void {
    const now = performance.now()
    const dt = now - lastTick
    lastTick = now
    if (!playing.value || reading) return
    void advance(t.value + dt * speed.value)
  }

  function play(): void {
    const o = opened.value
    if (!o || playing.value) return
    if (t.value >= o.t1) void seek(o.t0)
    playing.value = true
    stepped.value = null
    useDiagramStore().setPaused(false)
    lastTick = performance.now()
    timer ??= setInterval(tick, TICK_MS)
  }

  function pause(): void {
    playing.value = false
    if (timer) clearInterval(timer)
    timer = null
  }

  function setSpeed(x: number): void {
    speed.value = Math.min(50, Math.max(0.1, x))
  }

  /** The next (dir 1) or previous marked moment: fault, heal, suspicion, test-and-set, go-live, halt, restore. */
  async function jump(dir: 1 | -1): Promise<RecordingMark | null> {
    const list = jumpMarks.value
    const m = dir === 1 ? list.find((x) => x.t > t.value) : [...list].reverse().find((x) => x.t < t.value - 1)
    if (!m) return null
    pause()
    await seek(m.t)
    useTimelineStore().highlight(m.seq)
    return m
  }

  /** One logging-channel entry or ack on (dir 1) or back (dir -1), highlighted on the diagram. */
  async function step(dir: 1 | -1): Promise<void> {
    const o = opened.value
    if (!o || reading) return
    pause()
    try {
      // from the record the last step landed on (a seek back lands after every record of its moment), else from the moment shown
      const from = stepped.value ? stepped.value.n : dir === 1 ? n - 1 : n
      const s = await useClient().call('playback.step', { id: o.id, n: Math.max(0, from), dir })
      if (!s) return
      if (dir === 1) await advance(s.t, s.n)
      else await seek(s.t)
      stepped.value = s
      useDiagramStore().focus(s.seq, s.t)
    } catch (err) {
      fail(err)
    }
  }

  function onDrill(run: DrillRun): void {
    const i = drills.value.findIndex((d) => d.id === run.id)
    if (i >= 0) drills.value[i] = run
    else drills.value.push(run)
  }

  /** Leaves playback: the views go back to the lab, rebuilt from the console's ring. */
  async function close(resume = true): Promise<void> {
    const o = opened.value
    pause()
    opened.value = null
    lab.playback = null
    drills.value = []
    stepped.value = null
    useDiagramStore().setClock(null)
    if (o)
      await useClient()
        .call('playback.close', { id: o.id })
        .catch(() => {})
    if (resume) await resumeLive()
  }

  return {
    opened,
    active,
    name,
    t,
    t0,
    t1,
    marks,
    jumpMarks,
    playing,
    speed,
    busy,
    error,
    drills,
    stepped,
    open,
    seek,
    play,
    pause,
    setSpeed,
    jump,
    step,
    onDrill,
    close
  }
})
