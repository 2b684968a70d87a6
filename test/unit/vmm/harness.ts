// A primary VMM, optionally a backup that replays every entry, and a disk: enough of a
// replica pair to drive guests from tests without the replica protocol.
import { expect } from 'vitest'
import { encodeCommand } from '../../../agent/guests/resp.js'
import type { GuestDefinition } from '../../../agent/guests/api.js'
import { spliceBlock } from '../../../agent/disk/arbiter.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import type { EntryBody, Entropy, ExecResult, GuestInput, Output, ReplicationMode, Vmm } from '../../../agent/vmm/types.js'

/** Seeded entropy (xorshift32) with a clock that moves forward a little on every read. */
export function seeded(seed: number): Entropy & { below(n: number): number } {
  let x = seed >>> 0 || 1
  let t = 1_700_000_000_000
  const u32 = (): number => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
  return { u32, now: () => (t += u32() % 50), below: (n) => u32() % n }
}

export const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')
export const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'))

/** Replies to `conn` among outputs, concatenated. */
export function repliesTo(conn: string, outputs: Output[]): string {
  return outputs.map((o) => (o.t === 'reply' && o.conn === conn ? latin1(o.data) : '')).join('')
}

/**
 * A disk write landing on a disk kept as a map, as the disk server applies it: whole, or appended at its offset, which
 * must be where the block ends (the disk server refuses anything else until the writes before it land).
 */
export function applyDiskWrite(disk: Map<number, Uint8Array>, o: Extract<Output, { t: 'disk-write' }>): void {
  if (o.offset === undefined) return void disk.set(o.block, o.data)
  const cur = disk.get(o.block) ?? new Uint8Array(0)
  expect(cur.length, `append at offset ${o.offset} of block ${o.block}, which holds ${cur.length} bytes`).toBe(o.offset)
  disk.set(o.block, spliceBlock(cur, o.offset, o.data))
}

export interface RigOptions {
  mode?: ReplicationMode
  seed?: number
  backup?: boolean
  definition?: GuestDefinition
  maxMemoryBytes?: number
  disk?: Map<number, Uint8Array>
}

export class Rig {
  readonly primary: Vmm
  readonly backup: Vmm | null
  readonly disk: Map<number, Uint8Array>
  readonly entropy: ReturnType<typeof seeded>
  readonly log: EntryBody[] = []
  /** disk reads asked for and not yet answered */
  readonly reads: { tag: number; block: number }[] = []
  readonly timers = new Map<number, number>()
  /** entries the backup checked */
  checked = 0

  constructor(
    readonly guest: string,
    opts: RigOptions = {}
  ) {
    const mode = opts.mode ?? 'rsm'
    this.entropy = seeded(opts.seed ?? 1)
    const common = { guest, mode, definition: opts.definition, maxMemoryBytes: opts.maxMemoryBytes }
    this.primary = createVmm({ ...common, entropy: this.entropy })
    // the backup's own entropy must never be used while it replays
    const poisoned: Entropy = {
      now: () => {
        throw new Error('backup read its own clock')
      },
      u32: () => {
        throw new Error('backup read its own random')
      }
    }
    this.backup = opts.backup === false ? null : createVmm({ ...common, entropy: poisoned })
    this.disk = opts.disk ?? new Map()
  }

  /** Execute on the primary, replay on the backup, and check they agree. */
  step(input: GuestInput): ExecResult {
    const r = this.primary.execute(input)
    this.log.push(r.body)
    for (const o of r.outputs) if (o.t === 'disk-write') applyDiskWrite(this.disk, o)
    for (const io of r.io) {
      if (io.t === 'disk-read') this.reads.push({ tag: io.tag, block: io.block })
      else if (io.t === 'timer-set') this.timers.set(io.id, io.ms)
      else this.timers.delete(io.id)
    }
    if (this.backup !== null) {
      const b = this.backup.replay(structuredClone(r.body))
      expect(this.backup.stateHash(), `state hash after entry ${this.log.length}`).toBe(this.primary.stateHash())
      expect(b.outputs).toEqual(r.outputs)
      expect(b.io).toEqual(r.io)
      this.checked++
    }
    return r
  }

  boot(): ExecResult[] {
    return [this.step({ t: 'boot' }), ...this.answerReads()]
  }

  /** Answer every outstanding disk read (and those the answers cause) from the disk map. */
  answerReads(): ExecResult[] {
    const out: ExecResult[] = []
    while (this.reads.length > 0) {
      const { tag, block } = this.reads.shift()!
      out.push(this.step({ t: 'disk-read', tag, block, data: this.disk.get(block) ?? new Uint8Array(0) }))
    }
    return out
  }

  fire(id: number): ExecResult {
    this.timers.delete(id)
    return this.step({ t: 'timer', id })
  }

  /** Send raw bytes on a connection; the replies it got. */
  raw(conn: string, data: string | Uint8Array): string {
    const r = this.step({ t: 'data', conn, data: typeof data === 'string' ? bytes(data) : data })
    // a disk that makes writes durable at once: replies held for a disk.sync() (kv's appendfsync always) come with it
    let out = repliesTo(conn, r.outputs)
    for (const o of r.outputs) if (o.t === 'disk-sync') out += repliesTo(conn, this.step({ t: 'disk-synced', tag: o.tag }).outputs)
    return out
  }

  /** Send one command as a RESP array; the reply text. */
  cmd(conn: string, ...args: (string | Uint8Array)[]): string {
    return this.raw(conn, encodeCommand(args))
  }
}
