// bank: accounts with transfers; the total never changes, whatever the faults. A timer
// moves a random amount between two random accounts every second, so the clock-free
// guest still shows timer and random inputs on the logging channel.
//
// Disk: block 0 holds the whole state, "FTBANK1 <n> <balance0> … <balance n-1>\n",
// rewritten at the end of every input that changed a balance (a few bytes per account,
// so one block is plenty for the accounts a lab uses; more than fits is refused at boot).
import type { GuestDefinition, GuestFactory } from './api.js'

export const BANK_ACCOUNTS = 8
export const BANK_INITIAL_BALANCE = 1000
/** timer id and period of the random background move */
export const BANK_MOVE_TIMER = 1
export const BANK_MOVE_MS = 1000

export const bankGuest: GuestFactory = function bankGuest(dev, lib) {
  const mem = dev.mem
  const resp = lib.resp
  const ACCOUNTS = 8
  const INITIAL = 1000
  const TIMER = 1
  const PERIOD_MS = 1000
  const ACCT = 'a:'
  const STATE = 'bank:state'
  const SB_TAG = 'bank:sb'
  const DIRTY = 'bank:dirty'
  const MOVES = 'bank:moves'
  const OK = resp.simple('OK')

  const COUNT = 'bank:n'

  function n(): number {
    return Number(mem.get(COUNT) ?? '0')
  }

  function balance(i: number): number {
    return Number(mem.get(ACCT + i))
  }

  function setBalance(i: number, v: number): void {
    mem.set(ACCT + i, String(v))
    mem.set(DIRTY, '')
  }

  function account(text: string): number | null {
    if (!/^[0-9]{1,6}$/.test(text)) return null
    const i = Number(text)
    return mem.has(ACCT + i) ? i : null
  }

  function move(from: number, to: number, amount: number): string {
    const have = balance(from)
    if (have < amount) return resp.error('ERR insufficient funds: account ' + from + ' has ' + have + ', transfer needs ' + amount)
    setBalance(from, have - amount)
    setBalance(to, balance(to) + amount)
    return OK
  }

  function flush(): void {
    if (!mem.has(DIRTY)) return
    mem.delete(DIRTY)
    const count = n()
    const parts = ['FTBANK1', String(count)]
    for (let i = 0; i < count; i++) parts.push(String(balance(i)))
    dev.disk.write(0, parts.join(' ') + '\n')
  }

  function command(_conn: string, args: string[]): string | null {
    const name = args[0].toUpperCase()
    switch (name) {
      case 'TRANSFER': {
        if (args.length !== 4) return lib.service.wrongArity(name)
        const from = account(args[1])
        const to = account(args[2])
        if (from === null || to === null) return resp.error('ERR no such account: ' + (from === null ? args[1] : args[2]))
        if (from === to) return resp.error('ERR transfer to the same account')
        if (!/^[0-9]{1,12}$/.test(args[3]) || Number(args[3]) === 0) return resp.error('ERR amount must be a positive integer')
        return move(from, to, Number(args[3]))
      }
      case 'BALANCE': {
        if (args.length !== 2) return lib.service.wrongArity(name)
        const i = account(args[1])
        return i === null ? resp.error('ERR no such account: ' + args[1]) : resp.int(balance(i))
      }
      case 'TOTAL': {
        if (args.length !== 1) return lib.service.wrongArity(name)
        let sum = 0
        for (let i = 0; i < n(); i++) sum += balance(i)
        return resp.int(sum)
      }
      case 'ACCOUNTS': {
        if (args.length !== 1) return lib.service.wrongArity(name)
        const out: string[] = []
        for (let i = 0; i < n(); i++) out.push(resp.int(balance(i)))
        return resp.array(out)
      }
    }
    return null
  }

  const svc = lib.service.create(dev, {
    name: 'bank',
    command,
    ready: () => mem.get(STATE) === 'ready',
    flush,
    info: () => '# Bank\r\naccounts:' + n() + '\r\nmoves:' + (mem.get(MOVES) ?? '0') + '\r\n'
  })

  function load(bytes: string): boolean {
    const m = /^FTBANK1 ([0-9]{1,4})((?: [0-9]{1,15})*)\n/.exec(bytes)
    if (m === null) return false
    const balances = m[2].trim().split(' ')
    if (Number(m[1]) === 0 || balances.length !== Number(m[1])) return false
    for (let i = 0; i < balances.length; i++) mem.set(ACCT + i, balances[i])
    mem.set(COUNT, String(balances.length))
    return true
  }

  return {
    boot() {
      if (mem.has(STATE)) return
      mem.set(STATE, 'recovering')
      mem.set(SB_TAG, String(dev.disk.read(0)))
    },
    diskRead(tag, _block, bytes) {
      if (mem.get(STATE) !== 'recovering' || mem.get(SB_TAG) !== String(tag)) return
      mem.delete(SB_TAG)
      if (!load(bytes)) {
        // an empty disk (or another guest's): open the bank afresh
        for (let i = 0; i < ACCOUNTS; i++) setBalance(i, INITIAL)
        mem.set(COUNT, String(ACCOUNTS))
      }
      mem.set(STATE, 'ready')
      dev.timer.set(TIMER, PERIOD_MS)
      svc.drain()
      flush()
    },
    timer(id) {
      if (id !== TIMER || mem.get(STATE) !== 'ready') return
      const count = n()
      if (count < 2) return
      const from = dev.random.u32() % count
      const to = (from + 1 + (dev.random.u32() % (count - 1))) % count
      const amount = dev.random.u32() % (balance(from) + 1)
      if (amount > 0) move(from, to, amount)
      mem.set(MOVES, String(Number(mem.get(MOVES) ?? '0') + 1))
      dev.timer.set(TIMER, PERIOD_MS)
      flush()
    },
    open: svc.open,
    data: svc.data,
    endInput: svc.endInput,
    close: svc.close,
    query: svc.query
  }
}

export const bank: GuestDefinition = {
  name: 'bank',
  description: `${BANK_ACCOUNTS} accounts of ${BANK_INITIAL_BALANCE}; TRANSFER, BALANCE, TOTAL, ACCOUNTS; a timer moves money every ${BANK_MOVE_MS} ms; the total is invariant`,
  factory: bankGuest
}
