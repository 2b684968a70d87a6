// kv: a key-value store that speaks Redis (RESP2, and RESP3 after HELLO 3) well enough for
// redis-cli, redis-benchmark, redis-py, ioredis and node-redis, persisted on the lab's disk
// server. docs/kv-commands.md lists the commands and what is left out.
//
// Memory pages: `k:<key>` = a type letter and the value (s: the string; h, l, S, z, x: JSON of
// a hash's [field, value] pairs, a list, a set, a sorted set's [member, score] pairs ordered by
// score, a stream's [id, fields] entries); `x:<key>` = the key's expiry, ms on the guest's clock.
//
// Time: the guest's clock device, read through now(), which never goes back below the highest
// value seen (kv:clock). The primary logs every read and the backup replays it, so both expire
// the same keys at the same entries; a backup that goes live reads its own clock, and kv:clock
// keeps it from running behind what the primary had logged. A key expires lazily, when a
// command touches it (and KEYS/SCAN skip it); the deletion is logged to disk like a DEL.
//
// Disk layout (block size BLOCK_SIZE):
//   block 0      superblock: "FTKV1 <logBytes>\n"
//   blocks 1..   an append-only log of records, packed back to back across blocks:
//                C<len>:<alen>:<arg>…          a write (its arguments), in a form that replays the same way
//                                              anywhere: absolute expiry times, the members
//                                              SPOP chose, the pop a blocked client got (as AOF)
//                R<clen>:<client><elen>:<entry> FTREQ's reply-table entry
//                S<klen>:<key><vlen>:<value>   set, D<klen>:<key> delete (older disks; still read)
//                F                             (not written: FLUSHALL restarts the log)
// Each input's records are written at its end: appended where the log's last block ends, then the
// superblock, so a reader never sees a length that covers unwritten records. At boot the
// guest reads the superblock and the log back (the reads are logged inputs) and serves
// requests only when the log is applied; earlier requests wait in memory.
// Durability (CONFIG SET appendfsync always|no, default always): with always, a batch that wrote
// ends with disk.sync(), and its replies wait in memory for diskSynced (docs/guests.md).
// Not done: log compaction (the log grows until FLUSHALL).
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
  /** the log's partial last block, only while it must be rewritten whole (see flush) */
  const TAIL = 'kv:tail'
  const PEND = 'kv:pend'
  const SB_DIRTY = 'kv:sb-dirty'
  /** appendfsync: 'always' (a reply waits until its writes are on the disk server's stable storage) or 'no' */
  const FSYNC = 'kv:appendfsync'
  const REC_SB = 'kv:rec:sb'
  const REC_WANT = 'kv:rec:want'
  const REC_GOT = 'kv:rec:got'
  const REC_BLOCK = 'kv:rec:b:'
  const EXP = 'x:'
  /** the highest value the clock device has shown: time never runs back, also not on a backup that went live */
  const CLOCK = 'kv:clock'
  /** blocked pops: `kv:blk:<seq>` = JSON of the waiter, `kv:bk:<len>:<key>:<seq>` its keys, `kv:bc:<conn>` = seq; the timer id is seq */
  const BLK = 'kv:blk:'
  const BK = 'kv:bk:'
  const BC = 'kv:bc:'
  const BLK_SEQ = 'kv:blk-seq'
  /** how many clients are blocked: a push looks for waiters (mem.keys scans every page) only when some are */
  const BLK_N = 'kv:blk-n'
  /** true only while boot applies the log: no clock, no expiry, nothing logged */
  let replaying = false
  const OK = resp.simple('OK')
  const NOT_INT = resp.error('ERR value is not an integer or out of range')
  const INT64_MIN = -(BigInt(1) << BigInt(63))
  const INT64_MAX = (BigInt(1) << BigInt(63)) - BigInt(1)
  const ONE = BigInt(1)
  const MINUS_ONE = BigInt(-1)

  // --- the store ---------------------------------------------------------------------

  function count(): number {
    return Number(mem.get(COUNT) ?? '0')
  }

  /** the stored page of a key (type letter + value), with no expiry check */
  function raw(key: string): string | undefined {
    return mem.get(KEY + key)
  }

  function put(key: string, value: string): void {
    if (!mem.has(KEY + key)) mem.set(COUNT, String(count() + 1))
    mem.set(KEY + key, value)
    svc.touched(key)
  }

  function remove(key: string): boolean {
    if (!mem.has(KEY + key)) return false
    mem.delete(KEY + key)
    mem.delete(EXP + key)
    mem.set(COUNT, String(count() - 1))
    svc.touched(key)
    return true
  }

  function clear(): void {
    for (const k of mem.keys(KEY)) mem.delete(k)
    for (const k of mem.keys(EXP)) mem.delete(k)
    mem.set(COUNT, '0')
    svc.touchedAll()
  }

  // --- the log -----------------------------------------------------------------------

  function append(record: string): void {
    mem.set(PEND, (mem.get(PEND) ?? '') + record)
  }

  /** a write, as the command that redoes it (replaying is on while the log is read back at boot: nothing is logged then) */
  function log(args: string[]): void {
    if (replaying) return
    // the two commonest writes keep their short records
    if (args.length === 3 && args[0] === 'SET') return append('S' + args[1].length + ':' + args[1] + args[2].length + ':' + args[2])
    if (args.length === 2 && args[0] === 'DEL') return append('D' + args[1].length + ':' + args[1])
    // the arguments as <len>:<bytes> fields, no CR/LF of RESP: the tail block is a memory page, and snapshot parts are
    // measured in characters while escapes make a control character cost several bytes on the wire
    const c = args.map((a) => a.length + ':' + a).join('')
    append('C' + c.length + ':' + c)
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
    mem.delete(TAIL)
    mem.delete(PEND)
    mem.set(SB_DIRTY, '')
  }

  /**
   * The input's records go after the log's end: appended at the offset where its partial last block ends (only the new
   * bytes travel, to the disk server and in a state-transfer entry), the blocks after that written whole. The blocks
   * hold what rewriting the last block whole with the records after it would leave, byte for byte. `kv:tail`, the
   * last block's log bytes, is kept only where the block on disk may hold more than them (after a boot from disk, a
   * torn end): that block is then written whole once, and the page dropped.
   */
  function flush(): boolean {
    const pend = mem.get(PEND)
    if (pend === undefined && !mem.has(SB_DIRTY)) return false
    let len = Number(mem.get(LOGLEN) ?? '0')
    if (pend !== undefined && pend !== '') {
      let block = Math.floor(len / BS) + 1
      const at = len % BS
      let rest = pend
      if (at > 0) {
        const n = Math.min(BS - at, rest.length)
        const tail = mem.get(TAIL)
        if (tail !== undefined) disk.write(block, tail + rest.slice(0, n))
        else disk.write(block, rest.slice(0, n), at)
        rest = rest.slice(n)
        block++
      }
      for (let off = 0; off < rest.length; off += BS) disk.write(block + off / BS, rest.slice(off, off + BS))
      len += pend.length
      mem.delete(TAIL)
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
      if (op !== 'S' && op !== 'D' && op !== 'R' && op !== 'C') return p
      if (k === null) return p
      const key = k[0]
      if (op === 'D' || op === 'C') {
        if (op === 'D') remove(key)
        else redo(key)
        p = k[1]
        continue
      }
      const v = field(log, k[1])
      if (v === null) return p
      if (op === 'R') svc.restoreReply(key, v[0])
      else setString(key, v[0])
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
    replaying = true
    let valid: number
    try {
      valid = replayLog(log)
    } finally {
      replaying = false
    }
    const kept = log.slice(0, valid)
    mem.set(LOGLEN, String(kept.length))
    // the last block on disk may run on past the log's end (records of a write whose superblock never landed, a torn
    // record): the next records rewrite it whole, as appending at the log's end would be refused
    if (kept.length % BS > 0) mem.set(TAIL, kept.slice(Math.floor(kept.length / BS) * BS))
    else mem.delete(TAIL)
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

  function redo(text: string): void {
    const args: string[] = []
    for (let p = 0; p < text.length;) {
      const f = field(text, p)
      if (f === null) return
      args.push(f[0])
      p = f[1]
    }
    if (args.length > 0) command('', args)
  }

  // --- time and expiry ---------------------------------------------------------------

  function now(): number {
    const t = Math.floor(dev.clock.now())
    const last = Number(mem.get(CLOCK) ?? '0')
    if (t <= last) return last
    mem.set(CLOCK, String(t))
    return t
  }

  /** the key's page after lazy expiry: an expired key is deleted (and the deletion logged) on first touch */
  function lookup(key: string): string | undefined {
    const v = mem.get(KEY + key)
    if (v === undefined || replaying) return v
    const at = mem.get(EXP + key)
    if (at === undefined || Number(at) > now()) return v
    remove(key)
    log(['DEL', key])
    return undefined
  }

  const WRONG = { wrongtype: true }
  const WRONGTYPE = resp.error('WRONGTYPE Operation against a key holding the wrong kind of value')
  const SYNTAX = resp.error('ERR syntax error')
  const NOT_FLOAT = resp.error('ERR value is not a valid float')

  /** the value of a key of type t (undefined: no such key); another type throws WRONG, which command() answers with WRONGTYPE */
  function read<T>(key: string, t: string): T | undefined {
    const v = lookup(key)
    if (v === undefined) return undefined
    if (v[0] !== t) throw WRONG
    return (t === 's' ? v.slice(1) : JSON.parse(v.slice(1))) as T
  }

  const str = (key: string): string | undefined => read<string>(key, 's')

  /** store a collection; an empty one is deleted, as Redis does */
  function store(key: string, t: string, v: unknown[]): void {
    if (v.length === 0) remove(key)
    else put(key, t + JSON.stringify(v))
  }

  function setString(key: string, value: string, keepTtl = false): void {
    if (!keepTtl) mem.delete(EXP + key)
    put(key, 's' + value)
  }

  const TYPES: Record<string, string> = { s: 'string', h: 'hash', l: 'list', S: 'set', z: 'zset', x: 'stream' }

  // --- numbers -----------------------------------------------------------------------

  function int64(text: string): bigint | null {
    if (!/^-?[0-9]{1,19}$/.test(text) || /^-?0[0-9]/.test(text) || text === '-0') return null
    const n = BigInt(text)
    return n < INT64_MIN || n > INT64_MAX ? null : n
  }

  /** an integer argument in the safe range, or null */
  function intArg(text: string): number | null {
    const n = int64(text)
    return n === null ? null : Number(n)
  }

  function float(text: string): number | null {
    const t = text.toLowerCase()
    if (t === 'inf' || t === '+inf' || t === 'infinity' || t === '+infinity') return Infinity
    if (t === '-inf' || t === '-infinity') return -Infinity
    if (!/^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?$/.test(t)) return null
    const n = Number(t)
    return Number.isNaN(n) ? null : n
  }

  /** a double as Redis prints it */
  function fmt(n: number): string {
    if (n === Infinity) return 'inf'
    if (n === -Infinity) return '-inf'
    return Object.is(n, -0) ? '0' : String(n)
  }

  /** a score reply: a double in RESP3, a bulk string in RESP2 */
  const dbl = (conn: string, n: number): string => (svc.proto(conn) === 3 ? resp.double(fmt(n)) : resp.bulk(fmt(n)))
  const nilBulk = (conn: string): string => (svc.proto(conn) === 3 ? resp.nil() : resp.bulk(null))
  const nilArray = (conn: string): string => (svc.proto(conn) === 3 ? resp.nil() : resp.array(null))
  const bulkOrNil = (conn: string, v: string | undefined | null): string => (v === undefined || v === null ? nilBulk(conn) : resp.bulk(v))
  const aSet = (conn: string, items: string[]): string => (svc.proto(conn) === 3 ? resp.set(items.map((i) => resp.bulk(i))) : resp.bulks(items))
  const aMap = (conn: string, encoded: string[]): string => (svc.proto(conn) === 3 ? resp.map(encoded) : resp.array(encoded))

  /**
   * At most 15 digits, no leading zero, not '-0': an integer of this form and that plus or minus one are exact in a
   * double and far inside int64, so INCR and DECR of one need no BigInt (their text is the same either way).
   */
  const SMALL_INT = /^(?:0|-?[1-9][0-9]{0,14})$/

  function incr(key: string, by: bigint): string {
    const cur = str(key)
    let next: number | bigint
    if ((by === ONE || by === MINUS_ONE) && (cur === undefined || SMALL_INT.test(cur))) next = (cur === undefined ? 0 : Number(cur)) + Number(by)
    else {
      const n = cur === undefined ? BigInt(0) : int64(cur)
      if (n === null) return NOT_INT
      next = n + by
      if (next < INT64_MIN || next > INT64_MAX) return resp.error('ERR increment or decrement would overflow')
    }
    const text = String(next)
    setString(key, text, true)
    log(['SET', key, text, 'KEEPTTL'])
    return resp.int(next)
  }

  // --- expiry commands ---------------------------------------------------------------

  /** Set the expiry of an existing key to `at` ms (past: delete it). Returns false if the key does not exist. */
  function expireAt(key: string, at: number): boolean {
    if (lookup(key) === undefined) return false
    if (at <= now()) {
      remove(key)
      log(['DEL', key])
      return true
    }
    mem.set(EXP + key, String(at))
    svc.touched(key)
    log(['PEXPIREAT', key, String(at)])
    return true
  }

  function expireCommand(name: string, args: string[]): string {
    const n = intArg(args[2])
    if (n === null) return NOT_INT
    let nx = false
    let xx = false
    let gt = false
    let lt = false
    for (let i = 3; i < args.length; i++) {
      const o = args[i].toUpperCase()
      if (o === 'NX') nx = true
      else if (o === 'XX') xx = true
      else if (o === 'GT') gt = true
      else if (o === 'LT') lt = true
      else return resp.error('ERR Unsupported option ' + args[i])
    }
    if (nx && (xx || gt || lt)) return resp.error('ERR NX and XX, GT or LT options at the same time are not compatible')
    if (gt && lt) return resp.error('ERR GT and LT options at the same time are not compatible')
    const ms = name === 'EXPIRE' || name === 'EXPIREAT' ? n * 1000 : n
    const at = name === 'EXPIRE' || name === 'PEXPIRE' ? now() + ms : ms
    if (!Number.isSafeInteger(at)) return resp.error("ERR invalid expire time in '" + name.toLowerCase() + "' command")
    const key = args[1]
    if (lookup(key) === undefined) return resp.int(0)
    const cur = mem.get(EXP + key)
    const curAt = cur === undefined ? Infinity : Number(cur)
    if (nx && cur !== undefined) return resp.int(0)
    if (xx && cur === undefined) return resp.int(0)
    if (gt && !(at > curAt)) return resp.int(0)
    if (lt && !(at < curAt)) return resp.int(0)
    return resp.int(expireAt(key, at) ? 1 : 0)
  }

  function ttl(key: string, ms: boolean, absolute = false): string {
    if (lookup(key) === undefined) return resp.int(-2)
    const at = mem.get(EXP + key)
    if (at === undefined) return resp.int(-1)
    const left = absolute ? Number(at) : Number(at) - now()
    return resp.int(ms ? left : absolute ? Math.floor(left / 1000) : Math.floor((left + 500) / 1000))
  }

  function persist(key: string): boolean {
    if (lookup(key) === undefined || !mem.has(EXP + key)) return false
    mem.delete(EXP + key)
    svc.touched(key)
    log(['PERSIST', key])
    return true
  }

  /** EX/PX/EXAT/PXAT value → absolute ms, or an error reply */
  function expiryOption(name: string, opt: string, value: string): number | string {
    const n = intArg(value)
    if (n === null) return NOT_INT
    if (n <= 0) return resp.error("ERR invalid expire time in '" + name.toLowerCase() + "' command")
    const at = opt === 'EX' ? now() + n * 1000 : opt === 'PX' ? now() + n : opt === 'EXAT' ? n * 1000 : n
    if (!Number.isSafeInteger(at)) return resp.error("ERR invalid expire time in '" + name.toLowerCase() + "' command")
    return at
  }

  function setCommand(conn: string, args: string[]): string {
    const key = args[1]
    let nx = false
    let xx = false
    let get = false
    let keep = false
    let at: number | null = null
    let timeOpts = 0
    for (let i = 3; i < args.length; i++) {
      const opt = args[i].toUpperCase()
      if (opt === 'NX' && !xx) nx = true
      else if (opt === 'XX' && !nx) xx = true
      else if (opt === 'GET') get = true
      else if (opt === 'KEEPTTL' && timeOpts === 0) {
        keep = true
        timeOpts++
      } else if ((opt === 'EX' || opt === 'PX' || opt === 'EXAT' || opt === 'PXAT') && !keep && timeOpts === 0 && i + 1 < args.length) {
        const r = expiryOption('set', opt, args[++i])
        if (typeof r === 'string') return r
        at = r
        timeOpts++
      } else return SYNTAX
    }
    const old = lookup(key)
    if (get && old !== undefined && old[0] !== 's') return WRONGTYPE
    const prev = get ? bulkOrNil(conn, old === undefined ? undefined : old.slice(1)) : null
    if ((nx && old !== undefined) || (xx && old === undefined)) return prev ?? nilBulk(conn)
    setString(key, args[2], keep)
    if (at !== null) mem.set(EXP + key, String(at))
    log(at !== null ? ['SET', key, args[2], 'PXAT', String(at)] : keep ? ['SET', key, args[2], 'KEEPTTL'] : ['SET', key, args[2]])
    return prev ?? OK
  }

  // --- lists and blocked pops --------------------------------------------------------

  const list = (key: string): string[] | undefined => read<string[]>(key, 'l')

  /** push onto a list, then give waiting clients what they wait for */
  function push(key: string, items: string[], left: boolean): number {
    const l = list(key) ?? []
    for (const v of items) {
      if (left) l.unshift(v)
      else l.push(v)
    }
    store(key, 'l', l)
    log([left ? 'LPUSH' : 'RPUSH', key, ...items])
    const len = l.length
    serveBlocked(key)
    return len
  }

  interface Waiter {
    conn: string
    keys: string[]
    /** 'L'/'R': BLPOP/BRPOP; 'M': BLMOVE (from, to, dest) */
    kind: string
    from?: string
    to?: string
    dest?: string
  }

  const keyId = (key: string): string => key.length + ':' + key + ':'

  function unblock(seq: string): Waiter | null {
    const v = mem.get(BLK + seq)
    if (v === undefined) return null
    const w = JSON.parse(v) as Waiter
    mem.delete(BLK + seq)
    const left = Number(mem.get(BLK_N) ?? '1') - 1
    if (left > 0) mem.set(BLK_N, String(left))
    else mem.delete(BLK_N)
    mem.delete(BC + w.conn)
    for (const k of w.keys) mem.delete(BK + keyId(k) + seq)
    return w
  }

  /** pop for a waiter from a non-empty list, logged as the plain command it amounts to; the reply */
  function popFor(conn: string, w: Waiter, key: string): string | null {
    if (w.kind === 'M') {
      return move(conn, key, w.dest!, w.from!, w.to!)
    }
    const l = list(key)
    if (l === undefined) return null
    const v = w.kind === 'L' ? l.shift()! : l.pop()!
    store(key, 'l', l)
    log([w.kind === 'L' ? 'LPOP' : 'RPOP', key])
    return resp.bulks([key, v])
  }

  function serveBlocked(key: string): void {
    if (replaying || !mem.has(BLK_N)) return
    for (const k of mem.keys(BK + keyId(key))) {
      if (list(key) === undefined) return
      const seq = k.slice((BK + keyId(key)).length)
      const w = unblock(seq)
      if (w === null) continue
      dev.timer.cancel(Number(seq))
      const reply = popFor(w.conn, w, key)
      if (reply !== null) svc.wake(w.conn, reply)
    }
  }

  function timeoutArg(text: string): number | string {
    const t = float(text)
    if (t === null || !Number.isFinite(t)) return resp.error('ERR timeout is not a float or out of range')
    if (t < 0) return resp.error('ERR timeout is negative')
    return Math.round(t * 1000)
  }

  function block(conn: string, w: Waiter, ms: number): string {
    if (!svc.mayBlock()) return nilArray(conn)
    const seq = Number(mem.get(BLK_SEQ) ?? '0') + 1
    mem.set(BLK_SEQ, String(seq))
    const id = String(seq).padStart(12, '0')
    mem.set(BLK + id, JSON.stringify(w))
    mem.set(BLK_N, String(Number(mem.get(BLK_N) ?? '0') + 1))
    mem.set(BC + conn, id)
    for (const k of w.keys) mem.set(BK + keyId(k) + id, '')
    // the timeout runs on the virtual clock: the firing is a logged input, replayed by the backup
    if (ms > 0) dev.timer.set(seq, ms)
    return svc.BLOCKED
  }

  function move(conn: string, src: string, dst: string, from: string, to: string): string {
    const l = list(src)
    const d = list(dst)
    if (l === undefined) return nilBulk(conn)
    const v = from === 'LEFT' ? l.shift()! : l.pop()!
    store(src, 'l', l)
    log([from === 'LEFT' ? 'LPOP' : 'RPOP', src])
    const target = src === dst ? l : (d ?? [])
    if (to === 'LEFT') target.unshift(v)
    else target.push(v)
    store(dst, 'l', target)
    log([to === 'LEFT' ? 'LPUSH' : 'RPUSH', dst, v])
    serveBlocked(dst)
    return resp.bulk(v)
  }

  function listIndex(i: number, len: number): number {
    return i < 0 ? len + i : i
  }

  /** LRANGE-style start/stop → [from, to) clamped */
  function range(start: number, stop: number, len: number): [number, number] {
    let a = listIndex(start, len)
    let b = listIndex(stop, len)
    if (a < 0) a = 0
    if (b >= len) b = len - 1
    if (a > b || a >= len) return [0, 0]
    return [a, b + 1]
  }

  // --- sets, hashes, sorted sets ----------------------------------------------------

  type Pair = [string, string]
  const hash = (key: string): Pair[] | undefined => read<Pair[]>(key, 'h')
  const set = (key: string): string[] | undefined => read<string[]>(key, 'S')
  const zset = (key: string): Pair[] | undefined => read<Pair[]>(key, 'z')
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
  /** a stored score ('inf' and '-inf' included) */
  const score = (p: Pair): number => float(p[1])!
  const zcmp = (a: Pair, b: Pair): number => {
    const x = score(a)
    const y = score(b)
    return x < y ? -1 : x > y ? 1 : cmp(a[0], b[0])
  }

  function storeZ(key: string, z: Pair[]): void {
    z.sort(zcmp)
    store(key, 'z', z)
  }

  /** a score bound: `(1.5` exclusive, `-inf`, `+inf` */
  function bound(text: string): [number, boolean] | null {
    const ex = text[0] === '('
    const n = float(ex ? text.slice(1) : text)
    return n === null ? null : [n, ex]
  }

  const inBounds = (s: number, min: [number, boolean], max: [number, boolean]): boolean =>
    (min[1] ? s > min[0] : s >= min[0]) && (max[1] ? s < max[0] : s <= max[0])

  /** zset entries as a reply: members, or with scores (flat in RESP2, [member, score] pairs in RESP3) */
  function zreply(conn: string, items: Pair[], withScores: boolean): string {
    if (!withScores) return resp.bulks(items.map((p) => p[0]))
    if (svc.proto(conn) === 3) return resp.array(items.map((p) => resp.array([resp.bulk(p[0]), resp.double(fmt(score(p)))])))
    return resp.bulks(items.flatMap((p) => [p[0], fmt(score(p))]))
  }

  function setOp(name: string, keys: string[]): string[] {
    const sets = keys.map((k) => set(k) ?? [])
    let out: string[]
    if (name === 'SUNION') out = [...new Set(sets.flat())]
    else if (name === 'SINTER') out = sets[0].filter((m) => sets.every((s) => s.includes(m)))
    else out = sets[0].filter((m) => !sets.slice(1).some((s) => s.includes(m)))
    return out.sort(cmp)
  }

  // --- scanning ----------------------------------------------------------------------

  /** SCAN-family options after the cursor: MATCH, COUNT (a hint: everything comes in one reply, cursor 0), TYPE */
  function scanOpts(args: string[], from: number, allowType: boolean): { match: string | null; type: string | null } | string {
    if (!/^[0-9]{1,20}$/.test(args[from - 1])) return resp.error('ERR invalid cursor')
    let match: string | null = null
    let type: string | null = null
    for (let i = from; i < args.length; i++) {
      const o = args[i].toUpperCase()
      if (i + 1 >= args.length) return SYNTAX
      if (o === 'MATCH') match = args[++i]
      else if (o === 'COUNT') {
        const c = intArg(args[++i])
        if (c === null) return NOT_INT
        if (c < 1) return SYNTAX
      } else if (o === 'TYPE' && allowType) type = args[++i].toLowerCase()
      else return SYNTAX
    }
    return { match, type }
  }

  const matches = (pattern: string | null, s: string): boolean => pattern === null || pattern === '*' || lib.service.glob(pattern, s)

  /** every live key, sorted; expired ones are skipped (one clock read if any key has an expiry) */
  function liveKeys(): string[] {
    const t = mem.keys(EXP).length > 0 ? now() : 0
    const out: string[] = []
    for (const k of mem.keys(KEY)) {
      const key = k.slice(KEY.length)
      const at = mem.get(EXP + key)
      if (at === undefined || Number(at) > t) out.push(key)
    }
    return out
  }

  function encoding(v: string): string {
    const t = v[0]
    if (t === 's') {
      const s = v.slice(1)
      if (s.length <= 20 && int64(s) !== null) return 'int'
      return s.length <= 44 ? 'embstr' : 'raw'
    }
    if (t === 'l') return 'quicklist'
    if (t === 'x') return 'stream'
    const items = JSON.parse(v.slice(1)) as (string | Pair)[]
    if (t === 'S') return items.length <= 512 && items.every((m) => int64(m as string) !== null) ? 'intset' : 'hashtable'
    const small = items.length <= 128 && items.every((p) => (p as Pair)[0].length <= 64 && (t !== 'h' || (p as Pair)[1].length <= 64))
    if (t === 'h') return small ? 'listpack' : 'hashtable'
    return small ? 'listpack' : 'skiplist'
  }

  // --- streams (what redis-benchmark's XADD needs) -----------------------------------

  type Entry = [string, string[]]
  function streamId(id: string): [number, number] | null {
    const m = /^([0-9]{1,15})(?:-([0-9]{1,15}))?$/.exec(id)
    return m === null ? null : [Number(m[1]), Number(m[2] ?? '0')]
  }

  // --- the command table -------------------------------------------------------------

  /** Redis's arity of each command (n exact, -n at least), for MULTI's queue-time check and our own */
  const ARITY: Record<string, number> = {
    GET: 2,
    SET: -3,
    SETNX: 3,
    SETEX: 4,
    PSETEX: 4,
    GETSET: 3,
    GETDEL: 2,
    GETEX: -2,
    MGET: -2,
    MSET: -3,
    MSETNX: -3,
    INCR: 2,
    DECR: 2,
    INCRBY: 3,
    DECRBY: 3,
    INCRBYFLOAT: 3,
    APPEND: 3,
    STRLEN: 2,
    GETRANGE: 4,
    SETRANGE: 4,
    DEL: -2,
    UNLINK: -2,
    EXISTS: -2,
    TOUCH: -2,
    TYPE: 2,
    RENAME: 3,
    RENAMENX: 3,
    COPY: -3,
    KEYS: 2,
    SCAN: -2,
    RANDOMKEY: 1,
    DBSIZE: 1,
    FLUSHALL: -1,
    FLUSHDB: -1,
    EXPIRE: -3,
    PEXPIRE: -3,
    EXPIREAT: -3,
    PEXPIREAT: -3,
    TTL: 2,
    PTTL: 2,
    EXPIRETIME: 2,
    PEXPIRETIME: 2,
    PERSIST: 2,
    OBJECT: -2,
    TIME: 1,
    HSET: -4,
    HMSET: -4,
    HSETNX: 4,
    HGET: 3,
    HMGET: -3,
    HDEL: -3,
    HEXISTS: 3,
    HLEN: 2,
    HSTRLEN: 3,
    HKEYS: 2,
    HVALS: 2,
    HGETALL: 2,
    HINCRBY: 4,
    HINCRBYFLOAT: 4,
    HSCAN: -3,
    LPUSH: -3,
    RPUSH: -3,
    LPUSHX: -3,
    RPUSHX: -3,
    LPOP: -2,
    RPOP: -2,
    LLEN: 2,
    LRANGE: 4,
    LINDEX: 3,
    LSET: 4,
    LREM: 4,
    LTRIM: 4,
    LINSERT: 5,
    LMOVE: 5,
    RPOPLPUSH: 3,
    BLPOP: -3,
    BRPOP: -3,
    BLMOVE: 6,
    BRPOPLPUSH: 4,
    SADD: -3,
    SREM: -3,
    SMEMBERS: 2,
    SISMEMBER: 3,
    SMISMEMBER: -3,
    SCARD: 2,
    SPOP: -2,
    SRANDMEMBER: -2,
    SMOVE: 4,
    SINTER: -2,
    SUNION: -2,
    SDIFF: -2,
    SINTERSTORE: -3,
    SUNIONSTORE: -3,
    SDIFFSTORE: -3,
    SSCAN: -3,
    ZADD: -4,
    ZREM: -3,
    ZSCORE: 3,
    ZMSCORE: -3,
    ZINCRBY: 4,
    ZCARD: 2,
    ZCOUNT: 4,
    ZRANK: 3,
    ZREVRANK: 3,
    ZRANGE: -4,
    ZREVRANGE: -4,
    ZRANGEBYSCORE: -4,
    ZREVRANGEBYSCORE: -4,
    ZPOPMIN: -2,
    ZPOPMAX: -2,
    ZREMRANGEBYRANK: 4,
    ZREMRANGEBYSCORE: 4,
    ZSCAN: -3,
    XADD: -5,
    XLEN: 2,
    XRANGE: -4,
    XREVRANGE: -4
  }

  function command(conn: string, args: string[]): string | null {
    const name = args[0].toUpperCase()
    const arity = ARITY[name]
    if (arity === undefined) return null
    const n = args.length
    if ((arity > 0 && n !== arity) || (arity < 0 && n < -arity)) return lib.service.wrongArity(name)
    try {
      return run(conn, name, args)
    } catch (e) {
      if (e === WRONG) return WRONGTYPE
      throw e
    }
  }

  function run(conn: string, name: string, args: string[]): string {
    const n = args.length
    const key = args[1]
    switch (name) {
      // --- strings
      case 'GET':
        return bulkOrNil(conn, str(key))
      case 'SET':
        return setCommand(conn, args)
      case 'SETNX':
        if (lookup(key) !== undefined) return resp.int(0)
        setString(key, args[2])
        log(['SET', key, args[2]])
        return resp.int(1)
      case 'SETEX':
      case 'PSETEX': {
        const at = expiryOption(name, name === 'SETEX' ? 'EX' : 'PX', args[2])
        if (typeof at === 'string') return at
        lookup(key)
        setString(key, args[3])
        mem.set(EXP + key, String(at))
        log(['SET', key, args[3], 'PXAT', String(at)])
        return OK
      }
      case 'GETSET': {
        const old = str(key)
        setString(key, args[2])
        log(['SET', key, args[2]])
        return bulkOrNil(conn, old)
      }
      case 'GETDEL': {
        const old = str(key)
        if (old !== undefined) {
          remove(key)
          log(['DEL', key])
        }
        return bulkOrNil(conn, old)
      }
      case 'GETEX': {
        let at: number | null = null
        let persistIt = false
        for (let i = 2; i < n; i++) {
          const opt = args[i].toUpperCase()
          if (opt === 'PERSIST' && at === null && !persistIt) persistIt = true
          else if ((opt === 'EX' || opt === 'PX' || opt === 'EXAT' || opt === 'PXAT') && at === null && !persistIt && i + 1 < n) {
            const r = expiryOption('getex', opt, args[++i])
            if (typeof r === 'string') return r
            at = r
          } else return SYNTAX
        }
        const v = str(key)
        if (v === undefined) return nilBulk(conn)
        if (at !== null) expireAt(key, at)
        else if (persistIt) persist(key)
        return resp.bulk(v)
      }
      case 'MGET':
        return resp.array(
          args.slice(1).map((k) => {
            const v = lookup(k)
            return v === undefined || v[0] !== 's' ? nilBulk(conn) : resp.bulk(v.slice(1))
          })
        )
      case 'MSET':
      case 'MSETNX': {
        if (n % 2 === 0) return lib.service.wrongArity(name)
        if (name === 'MSETNX') for (let i = 1; i < n; i += 2) if (lookup(args[i]) !== undefined) return resp.int(0)
        for (let i = 1; i < n; i += 2) setString(args[i], args[i + 1])
        log(['MSET', ...args.slice(1)])
        return name === 'MSET' ? OK : resp.int(1)
      }
      case 'INCR':
      case 'DECR':
        return incr(key, name === 'INCR' ? ONE : MINUS_ONE)
      case 'INCRBY':
      case 'DECRBY': {
        const by = int64(args[2])
        if (by === null) return NOT_INT
        return incr(key, name === 'INCRBY' ? by : -by)
      }
      case 'INCRBYFLOAT': {
        const cur = str(key)
        const a = cur === undefined ? 0 : float(cur)
        const b = float(args[2])
        if (a === null || b === null) return NOT_FLOAT
        const r = a + b
        if (!Number.isFinite(r)) return resp.error('ERR increment would produce NaN or Infinity')
        setString(key, fmt(r), true)
        log(['SET', key, fmt(r), 'KEEPTTL'])
        return resp.bulk(fmt(r))
      }
      case 'APPEND': {
        const v = (str(key) ?? '') + args[2]
        setString(key, v, true)
        log(['APPEND', key, args[2]])
        return resp.int(v.length)
      }
      case 'STRLEN':
        return resp.int((str(key) ?? '').length)
      case 'GETRANGE': {
        const a = intArg(args[2])
        const b = intArg(args[3])
        if (a === null || b === null) return NOT_INT
        const v = str(key) ?? ''
        const [from, to] = range(a, b, v.length)
        return resp.bulk(v.slice(from, to))
      }
      case 'SETRANGE': {
        const off = intArg(args[2])
        if (off === null || off < 0) return resp.error('ERR offset is out of range')
        let v = str(key) ?? ''
        if (args[3] === '') return resp.int(v.length)
        if (off + args[3].length > 512 * 1024 * 1024) return resp.error('ERR string exceeds maximum allowed size (proto-max-bulk-len)')
        if (v.length < off) v += '\u0000'.repeat(off - v.length)
        v = v.slice(0, off) + args[3] + v.slice(off + args[3].length)
        setString(key, v, true)
        log(['SETRANGE', key, args[2], args[3]])
        return resp.int(v.length)
      }

      // --- keys
      case 'DEL':
      case 'UNLINK': {
        let removed = 0
        for (let i = 1; i < n; i++) {
          if (lookup(args[i]) !== undefined && remove(args[i])) {
            log(['DEL', args[i]])
            removed++
          }
        }
        return resp.int(removed)
      }
      case 'EXISTS':
      case 'TOUCH': {
        let found = 0
        for (let i = 1; i < n; i++) if (lookup(args[i]) !== undefined) found++
        return resp.int(found)
      }
      case 'TYPE': {
        const v = lookup(key)
        return resp.simple(v === undefined ? 'none' : TYPES[v[0]])
      }
      case 'RENAME':
      case 'RENAMENX': {
        const v = lookup(key)
        if (v === undefined) return resp.error('ERR no such key')
        const dst = args[2]
        if (name === 'RENAMENX' && lookup(dst) !== undefined) return resp.int(0)
        if (key !== dst) {
          const at = mem.get(EXP + key)
          remove(dst)
          remove(key)
          put(dst, v)
          if (at !== undefined) mem.set(EXP + dst, at)
          log(['RENAME', key, dst])
          if (v[0] === 'l') serveBlocked(dst)
        }
        return name === 'RENAME' ? OK : resp.int(1)
      }
      case 'COPY': {
        const dst = args[2]
        let replace = false
        for (let i = 3; i < n; i++) {
          const o = args[i].toUpperCase()
          if (o === 'REPLACE') replace = true
          else if (o === 'DB' && i + 1 < n) {
            if (args[++i] !== '0') return resp.error('ERR DB index is out of range')
          } else return SYNTAX
        }
        const v = lookup(key)
        if (v === undefined) return resp.int(0)
        if (key === dst) return resp.error('ERR source and destination objects are the same')
        if (lookup(dst) !== undefined && !replace) return resp.int(0)
        const at = mem.get(EXP + key)
        remove(dst)
        put(dst, v)
        if (at !== undefined) mem.set(EXP + dst, at)
        log(['COPY', key, dst, 'REPLACE'])
        if (v[0] === 'l') serveBlocked(dst)
        return resp.int(1)
      }
      case 'KEYS':
        return resp.bulks(liveKeys().filter((k) => matches(key, k)))
      case 'SCAN': {
        const o = scanOpts(args, 2, true)
        if (typeof o === 'string') return o
        const keys = liveKeys().filter((k) => matches(o.match, k) && (o.type === null || TYPES[raw(k)![0]] === o.type))
        return resp.array([resp.bulk('0'), resp.bulks(keys)])
      }
      case 'RANDOMKEY': {
        const keys = liveKeys()
        if (keys.length === 0) return nilBulk(conn)
        return resp.bulk(keys[dev.random.u32() % keys.length])
      }
      case 'DBSIZE':
        return resp.int(count())
      case 'FLUSHALL':
      case 'FLUSHDB':
        if (n > 2 || (n === 2 && !/^(A?SYNC)$/i.test(args[1]))) return SYNTAX
        clear()
        restartLog()
        return OK
      case 'EXPIRE':
      case 'PEXPIRE':
      case 'EXPIREAT':
      case 'PEXPIREAT':
        return expireCommand(name, args)
      case 'TTL':
      case 'PTTL':
        return ttl(key, name === 'PTTL')
      case 'EXPIRETIME':
      case 'PEXPIRETIME':
        return ttl(key, name === 'PEXPIRETIME', true)
      case 'PERSIST':
        return resp.int(persist(key) ? 1 : 0)
      case 'OBJECT': {
        const sub = args[1].toUpperCase()
        if (sub === 'ENCODING' && n === 3) {
          const v = lookup(args[2])
          return v === undefined ? nilBulk(conn) : resp.bulk(encoding(v))
        }
        if (sub === 'ENCODING') return resp.error("ERR wrong number of arguments for 'object|encoding' command")
        return resp.error("ERR unknown subcommand '" + args[1].slice(0, 64) + "'. Try OBJECT HELP.")
      }
      case 'TIME': {
        const ms = now()
        return resp.bulks([String(Math.floor(ms / 1000)), String((ms % 1000) * 1000)])
      }

      // --- hashes
      case 'HSET':
      case 'HMSET': {
        if (n % 2 !== 0) return lib.service.wrongArity(name)
        const h = hash(key) ?? []
        let added = 0
        for (let i = 2; i < n; i += 2) {
          const at = h.findIndex((p) => p[0] === args[i])
          if (at < 0) {
            h.push([args[i], args[i + 1]])
            added++
          } else h[at][1] = args[i + 1]
        }
        store(key, 'h', h)
        log(['HSET', ...args.slice(1)])
        return name === 'HSET' ? resp.int(added) : OK
      }
      case 'HSETNX': {
        const h = hash(key) ?? []
        if (h.some((p) => p[0] === args[2])) return resp.int(0)
        h.push([args[2], args[3]])
        store(key, 'h', h)
        log(['HSET', key, args[2], args[3]])
        return resp.int(1)
      }
      case 'HGET':
        return bulkOrNil(conn, (hash(key) ?? []).find((p) => p[0] === args[2])?.[1])
      case 'HMGET': {
        const h = hash(key) ?? []
        return resp.array(args.slice(2).map((f) => bulkOrNil(conn, h.find((p) => p[0] === f)?.[1])))
      }
      case 'HDEL': {
        const h = hash(key)
        if (h === undefined) return resp.int(0)
        const drop = args.slice(2)
        const kept = h.filter((p) => !drop.includes(p[0]))
        if (kept.length === h.length) return resp.int(0)
        store(key, 'h', kept)
        log(args)
        return resp.int(h.length - kept.length)
      }
      case 'HEXISTS':
        return resp.int((hash(key) ?? []).some((p) => p[0] === args[2]) ? 1 : 0)
      case 'HLEN':
        return resp.int((hash(key) ?? []).length)
      case 'HSTRLEN':
        return resp.int(((hash(key) ?? []).find((p) => p[0] === args[2])?.[1] ?? '').length)
      case 'HKEYS':
        return resp.bulks((hash(key) ?? []).map((p) => p[0]))
      case 'HVALS':
        return resp.bulks((hash(key) ?? []).map((p) => p[1]))
      case 'HGETALL':
        return aMap(
          conn,
          (hash(key) ?? []).flatMap((p) => [resp.bulk(p[0]), resp.bulk(p[1])])
        )
      case 'HINCRBY':
      case 'HINCRBYFLOAT': {
        const h = hash(key) ?? []
        const at = h.findIndex((p) => p[0] === args[2])
        const cur = at < 0 ? '0' : h[at][1]
        let next: string
        if (name === 'HINCRBY') {
          const by = int64(args[3])
          if (by === null) return NOT_INT
          const c = int64(cur)
          if (c === null) return resp.error('ERR hash value is not an integer')
          const r = c + by
          if (r < INT64_MIN || r > INT64_MAX) return resp.error('ERR increment or decrement would overflow')
          next = String(r)
        } else {
          const by = float(args[3])
          if (by === null) return NOT_FLOAT
          const c = float(cur)
          if (c === null) return resp.error('ERR hash value is not a float')
          const r = c + by
          if (!Number.isFinite(r)) return resp.error('ERR increment would produce NaN or Infinity')
          next = fmt(r)
        }
        if (at < 0) h.push([args[2], next])
        else h[at][1] = next
        store(key, 'h', h)
        log(['HSET', key, args[2], next])
        return name === 'HINCRBY' ? resp.int(BigInt(next)) : resp.bulk(next)
      }
      case 'HSCAN': {
        const o = scanOpts(args, 3, false)
        if (typeof o === 'string') return o
        const h = (hash(key) ?? []).filter((p) => matches(o.match, p[0]))
        return resp.array([resp.bulk('0'), resp.bulks(h.flat())])
      }

      // --- lists
      case 'LPUSH':
      case 'RPUSH':
        return resp.int(push(key, args.slice(2), name === 'LPUSH'))
      case 'LPUSHX':
      case 'RPUSHX':
        if (list(key) === undefined) return resp.int(0)
        return resp.int(push(key, args.slice(2), name === 'LPUSHX'))
      case 'LPOP':
      case 'RPOP': {
        let cnt: number | null = null
        if (n > 3) return lib.service.wrongArity(name)
        if (n === 3) {
          cnt = intArg(args[2])
          if (cnt === null || cnt < 0) return resp.error('ERR value is out of range, must be positive')
        }
        const l = list(key)
        if (l === undefined) return cnt === null ? nilBulk(conn) : nilArray(conn)
        const take = cnt === null ? 1 : Math.min(cnt, l.length)
        const out = name === 'LPOP' ? l.splice(0, take) : l.splice(l.length - take, take).reverse()
        store(key, 'l', l)
        log([name, key, String(take)])
        return cnt === null ? resp.bulk(out[0]) : resp.bulks(out)
      }
      case 'LLEN':
        return resp.int((list(key) ?? []).length)
      case 'LRANGE': {
        const a = intArg(args[2])
        const b = intArg(args[3])
        if (a === null || b === null) return NOT_INT
        const l = list(key) ?? []
        const [from, to] = range(a, b, l.length)
        return resp.bulks(l.slice(from, to))
      }
      case 'LINDEX': {
        const i = intArg(args[2])
        if (i === null) return NOT_INT
        const l = list(key) ?? []
        return bulkOrNil(conn, l[listIndex(i, l.length)])
      }
      case 'LSET': {
        const i = intArg(args[2])
        if (i === null) return NOT_INT
        const l = list(key)
        if (l === undefined) return resp.error('ERR no such key')
        const at = listIndex(i, l.length)
        if (at < 0 || at >= l.length) return resp.error('ERR index out of range')
        l[at] = args[3]
        store(key, 'l', l)
        log(args)
        return OK
      }
      case 'LREM': {
        const c = intArg(args[2])
        if (c === null) return NOT_INT
        const l = list(key)
        if (l === undefined) return resp.int(0)
        let removed = 0
        const limit = c === 0 ? Infinity : Math.abs(c)
        const idx = l.map((_, i) => i)
        if (c < 0) idx.reverse()
        const drop = new Set<number>()
        for (const i of idx) {
          if (removed >= limit) break
          if (l[i] === args[3]) {
            drop.add(i)
            removed++
          }
        }
        if (removed > 0) {
          store(
            key,
            'l',
            l.filter((_, i) => !drop.has(i))
          )
          log(args)
        }
        return resp.int(removed)
      }
      case 'LTRIM': {
        const a = intArg(args[2])
        const b = intArg(args[3])
        if (a === null || b === null) return NOT_INT
        const l = list(key)
        if (l === undefined) return OK
        const [from, to] = range(a, b, l.length)
        store(key, 'l', l.slice(from, to))
        log(args)
        return OK
      }
      case 'LINSERT': {
        const where = args[2].toUpperCase()
        if (where !== 'BEFORE' && where !== 'AFTER') return SYNTAX
        const l = list(key)
        if (l === undefined) return resp.int(0)
        const at = l.indexOf(args[3])
        if (at < 0) return resp.int(-1)
        l.splice(where === 'BEFORE' ? at : at + 1, 0, args[4])
        store(key, 'l', l)
        log(args)
        return resp.int(l.length)
      }
      case 'LMOVE':
      case 'RPOPLPUSH': {
        const from = name === 'LMOVE' ? args[3].toUpperCase() : 'RIGHT'
        const to = name === 'LMOVE' ? args[4].toUpperCase() : 'LEFT'
        if ((from !== 'LEFT' && from !== 'RIGHT') || (to !== 'LEFT' && to !== 'RIGHT')) return SYNTAX
        list(args[2])
        return move(conn, key, args[2], from, to)
      }
      case 'BLPOP':
      case 'BRPOP': {
        const ms = timeoutArg(args[n - 1])
        if (typeof ms === 'string') return ms
        const keys = args.slice(1, n - 1)
        const w: Waiter = { conn, keys, kind: name === 'BLPOP' ? 'L' : 'R' }
        for (const k of keys) if (list(k) !== undefined) return popFor(conn, w, k)!
        return block(conn, w, ms)
      }
      case 'BLMOVE':
      case 'BRPOPLPUSH': {
        const ms = timeoutArg(args[n - 1])
        if (typeof ms === 'string') return ms
        const from = name === 'BLMOVE' ? args[3].toUpperCase() : 'RIGHT'
        const to = name === 'BLMOVE' ? args[4].toUpperCase() : 'LEFT'
        if ((from !== 'LEFT' && from !== 'RIGHT') || (to !== 'LEFT' && to !== 'RIGHT')) return SYNTAX
        list(args[2])
        if (list(key) !== undefined) return move(conn, key, args[2], from, to)
        if (!svc.mayBlock()) return nilBulk(conn)
        return block(conn, { conn, keys: [key], kind: 'M', from, to, dest: args[2] }, ms)
      }

      // --- sets
      case 'SADD': {
        const s = set(key) ?? []
        let added = 0
        for (const m of args.slice(2)) {
          if (!s.includes(m)) {
            s.push(m)
            added++
          }
        }
        if (added > 0) {
          store(key, 'S', s.sort(cmp))
          log(args)
        }
        return resp.int(added)
      }
      case 'SREM': {
        const s = set(key)
        if (s === undefined) return resp.int(0)
        const drop = args.slice(2)
        const kept = s.filter((m) => !drop.includes(m))
        if (kept.length !== s.length) {
          store(key, 'S', kept)
          log(args)
        }
        return resp.int(s.length - kept.length)
      }
      case 'SMEMBERS':
        return aSet(conn, set(key) ?? [])
      case 'SISMEMBER':
        return resp.int((set(key) ?? []).includes(args[2]) ? 1 : 0)
      case 'SMISMEMBER': {
        const s = set(key) ?? []
        return resp.array(args.slice(2).map((m) => resp.int(s.includes(m) ? 1 : 0)))
      }
      case 'SCARD':
        return resp.int((set(key) ?? []).length)
      case 'SPOP':
      case 'SRANDMEMBER': {
        let cnt: number | null = null
        if (n > 3) return SYNTAX
        if (n === 3) {
          cnt = intArg(args[2])
          if (cnt === null || (name === 'SPOP' && cnt < 0)) return resp.error('ERR value is out of range, must be positive')
        }
        const s = set(key)
        if (s === undefined) return cnt === null ? nilBulk(conn) : resp.array([])
        const picked: string[] = []
        if (name === 'SRANDMEMBER' && cnt !== null && cnt < 0) {
          for (let i = 0; i < -cnt; i++) picked.push(s[dev.random.u32() % s.length])
          return resp.bulks(picked)
        }
        // members chosen by the random device (logged); on disk as the SREM of what was chosen
        const pool = s.slice()
        for (let i = 0; i < (cnt ?? 1) && pool.length > 0; i++) picked.push(pool.splice(dev.random.u32() % pool.length, 1)[0])
        if (name === 'SPOP') {
          store(
            key,
            'S',
            s.filter((m) => !picked.includes(m))
          )
          log(['SREM', key, ...picked])
        }
        return cnt === null ? resp.bulk(picked[0]) : name === 'SPOP' ? aSet(conn, picked) : resp.bulks(picked)
      }
      case 'SMOVE': {
        const s = set(key)
        const d = set(args[2])
        if (s === undefined || !s.includes(args[3])) return resp.int(0)
        if (key === args[2]) return resp.int(1)
        store(
          key,
          'S',
          s.filter((m) => m !== args[3])
        )
        const t = d ?? []
        if (!t.includes(args[3])) t.push(args[3])
        store(args[2], 'S', t.sort(cmp))
        log(args)
        return resp.int(1)
      }
      case 'SINTER':
      case 'SUNION':
      case 'SDIFF':
        return aSet(conn, setOp(name, args.slice(1)))
      case 'SINTERSTORE':
      case 'SUNIONSTORE':
      case 'SDIFFSTORE': {
        const out = setOp(name.slice(0, -5), args.slice(2))
        lookup(key)
        remove(key)
        store(key, 'S', out)
        log(['DEL', key])
        if (out.length > 0) log(['SADD', key, ...out])
        return resp.int(out.length)
      }
      case 'SSCAN': {
        const o = scanOpts(args, 3, false)
        if (typeof o === 'string') return o
        return resp.array([resp.bulk('0'), resp.bulks((set(key) ?? []).filter((m) => matches(o.match, m)))])
      }

      // --- sorted sets
      case 'ZADD': {
        let i = 2
        let nx = false
        let xx = false
        let gt = false
        let lt = false
        let ch = false
        let inc = false
        for (; i < n; i++) {
          const o = args[i].toUpperCase()
          if (o === 'NX') nx = true
          else if (o === 'XX') xx = true
          else if (o === 'GT') gt = true
          else if (o === 'LT') lt = true
          else if (o === 'CH') ch = true
          else if (o === 'INCR') inc = true
          else break
        }
        const rest = args.slice(i)
        if (rest.length === 0 || rest.length % 2 !== 0) return SYNTAX
        if (nx && xx) return resp.error('ERR XX and NX options at the same time are not compatible')
        if ((gt && lt) || (nx && (gt || lt))) return resp.error('ERR GT, LT, and/or NX options at the same time are not compatible')
        if (inc && rest.length !== 2) return resp.error('ERR INCR option supports a single increment-element pair')
        const scores: number[] = []
        for (let j = 0; j < rest.length; j += 2) {
          const s = float(rest[j])
          if (s === null) return NOT_FLOAT
          scores.push(s)
        }
        const z = zset(key) ?? []
        let added = 0
        let changed = 0
        let result: number | null = null
        for (let j = 0; j < rest.length; j += 2) {
          const m = rest[j + 1]
          const at = z.findIndex((p) => p[0] === m)
          let s = scores[j / 2]
          if (at < 0) {
            if (xx) continue
            z.push([m, fmt(s)])
            added++
            result = s
            continue
          }
          if (nx) continue
          const cur = score(z[at])
          if (inc) s = cur + s
          if (Number.isNaN(s)) return resp.error('ERR resulting score is not a number (NaN)')
          if ((gt && !(s > cur)) || (lt && !(s < cur))) continue
          result = s
          if (s !== cur) {
            z[at][1] = fmt(s)
            changed++
          }
        }
        if (added + changed > 0) {
          storeZ(key, z)
          log(['ZADD', key, ...z.filter((p) => rest.includes(p[0])).flatMap((p) => [p[1], p[0]])])
        }
        if (inc) return result === null ? nilBulk(conn) : dbl(conn, result)
        return resp.int(ch ? added + changed : added)
      }
      case 'ZREM': {
        const z = zset(key)
        if (z === undefined) return resp.int(0)
        const drop = args.slice(2)
        const kept = z.filter((p) => !drop.includes(p[0]))
        if (kept.length !== z.length) {
          store(key, 'z', kept)
          log(args)
        }
        return resp.int(z.length - kept.length)
      }
      case 'ZSCORE': {
        const p = (zset(key) ?? []).find((q) => q[0] === args[2])
        return p === undefined ? nilBulk(conn) : dbl(conn, score(p))
      }
      case 'ZMSCORE': {
        const z = zset(key) ?? []
        return resp.array(
          args.slice(2).map((m) => {
            const p = z.find((q) => q[0] === m)
            return p === undefined ? nilBulk(conn) : dbl(conn, score(p))
          })
        )
      }
      case 'ZINCRBY': {
        const by = float(args[2])
        if (by === null) return NOT_FLOAT
        const z = zset(key) ?? []
        const at = z.findIndex((p) => p[0] === args[3])
        const s = (at < 0 ? 0 : score(z[at])) + by
        if (Number.isNaN(s)) return resp.error('ERR resulting score is not a number (NaN)')
        if (at < 0) z.push([args[3], fmt(s)])
        else z[at][1] = fmt(s)
        storeZ(key, z)
        log(['ZADD', key, fmt(s), args[3]])
        return dbl(conn, s)
      }
      case 'ZCARD':
        return resp.int((zset(key) ?? []).length)
      case 'ZCOUNT': {
        const min = bound(args[2])
        const max = bound(args[3])
        if (min === null || max === null) return resp.error('ERR min or max is not a float')
        return resp.int((zset(key) ?? []).filter((p) => inBounds(score(p), min, max)).length)
      }
      case 'ZRANK':
      case 'ZREVRANK': {
        const z = zset(key) ?? []
        const at = z.findIndex((p) => p[0] === args[2])
        if (at < 0) return nilBulk(conn)
        return resp.int(name === 'ZRANK' ? at : z.length - 1 - at)
      }
      case 'ZRANGE':
      case 'ZREVRANGE':
      case 'ZRANGEBYSCORE':
      case 'ZREVRANGEBYSCORE': {
        let byScore = name.includes('BYSCORE')
        let rev = name.startsWith('ZREV')
        let withScores = false
        let limit: [number, number] | null = null
        for (let i = 4; i < n; i++) {
          const o = args[i].toUpperCase()
          if (o === 'WITHSCORES') withScores = true
          else if (o === 'BYSCORE' && name === 'ZRANGE') byScore = true
          else if (o === 'REV' && name === 'ZRANGE') rev = true
          else if (o === 'LIMIT' && i + 2 < n && name !== 'ZREVRANGE') {
            const off = intArg(args[i + 1])
            const cnt = intArg(args[i + 2])
            if (off === null || cnt === null) return NOT_INT
            limit = [off, cnt]
            i += 2
          } else return SYNTAX
        }
        if (limit !== null && !byScore) return resp.error('ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX')
        const z = zset(key) ?? []
        if (!byScore) {
          const a = intArg(args[2])
          const b = intArg(args[3])
          if (a === null || b === null) return NOT_INT
          const ordered = rev ? z.slice().reverse() : z
          const [from, to] = range(a, b, z.length)
          return zreply(conn, ordered.slice(from, to), withScores)
        }
        // ZREVRANGEBYSCORE and ZRANGE … BYSCORE REV take max first
        const min = bound(rev ? args[3] : args[2])
        const max = bound(rev ? args[2] : args[3])
        if (min === null || max === null) return resp.error('ERR min or max is not a float')
        let hit = z.filter((p) => inBounds(score(p), min, max))
        if (rev) hit.reverse()
        if (limit !== null) hit = limit[0] < 0 ? [] : hit.slice(limit[0], limit[1] < 0 ? undefined : limit[0] + limit[1])
        return zreply(conn, hit, withScores)
      }
      case 'ZPOPMIN':
      case 'ZPOPMAX': {
        let cnt: number | null = null
        if (n > 3) return SYNTAX
        if (n === 3) {
          cnt = intArg(args[2])
          if (cnt === null || cnt < 0) return resp.error('ERR value is out of range, must be positive')
        }
        const z = zset(key)
        if (z === undefined) return resp.array([])
        const take = Math.min(cnt ?? 1, z.length)
        const out = name === 'ZPOPMIN' ? z.splice(0, take) : z.splice(z.length - take, take).reverse()
        if (out.length > 0) {
          store(key, 'z', z)
          log(['ZREM', key, ...out.map((p) => p[0])])
        }
        // RESP3 without a count: one flat [member, score]; with a count, [member, score] pairs
        if (cnt === null && svc.proto(conn) === 3) return resp.array(out.flatMap((p) => [resp.bulk(p[0]), resp.double(fmt(score(p)))]))
        return zreply(conn, out, true)
      }
      case 'ZREMRANGEBYRANK':
      case 'ZREMRANGEBYSCORE': {
        const z = zset(key) ?? []
        let kept: Pair[]
        if (name === 'ZREMRANGEBYRANK') {
          const a = intArg(args[2])
          const b = intArg(args[3])
          if (a === null || b === null) return NOT_INT
          const [from, to] = range(a, b, z.length)
          kept = z.filter((_, i) => i < from || i >= to)
        } else {
          const min = bound(args[2])
          const max = bound(args[3])
          if (min === null || max === null) return resp.error('ERR min or max is not a float')
          kept = z.filter((p) => !inBounds(score(p), min, max))
        }
        if (kept.length !== z.length) {
          store(key, 'z', kept)
          log(['ZREM', key, ...z.filter((p) => !kept.includes(p)).map((p) => p[0])])
        }
        return resp.int(z.length - kept.length)
      }
      case 'ZSCAN': {
        const o = scanOpts(args, 3, false)
        if (typeof o === 'string') return o
        const z = (zset(key) ?? []).filter((p) => matches(o.match, p[0]))
        return resp.array([resp.bulk('0'), resp.bulks(z.flatMap((p) => [p[0], fmt(score(p))]))])
      }

      // --- streams
      case 'XADD': {
        let i = 2
        let mkstream = true
        let maxlen: number | null = null
        for (;;) {
          const o = args[i].toUpperCase()
          if (o === 'NOMKSTREAM') {
            mkstream = false
            i++
          } else if (o === 'MAXLEN' && i + 1 < n) {
            i++
            if (args[i] === '=' || args[i] === '~') i++
            maxlen = intArg(args[i++] ?? '')
            if (maxlen === null || maxlen < 0) return resp.error('ERR The MAXLEN argument must be >= 0.')
          } else break
          if (i >= n) return SYNTAX
        }
        const fields = args.slice(i + 1)
        if (fields.length === 0 || fields.length % 2 !== 0) return lib.service.wrongArity(name)
        const s = read<Entry[]>(key, 'x')
        if (s === undefined && !mkstream) return nilBulk(conn)
        const entries = s ?? []
        const last = entries.length > 0 ? streamId(entries[entries.length - 1][0])! : [0, 0]
        let id: [number, number]
        if (args[i] === '*') {
          const t = now()
          id = t > last[0] ? [t, 0] : [last[0], last[1] + 1]
        } else {
          const p = streamId(args[i])
          if (p === null) return resp.error('ERR Invalid stream ID specified as stream command argument')
          if (p[0] < last[0] || (p[0] === last[0] && p[1] <= last[1]) || (p[0] === 0 && p[1] === 0))
            return resp.error('ERR The ID specified in XADD is equal or smaller than the target stream top item')
          id = p
        }
        const text = id[0] + '-' + id[1]
        entries.push([text, fields])
        if (maxlen !== null && entries.length > maxlen) entries.splice(0, entries.length - maxlen)
        if (entries.length === 0) remove(key)
        else put(key, 'x' + JSON.stringify(entries))
        log(['XADD', key, ...(maxlen !== null ? ['MAXLEN', String(maxlen)] : []), text, ...fields])
        return resp.bulk(text)
      }
      case 'XLEN':
        return resp.int((read<Entry[]>(key, 'x') ?? []).length)
      case 'XRANGE':
      case 'XREVRANGE': {
        const entries = read<Entry[]>(key, 'x') ?? []
        const lo = name === 'XRANGE' ? args[2] : args[3]
        const hi = name === 'XRANGE' ? args[3] : args[2]
        const a = lo === '-' ? [0, 0] : streamId(lo)
        const b = hi === '+' ? [Infinity, Infinity] : streamId(hi)
        if (a === null || b === null) return resp.error('ERR Invalid stream ID specified as stream command argument')
        let hit = entries.filter((e) => {
          const x = streamId(e[0])!
          return (x[0] > a[0] || (x[0] === a[0] && x[1] >= a[1])) && (x[0] < b[0] || (x[0] === b[0] && x[1] <= b[1]))
        })
        if (name === 'XREVRANGE') hit = hit.reverse()
        if (n === 6 && args[4].toUpperCase() === 'COUNT') {
          const c = intArg(args[5])
          if (c === null) return NOT_INT
          hit = hit.slice(0, Math.max(c, 0))
        } else if (n !== 4) return SYNTAX
        return resp.array(hit.map((e) => resp.array([resp.bulk(e[0]), resp.bulks(e[1])])))
      }
    }
    return SYNTAX
  }

  /** a blocked pop's timeout fired (the timer id is its seq) */
  function timer(id: number): void {
    const w = unblock(String(id).padStart(12, '0'))
    if (w !== null) svc.wake(w.conn, w.kind === 'M' ? nilBulk(w.conn) : nilArray(w.conn))
    svc.settle()
  }

  /** a connection went away: it waits for nothing any more */
  function closed(conn: string): void {
    const seq = mem.get(BC + conn)
    if (seq === undefined) return
    unblock(seq)
    dev.timer.cancel(Number(seq))
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
    arity: (name) => ARITY[name],
    closed,
    info: () =>
      '# Persistence\r\nloading:' +
      (mem.get(STATE) === 'ready' ? 0 : 1) +
      '\r\nftlab_log_bytes:' +
      (mem.get(LOGLEN) ?? '0') +
      '\r\n\r\n# Keyspace\r\ndb0:keys=' +
      count() +
      ',expires=' +
      mem.keys(EXP).length +
      ',avg_ttl=0\r\n'
  })

  return {
    boot() {
      if (mem.has(STATE)) return
      mem.set(STATE, 'recovering')
      mem.set(REC_SB, String(disk.read(0)))
    },
    open: svc.open,
    data: svc.data,
    endInput: svc.endInput,
    close: svc.close,
    query: svc.query,
    diskRead,
    timer,
    diskSynced: svc.synced
  }
}

export const kv: GuestDefinition = {
  name: 'kv',
  description:
    'Redis-compatible key-value store (RESP2/RESP3: strings, hashes, lists, sets, sorted sets, expiry, MULTI), persisted as a log on the disk server',
  factory: kvGuest
}
