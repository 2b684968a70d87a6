// A small deterministic VMM for the simulator and the unit tests: a register store that
// speaks RESP, wraps FT Lab requests (FTREQ <client> <seq> <cmd> <args..> -> *2 :<seq> <reply>),
// answers a retried seq from its reply table, reads the clock and random (so the nondet path
// is exercised), arms a periodic timer (so pendingIo is exercised) and writes disk blocks
// (so fencing is exercised). The guest state is a map of string pages, which makes
// snapshots, state transfer and the state hash trivial.
import { createHash } from 'node:crypto'
import type { EntryBody, Entropy, ExecResult, GuestInput, IoRequest, Nondet, Output, PageWrite, ReplicationMode, Snapshot, Vmm } from '../agent/vmm/types.js'
import { encodeCommand, parseRespAll, respBulk, respError, respInt, respSimple } from './resp.js'

export const TICK_TIMER = 1
export const TICK_MS = 50
const enc = new TextEncoder()
const dec = new TextDecoder()

export interface RegisterVmmOptions {
  mode: ReplicationMode
  entropy: Entropy
  /** test-only defect: on replay, read the clock and random afresh instead of from the log */
  forgetNondet?: boolean
}

export class RegisterVmm implements Vmm {
  readonly guestName = 'register'
  readonly mode: ReplicationMode
  private pages = new Map<string, string>()
  private readonly entropy: Entropy
  private readonly forgetNondet: boolean
  // per execution: what the guest read, which pages it touched
  private recording: Nondet[] | null = null
  private replaying: Nondet[] | null = null
  private dirty: Map<string, string | null> | null = null

  constructor(opts: RegisterVmmOptions) {
    this.mode = opts.mode
    this.entropy = opts.entropy
    this.forgetNondet = opts.forgetNondet ?? false
  }

  execute(input: GuestInput): ExecResult {
    this.recording = []
    this.dirty = new Map()
    try {
      const { outputs, io } = this.run(input)
      const body: EntryBody =
        this.mode === 'rsm' ? { kind: 'input', input, nondet: this.recording } : { kind: 'state', pages: [...this.dirty.entries()], outputs, io }
      return { body, outputs, io }
    } finally {
      this.recording = null
      this.dirty = null
    }
  }

  replay(body: EntryBody): { outputs: Output[]; io: IoRequest[] } {
    if (body.kind === 'state') {
      for (const [k, v] of body.pages) this.put(k, v)
      return { outputs: body.outputs, io: body.io }
    }
    this.replaying = this.forgetNondet ? null : [...body.nondet]
    try {
      return this.run(body.input)
    } finally {
      this.replaying = null
    }
  }

  stateHash(): string {
    const h = createHash('sha256')
    for (const k of [...this.pages.keys()].sort()) h.update(`${k}\u0000${this.pages.get(k)}\u0001`)
    return h.digest('hex').slice(0, 16)
  }

  snapshot(): Snapshot {
    const pages: PageWrite[] = [...this.pages.entries()]
    return { guest: this.guestName, pages, hash: this.stateHash() }
  }

  restore(s: Snapshot): void {
    if (s.guest !== this.guestName) throw new Error(`RegisterVmm: cannot restore a snapshot of guest ${s.guest}`)
    this.pages = new Map(s.pages.filter((p): p is [string, string] => p[1] !== null))
    if (this.stateHash() !== s.hash) throw new Error('RegisterVmm: snapshot hash mismatch after restore')
  }

  pendingIo(): IoRequest[] {
    return this.pages.has('timer') ? [{ t: 'timer-set', id: TICK_TIMER, ms: TICK_MS }] : []
  }

  isOpen(conn: string): boolean {
    return this.pages.has(`conn:${conn}`)
  }

  openConns(): string[] {
    return [...this.pages.keys()]
      .filter((k) => k.startsWith('conn:'))
      .map((k) => k.slice('conn:'.length))
      .sort()
  }

  memoryBytes(): number {
    let n = 0
    for (const [k, v] of this.pages) n += k.length + v.length
    return n
  }

  /** how often the guest's periodic timer has fired (a guest whose timer is not re-armed stops counting) */
  ticks(): number {
    return Number(this.pages.get('ticks') ?? '0')
  }

  /** the value of a key, for tests */
  peek(key: string): string | undefined {
    return this.pages.get(`kv:${key}`)
  }

  // ------------------------------------------------------------ the guest

