// The nemesis's schedule: every fault of a soak, its target, its parameters, when it comes
// and how long it lasts, drawn from one seed before the soak begins. Drawing it up front is
// what makes a seed reproduce a soak: the lab's behaviour (how fast a restore goes, when the
// clients retry) cannot shift a single choice, so the same seed prints the same schedule on
// any lab, and on the simulated lab, whose clock is the simulator's, runs it at the same times.
import { Prng } from '../../agent/prng.js'
import type { CutDirection, FaultKind, FaultParams, FaultTarget, ReplicaHostId } from '../api/contract.js'

/** What a planned fault does, in the contract's words (fault.inject's target, kind and params). */
export interface PlannedFault {
  /** 1-based, in schedule order */
  n: number
  /** ms after the soak began, on the soak's clock (the simulator's clock on the simulated lab) */
  at: number
  target: FaultTarget
  kind: FaultKind
  params: FaultParams
  /**
   * how long the fault stays before the nemesis heals it; for a power cut, how long the host
   * stays down before the nemesis restores redundancy (or powers a replica on after a double failure)
   */
  durationMs: number
  /**
   * the second half of a planned double failure: it comes while the first is still down, so the
   * nemesis does not restore redundancy before it (every other fault waits for a healthy lab)
   */
  overlap: boolean
}

export interface PlanOptions {
  seed: number
  /** how many faults (the schedule's length) */
  faults: number
  /** the lab's suspicion timeout: durations and gaps are drawn around it so that some faults outlast it and some do not */
  suspectMs: number
  /** stop planning past this many ms (the soak's time bound); default unbounded */
  maxMs?: number
}

/** The fault mix: weights per family, so the common grey failures are not drowned by power cuts. */
const FAMILIES: { weight: number; draw: (r: Prng) => Pick<PlannedFault, 'target' | 'kind' | 'params'> }[] = [
  { weight: 3, draw: (r) => ({ target: replica(r), kind: 'power', params: {} }) },
  { weight: 2, draw: (r) => ({ target: replica(r), kind: 'pause', params: {} }) },
  { weight: 2, draw: (r) => ({ target: replica(r), kind: 'isolate', params: {} }) },
  // the logging channel, one way or both
  { weight: 3, draw: (r) => ({ target: 'a-b', kind: 'cut', params: { direction: r.pick<CutDirection>(['both', 'forward', 'backward']) } }) },
  // the disk server: one replica's path to it (either way), or the disk server cut off altogether
  {
    weight: 2,
    draw: (r) => ({
      target: r.pick<FaultTarget>(['a-disk', 'b-disk']),
      kind: 'cut',
      params: { direction: r.pick<CutDirection>(['both', 'forward', 'backward']) }
    })
  },
  { weight: 1, draw: () => ({ target: 'disk', kind: 'isolate', params: {} }) },
  { weight: 2, draw: (r) => ({ target: link(r), kind: 'loss', params: { probability: r.int(5, 60) / 100 } }) },
  { weight: 2, draw: (r) => ({ target: link(r), kind: 'delay', params: { ms: r.int(2, 60), ...(r.chance(0.5) ? { jitterMs: r.int(1, 20) } : {}) } }) }
]
const TOTAL_WEIGHT = FAMILIES.reduce((s, f) => s + f.weight, 0)
/** a power cut is followed by a cut of the other replica (a double failure) this often */
const DOUBLE_FAILURE_CHANCE = 0.15

const replica = (r: Prng): ReplicaHostId => r.pick(['a', 'b'] as const)
const link = (r: Prng): FaultTarget => r.pick<FaultTarget>(['a-b', 'a-b', 'a-disk', 'b-disk'])

