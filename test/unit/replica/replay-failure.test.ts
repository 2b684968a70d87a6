import { describe, expect, it } from 'vitest'
import { ReplicaCore } from '../../../agent/replica/core.js'
import type { EntryBody, IoRequest, Output } from '../../../agent/vmm/types.js'
import { RegisterVmm } from '../../../sim/register-vmm.js'
import { confirmedPrimary, deliver, diskReqs, fixedEntropy, ftreq, ok, peerMsgs, releases, roles, telemetry, testConfig } from './harness.js'

/**
 * A backup VMM that cannot replay one entry: what the real VMM does (DivergenceError) when the
 * guest reads a different number of clock/random values than the primary logged, the
 * determinism holes of DESIGN.md (floating point across CPUs or Node versions, WeakRef, ...).
 */
class FailingReplay extends RegisterVmm {
  private applied = 0
  constructor(private readonly failAt: number) {
    super({ mode: 'rsm', entropy: fixedEntropy() })
  }
  override replay(body: EntryBody): { outputs: Output[]; io: IoRequest[] } {
    if (++this.applied === this.failAt) throw new Error('replay diverged on entry input: the guest read 1 non-deterministic value(s), the log has 0')
    return super.replay(body)
  }
}

describe('backup: an entry it cannot replay', () => {
  it('is reported as a divergence at that entry, and the backup halts so the primary can go on alone', () => {
    const p = confirmedPrimary()
    const bvmm = new FailingReplay(2)
    const b = new ReplicaCore(testConfig('b', 'a'), bvmm, { role: 'backup', gen: 1, now: 0 })
    b.takeActions()
    const boot = deliver(p.start, b, 1)
    p.core.step({ t: 'input', now: 2, input: ftreq('c1', 1, 'SET', 'k', 'v') })
    const sent = p.core.takeActions()
    deliver(boot, p.core, 2)
    p.core.takeActions()

    // before the fix this threw out of step(), leaving the backup wedged
    let a: ReturnType<ReplicaCore['takeActions']> = []
    expect(() => {
      for (const msg of peerMsgs(sent)) b.step({ t: 'peer', now: 3, msg })
      a = b.takeActions()
    }).not.toThrow()
    expect(telemetry(a)).toContainEqual(expect.objectContaining({ k: 'diverged', n: 2 }))
    expect(peerMsgs(a)).toContainEqual(expect.objectContaining({ t: 'diverged', gen: 1, n: 2 }))
    expect(peerMsgs(a).filter((m) => m.t === 'ack' && m.n >= 2)).toEqual([]) // never acks what it could not apply
    expect(roles(a)).toMatchObject([{ role: 'halted', gen: 1 }])

    // the primary shows the divergence; the halted backup is silent, so it is suspected, and
    // the primary goes live and answers the client instead of stalling for ever
    const pa = deliver(a, p.core, 4)
    expect(telemetry(pa)).toContainEqual(expect.objectContaining({ k: 'diverged', n: 2 }))
    const heard: string[] = []
    for (let t = 10; t <= 200; t += 10) {
      // the resends go to the backup; a wedged backup would keep heartbeating here
      const out = p.core.takeActions()
      for (const msg of peerMsgs(out)) b.step({ t: 'peer', now: t, msg })
      for (const msg of peerMsgs(b.takeActions())) {
        heard.push(msg.t)
        p.core.step({ t: 'peer', now: t, msg })
      }
      b.step({ t: 'tick', now: t })
      for (const msg of peerMsgs(b.takeActions())) {
        heard.push(msg.t)
        p.core.step({ t: 'peer', now: t, msg })
      }
      p.core.step({ t: 'tick', now: t })
      const tas = diskReqs(p.core.takeActions()).find((r) => r.op === 'tas')
      if (tas) {
        p.core.step({ t: 'disk', now: t, res: ok(tas) })
        break
      }
    }
    expect(heard).toEqual([])
    const live = p.core.takeActions()
    expect(p.core.status().role).toBe('live')
    expect(releases(live)).toHaveLength(1)
  })
})
