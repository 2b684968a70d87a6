// The drill experiment 'read-fast-path': with the switch on, the primary's edge answers a read
// from the guest's current state at once, with no log entry and no Output Rule, and the
// replicated state is not touched; with it off the same read is an entry whose reply waits
// for the backup's ack. Also the VMM's side-effect-free query and the edge's command framing.
import { describe, expect, it } from 'vitest'
import { PASS_FILTER } from '../../../agent/faults/filter.js'
import { ReplicaCore } from '../../../agent/replica/core.js'
import { ReplicaEdge, SESSION_PREAMBLE, type ClientHandle, type EdgePorts } from '../../../agent/replica/edge.js'
import { frameCommands } from '../../../agent/replica/fast-path.js'
import { replicaConfig } from '../../../agent/replica/runtime.js'
import type { DiskReq, DiskRes, PeerMsg } from '../../../agent/replica/types.js'
import type { ReplicaSpec } from '../../../agent/context.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import { encodeCommand } from '../../../main/load/resp.js'
import { fixedEntropy, testConfig } from '../replica/harness.js'

function primaryEdge(readFastPath: boolean) {
  const asked: { req: DiskReq; done: (res: DiskRes | null) => void }[] = []
  const sent: PeerMsg[] = []
  const ports: EdgePorts = {
    clock: { now: () => 1, wall: () => 1_700_000_000_000 },
    timers: { set: () => null, clear: () => {} },
    peer: {
      send: (_to, msg) => void sent.push(msg),
      connect: () => {},
      hangUp: () => {},
      connected: () => true,
      stats: () => ({ bytesSent: 0, bytesReceived: 0 })
    },
    disk: {
      // kv loads its data from the disk at boot (an empty disk) and syncs before it answers a write; the generation waits for the test
      request: (req, done) =>
        req.op === 'read' || req.op === 'write' || req.op === 'flush' ? done({ id: req.id, ok: true, data: new Uint8Array(0) }) : void asked.push({ req, done })
    },
    filter: PASS_FILTER,
    emit: () => {},
    log: { info: () => {}, warn: () => {}, error: () => {} }
  }
  const vmm = createVmm({ guest: 'kv', mode: 'rsm', entropy: fixedEntropy() })
  const core = new ReplicaCore(testConfig('a', 'b', { suspectMs: 60_000 }), vmm, { role: 'primary', gen: 1, now: 0 })
  const edge = new ReplicaEdge(core, vmm, ports, { self: 'a', guest: 'kv', mode: 'rsm', heartbeatMs: 10, diskRetryMs: 20, readFastPath })
  edge.start()
  const reg = asked.find((a) => a.req.op === 'generation')!
  reg.done({ id: reg.req.id, ok: true })
  const written: string[] = []
  const client: ClientHandle = edge.accept({
    remote: 'test',
    write: (d) => void written.push(Buffer.from(d).toString('latin1')),
    end: () => {},
    destroy: () => {},
    pause: () => {},
    resume: () => {}
  })
  client.data(Buffer.from(`${SESSION_PREAMBLE}c1\r\n`))
  const send = (seq: number, ...cmd: string[]) => client.data(encodeCommand(['FTREQ', 'c1', seq, ...cmd]))
  /** the backup acknowledges every entry sent so far */
  const ackAll = () => {
    // acks release held disk writes and syncs, whose completions are entries too: ack until no new entry comes
    for (let acked = -1; ;) {
      edge.step({ t: 'tick', now: 2 })
      const last = Math.max(0, ...sent.flatMap((m) => (m.t === 'entries' ? m.entries.map((e) => e.n) : [])))
      if (last === acked) break
      edge.peerMessage({ t: 'ack', gen: 1, n: last })
      acked = last
    }
  }
  return { edge, core, vmm, written, raw: (b: Buffer) => client.data(b), send, ackAll }
}

