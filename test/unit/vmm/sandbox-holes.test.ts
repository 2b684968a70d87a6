// The ways a careless (or curious) guest could get around determinism, each closed or, for
// the stack depth, turned into a reported refusal or divergence instead of a silent difference.
import { describe, expect, it } from 'vitest'
import type { GuestDefinition } from '../../../agent/guests/api.js'
import { DivergenceError, createVmm } from '../../../agent/vmm/vmm.js'
import type { ExecResult, GuestInput, Output } from '../../../agent/vmm/types.js'
import { Rig, bytes, latin1, repliesTo, seeded } from './harness.js'

// Its factory's source is evaluated inside the sandbox: each probe runs as guest code.
const probe: GuestDefinition = {
  name: 'probe',
  description: 'probes the sandbox',
  factory: function (dev, lib) {
    const tries: Record<string, () => unknown> = {
      // escapes through the device functions' constructor chain
      'dev.mem.get.constructor': () => (dev.mem.get.constructor as FunctionConstructor)('return typeof process')(),
      'dev.constructor.constructor': () => ((dev as object).constructor.constructor as FunctionConstructor)('return typeof process')(),
      'dev.atomic.constructor': () => (dev.atomic.constructor as FunctionConstructor)('return typeof process')(),
      'mem.keys result': () => {
        dev.mem.set('k', 'v')
        const ks = dev.mem.keys('') as unknown as { constructor: { constructor: FunctionConstructor } }
        return ks.constructor.constructor('return typeof process')()
      },
      'device error': () => {
        try {
          dev.mem.set(1 as unknown as string, 2 as unknown as string)
        } catch (e) {
          return ((e as object).constructor.constructor as FunctionConstructor)('return typeof process')()
        }
        return 'no error'
      },
      'global constructor': () => ((globalThis as object).constructor.constructor as FunctionConstructor)('return typeof process')(),
      // V8 throws a stack overflow at a call into the host in the *host's* realm: at every depth, try to use what was caught
      'stack edge': () => {
        const caught: unknown[] = []
        const r = (): void => {
          try {
            dev.mem.get('x')
            r()
          } catch (e) {
            caught[caught.length] = e // no call: the stack is nearly full here
          }
        }
        const pad = (k: number): void => (k === 0 ? r() : pad(k - 1))
        for (let i = 0; i < 60; i++) pad(i)
        // back at a shallow depth, where compiling a string would have room
        for (const e of caught) {
          try {
            ;((e as object).constructor.constructor as FunctionConstructor)('globalThis.__ftlabEscaped = true')()
          } catch (_) {
            // expected: the guest realm's Function, which compiles nothing
          }
        }
        return 'tried'
      },
      // everything reachable by walking properties and prototypes must end in this realm's Object.prototype
      walk: () => {
        const roots: [string, unknown][] = [
          ['globalThis', globalThis],
          ['dev', dev],
          ['lib', lib]
        ]
        dev.mem.set('k', 'v')
        roots.push(['mem.keys()', dev.mem.keys('')])
        const errorOf = (what: string, f: () => unknown): void => {
          try {
            f()
            roots.push([what, 'no error'])
          } catch (e) {
            roots.push([what, e])
          }
        }
        errorOf('mem.set(1, 2)', () => dev.mem.set(1 as unknown as string, 2 as unknown as string))
        errorOf('nic.send(bad bytes)', () => dev.nic.send('t:1', '\u0100'))
        errorOf('disk.write(too big)', () => dev.disk.write(0, 'x'.repeat(5000)))
        errorOf('timer.set(-1)', () => dev.timer.set(-1, 0))
        errorOf('atomic(not a function)', () => dev.atomic(5 as unknown as () => void))
        const seen = new Set<unknown>()
        const queue: [string, unknown][] = [...roots]
        const bad: string[] = []
        while (queue.length > 0 && seen.size < 50000) {
          const [path, o] = queue.shift()!
          if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) continue
          seen.add(o)
          let end: object = o as object
          for (let p = Object.getPrototypeOf(o); p !== null; p = Object.getPrototypeOf(p)) end = p as object
          if (end !== o && end !== Object.prototype) bad.push(path)
          queue.push([path + '.__proto__', Object.getPrototypeOf(o)])
          for (const k of Reflect.ownKeys(o as object)) {
            const d = Reflect.getOwnPropertyDescriptor(o as object, k)!
            const name = path + '.' + String(k)
            if ('value' in d) queue.push([name, d.value])
            if (d.get) queue.push([name + '<get>', d.get])
            if (d.set) queue.push([name + '<set>', d.set])
          }
        }
        return bad.length === 0 ? 'all ' + seen.size + ' in the guest realm' : 'from the host: ' + bad.slice(0, 8).join(', ')
      },
      // stacks
      'new Error().stack': () => new Error('x').stack,
      'device error stack': () => {
        try {
          dev.mem.set(1 as unknown as string, 2 as unknown as string)
        } catch (e) {
          return (e as Error).stack
        }
        return 'no error'
      },
      captureStackTrace: () => {
        const o: { stack?: string } = {}
        Error.captureStackTrace(o)
        return o.stack
      },
      'nested stack': () => {
        const inner = (n: number): string => (n === 0 ? String(new Error('deep').stack) : inner(n - 1))
        return dev.atomic(() => inner(3))
      },
      'set prepareStackTrace': () => {
        ;(Error as unknown as { prepareStackTrace: unknown }).prepareStackTrace = () => 'mine'
        return new Error('x').stack
      },
      'set stackTraceLimit': () => {
        Error.stackTraceLimit = 1000
        return Error.stackTraceLimit
      },
      'replace Error': () => {
        ;(globalThis as { Error: unknown }).Error = function () {
          return 1
        }
        return typeof Error
      },
      // locale
      'Number.toLocaleString': () => (1234567.5).toLocaleString(),
      'Number.toLocaleString(de)': () => (1234567.5).toLocaleString('de-DE'),
      'BigInt.toLocaleString': () => 1234567n.toLocaleString(),
      'Array.toLocaleString': () => [1234567.5, 2].toLocaleString(),
      'TypedArray.toLocaleString': () => new Float64Array([1234567.5]).toLocaleString(),
      toLocaleUpperCase: () => 'i'.toLocaleUpperCase('tr'),
      toLocaleLowerCase: () => 'I'.toLocaleLowerCase('tr'),
      localeCompare: () => 'a'.localeCompare('b')
    }
    return {
      data(conn: string, what: string) {
        dev.mem.set('touched', what)
        dev.nic.send(conn, String(tries[what]()))
      }
    }
  }
}

