import { describe, expect, it } from 'vitest'
import { BANK_ACCOUNTS, BANK_INITIAL_BALANCE, BANK_MOVE_MS, BANK_MOVE_TIMER } from '../../../agent/guests/bank.js'
import { RespReader } from '../../../agent/guests/resp.js'
import { Rig, bytes, latin1 } from '../vmm/harness.js'

function parse(reply: string): unknown {
  const r = new RespReader()
  r.push(bytes(reply))
  return r.next()
}

function balances(rig: Rig): number[] {
  return parse(rig.cmd('t:0', 'ACCOUNTS')) as number[]
}

const TOTAL = BANK_ACCOUNTS * BANK_INITIAL_BALANCE

describe('bank', () => {
  it('opens with equal accounts and arms its move timer', () => {
    const rig = new Rig('bank')
    rig.boot()
    expect(balances(rig)).toEqual(Array(BANK_ACCOUNTS).fill(BANK_INITIAL_BALANCE))
    expect(rig.cmd('t:0', 'TOTAL')).toBe(`:${TOTAL}\r\n`)
    expect(rig.primary.pendingIo()).toEqual([{ t: 'timer-set', id: BANK_MOVE_TIMER, ms: BANK_MOVE_MS }])
  })

  it('transfers, and refuses what would break the books', () => {
    const rig = new Rig('bank')
    rig.boot()
    const c = (...a: string[]) => rig.cmd('t:1', ...a)
    expect(c('TRANSFER', '0', '1', '250')).toBe('+OK\r\n')
    expect(c('BALANCE', '0')).toBe(':750\r\n')
    expect(c('BALANCE', '1')).toBe(':1250\r\n')
    expect(c('TRANSFER', '0', '1', '751')).toBe('-ERR insufficient funds: account 0 has 750, transfer needs 751\r\n')
    expect(c('TRANSFER', '0', '0', '1')).toBe('-ERR transfer to the same account\r\n')
    expect(c('TRANSFER', '0', '99', '1')).toBe('-ERR no such account: 99\r\n')
    expect(c('TRANSFER', '0', '1', '-5')).toBe('-ERR amount must be a positive integer\r\n')
    expect(c('TRANSFER', '0', '1', '0')).toBe('-ERR amount must be a positive integer\r\n')
    expect(c('BALANCE', 'x')).toBe('-ERR no such account: x\r\n')
    expect(c('TOTAL')).toBe(`:${TOTAL}\r\n`)
    expect(c('FTREQ', 'c1', '1', 'TRANSFER', '1', '2', '50')).toBe('*2\r\n:1\r\n+OK\r\n')
    expect(c('FTREQ', 'c1', '1', 'TRANSFER', '1', '2', '50')).toBe('*2\r\n:1\r\n+OK\r\n')
    expect(c('BALANCE', '2')).toBe(':1050\r\n')
    expect(c('SET', 'a', 'b')).toMatch(/^-ERR unknown command 'SET'/)
  })

  it('keeps the total under random transfers and timer moves, on primary and backup', () => {
    for (const mode of ['rsm', 'state-transfer'] as const) {
      const rig = new Rig('bank', { mode, seed: 23 })
      rig.boot()
      const e = rig.entropy
      let moved = false
      for (let i = 0; i < 400; i++) {
        if (e.below(2) === 0) {
          const before = balances(rig)
          rig.fire(BANK_MOVE_TIMER)
          expect(rig.timers.get(BANK_MOVE_TIMER)).toBe(BANK_MOVE_MS) // re-armed
          if (balances(rig).some((b, j) => b !== before[j])) moved = true
        } else {
          rig.cmd('t:' + e.below(4), 'TRANSFER', String(e.below(8)), String(e.below(8)), String(e.below(1500)))
        }
        const all = balances(rig)
        expect(all.reduce((a, b) => a + b, 0)).toBe(TOTAL)
        expect(all.every((b) => b >= 0)).toBe(true)
      }
      expect(moved).toBe(true)
      expect(parse(rig.cmd('t:0', 'INFO'))).toMatch(/moves:\d+/)
    }
  })

  it('persists its balances in block 0 and recovers them', () => {
    const rig = new Rig('bank', { seed: 4 })
    rig.boot()
    rig.cmd('t:1', 'TRANSFER', '3', '4', '123')
    rig.fire(BANK_MOVE_TIMER)
    const before = balances(rig)
    expect(latin1(rig.disk.get(0)!)).toBe(`FTBANK1 ${BANK_ACCOUNTS} ${before.join(' ')}\n`)
    const fresh = new Rig('bank', { disk: rig.disk, seed: 5 })
    fresh.boot()
    expect(balances(fresh)).toEqual(before)
    expect(fresh.primary.pendingIo()).toEqual([{ t: 'timer-set', id: BANK_MOVE_TIMER, ms: BANK_MOVE_MS }])
  })

  it('opens afresh on a disk it cannot read', () => {
    const rig = new Rig('bank', { disk: new Map([[0, bytes('FTBANK1 3 1 2\n')]]) })
    rig.boot()
    expect(balances(rig)).toEqual(Array(BANK_ACCOUNTS).fill(BANK_INITIAL_BALANCE))
  })
})
