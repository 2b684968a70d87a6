import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import {
  agentFilterEquivalent,
  choosePath,
  healScript,
  injectNetworkFault,
  injectScript,
  iptablesApplyScript,
  netemApplyScript,
  netemHandle,
  nftRuleset,
  validateRequest,
  type NetworkFaultRequest
} from '../../../main/faults/network.js'
import { parseProbeOutput, type HostCapabilities } from '../../../main/faults/probe.js'
import type { HostExec } from '../../../main/faults/exec.js'

const mgmt = { address: '10.87.0.1', sshPort: 22 }
const req = (spec: NetworkFaultRequest['spec'], over: Partial<NetworkFaultRequest> = {}): NetworkFaultRequest => ({
  id: 'f1',
  target: 'h1',
  spec,
  management: mgmt,
  deadlineMs: 30_000,
  ...over
})

function caps(over: Partial<Record<keyof HostCapabilities, boolean>> = {}): HostCapabilities {
  const c = parseProbeOutput('')
  for (const k of Object.keys(c) as (keyof HostCapabilities)[]) c[k] = { available: over[k] ?? true, detail: over[k] === false ? `${k} missing here` : 'ok' }
  return c
}

/** Lines of a chain in an nft ruleset. */
function chain(ruleset: string, name: string): string[] {
  const m = new RegExp(`chain ${name} \\{\\n([\\s\\S]*?)\\n  \\}`).exec(ruleset)
  if (!m) throw new Error(`no chain ${name} in\n${ruleset}`)
  return m[1]
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
}

