// Type-checked by tsconfig.web.json (it imports renderer sources, which the Node project cannot).
// The playback store without a browser, over a fake console: a seek rebuilds the views from
// the frame, the diagram follows the recording's clock, reading on feeds the same stores,
// operator actions are refused while a recording plays, and leaving gives the views back.
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import {
  downHostStatus,
  stoppedLabStatus,
  type ApiEvent,
  type HostStatus,
  type LabStatus,
  type PlaybackChunk,
  type PlaybackFrame,
  type PlaybackOpened
} from '../../../main/api/contract'

const calls: { method: string; params: unknown }[] = []
let answer: (method: string, params: Record<string, unknown>) => unknown = () => ({})
vi.mock('../../../renderer/src/api/client', () => ({
  useClient: () => ({
    transport: 'websocket',
    call: (method: string, params: Record<string, unknown> = {}) => {
      calls.push({ method, params })
      return Promise.resolve(answer(method, params))
    }
  }),
  readToken: () => 'token'
}))

const { usePlaybackStore } = await import('../../../renderer/src/stores/playback')
const { useLabStore } = await import('../../../renderer/src/stores/lab')
const { useDiagramStore } = await import('../../../renderer/src/stores/diagram')
const { useTimelineStore } = await import('../../../renderer/src/stores/timeline')
const { applyEvents } = await import('../../../renderer/src/stores/feed')
const { useTerminalStore } = await import('../../../renderer/src/stores/terminal')

const T0 = 1_800_000_000_000

function host(id: 'a' | 'b' | 'disk', role: HostStatus['role']): HostStatus {
  return { ...downHostStatus(id), reachable: role !== 'down', role, gen: 1 }
}

function status(a: HostStatus['role'], b: HostStatus['role']): LabStatus {
  return {
    ...stoppedLabStatus(),
    state: 'running',
    kind: 'simulated',
    name: 'simulated',
    guest: 'kv',
    mode: 'rsm',
    gen: 1,
    startedAt: T0,
    hosts: [host('a', a), host('b', b), host('disk', 'disk-server')]
  }
}

const opened: PlaybackOpened = {
  id: 'p1',
  info: {
    name: 'sim-1',
    bytes: 1000,
    lab: { kind: 'simulated', name: 'simulated', guest: 'kv', mode: 'rsm' },
    startedAt: T0,
    durationMs: 10_000,
    records: 100,
    marks: 2,
    closed: true,
    problems: [],
    error: null,
    live: false
  },
  t0: T0,
  t1: T0 + 10_000,
  records: 100,
  marks: [
    { t: T0 + 4000, seq: 40, kind: 'fault', label: 'power cut a', host: 'a' },
    { t: T0 + 5000, seq: 50, kind: 'go-live', label: 'b goes live (gen 1)', host: 'b' }
  ]
}

beforeEach(() => {
  setActivePinia(createPinia())
  calls.length = 0
  answer = (method, p): unknown => {
    if (method === 'playback.open') return opened
    if (method === 'playback.seek') {
      const t = Number(p.t)
      const after = t >= T0 + 5000
      const events: ApiEvent[] = [
        { seq: 1, ts: T0, topic: 'mark', mark: { kind: 'start', label: 'lab start: simulated' } },
        ...(after ? [{ seq: 50, ts: T0 + 5000, topic: 'mark', mark: { kind: 'go-live', label: 'b goes live (gen 1)', host: 'b' } } as ApiEvent] : []),
        { seq: 60, ts: t - 10, topic: 'agent', host: 'b', type: 'ack', data: { n: 3 } },
        { seq: 0, ts: t, topic: 'terminal', stream: 't1', data: after ? '$ uptime\r\n' : '$ ' }
      ]
      const frame: PlaybackFrame = {
        t,
        n: after ? 60 : 30,
        status: after ? status('down', 'live') : status('primary', 'backup'),
        events,
        terms: [{ id: 't1', host: 'a', title: 'a: shell', state: 'open', error: null }],
        drills: []
      }
      return frame
    }
    if (method === 'playback.read') {
      const chunk: PlaybackChunk = {
        events: [{ seq: 70, ts: Number(p.to) - 1, topic: 'status', status: status('down', 'live') }],
        n: Number(p.n) + 1,
        t: Number(p.to),
        end: false
      }
      return chunk
    }
    return { ok: true }
  }
})

