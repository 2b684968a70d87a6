// The simulator's invariants, fed by hand: each one fails on the violation it names.
import { describe, expect, it } from 'vitest'
import { Checker, SimFailure } from '../../../sim/checker.js'

const reply = (entry: number) => ({ t: 'release' as const, out: { t: 'reply' as const, conn: 's:c1', data: new Uint8Array(1) }, entry, heldMs: 0 })
const write = (entry: number, gen: number, from: string) => ({ t: 'send-disk' as const, req: { id: 1, op: 'write' as const, gen, from, block: 0, data: new Uint8Array(1) }, entry })

function started(): Checker {
  const c = new Checker(() => 0)
  c.onDiskAnswer({ id: 1, op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' }, { id: 1, ok: true })
  return c
}

describe('the simulator checker', () => {
  it('refuses a replica that goes live without having won the test-and-set of its generation', () => {
    const c = started()
    expect(() => c.onAction('b', 'backup', 1, { t: 'role', role: 'live', gen: 1, reason: 'test' })).toThrow(SimFailure)
    expect(() => c.onAction('b', 'backup', 1, { t: 'role', role: 'live', gen: 1, reason: 'test' })).toThrow(/b went live in generation 1 but nobody has won that generation's test-and-set/)
  })

  it('accepts a replica that goes live and outputs after winning the test-and-set, and refuses the loser', () => {
    const c = started()
    c.onDiskAnswer({ id: 2, op: 'tas', gen: 1, from: 'b' }, { id: 2, ok: true, winner: 'b' })
    c.onAction('b', 'backup', 1, { t: 'role', role: 'live', gen: 1, reason: 'won' })
    c.onAction('b', 'live', 1, reply(7))
    c.onAction('b', 'live', 1, write(7, 1, 'b'))
    expect(() => c.onAction('a', 'live', 1, reply(7))).toThrow(/a released an output in generation 1 but b won that generation's test-and-set/)
  })

  it('holds disk writes to the Output Rule like replies', () => {
    const c = started()
    c.onAckSent(1, 4)
    c.onAction('a', 'primary', 1, write(4, 1, 'a'))
    expect(() => c.onAction('a', 'primary', 1, write(5, 1, 'a'))).toThrow(/Output Rule: primary a \(generation 1\) released a disk write of entry 5 but its backup has acknowledged only up to 4/)
  })

  it('refuses a primary output before the disk server confirmed the generation', () => {
    const c = new Checker(() => 0)
    c.onAckSent(1, 3)
    expect(() => c.onAction('a', 'primary', 1, reply(2))).toThrow(/primary a released an output of entry 2 in generation 1 before the disk server confirmed that generation with it/)
  })

  it('refuses any output from a replica after it learned the disk server fenced its write in that generation', () => {
    const c = started()
    c.onAckSent(1, 9)
    c.onAction('a', 'primary', 1, reply(8))
    c.onFenced('a', 1)
    expect(() => c.onAction('a', 'primary', 1, reply(9))).toThrow(/a released an output of entry 9 in generation 1 after the disk server fenced its write: a fenced replica must halt/)
    // a refusal of an older generation's write does not bind the newer generation
    c.onDiskAnswer({ id: 3, op: 'generation', gen: 2, from: 'a', primary: 'a', backup: 'b' }, { id: 3, ok: true })
    c.onAckSent(2, 1)
    c.onAction('a', 'primary', 2, reply(1))
  })
})
