// The edge takes the core's actions once per event-loop turn for client inputs, logging-channel
// messages and disk answers alike (stepInTurn), so that a turn's requests and the completions of
// its disk barriers leave in one 'entries' message. Waiting for the turn's end must never let an
// output out early: a reply leaves only once the backup has acknowledged the entry that made it.
import { describe, expect, it } from 'vitest'
import { PASS_FILTER } from '../../../agent/faults/filter.js'
import { ReplicaCore } from '../../../agent/replica/core.js'
import { ReplicaEdge, type ClientPort, type EdgePorts } from '../../../agent/replica/edge.js'
import type { DiskReq, DiskRes, LogEntry, PeerMsg } from '../../../agent/replica/types.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import { fixedEntropy, testConfig } from '../replica/harness.js'

const enc = new TextEncoder()
const dec = new TextDecoder()
const set = (k: string, v: string) => enc.encode(`*3\r\n$3\r\nSET\r\n$${k.length}\r\n${k}\r\n$${v.length}\r\n${v}\r\n`)

function harness() {
  let now = 0
  const turn: (() => void)[] = []
  const disk: { req: DiskReq; done: (res: DiskRes | null) => void }[] = []
  const sent: PeerMsg[] = []
  /** what the edge handed to its ports, in order: peer messages, disk requests, and 'sent' (see EdgePorts.sent) */
  const order: string[] = []
  const ports: EdgePorts = {
    clock: { now: () => now, wall: () => 1_700_000_000_000 + now },
    timers: { set: () => null, clear: () => {} },
    peer: {
      send: (_to, msg) => {
        sent.push(msg)
        order.push(`peer ${msg.t}`)
      },
      connect: () => {},
      hangUp: () => {},
      connected: () => true,
      stats: () => ({ bytesSent: 0, bytesReceived: 0 })
    },
    disk: {
      request: (req, done) => {
        disk.push({ req, done })
        order.push(`disk ${req.op}`)
      }
    },
    filter: PASS_FILTER,
    emit: () => {},
    log: { info: () => {}, warn: () => {}, error: () => {} },
    turnEnd: (fn) => void turn.push(fn),
    sent: () => void order.push('sent')
  }
  const vmm = createVmm({ guest: 'kv', mode: 'rsm', entropy: fixedEntropy() })
  const core = new ReplicaCore(testConfig('a', 'b', { hashEvery: 1000, suspectMs: 10_000 }), vmm, { role: 'primary', gen: 1, now: 0 })
  const edge = new ReplicaEdge(core, vmm, ports, { self: 'a', guest: 'kv', mode: 'rsm', heartbeatMs: 10, diskRetryMs: 20 })
  edge.start()
  const endTurn = () => {
    now += 1
    for (const fn of turn.splice(0)) fn()
  }
  const answerDisk = (pred: (r: DiskReq) => boolean) => {
    const due = disk.filter((d) => pred(d.req))
    for (const d of due) disk.splice(disk.indexOf(d), 1)
    // a fresh disk: reads find nothing
    for (const d of due) d.done(d.req.op === 'read' ? { id: d.req.id, ok: true, data: new Uint8Array(0) } : { id: d.req.id, ok: true })
    return due.length
  }
  const client = () => {
    const got: string[] = []
    const port: ClientPort = { remote: 'test', write: (d) => void got.push(dec.decode(d)), end: () => {}, destroy: () => {}, pause: () => {}, resume: () => {} }
    return { handle: edge.accept(port), got }
  }
  const entries = () => sent.splice(0).flatMap((m) => (m.t === 'entries' ? [m] : []))
  const ack = (n: number) => edge.peerMessage({ t: 'ack', gen: 1, n })
  /** Answer every disk request and acknowledge every entry, turn after turn, until none is left; then forget the messages. */
  const settle = () => {
    for (let i = 0; i < 10; i++) {
      answerDisk(() => true)
      endTurn()
      ack(core.status().lastEntry)
      endTurn()
      if (disk.length === 0) break
    }
    entries()
  }
  return { edge, core, disk, endTurn, answerDisk, client, entries, ack, order, settle }
}

const inputKinds = (es: LogEntry[]) => es.map((e) => (e.body.kind === 'input' ? e.body.input.t : e.body.kind))

