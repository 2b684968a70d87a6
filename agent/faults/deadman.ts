// Faults with a dead-man: every fault carries a deadline enforced here, on the faulted
// host, by a timer that heals it even if the console that injected it is gone.
import { EventEmitter } from 'node:events'
import type { AgentFault } from '../control/protocol.js'
import { TransportFilter, validateFault } from './filter.js'

export const MAX_FAULT_DEADLINE_MS = 24 * 60 * 60 * 1000

export interface ActiveFault {
  id: string
  fault: AgentFault
  /** wall-clock ms at which the dead-man heals it */
  healsAt: number
}

export interface FaultManagerEvents {
  applied: [fault: ActiveFault]
  healed: [fault: ActiveFault, reason: 'request' | 'deadline' | 'replaced' | 'shutdown']
}

export class FaultManager extends EventEmitter<FaultManagerEvents> {
  private readonly active = new Map<string, { fault: ActiveFault; timer: NodeJS.Timeout }>()

  constructor(
    readonly filter: TransportFilter = new TransportFilter(),
    private readonly now: () => number = Date.now
  ) {
    super()
  }

  /** Apply (or replace) fault `id`; throws an Error saying what is wrong with the request. */
  apply(id: string, fault: AgentFault, deadlineMs: number): ActiveFault {
    if (typeof id !== 'string' || id.length === 0 || id === '*') throw new Error("fault id must be a non-empty string other than '*'")
    const bad = validateFault(fault)
    if (bad) throw new Error(bad)
    if (typeof deadlineMs !== 'number' || !Number.isFinite(deadlineMs) || deadlineMs <= 0 || deadlineMs > MAX_FAULT_DEADLINE_MS) {
      throw new Error(`deadlineMs must be a number of milliseconds from 1 to ${MAX_FAULT_DEADLINE_MS}; every fault needs a dead-man deadline`)
    }
    if (this.active.has(id)) this.heal(id, 'replaced')
    const entry: ActiveFault = { id, fault, healsAt: this.now() + deadlineMs }
    const timer = setTimeout(() => this.heal(id, 'deadline'), deadlineMs)
    // the agent is kept alive by its listeners; a pending dead-man alone must not
    timer.unref()
    this.active.set(id, { fault: entry, timer })
    this.filter.set(id, fault)
    this.emit('applied', entry)
    return entry
  }

  /** Heal one fault, or all with '*' (emergency stop). Returns the ids healed. */
  heal(id: string, reason: 'request' | 'deadline' | 'replaced' | 'shutdown' = 'request'): string[] {
    const ids = id === '*' ? [...this.active.keys()] : this.active.has(id) ? [id] : []
    for (const one of ids) {
      const a = this.active.get(one)!
      clearTimeout(a.timer)
      this.active.delete(one)
      this.filter.remove(one)
      this.emit('healed', a.fault, reason)
    }
    return ids
  }

  list(): ActiveFault[] {
    return [...this.active.values()].map((a) => a.fault)
  }

  close(): void {
    this.heal('*', 'shutdown')
  }
}