const send = (rig: Rig, what: string): ExecResult => rig.step({ t: 'data', conn: 't:1', data: bytes(what) })

describe('the guest reaches nothing of the host', () => {
  it.each(['dev.mem.get.constructor', 'dev.constructor.constructor', 'dev.atomic.constructor', 'mem.keys result', 'device error', 'global constructor'])(
    '%s leads only to the guest realm Function, which cannot compile strings',
    (what) => {
      const rig = new Rig('probe', { definition: probe })
      const r = send(rig, what)
      expect(repliesTo('t:1', r.outputs)).toMatch(/^-ERR guest fault: Code generation from strings disallowed/)
    }
  )

  it('an error caught at the stack edge of a device call is of the guest realm too', () => {
    const rig = new Rig('probe', { definition: probe })
    send(rig, 'stack edge')
    expect((globalThis as { __ftlabEscaped?: boolean }).__ftlabEscaped).toBeUndefined()
  })

  it('every object reachable from globalThis, dev, lib, device results and device errors belongs to the guest realm', () => {
    const rig = new Rig('probe', { definition: probe })
    expect(repliesTo('t:1', send(rig, 'walk').outputs)).toMatch(/^all \d+ in the guest realm$/)
  })
})

describe('stacks inside the guest are deterministic and show no host frames', () => {
  it.each(['new Error().stack', 'device error stack', 'captureStackTrace', 'nested stack'])('%s: equal on primary and backup, guest frames only', (what) => {
    // Rig.step replays on the backup and compares the outputs: host frames (execute vs replay) would differ
    const rig = new Rig('probe', { definition: probe })
    const stack = repliesTo('t:1', send(rig, what).outputs)
    expect(stack).not.toMatch(/^-ERR/)
    expect(stack).toMatch(/ftlab-guest-probe\.js:\d+:\d+/)
    expect(stack).not.toMatch(/\/|\\|vmm\.ts|node:|ftlab-dispatch|ftlab-devices/)
    // a device error looks like the guest's own: the top frame is the guest's call
    if (what === 'device error stack') expect(stack).toMatch(/^TypeError: mem\.set/)
  })

  it.each(['set prepareStackTrace', 'set stackTraceLimit', 'replace Error'])('a guest cannot change how stacks are made (%s)', (what) => {
    const rig = new Rig('probe', { definition: probe })
    expect(repliesTo('t:1', send(rig, what).outputs)).toMatch(/^-ERR guest fault: Cannot assign to read only property/)
  })
})

