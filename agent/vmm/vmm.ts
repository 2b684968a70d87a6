// The VMM: runs one guest on one input at a time, and is the only thing that sees the
// world on the guest's behalf. On the primary it records every non-deterministic value
// the guest reads (rsm) or the pages the input changed (state transfer); on the backup it
// replays exactly that. Outputs and I/O requests go back to the replica protocol, which
// holds, releases or suppresses them.
import { BLOCK_SIZE, type GuestDefinition } from '../guests/api.js'
import { getGuest } from '../guests/index.js'
import { byteStringToBytes, bytesToByteString } from '../guests/resp.js'
import { Memory, applyPageDiff } from './memory.js'
import { createSandbox, isStackOverflow, type HostDevices, type Sandbox } from './sandbox.js'
import type {
  EntryBody,
  Entropy,
  ExecResult,
  GuestInput,
  IoRequest,
  Nondet,
  Output,
  PageDiff,
  PageWrite,
  Refusal,
  ReplicationMode,
  Snapshot,
  SnapshotLoader,
  Vmm
} from './types.js'

export { BLOCK_SIZE }

/** Default bound on guest memory (keys + values, bytes). */
export const DEFAULT_MAX_MEMORY = 256 * 1024 * 1024

/** The backup's replay read a different number or kind of non-deterministic values than the primary logged. */
export class DivergenceError extends Error {
  override readonly name = 'DivergenceError'
}

// Page namespaces. The guest sees only its own (`g:`); the VMM's bookkeeping lives in
// pages too, so a snapshot carries it and the state hash covers it.
const G = 'g:'
const CONN = 'vmm:conn:'
const DISK = 'vmm:disk:'
const TIMER = 'vmm:timer:'
/**
 * A disk barrier whose completion has not been applied: `vmm:sync:<tag>`, its value the outputs held until it completes
 * (nic.send and nic.close with `afterSync`), back to back: `s<conn length>:<conn><bytes length>:<bytes>` or
 * `c<conn length>:<conn>`. They live with the barrier, in pages the backup holds too, so the entry of the completion
 * names only the barrier: the backup releases what it holds (see releaseSynced).
 */
const SYNC = 'vmm:sync:'
const NEXT_TAG = 'vmm:next-tag'

/** What the client of a refused input is told, on primary and backup alike. */
export const STACK_OVERFLOW_FAULT =
  'stack overflow: the guest recursed deeper than the host allows, and that depth differs between primary and backup, so this input was refused (it had no effect) and the connection closed'

/** What one input is doing right now. */
interface Step {
  outputs: Output[]
  io: IoRequest[]
  nondet: Nondet[]
  /** backup: the logged values to hand out, in order; null on the primary */
  logged: Nondet[] | null
  divergence: string | null
  /** dev.atomic's rollback points: memory mark, outputs, I/O */
  marks: [number, number, number][]
  /** where the first handler call of this input began: a refusal rolls back to here */
  start: [number, number, number] | null
  /** the host's device code ran out of stack during this input */
  overflow: boolean
  /** primary: refused (no more handlers run); backup: replaying a refused entry */
  refused: Refusal | null
  /** a disk barrier's completion released what it held: the memory mark and output count after that, where the guest's part begins */
  released?: [mark: number, outputs: number]
  /** the barriers that completion released (the completed one and the pending ones before it) */
  barriers?: number[]
  /** pending barriers this input kept outputs for (ExecResult.heldFor) */
  heldFor?: number[]
  /** the connection an 'open', 'data' or 'close' input is of: a refusal tells and closes it */
  conn?: string
  /** a 'batch' input's connections: a refusal tells and closes them all */
  conns?: string[]
}

const BYTE_STRING = /[^\x00-\xff]/

function byteString(s: unknown, where: string): string {
  if (typeof s !== 'string') throw new TypeError(`${where}: bytes must be a byte string, got ${typeof s}`)
  const bad = BYTE_STRING.exec(s)
  if (bad)
    throw new TypeError(
      `${where}: bytes must be a byte string (char codes 0-255); found U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')} at index ${bad.index}`
    )
  return s
}

