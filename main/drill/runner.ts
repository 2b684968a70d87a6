// The drill runner: a scripted operator. It drives the console through the same API methods
// the UI calls (lab.start / lab.open, load.start, fault.inject, fault.heal, lab.restore,
// lab.powerOn, load.stop) and judges what the console's event stream shows, so a drill is
// recorded by the console's recorder like any session and runs alike on every lab kind.
//
// Progress is one DrillRun (main/api/contract.ts), published whole as a `drill` event at every
// change; the CLI, the UI and reports read the same object.
import type { ApiEvent, DrillExpectation, LabFileForm, DrillRun, HostId, LabStatus, LoadStatus, MethodName, ParamsOf, ResultOf } from '../api/contract.js'
import type { UnnumberedEvent } from '../api/event-log.js'
import { Prng } from '../../agent/prng.js'
import { holds } from './condition.js'
import type { Action, Expectation, Range, Scenario, Step } from './scenario.js'

/** What the runner needs of the console: its API, its events, and where it records. */
export interface DrillConsole {
  call<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>>
  subscribe(listener: (ev: ApiEvent) => void): () => void
  publish(ev: UnnumberedEvent): void
  recording(): string | null
  /** the lab file a remote lab was deployed from, to redeploy it in a drill's shape and put it back; null if unknown */
  remoteLabFile?(name: string): LabFileForm | null
}

export interface DrillOptions {
  /** built-in name or file path, as the run reports it */
  name: string
  seed: number
  repeats: number
  /** overrides the scenario's lab.kind (and lab.remote) */
  lab?: { kind: 'local' | 'simulated' | 'remote'; name?: string }
  /** etcd client URLs for arbiter: etcd, when the scenario names none */
  etcd?: string[]
  signal?: AbortSignal
  /** every change of the run (also published as a `drill` event) */
  onRun?: (run: DrillRun) => void
}

/** How long the lab may take to come up redundant, and the load to finish and be checked. */
const READY_MS = 30_000
const CHECK_GRACE_MS = 60_000
/** throughput before the first fault is averaged over this window */
const PRE_FAULT_WINDOW_MS = 3000

class DrillStopped extends Error {}
class DrillFailed extends Error {}

interface Leg {
  mode: string
  t0: number
  faults: { at: number; kind: string; target: string }[]
  failovers: DrillRun['failovers']
  liveMarks: { at: number; host: HostId; seq: number; text: string }[]
  loadSamples: { at: number; opsPerSec: number; completed: number }[]
  /** console times at which a status showed both replicas live */
  bothLive: number[]
  channelBytes: number
  recoveredAt: number | null
  /** the first heal, restore or power-on: recovery by the operator begins */
  firstHealAt: number | null
  final: LabStatus | null
}

/** Runs a scenario `repeats` times; resolves with every run (the last one's verdict decides). */
export async function runDrill(c: DrillConsole, sc: Scenario, opts: DrillOptions): Promise<DrillRun[]> {
  const runs: DrillRun[] = []
  for (let i = 1; i <= opts.repeats; i++) {
    const run = await new DrillRunner(c, sc, opts, i).execute()
    runs.push(run)
    if (run.state === 'stopped' || run.state === 'error') break
  }
  return runs
}

/** The seed of one repeat: repeats of one seed draw different, reproducible schedules. */
export function repeatSeed(seed: number, repeat: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) + repeat * 0x85ebca6b) >>> 0
}

/** Each range of the scenario drawn once for this repeat, in step order. */
export function drawSchedule(sc: Scenario, seed: number, repeat: number): number[] {
  const prng = new Prng(repeatSeed(seed, repeat))
  const draw = (r: Range) => (r.lo === r.hi ? r.lo : prng.int(r.lo, r.hi))
  return sc.steps.map((s) => {
    if (s.trigger?.kind === 'at') return draw(s.trigger.at)
    if (s.trigger?.kind === 'after') return draw(s.trigger.after)
    if (s.action.kind === 'wait') return draw(s.action.wait)
    return 0
  })
}

class DrillRunner {
  private readonly run: DrillRun
  private status: LabStatus | null = null
  private load: LoadStatus | null = null
  private leg: Leg | null = null
  private readonly legs: Leg[] = []
  private readonly kind: 'local' | 'simulated' | 'remote'
  private readonly remoteName: string | null
  private wake: (() => void) | null = null
  /** the lab is the drill's to clean up: it started it (or, remote, began to drive it) */
  private owns = false
  /** the remote lab's own lab file, when the drill redeployed the lab in a shape of its own: put back at the end */
  private redeployed: { name: string; file: LabFileForm; arbiter?: 'disk' | 'etcd' } | null = null

  constructor(
    private readonly c: DrillConsole,
    private readonly sc: Scenario,
    private readonly opts: DrillOptions,
    repeat: number
  ) {
    this.kind = opts.lab?.kind ?? sc.lab.kind ?? 'simulated'
    this.remoteName = opts.lab?.name ?? sc.lab.remote
    const started = Date.now()
    this.run = {
      id: `${sc.name}-${stamp(started)}-${repeat}`,
      kind: 'drill',
      name: opts.name,
      title: sc.title,
      seed: opts.seed,
      repeat,
      repeats: opts.repeats,
      state: 'running',
      startedAt: started,
      endedAt: null,
      step: null,
      log: [],
      expectations: sc.expect.map((e) => ({ text: expectationText(e), ok: null, detail: '', evidence: [] })),
      failovers: [],
      verdict: null,
      scenario: sc.source,
      recording: null
    }
  }

