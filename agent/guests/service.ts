// The request/reply machinery every RESP guest needs, evaluated inside the sandbox like
// the RESP codec (serviceLibrary references nothing outside its body): per-connection
// buffering of partial frames (in memory pages, so a snapshot carries them), pipelining,
// the commands every Redis client expects (PING, COMMAND, CONFIG GET, …), FT Lab's
// FTREQ wrapper with its replicated reply table, and requests that wait in memory while
// the guest recovers from disk.
import type { GuestDevices } from './api.js'
import type { RespLib } from './resp.js'

export interface ServiceApp {
  /** guest name, for INFO */
  name: string
  /**
   * Execute one command (`args[0]` is the name as sent) and return the encoded reply, or
   * null for a command the guest does not know. A throw fails only this command
   * (`-ERR guest fault: …`), with its memory writes and outputs undone.
   */
  command(conn: string, args: string[]): string | null
  /** false while recovering: requests wait in memory until drain() */
  ready(): boolean
  /** after each batch of commands: write out what they changed (disk blocks); true if it wrote anything */
  flush?(): boolean | void
  /** true: a reply leaves only once the disk writes of its batch are durable (appendfsync always) */
  durable?(): boolean
  /** the guest's own CONFIG parameters, for CONFIG GET */
  settings?(): Record<string, string>
  /** CONFIG SET of one of the guest's parameters: null if taken, else the error reply; undefined for a parameter it does not have */
  configSet?(name: string, value: string): string | null | undefined
  /** extra INFO text (`field:value` lines, CRLF separated, with `# Section` headings) */
  info?(): string
  /**
   * The reply table's entry for `client` after an FTREQ (`entry` as restoreReply takes it).
   * A guest that persists its state writes it with the same batch's records, so that after a
   * boot from disk a retried request is answered from the table, not executed twice.
   */
  replyRecorded?(client: string, entry: string): void
  /**
   * Redis's arity of one of the guest's commands (n: exactly n words with the name, -n: at least n), or undefined for a
   * command it does not know. MULTI uses it to refuse a command at queue time, as Redis does (the EXEC then aborts).
   */
  arity?(name: string): number | undefined
  /** a connection went away or started afresh: drop what the guest keeps for it (a blocked pop) */
  closed?(conn: string): void
}

export interface Service {
  open(conn: string): void
  /** Guest.data: with `batched`, the replies and the write-out wait for endInput */
  data(conn: string, bytes: string, batched?: boolean): void
  /** Guest.endInput: answer, write out and send a batch of several connections' bytes */
  endInput(): void
  close(conn: string): void
  /** serve the requests that waited while the guest was not ready */
  drain(): void
  /** the disk writes before the disk.sync() that returned `tag` are durable: send the replies that waited for them */
  synced(tag: number): void
  /** put back a reply-table entry a guest persisted (see ServiceApp.replyRecorded), at boot */
  restoreReply(client: string, entry: string): void
  /** the protocol `conn` negotiated with HELLO: 2 (the default) or 3 */
  proto(conn: string): number
  /** a key changed: a WATCH of it fails the watcher's EXEC */
  touched(key: string): void
  /** every key changed (FLUSHALL) */
  touchedAll(): void
  /** what app.command returns to block the connection (BLPOP with nothing to pop): its later commands wait until wake() */
  readonly BLOCKED: string
  /** false inside EXEC and FTREQ, where a blocking command must answer at once (Redis answers a timeout in MULTI) */
  mayBlock(): boolean
  /** answer a blocked connection; its waiting commands run after the current one */
  wake(conn: string, reply: string): void
  /** after an input the service did not receive itself (a timer): answer the woken connections, write out, send */
  settle(): void
  /** Guest.query: answer one complete command at once, bypassing the held replies' order (the read-fast-path experiment) */
  query(conn: string, bytes: string): void
}

export interface ServiceLib {
  create(dev: GuestDevices, app: ServiceApp): Service
  /** Redis glob: `*`, `?`, `[abc]`, `[a-z]`, `[^a]`, `\x` */
  glob(pattern: string, s: string): boolean
  wrongArity(name: string): string
}

