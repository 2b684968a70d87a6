// The same scripted session as redis_py_session.py, through ioredis and node-redis: each
// returns what the client saw, normalised to the shape of the Python session's JSON, so the
// integration test holds all three clients to one expectation.
import { Redis as IORedis } from 'ioredis'
import { createClient } from 'redis'

export type Session = Record<string, unknown>

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const between = (n: number, lo: number, hi: number): boolean => n >= lo && n <= hi

/** ioredis 5 (RESP2; it has no RESP3), with its default retry settings. */
export async function ioredisSession(host: string, port: number, p: string): Promise<Session> {
  const r = new IORedis({ host, port, lazyConnect: true })
  const other = new IORedis({ host, port, lazyConnect: true })
  await r.connect()
  await other.connect()
  try {
    const out: Session = {}
    out.ping = (await r.ping()) === 'PONG'
    await r.client('SETNAME', p + 'io')
    out.clientname = (await r.client('GETNAME')) === p + 'io'
    await r.set(p + 's', 'hello')
    out.get = await r.get(p + 's')
    out.setnx = [(await r.setnx(p + 's', 'x')) === 1, (await r.set(p + 's2', 'v', 'NX')) === 'OK']
    out.getset = await r.getset(p + 's2', 'w')
    out.getdel = [await r.getdel(p + 's2'), await r.exists(p + 's2')]
    out.incr = [await r.incr(p + 'n'), await r.incrby(p + 'n', 10), await r.decr(p + 'n')]
    await r.set(p + 'e', 'v', 'EX', 100)
    out.ttl = between(await r.ttl(p + 'e'), 99, 100)
    out.expire = [(await r.expire(p + 's', 50)) === 1, between(await r.ttl(p + 's'), 49, 50), (await r.persist(p + 's')) === 1, await r.ttl(p + 's')]
    await r.setex(p + 'e2', 30, 'v')
    out.getex = [await r.getex(p + 'e2', 'PERSIST'), await r.ttl(p + 'e2')]
    await r.set(p + 'gone', 'v', 'PX', 1)
    await sleep(50)
    out.expired = await r.get(p + 'gone')
    await r.hset(p + 'h', { a: '1', b: '2' })
    out.hash = [
      await r.hgetall(p + 'h'),
      await r.hget(p + 'h', 'a'),
      await r.hincrby(p + 'h', 'c', 3),
      await r.hdel(p + 'h', 'a'),
      (await r.hkeys(p + 'h')).sort()
    ]
    await r.rpush(p + 'l', 'x', 'y', 'z')
    out.list = [await r.lrange(p + 'l', 0, -1), await r.lpop(p + 'l'), await r.blpop(p + 'l', 1), await r.blpop(p + 'empty', 0.1), await r.llen(p + 'l')]
    await r.sadd(p + 'set', 'a', 'b', 'c')
    out.set = [(await r.smembers(p + 'set')).sort(), (await r.sismember(p + 'set', 'a')) === 1, await r.srem(p + 'set', 'c'), await r.scard(p + 'set')]
    await r.zadd(p + 'z', 1, 'a', 2.5, 'b')
    const zr = await r.zrange(p + 'z', 0, -1, 'WITHSCORES')
    out.zset = [
      [
        [zr[0], Number(zr[1])],
        [zr[2], Number(zr[3])]
      ],
      Number(await r.zscore(p + 'z', 'b')),
      Number(await r.zincrby(p + 'z', 1, 'a')),
      await r.zrank(p + 'z', 'b')
    ]
    const keys: string[] = []
    for await (const batch of r.scanStream({ match: p + '*' })) keys.push(...(batch as string[]))
    out.scan = keys.sort()
    out.type = [await r.type(p + 'h'), await r.type(p + 'l'), await r.type(p + 'set'), await r.type(p + 'z'), await r.type(p + 's')]
    const tx = await r
      .multi()
      .incr(p + 'tx')
      .incr(p + 'tx')
      .get(p + 'tx')
      .exec()
    out.multi = tx!.map(([err, v]) => (err ? String(err) : v))
    await r.watch(p + 'tx')
    await other.set(p + 'tx', '100')
    const watched = await r
      .multi()
      .set(p + 'tx', 'mine')
      .exec()
    out.watch = watched === null ? 'aborted' : 'committed'
    out.rename = [(await r.rename(p + 's', p + 's3')) === 'OK', (await r.copy(p + 's3', p + 's4')) === 1, await r.get(p + 's4'), await r.unlink(p + 's4')]
    out.info = /role:(\w+)/.exec(await r.info('replication'))![1]
    out.wrongtype = await r.hget(p + 's3', 'x').then(
      () => null,
      (e: Error) => e.message
    )
    return out
  } finally {
    r.disconnect()
    other.disconnect()
  }
}

