import { describe, expect, it } from 'vitest'
import { FailureDetector, FLOOR_HEARTBEATS, learningMs, PHI, REPORT_MS, TAIL_MARGIN, zForPhi } from '../../../agent/replica/detector.js'
import type { PeerMsg } from '../../../agent/replica/types.js'
import { makeCore, diskReqs, ftreq, peerMsgs, telemetry } from './harness.js'

/** The floor with the 20 ms heartbeats of these tests: where a peer with regular heartbeats settles. */
const FLOOR = FLOOR_HEARTBEATS * 20

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
    expect(learn).toBe(2_000)
    expect(d.learningMs()).toBe(learn)
    const r = drive(d, 0, learn / 2, () => 20)
    expect(d.timeoutMs()).toBeGreaterThan(400)
    expect(d.timeoutMs()).toBeLessThan(800)
    // it says why: still learning, and for how long so far (the window closing at 1 s waits for the next heartbeat)
    expect(d.limitBy()).toBe('learning')
    expect(d.learnedForMs()).toBeGreaterThanOrEqual(learn / 2 - 100)
    expect(d.learnedForMs()).toBeLessThanOrEqual(learn / 2)
    drive(d, r.now, learn + 500, () => 20)
    expect(d.timeoutMs()).toBe(FLOOR)
    // regular heartbeats: the floor of FLOOR_HEARTBEATS
    expect(d.limitBy()).toBe('floor')
  })

  it('suspects a dead peer within its floor once it learned regular heartbeats', () => {
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    const r = drive(d, 0, 12_000, () => 20)
    expect(r.suspected).toBe(false)
    expect(d.timeoutMs()).toBe(d.floorMs)
    expect(d.floorMs).toBe(FLOOR)
    expect(FLOOR).toBe(100)
    const took = detectionMs(d, r.now, r.lastHeard)
    expect(took).toBeGreaterThan(FLOOR)
    expect(took).toBeLessThanOrEqual(FLOOR + 5)
  })

  it('never suspects a live peer whose heartbeats are jittered, with stalls of a few heartbeats', () => {
    const rnd = prng(7)
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    // messages 0 to 25 ms apart, and one gap in 100 a stall of 70 to 85 ms
    const gap = () => (rnd() < 0.01 ? 70 + rnd() * 15 : rnd() * 25)
    const r = drive(d, 0, 10 * 60_000, gap)
    expect(r.suspected).toBe(false)
    expect(d.state().longestMs).toBeGreaterThan(70)
    expect(d.timeoutMs()).toBeGreaterThanOrEqual(1.5 * d.state().longestMs)
    expect(d.timeoutMs()).toBeLessThan(150)
  })

  it('follows a peer whose stalls grow, and comes back down once they leave the history', () => {
    const rnd = prng(11)
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    let r = drive(d, 0, 12_000, () => 20)
    expect(d.timeoutMs()).toBe(FLOOR)
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
    expect(d.timeoutMs()).toBe(FLOOR)
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
    expect(d.timeoutMs()).toBe(FLOOR)
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
    d.tick(r.now + 85)
    d.reset(r.now + 85)
    expect(d.ownPauseMs()).toBeCloseTo(80, 0)
  })

  it('starts over on reset: the ceiling until the new peer is learned', () => {
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    drive(d, 0, 12_000, () => 20)
    expect(d.timeoutMs()).toBe(FLOOR)
    d.reset(12_000)
    expect(d.timeoutMs()).toBe(800)
    expect(d.state()).toMatchObject({ windows: 0, by: 'learning', learnedForMs: 0 })
  })

  it("takes the peer's report of its own pauses for the history it has not heard yet", () => {
    // a replica restored a tenth of its learning time ago, next to a peer that has watched its own ticks for a minute
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    const r = drive(d, 0, learningMs(20) / 10, () => 20)
    expect(d.limitBy()).toBe('learning')
    expect(d.timeoutMs()).toBeGreaterThan(700)
    d.peerReported({ longestMs: 4, forMs: 60_000 })
    // its pauses make silences shorter than the floor: the floor, at once
    expect(d.timeoutMs()).toBe(FLOOR)
    expect(d.limitBy()).toBe('reported')
    expect(d.state().report).toEqual({ longestMs: 4, forMs: 60_000 })
    // a peer that paused 120 ms in its minute: TAIL_MARGIN times the silence that makes, a pause and a heartbeat
    d.peerReported({ longestMs: 120, forMs: 60_000 })
    expect(d.timeoutMs()).toBe(Math.ceil(TAIL_MARGIN * (120 + 20)))
    expect(d.limitBy()).toBe('reported')
    // a pause longer than the ceiling is held to it
    d.peerReported({ longestMs: 5_000, forMs: 60_000 })
    expect(d.timeoutMs()).toBe(800)
    expect(d.limitBy()).toBe('ceiling')
    // once it has heard the peer for its whole learning time, what it heard rules alone, as without a report
    d.peerReported({ longestMs: 120, forMs: 60_000 })
    drive(d, r.now, learningMs(20) + 1_000, () => 20)
    expect(d.timeoutMs()).toBe(FLOOR)
    expect(d.limitBy()).toBe('floor')
  })

  it('counts a report of a peer as young as itself once, not on top of what it heard', () => {
    // both started together (a fresh lab): the peer's 0.8 s and its own 0.8 s are the same 0.8 s
    const learn = learningMs(20)
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    drive(d, 0, 0.4 * learn, () => 20)
    const alone = d.timeoutMs()
    d.peerReported({ longestMs: 0, forMs: 0.4 * learn })
    expect(d.timeoutMs()).toBe(alone)
    expect(d.limitBy()).toBe('learning')
    // a peer that has run 1.6 s: the prior comes down as for 1.6 s heard, and the limit says how far each reaches
    d.peerReported({ longestMs: 0, forMs: 0.8 * learn })
    expect(d.timeoutMs()).toBe(Math.ceil(800 - (800 - FLOOR) * 0.8))
    expect(d.state()).toMatchObject({ by: 'learning', report: { forMs: 0.8 * learn } })
  })

  it('forgets the report on reset, and ignores one that is not two non-negative numbers', () => {
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    d.peerReported({ longestMs: 0, forMs: 60_000 })
    expect(d.timeoutMs()).toBe(FLOOR)
    d.reset(100)
    expect(d.timeoutMs()).toBe(800)
    expect(d.state().report).toBeNull()
    for (const bad of [
      { longestMs: -1, forMs: 60_000 },
      { longestMs: 0, forMs: NaN },
      { longestMs: Infinity, forMs: 60_000 }
    ]) {
      d.peerReported(bad)
      expect(d.timeoutMs()).toBe(800)
      expect(d.peerReport()).toBeNull()
    }
  })

  it('reports its own longest pause, and how long it has told late ticks from on-time ones, at most the span', () => {
    const d = new FailureDetector({ heartbeatMs: 20, ceilingMs: 800 }, 0)
    expect(d.ownReport(0)).toEqual({ longestMs: 0, forMs: 0 })
    // from the TICKS_TO_LEARN-th interval between ticks (every 5 ms here) on, a late tick can be told
    const r = drive(d, 0, 3_000, () => 20)
    // (the first tick only starts the count: the 9th, at 45 ms)
    expect(d.ownReport(r.now)).toEqual({ longestMs: 0, forMs: 3_000 - 45 })
    d.tick(r.now + 105)
    expect(d.ownReport(r.now + 105).longestMs).toBeCloseTo(100, 0)
    drive(d, r.now + 105, 70_000, () => 20)
    expect(d.ownReport(70_000).forMs).toBe(60_000)
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
    expect(core.status().suspectAfterMs).toBe(FLOOR)
    const lastHeard = 12_000
    let suspectedAt = -1
    for (; suspectedAt < 0 && now < 13_000; now += 5) {
      core.step({ t: 'tick', now })
      if (diskReqs(core.takeActions()).some((r) => r.op === 'tas')) suspectedAt = now
    }
    expect(suspectedAt - lastHeard).toBeGreaterThan(FLOOR)
    expect(suspectedAt - lastHeard).toBeLessThanOrEqual(FLOOR + 5)
  })
  it('tells its peer its own pauses every REPORT_MS, also while entries keep the channel busy', () => {
    const { core } = makeCore('primary', { cfg: { heartbeatMs: 20, suspectMs: 800 } })
    core.step({ t: 'peer', now: 0, msg: { t: 'ack', gen: 1, n: 1 } })
    core.takeActions()
    const sent: { now: number; msg: PeerMsg }[] = []
    for (let now = 5, seq = 1; now <= 1_000; now += 5) {
      // a request every 5 ms: its entry goes out each time, so no heartbeat is due for want of traffic (the tick comes
      // first in a turn, as Node runs timers before the reads that bring input)
      core.step({ t: 'tick', now })
      core.step({ t: 'input', now, input: ftreq('c', seq++, 'SET', 'k', String(now)) })
      for (const msg of peerMsgs(core.takeActions())) sent.push({ now, msg })
      core.step({ t: 'peer', now, msg: { t: 'ack', gen: 1, n: core.status().lastEntry } })
      core.takeActions()
    }
    const reports = sent.filter((x) => x.msg.t === 'heartbeat')
    expect(reports.map((x) => x.now)).toEqual([REPORT_MS, 2 * REPORT_MS, 3 * REPORT_MS, 4 * REPORT_MS])
    for (const x of reports) expect(x.msg).toMatchObject({ t: 'heartbeat', pauses: [0, expect.any(Number)] })
    expect(sent.filter((x) => x.msg.t === 'entries').length).toBeGreaterThan(100)
  })

  it("a backup restored next to a primary that has run for a minute judges it on the primary's report", () => {
    const cfg = { heartbeatMs: 20, suspectMs: 800 }
    const { core } = makeCore('backup', { cfg })
    const primary = makeCore('primary', { cfg })
    for (const a of primary.core.takeActions()) if (a.t === 'send-peer') core.step({ t: 'peer', now: 0, msg: a.msg })
    core.takeActions()
    let now = 0
    // a tenth of its learning time of regular heartbeats
    for (; now <= learningMs(20) / 10; now += 5) {
      if (now % 20 === 0) core.step({ t: 'peer', now, msg: { t: 'heartbeat', gen: 1, from: 'a', last: 1, releasedThrough: 0 } })
      core.step({ t: 'tick', now })
    }
    expect(core.status().suspectLimit).toMatchObject({ by: 'learning' })
    expect(core.status().suspectAfterMs).toBeGreaterThan(700)
    core.step({ t: 'peer', now, msg: { t: 'heartbeat', gen: 1, from: 'a', last: 1, releasedThrough: 0, pauses: [70, 60_000] } })
    expect(core.status().suspectAfterMs).toBe(Math.ceil(TAIL_MARGIN * (70 + 20)))
    expect(core.status().suspectLimit).toMatchObject({ by: 'reported', report: { longestMs: 70, forMs: 60_000 } })
    // a report from a replica that is not its peer is not taken
    const other = makeCore('backup', { cfg }).core
    for (const a of primary.core.takeActions()) if (a.t === 'send-peer') other.step({ t: 'peer', now: 0, msg: a.msg })
    other.step({ t: 'peer', now: 20, msg: { t: 'heartbeat', gen: 1, from: 'c', last: 1, releasedThrough: 0, pauses: [0, 60_000] } })
    expect(other.status().suspectLimit).toMatchObject({ by: 'learning' })
  })

  it('drops a heartbeat whose report is not two non-negative numbers, and says why', () => {
    const { core } = makeCore('backup', { cfg: { heartbeatMs: 20, suspectMs: 800 } })
    const bad = { t: 'heartbeat', gen: 1, from: 'a', last: 0, releasedThrough: 0, pauses: [5, -1] } as unknown as PeerMsg
    core.step({ t: 'peer', now: 20, msg: bad })
    expect(telemetry(core.takeActions())).toContainEqual(
      expect.objectContaining({ k: 'dropped', why: expect.stringMatching(/^heartbeat: pauses is not two non-negative numbers/) })
    )
  })
})
