// The console's drill methods (drill.list, drill.check, drill.run, drill.stop): one drill at a
// time, run in the background; its progress goes out as `drill` events.
import { ApiError, type DrillCheck, type DrillInfo, type DrillRun, type DrillRunParams } from '../api/contract.js'
import { DrillLibrary } from './library.js'
import { runDrill, type DrillConsole } from './runner.js'
import { checkScenario, type Scenario } from './scenario.js'

export class DrillService {
  private running: { abort: AbortController; done: Promise<DrillRun[]> } | null = null
  private lib: DrillLibrary | null = null

  constructor(
    private readonly console: DrillConsole,
    private readonly opts: { drillsDir?: string; etcd?: string[] } = {}
  ) {}

  private library(): DrillLibrary {
    this.lib ??= new DrillLibrary(this.opts.drillsDir)
    return this.lib
  }

  list(): { drills: DrillInfo[] } {
    return { drills: this.library().list() }
  }

  check(text: string, file = 'scenario'): DrillCheck {
    const r = checkScenario(text, file)
    if (r.ok) return { ok: true, name: r.scenario.name, title: r.scenario.title }
    return { ok: false, errors: r.errors.map((e) => ({ line: e.line, col: e.col, field: e.field, message: e.message })) }
  }

  /**
   * Starts a drill and returns its first progress; `done` resolves with every repeat. `file` names
   * a scenario given as text (the CLI's path), for its errors and the run's name.
   */
  start(p: DrillRunParams, file?: string): { first: DrillRun; done: Promise<DrillRun[]> } {
    if (this.running) throw new ApiError('conflict', 'drill.run: a drill is already running; stop it first (drill.stop)')
    let sc: Scenario
    let name: string
    if (p.name !== undefined) {
      if (!this.library().has(p.name))
        throw new ApiError('bad-request', `drill.run.name: no built-in drill '${p.name}' (built-in: ${this.library().names().join(', ')})`)
      sc = this.library().load(p.name)
      name = p.name
    } else {
      const r = checkScenario(p.text!, file ?? 'scenario')
      if (!r.ok) throw new ApiError('bad-request', `drill.run.text: ${r.errors[0].message}`)
      sc = r.scenario
      name = file ?? sc.name
    }
    const seed = p.seed ?? Math.floor(Math.random() * 2 ** 31)
    const abort = new AbortController()
    let first: DrillRun | null = null
    const done = runDrill(this.console, sc, {
      name,
      seed,
      repeats: p.repeats ?? 1,
      ...(p.lab ? { lab: { kind: p.lab, ...(p.remote ? { name: p.remote } : {}) } } : {}),
      ...(this.opts.etcd ? { etcd: this.opts.etcd } : {}),
      signal: abort.signal,
      onRun: (r) => (first ??= r)
    })
    const entry = { abort, done }
    this.running = entry
    void done.finally(() => {
      if (this.running === entry) this.running = null
    })
    // the runner reports synchronously before its first await
    return { first: first!, done }
  }

  run(p: DrillRunParams): DrillRun {
    return this.start(p).first
  }

  /** Stops the running drill: its load stops, faults heal, its lab stops. */
  async stop(): Promise<{ stopped: boolean }> {
    const r = this.running
    if (!r) return { stopped: false }
    r.abort.abort()
    await r.done.catch(() => undefined)
    return { stopped: true }
  }
}
