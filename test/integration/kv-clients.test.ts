// Real Redis clients against the kv guest on a replicated local lab: redis-py (Debian's
// python3-redis 4.3, standing in for redis-py from PyPI, which this machine cannot reach;
// RESP2, with HELLO 3 checked on a raw connection), ioredis 5 (RESP2) and node-redis 5 (RESP2
// and RESP3). Each runs a scripted session of every command family and must see what Redis
// would answer; then all of them write through a power cut of the primary with their own
// retry settings, and every write they had acknowledged is on the backup that went live; keys
// that had expired on the primary stay expired there; and after the survivor dies too, the
// guest booted from the disk server has every type, every expiry and every acknowledged write.
// redis-benchmark's default test list runs to completion against the primary as well.
//
// The clients reach the service through a forwarder that stands in for FT's moving service
// address: it connects each new client connection to the first replica that serves (a
// backup turns connections away with -NOTLIVE; a powered-off primary refuses them).
import { execFile, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Endpoint } from '../../agent/control/protocol.js'
import type { LabEvent } from '../../main/lab/lab-events.js'
import { startLocalLab } from '../../main/lab/local-lab.js'
import { requireReplicaAgent } from '../support/agent.js'
import { paired, role, untilStatus } from '../support/lab.js'
import { lacks } from '../support/skips.js'
import { type Ack, expectedSession, ioredisSession, ioredisWrites, nodeRedisSession, nodeRedisWrites, type Session } from './clients/sessions.js'

const PY = '/usr/bin/python3'
const havePy = spawnSync(PY, ['-c', 'import redis'], { stdio: 'ignore' }).status === 0
const haveBench = spawnSync('redis-benchmark', ['--version'], { stdio: 'ignore' }).status === 0
const skip = lacks([
  havePy ? null : `${PY} cannot import redis (Debian package python3-redis)`,
  haveBench ? null : 'redis-benchmark is not installed (Debian package redis-tools)'
])
if (!skip) await requireReplicaAgent()

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

/** A service address that moves to whichever replica serves, as FT's does. */
async function forwarder(targets: Endpoint[]): Promise<{ server: Server; port: number }> {
  const open = new Set<Socket>()
  async function upstream(): Promise<Socket | null> {
    for (const t of targets) {
      const s = await new Promise<Socket | null>((resolve) => {
        const c = createConnection({ host: t.host, port: t.port })
        c.once('error', () => resolve(null))
        c.once('connect', () => {
          // a backup says -NOTLIVE at once and closes; a serving replica says nothing until asked
          const timer = setTimeout(() => {
            c.removeAllListeners('data')
            resolve(c)
          }, 150)
          c.once('data', () => {
            clearTimeout(timer)
            c.destroy()
            resolve(null) // -NOTLIVE: a backup, not serving
          })
        })
      })
      if (s) return s
    }
    return null
  }
  const server = createServer((client) => {
    open.add(client)
    const early: Buffer[] = []
    const hold = (d: Buffer) => early.push(d)
    client.on('data', hold)
    client.on('error', () => {})
    client.on('close', () => open.delete(client))
    void upstream().then((up) => {
      if (up === null || client.destroyed) {
        up?.destroy()
        return void client.destroy()
      }
      open.add(up)
      up.on('error', () => client.destroy())
      client.on('error', () => up.destroy())
      up.on('close', () => {
        open.delete(up)
        client.destroy()
      })
      client.on('close', () => up.destroy())
      client.off('data', hold)
      for (const d of early) up.write(d)
      client.pipe(up)
      up.pipe(client)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanups.push(() => {
    for (const s of open) s.destroy()
    return new Promise((r) => server.close(() => r(undefined)))
  })
  return { server, port: (server.address() as { port: number }).port }
}

function run(bin: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (e, stdout, stderr) => {
      resolve({ code: e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : null) : 0, out: stdout, err: stderr })
    })
  })
}

async function python(args: string[], timeoutMs = 120_000): Promise<Session> {
  const r = await run(PY, [join(import.meta.dirname, 'clients/redis_py_session.py'), ...args], timeoutMs)
  expect(r.code, `redis_py_session.py ${args.join(' ')} exited with ${r.code}: ${r.err.slice(-3000)}`).toBe(0)
  return JSON.parse(r.out) as Session
}

