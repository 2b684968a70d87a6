// A synthetic lab session for the recording tests and the benchmark: status snapshots, agent
// log entries and acks, terminal lines, load progress and marks (a power cut, a go-live), at
// a chosen event rate, with the state a live console would show at each moment.
import {
  downHostStatus,
  emptyDetection,
  emptyInvariants,
  idleLoadStatus,
  HOST_IDS,
  type ApiEvent,
  type LabStatus,
  type LoadStatus,
  type Mark
} from '../api/contract.js'
import type { RecordEntry } from './format.js'

export function labStatus(t: number, i: number, primary: 'a' | 'b', load: LoadStatus): LabStatus {
  return {
    state: 'running',
    kind: 'simulated',
    name: 'simulated',
    error: null,
    guest: 'kv',
    mode: 'rsm',
    gen: primary === 'a' ? 1 : 2,
    startedAt: 0,
    timing: { heartbeatMs: 100, suspectMs: 800 },
    sim: { speed: 1, seed: 7 },
    experiments: [],
    spare: null,
    hosts: HOST_IDS.map((id) => ({
      ...downHostStatus(id),
      reachable: true,
      role: id === 'disk' ? 'disk-server' : id === primary ? (primary === 'a' ? 'primary' : 'live') : primary === 'a' ? 'backup' : 'down',
      uptimeMs: t,
      gen: primary === 'a' ? 1 : 2
    })),
    channel: null,
    faults:
      primary === 'b' ? [{ id: 'f1', target: 'a', kind: 'power', params: {}, startedAt: 0, healsAt: null, path: 'sim', note: null, what: 'power cut a' }] : [],
    load: { ...load, completed: i },
    invariants: emptyInvariants(),
    detection: emptyDetection(),
    heldBy: null
  }
}

/**
 * `seconds` of a session starting at t0 with `perSecond` events. The power cut of a comes at
 * `cutAt` (ms from t0) and b goes live 900 ms later.
 */
export function* syntheticSession(t0: number, seconds: number, perSecond: number, cutAt = (seconds * 1000) / 2): Generator<RecordEntry> {
  let seq = 0
  const step = 1000 / perSecond
  const load: LoadStatus = { ...idleLoadStatus(), state: 'running', clients: 4, keys: 100, seconds, startedAt: t0 }
  let primary: 'a' | 'b' = 'a'
  let nextStatus = 0
  const ev = (t: number, e: Record<string, unknown>): RecordEntry => ({ k: 'ev', t, ev: { ...e, ts: t, seq: ++seq } as ApiEvent })
  const mark = (t: number, m: Mark) => ev(t, { topic: 'mark', mark: m })
  yield { k: 'req', t: t0, method: 'lab.start', params: { kind: 'simulated', guest: 'kv', mode: 'rsm' } }
  yield mark(t0, { kind: 'start', label: 'lab start: simulated' })
  let cut = false
  let live = false
  const total = Math.floor(seconds * perSecond)
  for (let i = 0; i < total; i++) {
    const t = t0 + Math.round(i * step)
    if (!cut && t - t0 >= cutAt) {
      cut = true
      yield { k: 'req', t, method: 'fault.inject', params: { target: 'a', kind: 'power', params: {}, durationMs: 60000 } }
      yield mark(t, { kind: 'fault', label: 'power cut a', host: 'a' })
    }
    if (cut && !live && t - t0 >= cutAt + 900) {
      live = true
      primary = 'b'
      yield mark(t, { kind: 'go-live', label: 'b goes live (gen 2)', host: 'b' })
    }
    if (t >= nextStatus) {
      nextStatus = t + 250
      yield ev(t, { topic: 'status', status: labStatus(t - t0, i, primary, load) })
      continue
    }
    if (i % 50 === 0) {
      yield ev(t, { topic: 'load', load: { ...load, completed: i, opsPerSec: 480 + (i % 40), latencyMs: { p50: 1.2, p99: 4.5 } } })
      continue
    }
    if (i % 20 === 0) {
      yield ev(t, { topic: 'terminal', stream: 'channel', data: `\x1b[2m${primary} → entry ${i} put k${i % 100} = v${i}\x1b[0m\r\n` })
      continue
    }
    const host = i % 2 === 0 ? primary : primary === 'a' ? 'b' : 'a'
    yield ev(
      t,
      i % 2 === 0
        ? { topic: 'agent', host, type: 'entry', data: { n: i, gen: 1, kind: 'request', bytes: 40 + (i % 17) } }
        : { topic: 'agent', host, type: 'ack', data: { n: i - 1, gen: 1 } }
    )
  }
}
