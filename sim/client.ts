// A simulated FT Lab client: one request at a time, each carrying (client id, sequence
// number), on a session stream (the FTLAB-SESSION preamble, as the console's load clients
// send it) to the replica's service port; retries on timeout with the same seq, following
// the service to the other replica on a fresh stream; drops duplicate replies; and checks
// what it reads against what it knows it wrote. With the kv guest it also writes keys that
// expire (SET … PX) and checks reads of them against the simulated time: the guest's clock
// device is the simulation's clock, so a key must be readable until it can have expired and
// never after it must have (on whichever replica serves).
import type { Checker } from './checker.js'
import type { Prng } from '../agent/prng.js'
import { encodeCommand, parseRespAll, type RespValue } from './resp.js'
import type { EventQueue } from './world.js'

/** big: a SET of a value larger than the logging channel's message bound (its entry travels in slices); setpx/getpx: keys with a TTL, read back against simulated time */
export type RequestKind = 'set' | 'big' | 'get' | 'incr' | 'time' | 'rand' | 'save' | 'setpx' | 'getpx'

interface Pending {
  seq: number
  kind: RequestKind
  key: string
  value: string
  data: Uint8Array
  attempt: number
  /** INCR: the highest counter value any client had seen complete when this one was invoked */
  floor: number
  /** when it was first sent (simulated ms) */
  invokedAt: number
  /** SET … PX: the time to live, ms */
  ttl: number
}

export interface ClientOptions {
  id: string
  kinds: RequestKind[]
  /** how long a 'big' value is (0 or absent: no 'big' requests) */
  bigValueBytes?: number
  rng: Prng
  q: EventQueue
  checker: Checker
  timeoutMs: number
  targets: string[]
  /** open a stream to a replica's service port; `sink` hears its bytes and its end */
  connect: (client: string, to: string, sink: { data(bytes: Uint8Array): void; closed(): void }) => ClientStream
  onComplete: () => void
  log: (line: string) => void
}

export interface ClientStream {
  readonly isOpen: boolean
  write(bytes: Uint8Array): void
  close(): void
}

const enc = new TextEncoder()

/** a value for a failure report: a big value's head is enough to tell which write it was */
const short = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v)
  return text.length > 80 ? `${text.slice(0, 60)}… (${text.length} chars)` : text
}

/** What all clients have seen of the shared counter. */
const counters = new WeakMap<Checker, { seen: Set<number>; max: number }>()

export class SimClient {
  readonly id: string
  private seq = 0
  private target = 0
  private pending: Pending | null = null
  /** this client's own keys: only it writes them, so a read must return its last completed write */
  private written = new Map<string, string>()
  /** this client's expiring keys: the last acknowledged SET … PX, and the window in which it expires (simulated ms) */
  private expiring = new Map<string, { value: string; from: number; by: number }>()
  private lastProgress = 0
  private stream: ClientStream | null = null
  /** no new requests (the run's end drains the pair); a request under way still goes on until answered */
  private stopped = false

  constructor(private readonly o: ClientOptions) {
    this.id = o.id
  }

  next(): void {
    if (this.pending || this.stopped) return
    const seq = ++this.seq
    // a value above the message bound now and then: enough to slice entries and snapshot pages, not to make every run slow
    const kind = this.o.bigValueBytes && this.o.rng.chance(0.04) ? 'big' : this.o.rng.pick(this.o.kinds)
    const slot = this.o.rng.int(0, 2)
    const key = kind === 'incr' ? 'ctr' : kind === 'setpx' || kind === 'getpx' ? `${this.id}:x${slot}` : `${this.id}:k${slot}`
    const value = kind === 'big' ? `v${seq}:${'x'.repeat(this.o.bigValueBytes ?? 0)}` : `v${seq}`
    const ttl = kind === 'setpx' ? this.o.rng.int(5, 300) : 0
    const cmd =
      kind === 'setpx'
        ? ['SET', key, value, 'PX', String(ttl)]
        : kind === 'getpx'
          ? ['GET', key]
          : kind === 'set' || kind === 'big'
            ? ['SET', key, value]
            : kind === 'get'
              ? ['GET', key]
              : kind === 'incr'
                ? ['INCR', key]
                : kind === 'time'
                  ? ['TIME']
                  : kind === 'rand'
                    ? ['RAND', `${this.id}:r`]
                    : ['SAVE', key, String(Number(this.id.slice(1)) * 4 + slot)]
    const data = encodeCommand(['FTREQ', this.id, String(seq), ...cmd])
    this.pending = { seq, kind, key, value, data, attempt: 0, floor: this.counter().max, invokedAt: this.o.q.now, ttl }
    this.send()
  }

  private send(): void {
    const p = this.pending!
    const attempt = p.attempt
    if (!this.stream?.isOpen) {
      const stream = this.o.connect(this.id, this.o.targets[this.target], {
        data: (bytes) => this.stream === stream && this.onReply(bytes),
        closed: () => {
          if (this.stream === stream) this.stream = null
        }
      })
      this.stream = stream
      stream.write(enc.encode(`FTLAB-SESSION ${this.id}\n`))
    }
    this.stream.write(p.data)
    this.o.q.schedule(this.o.q.now + this.o.timeoutMs, () => {
      if (this.pending !== p || p.attempt !== attempt) return
      this.follow(p)
    })
  }

