// The edge gathers the client bytes of one event-loop turn into one input: a large request that
// TCP hands over in many reads is one log entry, which the backup replays to the same state, and
// several connections' bytes are one 'batch' entry; caps bound how many bytes one input carries.
import { describe, expect, it } from 'vitest'
import { PASS_FILTER } from '../../../agent/faults/filter.js'
import { encodeCommand } from '../../../agent/guests/resp.js'
import { decode, encode } from '../../../agent/net/codec.js'
import { ReplicaCore } from '../../../agent/replica/core.js'
import { MAX_INPUT_BYTES, ReplicaEdge, TURN_INPUT_BYTES, TURN_INPUTS, type ClientHandle, type EdgePorts } from '../../../agent/replica/edge.js'
import type { Action, DiskReq, DiskRes, PeerMsg } from '../../../agent/replica/types.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import { fixedEntropy, testConfig } from '../replica/harness.js'

/**
 * A primary and its backup running the kv guest, their edges wired through an in-memory disk
 * server and a logging channel that encodes every message. Nothing happens until `run()`: it
 * performs the turn's end, then every delivery and disk answer, as an event loop would.
 */
function kvPair() {
  const queue: (() => void)[] = []
  const blocks = new Map<number, Uint8Array>()
  const entries: Record<string, string[]> = { a: [], b: [] }
  const edges: Record<string, ReplicaEdge> = {}
  const ports = (): EdgePorts => ({
    clock: { now: () => 0, wall: () => 1_700_000_000_000 },
    timers: { set: () => null, clear: () => {} },
    peer: {
      send: (to: string, msg: PeerMsg) => {
        const wire = encode(msg)
        queue.push(() => edges[to].peerMessage(decode(wire) as PeerMsg))
      },
      connect: () => {},
      hangUp: () => {},
      connected: () => true,
      stats: () => ({ bytesSent: 0, bytesReceived: 0 })
    },
    disk: {
      request: (req: DiskReq, done: (res: DiskRes | null) => void) =>
        void queue.push(() => {
          if (req.op === 'write') blocks.set(req.block, req.data)
          if (req.op === 'tas') return done({ id: req.id, ok: true, winner: req.from })
          done(req.op === 'read' ? { id: req.id, ok: true, data: blocks.get(req.block) ?? new Uint8Array(0) } : { id: req.id, ok: true })
        })
    },
    filter: PASS_FILTER,
    emit: () => {},
    log: { info: () => {}, warn: () => {}, error: () => {} },
    turnEnd: (fn) => void queue.push(fn)
  })
  const make = (self: 'a' | 'b', role: 'primary' | 'backup') => {
    const vmm = createVmm({ guest: 'kv', mode: 'rsm', entropy: fixedEntropy() })
    const core = new ReplicaCore(testConfig(self, self === 'a' ? 'b' : 'a'), vmm, { role, gen: 1, now: 0 })
    const observer = {
      action: (act: Action) => void (act.t === 'telemetry' && act.ev.k === 'entry' && entries[self].push(act.ev.input)),
      stepped: () => {}
    }
    const edge = new ReplicaEdge(core, vmm, ports(), { self, guest: 'kv', mode: 'rsm', heartbeatMs: 10, diskRetryMs: 20, observer })
    edges[self] = edge
    return { core, vmm, edge }
  }
  const a = make('a', 'primary')
  const b = make('b', 'backup')
  const run = () => {
    for (let i = 0; queue.length > 0; i++) {
      if (i > 100_000) throw new Error('the pair never settles')
      queue.shift()!()
    }
  }
  a.edge.start()
  b.edge.start()
  run()
  // the primary logs every entry it makes (telemetry); the core says how many the backup applied
  return { a, b, run, entries, queue }
}

/** A client on the primary's service port: what it was answered, as text. */
function client(edge: ReplicaEdge) {
  let answered = ''
  const handle: ClientHandle = edge.accept({
    remote: '127.0.0.1:5000',
    write: (d) => void (answered += Buffer.from(d).toString('latin1')),
    end: () => {},
    destroy: () => {},
    pause: () => {},
    resume: () => {}
  })
  return { handle, answered: () => answered }
}

const pieces = (bytes: Uint8Array, size: number): Uint8Array[] => {
  const out: Uint8Array[] = []
  for (let at = 0; at < bytes.length; at += size) out.push(bytes.subarray(at, Math.min(bytes.length, at + size)))
  return out
}

