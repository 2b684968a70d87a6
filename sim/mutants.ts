// Deliberately broken replica cores, each switched on by a test-only knob, to prove the
// simulator's invariants catch what they claim to (the CI seeds must fail on each).
import { ReplicaCore } from '../agent/replica/core.js'
import type { Event } from '../agent/replica/types.js'
import type { Output, Vmm } from '../agent/vmm/types.js'
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

export const MUTANTS = {
  'early-disk-write': (cfg, vmm, init) => new EarlyDiskWrite(cfg, vmm, init),
  'unconfirmed-release': (cfg, vmm, init) => new UnconfirmedRelease(cfg, vmm, init),
  'early-release': (cfg, vmm, init) => new EarlyRelease(cfg, vmm, init),
  'go-live-forgets-io': (cfg, vmm, init) => new ReplicaCore(cfg, forgetPendingIo(vmm), init),
  'ignores-fencing': (cfg, vmm, init) => new IgnoresFencing(cfg, vmm, init)
} satisfies Record<string, CoreFactory>

export type MutantName = keyof typeof MUTANTS
