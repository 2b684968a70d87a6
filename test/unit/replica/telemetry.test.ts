import { describe, expect, it } from 'vitest'
import type { CoreStatus } from '../../../agent/replica/core.js'
import { ChannelTelemetry } from '../../../agent/replica/telemetry.js'

const status = { role: 'primary', gen: 1, acked: 9, lastEntry: 10, unackedEntries: 1, unackedBytes: 40, heldOutputs: 1 } as CoreStatus

describe('logging-channel telemetry', () => {
  it('sums entries and acks into one channel event per flush, with a few samples, and nothing when idle', () => {
    const events: [string, Record<string, unknown>][] = []
    const t = new ChannelTelemetry((type, data) => events.push([type, data]))
    for (let n = 1; n <= 40; n++) t.entry(n, 100, `data s:c${n}`)
    t.ack(39)
    t.released(2)
    t.released(4)
    t.flush(status)
    t.flush(status)
    expect(events).toHaveLength(1)
    const [type, data] = events[0]
    expect(type).toBe('channel')
    expect(data).toMatchObject({ entries: 40, bytes: 4000, first: 1, last: 40, released: 2, holdMaxMs: 4 })
    expect((data.samples as unknown[]).length).toBe(12)
  })

  it("gives Output Rule percentiles per role, so time live alone does not dilute a primary's holds", () => {
    const t = new ChannelTelemetry(() => {})
    for (let i = 1; i <= 100; i++) t.released(i)
    expect(t.outputRule()).toEqual({ released: 100, p50Ms: 51, p99Ms: 100, maxMs: 100 })
    t.newRolePeriod() // went live alone: releases are immediate
    for (let i = 0; i < 50; i++) t.released(0)
    expect(t.outputRule()).toEqual({ released: 50, p50Ms: 0, p99Ms: 0, maxMs: 0 })
    t.newRolePeriod() // primary again, with a new backup
    t.released(7)
    expect(t.outputRule()).toEqual({ released: 1, p50Ms: 7, p99Ms: 7, maxMs: 7 })
  })
})
