// The console API over the real embedded local lab: three agent processes on this machine
// (main/lab), the load clients (main/load) and the checkers (main/check).
//
// The lab outlives the console: agents are detached processes and the lab's state file
// names them, so a console that starts (or restarts) while a lab of its name is running
// reattaches to it instead of starting a second one.
//
// Status comes from polling the agents (a few times a second): the poll is the truth for
// roles, generations and figures, and it notices what no event reports, like an agent
// that died. Agent events give the timeline and the channel pane their moments.
import type { AgentStatus } from '../../agent/control/protocol.js'
import { checkRun, type RunVerdict } from '../check/check-run.js'
import type { LabEvent } from '../lab/lab-events.js'
import { LabStore, type FaultRecord, type LabFaultSpec } from '../lab/lab-state.js'
import type { HostStatusRow, Lab } from '../lab/lab.js'
import { openLocalLab, startLocalLab, type LocalLabOptions } from '../lab/local-lab.js'
import { finalRead, runLoad, type LoadProgress, type LoadResult } from '../load/load-runner.js'
import type { ConsoleBackend } from './backend.js'
import {
  API_VERSION,
  ApiError,
  HOST_IDS,
  REPLICA_IDS,
  type ApiErrorCode,
  type ApiEvent,
  type ChannelStatus,
  type ConsoleInfo,
  type EventsSince,
  type FaultHealParams,
  type FaultInfo,
  type FaultInjectParams,
  type FaultParams,
  type FaultTarget,
  type GuestName,
  type HostId,
  type HostRole,
  type HostStatus,
  type LabStartParams,
  type LabState,
  type LabStatus,
  type LoadStartParams,
  type LoadStatus,
  type Mark,
  type ReplicaHostId,
  type ReplicationMode, downHostStatus, emptyInvariants, idleLoadStatus } from './contract.js'
import { ApiEventLog } from './event-log.js'

export interface LabBackendOptions extends LocalLabOptions {
  /** the lab's name in the lab store (default 'console'): one console, one lab */
  name?: string
  /** how often the agents are asked for their status (default 300 ms) */
  statusEveryMs?: number
  /** events kept for events.since */
  ringSize?: number
}

/** The replica's buffer limit (agent/replica/core.ts, maxUnackedBytes); the agent's status does not carry it. */
const MAX_UNACKED_BYTES = 4 * 1024 * 1024
const STATUS_TIMEOUT_MS = 1000

type Row = HostStatusRow

interface LoadRun {
  status: LoadStatus
  abort: AbortController
  /** the lab stops under the load: skip the final read and the checks */
  abandoned: boolean
  done: Promise<void>
}


const isHost = (t: FaultTarget): t is HostId => (HOST_IDS as readonly string[]).includes(t)
const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/** The agent could not be asked (no answer, connection refused): the lab is unavailable, not refusing. */
function codeOf(err: unknown): ApiErrorCode {
  if (err instanceof ApiError) return err.code
  const c = (err as { code?: unknown })?.code
  if (c === 'unreachable' || c === 'timeout' || c === 'closed') return 'unavailable'
  return 'conflict'
}

function apiError(method: string, err: unknown): ApiError {
  if (err instanceof ApiError) return err
  return new ApiError(codeOf(err), `${method}: ${errText(err)}`)
}

export class LabBackend implements ConsoleBackend {
  private readonly name: string
  private readonly labOpts: LocalLabOptions
  private readonly statusEveryMs: number
  private readonly events: ApiEventLog

  private closed = false

  private lab: Lab | null = null
  private offLab: (() => void) | null = null
  private state: LabState = 'stopped'
  private error: string | null = null
  private guest: GuestName | null = null
  private mode: ReplicationMode | null = null
  private startedAt: number | null = null
  private rows = new Map<string, Row>()
  /** the last status each host gave: a paused or silent agent keeps showing what it was */
  private lastSeen = new Map<string, AgentStatus>()
  /** why a host is down, when the console knows (it cut the power) */
  private downBecause = new Map<string, string>()
  private powerCount = 0
  private rate: { host: string; gen: number; at: number; lastEntry: number; acked: number; bytes: number } | null = null
  private rates = { entries: 0, acks: 0, bytes: 0 }
  /** the primary's previous channel event, to report acks as they advance */
  private lastAcked = new Map<string, number>()
  private load: LoadRun | null = null
  private lastLoad: LoadStatus = idleLoadStatus()

