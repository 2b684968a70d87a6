// The logging channel must not wedge: no message the core asks the edge to send may exceed
// the link's frame limit, whatever the guest does, and a primary whose backup answers but
// makes no progress acts as if the backup were silent.
import { describe, expect, it } from 'vitest'
import { encode } from '../../../agent/net/codec.js'
import { DEFAULT_MAX_FRAME_BYTES } from '../../../agent/net/frame.js'
import type { Action, PeerMsg } from '../../../agent/replica/types.js'
import type { ReplicationMode } from '../../../agent/vmm/types.js'
import type { ReplicaCore } from '../../../agent/replica/core.js'
import { confirmedPrimary, deliver, diskReqs, ftreq, makeCore, ok, pairWithSlicedSet, peerMsgs, releases, replyText, roles } from './harness.js'

const MiB = 1024 * 1024

function checkSizes(as: Action[]): void {
  for (const m of peerMsgs(as)) expect(encode(m).length, `${m.t} message`).toBeLessThanOrEqual(DEFAULT_MAX_FRAME_BYTES)
}

/** Moves messages both ways until neither side has anything to say; every message is checked against the frame limit. */
function converse(p: ReplicaCore, b: ReplicaCore, first: Action[], now: number): Action[] {
  let toB = first
  const atPrimary: Action[] = []
  for (let round = 0; round < 100 && peerMsgs(toB).length > 0; round++) {
    checkSizes(toB)
    for (const msg of peerMsgs(toB)) b.step({ t: 'peer', now, msg })
    const back = b.takeActions()
    checkSizes(back)
    for (const msg of peerMsgs(back)) p.step({ t: 'peer', now, msg })
    toB = p.takeActions()
    atPrimary.push(...toB)
  }
  return atPrimary
}

describe.each<ReplicationMode>(['rsm', 'state-transfer'])('a 9 MiB value in %s mode', (mode) => {
  it('crosses the logging channel in messages under the frame limit and its replies are released', () => {
    const p = confirmedPrimary({ mode })
    const b = makeCore('backup', { mode })
    b.core.takeActions()
    deliver(deliver(p.start, b.core, 1), p.core, 1)
    p.core.takeActions()
    const big = 'x'.repeat(9 * MiB)
    // two in one step: a batch of both would be 18 MiB
    p.core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'k1', big) })
    p.core.step({ t: 'input', now: 1, input: ftreq('c1', 2, 'SET', 'k2', big + 'y') })
    const first = p.core.takeActions()
    const later = converse(p.core, b.core, first, 2)
    const replies = [...releases(first), ...releases(later)].map(replyText)
    expect(replies).toHaveLength(2)
    expect(b.vmm.peek('k2')).toBe(big + 'y')
    expect(b.vmm.stateHash()).toBe(p.vmm.stateHash())
    expect(p.core.status()).toMatchObject({ role: 'primary', unackedEntries: 0, heldOutputs: 0 })
  })
})

describe('failure detection notices lack of progress', () => {
  it('a primary whose oldest unacked entry waits past suspectMs asks for the test-and-set although the backup keeps talking', () => {
    const p = confirmedPrimary()
    p.core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'k', 'v') })
    p.core.takeActions()
    // the backup hears nothing (a one-way cut) and keeps reporting entry 0
    const asked: string[] = []
    for (let now = 10; now <= 200; now += 10) {
      p.core.step({ t: 'peer', now, msg: { t: 'heartbeat', gen: 1, from: 'b', last: 0, releasedThrough: 0 } })
      p.core.step({ t: 'tick', now })
      asked.push(...diskReqs(p.core.takeActions()).map((r) => r.op))
    }
    expect(asked).toContain('tas')
  })

  it('a send the link refused reaches the core, which stops waiting for that backup', () => {
    const p = confirmedPrimary()
    p.core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'k', 'v') })
    const sent = peerMsgs(p.core.takeActions()).find((m) => m.t === 'entries') as PeerMsg
    p.core.step({ t: 'send-failed', now: 2, msg: sent, why: 'message of 20000000 bytes exceeds the frame limit of 16777216' })
    const tas = diskReqs(p.core.takeActions()).find((r) => r.op === 'tas')!
    expect(tas).toBeDefined()
    p.core.step({ t: 'disk', now: 3, res: ok(tas) })
    const live = p.core.takeActions()
    expect(roles(live)).toMatchObject([{ role: 'live' }])
    expect(releases(live)).toHaveLength(1)
  })
})

