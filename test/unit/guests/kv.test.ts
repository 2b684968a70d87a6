import { describe, expect, it } from 'vitest'
import { BLOCK_SIZE } from '../../../agent/guests/kv.js'
import { encodeCommand } from '../../../agent/guests/resp.js'
import { Rig, bytes, latin1, repliesTo } from '../vmm/harness.js'

function booted(opts: ConstructorParameters<typeof Rig>[1] = {}): Rig {
  const rig = new Rig('kv', opts)
  rig.boot()
  return rig
}

const wire = (...args: string[]): string => latin1(encodeCommand(args))

describe('kv commands', () => {
  it('answers the basics the way Redis does', () => {
    const rig = booted()
    const c = (...a: string[]) => rig.cmd('t:1', ...a)
    expect(c('PING')).toBe('+PONG\r\n')
    expect(c('ping', 'hi')).toBe('$2\r\nhi\r\n')
    expect(c('ECHO', 'x y')).toBe('$3\r\nx y\r\n')
    expect(c('GET', 'a')).toBe('$-1\r\n')
    expect(c('SET', 'a', '1')).toBe('+OK\r\n')
    expect(c('SET', 'a', '2', 'NX')).toBe('$-1\r\n')
    expect(c('SET', 'b', '2', 'XX')).toBe('$-1\r\n')
    expect(c('SET', 'a', '3', 'XX')).toBe('+OK\r\n')
    expect(c('SET', 'a', '3', 'EX', 'ten')).toBe('-ERR value is not an integer or out of range\r\n')
    expect(c('GET', 'a')).toBe('$1\r\n3\r\n')
    expect(c('INCR', 'a')).toBe(':4\r\n')
    expect(c('INCRBY', 'a', '-10')).toBe(':-6\r\n')
    expect(c('DECR', 'n')).toBe(':-1\r\n')
    expect(c('INCRBY', 'n', 'x')).toBe('-ERR value is not an integer or out of range\r\n')
    expect(c('SET', 's', 'text')).toBe('+OK\r\n')
    expect(c('INCR', 's')).toBe('-ERR value is not an integer or out of range\r\n')
    expect(c('SET', 'big', '9223372036854775807')).toBe('+OK\r\n')
    expect(c('INCR', 'big')).toBe('-ERR increment or decrement would overflow\r\n')
    expect(c('MSET', 'x', '1', 'y', '2')).toBe('+OK\r\n')
    expect(c('MGET', 'x', 'nope', 'y')).toBe('*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n')
    expect(c('EXISTS', 'x', 'x', 'nope')).toBe(':2\r\n')
    expect(c('DEL', 'x', 'nope')).toBe(':1\r\n')
    expect(c('DBSIZE')).toBe(':5\r\n')
    expect(c('KEYS', '[bs]*')).toBe('*2\r\n$3\r\nbig\r\n$1\r\ns\r\n')
    expect(c('KEYS', '?')).toBe('*4\r\n$1\r\na\r\n$1\r\nn\r\n$1\r\ns\r\n$1\r\ny\r\n')
    expect(c('FLUSHALL')).toBe('+OK\r\n')
    expect(c('DBSIZE')).toBe(':0\r\n')
    expect(c('NOPE', 'a')).toBe("-ERR unknown command 'NOPE', with args beginning with: 'a' \r\n")
    expect(c('GET')).toBe("-ERR wrong number of arguments for 'get' command\r\n")
  })

  it('counts INCR and DECR exactly on both sides of the range a double holds exactly, and a guest booted from disk agrees', () => {
    const rig = booted()
    const c = (...a: string[]) => rig.cmd('t:1', ...a)
    c('SET', 'a', '999999999999999')
    expect(c('INCR', 'a')).toBe(':1000000000000000\r\n')
    expect(c('INCR', 'a')).toBe(':1000000000000001\r\n')
    c('SET', 'b', '-999999999999999')
    expect(c('DECR', 'b')).toBe(':-1000000000000000\r\n')
    // past 2^53 a double would answer 9007199254740992 again
    c('SET', 'c', '9007199254740992')
    expect(c('INCR', 'c')).toBe(':9007199254740993\r\n')
    c('SET', 'd', '-9223372036854775808')
    expect(c('DECR', 'd')).toBe('-ERR increment or decrement would overflow\r\n')
    expect(c('INCR', 'd')).toBe(':-9223372036854775807\r\n')
    for (const bad of ['-0', '01', '+1', ' 1', '1.0', '']) {
      c('SET', 'e', bad)
      expect(c('INCR', 'e'), `INCR of '${bad}'`).toBe('-ERR value is not an integer or out of range\r\n')
      expect(c('GET', 'e')).toBe(`$${bad.length}\r\n${bad}\r\n`)
    }
    expect(c('DECR', 'zero')).toBe(':-1\r\n')
    expect(c('INCR', 'zero')).toBe(':0\r\n')
    expect(c('INCR', 'zero')).toBe(':1\r\n')
    // INCR keeps an expiry, as SET KEEPTTL does
    c('SET', 't', '5', 'EX', '100')
    expect(c('INCR', 't')).toBe(':6\r\n')
    expect(c('TTL', 't')).toMatch(/^:(99|100)\r\n/)
    const fresh = new Rig('kv', { disk: rig.disk, seed: 2 })
    fresh.boot()
    const f = (...a: string[]) => fresh.cmd('t:1', ...a)
    expect([f('GET', 'a'), f('GET', 'b'), f('GET', 'c'), f('GET', 'd'), f('GET', 'zero')]).toEqual([
      '$16\r\n1000000000000001\r\n',
      '$17\r\n-1000000000000000\r\n',
      '$16\r\n9007199254740993\r\n',
      '$20\r\n-9223372036854775807\r\n',
      '$1\r\n1\r\n'
    ])
  })

  it('answers what redis-cli and redis-benchmark ask first', () => {
    const rig = booted()
    const c = (...a: string[]) => rig.cmd('t:1', ...a)
    expect(c('COMMAND', 'DOCS')).toBe('*0\r\n')
    expect(c('CONFIG', 'GET', 'save')).toBe('*2\r\n$4\r\nsave\r\n$0\r\n\r\n')
    expect(c('CONFIG', 'GET', 'appendonly')).toBe('*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n')
    expect(c('CONFIG', 'GET', 'nosuch')).toBe('*0\r\n')
    expect(c('CLIENT', 'SETNAME', 'bench')).toBe('+OK\r\n')
    expect(c('CLIENT', 'GETNAME')).toBe('$5\r\nbench\r\n')
    expect(c('SELECT', '0')).toBe('+OK\r\n')
    expect(c('SELECT', '1')).toBe('-ERR DB index is out of range\r\n')
    expect(c('INFO')).toMatch(/# Replication\r\nrole:master\r\n[\s\S]*db0:keys=0/)
  })

  it('is binary-safe in keys and values', () => {
    const rig = booted()
    const all = new Uint8Array(256).map((_, i) => i)
    expect(rig.cmd('t:1', 'SET', all, all)).toBe('+OK\r\n')
    expect(rig.cmd('t:1', 'GET', all)).toBe('$256\r\n' + latin1(all) + '\r\n')
  })

  it('reads TIME from the clock device and RANDOMKEY from the random device', () => {
    const rig = booted()
    expect(rig.cmd('t:1', 'RANDOMKEY')).toBe('$-1\r\n')
    rig.cmd('t:1', 'MSET', 'a', '1', 'b', '2', 'c', '3')
    const r = rig.step({ t: 'data', conn: 't:1', data: encodeCommand(['RANDOMKEY']) })
    const body = r.body as { nondet: { d: string; v: number }[] }
    expect(body.nondet).toEqual([{ d: 'random', v: expect.any(Number) }])
    expect(repliesTo('t:1', r.outputs)).toBe('$1\r\n' + 'abc'[body.nondet[0].v % 3] + '\r\n')
    const t = rig.step({ t: 'data', conn: 't:1', data: encodeCommand(['TIME']) })
    const now = (t.body as { nondet: { v: number }[] }).nondet[0].v
    expect(repliesTo('t:1', t.outputs)).toBe(latin1(encodeCommand([String(Math.floor(now / 1000)), String((now % 1000) * 1000)])))
  })
})

describe('kv framing', () => {
  it('buffers a command split across many data inputs, byte by byte', () => {
    const rig = booted()
    const w = wire('SET', 'key', 'va\r\nlue') + wire('GET', 'key')
    let replies = ''
    for (let i = 0; i < w.length; i++) {
      const got = rig.raw('t:1', w[i])
      if (i < w.length - wire('GET', 'key').length - 1) expect(got).toBe('')
      replies += got
    }
    expect(replies).toBe('+OK\r\n$7\r\nva\r\nlue\r\n')
  })

  it('answers a pipeline in order, in one reply output', () => {
    const rig = booted()
    const pipeline = Array.from({ length: 50 }, () => wire('INCR', 'n')).join('')
    const r = rig.step({ t: 'data', conn: 't:1', data: bytes(pipeline) })
    expect(r.outputs.filter((o) => o.t === 'reply')).toHaveLength(0) // appendfsync always: held until the writes are durable
    const sync = r.outputs.find((o) => o.t === 'disk-sync')!
    const done = rig.step({ t: 'disk-synced', tag: sync.t === 'disk-sync' ? sync.tag : -1 })
    expect(done.outputs.filter((o) => o.t === 'reply')).toHaveLength(1)
    expect(repliesTo('t:1', done.outputs)).toBe(Array.from({ length: 50 }, (_, i) => `:${i + 1}\r\n`).join(''))
  })

  it('accepts inline commands', () => {
    const rig = booted()
    expect(rig.raw('t:1', 'SET greeting "hello world"\r\nGET greeting\n')).toBe('+OK\r\n$11\r\nhello world\r\n')
  })

  it('answers bad input with a protocol error and closes that connection only', () => {
    const rig = booted()
    const r = rig.step({ t: 'data', conn: 't:1', data: bytes('PING\r\n*1\r\n+oops\r\n') })
    expect(repliesTo('t:1', r.outputs)).toBe("+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n")
    expect(r.outputs.at(-1)).toEqual({ t: 'close', conn: 't:1' })
    expect(rig.primary.isOpen('t:1')).toBe(false)
    expect(rig.cmd('t:2', 'PING')).toBe('+PONG\r\n')
  })

  it('keeps partial frames per connection', () => {
    const rig = booted()
    const a = wire('SET', 'a', 'from-1')
    const b = wire('SET', 'b', 'from-2')
    expect(rig.raw('t:1', a.slice(0, 9))).toBe('')
    expect(rig.raw('t:2', b.slice(0, 12))).toBe('')
    expect(rig.raw('t:1', a.slice(9))).toBe('+OK\r\n')
    expect(rig.raw('t:2', b.slice(12))).toBe('+OK\r\n')
    expect(rig.cmd('t:3', 'MGET', 'a', 'b')).toBe('*2\r\n$6\r\nfrom-1\r\n$6\r\nfrom-2\r\n')
  })

  it('forgets a partial frame when its connection closes or reopens', () => {
    const rig = booted()
    rig.raw('t:1', '*2\r\n$3\r\nGET')
    rig.step({ t: 'close', conn: 't:1' })
    expect(rig.raw('t:1', 'PING\r\n')).toBe('+PONG\r\n')
    rig.raw('s:c', '*2\r\n$3\r\nGET')
    rig.step({ t: 'open', conn: 's:c' })
    expect(rig.raw('s:c', 'PING\r\n')).toBe('+PONG\r\n')
  })
})

describe('FTREQ and the reply table', () => {
  it('answers a retried seq from the table without executing it again', () => {
    const rig = booted()
    const first = rig.cmd('s:c1', 'FTREQ', 'c1', '1', 'INCR', 'n')
    expect(first).toBe('*2\r\n:1\r\n:1\r\n')
    // the retry may come on another connection (the client followed the service to a new primary)
    expect(rig.cmd('s:c1-again', 'FTREQ', 'c1', '1', 'INCR', 'n')).toBe(first)
    expect(rig.cmd('t:1', 'GET', 'n')).toBe('$1\r\n1\r\n')
    expect(rig.cmd('s:c1', 'FTREQ', 'c1', '2', 'INCR', 'n')).toBe('*2\r\n:2\r\n:2\r\n')
    expect(rig.cmd('s:c1', 'FTREQ', 'c1', '1', 'INCR', 'n')).toMatch(/^\*2\r\n:1\r\n-ERR FTREQ seq 1 of client c1 is older than its last request 2\r\n$/)
    expect(rig.cmd('s:c2', 'FTREQ', 'c2', '1', 'GET', 'n')).toBe('*2\r\n:1\r\n$1\r\n2\r\n')
    expect(rig.cmd('t:1', 'GET', 'n')).toBe('$1\r\n2\r\n')
  })

  it('keeps the table in replicated state, so a backup answers a retry the same way', () => {
    const rig = booted()
    rig.cmd('s:c1', 'FTREQ', 'c1', '7', 'SET', 'k', 'v')
    const backupReply = rig.backup!.execute({ t: 'data', conn: 's:c1', data: encodeCommand(['FTREQ', 'c1', '7', 'SET', 'k', 'v']) })
    expect(repliesTo('s:c1', backupReply.outputs)).toBe('*2\r\n:7\r\n+OK\r\n')
    expect(backupReply.outputs.filter((o) => o.t === 'disk-write')).toEqual([])
  })

  it('keeps the reply-table entry of a write on disk, so a guest booted from disk answers the retry instead of counting it twice', () => {
    const rig = booted()
    expect(rig.cmd('s:c1', 'FTREQ', 'c1', '1', 'INCR', 'n')).toBe('*2\r\n:1\r\n:1\r\n')
    const applied = rig.cmd('s:c1', 'FTREQ', 'c1', '2', 'INCR', 'n')
    expect(applied).toBe('*2\r\n:2\r\n:2\r\n')
    // both replicas die; the reply to seq 2 never reached the client, which retries on the replica booted from disk
    const fresh = new Rig('kv', { disk: rig.disk, seed: 5 })
    fresh.boot()
    expect(fresh.cmd('s:c1', 'FTREQ', 'c1', '2', 'INCR', 'n')).toBe(applied)
    expect(fresh.cmd('t:1', 'GET', 'n')).toBe('$1\r\n2\r\n')
    expect(fresh.cmd('s:c1', 'FTREQ', 'c1', '3', 'INCR', 'n')).toBe('*2\r\n:3\r\n:3\r\n')
  })

  it('refuses malformed FTREQ', () => {
    const rig = booted()
    expect(rig.cmd('t:1', 'FTREQ', 'c1', 'x', 'PING')).toMatch(/^-ERR FTREQ sequence number must be a non-negative integer/)
    expect(rig.cmd('t:1', 'FTREQ', 'c1', '1')).toMatch(/^-ERR wrong number of arguments for 'ftreq'/)
    expect(rig.cmd('t:1', 'FTREQ', 'c1', '1', 'FTREQ', 'c1', '2', 'PING')).toBe('*2\r\n:1\r\n-ERR FTREQ cannot be nested\r\n')
  })
})

describe('kv persistence', () => {
  it('writes the superblock after the log blocks an input touched', () => {
    const rig = booted()
    const r = rig.step({ t: 'data', conn: 't:1', data: encodeCommand(['SET', 'a', 'b']) })
    const writes = r.outputs.filter((o) => o.t === 'disk-write') as { block: number; data: Uint8Array }[]
    expect(writes.map((w) => w.block)).toEqual([1, 0])
    expect(latin1(writes[0].data)).toBe('S1:a1:b')
    expect(latin1(writes[1].data)).toBe('FTKV1 7\n')
    expect(BLOCK_SIZE).toBe(4096)
  })

  it('recovers its data from the disk blocks on a fresh VMM', () => {
    const rig = booted()
    const e = rig.entropy
    const model = new Map<string, string>()
    for (let i = 0; i < 300; i++) {
      const k = 'k' + e.below(40)
      if (e.below(4) === 0) {
        rig.cmd('t:1', 'DEL', k)
        model.delete(k)
      } else {
        const v = String.fromCharCode(...Array.from({ length: e.below(200) }, () => e.below(256)))
        rig.cmd('t:1', 'SET', bytes(k), bytes(v))
        model.set(k, v)
      }
    }
    expect(rig.disk.size).toBeGreaterThan(3) // the log spans several blocks
    for (const b of rig.disk.values()) expect(b.length).toBeLessThanOrEqual(BLOCK_SIZE)

    const fresh = new Rig('kv', { disk: rig.disk, seed: 2 })
    fresh.boot()
    expect(fresh.cmd('t:1', 'DBSIZE')).toBe(`:${model.size}\r\n`)
    for (const [k, v] of model) expect(fresh.cmd('t:1', 'GET', k)).toBe(`$${v.length}\r\n${v}\r\n`)
    // and it goes on appending where the old log ended
    fresh.cmd('t:1', 'SET', 'after', 'restart')
    const third = new Rig('kv', { disk: fresh.disk, seed: 3 })
    third.boot()
    expect(third.cmd('t:1', 'GET', 'after')).toBe('$7\r\nrestart\r\n')
    expect(third.cmd('t:1', 'DBSIZE')).toBe(`:${model.size + 1}\r\n`)
  })

  it('starts empty after FLUSHALL, and on an empty or foreign disk', () => {
    const rig = booted()
    rig.cmd('t:1', 'SET', 'a', '1')
    rig.cmd('t:1', 'FLUSHALL')
    rig.cmd('t:1', 'SET', 'b', '2')
    const fresh = new Rig('kv', { disk: rig.disk })
    fresh.boot()
    expect(fresh.cmd('t:1', 'KEYS', '*')).toBe('*1\r\n$1\r\nb\r\n')
    const foreign = new Rig('kv', { disk: new Map([[0, bytes('FTBANK1 2 5 5\n')]]) })
    foreign.boot()
    expect(foreign.cmd('t:1', 'DBSIZE')).toBe(':0\r\n')
  })

  it('keeps the records before a torn log end', () => {
    const rig = booted()
    rig.cmd('t:1', 'SET', 'a', '1')
    rig.cmd('t:1', 'SET', 'b', '2')
    const disk = new Map(rig.disk)
    disk.set(1, bytes('S1:a1:1S1:b5:2')) // the second record is cut short
    const fresh = new Rig('kv', { disk })
    // the superblock rewritten over the torn end is synced: a reply waits while a barrier is pending
    for (const r of fresh.boot()) for (const o of r.outputs) if (o.t === 'disk-sync') fresh.step({ t: 'disk-synced', tag: o.tag })
    expect(fresh.cmd('t:1', 'MGET', 'a', 'b')).toBe('*2\r\n$1\r\n1\r\n$-1\r\n')
  })

  it('holds requests that arrive during recovery and answers them once the log is applied', () => {
    const rig = booted()
    rig.cmd('t:1', 'SET', 'a', 'before')
    const fresh = new Rig('kv', { disk: rig.disk })
    fresh.step({ t: 'boot' })
    expect(fresh.raw('t:7', wire('GET', 'a'))).toBe('')
    expect(fresh.raw('t:8', wire('SET', 'a', 'during'))).toBe('')
    const results = fresh.answerReads()
    const outputs = results.flatMap((r) => r.outputs)
    for (const o of [...outputs]) if (o.t === 'disk-sync') outputs.push(...fresh.step({ t: 'disk-synced', tag: o.tag }).outputs)
    expect(repliesTo('t:7', outputs)).toBe('$6\r\nbefore\r\n')
    expect(repliesTo('t:8', outputs)).toBe('+OK\r\n')
    expect(fresh.cmd('t:1', 'GET', 'a')).toBe('$6\r\nduring\r\n')
  })
})

describe('kv durability (appendfsync)', () => {
  const syncOf = (outputs: { t: string }[]): number => {
    const s = outputs.find((o) => o.t === 'disk-sync') as { tag: number } | undefined
    if (!s) throw new Error(`no disk-sync among ${JSON.stringify(outputs.map((o) => o.t))}`)
    return s.tag
  }

  it('with always (the default), holds a write reply until its disk writes are durable, and every later reply behind it', () => {
    const rig = booted()
    expect(rig.cmd('t:1', 'CONFIG', 'GET', 'appendfsync')).toBe('*2\r\n$11\r\nappendfsync\r\n$6\r\nalways\r\n')
    const set = rig.step({ t: 'data', conn: 't:1', data: bytes(wire('SET', 'a', '1')) })
    expect(set.outputs.map((o) => o.t)).toEqual(['disk-write', 'disk-write', 'disk-sync'])
    const get = rig.step({ t: 'data', conn: 't:2', data: bytes(wire('GET', 'a')) })
    expect(get.outputs).toEqual([]) // behind the held reply
    const done = rig.step({ t: 'disk-synced', tag: syncOf(set.outputs) })
    expect(repliesTo('t:1', done.outputs)).toBe('+OK\r\n')
    expect(repliesTo('t:2', done.outputs)).toBe('$1\r\n1\r\n')
    // nothing waiting: a read is answered at once, and a second completion does nothing
    expect(rig.step({ t: 'data', conn: 't:2', data: bytes(wire('GET', 'a')) }).outputs.map((o) => o.t)).toEqual(['reply'])
    expect(rig.step({ t: 'disk-synced', tag: syncOf(set.outputs) }).outputs).toEqual([])
  })

  it('with no (or none), answers at once as before and asks for no barrier', () => {
    const rig = booted()
    expect(rig.cmd('t:1', 'CONFIG', 'SET', 'appendfsync', 'none')).toBe('+OK\r\n')
    expect(rig.cmd('t:1', 'CONFIG', 'GET', 'appendfsync')).toBe('*2\r\n$11\r\nappendfsync\r\n$2\r\nno\r\n')
    const set = rig.step({ t: 'data', conn: 't:1', data: bytes(wire('SET', 'a', '1')) })
    expect(set.outputs.map((o) => o.t)).toEqual(['disk-write', 'disk-write', 'reply'])
    expect(rig.cmd('t:1', 'CONFIG', 'SET', 'appendfsync', 'everysec')).toMatch(/^-ERR CONFIG SET appendfsync: this guest knows 'always' and 'no'/)
    expect(rig.cmd('t:1', 'CONFIG', 'SET', 'maxmemory', '1')).toMatch(/^-ERR Unknown option/)
  })

  it('keeps held replies in replicated memory, so a backup holds and releases the same (the completion is a logged input)', () => {
    const rig = booted()
    const set = rig.step({ t: 'data', conn: 't:1', data: bytes(wire('INCR', 'n')) })
    expect(rig.backup!.pendingSyncs!()).toEqual([syncOf(set.outputs)])
    // Rig.step replays every entry on the backup and checks outputs and state hash agree
    const done = rig.step({ t: 'disk-synced', tag: syncOf(set.outputs) })
    expect(repliesTo('t:1', done.outputs)).toBe(':1\r\n')
    expect(rig.backup!.pendingSyncs!()).toEqual([])
  })
})