/** node-redis 5, in RESP2 (its default) or RESP3 (it sends HELLO 3), with its default reconnect strategy. */
export async function nodeRedisSession(host: string, port: number, p: string, RESP: 2 | 3): Promise<Session> {
  const r = createClient({ socket: { host, port }, RESP })
  r.on('error', () => {})
  await r.connect()
  const other = r.duplicate()
  other.on('error', () => {})
  await other.connect()
  try {
    const out: Session = {}
    out.ping = (await r.ping()) === 'PONG'
    await r.clientSetName(p + 'nr')
    out.clientname = (await r.clientGetName()) === p + 'nr'
    await r.set(p + 's', 'hello')
    out.get = await r.get(p + 's')
    out.setnx = [Number(await r.setNX(p + 's', 'x')) === 1, (await r.set(p + 's2', 'v', { NX: true })) === 'OK']
    out.getset = await r.getSet(p + 's2', 'w')
    out.getdel = [await r.getDel(p + 's2'), await r.exists(p + 's2')]
    out.incr = [await r.incr(p + 'n'), await r.incrBy(p + 'n', 10), await r.decr(p + 'n')]
    await r.set(p + 'e', 'v', { EX: 100 })
    out.ttl = between(await r.ttl(p + 'e'), 99, 100)
    out.expire = [
      Number(await r.expire(p + 's', 50)) === 1,
      between(await r.ttl(p + 's'), 49, 50),
      Number(await r.persist(p + 's')) === 1,
      await r.ttl(p + 's')
    ]
    await r.setEx(p + 'e2', 30, 'v')
    out.getex = [await r.getEx(p + 'e2', { type: 'PERSIST' }), await r.ttl(p + 'e2')]
    await r.set(p + 'gone', 'v', { PX: 1 })
    await sleep(50)
    out.expired = await r.get(p + 'gone')
    await r.hSet(p + 'h', { a: '1', b: '2' })
    out.hash = [
      { ...(await r.hGetAll(p + 'h')) },
      await r.hGet(p + 'h', 'a'),
      await r.hIncrBy(p + 'h', 'c', 3),
      await r.hDel(p + 'h', 'a'),
      (await r.hKeys(p + 'h')).sort()
    ]
    await r.rPush(p + 'l', ['x', 'y', 'z'])
    const pop = (x: { key: string; element: string } | null): string[] | null => (x === null ? null : [x.key, x.element])
    out.list = [
      await r.lRange(p + 'l', 0, -1),
      await r.lPop(p + 'l'),
      pop(await r.blPop(p + 'l', 1)),
      pop(await r.blPop(p + 'empty', 0.1)),
      await r.lLen(p + 'l')
    ]
    await r.sAdd(p + 'set', ['a', 'b', 'c'])
    out.set = [
      [...(await r.sMembers(p + 'set'))].sort(),
      Number(await r.sIsMember(p + 'set', 'a')) === 1,
      await r.sRem(p + 'set', 'c'),
      await r.sCard(p + 'set')
    ]
    await r.zAdd(p + 'z', [
      { score: 1, value: 'a' },
      { score: 2.5, value: 'b' }
    ])
    out.zset = [
      (await r.zRangeWithScores(p + 'z', 0, -1)).map((e) => [e.value, e.score]),
      Number(await r.zScore(p + 'z', 'b')),
      Number(await r.zIncrBy(p + 'z', 1, 'a')),
      await r.zRank(p + 'z', 'b')
    ]
    const keys: string[] = []
    for await (const batch of r.scanIterator({ MATCH: p + '*' })) keys.push(...batch)
    out.scan = keys.sort()
    out.type = [await r.type(p + 'h'), await r.type(p + 'l'), await r.type(p + 'set'), await r.type(p + 'z'), await r.type(p + 's')]
    out.multi = await r
      .multi()
      .incr(p + 'tx')
      .incr(p + 'tx')
      .get(p + 'tx')
      .exec()
    await r.watch(p + 'tx')
    await other.set(p + 'tx', '100')
    out.watch = await r
      .multi()
      .set(p + 'tx', 'mine')
      .exec()
      .then(
        (v) => (v === null ? 'aborted' : 'committed'),
        (e: Error) => (/watched keys has been changed/.test(e.message) ? 'aborted' : 'error: ' + e.message)
      )
    out.rename = [(await r.rename(p + 's', p + 's3')) === 'OK', Number(await r.copy(p + 's3', p + 's4')) === 1, await r.get(p + 's4'), await r.unlink(p + 's4')]
    out.info = /role:(\w+)/.exec(String(await r.info('replication')))![1]
    out.wrongtype = await r.hGet(p + 's3', 'x').then(
      () => null,
      (e: Error) => e.message
    )
    return out
  } finally {
    r.destroy()
    other.destroy()
  }
}

