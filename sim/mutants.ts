// Deliberately broken replica cores, each switched on by a test-only knob, to prove the
// simulator's invariants catch what they claim to (the CI seeds must fail on each).
import { ReplicaCore } from '../agent/replica/core.js'
import type { Event, PeerMsg } from '../agent/replica/types.js'
import type { EntryBody, ExecResult, GuestInput, Output, Vmm } from '../agent/vmm/types.js'
import type { CoreFactory } from './simulator.js'

/** Releases the guest's disk writes without waiting for the backup's ack (replies still wait). */
class EarlyDiskWrite extends ReplicaCore {
  protected override outputRuleAllows(n: number, out?: Output): boolean {
    return out?.t === 'disk-write' ? this.status().genConfirmed : super.outputRuleAllows(n, out)
  }
}

/** Releases outputs once the backup has them, without waiting for the disk server to confirm the generation. */
class UnconfirmedRelease extends ReplicaCore {
  protected override outputRuleAllows(n: number): boolean {
    return n <= this.status().acked
  }
}

/** Releases every output at once: no Output Rule at all. */
class EarlyRelease extends ReplicaCore {
  protected override outputRuleAllows(): boolean {
    return true
  }
}

/** Takes the disk server's refusal of a write (fenced: another replica is live) for a passing I/O error, and carries on. */
class IgnoresFencing extends ReplicaCore {
  override step(ev: Event): void {
    if (ev.t === 'disk' && !ev.res.ok && ev.res.error === 'fenced') ev = { ...ev, res: { ...ev.res, error: 'io' } }
    super.step(ev)
  }
}

/** Goes live without re-issuing the I/O the dead primary's guest was waiting on (timers, disk reads). */
function forgetPendingIo(vmm: Vmm): Vmm {
  return new Proxy(vmm, {
    get(target, key) {
      if (key === 'pendingIo') return () => []
      const v = Reflect.get(target, key, target)
      return typeof v === 'function' ? v.bind(target) : v
    }
  })
}

/**
 * A backup that acknowledges every entry it receives, also those behind a gap it has not filled (a lost or overtaken
 * message): the primary never resends the gap, so the backup falls behind for good while the primary, counting on it,
 * goes on releasing outputs. Nothing diverges at any entry both replicas reach; only the end of the run, which
 * requires the pair to stand at one entry, sees it.
 */
class AcksAhead extends ReplicaCore {
  override step(ev: Event): void {
    super.step(ev)
    if (ev.t !== 'peer' || ev.msg.t !== 'entries' || this.status().role !== 'backup') return
    const last = Math.max(...ev.msg.entries.map((e) => e.n))
    const s = this.status()
    // sendPeer is the core's own (private at compile time only): this broken core speaks as the real one would
    if (last > s.lastEntry) (this as unknown as { sendPeer(m: PeerMsg): void }).sendPeer({ t: 'ack', gen: s.gen, n: last })
  }
}

/**
 * A block's whole-block writes stop reaching the disk server after its first `upTo` (the guest's disk-write outputs
 * are dropped in its VMM), though the guest's syncs complete and its replies go out: acknowledged writes that the disk
 * never holds. Whole-block writes only: the kv guest's superblock, whose log length then stays behind the records
 * appended after it. A lost append would leave a hole the disk server refuses to write past (its next append waits
 * for ever, which the liveness check reports instead of the disk check this mutant is for).
 */
function loseDiskWrites(vmm: Vmm, upTo: number): Vmm {
  const writes = new Map<number, number>()
  const keep = (o: Output) => {
    if (o.t !== 'disk-write' || o.offset !== undefined) return true
    const n = (writes.get(o.block) ?? 0) + 1
    writes.set(o.block, n)
    return n <= upTo
  }
  const strip = (body: EntryBody): EntryBody => (body.kind === 'state' ? { ...body, outputs: body.outputs.filter((o) => keep(o)) } : body)
  return new Proxy(vmm, {
    get(target, key) {
      if (key === 'execute')
        return (input: GuestInput): ExecResult => {
          const r = target.execute(input)
          // the same writes leave the entry (state transfer: a backup that goes live releases what the body lists)
          if (r.body.kind === 'state') {
            const body = strip(r.body)
            // the outputs a completed barrier held are not in the body (the backup releases them itself): keep those
            const dropped = new Set(r.body.outputs.filter((o) => body.kind === 'state' && !body.outputs.includes(o)))
            return { ...r, body, outputs: r.outputs.filter((o) => !dropped.has(o)) }
          }
          return { ...r, outputs: r.outputs.filter((o) => keep(o)) }
        }
      const v = Reflect.get(target, key, target)
      return typeof v === 'function' ? v.bind(target) : v
    }
  })
}

export const MUTANTS = {
  'early-disk-write': (cfg, vmm, init) => new EarlyDiskWrite(cfg, vmm, init),
  'unconfirmed-release': (cfg, vmm, init) => new UnconfirmedRelease(cfg, vmm, init),
  'early-release': (cfg, vmm, init) => new EarlyRelease(cfg, vmm, init),
  'go-live-forgets-io': (cfg, vmm, init) => new ReplicaCore(cfg, forgetPendingIo(vmm), init),
  'ignores-fencing': (cfg, vmm, init) => new IgnoresFencing(cfg, vmm, init),
  'acks-ahead': (cfg, vmm, init) => new AcksAhead(cfg, vmm, init),
  'loses-disk-writes': (cfg, vmm, init) => new ReplicaCore(cfg, loseDiskWrites(vmm, 5), init)
} satisfies Record<string, CoreFactory>

export type MutantName = keyof typeof MUTANTS
