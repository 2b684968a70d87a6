// Restore redundancy when the snapshot is slow to reach the new backup (found by the soak on the
// local lab: a snapshot 246 ms on its way against a 160 ms suspicion timeout). The joining replica
// must not look dead meanwhile, a joining replica that answers but takes no part must still be
// given up on, and the caller of a restore that cannot complete must hear so at once.
import { describe, expect, it } from 'vitest'
import { PASS_FILTER } from '../../../agent/faults/filter.js'
import { ReplicaCore } from '../../../agent/replica/core.js'
import { ReplicaEdge, type EdgePorts } from '../../../agent/replica/edge.js'
import { SnapshotAssembly, SnapshotCutter } from '../../../agent/replica/parts.js'
import type { Action, DiskReq, DiskRes } from '../../../agent/replica/types.js'
import { RegisterVmm } from '../../../sim/register-vmm.js'
import { confirmedPrimary, deliver, diskReqs, fixedEntropy, ftreq, makeCore, ok, peerMsgs, releases, roles, telemetry, testConfig } from './harness.js'

/** suspectMs of the harness's test configuration */
const SUSPECT_MS = 50

/** A primary that lost its backup, went live, and has begun restoring onto 'c' in generation 2 (registered at t=101). */
function restoringPrimary() {
  const p = confirmedPrimary()
  p.core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'k', 'before') })
  p.core.step({ t: 'tick', now: 60 })
  p.core.step({ t: 'disk', now: 61, res: ok(diskReqs(p.core.takeActions()).find((r) => r.op === 'tas')!) })
  p.core.takeActions()
  p.core.beginRestore('c', 2, 100)
  const [reg] = diskReqs(p.core.takeActions())
  p.core.step({ t: 'disk', now: 101, res: ok(reg) })
  const started = p.core.takeActions()
  expect(p.core.status()).toMatchObject({ role: 'primary', gen: 2, restoring: true })
  return { ...p, snapshot: peerMsgs(started).filter((m) => m.t === 'snapshot') }
}

/** Every message in `as` except snapshot parts: the link carries heartbeats while the snapshot is still on its way. */
function withoutSnapshot(as: Action[]): Action[] {
  return as.filter((a) => !(a.t === 'send-peer' && a.msg.t === 'snapshot'))
}

