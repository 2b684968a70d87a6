// The drill-only experiment switches: what the replica core does with them, how they reach
// the replica's configuration, and how the contract takes them.
import { describe, expect, it } from 'vitest'
import { replicaConfig } from '../../../agent/replica/runtime.js'
import { checkReplicaSpec } from '../../../agent/replica/spec.js'
import type { ReplicaSpec } from '../../../agent/context.js'
import { validateRequest } from '../../../main/api/contract.js'
import { confirmedPrimary, ftreq, releases } from '../replica/harness.js'

const spec = (extra: Record<string, unknown> = {}): ReplicaSpec =>
  ({
    role: 'replica',
    as: 'primary',
    gen: 1,
    guest: 'kv',
    mode: 'rsm',
    channel: { host: '127.0.0.1', port: 1 },
    service: { host: '127.0.0.1', port: 2 },
    peer: { id: 'b', channel: { host: '127.0.0.1', port: 3 } },
    disk: { host: '127.0.0.1', port: 4 },
    timing: { heartbeatMs: 100, suspectMs: 800 },
    ...extra
  }) as ReplicaSpec

describe('the no-output-rule experiment', () => {
  it('releases a reply before the backup has acknowledged its entry', () => {
    const { core } = confirmedPrimary({ cfg: { noOutputRule: true } })
    core.step({ t: 'input', now: 5, input: { t: 'open', conn: 's:c1' } })
    core.step({ t: 'input', now: 5, input: ftreq('c1', 1, 'SET', 'x', '1') })
    expect(releases(core.takeActions())).toHaveLength(1)
    expect(core.status().acked).toBe(0)
  })

  it('is off unless asked for: the same reply is held', () => {
    const { core } = confirmedPrimary()
    core.step({ t: 'input', now: 5, input: { t: 'open', conn: 's:c1' } })
    core.step({ t: 'input', now: 5, input: ftreq('c1', 1, 'SET', 'x', '1') })
    expect(releases(core.takeActions())).toEqual([])
  })

  it('reaches the core from the replica spec, and a spec with a non-boolean switch is refused', () => {
    expect(replicaConfig('a', spec({ noOutputRule: true })).noOutputRule).toBe(true)
    expect(replicaConfig('a', spec()).noOutputRule).toBeUndefined()
    expect(() => checkReplicaSpec(spec({ noOutputRule: 'yes' }), ['kv'])).toThrow('start.spec.noOutputRule must be true or false, got "yes"')
  })
})

describe('lab.start and drill.run in the contract', () => {
  it('take experiments, and refuse unknown ones naming the choices', () => {
    expect(validateRequest('lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', experiments: ['no-output-rule'] })).toMatchObject({
      experiments: ['no-output-rule']
    })
    expect(() => validateRequest('lab.start', { guest: 'kv', mode: 'rsm', experiments: ['no-rules'] })).toThrow(
      'lab.start.experiments[0] must be one of "no-output-rule", "read-fast-path" (got "no-rules")'
    )
  })

  it('load.start takes readers kept on one replica, and refuses another target', () => {
    expect(validateRequest('load.start', { clients: 2, seconds: 5, keys: 4, readers: { on: 'a', clients: 2 } })).toMatchObject({
      readers: { on: 'a', clients: 2 }
    })
    expect(() => validateRequest('load.start', { clients: 2, seconds: 5, keys: 4, readers: { on: 'disk', clients: 2 } })).toThrow(
      /load\.start\.readers\.on must be one of "a", "b"/
    )
  })

  it('take etcd URLs for the local lab only', () => {
    expect(validateRequest('lab.start', { guest: 'kv', mode: 'rsm', etcd: ['http://127.0.0.1:2379'] })).toMatchObject({ etcd: ['http://127.0.0.1:2379'] })
    expect(() => validateRequest('lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', etcd: ['http://127.0.0.1:2379'] })).toThrow(
      'lab.start.etcd applies to the local lab only (this is kind "simulated")'
    )
    expect(() => validateRequest('lab.start', { guest: 'kv', mode: 'rsm', etcd: ['ftp://x'] })).toThrow(
      /lab\.start\.etcd\[0\] must be an http:\/\/ or https:\/\/ client URL/
    )
  })

  it('drill.run takes a built-in name or a text, not both and not neither', () => {
    expect(validateRequest('drill.run', { name: 'power-cut-primary', repeats: 3, seed: 1 })).toMatchObject({ name: 'power-cut-primary', repeats: 3 })
    expect(() => validateRequest('drill.run', { name: 'x', text: 'y' })).toThrow('drill.run needs exactly one of name (a built-in drill) or text (a scenario)')
    expect(() => validateRequest('drill.run', { name: 'x', repeats: 0 })).toThrow('drill.run.repeats must be an integer from 1 to 100 (got 0)')
    expect(() => validateRequest('drill.run', { name: 'x', lab: 'cloud' })).toThrow(/drill\.run\.lab must be one of "local", "simulated", "remote"/)
  })
})