  private run(input: GuestInput): { outputs: Output[]; io: IoRequest[] } {
    const outputs: Output[] = []
    const io: IoRequest[] = []
    switch (input.t) {
      case 'boot':
        this.put('timer', String(TICK_MS))
        io.push({ t: 'timer-set', id: TICK_TIMER, ms: TICK_MS })
        break
      case 'timer':
        if (input.id === TICK_TIMER) {
          this.put('ticks', String(Number(this.pages.get('ticks') ?? '0') + 1))
          io.push({ t: 'timer-set', id: TICK_TIMER, ms: TICK_MS })
        }
        break
      case 'open':
        this.put(`conn:${input.conn}`, '1')
        break
      case 'close':
        this.put(`conn:${input.conn}`, null)
        break
      case 'disk-read':
        this.put(`disk:${input.block}`, dec.decode(input.data))
        break
      case 'data':
        this.onRequests(input.conn, input.data, outputs)
        break
      case 'batch':
        // a turn's bytes of several connections: each connection's requests in the order they came
        for (const r of input.reads) this.onRequests(r.conn, r.data, outputs)
        break
      case 'disk-synced':
        break
      default:
        throw new Error(`register guest: unknown input ${JSON.stringify((input as { t?: unknown }).t)}`)
    }
    return { outputs, io }
  }

  /**
   * One data input may carry several requests: the edge gathers a connection's bytes of one
   * turn into one input, and TCP keeps no message boundaries. A request is never split here
   * (the simulated stream delivers whole writes), so an incomplete one is an error.
   */
  private onRequests(conn: string, data: Uint8Array, outputs: Output[]): void {
    let all: string[][]
    try {
      all = parseRespAll(data).map((v) => {
        if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new Error('expected an array of bulk strings')
        return v as string[]
      })
    } catch (err) {
      outputs.push({ t: 'reply', conn, data: enc.encode(respError(`ERR ${(err as Error).message}`)) })
      return
    }
    for (const args of all) this.onRequest(conn, args, outputs)
  }

  private onRequest(conn: string, args: string[], outputs: Output[]): void {
    if (args[0]?.toUpperCase() !== 'FTREQ') {
      outputs.push({ t: 'reply', conn, data: enc.encode(this.command(args, outputs)) })
      return
    }
    const [, client, seqText, ...cmd] = args
    const seq = Number(seqText)
    const prev = this.pages.get(`reply:${client}`)
    if (prev !== undefined) {
      const [prevSeq, prevReply] = JSON.parse(prev) as [number, string]
      if (seq === prevSeq) {
        outputs.push({ t: 'reply', conn, data: enc.encode(prevReply) }) // a retry: answer from the reply table
        return
      }
      if (seq < prevSeq) return // an old retry overtaken by a newer request
    }
    const reply = `*2\r\n${respInt(seq)}${this.command(cmd, outputs)}`
    this.put(`reply:${client}`, JSON.stringify([seq, reply]))
    outputs.push({ t: 'reply', conn, data: enc.encode(reply) })
  }

  private command(args: string[], outputs: Output[]): string {
    const [name, a, b] = args
    switch (name?.toUpperCase()) {
      case 'SET':
        this.put(`kv:${a}`, b)
        return respSimple('OK')
      case 'GET':
        return respBulk(this.pages.get(`kv:${a}`) ?? null)
      case 'INCR': {
        const n = Number(this.pages.get(`kv:${a}`) ?? '0') + 1
        this.put(`kv:${a}`, String(n))
        return respInt(n)
      }
      case 'TIME':
        return respInt(this.read('clock'))
      case 'RAND': {
        const r = this.read('random')
        this.put(`kv:${a}`, String(r))
        return respInt(r)
      }
      case 'SAVE': {
        const v = this.pages.get(`kv:${a}`) ?? ''
        outputs.push({ t: 'disk-write', block: Number(b), data: enc.encode(v) })
        return respSimple('OK')
      }
      case 'APPEND': {
        // APPEND key block offset: the key's value written into the block at offset (where the block ends: an append)
        const v = this.pages.get(`kv:${a}`) ?? ''
        outputs.push({ t: 'disk-write', block: Number(b), data: enc.encode(v), offset: Number(args[3]) })
        return respSimple('OK')
      }
      default:
        return respError(`ERR unknown command ${name}`)
    }
  }

  /** A device read: from the entropy on the primary (and logged), from the log on replay. */
  private read(d: 'clock' | 'random'): number {
    if (this.replaying) {
      const v = this.replaying.shift()
      if (!v || v.d !== d) throw new Error(`RegisterVmm: replay expected a logged ${d} value, found ${v ? v.d : 'nothing'}`)
      return v.v
    }
    const v = d === 'clock' ? this.entropy.now() : this.entropy.u32()
    this.recording?.push({ d, v } as Nondet)
    return v
  }

  private put(key: string, value: string | null): void {
    if (value === null) this.pages.delete(key)
    else this.pages.set(key, value)
    this.dirty?.set(key, value)
  }
}

export { encodeCommand }
