// The control port: console ⇄ agent, JSON lines on 127.0.0.1 only (the console comes in
// through an SSH port-forward). The first line must carry the control token; requests are
// answered by id; `subscribe` replays the event ring from a seq and then streams.
import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { CONTROL_PROTOCOL_VERSION, type ControlMessage, type ControlRequest } from './protocol.js'
import type { EventRing } from './events.js'

export const CONTROL_HOST = '127.0.0.1'
export const MAX_LINE_BYTES = 1024 * 1024
/** A subscriber this far behind is cut off; it resumes from its last seq when it reconnects. */
export const MAX_SUBSCRIBER_BACKLOG_BYTES = 8 * 1024 * 1024
/**
 * Events of the ring replayed to a new subscriber per event-loop turn. The agent's loop also runs the replica: a console
 * that attached and asked for a full ring (10,000 events) held it 50 ms in one piece on an idle machine, longer on a
 * busy one, which is most of a peer's silence limit on a quiet pair (the detector's floor). A slice takes about a
 * millisecond.
 */
export const REPLAY_SLICE_EVENTS = 200
/** The replay waits for the subscriber to read while this much is still unsent, rather than buffer the whole ring. */
export const REPLAY_PAUSE_BYTES = 1024 * 1024

export type ControlRequestType = ControlRequest['t']

/** A handler answers with a result (sent as `ok: true`) or throws an Error whose message is sent back. */
export type ControlHandler<T extends ControlRequestType = ControlRequestType> = (req: Extract<ControlRequest, { t: T }>) => unknown | Promise<unknown>

export interface ControlServerOptions {
  /** the control token, as handed over in the boot config (hex) */
  token: string
  /** 0 = any free port */
  port: number
  ring: EventRing
  /** what `hello` answers besides the protocol version */
  hello?: () => Record<string, unknown>
  authTimeoutMs?: number
  /** refused connections and bad lines, for the agent's log (never the token) */
  onProblem?: (what: string) => void
}

export class ControlServer {
  private server: Server | null = null
  private readonly handlers = new Map<string, ControlHandler>()
  private readonly sockets = new Set<Duplex>()
  private readonly tokenDigest: Buffer

  constructor(private readonly opts: ControlServerOptions) {
    this.tokenDigest = digest(opts.token)
  }

  static async start(opts: ControlServerOptions): Promise<ControlServer> {
    const s = new ControlServer(opts)
    await s.listen()
    return s
  }

  get port(): number {
    const a = this.server?.address()
    return typeof a === 'object' && a ? a.port : 0
  }

