// Restoring a large kv guest onto a joining replica: it loads each snapshot part as it arrives (no step holds
// its event loop for the whole guest), answers the restoring primary's heartbeats meanwhile, and the pair runs on.
import { describe, expect, it } from 'vitest'
import { encodeCommand } from '../../../agent/guests/resp.js'
import { ReplicaCore } from '../../../agent/replica/core.js'
import type { Action, PeerMsg } from '../../../agent/replica/types.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import { diskReqs, fixedEntropy, ok, peerMsgs, roles, testConfig } from './harness.js'

const KEYS = 30_000
const cfg = { maxMessageBytes: 64 * 1024 }

function kvCore(id: string, peer: string | null, role: 'primary' | 'joining', gen: number) {
  const vmm = createVmm({ guest: 'kv', mode: 'rsm', entropy: fixedEntropy() })
  const core = new ReplicaCore(testConfig(id, peer, cfg), vmm, { role, gen, now: 0 })
  return { core, vmm }
}

/** Every message of `as` to `to`, one step each (as a host's turns would); the answers. */
function deliverEach(as: Action[], to: ReplicaCore, now: number, each?: (msg: PeerMsg) => void): Action[] {
  const out: Action[] = []
  for (const msg of peerMsgs(as)) {
    to.step({ t: 'peer', now, msg })
    out.push(...to.takeActions())
    each?.(msg)
  }
  return out
}

describe('restoring a large guest', () => {
  it(`a joining replica loads a snapshot of ${KEYS.toLocaleString('en-US')} keys part by part, and the pair runs on`, () => {
    // a primary alone (its backup gone) with a large guest, filled by pipelined SETs
    const a = kvCore('a', 'b', 'primary', 1)
    a.core.step({ t: 'disk', now: 0, res: ok(diskReqs(a.core.takeActions()).find((r) => r.op === 'generation')!) })
    a.core.takeActions()
    a.core.step({ t: 'tick', now: 1000 })
    a.core.step({ t: 'disk', now: 1001, res: ok(diskReqs(a.core.takeActions()).find((r) => r.op === 'tas')!) })
    a.core.takeActions()
    expect(a.core.status().role).toBe('live')
    a.core.step({ t: 'input', now: 1002, input: { t: 'open', conn: 't:1' } })
    for (let at = 0; at < KEYS; at += 1000) {
      const cmds = Array.from({ length: 1000 }, (_, i) => encodeCommand(['SET', `key:${at + i}`, `value-${at + i}`]))
      a.core.step({ t: 'input', now: 1003, input: { t: 'data', conn: 't:1', data: Buffer.concat(cmds) } })
    }
    a.core.takeActions()

    // restore onto c: the snapshot goes in parts of 64 KiB, a window of them at a time
    a.core.beginRestore('c', 2, 2000)
    a.core.step({ t: 'disk', now: 2001, res: ok(diskReqs(a.core.takeActions())[0]) })
    let out = a.core.takeActions()
    expect(roles(out)).toMatchObject([{ role: 'primary', gen: 2 }])
    const c = kvCore('c', null, 'joining', 2)
    c.core.takeActions()
    let now = 2002
    let parts = 0
    let loadedBeforeTheLast = false
    for (let round = 0; round < 10_000 && c.core.status().role === 'joining'; round++) {
      const answers = deliverEach(out, c.core, now++, (msg) => {
        if (msg.t !== 'snapshot') return
        parts++
        if (!msg.done && c.vmm.memoryBytes() > 0) loadedBeforeTheLast = true
      })
      out = deliverEach(answers, a.core, now++)
    }
    expect(c.core.status().role).toBe('backup')
    expect(parts).toBeGreaterThan(8)
    expect(loadedBeforeTheLast).toBe(true)
    expect(c.vmm.stateHash()).toBe(a.vmm.stateHash())

    // the pair runs on: a GET is logged, applied by c and acknowledged, and its reply may leave
    a.core.step({ t: 'input', now, input: { t: 'data', conn: 't:1', data: encodeCommand(['GET', `key:${KEYS - 1}`]) } })
    let acts = [...out, ...a.core.takeActions()]
    for (let round = 0; round < 20 && peerMsgs(acts).length > 0; round++) acts = deliverEach(deliverEach(acts, c.core, now++), a.core, now++)
    const entry = a.core.status().lastEntry
    expect(entry).toBeGreaterThan(0)
    expect(c.core.status().lastEntry).toBe(entry)
    expect(a.core.status()).toMatchObject({ acked: entry, releasedThrough: entry, heldOutputs: 0 })
    expect(c.vmm.stateHash()).toBe(a.vmm.stateHash())
  })
})
