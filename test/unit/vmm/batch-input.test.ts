// A 'batch' input: several connections' bytes of one event-loop turn as one entry. The guest sees
// each connection's bytes as its own `data` call, told that `endInput` follows, and ends the batch
// once; a fault stays with its connection, a refusal takes the whole batch. The backup replays it
// to the same state and outputs (Rig.step checks every entry).
import { describe, expect, it } from 'vitest'
import type { GuestDefinition } from '../../../agent/guests/api.js'
import { encodeCommand } from '../../../agent/guests/resp.js'
import type { ExecResult, Output } from '../../../agent/vmm/types.js'
import { STACK_OVERFLOW_FAULT } from '../../../agent/vmm/vmm.js'
import { Rig, bytes, latin1, repliesTo } from './harness.js'

const reads = (...rs: [conn: string, data: string | Uint8Array][]) => ({
  t: 'batch' as const,
  reads: rs.map(([conn, data]) => ({ conn, data: typeof data === 'string' ? bytes(data) : data }))
})

/** The replies of an entry and of the completions of its barriers (a disk that is durable at once), per connection. */
function answered(rig: Rig, r: ExecResult): Output[] {
  const out = [...r.outputs]
  for (const o of r.outputs) if (o.t === 'disk-sync') out.push(...rig.step({ t: 'disk-synced', tag: o.tag }).outputs)
  return out
}

/** Counts its calls; 'boom' throws after a write and a reply; a number recurses that deep. */
const probe: GuestDefinition = {
  name: 'probe',
  description: 'records how it is called',
  factory: function (dev) {
    const down = (n: number): number => (n === 0 ? 0 : 1 + down(n - 1))
    return {
      data(conn: string, what: string, batched?: boolean) {
        dev.mem.set('last:' + conn, what)
        dev.mem.set('calls', (dev.mem.get('calls') ?? '') + 'data(' + conn + ',' + String(batched) + ')')
        if (what === 'boom') {
          dev.nic.send(conn, 'not sent')
          throw new Error('boom on ' + conn)
        }
        if (/^[0-9]+$/.test(what)) dev.nic.send(conn, 'depth ' + down(Number(what)))
        else dev.nic.send(conn, 'ok ' + what)
      },
      endInput() {
        dev.mem.set('calls', (dev.mem.get('calls') ?? '') + 'end')
      }
    }
  }
}

/** A service guest whose write-out throws while BOOM is set (a guest bug at the batch's end); CLEAR unsets it. */
const faultyFlush: GuestDefinition = {
  name: 'faulty-flush',
  description: 'its flush fails while BOOM is set',
  factory: function (dev, lib) {
    const svc = lib.service.create(dev, {
      name: 'faulty-flush',
      ready: () => true,
      command(_conn, args) {
        const name = args[0].toUpperCase()
        if (name === 'BOOM') dev.mem.set('boom', '1')
        else if (name === 'CLEAR') dev.mem.delete('boom')
        else if (name === 'SET') dev.mem.set('k:' + args[1], args[2])
        else return null
        return lib.resp.simple('OK')
      },
      flush() {
        if (dev.mem.get('boom') === '1') throw new Error('flush failed')
        return false
      }
    })
    return { open: svc.open, data: svc.data, endInput: svc.endInput, close: svc.close }
  }
}

