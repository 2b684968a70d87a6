// What the clients ask for: SET/GET on register keys, INCR/GET on counter keys. Registers
// and counters live on separate keys so an INCR never meets a string and every check has
// one kind of key to reason about. Written values are unique, so a lost write shows.
import type { OpKind } from './history.js'
import { Prng } from '../../agent/prng.js'

export interface Mix {
  set: number
  get: number
  incr: number
}

export const DEFAULT_MIX: Mix = { set: 0.4, get: 0.4, incr: 0.2 }

export interface PlannedOp {
  op: OpKind
  key: string
  value?: string
}

/**
 * Keys live in a namespace per run (`<ns>:r:<i>`, `<ns>:c:<i>`), so every run starts from
 * empty keys and its history alone explains every value: a second run against the same lab
 * cannot be mistaken for lost writes or counters applied twice.
 */
export const registerKey = (ns: string, i: number): string => `${ns}:r:${i}`
export const counterKey = (ns: string, i: number): string => `${ns}:c:${i}`

export function isCounterKey(key: string): boolean {
  return /(^|:)c:\d+$/.test(key)
}

/** Every key a workload of this size may touch (for the final read). */
export function allKeys(ns: string, keys: number): string[] {
  const out: string[] = []
  for (let i = 0; i < keys; i++) out.push(registerKey(ns, i), counterKey(ns, i))
  return out
}

/** A small seeded generator: a run can be repeated from its seed (the one Prng of agent/prng.ts). */
export function seededRandom(seed: number): () => number {
  const p = new Prng(seed)
  return () => p.float()
}

export class Workload {
  private readonly rnd: () => number
  private readonly total: number
  private n = 0

  constructor(
    private readonly clientId: string,
    private readonly ns: string,
    private readonly keys: number,
    seed: number,
    private readonly mix: Mix = DEFAULT_MIX
  ) {
    if (!Number.isInteger(keys) || keys < 1) throw new Error(`the key space must be a positive integer, got ${keys}`)
    this.total = mix.set + mix.get + mix.incr
    if (!(this.total > 0) || mix.set < 0 || mix.get < 0 || mix.incr < 0)
      throw new Error('the operation mix needs non-negative weights that add up to more than 0')
    this.rnd = seededRandom(seed)
  }

  next(): PlannedOp {
    this.n++
    const k = Math.floor(this.rnd() * this.keys)
    const x = this.rnd() * this.total
    if (x < this.mix.set) return { op: 'set', key: registerKey(this.ns, k), value: `v:${this.clientId}:${this.n}` }
    if (x < this.mix.set + this.mix.incr) return { op: 'incr', key: counterKey(this.ns, k) }
    return { op: 'get', key: this.rnd() < 0.5 ? registerKey(this.ns, k) : counterKey(this.ns, k) }
  }
}
