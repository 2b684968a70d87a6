// A message the logging channel refuses for good (too large for a frame, cannot be encoded)
// must reach the core: otherwise the primary resends it for ever while heartbeats keep
// everyone from suspecting anyone, and every later output stays held.
import { describe, expect, it } from 'vitest'
import { PASS_FILTER } from '../../../agent/faults/filter.js'
import { ReplicaCore } from '../../../agent/replica/core.js'
import { ReplicaEdge, type EdgePorts } from '../../../agent/replica/edge.js'
import type { DiskReq, DiskRes, PeerMsg } from '../../../agent/replica/types.js'
import { RegisterVmm } from '../../../sim/register-vmm.js'
import { fixedEntropy, ftreq, testConfig } from '../replica/harness.js'

describe('the edge', () => {
  it('hands a send the channel refused to the core, which stops waiting for that backup', () => {
    let now = 0
    const asked: { req: DiskReq; done: (res: DiskRes | null) => void }[] = []
    const sent: PeerMsg[] = []
    const ports: EdgePorts = {
      clock: { now: () => now, wall: () => 1_700_000_000_000 + now },
      timers: { set: () => null, clear: () => {} },
      peer: {
        send: (_to, msg) => {
          if (msg.t === 'entries' && msg.entries.some((e) => e.n > 1)) return 'message of 20000000 bytes exceeds the frame limit of 16777216'
          sent.push(msg)
        },
        connect: () => {},
        hangUp: () => {},
        connected: () => true,
        stats: () => ({ bytesSent: 0, bytesReceived: 0 })
      },
      disk: { request: (req, done) => void asked.push({ req, done }) },
      filter: PASS_FILTER,
      emit: () => {},
      log: { info: () => {}, warn: () => {}, error: () => {} }
    }
    const vmm = new RegisterVmm({ mode: 'rsm', entropy: fixedEntropy() })
    const core = new ReplicaCore(testConfig('a', 'b'), vmm, { role: 'primary', gen: 1, now: 0 })
    const edge = new ReplicaEdge(core, vmm, ports, { self: 'a', guest: 'register', mode: 'rsm', heartbeatMs: 10, diskRetryMs: 20 })
    edge.start()
    const reg = asked.find((a) => a.req.op === 'generation')!
    reg.done({ id: reg.req.id, ok: true })
    now = 1
    edge.step({ t: 'input', now, input: ftreq('c1', 1, 'SET', 'k', 'v') })
    const tas = asked.find((a) => a.req.op === 'tas')
    expect(tas, 'the refusal made the primary ask for the test-and-set at once').toBeDefined()
    tas!.done({ id: tas!.req.id, ok: true, winner: 'a' })
    expect(core.status()).toMatchObject({ role: 'live', heldOutputs: 0 })
    edge.stop()
  })
})
