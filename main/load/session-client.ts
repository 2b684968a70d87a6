// One FT Lab client: a session (client id + sequence numbers) over RESP. It retries a
// request with the same seq, so the guest can answer a retry from its reply table instead
// of executing it twice; it follows the service to whichever replica answers; it drops a
// reply whose seq it has already seen, which is what a backup that goes live produces
// when it re-emits the outputs of its last entries.
import { connect as netConnect, type Socket } from 'node:net'
import type { Endpoint } from '../../agent/control/protocol.js'
import { describeSocketError } from '../core/socket-errors.js'
import { encodeCommand, RespError, RespReader, type RespValue } from './resp.js'

export interface SessionClientOptions {
  clientId: string
  /** every replica's service address; the client starts with the first */
  targets: Endpoint[]
  /** one attempt: connect, send, wait for the answer */
  attemptTimeoutMs?: number
  /** after this long without an answer the operation is recorded as unknown */
  opDeadlineMs?: number
  now?: () => number
}

export type CallOutcome =
  { status: 'ok'; value: RespValue; target: string } | { status: 'fail'; error: string; target: string } | { status: 'unknown'; error: string }

export interface SessionStats {
  retries: number
  /** replies for a seq already answered */
  duplicatesDropped: number
  /** replies for a seq never sent: a service bug worth seeing */
  strays: number
  /** an answer came from a different replica than the previous answer */
  failoversFollowed: number
  /** connection errors, timeouts, refusals by the service */
  errors: number
}

type Waiter = (r: { kind: 'reply'; value: RespValue } | { kind: 'lost'; why: string }) => void

interface Conn {
  socket: Socket
  target: number
  waiter: { seq: number; done: Waiter } | null
  dead: boolean
}

export const SESSION_PREAMBLE = 'FTLAB-SESSION'

/** The longest pause between two rounds of tries over every replica. */
export const RETRY_PAUSE_CAP_MS = 30

/**
 * The pause after `round` rounds in a row in which every replica failed: 10 ms more each round up
 * to RETRY_PAUSE_CAP_MS, each drawn from its upper half so that many clients cut off together do not
 * come back in step. A round costs a refused connection (a dead replica) and a -NOTLIVE answer (a
 * backup not yet live), both cheap, and the cap is what a client may lose after the go-live: it
 * was 200 ms, most of a failover once the detector had done its part.
 */
export function retryPauseMs(round: number, random: () => number = Math.random): number {
  const top = Math.min(RETRY_PAUSE_CAP_MS, 10 * Math.max(1, round))
  return top / 2 + (top / 2) * random()
}

export class SessionClient {
  readonly stats: SessionStats = { retries: 0, duplicatesDropped: 0, strays: 0, failoversFollowed: 0, errors: 0 }
  private readonly attemptTimeoutMs: number
  private readonly opDeadlineMs: number
  private readonly now: () => number
  private seq = 0
  /** the highest seq that has been answered */
  private answered = 0
  private target = 0
  private lastAnsweredBy: number | null = null
  private conn: Conn | null = null
  private closed = false

