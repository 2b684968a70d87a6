import type { ApiEvent } from '../../../main/api/contract'
import { useClient } from '../api/client'
import { useChannelStore } from './channel'
import { useLabStore } from './lab'
import { useLoadStore } from './load'
import { useTimelineStore } from './timeline'
import { useSessionStore } from './session'
import { usePromptStore } from './prompt'
import { useTerminalStore } from './terminal'

/**
 * Connects the event stream to the stores, once, at start. Events are applied in seq
 * order; anything already seen (a reconnect's catch-up overlapping live events) is skipped.
 */
export function startFeed(): () => void {
  const client = useClient()
  const lab = useLabStore()
  const channel = useChannelStore()
  const load = useLoadStore()
  const timeline = useTimelineStore()
  const session = useSessionStore()
  const prompt = usePromptStore()
  const terminals = useTerminalStore()
  let lastSeq = 0
  client.setResumeFrom(() => lastSeq)

  const offConn = client.onConnection((state, detail) => {
    lab.setConnection(state, detail)
    if (state === 'open') void lab.refresh()
  })

  const offEvents = client.onEvents((events: ApiEvent[]) => {
    for (const ev of events) {
      if (ev.seq <= lastSeq) continue
      lastSeq = ev.seq
      switch (ev.topic) {
        case 'status':
          lab.apply(ev.status)
          load.apply(ev.status.load)
          channel.sample()
          load.sample()
          break
        case 'load':
          load.apply(ev.load)
          break
        case 'mark':
          timeline.add({ ...ev.mark, seq: ev.seq, ts: ev.ts })
          break
        case 'agent':
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
          prompt.add(ev.prompt)
          break
        case 'prompt-done':
          prompt.done(ev.id, ev.answer)
          break
        case 'term':
          terminals.apply(ev.term)
          break
      }
    }
  })
  return () => {
    offConn()
    offEvents()
  }
}
