// One running lab as the console drives it, whatever its kind: a `Lab` (main/lab/lab.ts) with
// the status poller, the event translation and the load session around it, and the operator's
// actions (faults, heal, restore, power-on) marked on the timeline.
//
// The same code serves the local lab (agents on this machine), a remote lab (agents deployed
// over SSH; `remote` holds the SSH side: hosts, power drivers, teardown) and the simulated lab
// (the real core under a simulated clock): the lab kinds differ only below the Lab interface.
import {
  ApiError,
  HOST_IDS,
  type ApiErrorCode,
  type FaultHealResult,
  type FaultInfo,
  type FaultInjectParams,
  type FaultParams,
  type FaultTarget,
  type GuestName,
  type HostId,
  type LabKind,
  type LabState,
  type LabStatus,
  type LoadStartParams,
  type LoadStatus,
  type Mark,
  type ReplicationMode
} from '../api/contract.js'
import type { UnnumberedEvent } from '../api/event-log.js'
import type { LabEvent } from '../lab/lab-events.js'
import { onLabLockWait, type FaultRecord, type LabFaultSpec } from '../lab/lab-state.js'
import type { HostStatusRow, Lab, RestoreResult } from '../lab/lab.js'
import { EventTranslator } from './event-translator.js'
import { LoadSession } from './load-session.js'
import { StatusPoller } from './status-poller.js'
import type { RecordedHistory } from '../record/format.js'

/** Where the driver's events go: the console's event log. */
export interface EventSink {
  publish(ev: UnnumberedEvent): void
  /** the seq of the event published last */
  readonly seq: number
  /** a load run's client history, for the recording only (too big for the event stream) */
  history?(h: RecordedHistory): void
}

/** What only a remote lab has: machines reached over SSH. */
export interface RemoteSide {
  /** where a slot's agent runs, e.g. "h2 (10.87.0.12)" */
  where(slot: string): string
  spare: { machine: string; address: string } | null
  /** RemoteLab.restore: checks the spare and the failed host over SSH before touching the live replica */
  restore(onto?: string): Promise<RestoreResult>
  /** RemoteLab.status: rows with why a host is down */
  status(timeoutMs?: number): Promise<(HostStatusRow & { reason?: string })[]>
}

export interface LabDriverOptions {
  kind: LabKind
  /** how often the agents are asked for their status (default 300 ms) */
  statusEveryMs?: number
  remote?: RemoteSide
  sim?: { speed: number; seed: number }
  /**
   * Another process stopped this lab (its state file is gone) or started a new lab of its name:
   * the session lets go of this one (and follows the new one). The driver has stopped polling.
   */
  onLost?: (replaced: boolean) => void
}

const STATUS_TIMEOUT_MS = 1000
/** status events at most this often (a burst of actions must not flood the page) */
const STATUS_MIN_GAP_MS = 250

export class LabDriver {
  readonly kind: LabKind
  readonly poller: StatusPoller
  private readonly translator: EventTranslator
  readonly load: LoadSession
  private state: LabState = 'running'
  private error: string | null = null
  private readonly guest: GuestName
  private readonly mode: ReplicationMode
  private readonly startedAt: number
  private readonly downBecause = new Map<string, string>()
  private offLab: (() => void) | null = null
  private offLockWait: (() => void) | null = null
  private pollTimer: ReturnType<typeof setTimeout> | null = null
  private polling: Promise<void> | null = null
  /** an operator's action waits for the poll under way: its snapshot skips STATUS_MIN_GAP_MS (see poll) */
  private statusUrgent = false
  private statusTimer: ReturnType<typeof setTimeout> | null = null
  private lastStatusAt = 0
  private closed = false
  private readonly statusEveryMs: number

  constructor(
    readonly lab: Lab,
    private readonly sink: EventSink,
    private readonly opts: LabDriverOptions
  ) {
    this.kind = opts.kind
    this.statusEveryMs = opts.statusEveryMs ?? 300
    const s = lab.snapshot()
    this.guest = s.guest === 'bank' ? 'bank' : 'kv'
    this.mode = s.mode
    this.startedAt = s.createdAt
    const remote = opts.remote
    this.poller = new StatusPoller(remote ? { status: (t) => remote.status(t), machineOf: (id) => lab.machineOf(id) } : lab)
    this.translator = new EventTranslator({ publish: (ev) => this.publish(ev) }, (h) => this.poller.peerOf(h))
    this.load = new LoadSession({
      mark: (m) => this.mark(m),
      line: (t) => this.translator.channelLine(t),
      load: (l) => this.publish({ ts: Date.now(), topic: 'load', load: l }),
      history: (h) => this.sink.history?.(h)
    })
  }