  private async legs_(): Promise<void> {
    const schedule = drawSchedule(this.sc, this.opts.seed, this.run.repeat)
    const drawn = this.sc.steps.map((s, i) => (hasRange(s) ? `step ${i + 1}: ${fmtMs(schedule[i])}` : null)).filter((x) => x !== null)
    this.say(
      `drill ${this.sc.name} on the ${this.kind} lab${this.remoteName && this.kind === 'remote' ? ` '${this.remoteName}'` : ''}, seed ${this.opts.seed}, repeat ${this.run.repeat} of ${this.run.repeats}${drawn.length ? ` (drawn: ${drawn.join(', ')})` : ''}`
    )
    if (this.kind === 'simulated' && this.sc.lab.arbiter === 'etcd')
      throw new DrillFailed('the simulated lab has no etcd: run this drill on the local or remote lab')
    for (const mode of this.sc.lab.modes) {
      await this.startLab(mode)
      this.leg = {
        mode,
        t0: 0,
        faults: [],
        failovers: [],
        liveMarks: [],
        loadSamples: [],
        bothLive: [],
        channelBytes: 0,
        recoveredAt: null,
        firstHealAt: null,
        final: null
      }
      this.legs.push(this.leg)
      await this.call('load.start', {
        clients: this.sc.workload.clients,
        keys: this.sc.workload.keys,
        seconds: this.sc.workload.seconds,
        workload: this.sc.lab.guest,
        ...(this.sc.workload.readers ? { readers: this.sc.workload.readers } : {})
      })
      this.leg.t0 = Date.now()
      const rd = this.sc.workload.readers
      this.say(
        `load: ${this.sc.workload.clients} clients${rd ? ` and ${rd.clients} readers kept on ${rd.on}` : ''}, ${this.sc.workload.keys} keys, up to ${this.sc.workload.seconds} s (${mode})`
      )
      let prev = this.leg.t0
      for (const [i, step] of this.sc.steps.entries()) {
        await this.trigger(step, i, schedule[i], prev)
        await this.act(step.action, i, schedule[i])
        prev = Date.now()
      }
      this.setStep('waiting for the load to end and the checkers’ verdict')
      const verdictBy = Date.now() + this.sc.workload.seconds * 1000 + CHECK_GRACE_MS
      await this.until(() => this.load?.state === 'idle' && this.load.verdict !== null, verdictBy, 'the load to end with a verdict')
      this.say(`load verdict: ${this.load!.verdict!.summary}`)
      this.leg.final = await this.call('lab.status', {})
      await this.leaveLab()
    }
  }

  async execute(): Promise<DrillRun> {
    const off = this.c.subscribe((ev) => this.onEvent(ev))
    const onAbort = () => this.wake?.()
    this.opts.signal?.addEventListener('abort', onAbort)
    try {
      await this.legs_()
      await this.putBack()
      this.judge()
    } catch (err) {
      const stopped = err instanceof DrillStopped || this.opts.signal?.aborted
      const msg = err instanceof Error ? err.message : String(err)
      this.say(stopped ? 'stopped by the operator' : `${err instanceof DrillFailed ? 'failed' : 'error'}: ${msg}`)
      await this.cleanUp()
      this.run.state = stopped ? 'stopped' : err instanceof DrillFailed ? 'failed' : 'error'
      this.run.verdict = {
        ok: false,
        summary: stopped ? 'stopped before the verdict' : `${err instanceof DrillFailed ? 'FAILED' : 'ERROR'}: ${msg}`,
        explanation: stopped ? 'The drill was stopped; nothing was shown.' : this.sc.explain
      }
      for (const e of this.run.expectations) if (e.ok === null) e.detail ||= 'not decided (the drill did not finish)'
      await this.putBack().catch((e: unknown) => this.say(`the remote lab was not put back as deployed: ${e instanceof Error ? e.message : String(e)}`))
    } finally {
      off()
      this.opts.signal?.removeEventListener('abort', onAbort)
    }
    this.run.endedAt = Date.now()
    this.run.step = null
    this.run.recording = this.c.recording() ?? this.run.recording
    this.emit()
    return this.run
  }

  // ----- the lab -------------------------------------------------------------------------

