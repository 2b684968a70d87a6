import { describe, expect, it } from 'vitest'
import { DiskArbiter, MemoryBlockStore } from '../../../agent/disk/arbiter.js'
import { encodeCommand } from '../../../agent/guests/resp.js'
import { ReplicaCore } from '../../../agent/replica/core.js'
import type { Action, DiskReq } from '../../../agent/replica/types.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import {
  ackMsgs,
  confirmedPrimary,
  deliver,
  diskReqs,
  entriesMsgs,
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

const writesIn = (as: Action[]) => diskReqs(as).filter((r): r is Extract<DiskReq, { op: 'write' }> => r.op === 'write')

describe('disk writes: retried until answered, idempotent by write id', () => {
  it('sends an unanswered write again with the same request and write id, and stops once it is answered', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SAVE', 'k', '7') })
    core.step({ t: 'peer', now: 2, msg: { t: 'ack', gen: 1, n: 2 } })
    const [first] = writesIn(core.takeActions())
    expect(first).toMatchObject({ op: 'write', gen: 1, from: 'a', block: 7, entry: 2, index: 0 })
    // the connection broke: no answer. The core asks again, and again after a longer wait.
    core.step({ t: 'tick', now: 30 })
    expect(writesIn(core.takeActions())).toEqual([first])
    core.step({ t: 'tick', now: 45 })
    expect(writesIn(core.takeActions())).toEqual([])
    core.step({ t: 'tick', now: 80 })
    expect(writesIn(core.takeActions())).toEqual([first])
    // the disk server could not store it: still no verdict, asked again later
    core.step({ t: 'disk', now: 81, res: { id: first.id, ok: false, error: 'io', message: 'EIO' } })
    core.step({ t: 'disk', now: 82, res: ok(first) })
    core.step({ t: 'tick', now: 500 })
    expect(writesIn(core.takeActions())).toEqual([])
  })

  it('holds back what it reports released to the backup while a write is unanswered, however long', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SAVE', 'k', '7') })
    core.step({ t: 'peer', now: 2, msg: { t: 'ack', gen: 1, n: 2 } })
    const [w] = writesIn(core.takeActions())
    core.step({ t: 'tick', now: 5000 })
    core.takeActions()
    core.step({ t: 'input', now: 5001, input: ftreq('c1', 2, 'GET', 'k') })
    expect(entriesMsgs(core.takeActions()).at(-1)).toMatchObject({ releasedThrough: 1 })
    core.step({ t: 'disk', now: 5002, res: ok(w) })
    core.step({ t: 'input', now: 5003, input: ftreq('c1', 3, 'GET', 'k') })
    expect(entriesMsgs(core.takeActions()).at(-1)).toMatchObject({ releasedThrough: 2 })
  })

  it('registers a restore only once every write of the old generation is answered (the new generation would fence it)', () => {
    const p = confirmedPrimary()
    p.core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SAVE', 'k', '7') })
    p.core.step({ t: 'tick', now: 60 })
    const tas = diskReqs(p.core.takeActions()).find((r) => r.op === 'tas')!
    p.core.step({ t: 'disk', now: 61, res: ok(tas) })
    const [w] = writesIn(p.core.takeActions())
    expect(p.core.status().role).toBe('live')
    p.core.beginRestore('c', 2, 100)
    expect(diskReqs(p.core.takeActions()).filter((r) => r.op === 'generation')).toEqual([])
    p.core.step({ t: 'disk', now: 110, res: ok(w) })
    expect(diskReqs(p.core.takeActions())).toMatchObject([{ op: 'generation', gen: 2, backup: 'c' }])
  })
})

