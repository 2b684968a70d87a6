// The failure detector of a replica: how long a silence of the peer may last before it is
// suspect. Pure, like the core that owns it (no clock, no timer: `now` comes with every call),
// so the simulator runs it as the hosts do.
//
// In the spirit of phi accrual (Hayashibara et al., 2004; Akka's and Cassandra's detectors): it
// learns how silent the peer is while alive, and suspects once the current silence is improbable
// given that history. What it learns is the longest silence in each window of a few heartbeats,
// not every gap between messages: under load the peer sends many messages a millisecond apart, and
// those say nothing about the stalls (a GC pause, a large value being encoded, a busy event loop)
// that make a live peer look dead. The per-window longest silences are fitted with a normal
// distribution; the timeout is where its upper tail falls below 10^-PHI, and never less than
// TAIL_MARGIN times the longest silence still in the history, because stalls are heavy-tailed and a
// normal fit calls a repeat of last minute's GC pause impossible. The result is kept between a floor
// (a few heartbeats: never suspect a peer for missing one) and a ceiling (the configured suspectMs:
// a peer that stalls longer is treated as dead, however often it did so before). A fresh detector
// starts at the ceiling and comes down over PRIOR_WINDOWS: a short history has not met every stall.
//
// Our own pauses are not the peer's: when the ticks that drive us arrive late, the event loop was
// blocked and the peer's messages may be waiting unread behind the tick. The detector then holds its
// judgement for that tick and does not learn the gap that spans the pause.
//
// Our own pauses do say what the peer's may be, though: both replicas hold the same guest and run the
// same inputs, so a garbage collection that stopped this replica for 200 ms will stop the peer for
// about as long, often at the same moment, before the peer's history has shown it (a guest that grows
// fast grows its pauses faster than a minute of history learns them). The detector keeps the longest
// of its own pauses of the last HISTORY_WINDOWS windows (ownPauseMs); the core lets the peer's silence
// last TAIL_MARGIN times that (core.ts, silenceLimit). A pause longer than the ceiling is not counted: that host was
// stopped (SIGSTOP, a suspended VM), not collecting garbage, and it says nothing of the peer.
//
// The peer keeps the same record of its own pauses, and says what it holds (PauseReport, with a
// heartbeat every REPORT_MS): its longest pause of its last minute, and how long it has watched.
// A fresh detector takes that report for the part of the peer's history it has not seen itself. A
// replica restored next to a peer that has run for a minute need not spend its learning time at a limit
// near the ceiling: the peer's pauses of that minute are known, and TAIL_MARGIN times the silence they make
// (the pause and a heartbeat interval) stands in for the history it would have learned. The report
// says nothing of the network between the two, so it only stands in while the detector's own
// history is shorter than learningMs(); then the history alone rules, as before. Both replicas
// started together (a fresh lab) report no more than each has seen: the ramp is as before.

import { WindowExtreme } from './window-extreme.js'

/** Suspect when the upper tail of the learned silence distribution is below 10^-PHI. */
export const PHI = 8
/** The timeout is at least this many times the longest silence of a live peer still in the history. */
export const TAIL_MARGIN = 1.5
/**
 * The floor, in heartbeats: a peer is never suspected for fewer missed heartbeats than this. It was 3 (60 ms with the
 * default 20 ms heartbeats); a pair that had learned only quiet heartbeats sat at that floor, and a host shared with a
 * browser, SSH sessions and the console (the local lab's usual home, and the testbed's) made a live replica silent for
 * 60-100 ms now and then: false failovers in the console's end-to-end test, one at 97 ms against 96. 5 heartbeats cost
 * a failover about 40 ms more (docs/performance.md).
 */
export const FLOOR_HEARTBEATS = 5
/** Length of one learning window, in heartbeats. */
export const WINDOW_HEARTBEATS = 5
/** Windows kept: with 20 ms heartbeats, one minute of history. */
export const HISTORY_WINDOWS = 600
/** Ticks seen before a late one can be told from the normal rate. */
export const TICKS_TO_LEARN = 8
/**
 * Windows over which a fresh detector comes down from the ceiling (2 s with 20 ms heartbeats): it
 * trusts a short history only so far. A new peer that has been quiet for a second has not yet met
 * its first large value or GC pause; with the timeout already at the floor that first stall would
 * be a false failover. The saturated benchmark showed exactly that, seconds after each restore,
 * when a fresh history was all the detector had; it was 100 windows (10 s) then. Since, the
 * stalls that history had not met are allowed for by other means: this replica's own pauses
 * (ownPauseMs, the same guest pausing alike), the work of a large entry or a growing guest
 * (core.ts, silenceLimit) and the peer's report. With them, 2 s held in saturated runs that cut
 * and restored the backup every 8 s at load averages 8 and 14 (docs/performance.md): no
 * suspicion of a live peer, as with 10 s, and a power cut a few seconds after a lab starts is
 * found after a few heartbeats instead of half the ceiling.
 */
