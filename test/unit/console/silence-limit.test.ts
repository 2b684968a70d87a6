// What set a replica's silence limit travels from the agent (agent/replica/types.ts) to every place that shows a
// suspicion (the command line, the console's timeline and diagram, reports) through the contract's copy of the type
// and its one phrase for it.
import { describe, expect, expectTypeOf, it } from 'vitest'
import type { SilenceLimit as AgentLimit, SilenceLimitBy as AgentBy } from '../../../agent/replica/types.js'
import { SILENCE_LIMIT_BY, asSilenceLimit, silenceLimitText, suspicionText, type SilenceLimit, type SilenceLimitBy } from '../../../main/api/contract.js'

const base: SilenceLimit = { ms: 62, by: 'history', ceilingMs: 800, detectorMs: 62, learnedForMs: 60_000, learningMs: 10_000, allowanceMs: 0, ownPauseMs: 9 }

describe('the silence limit in the contract', () => {
  it('is the agent’s type, reason for reason', () => {
    expectTypeOf<SilenceLimit>().toEqualTypeOf<AgentLimit>()
    expectTypeOf<SilenceLimitBy>().toEqualTypeOf<AgentBy>()
  })

  it('has a distinct phrase for every reason, naming the peer and the figures behind it', () => {
    const phrases = SILENCE_LIMIT_BY.map((by) => silenceLimitText({ ...base, by, ms: 300, detectorMs: 120, allowanceMs: 180, ownPauseMs: 200 }, 'b'))
    expect(new Set(phrases).size).toBe(SILENCE_LIMIT_BY.length)
    const of = (by: SilenceLimitBy, l: Partial<SilenceLimit> = {}) => silenceLimitText({ ...base, by, ...l }, 'b')
    expect(of('history')).toBe("learned from 60 s of b's heartbeats")
    expect(of('learning', { learnedForMs: 2500 })).toBe(
      "a fresh detector, 2.5 of the 10 s it takes to learn b's heartbeats, coming down from the 800 ms ceiling"
    )
    expect(of('guest-growth', { ms: 330, detectorMs: 80, allowanceMs: 250 })).toBe(
      "the detector's 80 ms, and 250 ms more for the guest's growth in the last minute: its garbage collections grow with it"
    )
    // an allowance held to the ceiling says so
    expect(of('large-entry', { ms: 800, detectorMs: 90, allowanceMs: 1200 })).toMatch(/1200 ms more for a large entry .*, held to the 800 ms ceiling$/)
    expect(of('joining', { ms: 3210 })).toBe(
      'a snapshot is going out to b, which has not answered yet: a process still starting gets 3210 ms, a few times the 800 ms ceiling'
    )
    expect(of('own-pause', { ms: 246, ownPauseMs: 164 })).toBe("this replica's own longest pause of the last minute was 164 ms, and b's may be as long")
    // the peer's own report of its pauses: standing in for the heartbeats not heard yet, or bringing the prior down
    expect(of('reported', { ms: 75, learnedForMs: 1200, report: { longestMs: 30, forMs: 60_000 } })).toBe(
      'b reported its own longest pause of the last 60 s as 30 ms, which stands in for the heartbeats not yet heard here (1.2 of the 10 s it takes to learn them)'
    )
    expect(of('learning', { learnedForMs: 2500, report: { longestMs: 0, forMs: 8200 } })).toBe(
      "a fresh detector, coming down from the 800 ms ceiling over the 10 s it takes to learn b's heartbeats: b's report of its own pauses covers 8.2 s, and this replica has heard b for 2.5 s"
    )
    // a report reaching no further back than what it heard itself, or hardly (two replicas started together), adds nothing to say
    expect(of('learning', { learnedForMs: 2500, report: { longestMs: 0, forMs: 2000 } })).toBe(of('learning', { learnedForMs: 2500 }))
    expect(of('learning', { learnedForMs: 2900, report: { longestMs: 0, forMs: 3000 } })).toBe(of('learning', { learnedForMs: 2900 }))
  })

  it('reads a limit only when it is whole, and tells a suspicion without one as before', () => {
    expect(asSilenceLimit(base)).toEqual(base)
    expect(asSilenceLimit({ ...base, by: 'hunch' })).toBeNull()
    expect(asSilenceLimit({ ...base, ms: Number.NaN })).toBeNull()
    expect(asSilenceLimit({ ...base, ownPauseMs: undefined })).toBeNull()
    expect(asSilenceLimit('62 ms')).toBeNull()
    const reported: SilenceLimit = { ...base, by: 'reported', report: { longestMs: 30, forMs: 60_000 } }
    expect(asSilenceLimit(reported)).toEqual(reported)
    // a broken report costs the report, not the limit; nothing else the object holds comes along
    expect(asSilenceLimit({ ...base, report: { longestMs: 'x', forMs: 1 }, extra: 1 })).toEqual(base)
    // a recording whose limit is broken still shows the suspicion, with the length it carried
    expect(suspicionText({ peer: 'a', silentMs: 70.4, timeoutMs: 62, limit: { by: 'history' } })).toBe('suspects a: silent for 70 ms (limit 62 ms)')
    expect(suspicionText({ peer: null, silentMs: 70 })).toBe('suspects its peer: silent for 70 ms')
    expect(suspicionText({ peer: 'a', silentMs: 70, timeoutMs: 62, limit: base })).toBe(
      "suspects a: silent for 70 ms (limit 62 ms: learned from 60 s of a's heartbeats)"
    )
  })
})