describe('the test-and-set never retries forever', () => {
  it('a backup whose test-and-set is refused as a bad request halts and says why', () => {
    const p = confirmedPrimary()
    const b = makeCore('backup')
    b.core.takeActions()
    deliver(p.start, b.core, 1)
    b.core.step({ t: 'tick', now: 100 })
    const tas = diskReqs(b.core.takeActions()).find((r) => r.op === 'tas')!
    b.core.step({ t: 'disk', now: 101, res: { id: tas.id, ok: false, error: 'bad-request', message: 'tas.gen must be a non-negative integer' } })
    expect(roles(b.core.takeActions())).toMatchObject([
      { role: 'halted', reason: expect.stringMatching(/refused the test-and-set for generation 1 as a bad request: tas.gen must/) }
    ])
    b.core.step({ t: 'tick', now: 1000 })
    expect(b.core.takeActions()).toEqual([])
  })

  it('a backup whose primary died before its generation-1 registration landed goes live through the disk server', () => {
    const arbiter = new DiskArbiter(new MemoryBlockStore())
    const a = makeCore('primary')
    const b = makeCore('backup')
    b.core.takeActions()
    const start = a.core.takeActions() // its registration never reaches the disk server: a dies here
    expect(diskReqs(start)).toMatchObject([{ op: 'generation', gen: 1 }])
    deliver(start, b.core, 1) // but the boot entry reached b
    let role = ''
    for (let now = 2; now < 2000 && role === ''; now += 10) {
      b.core.step({ t: 'tick', now })
      for (const act of b.core.takeActions()) {
        if (act.t === 'send-disk') b.core.step({ t: 'disk', now, res: arbiter.handle(act.req) })
        if (act.t === 'role') role = act.role
      }
    }
    expect(role).toBe('live')
    expect(arbiter.status()).toMatchObject({ gen: 1, live: 'b', tasWinner: 'b' })
    // the dead primary's late registration is refused, and it halts
    a.core.step({ t: 'disk', now: 3000, res: arbiter.handle(diskReqs(start)[0]) })
    expect(a.core.status().role).toBe('halted')
  })
})

function kvCore(id: string, role: 'primary' | 'backup') {
  const vmm = createVmm({ guest: 'kv', mode: 'rsm', entropy: fixedEntropy() })
  return new ReplicaCore(testConfig(id, id === 'a' ? 'b' : 'a'), vmm, { role, gen: 1, now: 0 })
}

describe('appendfsync always through the replica protocol', () => {
  it('releases a write reply only once the disk server answered its writes; the completion is an entry the backup replays', () => {
    const a = kvCore('a', 'primary')
    const b = kvCore('b', 'backup')
    b.takeActions()
    const start = a.takeActions()
    a.step({ t: 'disk', now: 1, res: ok(diskReqs(start)[0]) })
    // kv boots by reading its superblock: an empty disk
    const read = start.find((x) => x.t === 'io')!
    expect(read).toMatchObject({ req: { t: 'disk-read', block: 0 } })
    a.step({ t: 'input', now: 2, input: { t: 'disk-read', tag: (read as { req: { tag: number } }).req.tag, block: 0, data: new Uint8Array(0) } })
    a.step({ t: 'input', now: 3, input: { t: 'data', conn: 't:1', data: encodeCommand(['SET', 'k', 'v']) } })
    let sent = [...start, ...a.takeActions()]
    const acks = ackMsgs(deliver(sent, b, 4))
    for (const m of acks) a.step({ t: 'peer', now: 5, msg: m })
    sent = a.takeActions()
    const writes = writesIn(sent)
    expect(writes.map((w) => w.block)).toEqual([1, 0])
    expect(releases(sent)).toEqual([]) // acked by the backup, but not durable yet
    a.step({ t: 'disk', now: 6, res: ok(writes[0]) })
    expect(releases(a.takeActions())).toEqual([])
    a.step({ t: 'disk', now: 7, res: ok(writes[1]) })
    sent = a.takeActions()
    const synced = entriesMsgs(sent)
      .flatMap((m) => m.entries)
      .find((e) => e.body.kind === 'input' && e.body.input.t === 'disk-synced')
    expect(synced).toBeDefined()
    // the reply's own entry was acknowledged before its writes left: durable now, it need not wait for the completion's
    expect(releases(sent).map(replyText)).toEqual(['+OK\r\n'])
    deliver(sent, b, 8)
    expect(b.status().lastEntry).toBe(synced!.n)
  })
})