describe("a 'batch' input", () => {
  it("is one kv batch: each client's replies, one log append, one barrier; the state of the same requests sent one by one", () => {
    const batched = new Rig('kv')
    batched.boot()
    const single = new Rig('kv')
    single.boot()
    const reqs: [string, Uint8Array][] = [
      ['t:1', encodeCommand(['SET', 'a', '1'])],
      ['t:2', new Uint8Array([...encodeCommand(['INCR', 'n']), ...encodeCommand(['INCR', 'n'])])],
      ['t:3', encodeCommand(['GET', 'a'])]
    ]
    const r = batched.step(reads(...reqs))
    expect(r.outputs.filter((o) => o.t === 'disk-sync')).toHaveLength(1)
    expect(
      r.outputs.flatMap((o) => (o.t === 'disk-write' ? [o.block] : [])),
      "the batch's records in one append to the log's block, then the superblock"
    ).toEqual([1, 0])
    expect(
      r.outputs.filter((o) => o.t === 'reply'),
      'every reply waits for the barrier'
    ).toEqual([])
    const out = answered(batched, r)
    expect(reqs.map(([conn]) => repliesTo(conn, out))).toEqual(['+OK\r\n', ':1\r\n:2\r\n', '$1\r\n1\r\n'])
    // the same requests as an input each: the same replies and keys
    const one = reqs.map(([conn, data]) => repliesTo(conn, answered(single, single.step({ t: 'data', conn, data }))))
    expect(one).toEqual(['+OK\r\n', ':1\r\n:2\r\n', '$1\r\n1\r\n'])
    expect(batched.cmd('t:9', 'MGET', 'a', 'n')).toBe(single.cmd('t:9', 'MGET', 'a', 'n'))
    expect(batched.checked).toBeGreaterThan(0)
  })

  it('opens connections it has not seen, calls data with batched = true for each in order, then endInput once', () => {
    const rig = new Rig('probe', { definition: probe })
    rig.step({ t: 'open', conn: 't:1' })
    const r = rig.step(reads(['t:1', 'x'], ['t:2', 'y']))
    expect(rig.primary.openConns()).toEqual(['t:1', 't:2'])
    expect(repliesTo('t:1', r.outputs) + '|' + repliesTo('t:2', r.outputs)).toBe('ok x|ok y')
    const calls = rig.step({ t: 'data', conn: 't:1', data: bytes('calls?') })
    expect(calls.outputs.length).toBe(1)
    // a lone connection's bytes are a 'data' input: no endInput after it
    const probeCalls = () => {
      const snap = rig.primary.snapshot()
      return snap.pages.find(([k]) => k.endsWith('calls'))?.[1]
    }
    expect(probeCalls()).toBe('data(t:1,true)data(t:2,true)enddata(t:1,undefined)')
  })

  it("keeps a guest's fault with its connection: that client hears of it, the others get their replies", () => {
    const rig = new Rig('probe', { definition: probe })
    const r = rig.step(reads(['t:1', 'x'], ['t:2', 'boom'], ['t:3', 'z']))
    expect(r.fault).toMatch(/boom on t:2/)
    expect(repliesTo('t:1', r.outputs)).toBe('ok x')
    expect(repliesTo('t:2', r.outputs)).toBe('-ERR guest fault: boom on t:2\r\n')
    expect(repliesTo('t:3', r.outputs)).toBe('ok z')
    // the faulted call's write was undone, the others' kept
    const pages = new Map(rig.primary.snapshot().pages)
    expect([...pages.keys()].filter((k) => k.includes('last:')).sort()).toEqual([expect.stringMatching(/last:t:1$/), expect.stringMatching(/last:t:3$/)])
  })

  it('refuses the whole batch on a stack overflow: every client of it is told and closed, on the backup alike', () => {
    // (the backup meets the refusal at the batch's first connection, the primary at its second: both stop there)
    const rig = new Rig('probe', { definition: probe })
    rig.step({ t: 'open', conn: 't:1' })
    rig.step({ t: 'open', conn: 't:2' })
    const r = rig.step(reads(['t:1', '10'], ['t:2', '100000000']))
    expect(r.refused).toBe('stack-overflow')
    const text = r.outputs.map((o) => (o.t === 'reply' ? `${o.conn} ${latin1(o.data)}` : o.t === 'close' ? `close ${o.conn}` : o.t))
    expect(text).toEqual([`t:1 -ERR guest fault: ${STACK_OVERFLOW_FAULT}\r\n`, 'close t:1', `t:2 -ERR guest fault: ${STACK_OVERFLOW_FAULT}\r\n`, 'close t:2'])
    expect(rig.primary.openConns()).toEqual([])
    expect(rig.checked).toBe(3)
  })

  it("a fault at the batch's end answers each client once, with the fault: none of the batch's own replies follow later", () => {
    const rig = new Rig('faulty-flush', { definition: faultyFlush })
    for (const c of ['t:1', 't:2', 't:3']) rig.step({ t: 'open', conn: c })
    const r = rig.step(reads(['t:1', encodeCommand(['SET', 'a', '1'])], ['t:2', encodeCommand(['BOOM'])]))
    expect(r.fault).toMatch(/endInput: flush failed/)
    expect(repliesTo('t:1', r.outputs)).toBe('-ERR guest fault: flush failed\r\n')
    expect(repliesTo('t:2', r.outputs)).toBe('-ERR guest fault: flush failed\r\n')
    // the next input answers its own client only: the faulted batch's +OKs were dropped, not kept for it
    const next = rig.step({ t: 'data', conn: 't:3', data: encodeCommand(['CLEAR']) })
    expect(next.fault).toBeUndefined()
    expect(next.outputs.filter((o) => o.t === 'reply').map((o) => (o.t === 'reply' ? `${o.conn} ${latin1(o.data)}` : ''))).toEqual(['t:3 +OK\r\n'])
    // and a lone connection's data whose write-out fails: the same
    rig.step({ t: 'data', conn: 't:1', data: encodeCommand(['BOOM']) })
    const after = rig.step({
      t: 'batch',
      reads: [
        { conn: 't:2', data: encodeCommand(['CLEAR']) },
        { conn: 't:3', data: encodeCommand(['SET', 'b', '2']) }
      ]
    })
    expect(after.outputs.filter((o) => o.t === 'reply').map((o) => (o.t === 'reply' ? o.conn : ''))).toEqual(['t:2', 't:3'])
  })

  it('refuses a malformed reads input before the guest sees it', () => {
    const rig = new Rig('probe', { definition: probe, backup: false })
    expect(() => rig.step({ t: 'batch', reads: [] })).toThrow(/reads must be a non-empty array/)
    expect(() => rig.step(reads(['t:1', 'x'], ['t:1', 'y']))).toThrow(/connection t:1 comes twice/)
    expect(() => rig.step({ t: 'batch', reads: [{ conn: '', data: bytes('x') }] })).toThrow(/connection id must be a non-empty string/)
  })
})