describe('restore redundancy of a guest larger than a frame', () => {
  it('ships the snapshot in parts under the frame limit, a few at a time, and recovers a lost part', () => {
    const p = confirmedPrimary({ mode: 'state-transfer' })
    // 40 MiB of state: one value above the frame limit and many small ones
    p.core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'huge', 'h'.repeat(20 * MiB) + '\u{1F600}'.repeat(1000)) })
    for (let i = 0; i < 20; i++) p.core.step({ t: 'input', now: 1, input: ftreq('c1', 2 + i, 'SET', `k${i}`, String(i).repeat(MiB)) })
    p.core.step({ t: 'tick', now: 60 })
    p.core.step({ t: 'disk', now: 61, res: ok(diskReqs(p.core.takeActions()).find((r) => r.op === 'tas')!) })
    p.core.takeActions()
    expect(p.core.status().role).toBe('live')

    p.core.beginRestore('c', 2, 100)
    p.core.step({ t: 'disk', now: 101, res: ok(diskReqs(p.core.takeActions())[0]) })
    let toC = p.core.takeActions()
    const c = makeCore('joining', { id: 'c', peer: null, gen: 2, mode: 'state-transfer' })
    c.core.takeActions()
    let now = 102
    let lost = false
    let parts = 0
    for (let round = 0; round < 200 && c.core.status().role === 'joining'; round++) {
      const msgs = peerMsgs(toC)
      expect(msgs.filter((m) => m.t === 'snapshot').length).toBeLessThanOrEqual(4)
      checkSizes(toC)
      for (const msg of msgs) {
        if (msg.t !== 'snapshot') continue
        parts = Math.max(parts, msg.part + 1)
        if (msg.part === 2 && !lost) {
          lost = true // the network loses one part: the primary resends from it
          continue
        }
        c.core.step({ t: 'peer', now, msg })
      }
      for (const msg of peerMsgs(c.core.takeActions())) p.core.step({ t: 'peer', now, msg })
      now += 10
      p.core.step({ t: 'tick', now })
      toC = p.core.takeActions()
    }
    expect(lost).toBe(true)
    expect(parts).toBeGreaterThan(5)
    expect(c.core.status()).toMatchObject({ role: 'backup', gen: 2 })
    expect(c.vmm.stateHash()).toBe(p.vmm.stateHash())
    expect(p.core.status()).toMatchObject({ role: 'primary', gen: 2, restoring: false })
  })
})

describe('an entry sent in slices', () => {
  it('is assembled across a resend that starts over, and a lost slice costs a resend, not a wedge', () => {
    const { p, b, parts } = pairWithSlicedSet()
    expect(parts.length).toBeGreaterThanOrEqual(5)
    // the first two arrive, the third is lost; the backup reports progress
    for (const msg of parts.slice(0, 2)) b.core.step({ t: 'peer', now: 3, msg })
    const acks = peerMsgs(b.core.takeActions())
    expect(acks.at(-1)).toMatchObject({ t: 'ack', n: 1, part: expect.any(Number) })
    for (const msg of acks) p.core.step({ t: 'peer', now: 3, msg })
    p.core.takeActions()
    // no ack progress: the primary goes back and resends every slice
    let resent: PeerMsg[] = []
    for (let now = 10; now < 200 && resent.length === 0; now += 10) {
      p.core.step({ t: 'tick', now })
      resent = peerMsgs(p.core.takeActions()).filter((m) => m.t === 'entry-part')
    }
    expect(resent.length).toBe(parts.length)
    const back = deliver([...resent.map((msg) => ({ t: 'send-peer' as const, msg }))], b.core, 200)
    expect(b.vmm.peek('k')).toBe('z'.repeat(300 * 1024))
    const out = deliver(back, p.core, 201)
    expect(releases(out)).toHaveLength(1)
  })
})
