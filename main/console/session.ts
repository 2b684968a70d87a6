// The session: which lab the console drives now, and the moves between labs — start a local
// or simulated lab, open (reattach to) a running local or remote lab by name, deploy a remote
// lab from a lab file, detach (the agents keep running), stop (local, simulated) and teardown
// (remote, confirmed by typing the lab's name). One move at a time.
import {
  ApiError,
  HOST_IDS,
  stoppedLabStatus,
  type DeployStep,
  type LabDeployParams,
  type LabKind,
  type LabStartParams,
  type LabState,
  type LabStatus,
  type Mark
} from '../api/contract.js'
import type { UnnumberedEvent } from '../api/event-log.js'
import { LabStore } from '../lab/lab-state.js'
import { DEFAULT_TIMING, type Lab } from '../lab/lab.js'
import { startSimLab } from '../lab/sim-lab.js'
import { LOCAL_LAB_NAME, openLocalLab, startLocalLab, type LocalLabOptions } from '../lab/local-lab.js'
import { LabFileError, validateLabFile, type LabFile } from '../remote/lab-file.js'
import { RemoteDeployError, RemoteLab, type RemoteLabOptions } from '../remote/remote-lab.js'
import { PtyShell } from '../ssh/shell.js'
import type { DeployProgress } from '../ssh/deploy.js'
import { driverLab, type CurrentLab } from './current-lab.js'
import { LabDriver, apiError, type EventSink } from './lab-driver.js'
import type { PromptScope, Prompts } from './prompts.js'
import type { ShellOpener } from './terminals.js'

/** The console's local lab has the name every CLI command defaults to. */
export { LOCAL_LAB_NAME }
export const SIMULATED_LAB_NAME = 'simulated'

export interface SessionOptions extends LocalLabOptions {
  statusEveryMs?: number
  /** passed to RemoteLab (known_hosts, ssh config, agent bundle, runtime cache…) */
  remote?: Omit<RemoteLabOptions, 'confirmHostKey' | 'secrets' | 'onProgress' | 'home'>
  readyTimeoutMs?: number
}

/** main/lab/sim-lab.ts's startSimLab, as the session calls it. */
export type StartSimLab = typeof startSimLab

export interface SessionHooks {
  sink: EventSink
  prompts: Prompts
  /** the lab changed: terminals follow it (null = no SSH hosts) */
  onShells(opener: ShellOpener | null): void
}