  private pollTimer: ReturnType<typeof setTimeout> | null = null
  private polling: Promise<void> | null = null
  /** start, stop and reattach one at a time */
  private lifecycle: Promise<unknown> = Promise.resolve()
  private readonly ready: Promise<void>

  constructor(opts: LabBackendOptions = {}) {
    this.name = opts.name ?? 'console'
    this.labOpts = { home: opts.home, agentBundle: opts.agentBundle }
    this.statusEveryMs = opts.statusEveryMs ?? 300
    this.events = new ApiEventLog(opts.ringSize ?? 10_000)
    this.ready = this.reattach().then(() => {})
    this.lifecycle = this.ready
  }

  /** Resolves once the backend has looked for a running lab to reattach to. */
  whenReady(): Promise<void> {
    return this.ready
  }

  // ----- ConsoleBackend --------------------------------------------------------------

  info(): ConsoleInfo {
    return { apiVersion: API_VERSION, backend: 'local', shell: 'browser', lab: this.lab ? { kind: 'local', name: this.name } : null, canRememberSecrets: false, seq: this.events.seq }
  }

  labStart(p: LabStartParams): Promise<LabStatus> {
    return this.serially(async () => {
      if (this.lab && this.state !== 'error') {
        throw new ApiError('conflict', `lab.start: lab '${this.name}' is ${this.state} (guest ${this.guest}, ${this.mode}); stop it first`)
      }
      if (this.lab) {
        // a lab in error (its agents gone): let go of it; Lab.start clears what is left
        this.stopPolling()
        this.detach()
      }
      // a lab of this name may have been started meanwhile by the command line or another console
      if (await this.reattach()) return this.snapshot()
      this.state = 'starting'
      this.error = null
      this.guest = p.guest
      this.mode = p.mode
      this.startedAt = Date.now()
      this.rows.clear()
      this.lastSeen.clear()
      this.downBecause.clear()
      this.lastLoad = idleLoadStatus()
      this.mark({ kind: 'start', label: `lab start: guest ${p.guest}, ${p.mode}` })
      this.emitStatus()
      let lab: Lab
      try {
        lab = await startLocalLab({ name: this.name, guest: p.guest, mode: p.mode }, this.labOpts)
      } catch (err) {
        this.state = 'error'
        this.error = errText(err)
        this.mark({ kind: 'error', label: `lab start failed: ${this.error}` })
        this.emitStatus()
        return this.snapshot()
      }
      this.attach(lab)
      this.terminal(`\x1b[2m── generation 1: logging channel a → b ──\x1b[0m`)
      await this.poll()
      return this.snapshot()
    })
  }

  labStop(): Promise<LabStatus> {
    return this.serially(async () => {
      const lab = this.lab
      if (!lab) {
        // a failed start leaves nothing running (Lab.start tears down what it began)
        this.state = 'stopped'
        this.error = null
        this.emitStatus()
        return this.snapshot()
      }
      this.state = 'stopping'
      this.emitStatus()
      if (this.load) {
        this.load.abandoned = true
        this.load.abort.abort()
      }
      this.stopPolling()
      let problem: string | null = null
      try {
        await lab.stop()
      } catch (err) {
        problem = errText(err)
      }
      await this.load?.done
      this.detach()
      this.state = problem ? 'error' : 'stopped'
      this.error = problem ? `the lab did not stop cleanly: ${problem}` : null
      this.mark(problem ? { kind: 'error', label: this.error! } : { kind: 'stop', label: 'lab stopped' })
      this.emitStatus()
      return this.snapshot()
    })
  }

  async labStatus(): Promise<LabStatus> {
    await this.ready
    return this.snapshot()
  }

  async labRestore(): Promise<LabStatus> {
    const lab = this.requireRunning('lab.restore')
    this.mark({ kind: 'restore', label: 'restore redundancy: starting a fresh replica' })
    let r
    try {
      r = await lab.restore()
    } catch (err) {
      const e = apiError('lab.restore', err)
      this.mark({ kind: 'error', label: e.message })
      throw e
    }
    this.downBecause.delete(r.to)
    this.rate = null
    this.mark({ kind: 'restore', label: `redundancy restored: ${r.from} → ${r.to} (gen ${r.gen})`, host: r.to as HostId })
    this.terminal(`\x1b[2m── generation ${r.gen}: logging channel ${r.from} → ${r.to} ──\x1b[0m`)
    await this.poll()
    return this.snapshot()
  }

