// The etcd tie-breaker against a real etcd (Debian: etcd-server, /usr/bin/etcd) started on
// 127.0.0.1 with a temporary data dir and free ports, plus stand-in HTTP servers for the
// failure modes a real cluster will not produce on demand (a member that never answers, one
// that answers 503).
import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdArbiter } from '../../agent/arbiter/etcd.js'
import { freePort, hasEtcd, startEtcd, until, type EtcdProcess } from '../support/etcd.js'
import { lacks } from '../support/skips.js'

const noEtcd = lacks(hasEtcd ? null : 'etcd is not installed (Debian package etcd-server)')

describe.skipIf(noEtcd !== null)('etcd tie-breaker against a real etcd', () => {
  let etcd: EtcdProcess
  let url: string

  beforeAll(async () => {
    etcd = await startEtcd()
    url = etcd.url
    console.log(`etcd-arbiter: etcd up at ${url}`)
  })

  afterAll(() => etcd?.close())

  it('two contenders for one generation: exactly one wins, and both hear the same winner', async () => {
    const a = new EtcdArbiter({ endpoints: [url], prefix: 'ftlab-t1' })
    const b = new EtcdArbiter({ endpoints: [url], prefix: 'ftlab-t1' })
    const [ra, rb] = await Promise.all([a.tas(1, 'a', 7), b.tas(1, 'b', 8)])
    const won = [ra, rb].filter((r) => r.verdict === 'won')
    const lost = [ra, rb].filter((r) => r.verdict === 'lost')
    expect(won.length).toBe(1)
    expect(lost.length).toBe(1)
    const winner = won[0].winner!
    expect(won[0]).toMatchObject({ ok: true, winner })
    expect(lost[0]).toMatchObject({ ok: false, error: 'tas-lost', winner })
    expect(ra.id).toBe(7)
    expect(rb.id).toBe(8)
    console.log(`etcd-arbiter: generation 1 won by ${winner}`)

    // the winner asking again (its answer was lost) wins again; the loser still loses
    const loserId = winner === 'a' ? 'b' : 'a'
    expect(await a.tas(1, winner)).toMatchObject({ ok: true, winner, verdict: 'won' })
    expect(await b.tas(1, loserId)).toMatchObject({ ok: false, winner, verdict: 'lost' })

    // a later generation is a fresh contest
    expect(await b.tas(2, loserId)).toMatchObject({ ok: true, winner: loserId, verdict: 'won' })
    expect(await a.tas(2, winner)).toMatchObject({ ok: false, winner: loserId, verdict: 'lost' })
  })

  it('many contenders at once: one winner', async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `r${i}`)
    const answers = await Promise.all(ids.map((r) => new EtcdArbiter({ endpoints: [url], prefix: 'ftlab-t2' }).tas(5, r)))
    const winners = answers.filter((r) => r.verdict === 'won')
    expect(winners.length).toBe(1)
    expect(new Set(answers.map((r) => r.winner))).toEqual(new Set([winners[0].winner]))
  })

  it('tries the endpoints in turn: a dead member first, then a live one', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`
    const arb = new EtcdArbiter({ endpoints: [dead, url], prefix: 'ftlab-t3' })
    expect(await arb.tas(1, 'a')).toMatchObject({ ok: true, winner: 'a', verdict: 'won' })
  })

  it('answers only test-and-set through handle()', async () => {
    const arb = new EtcdArbiter({ endpoints: [url], prefix: 'ftlab-t4' })
    expect(await arb.handle({ id: 3, op: 'tas', gen: 1, from: 'b' })).toMatchObject({ id: 3, ok: true, winner: 'b' })
    expect(await arb.handle({ id: 4, op: 'read', block: 0 })).toMatchObject({ id: 4, ok: false, error: 'bad-request', verdict: 'bad-request' })
  })

  // last: stops etcd
  it('with etcd stopped the answer is "unreachable" and nobody wins', async () => {
    const a = new EtcdArbiter({ endpoints: [url], prefix: 'ftlab-t5', timeoutMs: 500 })
    const b = new EtcdArbiter({ endpoints: [url], prefix: 'ftlab-t5', timeoutMs: 500 })
    etcd.kill()
    await until(() => etcd.process.exitCode !== null || etcd.process.signalCode !== null, 10_000, 'etcd to stop')
    const [ra, rb] = await Promise.all([a.tas(1, 'a'), b.tas(1, 'b')])
    for (const r of [ra, rb]) {
      expect(r).toMatchObject({ ok: false, error: 'io', verdict: 'unreachable' })
      expect(r.winner).toBeUndefined()
      if (!r.ok) expect(r.message).toMatch(/etcd unreachable.*connection refused/)
    }
  })
})

describe('etcd tie-breaker against members that misbehave (stand-in servers)', () => {
  const servers: Server[] = []
  const listen = (handler: Parameters<typeof createServer>[1]): Promise<string> =>
    new Promise((resolve) => {
      const s = createServer(handler!)
      servers.push(s)
      s.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(s.address() as { port: number }).port}`))
    })

  afterAll(() => {
    for (const s of servers) {
      s.closeAllConnections()
      s.close()
    }
  })

  it('a member that never answers is given up after the timeout, then the next one is asked', async () => {
    const silent = await listen(() => {}) // accepts, never responds
    const busy = await listen((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'etcdserver: no leader', message: 'etcdserver: no leader', code: 14 }))
    })
    let seen: unknown
    const good = await listen((req, res) => {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        seen = { url: req.url, body: JSON.parse(body) }
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ header: {}, succeeded: true, responses: [{ response_put: { header: {} } }] }))
      })
    })
    const arb = new EtcdArbiter({ endpoints: [silent, busy, good], prefix: 'p', timeoutMs: 300 })
    expect(await arb.tas(9, 'a')).toMatchObject({ ok: true, winner: 'a', verdict: 'won' })
    const k = Buffer.from('p/gen/9').toString('base64')
    expect(seen).toEqual({
      url: '/v3/kv/txn',
      body: {
        compare: [{ key: k, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
        success: [{ request_put: { key: k, value: Buffer.from('a').toString('base64') } }],
        failure: [{ request_range: { key: k } }]
      }
    })
    const none = new EtcdArbiter({ endpoints: [silent, busy], prefix: 'p', timeoutMs: 300 })
    const r = await none.tas(9, 'a')
    expect(r).toMatchObject({ ok: false, error: 'io', verdict: 'unreachable' })
    if (!r.ok) expect(r.message).toMatch(/no answer within 300 ms.*HTTP 503: etcdserver: no leader/)
  })

  it('rejects bad options and bad requests with a clear message', async () => {
    expect(() => new EtcdArbiter({ endpoints: [] })).toThrow(/at least one client URL/)
    expect(() => new EtcdArbiter({ endpoints: ['127.0.0.1:2379'] })).toThrow(/endpoints\[0\]/)
    expect(() => new EtcdArbiter({ endpoints: ['http://x:1'], prefix: 'a/' })).toThrow(/prefix/)
    const arb = new EtcdArbiter({ endpoints: ['http://127.0.0.1:1'] })
    expect(await arb.tas(-1, 'a')).toMatchObject({ ok: false, error: 'bad-request', verdict: 'bad-request' })
    expect(await arb.tas(1, '')).toMatchObject({ ok: false, error: 'bad-request' })
  })
})
