// A replica that has lately logged or received a large entry allows its peer a longer silence: the peer has that
// much to run, encode, decode or replay, beyond the stalls the failure detector learned while values were small.
// So does one whose guest grew lately (its collections grow faster than the detector learns them), and one whose own
// event loop stalled lately allows its peer as long: both hold the same guest and run the same inputs.
import { describe, expect, it } from 'vitest'
import { HEAP_BYTES_PER_MS, WORK_BYTES_PER_MS, WORK_WINDOW_MS } from '../../../agent/replica/core.js'
import type { ReplicaCore } from '../../../agent/replica/core.js'
import { FLOOR_HEARTBEATS } from '../../../agent/replica/detector.js'
import type { Telemetry } from '../../../agent/replica/types.js'
import { confirmedPrimary, deliver, diskReqs, ftreq, makeCore, telemetry } from './harness.js'

const cfg = { heartbeatMs: 10, suspectMs: 2000 }
const BIG = 256 * 1024
/** the detector's floor with these heartbeats: where a quiet peer's limit settles */
const FLOOR = FLOOR_HEARTBEATS * cfg.heartbeatMs

/** The peer's heartbeats every 10 ms for 6 s: the detector comes down from the ceiling to its floor (FLOOR). */
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
    expect(learned).toBe(FLOOR)
    p.core.step({ t: 'input', now, input: { t: 'open', conn: 's:c1' } })
    p.core.step({ t: 'input', now, input: ftreq('c1', 1, 'SET', 'big', 'v'.repeat(BIG)) })
    p.core.takeActions()
    const allowance = Math.floor(BIG / WORK_BYTES_PER_MS)
    expect(p.core.status().suspectAfterMs).toBeGreaterThanOrEqual(learned + allowance)
    // the large entry's allowance, and the guest's growth by it (HEAP_BYTES_PER_MS: a few ms more)
    expect(p.core.status().suspectLimit).toMatchObject({ by: 'large-entry', detectorMs: FLOOR })
    expect(p.core.status().suspectLimit.allowanceMs).toBeGreaterThanOrEqual(allowance)
    expect(p.core.status().suspectLimit.allowanceMs).toBeLessThan(allowance + BIG / HEAP_BYTES_PER_MS + 1)
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
    expect(p.core.status().suspectAfterMs).toBe(FLOOR)
    p.core.step({ t: 'input', now, input: ftreq('c1', 2, 'SET', 'big', 'v'.repeat(BIG)) })
    p.core.takeActions()
    expect(p.core.status().suspectAfterMs).toBeGreaterThan(FLOOR + 100)
    // the backup stays in touch (acking what it has) past the window: the allowance is gone
    const later = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    expect(later - now).toBeGreaterThan(WORK_WINDOW_MS / 2)
    learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, later)
    expect(p.core.status().suspectAfterMs).toBeLessThan(FLOOR + 100)
  })

  it('a backup that received a 256 KiB entry waits for its primary that much longer', () => {
    const p = confirmedPrimary({ cfg })
    const b = makeCore('backup', { cfg })
    b.core.takeActions()
    deliver(p.start, b.core, 0) // the boot entry: the backup holds state and may judge
    const now = learnQuietPeer(b.core, 'a', () => p.core.status().lastEntry)
    expect(b.core.status().suspectAfterMs).toBe(FLOOR)
    p.core.step({ t: 'input', now, input: { t: 'open', conn: 's:c1' } })
    p.core.step({ t: 'input', now, input: ftreq('c1', 1, 'SET', 'big', 'v'.repeat(BIG)) })
    deliver(p.core.takeActions(), b.core, now)
    const limit = b.core.status().suspectAfterMs
    expect(limit).toBeGreaterThanOrEqual(FLOOR + Math.floor(BIG / WORK_BYTES_PER_MS))
    expect(suspectsBetween(b.core, now + 5, now + limit)).toBe(false)
    expect(suspectsBetween(b.core, now + limit + 5, now + limit + 20)).toBe(true)
  })
})

