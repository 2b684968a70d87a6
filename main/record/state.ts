// The derived state a recording carries in its keyframes and a player rebuilds by replay:
// the last lab status, the load status, the marked moments, the terminals' states and the
// drill runs (a seek far from a terminal's opening or a drill's start still knows them). Writer and reader apply
// records with the same function, so a keyframe and a replay cannot disagree.
import type { DrillRun, LabStatus, LoadStatus, TermInfo } from '../api/contract.js'
import type { Keyframe, RecordEntry, RecordedMark } from './format.js'

export class DerivedState {
  n = 0
  t = 0
  status: LabStatus | null = null
  load: LoadStatus | null = null
  /** marks since the last keyframe was taken */
  marks: RecordedMark[] = []
  /** every terminal's last state, by id */
  terms: Record<string, TermInfo> = {}
  /** the last TERM_TAIL characters each host terminal showed, by id (a seek redraws the screen from it) */
  termOut: Record<string, string> = {}
  /** the newest state of the last MAX_DRILLS drill or soak runs, by id */
  drills: Record<string, DrillRun> = {}

  static from(k: Keyframe): DerivedState {
    const s = new DerivedState()
    s.n = k.n
    s.t = k.t
    s.status = k.status
    s.load = k.load
    s.terms = { ...k.terms }
    s.termOut = { ...k.termOut }
    s.drills = { ...k.drills }
    return s
  }

  apply(r: RecordEntry): void {
    const n = this.n++
    if (r.t > this.t) this.t = r.t
    if (r.k !== 'ev') return
    const ev = r.ev
    if (ev.topic === 'status') {
      this.status = ev.status
      this.load = ev.status.load
    } else if (ev.topic === 'load') {
      this.load = ev.load
    } else if (ev.topic === 'mark') {
      const m: RecordedMark = { t: r.t, n, seq: ev.seq, kind: ev.mark.kind, label: ev.mark.label }
      if (ev.mark.host) m.host = ev.mark.host
      this.marks.push(m)
    } else if (ev.topic === 'terminal' && ev.stream !== 'channel') {
      const out = (this.termOut[ev.stream] ?? '') + ev.data
      this.termOut = { ...this.termOut, [ev.stream]: out.length > TERM_TAIL ? out.slice(out.length - TERM_TAIL) : out }
    } else if (ev.topic === 'term') {
      this.terms = { ...this.terms, [ev.term.id]: ev.term }
    } else if (ev.topic === 'drill') {
      const drills = { ...this.drills, [ev.run.id]: ev.run }
      const ids = Object.keys(drills)
      for (const id of ids.slice(0, Math.max(0, ids.length - MAX_DRILLS))) delete drills[id]
      this.drills = drills
    }
  }

  /** The keyframe of this state; its marks are the ones since the last keyframe, which it takes. */
  keyframe(): Keyframe {
    const k: Keyframe = {
      n: this.n,
      t: this.t,
      status: this.status,
      load: this.load,
      marks: this.marks,
      terms: this.terms,
      termOut: this.termOut,
      drills: this.drills
    }
    this.marks = []
    return k
  }

  /** The lab status as a player shows it: the last snapshot with the newest load progress. */
  labStatus(): LabStatus | null {
    if (!this.status) return null
    return this.load && this.load !== this.status.load ? { ...this.status, load: this.load } : this.status
  }
}

const MAX_DRILLS = 8
/** a terminal's screen and some scrollback */
const TERM_TAIL = 16 * 1024

const SECRET_KEY = /secret|password|passphrase|token|private/i

/**
 * An operator's request as it may be written to disk: secrets replaced, and terminal input
 * reduced to its length (a shell may be reading a password: the echo, not the keys, is recorded).
 */
export function redactParams(method: string, params: unknown): unknown {
  if (method === 'term.input' && params && typeof params === 'object') {
    const p = params as { id?: unknown; data?: unknown }
    return { id: p.id, data: `[${typeof p.data === 'string' ? p.data.length : 0} characters not recorded]` }
  }
  return redact(params, 0)
}

function redact(v: unknown, depth: number): unknown {
  if (depth > 20 || v === null || typeof v !== 'object') return v
  if (Array.isArray(v)) return v.map((x) => redact(x, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) out[k] = SECRET_KEY.test(k) && x !== undefined ? '[redacted]' : redact(x, depth + 1)
  return out
}
