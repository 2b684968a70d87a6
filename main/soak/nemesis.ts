// The nemesis's choices, as pure functions of the lab's status (what lab.status returns), so
// each rule is tested on its own: whether a planned fault can be applied now, whether one of
// ours is still open to heal, and what (if anything) brings the lab back to a primary with a
// backup — restore redundancy when one replica is gone, power a replica on from the disk
// server when both are, and otherwise wait for the failover to settle.
import { REPLICA_IDS, type FaultInfo, type HostStatus, type LabStatus, type ReplicaHostId } from '../api/contract.js'
import { describePlanned, type PlannedFault } from './plan.js'

export type Recovery =
  | { action: 'none' }
  | { action: 'wait'; why: string }
  | { action: 'restore'; from: ReplicaHostId; to: ReplicaHostId }
  | { action: 'power-on'; host: ReplicaHostId }

const host = (s: LabStatus, id: string): HostStatus | undefined => s.hosts.find((h) => h.id === id)

/** A replica that serves nobody and never will again without the operator: its agent is gone or it halted. */
export function isGone(h: HostStatus | undefined): boolean {
  return !h || !h.reachable || h.role === 'down' || h.role === 'halted'
}

/** A primary with its backup and the logging channel between them: redundancy as the lab began. */
export function isPaired(s: LabStatus): boolean {
  const a = host(s, 'a')
  const b = host(s, 'b')
  if (!a || !b || a.paused || b.paused) return false
  const pair = (a.role === 'primary' && b.role === 'backup') || (b.role === 'primary' && a.role === 'backup')
  return pair && s.channel?.connected === true
}

const roleText = (h: HostStatus | undefined, id: string): string => `${id} ${h ? (h.paused ? 'paused' : h.reachable ? h.role : 'unreachable') : 'missing'}`

/**
 * Why a planned fault cannot be applied to the lab as it is now, or null when it can. The
 * nemesis skips such a fault (and says why) instead of asking the lab for the impossible: a
 * host that is down cannot be paused, cut off or cut again; a paused agent cannot apply a
 * filter to its own links; the disk server is never power-cut (nothing could bring it back
 * under a running lab).
 */
export function whyNotApplicable(f: Pick<PlannedFault, 'target' | 'kind' | 'params'>, s: LabStatus): string | null {
  if (s.state !== 'running') return `the lab is ${s.state}`
  const ends = f.target.split('-')
  if (f.kind === 'power' && f.target === 'disk') return 'the disk server is never power-cut under a running lab'
  for (const id of ends) {
    const h = host(s, id)
    if (!h || !h.reachable || h.role === 'down') return `${id} is down`
  }
  if (f.kind === 'pause' && host(s, f.target)?.paused) return `${f.target} is paused already`
  if (f.kind !== 'power' && f.kind !== 'pause') {
    const paused = ends.filter((id) => host(s, id)?.paused)
    if (paused.length) return `${paused.join(' and ')} ${paused.length > 1 ? 'are' : 'is'} paused, so its agent cannot apply ${describePlanned(f)}`
  }
  // one fault per target and kind at a time: a second isolate of the same host adds nothing and confuses the heal
  const same = s.faults.find((o) => o.target === f.target && o.kind === f.kind)
  if (same) return `${same.what} (${same.id}) is open already`
  return null
}

/** Never heals what isn't there: a fault of ours is healed only while the lab still lists it open. */
export function isOpen(id: string, s: LabStatus): boolean {
  return s.faults.some((f) => f.id === id)
}

/**
 * What brings redundancy back, given the status and the faults the nemesis must not undo.
 * `holdPower`: ids of power cuts still within their planned down time (the schedule says when
 * a replica comes back, not the nemesis's impatience).
 */
export function recoveryFor(s: LabStatus, holdPower: ReadonlySet<string> = new Set()): Recovery {
  if (s.state !== 'running') return { action: 'wait', why: `the lab is ${s.state}` }
  if (isPaired(s)) return { action: 'none' }
  const open = s.faults.filter((f: FaultInfo) => f.kind !== 'power')
  if (open.length) return { action: 'wait', why: `open faults: ${open.map((f) => f.what).join(', ')}` }
  const held = s.faults.filter((f) => f.kind === 'power' && holdPower.has(f.id))
  if (held.length) return { action: 'wait', why: `${held.map((f) => f.what).join(', ')} within its planned down time` }
  const [a, b] = REPLICA_IDS.map((id) => host(s, id))
  const paused = REPLICA_IDS.filter((id) => host(s, id)?.paused)
  if (paused.length) return { action: 'wait', why: `${paused.join(', ')} paused` }
  if (isGone(a) && isGone(b)) {
    // both replicas gone: the guest's state is on the disk server; boot a replica from it (the one the lab offers first)
    const disk = host(s, 'disk')
    if (!disk || !disk.reachable) return { action: 'wait', why: 'both replicas are gone and the disk server does not answer' }
    const h = REPLICA_IDS.find((id) => host(s, id)?.canPowerOn) ?? 'a'
    return { action: 'power-on', host: h }
  }
  for (const [live, other] of [
    ['a', 'b'],
    ['b', 'a']
  ] as const) {
    // idle: the agent answers and runs no replica, as a restore onto it that failed leaves it (its channel port was
    // taken: EADDRINUSE in a soak); nothing else will start one there, so restore again
    const o = host(s, other)
    if (host(s, live)?.role === 'live' && (isGone(o) || o?.role === 'idle')) return { action: 'restore', from: live, to: other }
  }
  return { action: 'wait', why: `the replicas are settling (${roleText(a, 'a')}, ${roleText(b, 'b')})` }
}