  async faultInject(p: FaultInjectParams): Promise<FaultInfo> {
    const lab = this.requireRunning('fault.inject')
    const label = `${p.kind} ${p.target}${describeParams(p.params)}`
    if (p.kind === 'power') {
      const host = p.target as HostId
      try {
        await lab.powerCut(host)
      } catch (err) {
        throw apiError('fault.inject', err)
      }
      // In the local lab a host's power is its agent process, and nothing switches it back on:
      // the cut is a moment (on the timeline), not an open fault with a deadline that would
      // promise a heal. Restore redundancy starts a fresh agent in the host's slot.
      const now = Date.now()
      this.downBecause.set(host, 'power cut by the operator; restore redundancy starts a fresh agent')
      this.mark({ kind: 'fault', label: `power cut ${host}`, host })
      await this.poll()
      return { id: `p${++this.powerCount}`, target: host, kind: 'power', params: {}, startedAt: now, healsAt: null, path: 'kill', note: null, what: `power cut ${host}` }
    }
    let rec: FaultRecord
    try {
      rec = await lab.injectFault(toSpec(p), p.durationMs)
    } catch (err) {
      throw apiError('fault.inject', err)
    }
    this.mark({ kind: 'fault', label, host: isHost(p.target) ? p.target : undefined })
    await this.poll()
    return toFaultInfo(rec)
  }

  async faultHeal(p: FaultHealParams): Promise<{ healed: string[] }> {
    const lab = this.requireRunning('fault.heal')
    let healed: string[]
    try {
      healed = (await lab.heal(p.id)).healed
    } catch (err) {
      const e = apiError('fault.heal', err)
      this.mark({ kind: 'error', label: e.message })
      await this.poll()
      throw e
    }
    this.mark({ kind: 'heal', label: p.id === 'all' ? `heal all${healed.length ? `: ${healed.join(', ')}` : ' (nothing open)'}` : `heal ${p.id}` })
    await this.poll()
    return { healed }
  }

  async loadStart(p: LoadStartParams): Promise<LoadStatus> {
    const lab = this.requireRunning('load.start')
    if (this.load) throw new ApiError('conflict', `load.start: a load is already ${this.load.status.state}; stop it first`)
    if (this.guest !== 'kv') throw new ApiError('conflict', `load.start: the load clients speak to the kv guest; this lab runs '${this.guest}'`)
    const targets = lab.serviceEndpoints()
    const byAddr = new Map(targets.map((t, i) => [`${t.host}:${t.port}`, REPLICA_IDS[i]]))
    const status: LoadStatus = { ...idleLoadStatus(), state: 'running', clients: p.clients, keys: p.keys, seconds: p.seconds, startedAt: Date.now(), target: this.serving() }
    const abort = new AbortController()
    const run: LoadRun = { status, abort, abandoned: false, done: Promise.resolve() }
    this.load = run
    const onProgress = (pr: LoadProgress): void => {
      if (this.load !== run || status.state !== 'running') return
      status.opsPerSec = Math.round(pr.opsPerSec)
      status.completed = pr.completed
      status.errors = pr.errors
      status.retries = pr.retries
      status.duplicatesDropped = pr.duplicatesDropped
      status.target = mostUsed(pr.targets, byAddr) ?? status.target
      this.emitLoad()
    }
    run.done = (async () => {
      let result: LoadResult | null = null
      try {
        result = await runLoad({ targets, durationMs: p.seconds * 1000, clients: p.clients, keys: p.keys, progressEveryMs: 500, onProgress, signal: abort.signal })
      } catch (err) {
        this.mark({ kind: 'error', label: `load failed: ${errText(err)}` })
      }
      if (result) await this.finishLoad(run, targets, result)
      if (this.load === run) this.load = null
      this.lastLoad = { ...status, state: 'idle', opsPerSec: 0 }
      this.emitLoad()
    })()
    this.mark({ kind: 'start', label: `load: ${p.clients} clients, ${p.keys} keys, ${p.seconds} s` })
    this.emitLoad()
    return { ...status, latencyMs: { ...status.latencyMs } }
  }

  async loadStop(): Promise<LoadStatus> {
    const run = this.load
    if (!run) return this.loadStatus()
    if (run.status.state === 'running') {
      run.status.state = 'stopping'
      run.abort.abort()
      this.emitLoad()
    }
    return this.loadStatus()
  }

  eventsSince(since: number): EventsSince {
    return this.events.since(since)
  }

  subscribe(listener: (ev: ApiEvent) => void): () => void {
    return this.events.subscribe(listener)
  }

