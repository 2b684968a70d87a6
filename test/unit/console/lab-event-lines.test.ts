import { describe, expect, it } from 'vitest'
import { EventLines, describeEvent } from '../../../main/cli/event-lines.js'
import type { LabEvent } from '../../../main/lab/lab-events.js'

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0)
const agent = (ms: number, host: string, type: string, data: Record<string, unknown> = {}): LabEvent => ({ ts: T0 + ms, source: 'agent', host, type, data })
const channel = (ms: number, host: string, entries: number, lastEntry: number): LabEvent =>
  agent(ms, host, 'channel', {
    role: 'primary',
    gen: 1,
    entries,
    bytes: entries * 100,
    acked: lastEntry - 1,
    lastEntry,
    unackedEntries: 1,
    unackedBytes: 100,
    heldOutputs: 2,
    released: entries,
    holdP50Ms: 0.4,
    holdMaxMs: 1.5,
    samples: []
  })

function run(events: LabEvent[]): string[] {
  const lines = new EventLines()
  return [...events.flatMap((e) => lines.push(e)), ...lines.flush()]
}

describe('ftlab events as readable lines', () => {
  it('summarises the logging channel telemetry once a second per host instead of printing its JSON', () => {
    const out = run([0, 200, 400, 600, 800, 1000, 1200].map((ms, i) => channel(ms, 'a', 10, 10 * (i + 1))))
    expect(out).toEqual([
      '12:00:00.000  a     agent    channel primary gen 1: 50 entries (4.9 KiB) in 800ms, last 50, acked 49, 1 unacked, held 2, released 50 (max hold 1.5 ms)',
      '12:00:01.000  a     agent    channel primary gen 1: 20 entries (2 KiB) in 200ms, last 70, acked 69, 1 unacked, held 2, released 20 (max hold 1.5 ms)'
    ])
    expect(out.join('\n')).not.toContain('{')
  })

  it('prints a line that repeats once, then how many more times it came', () => {
    const tas = (ms: number) => agent(ms, 'a', 'tas', { gen: 2, result: 'unreachable' })
    const out = run([
      tas(0),
      tas(200),
      tas(400),
      tas(600),
      tas(800),
      agent(900, 'a', 'replica-role', { role: 'halted', gen: 2, reason: 'disk server unreachable' })
    ])
    expect(out).toEqual([
      '12:00:00.000  a     agent    test-and-set for generation 2: unreachable',
      '12:00:00.800  a              … ×4 more in 800ms: test-and-set for generation 2: unreachable',
      '12:00:00.900  a     agent    now halted in generation 2: disk server unreachable'
    ])
  })

  it('keeps hosts apart: a repeat on one host is not broken by another host, and is counted at the end', () => {
    const out = run([
      agent(0, 'a', 'tas', { gen: 2, result: 'unreachable' }),
      agent(100, 'b', 'go-live', { gen: 2, replayed: 40, reemitted: 1 }),
      agent(200, 'a', 'tas', { gen: 2, result: 'unreachable' })
    ])
    expect(out).toEqual([
      '12:00:00.000  a     agent    test-and-set for generation 2: unreachable',
      '12:00:00.100  b     agent    goes live in generation 2 (replayed 40, re-emitted 1)',
      '12:00:00.200  a              … ×1 more in 200ms: test-and-set for generation 2: unreachable'
    ])
  })

  it('reports a still-repeating line and due channel windows on a live stream', () => {
    const lines = new EventLines()
    for (let ms = 0; ms <= 6000; ms += 200) lines.push(agent(ms, 'a', 'tas', { gen: 3, result: 'unreachable' }))
    lines.push(channel(0, 'b', 5, 5))
    expect(lines.tick(T0 + 6100)).toEqual([
      '12:00:00.000  b     agent    channel primary gen 1: 5 entries (500 B), last 5, acked 4, 1 unacked, held 2, released 5 (max hold 1.5 ms)',
      '12:00:06.000  a              … ×30 more in 6s: test-and-set for generation 3: unreachable'
    ])
    expect(lines.tick(T0 + 6200)).toEqual([])
  })

  it('names operator actions and falls back to key=value for events it does not know', () => {
    expect(describeEvent({ ts: T0, source: 'operator', type: 'fault', data: { id: 'f2', what: 'cut a↔b', path: 'nft', forMs: 30_000 } })).toBe(
      'fault f2 cut a↔b via nft for 30s'
    )
    expect(describeEvent({ ts: T0, source: 'operator', type: 'heal', data: { id: 'all', healed: ['f1', 'f2'], warnings: ['agent a: timeout'] } })).toBe(
      'heal all: f1, f2; warnings: agent a: timeout'
    )
    expect(describeEvent(agent(0, 'disk', 'disk-tas', { gen: 2, from: 'b', won: true, winner: 'b' }))).toBe('test-and-set for generation 2 from b: won')
    expect(describeEvent(agent(0, 'a', 'something-new', { n: 3, why: 'because' }))).toBe('something-new n=3 why=because')
    expect(run([{ ts: T0, source: 'lab', host: 'a', type: 'caught-up', data: { seq: 9 } }])).toEqual([])
  })

  it('says the limit a suspicion was judged against, and what a stalled event loop held up', () => {
    // an older agent's suspicion: the limit's length, or nothing of it
    expect(describeEvent(agent(0, 'b', 'suspect', { peer: 'a', silentMs: 84.4, timeoutMs: 61.2 }))).toBe('suspects a: silent for 84 ms (limit 61 ms)')
    expect(describeEvent(agent(0, 'b', 'suspect', { peer: 'a', silentMs: 84.4 }))).toBe('suspects a: silent for 84 ms')
    // this one's: what set the limit
    const limit = { ms: 504.2, by: 'learning', ceilingMs: 800, detectorMs: 504.2, learnedForMs: 4100, learningMs: 10_000, allowanceMs: 0, ownPauseMs: 12 }
    expect(describeEvent(agent(0, 'b', 'suspect', { peer: 'a', silentMs: 512, timeoutMs: 504.2, limit }))).toBe(
      "suspects a: silent for 512 ms (limit 504 ms: a fresh detector, 4.1 of the 10 s it takes to learn a's heartbeats, coming down from the 800 ms ceiling)"
    )
    expect(describeEvent(agent(0, 'a', 'loop-stall', { ms: 412, role: 'primary' }))).toBe(
      'event loop stalled 412 ms (as primary): its timers and heartbeats waited that long'
    )
  })
})
