// Counts false failovers: a replica went live while the other one was still alive, and no fault
// of the operator's separated them. Such a go-live is only ever the failure detector's doing (a
// busy peer taken for a dead one); the test-and-set and fencing keep it safe, but it costs the
// lab its redundancy and the clients a cut-over, for nothing.
//
// Where it is known: the deposed replica itself says so. A replica that was alive when its peer
// went live either loses the test-and-set of that generation (it suspected in turn: its peer went
// quiet, being live) or has a disk write fenced; it reports either before it halts. A replica that
// really died (power cut, crash) says nothing. What the replica cannot know is whether an operator
// fault (a pause, a network cut, a delay, loss) explains the silence: the lab's event stream has
// those, so the judgement is made here, over LabEvents, by the console and the benchmark alike.
import type { LabEvent } from './lab-events.js'

/**
 * After a fault heals, its effects may still play out (a suspicion begun during a cut ends in a
 * test-and-set lost after the heal): a deposed replica that close to a fault is not counted.
 */
export const FAULT_GRACE_MS = 5_000

export interface FalseFailover {
  /** the replica that was alive when its peer went live */
  host: string
  gen: number
  /** console clock */
  at: number
  /** what the deposed replica reported */
  why: string
}

interface OpenFault {
  /** console clock of the dead-man deadline, or null (a power cut: open until restore or power-on) */
  healsAt: number | null
}

export class FalseFailoverJudge {
  readonly found: FalseFailover[] = []
  /** go-lives judged true: a deposed replica spoke up while a fault explained the silence */
  explained = 0
  private readonly open = new Map<string, OpenFault>()
  private lastFaultEnd = -Infinity
  /** one judgement per deposed replica and generation (it may report both a lost test-and-set and a fence) */
  private readonly judged = new Set<string>()

  get count(): number {
    return this.found.length
  }

  /** Feed every lab event, in order; returns the false failover this event revealed, if any. */
  observe(ev: LabEvent): FalseFailover | null {
    if (ev.source === 'operator') {
      this.onOperator(ev)
      return null
    }
    if (ev.source !== 'agent' || !ev.host) return null
    const d = ev.data
    let why: string | null = null
    if (ev.type === 'tas' && d.result === 'lost') why = `lost the test-and-set of generation ${String(d.gen)}`
    else if (ev.type === 'replica-role' && d.role === 'halted' && /fenced a write/.test(String(d.reason))) why = String(d.reason)
    if (why === null) return null
    const gen = Number(d.gen)
    const key = `${ev.host}:${ev.agent?.incarnation ?? 0}:${gen}`
    if (this.judged.has(key)) return null
    this.judged.add(key)
    if (this.faultNear(ev.ts)) {
      this.explained++
      return null
    }
    const found: FalseFailover = { host: ev.host, gen, at: ev.ts, why }
    this.found.push(found)
    return found
  }

  private onOperator(ev: LabEvent): void {
    const d = ev.data
    if (ev.type === 'fault' && typeof d.id === 'string') {
      this.open.set(d.id, { healsAt: typeof d.healsAt === 'number' ? d.healsAt : null })
    } else if (ev.type === 'heal') {
      const healed = Array.isArray(d.healed) ? d.healed.filter((x): x is string => typeof x === 'string') : []
      for (const id of d.id === 'all' ? [...this.open.keys()] : healed) this.open.delete(id)
      this.lastFaultEnd = ev.ts
    }
  }

  private faultNear(at: number): boolean {
    for (const [id, f] of this.open) {
      if (f.healsAt === null || f.healsAt > at) return true
      // healed by its dead-man, without an event: it ended at its deadline
      this.lastFaultEnd = Math.max(this.lastFaultEnd, f.healsAt)
      this.open.delete(id)
    }
    return at - this.lastFaultEnd < FAULT_GRACE_MS
  }
}