  /** Lets go of the agents (they keep running: a restarted console reattaches); ends a load. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.ready.catch(() => {})
    this.stopPolling()
    if (this.load) {
      this.load.abandoned = true
      this.load.abort.abort()
      await this.load.done
    }
    await this.polling
    this.detach()
    this.events.unsubscribeAll()
  }

  // ----- the lab ---------------------------------------------------------------------

  /** Attach to a running lab of this name, if there is one. True when attached. */
  private async reattach(): Promise<boolean> {
    let lab: Lab
    try {
      if (!new LabStore(this.labOpts.home).load(this.name)) return false
      lab = openLocalLab(this.name, this.labOpts)
    } catch (err) {
      // a broken state file or a missing agent bundle: show it, do not crash the console
      this.state = 'error'
      this.error = errText(err)
      this.mark({ kind: 'error', label: this.error })
      this.emitStatus()
      return false
    }
    let rows: Row[]
    try {
      rows = await lab.status(STATUS_TIMEOUT_MS)
    } catch (err) {
      lab.close()
      this.state = 'error'
      this.error = `cannot read lab '${this.name}': ${errText(err)}`
      this.emitStatus()
      return false
    }
    if (rows.every((r) => r.state === 'down')) {
      // a lab whose agents are all gone: lab.start clears its leftovers
      lab.close()
      return false
    }
    const s = lab.snapshot()
    this.guest = (s.guest === 'bank' ? 'bank' : 'kv') as GuestName
    this.mode = s.mode
    this.startedAt = s.createdAt
    this.error = null
    this.attach(lab)
    this.mark({ kind: 'start', label: `reattached to lab '${this.name}' (running since ${new Date(s.createdAt).toLocaleTimeString()})` })
    this.terminal(`\x1b[2m── reattached to lab '${this.name}': ${rows.map((r) => `${r.host} ${r.state === 'up' ? r.status?.role : r.state}`).join(', ')} ──\x1b[0m`)
    this.absorb(rows)
    this.emitStatus()
    return true
  }

  private attach(lab: Lab): void {
    this.lab = lab
    this.state = 'running'
    this.lastAcked.clear()
    this.rate = null
    this.offLab = lab.onEvent((ev) => this.onLabEvent(ev))
    this.schedulePoll()
  }

  private detach(): void {
    this.offLab?.()
    this.offLab = null
    this.lab?.close()
    this.lab = null
    this.rows.clear()
    this.lastSeen.clear()
    this.downBecause.clear()
    this.rate = null
  }

  private serially<T>(f: () => Promise<T>): Promise<T> {
    const next = this.lifecycle.then(f, f)
    this.lifecycle = next.catch(() => {})
    return next
  }

  private requireRunning(method: string): Lab {
    if (!this.lab || this.state !== 'running') throw new ApiError('conflict', `${method}: the lab is ${this.state}; start it first`)
    return this.lab
  }

