// The end-of-run disk check (sim/disk-check.ts) on the real kv guest in the real VMM: a guest
// booted from the blocks its writes left holds its keys; a lost write shows as the first key
// that differs.
import { describe, expect, it } from 'vitest'
import { MemoryBlockStore } from '../../../agent/disk/arbiter.js'
import type { GuestInput, Output, Vmm } from '../../../agent/vmm/types.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import { bootFromDisk, durablePages, firstDurableDifference, syncsEveryWrite } from '../../../sim/disk-check.js'
import { encodeCommand } from '../../../sim/resp.js'

const CONN = 't:1'

function kvVmm(): Vmm {
  let t = 1_700_000_000_000
  return createVmm({ guest: 'kv', mode: 'rsm', entropy: { now: () => t++, u32: () => 7 } })
}

/**
 * Runs the guest on `input` as a primary with a disk server would: its disk writes land in `store` (unless `lose`
 * says to drop one), and each sync completes at once, as the input 'disk-synced'.
 */
function run(vmm: Vmm, store: MemoryBlockStore, input: GuestInput, lose: (o: Extract<Output, { t: 'disk-write' }>) => boolean = () => false): void {
  const synced: number[] = []
  for (const o of vmm.execute(input).outputs) {
    if (o.t === 'disk-write' && !lose(o)) {
      if (o.offset === undefined) store.write(o.block, o.data)
      else store.writeAt(o.block, o.offset, o.data)
    }
    if (o.t === 'disk-sync') synced.push(o.tag)
  }
  for (const tag of synced) run(vmm, store, { t: 'disk-synced', tag }, lose)
}

/** A kv guest booted on an empty disk, with `commands` run on one connection. */
function served(commands: string[][]): { vmm: Vmm; store: MemoryBlockStore } {
  const vmm = kvVmm()
  const store = new MemoryBlockStore()
  bootFromDisk(vmm, store)
  run(vmm, store, { t: 'open', conn: CONN })
  for (const c of commands) run(vmm, store, { t: 'data', conn: CONN, data: encodeCommand(c) })
  return { vmm, store }
}

const WRITES = [
  ['SET', 'a', '1'],
  ['SET', 'b', 'two', 'PX', '60000'],
  ['HSET', 'h', 'f', 'v'],
  ['SET', 'c', '3'],
  ['DEL', 'a'],
  ['SET', 'd', '4']
]

describe('the end-of-run disk check', () => {
  it('finds no difference between a kv guest and a fresh one booted from the blocks its writes left', () => {
    const { vmm, store } = served(WRITES)
    const fresh = kvVmm()
    bootFromDisk(fresh, store)
    const live = vmm.snapshot().pages
    expect([...durablePages(live).keys()].sort()).toEqual(['g:k:b', 'g:k:c', 'g:k:d', 'g:k:h', 'g:x:b'])
    expect(firstDurableDifference(live, fresh.snapshot().pages)).toBeNull()
    expect(syncsEveryWrite(live)).toBe(true)
  })

  it('names the first key that differs when an acknowledged write never reached the disk', () => {
    // the superblock write of one more SET is lost, though its sync completes: the disk's log ends before it
    const { vmm, store } = served(WRITES)
    run(vmm, store, { t: 'data', conn: CONN, data: encodeCommand(['SET', 'e', '5']) }, (o) => o.block === 0)
    const fresh = kvVmm()
    bootFromDisk(fresh, store)
    expect(firstDurableDifference(vmm.snapshot().pages, fresh.snapshot().pages)).toMatch(
      /^key "e": the live guest holds "s5", the guest booted from the disk server's blocks holds nothing/
    )
  })

  it('reports an expiry time that differs as the expiry of its key', () => {
    const live: [string, string][] = [
      ['g:k:b', 'stwo'],
      ['g:x:b', '100']
    ]
    const booted: [string, string][] = [
      ['g:k:b', 'stwo'],
      ['g:x:b', '90']
    ]
    expect(firstDurableDifference(live, booted)).toMatch(/^the expiry of key "b": the live guest holds "100", the guest booted .* holds "90"/)
  })

  it('ignores what the guest keeps only in memory, and skips guests set to appendfsync no', () => {
    expect(firstDurableDifference([['g:kv:clock', '5']], [['g:kv:clock', '9']])).toBeNull()
    // and refuses to compare nothing when the VMM's page names change
    expect(() => firstDurableDifference([['k:a', 'x']], [])).toThrow(/no page under 'g:'/)
    expect(syncsEveryWrite([['g:kv:appendfsync', 'no']])).toBe(false)
  })
})
