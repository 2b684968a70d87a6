// The load session: the load clients against the lab's service, their live figures, and
// the checkers' verdict when the run ends.
//
// Figures, so that the operator reads them right: `errors` are transient errors that a client
// retried (a failover makes some); `failed` are operations that failed for good. Latency
// p50/p99 is the recent window (operations completed since the last report), kept from the
// last window that had any so it never drops to 0 while operations complete. The verdict
// (valid / invalid / unknown, with the evidence) lands in LoadStatus.verdict.
import type { Endpoint } from '../../agent/control/protocol.js'
import { checkRun, type RunVerdict } from '../check/check-run.js'
import { ApiError, idleLoadStatus, type LoadStartParams, type LoadStatus, type LoadVerdict, type Mark, type ReplicaHostId } from '../api/contract.js'
import { finalRead, runLoad, type LoadProgress, type LoadResult } from '../load/load-runner.js'
import { runBankLoad } from './bank-load.js'
import type { RecordedHistory } from '../record/format.js'
import { round2 } from './status-poller.js'

export interface LoadSink {
  mark(m: Mark): void
  line(text: string): void
  load(status: LoadStatus): void
  /** a kv run ended: its client history, final read and verdict, for the recording */
  history?(h: RecordedHistory): void
}

interface Run {
  status: LoadStatus
  abort: AbortController
  /** the lab stops under the load: skip the final read and the checks */
  abandoned: boolean
  done: Promise<void>
}

const LOST_WRITES_CHECKER = 'no acknowledged write lost'

export class LoadSession {
  private run: Run | null = null
  private last: LoadStatus = idleLoadStatus()

  constructor(private readonly sink: LoadSink) {}

  get running(): boolean {
    return this.run !== null
  }

  status(): LoadStatus {
    const l = this.run?.status ?? this.last
    return { ...l, latencyMs: { ...l.latencyMs }, verdict: l.verdict && { ...l.verdict, details: [...l.verdict.details] } }
  }

  /** Lost acknowledged writes found by the last checked run; null when no run was checked. */
  acknowledgedLost(): number | null {
    return this.last.verdict ? this.last.verdict.lostWrites : null
  }

  start(p: LoadStartParams, lab: { guest: string | null; targets: Endpoint[]; serving: ReplicaHostId | null }): LoadStatus {
    if (this.run) throw new ApiError('conflict', `load.start: a load is already ${this.run.status.state}; stop it first`)
    const workload = p.workload ?? (lab.guest === 'bank' ? 'bank' : 'kv')
    if (workload !== lab.guest) {
      throw new ApiError(
        'conflict',
        `load.start: the ${workload} workload speaks to the ${workload} guest; this lab runs '${lab.guest}' (choose workload '${lab.guest}')`
      )
    }
    const targets = lab.targets
    const readerAt = p.readers ? targets[p.readers.on === 'a' ? 0 : 1] : undefined
    if (p.readers && (workload !== 'kv' || !readerAt)) {
      throw new ApiError(
        'bad-request',
        workload !== 'kv'
          ? `load.start.readers: pinned readers read kv registers; this is the ${workload} workload (leave readers out)`
          : `load.start.readers: the lab has no service address for replica ${p.readers.on}`
      )
    }
    const byAddr = new Map(targets.map((t, i) => [`${t.host}:${t.port}`, (['a', 'b'] as const)[i]]))
    const status: LoadStatus = {
      ...idleLoadStatus(),
      state: 'running',
      workload,
      clients: p.clients,
      keys: p.keys,
      seconds: p.seconds,
      startedAt: Date.now(),
      target: lab.serving
    }
    const abort = new AbortController()
    const run: Run = { status, abort, abandoned: false, done: Promise.resolve() }
    this.run = run
    const onProgress = (pr: LoadProgress): void => {
      if (this.run !== run || status.state !== 'running') return
      status.opsPerSec = Math.round(pr.opsPerSec)
      status.completed = pr.completed
      status.errors = pr.errors
      status.failed = pr.failed
      status.retries = pr.retries
      status.duplicatesDropped = pr.duplicatesDropped
      if (pr.latencyMs) status.latencyMs = { p50: round2(pr.latencyMs.p50), p99: round2(pr.latencyMs.p99) }
      status.target = mostUsed(pr.targets, byAddr) ?? status.target
      this.sink.load(this.status())
    }
    if (workload === 'bank') {
      run.done = this.runBank(run, p, targets, onProgress)
      this.sink.mark({ kind: 'start', label: `load (bank transfers): ${p.clients} clients, ${p.seconds} s` })
      this.sink.load(this.status())
      return this.status()
    }
    run.done = (async () => {
      let result: LoadResult | null = null
      try {
        result = await runLoad({
          targets,
          durationMs: p.seconds * 1000,
          clients: p.clients,
          keys: p.keys,
          progressEveryMs: 500,
          onProgress,
          signal: abort.signal,
          ...(p.readers && readerAt ? { readers: { targets: [readerAt], clients: p.readers.clients } } : {})
        })
      } catch (err) {
        this.sink.mark({ kind: 'error', label: `load failed: ${errText(err)}` })
      }
      if (result) await this.finish(run, targets, result)
      if (this.run === run) this.run = null
      this.last = { ...status, state: 'idle', opsPerSec: 0 }
      this.sink.load(this.status())
    })()
    this.sink.mark({ kind: 'start', label: `load: ${p.clients} clients, ${p.keys} keys, ${p.seconds} s` })
    this.sink.load(this.status())
    return this.status()
  }