  get name(): string {
    return this.lab.name
  }

  /** Start listening and polling; the first poll has happened when this resolves. */
  async attach(): Promise<void> {
    this.offLab = this.lab.onEvent((ev) => this.onLabEvent(ev))
    // an action of the console's that waits for another process's says so at once, not only when it gives up
    this.offLockWait = onLabLockWait((w) => {
      if (w.name === this.lab.name && !this.closed) this.mark({ kind: 'outside', label: w.text })
    })
    await this.poll()
    this.schedulePoll()
  }

  // ----- the operator's actions ---------------------------------------------------------

  async faultInject(p: FaultInjectParams): Promise<FaultInfo> {
    this.requireRunning('fault.inject')
    const host = isHost(p.target) ? p.target : undefined
    let rec: FaultRecord
    try {
      if (p.kind === 'power') {
        rec = await this.lab.powerCut(p.target)
        this.downBecause.set(
          p.target,
          p.target === 'disk'
            ? `power cut by the operator (${rec.note ?? rec.path}); power it on: the disk server restarts on its blocks`
            : `power cut by the operator (${rec.note ?? rec.path}); ${this.lab.canPowerOn(p.target) ? 'power it on or ' : ''}restore redundancy`
        )
      } else rec = await this.lab.injectFault(toSpec(p), p.durationMs)
    } catch (err) {
      throw apiError('fault.inject', err)
    }
    const info = toFaultInfo(rec)
    this.mark({
      kind: 'fault',
      label: `${info.what}${info.path === 'agent-filter' || info.path === 'sim' ? '' : ` (${info.path})`}${info.note ? `: ${info.note}` : ''}`,
      host
    })
    await this.poll(true)
    return info
  }

  async faultHeal(id: string): Promise<FaultHealResult> {
    this.requireRunning('fault.heal')
    let r: FaultHealResult
    try {
      r = await this.lab.heal(id)
    } catch (err) {
      const e = apiError('fault.heal', err)
      this.mark({ kind: 'error', label: e.message })
      await this.poll(true)
      throw e
    }
    this.mark({ kind: 'heal', label: id === 'all' ? `heal all${r.healed.length ? `: ${r.healed.join(', ')}` : ' (nothing open)'}` : `heal ${id}` })
    for (const w of r.warnings) this.mark({ kind: 'warning', label: w })
    await this.poll(true)
    return r
  }

  async restore(onto?: string): Promise<LabStatus> {
    this.requireRunning('lab.restore')
    this.mark({ kind: 'restore', label: `restore redundancy${onto ? ` onto ${onto}` : ''}: starting a fresh replica` })
    let r
    try {
      r = this.opts.remote ? await this.opts.remote.restore(onto) : await this.lab.restore(onto ? { onto } : {})
    } catch (err) {
      const e = apiError('lab.restore', err)
      this.mark({ kind: 'error', label: e.message })
      throw e
    }
    this.downBecause.delete(r.to)
    this.poller.resetRates()
    this.mark({ kind: 'restore', label: `redundancy restored: ${r.from} → ${r.to}${r.machine ? ` on ${r.machine}` : ''} (gen ${r.gen})`, host: r.to as HostId })
    this.translator.channelLine(`\x1b[2m── generation ${r.gen}: logging channel ${r.from} → ${r.to} ──\x1b[0m`)
    await this.poll(true)
    return this.snapshot()
  }