export class LabSession {
  private current: CurrentLab | null = null
  /** the driver behind `current` (a late word from a driver let go of must not touch its successor) */
  private currentDriver: LabDriver | null = null
  private remote: RemoteLab | null = null
  /** the questions the current remote lab's connections ask; closed when the console lets go of the lab */
  private promptScope: PromptScope | null = null
  /** what the status says while no lab is current (starting, deploying, stopped, error) */
  private idle: { state: LabState; kind: LabKind | null; name: string | null; error: string | null } = { state: 'stopped', kind: null, name: null, error: null }
  private lifecycle: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly opts: SessionOptions,
    private readonly hooks: SessionHooks
  ) {}

  get lab(): CurrentLab | null {
    return this.current
  }

  get kind(): LabKind | null {
    return this.current?.kind ?? this.idle.kind
  }

  get name(): string | null {
    return this.current?.name ?? this.idle.name
  }

  status(): LabStatus {
    if (this.current) return this.current.status()
    const s: LabStatus = { ...stoppedLabStatus(), state: this.idle.state, kind: this.idle.kind, name: this.idle.name, error: this.idle.error }
    if (this.idle.state === 'error' && this.idle.error) s.hosts[0].error = this.idle.error
    return s
  }

  need(method: string): CurrentLab {
    if (!this.current) throw new ApiError('conflict', `${method}: no lab is open; start the local or simulated lab, open a running one, or deploy a lab file`)
    return this.current
  }

  /** On console start: reattach to a running local lab of the console's name, if there is one. */
  reattachLocal(): Promise<void> {
    return this.serially(async () => {
      if (this.current) return
      const lab = await this.openLocal(LOCAL_LAB_NAME, false).catch(() => null)
      if (lab) await this.adopt(lab, 'local', `reattached to lab '${LOCAL_LAB_NAME}' (running since ${timeOfDay(lab.snapshot().createdAt)})`)
    })
  }

  start(p: LabStartParams): Promise<LabStatus> {
    return this.serially(async () => {
      const kind = p.kind ?? 'local'
      this.refuseIfOpen('lab.start')
      // the simulated lab is the real core under the simulator (main/lab/sim-lab.ts), driven like any other lab
      if (kind === 'simulated') {
        this.setIdle('starting', 'simulated', SIMULATED_LAB_NAME, null)
        this.mark({ kind: 'start', label: `lab start: simulated, guest ${p.guest}, ${p.mode}${p.speed ? `, speed ×${p.speed}` : ''}${experimentsText(p)}` })
        let started: Awaited<ReturnType<StartSimLab>>
        try {
          started = await startSimLab({
            guest: p.guest,
            mode: p.mode,
            timing: timingOf(p),
            speed: p.speed,
            seed: p.seed,
            experiments: p.experiments,
            name: SIMULATED_LAB_NAME,
            readyTimeoutMs: this.opts.readyTimeoutMs
          })
        } catch (err) {
          const msg = errText(err)
          this.setIdle('error', 'simulated', SIMULATED_LAB_NAME, msg)
          this.mark({ kind: 'error', label: `lab start failed: ${msg}` })
          return this.status()
        }
        const { lab, sim } = started
        const d = new LabDriver(lab, this.hooks.sink, {
          kind: 'simulated',
          statusEveryMs: this.opts.statusEveryMs,
          sim: {
            get speed() {
              return sim.speed
            },
            seed: sim.seed
          }
        })
        const cur = driverLab(d)
        this.currentDriver = d
        // the simulator's world goes with the lab: stopping or detaching a simulated lab ends it
        this.current = {
          ...cur,
          stop: () => cur.stop().finally(() => sim.close()),
          detach: () => cur.detach().finally(() => sim.close()),
          virtualNow: () => sim.virtualNow()
        }
        this.hooks.onShells(null)
        await d.attach()
        return this.status()
      }
      // a lab of this name may have been started meanwhile by the command line or another console
      const running = await this.openLocal(LOCAL_LAB_NAME, false).catch(() => null)
      if (running) {
        await this.adopt(running, 'local', `reattached to lab '${LOCAL_LAB_NAME}': it was already running (started by the command line or another console)`)
        return this.status()
      }
      this.setIdle('starting', 'local', LOCAL_LAB_NAME, null)
      this.mark({ kind: 'start', label: `lab start: local, guest ${p.guest}, ${p.mode}${p.etcd ? ', arbiter etcd' : ''}${experimentsText(p)}` })
      let lab: Lab
      try {
        const timing = timingOf(p)
        lab = await startLocalLab(
          {
            name: LOCAL_LAB_NAME,
            guest: p.guest,
            mode: p.mode,
            ...(timing ? { timing } : {}),
            readyTimeoutMs: this.opts.readyTimeoutMs,
            ...(p.experiments?.length ? { experiments: p.experiments } : {}),
            ...(p.etcd ? { arbiter: { kind: 'etcd' as const, endpoints: p.etcd } } : {})
          },
          this.opts
        )
      } catch (err) {
        const msg = errText(err)
        this.setIdle('error', 'local', LOCAL_LAB_NAME, msg)
        this.mark({ kind: 'error', label: `lab start failed: ${msg}` })
        return this.status()
      }
      await this.adopt(lab, 'local', null)
      return this.status()
    })
  }

  open(kind: 'local' | 'remote', name: string): Promise<LabStatus> {
    return this.serially(async () => {
      this.refuseIfOpen('lab.open')
      if (kind === 'local') {
        const lab = await this.openLocal(name, true)
        await this.adopt(lab!, 'local', `reattached to lab '${name}'`)
        return this.status()
      }
      let rl: RemoteLab
      try {
        rl = await RemoteLab.open(name, this.remoteOptions(null))
      } catch (err) {
        this.closePrompts()
        throw apiError('lab.open', err)
      }
      if (!rl.lab) {
        this.closePrompts()
        rl.close()
        throw new ApiError(
          'conflict',
          `lab.open: remote lab '${name}' has no running agents on record (it was torn down part way); finish with \`ftlab teardown --name ${name}\``
        )
      }
      await this.adoptRemote(rl, `reattached to remote lab '${name}'`)
      return this.status()
    })
  }

  deploy(p: LabDeployParams): Promise<LabStatus> {
    return this.serially(async () => {
      this.refuseIfOpen('lab.deploy')
      let file: LabFile
      try {
        file = validateLabFile(p.file, `lab file '${p.name}'`)
      } catch (err) {
        if (err instanceof LabFileError) throw new ApiError('bad-request', `lab.deploy.file${err.field ? `.${err.field}` : ''}: ${labFileProblem(err)}`)
        throw err
      }
      this.setIdle('starting', 'remote', p.name, null)
      this.mark({
        kind: 'deploy',
        label: `deploy lab '${p.name}': ${Object.entries(file.hosts)
          .map(([slot, h]) => `${slot} ${h!.user ? `${h!.user}@` : ''}${h!.address}`)
          .join(', ')}${p.experiments?.length ? `, EXPERIMENT ${p.experiments.join(', ')}` : ''}`
      })
      let rl: RemoteLab
      try {
        const r = await RemoteLab.deploy(
          file,
          {
            name: p.name,
            readyTimeoutMs: this.opts.readyTimeoutMs,
            ...(p.experiments?.length ? { experiments: p.experiments } : {}),
            // the preflight: connected, host key known, nothing else of FT Lab's in the way
            onLine: (l) => this.deployEvent(l.slot, 'connect', l.ok ? 'done' : 'failed', l.detail)
          },
          this.remoteOptions(file)
        )
        rl = r.lab
        for (const slot of Object.keys(file.hosts))
          this.deployEvent(slot, 'ready', 'done', slot === 'spare' ? 'spare: checked, kept free for restore' : `${slot}: agent running`)
      } catch (err) {
        this.closePrompts()
        this.hooks.prompts.withdrawAll()
        const msg = err instanceof RemoteDeployError ? err.message : errText(err)
        this.setIdle('error', 'remote', p.name, msg)
        this.mark({ kind: 'error', label: `deploy failed: ${msg}` })
        throw new ApiError('conflict', `lab.deploy: ${msg}`)
      }
      await this.adoptRemote(rl, `lab '${p.name}' deployed`)
      return this.status()
    })
  }

  stop(): Promise<LabStatus> {
    return this.serially(async () => {
      const cur = this.current
      if (!cur) {
        // a failed start leaves nothing running (Lab.start tears down what it began)
        this.setIdle('stopped', this.idle.kind, this.idle.name, null)
        return this.status()
      }
      if (cur.kind === 'remote')
        throw new ApiError(
          'conflict',
          `lab.stop: '${cur.name}' is a remote lab; use lab.teardown (it removes FT Lab from its hosts, confirmed by the lab's name) or lab.detach (its agents keep running)`
        )
      let problem: string | null = null
      try {
        await cur.stop()
      } catch (err) {
        problem = errText(err)
      }
      this.current = null
      this.hooks.onShells(null)
      const error = problem ? `the lab did not stop cleanly: ${problem}` : null
      this.setIdle(problem ? 'error' : 'stopped', cur.kind, cur.name, error)
      this.mark(problem ? { kind: 'error', label: error! } : { kind: 'stop', label: `lab '${cur.name}' stopped` })
      return this.status()
    })
  }

  teardown(confirm: string): Promise<LabStatus> {
    return this.serially(async () => {
      const cur = this.current
      const rl = this.remote
      if (!cur || cur.kind !== 'remote' || !rl)
        throw new ApiError('conflict', `lab.teardown: no remote lab is open${cur ? ` ('${cur.name}' is a ${cur.kind} lab: use lab.stop)` : ''}`)
      if (confirm !== cur.name)
        throw new ApiError(
          'bad-request',
          `lab.teardown.confirm must be the lab's name, ${JSON.stringify(cur.name)}, typed to confirm (got ${JSON.stringify(confirm)})`
        )
      this.mark({ kind: 'teardown', label: `teardown of lab '${cur.name}': stopping its agents and removing FT Lab from its hosts` })
      await cur.detach()
      let r: { removed: string[]; problems: string[] }
      try {
        r = await rl.teardown()
      } catch (err) {
        rl.close()
        this.closePrompts()
        this.current = null
        this.remote = null
        this.hooks.onShells(null)
        this.setIdle('error', 'remote', cur.name, `teardown failed: ${errText(err)}`)
        throw apiError('lab.teardown', err)
      }
      rl.close()
      this.closePrompts()
      this.current = null
      this.remote = null
      this.hooks.onShells(null)
      const problems = r.problems.length ? `; not removed: ${r.problems.join('; ')} (run lab.teardown again, or \`ftlab teardown --name ${cur.name}\`)` : ''
      this.setIdle(r.problems.length ? 'error' : 'stopped', 'remote', cur.name, r.problems.length ? `teardown incomplete${problems}` : null)
      this.mark({
        kind: r.problems.length ? 'warning' : 'teardown',
        label: `lab '${cur.name}' torn down: removed from ${r.removed.join(', ') || 'no host'}${problems}`
      })
      return this.status()
    })
  }

  detach(): Promise<LabStatus> {
    return this.serially(async () => {
      const cur = this.current
      if (!cur) return this.status()
      // from now on nothing of this lab asks the operator anything: a reconnect already under
      // way (the spare's check, a status poll) would otherwise ask for a password after the detach
      this.closePrompts()
      await cur.detach()
      this.remote?.close()
      this.remote = null
      this.current = null
      this.hooks.onShells(null)
      // a question a connection of the lab left open (a host's password for a reconnect) goes with it
      this.hooks.prompts.withdrawAll()
      this.setIdle('stopped', null, null, null)
      this.mark({ kind: 'stop', label: `detached from lab '${cur.name}': its agents keep running (reopen it from the lab list)` })
      return this.status()
    })
  }

  async close(): Promise<void> {
    await this.lifecycle.catch(() => {})
    const cur = this.current
    this.current = null
    this.closePrompts()
    await cur?.detach().catch(() => {})
    this.remote?.close()
    this.remote = null
  }

  private closePrompts(): void {
    this.promptScope?.close()
    this.promptScope = null
  }

  // ----- helpers -----------------------------------------------------------------------

  private refuseIfOpen(method: string): void {
    const cur = this.current
    if (!cur) return
    const s = cur.status()
    if (s.state === 'error' && cur.kind !== 'remote') {
      // a lab in error (its agents gone): let go of it; Lab.start clears what is left
      void cur.detach()
      this.current = null
      return
    }
    throw new ApiError(
      'conflict',
      `${method}: lab '${cur.name}' (${cur.kind}) is ${s.state}; ${cur.kind === 'remote' ? 'detach or tear it down' : 'stop or detach it'} first`
    )
  }

  /** A running local lab of this name, or null (or, with `required`, an error saying why not). */
  private async openLocal(name: string, required: boolean): Promise<Lab | null> {
    const fail = (msg: string): null => {
      if (required) throw new ApiError('conflict', `lab.open: ${msg}`)
      return null
    }
    let lab: Lab
    try {
      if (!new LabStore(this.opts.home).load(name)) return fail(`no local lab named '${name}' (start one with lab.start)`)
      lab = openLocalLab(name, this.opts)
    } catch (err) {
      return fail(errText(err))
    }
    try {
      const rows = await lab.status(1000)
      if (rows.every((r) => r.state === 'down')) {
        lab.close()
        return fail(`lab '${name}' has no running agents (stop it to clear its state)`)
      }
    } catch (err) {
      lab.close()
      return fail(`cannot read lab '${name}': ${errText(err)}`)
    }
    return lab
  }

  private async adopt(lab: Lab, kind: LabKind, note: string | null): Promise<void> {
    const d = new LabDriver(lab, this.hooks.sink, { kind, statusEveryMs: this.opts.statusEveryMs, onLost: (replaced) => this.lost(d, replaced) })
    this.current = driverLab(d)
    this.currentDriver = d
    this.hooks.onShells(null)
    if (note) this.mark({ kind: 'start', label: note })
    await d.attach()
    const rows = HOST_IDS.map((id) => `${id} ${d.poller.row(id)?.state === 'up' ? d.poller.row(id)?.status?.role : (d.poller.row(id)?.state ?? 'down')}`)
    d.line(`\x1b[2m── lab '${lab.name}' (${kind}): ${rows.join(', ')} ──\x1b[0m`)
  }

  /**
   * Another process stopped (or tore down) the lab this console drives, or started a new local lab
   * of its name: let go of it, and follow the new one. The driver has said why on the timeline.
   */
  private lost(d: LabDriver, replaced: boolean): void {
    void this.serially(async () => {
      const cur = this.current
      if (!cur || cur.name !== d.name || this.currentDriver !== d) return
      this.closePrompts()
      await cur.detach().catch(() => {})
      this.remote?.close()
      this.remote = null
      this.current = null
      this.currentDriver = null
      this.hooks.onShells(null)
      this.hooks.prompts.withdrawAll()
      const next = replaced && cur.kind === 'local' ? await this.openLocal(cur.name, false).catch(() => null) : null
      if (next) await this.adopt(next, 'local', `following the new lab '${cur.name}' (running since ${timeOfDay(next.snapshot().createdAt)})`)
      else this.setIdle('stopped', cur.kind, cur.name, null)
    })
  }

  private async adoptRemote(rl: RemoteLab, note: string): Promise<void> {
    const lab = rl.lab!
    const spare = rl.file.hosts.spare
    const d = new LabDriver(lab, this.hooks.sink, {
      kind: 'remote',
      statusEveryMs: this.opts.statusEveryMs,
      onLost: () => this.lost(d, false),
      remote: {
        where: (slot) => rl.slotHost(slot).label,
        spare: spare ? { machine: 'spare', address: spare.address } : null,
        restore: (onto) => rl.restore(onto ? { onto } : {}),
        status: (t) => rl.status(t)
      }
    })
    this.remote = rl
    this.current = driverLab(d)
    this.currentDriver = d
    this.hooks.onShells({
      title: (host) => {
        const h = host === 'spare' ? rl.host('spare') : rl.slotHost(host)
        return `${host} · ${h.label}`
      },
      open: async (host, size) => {
        const h = host === 'spare' ? rl.host('spare') : rl.slotHost(host)
        return PtyShell.open(await h.connection(), size)
      }
    })
    this.mark({ kind: 'deploy', label: note })
    await d.attach()
  }

  private remoteOptions(file: LabFile | null): RemoteLabOptions {
    const slotOf = (host: string): string => {
      for (const [slot, h] of Object.entries(file?.hosts ?? {})) if (h && (h.address === host || h.labAddress === host)) return slot
      return host
    }
    // the questions of this lab's connections (a new deploy or open replaces the previous lab's)
    this.closePrompts()
    const scope = (this.promptScope = this.hooks.prompts.scope())
    return {
      ...this.opts.remote,
      home: this.opts.home,
      agentBundle: this.opts.remote?.agentBundle ?? this.opts.agentBundle,
      confirmHostKey: (p) => {
        this.deployEvent(p.slot, 'host-key', 'running', `unknown host key ${p.keyType} ${p.fingerprint}: waiting for the operator`)
        return this.hooks.prompts.confirmHostKey(p, scope).then((ok) => {
          this.deployEvent(p.slot, 'host-key', ok ? 'done' : 'failed', ok ? `accepted ${p.fingerprint}` : `refused ${p.fingerprint}`)
          return ok
        })
      },
      secrets: this.hooks.prompts.secretsFor(slotOf, scope),
      onProgress: (pr: DeployProgress) => this.deployEvent(pr.hostId, pr.step, pr.state === 'skipped' ? 'done' : pr.state, pr.detail)
    }
  }

  private deployEvent(slot: string, step: DeployStep, state: 'running' | 'done' | 'failed', detail: string): void {
    this.hooks.sink.publish({ ts: Date.now(), topic: 'deploy', slot, step, state, detail })
  }

  private setIdle(state: LabState, kind: LabKind | null, name: string | null, error: string | null): void {
    this.idle = { state, kind, name, error }
    this.hooks.sink.publish({ ts: Date.now(), topic: 'status', status: this.status() })
  }

  private mark(mark: Mark): void {
    this.hooks.sink.publish({ ts: Date.now(), topic: 'mark', mark } as UnnumberedEvent)
  }

  private serially<T>(f: () => Promise<T>): Promise<T> {
    const next = this.lifecycle.then(f, f)
    this.lifecycle = next.catch(() => {})
    return next
  }
}

/** A lab-file error's message without the file and field it names (the caller places it). */
export function labFileProblem(err: LabFileError): string {
  const prefix = `${err.file}: ${err.field ? `${err.field}: ` : ''}`
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message
}

/** The timing asked for, with the lab's defaults for what was left out (suspicion at least 8 heartbeats). */
function timingOf(p: LabStartParams): { heartbeatMs: number; suspectMs: number } | undefined {
  if (p.heartbeatMs === undefined && p.suspectMs === undefined) return undefined
  const heartbeatMs = p.heartbeatMs ?? DEFAULT_TIMING.heartbeatMs
  return { heartbeatMs, suspectMs: p.suspectMs ?? Math.max(DEFAULT_TIMING.suspectMs, heartbeatMs * 8) }
}

const experimentsText = (p: LabStartParams): string => (p.experiments?.length ? `, EXPERIMENT ${p.experiments.join(', ')}` : '')

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/**
 * A wall-clock time as the console's timeline shows it, 24-hour HH:MM:SS in local time (not the server's locale, which
 * read "2:15:02 AM" beside the timeline's 02:15:18.888).
 */
export function timeOfDay(ms: number): string {
  const d = new Date(ms)
  const p = (n: number) => String(n).padStart(2, '0')
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
}