describe('disk barriers', () => {
  it('completes a barrier only once every write released before it is answered, whatever order the answers come in', () => {
    const a = kvCore('a', 'primary')
    const b = kvCore('b', 'backup')
    b.takeActions()
    const start = a.takeActions()
    a.step({ t: 'disk', now: 1, res: ok(diskReqs(start)[0]) })
    const read = start.find((x) => x.t === 'io')!
    a.step({ t: 'input', now: 2, input: { t: 'disk-read', tag: (read as { req: { tag: number } }).req.tag, block: 0, data: new Uint8Array(0) } })
    a.step({ t: 'input', now: 3, input: { t: 'data', conn: 't:1', data: encodeCommand(['SET', 'k', 'v']) } })
    for (const m of ackMsgs(deliver([...start, ...a.takeActions()], b, 4))) a.step({ t: 'peer', now: 5, msg: m })
    const writes = writesIn(a.takeActions())
    expect(writes.map((w) => w.block)).toEqual([1, 0])
    const completions = () =>
      entriesMsgs(a.takeActions())
        .flatMap((m) => m.entries)
        .filter((e) => e.body.kind === 'input' && e.body.input.t === 'disk-synced')
    // the newer write (the superblock) is answered first: the log block is not on disk yet
    a.step({ t: 'disk', now: 6, res: ok(writes[1]) })
    expect(completions()).toEqual([])
    a.step({ t: 'disk', now: 7, res: ok(writes[0]) })
    expect(completions()).toHaveLength(1)
  })
})

describe('recovery from disk after a double failure', () => {
  it('a replica started to recover begins the next generation at the disk server, then boots the guest and serves alone', () => {
    const arbiter = new DiskArbiter(new MemoryBlockStore())
    arbiter.handle({ id: 1, op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })
    arbiter.handle({ id: 2, op: 'tas', gen: 1, from: 'b' }) // b went live, then died too
    const { core, vmm } = makeCore('recover', { id: 'a', peer: 'b', gen: 2 })
    const start = core.takeActions()
    const [reg] = diskReqs(start)
    expect(reg).toMatchObject({ op: 'generation', gen: 2, from: 'a', primary: 'a', backup: null, recover: true })
    // nothing runs before the disk server has answered: not even the boot
    core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'k', 'v') })
    expect(core.status()).toMatchObject({ role: 'live', lastEntry: 0, genConfirmed: false })
    core.step({ t: 'disk', now: 2, res: arbiter.handle(reg) })
    const after = core.takeActions()
    expect(roles(after)).toMatchObject([{ role: 'live', gen: 2, reason: expect.stringMatching(/booting the guest from the disk server/) }])
    expect(core.status()).toMatchObject({ role: 'live', gen: 2, lastEntry: 2, genConfirmed: true })
    expect(releases(after).map(replyText)).toEqual(['*2\r\n:1\r\n+OK\r\n'])
    expect(vmm.stateHash()).toBeTruthy()
    expect(arbiter.status()).toMatchObject({ gen: 2, live: 'a' })
  })

  it('halts, saying why, when the disk server refuses the recovery', () => {
    const { core } = makeCore('recover', { id: 'a', peer: 'b', gen: 5 })
    const [reg] = diskReqs(core.takeActions())
    core.step({ t: 'disk', now: 1, res: { id: reg.id, ok: false, error: 'bad-request', message: 'generation 5 refused: the next generation is 3' } })
    expect(roles(core.takeActions())).toMatchObject([
      { role: 'halted', reason: expect.stringMatching(/refused to begin generation 5 for recovery from disk: generation 5 refused/) }
    ])
  })
})