describe('the edge batches a turn', () => {
  it("tells its ports the turn's sends are complete once, after the turn's messages and disk requests", () => {
    const h = harness()
    h.answerDisk((r) => r.op === 'generation')
    h.endTurn()
    h.answerDisk((r) => r.op === 'read')
    h.endTurn()
    h.ack(h.core.status().lastEntry)
    h.endTurn()
    h.order.length = 0
    h.client().handle.data(set('k', 'v'))
    h.endTurn()
    expect(h.order, "the request's entry, then the word that the turn is sent").toEqual(['peer entries', 'sent'])
    h.order.length = 0
    h.ack(h.core.status().lastEntry)
    h.endTurn()
    expect(h.order.at(-1)).toBe('sent')
    expect(h.order.filter((o) => o === 'sent')).toHaveLength(1)
    expect(h.order, 'the acknowledged entry released its disk write in that turn').toContain('disk write')
    h.order.length = 0
    h.endTurn()
    expect(h.order, 'a turn with nothing stepped sends nothing').toEqual([])
    h.edge.stop()
  })

  it("completes a turn's barriers as one entry, and releases each reply once its own entry is acknowledged and its writes are durable", () => {
    const h = harness()
    // the generation registered, the guest booted from an empty disk, all of it acknowledged
    expect(h.answerDisk((r) => r.op === 'generation')).toBe(1)
    h.endTurn()
    expect(h.answerDisk((r) => r.op === 'read')).toBe(1)
    h.endTurn()
    h.ack(h.core.status().lastEntry)
    h.endTurn()
    h.answerDisk((r) => r.op === 'write')
    h.endTurn()
    h.ack(h.core.status().lastEntry)
    h.endTurn()
    h.entries()
    // a first write: after a boot the kv guest rewrites its log's last block whole, once, and appends after it (an
    // append waits for that write's answer), so the turn measured below holds two appends
    const c0 = h.client()
    c0.handle.data(set('k0', 'v0'))
    for (let i = 0; i < 10 && c0.got.join('') === ''; i++) {
      h.endTurn()
      h.ack(h.core.status().lastEntry)
      h.endTurn()
      h.answerDisk((r) => r.op === 'write')
      h.endTurn()
    }
    expect(c0.got.join('')).toBe('+OK\r\n')
    h.entries()

    // two writes in two turns: two entries, two barriers
    const c1 = h.client()
    const c2 = h.client()
    c1.handle.data(set('k1', 'v1'))
    expect(h.entries(), 'nothing leaves before the turn ends').toEqual([])
    h.endTurn()
    c2.handle.data(set('k2', 'v2'))
    h.endTurn()
    const requests = h.entries()
    expect(requests).toHaveLength(2)
    expect(
      requests.map((r) => inputKinds(r.entries)),
      'a connection opens at its first bytes; its bytes of the turn are an input at its end'
    ).toEqual([
      ['open', 'data'],
      ['open', 'data']
    ])
    expect(
      h.disk.filter((d) => d.req.op === 'write'),
      'the log writes wait for the backup (Output Rule)'
    ).toEqual([])

    h.ack(requests[1].entries.at(-1)!.n)
    h.endTurn()
    expect(h.disk.some((d) => d.req.op === 'write')).toBe(true)
    // the disk server answers every write in one turn: both barriers complete together
    h.answerDisk((r) => r.op === 'write')
    expect(h.entries(), 'the completions wait for the turn end too').toEqual([])
    expect(c1.got.join('') + c2.got.join(''), 'released at the turn end, not at once').toBe('')
    h.endTurn()
    const completions = h.entries()
    expect(completions, 'one message for the turn').toHaveLength(1)
    const synced = completions[0].entries.filter((e) => e.body.kind === 'input' && e.body.input.t === 'disk-synced')
    expect(synced, 'one completion, of the newest barrier: it completes the other too').toHaveLength(1)
    // the requests' entries were acknowledged before their writes left, and the writes are durable now: the replies
    // leave without waiting for the completion's own acknowledgement
    expect(h.core.status().acked).toBeLessThan(synced[0].n)
    expect(c1.got.join('')).toBe('+OK\r\n')
    expect(c2.got.join('')).toBe('+OK\r\n')
    h.edge.stop()
  })

  it("makes one input of a turn's bytes on several connections: one log write and one barrier for them all", () => {
    const h = harness()
    // the generation registered, the guest booted from an empty disk, all of it acknowledged
    h.settle()
    const cs = [1, 2, 3].map(() => h.client())
    // connections open in a turn of their own, so that the measured turn holds only their requests
    for (const [i, c] of cs.entries()) c.handle.data(enc.encode(`*2\r\n$3\r\nGET\r\n$2\r\nk${i}\r\n`))
    h.settle()
    expect(cs.map((c) => c.got.join(''))).toEqual(['$-1\r\n', '$-1\r\n', '$-1\r\n'])
    for (const [i, c] of cs.entries()) c.handle.data(set(`k${i}`, `v${i}`))
    h.endTurn()
    const requests = h.entries()
    expect(requests).toHaveLength(1)
    expect(inputKinds(requests[0].entries)).toEqual(['batch'])
    const input = requests[0].entries[0].body.kind === 'input' ? requests[0].entries[0].body.input : null
    expect(input?.t === 'batch' ? input.reads.map((r) => [r.conn, dec.decode(r.data)]) : null, 'each connection once, in the order its bytes came').toEqual(
      cs.map((_, i) => [`t:${i + 1}`, dec.decode(set(`k${i}`, `v${i}`))])
    )
    h.ack(requests[0].entries.at(-1)!.n)
    h.endTurn()
    const writes = h.disk.filter((d) => d.req.op === 'write').map((d) => (d.req.op === 'write' ? d.req.block : -1))
    // the batch's records go to the log in one append (block 1), then the superblock (block 0): not one pair per request
    expect(writes).toEqual([1, 0])
    expect(
      cs.map((c) => c.got.join('')),
      'the replies wait for the batch write to be durable'
    ).toEqual(['$-1\r\n', '$-1\r\n', '$-1\r\n'])
    h.answerDisk((r) => r.op === 'write')
    h.endTurn()
    const completions = h.entries().flatMap((m) => m.entries.filter((e) => e.body.kind === 'input' && e.body.input.t === 'disk-synced'))
    expect(completions, 'one barrier, completed once').toHaveLength(1)
    expect(cs.map((c) => c.got.join(''))).toEqual(cs.map(() => '$-1\r\n+OK\r\n'))
    h.edge.stop()
  })
})