/** What every client's session must have seen; `p` is its key prefix. */
export function expectedSession(p: string): Session {
  return {
    ping: true,
    clientname: true,
    get: 'hello',
    setnx: [false, true],
    getset: 'v',
    getdel: ['w', 0],
    incr: [1, 11, 10],
    ttl: true,
    expire: [true, true, true, -1],
    getex: ['v', -1],
    expired: null,
    hash: [{ a: '1', b: '2' }, '1', 3, 1, ['b', 'c']],
    list: [['x', 'y', 'z'], 'x', [p + 'l', 'y'], null, 1],
    set: [['a', 'b', 'c'], true, 1, 2],
    zset: [
      [
        ['a', 1],
        ['b', 2.5]
      ],
      2.5,
      2,
      1
    ],
    scan: ['e', 'e2', 'h', 'l', 'n', 's', 'set', 'z'].map((k) => p + k),
    type: ['hash', 'list', 'set', 'zset', 'string'],
    multi: [1, 2, '2'],
    watch: 'aborted',
    rename: [true, true, 'hello', 1],
    info: 'master',
    wrongtype: 'WRONGTYPE Operation against a key holding the wrong kind of value'
  }
}

/** a write the client had acknowledged: its key and when (ms since the epoch) */
export type Ack = [key: string, atMs: number]

/** SETs one after another through `count` keys; the keys whose SET was acknowledged (an error is not an acknowledgement). */
export async function ioredisWrites(host: string, port: number, p: string, count: number): Promise<Ack[]> {
  const r = new IORedis({ host, port })
  r.on('error', () => {})
  const acked: Ack[] = []
  try {
    for (let i = 0; i < count; i++) {
      const k = p + 'w' + i
      if ((await r.set(k, String(i)).catch(() => null)) === 'OK') acked.push([k, Date.now()])
    }
  } finally {
    r.disconnect()
  }
  return acked
}

export async function nodeRedisWrites(host: string, port: number, p: string, count: number, RESP: 2 | 3): Promise<Ack[]> {
  const r = createClient({ socket: { host, port }, RESP })
  r.on('error', () => {})
  await r.connect()
  const acked: Ack[] = []
  try {
    for (let i = 0; i < count; i++) {
      const k = p + 'w' + i
      if ((await r.set(k, String(i)).catch(() => null)) === 'OK') acked.push([k, Date.now()])
    }
  } finally {
    r.destroy()
  }
  return acked
}