describe('restore redundancy with a slow snapshot', () => {
  it('keeps the joining replica from looking dead while its snapshot is on the way for longer than the suspicion timeout', () => {
    const p = restoringPrimary()
    const c = makeCore('joining', { id: 'c', peer: 'a', gen: 2, now: 100 })
    c.core.takeActions()
    // two suspicion timeouts pass with the snapshot still in transit (the soak saw one and a half); heartbeats cross both ways
    for (let now = 105; now <= 101 + 2 * SUSPECT_MS; now += 5) {
      p.core.step({ t: 'tick', now })
      const ticked = p.core.takeActions()
      const answers = deliver(withoutSnapshot(ticked), c.core, now)
      for (const msg of peerMsgs(answers)) p.core.step({ t: 'peer', now, msg })
      expect(
        diskReqs([...ticked, ...p.core.takeActions()]).filter((r) => r.op === 'tas'),
        `no test-and-set at t=${now}`
      ).toEqual([])
    }
    expect(p.core.status()).toMatchObject({ role: 'primary', gen: 2, peerSuspected: false, restoring: true })
    expect(c.core.status().role).toBe('joining')

    // the snapshot arrives at last: the joining replica becomes the backup and the channel runs
    const now = 102 + 2 * SUSPECT_MS
    const joined = deliver(
      p.snapshot.map((msg) => ({ t: 'send-peer', msg, to: 'c' }) as Action),
      c.core,
      now
    )
    expect(roles(joined)).toMatchObject([{ role: 'backup', gen: 2 }])
    deliver(joined, p.core, now)
    expect(p.core.status()).toMatchObject({ role: 'primary', gen: 2, restoring: false })
    p.core.step({ t: 'input', now, input: ftreq('c1', 2, 'SET', 'k', 'after') })
    const acks = deliver(p.core.takeActions(), c.core, now + 1)
    expect(releases(deliver(acks, p.core, now + 2))).toHaveLength(1)
    expect(c.vmm.stateHash()).toBe(p.vmm.stateHash())
  })

  it('resends the snapshot at the joining replica first answer when that answer holds no part (lost before the link was up)', () => {
    const p = restoringPrimary()
    const c = makeCore('joining', { id: 'c', peer: 'a', gen: 2, now: 100 })
    c.core.takeActions()
    // the parts sent at t=101 were lost; the first heartbeat after them reaches the joining replica
    let now = 101
    let answers: Action[] = []
    while (answers.length === 0) {
      now += 5
      p.core.step({ t: 'tick', now })
      answers = deliver(withoutSnapshot(p.core.takeActions()), c.core, now).filter((a) => a.t === 'send-peer')
    }
    expect(now, 'the heartbeat went before the half-timeout resend').toBeLessThan(101 + SUSPECT_MS / 2)
    expect(peerMsgs(answers)).toEqual([{ t: 'snapshot-ack', gen: 2, from: 'c', part: -1 }])
    for (const msg of peerMsgs(answers)) p.core.step({ t: 'peer', now, msg })
    const resent = p.core.takeActions()
    expect(peerMsgs(resent).filter((m) => m.t === 'snapshot')).toMatchObject([{ part: 0 }])
    expect(roles(deliver(resent, c.core, now + 1))).toMatchObject([{ role: 'backup', gen: 2 }])
  })

  it('the joining replica answers its primary heartbeat with the parts it holds, -1 before the first', () => {
    const c = makeCore('joining', { id: 'c', peer: 'a', gen: 2, now: 100 })
    c.core.takeActions()
    c.core.step({ t: 'peer', now: 101, msg: { t: 'heartbeat', gen: 2, from: 'a', last: 0, releasedThrough: 0 } })
    expect(peerMsgs(c.core.takeActions())).toEqual([{ t: 'snapshot-ack', gen: 2, from: 'c', part: -1 }])
    // a heartbeat of another generation, or from a replica that is not its primary, gets no answer
    c.core.step({ t: 'peer', now: 102, msg: { t: 'heartbeat', gen: 1, from: 'a', last: 0, releasedThrough: 0 } })
    c.core.step({ t: 'peer', now: 103, msg: { t: 'heartbeat', gen: 2, from: 'x', last: 0, releasedThrough: 0 } })
    expect(peerMsgs(c.core.takeActions())).toEqual([])
  })

  it('waits a few ceilings for a joining replica that has not answered yet, then the ceiling once it has', () => {
    // a fresh process still starting (CI saw one silent for 801 ms): silence past the ceiling is not yet a death
    const silentFor = (p: ReturnType<typeof restoringPrimary>, from: number, to: number): number | null => {
      for (let now = from; now <= to; now += 5) {
        p.core.step({ t: 'tick', now })
        const acts = p.core.takeActions()
        if (diskReqs(acts).some((r) => r.op === 'tas')) return now
      }
      return null
    }
    const p = restoringPrimary()
    expect(p.core.status().suspectLimit).toMatchObject({ by: 'joining', ceilingMs: SUSPECT_MS })
    const patience = p.core.status().suspectLimit!.ms
    expect(patience).toBeGreaterThanOrEqual(4 * SUSPECT_MS)
    const tasAt = silentFor(p, 105, 101 + 20 * SUSPECT_MS)
    expect(tasAt, 'a joining replica silent throughout is given up on all the same').not.toBeNull()
    expect(tasAt! - 101).toBeGreaterThan(patience)
    expect(tasAt! - 101).toBeLessThanOrEqual(patience + 10)

    // once it has answered, a silence of a little more than the ceiling (and the transfer time) is suspected
    const q = restoringPrimary()
    q.core.step({ t: 'peer', now: 110, msg: { t: 'snapshot-ack', gen: 2, from: 'c', part: -1 } })
    q.core.takeActions()
    expect(q.core.status().suspectLimit).toMatchObject({ by: 'snapshot' })
    const limit = q.core.status().suspectLimit!.ms
    expect(limit).toBeLessThan(patience)
    const after = silentFor(q, 115, 101 + 20 * SUSPECT_MS)
    expect(after! - 110).toBeGreaterThan(limit)
    expect(after! - 110).toBeLessThanOrEqual(limit + 10)
  })

  it('gives up on a joining replica that answers heartbeats but never acknowledges a snapshot part', () => {
    const p = restoringPrimary()
    const c = makeCore('joining', { id: 'c', peer: 'a', gen: 2, now: 100 })
    c.core.takeActions()
    let tasAt: number | null = null
    let why: string | undefined
    for (let now = 105; now <= 101 + 20 * SUSPECT_MS && tasAt === null; now += 5) {
      p.core.step({ t: 'tick', now })
      const acts = p.core.takeActions()
      if (diskReqs(acts).some((r) => r.op === 'tas')) {
        tasAt = now
        why = telemetry(acts).flatMap((e) => (e.k === 'dropped' ? [e.why] : []))[0]
        break
      }
      for (const msg of peerMsgs(deliver(withoutSnapshot(acts), c.core, now))) p.core.step({ t: 'peer', now, msg })
      const after = p.core.takeActions()
      if (diskReqs(after).some((r) => r.op === 'tas')) tasAt = now
    }
    expect(tasAt, 'the primary asked for the test-and-set: it does not hold outputs for ever').not.toBeNull()
    expect(why).toMatch(/part 0 unacknowledged for \d+ms although the joining replica answers/)
    expect(p.core.status().peerSuspected).toBe(true)
  })
})

