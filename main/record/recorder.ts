// Records every lab session without the operator asking: the console backend hands it every
// ApiEvent it publishes and every operator request. A recording opens when a lab becomes
// current and closes when the lab goes (stopped, detached, torn down, console closed). What
// happens just before a lab is current (the start mark, deploy steps, host-key prompts) waits
// in a short pre-roll and opens the recording.
import { hostname } from 'node:os'
import type { ApiEvent, LabStatus } from '../api/contract.js'
import { HISTORY_PART_OPS, type RecordEntry, type RecordedHistory } from './format.js'
import { SessionLibrary } from './library.js'
import { redactParams } from './state.js'
import { RecordingWriter, type WriterOptions } from './writer.js'

/** Methods that only read: polling them is not an operator action worth a record. */
const READ_ONLY = new Set([
  'console.info',
  'lab.list',
  'lab.status',
  'labfile.check',
  'term.list',
  'events.since',
  'recording.list',
  'playback.open',
  'playback.seek',
  'playback.read',
  'playback.step',
  'playback.close',
  'drill.list',
  'drill.check'
])
const PRE_ROLL = 2000

export interface RecorderSource {
  /** the lab the console drives now, or null */
  current(): { kind: string; name: string } | null
  status(): LabStatus
}

/** The version recorded in headers: the package's when run by npm, else FTLAB_VERSION, else 'unknown'. */
export function ftlabVersion(env: NodeJS.ProcessEnv = process.env): string {
  return env.FTLAB_VERSION || env.npm_package_version || 'unknown'
}

export interface RecorderOptions {
  home?: string
  ftlabVersion?: string
  writer?: WriterOptions
  /** a recording could not be written (it stops; the console goes on) */
  onError?: (err: Error) => void
}

export class ConsoleRecorder {
  private writer: RecordingWriter | null = null
  private lab: { kind: string; name: string } | null = null
  private preRoll: RecordEntry[] = []
  private closing: ReturnType<typeof setTimeout> | null = null
  /** a recording of the current lab failed: no new one until the lab changes */
  private broken = false
  readonly library: SessionLibrary
  /** the recordings this recorder finished, oldest first */
  readonly finished: string[] = []

  constructor(
    private readonly source: RecorderSource,
    private readonly opts: RecorderOptions = {}
  ) {
    this.library = new SessionLibrary(opts.home)
  }

  /** the recording being written, or null */
  get path(): string | null {
    return this.writer?.path ?? null
  }

  event(ev: ApiEvent): void {
    this.add({ k: 'ev', t: ev.ts, ev })
  }

  request(method: string, params: unknown): void {
    if (READ_ONLY.has(method)) return
    this.add({ k: 'req', t: Date.now(), method, params: redactParams(method, params) })
  }

  /** A load run ended: its client history goes into the recording (in parts, so no block gets huge). */
  history(h: RecordedHistory): void {
    const parts = Math.max(1, Math.ceil(h.ops.length / HISTORY_PART_OPS))
    const t = Date.now()
    for (let part = 0; part < parts; part++) {
      const ops = h.ops.slice(part * HISTORY_PART_OPS, (part + 1) * HISTORY_PART_OPS)
      // the final read and the verdict go with the last part: a reader has the whole run once it has that
      const last = part === parts - 1
      this.add({ k: 'hist', t, part, parts, ...h, ops, final: last ? h.final : null, verdict: last ? h.verdict : null })
    }
  }

  requestFailed(method: string, err: unknown): void {
    if (READ_ONLY.has(method)) return
    this.add({ k: 'fail', t: Date.now(), method, error: err instanceof Error ? err.message : String(err) })
  }

  /** Closes the recording being written (console shutdown). */
  close(): void {
    if (this.closing) clearTimeout(this.closing)
    this.closing = null
    this.finish()
  }

  private add(r: RecordEntry): void {
    const lab = this.source.current()
    if (this.writer && lab && this.lab && (lab.kind !== this.lab.kind || lab.name !== this.lab.name)) this.finish()
    if (!lab) this.broken = false
    if (!this.writer && lab && !this.broken) this.begin(lab)
    if (this.writer) {
      this.writer.append(r)
      // the lab went: what follows at once (the stop mark after the stopped status) still belongs to it
      if (!lab && !this.closing) this.closing = setTimeout(() => this.settle(), 50)
    } else {
      this.preRoll.push(r)
      if (this.preRoll.length > PRE_ROLL) this.preRoll.splice(0, this.preRoll.length - PRE_ROLL)
    }
  }

  private settle(): void {
    this.closing = null
    if (!this.source.current()) this.finish()
  }

  private begin(lab: { kind: string; name: string }): void {
    const s = this.source.status()
    const startedAt = this.preRoll[0]?.t ?? Date.now()
    try {
      this.writer = RecordingWriter.create(
        this.library.newPath(lab.name, startedAt),
        {
          ftlabVersion: this.opts.ftlabVersion ?? ftlabVersion(),
          startedAt,
          lab: {
            kind: s.kind ?? (lab.kind as 'local'),
            name: lab.name,
            guest: s.guest,
            mode: s.mode,
            timing: s.timing,
            sim: s.sim,
            hosts: s.hosts.map((h) => ({ id: h.id, machine: h.machine, address: h.address }))
          },
          console: { host: hostname(), pid: process.pid }
        },
        { ...this.opts.writer, onError: (e) => this.fail(e) }
      )
    } catch (err) {
      this.fail(new Error(`cannot start a recording in ${this.library.dir}: ${(err as Error).message}`))
      return
    }
    this.lab = lab
    const w = this.writer
    for (const r of this.preRoll) w.append(r)
    this.preRoll = []
  }

  private finish(): void {
    const w = this.writer
    if (!w) return
    this.writer = null
    this.lab = null
    w.close()
    this.finished.push(w.path)
  }

  private fail(err: Error): void {
    this.broken = true
    this.opts.onError?.(err)
    this.writer?.close()
    this.writer = null
    this.lab = null
  }
}