  private async startLab(mode: string): Promise<void> {
    this.setStep(`starting the ${this.kind} lab (${this.sc.lab.guest}, ${mode})`)
    const now = await this.call('lab.status', {})
    if (this.kind === 'remote') {
      if (!this.remoteName) throw new DrillFailed('a drill on a remote lab needs the lab’s name (--lab remote NAME, or lab.remote in the scenario)')
      if (now.kind !== 'remote' || now.name !== this.remoteName || now.state !== 'running') {
        if (now.kind && now.state === 'running')
          throw new DrillFailed(`lab '${now.name}' (${now.kind}) is open; detach or stop it so the drill can open remote lab '${this.remoteName}'`)
        await this.call('lab.open', { kind: 'remote', name: this.remoteName })
      }
      this.owns = true
      await this.reshapeRemote(this.remoteName, mode)
      await this.redundant('the remote lab')
      this.run.recording = this.c.recording()
      return
    }
    if (now.state === 'running' || now.state === 'starting')
      throw new DrillFailed(
        `lab '${now.name}' (${now.kind}) is ${now.state}; a drill starts a lab of its own with the scenario's guest, mode and timing: stop or detach that lab first`
      )
    const etcd = this.sc.lab.arbiter === 'etcd' ? (this.sc.lab.etcd ?? this.opts.etcd ?? null) : null
    if (this.sc.lab.arbiter === 'etcd' && !etcd) throw new DrillFailed('arbiter: etcd needs etcd client URLs: lab.etcd in the scenario, or --etcd URLS')
    const t = this.sc.lab.timing
    this.owns = true
    const st = await this.call('lab.start', {
      kind: this.kind,
      guest: this.sc.lab.guest,
      mode: mode as 'rsm' | 'state-transfer',
      ...(t ? { heartbeatMs: t.heartbeatMs, suspectMs: t.suspectMs } : {}),
      ...(this.kind === 'simulated' ? { seed: repeatSeed(this.opts.seed, this.run.repeat) % 2 ** 31 } : {}),
      ...(this.sc.lab.experiments.length ? { experiments: this.sc.lab.experiments } : {}),
      ...(etcd ? { etcd } : {})
    })
    if (st.state !== 'running') throw new Error(`the ${this.kind} lab did not start: ${st.error ?? st.state}`)
    // a local lab of the console's name that was already running is adopted by lab.start: not ours to drill with
    const want = [...this.sc.lab.experiments].sort().join(',')
    if (st.guest !== this.sc.lab.guest || st.mode !== mode || [...st.experiments].sort().join(',') !== want) {
      this.owns = false
      throw new DrillFailed(
        `lab.start adopted a running lab '${st.name}' (${st.guest}, ${st.mode}${st.experiments.length ? `, ${st.experiments.join(', ')}` : ''}) instead of starting one for the drill; stop it (\`ftlab lab stop\`) and run the drill again`
      )
    }
    this.status = st
    if (this.sc.lab.experiments.length) this.say(`EXPERIMENT on: ${this.sc.lab.experiments.join(', ')}`)
    await this.redundant('the lab')
    this.run.recording = this.c.recording()
  }

  /**
   * A remote lab runs the guest, mode and tie-breaker of its lab file, and no experiments. A
   * drill that needs others redeploys it (teardown, then lab.deploy of its lab file changed so,
   * with the experiments: the only way they reach a remote agent) and puts it back at the end.
   */
  private async reshapeRemote(name: string, mode: string): Promise<void> {
    const s = await this.call('lab.status', {})
    const deployed = this.redeployed?.file ?? this.c.remoteLabFile?.(name) ?? null
    const arbiter = deployed?.arbiter
    const want = [...this.sc.lab.experiments].sort().join(',')
    const etcd = this.sc.lab.arbiter === 'etcd' ? (this.sc.lab.etcd ?? this.opts.etcd ?? (arbiter?.kind === 'etcd' ? arbiter.endpoints : null)) : null
    const differs: string[] = []
    if (s.guest !== this.sc.lab.guest || s.mode !== mode) differs.push(`${this.sc.lab.guest} in ${mode} mode (it runs ${s.guest} in ${s.mode})`)
    if ([...s.experiments].sort().join(',') !== want)
      differs.push(want ? `EXPERIMENT ${this.sc.lab.experiments.join(', ')}` : `no experiments (it runs ${s.experiments.join(', ')})`)
    const current = this.redeployed?.arbiter ?? arbiter?.kind ?? 'disk'
    if (current !== this.sc.lab.arbiter) differs.push(`the ${this.sc.lab.arbiter === 'etcd' ? 'etcd' : 'disk server'} as the tie-breaker`)
    if (differs.length === 0) return
    if (!deployed)
      throw new DrillFailed(`remote lab '${name}' must run ${differs.join(', ')} for this drill, and its lab file is not known to redeploy it: deploy it so`)
    if (this.sc.lab.arbiter === 'etcd' && !etcd)
      throw new DrillFailed('arbiter: etcd on a remote lab needs etcd client URLs: lab.etcd in the scenario, --etcd URLS, or an etcd arbiter in the lab file')
    const { arbiter: _a, ...base } = deployed
    const file: LabFileForm = {
      ...base,
      guest: this.sc.lab.guest,
      mode: mode as 'rsm' | 'state-transfer',
      ...(this.sc.lab.arbiter === 'etcd' ? { arbiter: { kind: 'etcd' as const, endpoints: etcd! } } : {})
    }
    this.say(`redeploying remote lab '${name}' for the drill with ${differs.join(', ')}; it is put back as deployed when the drill ends`)
    this.redeployed = { name, file: deployed, arbiter: this.sc.lab.arbiter }
    this.setStep(`redeploying remote lab '${name}'`)
    await this.call('lab.teardown', { confirm: name })
    await this.call('lab.deploy', { name, file, ...(want ? { experiments: this.sc.lab.experiments } : {}) })
    if (want) this.say(`EXPERIMENT on: ${this.sc.lab.experiments.join(', ')}`)
  }