describe('the allowance of a growing guest', () => {
  it('a guest grown within the detector’s history allows its peer a garbage collection’s worth more silence, and a guest that kept its size none', () => {
    const p = confirmedPrimary({ cfg })
    let now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry)
    expect(p.core.status().suspectAfterMs).toBe(FLOOR)
    p.core.step({ t: 'input', now, input: { t: 'open', conn: 's:c1' } })
    p.core.step({ t: 'input', now, input: ftreq('c1', 1, 'SET', 'big', 'v'.repeat(100 * HEAP_BYTES_PER_MS)) })
    p.core.takeActions()
    // past the large entry's own allowance (WORK_WINDOW_MS), the guest's growth still counts
    now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    expect(p.core.status().suspectAfterMs).toBeGreaterThanOrEqual(FLOOR + 100)
    expect(p.core.status().suspectAfterMs).toBeLessThan(FLOOR + 110)
    expect(p.core.status().suspectLimit.by).toBe('guest-growth')
    // the history's span (30 s with 10 ms heartbeats) after the growth, the guest is as large but allows nothing
    for (let i = 0; i < 4; i++) now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    expect(p.core.status().suspectAfterMs).toBe(FLOOR)
    expect(p.core.status().suspectLimit.by).toBe('floor')
  })
})

describe('what a small allowance leaves said', () => {
  it('a guest grown by less than a heartbeat’s allowance adds it, but the limit still says why the detector waits', () => {
    const p = confirmedPrimary({ cfg })
    // past the history's span (30 s with 10 ms heartbeats): the guest's first growth allows nothing any more
    let now = 0
    for (let i = 0; i < 6; i++) now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    expect(p.core.status().suspectLimit).toMatchObject({ ms: FLOOR, allowanceMs: 0, by: 'floor' })
    p.core.step({ t: 'input', now, input: { t: 'open', conn: 's:c1' } })
    p.core.step({ t: 'input', now, input: ftreq('c1', 1, 'SET', 'k', 'v'.repeat(5 * HEAP_BYTES_PER_MS)) })
    p.core.takeActions()
    // past the entry's own allowance (WORK_WINDOW_MS)
    learnQuietPeer(
      p.core,
      'b',
      () => p.core.status().lastEntry,
      learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    )
    const limit = p.core.status().suspectLimit
    expect(limit.allowanceMs).toBeGreaterThanOrEqual(5)
    expect(limit.allowanceMs).toBeLessThan(cfg.heartbeatMs)
    expect(limit.ms).toBe(FLOOR + limit.allowanceMs)
    expect(limit.by).toBe('floor')
  })
})

