import { describe, expect, it } from 'vitest'
import type { GuestDefinition } from '../../../agent/guests/api.js'
import { encodeCommand } from '../../../agent/guests/resp.js'
import { DivergenceError, createVmm } from '../../../agent/vmm/vmm.js'
import type { EntryBody, GuestInput, ReplicationMode, Snapshot } from '../../../agent/vmm/types.js'
import { Rig, bytes, latin1, repliesTo, seeded } from './harness.js'

const modes: ReplicationMode[] = ['rsm', 'state-transfer']

/** A random kv workload: several connections, commands split at random byte offsets, TIME and RANDOMKEY included. */
function kvWorkload(rig: Rig, steps: number): void {
  const e = rig.entropy
  const conns = ['t:1', 't:2', 's:alice']
  const pending = new Map<string, Uint8Array>()
  const commands = (): string[][] => {
    const k = 'key' + e.below(12)
    switch (e.below(11)) {
      case 0:
        return [['SET', k, 'v' + e.below(1000)]]
      case 1:
        return [['GET', k]]
      case 2:
        return [['INCR', 'n' + e.below(3)]]
      case 3:
        return [['DEL', k, 'key' + e.below(12)]]
      case 4:
        return [['TIME']]
      case 5:
        return [['RANDOMKEY']]
      case 6:
        return [
          ['MSET', k, 'x', 'key' + e.below(12), 'y'],
          ['MGET', k, 'nokey']
        ]
      case 7:
        return [['FTREQ', 'alice', String(e.below(5)), 'INCRBY', 'ft', '2']]
      case 8:
        return [['KEYS', 'key1*'], ['DBSIZE']]
      case 9:
        return [['SET', k, 'z'.repeat(e.below(3000))]]
      default:
        return [['PING'], ['EXISTS', k]]
    }
  }
  for (let i = 0; i < steps; i++) {
    const conn = conns[e.below(conns.length)]
    if (e.below(40) === 0) {
      rig.step({ t: 'close', conn })
      pending.delete(conn)
      continue
    }
    const wire = Buffer.concat([pending.get(conn) ?? new Uint8Array(0), ...commands().map(encodeCommand)])
    const cut = e.below(3) === 0 ? e.below(wire.length) + 1 : wire.length
    rig.step({ t: 'data', conn, data: wire.subarray(0, cut) })
    pending.set(conn, wire.subarray(cut))
  }
}

function bankWorkload(rig: Rig, steps: number): void {
  const e = rig.entropy
  for (let i = 0; i < steps; i++) {
    if (e.below(3) === 0 && rig.timers.has(1)) rig.fire(1)
    else rig.cmd('t:' + e.below(3), 'TRANSFER', String(e.below(9)), String(e.below(8)), String(e.below(400)))
  }
}