  /** Redeploys a remote lab the drill reshaped from its own lab file again, without experiments. */
  private async putBack(): Promise<void> {
    const r = this.redeployed
    if (!r) return
    this.redeployed = null
    this.setStep(`putting remote lab '${r.name}' back as deployed`)
    this.say(`putting remote lab '${r.name}' back as deployed (its own lab file, no experiments)`)
    // straight to the console: this.call refuses once the drill is stopped
    const s = await this.c.call('lab.status', {})
    if (s.kind === 'remote' && s.name === r.name && s.state === 'running') await this.c.call('lab.teardown', { confirm: r.name })
    await this.c.call('lab.deploy', { name: r.name, file: r.file })
  }

  /** Waits for a primary with its backup, restoring redundancy on a remote lab that lost it. */
  private async redundant(what: string): Promise<void> {
    const ok = () => this.role('a') === 'primary' && this.role('b') === 'backup'
    this.status = await this.call('lab.status', {})
    if (!ok() && this.kind === 'remote' && (this.role('a') === 'live' || this.role('b') === 'live')) {
      this.say('the remote lab runs without a backup: restoring redundancy first')
      await this.call('lab.restore', {})
    }
    const swapped = () => this.role('b') === 'primary' && this.role('a') === 'backup'
    await this.until(() => ok() || (this.kind === 'remote' && swapped()), Date.now() + READY_MS, `${what} to run a primary with its backup`)
    if (ok()) return
    // the steps name a as the primary: fail back the way an operator would (b's power, a goes live, restore)
    this.say('the remote lab runs b as the primary; failing back first: power cut of b, a goes live, restore redundancy')
    await this.call('fault.inject', { target: 'b', kind: 'power', params: {}, durationMs: 60_000 })
    await this.until(() => this.role('a') === 'live', Date.now() + READY_MS, 'a to go live after the power cut of b (failing back)')
    await this.call('lab.restore', {})
    await this.until(ok, Date.now() + READY_MS, `${what} to run a primary with its backup after failing back`)
  }

  private async leaveLab(): Promise<void> {
    if (this.kind === 'remote') {
      await this.call('fault.heal', { id: 'all' }).catch(() => undefined)
      const s = await this.call('lab.status', {})
      if (!(this.roleIn(s, 'a') === 'primary' && this.roleIn(s, 'b') === 'backup'))
        this.say('the remote lab is left as the drill ended it (restore redundancy before the next drill)')
      return
    }
    this.setStep('stopping the lab')
    await this.call('lab.stop', {})
  }

  private async cleanUp(): Promise<void> {
    if (!this.owns) return
    // straight to the console: this.call refuses once the drill is stopped
    if (this.load?.state === 'running') await this.c.call('load.stop', {}).catch(() => undefined)
    await this.c.call('fault.heal', { id: 'all' }).catch(() => undefined)
    if (this.kind !== 'remote') await this.c.call('lab.stop', {}).catch(() => undefined)
  }

  // ----- steps -----------------------------------------------------------------------------

  private async trigger(step: Step, i: number, drawn: number, prev: number): Promise<void> {
    const t = step.trigger
    if (!t) return
    const leg = this.leg!
    switch (t.kind) {
      case 'at':
        this.setStep(`step ${i + 1}: waiting until ${fmtMs(drawn)} into the load`)
        return this.sleepUntil(leg.t0 + drawn)
      case 'after':
        this.setStep(`step ${i + 1}: waiting ${fmtMs(drawn)}`)
        return this.sleepUntil(prev + drawn)
      case 'after-ops':
        this.setStep(`step ${i + 1}: waiting for ${t.ops} operations`)
        return this.until(
          () => (this.load?.completed ?? 0) >= t.ops,
          Date.now() + step.withinMs,
          `${t.ops} operations (step ${i + 1}, line ${step.line})`,
          true
        )
      case 'when':
        this.setStep(`step ${i + 1}: waiting until ${t.text}`)
        await this.until(
          () => this.current() !== null && holds(t.cond, this.current()!),
          Date.now() + step.withinMs,
          `"${t.text}" (step ${i + 1}, line ${step.line})`,
          true
        )
        this.say(`${t.text}`)
    }
  }