describe('locale-dependent functions are refused with a clear error', () => {
  it.each([
    'Number.toLocaleString',
    'Number.toLocaleString(de)',
    'BigInt.toLocaleString',
    'Array.toLocaleString',
    'TypedArray.toLocaleString',
    'toLocaleUpperCase',
    'toLocaleLowerCase',
    'localeCompare'
  ])('%s', (what) => {
    const rig = new Rig('probe', { definition: probe })
    const r = send(rig, what)
    expect(repliesTo('t:1', r.outputs)).toMatch(/^-ERR guest fault: \S+ is not available to guests: its result depends on the host's locale/)
    expect(r.fault).toMatch(/not available to guests/)
  })
})

// --- stack depth ---------------------------------------------------------------------

const recursive: GuestDefinition = {
  name: 'recursive',
  description: 'recurses as deep as asked',
  factory: function (dev) {
    const down = (n: number): number => (n === 0 ? 0 : 1 + down(n - 1))
    return {
      data(conn: string, what: string) {
        const [how, depth] = what.split(' ')
        dev.mem.set('last', what)
        if (how === 'plain') dev.nic.send(conn, 'depth ' + down(Number(depth)))
        // the guest swallows the overflow: through dev.atomic, as the service library does for each command
        else if (how === 'caught') {
          try {
            dev.nic.send(conn, 'depth ' + dev.atomic(() => down(Number(depth))))
          } catch (e) {
            dev.nic.send(conn, 'swallowed ' + (e as Error).message)
          }
        }
      }
    }
  }
}

/** Run fn with about `frames` host frames already on the stack. */
function padded<T>(frames: number, fn: () => T): T {
  return frames <= 0 ? fn() : padded(frames - 1, fn)
}

describe('a stack overflow is refused or reported, never silent', () => {
  it.each(['plain', 'caught'])('a guest that overflows on the primary (%s) has the input refused, and the backup replays the refusal', (how) => {
    const rig = new Rig('recursive', { definition: recursive })
    rig.step({ t: 'open', conn: 't:1' })
    const before = rig.primary.stateHash()
    const r = rig.step({ t: 'data', conn: 't:1', data: bytes(`${how} 100000000`) })
    expect(r.refused).toBe('stack-overflow')
    expect(r.fault).toMatch(/^data: stack overflow/)
    expect(r.body.kind === 'input' && r.body.refused).toBe('stack-overflow')
    expect(repliesTo('t:1', r.outputs)).toMatch(/^-ERR guest fault: stack overflow/)
    // nothing of the input stays; the connection is closed, as its stream lost bytes
    expect(r.outputs.at(-1)).toEqual({ t: 'close', conn: 't:1' })
    expect(rig.primary.snapshot().pages.some(([k]) => k === 'g:last')).toBe(false)
    expect(rig.primary.stateHash()).not.toBe(before)
    expect(rig.primary.isOpen('t:1')).toBe(false)
  })

  it('a refused input in state-transfer mode carries the same effect to the backup', () => {
    const rig = new Rig('recursive', { definition: recursive, mode: 'state-transfer' })
    const r = rig.step({ t: 'data', conn: 't:1', data: bytes('caught 100000000') })
    expect(r.refused).toBe('stack-overflow')
    expect(rig.backup!.isOpen('t:1')).toBe(false)
  })

  it.each(['plain', 'caught'])('at any stack depth, a backup replay (%s) equals the primary or throws DivergenceError naming the overflow', (how) => {
    const input: GuestInput = { t: 'data', conn: 't:1', data: bytes(`${how} 3000`) }
    let diverged = 0
    let equal = 0
    for (let frames = 0; frames <= 40000 && diverged === 0; frames += 200) {
      const primary = createVmm({ guest: 'recursive', mode: 'rsm', entropy: seeded(1), definition: recursive })
      const backup = createVmm({ guest: 'recursive', mode: 'rsm', entropy: seeded(2), definition: recursive })
      const p = primary.execute(input)
      expect(p.refused).toBeUndefined()
      let b: { outputs: Output[] } | Error
      try {
        b = padded(frames, () => backup.replay(structuredClone(p.body)))
      } catch (e) {
        b = e as Error
      }
      if (b instanceof DivergenceError) {
        expect(b.message).toMatch(/stack overflow/)
        diverged++
      } else if (b instanceof Error) {
        // the host itself ran out of stack before the guest did: replay failed, which halts the backup too
        expect(b.message).toMatch(/Maximum call stack size exceeded/)
      } else {
        expect(b.outputs).toEqual(p.outputs)
        expect(backup.stateHash()).toBe(primary.stateHash())
        equal++
      }
    }
    expect(equal).toBeGreaterThan(0)
    expect(diverged).toBe(1)
  })

  it('at any stack depth, a primary either runs the input or refuses it, and a backup replays either exactly', () => {
    const input: GuestInput = { t: 'data', conn: 't:1', data: bytes('caught 3000') }
    const seen = new Set<string>()
    for (let frames = 0; frames <= 40000 && !seen.has('stack-overflow'); frames += 200) {
      const primary = createVmm({ guest: 'recursive', mode: 'rsm', entropy: seeded(1), definition: recursive })
      const backup = createVmm({ guest: 'recursive', mode: 'rsm', entropy: seeded(2), definition: recursive })
      let p: ExecResult
      try {
        p = padded(frames, () => primary.execute(input))
      } catch (e) {
        expect((e as Error).message).toMatch(/Maximum call stack size exceeded/)
        continue
      }
      seen.add(p.refused ?? 'ran')
      const b = backup.replay(structuredClone(p.body))
      expect(b.outputs).toEqual(p.outputs)
      expect(backup.stateHash()).toBe(primary.stateHash())
    }
    expect([...seen].sort()).toEqual(['ran', 'stack-overflow'])
  })
})

// --- restore -------------------------------------------------------------------------

const closure: GuestDefinition = {
  name: 'closure',
  description: 'keeps a counter in a JS variable, which the rules forbid',
  factory: function (dev) {
    let hits = 0
    return {
      data(conn: string) {
        hits++
        dev.nic.send(conn, 'hits ' + hits)
      }
    }
  }
}

describe('after a restore, primary and backup run the guest from the same state', () => {
  it('a counter kept in a closure gives the same answers on the primary and on the restored backup', () => {
    const opts = { guest: 'closure', mode: 'rsm' as const, definition: closure }
    const primary = createVmm({ ...opts, entropy: seeded(1) })
    const hit = { t: 'data' as const, conn: 't:1', data: bytes('x') }
    for (let i = 0; i < 3; i++) primary.execute(hit)
    const backup = createVmm({ ...opts, entropy: seeded(2) })
    backup.restore(structuredClone(primary.snapshot()))
    for (let i = 0; i < 3; i++) {
      const p = primary.execute(hit)
      const b = backup.replay(structuredClone(p.body))
      expect(latin1((b.outputs[0] as { data: Uint8Array }).data)).toBe(latin1((p.outputs[0] as { data: Uint8Array }).data))
    }
    expect(backup.stateHash()).toBe(primary.stateHash())
  })
})