  constructor(private readonly opts: SessionClientOptions) {
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(opts.clientId))
      throw new Error(`client id ${JSON.stringify(opts.clientId)}: use 1 to 64 letters, digits, '_', '.', ':' or '-'`)
    if (opts.targets.length === 0) throw new Error('a session client needs at least one service address')
    this.attemptTimeoutMs = opts.attemptTimeoutMs ?? 500
    this.opDeadlineMs = opts.opDeadlineMs ?? 10_000
    this.now = opts.now ?? (() => performance.timeOrigin + performance.now())
  }

  get clientId(): string {
    return this.opts.clientId
  }

  /** The service address currently in use, 'host:port'. */
  get currentTarget(): string {
    return addr(this.opts.targets[this.target])
  }

  /** The seq the next call will carry. */
  get nextSeq(): number {
    return this.seq + 1
  }

  async call(cmd: string, args: readonly (string | number)[] = []): Promise<CallOutcome> {
    if (this.closed) return { status: 'unknown', error: 'client closed' }
    const seq = ++this.seq
    const frame = encodeCommand(['FTREQ', this.opts.clientId, seq, cmd, ...args])
    const deadline = this.now() + this.opDeadlineMs
    let lastError = 'no attempt made'
    let failedInARow = 0
    for (let attempt = 0; !this.closed; attempt++) {
      const left = deadline - this.now()
      if (left <= 0) break
      if (attempt > 0) this.stats.retries++
      const budget = Math.min(this.attemptTimeoutMs, left)
      const r = await this.attempt(seq, frame, budget)
      if (r.kind === 'reply') {
        const by = this.target
        if (this.lastAnsweredBy !== null && this.lastAnsweredBy !== by) this.stats.failoversFollowed++
        this.lastAnsweredBy = by
        const target = this.currentTarget
        if (r.value instanceof RespError) return { status: 'fail', error: r.value.message, target }
        return { status: 'ok', value: r.value, target }
      }
      this.stats.errors++
      lastError = `${this.currentTarget}: ${r.why}`
      // on any trouble, try the other replica: it may be the one that went live
      this.switchTarget()
      failedInARow++
      // every replica failed in a row (a cut-over in progress): back off instead of spinning, but
      // briefly: the wait after the survivor goes live adds to every client's failover time
      if (failedInARow % this.opts.targets.length === 0) {
        const pause = Math.min(retryPauseMs(failedInARow / this.opts.targets.length), Math.max(0, deadline - this.now()))
        if (pause > 0) await new Promise((res) => setTimeout(res, pause))
      }
    }
    return { status: 'unknown', error: `no answer within ${this.opDeadlineMs} ms (last: ${lastError})` }
  }

  close(): void {
    this.closed = true
    if (this.conn) this.kill(this.conn, 'client closed')
  }

  private switchTarget(): void {
    if (this.conn) this.kill(this.conn, 'switching replica')
    this.target = (this.target + 1) % this.opts.targets.length
  }

  private async attempt(seq: number, frame: Buffer, budgetMs: number): Promise<{ kind: 'reply'; value: RespValue } | { kind: 'lost'; why: string }> {
    const started = this.now()
    let conn: Conn
    try {
      conn = await this.ensureConn(budgetMs)
    } catch (err) {
      return { kind: 'lost', why: describeSocketError(err) }
    }
    const left = budgetMs - (this.now() - started)
    if (left <= 0) return { kind: 'lost', why: `no connection within ${budgetMs} ms` }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        conn.waiter = null
        resolve({ kind: 'lost', why: `no answer within ${Math.round(budgetMs)} ms` })
      }, left)
      conn.waiter = {
        seq,
        done: (r) => {
          clearTimeout(timer)
          conn.waiter = null
          resolve(r)
        }
      }
      conn.socket.write(frame)
    })
  }

  private ensureConn(timeoutMs: number): Promise<Conn> {
    if (this.conn && !this.conn.dead) return Promise.resolve(this.conn)
    const ep = this.opts.targets[this.target]
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host: ep.host, port: ep.port })
      socket.setNoDelay(true)
      const conn: Conn = { socket, target: this.target, waiter: null, dead: false }
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`no connection within ${Math.round(timeoutMs)} ms`))
      }, timeoutMs)
      socket.once('connect', () => {
        clearTimeout(timer)
        if (this.closed) {
          conn.dead = true
          socket.destroy()
          reject(new Error('client closed'))
          return
        }
        socket.write(`${SESSION_PREAMBLE} ${this.opts.clientId}\r\n`)
        this.conn = conn
        resolve(conn)
      })
      socket.on('error', (err) => {
        clearTimeout(timer)
        if (this.conn === conn) this.kill(conn, describeSocketError(err))
        else reject(err)
      })
      socket.on('close', () => {
        clearTimeout(timer)
        if (!conn.dead) {
          this.kill(conn, 'connection closed by the service')
          reject(new Error('connection closed by the service'))
        }
      })
      const reader = new RespReader()
      socket.on('data', (chunk: Buffer) => {
        let values: RespValue[]
        try {
          values = reader.push(chunk)
        } catch (err) {
          this.kill(conn, `unreadable reply: ${(err as Error).message}`)
          return
        }
        for (const v of values) this.onValue(conn, v)
      })
    })
  }

  private onValue(conn: Conn, v: RespValue): void {
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number') {
      const seq = v[0]
      const w = conn.waiter
      if (w && seq === w.seq && seq > this.answered) {
        this.answered = seq
        w.done({ kind: 'reply', value: v[1] })
      } else if (seq <= this.answered) {
        this.stats.duplicatesDropped++
      } else {
        this.stats.strays++
      }
      return
    }
    // An unwrapped error is the service refusing the session (not live, halted, busy),
    // not the guest's answer: the request was not executed here.
    if (v instanceof RespError) {
      conn.waiter?.done({ kind: 'lost', why: `refused: ${v.message}` })
      return
    }
    this.stats.strays++
  }

  private kill(conn: Conn, why: string): void {
    if (conn.dead) return
    conn.dead = true
    conn.socket.destroy()
    if (this.conn === conn) this.conn = null
    conn.waiter?.done({ kind: 'lost', why })
  }
}

export function addr(ep: Endpoint): string {
  return `${ep.host}:${ep.port}`
}