  private async act(a: Action, i: number, drawn: number): Promise<void> {
    const leg = this.leg!
    const label = `step ${i + 1}: ${actionText(a, drawn)}`
    // recovery by the operator begins when the heal, restore or power-on is asked for: a go-live may be marked before the call returns
    if (a.kind === 'heal' || a.kind === 'restore' || a.kind === 'power-on') leg.firstHealAt ??= Date.now()
    this.setStep(label)
    switch (a.kind) {
      case 'fault': {
        const params =
          a.fault === 'cut'
            ? { direction: a.direction ?? 'both' }
            : a.fault === 'delay'
              ? { ms: a.ms }
              : a.fault === 'loss'
                ? { probability: a.probability }
                : {}
        const serving = this.servingReplica()
        // only with a backup to take over: a replica live alone has nobody to fail over to
        const backup = serving !== null && this.role(serving === 'a' ? 'b' : 'a') === 'backup'
        const silences = (['power', 'pause', 'isolate'].includes(a.fault) && a.target === serving) || (a.fault === 'cut' && a.target === 'a-b')
        // registered before the call: over SSH the go-live can be marked before fault.inject returns
        const fo: DrillRun['failovers'][number] | null = silences && serving && backup ? { at: Date.now(), host: serving, liveAt: null, servedAt: null } : null
        if (fo) {
          if (a.fault === 'cut') this.channelCuts.add(fo)
          leg.failovers.push(fo)
          this.run.failovers.push(fo)
          this.injecting.add(fo)
        }
        const f = await this.call('fault.inject', { target: a.target, kind: a.fault, params, durationMs: a.forMs }).finally(
          () => fo && this.injecting.delete(fo)
        )
        const at = f.startedAt || Date.now()
        leg.faults.push({ at, kind: a.fault, target: a.target })
        // the fault's own time (a power cut's: the SIGKILL on its host), unless the go-live was marked before it (clocks of two machines)
        if (fo && (fo.liveAt === null || fo.liveAt >= at)) fo.at = at
        const already = fo?.liveAt ? `; ${fo.host === 'a' ? 'b' : 'a'} already live, ${Math.round(fo.liveAt - fo.at)} ms after the fault` : ''
        this.say(`${f.what} (${f.path}${f.note ? `: ${f.note}` : ''})${already}`)
        break
      }
      case 'heal': {
        if (a.target === 'all') {
          const r = await this.call('fault.heal', { id: 'all' })
          this.say(`healed all${r.healed.length ? ` (${r.healed.join(', ')})` : ''}${r.warnings.length ? `; warnings: ${r.warnings.join('; ')}` : ''}`)
        } else {
          const open = (await this.call('lab.status', {})).faults.filter((f) => f.target === a.target && f.kind !== 'power')
          if (open.length === 0) this.say(`nothing to heal on ${a.target} (its faults already healed)`)
          for (const f of open) {
            await this.call('fault.heal', { id: f.id })
            this.say(`healed ${f.what}`)
          }
        }
        leg.recoveredAt = Date.now()
        break
      }
      case 'restore': {
        const s = await this.call('lab.restore', a.onto ? { onto: a.onto } : {})
        this.say(`redundancy restored: generation ${s.gen}, ${s.hosts.map((h) => `${h.id} ${h.role}`).join(', ')}`)
        leg.recoveredAt = Date.now()
        break
      }
      case 'power-on': {
        const s = await this.call('lab.powerOn', { host: a.host })
        this.say(`${a.host} powered on: ${s.hosts.find((h) => h.id === a.host)?.role ?? '?'} in generation ${s.gen}`)
        leg.recoveredAt = Date.now()
        break
      }
      case 'wait':
        await this.sleepUntil(Date.now() + drawn)
        break
      case 'stop-load':
        await this.call('load.stop', {})
        this.say('load stopped')
        break
      case 'checkpoint':
        break
    }
  }

  // ----- watching ------------------------------------------------------------------------

  private onEvent(ev: ApiEvent): void {
    const leg = this.leg
    switch (ev.topic) {
      case 'status':
        this.status = ev.status
        if (leg && ev.status.hosts.filter((h) => h.reachable && h.role === 'live').length > 1) leg.bothLive.push(ev.ts)
        // load events are fresher than the status's copy of the load
        this.load ??= ev.status.load
        break
      case 'load':
        this.load = ev.load
        if (leg && ev.load.state === 'running') leg.loadSamples.push({ at: ev.ts, opsPerSec: ev.load.opsPerSec, completed: ev.load.completed })
        if (leg) this.noteServed(ev.ts, ev.load.completed)
        break
      case 'mark':
        if (leg && ev.mark.kind === 'go-live' && ev.mark.host) {
          leg.liveMarks.push({ at: ev.ts, host: ev.mark.host, seq: ev.seq, text: ev.mark.label })
          // a power cut, pause or isolation of the serving replica is taken over by the other one; a channel cut by either
          const fo = leg.failovers.find((f) => f.liveAt === null && f.at <= ev.ts + 50 && (f.host !== ev.mark.host || this.isChannelCut(f)))
          if (fo) {
            fo.liveAt = ev.ts
            // over SSH the go-live can come before the fault's call returns with the fault's own time: said then
            this.say(
              this.injecting.has(fo)
                ? `${ev.mark.label}, before the fault's call returned`
                : `${ev.mark.label}: ${Math.round(ev.ts - fo.at)} ms after the fault`
            )
          } else this.say(ev.mark.label)
        } else if (
          leg &&
          (ev.mark.kind === 'suspect' || ev.mark.kind === 'halt' || ev.mark.kind === 'tas' || ev.mark.kind === 'power-on' || ev.mark.kind === 'restore')
        )
          this.say(ev.mark.label)
        break
      case 'agent':
        if (leg && ev.type === 'entries' && this.load?.state === 'running') leg.channelBytes += Number(ev.data.bytes) || 0
        break
      default:
        return
    }
    this.wake?.()
  }

