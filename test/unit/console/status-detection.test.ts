import { describe, expect, it } from 'vitest'
import type { AgentStatus } from '../../../agent/control/protocol.js'
import { StatusPoller } from '../../../main/console/status-poller.js'
import type { HostStatusRow } from '../../../main/lab/lab.js'

function replicaRow(host: string, role: AgentStatus['role'], suspectAfterMs?: number): HostStatusRow {
  const status: AgentStatus = {
    id: host,
    pid: 100,
    version: 1,
    uptimeMs: 1000,
    role,
    gen: 1,
    faults: [],
    memory: { rss: 1, heapUsed: 1, guestBytes: 0 },
    replica: {
      peer: host === 'a' ? 'b' : 'a',
      releasedThrough: 0,
      peerSuspected: false,
      queuedInputs: 0,
      clients: 0,
      guestConns: 0,
      channelPort: 1,
      servicePort: 2,
      ...(suspectAfterMs === undefined ? {} : { suspectAfterMs })
    }
  }
  return { host, kind: 'replica', pid: 100, incarnation: 1, state: 'up', status } as HostStatusRow
}

describe('status poller: failure detection', () => {
  it("shows each replica's learned suspicion timeout, null for an agent too old to say", () => {
    const poller = new StatusPoller({ status: async () => [], machineOf: (id) => id })
    poller.absorb([replicaRow('a', 'primary', 60), replicaRow('b', 'backup')])
    expect(poller.detection()).toEqual({ falseFailovers: 0, last: null, suspectAfterMs: { a: 60, b: null }, suspectLimit: { a: null, b: null } })
  })

  it('passes on what set each timeout, and nothing for a limit it cannot read', () => {
    const poller = new StatusPoller({ status: async () => [], machineOf: (id) => id })
    const limit = { ms: 60, by: 'floor' as const, ceilingMs: 800, detectorMs: 60, learnedForMs: 60_000, learningMs: 10_000, allowanceMs: 0, ownPauseMs: 8 }
    const a = replicaRow('a', 'primary', 60)
    a.status!.replica!.suspectLimit = limit
    const b = replicaRow('b', 'backup', 90)
    b.status!.replica!.suspectLimit = { ...limit, by: 'no-such-reason' } as unknown as typeof limit
    poller.absorb([a, b])
    expect(poller.detection().suspectLimit).toEqual({ a: limit, b: null })
    // live alone, a has no peer to suspect (it still names the one it had)
    a.status!.role = 'live'
    poller.absorb([a, b])
    expect(poller.detection()).toMatchObject({ suspectAfterMs: { a: null, b: 90 }, suspectLimit: { a: null, b: null } })
  })

  it('counts a false failover from the lab events, and not one an operator fault explains', () => {
    const poller = new StatusPoller({ status: async () => [], machineOf: (id) => id })
    const lost = (ts: number, host: string, gen: number) =>
      poller.noteLabEvent({ ts, source: 'agent', host, type: 'tas', data: { gen, result: 'lost' }, agent: { seq: ts, ts, incarnation: 1 } })
    poller.noteLabEvent({ ts: 0, source: 'operator', type: 'fault', data: { id: 'f1', kind: 'pause', healsAt: 1_000 } })
    lost(500, 'a', 1)
    expect(poller.detection().falseFailovers).toBe(0)
    lost(60_000, 'b', 2)
    expect(poller.detection()).toMatchObject({ falseFailovers: 1, last: { host: 'b', gen: 2, at: 60_000, why: 'lost the test-and-set of generation 2' } })
  })
})
