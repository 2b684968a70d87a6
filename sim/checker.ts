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
    if (a.t === 'release') {
      if (role === 'primary') {
        const acked = this.acked.get(gen) ?? 0
        if (a.entry > acked) this.fail(`Output Rule: primary ${node} (generation ${gen}) released an output of entry ${a.entry} but its backup has acknowledged only up to ${acked}`)
      } else if (role !== 'live') {
        this.fail(`${node} released an output of entry ${a.entry} while ${role}: only a primary or a live replica may output`)
      }
    }
    if (a.t === 'send-disk' && a.req.op === 'write' && role !== 'primary' && role !== 'live') {
      this.fail(`${node} sent a disk write while ${role}`)
    }
    if (role === 'halted' && a.t !== 'telemetry') this.fail(`halted replica ${node} emitted ${a.t}`)
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
        this.registered.set(req.gen, req.primary)
        this.currentGen = req.gen
        return
      case 'write': {
        const live = this.tasWinner.get(this.currentGen) ?? this.registered.get(this.currentGen)
        if (req.gen !== this.currentGen || req.from !== live) {
          this.fail(`the disk server accepted a write from ${req.from} (generation ${req.gen}) but the live replica is ${live} of generation ${this.currentGen}`)
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
