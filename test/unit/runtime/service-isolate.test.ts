// Isolating a replica cuts its clients off as a real network cut does: their connections
// break. Dropping chunks of a client's TCP stream instead would leave a frame torn in the
// guest and the rest of the stream misread.
import { afterEach, describe, expect, it } from 'vitest'
import { ftreq, preamble, RawClient, startPair } from './harness.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

describe('replica runtime: isolation and clients', () => {
  it('breaks a client connection of an isolated replica, and a retry after the heal gets the right answer', async () => {
    const p = await startPair()
    cleanups.push(() => p.close())
    const c = await RawClient.connect(p.a.service)
    cleanups.push(() => c.destroy())
    c.write(Buffer.concat([Buffer.from(preamble('c1')), ftreq('c1', 1, 'SET', 'k', 'v1')]))
    await c.until((vs) => vs.length === 1)
    expect(c.values).toEqual([[1, 'OK']])

    p.a.agent.faults.apply('f1', { kind: 'isolate' }, 60_000)
    const full = ftreq('c1', 2, 'SET', 'k', 'v2')
    c.write(full.subarray(0, 10)) // a request torn by the cut
    await c.untilEnded()

    p.a.agent.faults.heal('f1')
    const again = await RawClient.connect(p.a.service)
    cleanups.push(() => again.destroy())
    again.write(Buffer.concat([Buffer.from(preamble('c1')), full, ftreq('c1', 3, 'GET', 'k')]))
    await again.until((vs) => vs.length === 2)
    expect(again.values).toEqual([
      [2, 'OK'],
      [3, 'v2']
    ])
  })
})
