// The console core behind both transports: one ConsoleBackend over any lab (local, remote,
// simulated). It owns the event log and hands each contract method to the part that does
// the job: the session (which lab, and the moves between labs), the current lab (faults,
// restore, power, load), the prompts (host keys, secrets) and the terminals.
import { mkdirSync, readdirSync, statSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import {
  API_VERSION,
  ApiError,
  type ApiEvent,
  type ConsoleInfo,
  type LabEntry,
  type LabFileCheck,
  type LabFileForm,
  type MethodName,
  type ParamsOf,
  type ResultOf
} from '../api/contract.js'
import { callHandler, type ApiHandlers, type ConsoleService } from '../api/dispatch.js'
import { ApiEventLog, type UnnumberedEvent } from '../api/event-log.js'
import { ftlabHome } from '../lab/lab-state.js'
import { LabFileError, labFileForm, parseLabFile } from '../remote/lab-file.js'
import { RemoteStore } from '../remote/remote-state.js'
import { SessionLibrary } from '../record/library.js'
import { RecordingService, type RecordingDialogs } from '../record/playback.js'
import { ConsoleRecorder } from '../record/recorder.js'
import type { RecordedHistory } from '../record/format.js'
import { DrillService } from '../drill/drill-service.js'
import { forgetfulSecretStore, Prompts, type SecretStore } from './prompts.js'
import { labFileProblem, LabSession, LOCAL_LAB_NAME, SIMULATED_LAB_NAME, type SessionOptions } from './session.js'
import { Terminals } from './terminals.js'

export interface ConsoleBackendOptions extends SessionOptions {
  shell?: 'electron' | 'browser'
  /** Electron's safeStorage (main/electron); browser mode keeps no secrets */
  secrets?: SecretStore
  /** events kept for events.since */
  ringSize?: number
  /** look for a running local lab to reattach to at start (default true) */
  reattach?: boolean
  promptTimeoutMs?: number
  /** record every lab session into <home>/recordings (default true) */
  record?: boolean
  /** the desktop app's native file dialogs for recording import and export (main/electron) */
  recordingDialogs?: RecordingDialogs
  /** the built-in drills' folder (default: drills/ next to the console) and etcd URLs for etcd drills */
  drills?: { dir?: string; etcd?: string[] }
}

export class ConsoleBackend implements ConsoleService {
  readonly events: ApiEventLog
  readonly prompts: Prompts
  readonly terminals: Terminals
  readonly session: LabSession
  readonly recorder: ConsoleRecorder | null
  /** the session library and playback (recording.*, playback.*) */
  readonly recordings: RecordingService
  readonly drills: DrillService
  private readonly home: string
  private readonly ready: Promise<void>
  private closed = false

  constructor(private readonly opts: ConsoleBackendOptions = {}) {
    this.home = opts.home ?? ftlabHome()
    this.events = new ApiEventLog(opts.ringSize ?? 10_000)
    this.prompts = new Prompts(this.events, opts.secrets ?? forgetfulSecretStore, opts.promptTimeoutMs)
    this.terminals = new Terminals(this.events)
    const events = this.events
    // the session's events go out as they are; a load run's client history goes only to the recording
    const sink = {
      publish: (ev: UnnumberedEvent) => events.publish(ev),
      get seq() {
        return events.seq
      },
      history: (h: RecordedHistory) => this.recorder?.history(h)
    }
    this.session = new LabSession({ ...opts, home: this.home }, { sink, prompts: this.prompts, onShells: (o) => this.terminals.setOpener(o) })
    this.recorder =
      opts.record === false
        ? null
        : new ConsoleRecorder(
            { current: () => this.session.lab, status: () => this.session.status() },
            { home: this.home, onError: (e) => console.error(`ftlab: ${e.message}`) }
          )
    if (this.recorder) this.events.subscribe((ev) => this.recorder?.event(ev))
    this.recordings = new RecordingService(this.recorder?.library ?? new SessionLibrary(this.home), {
      writing: () => this.recorder?.path ?? null,
      ...(opts.recordingDialogs ? { dialogs: opts.recordingDialogs } : {})
    })
    // a drill is a scripted operator: it goes through handle() like the UI, so it is recorded alike
    this.drills = new DrillService(
      {
        call: (method, params) => this.handle(method, params),
        subscribe: (l) => this.events.subscribe(l),
        publish: (ev) => this.events.publish(ev),
        recording: () => this.recorder?.path ?? null,
        remoteLabFile: (name) => {
          const st = new RemoteStore(this.home).load(name)
          return st ? labFileForm(st.file) : null
        }
      },
      { drillsDir: opts.drills?.dir, etcd: opts.drills?.etcd }
    )
    this.ready = opts.reattach === false ? Promise.resolve() : this.session.reattachLocal().catch(() => {})
  }

  /** Resolves once the console has looked for a running local lab to reattach to. */
  whenReady(): Promise<void> {
    return this.ready
  }

  private readonly handlers: ApiHandlers = {
    'console.info': () => this.info(),
    'lab.list': () => ({ labs: this.labList() }),
    'lab.start': (p) => this.session.start(p),
    'lab.open': (p) => this.session.open(p.kind, p.name),
    'lab.deploy': (p) => this.session.deploy(p),
    'lab.stop': () => this.session.stop(),
    'lab.teardown': (p) => this.session.teardown(p.confirm),
    'lab.detach': () => this.session.detach(),
    'lab.status': async () => {
      await this.ready
      return this.session.status()
    },
    'lab.restore': (p) => this.session.need('lab.restore').restore(p.onto),
    'lab.powerOn': (p) => this.session.need('lab.powerOn').powerOn(p.host),
    'labfile.check': (p) => checkLabFile(p.text),
    'labfile.save': (p) => this.saveLabFile(p.name, p.file),
    'fault.inject': (p) => this.session.need('fault.inject').faultInject(p),
    'fault.heal': (p) => this.session.need('fault.heal').faultHeal(p.id),
    'load.start': (p) => this.session.need('load.start').loadStart(p),
    'load.stop': () => this.session.lab?.loadStop() ?? this.session.status().load,
    'prompt.answer': (p) => this.prompts.answer(p),
    'term.open': (p) => this.terminals.open(p.host),
    'term.input': (p) => this.terminals.input(p.id, p.data),
    'term.resize': (p) => this.terminals.resize(p.id, p.cols, p.rows),
    'term.reconnect': (p) => this.terminals.reconnect(p.id),
    'term.close': (p) => this.terminals.close(p.id),
    'term.list': () => this.terminals.list(),
    'events.since': (p) => this.events.since(p.seq),
    'recording.list': () => this.recordings.list(),
    'recording.rename': (p) => this.recordings.rename(p.name, p.to),
    'recording.delete': (p) => this.recordings.delete(p.name),
    'recording.import': (p) => this.recordings.import(p.path, p.as),
    'recording.export': (p) => this.recordings.export(p.name, p.to),
    'recording.importDialog': () => this.recordings.importWithDialog(),
    'recording.exportDialog': (p) => this.recordings.exportWithDialog(p.name),
    'recording.report': (p) => this.recordings.report(p.name),
    'playback.open': (p) => this.recordings.openPlayback(p.name),
    'playback.seek': (p) => this.recordings.seek(p.id, p.t),
    'playback.read': (p) => this.recordings.read(p.id, p.n, p.to, p.max, p.upto),
    'playback.step': (p) => this.recordings.step(p.id, p.n, p.dir),
    'playback.close': (p) => this.recordings.closePlayback(p.id),
    'drill.list': () => this.drills.list(),
    'drill.check': (p) => this.drills.check(p.text),
    'drill.run': (p) => this.drills.run(p),
    'drill.stop': () => this.drills.stop()
  }

  handle<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    if (this.closed) return Promise.reject(new ApiError('unavailable', `${method}: the console is shutting down`))
    this.recorder?.request(method, params)
    const result = callHandler(this.handlers, method, params)
    result.catch((err: unknown) => this.recorder?.requestFailed(method, err))
    return result
  }

  subscribe(listener: (ev: ApiEvent) => void): () => void {
    return this.events.subscribe(listener)
  }

  info(): ConsoleInfo {
    const kind = this.session.lab?.kind ?? null
    return {
      apiVersion: API_VERSION,
      backend: kind ?? 'none',
      shell: this.opts.shell ?? 'browser',
      lab: this.session.lab ? { kind: this.session.lab.kind, name: this.session.lab.name } : null,
      canRememberSecrets: this.prompts.store.canRemember,
      seq: this.events.seq,
      prompts: this.prompts.pending()
    }
  }

  /** Lets go of the lab (its agents keep running: a restarted console reattaches); ends a load, closes terminals. */
  async close(): Promise<void> {
    if (this.closed) return
    // a running drill stops first (load, faults, the lab it started), while the console still serves it
    await this.drills.stop()
    this.closed = true
    await this.ready
    this.prompts.withdrawAll()
    this.terminals.closeAll()
    await this.session.close()
    this.recorder?.close()
    this.recordings.close()
    this.events.unsubscribeAll()
  }

  // ----- labs and lab files ----------------------------------------------------------

  /** The local and simulated labs, then recent remote labs (newest first). */
  labList(): LabEntry[] {
    const cur = this.session.lab
    const st = cur ? this.session.status() : null
    const running = (kind: string, name: string): boolean | null => (cur && cur.kind === kind && cur.name === name ? st!.state === 'running' : null)
    const out: LabEntry[] = [
      { kind: 'local', name: LOCAL_LAB_NAME, running: running('local', LOCAL_LAB_NAME), detail: 'three agent processes on this machine', when: null },
      {
        kind: 'simulated',
        name: SIMULATED_LAB_NAME,
        running: running('simulated', SIMULATED_LAB_NAME),
        detail: 'simulated: no processes, any speed',
        when: null
      }
    ]
    const dir = new RemoteStore(this.home).labsDir
    let names: string[]
    try {
      names = readdirSync(dir).filter((f) => f.endsWith('.remote.json'))
    } catch {
      names = [] // no lab deployed yet from this home
    }
    const remotes = names
      .map((f) => {
        const name = f.slice(0, -'.remote.json'.length)
        let when: number | null = null
        let detail = 'remote lab'
        try {
          const s = new RemoteStore(this.home).load(name)
          when = s?.deployedAt ?? statSync(join(dir, f)).mtimeMs
          if (s)
            detail = `remote: ${Object.entries(s.file.hosts)
              .map(([slot, h]) => `${slot} ${h!.address}`)
              .join(', ')}`
        } catch (err) {
          detail = `remote lab (its state cannot be read: ${(err as Error).message})`
        }
        return { kind: 'remote' as const, name, running: running('remote', name), detail, when }
      })
      .sort((x, y) => (y.when ?? 0) - (x.when ?? 0))
    return [...out, ...remotes]
  }

  private saveLabFile(name: string, file: LabFileForm): { path: string } {
    const check = checkLabFile(JSON.stringify(file))
    if (!check.ok) throw new ApiError('bad-request', `labfile.save: ${check.errors.map((e) => `${e.field || 'file'}: ${e.message}`).join('; ')}`)
    const dir = join(this.home, 'labfiles')
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const path = join(dir, `${name}.json`)
    writeFileSync(path, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 })
    chmodSync(path, 0o600)
    return { path }
  }
}

/** A lab file's text checked as `ftlab deploy` would, each problem at the field it concerns. */
export function checkLabFile(text: string): LabFileCheck {
  const path = 'lab file'
  try {
    parseLabFile(text, path)
  } catch (err) {
    if (err instanceof LabFileError) return { ok: false, errors: [{ field: err.field, message: labFileProblem(err) }] }
    return { ok: false, errors: [{ field: '', message: (err as Error).message }] }
  }
  // the form is the file's JSON as written (paths unexpanded), not the checked LabFile
  return { ok: true, file: JSON.parse(text) as LabFileForm }
}
