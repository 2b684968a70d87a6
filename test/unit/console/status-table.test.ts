import { describe, expect, it } from 'vitest'
import type { AgentStatus } from '../../../agent/control/protocol.js'
import { statusTable } from '../../../main/cli/table.js'
import { ClockMap } from '../../../main/lab/lab-events.js'

const base = { pid: 1, version: 1, uptimeMs: 1, faults: [], memory: { rss: 0, heapUsed: 0, guestBytes: 0 } }
const channel = {
  connected: true,
  lastEntry: 120,
  acked: 117,
  unackedEntries: 3,
  unackedBytes: 300,
  bytesSent: 0,
  bytesReceived: 0,
  entriesSent: 120,
  entriesReceived: 0,
  heldOutputs: 2,
  stalled: false
}

describe('status table', () => {
  it('shows host, role, gen, pid, entries, acked, lag and held outputs, and a down host as down', () => {
    const limit = {
      ms: 61.6,
      by: 'history' as const,
      ceilingMs: 800,
      detectorMs: 61.6,
      learnedForMs: 60_000,
      learningMs: 10_000,
      allowanceMs: 0,
      ownPauseMs: 9
    }
    const replica = {
      peer: 'b',
      releasedThrough: 117,
      peerSuspected: false,
      suspectAfterMs: 61.6,
      suspectLimit: limit,
      queuedInputs: 0,
      clients: 2,
      guestConns: 0,
      channelPort: 1,
      servicePort: 2
    }
    const a: AgentStatus = { ...base, id: 'a', role: 'primary', gen: 2, channel, replica }
    const disk: AgentStatus = {
      ...base,
      id: 'disk',
      role: 'disk-server',
      gen: 0,
      disk: { gen: 2, live: 'a', tasWinner: null, blocks: 3, writes: 9, fenced: 1 }
    }
    const text = statusTable(
      [
        { host: 'a', kind: 'replica', pid: 4242, incarnation: 1, state: 'up', status: a },
        { host: 'b', kind: 'replica', pid: 4243, incarnation: 1, state: 'down' },
        { host: 'disk', kind: 'disk-server', pid: 4244, incarnation: 1, state: 'up', status: disk }
      ],
      [{ id: 'f1', spec: { kind: 'isolate', host: 'b' }, parts: [], createdAt: 0, healsAt: 30_000, path: 'agent-filter' }],
      0
    )
    const lines = text.split('\n')
    expect(lines[0].split(/\s{2,}/)).toEqual(['HOST', 'ROLE', 'GEN', 'PID', 'ENTRIES', 'ACKED', 'LAG', 'HELD', 'SUSPECT AFTER', 'NOTE'])
    expect(lines[1].split(/\s{2,}/)).toEqual(['a', 'primary', '2', '4242', '120', '117', '3', '2', '62 ms history'])
    expect(lines[2].split(/\s+/)).toEqual(['b', 'down', '4243'])
    expect(lines[3]).toMatch(/^disk\s+disk-server\s+2\s+4244\s+live=a tas=- fenced=1$/)
    expect(text).toMatch(/open faults:\n {2}f1 {2}isolate b {2}via agent-filter {2}heals in 30s/)
  })
  it('shows no lag and no suspicion limit for a replica that went live alone: it has nobody to wait for', () => {
    const limit = { ms: 60, by: 'floor' as const, ceilingMs: 800, detectorMs: 60, learnedForMs: 60_000, learningMs: 10_000, allowanceMs: 0, ownPauseMs: 0 }
    const replica = {
      peer: 'a',
      releasedThrough: 0,
      peerSuspected: false,
      suspectLimit: limit,
      queuedInputs: 0,
      clients: 0,
      guestConns: 0,
      channelPort: 1,
      servicePort: 2
    }
    const b: AgentStatus = { ...base, id: 'b', role: 'live', gen: 1, channel: { ...channel, lastEntry: 36_218, acked: 15_708 }, replica }
    const line = statusTable([{ host: 'b', kind: 'replica', pid: 7, incarnation: 1, state: 'up', status: b }], [], 0).split('\n')[1]
    expect(line.split(/\s+/)).toEqual(['b', 'live', '1', '7', '36218', '-', '-', '2'])
  })
})

describe('ClockMap', () => {
  it('leaves timestamps alone for a host on the console clock', () => {
    const c = new ClockMap(true)
    c.sample(1000, 5000)
    expect(c.toConsole(1000)).toBe(1000)
  })

  it('uses the least-delayed sample as the offset of a remote clock', () => {
    const c = new ClockMap(false)
    c.sample(1000, 1530) // 30 ms on the way
    c.sample(2000, 2505) // 5 ms on the way: the best bound on the skew
    c.sample(3000, 3600)
    expect(c.offsetMs).toBe(505)
    expect(c.toConsole(4000)).toBe(4505)
  })
})
