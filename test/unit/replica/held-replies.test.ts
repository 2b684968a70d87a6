// Replies that wait for a disk barrier (kv's appendfsync always) are held by the VMM with the barrier, in pages the
// backup holds from the write's own entry. In state transfer the barrier's completion then names only its tag: the
// reply's bytes travel once. These pin that, and that a backup going live between the two releases the reply once.
import { describe, expect, it } from 'vitest'
import { encode } from '../../../agent/net/codec.js'
import { encodeCommand } from '../../../agent/guests/resp.js'
import { ReplicaCore } from '../../../agent/replica/core.js'
import type { Action, DiskReq, LogEntry } from '../../../agent/replica/types.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import type { ReplicationMode } from '../../../agent/vmm/types.js'
import { ackMsgs, deliver, diskReqs, entriesMsgs, fixedEntropy, ok, releases, replyText, roles, testConfig } from './harness.js'

const writesIn = (as: Action[]) => diskReqs(as).filter((r): r is Extract<DiskReq, { op: 'write' }> => r.op === 'write')
const entriesIn = (as: Action[]): LogEntry[] => entriesMsgs(as).flatMap((m) => m.entries)
const latin1 = (b: Uint8Array): string => Buffer.from(b).toString('latin1')

function kvCore(id: 'a' | 'b', role: 'primary' | 'backup', mode: ReplicationMode): ReplicaCore {
  const vmm = createVmm({ guest: 'kv', mode, entropy: fixedEntropy() })
  return new ReplicaCore(testConfig(id, id === 'a' ? 'b' : 'a', { hashEvery: 1 }), vmm, { role, gen: 1, now: 0 })
}

/** A kv pair booted on an empty disk, the backup in step; then one SET on t:1, its entry acked by the backup. */
function pairWithSet(mode: ReplicationMode) {
  const a = kvCore('a', 'primary', mode)
  const b = kvCore('b', 'backup', mode)
  b.takeActions()
  const start = a.takeActions()
  a.step({ t: 'disk', now: 1, res: ok(diskReqs(start)[0]) })
  const read = start.find((x) => x.t === 'io') as { req: { tag: number } }
  a.step({ t: 'input', now: 2, input: { t: 'disk-read', tag: read.req.tag, block: 0, data: new Uint8Array(0) } })
  a.step({ t: 'input', now: 3, input: { t: 'data', conn: 't:1', data: encodeCommand(['SET', 'k', 'v']) } })
  const sent = [...start, ...a.takeActions()]
  const set = entriesIn(sent).at(-1)!
  for (const m of ackMsgs(deliver(sent, b, 4))) a.step({ t: 'peer', now: 5, msg: m })
  const released = a.takeActions()
  return { a, b, set, writes: writesIn(released), released }
}

describe('replies held for a disk barrier', () => {
  it('state transfer: the completion entry names the barrier and carries no reply bytes', () => {
    const { a, b, set, writes, released } = pairWithSet('state-transfer')
    // the SET's entry holds the reply, with the barrier, in a VMM page the backup now has
    expect(set.body.kind).toBe('state')
    const held = set.body.kind === 'state' ? set.body.pages.find(([k]) => k.startsWith('vmm:sync:')) : undefined
    expect(held?.[1]).toBe('s3:t:15:+OK\r\n')
    expect(releases(released)).toEqual([])
    for (const w of writes) a.step({ t: 'disk', now: 6, res: ok(w) })
    const sent = a.takeActions()
    const completion = entriesIn(sent).at(-1)!
    expect(completion.body).toMatchObject({ kind: 'state', synced: Number(held![0].slice('vmm:sync:'.length)), outputs: [] })
    expect(latin1(encode(completion))).not.toContain('+OK')
    expect(JSON.stringify(completion.body)).not.toContain('+OK')
    // the backup releases what the barrier held itself: its state hash agrees (hashEvery 1), so it stays a backup and acks
    const acks = ackMsgs(deliver(sent, b, 7))
    expect(b.status()).toMatchObject({ lastEntry: completion.n, role: 'backup' })
    expect(acks.at(-1)).toMatchObject({ n: completion.n })
  })

  it.each<ReplicationMode>(['state-transfer', 'rsm'])(
    '%s: the held reply leaves once its write is durable, licensed by its own entry, not by the completion',
    (mode) => {
      const { a, writes } = pairWithSet(mode)
      for (const w of writes) a.step({ t: 'disk', now: 6, res: ok(w) })
      const sent = a.takeActions()
      // the completion's entry is logged (the backup must hear of it) but the reply does not wait for its ack
      const completion = entriesIn(sent).at(-1)!
      expect(a.status().acked).toBeLessThan(completion.n)
      const out = releases(sent)
      expect(out.map(replyText)).toEqual(['+OK\r\n'])
      expect(out[0].entry).toBeLessThanOrEqual(a.status().acked)
    }
  )

  it.each<ReplicationMode>(['state-transfer', 'rsm'])(
    "%s: a reply a later entry kept for the same barrier waits for that entry's ack, and the replies keep their order",
    (mode) => {
      const { a, b, writes } = pairWithSet(mode)
      // t:2 asks while the barrier is pending: kv keeps its reply with the barrier, from an entry the backup has not acked
      a.step({ t: 'input', now: 6, input: { t: 'data', conn: 't:2', data: encodeCommand(['GET', 'k']) } })
      const get = a.takeActions()
      const getEntry = entriesIn(get).at(-1)!
      expect(releases(get)).toEqual([])
      for (const w of writes) a.step({ t: 'disk', now: 7, res: ok(w) })
      const done = a.takeActions()
      expect(releases(done)).toEqual([]) // the GET's entry is not acknowledged yet
      // the backup acks the GET's entry only (the completion's entry has not reached it): both replies leave, in order
      for (const m of ackMsgs(deliver(get, b, 8))) a.step({ t: 'peer', now: 9, msg: m })
      expect(a.status().acked).toBe(getEntry.n)
      const out = releases(a.takeActions())
      expect(out.map((r) => [r.out.t === 'reply' ? r.out.conn : '', replyText(r)])).toEqual([
        ['t:1', '+OK\r\n'],
        ['t:2', '$1\r\nv\r\n']
      ])
      expect(out.every((r) => r.entry === getEntry.n)).toBe(true)
    }
  )

  it.each<ReplicationMode>(['state-transfer', 'rsm'])(
    '%s: a backup that goes live between the write and its completion releases the held reply exactly once',
    (mode) => {
      const { b, writes } = pairWithSet(mode)
      expect(writes.length).toBeGreaterThan(0)
      // the primary dies before the disk server answers: the completion never reaches the backup
      b.step({ t: 'tick', now: 200 })
      const tas = diskReqs(b.takeActions()).find((r) => r.op === 'tas')!
      b.step({ t: 'disk', now: 201, res: ok(tas) })
      const live = b.takeActions()
      expect(roles(live)).toMatchObject([{ role: 'live' }])
      // it re-emits the write's disk writes and barrier; nothing is replied before they are durable
      const again = writesIn(live)
      expect(again.map((w) => w.block)).toEqual(writes.map((w) => w.block))
      expect(releases(live)).toEqual([])
      for (const w of again) b.step({ t: 'disk', now: 202, res: ok(w) })
      const after = b.takeActions()
      expect(releases(after).map(replyText)).toEqual(['+OK\r\n'])
      // a second answer to the same writes (a retry that crossed the first) completes nothing more
      for (const w of again) b.step({ t: 'disk', now: 203, res: ok(w) })
      b.step({ t: 'tick', now: 300 })
      expect(releases(b.takeActions())).toEqual([])
    }
  )
})