export const PRIOR_WINDOWS = 20

/** The span of the history a detector learns from: one minute with 20 ms heartbeats. */
export const historyMs = (heartbeatMs: number): number => HISTORY_WINDOWS * WINDOW_HEARTBEATS * heartbeatMs

/** How long a fresh detector takes to come down from the ceiling to what it learned. */
export const learningMs = (heartbeatMs: number): number => PRIOR_WINDOWS * WINDOW_HEARTBEATS * heartbeatMs

/**
 * What set the detector's timeout: still coming down from the ceiling over PRIOR_WINDOWS ('learning'), the history of
 * the peer's silences ('history'), the peer's own report of its pauses standing in for a history still short
 * ('reported'), the floor of FLOOR_HEARTBEATS heartbeats, or the ceiling, which caps a history of silences as long as it.
 */
export type DetectorLimitBy = 'learning' | 'history' | 'reported' | 'floor' | 'ceiling'

/**
 * What a replica says of its own pauses, with a heartbeat (see above): the longest pause of its event loop within the
 * history's span (one minute with 20 ms heartbeats), and how long it has watched its own ticks (at most that span).
 */
export interface PauseReport {
  longestMs: number
  forMs: number
}

/** How often a replica tells its peer its PauseReport, however busy the logging channel is. */
export const REPORT_MS = 250

export interface DetectorBounds {
  /** the interval at which the peer sends at least one message */
  heartbeatMs: number
  /** the longest timeout: the configured suspectMs */
  ceilingMs: number
}

export interface DetectorState {
  /** the silence after which the peer is suspect, as of the last learned window */
  timeoutMs: number
  floorMs: number
  ceilingMs: number
  /** windows learned (at most HISTORY_WINDOWS) */
  windows: number
  /** mean and standard deviation of the windows' longest silences */
  meanMs: number
  stdMs: number
  /** the longest silence of a live peer in the history */
  longestMs: number
  /** ticks on which judgement was held because this replica itself had been paused */
  localPauses: number
  /** the longest pause of this replica's own event loop in the last minute (at most the ceiling; see above) */
  ownPauseMs: number
  /** what set timeoutMs */
  by: DetectorLimitBy
  /** the peer's last report of its own pauses while it stands in for a short history (null: none, or no longer) */
  report: PauseReport | null
  /** how long the history learned so far spans (windows × window length), and how long it takes to be trusted alone */
  learnedForMs: number
  learningMs: number
}

/** z such that the normal upper tail beyond z is 10^-phi (bisection on the complementary error function). */
export function zForPhi(phi: number): number {
  const tail = (z: number) => 0.5 * erfc(z / Math.SQRT2)
  let lo = 0
  let hi = 40
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2
    if (tail(mid) > 10 ** -phi) lo = mid
    else hi = mid
  }
  return hi
}

/** Complementary error function (Numerical Recipes' erfcc: fractional error below 1.2e-7 everywhere). */
function erfc(x: number): number {
  const z = Math.abs(x)
  const t = 1 / (1 + 0.5 * z)
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    )
  return x >= 0 ? r : 2 - r
}

const Z = zForPhi(PHI)

export class FailureDetector {
  readonly floorMs: number
  readonly ceilingMs: number
  private readonly windowMs: number
  /** a jitter the normal fit always allows for, however regular the peer has been */
  private readonly minStdMs: number
  private readonly heartbeatMs: number
  private readonly historySpanMs: number
  private readonly maxima = new Float64Array(HISTORY_WINDOWS)
  private count = 0
  private next = 0
  private lastArrival: number
  private windowStart: number
  private windowMax = 0
  private lastTick: number | null = null
  /** the shortest recent interval between ticks: what "on time" means for this replica's ticks */
  private tickPeriod = Infinity
  /** a local pause happened since the last arrival: the gap that ends at the next arrival is not the peer's */
  private pausedSinceArrival = false
  private timeout: number
  private by: DetectorLimitBy = 'learning'
  private stats = { meanMs: 0, stdMs: 0, longestMs: 0 }
  private localPauses = 0
  private ticks = 0
  /** the previous tick's judgement was held */
  private held = false
  /** this replica's own pauses within the span of the peer's history (one minute with 20 ms heartbeats), for their longest */
  private readonly ownPauses: WindowExtreme
  /** when this replica began to tell its own late ticks from on-time ones (null: not yet): what its report covers */
  private watchingSince: number | null = null
  /** the peer's last report of its own pauses (see above), cleared with the history on a reset */
  private report: PauseReport | null = null

