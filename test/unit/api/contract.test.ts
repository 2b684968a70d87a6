import { describe, expect, it } from 'vitest'
import { ApiError, METHOD_NAMES, toWireError, validateRequest, validateWireRequest } from '../../../main/api/contract.js'

function refusal(method: unknown, params: unknown): ApiError {
  try {
    validateRequest(method, params)
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError)
    return err as ApiError
  }
  throw new Error('expected a refusal')
}

describe('contract validators accept good requests', () => {
  it('lab.start with a known guest and mode', () => {
    expect(validateRequest('lab.start', { guest: 'kv', mode: 'rsm' })).toEqual({ guest: 'kv', mode: 'rsm' })
    expect(validateRequest('lab.start', { guest: 'bank', mode: 'state-transfer' })).toEqual({ guest: 'bank', mode: 'state-transfer' })
  })

  it('methods without params take nothing or an empty object', () => {
    for (const m of ['lab.stop', 'lab.status', 'lab.restore', 'load.stop', 'console.info'] as const) {
      expect(validateRequest(m, undefined)).toEqual({})
      expect(validateRequest(m, {})).toEqual({})
    }
  })

  it('fault.inject per kind, with params defaulting to none', () => {
    expect(validateRequest('fault.inject', { target: 'a', kind: 'power', durationMs: 10_000 })).toEqual({
      target: 'a',
      kind: 'power',
      params: {},
      durationMs: 10_000
    })
    expect(validateRequest('fault.inject', { target: 'a-b', kind: 'delay', params: { ms: 50, jitterMs: 5 }, durationMs: 1000 }).params).toEqual({
      ms: 50,
      jitterMs: 5
    })
    expect(validateRequest('fault.inject', { target: 'b-disk', kind: 'loss', params: { probability: 0.2 }, durationMs: 1000 }).params).toEqual({
      probability: 0.2
    })
    expect(validateRequest('fault.inject', { target: 'a-disk', kind: 'cut', params: { direction: 'forward' }, durationMs: 1000 }).params).toEqual({
      direction: 'forward'
    })
  })

  it('fault.heal by id or all; load.start; events.since', () => {
    expect(validateRequest('fault.heal', { id: 'f12' })).toEqual({ id: 'f12' })
    expect(validateRequest('fault.heal', { id: 'all' })).toEqual({ id: 'all' })
    expect(validateRequest('load.start', { clients: 8, seconds: 30, keys: 1000 })).toEqual({ clients: 8, seconds: 30, keys: 1000 })
    expect(validateRequest('events.since', { seq: 0 })).toEqual({ seq: 0 })
  })

  it('returns a fresh object, not the caller’s', () => {
    const p = { guest: 'kv', mode: 'rsm' }
    expect(validateRequest('lab.start', p)).not.toBe(p)
  })
})