const canCheckNft = process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v nft']).status === 0
function nftCheck(ruleset: string): void {
  // nft -c: parse and validate against the kernel without committing anything
  const r = spawnSync('nft', ['-c', '-f', '-'], { input: ruleset, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`nft -c rejected the ruleset: ${r.stderr}\n${ruleset}`)
}

describe('nft rulesets', () => {
  it('isolate: management accepted first in both chains, then every lab address dropped', () => {
    const rs = nftRuleset('f1', { kind: 'isolate', lab: ['10.87.0.0/24', 'fd00::/64'] }, mgmt)
    expect(rs).toMatch(/^table inet ftlab_f1 \{/)
    const input = chain(rs, 'input')
    const output = chain(rs, 'output')
    expect(input[0]).toMatch(/type filter hook input/)
    expect(input[1]).toMatch(/^ip saddr 10\.87\.0\.1 tcp dport 22 accept/)
    expect(input.slice(2)).toEqual(['ip saddr { 10.87.0.0/24 } drop', 'ip6 saddr { fd00::/64 } drop'])
    expect(output[1]).toMatch(/^ip daddr 10\.87\.0\.1 tcp sport 22 accept/)
    expect(output.slice(2)).toEqual(['ip daddr { 10.87.0.0/24 } drop', 'ip6 daddr { fd00::/64 } drop'])
    if (canCheckNft) nftCheck(rs)
  })

  it('cut in one direction touches only that chain', () => {
    const inOnly = nftRuleset('f1', { kind: 'cut', peer: '10.87.0.12', direction: 'in' }, mgmt)
    expect(chain(inOnly, 'input')).toContain('ip saddr { 10.87.0.12 } drop')
    expect(chain(inOnly, 'output').some((l) => l.includes('drop'))).toBe(false)
    const outOnly = nftRuleset('f1', { kind: 'cut', peer: '10.87.0.12', direction: 'out' }, mgmt)
    expect(chain(outOnly, 'input').some((l) => l.includes('drop'))).toBe(false)
    expect(chain(outOnly, 'output')).toContain('ip daddr { 10.87.0.12 } drop')
    if (canCheckNft) [inOnly, outOnly].forEach(nftCheck)
  })

  it('loss uses numgen in steps of 0.01 %, a plain drop at 100 %, nothing at 0 %', () => {
    const some = nftRuleset('f1', { kind: 'loss', percent: 12.5, peers: ['10.87.0.12'] }, mgmt)
    expect(chain(some, 'input')).toContain('ip saddr { 10.87.0.12 } numgen random mod 10000 < 1250 drop')
    const all = nftRuleset('f1', { kind: 'loss', percent: 100 }, mgmt)
    expect(chain(all, 'output')).toContain('oifname != "lo" drop')
    const none = nftRuleset('f1', { kind: 'loss', percent: 0 }, mgmt)
    expect(none).not.toMatch(/drop/)
    if (canCheckNft) [some, all, none].forEach(nftCheck)
  })
})

describe('iptables and netem scripts', () => {
  it('iptables: own chains, management RETURNed before any DROP, hooked first into INPUT/OUTPUT', () => {
    const s = iptablesApplyScript('f1', { kind: 'cut', peer: '10.87.0.12', direction: 'both' }, mgmt)
    const lines = s.split('\n').map((l) => l.replace(/ &&$/, '').trim())
    const ret = lines.indexOf('iptables -w -A ftlab_f1_in -s 10.87.0.1 -p tcp --dport 22 -j RETURN')
    const drop = lines.indexOf('iptables -w -A ftlab_f1_in -s 10.87.0.12 -j DROP')
    expect(ret).toBeGreaterThan(-1)
    expect(drop).toBeGreaterThan(ret)
    expect(lines).toContain('iptables -w -I INPUT 1 -j ftlab_f1_in')
    expect(lines).toContain('iptables -w -I OUTPUT 1 -j ftlab_f1_out')
    expect(s).not.toContain('ip6tables') // IPv4 only
  })

  it('iptables loss uses the statistic match', () => {
    expect(iptablesApplyScript('f1', { kind: 'loss', percent: 5, peers: ['10.87.0.12'] }, mgmt)).toContain(
      '-s 10.87.0.12 -m statistic --mode random --probability 0.0500 -j DROP'
    )
  })

  it('netem: prio root with FT Lab handle, management filter first, peers to the netem band', () => {
    const s = netemApplyScript(
      'f1',
      { kind: 'netem', dev: 'eth0', peers: ['10.87.0.12'], delayMs: 100, jitterMs: 20, lossPercent: 1, duplicatePercent: 2, reorderPercent: 25 },
      mgmt
    )
    const h = netemHandle('f1')
    expect(h).toMatch(/^f7[0-9a-f]{2}$/)
    expect(s).toContain(`tc qdisc add dev eth0 root handle ${h}: prio bands 3`)
    expect(s).toContain(`netem delay 100ms 20ms loss 1% duplicate 2% reorder 25%`)
    expect(s.indexOf('match ip dst 10.87.0.1/32 match ip sport 22')).toBeLessThan(s.indexOf('match ip dst 10.87.0.12/32'))
  })

  it('the injection arms the dead-man before applying and undoes everything if applying fails', () => {
    const { script, stdin } = injectScript('nft', req({ kind: 'isolate', lab: ['10.87.0.0/24'] }))
    expect(stdin).toContain('table inet ftlab_f1')
    const arm = script.indexOf('setsid sh -c')
    const apply = script.indexOf('nft -f -')
    expect(arm).toBeGreaterThan(-1)
    expect(apply).toBeGreaterThan(arm)
    expect(script).toMatch(/end=\$\(\( \$\(date \+%s\) \+ 30 \)\)/)
    expect(script).toContain('ftlab-deadman-f1 </dev/null >/dev/null 2>&1 &')
    const heal = healScript({ id: 'f1', target: 'h1', kind: 'isolate', params: { kind: 'isolate', lab: ['10.87.0.0/24'] }, healsAt: 0, path: 'nft' })
    expect(heal).toContain('nft delete table inet ftlab_f1')
    // the heal stops this fault's dead-man (found by its $0; deadman.test.ts runs the scripts)
    expect(heal).toContain(`'ftlab-deadman-f[1]'`)
  })
})

describe('request validation', () => {
  const bad: [string, NetworkFaultRequest, RegExp][] = [
    ['bad id', req({ kind: 'cut', peer: '10.0.0.1', direction: 'in' }, { id: 'Bad-Id' }), /id must be 1 to 16/],
    ['no management', { ...req({ kind: 'cut', peer: '10.0.0.1', direction: 'in' }), management: undefined as never }, /management .* is required/],
    [
      'bad mgmt address',
      req({ kind: 'cut', peer: '10.0.0.1', direction: 'in' }, { management: { address: 'console', sshPort: 22 } }),
      /management.address must be an IP/
    ],
    ['bad port', req({ kind: 'cut', peer: '10.0.0.1', direction: 'in' }, { management: { address: '10.0.0.9', sshPort: 0 } }), /sshPort must be a port/],
    ['short deadline', req({ kind: 'cut', peer: '10.0.0.1', direction: 'in' }, { deadlineMs: 10 }), /deadlineMs must be from 1000/],
    ['peer not an address', req({ kind: 'cut', peer: 'h2; rm -rf /', direction: 'in' }), /cut.peer must be an IP address/],
    ['bad direction', req({ kind: 'cut', peer: '10.0.0.1', direction: 'sideways' as never }), /cut.direction must be/],
    ['empty lab', req({ kind: 'isolate', lab: [] }), /isolate.lab must list/],
    ['bad cidr', req({ kind: 'isolate', lab: ['10.0.0.0/33'] }), /isolate.lab\[0\]/],
    ['loss over 100', req({ kind: 'loss', percent: 120 }), /loss.percent must be a percentage/],
    ['reorder without delay', req({ kind: 'netem', dev: 'eth0', peers: ['10.0.0.1'], reorderPercent: 10 }), /reorderPercent needs a delayMs/],
    ['netem with nothing', req({ kind: 'netem', dev: 'eth0', peers: ['10.0.0.1'] }), /at least one of/],
    ['netem bad dev', req({ kind: 'netem', dev: 'eth0; reboot', peers: ['10.0.0.1'], delayMs: 5 }), /netem.dev must be an interface/],
    ['unknown kind', req({ kind: 'melt' } as never), /unknown kind "melt"/]
  ]
  for (const [name, r, msg] of bad) it(`refuses ${name}`, () => expect(() => validateRequest(r)).toThrow(msg))

  it('a bad request never reaches the host', async () => {
    const exec: HostExec = {
      run: async () => {
        throw new Error('must not run')
      }
    }
    await expect(injectNetworkFault(exec, req({ kind: 'cut', peer: 'nope', direction: 'in' }), { caps: caps() })).rejects.toThrow(/cut.peer/)
  })
})

describe('path choice and the agent-filter fallback', () => {
  it('prefers nft, falls back to iptables, then to unavailable with a reason', () => {
    const cut = { kind: 'cut', peer: '10.0.0.1', direction: 'both' } as const
    expect(choosePath(cut, caps())).toEqual({ path: 'nft' })
    expect(choosePath(cut, caps({ nft: false }))).toEqual({ path: 'iptables' })
    expect(choosePath({ kind: 'loss', percent: 5 }, caps({ numgen: false }))).toEqual({ path: 'iptables' })
    expect(choosePath(cut, caps({ nft: false, iptables: false }))).toMatchObject({ reason: expect.stringMatching(/neither nft .* nor iptables/) })
    expect(choosePath(cut, caps({ setsid: false }))).toMatchObject({ reason: expect.stringMatching(/dead-man deadline cannot be armed/) })
    expect(choosePath(cut, caps({ root: false }))).toMatchObject({ reason: expect.stringMatching(/need root/) })
  })

  it('netem missing: unavailable with the reason and the agents-filter equivalent, without touching the host', async () => {
    const ran: string[] = []
    const exec: HostExec = { run: async (c) => (ran.push(c), { code: 0, stdout: '', stderr: '' }) }
    const r = await injectNetworkFault(exec, req({ kind: 'netem', dev: 'eth0', peers: ['10.0.0.2'], delayMs: 40 }), {
      caps: caps({ netem: false }),
      now: () => 1000
    })
    expect(r).toEqual({
      status: 'unavailable',
      reason: 'netem on h1: netem unavailable: netem missing here',
      fallback: {
        path: 'agent-filter',
        faults: [{ kind: 'delay', peers: ['10.0.0.2'], ms: 40 }],
        record: {
          id: 'f1',
          target: 'h1',
          kind: 'netem',
          params: { kind: 'netem', dev: 'eth0', peers: ['10.0.0.2'], delayMs: 40 },
          healsAt: 31_000,
          path: 'agent-filter'
        }
      }
    })
    expect(ran).toEqual([])
  })

  it('duplication and reordering have no agent-filter equivalent', () => {
    expect(agentFilterEquivalent({ kind: 'netem', dev: 'eth0', peers: ['10.0.0.2'], duplicatePercent: 1 })).toBeNull()
    expect(agentFilterEquivalent({ kind: 'cut', peer: '10.0.0.2', direction: 'out' })).toEqual({
      faults: [{ kind: 'drop', peers: ['10.0.0.2'], direction: 'out' }]
    })
  })
})