  constructor(bounds: DetectorBounds, now: number) {
    if (!(bounds.heartbeatMs > 0) || !(bounds.ceilingMs > bounds.heartbeatMs))
      throw new Error(`FailureDetector: the ceiling (${bounds.ceilingMs} ms) must exceed the heartbeat interval (${bounds.heartbeatMs} ms)`)
    this.ceilingMs = bounds.ceilingMs
    this.floorMs = Math.min(bounds.ceilingMs, FLOOR_HEARTBEATS * bounds.heartbeatMs)
    this.windowMs = WINDOW_HEARTBEATS * bounds.heartbeatMs
    this.minStdMs = bounds.heartbeatMs / 4
    this.heartbeatMs = bounds.heartbeatMs
    this.historySpanMs = historyMs(bounds.heartbeatMs)
    this.ownPauses = new WindowExtreme(this.historySpanMs, 'max')
    this.lastArrival = now
    this.windowStart = now
    this.timeout = this.ceilingMs
  }

  /** Start over (a new peer or a new generation): until it has learned again, the ceiling applies. */
  reset(now: number): void {
    this.count = 0
    this.next = 0
    this.lastArrival = now
    this.windowStart = now
    this.windowMax = 0
    this.pausedSinceArrival = false
    this.timeout = this.ceilingMs
    this.by = 'learning'
    this.stats = { meanMs: 0, stdMs: 0, longestMs: 0 }
    this.report = null
  }

  /**
   * The peer's report of its own pauses (see above) came. A report that is not two non-negative numbers is ignored:
   * the detector then learns as if none had come.
   */
  peerReported(report: PauseReport): void {
    const { longestMs, forMs } = report
    if (!Number.isFinite(longestMs) || !Number.isFinite(forMs) || longestMs < 0 || forMs < 0) return
    this.report = { longestMs: Math.min(longestMs, this.ceilingMs), forMs: Math.min(forMs, this.historySpanMs) }
    this.fit()
  }

  /** What this replica tells its peer of its own pauses, as of its last tick. */
  ownReport(now: number): PauseReport {
    return { longestMs: this.ownPauseMs(), forMs: this.watchingSince === null ? 0 : Math.min(now - this.watchingSince, this.historySpanMs) }
  }

  /** A message from the peer arrived. */
  heard(now: number): void {
    const gap = now - this.lastArrival
    this.lastArrival = now
    if (this.pausedSinceArrival) this.pausedSinceArrival = false
    else if (gap > this.windowMax) this.windowMax = gap
    if (now - this.windowStart >= this.windowMs) {
      this.learn(this.windowMax)
      this.windowStart = now
      this.windowMax = 0
    }
  }

  /**
   * A tick of this replica's timer. Answers whether the peer may be judged on it: not when the
   * tick came late (this replica was paused, and what the peer sent meanwhile may be unread).
   */
  tick(now: number): boolean {
    const last = this.lastTick
    this.lastTick = now
    if (last === null) return true
    const interval = now - last
    // the shortest of recent intervals, slowly forgotten, so a change of the tick rate is followed
    this.tickPeriod = Math.min(this.tickPeriod * 1.01, Math.max(interval, 0.1))
    this.ticks++
    if (this.ticks === TICKS_TO_LEARN) this.watchingSince = now
    // Judgement is held for one late tick only: the next one comes after the loop has read what
    // waited, and a replica whose every tick is late (starved, or driven in big steps by a test)
    // must still judge. Until the tick rate is known, no tick counts as late.
    const late = this.ticks > TICKS_TO_LEARN && interval > Math.max(4 * this.tickPeriod, this.floorMs / 2)
    // a stop longer than the ceiling is not a pause of the guest's (see above)
    if (late && interval - this.tickPeriod <= this.ceilingMs) this.ownPauses.add(now, interval - this.tickPeriod)
    else this.ownPauses.forget(now)
    if (late && !this.held) {
      this.held = true
      this.localPauses++
      this.pausedSinceArrival = true
      return false
    }
    this.held = false
    return true
  }