  /**
   * Switch a host back on: its power driver where it has one. A local or simulated host has
   * no power to switch: its "power" is its agent, which restore redundancy starts afresh. The
   * disk server's agent restarts on the blocks its data directory kept (Lab.powerOn).
   */
  async powerOn(host: HostId): Promise<LabStatus> {
    this.requireRunning('lab.powerOn')
    if (host === 'disk') {
      // its blocks and metadata are on its data directory: the agent restarts on them, where the replicas reconnect
      if (this.poller.row('disk')?.state !== 'down') throw new ApiError('conflict', 'lab.powerOn: the disk server is not down')
      try {
        const r = await this.lab.powerOn('disk')
        this.mark({ kind: 'power-on', label: `power on disk: ${r.detail}`, host })
      } catch (err) {
        throw apiError('lab.powerOn', err)
      }
      this.downBecause.delete(host)
      await this.poll(true)
      return this.snapshot()
    }
    if (this.poller.replicasGone) {
      // both replicas are gone: the guest comes back from the disk server in the next generation
      try {
        await this.lab.powerOn(host)
      } catch (err) {
        throw apiError('lab.powerOn', err)
      }
      this.downBecause.delete(host)
      this.mark({
        kind: 'power-on',
        label: `power on ${host}: boots the guest from the disk server in generation ${this.lab.generation}, alone; restore redundancy to take a backup`,
        host
      })
      await this.poll(true)
      return this.snapshot()
    }
    if (this.lab.canPowerOn(host)) {
      try {
        const r = await this.lab.powerOn(host)
        this.mark({ kind: 'power-on', label: `power on ${host} (${r.driver}: ${r.detail}); restore redundancy starts its agent`, host })
      } catch (err) {
        throw apiError('lab.powerOn', err)
      }
      this.downBecause.set(host, 'powered on; restore redundancy starts a fresh agent here')
      await this.poll(true)
      return this.snapshot()
    }
    if (this.kind === 'remote')
      throw new ApiError(
        'conflict',
        `lab.powerOn: host ${host} (${this.lab.machineOf(host)}) has no power driver that can switch it on; switch it on by hand, then restore redundancy`
      )
    if (this.poller.row(host)?.state !== 'down') throw new ApiError('conflict', `lab.powerOn: host ${host} is not down`)
    this.mark({ kind: 'power-on', label: `power on ${host}: a fresh agent joins as backup`, host })
    return this.restore()
  }

  loadStart(p: LoadStartParams): LoadStatus {
    this.requireRunning('load.start')
    return this.load.start(p, { guest: this.guest, targets: this.lab.serviceEndpoints(), serving: this.poller.serving() })
  }

  /** Stop the lab's agents (local, simulated). */
  async stop(): Promise<void> {
    this.state = 'stopping'
    this.emitStatus(true)
    await this.load.abandon()
    this.stopPolling()
    try {
      await this.lab.stop()
    } finally {
      this.close()
    }
  }

  /** Let go of the lab: its agents keep running. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.stopPolling()
    if (this.statusTimer) clearTimeout(this.statusTimer)
    this.offLab?.()
    this.offLab = null
    this.offLockWait?.()
    this.offLockWait = null
    this.lab.close()
  }

  async closeAfterLoad(): Promise<void> {
    await this.load.abandon()
    this.close()
  }

  // ----- status ------------------------------------------------------------------------

  snapshot(): LabStatus {
    const faults = this.faults()
    const hosts = this.poller.hosts({
      faults,
      addressOf: (id) => this.opts.remote?.where(id) ?? '127.0.0.1',
      // a power driver switches a machine on. Without one (local, simulated) a down replica's
      // "power" is its agent: power-on starts a fresh one (restore redundancy), or, after a
      // double failure, boots it from the disk server; a remote replica only in that last case.
      // The disk server always can: its agent restarts on its data directory
      canPowerOn: (id) => id === 'disk' || this.lab.canPowerOn(id) || this.kind !== 'remote' || this.poller.replicasGone,
      downBecause: (id) => this.downBecause.get(id) ?? null
    })
    const load = this.load.status()
    const snap = this.lab.snapshot()
    const timing = snap.timing
    return {
      state: this.state,
      kind: this.kind,
      name: this.lab.name,
      error: this.error ?? this.poller.error,
      guest: this.guest,
      mode: this.mode,
      gen: Math.max(this.lab.generation, ...hosts.map((h) => (h.role === 'disk-server' ? 0 : h.gen))),
      startedAt: this.startedAt,
      timing: timing ? { heartbeatMs: timing.heartbeatMs, suspectMs: timing.suspectMs } : null,
      sim: this.opts.sim ?? null,
      experiments: [...(snap.experiments ?? [])],
      spare: this.opts.remote?.spare ?? null,
      hosts,
      channel: this.poller.channelFor(hosts),
      faults,
      load,
      invariants: this.poller.invariants({ duplicatesDropped: load.duplicatesDropped, acknowledgedLost: this.load.acknowledgedLost() }),
      detection: this.poller.detection(),
      heldBy: this.heldElsewhere()
    }
  }

  /** The operation another process runs on the lab now (its lock), or null; the console's own is not shown here. */
  private heldElsewhere(): LabStatus['heldBy'] {
    try {
      const h = this.lab.busy()
      return h && !h.mine ? { actor: h.actor, doing: h.doing, since: h.since } : null
    } catch {
      return null
    }
  }

