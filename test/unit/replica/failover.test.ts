import { describe, expect, it } from 'vitest'
import { ackMsgs, confirmedPrimary, deliver, diskReqs, ftreq, makeCore, ok, peerMsgs, releases, replyText, roles, telemetry } from './harness.js'

describe('heartbeats, suspicion and the test-and-set', () => {
  it('sends a heartbeat only when nothing else went out for heartbeatMs', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'peer', now: 0, msg: { t: 'ack', gen: 1, n: 1 } })
    core.step({ t: 'tick', now: 9 })
    expect(peerMsgs(core.takeActions())).toEqual([])
    core.step({ t: 'tick', now: 10 })
    expect(peerMsgs(core.takeActions())).toMatchObject([{ t: 'heartbeat', gen: 1, from: 'a', last: 1 }])
    core.step({ t: 'input', now: 15, input: { t: 'open', conn: 't:1' } })
    core.takeActions() // entries went out at 15
    core.step({ t: 'peer', now: 16, msg: { t: 'ack', gen: 1, n: 2 } })
    core.step({ t: 'tick', now: 20 })
    expect(peerMsgs(core.takeActions())).toEqual([])
  })

  it('suspects a silent peer and asks the disk server, retrying while it gets no answer', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'peer', now: 20, msg: { t: 'ack', gen: 1, n: 1 } })
    core.step({ t: 'tick', now: 70 })
    expect(diskReqs(core.takeActions())).toEqual([])
    core.step({ t: 'tick', now: 71 })
    const a = core.takeActions()
    expect(telemetry(a)).toContainEqual({
      k: 'suspect',
      peer: 'b',
      silentMs: 51,
      timeoutMs: 50,
      limit: expect.objectContaining({ ms: 50, by: 'learning', learnedForMs: 0 })
    })
    const [tas] = diskReqs(a)
    expect(tas).toMatchObject({ op: 'tas', gen: 1, from: 'a' })
    expect(core.status().peerSuspected).toBe(true)

    // the disk server does not answer: ask again every diskRetryMs, never go live
    for (let t = 80; t <= 200; t += 10) core.step({ t: 'tick', now: t })
    const later = core.takeActions()
    const retries = diskReqs(later).filter((r) => r.op === 'tas')
    expect(retries.length).toBe(6)
    expect(retries.every((r) => r.id === tas.id)).toBe(true)
    expect(
      telemetry(later)
        .filter((t) => t.k === 'tas')
        .every((t) => t.k === 'tas' && t.result === 'unreachable')
    ).toBe(true)
    expect(roles(later)).toEqual([])
    expect(core.status().role).toBe('primary')
  })

  it('a primary that wins goes live and releases every held output in order', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'x', '1') })
    core.step({ t: 'input', now: 2, input: ftreq('c1', 2, 'GET', 'x') })
    core.step({ t: 'tick', now: 60 })
    const tas = diskReqs(core.takeActions()).find((r) => r.op === 'tas')!
    expect(core.status().heldOutputs).toBe(2)
    core.step({ t: 'disk', now: 61, res: ok(tas) })
    const a = core.takeActions()
    expect(roles(a)).toMatchObject([{ role: 'live', gen: 1 }])
    // role change first, then its consequences
    expect(a.findIndex((x) => x.t === 'role')).toBeLessThan(a.findIndex((x) => x.t === 'release'))
    expect(releases(a).map(replyText)).toEqual(['*2\r\n:1\r\n+OK\r\n', '*2\r\n:2\r\n$1\r\n1\r\n'])
    expect(releases(a).map((r) => r.heldMs)).toEqual([60, 59])
    expect(telemetry(a)).toContainEqual({ k: 'tas', gen: 1, result: 'won' })

    // live: outputs leave at once, no logging channel
    core.step({ t: 'input', now: 70, input: ftreq('c1', 3, 'GET', 'x') })
    const b = core.takeActions()
    expect(releases(b)).toHaveLength(1)
    expect(peerMsgs(b)).toEqual([])
  })

  it('a replica that loses halts and never outputs anything again', () => {
    const { core } = makeCore('backup')
    core.takeActions()
    deliver(confirmedPrimary().start, core, 1) // the boot entry
    core.takeActions()
    core.step({ t: 'tick', now: 52 })
    const tas = diskReqs(core.takeActions())[0]
    core.step({ t: 'disk', now: 52, res: { id: tas.id, ok: false, error: 'tas-lost', message: 'won by a', winner: 'a' } })
    const a = core.takeActions()
    expect(roles(a)).toMatchObject([{ role: 'halted', gen: 1 }])
    expect(roles(a)[0].reason).toMatch(/lost the test-and-set/)
    core.step({ t: 'peer', now: 53, msg: { t: 'entries', gen: 1, entries: [], releasedThrough: 0 } })
    core.step({ t: 'input', now: 54, input: { t: 'boot' } })
    core.step({ t: 'tick', now: 500 })
    expect(core.takeActions()).toEqual([])
  })

  it('a backup that wins applies what it has, re-emits unreleased outputs and re-issues pending I/O', () => {
    const p = confirmedPrimary()
    const b = makeCore('backup')
    b.core.takeActions()
    deliver(p.start, b.core, 0) // boot entry
    p.core.step({ t: 'input', now: 1, input: { t: 'open', conn: 's:c1' } })
    p.core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'x', '1') })
    const first = p.core.takeActions()
    p.core.step({ t: 'input', now: 2, input: ftreq('c1', 2, 'INCR', 'n') })
    const second = p.core.takeActions()
    const acks = deliver([...first, ...second], b.core, 3)
    expect(ackMsgs(acks)).toEqual([
      { t: 'ack', gen: 1, n: 3 },
      { t: 'ack', gen: 1, n: 4 }
    ])
    expect(releases(acks)).toEqual([]) // suppressed on the backup
    // the primary hears the first ack, releases entry 3's reply, and dies before saying so
    p.core.step({ t: 'peer', now: 4, msg: ackMsgs(acks)[0] })
    expect(releases(p.core.takeActions())).toHaveLength(1)
    expect(b.core.status()).toMatchObject({ lastEntry: 4, releasedThrough: 0 })

    b.core.step({ t: 'tick', now: 60 })
    const tas = diskReqs(b.core.takeActions())[0]
    b.core.step({ t: 'disk', now: 61, res: ok(tas) })
    const a = b.core.takeActions()
    expect(roles(a)).toMatchObject([{ role: 'live', gen: 1 }])
    // both unreleased replies come again; the client drops the one it has
    expect(releases(a).map(replyText)).toEqual(['*2\r\n:1\r\n+OK\r\n', '*2\r\n:2\r\n:1\r\n'])
    expect(a.filter((x) => x.t === 'io')).toEqual([{ t: 'io', req: { t: 'timer-set', id: 1, ms: 50 } }])
    expect(telemetry(a)).toContainEqual({ k: 'go-live', gen: 1, replayed: 4, reemitted: 2 })
    expect(b.vmm.stateHash()).toBe(p.vmm.stateHash())
  })

  it('a backup that goes live never reuses a plain connection id of the old primary', () => {
    const p = confirmedPrimary()
    const b = makeCore('backup')
    b.core.takeActions()
    const c1 = p.core.newConnId()
    const c2 = p.core.newConnId()
    expect([c1, c2]).toEqual(['t:1', 't:2'])
    p.core.step({ t: 'input', now: 1, input: { t: 'open', conn: c2 } })
    deliver([...p.start, ...p.core.takeActions()], b.core, 2)
    expect(b.vmm.isOpen('t:2')).toBe(true)
    b.core.step({ t: 'tick', now: 60 })
    b.core.step({ t: 'disk', now: 61, res: ok(diskReqs(b.core.takeActions())[0]) })
    expect(b.core.newConnId()).toBe('t:3')
  })

  it('a live replica drops the old logging channel instead of acking it', () => {
    const { core } = makeCore('backup')
    core.takeActions()
    const p = confirmedPrimary()
    deliver(p.start, core, 1) // the boot entry
    core.takeActions()
    core.step({ t: 'tick', now: 52 })
    core.step({ t: 'disk', now: 52, res: ok(diskReqs(core.takeActions())[0]) })
    core.takeActions()
    p.core.step({ t: 'input', now: 53, input: { t: 'open', conn: 's:c1' } })
    const a = deliver(p.core.takeActions(), core, 54)
    expect(ackMsgs(a)).toEqual([])
    expect(telemetry(a)).toContainEqual({ k: 'dropped', what: 'entries', why: 'live: the logging channel is closed' })
    expect(core.status().lastEntry).toBe(1)
  })

  it('a backup that never got an entry from its primary does not go live with an unbooted guest, even if it heard heartbeats', () => {
    const { core, vmm } = makeCore('backup')
    core.takeActions()
    // heartbeats say the primary is ahead, but its entries were lost
    core.step({ t: 'peer', now: 1, msg: { t: 'heartbeat', gen: 1, from: 'a', last: 2, releasedThrough: 0 } })
    core.takeActions()
    core.step({ t: 'tick', now: 10_000 })
    const a = core.takeActions()
    expect(diskReqs(a)).toEqual([])
    expect(core.status().role).toBe('backup')
    expect(vmm.stateHash()).toBe(makeCore('backup').vmm.stateHash())
  })

  it('a primary that went live is not halted by the late refusal of its start registration', () => {
    const p = makeCore('primary')
    const start = p.core.takeActions()
    const reg = diskReqs(start).find((r) => r.op === 'generation')!
    // the disk server took the registration but its answer was lost; the backup is silent
    p.core.step({ t: 'tick', now: 60 })
    const tas = diskReqs(p.core.takeActions()).find((r) => r.op === 'tas')!
    p.core.step({ t: 'disk', now: 61, res: ok(tas) })
    expect(roles(p.core.takeActions())).toMatchObject([{ role: 'live', gen: 1 }])
    // a retry of the registration, answered after the test-and-set, would now be refused
    p.core.step({ t: 'disk', now: 62, res: { id: reg.id, ok: false, error: 'stale-generation', message: 'generation 1 has a test-and-set winner' } })
    p.core.step({ t: 'tick', now: 500 })
    p.core.takeActions()
    expect(p.core.status().role).toBe('live')
  })
})
