// The session library and playback as the console API serves them: recording.* over the
// SessionLibrary, and playback.* over one open Recording per playback. A seek answers with
// the state at a moment plus the recorded events that rebuild the views' recent window
// (marks so far, the last seconds of agent events for the diagram, a minute of status
// snapshots for the charts, terminal output); playing reads on from the seek record by
// record. The renderer feeds both to its stores exactly as live events, so every view
// follows the scrubber without a second code path.
import { randomBytes } from 'node:crypto'
import { copyFileSync, existsSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import {
  ApiError,
  type ApiEvent,
  type PlaybackChunk,
  type PlaybackFrame,
  type PlaybackOpened,
  type PlaybackStep,
  type RecordingInfo,
  type RecordingMark
} from '../api/contract.js'
import { EXT, type RecordEntry, type RecordedMark } from './format.js'
import { SessionLibrary, type SessionEntry } from './library.js'
import { Recording } from './reader.js'
import { writeReport } from '../report/report.js'

/**
 * How far back a seek replays records to rebuild the views: the diagram's default span (8 s)
 * and the channel pane's recent lines. Every second of it costs a seek about 2 ms of decoding
 * in a busy lab's recording (500 events/s), so it stays short; see SEEK_CHART_MS.
 */
export const SEEK_WINDOW_MS = 8_000
/** the charts' history before that window comes from the keyframes' statuses (one every 2 s, cheap to read) */
export const SEEK_CHART_MS = 120_000
const SEEK_MAX_AGENT = 4000
const SEEK_MAX_TERMINAL = 4000
/** one status snapshot a second is enough for the charts' history */
const SEEK_STATUS_EVERY_MS = 1000
const READ_MAX = 5000
const MAX_OPEN = 4
/**
 * Agent events a step lands on: the log entries the primary sends and the backup's acks, and
 * between them the failover's own steps (suspicion, test-and-set, go-live, role changes,
 * faults and heals, snapshots), so stepping through a failover shows each of its moves.
 */
const STEP_TYPES = new Set(['entries', 'entry', 'ack', 'suspect', 'tas', 'go-live', 'role', 'fault', 'heal', 'snapshot', 'diverged'])
/** events that belong to the console's conversation with the operator, not to the lab: never replayed */
const NOT_REPLAYED = new Set<ApiEvent['topic']>(['prompt', 'prompt-done', 'deploy'])

export interface RecordingServiceOptions {
  /** the recording being written now (it cannot be renamed or deleted), or null */
  writing?: () => string | null
  /** the desktop app's native file dialogs (main/electron/file-dialogs.ts); browser mode has none */
  dialogs?: RecordingDialogs
}

/** Native file dialogs for import and export: each resolves with the chosen path, or null when cancelled. */
export interface RecordingDialogs {
  /** a .ftrec file to import */
  open(): Promise<string | null>
  /** where to save a copy of the recording `name` (suggested as `<name>.ftrec`) */
  save(name: string): Promise<string | null>
}

export class RecordingService {
  private readonly open = new Map<string, { rec: Recording; name: string; used: number }>()

  constructor(
    readonly library: SessionLibrary,
    private readonly opts: RecordingServiceOptions = {}
  ) {}

  list(): { dir: string; recordings: RecordingInfo[] } {
    return { dir: this.library.dir, recordings: this.library.list().map((e) => this.info(e)) }
  }

  rename(name: string, to: string): RecordingInfo {
    this.refuseLive(name, 'rename')
    this.closeFile(this.library.pathOf(name))
    const dst = this.library.rename(name, to)
    return this.info(this.library.show(dst.slice(this.library.dir.length + 1)))
  }

  delete(name: string): { ok: true } {
    this.refuseLive(name, 'delete')
    this.closeFile(this.library.pathOf(name))
    this.library.delete(name)
    return { ok: true }
  }

  import(path: string, as?: string): RecordingInfo {
    try {
      return this.info(this.library.import(path, as))
    } catch (err) {
      throw new ApiError('bad-request', `recording.import: ${(err as Error).message}`)
    }
  }

  /** The desktop app's Import…: a file dialog, then import; null when the operator cancelled. */
  async importWithDialog(): Promise<RecordingInfo | null> {
    const path = await this.dialogs('recording.importDialog').open()
    return path === null ? null : this.import(path)
  }

  /** The desktop app's Export…: a save dialog, then a copy there; null when the operator cancelled. */
  async exportWithDialog(name: string): Promise<{ path: string } | null> {
    const src = this.library.pathOf(name) // an unknown name fails before any dialog opens
    const to = await this.dialogs('recording.exportDialog').save(stripExt(basename(src)))
    if (to === null) return null
    try {
      // the save dialog asked before replacing a file: no second refusal here
      copyFileSync(src, to)
      return { path: to }
    } catch (err) {
      throw new ApiError('bad-request', `recording.exportDialog: ${(err as Error).message}`)
    }
  }

  private dialogs(method: string): RecordingDialogs {
    if (!this.opts.dialogs)
      throw new ApiError(
        'unavailable',
        `${method}: file dialogs are the desktop app's; in browser mode upload (recording import) or download (recording.export) instead`
      )
    return this.opts.dialogs
  }

  /** Copies a recording to `to`, or says where it is and where browser mode serves it. */
  export(name: string, to?: string): { path: string; download: string } {
    const path = to ? this.library.export(name, to) : this.library.pathOf(name)
    return { path, download: `/recordings/${encodeURIComponent(stripExt(name))}${EXT}` }
  }

  /**
   * Writes the recording's self-contained HTML report next to it (main/report) and says where;
   * `view` is browser mode's address for it (GET, token-guarded).
   */
  async report(name: string): Promise<{ path: string; view: string }> {
    const path = await writeReport(this.library.pathOf(name))
    return { path, view: `/recordings/${encodeURIComponent(stripExt(name))}.html` }
  }

  /** The file of a recording, for browser mode's download; null when there is no such recording. */
  fileOf(name: string): string | null {
    const p = join(this.library.dir, stripExt(name) + EXT)
    return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$/.test(stripExt(name)) && existsSync(p) && statSync(p).isFile() ? p : null
  }

  // ----- playback --------------------------------------------------------------------

  openPlayback(name: string): PlaybackOpened {
    const path = this.library.pathOf(name)
    let rec: Recording
    try {
      rec = Recording.open(path)
    } catch (err) {
      throw new ApiError('bad-request', `playback.open: ${(err as Error).message}`)
    }
    // a few playbacks at most (another window, a reload): the least recently used goes
    while (this.open.size >= MAX_OPEN) {
      const oldest = [...this.open.entries()].sort((x, y) => x[1].used - y[1].used)[0]
      this.closePlayback(oldest[0])
    }
    const id = `p${randomBytes(6).toString('hex')}`
    this.open.set(id, { rec, name: stripExt(name), used: Date.now() })
    return {
      id,
      info: this.info({
        name: stripExt(name),
        path,
        bytes: rec.size,
        header: rec.header,
        duration: rec.duration,
        records: rec.records,
        closed: rec.closed,
        marks: rec.marks,
        problems: rec.problems,
        error: null
      }),
      t0: rec.t0,
      t1: rec.t1,
      records: rec.records,
      marks: rec.marks.map(toMark)
    }
  }

  seek(id: string, t: number): PlaybackFrame {
    const rec = this.get(id, 'playback.seek')
    const st = rec.stateAt(t, SEEK_WINDOW_MS)
    const events: ApiEvent[] = []
    // the charts' history: the keyframes' statuses before the window (seq 0: not an event the console numbered)
    const windowFrom = st.recent.length ? Math.min(t - SEEK_WINDOW_MS, st.recent[0].t) : t - SEEK_WINDOW_MS
    for (const k of rec.statusesAt(t - SEEK_CHART_MS, windowFrom)) events.push({ seq: 0, ts: k.t, topic: 'status', status: k.status })
    // the marks before the window, rebuilt as the mark events they were (the window has its own)
    const inWindow = new Set(st.recent.map((r) => r.n))
    for (const m of st.marks) if (!inWindow.has(m.n)) events.push(markEvent(m))
    // counted from the newest back, so a busy window keeps its latest events
    let agents = 0
    let terminals = 0
    const keep = new Array<boolean>(st.recent.length).fill(false)
    let lastStatusT = -Infinity
    for (let i = st.recent.length - 1; i >= 0; i--) {
      const r = st.recent[i]
      if (r.k !== 'ev' || NOT_REPLAYED.has(r.ev.topic)) continue
      const ev = r.ev
      if (ev.topic === 'agent') keep[i] = agents++ < SEEK_MAX_AGENT
      // the channel pane gets the window's lines; a host terminal its screen as it stood at t (below)
      else if (ev.topic === 'terminal') keep[i] = ev.stream === 'channel' && terminals++ < SEEK_MAX_TERMINAL
      else if (ev.topic === 'status') {
        keep[i] = lastStatusT - r.t >= SEEK_STATUS_EVERY_MS || lastStatusT === -Infinity
        if (keep[i]) lastStatusT = r.t
      } else if (ev.topic === 'term' || ev.topic === 'drill')
        keep[i] = false // given whole below
      else keep[i] = true
    }
    for (let i = 0; i < st.recent.length; i++) if (keep[i]) events.push((st.recent[i] as Extract<RecordEntry, { k: 'ev' }>).ev)
    for (const [stream, data] of Object.entries(st.termOut)) events.push({ seq: 0, ts: t, topic: 'terminal', stream, data })
    return { t, n: st.n, status: st.status, events, terms: st.terms, drills: st.drills }
  }

  read(id: string, n: number, to: number, max = READ_MAX, upto?: number): PlaybackChunk {
    const rec = this.get(id, 'playback.read')
    const r = rec.recordsFrom(n, to, max, upto)
    const events: ApiEvent[] = []
    for (const x of r.records) if (x.k === 'ev' && !NOT_REPLAYED.has(x.ev.topic)) events.push(x.ev)
    // cut short by max: the time reached is the last record's, so playing resumes from there
    const t = r.end || r.records.length < max ? to : r.records[r.records.length - 1].t
    return { events, n: r.next, t, end: r.end }
  }

  step(id: string, n: number, dir: 1 | -1): PlaybackStep | null {
    const rec = this.get(id, 'playback.step')
    const r = rec.find(n, dir, (x) => x.k === 'ev' && x.ev.topic === 'agent' && STEP_TYPES.has(x.ev.type))
    if (!r || r.k !== 'ev' || r.ev.topic !== 'agent') return null
    return { n: r.n, t: r.t, seq: r.ev.seq, host: r.ev.host, type: r.ev.type }
  }

  closePlayback(id: string): { ok: true } {
    const p = this.open.get(id)
    if (p) {
      p.rec.close()
      this.open.delete(id)
    }
    return { ok: true }
  }

  close(): void {
    for (const id of [...this.open.keys()]) this.closePlayback(id)
  }

  private get(id: string, method: string): Recording {
    const p = this.open.get(id)
    if (!p) throw new ApiError('conflict', `${method}: no open playback '${id}' (it was closed, or the console restarted): open the recording again`)
    p.used = Date.now()
    return p.rec
  }

  private closeFile(path: string): void {
    for (const [id, p] of this.open) if (p.rec.path === path) this.closePlayback(id)
  }

  private refuseLive(name: string, what: string): void {
    const live = this.opts.writing?.()
    if (live && live === join(this.library.dir, stripExt(name) + EXT))
      throw new ApiError('conflict', `recording.${what}: '${stripExt(name)}' is being recorded now; stop or leave its lab first`)
  }

  private info(e: SessionEntry): RecordingInfo {
    const h = e.header
    return {
      name: e.name,
      bytes: e.bytes,
      lab: h ? { kind: h.lab.kind, name: h.lab.name, guest: h.lab.guest, mode: h.lab.mode } : null,
      startedAt: h?.startedAt ?? null,
      durationMs: e.duration,
      records: e.records,
      marks: e.marks.length,
      closed: e.closed,
      problems: e.problems.map((p) => p.message),
      error: e.error,
      live: this.opts.writing?.() === e.path
    }
  }
}

function toMark(m: RecordedMark): RecordingMark {
  const out: RecordingMark = { t: m.t, seq: m.seq, kind: m.kind, label: m.label }
  if (m.host) out.host = m.host
  return out
}

function markEvent(m: RecordedMark): ApiEvent {
  return { seq: m.seq, ts: m.t, topic: 'mark', mark: m.host ? { kind: m.kind, label: m.label, host: m.host } : { kind: m.kind, label: m.label } }
}

function stripExt(name: string): string {
  return name.endsWith(EXT) ? name.slice(0, -EXT.length) : name
}
