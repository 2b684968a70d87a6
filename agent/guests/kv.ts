// kv: a key-value store that speaks enough Redis (RESP2) for redis-cli and
// redis-benchmark, persisted on the lab's disk server.
//
// Disk layout (block size BLOCK_SIZE):
//   block 0      superblock: "FTKV1 <logBytes>\n"
//   blocks 1..   an append-only log of records, packed back to back across blocks:
//                S<klen>:<key><vlen>:<value>   set
//                D<klen>:<key>                 delete
//                F                             (not written: FLUSHALL restarts the log)
// Each input's records are written at its end: the blocks they touched, then the
// superblock, so a reader never sees a length that covers unwritten records. At boot the
// guest reads the superblock and the log back (the reads are logged inputs) and serves
// requests only when the log is applied; earlier requests wait in memory.
// Durability (CONFIG SET appendfsync always|no, default always): with always, a batch that wrote
// ends with disk.sync(), and its replies wait in memory for diskSynced (docs/guests.md).
// Not done: log compaction (the log grows until FLUSHALL), key expiry.
import { BLOCK_SIZE, type GuestDefinition, type GuestFactory } from './api.js'

export { BLOCK_SIZE }

export const kvGuest: GuestFactory = function kvGuest(dev, lib) {
  const mem = dev.mem
  const disk = dev.disk
  const resp = lib.resp
  const BS = disk.blockSize
  const KEY = 'k:'
  const COUNT = 'kv:count'
  const STATE = 'kv:state'
  const LOGLEN = 'kv:loglen'
  const TAIL = 'kv:tail'
  const PEND = 'kv:pend'
  const SB_DIRTY = 'kv:sb-dirty'
  /** appendfsync: 'always' (a reply waits until its writes are on the disk server's stable storage) or 'no' */
  const FSYNC = 'kv:appendfsync'
  const REC_SB = 'kv:rec:sb'
  const REC_WANT = 'kv:rec:want'
  const REC_GOT = 'kv:rec:got'
  const REC_BLOCK = 'kv:rec:b:'
  const OK = resp.simple('OK')
  const NOT_INT = resp.error('ERR value is not an integer or out of range')
  const INT64_MIN = -(BigInt(1) << BigInt(63))
  const INT64_MAX = (BigInt(1) << BigInt(63)) - BigInt(1)

  // --- the store ---------------------------------------------------------------------

  function count(): number {
    return Number(mem.get(COUNT) ?? '0')
  }

  function put(key: string, value: string): void {
    if (!mem.has(KEY + key)) mem.set(COUNT, String(count() + 1))
    mem.set(KEY + key, value)
  }

  function remove(key: string): boolean {
    if (!mem.has(KEY + key)) return false
    mem.delete(KEY + key)
    mem.set(COUNT, String(count() - 1))
    return true
  }

  function clear(): void {
    for (const k of mem.keys(KEY)) mem.delete(k)
    mem.set(COUNT, '0')
  }

  // --- the log -----------------------------------------------------------------------

  function append(record: string): void {
    mem.set(PEND, (mem.get(PEND) ?? '') + record)
  }

  function logSet(key: string, value: string): void {
    append('S' + key.length + ':' + key + value.length + ':' + value)
  }

  function logDelete(key: string): void {
    append('D' + key.length + ':' + key)
  }

  /**
   * A client's reply-table entry goes to disk with the writes of the same input, so a guest
   * booted from disk answers a retried write from the table instead of applying it again
   * (an INCR whose reply was lost with the live replica would otherwise count twice). A read
   * that comes in an input with no write leaves no record: running it again is harmless.
   */
  function replyRecorded(client: string, entry: string): void {
    if (!mem.get(PEND)) return
    append('R' + client.length + ':' + client + entry.length + ':' + entry)
  }

  function restartLog(): void {
    mem.set(LOGLEN, '0')
    mem.set(TAIL, '')
    mem.delete(PEND)
    mem.set(SB_DIRTY, '')
  }

  function flush(): boolean {
    const pend = mem.get(PEND)
    if (pend === undefined && !mem.has(SB_DIRTY)) return false
    let len = Number(mem.get(LOGLEN) ?? '0')
    if (pend !== undefined && pend !== '') {
      // the tail block starts at a block boundary; rewrite it with the new records after it
      const bytes = (mem.get(TAIL) ?? '') + pend
      const first = Math.floor(len / BS) + 1
      for (let off = 0; off < bytes.length; off += BS) disk.write(first + off / BS, bytes.slice(off, off + BS))
      len += pend.length
      mem.set(TAIL, bytes.slice(Math.floor(bytes.length / BS) * BS))
      mem.set(LOGLEN, String(len))
    }
    mem.delete(PEND)
    mem.delete(SB_DIRTY)
    disk.write(0, 'FTKV1 ' + len + '\n')
    return true
  }

  function appendfsync(): string {
    return mem.get(FSYNC) ?? 'always'
  }

  function configSet(name: string, value: string): string | null | undefined {
    if (name !== 'appendfsync') return undefined
    const v = value.toLowerCase()
    if (v !== 'always' && v !== 'no' && v !== 'none')
      return resp.error("ERR CONFIG SET appendfsync: this guest knows 'always' and 'no' (or 'none'), got '" + value.slice(0, 32) + "'")
    mem.set(FSYNC, v === 'always' ? 'always' : 'no')
    return null
  }

  /** Apply log records; returns how many bytes formed whole records (a torn or corrupt end is dropped). */
  function replayLog(log: string): number {
    let p = 0
    for (;;) {
      if (p >= log.length) return p
      const op = log[p]
      const k = field(log, p + 1)
      if (op !== 'S' && op !== 'D' && op !== 'R') return p
      if (k === null) return p
      const key = k[0]
      if (op === 'D') {
        remove(key)
        p = k[1]
        continue
      }
      const v = field(log, k[1])
      if (v === null) return p
      if (op === 'R') svc.restoreReply(key, v[0])
      else put(key, v[0])
      p = v[1]
    }
  }

  /** `<len>:<bytes>` at p → [bytes, position after], or null if malformed or cut short */
  function field(log: string, p: number): [string, number] | null {
    const colon = log.indexOf(':', p)
    if (colon < 0 || colon - p > 10 || colon === p) return null
    const text = log.slice(p, colon)
    if (!/^[0-9]+$/.test(text)) return null
    const n = Number(text)
    if (colon + 1 + n > log.length) return null
    return [log.slice(colon + 1, colon + 1 + n), colon + 1 + n]
  }

  // --- recovery ----------------------------------------------------------------------

  function recovered(log: string): void {
    const valid = replayLog(log)
    const kept = log.slice(0, valid)
    mem.set(LOGLEN, String(kept.length))
    mem.set(TAIL, kept.slice(Math.floor(kept.length / BS) * BS))
    if (valid !== log.length) mem.set(SB_DIRTY, '')
    for (const k of mem.keys('kv:rec:')) mem.delete(k)
    mem.set(STATE, 'ready')
    svc.drain()
  }

  function diskRead(tag: number, block: number, bytes: string): void {
    if (mem.get(STATE) !== 'recovering') return
    if (block === 0 && mem.get(REC_SB) === String(tag)) {
      mem.delete(REC_SB)
      const m = /^FTKV1 ([0-9]{1,15})\n/.exec(bytes)
      // an empty disk, or one another guest wrote: start empty
      const len = m === null ? 0 : Number(m[1])
      const blocks = Math.ceil(len / BS)
      if (blocks === 0) return recovered('')
      mem.set(LOGLEN, String(len))
      mem.set(REC_WANT, String(blocks))
      mem.set(REC_GOT, '0')
      for (let b = 1; b <= blocks; b++) disk.read(b)
      return
    }
    const want = Number(mem.get(REC_WANT) ?? '0')
    if (block < 1 || block > want || mem.has(REC_BLOCK + block)) return
    mem.set(REC_BLOCK + block, bytes)
    const got = Number(mem.get(REC_GOT)) + 1
    mem.set(REC_GOT, String(got))
    if (got < want) return
    let log = ''
    for (let b = 1; b <= want; b++) {
      const part = mem.get(REC_BLOCK + b) ?? ''
      log += part
      // a short block before the end means the log is cut there
      if (b < want && part.length < BS) break
    }
    recovered(log.slice(0, Number(mem.get(LOGLEN))))
  }

  // --- commands ----------------------------------------------------------------------

  function int64(text: string): bigint | null {
    if (!/^-?[0-9]{1,19}$/.test(text)) return null
    const n = BigInt(text)
    return n < INT64_MIN || n > INT64_MAX ? null : n
  }

  function incr(key: string, by: bigint): string {
    const cur = mem.get(KEY + key)
    const n = cur === undefined ? BigInt(0) : int64(cur)
    if (n === null) return NOT_INT
    const next = n + by
    if (next < INT64_MIN || next > INT64_MAX) return resp.error('ERR increment or decrement would overflow')
    put(key, String(next))
    logSet(key, String(next))
    return resp.int(next)
  }

  function command(_conn: string, args: string[]): string | null {
    const name = args[0].toUpperCase()
    const n = args.length
    const arity = lib.service.wrongArity
    switch (name) {
      case 'GET': {
        if (n !== 2) return arity(name)
        const v = mem.get(KEY + args[1])
        return resp.bulk(v === undefined ? null : v)
      }
      case 'SET': {
        if (n < 3) return arity(name)
        let nx = false
        let xx = false
        for (let i = 3; i < n; i++) {
          const opt = args[i].toUpperCase()
          if (opt === 'NX') nx = true
          else if (opt === 'XX') xx = true
          else if (opt === 'EX' || opt === 'PX' || opt === 'EXAT' || opt === 'PXAT' || opt === 'KEEPTTL')
            return resp.error('ERR key expiry is not supported by this guest')
          else return resp.error('ERR syntax error')
        }
        if (nx && xx) return resp.error('ERR syntax error')
        const exists = mem.has(KEY + args[1])
        if ((nx && exists) || (xx && !exists)) return resp.bulk(null)
        put(args[1], args[2])
        logSet(args[1], args[2])
        return OK
      }
      case 'DEL': {
        if (n < 2) return arity(name)
        let removed = 0
        for (let i = 1; i < n; i++) {
          if (remove(args[i])) {
            logDelete(args[i])
            removed++
          }
        }
        return resp.int(removed)
      }
      case 'EXISTS': {
        if (n < 2) return arity(name)
        let found = 0
        for (let i = 1; i < n; i++) if (mem.has(KEY + args[i])) found++
        return resp.int(found)
      }
      case 'INCR':
      case 'DECR':
        if (n !== 2) return arity(name)
        return incr(args[1], BigInt(name === 'INCR' ? 1 : -1))
      case 'INCRBY':
      case 'DECRBY': {
        if (n !== 3) return arity(name)
        const by = int64(args[2])
        if (by === null) return NOT_INT
        return incr(args[1], name === 'INCRBY' ? by : -by)
      }
      case 'APPEND': {
        if (n !== 3) return arity(name)
        const v = (mem.get(KEY + args[1]) ?? '') + args[2]
        put(args[1], v)
        logSet(args[1], v)
        return resp.int(v.length)
      }
      case 'STRLEN':
        if (n !== 2) return arity(name)
        return resp.int((mem.get(KEY + args[1]) ?? '').length)
      case 'TYPE':
        if (n !== 2) return arity(name)
        return resp.simple(mem.has(KEY + args[1]) ? 'string' : 'none')
      case 'MSET': {
        if (n < 3 || n % 2 === 0) return arity(name)
        for (let i = 1; i < n; i += 2) {
          put(args[i], args[i + 1])
          logSet(args[i], args[i + 1])
        }
        return OK
      }
      case 'MGET': {
        if (n < 2) return arity(name)
        const out: (string | null)[] = []
        for (let i = 1; i < n; i++) {
          const v = mem.get(KEY + args[i])
          out.push(v === undefined ? null : v)
        }
        return resp.bulks(out)
      }
      case 'DBSIZE':
        return n === 1 ? resp.int(count()) : arity(name)
      case 'KEYS': {
        if (n !== 2) return arity(name)
        const pattern = args[1]
        const out: string[] = []
        for (const k of mem.keys(KEY)) {
          const key = k.slice(KEY.length)
          if (pattern === '*' || lib.service.glob(pattern, key)) out.push(key)
        }
        return resp.bulks(out)
      }
      case 'RANDOMKEY': {
        if (n !== 1) return arity(name)
        const keys = mem.keys(KEY)
        if (keys.length === 0) return resp.bulk(null)
        return resp.bulk(keys[dev.random.u32() % keys.length].slice(KEY.length))
      }
      case 'TIME': {
        if (n !== 1) return arity(name)
        const ms = Math.floor(dev.clock.now())
        return resp.bulks([String(Math.floor(ms / 1000)), String((ms % 1000) * 1000)])
      }
      case 'FLUSHALL':
      case 'FLUSHDB':
        clear()
        restartLog()
        return OK
    }
    return null
  }

  const svc = lib.service.create(dev, {
    name: 'kv',
    command,
    ready: () => mem.get(STATE) === 'ready',
    flush,
    durable: () => appendfsync() === 'always',
    settings: () => ({ appendfsync: appendfsync() }),
    configSet,
    replyRecorded,
    info: () =>
      '# Persistence\r\nloading:' +
      (mem.get(STATE) === 'ready' ? 0 : 1) +
      '\r\nftlab_log_bytes:' +
      (mem.get(LOGLEN) ?? '0') +
      '\r\n\r\n# Keyspace\r\ndb0:keys=' +
      count() +
      ',expires=0,avg_ttl=0\r\n'
  })

  return {
    boot() {
      if (mem.has(STATE)) return
      mem.set(STATE, 'recovering')
      mem.set(REC_SB, String(disk.read(0)))
    },
    open: svc.open,
    data: svc.data,
    close: svc.close,
    diskRead,
    diskSynced: svc.synced
  }
}

export const kv: GuestDefinition = {
  name: 'kv',
  description: 'key-value store speaking RESP2 (redis-cli, redis-benchmark), persisted as a log on the disk server',
  factory: kvGuest
}