  /** No answer here: the service may have moved; follow it on a fresh stream, same seq. */
  private follow(p: Pending): void {
    p.attempt++
    this.stream?.close()
    this.stream = null
    this.target = (this.target + 1) % this.o.targets.length
    this.send()
  }

  onReply(data: Uint8Array): void {
    // the edge writes each output whole and the simulated stream never splits a write
    let values: RespValue[]
    try {
      values = parseRespAll(data)
    } catch (err) {
      this.o.checker.fail(`client ${this.id} got a malformed reply: ${(err as Error).message}`)
    }
    for (const v of values) {
      const p = this.pending
      if (typeof v === 'object' && v !== null && !Array.isArray(v) && /^(NOTLIVE|ERR ftlab)/.test(v.err)) {
        // the replica does not serve (a backup, or halted): follow the service at once
        this.o.log(`${this.id}: ${v.err}`)
        if (p) this.o.q.schedule(this.o.q.now + 1, () => this.pending === p && this.follow(p))
        continue
      }
      if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'number')
        this.o.checker.fail(`client ${this.id} got a reply that is not *2 :<seq> <reply>: ${JSON.stringify(v)}`)
      if (p && v[0] === p.seq) this.complete(p, v[1])
      // otherwise a duplicate (re-emitted at go-live, duplicated by the network, or a retry answered twice)
    }
  }

  private complete(p: Pending, reply: RespValue): void {
    const fail = (what: string) => this.o.checker.fail(`client ${this.id} seq ${p.seq}: ${what}`)
    if (typeof reply === 'object' && reply !== null && !Array.isArray(reply)) fail(`the guest answered an error: ${reply.err}`)
    switch (p.kind) {
      case 'set':
      case 'big':
        if (reply !== 'OK') fail(`SET answered ${JSON.stringify(reply)}`)
        this.written.set(p.key, p.value)
        break
      case 'get': {
        const expected = this.written.get(p.key) ?? null
        if (reply !== expected)
          fail(`GET ${p.key} returned ${short(reply)} but this client's last acknowledged write set ${short(expected)}: an acknowledged write was lost`)
        break
      }
      case 'incr': {
        const c = this.counter()
        if (typeof reply !== 'number') fail(`INCR answered ${JSON.stringify(reply)}`)
        const n = reply as number
        if (c.seen.has(n)) fail(`INCR returned ${n}, which another acknowledged INCR returned too: an acknowledged increment was lost`)
        if (n <= p.floor)
          fail(`INCR returned ${n} although an INCR that completed before it was invoked returned ${p.floor}: an acknowledged increment was lost`)
        c.seen.add(n)
        if (n > c.max) c.max = n
        break
      }
      case 'setpx':
        if (reply !== 'OK') fail(`SET … PX answered ${JSON.stringify(reply)}`)
        // executed at some time in [invokedAt, now]: it expires at some time in [invokedAt + ttl, now + ttl]
        this.expiring.set(p.key, { value: p.value, from: p.invokedAt + p.ttl, by: this.o.q.now + p.ttl })
        break
      case 'getpx': {
        // executed at some time in [invokedAt, now]
        const e = this.expiring.get(p.key)
        if (reply !== null && (e === undefined || reply !== e.value))
          fail(`GET ${p.key} returned ${JSON.stringify(reply)}, which is not this client's last acknowledged SET … PX (${JSON.stringify(e?.value ?? null)})`)
        if (reply !== null && e !== undefined && p.invokedAt > e.by)
          fail(`GET ${p.key} invoked at ${p.invokedAt}ms returned ${JSON.stringify(reply)}, which had expired by ${e.by}ms: an expired key was readable`)
        if (reply === null && e !== undefined && this.o.q.now < e.from)
          fail(
            `GET ${p.key} answered nil at ${this.o.q.now}ms, but ${JSON.stringify(e.value)} cannot expire before ${e.from}ms: an acknowledged write was lost`
          )
        break
      }
      default:
        break
    }
    this.pending = null
    this.lastProgress = this.o.q.now
    this.o.onComplete()
    this.o.q.schedule(this.o.q.now + this.o.rng.int(0, 15), () => this.next())
  }

  describe(): string {
    const p = this.pending
    return `${this.id} -> ${this.o.targets[this.target]} ${p ? `waiting on seq ${p.seq} (${p.kind}, attempt ${p.attempt})` : 'idle'}, last progress at ${this.lastProgress}ms`
  }

  /** Sends no new request from now on; one under way is still retried until it is answered. */
  stop(): void {
    this.stopped = true
  }

  /** Whether a request is under way. */
  get busy(): boolean {
    return this.pending !== null
  }

  /** Liveness: with every fault healed and one replica live, every client must get answers. */
  checkProgress(now: number, windowMs: number): void {
    if (now - this.lastProgress > windowMs) {
      this.o.checker.fail(
        `client ${this.id} made no progress for ${now - this.lastProgress}ms after every fault healed (waiting on seq ${this.pending?.seq ?? 'none'})`
      )
    }
  }

  private counter(): { seen: Set<number>; max: number } {
    let c = counters.get(this.o.checker)
    if (!c) counters.set(this.o.checker, (c = { seen: new Set(), max: 0 }))
    return c
  }
}