describe('Redis clients against the kv guest on a replicated local lab', () => {
  it.skipIf(skip !== null)(
    'redis-py, ioredis and node-redis see Redis answers; redis-benchmark runs its default tests; through a power cut and then a boot from disk nothing acknowledged is lost',
    async () => {
      const home = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
      cleanups.push(() => rmSync(home, { recursive: true, force: true }))
      const lab = await startLocalLab({ name: 'kv-clients' }, { home })
      cleanups.push(() => lab.stop())
      const events: LabEvent[] = []
      cleanups.push(lab.onEvent((e) => events.push(e)))
      await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))
      const { port } = await forwarder(lab.serviceEndpoints())
      const host = '127.0.0.1'

      // every command family, each client with its own prefix
      const { hello3, ...py2 } = await python(['session', host, String(port), '2', 'py2:'])
      expect(hello3).toBeUndefined()
      expect(py2).toEqual(expectedSession('py2:'))
      const { hello3: h3, ...py3 } = await python(['session', host, String(port), '3', 'py3:'])
      expect(h3, 'HELLO 3 answered with a RESP3 map of protocol 3').toBe(true)
      expect(py3).toEqual(expectedSession('py3:'))
      expect(await ioredisSession(host, port, 'io:')).toEqual(expectedSession('io:'))
      expect(await nodeRedisSession(host, port, 'nr2:', 2)).toEqual(expectedSession('nr2:'))
      expect(await nodeRedisSession(host, port, 'nr3:', 3)).toEqual(expectedSession('nr3:'))

      // redis-benchmark 7 stops at the first error reply; a clean exit that reports every default test ran them all
      const [primary] = lab.serviceEndpoints()
      const bench = await run('redis-benchmark', ['-h', primary.host, '-p', String(primary.port), '-n', '300', '-c', '10', '-q'], 300_000)
      const shown = `redis-benchmark: ${bench.out.slice(-3000)} ${bench.err.slice(-1000)}`
      expect(bench.code, shown).toBe(0)
      expect(bench.out + bench.err, shown).not.toMatch(/error/i)
      for (const t of ['PING_INLINE', 'SET', 'GET', 'INCR', 'LPUSH', 'RPUSH', 'LPOP', 'RPOP', 'SADD', 'HSET', 'SPOP', 'ZADD', 'ZPOPMIN', 'LRANGE_600', 'MSET'])
        expect(bench.out, shown).toMatch(new RegExp(`${t}[^\\n]*: [0-9.]+ requests per second`))

      // expiry on the guest's clock: keys that expired on the primary, and keys that live on
      const { createClient } = await import('redis')
      const ex = createClient({ socket: { host, port } })
      ex.on('error', () => {})
      await ex.connect()
      for (let i = 0; i < 20; i++) {
        await ex.set(`short:${i}`, 'v', { PX: 200 + 10 * i })
        await ex.set(`long:${i}`, 'v', { EX: 1000 })
      }
      await new Promise((r) => setTimeout(r, 600))
      // half of them read (and so deleted) on the primary, the other half left to expire unread
      for (let i = 0; i < 20; i += 2) expect(await ex.get(`short:${i}`), `short:${i} read after its expiry`).toBeNull()
      // INFO replication tells FT Lab's truth: the replica serving, its role and generation, the channel's lag
      const infoBefore = String(await ex.info('replication'))
      expect(infoBefore).toMatch(/\r\nrole:master\r\n/)
      expect(infoBefore).toMatch(/\r\nftlab_replica:a\r\nftlab_role:primary\r\nftlab_generation:1\r\nftlab_peer:b\r\n/)
      expect(infoBefore).toMatch(/\r\nftlab_channel_lag_entries:[0-9]+\r\n/)
      ex.destroy()

      // writes through a power cut of the primary, each client with its own retry settings
      const N = 400
      const writers = Promise.all([
        python(['writes', host, String(port), '2', 'pyw:', String(N)], 240_000).then((r) => r.acked as Ack[]),
        ioredisWrites(host, port, 'iow:', N),
        nodeRedisWrites(host, port, 'nrw:', N, 3)
      ])
      // cut once every writer is under way
      const probe = createClient({ socket: { host, port } })
      probe.on('error', () => {})
      await probe.connect()
      for (let i = 0; (await probe.exists(['pyw:w20', 'iow:w20', 'nrw:w20'])) < 3; i++) {
        expect(i, 'all three writers acknowledged 20 writes within 60 s').toBeLessThan(600)
        await new Promise((r) => setTimeout(r, 100))
      }
      probe.destroy()
      const cutAt = Date.now()
      await lab.powerCut('a')
      await untilStatus(lab, 'b live alone', (rows) => rows.get('a')?.state === 'down' && role(rows, 'b') === 'live', 30_000)
      const each = await writers
      for (const [i, name] of ['redis-py', 'ioredis', 'node-redis'].entries()) {
        expect(each[i].filter(([, t]) => t < cutAt).length, `${name} had writes acknowledged before the cut`).toBeGreaterThan(0)
        expect(each[i].filter(([, t]) => t > cutAt).length, `${name} went on after the cut, on the survivor`).toBeGreaterThan(0)
      }
      const check = await nodeRedisSessionRead(
        host,
        port,
        each.flat().map(([k]) => k)
      )
      expect(check.missing, 'acknowledged writes missing on the survivor').toEqual([])
      // and the sessions' data from before the cut is there too
      const after = await nodeRedisSessionRead(host, port, ['py2:e2', 'io:e2', 'nr3:e2'])
      expect(after.missing).toEqual([])

      // the survivor's clock went on from the primary's: no key that had expired there is readable here
      const survivor = createClient({ socket: { host, port } })
      survivor.on('error', () => {})
      await survivor.connect()
      for (let i = 0; i < 20; i++) {
        expect(await survivor.get(`short:${i}`), `short:${i} on the survivor`).toBeNull()
        const ttl = await survivor.ttl(`long:${i}`)
        expect(ttl, `long:${i} on the survivor`).toBeGreaterThan(900)
        expect(ttl).toBeLessThanOrEqual(1000)
      }
      expect(await survivor.keys('short:*')).toEqual([])
      expect(String(await survivor.info('replication'))).toMatch(/\r\nftlab_replica:b\r\nftlab_role:live\r\nftlab_generation:1\r\n/) // live alone: the generation moves on at the next restore
      survivor.destroy()
      // the backup replayed every entry with the primary's clock readings, so it expired the same keys at the same
      // entries: the primary put its state hash into the channel every few entries and the backup compared it with its own
      expect(events.filter((e) => /diverge/i.test(e.type)).map((e) => JSON.stringify(e.data))).toEqual([])

      // then the survivor dies too: power-on boots the guest from the disk server's log, with every type and expiry
      const typed = async (): Promise<unknown[]> => {
        const c = createClient({ socket: { host, port } })
        c.on('error', () => {})
        await c.connect()
        try {
          return [
            await c.hGetAll('py2:h'),
            await c.lRange('io:l', 0, -1),
            [...(await c.sMembers('nr2:set'))].sort(),
            await c.zRangeWithScores('nr3:z', 0, -1),
            await c.get('py3:tx'),
            await c.ttl('py2:e2'),
            (await c.ttl('long:3')) > 900,
            await c.get('short:3')
          ]
        } finally {
          c.destroy()
        }
      }
      const beforeDisk = await typed()
      await lab.powerCut('b')
      await untilStatus(lab, 'both replicas down', (rows) => rows.get('a')?.state === 'down' && rows.get('b')?.state === 'down')
      const on = await lab.powerOn('a')
      expect(on.detail).toMatch(/booted the guest from the disk server/)
      await untilStatus(lab, 'a live alone', (rows) => role(rows, 'a') === 'live')
      expect(await typed()).toEqual(beforeDisk)
      expect(beforeDisk.slice(5)).toEqual([-1, true, null])
      const fromDisk = await nodeRedisSessionRead(
        host,
        port,
        each.flat().map(([k]) => k)
      )
      expect(fromDisk.missing, 'acknowledged writes missing after the boot from disk').toEqual([])
    },
    600_000
  )
})

/** Which of `keys` the service no longer has (each was SET to the number after its last `w`; e2 keys to 'v'). */
async function nodeRedisSessionRead(host: string, port: number, keys: string[]): Promise<{ missing: string[] }> {
  const { createClient } = await import('redis')
  const r = createClient({ socket: { host, port } })
  r.on('error', () => {})
  await r.connect()
  try {
    const missing: string[] = []
    for (let i = 0; i < keys.length; i += 100) {
      const batch = keys.slice(i, i + 100)
      const values = await r.mGet(batch)
      batch.forEach((k, j) => {
        const want = k.endsWith(':e2') ? 'v' : k.slice(k.lastIndexOf('w') + 1)
        if (values[j] !== want) missing.push(`${k}=${values[j]}`)
      })
    }
    return { missing }
  } finally {
    r.destroy()
  }
}
