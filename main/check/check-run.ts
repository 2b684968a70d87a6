// All checkers over one run, and the one-word verdict for the run.
import type { FinalRead, HistoryOp } from '../load/history.js'
import { checkCounters } from './counters.js'
import { checkRegisterLinearizability, type LinearizabilityOptions } from './linearizable.js'
import { checkLostWrites } from './lost-writes.js'
import { combineValidity, type Validity, type Verdict } from './verdict.js'

export interface RunVerdict {
  valid: Validity
  checks: Verdict[]
}

export function checkRun(history: readonly HistoryOp[], final: FinalRead, opts: LinearizabilityOptions = {}): RunVerdict {
  const checks = [checkLostWrites(history, final), checkCounters(history, final), checkRegisterLinearizability(history, opts)]
  return { valid: combineValidity(checks.map((c) => c.valid)), checks }
}
