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
}

export interface Service {
  open(conn: string): void
  data(conn: string, bytes: string): void
  close(conn: string): void
  /** serve the requests that waited while the guest was not ready */
  drain(): void
  /** the disk writes before the disk.sync() that returned `tag` are durable: send the replies that waited for them */
  synced(tag: number): void
  /** put back a reply-table entry a guest persisted (see ServiceApp.replyRecorded), at boot */
  restoreReply(client: string, entry: string): void
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
  /** replies waiting for a disk.sync(): `svc:hold:<seq>` = `<tag>\n<s|c>\n<conn>\n<bytes>` (send or close) */
  const HOLD = 'svc:hold:'
  const HOLD_SEQ = 'svc:hold-seq'
  const LAST_SYNC = 'svc:sync'
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

    /** Write out the batch, then send its replies, or hold them until its writes are durable. */
    function settle(): void {
      const wrote = app.flush ? app.flush() === true : false
      if (wrote && app.durable?.() === true) mem.set(LAST_SYNC, String(dev.disk.sync()))
      const out = outbox
      outbox = []
      // replies keep their order: behind a held reply, every reply waits
      const waiting = mem.keys(HOLD).length > 0 || (wrote && app.durable?.() === true)
      for (const [conn, bytes] of out) {
        if (!waiting) {
          if (bytes === null) dev.nic.close(conn)
          else dev.nic.send(conn, bytes)
          continue
        }
        const seq = Number(mem.get(HOLD_SEQ) ?? '0') + 1
        mem.set(HOLD_SEQ, String(seq))
        mem.set(HOLD + String(seq).padStart(15, '0'), mem.get(LAST_SYNC) + '\n' + (bytes === null ? 'c\n' + conn + '\n' : 's\n' + conn + '\n' + bytes))
      }
    }

    function synced(tag: number): void {
      for (const key of mem.keys(HOLD)) {
        const v = mem.get(key)!
        const a = v.indexOf('\n')
        if (Number(v.slice(0, a)) > tag) return
        const kind = v[a + 1]
        const b = v.indexOf('\n', a + 3)
        const conn = v.slice(a + 3, b)
        mem.delete(key)
        if (kind === 'c') dev.nic.close(conn)
        else dev.nic.send(conn, v.slice(b + 1))
      }
    }

    function message(e: unknown): string {
      const m = e !== null && typeof e === 'object' && 'message' in e ? String((e as { message: unknown }).message) : String(e)
      return m.replace(/[\r\n]+/g, ' ')
    }

    function common(conn: string, args: string[]): Result | null {
      const name = args[0].toUpperCase()
      const sub = args.length > 1 ? args[1].toUpperCase() : ''
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
          return { reply: sub === 'COUNT' ? resp.int(0) : resp.array([]) }
        case 'CONFIG':
          if (sub === 'GET' && args.length >= 3) {
            const out: string[] = []
            const all: Record<string, string> = { ...CONFIG, ...(app.settings ? app.settings() : {}) }
            for (const k of Object.keys(all)) {
              if (args.slice(2).some((p) => glob(p.toLowerCase(), k))) out.push(k, all[k])
            }
            return { reply: resp.bulks(out) }
          }
          if (sub === 'SET' && args.length === 4) {
            const r = app.configSet ? app.configSet(args[2].toLowerCase(), args[3]) : undefined
            if (r === undefined) return { reply: resp.error("ERR Unknown option or number of arguments for CONFIG SET - '" + args[2].slice(0, 64) + "'") }
            return { reply: r === null ? resp.simple('OK') : r }
          }
          if (sub === 'RESETSTAT') return { reply: resp.simple('OK') }
          return { reply: resp.error("ERR CONFIG subcommand '" + (args[1] ?? '') + "' is not supported by this guest") }
        case 'CLIENT':
          if (sub === 'SETNAME' && args.length === 3) {
            mem.set(NAME + conn, args[2])
            return { reply: resp.simple('OK') }
          }
          if (sub === 'GETNAME') {
            const n = mem.get(NAME + conn)
            return { reply: resp.bulk(n === undefined ? null : n) }
          }
          if (sub === 'SETINFO') return { reply: resp.simple('OK') }
          return { reply: resp.error("ERR unknown subcommand '" + (args[1] ?? '') + "' for 'client'") }
        case 'SELECT':
          if (args.length !== 2) return { reply: wrongArity(name) }
          return { reply: args[1] === '0' ? resp.simple('OK') : resp.error('ERR DB index is out of range') }
        case 'INFO': {
          const text =
            '# Server\r\nftlab_guest:' +
            app.name +
            '\r\nredis_version:7.0.0-ftlab\r\n\r\n' +
            '# Replication\r\nrole:master\r\nconnected_slaves:0\r\n' +
            'ftlab_replication:primary-backup through the VMM logging channel\r\n' +
            (app.info ? '\r\n' + app.info() : '')
          return { reply: resp.bulk(text) }
        }
      }
      return null
    }

    function execute(conn: string, args: string[]): Result {
      try {
        return dev.atomic(() => {
          const r = common(conn, args)
          if (r !== null) return r
          const reply = app.command(conn, args)
          if (reply !== null) return { reply }
          const shown = args
            .slice(1, 4)
            .map((a) => "'" + a.slice(0, 64) + "' ")
            .join('')
          return { reply: resp.error("ERR unknown command '" + args[0].slice(0, 64) + "', with args beginning with: " + shown) }
        })
      } catch (e) {
        return { reply: resp.error('ERR guest fault: ' + message(e)) }
      }
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
      const r = inner[0].toUpperCase() === 'FTREQ' ? { reply: resp.error('ERR FTREQ cannot be nested') } : execute(conn, inner)
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
        const r = cmd.args[0].toUpperCase() === 'FTREQ' ? ftreq(conn, cmd.args) : execute(conn, cmd.args)
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

    function forget(conn: string): void {
      mem.delete(BUF + conn)
      mem.delete(WAIT + conn)
      mem.delete(NAME + conn)
    }

    return {
      open: forget,
      close: forget,
      data(conn, bytes) {
        const buf = (mem.get(BUF + conn) ?? '') + bytes
        if (!app.ready()) {
          mem.set(BUF + conn, buf)
          mem.set(WAIT + conn, '')
          return
        }
        run(conn, buf)
        settle()
      },
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
      }
    }
  }

  return { create, glob, wrongArity }
}