describe('the snapshot assembly', () => {
  it('leaves the parts it was handed as they were, so that a resent part is the part first sent', () => {
    // a slow snapshot is resent while the joining replica already holds it; where messages travel by reference
    // (the simulator), appending the next slice to the held page made the resent part larger than the frame limit
    const value = 'x'.repeat(5000)
    const cutter = new SnapshotCutter({ guest: 'kv', hash: 'h', pages: [['g:kv:tail', value]] }, 2000, { gen: 2, from: 'a', last: 0 })
    const parts = [cutter.next()!, cutter.next()!, cutter.next()!]
    expect(parts.map((p) => [p.part, p.append, p.done])).toEqual([
      [0, false, false],
      [1, true, false],
      [2, true, true]
    ])
    const sizes = parts.map((p) => p.pages[0][1]!.length)
    const have = new SnapshotAssembly()
    for (const p of parts) expect(have.add(p)).toBe(true)
    expect(have.snapshot(parts[2]).pages).toEqual([['g:kv:tail', value]])
    expect(parts.map((p) => p.pages[0][1]!.length)).toEqual(sizes)
  })
})

/** An edge over fake ports and timers, whose replica 'a' has gone live alone in generation 1. */
function liveEdge() {
  let now = 0
  const timers: { at: number; fn: () => void }[] = []
  const asked: { req: DiskReq; done: (res: DiskRes | null) => void }[] = []
  const ports: EdgePorts = {
    clock: { now: () => now, wall: () => 1_700_000_000_000 + now },
    timers: {
      set: (fn, ms) => {
        const t = { at: now + ms, fn }
        timers.push(t)
        return t
      },
      clear: (h) => {
        const i = timers.indexOf(h as (typeof timers)[number])
        if (i >= 0) timers.splice(i, 1)
      }
    },
    // the new backup never hears anything: a snapshot that has not arrived yet looks the same
    peer: { send: () => {}, connect: () => {}, hangUp: () => {}, connected: () => true, stats: () => ({ bytesSent: 0, bytesReceived: 0 }) },
    disk: { request: (req, done) => void asked.push({ req, done }) },
    filter: PASS_FILTER,
    emit: () => {},
    log: { info: () => {}, warn: () => {}, error: () => {} }
  }
  /** how the disk server answers a generation request (yes unless told otherwise); a test-and-set is always won */
  let generation = (req: DiskReq): DiskRes => ({ id: req.id, ok: true })
  const answerAll = () => {
    while (asked.length > 0) {
      const { req, done } = asked.shift()!
      if (req.op === 'generation') done(generation(req))
      else if (req.op === 'tas') done({ id: req.id, ok: true, winner: 'a' })
    }
  }
  /** runs the fake timers due up to `until`, the disk server answering as it goes */
  const advance = (until: number) => {
    answerAll()
    for (let next = timers.sort((x, y) => x.at - y.at)[0]; next && next.at <= until; next = timers.sort((x, y) => x.at - y.at)[0]) {
      timers.shift()
      now = next.at
      next.fn()
      answerAll()
    }
    now = until
  }
  const vmm = new RegisterVmm({ mode: 'rsm', entropy: fixedEntropy() })
  const core = new ReplicaCore(testConfig('a', 'b'), vmm, { role: 'primary', gen: 1, now: 0 })
  const edge = new ReplicaEdge(core, vmm, ports, { self: 'a', guest: 'register', mode: 'rsm', heartbeatMs: 10, diskRetryMs: 20 })
  edge.start()
  advance(200) // the backup of generation 1 is silent: 'a' goes live alone
  expect(core.status()).toMatchObject({ role: 'live', gen: 1 })
  const peer = { id: 'c', channel: { host: '127.0.0.1', port: 1 } }
  /** begins a restore onto 'c' in generation 2 and lets `ms` pass: what waitRestored said by then, or null */
  const restore = async (ms: number): Promise<string | null> => {
    edge.beginRestore(peer, 2)
    let settled: string | null = null
    edge.waitRestored(peer, 2, 15_000).then(
      () => (settled = 'resolved'),
      (err: Error) => (settled = err.message)
    )
    advance(now + ms)
    await Promise.resolve()
    return settled
  }
  return {
    core,
    edge,
    restore,
    refuseGenerations: (message: string) => (generation = (req) => ({ id: req.id, ok: false, error: 'stale-generation', message }))
  }
}

describe('waitRestored', () => {
  it('fails as soon as the restoring replica goes live alone, without waiting out its timeout', async () => {
    const { core, edge, restore } = liveEdge()
    // far less than the 15 s timeout, far more than the suspicion timeout and the snapshot patience
    const said = await restore(600)
    expect(core.status()).toMatchObject({ role: 'live', gen: 2 })
    expect(said).toMatch(/restore redundancy onto c \(127\.0\.0\.1:1\) failed: a went live alone in generation 2/)
    edge.stop()
  })

  it('fails at once, saying why, when the disk server refuses the new generation', async () => {
    const { core, edge, restore, refuseGenerations } = liveEdge()
    refuseGenerations('generation 2 is stale: the disk server is at 5')
    const said = await restore(100)
    expect(core.status()).toMatchObject({ role: 'live', gen: 1, restoring: false })
    expect(said).toMatch(/restore redundancy onto c \(127\.0\.0\.1:1\) failed: the disk server refused generation 2: generation 2 is stale/)
    edge.stop()
  })
})
