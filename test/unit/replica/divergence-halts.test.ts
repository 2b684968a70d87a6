// A detected divergence stops the backup: at the first state-hash mismatch it reports the entry
// where it began and halts; the primary goes on alone (its held outputs released without the
// halted backup), and restore redundancy can then start a fresh backup in the next generation.
import { describe, expect, it } from 'vitest'
import { ReplicaCore } from '../../../agent/replica/core.js'
import { RegisterVmm } from '../../../sim/register-vmm.js'
import {
  ackMsgs,
  confirmedPrimary,
  deliver,
  diskReqs,
  fixedEntropy,
  ftreq,
  makeCore,
  ok,
  peerMsgs,
  releases,
  replyText,
  roles,
  telemetry,
  testConfig
} from './harness.js'

/** A backup whose guest state silently differs from the primary's from its `from`-th applied entry on (a non-deterministic guest). */
class DriftingVmm extends RegisterVmm {
  applied = 0
  constructor(private readonly from: number) {
    super({ mode: 'rsm', entropy: fixedEntropy() })
  }
  override replay(body: Parameters<RegisterVmm['replay']>[0]) {
    this.applied++
    return super.replay(body)
  }
  override stateHash(): string {
    return this.applied >= this.from ? `drift-${super.stateHash()}` : super.stateHash()
  }
}

describe('a backup whose state hash differs from the primary', () => {
  it('reports where the divergence began, halts, and the primary goes on alone; a fresh backup restores in gen + 1', () => {
    // hashes every 2 entries: entry 2 matches, entry 3 drifts, the mismatch shows at entry 4
    const p = confirmedPrimary({ cfg: { hashEvery: 2 } })
    const bvmm = new DriftingVmm(3)
    const b = new ReplicaCore(testConfig('b', 'a', { hashEvery: 2 }), bvmm, { role: 'backup', gen: 1, now: 0 })
    b.takeActions()
    deliver(deliver(p.start, b, 1), p.core, 1)
    p.core.takeActions()
    p.core.step({ t: 'input', now: 2, input: ftreq('c1', 1, 'SET', 'k', 'one') })
    deliver(deliver(p.core.takeActions(), b, 2), p.core, 2) // entry 2: hashes match
    p.core.step({ t: 'input', now: 3, input: ftreq('c1', 2, 'SET', 'k', 'two') })
    p.core.step({ t: 'input', now: 3, input: ftreq('c1', 3, 'SET', 'k', 'three') })
    const sent = p.core.takeActions()
    expect(releases(sent)).toEqual([])

    const fromB = deliver(sent, b, 4)
    expect(roles(fromB)).toMatchObject([{ role: 'halted', gen: 1 }])
    expect(roles(fromB)[0].reason).toMatch(/diverged from a .* entry 4.*began in entries 3\.\.4/)
    expect(ackMsgs(fromB).filter((m) => m.n >= 4)).toEqual([]) // never acks the entry that showed the mismatch
    const report = peerMsgs(fromB).find((m) => m.t === 'diverged')
    expect(report).toMatchObject({ t: 'diverged', gen: 1, n: 4, since: 3 })
    expect(telemetry(fromB)).toContainEqual(expect.objectContaining({ k: 'diverged', host: 'b', n: 4, since: 3 }))
    // a halted backup does nothing more, even when it hears from the primary
    b.step({ t: 'tick', now: 1000 })
    expect(peerMsgs(b.takeActions())).toEqual([])

    // the primary says so, and goes on alone at once: test-and-set, then its held outputs leave
    const atP = deliver(fromB, p.core, 5)
    expect(telemetry(atP)).toContainEqual(expect.objectContaining({ k: 'diverged', host: 'b', n: 4, since: 3 }))
    const tas = diskReqs(atP).find((r) => r.op === 'tas')!
    expect(tas).toMatchObject({ op: 'tas', gen: 1, from: 'a' })
    p.core.step({ t: 'disk', now: 6, res: ok(tas) })
    const live = p.core.takeActions()
    expect(roles(live)).toMatchObject([{ role: 'live', gen: 1 }])
    expect(releases(live).map(replyText)).toHaveLength(2) // the replies to SET two and SET three, held until now

    // restore redundancy onto a fresh replica in generation 2
    p.core.beginRestore('c', 2, 10)
    p.core.step({ t: 'disk', now: 11, res: ok(diskReqs(p.core.takeActions())[0]) })
    const c = makeCore('joining', { id: 'c', peer: null, gen: 2, cfg: { hashEvery: 2 } })
    c.core.takeActions()
    const joined = deliver(p.core.takeActions(), c.core, 12)
    expect(roles(joined)).toMatchObject([{ role: 'backup', gen: 2 }])
    deliver(joined, p.core, 13)
    expect(p.core.status()).toMatchObject({ role: 'primary', gen: 2, restoring: false })
    expect(c.vmm.peek('k')).toBe('three')
    expect(c.vmm.stateHash()).toBe(p.vmm.stateHash())
  })
})
