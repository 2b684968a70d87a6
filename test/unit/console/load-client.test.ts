import { afterEach, describe, expect, it } from 'vitest'
import { checkRun } from '../../../main/check/check-run.js'
import { finalRead, runLoad } from '../../../main/load/load-runner.js'
import { encodeCommand, encodeValue, RespError, RespReader } from '../../../main/load/resp.js'
import { SessionClient } from '../../../main/load/session-client.js'
import { FakeService, type Request } from './fake-service.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function service(): Promise<FakeService> {
  const svc = new FakeService()
  await svc.start(2)
  cleanups.push(() => svc.close())
  return svc
}

function client(svc: FakeService, id = 'c1', attemptTimeoutMs = 200, opDeadlineMs = 5000): SessionClient {
  const c = new SessionClient({ clientId: id, targets: svc.endpoints, attemptTimeoutMs, opDeadlineMs })
  cleanups.push(() => c.close())
  return c
}

describe('RESP', () => {
  it('reads replies split anywhere across chunks', () => {
    const bytes = Buffer.concat([encodeValue([7, 'héllo']), encodeValue(null), encodeValue(new RespError('ERR no')), encodeValue(42), Buffer.from('+OK\r\n')])
    const r = new RespReader()
    const got = []
    for (let i = 0; i < bytes.length; i++) got.push(...r.push(bytes.subarray(i, i + 1)))
    expect(got).toEqual([[7, 'héllo'], null, new RespError('ERR no'), 42, 'OK'])
  })

  it('rejects a reply with a nonsense length instead of waiting for it', () => {
    expect(() => new RespReader().push(Buffer.from('$99999999999\r\n'))).toThrow(/length/)
  })

  it('encodes commands as arrays of bulk strings', () => {
    expect(encodeCommand(['SET', 'k', 1]).toString()).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n')
  })
})

describe('SessionClient', () => {
  it('opens a session and wraps each command with its client id and next seq', async () => {
    const svc = await service()
    const c = client(svc)
    expect(await c.call('SET', ['r:0', 'x'])).toMatchObject({ status: 'ok', value: 'OK' })
    expect(await c.call('GET', ['r:0'])).toMatchObject({ status: 'ok', value: 'x' })
    expect(await c.call('INCR', ['c:0'])).toMatchObject({ status: 'ok', value: 1 })
    expect(svc.requests.map((r) => [r.clientId, r.seq, r.cmd])).toEqual([
      ['c1', 1, 'SET'],
      ['c1', 2, 'GET'],
      ['c1', 3, 'INCR']
    ])
  })

  it('retries a request that got no answer with the same seq, so it runs once', async () => {
    const svc = await service()
    // only one replica: the retry must go to the same place and hit the reply table
    const c = new SessionClient({ clientId: 'c1', targets: [svc.endpoints[0]], attemptTimeoutMs: 100, opDeadlineMs: 5000 })
    cleanups.push(() => c.close())
    svc.swallow.add('c1:1')
    expect(await c.call('INCR', ['c:0'])).toMatchObject({ status: 'ok', value: 1 })
    expect(svc.requests.map((r) => r.seq)).toEqual([1, 1])
    expect(svc.executed).toHaveLength(1)
    expect(c.stats.retries).toBe(1)
  })

  it('drops a second reply for the same seq and counts it', async () => {
    const svc = await service()
    svc.doubleSend = true
    const c = client(svc)
    for (let i = 1; i <= 5; i++) expect(await c.call('INCR', ['c:0'])).toMatchObject({ status: 'ok', value: i })
    // the duplicate of the last reply may still be in flight: one more call flushes it
    await c.call('GET', ['c:0'])
    expect(c.stats.duplicatesDropped).toBeGreaterThanOrEqual(5)
    expect(c.stats.strays).toBe(0)
  })

  it('follows the service to the other replica when the one it uses dies', async () => {
    const svc = await service()
    const c = client(svc)
    expect(await c.call('SET', ['r:0', 'before'])).toMatchObject({ status: 'ok' })
    await svc.kill(0)
    svc.goLive(1)
    const r = await c.call('SET', ['r:0', 'after'])
    expect(r).toMatchObject({ status: 'ok', target: `127.0.0.1:${svc.endpoints[1].port}` })
    expect(c.stats.failoversFollowed).toBe(1)
    expect(svc.kv.get('r:0')).toBe('after')
  })

  it('drops the reply a replica re-emits for an answered seq when it goes live', async () => {
    const svc = await service()
    const c = client(svc)
    expect(await c.call('SET', ['r:0', 'x'])).toMatchObject({ status: 'ok' })
    await svc.kill(0)
    // the first request reaching the backup makes it go live, re-emitting seq 1's reply
    svc.on('request', (req: Request) => {
      if (req.replica === 1 && svc.live === 0) svc.goLive(1)
    })
    expect(await c.call('INCR', ['c:0'])).toMatchObject({ status: 'ok', value: 1 })
    expect(c.stats.duplicatesDropped).toBe(1)
    expect(c.stats.strays).toBe(0)
  })

  it('moves to the other replica when the service refuses the session', async () => {
    const svc = await service()
    svc.live = 1
    svc.refusal = 'NOTLIVE this replica is a backup'
    const c = client(svc)
    expect(await c.call('SET', ['r:0', 'x'])).toMatchObject({ status: 'ok', target: `127.0.0.1:${svc.endpoints[1].port}` })
    expect(c.stats.retries).toBe(1)
  })

  it('reports a guest error answer as a failed operation, not a retry', async () => {
    const svc = await service()
    const c = client(svc)
    expect(await c.call('NOPE')).toMatchObject({ status: 'fail', error: "ERR unknown command 'NOPE'" })
    expect(c.stats.retries).toBe(0)
  })

  it('gives up with "unknown" after the deadline when no replica answers', async () => {
    const svc = await service()
    svc.live = 5 // nobody is live: both replicas stay silent
    const c = client(svc, 'c1', 50, 300)
    const r = await c.call('SET', ['r:0', 'x'])
    expect(r.status).toBe('unknown')
    expect(c.stats.retries).toBeGreaterThan(0)
  })
})

