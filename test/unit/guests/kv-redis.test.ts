// What real Redis clients rely on beyond plain strings: HELLO and RESP3, CLIENT, INFO,
// transactions, expiry on the guest's virtual clock (replayed by the backup), blocking pops
// whose timeouts are timers, and the data types' persistence. Rig replays every entry on a
// backup and checks its state hash and outputs after each one.
import { describe, expect, it } from 'vitest'
import { encodeCommand } from '../../../agent/guests/resp.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import type { Entropy, Output } from '../../../agent/vmm/types.js'
import { Rig, applyDiskWrite, bytes, latin1, repliesTo } from '../vmm/harness.js'

/** a Rig whose clock stands still unless the test moves it */
function rigAt(t0: number, opts: ConstructorParameters<typeof Rig>[1] = {}): Rig & { clock: { t: number } } {
  const rig = new Rig('kv', opts) as Rig & { clock: { t: number } }
  const clock = { t: t0 }
  rig.clock = clock
  ;(rig.entropy as { now: () => number }).now = () => clock.t
  rig.boot()
  return rig
}

const wire = (...args: string[]): string => latin1(encodeCommand(args))

describe('kv speaks to Redis clients', () => {
  it('HELLO 3 switches the connection to RESP3 replies, HELLO 2 back; other connections stay RESP2', () => {
    const rig = rigAt(1_000_000)
    const c = (...a: string[]) => rig.cmd('t:1', ...a)
    const hello = c('HELLO', '3', 'SETNAME', 'py')
    expect(hello).toMatch(/^%7\r\n\$6\r\nserver\r\n\$5\r\nredis\r\n\$7\r\nversion\r\n\$6\r\n7\.0\.15\r\n\$5\r\nproto\r\n:3\r\n\$2\r\nid\r\n:[0-9]+\r\n/)
    expect(c('CLIENT', 'GETNAME')).toBe('$2\r\npy\r\n')
    expect(c('GET', 'nope')).toBe('_\r\n')
    c('HSET', 'h', 'a', '1')
    expect(c('HGETALL', 'h')).toBe('%1\r\n$1\r\na\r\n$1\r\n1\r\n')
    c('ZADD', 'z', '1.5', 'm')
    expect(c('ZSCORE', 'z', 'm')).toBe(',1.5\r\n')
    expect(rig.cmd('t:2', 'GET', 'nope')).toBe('$-1\r\n')
    expect(c('HELLO', '2')).toMatch(/^\*14\r\n/)
    expect(c('GET', 'nope')).toBe('$-1\r\n')
    expect(c('HELLO', '3', 'AUTH', 'default', 'anything')).toMatch(/^%7\r\n/)
    expect(c('HELLO', '5')).toBe('-NOPROTO unsupported protocol version\r\n')
  })

  it('numbers connections for CLIENT ID and takes CLIENT SETINFO', () => {
    const rig = rigAt(1_000_000)
    rig.step({ t: 'open', conn: 't:1' })
    rig.step({ t: 'open', conn: 't:2' })
    expect(rig.cmd('t:1', 'CLIENT', 'ID')).toBe(':1\r\n')
    expect(rig.cmd('t:2', 'CLIENT', 'ID')).toBe(':2\r\n')
    expect(rig.cmd('t:1', 'CLIENT', 'SETINFO', 'LIB-NAME', 'redis-py')).toBe('+OK\r\n')
    expect(rig.cmd('t:1', 'CLIENT', 'SETINFO', 'NOPE', 'x')).toBe("-ERR Unrecognized option 'NOPE'\r\n")
  })

  it('INFO has the sections clients read, and answers one section when asked', () => {
    const rig = rigAt(1_000_000)
    rig.cmd('t:1', 'SET', 'a', '1', 'EX', '100')
    const all = rig.cmd('t:1', 'INFO')
    for (const s of ['Server', 'Clients', 'Persistence', 'Replication', 'Keyspace']) expect(all).toContain('# ' + s + '\r\n')
    expect(all).toMatch(/db0:keys=1,expires=1,/)
    const repl = rig.cmd('t:1', 'INFO', 'replication')
    expect(repl).toMatch(/^\$[0-9]+\r\n# Replication\r\nrole:master\r\n/)
    expect(repl).not.toContain('# Server')
  })

  it("INFO replication tells the serving replica's facts from the replica device, logged so the backup replays them", () => {
    const rig = rigAt(1_000_000)
    ;(rig.entropy as { replica?: () => string }).replica = () => 'ftlab_role:primary\nftlab_generation:7\nftlab_channel_lag_entries:2\n'
    const r = rig.step({ t: 'data', conn: 't:1', data: encodeCommand(['INFO', 'replication']) })
    expect(repliesTo('t:1', r.outputs)).toContain('ftlab_role:primary\r\nftlab_generation:7\r\nftlab_channel_lag_entries:2\r\n')
    // the backup (whose own entropy throws) produced the same reply from the logged value: Rig compared the outputs
    expect((r.body as { nondet: unknown[] }).nondet).toEqual([{ d: 'replica', v: 'ftlab_role:primary\nftlab_generation:7\nftlab_channel_lag_entries:2\n' }])
    // other sections do not read it
    const s = rig.step({ t: 'data', conn: 't:1', data: encodeCommand(['INFO', 'keyspace']) })
    expect((s.body as { nondet: unknown[] }).nondet).toEqual([])
  })
})

describe('kv transactions', () => {
  it('queues between MULTI and EXEC and runs the queue in one reply', () => {
    const rig = rigAt(1_000_000)
    const r = rig.raw('t:1', wire('MULTI') + wire('INCR', 'n') + wire('INCR', 'n') + wire('GET', 'n') + wire('EXEC'))
    expect(r).toBe('+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n:1\r\n:2\r\n$1\r\n2\r\n')
  })

  it('fails the EXEC of a connection whose watched key another connection changed', () => {
    const rig = rigAt(1_000_000)
    expect(rig.cmd('t:1', 'WATCH', 'k')).toBe('+OK\r\n')
    expect(rig.cmd('t:1', 'MULTI')).toBe('+OK\r\n')
    expect(rig.cmd('t:1', 'SET', 'k', 'mine')).toBe('+QUEUED\r\n')
    expect(rig.cmd('t:2', 'SET', 'k', 'theirs')).toBe('+OK\r\n')
    expect(rig.cmd('t:1', 'EXEC')).toBe('*-1\r\n')
    expect(rig.cmd('t:1', 'GET', 'k')).toBe('$6\r\ntheirs\r\n')
    // a key that expires after the WATCH counts as changed when it is found expired
    rig.cmd('t:1', 'SET', 'e', 'v', 'PX', '10')
    rig.cmd('t:1', 'WATCH', 'e')
    rig.clock.t += 20
    expect(rig.cmd('t:2', 'GET', 'e')).toBe('$-1\r\n')
    rig.cmd('t:1', 'MULTI')
    expect(rig.cmd('t:1', 'EXEC')).toBe('*-1\r\n')
  })

  it('forgets a transaction and its watches when the connection closes (a failover closes it too)', () => {
    const rig = rigAt(1_000_000)
    rig.cmd('t:1', 'WATCH', 'k')
    rig.cmd('t:1', 'MULTI')
    rig.cmd('t:1', 'SET', 'k', 'v')
    rig.step({ t: 'close', conn: 't:1' })
    expect(rig.cmd('t:1', 'EXEC')).toBe('-ERR EXEC without MULTI\r\n')
    expect(rig.primary.stateHash()).toBe(rig.backup!.stateHash())
  })
})

describe('kv expiry on the virtual clock', () => {
  it('expires keys by the clock device; TTL and PTTL count down with it', () => {
    const rig = rigAt(1_000_000)
    const c = (...a: string[]) => rig.cmd('t:1', ...a)
    c('SET', 'a', '1', 'PX', '1500')
    c('SET', 'b', '2')
    expect(c('EXPIRE', 'b', '10')).toBe(':1\r\n')
    expect(c('PTTL', 'a')).toBe(':1500\r\n')
    rig.clock.t += 1000
    expect(c('PTTL', 'a')).toBe(':500\r\n')
    expect(c('TTL', 'b')).toBe(':9\r\n')
    rig.clock.t += 499
    expect(c('GET', 'a')).toBe('$1\r\n1\r\n')
    rig.clock.t += 1
    expect(c('GET', 'a')).toBe('$-1\r\n')
    expect(c('KEYS', '*')).toBe('*1\r\n$1\r\nb\r\n')
    expect(c('PERSIST', 'b')).toBe(':1\r\n')
    rig.clock.t += 60_000
    expect(c('GET', 'b')).toBe('$1\r\n2\r\n')
  })

  it('does not let time run back: a clock that goes backwards does not revive an expired key', () => {
    const rig = rigAt(1_000_000)
    rig.cmd('t:1', 'SET', 'a', '1', 'PX', '100')
    rig.clock.t += 200
    expect(rig.cmd('t:1', 'GET', 'a')).toBe('$-1\r\n')
    rig.cmd('t:1', 'SET', 'b', '1', 'PX', '100')
    rig.clock.t -= 10_000
    expect(rig.cmd('t:1', 'PTTL', 'b')).toBe(':100\r\n')
  })

  it('a backup that goes live with its clock behind the primary reads no key the primary saw expire', () => {
    let primaryNow = 5_000_000
    let backupNow = 0
    const entropy = (now: () => number): Entropy => ({ now, u32: () => 7 })
    const primary = createVmm({ guest: 'kv', mode: 'rsm', entropy: entropy(() => primaryNow) })
    const backup = createVmm({ guest: 'kv', mode: 'rsm', entropy: entropy(() => backupNow) })
    const disk = new Map<number, Uint8Array>()
    const step = (input: Parameters<typeof primary.execute>[0]): Output[] => {
      const r = primary.execute(input)
      backup.replay(structuredClone(r.body))
      expect(backup.stateHash()).toBe(primary.stateHash())
      for (const o of r.outputs) if (o.t === 'disk-write') applyDiskWrite(disk, o)
      for (const io of r.io) if (io.t === 'disk-read') step({ t: 'disk-read', tag: io.tag, block: io.block, data: disk.get(io.block) ?? new Uint8Array(0) })
      return r.outputs
    }
    step({ t: 'boot' })
    step({ t: 'data', conn: 't:1', data: encodeCommand(['CONFIG', 'SET', 'appendfsync', 'no']) })
    step({ t: 'data', conn: 't:1', data: encodeCommand(['SET', 'session', 'x', 'PX', '1000']) })
    primaryNow += 1000
    expect(repliesTo('t:1', step({ t: 'data', conn: 't:1', data: encodeCommand(['EXISTS', 'session']) }))).toBe(':0\r\n')
    // the primary dies; the backup goes live with a clock far behind the last value the primary logged
    backupNow = primaryNow - 60_000
    const r = backup.execute({ t: 'data', conn: 't:2', data: encodeCommand(['GET', 'session']) })
    expect(repliesTo('t:2', r.outputs)).toBe('$-1\r\n')
    const t = backup.execute({ t: 'data', conn: 't:2', data: encodeCommand(['TIME']) })
    expect(Number(/^\*2\r\n\$[0-9]+\r\n([0-9]+)/.exec(repliesTo('t:2', t.outputs))![1])).toBeGreaterThanOrEqual(primaryNow / 1000)
  })

  it('keeps expiry times on disk as absolute times: a guest booted from disk expires the same keys', () => {
    const rig = rigAt(1_000_000)
    rig.cmd('t:1', 'SET', 'short', '1', 'EX', '10')
    rig.cmd('t:1', 'SET', 'long', '1')
    rig.cmd('t:1', 'EXPIRE', 'long', '1000')
    rig.cmd('t:1', 'SET', 'kept', '1', 'EX', '10')
    rig.cmd('t:1', 'PERSIST', 'kept')
    const fresh = new Rig('kv', { disk: rig.disk })
    ;(fresh.entropy as { now: () => number }).now = () => 1_000_000 + 20_000
    fresh.boot()
    expect(fresh.cmd('t:1', 'MGET', 'short', 'long', 'kept')).toBe('*3\r\n$-1\r\n$1\r\n1\r\n$1\r\n1\r\n')
    expect(fresh.cmd('t:1', 'TTL', 'long')).toBe(':980\r\n')
    expect(fresh.cmd('t:1', 'TTL', 'kept')).toBe(':-1\r\n')
  })
})

describe('kv blocking pops', () => {
  it('a blocked BLPOP gets the element another connection pushes, and its pipelined commands run after it', () => {
    const rig = rigAt(1_000_000)
    expect(rig.raw('t:1', wire('BLPOP', 'q', '5') + wire('PING'))).toBe('')
    expect(rig.timers.size).toBe(1)
    const r = rig.step({ t: 'data', conn: 't:2', data: bytes(wire('RPUSH', 'q', 'job')) })
    const outs = [...r.outputs]
    for (const o of r.outputs) if (o.t === 'disk-sync') outs.push(...rig.step({ t: 'disk-synced', tag: o.tag }).outputs)
    expect(repliesTo('t:2', outs)).toBe(':1\r\n')
    expect(repliesTo('t:1', outs)).toBe('*2\r\n$1\r\nq\r\n$3\r\njob\r\n+PONG\r\n')
    expect(rig.cmd('t:2', 'LLEN', 'q')).toBe(':0\r\n')
  })

  it('times out on a timer (a logged input) with a nil reply', () => {
    const rig = rigAt(1_000_000)
    expect(rig.cmd('t:1', 'BRPOP', 'q', '0.25')).toBe('')
    const [[id, ms]] = [...rig.timers]
    expect(ms).toBe(250)
    expect(repliesTo('t:1', rig.fire(id).outputs)).toBe('*-1\r\n')
    expect(rig.cmd('t:1', 'RPUSH', 'q', 'x')).toBe(':1\r\n')
  })

  it('a closed connection stops waiting', () => {
    const rig = rigAt(1_000_000)
    rig.cmd('t:1', 'BLPOP', 'q', '0')
    rig.step({ t: 'close', conn: 't:1' })
    expect(rig.cmd('t:2', 'RPUSH', 'q', 'x')).toBe(':1\r\n')
    expect(rig.cmd('t:2', 'LLEN', 'q')).toBe(':1\r\n')
  })
})

describe('kv persistence of every type', () => {
  it('a guest booted from disk has the same hashes, lists, sets, sorted sets and streams', () => {
    const rig = rigAt(1_000_000)
    const c = (...a: string[]) => rig.cmd('t:1', ...a)
    c('HSET', 'h', 'a', '1', 'b', '2')
    c('HDEL', 'h', 'a')
    c('HINCRBY', 'h', 'n', '5')
    c('RPUSH', 'l', 'a', 'b', 'c', 'd')
    c('LPOP', 'l')
    c('LSET', 'l', '0', 'B')
    c('SADD', 's', 'x', 'y', 'z')
    c('SPOP', 's')
    c('ZADD', 'z', '1', 'a', '2', 'b', '3', 'c')
    c('ZINCRBY', 'z', '10', 'a')
    c('ZPOPMAX', 'z')
    c('XADD', 'x', '*', 'f', 'v')
    c('RENAME', 'l', 'l2')
    const dump = (r: Rig): string[] =>
      ['HGETALL h', 'LRANGE l2 0 -1', 'SMEMBERS s', 'ZRANGE z 0 -1 WITHSCORES', 'XRANGE x - +', 'DBSIZE'].map((q) => r.cmd('t:1', ...q.split(' ')))
    const before = dump(rig)
    const fresh = new Rig('kv', { disk: rig.disk })
    fresh.boot()
    expect(dump(fresh)).toEqual(before)
    expect(before[1]).toBe('*3\r\n$1\r\nB\r\n$1\r\nc\r\n$1\r\nd\r\n')
  })
})