describe('the allowance of this replica’s own pauses', () => {
  it('a replica whose own loop stalled allows its peer a silence of that stall and half again, for a minute', () => {
    const p = confirmedPrimary({ cfg })
    let now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry)
    expect(p.core.status().suspectAfterMs).toBe(FLOOR)
    // its own event loop stops for 100 ms (its ticks come every 10 ms, the last at now - 5): a collection of a large guest, say
    now += 105
    p.core.step({ t: 'tick', now })
    p.core.takeActions()
    expect(p.core.status().suspectAfterMs).toBe(150)
    expect(p.core.status().suspectLimit).toMatchObject({ ms: 150, by: 'own-pause', detectorMs: FLOOR })
    expect(p.core.status().suspectLimit.ownPauseMs).toBeCloseTo(100, 0)
    // remembered for the span of the detector's history (600 windows of 5 heartbeats: 30 s at 10 ms), then gone
    now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    expect(p.core.status().suspectAfterMs).toBe(150)
    for (let i = 0; i < 5; i++) now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry, now)
    expect(p.core.status().suspectAfterMs).toBe(FLOOR)
  })

  it('both replicas stopped by the same collection: the one that resumes first does not suspect the other', () => {
    const p = confirmedPrimary({ cfg })
    let now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry)
    const heardAt = now - 10
    // both loops stop 300 ms; the backup resumes 60 ms after the primary, and its heartbeats with it
    now += 300
    expect(suspected(p.core, now)).toBe(false)
    expect(suspectsBetween(p.core, now + 5, heardAt + 300 + 60)).toBe(false)
    p.core.step({ t: 'peer', now: heardAt + 370, msg: { t: 'heartbeat', gen: 1, from: 'b', last: p.core.status().lastEntry, releasedThrough: 0 } })
    expect(suspectsBetween(p.core, heardAt + 375, heardAt + 600)).toBe(false)
    // a peer that stays silent after that is still suspected, within its learned limit plus the allowance
    expect(suspectsBetween(p.core, heardAt + 605, heardAt + 370 + 450 + 10)).toBe(true)
  })

  it('a stop longer than the ceiling (SIGSTOP, a suspended VM) is not a pause of the guest’s, and allows nothing', () => {
    const p = confirmedPrimary({ cfg })
    let now = learnQuietPeer(p.core, 'b', () => p.core.status().lastEntry)
    now += 2500
    p.core.step({ t: 'tick', now })
    p.core.takeActions()
    p.core.step({ t: 'peer', now: now + 1, msg: { t: 'heartbeat', gen: 1, from: 'b', last: p.core.status().lastEntry, releasedThrough: 0 } })
    p.core.step({ t: 'tick', now: now + 5 })
    p.core.takeActions()
    expect(p.core.status().suspectAfterMs).toBe(FLOOR)
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

describe('what set the silence limit, told with a suspicion', () => {
  it('a fresh pair: the detector is learning, and the suspicion says how far it has come', () => {
    const p = confirmedPrimary({ cfg })
    // 0.4 s of regular heartbeats: 8 of the 20 windows a fresh detector takes to come down from the ceiling
    let now = 0
    for (; now < 400; now += 10) {
      p.core.step({ t: 'peer', now, msg: { t: 'heartbeat', gen: 1, from: 'b', last: p.core.status().lastEntry, releasedThrough: 0 } })
      p.core.step({ t: 'tick', now: now + 5 })
      p.core.takeActions()
    }
    const limit = p.core.status().suspectLimit
    // 7 windows of 50 ms learned (the 8th closes with the next heartbeat)
    expect(limit).toMatchObject({ by: 'learning', ceilingMs: 2000, learnedForMs: 350, learningMs: 1000 })
    expect(limit.ms).toBe(p.core.status().suspectAfterMs)
    expect(limit.ms).toBeGreaterThan(1000)
    // the backup falls silent: the suspicion carries the limit it passed, and why
    let said: Telemetry | undefined
    for (let t = now; t <= now + 2000 && !said; t += 5) {
      p.core.step({ t: 'tick', now: t })
      said = telemetry(p.core.takeActions()).find((x) => x.k === 'suspect')
    }
    expect(said).toMatchObject({ k: 'suspect', peer: 'b', timeoutMs: limit.ms, limit: { ms: limit.ms, by: 'learning' } })
    expect(said!.k === 'suspect' && said!.silentMs).toBeGreaterThan(limit.ms)
  })

  it('a detector whose peer was silent as long as the ceiling while alive: the ceiling', () => {
    const p = confirmedPrimary({ cfg: { heartbeatMs: 10, suspectMs: 300 } })
    // heartbeats every 10 ms, but in every window one silence of 250 ms (a peer that stalls often): 1.5 × 250 > 300
    let now = 0
    for (let w = 0; w < 120; w++) {
      for (let i = 0; i < 5; i++, now += 10) {
        p.core.step({ t: 'peer', now, msg: { t: 'heartbeat', gen: 1, from: 'b', last: p.core.status().lastEntry, releasedThrough: 0 } })
        p.core.step({ t: 'tick', now: now + 5 })
        p.core.takeActions()
      }
      now += 240
      for (let t = now - 235; t < now; t += 5) p.core.step({ t: 'tick', now: t })
      p.core.takeActions()
    }
    expect(p.core.status().suspectLimit).toMatchObject({ ms: 300, by: 'ceiling' })
  })
})
