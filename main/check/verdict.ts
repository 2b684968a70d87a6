// The verdict every checker returns: valid, invalid, or unknown (the history cannot tell),
// always with the evidence that decided it.
import type { HistoryOp } from '../load/history.js'

export type Validity = true | false | 'unknown'

export interface Evidence {
  key?: string
  message: string
  ops?: HistoryOp[]
}

export interface Verdict {
  checker: string
  valid: Validity
  evidence: Evidence[]
}

/** false beats unknown beats true: one proven violation makes the whole run invalid. */
export function combineValidity(vs: readonly Validity[]): Validity {
  if (vs.includes(false)) return false
  if (vs.includes('unknown')) return 'unknown'
  return true
}

export function byKey(history: readonly HistoryOp[], pick: (h: HistoryOp) => boolean): Map<string, HistoryOp[]> {
  const m = new Map<string, HistoryOp[]>()
  for (const h of history) {
    if (!pick(h)) continue
    let l = m.get(h.key)
    if (!l) m.set(h.key, (l = []))
    l.push(h)
  }
  return m
}

/** Real-time order: a finished before b began. An unknown op never finished. */
export function precedes(a: HistoryOp, b: HistoryOp): boolean {
  return a.completeMs !== null && a.completeMs < b.invokeMs
}
