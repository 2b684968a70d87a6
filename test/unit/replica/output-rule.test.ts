import { describe, expect, it } from 'vitest'
import { makeCore, confirmedPrimary, ftreq, diskReqs, entriesMsgs, releases, roles, stalls, replyText, ok, telemetry } from './harness.js'

describe('primary: the Output Rule', () => {
  it('holds a reply until the backup acknowledges the entry that produced it', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'input', now: 5, input: { t: 'open', conn: 's:c1' } })
    core.step({ t: 'input', now: 5, input: ftreq('c1', 1, 'SET', 'x', '1') })
    const sent = core.takeActions()
    expect(releases(sent)).toEqual([])
    expect(core.status().heldOutputs).toBe(1)
    const last = entriesMsgs(sent).at(-1)!.entries.at(-1)!.n
    expect(last).toBe(3) // boot, open, data

    core.step({ t: 'peer', now: 8, msg: { t: 'ack', gen: 1, n: 2 } })
    expect(releases(core.takeActions())).toEqual([])

    core.step({ t: 'peer', now: 12, msg: { t: 'ack', gen: 1, n: 3 } })
    const out = releases(core.takeActions())
    expect(out).toHaveLength(1)
    expect(out[0]).toMatchObject({ entry: 3, heldMs: 7 })
    expect(replyText(out[0])).toBe('*2\r\n:1\r\n+OK\r\n')
    expect(core.status()).toMatchObject({ heldOutputs: 0, releasedThrough: 3, acked: 3, unackedEntries: 0 })
  })

  it('holds outputs until the disk server has confirmed the generation, even when acked', () => {
    const { core } = makeCore('primary')
    const reg = diskReqs(core.takeActions()).find((r) => r.op === 'generation')!
    expect(reg).toMatchObject({ op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })
    core.step({ t: 'input', now: 1, input: { t: 'open', conn: 's:c1' } })
    core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'GET', 'x') })
    core.step({ t: 'peer', now: 2, msg: { t: 'ack', gen: 1, n: 3 } })
    expect(releases(core.takeActions())).toEqual([])
    core.step({ t: 'disk', now: 3, res: ok(reg) })
    expect(releases(core.takeActions())).toHaveLength(1)
  })

  it('releases disk writes as fenced write requests carrying the generation and replica id', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'k', 'v') })
    core.step({ t: 'input', now: 1, input: ftreq('c1', 2, 'SAVE', 'k', '7') })
    core.step({ t: 'peer', now: 2, msg: { t: 'ack', gen: 1, n: 3 } })
    const writes = diskReqs(core.takeActions()).filter((r) => r.op === 'write')
    expect(writes).toHaveLength(1)
    expect(writes[0]).toMatchObject({ op: 'write', gen: 1, from: 'a', block: 7, data: new TextEncoder().encode('v') })
  })

  it('outputs released in the same turn as the fence, not yet taken by the host, never leave (register seed 501721)', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SAVE', 'k', '7') })
    core.step({ t: 'peer', now: 2, msg: { t: 'ack', gen: 1, n: 2 } })
    const write = diskReqs(core.takeActions()).find((r) => r.op === 'write')!
    core.step({ t: 'input', now: 3, input: ftreq('c1', 2, 'SET', 'k', 'w') })
    core.step({ t: 'input', now: 3, input: ftreq('c1', 3, 'SAVE', 'k', '8') })
    core.takeActions()
    // one host turn: the backup's ack releases a reply and a disk write, then the disk server's fence arrives
    core.step({ t: 'peer', now: 4, msg: { t: 'ack', gen: 1, n: 4 } })
    core.step({ t: 'disk', now: 4, res: { id: write.id, ok: false, error: 'fenced', message: 'b is live' } })
    const as = core.takeActions()
    expect(releases(as)).toEqual([])
    expect(diskReqs(as).filter((r) => r.op === 'write')).toEqual([])
    expect(roles(as)).toMatchObject([{ role: 'halted', gen: 1 }])
  })

  it('a fenced write in its own generation halts the primary for good', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SAVE', 'k', '7') })
    core.step({ t: 'peer', now: 2, msg: { t: 'ack', gen: 1, n: 2 } })
    const write = diskReqs(core.takeActions()).find((r) => r.op === 'write')!
    core.step({ t: 'disk', now: 3, res: { id: write.id, ok: false, error: 'fenced', message: 'b is live' } })
    expect(core.status().role).toBe('halted')
    expect(roles(core.takeActions())).toMatchObject([{ role: 'halted', gen: 1 }])
    core.step({ t: 'input', now: 4, input: ftreq('c1', 2, 'GET', 'k') })
    core.step({ t: 'tick', now: 1000 })
    expect(core.takeActions()).toEqual([])
  })

  it('batches entries stepped together into messages of at most batchEntries', () => {
    const { core } = confirmedPrimary({ cfg: { batchEntries: 2 } })
    // boot (entry 1) went out already; five more inputs arrive together
    for (let i = 0; i < 5; i++) core.step({ t: 'input', now: 1, input: { t: 'open', conn: `t:${i}` } })
    const msgs = entriesMsgs(core.takeActions())
    expect(msgs.map((m) => m.entries.map((e) => e.n))).toEqual([[2, 3], [4, 5], [6]])
    expect(msgs.every((m) => m.gen === 1)).toBe(true)
  })

  it('puts the state hash into every hashEvery-th entry', () => {
    const { core, vmm } = confirmedPrimary({ cfg: { hashEvery: 2 } })
    core.step({ t: 'input', now: 1, input: { t: 'open', conn: 't:1' } })
    const [msg] = entriesMsgs(core.takeActions())
    expect(msg.entries).toHaveLength(1)
    expect(msg.entries[0]).toMatchObject({ n: 2, hash: vmm.stateHash() })
    core.step({ t: 'input', now: 1, input: { t: 'open', conn: 't:2' } })
    expect(entriesMsgs(core.takeActions())[0].entries[0].hash).toBeUndefined()
  })

  it('stalls once when the logging-channel buffer is full, queues inputs, and resumes when acks free room', () => {
    const { core } = confirmedPrimary({ cfg: { maxUnackedEntries: 3 } })
    core.step({ t: 'input', now: 1, input: { t: 'open', conn: 's:c1' } })
    expect(stalls(core.takeActions())).toEqual([])
    core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'x', '1') }) // entry 3: full
    core.step({ t: 'input', now: 1, input: ftreq('c1', 2, 'SET', 'x', '2') }) // queued
    core.step({ t: 'input', now: 1, input: ftreq('c1', 3, 'SET', 'x', '3') }) // queued
    const a = core.takeActions()
    expect(stalls(a)).toEqual([true])
    expect(core.status()).toMatchObject({ stalled: true, lastEntry: 3, queuedInputs: 2, unackedEntries: 3 })

    core.step({ t: 'peer', now: 2, msg: { t: 'ack', gen: 1, n: 3 } })
    const b = core.takeActions()
    expect(stalls(b)).toEqual([false])
    expect(core.status()).toMatchObject({ stalled: false, lastEntry: 5, queuedInputs: 0 })
    expect(entriesMsgs(b).flatMap((m) => m.entries.map((e) => e.n))).toEqual([4, 5])
  })

  it('stalls on bytes as well as on entries', () => {
    const { core } = confirmedPrimary({ cfg: { maxUnackedBytes: 400 } })
    const big = 'x'.repeat(500)
    core.step({ t: 'input', now: 1, input: ftreq('c1', 1, 'SET', 'k', big) })
    expect(stalls(core.takeActions())).toEqual([true])
    expect(core.status().unackedBytes).toBeGreaterThanOrEqual(400)
  })

  it('refuses client data beyond the input queue bound but never drops timers', () => {
    const { core } = confirmedPrimary({ cfg: { maxUnackedEntries: 2 } })
    core.step({ t: 'input', now: 1, input: { t: 'open', conn: 's:c1' } }) // full
    for (let i = 0; i < 4; i++) core.step({ t: 'input', now: 1, input: ftreq('c1', i + 1, 'GET', 'x') })
    core.step({ t: 'input', now: 1, input: { t: 'timer', id: 1 } })
    const dropped = telemetry(core.takeActions()).filter((t) => t.k === 'dropped')
    expect(dropped).toHaveLength(2)
    expect(core.status().queuedInputs).toBe(3)
  })

  it('resends everything unacknowledged after a while without ack progress', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'input', now: 1, input: { t: 'open', conn: 't:1' } })
    core.takeActions()
    core.step({ t: 'peer', now: 2, msg: { t: 'ack', gen: 1, n: 1 } })
    core.takeActions()
    core.step({ t: 'tick', now: 30 }) // 2 * heartbeatMs after the last progress
    const resent = entriesMsgs(core.takeActions())
    expect(resent.flatMap((m) => m.entries.map((e) => e.n))).toEqual([2])
  })
})
