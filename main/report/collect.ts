// What a report shows, read out of a recording in one pass: the drill and soak runs (their
// last `drill` event), the load's throughput and latency over time and each run's verdict,
// the faults as spans (from the status snapshots: when each fault id appeared and when it was
// gone), the marked moments, the agent events the space-time diagram draws, the final
// invariants, and the failovers (from the runs when there are any, else found from the
// go-live events: the fault before it, the go-live, the first load report after it that
// shows operations answered again).
import type { DrillRun, FaultInfo, HostId, Invariants, LabStatus, LoadVerdict, Mark } from '../api/contract.js'
import type { RecordingHeader } from '../record/format.js'
import type { Recording, RecordingProblem } from '../record/reader.js'

export interface FaultSpan {
  id: string
  what: string
  kind: FaultInfo['kind']
  target: FaultInfo['target']
  start: number
  /** null: still open when the recording ends */
  end: number | null
}

export interface LoadPoint {
  t: number
  opsPerSec: number
  p50: number
  p99: number
  completed: number
}

export interface AgentPoint {
  t: number
  seq: number
  host: HostId
  type: string
  data: Record<string, unknown>
}

export interface Failover {
  at: number
  host: HostId
  liveAt: number | null
  servedAt: number | null
  /** from a run's own record (drill or soak) or found in the events */
  source: 'run' | 'events'
}

export interface ReportData {
  path: string
  header: RecordingHeader
  t0: number
  t1: number
  closed: boolean
  problems: RecordingProblem[]
  runs: DrillRun[]
  loadPoints: LoadPoint[]
  /** each load run's verdict, in the order the runs ended */
  loadVerdicts: { startedAt: number; endedAt: number; verdict: LoadVerdict }[]
  spans: FaultSpan[]
  marks: { t: number; seq: number; mark: Mark }[]
  agent: AgentPoint[]
  /** the last status recorded while the lab ran (else the last one) */
  finalStatus: LabStatus | null
  invariants: Invariants | null
  failovers: Failover[]
  /** operator requests (method and time), for a recording without a run log */
  requests: { t: number; method: string; params: unknown; error: string | null }[]
}

/** the agent events the space-time diagram draws; the rest (snapshots of figures, logs) stay out of the report */
const DIAGRAM_TYPES = new Set([
  'entries',
  'ack',
  'suspect',
  'tas',
  'disk-tas',
  'go-live',
  'role',
  'fault',
  'heal',
  'channel-link',
  'disk-link',
  'diverged',
  'snapshot'
])

export function collectReport(rec: Recording): ReportData {
  const runs = new Map<string, DrillRun>()
  const loadPoints: LoadPoint[] = []
  const loadVerdicts: ReportData['loadVerdicts'] = []
  const seenVerdict = new Set<number>()
  const spans: FaultSpan[] = []
  const openSpans = new Map<string, FaultSpan>()
  const marks: ReportData['marks'] = []
  const agent: AgentPoint[] = []
  const requests: ReportData['requests'] = []
  let finalStatus: LabStatus | null = null
  for (const r of rec.events()) {
    if (r.k === 'req') {
      requests.push({ t: r.t, method: r.method, params: r.params, error: null })
      continue
    }
    if (r.k === 'fail') {
      const last = [...requests].reverse().find((q) => q.method === r.method && q.error === null)
      if (last) last.error = r.error
      continue
    }
    if (r.k !== 'ev') continue // client histories: the verdicts they led to are in the load events
    const ev = r.ev
    switch (ev.topic) {
      case 'drill':
        runs.set(ev.run.id, ev.run)
        break
      case 'load': {
        const l = ev.load
        if (l.state === 'running') loadPoints.push({ t: ev.ts, opsPerSec: l.opsPerSec, p50: l.latencyMs.p50, p99: l.latencyMs.p99, completed: l.completed })
        if (l.state === 'idle' && l.verdict && l.startedAt !== null && !seenVerdict.has(l.startedAt)) {
          seenVerdict.add(l.startedAt)
          loadVerdicts.push({ startedAt: l.startedAt, endedAt: ev.ts, verdict: l.verdict })
        }
        break
      }
      case 'status': {
        // the invariants as the lab last had them while it ran or stopped (a stopped lab's status starts afresh)
        if (ev.status.state === 'running' || ev.status.state === 'stopping' || !finalStatus) finalStatus = ev.status
        const open = new Set<string>()
        for (const f of ev.status.faults) {
          open.add(f.id)
          let s = openSpans.get(f.id)
          // fault ids repeat across labs (f1, f2 … per lab): another start time is another fault
          if (!s || s.start !== f.startedAt) {
            if (s) s.end = ev.ts
            s = { id: f.id, what: f.what, kind: f.kind, target: f.target, start: f.startedAt, end: null }
            spans.push(s)
            openSpans.set(f.id, s)
          }
        }
        for (const [id, s] of openSpans)
          if (!open.has(id)) {
            s.end = ev.ts
            openSpans.delete(id)
          }
        break
      }
      case 'mark':
        marks.push({ t: ev.ts, seq: ev.seq, mark: ev.mark })
        break
      case 'agent':
        if (DIAGRAM_TYPES.has(ev.type)) agent.push({ t: ev.ts, seq: ev.seq, host: ev.host, type: ev.type, data: ev.data })
        break
    }
  }
  const runList = [...runs.values()]
  const spanList = spans.sort((x, y) => x.start - y.start)
  agent.sort((x, y) => x.t - y.t)
  return {
    path: rec.path,
    header: rec.header,
    t0: rec.t0,
    t1: rec.t1,
    closed: rec.closed,
    problems: rec.problems,
    runs: runList,
    loadPoints,
    loadVerdicts,
    spans: spanList,
    marks,
    agent,
    finalStatus,
    invariants: finalStatus?.invariants ?? null,
    failovers: failoversOf(runList, agent, spanList, loadPoints),
    requests
  }
}

function failoversOf(runs: DrillRun[], agent: AgentPoint[], spans: FaultSpan[], load: LoadPoint[]): Failover[] {
  const fromRuns = runs.flatMap((r) => r.failovers.map((f) => ({ ...f, source: 'run' as const })))
  if (fromRuns.length) return fromRuns.sort((x, y) => x.at - y.at)
  const out: Failover[] = []
  for (const ev of agent) {
    if (ev.type !== 'go-live') continue
    // the fault that caused it: the latest one begun before the go-live, within a minute
    const cause = [...spans].reverse().find((s) => s.start <= ev.t && ev.t - s.start < 60_000)
    const before = [...load].reverse().find((p) => p.t <= ev.t)
    const served = load.find((p) => p.t > ev.t && p.completed > (before?.completed ?? 0))
    out.push({ at: cause?.start ?? ev.t, host: ev.host, liveAt: ev.t, servedAt: served?.t ?? null, source: 'events' })
  }
  return out
}
