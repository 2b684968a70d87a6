import { describe, expect, it } from 'vitest'
import { FailureDetector, learningMs, PHI, zForPhi } from '../../../agent/replica/detector.js'
import { makeCore, diskReqs } from './harness.js'

/** A seeded stream of numbers in [0, 1): the tests must not depend on Math.random. */
function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

/**
 * Drives a detector as the edge does: a tick every `tickMs`, a message whenever `nextGap` says the
 * peer sends one. Returns the time reached and whether the peer was ever suspected on a judged tick.
 */
function drive(d: FailureDetector, from: number, until: number, nextGap: () => number, tickMs = 5): { now: number; lastHeard: number; suspected: boolean } {
  let lastHeard = from
  let nextMsg = from + nextGap()
  let suspected = false
  for (let now = from + tickMs; now <= until; now += tickMs) {
    while (nextMsg <= now) {
      d.heard(nextMsg)
      lastHeard = nextMsg
      nextMsg += nextGap()
    }
    if (d.tick(now) && d.suspects(now, lastHeard)) suspected = true
  }
  return { now: until, lastHeard, suspected }
}

/** How long after the peer's last message a judged tick first suspects it, the peer now silent. */
function detectionMs(d: FailureDetector, now: number, lastHeard: number, tickMs = 5): number {
  for (let t = now + tickMs; t < now + 60_000; t += tickMs) if (d.tick(t) && d.suspects(t, lastHeard)) return t - lastHeard
  return Infinity
}