  private schedulePoll(): void {
    if (this.closed || this.pollTimer || !this.lab) return
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null
      void this.poll().finally(() => this.schedulePoll())
    }, this.statusEveryMs)
    this.pollTimer.unref?.()
  }

  private stopPolling(): void {
    if (this.pollTimer) clearTimeout(this.pollTimer)
    this.pollTimer = null
  }

  /** Ask every agent for its status and send a snapshot; concurrent callers share one poll. */
  private poll(): Promise<void> {
    if (!this.polling) {
      this.polling = (async () => {
        const lab = this.lab
        if (!lab || this.closed) return
        try {
          const rows = await lab.status(STATUS_TIMEOUT_MS)
          if (lab !== this.lab) return
          this.absorb(rows)
        } catch (err) {
          // never let a failed poll go unseen: the hosts keep their last figures, the error shows
          this.error = `cannot read the agents' status: ${errText(err)}`
        }
        this.emitStatus()
      })().finally(() => {
        this.polling = null
      })
    }
    return this.polling
  }

  private absorb(rows: Row[]): void {
    const now = Date.now()
    for (const r of rows) {
      this.rows.set(r.host, r)
      if (r.status) this.lastSeen.set(r.host, r.status)
    }
    if (this.state === 'running' && rows.every((r) => r.state === 'down')) {
      this.state = 'error'
      this.error = `every agent of lab '${this.name}' is gone (killed outside the console?); stop the lab to clear it`
      this.mark({ kind: 'error', label: this.error })
    }
    // rates from the primary's counters between two polls
    const p = this.primaryRow()
    const ch = p?.status?.channel
    if (!p || !ch) {
      this.rate = null
      this.rates = { entries: 0, acks: 0, bytes: 0 }
      return
    }
    const prev = this.rate
    const cur = { host: p.host, gen: p.status!.gen, at: now, lastEntry: ch.lastEntry, acked: ch.acked, bytes: ch.bytesSent }
    if (prev && prev.host === cur.host && prev.gen === cur.gen && now > prev.at) {
      const k = 1000 / (now - prev.at)
      const smooth = (old: number, x: number) => Math.round(old * 0.4 + Math.max(0, x) * k * 0.6)
      this.rates = {
        entries: smooth(this.rates.entries, cur.lastEntry - prev.lastEntry),
        acks: smooth(this.rates.acks, cur.acked - prev.acked),
        bytes: smooth(this.rates.bytes, cur.bytes - prev.bytes)
      }
    } else {
      this.rates = { entries: 0, acks: 0, bytes: 0 }
    }
    this.rate = cur
  }

  private primaryRow(): Row | undefined {
    return REPLICA_IDS.map((id) => this.rows.get(id)).find((r) => r?.state === 'up' && r.status?.role === 'primary')
  }

  /** The replica the clients should be talking to. */
  private serving(): ReplicaHostId | null {
    for (const id of REPLICA_IDS) {
      const r = this.rows.get(id)
      if (r?.state === 'up' && (r.status?.role === 'primary' || r.status?.role === 'live')) return id
    }
    return null
  }

  private async finishLoad(run: LoadRun, targets: ReturnType<Lab['serviceEndpoints']>, result: LoadResult): Promise<void> {
    const s = result.summary
    run.status.completed = s.completed
    run.status.opsPerSec = 0
    run.status.latencyMs = { p50: round2(s.latencyMs.p50), p99: round2(s.latencyMs.p99) }
    run.status.retries = s.retries
    run.status.duplicatesDropped = s.duplicatesDropped
    const head = `load done: ${s.completed} ops in ${(s.elapsedMs / 1000).toFixed(1)} s (${s.ok} ok, ${s.failed} failed, ${s.unknown} unknown), p50 ${s.latencyMs.p50.toFixed(1)} ms, p99 ${s.latencyMs.p99.toFixed(1)} ms, ${s.failoversFollowed} failover${s.failoversFollowed === 1 ? '' : 's'} followed, ${s.duplicatesDropped} duplicates dropped`
    if (run.abandoned) {
      this.mark({ kind: 'stop', label: `${head}; not checked (the lab stopped)` })
      return
    }
    run.status.state = 'stopping'
    this.emitLoad()
    let verdict: RunVerdict
    try {
      const final = await finalRead(targets, result.keys)
      verdict = checkRun(result.history, final)
    } catch (err) {
      this.mark({ kind: 'error', label: `${head}; the checks could not run: ${errText(err)}` })
      return
    }
    const word = verdict.valid === true ? 'valid' : verdict.valid === false ? 'INVALID' : 'unknown'
    const each = verdict.checks.map((c) => `${c.checker} ${c.valid === true ? 'ok' : c.valid === false ? 'VIOLATED' : 'unknown'}`).join(', ')
    // the timeline gets the verdict in a line; the channel pane gets the figures and the evidence
    const failing = verdict.checks.filter((c) => c.valid !== true).map((c) => `${c.checker} ${c.valid === false ? 'violated' : 'unknown'}`)
    this.mark({ kind: verdict.valid === false ? 'error' : 'stop', label: `load done: ${s.completed} ops; checks: ${word}${failing.length ? ` (${failing.join(', ')})` : ''}` })
    const color = verdict.valid === true ? '32' : verdict.valid === false ? '1;31' : '33'
    this.terminal(`\x1b[${color}m── ${head} ──\x1b[0m`)
    this.terminal(`\x1b[${color}m── checks: ${word} (${each}) ──\x1b[0m`)
    for (const c of verdict.checks) {
      for (const e of c.evidence.slice(0, 3)) this.terminal(`\x1b[${color}m   ${c.checker}: ${e.message}\x1b[0m`)
    }
  }

  private loadStatus(): LoadStatus {
    const l = this.load?.status ?? this.lastLoad
    return { ...l, latencyMs: { ...l.latencyMs } }
  }

  // ----- events from the lab -----------------------------------------------------------

  private onLabEvent(ev: LabEvent): void {
    if (this.closed) return
    if (ev.source === 'operator') return // this backend marks its own actions
    const host = (HOST_IDS as readonly string[]).includes(ev.host ?? '') ? (ev.host as HostId) : null
    if (!host) return
    const d = ev.data
    const agent = (type: string, data: Record<string, unknown>) => this.events.publish({ ts: ev.ts, topic: 'agent', host, type, data })
    const mark = (m: Mark) => this.events.publish({ ts: ev.ts, topic: 'mark', mark: m })
    if (ev.source === 'lab') {
      if (ev.type === 'events-missed') this.terminal(`\x1b[33m── ${host}: ${String(d.missed)} events were lost from the agent's ring ──\x1b[0m`, ev.ts)
      else if (ev.type === 'protocol-error') mark({ kind: 'error', label: `${host}: control channel: ${String(d.message)}`, host })
      return
    }
    switch (ev.type) {
      case 'channel':
        this.onChannel(host, ev.ts, d)
        return
      case 'replica-role':
        agent('role', { role: d.role, gen: d.gen, reason: d.reason })
        if (d.role === 'halted') mark({ kind: 'halt', label: `${host} halts: ${String(d.reason)}`, host })
        return
      case 'role':
        // the agent took its role; the replica's own 'replica-role' events say what it became
        if (d.role === 'disk-server') agent('role', { role: 'disk-server', gen: 0, reason: 'lab start' })
        else agent('role', { role: d.as, gen: d.gen, reason: `started as ${String(d.as)}` })
        return
      case 'suspect':
        agent('suspect', { peer: d.peer, silentMs: Math.round(Number(d.silentMs)) })
        mark({ kind: 'suspect', label: `${host} suspects ${String(d.peer)} (silent ${Math.round(Number(d.silentMs))} ms)`, host })
        return
      case 'tas':
        agent('tas', { gen: d.gen, result: d.result })
        if (d.result !== 'unreachable') mark({ kind: 'tas', label: `${host} ${String(d.result)} test-and-set (gen ${String(d.gen)})`, host })
        return
      case 'go-live':
        agent('go-live', { gen: d.gen, replayed: d.replayed, reemitted: d.reemitted })
        mark({ kind: 'go-live', label: `${host} goes live (gen ${String(d.gen)}${Number(d.reemitted) ? `, ${String(d.reemitted)} outputs re-emitted` : ''})`, host })
        this.terminal(`\x1b[1;33m── ${host} goes live in generation ${String(d.gen)}: replayed through entry ${String(d.replayed)}, re-emitted ${String(d.reemitted)} ──\x1b[0m`, ev.ts)
        return
      case 'diverged':
        agent('diverged', { n: d.n, primaryHash: d.primaryHash, backupHash: d.backupHash })
        mark({ kind: 'diverged', label: `${host}: replicas diverged at entry ${String(d.n)}`, host })
        return
      case 'fault': {
        const f = (d.fault ?? {}) as { kind?: string }
        agent('fault', { id: d.id, kind: f.kind, deadlineMs: Math.max(0, Number(d.healsAt) - ev.ts) })
        return
      }
      case 'heal':
        agent('heal', { id: d.id, why: d.reason })
        return
      case 'error':
      case 'agent-error':
        agent(ev.type, d)
        mark({ kind: 'error', label: `${host}: ${d.where ? `${String(d.where)}: ` : ''}${String(d.message)}`, host })
        return
      default:
        // snapshot, stall, dropped, channel-link, disk-link, agent, …: shown as they are
        agent(ev.type, d)
    }
  }

  /** The primary's 200 ms channel window becomes an 'entries' line and an 'ack' line. */
  private onChannel(host: HostId, ts: number, d: Record<string, unknown>): void {
    if (d.role !== 'primary') return // the backup's window repeats the same entries
    const peer = this.rows.get(host)?.status?.replica?.peer ?? (host === 'a' ? 'b' : 'a')
    const count = Number(d.entries) || 0
    if (count > 0) {
      const inputs = inputMix(Array.isArray(d.samples) ? (d.samples as { input?: unknown }[]) : [], count)
      this.events.publish({ ts, topic: 'agent', host, type: 'entries', data: { to: peer, first: d.first, last: d.last, count, bytes: d.bytes, inputs } })
    }
    const acked = Number(d.acked) || 0
    const key = `${host}:${String(d.gen)}`
    if (acked > (this.lastAcked.get(key) ?? 0)) {
      this.lastAcked.set(key, acked)
      if ((REPLICA_IDS as readonly string[]).includes(peer)) {
        this.events.publish({ ts, topic: 'agent', host: peer as HostId, type: 'ack', data: { n: acked, heldOutputs: d.heldOutputs, holdP50Ms: d.holdP50Ms, holdMaxMs: d.holdMaxMs } })
      }
    }
  }

  // ----- the status snapshot -----------------------------------------------------------

  private snapshot(): LabStatus {
    const attached = this.lab !== null
    const faults: FaultInfo[] = []
    if (attached) for (const f of this.lab!.openFaults()) faults.push(toFaultInfo(f))
    const hosts = HOST_IDS.map((id) => this.hostStatus(id, faults))
    return {
      state: this.state,
      kind: 'local',
      name: this.name,
      timing: null,
      sim: null,
      spare: null,
      invariants: emptyInvariants(),
      error: this.error,
      guest: attached || this.state !== 'stopped' ? this.guest : null,
      mode: attached || this.state !== 'stopped' ? this.mode : null,
      gen: Math.max(this.lab?.generation ?? 0, ...hosts.map((h) => (h.role === 'disk-server' ? 0 : h.gen))),
      startedAt: attached || this.state !== 'stopped' ? this.startedAt : null,
      hosts,
      channel: this.channelStatus(),
      faults,
      load: this.loadStatus()
    }
  }

  private hostStatus(id: HostId, faults: FaultInfo[]): HostStatus {
    const r = this.rows.get(id)
    const seen = this.lastSeen.get(id)
    const base: HostStatus = { ...downHostStatus(id), isolated: faults.some((f) => f.target === id && f.kind === 'isolate') }
    if (!r || !this.lab) {
      if (this.state === 'error' && id === 'a' && this.error) base.error = this.error
      return base
    }
    if (r.state === 'down') {
      return { ...base, gen: seen?.gen ?? 0, error: this.downBecause.get(id) ?? `agent not running (pid ${r.pid} is gone)` }
    }
    const st = r.status ?? seen
    const role: HostRole = st ? (st.role as HostRole) : 'idle'
    const out: HostStatus = {
      ...base,
      reachable: r.state === 'up',
      role,
      gen: st?.role === 'disk-server' ? (st.disk?.gen ?? 0) : (st?.gen ?? 0),
      pid: r.pid,
      uptimeMs: st?.uptimeMs ?? 0,
      paused: r.state === 'paused',
      isolated: base.isolated || (st?.faults.some((f) => f.fault.kind === 'isolate') ?? false),
      memory: st ? { rss: st.memory.rss, heapUsed: st.memory.heapUsed } : null,
      disk: st?.disk ? { ...st.disk } : null
    }
    if (r.state === 'paused') out.error = 'agent not answering: paused (SIGSTOP)'
    else if (r.state === 'unresponsive') out.error = `agent not answering: ${r.error ?? 'no reply'}`
    return out
  }

  private channelStatus(): ChannelStatus | null {
    const p = this.primaryRow()
    const st = p?.status
    if (!p || !st?.channel) return null
    const ch = st.channel
    const to = st.replica?.peer ?? null
    const holds = st.outputRule
    return {
      from: p.host as ReplicaHostId,
      to: to === 'a' || to === 'b' ? to : null,
      gen: st.gen,
      connected: ch.connected,
      stalled: ch.stalled,
      lastEntry: ch.lastEntry,
      acked: ch.acked,
      lag: Math.max(0, ch.lastEntry - ch.acked),
      unackedEntries: ch.unackedEntries,
      unackedBytes: ch.unackedBytes,
      maxUnackedBytes: MAX_UNACKED_BYTES,
      entriesPerSec: this.rates.entries,
      acksPerSec: this.rates.acks,
      bytesPerSec: this.rates.bytes,
      heldOutputs: ch.heldOutputs,
      holdMs: holds ? { p50: round2(holds.p50Ms), p99: round2(holds.p99Ms), max: round2(holds.maxMs) } : { p50: 0, p99: 0, max: 0 }
    }
  }

  // ----- the event ring ------------------------------------------------------------------


  private emitStatus(): void {
    if (this.closed) return
    this.events.publish({ ts: Date.now(), topic: 'status', status: this.snapshot() })
  }

  private emitLoad(): void {
    if (this.closed) return
    this.events.publish({ ts: Date.now(), topic: 'load', load: this.loadStatus() })
  }

  private mark(mark: Mark): void {
    this.events.publish({ ts: Date.now(), topic: 'mark', mark })
  }

  private terminal(line: string, ts = Date.now()): void {
    this.events.publish({ ts, topic: 'terminal', stream: 'channel', data: line + '\r\n' })
  }
}