describe('superseded writes', () => {
  const threeInputs = () => {
    const made = confirmedPrimary()
    made.core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SAVE', 'k', '7') })
    made.core.step({ t: 'input', now: 1, input: ftreq('c1', 2, 'SET', 'k', 'w') })
    made.core.step({ t: 'input', now: 1, input: ftreq('c1', 3, 'SAVE', 'k', '7') })
    made.core.step({ t: 'peer', now: 2, msg: { t: 'ack', gen: 1, n: 4 } })
    return made
  }

  it('sends only the newest of the writes one batch makes to a block, and settles the older with its answer', () => {
    const { core } = threeInputs()
    const sent = writesIn(core.takeActions())
    expect(sent.map((w) => [w.block, w.entry])).toEqual([[7, 4]])
    const told = (now: number) => {
      core.step({ t: 'tick', now })
      const as = core.takeActions()
      const hb = peerMsgs(as).find((m) => m.t === 'heartbeat')
      return { writes: writesIn(as), released: hb?.t === 'heartbeat' ? hb.releasedThrough : undefined }
    }
    expect(told(15).released, 'the older write (entry 2) is in flight until the newer one is answered').toBe(1)
    core.step({ t: 'disk', now: 16, res: ok(sent[0]) })
    const after = told(500)
    expect(after.writes, 'nothing left to retry').toEqual([])
    expect(after.released).toBe(4)
  })

  it('retries an unanswered write together with the older one it superseded, again as the newest alone', () => {
    const { core } = threeInputs()
    const [newer] = writesIn(core.takeActions())
    core.step({ t: 'tick', now: 500 })
    expect(writesIn(core.takeActions())).toEqual([newer])
    core.step({ t: 'disk', now: 501, res: ok(newer) })
    core.step({ t: 'tick', now: 5000 })
    expect(writesIn(core.takeActions())).toEqual([])
  })

  it('sends an older write after all when the newer one is refused without fencing', () => {
    const { core } = threeInputs()
    const [newer] = writesIn(core.takeActions())
    core.step({ t: 'disk', now: 3, res: { id: newer.id, ok: false, error: 'bad-request', message: 'refused in this test' } })
    core.step({ t: 'tick', now: 500 })
    expect(writesIn(core.takeActions()).map((w) => [w.block, w.entry])).toEqual([[7, 2]])
  })
})