  private faults(): FaultInfo[] {
    try {
      return this.lab.openFaults().map(toFaultInfo)
    } catch {
      return []
    }
  }

  /**
   * Ask every agent for its status and send a snapshot; concurrent callers share one poll. After an operator's action
   * (`afterAction`) a poll begun before the action would show the lab as it was: the action waits for that one to end,
   * and the snapshot of the next goes out at once rather than after STATUS_MIN_GAP_MS. A power cut's go-live follows it
   * within a few heartbeats, and the cards (and a recording, whose playback shows the last status before each moment)
   * must show the cut host down by then.
   */
  async poll(afterAction = false): Promise<void> {
    if (afterAction) {
      if (this.polling) await this.polling
      this.statusUrgent = true
    }
    if (!this.polling) {
      this.polling = (async () => {
        if (this.closed) return
        try {
          await this.poller.poll(STATUS_TIMEOUT_MS)
          this.poller.error = null
        } catch (err) {
          // never let a failed poll go unseen: the hosts keep their last figures, the error shows
          this.poller.error = `cannot read the agents' status: ${errText(err)}`
        }
        if (this.state === 'running' && this.poller.allDown) {
          this.state = 'error'
          this.error = `every agent of lab '${this.lab.name}' is gone (killed outside the console?); stop the lab to clear it`
          this.mark({ kind: 'error', label: this.error })
        }
        const now = this.statusUrgent
        this.statusUrgent = false
        this.emitStatus(now)
      })().finally(() => {
        this.polling = null
      })
    }
    return this.polling
  }