describe('the playback store', () => {
  it('opens at the recording start, with the frame in the views and the diagram on the recording clock', async () => {
    const pb = usePlaybackStore()
    const lab = useLabStore()
    await pb.open('sim-1')
    expect(pb.active).toBe(true)
    expect(lab.playback).toBe('sim-1')
    expect(lab.status?.hosts.map((h) => h.role)).toEqual(['primary', 'backup', 'disk-server'])
    expect(useTimelineStore().marks.map((m) => m.kind)).toEqual(['start'])
    expect(useDiagramStore().now()).toBe(T0)
    expect(useDiagramStore().size()).toBe(1)
  })

  it('a jump to the next marked moment seeks there and highlights its mark; the views show what the frame says', async () => {
    const pb = usePlaybackStore()
    await pb.open('sim-1')
    const m = await pb.jump(1)
    expect(m?.kind).toBe('fault')
    await pb.jump(1)
    expect(pb.t).toBe(T0 + 5000)
    expect(calls.filter((c) => c.method === 'playback.seek').map((c) => (c.params as { t: number }).t)).toEqual([T0, T0 + 4000, T0 + 5000])
    expect(useLabStore().status?.hosts.map((h) => h.role)).toEqual(['down', 'live', 'disk-server'])
    expect(useTimelineStore().marks.map((m) => m.kind)).toEqual(['start', 'go-live'])
    expect(useTimelineStore().highlighted).toBe(50)
    expect(useDiagramStore().now()).toBe(T0 + 5000)
  })

  it("redraws a host terminal's screen from a clean one at each seek", async () => {
    const pb = usePlaybackStore()
    await pb.open('sim-1')
    const terminals = useTerminalStore()
    expect(terminals.terms.map((t) => t.id)).toEqual(['t1'])
    const screen: string[] = []
    terminals.attach('t1', (text) => screen.push(text))
    await pb.seek(T0 + 6000)
    expect(screen).toEqual(['$ ', '\x1bc', '$ uptime\r\n'])
  })

  it('refuses operator actions while a recording plays, and keeps drill runs from the recording', async () => {
    const pb = usePlaybackStore()
    const lab = useLabStore()
    await pb.open('sim-1')
    const r = await lab.act('fault.inject:a:power', () => Promise.resolve('done'))
    expect(r).toBeUndefined()
    expect(lab.lastError).toMatch(/the views show the recording sim-1, not the lab; leave playback/)
    applyEvents([
      {
        seq: 80,
        ts: T0 + 100,
        topic: 'drill',
        run: {
          id: 'd1',
          kind: 'drill',
          name: 'power-cut-primary',
          title: 'Power cut of the primary',
          seed: 1,
          repeat: 1,
          repeats: 1,
          state: 'passed',
          startedAt: T0,
          endedAt: T0 + 100,
          step: null,
          log: [],
          expectations: [],
          failovers: [],
          verdict: { ok: true, summary: 'b live in 900 ms', explanation: '' },
          scenario: '',
          recording: null
        }
      }
    ])
    expect(pb.drills.map((d) => d.state)).toEqual(['passed'])
  })

  it('plays by reading on from the seek, and leaving gives the lab its views and the console clock back', async () => {
    vi.useFakeTimers()
    try {
      const pb = usePlaybackStore()
      await pb.open('sim-1')
      pb.setSpeed(10)
      pb.play()
      await vi.advanceTimersByTimeAsync(350)
      pb.pause()
      const reads = calls.filter((c) => c.method === 'playback.read')
      expect(reads.length).toBeGreaterThan(0)
      expect((reads[0].params as { n: number }).n).toBe(30)
      expect(pb.t).toBeGreaterThan(T0)
      expect(useLabStore().status?.hosts[1].role).toBe('live')
      await pb.close()
      expect(pb.active).toBe(false)
      expect(useLabStore().playback).toBeNull()
      expect(calls[calls.length - 1]).toEqual({ method: 'playback.close', params: { id: 'p1' } })
      expect(useDiagramStore().size()).toBe(0)
      expect(Math.abs(useDiagramStore().now() - Date.now())).toBeLessThan(5000)
    } finally {
      vi.useRealTimers()
    }
  })
})
