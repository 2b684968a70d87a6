import { describe, expect, it } from 'vitest'
import { validateRequest } from '../../../main/faults/network.js'
import { planKernelShares } from '../../../main/lab/lab-faults.js'
import { kernelSpec, parseRouteDev, type ShareContext } from '../../../main/remote/fault-plan.js'

const addr: Record<string, string> = { a: '10.87.0.11', b: '10.87.0.12', disk: '10.87.0.13' }
const slots = ['a', 'b', 'disk']
const plan = (spec: Parameters<typeof planKernelShares>[0]) => planKernelShares(spec, slots, (s) => addr[s]!)
const ctx = (network?: string): ShareContext => ({ ...(network ? { network } : {}), management: { address: '10.87.0.1', sshPort: 22 }, devTo: () => 'eth0' })

describe('kernel fault plan: which host does what', () => {
  it('isolates a host from every other machine of the lab', () => {
    expect(plan({ kind: 'isolate', host: 'a' })).toEqual([{ host: 'a', share: { kind: 'isolate', peers: ['10.87.0.12', '10.87.0.13'] } }])
  })

  it('cuts a link on the sending host: both ways, or one way outbound only', () => {
    expect(plan({ kind: 'cut', from: 'a', to: 'b', oneWay: false })).toEqual([{ host: 'a', share: { kind: 'cut', peer: '10.87.0.12', direction: 'both' } }])
    expect(plan({ kind: 'cut', from: 'b', to: 'disk', oneWay: true })).toEqual([{ host: 'b', share: { kind: 'cut', peer: '10.87.0.13', direction: 'out' } }])
  })

  it('turns a loss probability into a percentage on one end, and a delay into a share on both ends', () => {
    expect(plan({ kind: 'loss', from: 'a', to: 'b', probability: 0.125 })).toEqual([{ host: 'a', share: { kind: 'loss', peer: '10.87.0.12', percent: 12.5 } }])
    expect(plan({ kind: 'delay', from: 'a', to: 'b', ms: 40, jitterMs: 5 })).toEqual([
      { host: 'a', share: { kind: 'delay', peer: '10.87.0.12', ms: 40, jitterMs: 5 } },
      { host: 'b', share: { kind: 'delay', peer: '10.87.0.11', ms: 40, jitterMs: 5 } }
    ])
  })
})

describe('kernel fault plan: what one host applies', () => {
  it('isolates from the whole lab network when the lab file names one', () => {
    expect(kernelSpec({ kind: 'isolate', peers: ['10.87.0.12'] }, ctx('10.87.0.0/24'))).toEqual({ kind: 'isolate', lab: ['10.87.0.0/24'] })
  })

  it('without a network, isolates from every peer and the clients side (the console)', () => {
    expect(kernelSpec({ kind: 'isolate', peers: ['10.87.0.12', '10.87.0.13'] }, ctx())).toEqual({
      kind: 'isolate',
      lab: ['10.87.0.12', '10.87.0.13', '10.87.0.1']
    })
  })

  it('puts a delay into netem on the interface towards the peer', () => {
    expect(kernelSpec({ kind: 'delay', peer: '10.87.0.12', ms: 40, jitterMs: 5 }, ctx())).toEqual({
      kind: 'netem',
      dev: 'eth0',
      peers: ['10.87.0.12'],
      delayMs: 40,
      jitterMs: 5
    })
    expect(kernelSpec({ kind: 'loss', peer: '10.87.0.12', percent: 12.5 }, ctx())).toEqual({
      kind: 'loss',
      percent: 12.5,
      peers: ['10.87.0.12'],
      direction: 'both'
    })
  })

  it('produces requests network.ts accepts', () => {
    const specs = [
      { kind: 'isolate', host: 'b' },
      { kind: 'cut', from: 'a', to: 'b', oneWay: true },
      { kind: 'loss', from: 'a', to: 'disk', probability: 0.5 },
      { kind: 'delay', from: 'a', to: 'b', ms: 100 }
    ] as const
    for (const [n, s] of specs.entries()) {
      for (const [i, p] of plan(s).entries()) {
        const spec = kernelSpec(p.share, ctx('10.87.0.0/24'))
        expect(() =>
          validateRequest({ id: `a1e6_${n + 1}_${i}`, target: p.host, spec, management: { address: '10.87.0.1', sshPort: 22 }, deadlineMs: 5000 })
        ).not.toThrow()
      }
    }
  })

  it('reads the interface from ip route get', () => {
    expect(parseRouteDev('10.87.0.12 dev veth-h1 src 10.87.0.11 uid 0 \n    cache \n')).toBe('veth-h1')
    expect(parseRouteDev('RTNETLINK answers: Network is unreachable')).toBeNull()
  })
})