function nonNegInt(n: unknown, where: string): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new TypeError(`${where}: expected a non-negative integer, got ${String(n)}`)
  return n
}

function connId(c: unknown, where: string): string {
  if (typeof c !== 'string' || c === '') throw new TypeError(`${where}: connection id must be a non-empty string, got ${String(c)}`)
  return c
}

export function describeInput(input: GuestInput): string {
  switch (input.t) {
    case 'boot':
      return 'boot'
    case 'open':
      return `open ${input.conn}`
    case 'close':
      return `close ${input.conn}`
    case 'data':
      return `data ${input.conn} (${input.data.length} bytes)`
    case 'batch':
      return `batch of ${input.reads.length} connections (${input.reads.reduce((n, r) => n + r.data.length, 0)} bytes)`
    case 'disk-read':
      return `disk-read tag ${input.tag} block ${input.block} (${input.data.length} bytes)`
    case 'timer':
      return `timer ${input.id}`
    case 'disk-synced':
      return `disk-synced tag ${input.tag}`
  }
}

function checkInput(input: GuestInput): void {
  const where = 'vmm: guest input'
  if (input === null || typeof input !== 'object') throw new TypeError(`${where} must be an object, got ${String(input)}`)
  switch (input.t) {
    case 'boot':
      return
    case 'open':
    case 'close':
      connId(input.conn, `${where} '${input.t}'`)
      return
    case 'data':
      connId(input.conn, `${where} 'data'`)
      if (!(input.data instanceof Uint8Array)) throw new TypeError(`${where} 'data' on ${input.conn}: data must be a Uint8Array`)
      return
    case 'batch': {
      if (!Array.isArray(input.reads) || input.reads.length === 0) throw new TypeError(`${where} 'batch': reads must be a non-empty array`)
      const seen = new Set<string>()
      input.reads.forEach((r, i) => {
        if (r === null || typeof r !== 'object') throw new TypeError(`${where} 'batch' #${i}: must be an object, got ${String(r)}`)
        const conn = connId(r.conn, `${where} 'batch' #${i}`)
        if (seen.has(conn)) throw new TypeError(`${where} 'batch' #${i}: connection ${conn} comes twice`)
        seen.add(conn)
        if (!(r.data instanceof Uint8Array)) throw new TypeError(`${where} 'batch' #${i} on ${conn}: data must be a Uint8Array`)
      })
      return
    }
    case 'disk-read':
      nonNegInt(input.tag, `${where} 'disk-read' tag`)
      nonNegInt(input.block, `${where} 'disk-read' block`)
      if (!(input.data instanceof Uint8Array)) throw new TypeError(`${where} 'disk-read' of block ${input.block}: data must be a Uint8Array`)
      return
    case 'timer':
      nonNegInt(input.id, `${where} 'timer' id`)
      return
    case 'disk-synced':
      nonNegInt(input.tag, `${where} 'disk-synced' tag`)
      return
    default:
      throw new TypeError(`${where}: unknown kind ${JSON.stringify((input as { t?: unknown }).t)}`)
  }
}

function checkPages(pages: unknown, where: string): PageWrite[] {
  if (!Array.isArray(pages)) throw new TypeError(`${where}: pages must be an array`)
  for (const p of pages) {
    if (!Array.isArray(p) || typeof p[0] !== 'string' || (typeof p[1] !== 'string' && p[1] !== null)) {
      throw new TypeError(`${where}: each page must be [key: string, value: string | null], got ${JSON.stringify(p)?.slice(0, 80)}`)
    }
  }
  return pages as PageWrite[]
}

function checkDiffs(diffs: unknown, where: string): PageDiff[] {
  if (diffs === undefined) return []
  if (!Array.isArray(diffs)) throw new TypeError(`${where}: diffs must be an array`)
  for (const d of diffs) {
    if (!Array.isArray(d) || typeof d[0] !== 'string' || typeof d[1] !== 'number' || typeof d[2] !== 'number' || typeof d[3] !== 'string') {
      throw new TypeError(`${where}: each diff must be [key: string, prefix: number, suffix: number, middle: string], got ${JSON.stringify(d)?.slice(0, 80)}`)
    }
  }
  return diffs as PageDiff[]
}

