// Per-key linearizability of registers (SET/GET), by search: a Wing–Gong style depth-first
// search for an order of the operations that respects real time and register semantics,
// with Lowe's memo of (linearized set, register value) so that equal states are not searched
// twice. Writes that never got an answer may take effect at any time after their invocation,
// or never. The search has a budget; past it the answer is 'unknown', never a guess.
import type { HistoryOp } from '../load/history.js'
import { isCounterKey } from '../load/workload.js'
import { byKey, combineValidity, type Evidence, type Validity, type Verdict } from './verdict.js'

export interface LinearizabilityOptions {
  /** search states visited per key before giving up with 'unknown' */
  maxStatesPerKey?: number
}

interface Op {
  h: HistoryOp
  invoke: number
  complete: number
  /** must be placed (answered); an unanswered write may be left out */
  required: boolean
  write: boolean
  value: string | null
}

interface Frame {
  /** every answered op before this index is placed: scans start here */
  first: number
  /** answered ops placed past `first`, as bits relative to it (small: only overlapping ops) */
  rest: bigint
  /** unanswered writes placed so far, one bit each */
  opt: bigint
  value: string | null
  /** answered ops placed so far */
  done: number
  /** candidates: answered ops by index, unanswered writes as -1 - index */
  candidates: number[]
  next: number
}

export function checkRegisterLinearizability(history: readonly HistoryOp[], opts: LinearizabilityOptions = {}): Verdict {
  const budget = opts.maxStatesPerKey ?? 200_000
  const evidence: Evidence[] = []
  const results: Validity[] = []
  const keys = byKey(history, (h) => !isCounterKey(h.key) && (h.op === 'set' || h.op === 'get'))
  for (const [key, hs] of keys) {
    const r = checkKey(key, hs, budget)
    results.push(r.valid)
    if (r.evidence) evidence.push(r.evidence)
  }
  return { checker: 'registers are linearizable (per key)', valid: combineValidity(results), evidence }
}

function checkKey(key: string, hs: HistoryOp[], budget: number): { valid: Validity; evidence?: Evidence } {
  const ops: Op[] = []
  for (const h of hs) {
    if (h.status === 'fail') continue // did not happen
    if (h.op === 'get' && h.status !== 'ok') continue // an unanswered read constrains nothing
    ops.push({
      h,
      invoke: h.invokeMs,
      complete: h.status === 'ok' && h.completeMs !== null ? h.completeMs : Infinity,
      required: h.status === 'ok',
      write: h.op === 'set',
      value: h.op === 'set' ? (h.value ?? null) : ((h.result as string | null | undefined) ?? null)
    })
  }
  if (!ops.some((o) => !o.write)) return { valid: true } // writes alone can always be ordered
  // Answered ops must all be placed; unanswered writes may be. They are kept apart: an
  // unanswered write never bounds anything, and left in the main order it would pin `first`
  // and make every state as large as the history.
  const req = ops.filter((o) => o.required).sort((a, b) => a.invoke - b.invoke)
  const opt = ops.filter((o) => !o.required).sort((a, b) => a.invoke - b.invoke)

  const placed = (first: number, rest: bigint, i: number) => i < first || ((rest >> BigInt(i - first)) & 1n) === 1n
  const candidatesOf = (first: number, rest: bigint, optMask: bigint): number[] => {
    // Only ops invoked before every unplaced answered op completed can go next. Ops are in
    // invoke order, so the scan stops once an invocation passes that bound.
    let bound = Infinity
    const out: number[] = []
    for (let i = first; i < req.length; i++) {
      if (placed(first, rest, i)) continue
      if (req[i].invoke > bound) break
      if (req[i].complete < bound) bound = req[i].complete
    }
    for (let i = first; i < req.length; i++) {
      if (placed(first, rest, i)) continue
      if (req[i].invoke > bound) break
      out.push(i)
    }
    // unanswered writes last: they usually took effect late or never
    for (let j = 0; j < opt.length && opt[j].invoke <= bound; j++) if (((optMask >> BigInt(j)) & 1n) === 0n) out.push(-1 - j)
    return out
  }

  const seen = new Set<string>()
  let deepest: Frame | null = null
  const stack: Frame[] = [{ first: 0, rest: 0n, opt: 0n, value: null, done: 0, candidates: candidatesOf(0, 0n, 0n), next: 0 }]
  let states = 0
  while (stack.length > 0) {
    const f = stack[stack.length - 1]
    if (f.done === req.length) return { valid: true }
    if (f.next >= f.candidates.length) {
      stack.pop()
      continue
    }
    const c = f.candidates[f.next++]
    const op = c >= 0 ? req[c] : opt[-1 - c]
    if (!op.write && op.value !== f.value) continue
    let first = f.first
    let rest = f.rest
    let optMask = f.opt
    if (c >= 0) {
      rest |= 1n << BigInt(c - first)
      while ((rest & 1n) === 1n) {
        rest >>= 1n
        first++
      }
    } else {
      optMask |= 1n << BigInt(-1 - c)
    }
    const value = op.write ? op.value : f.value
    const memo = `${first}|${rest.toString(36)}|${optMask.toString(36)}|${value}`
    if (seen.has(memo)) continue
    seen.add(memo)
    if (++states > budget) {
      return {
        valid: 'unknown',
        evidence: { key, message: `${key}: search budget of ${budget} states used up on ${ops.length} operations; linearizability not decided` }
      }
    }
    const next: Frame = { first, rest, opt: optMask, value, done: f.done + (c >= 0 ? 1 : 0), candidates: candidatesOf(first, rest, optMask), next: 0 }
    if (!deepest || next.done > deepest.done) deepest = next
    stack.push(next)
  }
  const d = deepest
  const stuck = req.filter((o, i) => !o.write && !(d && placed(d.first, d.rest, i))).slice(0, 3)
  return {
    valid: false,
    evidence: {
      key,
      message: `${key}: no order of its ${ops.length} operations explains every read; the search could place at most ${d?.done ?? 0} of the ${req.length} answered ones`,
      ops: stuck.map((o) => o.h)
    }
  }
}