  stop(): LoadStatus {
    const run = this.run
    if (run && run.status.state === 'running') {
      run.status.state = 'stopping'
      run.abort.abort()
      this.sink.load(this.status())
    }
    return this.status()
  }

  /** The lab goes away under the load: end it without checking. */
  async abandon(): Promise<void> {
    const run = this.run
    if (!run) return
    run.abandoned = true
    run.abort.abort()
    await run.done
  }

  private async runBank(run: Run, p: LoadStartParams, targets: Endpoint[], onProgress: (pr: LoadProgress) => void): Promise<void> {
    const st = run.status
    try {
      const r = await runBankLoad({ targets, durationMs: p.seconds * 1000, clients: p.clients, progressEveryMs: 500, onProgress, signal: run.abort.signal })
      Object.assign(st, { completed: r.completed, failed: r.failed, opsPerSec: 0, retries: r.retries, duplicatesDropped: r.duplicatesDropped })
      st.latencyMs = { p50: round2(r.latencyMs.p50), p99: round2(r.latencyMs.p99) }
      const head = `bank load done: ${r.completed} transfers in ${(r.elapsedMs / 1000).toFixed(1)} s (${r.ok} ok, ${r.failed} failed, ${r.unknown} unknown)`
      if (run.abandoned) {
        this.sink.mark({ kind: 'stop', label: `${head}; not checked (the lab stopped)` })
      } else {
        st.verdict = r.verdict
        const color = r.verdict.result === 'valid' ? '32' : r.verdict.result === 'invalid' ? '1;31' : '33'
        this.sink.mark({ kind: r.verdict.result === 'invalid' ? 'error' : 'stop', label: `${head}; checks: ${r.verdict.summary}` })
        this.sink.line(`\x1b[${color}m── ${head} ──\x1b[0m`)
        this.sink.line(`\x1b[${color}m── checks: ${r.verdict.summary} ──\x1b[0m`)
      }
    } catch (err) {
      this.sink.mark({ kind: 'error', label: `bank load failed: ${errText(err)}` })
    }
    if (this.run === run) this.run = null
    this.last = { ...st, state: 'idle', opsPerSec: 0 }
    this.sink.load(this.status())
  }

  reset(): void {
    this.last = idleLoadStatus()
  }

  private histories = 0

  private recordHistory(st: LoadStatus, result: LoadResult, final: [string, string | null][] | null, verdict: LoadVerdict | null): void {
    this.sink.history?.({
      run: `L${++this.histories}-${st.startedAt ?? Date.now()}`,
      workload: st.workload,
      startedAt: st.startedAt ?? 0,
      clients: st.clients,
      keys: st.keys,
      ops: result.history,
      final,
      verdict
    })
  }