// ----- contract ⇄ lab vocabulary ------------------------------------------------------------

function linkEnds(t: FaultTarget): [string, string] {
  const [from, to] = t.split('-')
  return [from, to]
}

/** A contract fault (not a power cut) as the lab names it. */
export function toSpec(p: FaultInjectParams): LabFaultSpec {
  if (isHost(p.target)) {
    if (p.kind === 'pause') return { kind: 'pause', host: p.target }
    if (p.kind === 'isolate') return { kind: 'isolate', host: p.target }
    throw new ApiError('bad-request', `fault.inject: ${p.kind} does not apply to host ${p.target}`)
  }
  const [a, b] = linkEnds(p.target)
  switch (p.kind) {
    case 'cut': {
      const dir = p.params.direction ?? 'both'
      if (dir === 'both') return { kind: 'cut', from: a, to: b, oneWay: false }
      return dir === 'forward' ? { kind: 'cut', from: a, to: b, oneWay: true } : { kind: 'cut', from: b, to: a, oneWay: true }
    }
    case 'delay':
      return { kind: 'delay', from: a, to: b, ms: p.params.ms ?? 0, ...(p.params.jitterMs ? { jitterMs: p.params.jitterMs } : {}) }
    case 'loss':
      return { kind: 'loss', from: a, to: b, probability: p.params.probability ?? 0 }
    default:
      throw new ApiError('bad-request', `fault.inject: ${p.kind} does not apply to link ${p.target}`)
  }
}

