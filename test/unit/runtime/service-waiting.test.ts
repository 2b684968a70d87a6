// Replies for an FT Lab session whose connection is gone wait for it to come back, in
// bounded memory: a session keeps its newest replies, not everything it ever asked for.
import { afterEach, describe, expect, it } from 'vitest'
import { MAX_WAITING_BYTES_PER_SESSION } from '../../../agent/replica/runtime.js'
import { ftreq, preamble, RawClient, startPair, until } from './harness.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

describe('replica runtime: replies waiting for a session', () => {
  it('keeps only the newest replies of a session that left with many requests in flight', async () => {
    const p = await startPair()
    cleanups.push(() => p.close())
    const { a } = p
    const big = 'x'.repeat(64 * 1024)
    const w = await RawClient.connect(a.service)
    cleanups.push(() => w.destroy())
    w.write(Buffer.concat([Buffer.from(preamble('w')), ftreq('w', 1, 'SET', 'big', big)]))
    await w.until((vs) => vs.length === 1)

    // hold every reply under the Output Rule (no acks from the backup) while the session
    // pipelines many large reads and goes away
    a.agent.ctx.filter.set('hold', { kind: 'drop', peers: ['b'], direction: 'in' })
    const n = Math.ceil((4 * MAX_WAITING_BYTES_PER_SESSION) / big.length)
    const gone = await RawClient.connect(a.service)
    cleanups.push(() => gone.destroy())
    gone.write(Buffer.concat([Buffer.from(preamble('c1')), ...Array.from({ length: n }, (_, i) => ftreq('c1', i + 1, 'GET', 'big'))]))
    await until('the session at the service', () => a.status().replica?.clients === 2)
    await gone.destroy()
    // the service has read every request and seen the connection close
    await until('the session gone from the service', () => a.status().replica?.clients === 1)
    a.agent.ctx.filter.remove('hold')
    // (the requests may have queued behind a stall: wait for them to run, too)
    await until('every request run and its reply released', () => {
      const s = a.status()
      return s.replica?.queuedInputs === 0 && s.channel?.heldOutputs === 0 && s.channel?.stalled === false
    })

    const back = await RawClient.connect(a.service)
    cleanups.push(() => back.destroy())
    // the client retries its newest request, then asks one more
    back.write(Buffer.concat([Buffer.from(preamble('c1')), ftreq('c1', n, 'GET', 'big'), ftreq('c1', n + 1, 'PING')]))
    await back.until((vs) => vs.some((v) => Array.isArray(v) && v[0] === n + 1))
    expect(back.values.slice(-2)).toEqual([
      [n, big],
      [n + 1, 'PONG']
    ])
    // what waited for the session, within the bound
    const kept = back.values.slice(0, -2) as [number, string][]
    expect(kept.every(([seq, v]) => seq <= n && v === big)).toBe(true)
    expect(kept.length * big.length).toBeLessThanOrEqual(MAX_WAITING_BYTES_PER_SESSION)
  })
})