  private schedulePoll(): void {
    if (this.closed || this.pollTimer) return
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

  /** A status event now, or (within STATUS_MIN_GAP_MS of the last) once the gap has passed. */
  emitStatus(now = false): void {
    if (this.closed && !now) return
    const wait = this.lastStatusAt + STATUS_MIN_GAP_MS - Date.now()
    if (!now && wait > 0) {
      this.statusTimer ??= setTimeout(() => {
        this.statusTimer = null
        this.emitStatus()
      }, wait)
      return
    }
    this.lastStatusAt = Date.now()
    this.publish({ ts: this.lastStatusAt, topic: 'status', status: this.snapshot() })
  }

  // ----- events ------------------------------------------------------------------------

  private onLabEvent(ev: LabEvent): void {
    if (this.closed) return
    if (ev.source === 'lab' && ev.type === 'state-changed') return this.followOutside(ev.data)
    if (ev.source === 'lab' && ev.type === 'state-lost') return this.lostToOutside(String(ev.data.message), ev.data.replaced === true)
    this.translator.translate(ev)
    this.poller.noteLabEvent(ev)
    if (ev.source === 'agent' && ev.type === 'diverged' && isHost(ev.host)) this.poller.noteDivergence(ev.host, Number(ev.data.n))
  }

  /**
   * Another process (`ftlab restore` in a terminal, another console) changed the lab: the Lab has
   * taken over its state; say what changed, and forget what this console knew of the hosts it touched.
   */
  private followOutside(d: Record<string, unknown>): void {
    const changes = Array.isArray(d.changes) ? d.changes.map(String) : []
    for (const h of Array.isArray(d.hosts) ? d.hosts : []) this.downBecause.delete(String(h))
    if (Array.isArray(d.hosts) && d.hosts.length) this.poller.resetRates()
    const who = typeof d.by === 'string' ? `${d.by}${typeof d.doing === 'string' ? `, ${d.doing}` : ''}` : 'another process'
    this.mark({ kind: 'outside', label: `changed outside the console by ${who}${changes.length ? `: ${changes.join('; ')}` : ''}` })
    // every action refused because the agents seemed gone works again once the poll sees them
    if (this.state === 'error' && this.poller.allDown) {
      this.state = 'running'
      this.error = null
    }
  }

  private lostToOutside(why: string, replaced: boolean): void {
    this.stopPolling()
    this.state = 'error'
    this.error = why
    this.mark({ kind: 'outside', label: why })
    this.emitStatus(true)
    this.opts.onLost?.(replaced)
  }

  private publish(ev: UnnumberedEvent): void {
    this.sink.publish(ev)
    // the moments an invariant's evidence points at
    if (ev.topic === 'mark' && EVIDENCE_MARKS.has(ev.mark.kind)) this.poller.noteEvidence(ev.mark.kind, this.sink.seq, ev.mark.label)
  }

  mark(mark: Mark): void {
    this.publish({ ts: Date.now(), topic: 'mark', mark })
  }

  line(text: string): void {
    this.translator.channelLine(text)
  }

  private requireRunning(method: string): void {
    if (this.state !== 'running') throw new ApiError('conflict', `${method}: lab '${this.lab.name}' is ${this.state}${this.error ? ` (${this.error})` : ''}`)
  }
}

const EVIDENCE_MARKS = new Set<Mark['kind']>(['go-live', 'tas', 'halt', 'diverged', 'fault', 'heal', 'restore', 'power-on'])

const isHost = (t: string | undefined): t is HostId => (HOST_IDS as readonly string[]).includes(t ?? '')
const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/** The agent could not be asked (no answer, connection refused): the lab is unavailable, not refusing. */
function codeOf(err: unknown): ApiErrorCode {
  if (err instanceof ApiError) return err.code
  const c = (err as { code?: unknown })?.code
  if (c === 'unreachable' || c === 'timeout' || c === 'closed') return 'unavailable'
  return 'conflict'
}

export function apiError(method: string, err: unknown): ApiError {
  if (err instanceof ApiError) return err
  return new ApiError(codeOf(err), `${method}: ${errText(err)}`)
}

// ----- contract ⇄ lab vocabulary ------------------------------------------------------------

/** A contract fault (not a power cut) as the lab names it. */
export function toSpec(p: FaultInjectParams): LabFaultSpec {
  if (isHost(p.target)) {
    if (p.kind === 'pause') return { kind: 'pause', host: p.target }
    if (p.kind === 'isolate') return { kind: 'isolate', host: p.target }
    throw new ApiError('bad-request', `fault.inject: ${p.kind} does not apply to host ${p.target}`)
  }
  const [a, b] = p.target.split('-')
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
  const base = { id: f.id, startedAt: f.createdAt, healsAt: f.healsAt, path: f.path, note: f.note ?? null }
  const s = f.spec
  switch (s.kind) {
    case 'power':
      return { ...base, target: s.host as HostId, kind: 'power', params: {}, what: `power cut ${s.host}` }
    case 'pause':
    case 'isolate':
      return { ...base, target: s.host as HostId, kind: s.kind, params: {}, what: `${s.kind} ${s.host}` }
    case 'cut': {
      const { target, swapped } = linkOf(s.from, s.to)
      const params: FaultParams = s.oneWay ? { direction: swapped ? 'backward' : 'forward' } : { direction: 'both' }
      return { ...base, target, kind: 'cut', params, what: s.oneWay ? `cut ${s.from}→${s.to}` : `cut ${s.from}↔${s.to}` }
    }
    case 'delay':
      return {
        ...base,
        target: linkOf(s.from, s.to).target,
        kind: 'delay',
        params: s.jitterMs ? { ms: s.ms, jitterMs: s.jitterMs } : { ms: s.ms },
        what: `delay ${s.from}↔${s.to} ${s.ms} ms${s.jitterMs ? ` ±${s.jitterMs}` : ''}`
      }
    case 'loss':
      return {
        ...base,
        target: linkOf(s.from, s.to).target,
        kind: 'loss',
        params: { probability: s.probability },
        what: `loss ${s.from}↔${s.to} ${Math.round(s.probability * 100)}%`
      }
  }
}

function linkOf(from: string, to: string): { target: FaultTarget; swapped: boolean } {
  const order = (x: string) => (x === 'disk' ? 2 : x === 'a' ? 0 : 1)
  const swapped = order(from) > order(to)
  const [x, y] = swapped ? [to, from] : [from, to]
  return { target: `${x}-${y}` as FaultTarget, swapped }
}