/** The lab's record of an open fault, as the contract shows it. */
export function toFaultInfo(f: FaultRecord): FaultInfo {
  const base = { id: f.id, startedAt: f.createdAt, healsAt: f.healsAt, path: f.path, note: f.note ?? null, what: f.spec.kind }
  const s = f.spec
  switch (s.kind) {
    case 'power':
      return { ...base, target: s.host as HostId, kind: 'power', params: {} }
    case 'pause':
    case 'isolate':
      return { ...base, target: s.host as HostId, kind: s.kind, params: {} }
    case 'cut': {
      const { target, swapped } = linkOf(s.from, s.to)
      const params: FaultParams = s.oneWay ? { direction: swapped ? 'backward' : 'forward' } : { direction: 'both' }
      return { ...base, target, kind: 'cut', params }
    }
    case 'delay':
      return { ...base, target: linkOf(s.from, s.to).target, kind: 'delay', params: s.jitterMs ? { ms: s.ms, jitterMs: s.jitterMs } : { ms: s.ms } }
    case 'loss':
      return { ...base, target: linkOf(s.from, s.to).target, kind: 'loss', params: { probability: s.probability } }
  }
}

function linkOf(from: string, to: string): { target: FaultTarget; swapped: boolean } {
  const order = (x: string) => (x === 'disk' ? 2 : x === 'a' ? 0 : 1)
  const swapped = order(from) > order(to)
  const [x, y] = swapped ? [to, from] : [from, to]
  return { target: `${x}-${y}` as FaultTarget, swapped }
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

/**
 * Which inputs a window of entries carried. The agent samples only the first few entries of
 * each window, so the sample's mix is scaled to the window's count, not shown as counted.
 */
export function inputMix(samples: { input?: unknown }[], count: number): Record<string, number> {
  const seen: Record<string, number> = {}
  for (const s of samples) {
    const kind = String(s.input ?? '?').split(' ')[0]
    seen[kind] = (seen[kind] ?? 0) + 1
  }
  const n = samples.length
  if (n === 0 || n >= count) return seen
  const out: Record<string, number> = {}
  let left = count
  const kinds = Object.entries(seen).sort((x, y) => y[1] - x[1])
  kinds.forEach(([k, v], i) => {
    const share = i === kinds.length - 1 ? left : Math.round((v * count) / n)
    out[k] = share
    left -= share
  })
  return out
}

function describeParams(p: FaultParams): string {
  const parts: string[] = []
  if (p.direction) parts.push(p.direction)
  if (p.ms !== undefined) parts.push(`${p.ms} ms${p.jitterMs ? ` ±${p.jitterMs}` : ''}`)
  if (p.probability !== undefined) parts.push(`${Math.round(p.probability * 100)}%`)
  return parts.length ? ` (${parts.join(', ')})` : ''
}

function round2(x: number): number {
  return Math.round(x * 100) / 100
}
