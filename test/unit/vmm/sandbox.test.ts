import { describe, expect, it } from 'vitest'
import type { GuestDefinition } from '../../../agent/guests/api.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import { Rig, bytes, repliesTo, seeded } from './harness.js'

// A guest that tries, on request, each thing a deterministic guest must not have.
const probe: GuestDefinition = {
  name: 'probe',
  description: 'tries forbidden globals',
  factory: function probe(dev) {
    const tries: Record<string, () => unknown> = {
      Date: () => Date.now(),
      'new Date': () => new Date(),
      'Math.random': () => Math.random(),
      setTimeout: () => setTimeout(() => undefined, 1),
      setInterval: () => setInterval(() => undefined, 1),
      setImmediate: () => setImmediate(() => undefined),
      queueMicrotask: () => queueMicrotask(() => undefined),
      process: () => process.pid,
      require: () => require('node:fs'),
      fetch: () => fetch('http://127.0.0.1:1/'),
      WeakRef: () => new WeakRef({}),
      FinalizationRegistry: () => new FinalizationRegistry(() => undefined),
      SharedArrayBuffer: () => new SharedArrayBuffer(8),
      Atomics: () => Atomics.load(new Int32Array(1), 0),
      eval: () => eval('1 + 1'),
      Function: () => Function('return 1')(),
      Intl: () => new Intl.NumberFormat().format(1),
      localeCompare: () => 'a'.localeCompare('b'),
      console: () => console.log('hi')
    }
    return {
      data(conn, what) {
        if (what === 'async') {
          // a promise must settle within the input that created it
          void Promise.resolve().then(() => dev.nic.send(conn, 'settled'))
          return
        }
        if (what === 'globals') {
          dev.nic.send(conn, typeof Math.floor + ' ' + typeof JSON + ' ' + typeof Map + ' ' + typeof Uint8Array)
          return
        }
        dev.mem.set('touched', what)
        dev.nic.send(conn, 'ran ' + String(tries[what]()))
      }
    }
  }
}

describe('guest sandbox', () => {
  const forbidden = [
    'Date',
    'new Date',
    'Math.random',
    'setTimeout',
    'setInterval',
    'setImmediate',
    'queueMicrotask',
    'process',
    'require',
    'fetch',
    'WeakRef',
    'FinalizationRegistry',
    'SharedArrayBuffer',
    'Atomics',
    'Intl',
    'console'
  ]
  it.each(forbidden)('a guest that uses %s gets an error, and its writes are undone', (what) => {
    const rig = new Rig('probe', { definition: probe })
    const before = rig.primary.stateHash()
    rig.step({ t: 'open', conn: 't:1' })
    const opened = rig.primary.stateHash()
    const r = rig.step({ t: 'data', conn: 't:1', data: bytes(what) })
    expect(repliesTo('t:1', r.outputs)).toMatch(/^-ERR guest fault: .*(is not defined|is not a function|Cannot read)/)
    expect(r.fault).toMatch(/^data: /)
    expect(rig.primary.stateHash()).toBe(opened)
    expect(opened).not.toBe(before)
  })

  it.each(['eval', 'Function'])('code generation from strings is off (%s)', (what) => {
    const rig = new Rig('probe', { definition: probe })
    const r = rig.step({ t: 'data', conn: 't:1', data: bytes(what) })
    expect(repliesTo('t:1', r.outputs)).toMatch(/^-ERR guest fault: Code generation from strings disallowed/)
  })

  it('locale-dependent comparison is refused', () => {
    const rig = new Rig('probe', { definition: probe })
    const r = rig.step({ t: 'data', conn: 't:1', data: bytes('localeCompare') })
    expect(repliesTo('t:1', r.outputs)).toMatch(/localeCompare is not available to guests/)
  })

  it('keeps the deterministic built-ins', () => {
    const rig = new Rig('probe', { definition: probe })
    expect(rig.raw('t:1', 'globals')).toBe('function object function function')
  })

  it('settles a guest promise inside the input that created it', () => {
    const rig = new Rig('probe', { definition: probe })
    expect(rig.raw('t:1', 'async')).toBe('settled')
  })

  it('rejects a guest whose factory cannot be evaluated on its own', () => {
    const methodShorthand = {
      factory(dev: unknown) {
        return { dev }
      }
    }
    const def = { name: 'bad', description: '', factory: methodShorthand.factory } as unknown as GuestDefinition
    expect(() => createVmm({ guest: 'bad', mode: 'rsm', entropy: seeded(1), definition: def })).toThrow(/function expression or arrow/)
  })

  it('names the guest when its factory fails', () => {
    const def: GuestDefinition = {
      name: 'broken',
      description: '',
      factory: function broken() {
        throw new Error('no')
      }
    }
    expect(() => createVmm({ guest: 'broken', mode: 'rsm', entropy: seeded(1), definition: def })).toThrow(/no/)
  })
})