describe('record on a primary, replay on a backup', () => {
  for (const mode of modes) {
    it(`kv (${mode}): equal state hash and outputs after every entry`, () => {
      const rig = new Rig('kv', { mode, seed: 7 })
      rig.boot()
      kvWorkload(rig, 400)
      expect(rig.checked).toBeGreaterThan(400)
      const bodies = rig.log.filter((b): b is Extract<EntryBody, { kind: 'input' }> => b.kind === 'input')
      if (mode === 'rsm') {
        // TIME and RANDOMKEY really went through the log
        expect(bodies.some((b) => b.nondet.some((n) => n.d === 'clock'))).toBe(true)
        expect(bodies.some((b) => b.nondet.some((n) => n.d === 'random'))).toBe(true)
      } else {
        expect(rig.log.every((b) => b.kind === 'state')).toBe(true)
      }
    })

    it(`bank (${mode}): equal state hash after every entry, timer moves included`, () => {
      const rig = new Rig('bank', { mode, seed: 11 })
      rig.boot()
      expect(rig.timers.get(1)).toBe(1000)
      bankWorkload(rig, 300)
      expect(rig.checked).toBeGreaterThan(300)
    })
  }

  it('different non-deterministic values give different states (the hash covers them)', () => {
    const a = new Rig('kv', { seed: 1, backup: false })
    const b = new Rig('kv', { seed: 2, backup: false })
    for (const rig of [a, b]) {
      rig.boot()
      rig.cmd('t:1', 'SET', 'a', '1')
      rig.cmd('t:1', 'SET', 'b', '1')
      rig.cmd('t:1', 'SET', 'c', '1')
    }
    expect(a.primary.stateHash()).toBe(b.primary.stateHash())
    // store what TIME said, so the state depends on the clock
    const t1 = a.cmd('t:1', 'TIME')
    const t2 = b.cmd('t:1', 'TIME')
    expect(t1).not.toBe(t2)
    a.cmd('t:1', 'SET', 'time', t1)
    b.cmd('t:1', 'SET', 'time', t2)
    expect(a.primary.stateHash()).not.toBe(b.primary.stateHash())
  })

  it('a replay that reads fewer values than the log holds is a divergence naming the input', () => {
    const rig = new Rig('kv', { backup: false })
    rig.boot()
    const r = rig.primary.execute({ t: 'data', conn: 't:9', data: encodeCommand(['TIME']) })
    const backup = createVmm({ guest: 'kv', mode: 'rsm', entropy: seeded(3) })
    for (const body of rig.log) backup.replay(body)
    const body = r.body as Extract<EntryBody, { kind: 'input' }>
    const extra = { ...body, nondet: [...body.nondet, { d: 'random' as const, v: 4 }] }
    expect(() => backup.replay(extra)).toThrow(DivergenceError)
    expect(() => createReplayer(rig.log).replay(extra)).toThrow(/entry input 'data t:9 \(\d+ bytes\)'.*read 1 .*log has 2/)
  })

  it('a replay that reads more values, or another kind, than logged is a divergence', () => {
    const rig = new Rig('kv', { backup: false })
    rig.boot()
    const r = rig.primary.execute({ t: 'data', conn: 't:9', data: encodeCommand(['TIME']) })
    const body = r.body as Extract<EntryBody, { kind: 'input' }>
    expect(() => createReplayer(rig.log).replay({ ...body, nondet: [] })).toThrow(/diverged on entry input 'data t:9.*only 0 value/)
    expect(() => createReplayer(rig.log).replay({ ...body, nondet: [{ d: 'random', v: 1 }] })).toThrow(/read #1 is clock, but the log has random/)
  })
})

function createReplayer(log: EntryBody[], guest = 'kv') {
  const v = createVmm({ guest, mode: 'rsm', entropy: seeded(99) })
  for (const b of log) v.replay(b)
  return v
}

// A guest that writes memory, sends, asks for I/O, then throws: none of it may stick.
const faulty: GuestDefinition = {
  name: 'faulty',
  description: 'throws on request',
  factory: function faulty(dev) {
    return {
      data(conn, what) {
        dev.mem.set('count', String(Number(dev.mem.get('count') ?? '0') + 1))
        dev.nic.send(conn, 'ok ')
        if (what.startsWith('throw')) {
          dev.mem.set('junk', 'x')
          dev.disk.write(3, 'junk')
          dev.timer.set(5, 10)
          dev.random.u32()
          throw new Error('boom\r\nsecond line')
        }
        if (what === 'arm') dev.timer.set(2, 10)
        if (what === 'big') dev.mem.set('big', 'x'.repeat(10_000))
        if (what === 'bad-bytes') dev.nic.send(conn, 'snow ☃')
        if (what === 'atomic') {
          try {
            dev.atomic(() => {
              dev.mem.set('inner', '1')
              dev.nic.send(conn, 'inner ')
              throw new Error('inner failed')
            })
          } catch {
            dev.nic.send(conn, 'caught')
          }
        }
      },
      timer() {
        throw new TypeError('timer handler broke')
      }
    }
  }
}

describe('guest faults', () => {
  for (const mode of modes) {
    it(`undoes the input's writes, outputs and I/O, and tells the client (${mode})`, () => {
      const rig = new Rig('faulty', { definition: faulty, mode })
      rig.raw('t:1', 'fine')
      const before = rig.primary.stateHash()
      const r = rig.step({ t: 'data', conn: 't:1', data: bytes('throw') })
      expect(r.outputs).toEqual([{ t: 'reply', conn: 't:1', data: bytes('-ERR guest fault: boom second line\r\n') }])
      expect(r.io).toEqual([])
      expect(r.fault).toBe('data: boom second line')
      expect(rig.primary.stateHash()).toBe(before)
      expect(rig.raw('t:1', 'fine')).toBe('ok ')
    })
  }

  it('a fault without a connection is reported in the result only, and the replay agrees', () => {
    const rig = new Rig('faulty', { definition: faulty })
    rig.raw('t:1', 'arm')
    expect(rig.primary.pendingIo()).toEqual([{ t: 'timer-set', id: 2, ms: 10 }])
    const r = rig.fire(2)
    expect(r.fault).toBe('timer: timer handler broke')
    expect(r.outputs).toEqual([])
    // the firing itself is consumed: the timer is no longer armed
    expect(rig.primary.pendingIo()).toEqual([])
    expect(rig.backup!.pendingIo()).toEqual([])
  })

  it('atomic() lets a guest fail part of an input and keep the rest', () => {
    const rig = new Rig('faulty', { definition: faulty })
    expect(rig.raw('t:1', 'atomic')).toBe('ok caught')
    expect(rig.primary.snapshot().pages.map(([k]) => k)).not.toContain('g:inner')
  })

  it('a write beyond the memory bound is a guest fault, not a crash', () => {
    const rig = new Rig('faulty', { definition: faulty, maxMemoryBytes: 2000 })
    expect(rig.raw('t:1', 'big')).toMatch(/^-ERR guest fault: out of guest memory/)
    expect(rig.primary.memoryBytes()).toBeLessThan(2000)
  })

  it('bytes that are not a byte string are refused', () => {
    const rig = new Rig('faulty', { definition: faulty })
    expect(rig.raw('t:1', 'bad-bytes')).toMatch(/byte string .*U\+2603 at index 5/)
  })
})

describe('snapshot and restore', () => {
  for (const mode of modes) {
    it(`a restored VMM has the same state and goes on identically (${mode})`, () => {
      const rig = new Rig('kv', { mode, seed: 5, backup: false })
      rig.boot()
      kvWorkload(rig, 150)
      const snap = rig.primary.snapshot()
      const wire = JSON.parse(JSON.stringify(snap)) as Snapshot
      const fresh = createVmm({ guest: 'kv', mode, entropy: seeded(5) })
      fresh.restore(wire)
      expect(fresh.stateHash()).toBe(rig.primary.stateHash())
      expect(fresh.memoryBytes()).toBe(rig.primary.memoryBytes())
      expect(fresh.pendingIo()).toEqual(rig.primary.pendingIo())
      const next: GuestInput = { t: 'data', conn: 't:1', data: encodeCommand(['INCR', 'after']) }
      const a = rig.primary.execute(next)
      const b = fresh.execute(next)
      expect(b.outputs).toEqual(a.outputs)
      expect(fresh.stateHash()).toBe(rig.primary.stateHash())
    })
  }

  it('refuses a snapshot of another guest, or one whose pages do not match its hash', () => {
    const kv = createVmm({ guest: 'kv', mode: 'rsm', entropy: seeded(1) })
    kv.execute({ t: 'boot' })
    const snap = kv.snapshot()
    const bank = createVmm({ guest: 'bank', mode: 'rsm', entropy: seeded(1) })
    expect(() => bank.restore(snap)).toThrow(/snapshot is of guest 'kv', this VMM runs 'bank'/)
    const other = createVmm({ guest: 'kv', mode: 'rsm', entropy: seeded(1) })
    expect(() => other.restore({ ...snap, pages: [...snap.pages, ['g:extra', '1']] })).toThrow(/corrupt/)
    expect(() => other.restore({ ...snap, pages: [[1, 2]] as never })).toThrow(/each page must be/)
  })
})

describe('pending I/O and connections', () => {
  it('lists a disk read until its answer arrives, on primary and backup alike', () => {
    const rig = new Rig('kv')
    const boot = rig.step({ t: 'boot' })
    expect(boot.io).toEqual([{ t: 'disk-read', tag: 1, block: 0 }])
    expect(rig.primary.pendingIo()).toEqual([{ t: 'disk-read', tag: 1, block: 0 }])
    expect(rig.backup!.pendingIo()).toEqual(rig.primary.pendingIo())
    rig.answerReads()
    expect(rig.primary.pendingIo()).toEqual([])
    // an answer re-issued at go-live and delivered twice changes nothing
    const hash = rig.primary.stateHash()
    const again = rig.step({ t: 'disk-read', tag: 1, block: 0, data: new Uint8Array(0) })
    expect(again.outputs).toEqual([])
    expect(rig.primary.stateHash()).toBe(hash)
  })

  it('lists an armed timer so a backup that goes live can re-arm it', () => {
    const rig = new Rig('bank')
    rig.boot()
    expect(rig.backup!.pendingIo()).toEqual([{ t: 'timer-set', id: 1, ms: 1000 }])
  })

  it('tracks connections: open, implicit open on data, close by client and by QUIT', () => {
    const rig = new Rig('kv')
    rig.boot()
    expect(rig.primary.isOpen('t:1')).toBe(false)
    rig.step({ t: 'open', conn: 't:1' })
    expect(rig.primary.isOpen('t:1')).toBe(true)
    rig.cmd('s:c7', 'PING')
    expect(rig.primary.isOpen('s:c7')).toBe(true)
    rig.step({ t: 'close', conn: 't:1' })
    expect(rig.primary.isOpen('t:1')).toBe(false)
    const r = rig.step({ t: 'data', conn: 's:c7', data: bytes('QUIT\r\nPING\r\n') })
    expect(r.outputs.map((o) => o.t)).toEqual(['reply', 'close'])
    expect(repliesTo('s:c7', r.outputs)).toBe('+OK\r\n')
    expect(rig.primary.isOpen('s:c7')).toBe(false)
  })

  it('state-transfer entries carry only the pages an input changed', () => {
    const rig = new Rig('kv', { mode: 'state-transfer' })
    rig.boot()
    rig.cmd('t:1', 'SET', 'a', '1')
    const read = rig.step({ t: 'data', conn: 't:1', data: encodeCommand(['GET', 'a']) })
    expect(read.body).toMatchObject({ kind: 'state', pages: [] })
    const write = rig.step({ t: 'data', conn: 't:1', data: encodeCommand(['SET', 'a', '2']) })
    const pages = (write.body as Extract<EntryBody, { kind: 'state' }>).pages
    expect(pages).toContainEqual(['g:k:a', 's2']) // kv's page: the type letter, then the string
    expect(latin1((write.outputs.find((o) => o.t === 'disk-write' && o.block === 0) as { data: Uint8Array }).data)).toMatch(/^FTKV1 \d+\n$/)
  })
})

describe('bad input to the VMM', () => {
  const vmm = createVmm({ guest: 'kv', mode: 'rsm', entropy: seeded(1) })
  it.each([
    [{ t: 'nope' }, /unknown kind "nope"/],
    [{ t: 'data', conn: 't:1', data: 'text' }, /data must be a Uint8Array/],
    [{ t: 'open', conn: '' }, /connection id must be a non-empty string/],
    [{ t: 'disk-read', tag: -1, block: 0, data: new Uint8Array() }, /tag: expected a non-negative integer/],
    [null, /must be an object/]
  ])('%j is refused with a clear error', (input, msg) => {
    expect(() => vmm.execute(input as GuestInput)).toThrow(msg)
  })

  it('an unknown guest names the known ones', () => {
    expect(() => createVmm({ guest: 'nope', mode: 'rsm', entropy: seeded(1) })).toThrow(/unknown guest "nope"; this agent knows: kv, bank/)
  })

  it('an unknown entry kind is refused', () => {
    expect(() => vmm.replay({ kind: 'other' } as never)).toThrow(/unknown entry kind "other"/)
  })
})
