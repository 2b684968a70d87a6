import type { ApiEvent } from '../../../main/api/contract'
import { useClient } from '../api/client'
import { useChannelStore } from './channel'
import { useDrillStore } from './drill'
import { useDiagramStore } from './diagram'
import { useLabStore } from './lab'
import { useLoadStore } from './load'
import { useMetricsStore } from './metrics'
import { useTimelineStore } from './timeline'
import { useSessionStore } from './session'
import { usePromptStore } from './prompt'
import { useTerminalStore } from './terminal'
import { usePlaybackStore } from './playback'

/**
 * Applies events to the views' stores, in the order given (no seq check: live events and a
 * recording's both come through here, so every view shows a playback as it showed the lab).
 * replay: old events (a reload's catch-up, a playback seek's window), which say nothing
 * about the clocks and take no sparkline samples.
 */
export function applyEvents(events: ApiEvent[], replay = false): void {
  const lab = useLabStore()
  const channel = useChannelStore()
  const load = useLoadStore()
  const timeline = useTimelineStore()
  const metrics = useMetricsStore()
  const diagram = useDiagramStore()
  const session = useSessionStore()
  const prompt = usePromptStore()
  const terminals = useTerminalStore()
  for (const ev of events) {
    switch (ev.topic) {
      case 'status':
        if (ev.status.state === 'starting' && lab.status?.state !== 'starting' && !replay) {
          // a new lab: the previous lab's figures and messages are not this one's
          metrics.clear()
          diagram.clear()
        }
        lab.apply(ev.status)
        load.apply(ev.status.load)
        metrics.record(ev.status, ev.ts)
        if (!replay) {
          channel.sample()
          load.sample()
        }
        diagram.loadTarget = ev.status.load.state === 'running' ? ev.status.load.target : null
        break
      case 'load':
        load.apply(ev.load)
        break
      case 'mark':
        timeline.add({ ...ev.mark, seq: ev.seq, ts: ev.ts })
        break
      case 'agent':
        diagram.push(ev, replay)
        channel.pushEvent(ev)
        break
      case 'terminal':
        // stream 'channel' is the logging channel pane; any other stream is a host terminal's id
        if (ev.stream === 'channel') channel.pushEvent(ev)
        else terminals.pushOutput(ev.stream, ev.data)
        break
      case 'deploy':
        session.onDeploy(ev)
        break
      case 'prompt':
        prompt.add(ev.prompt, ev.seq)
        break
      case 'prompt-done':
        prompt.done(ev.id, ev.answer)
        break
      case 'term':
        terminals.apply(ev.term)
        break
      case 'drill':
        // a recorded run belongs to the playback; a live one to the Drills view
        if (lab.playback) usePlaybackStore().onDrill(ev.run)
        else useDrillStore().apply(ev.run)
        break
    }
  }
}

/** Empties every view of what it showed (a playback seek, entering or leaving playback). */
export function clearViews(): void {
  useChannelStore().clear()
  useMetricsStore().clear()
  useDiagramStore().clear()
  useTimelineStore().clear()
  useTerminalStore().forget()
  const load = useLoadStore()
  load.load = null
  load.opsHistory = []
}

let resync: (() => Promise<void>) | null = null

/** Back from playback: the views are emptied and rebuilt from the console's ring, as after a reload. */
export async function resumeLive(): Promise<void> {
  clearViews()
  await resync?.()
}

/**
 * Connects the event stream to the stores, once, at start. Events are applied in seq
 * order; anything already seen (a reconnect's catch-up overlapping live events) is skipped.
 *
 * On the first connection the page replays the backend's ring (events.since 0) before
 * taking live events, so a reload gets its timeline, charts, diagram and channel pane
 * back; live events that arrive meanwhile wait and are applied after it, in order.
 *
 * While a recording plays, live events are kept out of the views (the operator's questions,
 * host keys and passwords, still come through); leaving playback replays the ring.
 */
export function startFeed(): () => void {
  const client = useClient()
  const lab = useLabStore()
  const load = useLoadStore()
  const terminals = useTerminalStore()
  let lastSeq = 0
  let replayed = false
  let waiting: ApiEvent[] | null = null
  client.setResumeFrom(() => lastSeq)

  function apply(events: ApiEvent[], replay = false): void {
    const fresh: ApiEvent[] = []
    for (const ev of events) {
      if (ev.seq <= lastSeq) continue
      lastSeq = ev.seq
      if (lab.playback && ev.topic !== 'prompt' && ev.topic !== 'prompt-done') continue
      fresh.push(ev)
    }
    applyEvents(fresh, replay)
  }

  async function replayRing(): Promise<void> {
    waiting = []
    try {
      const r = await client.call('events.since', { seq: 0 })
      apply(r.events, true)
    } catch {
      // the ring is a convenience: without it the page starts from the live stream
    } finally {
      const queued = waiting ?? []
      waiting = null
      apply(queued)
      replayed = true
    }
  }

  resync = async () => {
    lastSeq = 0
    await replayRing()
    await lab.refresh()
    if (lab.info) usePromptStore().sync(lab.info.prompts ?? [], lab.info.seq)
    if (lab.status) load.adopt(lab.status.load)
    if (lab.status?.kind === 'remote') await terminals.load()
  }

  const offConn = client.onConnection((state, detail) => {
    lab.setConnection(state, detail)
    if (state !== 'open') return
    void (async () => {
      if (!replayed) await replayRing()
      if (lab.playback) return // the recording's status stays on screen
      await lab.refresh()
      if (lab.info) usePromptStore().sync(lab.info.prompts ?? [], lab.info.seq)
      if (lab.status) load.adopt(lab.status.load)
    })()
  })

  const offEvents = client.onEvents((events: ApiEvent[]) => {
    if (waiting) waiting.push(...events)
    else apply(events)
  })
  return () => {
    resync = null
    offConn()
    offEvents()
  }
}