  private async finish(run: Run, targets: Endpoint[], result: LoadResult): Promise<void> {
    const s = result.summary
    const st = run.status
    st.completed = s.completed
    st.failed = s.failed
    st.opsPerSec = 0
    st.latencyMs = { p50: round2(s.latencyMs.p50), p99: round2(s.latencyMs.p99) }
    st.retries = s.retries
    st.duplicatesDropped = s.duplicatesDropped
    const head = `load done: ${s.completed} ops in ${(s.elapsedMs / 1000).toFixed(1)} s (${s.ok} ok, ${s.failed} failed, ${s.unknown} unknown), p50 ${s.latencyMs.p50.toFixed(1)} ms, p99 ${s.latencyMs.p99.toFixed(1)} ms, ${s.failoversFollowed} failover${s.failoversFollowed === 1 ? '' : 's'} followed, ${s.duplicatesDropped} duplicates dropped`
    if (run.abandoned) {
      this.sink.mark({ kind: 'stop', label: `${head}; not checked (the lab stopped)` })
      this.recordHistory(st, result, null, null)
      return
    }
    st.state = 'stopping'
    this.sink.load(this.status())
    let verdict: RunVerdict
    let final: Awaited<ReturnType<typeof finalRead>>
    try {
      final = await finalRead(targets, result.keys)
      verdict = checkRun(result.history, final)
    } catch (err) {
      st.verdict = {
        result: 'unknown',
        summary: `the checks could not run: ${errText(err)}`,
        ok: s.ok,
        failed: s.failed,
        unknown: s.unknown,
        lostWrites: 0,
        details: []
      }
      this.sink.mark({ kind: 'error', label: `${head}; the checks could not run: ${errText(err)}` })
      this.recordHistory(st, result, null, st.verdict)
      return
    }
    st.verdict = toVerdict(verdict, s)
    this.recordHistory(st, result, [...final], st.verdict)
    const word = st.verdict.result === 'invalid' ? 'INVALID' : st.verdict.result
    const failing = verdict.checks.filter((c) => c.valid !== true).map((c) => `${c.checker} ${c.valid === false ? 'violated' : 'unknown'}`)
    this.sink.mark({
      kind: verdict.valid === false ? 'error' : 'stop',
      label: `load done: ${s.completed} ops; checks: ${word}${failing.length ? ` (${failing.join(', ')})` : ''}`
    })
    const color = verdict.valid === true ? '32' : verdict.valid === false ? '1;31' : '33'
    this.sink.line(`\x1b[${color}m── ${head} ──\x1b[0m`)
    this.sink.line(`\x1b[${color}m── checks: ${st.verdict.summary} ──\x1b[0m`)
    for (const d of st.verdict.details.slice(0, 9)) this.sink.line(`\x1b[${color}m   ${d}\x1b[0m`)
  }
}

export function toVerdict(v: RunVerdict, s: LoadResult['summary']): LoadVerdict {
  const result = v.valid === true ? 'valid' : v.valid === false ? 'invalid' : 'unknown'
  const each = v.checks.map((c) => `${c.checker} ${c.valid === true ? 'ok' : c.valid === false ? 'VIOLATED' : 'unknown'}`).join(', ')
  const lost = v.checks.find((c) => c.checker === LOST_WRITES_CHECKER)
  const details: string[] = []
  for (const c of v.checks) for (const e of c.evidence.slice(0, 3)) details.push(`${c.checker}: ${e.message}`)
  return {
    result,
    summary: `${result === 'invalid' ? 'INVALID' : result} (${each})`,
    ok: s.ok,
    failed: s.failed,
    unknown: s.unknown,
    lostWrites: lost && lost.valid === false ? lost.evidence.length : 0,
    details,
    checks: v.checks.map((c) => ({ checker: c.checker, valid: c.valid }))
  }
}

function mostUsed(targets: Record<string, number>, byAddr: Map<string, ReplicaHostId>): ReplicaHostId | null {
  let best: ReplicaHostId | null = null
  let most = 0
  for (const [addr, n] of Object.entries(targets)) {
    const id = byAddr.get(addr)
    if (id && n > most) {
      best = id
      most = n
    }
  }
  return best
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err))