/** The schedule for a seed: the same options give the same list, element for element. */
export function planSoak(opts: PlanOptions): PlannedFault[] {
  if (!Number.isInteger(opts.faults) || opts.faults < 1) throw new Error(`soak: the number of faults must be a positive integer, got ${opts.faults}`)
  if (!(opts.suspectMs > 0)) throw new Error(`soak: the suspicion timeout must be positive, got ${opts.suspectMs} ms`)
  const r = new Prng(opts.seed)
  const s = opts.suspectMs
  const out: PlannedFault[] = []
  // the lab settles (roles, channel, the first load) before the first fault
  let at = Math.round(s * 3 + r.int(0, s))
  while (out.length < opts.faults) {
    if (opts.maxMs !== undefined && at > opts.maxMs) break
    const f = drawFamily(r)
    // from a third of the suspicion timeout (no failover) to three times it (a failover for sure)
    const durationMs = Math.max(100, Math.round(r.int(Math.round(s / 3), s * 3)))
    out.push({ n: out.length + 1, at, ...f, durationMs, overlap: false })
    let end = at + durationMs
    if (f.kind === 'power' && r.chance(DOUBLE_FAILURE_CHANCE) && out.length < opts.faults) {
      // the other replica fails while the first is down: the service is down until a replica boots from the disk server
      const second = at + Math.round(s * 2 + r.int(0, s))
      if (opts.maxMs === undefined || second <= opts.maxMs) {
        const other: ReplicaHostId = f.target === 'a' ? 'b' : 'a'
        const down = Math.max(100, r.int(Math.round(s / 2), s * 2))
        // the first replica stays down past the second cut: both are gone at once
        const first = out[out.length - 1]
        first.durationMs = Math.max(first.durationMs, second - at + down)
        out.push({ n: out.length + 1, at: second, target: other, kind: 'power', params: {}, durationMs: down, overlap: true })
        end = Math.max(end, second + down)
      }
    }
    // room after each fault for the failover and the heal (a restore that takes longer moves the rest of the schedule back)
    at = end + Math.round(s + r.int(0, s * 2))
  }
  return out
}

function drawFamily(r: Prng): Pick<PlannedFault, 'target' | 'kind' | 'params'> {
  let x = r.int(1, TOTAL_WEIGHT)
  for (const f of FAMILIES) {
    x -= f.weight
    if (x <= 0) return f.draw(r)
  }
  return FAMILIES[0].draw(r)
}

/** A planned fault in one phrase: "power cut a", "cut a→b", "loss a↔disk 30%". */
export function describePlanned(f: Pick<PlannedFault, 'target' | 'kind' | 'params'>): string {
  const [x, y] = f.target.split('-')
  switch (f.kind) {
    case 'power':
      return `power cut ${f.target}`
    case 'pause':
    case 'isolate':
      return `${f.kind} ${f.target}`
    case 'cut': {
      const d = f.params.direction ?? 'both'
      return d === 'both' ? `cut ${x}↔${y}` : d === 'forward' ? `cut ${x}→${y}` : `cut ${y}→${x}`
    }
    case 'loss':
      return `loss ${x}↔${y} ${Math.round((f.params.probability ?? 0) * 100)}%`
    case 'delay':
      return `delay ${x}↔${y} ${f.params.ms ?? 0} ms${f.params.jitterMs ? ` ±${f.params.jitterMs}` : ''}`
  }
}

/** Seconds with milliseconds, right-aligned: "  12.345s". */
export function clockText(ms: number): string {
  return `${(ms / 1000).toFixed(3)}s`.padStart(9)
}

/** One line per fault: when, what, for how long. The soak prints it, and the report shows it as the scenario. */
export function scheduleLine(f: PlannedFault): string {
  const how =
    f.kind === 'power' ? `down ${f.durationMs} ms, then ${f.overlap ? 'power-on from the disk server' : 'restore redundancy'}` : `for ${f.durationMs} ms`
  return `${String(f.n).padStart(4)} ${clockText(f.at)}  ${describePlanned(f).padEnd(22)} ${how}${f.overlap ? '  (double failure)' : ''}`
}

export function scheduleText(plan: readonly PlannedFault[], head: string): string {
  return [head, ...plan.map(scheduleLine)].join('\n') + '\n'
}