export function serviceLibrary(resp: RespLib): ServiceLib {
  const BUF = 'svc:buf:'
  const WAIT = 'svc:wait:'
  const NAME = 'svc:name:'
  const REPLY = 'svc:reply:'
  /**
   * The newest disk.sync() whose completion has not arrived, while there is one: every reply waits for it (nic.send
   * with afterSync, held by the VMM), those of the batch that wrote and any later one, so that replies keep their order.
   */
  const LAST_SYNC = 'svc:sync'
  /** HELLO 3: `svc:proto:<conn>` = '3' */
  const PROTO = 'svc:proto:'
  /** CLIENT ID: `svc:id:<conn>`, numbered from svc:next-id */
  const ID = 'svc:id:'
  const NEXT_ID = 'svc:next-id'
  /** MULTI: in a transaction; its queued commands (RESP, back to back); a command refused at queue time */
  const MULTI = 'svc:multi:'
  const QUEUED = 'svc:queued:'
  const QERR = 'svc:qerr:'
  /** WATCH: the keys a connection watches (one RESP array), the watchers of a key (`svc:w:<len>:<key>:<conn>`), a dirty watch */
  const WATCHING = 'svc:watching:'
  const W = 'svc:w:'
  const DIRTY = 'svc:dirty:'
  /** a connection blocked in a pop; the reply that wakes it */
  const BLOCK = 'svc:blocked:'
  const WAKE = 'svc:wake:'
  /** how many watcher pages and wake pages exist: mem.keys() scans every page, so a write must not call it when none do */
  const WATCH_N = 'svc:watch-n'
  const WAKE_N = 'svc:wake-n'
  const VERSION = '7.0.15'
  const CONFIG: Record<string, string> = {
    save: '',
    appendonly: 'no',
    databases: '1',
    maxmemory: '0',
    'maxmemory-policy': 'noeviction'
  }

  type Result = { reply: string; quit?: boolean }

  function glob(pattern: string, s: string): boolean {
    // iterative matcher with backtracking on the last '*': O(len(p) * len(s)) worst case
    let p = 0
    let i = 0
    let starP = -1
    let starI = 0
    while (i < s.length) {
      if (p < pattern.length) {
        const c = pattern[p]
        if (c === '*') {
          starP = p++
          starI = i
          continue
        }
        if (c === '?') {
          p++
          i++
          continue
        }
        if (c === '[') {
          const close = pattern.indexOf(']', p + 2)
          if (close > 0) {
            let set = pattern.slice(p + 1, close)
            const negate = set[0] === '^'
            if (negate) set = set.slice(1)
            let hit = false
            for (let k = 0; k < set.length; k++) {
              if (set[k] === '\\' && k + 1 < set.length) {
                k++
                if (set[k] === s[i]) hit = true
                continue
              }
              if (k + 2 < set.length && set[k + 1] === '-') {
                const lo = set.charCodeAt(k)
                const hi = set.charCodeAt(k + 2)
                const x = s.charCodeAt(i)
                if ((x >= lo && x <= hi) || (x >= hi && x <= lo)) hit = true
                k += 2
                continue
              }
              if (set[k] === s[i]) hit = true
            }
            if (hit !== negate) {
              p = close + 1
              i++
              continue
            }
          } else if (c === s[i]) {
            p++
            i++
            continue
          }
        } else if (c === '\\' && p + 1 < pattern.length) {
          if (pattern[p + 1] === s[i]) {
            p += 2
            i++
            continue
          }
        } else if (c === s[i]) {
          p++
          i++
          continue
        }
      }
      if (starP < 0) return false
      p = starP + 1
      i = ++starI
    }
    while (p < pattern.length && pattern[p] === '*') p++
    return p === pattern.length
  }

  const wrongArity = (name: string): string => resp.error("ERR wrong number of arguments for '" + name.toLowerCase() + "' command")

  function create(dev: GuestDevices, app: ServiceApp): Service {
    const mem = dev.mem
    /** this input's replies and closes, in order; empty between inputs (settle() sends or holds them) */
    let outbox: [conn: string, bytes: string | null][] = []
    const send = (conn: string, bytes: string): void => void outbox.push([conn, bytes])
    const closeConn = (conn: string): void => void outbox.push([conn, null])
    /** per command: false while EXEC or FTREQ runs one, where nothing may block */
    let blockable = true
    const BLOCKED = '\u0000ftlab-blocked'

    /** Answer woken connections, write out the batch, then send its replies, or hold them until its writes are durable. */
    function settle(): void {
      let wrote: boolean
      try {
        wakeAll()
        wrote = app.flush ? app.flush() === true : false
        if (wrote && app.durable?.() === true) mem.set(LAST_SYNC, String(dev.disk.sync()))
      } catch (e) {
        // the VMM answers every client of this input with the fault: the replies queued for them must not follow with
        // the next input's
        outbox = []
        throw e
      }
      const out = outbox
      outbox = []
      // replies keep their order: while a barrier is pending, every reply waits for the newest one
      const last = mem.get(LAST_SYNC)
      const after = last === undefined ? undefined : Number(last)
      for (const [conn, bytes] of out) {
        if (bytes === null) dev.nic.close(conn, after)
        else dev.nic.send(conn, bytes, after)
      }
    }

    /** Connections a command unblocked get their reply, then their commands that waited behind it run (and may wake others). */
    function wakeAll(): void {
      if (!mem.has(WAKE_N)) return
      mem.delete(WAKE_N)
      for (let keys = mem.keys(WAKE); keys.length > 0; keys = mem.keys(WAKE)) {
        for (const key of keys) {
          const conn = key.slice(WAKE.length)
          const reply = mem.get(key)!
          mem.delete(key)
          mem.delete(BLOCK + conn)
          send(conn, reply)
          const buf = mem.get(BUF + conn)
          if (buf !== undefined) run(conn, buf)
        }
      }
    }

    /** The VMM sent the replies held for barrier `tag` (and any before it) already; once the newest one completes, none wait. */
    function synced(tag: number): void {
      const last = mem.get(LAST_SYNC)
      if (last !== undefined && Number(last) <= tag) mem.delete(LAST_SYNC)
    }

    function message(e: unknown): string {
      const m = e !== null && typeof e === 'object' && 'message' in e ? String((e as { message: unknown }).message) : String(e)
      return m.replace(/[\r\n]+/g, ' ')
    }

    const proto = (conn: string): number => (mem.get(PROTO + conn) === '3' ? 3 : 2)

    function clientId(conn: string): number {
      const have = mem.get(ID + conn)
      if (have !== undefined) return Number(have)
      const id = Number(mem.get(NEXT_ID) ?? '0') + 1
      mem.set(NEXT_ID, String(id))
      mem.set(ID + conn, String(id))
      return id
    }

    /** a map in RESP3, a flat array of alternating keys and values in RESP2 */
    const pairs = (conn: string, encoded: string[]): string => (proto(conn) === 3 ? resp.map(encoded) : resp.array(encoded))

    function hello(conn: string, args: string[]): string {
      let version = proto(conn)
      let i = 1
      if (args.length > 1) {
        if (!/^-?[0-9]{1,18}$/.test(args[1])) return resp.error('ERR Protocol version is not an integer or out of range')
        version = Number(args[1])
        if (version !== 2 && version !== 3) return resp.error('NOPROTO unsupported protocol version')
        i = 2
      }
      let name: string | undefined
      for (; i < args.length; i++) {
        const opt = args[i].toUpperCase()
        const more = args.length - i - 1
        // no passwords in a lab: the default user, as in a Redis without requirepass, takes any
        if (opt === 'AUTH' && more >= 2) i += 2
        else if (opt === 'SETNAME' && more >= 1) {
          name = args[++i]
          if (!/^[!-~]*$/.test(name)) return resp.error('ERR Client names cannot contain spaces, newlines or special characters.')
        } else return resp.error("ERR Syntax error in HELLO option '" + args[i].slice(0, 64) + "'")
      }
      if (version === 3) mem.set(PROTO + conn, '3')
      else mem.delete(PROTO + conn)
      if (name !== undefined) {
        if (name === '') mem.delete(NAME + conn)
        else mem.set(NAME + conn, name)
      }
      const b = resp.bulk
      return pairs(conn, [
        b('server'),
        b('redis'),
        b('version'),
        b(VERSION),
        b('proto'),
        resp.int(version),
        b('id'),
        resp.int(clientId(conn)),
        b('mode'),
        b('standalone'),
        b('role'),
        b('master'),
        b('modules'),
        resp.array([])
      ])
    }

    function client(conn: string, args: string[]): string {
      const sub = args[1].toUpperCase()
      const n = args.length
      switch (sub) {
        case 'SETNAME':
          if (n !== 3) break
          if (!/^[!-~]*$/.test(args[2])) return resp.error('ERR Client names cannot contain spaces, newlines or special characters.')
          if (args[2] === '') mem.delete(NAME + conn)
          else mem.set(NAME + conn, args[2])
          return resp.simple('OK')
        case 'GETNAME': {
          if (n !== 2) break
          const name = mem.get(NAME + conn)
          return name === undefined ? nil(conn) : resp.bulk(name)
        }
        case 'ID':
          return n === 2 ? resp.int(clientId(conn)) : wrongSub(args)
        case 'SETINFO': {
          if (n !== 4) break
          const attr = args[2].toUpperCase()
          if (attr !== 'LIB-NAME' && attr !== 'LIB-VER') return resp.error("ERR Unrecognized option '" + args[2].slice(0, 64) + "'")
          return resp.simple('OK')
        }
        case 'INFO':
        case 'LIST': {
          const name = mem.get(NAME + conn) ?? ''
          const line =
            'id=' + clientId(conn) + ' addr=' + conn + ' name=' + name + ' db=0 multi=' + (mem.has(MULTI + conn) ? 0 : -1) + ' resp=' + proto(conn) + '\n'
          return resp.bulk(line)
        }
        default:
          return resp.error("ERR unknown subcommand '" + args[1].slice(0, 64) + "'. Try CLIENT HELP.")
      }
      return wrongSub(args)
    }

    const wrongSub = (args: string[]): string =>
      resp.error("ERR wrong number of arguments for '" + args[0].toLowerCase() + '|' + args[1].toLowerCase() + "' command")
    const nil = (conn: string): string => (proto(conn) === 3 ? resp.nil() : resp.bulk(null))

    const SECTIONS = ['server', 'clients', 'persistence', 'stats', 'replication', 'keyspace']

    function info(conn: string, args: string[]): string {
      const server = '# Server\r\nredis_version:' + VERSION + '\r\nredis_mode:standalone\r\nftlab_guest:' + app.name + '\r\nftlab_deterministic:yes\r\n'
      const clients = '# Clients\r\nconnected_clients:' + dev.mem.keys(ID).length + '\r\nblocked_clients:' + mem.keys(BLOCK).length + '\r\n'
      const want = args.slice(1).map((a) => a.toLowerCase())
      const all = want.length === 0 || want.some((w) => w === 'all' || w === 'everything' || w === 'default')
      // Which replica serves, its generation and the logging channel's lag are not replicated state: they come from the
      // replica device, a logged read like the clock (the backup replays the primary's text). To a client the replica it
      // reaches is the one serving (a backup turns connections away), with no Redis replicas: role:master.
      const facts = all || want.includes('replication') ? dev.replica.info().replace(/\n/g, '\r\n') : ''
      const replication =
        '# Replication\r\nrole:master\r\nconnected_slaves:0\r\nftlab_replication:primary-backup (VMware FT style) through the VMM logging channel\r\n' + facts
      const own = app.info ? app.info() : ''
      const parts: [string, string][] = [
        ['server', server],
        ['clients', clients],
        ['replication', replication]
      ]
      for (const chunk of own.split(/(?=# )/)) {
        const m = /^# ([A-Za-z0-9_ ]+)\r\n/.exec(chunk)
        if (m) parts.push([m[1].toLowerCase(), chunk.replace(/(\r\n)+$/, '\r\n')])
      }
      parts.sort((a, b) => ((SECTIONS.indexOf(a[0]) + 100) % 100) - ((SECTIONS.indexOf(b[0]) + 100) % 100))
      const text = parts
        .filter(([name]) => all || want.includes(name))
        .map(([, t]) => t)
        .join('\r\n')
      return proto(conn) === 3 ? '=' + (text.length + 4) + '\r\ntxt:' + text + '\r\n' : resp.bulk(text)
    }

    /** `name`: args[0] in capitals. The subcommand is read only by the commands that have one (not every key needs capitals). */
    function common(conn: string, args: string[], name: string): Result | null {
      switch (name) {
        case 'PING':
          if (args.length > 2) return { reply: wrongArity(name) }
          return { reply: args.length === 2 ? resp.bulk(args[1]) : resp.simple('PONG') }
        case 'ECHO':
          return { reply: args.length === 2 ? resp.bulk(args[1]) : wrongArity(name) }
        case 'QUIT':
          return { reply: resp.simple('OK'), quit: true }
        case 'COMMAND':
          // redis-cli asks for COMMAND DOCS at start to drive its hints: none here.
          return { reply: subcommand(args) === 'COUNT' ? resp.int(0) : resp.array([]) }
        case 'CONFIG': {
          if (args.length < 2) return { reply: wrongArity(name) }
          const sub = subcommand(args)
          if (sub === 'GET' && args.length >= 3) {
            const out: string[] = []
            const all: Record<string, string> = { ...CONFIG, ...(app.settings ? app.settings() : {}) }
            for (const k of Object.keys(all)) {
              if (args.slice(2).some((p) => glob(p.toLowerCase(), k))) out.push(resp.bulk(k), resp.bulk(all[k]))
            }
            return { reply: pairs(conn, out) }
          }
          if (sub === 'SET' && args.length === 4) {
            const r = app.configSet ? app.configSet(args[2].toLowerCase(), args[3]) : undefined
            if (r === undefined) return { reply: resp.error("ERR Unknown option or number of arguments for CONFIG SET - '" + args[2].slice(0, 64) + "'") }
            return { reply: r === null ? resp.simple('OK') : r }
          }
          if (sub === 'RESETSTAT') return { reply: resp.simple('OK') }
          return { reply: resp.error("ERR CONFIG subcommand '" + (args[1] ?? '') + "' is not supported by this guest") }
        }
        case 'CLIENT':
          if (args.length < 2) return { reply: wrongArity(name) }
          return { reply: client(conn, args) }
        case 'HELLO':
          return { reply: hello(conn, args) }
        case 'SELECT':
          if (args.length !== 2) return { reply: wrongArity(name) }
          if (!/^-?[0-9]{1,18}$/.test(args[1])) return { reply: resp.error('ERR value is not an integer or out of range') }
          return { reply: Number(args[1]) === 0 ? resp.simple('OK') : resp.error('ERR DB index is out of range') }
        case 'INFO':
          return { reply: info(conn, args) }
      }
      return null
    }

    const COMMON_ARITY: Record<string, number> = { PING: -1, ECHO: 2, QUIT: -1, COMMAND: -1, CONFIG: -2, CLIENT: -2, HELLO: -1, SELECT: 2, INFO: -1 }

    function unknown(args: string[]): string {
      const shown = args
        .slice(1, 4)
        .map((a) => "'" + a.slice(0, 64) + "' ")
        .join('')
      return resp.error("ERR unknown command '" + args[0].slice(0, 64) + "', with args beginning with: " + shown)
    }

    const subcommand = (args: string[]): string => (args.length > 1 ? args[1].toUpperCase() : '')

    function execute(conn: string, args: string[], name: string = args[0].toUpperCase()): Result {
      try {
        return dev.atomic(() => {
          const r = common(conn, args, name)
          if (r !== null) return r
          const reply = app.command(conn, args)
          if (reply !== null) return { reply }
          return { reply: unknown(args) }
        })
      } catch (e) {
        return { reply: resp.error('ERR guest fault: ' + message(e)) }
      }
    }

    // --- transactions ------------------------------------------------------------------

    /** `<len>:<key>:` — the watchers of one key are the pages under W + this, whatever bytes the key holds */
    const keyId = (key: string): string => key.length + ':' + key + ':'

    function unwatch(conn: string): void {
      const list = mem.get(WATCHING + conn)
      if (list !== undefined) {
        const keys = resp.parseCommand(list, 0)
        if (keys !== null) for (const k of keys.args) mem.delete(W + keyId(k) + conn)
        const left = Number(mem.get(WATCH_N) ?? '0') - (keys === null ? 0 : keys.args.length)
        if (left > 0) mem.set(WATCH_N, String(left))
        else mem.delete(WATCH_N)
      }
      mem.delete(WATCHING + conn)
      mem.delete(DIRTY + conn)
    }

    function touched(key: string): void {
      if (!mem.has(WATCH_N)) return
      const prefix = W + keyId(key)
      for (const k of mem.keys(prefix)) mem.set(DIRTY + k.slice(prefix.length), '')
    }

    function touchedAll(): void {
      if (!mem.has(WATCH_N)) return
      for (const k of mem.keys(WATCHING)) mem.set(DIRTY + k.slice(WATCHING.length), '')
    }

    /** Queued commands are kept as RESP commands back to back in one page. */
    function exec(conn: string): Result {
      const queued = mem.get(QUEUED + conn) ?? ''
      const aborted = mem.has(QERR + conn)
      const dirty = mem.has(DIRTY + conn)
      mem.delete(MULTI + conn)
      mem.delete(QUEUED + conn)
      mem.delete(QERR + conn)
      unwatch(conn)
      if (aborted) return { reply: resp.error('EXECABORT Transaction discarded because of previous errors.') }
      if (dirty) return { reply: proto(conn) === 3 ? resp.nil() : resp.array(null) }
      const replies: string[] = []
      let quit = false
      blockable = false
      try {
        for (let pos = 0; pos < queued.length;) {
          const cmd = resp.parseCommand(queued, pos)!
          pos = cmd.end
          const r = execute(conn, cmd.args)
          replies.push(r.reply)
          if (r.quit) quit = true
        }
      } finally {
        blockable = true
      }
      return { reply: resp.array(replies), quit }
    }

    function discard(conn: string): void {
      mem.delete(MULTI + conn)
      mem.delete(QUEUED + conn)
      mem.delete(QERR + conn)
      unwatch(conn)
    }

    const NOT_QUEUED = ['EXEC', 'DISCARD', 'MULTI', 'WATCH', 'QUIT', 'RESET']

    /** One client command: the transaction commands, queueing inside MULTI, or execution. */
    /** `name`: args[0] in capitals, when the caller has it already */
    function dispatch(conn: string, args: string[], name: string = args[0].toUpperCase()): Result {
      const inMulti = mem.has(MULTI + conn)
      if (inMulti && !NOT_QUEUED.includes(name)) {
        const arity = COMMON_ARITY[name] ?? (app.arity ? app.arity(name) : 0)
        let err: string | null = null
        if (arity === undefined) err = unknown(args)
        else if ((arity > 0 && args.length !== arity) || (arity < 0 && args.length < -arity)) err = wrongArity(name)
        if (err !== null) {
          mem.set(QERR + conn, '')
          return { reply: err }
        }
        mem.set(QUEUED + conn, (mem.get(QUEUED + conn) ?? '') + resp.command(args))
        return { reply: resp.simple('QUEUED') }
      }
      // a malformed transaction command inside MULTI fails the EXEC too, as any command refused there does
      const arityErr = (): Result => {
        if (inMulti) mem.set(QERR + conn, '')
        return { reply: wrongArity(name) }
      }
      switch (name) {
        case 'MULTI':
          if (args.length !== 1) return arityErr()
          if (inMulti) return { reply: resp.error('ERR MULTI calls can not be nested') }
          mem.set(MULTI + conn, '')
          return { reply: resp.simple('OK') }
        case 'EXEC':
          if (args.length !== 1) {
            // Redis refuses a malformed EXEC as an aborted one, in a transaction or not
            if (inMulti) discard(conn)
            return { reply: resp.error("EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command") }
          }
          if (!inMulti) return { reply: resp.error('ERR EXEC without MULTI') }
          return exec(conn)
        case 'DISCARD':
          if (args.length !== 1) return arityErr()
          if (!inMulti) return { reply: resp.error('ERR DISCARD without MULTI') }
          discard(conn)
          return { reply: resp.simple('OK') }
        case 'WATCH': {
          if (args.length < 2) return arityErr()
          if (inMulti) return { reply: resp.error('ERR WATCH inside MULTI is not allowed') }
          const list = mem.get(WATCHING + conn)
          const have = list === undefined ? [] : resp.parseCommand(list, 0)!.args
          for (const k of args.slice(1)) {
            if (have.includes(k)) continue
            have.push(k)
            mem.set(W + keyId(k) + conn, '')
            mem.set(WATCH_N, String(Number(mem.get(WATCH_N) ?? '0') + 1))
          }
          mem.set(WATCHING + conn, resp.command(have))
          return { reply: resp.simple('OK') }
        }
        case 'UNWATCH':
          if (args.length !== 1) return { reply: wrongArity(name) }
          unwatch(conn)
          return { reply: resp.simple('OK') }
        case 'RESET':
          if (args.length !== 1) return arityErr()
          reset(conn)
          return { reply: resp.simple('RESET') }
      }
      if (inMulti && name === 'QUIT') reset(conn)
      return execute(conn, args, name)
    }

    const wrap = (seq: number, reply: string): string => '*2\r\n:' + seq + '\r\n' + reply

    /**
     * FTREQ <clientId> <seq> <cmd> <args…>: the reply table keeps each client's last seq
     * and its reply, replicated like any other state, so a client that retries after a
     * go-live gets the original answer instead of a second execution.
     */
    function ftreq(conn: string, args: string[]): Result {
      if (args.length < 4) return { reply: wrongArity('ftreq') }
      const client = args[1]
      if (!/^[0-9]{1,15}$/.test(args[2])) {
        return { reply: resp.error("ERR FTREQ sequence number must be a non-negative integer, got '" + args[2].slice(0, 32) + "'") }
      }
      const seq = Number(args[2])
      const prev = mem.get(REPLY + client)
      if (prev !== undefined) {
        const nl = prev.indexOf('\n')
        const last = Number(prev.slice(0, nl))
        if (seq === last) return { reply: wrap(seq, prev.slice(nl + 1)) }
        if (seq < last) {
          return { reply: wrap(seq, resp.error('ERR FTREQ seq ' + seq + ' of client ' + client + ' is older than its last request ' + last)) }
        }
      }
      const inner = args.slice(3)
      let r: Result
      if (inner[0].toUpperCase() === 'FTREQ') r = { reply: resp.error('ERR FTREQ cannot be nested') }
      else {
        // a request of FT Lab's client gets its answer now: a blocking pop that would wait answers as if timed out
        blockable = false
        try {
          r = dispatch(conn, inner)
        } finally {
          blockable = true
        }
      }
      const entry = seq + '\n' + r.reply
      mem.set(REPLY + client, entry)
      app.replyRecorded?.(client, entry)
      return { reply: wrap(seq, r.reply), quit: r.quit }
    }

    /** Serve every complete command in buf; keep the incomplete rest for the next data input. */
    function run(conn: string, buf: string): void {
      let pos = 0
      let out = ''
      for (;;) {
        let cmd: { args: string[]; end: number } | null
        try {
          cmd = resp.parseCommand(buf, pos)
        } catch (e) {
          // as Redis does: answer, then drop the connection, whose stream can no longer be framed
          send(conn, out + resp.error('ERR ' + message(e)))
          closeConn(conn)
          forget(conn)
          return
        }
        if (cmd === null) break
        pos = cmd.end
        if (cmd.args.length === 0) continue
        const name = cmd.args[0].toUpperCase()
        const r = name === 'FTREQ' ? ftreq(conn, cmd.args) : dispatch(conn, cmd.args, name)
        if (r.reply === BLOCKED) {
          // Redis reads nothing more of a blocked client's stream: the rest waits for its wake()
          mem.set(BLOCK + conn, '')
          break
        }
        out += r.reply
        if (r.quit) {
          send(conn, out)
          closeConn(conn)
          forget(conn)
          return
        }
      }
      if (out !== '') send(conn, out)
      if (pos < buf.length) mem.set(BUF + conn, buf.slice(pos))
      else mem.delete(BUF + conn)
    }

    /** Per-connection state a new stream (RESET, a reopened or closed connection) must not inherit. */
    function reset(conn: string): void {
      unwatch(conn)
      mem.delete(MULTI + conn)
      mem.delete(QUEUED + conn)
      mem.delete(QERR + conn)
      mem.delete(NAME + conn)
      mem.delete(PROTO + conn)
    }

    function forget(conn: string): void {
      reset(conn)
      mem.delete(BUF + conn)
      mem.delete(WAIT + conn)
      mem.delete(BLOCK + conn)
      mem.delete(WAKE + conn)
      mem.delete(ID + conn)
      app.closed?.(conn)
    }

    return {
      open: forget,
      close: forget,
      data(conn, bytes, batched) {
        const buf = (mem.get(BUF + conn) ?? '') + bytes
        if (!app.ready() || mem.has(BLOCK + conn)) {
          mem.set(BUF + conn, buf)
          if (!app.ready()) mem.set(WAIT + conn, '')
          return
        }
        // a fault undoes this call's memory writes (the VMM) and its queued replies (here): the batch's end sends the rest
        const queued = outbox.length
        try {
          run(conn, buf)
        } catch (e) {
          outbox.length = queued
          throw e
        }
        if (batched !== true) settle()
      },
      endInput: () => settle(),
      drain() {
        for (const key of mem.keys(WAIT)) {
          const conn = key.slice(WAIT.length)
          mem.delete(key)
          const buf = mem.get(BUF + conn)
          if (buf !== undefined && dev.nic.isOpen(conn)) run(conn, buf)
          else mem.delete(BUF + conn)
        }
        settle()
      },
      synced,
      restoreReply(client: string, entry: string) {
        mem.set(REPLY + client, entry)
      },
      proto,
      touched,
      touchedAll,
      BLOCKED,
      mayBlock: () => blockable,
      wake(conn, reply) {
        if (!mem.has(BLOCK + conn)) return
        mem.set(WAKE + conn, reply)
        mem.set(WAKE_N, '')
      },
      settle,
      query(conn, bytes) {
        // only a connection at a command boundary, as the edge saw it, with nothing waiting in the guest
        if (!app.ready() || mem.has(BLOCK + conn) || mem.has(BUF + conn)) return
        const cmd = resp.parseCommand(bytes, 0)
        if (cmd === null || cmd.end !== bytes.length || cmd.args.length === 0) return
        const name = cmd.args[0].toUpperCase()
        const r = name === 'FTREQ' ? ftreq(conn, cmd.args) : dispatch(conn, cmd.args, name)
        // anything else the command produced (a woken client's reply) means it was no plain read: no answer
        const other = outbox.length
        outbox = []
        if (r.reply === BLOCKED || r.quit || other > 0) return
        dev.nic.send(conn, r.reply)
      }
    }
  }

  return { create, glob, wrongArity }
}