  private readonly channelCuts = new WeakSet<object>()
  /** failovers whose fault's call has not returned yet: their `at` is still when the call began */
  private readonly injecting = new WeakSet<object>()
  private isChannelCut(fo: object): boolean {
    return this.channelCuts.has(fo)
  }

  private readonly servedBase = new Map<object, number>()
  private noteServed(ts: number, completed: number): void {
    for (const fo of this.leg?.failovers ?? []) {
      if (fo.liveAt === null || fo.servedAt !== null) continue
      const base = this.servedBase.get(fo)
      if (base === undefined) this.servedBase.set(fo, completed)
      else if (completed > base) fo.servedAt = ts
    }
  }

  /** The freshest view: the last status with the last load progress in it. */
  private current(): LabStatus | null {
    if (!this.status) return null
    return this.load ? { ...this.status, load: this.load } : this.status
  }

  private role(id: 'a' | 'b'): string | undefined {
    return this.status ? this.roleIn(this.status, id) : undefined
  }

  private roleIn(s: LabStatus, id: string): string | undefined {
    return s.hosts.find((h) => h.id === id)?.role
  }

  private servingReplica(): HostId | null {
    for (const id of ['a', 'b'] as const) if (this.role(id) === 'primary' || this.role(id) === 'live') return id
    return null
  }

  // ----- judging ---------------------------------------------------------------------------

  private judge(): void {
    this.run.expectations = this.sc.expect.map((e) => this.check(e))
    const failed = this.run.expectations.filter((e) => !e.ok)
    const ok = failed.length === 0
    this.run.state = ok ? 'passed' : 'failed'
    this.run.verdict = {
      ok,
      summary: ok
        ? `PASSED: ${this.run.expectations.length} of ${this.run.expectations.length} expectations held`
        : `FAILED: ${failed.map((e) => `${e.text}: ${e.detail}`).join('; ')}`,
      explanation: ok ? this.sc.explain : `Not shown: ${failed.map((e) => e.text).join(', ')} did not hold. What the drill sets out to show: ${this.sc.explain}`
    }
    this.say(this.run.verdict.summary)
  }

