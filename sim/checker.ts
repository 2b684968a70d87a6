// The simulator's invariants, checked as the run goes (after every step), from what the
// replicas and the disk server actually did, not from what they believe.
import type { Action, DiskReq, DiskRes, Role } from '../agent/replica/types.js'

export class SimFailure extends Error {
  override readonly name = 'SimFailure'
}

export class Checker {
  /** gen -> highest entry the backup of that generation acknowledged (ack or heartbeat) */
  private acked = new Map<number, number>()
  private tasWinner = new Map<number, string>()
  /** generations the disk server accepted, and who it was told is primary */
  private registered = new Map<number, string>()
  private currentGen = 0
  /** replicas the disk server refused a write from, by generation: they must never output again in it */
  private fenced = new Map<string, number>()
  private primaryHash = new Map<string, string>()
  private backupHash = new Map<string, { hash: string; node: string }>()
  checks = 0

  constructor(private readonly now: () => number) {}

  fail(what: string): never {
    throw new SimFailure(`invariant violated at t=${this.now()}ms: ${what}`)
  }

  /** A backup said it has every entry up to n: the only licence a primary has to release outputs of those entries. */
  onAckSent(gen: number, n: number): void {
    if (n > (this.acked.get(gen) ?? 0)) this.acked.set(gen, n)
  }

  /** An action a replica emitted, with the role it had when it emitted it. */
  onAction(node: string, role: Role, gen: number, a: Action): void {
    this.checks++
    const isWrite = a.t === 'send-disk' && a.req.op === 'write'
    if (a.t === 'release' || isWrite) {
      const what = a.t === 'release' ? 'an output' : 'a disk write'
      const entry = a.t === 'release' ? a.entry : (a.entry ?? 0)
      if (this.fenced.get(node) === gen)
        this.fail(`${node} released ${what} of entry ${entry} in generation ${gen} after the disk server fenced its write: a fenced replica must halt`)
      if (role === 'primary') {
        // the Output Rule, for replies and disk writes alike
        const acked = this.acked.get(gen) ?? 0
        if (entry > acked)
          this.fail(`Output Rule: primary ${node} (generation ${gen}) released ${what} of entry ${entry} but its backup has acknowledged only up to ${acked}`)
        // and nothing leaves before the disk server has confirmed the generation with this primary
        if (this.registered.get(gen) !== node && this.tasWinner.get(gen) !== node) {
          this.fail(`primary ${node} released ${what} of entry ${entry} in generation ${gen} before the disk server confirmed that generation with it`)
        }
      } else if (role === 'live') {
        this.checkWonTas(node, gen, `released ${what}`)
      } else {
        this.fail(`${node} released ${what} of entry ${entry} while ${role}: only a primary or a live replica may output`)
      }
    }
    // going live (a replica booting from disk acts live from its start: it is judged by its outputs)
    if (a.t === 'role' && a.role === 'live' && role !== 'live') this.checkWonTas(node, a.gen, 'went live')
    if (role === 'halted' && a.t !== 'telemetry') this.fail(`halted replica ${node} emitted ${a.t}`)
  }

  /** A replica acting live must have won the test-and-set of its generation at the disk server. */
  private checkWonTas(node: string, gen: number, did: string): void {
    const winner = this.tasWinner.get(gen)
    if (winner !== node) this.fail(`${node} ${did} in generation ${gen} but ${winner ? `${winner} won` : 'nobody has won'} that generation's test-and-set`)
  }

  /** A replica received the disk server's refusal of its write in generation `gen` (not when the disk sent it: releases in between are in flight). */
  onFenced(node: string, gen: number): void {
    this.fenced.set(node, gen)
  }

  /** The disk server answered: judge the answer against the rules it must keep. */
  onDiskAnswer(req: DiskReq, res: DiskRes): void {
    this.checks++
    if (!res.ok) return
    switch (req.op) {
      case 'tas': {
        const prev = this.tasWinner.get(req.gen)
        if (prev !== undefined && prev !== req.from) this.fail(`two test-and-set winners in generation ${req.gen}: ${prev} and ${req.from}`)
        if (req.gen !== this.currentGen) this.fail(`test-and-set won in generation ${req.gen} while generation ${this.currentGen} is current`)
        this.tasWinner.set(req.gen, req.from)
        return
      }
      case 'generation':
        if (req.gen < this.currentGen) this.fail(`the disk server accepted generation ${req.gen} after ${this.currentGen}`)
        if (req.recover === true) {
          // a boot from disk after a double failure begins the generation with its one replica live: its test-and-set, won
          const prev = this.tasWinner.get(req.gen)
          if (prev !== undefined && prev !== req.from) this.fail(`two replicas live in generation ${req.gen}: ${prev} and ${req.from} (recovery from disk)`)
          this.tasWinner.set(req.gen, req.from)
        }
        this.registered.set(req.gen, req.primary)
        this.currentGen = req.gen
        return
      case 'write': {
        const live = this.tasWinner.get(this.currentGen) ?? this.registered.get(this.currentGen)
        if (req.gen !== this.currentGen || req.from !== live) {
          this.fail(
            `the disk server accepted a write from ${req.from} (generation ${req.gen}) but the live replica is ${live} of generation ${this.currentGen}`
          )
        }
        return
      }
    }
  }

  /** State hash of a replica right after it executed (primary) or applied (backup) entry n of gen. */
  onHash(node: string, role: 'primary' | 'backup', gen: number, n: number, hash: string): void {
    const key = `${gen}:${n}`
    if (role === 'primary') {
      if (this.primaryHash.has(key)) return
      this.primaryHash.set(key, hash)
      const b = this.backupHash.get(key)
      if (b && b.hash !== hash) this.fail(`state diverged at entry ${n} of generation ${gen}: backup ${b.node} has ${b.hash}, primary ${node} has ${hash}`)
      return
    }
    const p = this.primaryHash.get(key)
    if (p !== undefined && p !== hash) this.fail(`state diverged at entry ${n} of generation ${gen}: primary has ${p}, backup ${node} has ${hash}`)
    if (p === undefined) this.backupHash.set(key, { hash, node })
  }
}
