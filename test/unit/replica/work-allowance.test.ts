// A replica that has lately logged or received a large entry allows its peer a longer silence: the peer has that
// much to run, encode, decode or replay, beyond the stalls the failure detector learned while values were small.
import { describe, expect, it } from 'vitest'
import { HEAP_BYTES_PER_MS, WORK_BYTES_PER_MS, WORK_WINDOW_MS } from '../../../agent/replica/core.js'
import type { ReplicaCore } from '../../../agent/replica/core.js'
import { confirmedPrimary, deliver, diskReqs, ftreq, makeCore, telemetry } from './harness.js'

const cfg = { heartbeatMs: 10, suspectMs: 2000 }
const BIG = 256 * 1024

/** The peer's heartbeats every 10 ms for 6 s: the detector comes down from the ceiling to its floor (30 ms). */
function learnQuietPeer(core: ReplicaCore, peer: 'a' | 'b', last: () => number, from = 0): number {
  let now = from
  for (; now < from + 6000; now += 10) {
    core.step({ t: 'peer', now, msg: { t: 'heartbeat', gen: 1, from: peer, last: last(), releasedThrough: 0 } })
    core.step({ t: 'tick', now: now + 5 })
    core.takeActions()
  }
  return now
}

const suspected = (core: ReplicaCore, now: number) => {
  core.step({ t: 'tick', now })
  const as = core.takeActions()
  return telemetry(as).some((t) => t.k === 'suspect') || diskReqs(as).some((r) => r.op === 'tas')
}

/** Ticks every 5 ms from `from` to `to` (a replica's timer), true once one of them suspected. */
function suspectsBetween(core: ReplicaCore, from: number, to: number): boolean {
  for (let now = from; now <= to; now += 5) if (suspected(core, now)) return true
  return false
}

describe('the work allowance of a large entry', () => {
  it('a primary that logged a 256 KiB SET waits for its backup that much longer, and no longer', () => {
    const p = confirmedPrimary({ cfg })
    const now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry)
    const learned = p.core.status().suspectAfterMs
    expect(learned).toBe(30)
    p.core.step({ t: 'input', now, input: { t: 'open', conn: 's:c1' } })
    p.core.step({ t: 'input', now, input: ftreq('c1', 1, 'SET', 'big', 'v'.repeat(BIG)) })
    p.core.takeActions()
    const allowance = Math.floor(BIG / WORK_BYTES_PER_MS)
    expect(p.core.status().suspectAfterMs).toBeGreaterThanOrEqual(learned + allowance)
    const limit = p.core.status().suspectAfterMs
    // the backup's last heartbeat came 10 ms before; silent from there on: not suspected within the limit, suspected once past it
    const heard = now - 10
    expect(suspectsBetween(p.core, now + 5, heard + limit)).toBe(false)
    expect(suspectsBetween(p.core, heard + limit + 5, heard + limit + 20)).toBe(true)
  })

  it('small entries allow nothing, and a large one’s allowance ends after WORK_WINDOW_MS', () => {
    const p = confirmedPrimary({ cfg })
    const now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry)
    p.core.step({ t: 'input', now, input: { t: 'open', conn: 's:c1' } })
    p.core.step({ t: 'input', now, input: ftreq('c1', 1, 'SET', 'small', 'v'.repeat(40)) })
    p.core.takeActions()
    expect(p.core.status().suspectAfterMs).toBe(30)
    p.core.step({ t: 'input', now, input: ftreq('c1', 2, 'SET', 'big', 'v'.repeat(BIG)) })
    p.core.takeActions()
    expect(p.core.status().suspectAfterMs).toBeGreaterThan(30 + 100)
    // the backup stays in touch (acking what it has) past the window: the allowance is gone
    const later = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    expect(later - now).toBeGreaterThan(WORK_WINDOW_MS / 2)
    learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, later)
    expect(p.core.status().suspectAfterMs).toBeLessThan(30 + 100)
  })

  it('a backup that received a 256 KiB entry waits for its primary that much longer', () => {
    const p = confirmedPrimary({ cfg })
    const b = makeCore('backup', { cfg })
    b.core.takeActions()
    deliver(p.start, b.core, 0) // the boot entry: the backup holds state and may judge
    const now = learnQuietPeer(b.core, 'a', () => p.core.status().lastEntry)
    expect(b.core.status().suspectAfterMs).toBe(30)
    p.core.step({ t: 'input', now, input: { t: 'open', conn: 's:c1' } })
    p.core.step({ t: 'input', now, input: ftreq('c1', 1, 'SET', 'big', 'v'.repeat(BIG)) })
    deliver(p.core.takeActions(), b.core, now)
    const limit = b.core.status().suspectAfterMs
    expect(limit).toBeGreaterThanOrEqual(30 + Math.floor(BIG / WORK_BYTES_PER_MS))
    expect(suspectsBetween(b.core, now + 5, now + limit)).toBe(false)
    expect(suspectsBetween(b.core, now + limit + 5, now + limit + 20)).toBe(true)
  })
})

describe('the allowance of a large guest', () => {
  it('a replica holding a large guest allows its peer a garbage collection’s worth more silence', () => {
    const p = confirmedPrimary({ cfg })
    let now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry)
    expect(p.core.status().suspectAfterMs).toBe(30)
    p.core.step({ t: 'input', now, input: { t: 'open', conn: 's:c1' } })
    p.core.step({ t: 'input', now, input: ftreq('c1', 1, 'SET', 'big', 'v'.repeat(100 * HEAP_BYTES_PER_MS)) })
    p.core.takeActions()
    // past the large entry's own allowance, the guest's size still counts
    now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    expect(p.core.status().suspectAfterMs).toBeGreaterThanOrEqual(30 + 100)
    expect(p.core.status().suspectAfterMs).toBeLessThan(30 + 110)
  })
})

describe('a restoring primary busy cutting its snapshot', () => {
  it('does not count its own stall as the joining replica’s silence, and still suspects one silent after it', () => {
    const p = confirmedPrimary()
    p.core.step({ t: 'tick', now: 60 })
    p.core.step({ t: 'disk', now: 61, res: { id: diskReqs(p.core.takeActions()).find((r) => r.op === 'tas')!.id, ok: true, winner: 'a' } })
    p.core.takeActions()
    expect(p.core.status().role).toBe('live')
    p.core.beginRestore('c', 2, 100)
    p.core.step({ t: 'disk', now: 101, res: { id: diskReqs(p.core.takeActions())[0].id, ok: true } })
    p.core.takeActions()
    expect(p.core.status()).toMatchObject({ role: 'primary', restoring: true })
    // the joining replica answers every 5 ms tick (what it holds so far), so the ticks' rate is learned
    let now = 102
    for (; now < 200; now += 5) {
      p.core.step({ t: 'peer', now, msg: { t: 'snapshot-ack', gen: 2, from: 'c', part: -1 } })
      p.core.step({ t: 'tick', now })
      p.core.takeActions()
    }
    const limit = p.core.status().suspectAfterMs
    // this primary's loop was busy for ten limits (no tick, nothing sent): its first ticks after judge the joining replica by what came since
    now += 10 * limit
    expect(suspected(p.core, now)).toBe(false)
    expect(suspected(p.core, now + 5)).toBe(false)
    // and a joining replica that stays silent is suspected all the same
    expect(suspectsBetween(p.core, now + 10, now + 2 * limit)).toBe(true)
  })
})
