// The replica runtime's client service, over real sockets on 127.0.0.1: FT Lab sessions
// that reconnect, clients that leave, and what stopping a replica does to its connections.
import { afterEach, describe, expect, it } from 'vitest'
import { ftreq, preamble, RawClient, startPair, type Pair } from './harness.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function pair(): Promise<Pair> {
  const p = await startPair()
  cleanups.push(() => p.close())
  return p
}

async function raw(p: Pair['a']): Promise<RawClient> {
  const c = await RawClient.connect(p.service)
  cleanups.push(() => c.destroy())
  return c
}

describe('replica runtime: FT Lab sessions', () => {
  it('starts a reconnected session on a fresh stream: a frame cut off on the old connection does not swallow the retry', async () => {
    const { a } = await pair()
    const full = ftreq('c1', 2, 'SET', 'k', 'abcde')
    // the old connection carried a complete request and the first part of the next one
    // (a TCP segment boundary), then died
    const first = await raw(a)
    first.write(Buffer.concat([Buffer.from(preamble('c1')), ftreq('c1', 1, 'PING'), full.subarray(0, full.length - 4)]))
    await first.until((vs) => vs.length === 1)
    expect(first.values).toEqual([[1, 'PONG']])
    await first.destroy()

    // the client retries the whole request, with the same seq, on a new connection
    const second = await raw(a)
    second.write(Buffer.concat([Buffer.from(preamble('c1')), full]))
    await second.until((vs) => vs.length >= 1)
    expect(second.values[0]).toEqual([2, 'OK'])

    const check = await raw(a)
    check.write(Buffer.concat([Buffer.from(preamble('c2')), ftreq('c2', 1, 'GET', 'k')]))
    await check.until((vs) => vs.length === 1)
    expect(check.values).toEqual([[1, 'abcde']])
  })

  it('starts a session that follows the service to the new live replica on a fresh stream', async () => {
    const { a, b } = await pair()
    const full = ftreq('c1', 2, 'SET', 'k', 'abcde')
    const first = await raw(a)
    first.write(Buffer.concat([Buffer.from(preamble('c1')), ftreq('c1', 1, 'PING'), full.subarray(0, full.length - 4)]))
    // answered under the Output Rule: the backup holds the entry with the cut-off frame too
    await first.until((vs) => vs.length === 1)
    const live = new Promise<void>((resolve) => b.events.on('replica-role', (d: { role: string }) => d.role === 'live' && resolve()))
    await a.handle.stop()
    await live

    const second = await raw(b)
    second.write(Buffer.concat([Buffer.from(preamble('c1')), full]))
    await second.until((vs) => vs.some((v) => Array.isArray(v) && v[0] === 2))
    expect(second.values.filter((v) => Array.isArray(v) && v[0] === 2)).toEqual([[2, 'OK']])
    const check = await raw(b)
    check.write(Buffer.concat([Buffer.from(preamble('c2')), ftreq('c2', 1, 'GET', 'k')]))
    await check.until((vs) => vs.length === 1)
    expect(check.values).toEqual([[1, 'abcde']])
  })
})

describe('replica runtime: stopping', () => {
  it('stops even when a client refused by the backup keeps its side of the connection open', async () => {
    const { b } = await pair()
    // like an idle redis-cli: it got the refusal, but does not close until it is used again
    const idle = await RawClient.connect(b.service, { allowHalfOpen: true })
    cleanups.push(() => idle.destroy())
    await idle.untilEnded()
    expect(String(idle.values[0])).toMatch(/^-NOTLIVE/)
    await b.handle.stop()
  })
})
