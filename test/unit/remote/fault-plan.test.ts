import { describe, expect, it } from 'vitest'
import { validateRequest } from '../../../main/faults/network.js'
import { parseRouteDev, partId, planNetworkFault, type PlanContext } from '../../../main/remote/fault-plan.js'
import { isRemoteCommand, parseRemoteArgs } from '../../../main/cli/remote.js'

const addr: Record<string, string> = { a: '10.87.0.11', b: '10.87.0.12', disk: '10.87.0.13' }
const ctx = (network?: string): PlanContext => ({
  labAddress: (s) => addr[s]!,
  slots: ['a', 'b', 'disk'],
  ...(network ? { network } : {}),
  consoleAddress: () => '10.87.0.1',
  devTo: (s) => `eth-${s}`
})

describe('remote fault plan', () => {
  it('isolates a host from the whole lab network when the lab file names one', () => {
    expect(planNetworkFault({ kind: 'isolate', host: 'b' }, ctx('10.87.0.0/24'))).toEqual([{ slot: 'b', spec: { kind: 'isolate', lab: ['10.87.0.0/24'] } }])
  })

  it('without a network, isolates from every peer and the clients side (the console)', () => {
    expect(planNetworkFault({ kind: 'isolate', host: 'a' }, ctx())).toEqual([{ slot: 'a', spec: { kind: 'isolate', lab: ['10.87.0.12', '10.87.0.13', '10.87.0.1'] } }])
  })

  it('cuts a link on the sending host: both ways, or one way outbound only', () => {
    expect(planNetworkFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false }, ctx())).toEqual([{ slot: 'a', spec: { kind: 'cut', peer: '10.87.0.12', direction: 'both' } }])
    expect(planNetworkFault({ kind: 'cut', from: 'b', to: 'disk', oneWay: true }, ctx())).toEqual([{ slot: 'b', spec: { kind: 'cut', peer: '10.87.0.13', direction: 'out' } }])
  })

  it('turns a loss probability into a percentage on one end, and a delay into netem on both ends', () => {
    expect(planNetworkFault({ kind: 'loss', from: 'a', to: 'b', probability: 0.125 }, ctx())).toEqual([
      { slot: 'a', spec: { kind: 'loss', percent: 12.5, peers: ['10.87.0.12'], direction: 'both' } }
    ])
    expect(planNetworkFault({ kind: 'delay', from: 'a', to: 'b', ms: 40, jitterMs: 5 }, ctx())).toEqual([
      { slot: 'a', spec: { kind: 'netem', dev: 'eth-a', peers: ['10.87.0.12'], delayMs: 40, jitterMs: 5 } },
      { slot: 'b', spec: { kind: 'netem', dev: 'eth-b', peers: ['10.87.0.11'], delayMs: 40, jitterMs: 5 } }
    ])
  })

  it('produces requests network.ts accepts', () => {
    const specs = [
      { kind: 'isolate', host: 'b' },
      { kind: 'cut', from: 'a', to: 'b', oneWay: true },
      { kind: 'loss', from: 'a', to: 'disk', probability: 0.5 },
      { kind: 'delay', from: 'a', to: 'b', ms: 100 }
    ] as const
    for (const [n, s] of specs.entries()) {
      for (const [i, p] of planNetworkFault(s, ctx('10.87.0.0/24')).entries()) {
        expect(() => validateRequest({ id: partId('a1e6', n + 1, i), target: p.slot, spec: p.spec, management: { address: '10.87.0.1', sshPort: 22 }, deadlineMs: 5000 })).not.toThrow()
      }
    }
  })

  it('keeps part ids inside what nft table names allow', () => {
    expect(partId('a1e6', 12, 1)).toBe('a1e6_12_1')
    expect(() => partId('a1e6', 1234567890123, 1)).toThrow(/not 1\.\.16/)
  })

  it('reads the interface from ip route get', () => {
    expect(parseRouteDev('10.87.0.12 dev veth-h1 src 10.87.0.11 uid 0 \n    cache \n')).toBe('veth-h1')
    expect(parseRouteDev('RTNETLINK answers: Network is unreachable')).toBeNull()
  })
})

describe('remote CLI arguments', () => {
  it('recognises the remote commands and parses their options', () => {
    expect(isRemoteCommand(['deploy', 'lab.json'])).toBe(true)
    expect(isRemoteCommand(['status'])).toBe(false)
    expect(parseRemoteArgs(['deploy', 'lab.json', '--name', 'x', '--accept-new-host-keys'])).toMatchObject({ word: 'deploy', positional: ['lab.json'], name: 'x', acceptNew: true })
    expect(parseRemoteArgs(['teardown', '--name=x'])).toMatchObject({ word: 'teardown', positional: [], name: 'x' })
    expect(parseRemoteArgs(['power-on', 'b'])).toMatchObject({ word: 'power-on', positional: ['b'] })
  })

  it('refuses what it does not know', () => {
    expect(() => parseRemoteArgs(['deploy'])).toThrow('deploy needs exactly one <labfile>')
    expect(() => parseRemoteArgs(['teardown', '--accept-new-host-keys'])).toThrow("unknown option --accept-new-host-keys for 'teardown'")
    expect(() => parseRemoteArgs(['deploy', 'x.json', '--name'])).toThrow('--name needs a value')
    expect(() => parseRemoteArgs(['teardown', 'extra'])).toThrow("unexpected argument 'extra'")
  })
})
