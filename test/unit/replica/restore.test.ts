import { describe, expect, it } from 'vitest'
import { ReplicaCore } from '../../../agent/replica/core.js'
import { ackMsgs, confirmedPrimary, deliver, diskReqs, entriesMsgs, ftreq, makeCore, ok, peerMsgs, releases, roles, telemetry } from './harness.js'

/** A primary that lost its backup and went live. */
function livePrimary() {
  const p = confirmedPrimary()
  p.core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'k', 'before') })
  p.core.step({ t: 'tick', now: 60 })
  p.core.step({ t: 'disk', now: 61, res: ok(diskReqs(p.core.takeActions()).find((r) => r.op === 'tas')!) })
  p.core.takeActions()
  expect(p.core.status().role).toBe('live')
  return p
}

describe('restore redundancy', () => {
  it('registers the next generation, ships a snapshot, and applies the Output Rule anew', () => {
    const p = livePrimary()
    p.core.beginRestore('c', 2, 100)
    const reg = diskReqs(p.core.takeActions())
    expect(reg).toMatchObject([{ op: 'generation', gen: 2, from: 'a', primary: 'a', backup: 'c' }])
    expect(p.core.status()).toMatchObject({ role: 'live', gen: 1, restoring: true })

    p.core.step({ t: 'disk', now: 101, res: ok(reg[0]) })
    const started = p.core.takeActions()
    expect(roles(started)).toMatchObject([{ role: 'primary', gen: 2 }])
    const snap = peerMsgs(started).find((m) => m.t === 'snapshot')!
    expect(snap).toMatchObject({ t: 'snapshot', gen: 2, from: 'a', last: 0 })
    expect(started.find((a) => a.t === 'send-peer')).toMatchObject({ to: 'c' })

    // inputs before the new backup is ready are logged as entries of generation 2, held, not sent
    p.core.step({ t: 'input', now: 102, input: ftreq('c1', 2, 'SET', 'k', 'after') })
    const early = p.core.takeActions()
    expect(entriesMsgs(early)).toEqual([])
    expect(releases(early)).toEqual([])

    const c = makeCore('joining', { id: 'c', peer: null, gen: 2, now: 100 })
    c.core.takeActions()
    const joined = deliver(started, c.core, 103)
    expect(roles(joined)).toMatchObject([{ role: 'backup', gen: 2 }])
    expect(peerMsgs(joined)).toEqual([{ t: 'snapshot-ack', gen: 2, from: 'c', part: 0 }])

    const flowing = deliver(joined, p.core, 104)
    expect(entriesMsgs(flowing).flatMap((m) => m.entries.map((e) => [e.gen, e.n]))).toEqual([[2, 1]])
    const acks = deliver(flowing, c.core, 105)
    expect(ackMsgs(acks)).toEqual([{ t: 'ack', gen: 2, n: 1 }])
    const out = deliver(acks, p.core, 106)
    expect(releases(out)).toHaveLength(1)
    expect(c.vmm.peek('k')).toBe('after')
    expect(c.vmm.stateHash()).toBe(p.vmm.stateHash())
  })

  it('pauses inputs while the new generation is being registered, then logs them in it', () => {
    const p = livePrimary()
    p.core.beginRestore('c', 2, 100)
    const first = p.core.takeActions()
    const [reg] = diskReqs(first)
    expect(first.filter((a) => a.t === 'stall')).toEqual([{ t: 'stall', on: true }])
    p.core.step({ t: 'input', now: 100, input: ftreq('c1', 2, 'SAVE', 'k', '3') })
    const paused = p.core.takeActions()
    expect(diskReqs(paused)).toEqual([]) // no write may carry the generation being retired
    expect(p.core.status()).toMatchObject({ stalled: true, queuedInputs: 1, gen: 1 })
    p.core.step({ t: 'disk', now: 101, res: ok(reg) })
    const a = p.core.takeActions()
    expect(a.filter((x) => x.t === 'stall')).toEqual([{ t: 'stall', on: false }])
    expect(p.core.status()).toMatchObject({ role: 'primary', gen: 2, lastEntry: 1, heldOutputs: 2, queuedInputs: 0 })
  })

  it('re-acks a repeated snapshot without restoring it again', () => {
    const p = livePrimary()
    p.core.beginRestore('c', 2, 100)
    p.core.step({ t: 'disk', now: 101, res: ok(diskReqs(p.core.takeActions())[0]) })
    const started = p.core.takeActions()
    const c = makeCore('joining', { id: 'c', peer: null, gen: 2 })
    c.core.takeActions()
    const joined = deliver(started, c.core, 102)
    const flowing = deliver(joined, p.core, 103)
    p.core.step({ t: 'input', now: 103, input: ftreq('c1', 2, 'SET', 'k', 'after') })
    deliver([...flowing, ...p.core.takeActions()], c.core, 104)
    expect(c.vmm.peek('k')).toBe('after')
    const again = deliver(started, c.core, 105) // the old snapshot, delayed
    expect(peerMsgs(again)).toEqual([{ t: 'snapshot-ack', gen: 2, from: 'c', part: 0 }])
    expect(c.vmm.peek('k')).toBe('after')
  })

  it('can be repeated in both directions', () => {
    const p = livePrimary()
    p.core.beginRestore('b', 2, 100)
    p.core.step({ t: 'disk', now: 101, res: ok(diskReqs(p.core.takeActions())[0]) })
    const b = makeCore('joining', { id: 'b', peer: null, gen: 2 })
    b.core.takeActions()
    deliver(deliver(p.core.takeActions(), b.core, 102), p.core, 103)
    // a dies; b goes live in generation 2 and restores onto a fresh a in generation 3
    b.core.step({ t: 'tick', now: 200 })
    b.core.step({ t: 'disk', now: 201, res: ok(diskReqs(b.core.takeActions())[0]) })
    expect(roles(b.core.takeActions())).toMatchObject([{ role: 'live', gen: 2 }])
    b.core.beginRestore('a', 3, 202)
    b.core.step({ t: 'disk', now: 203, res: ok(diskReqs(b.core.takeActions())[0]) })
    const a2 = makeCore('joining', { id: 'a', peer: null, gen: 3 })
    a2.core.takeActions()
    const joined = deliver(b.core.takeActions(), a2.core, 204)
    expect(roles(joined)).toMatchObject([{ role: 'backup', gen: 3 }])
    expect(a2.vmm.stateHash()).toBe(b.vmm.stateHash())
    expect(a2.vmm.peek('k')).toBe('before')
  })

  it('stays live when the disk server refuses the new generation', () => {
    const p = livePrimary()
    p.core.beginRestore('c', 2, 100)
    const [reg] = diskReqs(p.core.takeActions())
    p.core.step({ t: 'disk', now: 101, res: { id: reg.id, ok: false, error: 'stale-generation', message: 'current is 5' } })
    const a = p.core.takeActions()
    expect(telemetry(a)).toContainEqual(expect.objectContaining({ k: 'dropped', what: 'restore redundancy onto c' }))
    expect(p.core.status()).toMatchObject({ role: 'live', gen: 1, restoring: false })
  })

  it('only a live replica may restore redundancy', () => {
    const p = confirmedPrimary()
    expect(() => p.core.beginRestore('c', 2, 1)).toThrow(/only a live replica/)
    const live = livePrimary()
    expect(() => live.core.beginRestore('a', 2, 1)).toThrow(/another replica/)
    expect(() => live.core.beginRestore('c', 1, 1)).toThrow(/above 1/)
  })

  it('rejects a bad configuration with the field and the replica in the message', () => {
    const { vmm } = makeCore('backup')
    expect(() => new ReplicaCore({ ...p0(), heartbeatMs: 0 }, vmm, { role: 'backup', gen: 1, now: 0 })).toThrow(/heartbeatMs of b must be a positive number/)
  })
})

function p0() {
  return {
    id: 'b',
    peer: 'a',
    mode: 'rsm' as const,
    heartbeatMs: 10,
    suspectMs: 50,
    diskRetryMs: 20,
    maxUnackedEntries: 8,
    maxUnackedBytes: 1 << 20,
    batchEntries: 4,
    maxMessageBytes: 1 << 20,
    hashEvery: 1
  }
}