describe('the edge gathers a connection’s reads of one turn into one input', () => {
  it('a 1 MiB SET read in 64 KiB pieces is one entry, and the backup replays it to the same state', () => {
    const { a, b, run, entries } = kvPair()
    const c = client(a.edge)
    const value = 'v'.repeat(1024 * 1024)
    const set = encodeCommand(['SET', 'big', value])
    const before = entries.a.length
    // one turn: every read of the request, then the turn's end
    for (const p of pieces(set, 64 * 1024)) c.handle.data(p)
    run()
    const data = entries.a.slice(before).filter((e) => e.startsWith('data '))
    expect(data).toEqual([`data t:1 ${set.length}B`])
    expect(c.answered()).toBe('+OK\r\n')
    // the backup applied every entry the primary logged and holds the same state
    expect(b.core.status().lastEntry).toBe(a.core.status().lastEntry)
    expect(b.vmm.stateHash()).toBe(a.vmm.stateHash())
    c.handle.data(encodeCommand(['STRLEN', 'big']))
    run()
    expect(c.answered()).toBe(`+OK\r\n:${value.length}\r\n`)
  })

  it('reads of different turns stay different inputs, and pipelined commands of one turn are one', () => {
    const { a, run, entries } = kvPair()
    const c = client(a.edge)
    const before = entries.a.length
    const sets = [1, 2, 3].map((i) => encodeCommand(['SET', `k${i}`, `v${i}`]))
    c.handle.data(sets[0])
    c.handle.data(sets[1])
    run()
    c.handle.data(sets[2])
    run()
    expect(entries.a.slice(before).filter((e) => e.startsWith('data '))).toEqual([
      `data t:1 ${sets[0].length + sets[1].length}B`,
      `data t:1 ${sets[2].length}B`
    ])
    expect(c.answered()).toBe('+OK\r\n'.repeat(3))
  })

  it('keeps each connection its own input, and a connection’s bytes before its close', () => {
    const { a, run, entries } = kvPair()
    const one = client(a.edge)
    const two = client(a.edge)
    const before = entries.a.length
    one.handle.data(encodeCommand(['SET', 'x', '1']))
    two.handle.data(encodeCommand(['SET', 'y', '2']))
    one.handle.data(encodeCommand(['INCR', 'x']))
    two.handle.closed()
    run()
    const got = entries.a.slice(before)
    // the 'open's came as the first bytes did; then the second connection's bytes before its close; then the first's
    expect(got.filter((e) => !e.startsWith('disk-synced'))).toEqual([
      'open t:1',
      'open t:2',
      `data t:2 ${encodeCommand(['SET', 'y', '2']).length}B`,
      'close t:2',
      `data t:1 ${encodeCommand(['SET', 'x', '1']).length + encodeCommand(['INCR', 'x']).length}B`
    ])
    expect(one.answered()).toBe('+OK\r\n:2\r\n')
  })

  it(`bounds one input at MAX_INPUT_BYTES (${MAX_INPUT_BYTES / 1024 / 1024} MiB) however much one turn read`, () => {
    const { a, b, run, entries } = kvPair()
    const c = client(a.edge)
    const value = 'w'.repeat(MAX_INPUT_BYTES + 200 * 1024)
    const set = encodeCommand(['SET', 'huge', value])
    const before = entries.a.length
    for (const p of pieces(set, 64 * 1024)) c.handle.data(p)
    run()
    const sizes = entries.a
      .slice(before)
      .filter((e) => e.startsWith('data '))
      .map((e) => Number(/ (\d+)B$/.exec(e)![1]))
    expect(sizes.length).toBe(2)
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_INPUT_BYTES)
    expect(sizes[0] + sizes[1]).toBe(set.length)
    expect(c.answered()).toBe('+OK\r\n')
    expect(b.vmm.stateHash()).toBe(a.vmm.stateHash())
  })

  it('a turn makes inputs of at most TURN_INPUT_BYTES of its connections’ bytes; the rest wait for the next turn', () => {
    const { a, b, run, entries, queue } = kvPair()
    const clients = [1, 2, 3, 4].map(() => client(a.edge))
    const value = 'w'.repeat(Math.floor(TURN_INPUT_BYTES * 0.75))
    const before = entries.a.length
    for (const [i, c] of clients.entries()) c.handle.data(encodeCommand(['SET', `big${i}`, value]))
    // the turn's end alone: two connections' bytes reach the budget, the other two wait for a turn of their own
    const bytes = 2 * encodeCommand(['SET', 'big0', value]).length
    queue.shift()!()
    expect(entries.a.slice(before).filter((e) => e.startsWith('batch '))).toEqual([`batch 2 conns ${bytes}B`])
    run()
    expect(entries.a.slice(before).filter((e) => e.startsWith('batch '))).toEqual([`batch 2 conns ${bytes}B`, `batch 2 conns ${bytes}B`])
    for (const c of clients) expect(c.answered()).toBe('+OK\r\n')
    expect(b.vmm.stateHash()).toBe(a.vmm.stateHash())
  })

  it('a turn makes inputs of at most TURN_INPUTS connections', () => {
    const { a, run, entries, queue } = kvPair()
    const clients = Array.from({ length: TURN_INPUTS + 3 }, () => client(a.edge))
    const before = entries.a.length
    for (const [i, c] of clients.entries()) c.handle.data(encodeCommand(['GET', `k${i}`]))
    queue.shift()!()
    const kinds = () => entries.a.slice(before).flatMap((e) => (/^(batch \d+ conns|data)/.exec(e) ?? [])[0] ?? [])
    expect(kinds()).toEqual([`batch ${TURN_INPUTS} conns`])
    run()
    expect(kinds()).toEqual([`batch ${TURN_INPUTS} conns`, 'batch 3 conns'])
    for (const c of clients) expect(c.answered()).toBe('$-1\r\n')
  })
})
