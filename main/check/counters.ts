// Counters: INCR results and reads never go backwards in real time, no two acknowledged
// INCRs see the same value (each happened once), and the final value lies between the
// acknowledged INCRs (none lost) and acknowledged + unknown ones (none applied twice, as a
// retried INCR would be if the reply table failed at cut-over).
import type { FinalRead, HistoryOp } from '../load/history.js'
import { isCounterKey } from '../load/workload.js'
import { byKey, type Evidence, type Verdict } from './verdict.js'

interface Observation {
  op: HistoryOp
  value: number
}

export function checkCounters(history: readonly HistoryOp[], final: FinalRead): Verdict {
  const evidence: Evidence[] = []
  const unchecked: Evidence[] = []
  const ops = byKey(history, (h) => isCounterKey(h.key) && h.status === 'ok' && (h.op === 'incr' || h.op === 'get'))
  const incrs = byKey(history, (h) => isCounterKey(h.key) && h.op === 'incr')
  for (const key of new Set([...ops.keys(), ...incrs.keys()])) {
    const obs: Observation[] = []
    for (const h of ops.get(key) ?? []) {
      const v = h.op === 'incr' ? h.result : h.result === null ? 0 : Number(h.result)
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
        evidence.push({ key, message: `${key}: ${h.op} saw ${JSON.stringify(h.result)}, which is not a counter value`, ops: [h] })
        continue
      }
      obs.push({ op: h, value: v })
    }
    backwards(key, obs, evidence)
    const seen = new Map<number, HistoryOp>()
    for (const o of obs) {
      if (o.op.op !== 'incr') continue
      const other = seen.get(o.value)
      if (other)
        evidence.push({ key, message: `${key}: two acknowledged INCRs both returned ${o.value}: one increment was lost or answered twice`, ops: [other, o.op] })
      else seen.set(o.value, o.op)
    }
    const all = incrs.get(key) ?? []
    const acked = all.filter((h) => h.status === 'ok').length
    const maybe = all.filter((h) => h.status === 'unknown').length
    if (!final.has(key)) {
      if (acked > 0) {
        unchecked.push({ key, message: `${key}: not in the final read; ${acked} acknowledged INCRs unchecked` })
      }
      continue
    }
    const raw = final.get(key)
    const end = raw === null ? 0 : Number(raw)
    if (!Number.isSafeInteger(end)) {
      evidence.push({ key, message: `${key}: final value ${JSON.stringify(raw)} is not a counter` })
      continue
    }
    if (end < acked) evidence.push({ key, message: `${key}: final value ${end} is below the ${acked} acknowledged INCRs: increments were lost` })
    if (end > acked + maybe)
      evidence.push({ key, message: `${key}: final value ${end} is above ${acked} acknowledged + ${maybe} unanswered INCRs: an increment was applied twice` })
  }
  const valid = evidence.length > 0 ? false : unchecked.length > 0 ? 'unknown' : true
  return { checker: 'counters never go backwards and count every INCR once', valid, evidence: [...evidence, ...unchecked] }
}

/** Sweep in invoke order, keeping the highest value among observations that finished before. */
function backwards(key: string, obs: Observation[], evidence: Evidence[]): void {
  const byComplete = [...obs].sort((a, b) => a.op.completeMs! - b.op.completeMs!)
  const byInvoke = [...obs].sort((a, b) => a.op.invokeMs - b.op.invokeMs)
  let i = 0
  let best: Observation | null = null
  let reported = 0
  for (const o of byInvoke) {
    while (i < byComplete.length && byComplete[i].op.completeMs! < o.op.invokeMs) {
      if (!best || byComplete[i].value > best.value) best = byComplete[i]
      i++
    }
    if (!best) continue
    // an INCR after another must see a strictly larger value; a read at least as large
    const bad = o.op.op === 'incr' ? o.value <= best.value : o.value < best.value
    if (bad && reported++ < 5) {
      evidence.push({ key, message: `${key}: went backwards: ${best.op.op} saw ${best.value}, then a later ${o.op.op} saw ${o.value}`, ops: [best.op, o.op] })
    }
  }
}
