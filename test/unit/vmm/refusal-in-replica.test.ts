// A stack overflow seen through the replica protocol: the primary refuses the input and says
// so; the backup applies the refusal and stays in step (it never runs the guest for it).
import { describe, expect, it } from 'vitest'
import { ReplicaCore } from '../../../agent/replica/core.js'
import type { Action } from '../../../agent/replica/types.js'
import type { GuestDefinition } from '../../../agent/guests/api.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import { bytes, latin1, seeded } from './harness.js'
import { diskReqs, ok, peerMsgs, releases, roles, telemetry, testConfig } from '../replica/harness.js'

const recursive: GuestDefinition = {
  name: 'recursive',
  description: 'recurses as deep as asked, inside dev.atomic as lib.service does',
  factory: function (dev) {
    const down = (n: number): number => (n === 0 ? 0 : 1 + down(n - 1))
    return {
      data(conn: string, what: string) {
        dev.mem.set('last', what)
        try {
          dev.nic.send(conn, 'depth ' + dev.atomic(() => down(Number(what))))
        } catch (e) {
          dev.nic.send(conn, 'swallowed ' + (e as Error).message)
        }
      }
    }
  }
}

describe('a refused input in the replica protocol', () => {
  it('is reported by the primary, answered with an error, and replayed by the backup without divergence', () => {
    const vmm = (seed: number) => createVmm({ guest: 'recursive', mode: 'rsm', entropy: seeded(seed), definition: recursive })
    const p = new ReplicaCore(testConfig('a', 'b'), vmm(1), { role: 'primary', gen: 1, now: 0 })
    const b = new ReplicaCore(testConfig('b', 'a'), vmm(2), { role: 'backup', gen: 1, now: 0 })
    const start = p.takeActions()
    p.step({ t: 'disk', now: 0, res: ok(diskReqs(start).find((r) => r.op === 'generation')!) })
    const all: Action[] = [...start, ...p.takeActions()]
    b.takeActions()

    p.step({ t: 'input', now: 1, input: { t: 'data', conn: 't:1', data: bytes('100000000') } })
    p.step({ t: 'input', now: 1, input: { t: 'data', conn: 't:2', data: bytes('10') } })
    all.push(...p.takeActions())
    const dropped = telemetry(all).filter((e) => e.k === 'dropped')
    expect(dropped).toEqual([
      expect.objectContaining({ k: 'dropped', what: expect.stringMatching(/^input data t:1 .*\(entry \d+\)$/), why: expect.stringMatching(/stack overflow/) })
    ])

    // the backup replays both entries, stays a backup, reports no divergence and acknowledges them
    const fromB: Action[] = []
    for (const msg of peerMsgs(all)) {
      b.step({ t: 'peer', now: 2, msg })
      fromB.push(...b.takeActions())
    }
    expect(telemetry(fromB).filter((e) => e.k === 'diverged')).toEqual([])
    expect(roles(fromB)).toEqual([])
    const acked = Math.max(...peerMsgs(fromB).flatMap((m) => (m.t === 'ack' ? [m.n] : [])))
    for (const msg of peerMsgs(fromB)) p.step({ t: 'peer', now: 3, msg })
    const out = releases(p.takeActions())
    expect(acked).toBeGreaterThanOrEqual(2)
    const text = out.map((r) => (r.out.t === 'reply' ? `${r.out.conn} ${latin1(r.out.data)}` : r.out.t === 'close' ? `close ${r.out.conn}` : r.out.t))
    expect(text).toContainEqual(expect.stringMatching(/^t:1 -ERR guest fault: stack overflow/))
    expect(text).toContain('close t:1')
    expect(text).toContain('t:2 depth 10')
  })
})