describe('the read-fast-path experiment', () => {
  it('answers a read on the primary at once from the guest state, without a log entry, leaving the state as it was', () => {
    const { edge, core, vmm, written, send, ackAll } = primaryEdge(true)
    send(1, 'SET', 'x', 'old')
    ackAll()
    expect(written.join('')).toContain('+OK')
    const entries = core.status().lastEntry
    const hash = vmm.stateHash()
    written.length = 0
    send(2, 'GET', 'x')
    // no ack was given: the Output Rule would hold this reply; the fast path answered anyway
    expect(written).toEqual(['*2\r\n:2\r\n$3\r\nold\r\n'])
    expect(core.status().lastEntry).toBe(entries)
    expect(vmm.stateHash()).toBe(hash)
    expect(edge.fastPath?.answered).toBe(1)
    // writes still go through the log: the next SET is an entry whose reply waits for the ack
    written.length = 0
    send(3, 'SET', 'x', 'new')
    expect(core.status().lastEntry).toBe(entries + 1)
    expect(written).toEqual([])
    // the read sees the primary's state, acknowledged or not, and overtakes the write's held reply
    send(4, 'GET', 'x')
    expect(written).toEqual(['*2\r\n:4\r\n$3\r\nnew\r\n'])
    expect(core.status().lastEntry).toBe(entries + 1)
    expect(edge.fastPath?.answered).toBe(2)
    edge.stop()
  })

  it('is off unless asked for: the same read is logged and its reply waits for the backup', () => {
    const { edge, core, written, send, ackAll } = primaryEdge(false)
    send(1, 'SET', 'x', 'old')
    ackAll()
    const entries = core.status().lastEntry
    written.length = 0
    send(2, 'GET', 'x')
    expect(core.status().lastEntry).toBe(entries + 1)
    expect(written).toEqual([])
    ackAll()
    expect(written).toEqual(['*2\r\n:2\r\n$3\r\nold\r\n'])
    expect(edge.fastPath).toBeNull()
    edge.stop()
  })

  it('logs a read that arrives in pieces, and one that is not alone in its chunk', () => {
    const { edge, core, written, raw, send, ackAll } = primaryEdge(true)
    send(1, 'SET', 'x', 'v')
    ackAll()
    const before = core.status().lastEntry
    written.length = 0
    // split: the guest buffers the first part, so the rest is no command on its own
    const cmd = encodeCommand(['FTREQ', 'c1', 2, 'GET', 'x'])
    raw(cmd.subarray(0, 10))
    raw(cmd.subarray(10))
    expect(core.status().lastEntry).toBe(before + 2)
    expect(written).toEqual([])
    ackAll()
    expect(written).toEqual(['*2\r\n:2\r\n$1\r\nv\r\n'])
    // two reads in one chunk (pipelined): logged
    written.length = 0
    raw(Buffer.concat([encodeCommand(['FTREQ', 'c1', 3, 'GET', 'x']), encodeCommand(['FTREQ', 'c1', 4, 'GET', 'x'])]))
    expect(core.status().lastEntry).toBe(before + 3)
    expect(written).toEqual([])
    // the stream is back at a command boundary: the next read is answered at once
    send(5, 'GET', 'x')
    expect(written).toEqual(['*2\r\n:5\r\n$1\r\nv\r\n'])
    expect(edge.fastPath?.answered).toBe(1)
    edge.stop()
  })

  it('never answers writes: a SET under the switch is an entry like any other', () => {
    const { edge, core, written, send } = primaryEdge(true)
    const before = core.status().lastEntry
    send(1, 'INCR', 'n')
    expect(core.status().lastEntry).toBe(before + 1)
    expect(written).toEqual([])
    expect(edge.fastPath?.answered).toBe(0)
    edge.stop()
  })

  it('reaches the edge from the replica spec only when asked', () => {
    const spec = { peer: { id: 'b' }, mode: 'rsm', timing: { heartbeatMs: 100, suspectMs: 800 } } as unknown as ReplicaSpec
    // the core never hears of it: the switch is the edge's, the protocol stays as it is
    expect(replicaConfig('a', { ...spec, readFastPath: true })).toEqual(replicaConfig('a', spec))
  })
})

describe('the VMM query and the fast path framing', () => {
  it('a query answers what the guest would, and undoes whatever the guest wrote', () => {
    const vmm = createVmm({ guest: 'kv', mode: 'rsm', entropy: fixedEntropy() })
    // kv loads its data from the disk at boot: an empty disk
    for (let io = vmm.execute({ t: 'boot' }).io; io.length;) {
      const r = io.shift()!
      if (r.t === 'disk-read') io.push(...vmm.execute({ t: 'disk-read', tag: r.tag, block: r.block, data: new Uint8Array(0) }).io)
    }
    vmm.execute({ t: 'open', conn: 's:c' })
    // the SET's reply waits for its data to be durable (kv syncs): complete the barrier
    for (const o of vmm.execute({ t: 'data', conn: 's:c', data: encodeCommand(['SET', 'k', 'v']) }).outputs)
      if (o.t === 'disk-sync') vmm.execute({ t: 'disk-synced', tag: o.tag })
    const hash = vmm.stateHash()
    expect(Buffer.from(vmm.query!('s:c', encodeCommand(['GET', 'k']))!).toString()).toBe('$1\r\nv\r\n')
    // even a write asked as a query leaves no trace (the edge asks only reads)
    expect(Buffer.from(vmm.query!('s:c', encodeCommand(['SET', 'k', 'w']))!).toString()).toBe('+OK\r\n')
    expect(vmm.stateHash()).toBe(hash)
    expect(Buffer.from(vmm.query!('s:c', encodeCommand(['GET', 'k']))!).toString()).toBe('$1\r\nv\r\n')
    // a connection the guest does not know: no answer, the caller logs it
    expect(vmm.query!('s:nobody', encodeCommand(['GET', 'k']))).toBeNull()
  })

  it('frames RESP arrays and inline commands, and says where the incomplete rest begins', () => {
    const two = Buffer.concat([encodeCommand(['GET', 'a']), Buffer.from('PING\r\n'), encodeCommand(['SET', 'b', '1']).subarray(0, 9)])
    const f = frameCommands(two)
    expect(f).toEqual({ commands: [['GET', 'a'], ['PING']], end: encodeCommand(['GET', 'a']).length + 6 })
    expect(frameCommands(Buffer.from('*2\r\nxx\r\n'))).toEqual({ bad: true })
  })
})