export interface VmmOptions {
  guest: string
  mode: ReplicationMode
  entropy: Entropy
  /** bound on guest memory, bytes; a write beyond it fails the command (guest fault) */
  maxMemoryBytes?: number
  /** run this definition instead of looking `guest` up in the registry (tests, guests under development) */
  definition?: GuestDefinition
}

export function createVmm(opts: VmmOptions): Vmm {
  const def: GuestDefinition = opts.definition ?? getGuest(opts.guest)
  if (opts.mode !== 'rsm' && opts.mode !== 'state-transfer') throw new TypeError(`createVmm: unknown replication mode ${JSON.stringify(opts.mode)}`)
  const entropy = opts.entropy
  const mem = new Memory(opts.maxMemoryBytes ?? DEFAULT_MAX_MEMORY, [SYNC])
  let step: Step | null = null

  /** Keep an output until barrier `tag` completes; false when it is no pending barrier (the output leaves at once). */
  function hold(tag: unknown, where: string, record: () => string): boolean {
    const t = nonNegInt(tag, `${where} afterSync`)
    const held = mem.get(SYNC + String(t))
    if (held === undefined) return false
    mem.set(SYNC + String(t), held + record())
    const s = step
    if (s !== null && s.heldFor?.[s.heldFor.length - 1] !== t) (s.heldFor ??= []).push(t)
    return true
  }

  /**
   * Barrier `tag` completed: every barrier before it did too (a barrier follows every earlier write). The outputs held
   * for it and for the pending ones before it go out, oldest barrier first, each only to a connection still open (as
   * nic.send and nic.close would have at this point), and all their pages go: the guest hears of the newest alone (the
   * replica protocol completes a turn's barriers as one input). False when `tag` is no pending barrier (a completion
   * that came twice, or one a later barrier's completion covered). Primary and backup alike.
   */
  function releaseSynced(tag: number, outputs: Output[], released?: number[]): boolean {
    if (!mem.has(SYNC + tag)) return false
    const tags = mem
      .keys(SYNC)
      .map((k) => Number(k.slice(SYNC.length)))
      .filter((t) => t <= tag)
      .sort((a, b) => a - b)
    released?.push(...tags)
    for (const t of tags) {
      const held = mem.get(SYNC + t)!
      mem.delete(SYNC + t)
      for (let p = 0; p < held.length;) {
        const kind = held[p]
        const c = held.indexOf(':', p + 1)
        const connEnd = c + 1 + Number(held.slice(p + 1, c))
        const conn = held.slice(c + 1, connEnd)
        p = connEnd
        if (kind === 'c') {
          if (!mem.has(CONN + conn)) continue
          mem.delete(CONN + conn)
          outputs.push({ t: 'close', conn })
          continue
        }
        const b = held.indexOf(':', p)
        const end = b + 1 + Number(held.slice(p, b))
        if (mem.has(CONN + conn)) outputs.push({ t: 'reply', conn, data: byteStringToBytes(held.slice(b + 1, end)) })
        p = end
      }
    }
    return true
  }

  function current(what: string): Step {
    if (step === null) throw new Error(`${what} called outside the handling of an input`)
    return step
  }

  /** the replica's own facts: read on the primary, replayed on the backup, like the clock */
  function replicaInfo(): string {
    const s = current('replica.info()')
    if (s.logged === null) {
      const raw = entropy.replica ? entropy.replica() : ''
      if (typeof raw !== 'string') throw new Error(`entropy replica returned ${typeof raw}, not a string`)
      // bytes for the guest: one char per byte, no CR/LF that could break a reply line
      const v = raw.replace(/[^\x20-\x7e\n]/g, '?').slice(0, 4096)
      s.nondet.push({ d: 'replica', v })
      return v
    }
    const i = s.nondet.length
    const next = s.logged[i]
    if (next === undefined || next.d !== 'replica') {
      s.divergence ??= `read #${i + 1} is replica, but the log has ${next === undefined ? `only ${s.logged.length} value(s)` : next.d}`
      throw new DivergenceError(s.divergence)
    }
    s.nondet.push(next)
    return next.v
  }

  function nondet(kind: 'clock' | 'random'): number {
    const s = current(kind === 'clock' ? 'clock.now()' : 'random.u32()')
    if (s.logged === null) {
      const raw = kind === 'clock' ? entropy.now() : entropy.u32()
      if (typeof raw !== 'number' || !Number.isFinite(raw)) throw new Error(`entropy ${kind} returned ${String(raw)}, not a finite number`)
      const v = kind === 'clock' ? raw : raw >>> 0
      s.nondet.push({ d: kind, v })
      return v
    }
    const i = s.nondet.length
    const next = s.logged[i]
    if (next === undefined || next.d !== kind || typeof next.v !== 'number') {
      s.divergence ??= `read #${i + 1} is ${kind}, but the log has ${next === undefined ? `only ${s.logged.length} value(s)` : next.d}`
      throw new DivergenceError(s.divergence)
    }
    s.nondet.push(next)
    return next.v
  }

  // The devices as the host implements them; sandbox.ts wraps them in guest-realm functions,
  // so nothing here is ever reachable from the guest.
  const host: HostDevices = {
    memGet: (k) => mem.get(G + k),
    memHas: (k) => mem.has(G + k),
    memSet: (k, v) => {
      if (typeof k !== 'string' || typeof v !== 'string') throw new TypeError(`mem.set: key and value must be strings, got ${typeof k} and ${typeof v}`)
      mem.set(G + k, v)
    },
    memDelete: (k) => mem.delete(G + k),
    memKeys: (prefix) => mem.keys(G + prefix).map((k) => k.slice(G.length)),
    nicSend(conn, bytes, afterSync) {
      const s = current('nic.send')
      byteString(bytes, `nic.send to ${conn}`)
      if (
        afterSync !== undefined &&
        hold(afterSync, `nic.send to ${conn}`, () => (bytes.length === 0 ? '' : `s${conn.length}:${conn}${bytes.length}:${bytes}`))
      )
        return
      if (bytes.length > 0 && mem.has(CONN + conn)) s.outputs.push({ t: 'reply', conn, data: byteStringToBytes(bytes) })
    },
    nicClose(conn, afterSync) {
      const s = current('nic.close')
      if (!mem.has(CONN + conn)) return
      // the connection stays open until the close leaves: replies held before it still go out
      if (afterSync !== undefined && hold(afterSync, `nic.close of ${conn}`, () => `c${conn.length}:${conn}`)) return
      mem.delete(CONN + conn)
      s.outputs.push({ t: 'close', conn })
    },
    nicIsOpen: (conn) => mem.has(CONN + conn),
    diskRead(block) {
      const s = current('disk.read')
      nonNegInt(block, 'disk.read block')
      const tag = Number(mem.get(NEXT_TAG) ?? '1')
      mem.set(NEXT_TAG, String(tag + 1))
      mem.set(DISK + tag, String(block))
      s.io.push({ t: 'disk-read', tag, block })
      return tag
    },
    diskWrite(block, bytes, offset) {
      const s = current('disk.write')
      nonNegInt(block, 'disk.write block')
      byteString(bytes, `disk.write block ${block}`)
      if (offset === undefined) {
        if (bytes.length > BLOCK_SIZE) throw new RangeError(`disk.write block ${block}: ${bytes.length} bytes exceed the block size ${BLOCK_SIZE}`)
        s.outputs.push({ t: 'disk-write', block, data: byteStringToBytes(bytes) })
        return
      }
      nonNegInt(offset, `disk.write block ${block} offset`)
      if (offset + bytes.length > BLOCK_SIZE)
        throw new RangeError(`disk.write block ${block}: ${bytes.length} bytes at offset ${offset} end beyond the block size ${BLOCK_SIZE}`)
      s.outputs.push({ t: 'disk-write', block, data: byteStringToBytes(bytes), offset })
    },
    diskSync() {
      const s = current('disk.sync')
      const tag = Number(mem.get(NEXT_TAG) ?? '1')
      mem.set(NEXT_TAG, String(tag + 1))
      mem.set(SYNC + tag, '')
      s.outputs.push({ t: 'disk-sync', tag })
      return tag
    },
    clockNow: () => nondet('clock'),
    replicaInfo,
    randomU32: () => nondet('random'),
    timerSet(id, ms) {
      const s = current('timer.set')
      nonNegInt(id, 'timer.set id')
      if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw new TypeError(`timer.set ${id}: ms must be a non-negative number, got ${String(ms)}`)
      mem.set(TIMER + id, String(ms))
      s.io.push({ t: 'timer-set', id, ms })
    },
    timerCancel(id) {
      const s = current('timer.cancel')
      if (!mem.has(TIMER + id)) return
      mem.delete(TIMER + id)
      s.io.push({ t: 'timer-cancel', id })
    },
    mark() {
      const s = current('atomic')
      s.marks.push([mem.mark(), s.outputs.length, s.io.length])
      return s.marks.length - 1
    },
    rollback(i) {
      const s = current('atomic')
      const m = s.marks[i]
      if (m === undefined) throw new RangeError(`atomic: no rollback point ${String(i)} in this input`)
      mem.rollback(m[0])
      s.outputs.length = m[1]
      s.io.length = m[2]
    },
    overflow() {
      if (step !== null) step.overflow = true
    }
  }

  let sandbox: Sandbox = createSandbox(def, host)

  /**
   * Run one guest handler. A throw must not take the agent down, and must leave the same
   * state on every replica: the handler's writes, outputs and I/O are undone, and the
   * client (where there is one; `conn` may name several) is told.
   */
  function call(s: Step, fault: { msg?: string }, conn: string | readonly string[] | null, handler: string, a?: unknown, b?: unknown, c?: unknown): void {
    const mark = mem.mark()
    const outs = s.outputs.length
    const ios = s.io.length
    s.start ??= [mark, outs, ios]
    if (s.refused !== null) {
      // primary: an earlier handler of this input overflowed; backup: the primary refused this input
      if (s.logged !== null && fault.msg === undefined) refuse(s, fault, handler)
      return
    }
    let r: ReturnType<Sandbox['call']>
    try {
      r = sandbox.call(handler, a, b, c)
    } catch (e) {
      // the stack ran out in the VMM's own frames around the guest
      if (!isStackOverflow(e)) throw e
      r = { fault: String((e as Error).message), overflow: true }
    }
    if (s.divergence !== null) return
    if (r.overflow || s.overflow) {
      // The depth at which the stack runs out differs between hosts (stack size, JIT state), so an
      // overflow is a fault the other replica may not have. The primary refuses the input and logs
      // the refusal; a backup that overflows where the primary did not cannot follow it.
      if (s.logged !== null)
        s.divergence ??= `stack overflow in '${handler}' on this replica but not on the primary (their stack limits differ), so this replica cannot reproduce the entry`
      else refuse(s, fault, handler)
      return
    }
    if (r.fault === null) return
    mem.rollback(mark)
    s.outputs.length = outs
    s.io.length = ios
    const msg = r.fault.replace(/[\r\n]+/g, ' ')
    fault.msg ??= `${handler}: ${msg}`
    for (const c of conn === null ? [] : typeof conn === 'string' ? [conn] : conn) {
      if (mem.has(CONN + c)) s.outputs.push({ t: 'reply', conn: c, data: byteStringToBytes(`-ERR guest fault: ${msg}\r\n`) })
    }
  }

  /**
   * Undo every handler of this input, tell the client (every client of a 'batch' input) and close its connection: the
   * same on primary and backup.
   */
  function refuse(s: Step, fault: { msg?: string }, handler: string): void {
    const [mark, outs, ios] = s.start!
    mem.rollback(mark)
    s.outputs.length = outs
    s.io.length = ios
    s.refused = 'stack-overflow'
    fault.msg = `${handler}: ${STACK_OVERFLOW_FAULT}`
    for (const c of s.conns ?? (s.conn === undefined ? [] : [s.conn])) {
      if (!mem.has(CONN + c)) continue
      s.outputs.push({ t: 'reply', conn: c, data: byteStringToBytes(`-ERR guest fault: ${STACK_OVERFLOW_FAULT}\r\n`) })
      mem.delete(CONN + c)
      s.outputs.push({ t: 'close', conn: c })
    }
  }

  function run(input: GuestInput, logged: Nondet[] | null, refused: Refusal | null = null): Step & { fault?: string } {
    checkInput(input)
    mem.beginInput()
    const s: Step = { outputs: [], io: [], nondet: [], logged, divergence: null, marks: [], start: null, overflow: false, refused }
    const fault: { msg?: string } = {}
    step = s
    try {
      switch (input.t) {
        case 'boot':
          call(s, fault, null, 'boot')
          break
        case 'open':
          s.conn = input.conn
          mem.set(CONN + input.conn, '')
          call(s, fault, input.conn, 'open', input.conn)
          break
        case 'data':
          s.conn = input.conn
          // a session's bytes can arrive on a new primary before its 'open' does
          if (!mem.has(CONN + input.conn)) {
            mem.set(CONN + input.conn, '')
            call(s, fault, input.conn, 'open', input.conn)
          }
          call(s, fault, input.conn, 'data', input.conn, bytesToByteString(input.data))
          break
        case 'batch': {
          // each connection's bytes as its 'data' (a fault undoes and answers that connection's alone), told that
          // endInput follows; then endInput once, where a guest writes out and answers the whole batch
          s.conns = input.reads.map((r) => r.conn)
          for (const r of input.reads) {
            // refused (a handler overflowed; on a backup, at once): nothing more of the batch runs, nor opens
            if (s.refused !== null && fault.msg !== undefined) break
            if (!mem.has(CONN + r.conn)) {
              mem.set(CONN + r.conn, '')
              call(s, fault, r.conn, 'open', r.conn)
            }
            call(s, fault, r.conn, 'data', r.conn, bytesToByteString(r.data), true)
          }
          // a failed end (undone) is told to every client of the batch, as a failed 'data' is to its one
          call(s, fault, s.conns, 'endInput')
          break
        }
        case 'close':
          if (mem.has(CONN + input.conn)) {
            mem.delete(CONN + input.conn)
            call(s, fault, null, 'close', input.conn)
          }
          break
        case 'disk-read': {
          // a read re-issued at go-live may be answered twice: only the first answer counts
          if (mem.get(DISK + input.tag) !== String(input.block)) break
          mem.delete(DISK + input.tag)
          call(s, fault, null, 'diskRead', input.tag, input.block, bytesToByteString(input.data))
          break
        }
        case 'disk-synced':
          // a barrier re-issued at go-live may complete twice: only the first completion counts
          s.barriers = []
          if (!releaseSynced(input.tag, s.outputs, s.barriers)) break
          s.released = [mem.mark(), s.outputs.length]
          call(s, fault, null, 'diskSynced', input.tag)
          break
        case 'timer':
          if (!mem.has(TIMER + input.id)) break // cancelled after it fired
          mem.delete(TIMER + input.id)
          call(s, fault, null, 'timer', input.id)
          break
      }
    } catch (e) {
      // The VMM's own code failed part-way (in practice: the stack ran out around the guest).
      // No entry is made of this input, so none of it may stay.
      mem.rollback(0)
      throw e
    } finally {
      step = null
    }
    if (logged !== null && refused === null && s.divergence === null && s.nondet.length !== logged.length) {
      s.divergence = `the guest read ${s.nondet.length} non-deterministic value(s), the log has ${logged.length}`
    }
    if (s.divergence !== null) throw new DivergenceError(`replay diverged on entry input '${describeInput(input)}': ${s.divergence}`)
    return fault.msg === undefined ? s : { ...s, fault: fault.msg }
  }

  /** A fresh guest realm over the current pages. */
  function restartRealm(): void {
    sandbox = createSandbox(def, host)
  }

  function withFault<T extends object>(r: T, fault: string | undefined): T & { fault?: string } {
    return fault === undefined ? r : { ...r, fault }
  }

  function restoreInParts(guest: string): SnapshotLoader {
    if (guest !== def.name) throw new Error(`vmm.restore: snapshot is of guest '${guest}', this VMM runs '${def.name}'`)
    mem.clear()
    let finished = false
    return {
      pages(pages) {
        if (finished) throw new Error('vmm.restore: pages after the snapshot was finished')
        // load(), not set(): a restore needs no undo or dirty bookkeeping (memory.ts)
        mem.load(pages)
      },
      finish(hash) {
        if (finished) return
        finished = true
        mem.beginInput()
        // a fresh realm, as snapshot() starts on the side that shipped it
        restartRealm()
        if (mem.hash() !== hash) {
          throw new Error(`vmm.restore: snapshot pages hash to ${mem.hash()}, but the snapshot says ${hash}: it is corrupt or from another version`)
        }
      }
    }
  }

  return {
    guestName: def.name,
    mode: opts.mode,

    execute(input) {
      const s = run(input, null)
      let body: EntryBody
      if (opts.mode === 'state-transfer') {
        // a barrier's completion: the backup releases what the barrier held itself, so the entry carries only the tag
        // and what the guest did after (the held replies travelled once, in the entry that held them)
        const from = s.released
        const { pages, diffs } = mem.changes(from?.[0] ?? 0)
        const outputs = from === undefined ? s.outputs : s.outputs.slice(from[1])
        const state: Extract<EntryBody, { kind: 'state' }> = { kind: 'state', pages, outputs, io: s.io }
        if (diffs.length > 0) state.diffs = diffs
        if (from !== undefined && input.t === 'disk-synced') state.synced = input.tag
        body = state
      }
      // the values a refused input read are of no use to the backup, which will not run it
      else if (s.refused !== null) body = { kind: 'input', input, nondet: [], refused: s.refused }
      else body = { kind: 'input', input, nondet: s.nondet }
      const r: ExecResult = { body, outputs: s.outputs, io: s.io }
      if (s.refused !== null) r.refused = s.refused
      // (what a refused or faulted handler kept was undone: heldFor may name more barriers than hold its outputs, which
      // only makes them wait longer)
      if (s.heldFor !== undefined) r.heldFor = s.heldFor
      if (s.released !== undefined) r.released = { outputs: s.released[1], barriers: s.barriers! }
      return withFault(r, s.fault)
    },

    replay(body) {
      if (body === null || typeof body !== 'object') throw new TypeError(`vmm.replay: entry body must be an object, got ${String(body)}`)
      if (body.kind === 'input') {
        if (!Array.isArray(body.nondet)) throw new TypeError('vmm.replay: input entry without a nondet array')
        if (body.refused !== undefined && body.refused !== 'stack-overflow') throw new TypeError(`vmm.replay: unknown refusal ${JSON.stringify(body.refused)}`)
        const s = run(body.input, body.nondet, body.refused ?? null)
        return withFault({ outputs: s.outputs, io: s.io }, s.fault)
      }
      if (body.kind === 'state') {
        const pages = checkPages(body.pages, 'vmm.replay state entry')
        const diffs = checkDiffs(body.diffs, 'vmm.replay state entry')
        if (body.synced !== undefined) nonNegInt(body.synced, 'vmm.replay state entry synced')
        mem.beginInput()
        // a barrier's completion: release what it held, as the primary did before its guest ran
        const outputs: Output[] = []
        if (body.synced !== undefined && !releaseSynced(body.synced, outputs))
          throw new DivergenceError(`state entry completes disk barrier ${body.synced}, which this replica does not hold pending: the states differ`)
        // every diff must fit this side's copy before a page of the entry is written: a misfit means the two states already
        // differ (and undoes the release)
        const patched: [string, string][] = []
        for (const [k, prefix, suffix, middle] of diffs) {
          const old = mem.get(k)
          const next = old === undefined ? null : applyPageDiff(old, prefix, suffix, middle)
          if (next === null) {
            mem.rollback(0)
            throw new DivergenceError(
              `state entry changes page ${JSON.stringify(k.slice(0, 80))} by a diff (keep ${prefix} + ${suffix} of its units) that does not fit this replica's copy (${old === undefined ? 'absent' : `${old.length} units`}): the states differ`
            )
          }
          patched.push([k, next])
        }
        for (const [k, v] of pages) {
          if (v === null) mem.delete(k)
          else mem.set(k, v)
        }
        for (const [k, v] of patched) mem.set(k, v)
        for (const o of body.outputs ?? []) outputs.push(o)
        return { outputs, io: body.io ?? [] }
      }
      throw new TypeError(`vmm.replay: unknown entry kind ${JSON.stringify((body as { kind?: unknown }).kind)}`)
    },

    stateHash: () => mem.hash(),

    snapshot(): Snapshot {
      const snap: Snapshot = { guest: def.name, pages: mem.all(), hash: mem.hash() }
      // The restored side gets a fresh realm (restore() must: it has no other), so this side
      // starts one too, and both run the guest from the same state: the pages. The other way
      // round, capturing a realm's closures and globals in the snapshot, cannot be done with
      // node:vm, nor can such state be detected; the rules (docs/guests.md) forbid it, and
      // this makes a guest that breaks them lose it on both sides alike rather than diverge.
      restartRealm()
      return snap
    },

    restore(snap) {
      if (snap === null || typeof snap !== 'object') throw new TypeError('vmm.restore: snapshot must be an object')
      const loader = restoreInParts(snap.guest)
      loader.pages(checkPages(snap.pages, 'vmm.restore'))
      loader.finish(snap.hash)
    },

    restoreInParts,

    pendingIo(): IoRequest[] {
      const reads: IoRequest[] = mem
        .keys(DISK)
        .map((k) => ({ t: 'disk-read' as const, tag: Number(k.slice(DISK.length)), block: Number(mem.get(k)) }))
        .sort((a, b) => a.tag - b.tag)
      const timers: IoRequest[] = mem
        .keys(TIMER)
        .map((k) => ({ t: 'timer-set' as const, id: Number(k.slice(TIMER.length)), ms: Number(mem.get(k)) }))
        .sort((a, b) => a.id - b.id)
      return [...reads, ...timers]
    },

    pendingSyncs: () =>
      mem
        .keys(SYNC)
        .map((k) => Number(k.slice(SYNC.length)))
        .sort((a, b) => a - b),

    isOpen: (conn) => mem.has(CONN + conn),
    openConns: () => mem.keys(CONN).map((k) => k.slice(CONN.length)),
    memoryBytes: () => mem.sizeBytes(),

    query(conn, data) {
      if (step !== null) throw new Error('vmm.query called during the handling of an input')
      if (!mem.has(CONN + conn)) return null
      // a fresh undo log, so rolling back to 0 undoes exactly this query's writes (the previous input's
      // dirty pages were taken by its execute); the values it read from the devices are dropped with it
      mem.beginInput()
      const s: Step = { outputs: [], io: [], nondet: [], logged: null, divergence: null, marks: [], start: null, overflow: false, refused: null }
      const fault: { msg?: string } = {}
      step = s
      try {
        call(s, fault, conn, 'query', conn, bytesToByteString(data))
      } finally {
        step = null
        mem.rollback(0)
        mem.beginInput()
      }
      if (fault.msg !== undefined || s.refused !== null || s.io.length > 0 || s.outputs.length !== 1) return null
      const out = s.outputs[0]
      return out.t === 'reply' && out.conn === conn ? out.data : null
    }
  }
}
