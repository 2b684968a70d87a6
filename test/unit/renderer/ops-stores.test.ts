// Type-checked by tsconfig.web.json (it imports renderer sources, which the Node project cannot).
// The operator views' stores and readings, without a browser: the diagram's memory stays
// bounded, fault spans open and close with the status, and a host's compound state says
// what an isolated primary cannot do.
import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { downHostStatus, liveByGenText, stoppedLabStatus, type FaultInfo, type HostId, type HostStatus, type LabStatus } from '../../../main/api/contract'
import { useDiagramStore, DIAGRAM_KEEP_MS } from '../../../renderer/src/stores/diagram'
import { useMetricsStore } from '../../../renderer/src/stores/metrics'
import { channelCutOff, compoundRole, faultWhat, hostNotes, labInvariants } from '../../../renderer/src/model'

beforeEach(() => setActivePinia(createPinia()))

function host(id: 'a' | 'b' | 'disk', over: Partial<HostStatus> = {}): HostStatus {
  return { ...downHostStatus(id), reachable: true, pid: 100, role: id === 'disk' ? 'disk-server' : id === 'a' ? 'primary' : 'backup', gen: 1, ...over }
}

function fault(over: Partial<FaultInfo>): FaultInfo {
  return { id: 'f1', target: 'a', kind: 'isolate', params: {}, startedAt: 1000, healsAt: 61_000, path: 'agent-filter', note: null, what: '', ...over }
}

function status(over: Partial<LabStatus> = {}): LabStatus {
  return {
    ...stoppedLabStatus(),
    state: 'running',
    kind: 'simulated',
    name: 'simulated',
    guest: 'kv',
    mode: 'rsm',
    gen: 1,
    startedAt: 0,
    hosts: [host('a'), host('b'), host('disk')],
    ...over
  }
}

describe('space-time diagram store', () => {
  it('keeps at most 20,000 events however fast they come', () => {
    const d = useDiagramStore()
    const t0 = Date.now()
    for (let i = 1; i <= 50_000; i++) d.push({ seq: i, ts: t0 + i / 100, topic: 'agent', host: 'a', type: 'entries', data: { to: 'b', first: i, last: i } })
    expect(d.size()).toBe(20_000)
    const { list, from } = d.events()
    expect(list[from].seq).toBe(30_001)
    expect(list.length - from).toBe(20_000)
  })

  it('forgets events older than a minute behind the newest', () => {
    const d = useDiagramStore()
    const t0 = Date.now()
    d.push({ seq: 1, ts: t0 - DIAGRAM_KEEP_MS - 5000, topic: 'agent', host: 'a', type: 'go-live', data: {} })
    d.push({ seq: 2, ts: t0, topic: 'agent', host: 'b', type: 'ack', data: { n: 3 } })
    expect(d.size()).toBe(1)
    // events the diagram does not draw are not kept at all
    d.push({ seq: 3, ts: t0, topic: 'agent', host: 'b', type: 'channel', data: {} })
    expect(d.size()).toBe(1)
  })

  it('focus pauses on the event and centres the window on it', () => {
    const d = useDiagramStore()
    const t0 = Date.now()
    d.push({ seq: 7, ts: t0, topic: 'agent', host: 'b', type: 'tas', data: { gen: 2, result: 'won' } })
    expect(d.focus(7)).toBe(true)
    expect(d.paused).toBe(true)
    expect(d.focusSeq).toBe(7)
    expect(d.pausedAt).toBe(t0 + d.spanMs / 2)
  })
})

describe('metrics store', () => {
  it('opens a fault span when the fault appears and closes it when it is gone', () => {
    const m = useMetricsStore()
    const f = fault({ id: 'c1', target: 'a-b', kind: 'cut', startedAt: 900, what: 'cut a↔b' })
    m.record(status(), 800)
    m.record(status({ faults: [f] }), 1000)
    expect(m.spans).toEqual([{ id: 'c1', kind: 'cut', target: 'a-b', label: 'cut a↔b', start: 900, end: null }])
    m.record(status(), 5000)
    expect(m.spans[0].end).toBe(5000)
    // a snapshot replayed out of order adds no sample
    m.record(status(), 4000)
    expect(m.samples.map((s) => s.ts)).toEqual([800, 1000, 5000])
  })
})

describe('compound host state', () => {
  it('an isolated primary reads as holding its outputs and unable to reach the disk server', () => {
    const f = [fault({ target: 'a', kind: 'isolate' })]
    const a = host('a', { isolated: true })
    expect(hostNotes(a, f)).toEqual(['isolated', 'outputs-held', 'no-disk-server', 'cannot-go-live'])
    expect(compoundRole(a, f)).toBe('primary · isolated · outputs held · cannot reach the disk server · cannot go live')
  })

  it('the backend’s notes win over the derived ones', () => {
    const a = host('a', { isolated: true, notes: ['isolated', 'fenced'] })
    expect(hostNotes(a, [fault({})])).toEqual(['isolated', 'fenced'])
  })

  it('the channel is cut off while its primary is isolated, and flows when nothing is wrong', () => {
    const channel = {
      from: 'a',
      to: 'b',
      gen: 1,
      connected: true,
      stalled: false,
      lastEntry: 9,
      acked: 9,
      lag: 0,
      unackedEntries: 0,
      unackedBytes: 0,
      maxUnackedBytes: 1,
      entriesPerSec: 1,
      acksPerSec: 1,
      bytesPerSec: 1,
      heldOutputs: 0,
      holdMs: { p50: 0, p99: 0, max: 0 }
    } as const
    expect(channelCutOff(status({ channel: { ...channel } }))).toBe(false)
    expect(channelCutOff(status({ channel: { ...channel }, hosts: [host('a', { isolated: true }), host('b'), host('disk')], faults: [fault({})] }))).toBe(true)
    expect(channelCutOff(status({ channel: { ...channel }, hosts: [host('a'), host('b', { role: 'live', gen: 2 }), host('disk')] }))).toBe(true)
    expect(channelCutOff(status({ channel: { ...channel, to: null } }))).toBe(true)
  })

  it('a fault line names its target even when the backend sends only the kind', () => {
    expect(faultWhat(fault({ kind: 'power', target: 'a', what: 'power' }))).toBe('power cut a')
    expect(faultWhat(fault({ kind: 'cut', target: 'a-b', what: 'cut a↔b' }))).toBe('cut a↔b')
    expect(faultWhat(fault({ kind: 'delay', target: 'b-disk', params: { ms: 50 }, what: '' }))).toBe('delay b↔disk 50 ms')
  })

  it('live replicas per generation come from the hosts when the backend leaves them empty; two in one generation is split brain', () => {
    const { inv, derived } = labInvariants(status({ hosts: [host('a', { role: 'primary', gen: 2 }), host('b', { role: 'live', gen: 2 }), host('disk')] }))
    expect(derived).toBe(true)
    expect(inv.liveByGen).toEqual([{ gen: 2, live: ['a', 'b'] }])
    expect(inv.splitBrain).toBe(true)
  })

  it('reads who served a generation in turn, not as two at once', () => {
    const gens = [
      { gen: 1, live: ['a', 'b'] as HostId[] },
      { gen: 2, live: ['b'] as HostId[] },
      { gen: 3, live: [] as HostId[] }
    ]
    expect(liveByGenText(gens, 'g', 'none')).toBe('g1: a → b · g2: b · g3: none')
    expect(liveByGenText(gens.slice(0, 1), 'gen ', '—')).toBe('gen 1: a → b')
    expect(liveByGenText([], 'g', 'none')).toBe('')
  })
})