describe('the failure detector', () => {
  it('places its threshold where the normal upper tail is 10^-PHI', () => {
    // 10^-8 of a standard normal lies beyond 5.612
    expect(zForPhi(PHI)).toBeCloseTo(5.612, 2)
    expect(zForPhi(3)).toBeCloseTo(3.09, 2)
  })

  it('starts at the ceiling and comes down to what it learned over its learning time, not at once', () => {
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    expect(d.timeoutMs()).toBe(800)
    expect(d.limitBy()).toBe('learning')
    const learn = learningMs(20)
    expect(learn).toBe(10_000)
    expect(d.learningMs()).toBe(learn)
    const r = drive(d, 0, learn / 2, () => 20)
    expect(d.timeoutMs()).toBeGreaterThan(400)
    expect(d.timeoutMs()).toBeLessThan(800)
    // it says why: still learning, and for how long so far (the window closing at 5 s waits for the next heartbeat)
    expect(d.limitBy()).toBe('learning')
    expect(d.learnedForMs()).toBeGreaterThanOrEqual(learn / 2 - 100)
    expect(d.learnedForMs()).toBeLessThanOrEqual(learn / 2)
    drive(d, r.now, learn + 500, () => 20)
    expect(d.timeoutMs()).toBe(60)
    // regular heartbeats: the floor of three
    expect(d.limitBy()).toBe('floor')
  })

  it('suspects a dead peer within its floor once it learned regular heartbeats', () => {
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    const r = drive(d, 0, 12_000, () => 20)
    expect(r.suspected).toBe(false)
    expect(d.timeoutMs()).toBe(d.floorMs)
    expect(d.floorMs).toBe(60)
    const took = detectionMs(d, r.now, r.lastHeard)
    expect(took).toBeGreaterThan(60)
    expect(took).toBeLessThanOrEqual(60 + 5)
  })

  it('never suspects a live peer whose heartbeats are jittered, with stalls of a few heartbeats', () => {
    const rnd = prng(7)
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    // messages 0 to 25 ms apart, and one gap in 100 a stall of 40 to 55 ms
    const gap = () => (rnd() < 0.01 ? 40 + rnd() * 15 : rnd() * 25)
    const r = drive(d, 0, 10 * 60_000, gap)
    expect(r.suspected).toBe(false)
    expect(d.state().longestMs).toBeGreaterThan(40)
    expect(d.timeoutMs()).toBeGreaterThanOrEqual(1.5 * d.state().longestMs)
    expect(d.timeoutMs()).toBeLessThan(100)
  })

  it('follows a peer whose stalls grow, and comes back down once they leave the history', () => {
    const rnd = prng(11)
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    let r = drive(d, 0, 12_000, () => 20)
    expect(d.timeoutMs()).toBe(60)
    // a heap that grows: every 50th gap a stall, growing from 40 to 300 ms over two minutes
    let now = r.now
    const start = now
    const stall = () => 40 + (260 * (now - start)) / 120_000
    r = drive(d, r.now, r.now + 120_000, () => {
      const g = rnd() < 0.02 ? stall() : 20
      now += g
      return g
    })
    expect(r.suspected).toBe(false)
    const slow = d.timeoutMs()
    expect(slow).toBeGreaterThanOrEqual(1.5 * 280)
    expect(d.state()).toMatchObject({ by: 'history', learnedForMs: 60_000 })
    // the stalls stop: after a minute and more of regular heartbeats they have aged out
    r = drive(d, r.now, r.now + 70_000, () => 20)
    expect(r.suspected).toBe(false)
    expect(d.timeoutMs()).toBe(60)
  })

  it('never goes above its ceiling, however slow the peer has been', () => {
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 300 }, 0)
    const r = drive(d, 0, 20_000, () => 250)
    expect(d.timeoutMs()).toBe(300)
    expect(d.limitBy()).toBe('ceiling')
    expect(detectionMs(d, r.now, r.lastHeard)).toBeLessThanOrEqual(305)
  })

  it('holds its judgement on a tick that came late, and does not learn the gap across its own pause', () => {
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    const r = drive(d, 0, 12_000, () => 20)
    expect(d.timeoutMs()).toBe(60)
    // this replica's event loop stalls 200 ms: the first tick after it sees a long silence, but the
    // peer's messages wait unread behind it
    const late = r.now + 200
    expect(d.tick(late)).toBe(false)
    expect(d.state().localPauses).toBe(1)
    d.heard(late + 1)
    // the 200 ms gap was ours, not the peer's: nothing learned from it
    const after = drive(d, late + 1, late + 1001, () => 20)
    expect(after.suspected).toBe(false)
    expect(d.state().longestMs).toBeLessThan(60)
    // and a second late tick in a row is judged: a starved replica still suspects a dead peer
    expect(d.tick(after.now + 200)).toBe(false)
    expect(d.tick(after.now + 400)).toBe(true)
  })

  it('remembers its own longest pause for the history’s span, the longest first, and not a stop beyond the ceiling', () => {
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    let r = drive(d, 0, 2_000, () => 20)
    expect(d.ownPauseMs()).toBe(0)
    // three pauses of its own event loop (ticks every 5 ms): 120 ms, then 60 ms, then a stop of 5 s
    expect(d.tick(r.now + 125)).toBe(false)
    r = drive(d, r.now + 125, r.now + 10_000, () => 20)
    d.tick(r.now + 65)
    expect(d.state().ownPauseMs).toBeCloseTo(120, 0)
    r = drive(d, r.now + 65, r.now + 10_000, () => 20)
    d.tick(r.now + 5_005)
    expect(d.ownPauseMs()).toBeCloseTo(120, 0)
    // the 120 ms pause leaves the span (600 windows of 5 heartbeats: 60 s) before the 60 ms one
    const pausedAt = r.now + 5_005
    const at120 = 2_000 + 125
    r = drive(d, pausedAt, at120 + 60_000 + 5, () => 20)
    expect(d.ownPauseMs()).toBeCloseTo(60, 0)
    r = drive(d, r.now, at120 + 10_000 + 65 + 60_000 + 5, () => 20)
    expect(d.ownPauseMs()).toBe(0)
    // reset (a new peer) forgets the peer's history, not this host's own pauses
    d.tick(r.now + 45)
    d.reset(r.now + 45)
    expect(d.ownPauseMs()).toBeCloseTo(40, 0)
  })

  it('starts over on reset: the ceiling until the new peer is learned', () => {
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    drive(d, 0, 12_000, () => 20)
    expect(d.timeoutMs()).toBe(60)
    d.reset(12_000)
    expect(d.timeoutMs()).toBe(800)
    expect(d.state()).toMatchObject({ windows: 0, by: 'learning', learnedForMs: 0 })
  })

  it('refuses a ceiling that does not exceed the heartbeat interval', () => {
    expect(() => new FailureDetector({ heartbeatMs: 20, ceilingMs: 20 }, 0)).toThrow(/ceiling \(20 ms\) must exceed the heartbeat interval \(20 ms\)/)
  })
})

describe('the replica core with its detector', () => {
  it('a backup that learned its primary suspects it after the floor, not after suspectMs', () => {
    const { core } = makeCore('backup', { cfg: { heartbeatMs: 20, suspectMs: 800 } })
    // the boot entry: the backup now holds a guest worth going live with
    const primary = makeCore('primary', { cfg: { heartbeatMs: 20, suspectMs: 800 } })
    const boot = primary.core.takeActions()
    for (const a of boot) if (a.t === 'send-peer') core.step({ t: 'peer', now: 0, msg: a.msg })
    core.takeActions()
    let now = 0
    for (; now <= 12_000; now += 5) {
      if (now % 20 === 0) core.step({ t: 'peer', now, msg: { t: 'heartbeat', gen: 1, from: 'a', last: 1, releasedThrough: 0 } })
      core.step({ t: 'tick', now })
    }
    expect(diskReqs(core.takeActions())).toEqual([])
    expect(core.status().suspectAfterMs).toBe(60)
    const lastHeard = 12_000
    let suspectedAt = -1
    for (; suspectedAt < 0 && now < 13_000; now += 5) {
      core.step({ t: 'tick', now })
      if (diskReqs(core.takeActions()).some((r) => r.op === 'tas')) suspectedAt = now
    }
    expect(suspectedAt - lastHeard).toBeGreaterThan(60)
    expect(suspectedAt - lastHeard).toBeLessThanOrEqual(65)
  })
})
