// The nemesis soak: a workload against a lab while a nemesis injects random faults from a
// schedule drawn up front from a seed (plan.ts), heals them, restores redundancy when a
// replica is gone (nemesis.ts decides), keeps the workload running, and checks everything at
// the end. It drives a ConsoleBackend through the contract's methods exactly as the UI does
// (lab.start, load.start, fault.inject, fault.heal, lab.restore, lab.powerOn …), so the
// console's recorder records the soak like any session, and publishes its progress as the
// `drill` topic (DrillRun, kind 'soak') for the UI, playback and the report.
//
// Time: the schedule's times are ms on the soak's clock, which is the simulator's clock on
// the simulated lab (so a seed replays there at the same virtual times whatever the machine's
// load) and the console's clock elsewhere.
import type {
  ApiEvent,
  DrillExpectation,
  DrillRun,
  FaultInfo,
  GuestName,
  HostId,
  LabStatus,
  LoadStatus,
  LoadVerdict,
  MethodName,
  ReplicationMode,
  ResultOf
} from '../api/contract.js'
import { dispatch } from '../api/dispatch.js'
import type { ConsoleBackend } from '../console/console-backend.js'
import { DEFAULT_TIMING } from '../lab/lab.js'
import { isOpen, isPaired, recoveryFor, whyNotApplicable, type Recovery } from './nemesis.js'
import { clockText, describePlanned, planSoak, scheduleText, type PlannedFault } from './plan.js'

export type SoakLab = { kind: 'local' } | { kind: 'simulated'; speed?: number } | { kind: 'remote'; name: string }

export interface SoakOptions {
  lab: SoakLab
  seed: number
  /** the schedule's length */
  faults: number
  /** the soak's time bound, on its clock; faults planned later are not run */
  minutes: number
  guest: GuestName
  mode: ReplicationMode
  clients: number
  /** kv keys (default 24) */
  keys?: number
  /** timing for a lab the soak starts (local, simulated); a remote lab keeps its own */
  heartbeatMs?: number
  suspectMs?: number
  /** a load run is ended and checked after this many seconds, at a moment the lab is paired, and a new one started (default 30) */
  loadRunSeconds?: number
  /** progress lines (the schedule, each fault, the verdict) */
  log?: (line: string) => void
  signal?: AbortSignal
}

/** A planned fault as it went. */
export interface SoakFaultOutcome {
  n: number
  /** planned and actual time on the soak's clock, ms */
  plannedAt: number
  at: number | null
  what: string
  /** injected: the lab's fault id; skipped or refused: why */
  result: { injected: string } | { skipped: string } | { refused: string }
}

export interface SoakCheck {
  text: string
  ok: boolean
  detail: string
}

export interface SoakResult {
  run: DrillRun
  plan: PlannedFault[]
  schedule: string
  faults: SoakFaultOutcome[]
  loads: LoadVerdict[]
  checks: SoakCheck[]
  /** recoveries done: restores and power-ons */
  restores: number
  powerOns: number
  ok: boolean
  recording: string | null
}

