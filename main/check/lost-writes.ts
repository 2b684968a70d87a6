// No acknowledged write lost: checked against a final read of every key.
// The final value must come from some write that may have happened (acknowledged or
// unknown). An acknowledged write that is not the final value must have been overwritten,
// which needs the final value's write to be able to come after it: a final write that
// finished before an acknowledged write began cannot have overwritten it.
import type { FinalRead, HistoryOp } from '../load/history.js'
import { isCounterKey } from '../load/workload.js'
import { byKey, precedes, type Evidence, type Verdict } from './verdict.js'

export function checkLostWrites(history: readonly HistoryOp[], final: FinalRead): Verdict {
  const evidence: Evidence[] = []
  let unknownKeys = 0
  const writes = byKey(history, (h) => h.op === 'set' && !isCounterKey(h.key))
  // every register the run wrote or read at the end: keys live in a namespace of the run's
  // own, so a value that none of its writes could have put there is a violation too
  const keys = new Set([...writes.keys(), ...[...final.keys()].filter((k) => !isCounterKey(k))])
  for (const key of keys) {
    const ws = writes.get(key) ?? []
    const acked = ws.filter((w) => w.status === 'ok')
    if (!final.has(key)) {
      if (acked.length === 0) continue
      unknownKeys++
      evidence.push({ key, message: `${key}: not in the final read, so its ${acked.length} acknowledged writes cannot be checked` })
      continue
    }
    const value = final.get(key)!
    if (value === null) {
      if (acked.length > 0) evidence.push({ key, message: `${key}: ${acked.length} acknowledged writes, but the key is gone at the end`, ops: acked.slice(-3) })
      continue
    }
    const source = ws.find((w) => w.value === value && w.status !== 'fail')
    if (!source) {
      evidence.push({ key, message: `${key}: final value ${JSON.stringify(value)} was never written by a write that could have happened` })
      continue
    }
    const lost = acked.filter((w) => w !== source && precedes(source, w))
    if (lost.length > 0) {
      evidence.push({
        key,
        message: `${key}: ${lost.length} acknowledged write(s) lost: they began after the write of the final value ${JSON.stringify(value)} had finished`,
        ops: [source, ...lost.slice(0, 5)]
      })
    }
  }
  const broken = evidence.length - unknownKeys
  return { checker: 'no acknowledged write lost', valid: broken > 0 ? false : unknownKeys > 0 ? 'unknown' : true, evidence }
}