  private check(e: Expectation): DrillExpectation {
    const text = expectationText(e)
    const res = (ok: boolean, detail: string, evidence: DrillExpectation['evidence'] = []): DrillExpectation => ({ text, ok, detail, evidence })
    const legs = this.legs
    const verdicts = legs.map((l) => l.final?.load.verdict ?? null)
    const checker = (name: string) =>
      verdicts.map((v) => {
        if (!v) return 'unknown' as const
        const c = v.checks?.find((x) => x.checker === name)
        return c ? c.valid : ('unknown' as const)
      })
    const each = (f: (l: Leg) => string) => legs.map((l) => (legs.length > 1 ? `${l.mode}: ${f(l)}` : f(l))).join('; ')
    switch (e.kind) {
      case 'failover': {
        const fos = legs.flatMap((l) => l.failovers)
        if (fos.length === 0) return res(false, 'no fault silenced the serving replica, so there was no failover to time')
        const late = fos.filter((f) => f.liveAt === null || f.liveAt - f.at > e.withinMs)
        const took = fos.map((f) => (f.liveAt === null ? `no replica went live after the cut of ${f.host}` : `${Math.round(f.liveAt - f.at)} ms`)).join(', ')
        const evidence = legs.flatMap((l) => l.liveMarks.map((m) => ({ seq: m.seq, text: m.text })))
        return res(late.length === 0, `failover took ${took}`, evidence)
      }
      case 'no-lost-writes': {
        const ok = checker('no acknowledged write lost').every((v) => v === true)
        // when the checker could not decide, its evidence says why (e.g. keys missing from the final read)
        return res(
          ok,
          each((l) => (ok ? lostText(l.final?.load.verdict ?? null) : checkText(l, 'no acknowledged write lost')))
        )
      }
      case 'linearizable': {
        const ok = checker('registers are linearizable (per key)').every((v) => v === true)
        return res(
          ok,
          each((l) => checkText(l, 'registers are linearizable (per key)'))
        )
      }
      case 'exactly-once': {
        const ok = checker('counters never go backwards and count every INCR once').every((v) => v === true)
        const dups = legs.map((l) => l.final?.load.duplicatesDropped ?? 0).reduce((x, y) => x + y, 0)
        const reemitted = legs.flatMap((l) => l.liveMarks.map((m) => /(\d+) outputs re-emitted/.exec(m.text)?.[1] ?? '0')).map(Number)
        return res(
          ok,
          `${each((l) => checkText(l, 'counters never go backwards and count every INCR once'))}; re-emitted at go-live: ${reemitted.join(', ') || 0}; duplicates dropped by clients: ${dups}`
        )
      }
      case 'bank-total': {
        const ok = verdicts.every((v) => v?.result === 'valid')
        return res(
          ok,
          each((l) => l.final?.load.verdict?.details.find((d) => /total/.test(d)) ?? l.final?.load.verdict?.summary ?? 'no verdict')
        )
      }
      case 'one-live': {
        // Two replicas live at once, or two going live in one generation: what the test-and-set prevents.
        // The console's own split-brain flag also counts a woken, stale primary that has not yet learnt it
        // lost (nothing held because no client talks to it any more); it is reported, not judged.
        const both = legs.flatMap((l) => l.bothLive)
        const twice = legs.flatMap((l) => {
          const byGen = new Map<string, Set<string>>()
          for (const m of l.liveMarks) {
            const gen = /gen (\d+)/.exec(m.text)?.[1] ?? '?'
            byGen.set(gen, (byGen.get(gen) ?? new Set()).add(m.host))
          }
          return [...byGen].filter(([, hosts]) => hosts.size > 1).map(([gen, hosts]) => `${[...hosts].join(' and ')} both went live in generation ${gen}`)
        })
        const flagged = legs.some((l) => l.final?.invariants.splitBrain)
        const evidence = legs.flatMap((l) => l.liveMarks.map((m) => ({ seq: m.seq, text: m.text })))
        const lives = legs.map((l) => l.liveMarks.length).reduce((a, b) => a + b, 0)
        const ok = both.length === 0 && twice.length === 0
        const note = flagged
          ? '; the console also saw a stale primary answer status as serving after the other went live (checked by the clients’ history)'
          : ''
        return res(
          ok,
          ok
            ? `never two replicas live at once, one go-live per generation (${lives} go-live in all)${note}`
            : [...twice, ...both.slice(0, 3).map((t) => `a and b both live at ${fmtMs(t - this.run.startedAt)}`)].join('; '),
          evidence
        )
      }
      case 'nobody-live': {
        // while the faults hold: after the operator heals them a replica may (and should) go live again
        const lives = legs.flatMap((l) => l.liveMarks.filter((m) => l.faults.length > 0 && m.at >= l.faults[0].at && m.at < (l.firstHealAt ?? Infinity)))
        return res(
          lives.length === 0,
          lives.length === 0 ? 'no replica went live: without the test-and-set nobody may' : `went live: ${lives.map((m) => m.text).join('; ')}`,
          lives.map((m) => ({ seq: m.seq, text: m.text }))
        )
      }
      case 'throughput': {
        const out = legs.map((l) => throughputBack(l, e.backTo, e.withinMs))
        return res(
          out.every((o) => o.ok),
          out.map((o, i) => (legs.length > 1 ? `${legs[i].mode}: ${o.detail}` : o.detail)).join('; ')
        )
      }
      case 'end-roles': {
        const bad: string[] = []
        const seen: string[] = []
        for (const l of legs)
          for (const [id, want] of Object.entries(e.roles)) {
            const r = l.final ? this.roleIn(l.final, id) : undefined
            seen.push(`${id} ${r ?? '?'}`)
            if (r !== want) bad.push(`${id} is ${r ?? 'unknown'}, not ${want}`)
          }
        return res(bad.length === 0, bad.length ? bad.join(', ') : `at the end: ${seen.join(', ')}`)
      }
      case 'detected': {
        const name = e.what === 'lost-writes' ? 'no acknowledged write lost' : 'registers are linearizable (per key)'
        const caught = checker(name).every((v) => v === false)
        const ev = legs.map((l) => l.final?.load.verdict?.details.filter((d) => d.startsWith(name)).slice(0, 2) ?? []).flat()
        return res(
          caught,
          caught
            ? `the checker caught it: ${ev.join('; ') || name + ' violated'}`
            : `the checker did not catch a ${e.what === 'lost-writes' ? 'lost write' : 'stale read'} (${each((l) => checkText(l, name))})`
        )
      }
      case 'bytes-per-op': {
        const per = legs.map((l) => ({ mode: l.mode, ops: l.final?.load.completed ?? 0, bytes: l.channelBytes }))
        const ok = per.every((p) => p.ops > 0 && p.bytes > 0)
        return res(ok, per.map((p) => `${p.mode} ${p.ops ? Math.round(p.bytes / p.ops) : '?'} B/op (${p.bytes} B over ${p.ops} ops)`).join(' · '))
      }
    }
  }

  // ----- plumbing ----------------------------------------------------------------------