/** Every call goes through the contract's checks, as a request from the page would. */
function call<M extends MethodName>(b: ConsoleBackend, method: M, params: unknown = {}): Promise<ResultOf<M>> {
  return dispatch(b, method, params) as Promise<ResultOf<M>>
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/** the soak's loop turns this often (real ms) */
const TICK_MS = 20

export async function runSoak(b: ConsoleBackend, opts: SoakOptions): Promise<SoakResult> {
  return new Soak(b, opts).go()
}

interface OpenFault {
  id: string
  planned: PlannedFault
  /** soak-clock ms at which the nemesis heals it (or, for a power cut, may bring the host back) */
  until: number
}

class Soak {
  private readonly log: (line: string) => void
  private readonly dr: DrillRun
  private plan: PlannedFault[] = []
  private readonly outcomes: SoakFaultOutcome[] = []
  private readonly open: OpenFault[] = []
  private readonly loads = new Map<number, LoadVerdict>()
  private loadRuns: number[] = []
  private restores = 0
  /** restores and power-ons the lab refused or that did not complete (tried again) */
  private refusedRecoveries = 0
  private powerOns = 0
  private clock: () => number = () => Date.now()
  private t0 = 0
  private lastPublish = 0
  private lastCompleted = 0
  /** console-clock times of the faults injected, for the failovers' "cut" */
  private readonly injectedAt: number[] = []
  private recoveryBlockedUntil = 0
  private notPairedSince: number | null = null
  private lastWait = ''
  private off: (() => void) | null = null
  private fatal: string | null = null
  /** how far the schedule has moved back, waiting for restores (ms) */
  private shift = 0
  /** which replicas went live in each generation (agent go-live events): more than one is a split brain */
  private readonly liveByGen = new Map<number, Set<string>>()
  private suspectMs: number = DEFAULT_TIMING.suspectMs

  constructor(
    private readonly b: ConsoleBackend,
    private readonly o: SoakOptions
  ) {
    this.log = o.log ?? (() => {})
    const labName = o.lab.kind === 'remote' ? o.lab.name : o.lab.kind
    const started = Date.now()
    this.dr = {
      id: `soak-${o.seed}-${new Date(started).toISOString().replace(/[-:]/g, '').slice(0, 13)}`,
      kind: 'soak',
      name: `soak on ${labName}`,
      title: `Nemesis soak: ${o.faults} faults at most, ${o.minutes} min at most, seed ${o.seed}, ${o.guest} (${o.mode}), ${o.clients} clients`,
      seed: o.seed,
      repeat: 1,
      repeats: 1,
      state: 'running',
      startedAt: started,
      endedAt: null,
      step: 'starting the lab',
      log: [],
      expectations: [],
      failovers: [],
      verdict: null,
      scenario: '',
      recording: null
    }
  }

  async go(): Promise<SoakResult> {
    this.off = this.b.subscribe((ev) => this.onEvent(ev))
    try {
      await this.startLab()
      const st = await this.status()
      const suspectMs = (this.suspectMs = st.timing?.suspectMs ?? DEFAULT_TIMING.suspectMs)
      this.plan = planSoak({ seed: this.o.seed, faults: this.o.faults, suspectMs, maxMs: this.o.minutes * 60_000 })
      const head = `# soak schedule: seed ${this.o.seed}, ${this.plan.length} faults (of ${this.o.faults} asked) within ${this.o.minutes} min, suspicion timeout ${suspectMs} ms${this.o.lab.kind === 'simulated' ? ', times on the simulator clock' : ''}`
      this.dr.scenario = scheduleText(this.plan, head)
      for (const line of this.dr.scenario.trimEnd().split('\n')) this.log(line)
      this.note(`lab ${st.name} (${st.kind}): ${st.guest}, ${st.mode}, heartbeat ${st.timing?.heartbeatMs ?? '?'} ms, suspect ${suspectMs} ms`)
      await this.untilPaired(60_000)
      const virtualNow = this.b.session.lab?.virtualNow
      this.clock = virtualNow ? () => virtualNow() : () => Date.now()
      this.t0 = this.clock()
      await this.startLoad()
      await this.loop()
      await this.finish()
    } catch (err) {
      this.fatal = errText(err)
      this.note(`soak stopped: ${this.fatal}`)
      await this.cleanup().catch(() => {})
    }
    return this.result()
  }

  // ----- the lab ------------------------------------------------------------------------

  private async startLab(): Promise<void> {
    const lab = this.o.lab
    let st: LabStatus
    if (lab.kind === 'remote') {
      st = await call(this.b, 'lab.open', { kind: 'remote', name: lab.name })
    } else {
      const timing = {
        ...(this.o.heartbeatMs !== undefined ? { heartbeatMs: this.o.heartbeatMs } : {}),
        ...(this.o.suspectMs !== undefined ? { suspectMs: this.o.suspectMs } : {})
      }
      const sim = lab.kind === 'simulated' ? { seed: this.o.seed, ...(lab.speed !== undefined ? { speed: lab.speed } : {}) } : {}
      st = await call(this.b, 'lab.start', { kind: lab.kind, guest: this.o.guest, mode: this.o.mode, ...timing, ...sim })
    }
    if (st.state !== 'running') throw new Error(`the ${lab.kind} lab did not start: ${st.error ?? st.state}`)
    this.dr.recording = this.b.recorder?.path ?? null
  }

  private status(): Promise<LabStatus> {
    return call(this.b, 'lab.status')
  }

  private now(): number {
    return this.clock() - this.t0
  }

  private async untilPaired(timeoutMs: number): Promise<LabStatus> {
    const deadline = Date.now() + timeoutMs
    let s = await this.status()
    while (!isPaired(s)) {
      if (Date.now() > deadline) throw new Error(`the lab did not reach a primary with a backup within ${timeoutMs} ms (${roles(s)})`)
      await sleep(50)
      s = await this.status()
    }
    return s
  }

  // ----- the loop -------------------------------------------------------------------------

  private async loop(): Promise<void> {
    const maxMs = this.o.minutes * 60_000
    // a lab that cannot get back to a primary with a backup for this long is a finding, not something to wait out
    // (two restores in a row can time out at 15 s each and the third succeed: seen on a loaded machine, see docs/soak-and-reports.md)
    const stuckMs = Math.max(60_000, 60 * this.suspectMs)
    let next = 0
    while (!this.o.signal?.aborted) {
      const now = this.now()
      const s = await this.status()
      if (s.state !== 'running') throw new Error(`the lab is ${s.state}${s.error ? `: ${s.error}` : ''}`)
      // a heal changes the lab: decide the rest on a fresh status
      if (await this.healDue(s, now)) continue
      // stuck: not paired for stuckMs since the last planned moment (a fault's injection or end), whatever the nemesis tried
      const planned = this.open.some((o) => now < o.until)
      this.notPairedSince = isPaired(s) || planned ? null : (this.notPairedSince ?? Date.now())
      if (this.notPairedSince !== null && Date.now() - this.notPairedSince > stuckMs)
        throw new Error(`redundancy was not restored within ${stuckMs / 1000} s: ${recoveryText(recoveryFor(s))} (${roles(s)})`)
      const f = this.plan[next]
      const overdue = f !== undefined && now >= f.at + this.shift
      // a fault waits for a quiet lab (ours healed, redundancy back), except the second half of a double failure
      if (overdue && (f.overlap || (isPaired(s) && this.open.length === 0))) {
        await this.inject(f, s, now)
        next++
        continue
      }
      if (f === undefined && this.open.length === 0 && isPaired(s)) break
      // the time bound: no more faults; finish() heals what is open and restores redundancy
      if (now > maxMs) break
      if (!isPaired(s)) await this.recover(s)
      else await this.tendLoad(s)
      this.publish()
      await sleep(TICK_MS)
    }
    for (const f of this.plan.slice(next))
      this.outcomes.push({
        n: f.n,
        plannedAt: f.at,
        at: null,
        what: describePlanned(f),
        result: { skipped: this.o.signal?.aborted ? 'the soak was interrupted' : "the soak's time bound came first" }
      })
  }

  private async inject(f: PlannedFault, s: LabStatus, now: number): Promise<void> {
    const what = describePlanned(f)
    const why = whyNotApplicable(f, s)
    // a fault that had to wait for a restore moves the rest of the schedule with it, so the
    // gaps between faults (a double failure's second cut after the failover) stay as planned
    const late = f.overlap ? 0 : now - f.at - this.shift
    if (late > 0) this.shift += late
    if (why) {
      this.outcomes.push({ n: f.n, plannedAt: f.at, at: now, what, result: { skipped: why } })
      this.note(`${clockText(now)}  #${f.n} ${what}: skipped (${why})`)
      return
    }
    this.dr.step = `#${f.n} ${what}`
    let info: FaultInfo
    try {
      // the dead-man deadline is the nemesis's heal time plus a margin: the nemesis heals, the target heals itself only if the console is gone
      const durationMs = f.kind === 'power' ? 60 * 60 * 1000 : Math.min(60 * 60 * 1000, f.durationMs + 10_000)
      info = await call(this.b, 'fault.inject', { target: f.target, kind: f.kind, params: f.params, durationMs })
    } catch (err) {
      this.outcomes.push({ n: f.n, plannedAt: f.at, at: now, what, result: { refused: errText(err) } })
      this.note(`${clockText(now)}  #${f.n} ${what}: refused by the lab: ${errText(err)}`)
      return
    }
    // the fault's own start as the lab records it, not when the call came back: a failover's cut
    this.injectedAt.push(info.startedAt)
    this.open.push({ id: info.id, planned: f, until: now + f.durationMs })
    this.outcomes.push({ n: f.n, plannedAt: f.at, at: now, what, result: { injected: info.id } })
    this.note(`${clockText(now)}  #${f.n} ${info.what} (${info.id})${late > 250 ? ` (the schedule waited ${late} ms for the lab to be restored)` : ''}`)
    this.publish(true)
  }

  /** Heals our faults whose time has come, if the lab still lists them (restore closes power cuts, the dead-man may have healed others). */
  private async healDue(s: LabStatus, now: number): Promise<boolean> {
    let healed = false
    for (const f of [...this.open]) {
      if (now < f.until) continue
      if (f.planned.kind === 'power') {
        // a power cut is ended by restore redundancy or power-on (recover); here only forgotten once they closed it
        if (!isOpen(f.id, s)) this.open.splice(this.open.indexOf(f), 1)
        continue
      }
      this.open.splice(this.open.indexOf(f), 1)
      if (!isOpen(f.id, s)) {
        this.note(`${clockText(now)}  ${f.id} (${describePlanned(f.planned)}) was healed already`)
        continue
      }
      healed = true
      try {
        await call(this.b, 'fault.heal', { id: f.id })
        this.note(`${clockText(now)}  heal ${f.id} (${describePlanned(f.planned)})`)
      } catch (err) {
        this.note(`${clockText(now)}  heal ${f.id} failed: ${errText(err)}`)
      }
    }
    return healed
  }

  private async recover(s: LabStatus): Promise<void> {
    if (Date.now() < this.recoveryBlockedUntil) return
    const now = this.now()
    const hold = new Set(this.open.filter((f) => f.planned.kind === 'power' && now < f.until).map((f) => f.id))
    const r = recoveryFor(s, hold)
    if (r.action === 'none') return
    if (r.action === 'wait') {
      if (r.why !== this.lastWait) this.dr.step = `waiting: ${r.why}`
      this.lastWait = r.why
      return
    }
    this.lastWait = ''
    try {
      if (r.action === 'power-on') {
        this.dr.step = `power on ${r.host} from the disk server`
        await call(this.b, 'lab.powerOn', { host: r.host })
        this.powerOns++
        this.note(`${clockText(now)}  both replicas gone: power on ${r.host}, which boots the guest from the disk server`)
      } else {
        this.dr.step = `restore redundancy: ${r.from} → ${r.to}`
        const st = await call(this.b, 'lab.restore', {})
        this.restores++
        this.note(`${clockText(now)}  restore redundancy ${r.from} → ${r.to} (gen ${st.gen})`)
      }
    } catch (err) {
      // the lab says why (a fault on the snapshot's path, a failover still going on): try again a little later
      this.refusedRecoveries++
      this.note(`${clockText(now)}  ${r.action === 'power-on' ? `power on ${r.host}` : 'restore redundancy'} refused: ${errText(err)}`)
      this.recoveryBlockedUntil = Date.now() + 1000
    }
    this.publish(true)
  }

  // ----- the workload -------------------------------------------------------------------

  private async startLoad(): Promise<void> {
    const l = await call(this.b, 'load.start', {
      clients: this.o.clients,
      seconds: 3600,
      keys: this.o.keys ?? 24,
      workload: this.o.guest
    })
    if (l.startedAt !== null) this.loadRuns.push(l.startedAt)
  }

  /** Ends the current load run at a quiet moment once it is long enough (its history is checked), and starts the next. */
  private async tendLoad(s: LabStatus): Promise<void> {
    const l = s.load
    if (l.state === 'idle') {
      if (this.now() < this.o.minutes * 60_000 && this.plan.length > this.outcomes.length)
        await this.startLoad().catch((err) => this.note(`load.start refused: ${errText(err)}`))
      return
    }
    const age = l.startedAt !== null ? Date.now() - l.startedAt : 0
    if (l.state === 'running' && age > (this.o.loadRunSeconds ?? 30) * 1000 && s.faults.length === 0) {
      await call(this.b, 'load.stop')
      this.note(`${clockText(this.now())}  load run ${this.loadRuns.length} ends after ${Math.round(age / 1000)} s: its history is checked`)
      await this.untilLoadIdle(60_000)
    }
  }

  private async untilLoadIdle(timeoutMs: number): Promise<LoadStatus> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const l = (await this.status()).load
      if (l.state === 'idle') return l
      if (Date.now() > deadline) throw new Error(`the load run did not end within ${timeoutMs / 1000} s of load.stop`)
      await sleep(50)
    }
  }

  // ----- the end ----------------------------------------------------------------------------

  private async finish(): Promise<void> {
    this.dr.step = 'healing and checking'
    await this.cleanup()
    const s = await this.status()
    this.judge(s)
  }

  /** Heal what is open, bring redundancy back, end the load and wait for its verdict. */
  private async cleanup(): Promise<void> {
    this.open.length = 0
    let s = await this.status()
    if (s.state !== 'running') return
    if (s.faults.some((f) => f.kind !== 'power')) await call(this.b, 'fault.heal', { id: 'all' }).catch((err) => this.note(`heal all: ${errText(err)}`))
    const deadline = Date.now() + 30_000
    while (!isPaired(s) && Date.now() < deadline) {
      await this.recover(s)
      await sleep(TICK_MS * 5)
      s = await this.status()
    }
    if (s.load.state !== 'idle') {
      await call(this.b, 'load.stop')
      await this.untilLoadIdle(120_000)
    }
  }

  private judge(s: LabStatus): void {
    const loads = this.loadRuns.map((t) => this.loads.get(t) ?? null)
    const checked = loads.filter((v): v is LoadVerdict => v !== null)
    const unchecked = loads.length - checked.length
    const lost = checked.reduce((n, v) => n + v.lostWrites, 0)
    const ops = checked.reduce((n, v) => n + v.ok + v.failed + v.unknown, 0)
    const invalid = checked.filter((v) => v.result !== 'valid')
    const inv = s.invariants
    const injected = this.outcomes.filter((f) => 'injected' in f.result).length
    const bank = this.o.guest === 'bank'
    const twoLive = [...this.liveByGen].filter(([, h]) => h.size > 1).map(([g, h]) => `gen ${g}: ${[...h].sort().join(' and ')}`)
    const checks: SoakCheck[] = [
      {
        text: 'no acknowledged write lost',
        ok: lost === 0 && (inv.acknowledgedLost ?? 0) === 0,
        detail: `${lost} lost over ${checked.length} checked load run${checked.length === 1 ? '' : 's'} (${ops} operations)`
      },
      {
        text: 'never two live replicas',
        ok: !inv.splitBrain && twoLive.length === 0,
        detail: twoLive.length
          ? `two replicas went live in the same generation: ${twoLive.join('; ')}`
          : inv.splitBrain
            ? 'the console saw two replicas releasing outputs at the same time'
            : `one replica went live per generation (${this.liveByGen.size} generations with a go-live), and the console never saw two serving at once`
      },
      {
        text: bank ? 'the bank total holds in every run' : 'histories linearizable (per-key registers, counters exact)',
        // no checked run shows nothing: that is not a pass
        ok: invalid.length === 0 && unchecked === 0 && checked.length > 0,
        detail:
          invalid.length || unchecked || !checked.length
            ? [
                ...invalid.map((v) => v.summary),
                ...(unchecked ? [`${unchecked} load run(s) without a verdict`] : []),
                ...(checked.length ? [] : ['no load run was checked'])
              ].join('; ')
            : `${checked.length} load run${checked.length === 1 ? '' : 's'} checked, every one valid`
      },
      {
        text: 'no divergence',
        ok: inv.divergence === null,
        detail: inv.divergence ? `${inv.divergence.host} diverged at entry ${inv.divergence.entry}` : 'no replica reported a state hash mismatch'
      },
      {
        text: 'redundancy restored at the end',
        ok: isPaired(s),
        detail: `${roles(s)}; ${this.restores} restores, ${this.powerOns} power-ons from the disk server${this.refusedRecoveries ? `; ${this.refusedRecoveries} attempts refused or timed out and tried again (see the log)` : ''}`
      }
    ]
    const expectations: DrillExpectation[] = checks.map((c) => ({ text: c.text, ok: c.ok, detail: c.detail, evidence: [] }))
    // the moments that decide who is live: each test-and-set, go-live and halt (the last ones the console kept)
    for (const e of inv.evidence.filter((x) => x.kind === 'go-live' || x.kind === 'tas' || x.kind === 'halt').slice(-30))
      expectations[1].evidence.push({ seq: e.seq, text: e.text })
    this.dr.expectations = expectations
    const ok = checks.every((c) => c.ok)
    const lat = this.dr.failovers.filter((f) => f.liveAt !== null).map((f) => f.liveAt! - f.at)
    const med = lat.length ? lat.sort((x, y) => x - y)[Math.floor(lat.length / 2)] : null
    const skipped = this.outcomes.length - injected
    this.dr.verdict = {
      ok,
      summary: `${ok ? 'PASSED' : 'FAILED'}: ${injected} faults injected${skipped ? ` (${skipped} skipped)` : ''}, ${this.dr.failovers.length} go-lives, ${this.restores} restores, ${this.powerOns} power-ons; ${
        checks
          .filter((c) => !c.ok)
          .map((c) => c.text + ' VIOLATED')
          .join(', ') || 'every check held'
      }`,
      explanation: ok
        ? `Through ${injected} random faults the service kept its promises: every write it acknowledged survived (the Output Rule held outputs until the backup had the entry), the disk server's test-and-set let one replica go live per generation, ${bank ? 'the bank total never moved' : 'every history was linearizable'}, and restore redundancy brought a backup back each time${med !== null ? ` (median cut → go-live ${med} ms)` : ''}.`
        : `The soak found a violation: ${checks
            .filter((c) => !c.ok)
            .map((c) => `${c.text}: ${c.detail}`)
            .join('; ')}. The recording holds every event; replay the schedule with the same seed.`
    }
    this.dr.state = ok ? 'passed' : 'failed'
    this.checks = checks
  }

  private checks: SoakCheck[] = []

  // ----- events and progress ------------------------------------------------------------------

  private onEvent(ev: ApiEvent): void {
    if (ev.topic === 'load') {
      const l = ev.load
      if (l.state === 'idle' && l.verdict && l.startedAt !== null) this.loads.set(l.startedAt, l.verdict)
      if (l.completed > this.lastCompleted) {
        // the first operation answered after a go-live: the failover is over for the clients
        for (const f of this.dr.failovers) if (f.servedAt === null && f.liveAt !== null && ev.ts >= f.liveAt) f.servedAt = ev.ts
      }
      this.lastCompleted = l.state === 'running' ? l.completed : 0
    } else if (ev.topic === 'agent' && ev.type === 'go-live') {
      const cut = [...this.injectedAt].reverse().find((t) => t <= ev.ts) ?? ev.ts
      this.dr.failovers.push({ at: cut, host: ev.host as HostId, liveAt: ev.ts, servedAt: null })
      const gen = Number(ev.data.gen)
      let hosts = this.liveByGen.get(gen)
      if (!hosts) this.liveByGen.set(gen, (hosts = new Set()))
      hosts.add(ev.host)
    }
  }

  private note(text: string): void {
    this.dr.log.push({ t: Date.now(), text })
    this.log(text)
  }

  /** The whole run as a `drill` event; at most every two seconds unless something happened. */
  private publish(now = false): void {
    if (!now && Date.now() - this.lastPublish < 2000) return
    this.lastPublish = Date.now()
    this.b.events.publish({ ts: Date.now(), topic: 'drill', run: structuredClone(this.dr) })
  }

  private result(): SoakResult {
    if (this.fatal) {
      this.dr.state = 'error'
      this.dr.verdict = {
        ok: false,
        summary: `ERROR: ${this.fatal}`,
        explanation: 'The soak could not run to its end, so nothing is shown either way; the recording holds what happened until then.'
      }
    }
    this.dr.step = null
    this.dr.endedAt = Date.now()
    this.publish(true)
    this.off?.()
    return {
      run: this.dr,
      plan: this.plan,
      schedule: this.dr.scenario,
      faults: this.outcomes,
      loads: this.loadRuns.map((t) => this.loads.get(t)).filter((v): v is LoadVerdict => v !== undefined),
      checks: this.checks,
      restores: this.restores,
      powerOns: this.powerOns,
      ok: this.dr.verdict?.ok === true,
      recording: this.dr.recording
    }
  }
}

function roles(s: LabStatus): string {
  return s.hosts.map((h) => `${h.id} ${h.paused ? 'paused' : h.role}${h.role !== 'disk-server' && h.gen ? ` g${h.gen}` : ''}`).join(', ')
}

function recoveryText(r: Recovery): string {
  switch (r.action) {
    case 'none':
      return 'nothing to do'
    case 'wait':
      return `waiting: ${r.why}`
    case 'restore':
      return `restore ${r.from} → ${r.to}`
    case 'power-on':
      return `power on ${r.host}`
  }
}