  /** Register the handler for one request type; `hello` and `subscribe` are built in. */
  handle<T extends ControlRequestType>(t: T, handler: ControlHandler<T>): void {
    if (t === 'subscribe') throw new Error("'subscribe' is served by the control server itself")
    this.handlers.set(t, handler as unknown as ControlHandler)
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((socket) => this.accept(socket))
      server.once('error', reject)
      // loopback only, whatever the caller wishes: the control port is never open to the network
      server.listen(this.opts.port, CONTROL_HOST, () => {
        server.off('error', reject)
        server.on('error', (err) => this.opts.onProblem?.(`control listener error: ${err.message}`))
        this.server = server
        resolve()
      })
    })
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    const server = this.server
    this.server = null
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /**
   * Serve one control connection on any byte stream: a loopback socket from `listen()`, or an
   * in-process stream (the simulated lab's agents have no control port).
   */
  attach(stream: Duplex, remote: string): void {
    this.serve(stream, remote)
  }

  private accept(socket: Socket): void {
    this.serve(socket, `${socket.remoteAddress}:${socket.remotePort}`)
  }

  private serve(socket: Duplex, remote: string): void {
    this.sockets.add(socket)
    // close once what was written is flushed (Socket.destroySoon, for any stream)
    const destroySoon = () => ('destroySoon' in socket ? (socket as Socket).destroySoon() : socket.end(() => socket.destroy()))
    let authed = false
    let unsubscribe: (() => void) | null = null
    let pending: Buffer = Buffer.alloc(0)
    let refused = false
    const send = (m: ControlMessage) => {
      if (!socket.destroyed) socket.write(line(m))
    }
    const authTimer = setTimeout(() => {
      this.opts.onProblem?.(`control connection from ${remote} did not authenticate in time`)
      socket.destroy()
    }, this.opts.authTimeoutMs ?? 10_000)
    authTimer.unref()
    const cleanup = () => {
      clearTimeout(authTimer)
      unsubscribe?.()
      unsubscribe = null
      this.sockets.delete(socket)
    }
    socket.on('close', cleanup)
    socket.on('error', () => socket.destroy())

    const onLine = (line: string) => {
      if (!authed) {
        let msg: { t?: unknown; token?: unknown } | null = null
        try {
          msg = JSON.parse(line)
        } catch {
          // falls through to the refusal below
        }
        if (!msg || msg.t !== 'auth' || typeof msg.token !== 'string' || !timingSafeEqual(digest(msg.token), this.tokenDigest)) {
          this.opts.onProblem?.(`control connection from ${remote} refused: ${msg?.t === 'auth' ? 'wrong token' : 'first line was not an auth'}`)
          socket.end(
            JSON.stringify({
              t: 'res',
              id: 0,
              ok: false,
              error: 'authentication failed: the first line must be {"t":"auth","token":...} with the control token'
            }) + '\n'
          )
          refused = true
          destroySoon()
          return false
        }
        authed = true
        clearTimeout(authTimer)
        return true
      }
      let req: ({ id?: unknown } & Partial<ControlRequest>) | null = null
      try {
        req = JSON.parse(line)
      } catch (err) {
        send({ t: 'res', id: 0, ok: false, error: `request is not valid JSON: ${(err as Error).message}` })
        return true
      }
      if (typeof req !== 'object' || req === null || typeof req.id !== 'number' || !Number.isSafeInteger(req.id)) {
        send({ t: 'res', id: 0, ok: false, error: 'request must be a JSON object with a numeric id' })
        return true
      }
      const id = req.id
      if (req.t === 'subscribe') {
        const since = (req as { since?: unknown }).since
        if (typeof since !== 'number' || !Number.isSafeInteger(since) || since < 0) {
          send({ t: 'res', id, ok: false, error: 'subscribe.since must be a non-negative integer (0 = everything in the ring)' })
          return true
        }
        unsubscribe?.()
        const ring = this.opts.ring
        const from = Math.max(since + 1, ring.firstSeq)
        send({ t: 'res', id, ok: true, result: { first: Math.min(from, ring.lastSeq + 1), last: ring.lastSeq, missed: from - (since + 1) } })
        unsubscribe = this.stream(socket, send, remote, from - 1)
        return true
      }
      if (req.t === 'hello') {
        send({ t: 'res', id, ok: true, result: { version: CONTROL_PROTOCOL_VERSION, ...(this.opts.hello?.() ?? {}) } })
        return true
      }
      if (req.t === 'fault' || req.t === 'heal') {
        // the envelope's id is the request id; the fault's own id comes as faultId
        const { faultId, ...rest } = req as { faultId?: unknown }
        if (typeof faultId !== 'string' || faultId.length === 0) {
          send({ t: 'res', id, ok: false, error: `${req.t}.faultId must be a non-empty string (the fault's id; "id" is the request id)` })
          return true
        }
        req = { ...rest, id: faultId } as unknown as typeof req
      }
      const handler = typeof req.t === 'string' ? this.handlers.get(req.t) : undefined
      if (!handler) {
        send({
          t: 'res',
          id,
          ok: false,
          error: `unknown request type ${JSON.stringify(req.t)} (known: hello, subscribe, ${[...this.handlers.keys()].join(', ')})`
        })
        return true
      }
      Promise.resolve()
        .then(() => handler(req as unknown as ControlRequest))
        .then(
          (result) => send({ t: 'res', id, ok: true, result: result ?? null }),
          (err) => send({ t: 'res', id, ok: false, error: err instanceof Error ? err.message : String(err) })
        )
      return true
    }

    socket.on('data', (chunk: Buffer) => {
      // one try per connection: nothing after a refused auth is read
      if (refused) return
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk
      let nl: number
      while ((nl = pending.indexOf(0x0a)) >= 0) {
        const line = pending.subarray(0, nl).toString('utf8').trim()
        pending = pending.subarray(nl + 1)
        if (line.length === 0) continue
        if (!onLine(line)) {
          pending = Buffer.alloc(0)
          return
        }
      }
      if (pending.length > MAX_LINE_BYTES) {
        this.opts.onProblem?.(`control connection from ${remote} sent a line over ${MAX_LINE_BYTES} bytes; closed`)
        if (authed) send({ t: 'res', id: 0, ok: false, error: `line longer than ${MAX_LINE_BYTES} bytes; connection closed` })
        refused = true
        destroySoon()
        pending = Buffer.alloc(0)
      }
    })
  }

  /**
   * Send a subscriber the ring's events after `cursor`, then every new one as it comes. The replay goes
   * REPLAY_SLICE_EVENTS a turn, so the replica sharing this event loop keeps its heartbeats; events emitted meanwhile
   * are in the ring and follow in order. Returns what stops it.
   */
  private stream(socket: Duplex, send: (m: ControlMessage) => void, remote: string, cursor: number): () => void {
    const ring = this.opts.ring
    let stopped = false
    let live: (() => void) | null = null
    const behind = () => {
      this.opts.onProblem?.(`control subscriber ${remote} fell too far behind; disconnected (it resumes from its last seq)`)
      socket.destroy()
    }
    const pump = () => {
      if (stopped || socket.destroyed) return
      if (socket.writableLength > REPLAY_PAUSE_BYTES) {
        socket.once('drain', pump)
        return
      }
      const { events, missed } = ring.since(cursor, REPLAY_SLICE_EVENTS)
      // the ring wrapped past the replay: what it lost cannot be sent in order
      if (missed > 0) return behind()
      if (events.length > 0) {
        socket.write(events.map((ev) => line({ t: 'event', ev })).join(''))
        cursor = events[events.length - 1].seq
      }
      if (cursor < ring.lastSeq) {
        setImmediate(pump)
        return
      }
      live = ring.subscribe((ev) => {
        if (socket.writableLength > MAX_SUBSCRIBER_BACKLOG_BYTES) return behind()
        send({ t: 'event', ev })
      })
    }
    pump()
    return () => {
      stopped = true
      live?.()
    }
  }
}

/** One message of the control protocol as it goes on the wire: a JSON line. */
function line(m: ControlMessage): string {
  return JSON.stringify(m) + '\n'
}

/** Hash first, so the constant-time compare works on equal lengths whatever was sent. */
function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}