describe('contract validators refuse bad requests precisely', () => {
  it('unknown methods, listing the known ones', () => {
    const e = refusal('lab.explode', {})
    expect(e.code).toBe('unknown-method')
    expect(e.message).toBe(`unknown method "lab.explode" (known: ${METHOD_NAMES.join(', ')})`)
    expect(refusal(42, {}).message).toMatch(/^unknown method 42/)
    // inherited names are not methods
    expect(refusal('toString', {}).code).toBe('unknown-method')
  })

  it('a wrong enum value names the field, the choices and what came', () => {
    expect(refusal('lab.start', { guest: 'redis', mode: 'rsm' }).message).toBe('lab.start.guest must be one of "kv", "bank" (got "redis")')
    expect(refusal('lab.start', { guest: 'kv', mode: 7 }).message).toBe('lab.start.mode must be one of "rsm", "state-transfer" (got 7)')
  })

  it('missing and unknown fields', () => {
    expect(refusal('lab.start', { guest: 'kv' }).message).toBe('lab.start.mode is missing')
    expect(refusal('lab.start', { guest: 'kv', mode: 'rsm', extra: 1 }).message).toBe(
      'lab.start has an unknown field "extra" (known: kind, guest, mode, heartbeatMs, suspectMs, speed, seed, experiments, etcd)'
    )
    expect(refusal('lab.stop', { now: true }).message).toBe('lab.stop has an unknown field "now" (it takes none)')
  })

  it('non-objects, arrays and class instances as params', () => {
    expect(refusal('lab.start', 'kv').message).toBe('lab.start must be an object (got "kv")')
    expect(refusal('lab.start', [1]).message).toBe('lab.start must be an object (got an array)')
    expect(refusal('lab.start', null).message).toBe('lab.start must be an object (got null)')
    expect(refusal('lab.start', undefined).message).toBe('lab.start must be an object (got nothing)')
    expect(refusal('lab.start', new Date()).message).toBe('lab.start must be an object (got a Date)')
  })

  it('integers out of range, fractions and NaN', () => {
    expect(refusal('load.start', { clients: 0, seconds: 1, keys: 1 }).message).toBe('load.start.clients must be an integer from 1 to 256 (got 0)')
    expect(refusal('load.start', { clients: 1.5, seconds: 1, keys: 1 }).message).toBe('load.start.clients must be an integer from 1 to 256 (got 1.5)')
    expect(refusal('load.start', { clients: 1, seconds: Number.NaN, keys: 1 }).message).toBe('load.start.seconds must be an integer from 1 to 3600 (got NaN)')
    expect(refusal('events.since', { seq: -1 }).message).toBe('events.since.seq must be an integer from 0 to 9007199254740991 (got -1)')
    expect(refusal('fault.inject', { target: 'a', kind: 'power', durationMs: 5 }).message).toBe(
      'fault.inject.durationMs must be an integer from 100 to 3600000 (got 5)'
    )
  })

  it('fault kinds must fit their target, and params their kind', () => {
    expect(refusal('fault.inject', { target: 'a', kind: 'delay', params: { ms: 5 }, durationMs: 1000 }).message).toBe(
      'fault.inject.kind "delay" does not apply to host "a" (use one of power, pause, isolate)'
    )
    expect(refusal('fault.inject', { target: 'a-b', kind: 'power', durationMs: 1000 }).message).toBe(
      'fault.inject.kind "power" does not apply to link "a-b" (use one of cut, delay, loss)'
    )
    expect(refusal('fault.inject', { target: 'c', kind: 'power', durationMs: 1000 }).message).toMatch(
      /^fault.inject.target must be one of "a", "b", "disk", "a-b", "a-disk", "b-disk" \(got "c"\)$/
    )
    expect(refusal('fault.inject', { target: 'a-b', kind: 'delay', durationMs: 1000 }).message).toBe('fault.inject.params must be an object (got nothing)')
    expect(refusal('fault.inject', { target: 'a-b', kind: 'delay', params: {}, durationMs: 1000 }).message).toBe('fault.inject.params.ms is missing')
    expect(refusal('fault.inject', { target: 'a-b', kind: 'loss', params: { probability: 1.5 }, durationMs: 1000 }).message).toBe(
      'fault.inject.params.probability must be a number above 0 and at most 1 (got 1.5)'
    )
    expect(refusal('fault.inject', { target: 'a', kind: 'power', params: { ms: 1 }, durationMs: 1000 }).message).toBe(
      'fault.inject.params has an unknown field "ms" (it takes none)'
    )
  })

  it('fault ids are short and plain', () => {
    expect(refusal('fault.heal', { id: '../etc' }).message).toBe(
      'fault.heal.id must be a fault id (letters, digits, "-" or "_", at most 64) or "all" (got "../etc")'
    )
    expect(refusal('fault.heal', { id: 'x'.repeat(65) }).message).toMatch(/^fault.heal.id must be a fault id .* \(got "x{40}…"\)$/)
  })

  it('a __proto__ key is refused as unknown, not merged', () => {
    const params = JSON.parse('{"guest":"kv","mode":"rsm","__proto__":{"polluted":true}}') as unknown
    expect(refusal('lab.start', params).message).toBe(
      'lab.start has an unknown field "__proto__" (known: kind, guest, mode, heartbeatMs, suspectMs, speed, seed, experiments, etcd)'
    )
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})

describe('wire envelope', () => {
  it('accepts {id, method, params} and refuses anything else', () => {
    expect(validateWireRequest({ id: 1, method: 'lab.status' })).toEqual({ id: 1, method: 'lab.status', params: undefined })
    expect(() => validateWireRequest({ id: 0, method: 'x' })).toThrow('request.id must be an integer from 1 to 9007199254740991 (got 0)')
    expect(() => validateWireRequest({ id: 1, method: 3 })).toThrow('request.method must be a method name (got 3)')
    expect(() => validateWireRequest({ id: 1, method: 'x', extra: 1 })).toThrow('request has an unknown field "extra" (known: id, method, params)')
    expect(() => validateWireRequest('hi')).toThrow('request must be an object {id, method, params} (got "hi")')
  })

  it('turns thrown things into {code, message} without stacks', () => {
    expect(toWireError(new ApiError('conflict', 'busy'))).toEqual({ code: 'conflict', message: 'busy' })
    expect(toWireError(new Error('boom'))).toEqual({ code: 'internal', message: 'boom' })
    expect(toWireError('odd')).toEqual({ code: 'internal', message: 'odd' })
  })
})

describe('contract v2 requests', () => {
  const host = (n: number) => ({ address: `10.87.0.1${n}`, user: 'ftlab', auth: 'key', identityFile: '~/.ssh/id', labAddress: `10.87.0.1${n}` })
  const file = { version: 1, hosts: { a: host(1), b: host(2), disk: host(3) } }

  it('lab.start picks the lab kind; speed and seed belong to the simulated lab only', () => {
    expect(validateRequest('lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', speed: 2.5, seed: 7 })).toEqual({
      kind: 'simulated',
      guest: 'kv',
      mode: 'rsm',
      speed: 2.5,
      seed: 7
    })
    expect(refusal('lab.start', { kind: 'local', guest: 'kv', mode: 'rsm', speed: 2 }).message).toBe(
      'lab.start.speed applies to the simulated lab only (this is kind "local")'
    )
    expect(refusal('lab.start', { kind: 'remote', guest: 'kv', mode: 'rsm' }).message).toBe('lab.start.kind must be one of "local", "simulated" (got "remote")')
    expect(refusal('lab.start', { guest: 'kv', mode: 'rsm', heartbeatMs: 4 }).message).toBe('lab.start.heartbeatMs must be an integer from 5 to 10000 (got 4)')
    expect(refusal('lab.start', { guest: 'kv', mode: 'rsm', heartbeatMs: 100, suspectMs: 100 }).message).toBe(
      'lab.start.suspectMs must be more than heartbeatMs (100) (got 100)'
    )
    expect(refusal('lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', speed: 60 }).message).toBe(
      'lab.start.speed must be a number from 0.1 to 50 (got 60)'
    )
  })

  it('lab.deploy takes a lab file form and names the deep field that is wrong', () => {
    expect(validateRequest('lab.deploy', { name: 'tb', file })).toEqual({ name: 'tb', file })
    const bad = { ...file, hosts: { ...file.hosts, b: { ...host(2), auth: 'pasword' } } }
    expect(refusal('lab.deploy', { name: 'tb', file: bad }).message).toBe(
      'lab.deploy.file.hosts.b.auth must be one of "agent", "key", "password" (got "pasword")'
    )
    const noDisk = { ...file, hosts: { a: host(1), b: host(2) } }
    expect(refusal('lab.deploy', { name: 'tb', file: noDisk }).message).toBe('lab.deploy.file.hosts.disk is missing')
    const secret = { ...file, hosts: { ...file.hosts, a: { ...host(1), password: 'x' } } }
    expect(refusal('lab.deploy', { name: 'tb', file: secret }).message).toMatch(
      /^lab.deploy.file.hosts.a has an unknown field "password" \(known: address, user, port/
    )
    const power = { ...file, hosts: { ...file.hosts, a: { ...host(1), power: { driver: 'ipmi', host: 'bmc-a' } } } }
    expect(refusal('lab.deploy', { name: 'tb', file: power }).message).toBe('lab.deploy.file.hosts.a.power.user is missing')
    const driver = { ...file, hosts: { ...file.hosts, a: { ...host(1), power: { driver: 'ups' } } } }
    expect(refusal('lab.deploy', { name: 'tb', file: driver }).message).toBe(
      'lab.deploy.file.hosts.a.power.driver must be one of "kill", "command", "ipmi", "libvirt", "sysrq" (got "ups")'
    )
    expect(refusal('lab.deploy', { name: '../x', file }).message).toMatch(/^lab.deploy.name must be a lab name .* \(got "..\/x"\)$/)
    const etcd = { ...file, arbiter: { kind: 'etcd', endpoints: [] } }
    expect(refusal('lab.deploy', { name: 'tb', file: etcd }).message).toBe(
      'lab.deploy.file.arbiter.endpoints must be a list of 1 to 16 etcd client URLs (got an array)'
    )
  })

  it('terminals, prompts and teardown', () => {
    expect(validateRequest('term.resize', { id: 't1', cols: 80, rows: 24 })).toEqual({ id: 't1', cols: 80, rows: 24 })
    expect(refusal('term.resize', { id: 't1', cols: 1, rows: 24 }).message).toBe('term.resize.cols must be an integer from 2 to 1000 (got 1)')
    expect(refusal('term.input', { id: 't1', data: 'x'.repeat(64 * 1024 + 1) }).message).toMatch(
      /^term.input.data must be a string of at most 65536 characters/
    )
    expect(validateRequest('term.open', { host: 'spare' })).toEqual({ host: 'spare' })
    expect(validateRequest('prompt.answer', { id: 'p1', accept: true })).toEqual({ id: 'p1', accept: true })
    expect(refusal('prompt.answer', { id: 'p1', accept: 'yes' }).message).toBe('prompt.answer.accept must be true or false (got "yes")')
    expect(refusal('lab.teardown', {}).message).toBe('lab.teardown.confirm is missing')
    expect(validateRequest('lab.restore', { onto: 'spare' })).toEqual({ onto: 'spare' })
    expect(validateRequest('term.list', undefined)).toEqual({})
  })
})