describe('runLoad', () => {
  it('keeps going across a failover and loses no acknowledged write', async () => {
    const svc = await service()
    // kill the live replica after the 150th request: event-driven, not timed
    let n = 0
    const cut = new Promise<void>((resolve) => {
      svc.on('request', (_req: Request) => {
        if (++n !== 150) return
        void svc.kill(0).then(() => {
          svc.goLive(1)
          resolve()
        })
      })
    })
    const progress: number[] = []
    const result = await runLoad({
      targets: svc.endpoints,
      durationMs: 1500,
      clients: 4,
      keys: 4,
      attemptTimeoutMs: 150,
      progressEveryMs: 200,
      onProgress: (p) => progress.push(p.completed)
    })
    await cut
    const s = result.summary
    expect(s.completed).toBeGreaterThan(150)
    expect(s.failoversFollowed).toBeGreaterThanOrEqual(1)
    expect(result.history.some((h) => h.target === `127.0.0.1:${svc.endpoints[1].port}` && h.status === 'ok')).toBe(true)
    expect(s.latencyMs.count).toBe(s.ok)
    expect(s.latencyMs.p50).toBeLessThanOrEqual(s.latencyMs.max)
    expect(progress.length).toBeGreaterThan(0)
    const final = await finalRead(svc.endpoints, result.keys)
    const verdict = checkRun(result.history, final)
    expect(verdict.checks.map((c) => [c.checker, c.valid])).toEqual(verdict.checks.map((c) => [c.checker, true]))
  })

  it('counts duplicates dropped across a run where every reply comes twice', async () => {
    const svc = await service()
    svc.doubleSend = true
    const result = await runLoad({ targets: svc.endpoints, durationMs: 300, clients: 2, keys: 2 })
    // every reply but the last of each client is certainly followed by its twin
    expect(result.summary.duplicatesDropped).toBeGreaterThanOrEqual(result.summary.completed - 2)
  })

  it('keeps pinned readers on their one address, reading only, beside the ordinary clients', async () => {
    const svc = await service()
    svc.live = 1
    const result = await runLoad({
      targets: svc.endpoints,
      durationMs: 300,
      clients: 2,
      keys: 2,
      clientPrefix: 'p-',
      readers: { targets: [svc.endpoints[1]], clients: 2 }
    })
    const byReaders = svc.requests.filter((r) => /^p-r\d$/.test(r.clientId))
    expect(new Set(byReaders.map((r) => r.clientId))).toEqual(new Set(['p-r0', 'p-r1']))
    expect(byReaders.every((r) => r.cmd === 'GET' && r.replica === 1)).toBe(true)
    // the ordinary clients still start at the first address and follow the service
    expect(svc.requests.some((r) => r.clientId === 'p-0' && r.replica === 0)).toBe(true)
    expect(result.history.filter((h) => h.client === 'p-r0' && h.status === 'ok').length).toBeGreaterThan(0)
    expect(result.summary.clients).toBe(2)
  })

  it('stops early when aborted', async () => {
    const svc = await service()
    const ac = new AbortController()
    svc.once('request', () => ac.abort())
    // ten minutes: only the abort can end this run within the test's timeout
    const result = await runLoad({ targets: svc.endpoints, durationMs: 600_000, clients: 1, signal: ac.signal })
    expect(result.summary.completed).toBeGreaterThanOrEqual(1)
  })
})