describe('appends (disk writes at an offset)', () => {
  const inputs = (...cmds: string[][]) => {
    const made = confirmedPrimary()
    cmds.forEach((cmd, i) => made.core.step({ t: 'input', now: 1, input: ftreq('c1', i + 1, ...cmd) }))
    made.core.step({ t: 'peer', now: 2, msg: { t: 'ack', gen: 1, n: cmds.length + 1 } })
    return made
  }
  const shape = (ws: Extract<DiskReq, { op: 'write' }>[]) => ws.map((w) => [w.block, w.entry, w.offset])

  it('holds an append back while a whole-block write of its block is unanswered (the block may still hold older bytes of that length), and sends it once that write is answered', () => {
    const { core } = inputs(['SET', 'k', 'v1'], ['SAVE', 'k', '7'], ['SET', 'k', 'v2'], ['APPEND', 'k', '7', '2'])
    const sent = writesIn(core.takeActions())
    expect(shape(sent)).toEqual([[7, 3, undefined]])
    core.step({ t: 'tick', now: 500 })
    expect(shape(writesIn(core.takeActions())), 'a retry sends the whole-block write alone').toEqual([[7, 3, undefined]])
    core.step({ t: 'disk', now: 501, res: ok(sent[0]) })
    const appended = writesIn(core.takeActions())
    expect(shape(appended)).toEqual([[7, 5, 2]])
    expect(new TextDecoder().decode(appended[0].data)).toBe('v2')
    core.step({ t: 'disk', now: 502, res: ok(appended[0]) })
    core.step({ t: 'tick', now: 5000 })
    expect(writesIn(core.takeActions())).toEqual([])
  })

  it('sends every append of a batch, in order, and the answer to a later append settles no earlier one', () => {
    const { core } = inputs(['SET', 'k', 'ab'], ['APPEND', 'k', '7', '0'], ['APPEND', 'k', '7', '2'])
    const sent = writesIn(core.takeActions())
    expect(shape(sent)).toEqual([
      [7, 3, 0],
      [7, 4, 2]
    ])
    core.step({ t: 'disk', now: 3, res: ok(sent[1]) })
    core.step({ t: 'tick', now: 500 })
    expect(shape(writesIn(core.takeActions())), 'the first append is still unanswered: it is retried').toEqual([[7, 3, 0]])
  })

  it('a replica whose whole-block write is fenced halts without sending the appends that waited for it (kv seed 401125)', () => {
    const { core } = inputs(['SET', 'k', 'v1'], ['SAVE', 'k', '7'], ['SET', 'k', 'v2'], ['APPEND', 'k', '7', '2'])
    const [whole] = writesIn(core.takeActions())
    core.step({ t: 'disk', now: 3, res: { id: whole.id, ok: false, error: 'fenced', message: 'b is live' } })
    const as = core.takeActions()
    expect(writesIn(as)).toEqual([])
    expect(roles(as).map((r) => r.role)).toEqual(['halted'])
    core.step({ t: 'tick', now: 5000 })
    expect(writesIn(core.takeActions())).toEqual([])
  })

  it('reports, once, an append the disk server keeps refusing as out of order with nothing earlier of its block unanswered (a hole no retry fills), and keeps retrying it', () => {
    const { core } = inputs(['SET', 'k', 'ab'], ['APPEND', 'k', '7', '4'])
    const [append] = writesIn(core.takeActions())
    expect(shape([append])).toEqual([[7, 3, 4]])
    const refuse = (now: number) =>
      core.step({
        t: 'disk',
        now,
        res: { id: append.id, ok: false, error: 'out-of-order', message: 'write of 2 bytes at offset 4 of block 7 refused: the block holds 0 bytes' }
      })
    const dropped = () => telemetry(core.takeActions()).filter((e) => e.k === 'dropped')
    for (let i = 0; i < 9; i++) refuse(10 + i)
    expect(dropped(), 'an append refused a few times is waiting for its turn: not worth a line').toEqual([])
    refuse(20)
    const lines = dropped()
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ what: expect.stringContaining('entry 3') })
    expect(lines[0]).toMatchObject({ why: expect.stringContaining('offset 4 of block 7') })
    for (let i = 0; i < 20; i++) refuse(30 + i)
    expect(dropped(), 'said once').toEqual([])
    core.step({ t: 'tick', now: 10_000 })
    expect(shape(writesIn(core.takeActions())), 'still retried').toEqual([[7, 3, 4]])
  })

  it('does not report an append refused while an earlier write to its block is unanswered: that one is what it waits for', () => {
    const { core } = inputs(['SET', 'k', 'ab'], ['APPEND', 'k', '7', '0'], ['APPEND', 'k', '7', '2'])
    const [, second] = writesIn(core.takeActions())
    for (let i = 0; i < 12; i++) core.step({ t: 'disk', now: 10 + i, res: { id: second.id, ok: false, error: 'out-of-order', message: 'not yet' } })
    expect(telemetry(core.takeActions()).filter((e) => e.k === 'dropped')).toEqual([])
  })

  it('a whole-block write supersedes the appends before it in the same batch, and its answer settles them', () => {
    const { core } = inputs(['SET', 'k', 'ab'], ['APPEND', 'k', '7', '0'], ['SAVE', 'k', '7'])
    const sent = writesIn(core.takeActions())
    expect(shape(sent)).toEqual([[7, 4, undefined]])
    core.step({ t: 'disk', now: 3, res: ok(sent[0]) })
    core.step({ t: 'tick', now: 500 })
    expect(writesIn(core.takeActions())).toEqual([])
  })
})