  private async call<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    if (this.opts.signal?.aborted) throw new DrillStopped()
    try {
      const r = await this.c.call(method, params)
      if (method === 'lab.status' || method === 'lab.start' || method === 'lab.restore' || method === 'lab.powerOn') this.status = r as LabStatus
      if (method === 'load.start' || method === 'load.stop') this.load = r as LoadStatus
      return r
    } catch (err) {
      throw new Error(`${method} was refused: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Waits until `ok()` holds, re-checking at each console event and every 100 ms. */
  private async until(ok: () => boolean, deadline: number, what: string, stepFails = false): Promise<void> {
    while (!ok()) {
      if (this.opts.signal?.aborted) throw new DrillStopped()
      if (Date.now() > deadline) {
        throw stepFails ? new DrillFailed(`${what} never happened in time`) : new Error(`gave up waiting for ${what}`)
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100)
        this.wake = () => {
          clearTimeout(t)
          r()
        }
      })
      this.wake = null
    }
  }

  private async sleepUntil(t: number): Promise<void> {
    while (Date.now() < t) {
      if (this.opts.signal?.aborted) throw new DrillStopped()
      await new Promise((r) => setTimeout(r, Math.min(100, t - Date.now())))
    }
  }

  private setStep(step: string): void {
    this.run.step = step
    this.emit()
  }

  private say(text: string): void {
    this.run.log.push({ t: Date.now(), text })
    this.emit()
  }

  private emit(): void {
    const copy = structuredClone(this.run)
    this.c.publish({ ts: Date.now(), topic: 'drill', run: copy })
    this.opts.onRun?.(copy)
  }
}

function throughputBack(l: Leg, backTo: number, withinMs: number): { ok: boolean; detail: string } {
  const first = l.faults[0]?.at
  if (first === undefined) return { ok: false, detail: 'no fault, so no drop to recover from' }
  const before = l.loadSamples.filter((s) => s.at < first && s.at >= first - PRE_FAULT_WINDOW_MS && s.opsPerSec > 0)
  if (before.length === 0) return { ok: false, detail: 'no throughput measured before the first fault (put the fault later in the load)' }
  const pre = before.reduce((x, s) => x + s.opsPerSec, 0) / before.length
  const from = Math.max(l.recoveredAt ?? 0, ...l.failovers.map((f) => f.liveAt ?? f.at), first)
  const back = l.loadSamples.find((s) => s.at >= from && s.opsPerSec >= backTo * pre)
  if (!back) return { ok: false, detail: `before the fault ${Math.round(pre)} ops/s; never back to ${Math.round(backTo * pre)} ops/s` }
  const took = back.at - from
  return {
    ok: took <= withinMs,
    detail: `before the fault ${Math.round(pre)} ops/s; back to ${back.opsPerSec} ops/s (≥ ${Math.round(backTo * 100)}%) ${Math.round(took)} ms after recovery`
  }
}

function lostText(v: LoadStatus['verdict']): string {
  if (!v) return 'no verdict'
  return `${v.lostWrites} acknowledged write${v.lostWrites === 1 ? '' : 's'} lost of ${v.ok} ok operations`
}

function checkText(l: Leg, name: string): string {
  const v = l.final?.load.verdict
  if (!v) return 'no verdict'
  const c = v.checks?.find((x) => x.checker === name)
  const word = c ? (c.valid === true ? 'holds' : c.valid === false ? 'VIOLATED' : 'unknown') : 'not checked'
  const ev = v.details.find((d) => d.startsWith(name))
  return `${name}: ${word}${ev && c?.valid !== true ? ` (${ev.slice(name.length + 2)})` : ''}`
}

export function expectationText(e: Expectation): string {
  switch (e.kind) {
    case 'failover':
      return `failover within ${fmtMs(e.withinMs)}`
    case 'no-lost-writes':
      return 'no acknowledged write lost'
    case 'linearizable':
      return 'histories linearizable'
    case 'exactly-once':
      return 'duplicates dropped: every INCR counted once'
    case 'one-live':
      return 'never two live replicas'
    case 'bank-total':
      return 'bank total constant'
    case 'nobody-live':
      return 'nobody goes live'
    case 'throughput':
      return `throughput back to ${Math.round(e.backTo * 100)}% within ${fmtMs(e.withinMs)}`
    case 'end-roles':
      return `ends with ${Object.entries(e.roles)
        .map(([h, r]) => `${h} ${r}`)
        .join(', ')}`
    case 'detected':
      return e.what === 'lost-writes' ? 'the checker catches the lost write' : 'the checker catches the stale read'
    case 'bytes-per-op':
      return 'logging-channel bytes per operation measured'
  }
}

export function actionText(a: Action, drawn: number): string {
  switch (a.kind) {
    case 'fault': {
      const what = { power: 'power cut', pause: 'pause', isolate: 'isolate', cut: 'cut', delay: 'delay', loss: 'loss on' }[a.fault]
      const extra =
        a.fault === 'delay' ? ` ${a.ms} ms` : a.fault === 'loss' ? ` p=${a.probability}` : a.direction && a.direction !== 'both' ? ` (${a.direction})` : ''
      return `${what} ${a.target}${extra}${a.fault === 'power' ? '' : ` for ${fmtMs(a.forMs)}`}`
    }
    case 'heal':
      return a.target === 'all' ? 'heal all' : `heal ${a.target}`
    case 'restore':
      return `restore redundancy${a.onto ? ` onto ${a.onto}` : ''}`
    case 'power-on':
      return `power on ${a.host}`
    case 'wait':
      return `wait ${fmtMs(drawn)}`
    case 'stop-load':
      return 'stop the load'
    case 'checkpoint':
      return 'reached'
  }
}

function hasRange(s: Step): boolean {
  const r = s.trigger?.kind === 'at' ? s.trigger.at : s.trigger?.kind === 'after' ? s.trigger.after : s.action.kind === 'wait' ? s.action.wait : null
  return r !== null && r.lo !== r.hi
}

export function fmtMs(ms: number): string {
  return ms >= 1000 && ms % 100 === 0 ? `${ms / 1000}s` : `${Math.round(ms)}ms`
}

function stamp(t: number): string {
  const d = new Date(t)
  const p = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`
}