  /** The silence after which the peer is suspect. */
  timeoutMs(): number {
    return this.timeout
  }

  /** What set the timeout (see DetectorLimitBy). */
  limitBy(): DetectorLimitBy {
    return this.by
  }

  /** How long the history learned so far spans: the prior weighs less as this nears learningMs(). */
  learnedForMs(): number {
    return this.count * this.windowMs
  }

  /** How long a fresh detector takes to come down from the ceiling to what it learned. */
  learningMs(): number {
    return PRIOR_WINDOWS * this.windowMs
  }

  /** The longest pause of this replica itself within the history's span, as of its last tick (0: none). */
  ownPauseMs(): number {
    return this.ownPauses.value() ?? 0
  }

  /** Is the peer, silent since `lastHeard`, suspect now? */
  suspects(now: number, lastHeard: number): boolean {
    return now - lastHeard > this.timeout
  }

  state(): DetectorState {
    return {
      timeoutMs: this.timeout,
      floorMs: this.floorMs,
      ceilingMs: this.ceilingMs,
      windows: this.count,
      ...this.stats,
      localPauses: this.localPauses,
      ownPauseMs: this.ownPauseMs(),
      by: this.by,
      learnedForMs: this.learnedForMs(),
      learningMs: this.learningMs(),
      report: this.peerReport()
    }
  }

  /** The peer's last report of its own pauses, while it stands in for a history shorter than learningMs() (see above). */
  peerReport(): PauseReport | null {
    return this.count < PRIOR_WINDOWS ? this.report : null
  }

  private learn(longestSilence: number): void {
    this.maxima[this.next] = longestSilence
    this.next = (this.next + 1) % HISTORY_WINDOWS
    if (this.count < HISTORY_WINDOWS) this.count++
    let sum = 0
    let longest = 0
    for (let i = 0; i < this.count; i++) {
      sum += this.maxima[i]
      if (this.maxima[i] > longest) longest = this.maxima[i]
    }
    const mean = sum / this.count
    let sq = 0
    for (let i = 0; i < this.count; i++) sq += (this.maxima[i] - mean) ** 2
    const std = Math.sqrt(sq / this.count)
    this.stats = { meanMs: mean, stdMs: std, longestMs: longest }
    this.fit()
  }

  /** The timeout from the history learned, the prior and the peer's report (see above), and what set it. */
  private fit(): void {
    const { meanMs, stdMs, longestMs } = this.stats
    const learned = this.count === 0 ? 0 : Math.ceil(Math.max(meanMs + Z * Math.max(stdMs, this.minStdMs), TAIL_MARGIN * longestMs))
    const alone = this.bound(learned, this.count, 0)
    // the peer's report stands in for the part of its history not yet seen here, and for no more: both cover the same
    // stretch of time when the two started together, so the longer of the two counts, not their sum
    const report = this.peerReport()
    if (report === null) {
      this.timeout = alone.timeout
      this.by = alone.by
      return
    }
    // the longest silence the reported pauses make: the pause, and the heartbeat that was due during it
    const vouched = Math.ceil(TAIL_MARGIN * (report.longestMs + this.heartbeatMs))
    const withReport = this.bound(learned, Math.max(this.count, Math.floor(report.forMs / this.windowMs)), vouched)
    this.timeout = withReport.timeout
    // 'reported' when the report changed the timeout, unless it is still coming down (the limit's text then tells both)
    // or at the ceiling
    if (withReport.by === 'learning' || withReport.by === 'ceiling') this.by = withReport.by
    else if (withReport.timeout === alone.timeout) this.by = alone.by
    else this.by = 'reported'
  }

  /** The timeout from a learned fit, the windows known (for the prior) and a reported silence, between floor and ceiling. */
  private bound(learned: number, known: number, vouched: number): { timeout: number; by: DetectorLimitBy } {
    // the prior: from the ceiling down to the floor over PRIOR_WINDOWS, then gone
    const prior = this.ceilingMs - ((this.ceilingMs - this.floorMs) * Math.min(known, PRIOR_WINDOWS)) / PRIOR_WINDOWS
    const fit = Math.max(learned, vouched)
    const timeout = Math.min(this.ceilingMs, Math.max(this.floorMs, prior, fit))
    if (prior > this.floorMs && prior >= fit) return { timeout, by: 'learning' }
    if (fit >= this.ceilingMs) return { timeout, by: 'ceiling' }
    return { timeout, by: fit > this.floorMs ? 'history' : 'floor' }
  }
}
