// nic.send and nic.close with afterSync: the VMM keeps the output with its disk barrier, in memory pages, and sends it
// when the barrier (or a later one) completes, on the primary and on a backup alike; in state transfer the
// completion's entry names the barrier and the backup releases what it holds itself.
import { describe, expect, it } from 'vitest'
import type { GuestDefinition } from '../../../agent/guests/api.js'
import { Memory } from '../../../agent/vmm/memory.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import type { Output, ReplicationMode } from '../../../agent/vmm/types.js'
import { Rig, latin1, seeded } from './harness.js'

/**
 * `sync` issues a barrier and says its tag; `hold <tag> <text>` sends text after that barrier; `close <tag>` closes
 * after it; anything else is echoed at once.
 */
const holder: GuestDefinition = {
  name: 'holder',
  description: 'holds replies for disk barriers on request',
  factory: function holder(dev) {
    return {
      data(conn, what) {
        const w = what.split(' ')
        if (w[0] === 'sync') {
          dev.disk.write(1, 'x')
          dev.nic.send(conn, 'tag ' + dev.disk.sync() + ';')
        } else if (w[0] === 'hold') dev.nic.send(conn, w.slice(2).join(' '), Number(w[1]))
        else if (w[0] === 'close') dev.nic.close(conn, Number(w[1]))
        else dev.nic.send(conn, what)
      },
      diskSynced(tag) {
        dev.mem.set('synced', String(tag))
      }
    }
  }
}

/** A barrier, its completion left to the test (Rig.raw would complete it at once). */
function issue(r: Rig, conn: string): number {
  const outs = r.step({ t: 'data', conn, data: Buffer.from('sync') }).outputs
  const reply = outs.find((o) => o.t === 'reply')
  return Number(/tag (\d+);/.exec(reply && reply.t === 'reply' ? latin1(reply.data) : '')![1])
}

/** a page of the guest's memory on the primary (snapshot() starts a fresh realm over the same pages: harmless here) */
const guestPage = (r: Rig, key: string): string | null | undefined => r.primary.snapshot().pages.find(([k]) => k === 'g:' + key)?.[1]

const shown = (outs: Output[]): string[] => outs.map((o) => (o.t === 'reply' ? `${o.conn} ${latin1(o.data)}` : o.t === 'close' ? `${o.conn} closed` : o.t))

describe.each<ReplicationMode>(['state-transfer', 'rsm'])('outputs held for a disk barrier (%s)', (mode) => {
  function rig() {
    const r = new Rig('holder', { definition: holder, mode })
    r.step({ t: 'boot' })
    return r
  }
  const tagOf = (r: Rig, conn: string): number => issue(r, conn)

  it('sends a held reply when its barrier completes, before the guest hears of it, and only to an open connection', () => {
    const r = rig()
    const t = tagOf(r, 't:1')
    expect(shown(r.step({ t: 'data', conn: 't:1', data: Buffer.from(`hold ${t} first`) }).outputs)).toEqual([])
    expect(shown(r.step({ t: 'data', conn: 't:2', data: Buffer.from(`hold ${t} gone`) }).outputs)).toEqual([])
    r.step({ t: 'close', conn: 't:2' })
    // Rig.step replays every entry on a backup and checks its outputs and state hash equal the primary's
    expect(shown(r.step({ t: 'disk-synced', tag: t }).outputs)).toEqual(['t:1 first'])
    expect(r.primary.pendingSyncs!()).toEqual([])
    // a completion that comes twice releases nothing more
    expect(r.step({ t: 'disk-synced', tag: t }).outputs).toEqual([])
    // a barrier that completed: a reply held for it leaves at once
    expect(shown(r.step({ t: 'data', conn: 't:1', data: Buffer.from(`hold ${t} late`) }).outputs)).toEqual(['t:1 late'])
  })

  it('a later barrier releases what the earlier ones hold first, in order, and completes them: the guest hears of the newest', () => {
    const r = rig()
    const t1 = tagOf(r, 't:1')
    r.step({ t: 'data', conn: 't:1', data: Buffer.from(`hold ${t1} one`) })
    const t2 = tagOf(r, 't:1')
    r.step({ t: 'data', conn: 't:1', data: Buffer.from(`hold ${t2} two`) })
    r.step({ t: 'data', conn: 't:1', data: Buffer.from(`hold ${t1} three`) })
    expect(shown(r.step({ t: 'disk-synced', tag: t2 }).outputs)).toEqual(['t:1 one', 't:1 three', 't:1 two'])
    expect(r.primary.pendingSyncs!()).toEqual([])
    expect(guestPage(r, 'synced')).toBe(String(t2))
    // the earlier barrier's own completion (a re-issued one, late) finds nothing pending: the guest hears nothing more
    expect(r.step({ t: 'disk-synced', tag: t1 }).outputs).toEqual([])
    expect(guestPage(r, 'synced')).toBe(String(t2))
    // and a reply held for it now leaves at once
    expect(shown(r.step({ t: 'data', conn: 't:1', data: Buffer.from(`hold ${t1} four`) }).outputs)).toEqual(['t:1 four'])
  })

  it('a held close leaves after the replies held before it; the connection stays open until then', () => {
    const r = rig()
    const t = tagOf(r, 't:1')
    r.step({ t: 'data', conn: 't:1', data: Buffer.from(`hold ${t} bye`) })
    expect(r.step({ t: 'data', conn: 't:1', data: Buffer.from(`close ${t}`) }).outputs).toEqual([])
    expect(r.primary.isOpen('t:1')).toBe(true)
    expect(shown(r.step({ t: 'data', conn: 't:1', data: Buffer.from('still here') }).outputs)).toEqual(['t:1 still here'])
    expect(shown(r.step({ t: 'disk-synced', tag: t }).outputs)).toEqual(['t:1 bye', 't:1 closed'])
    expect(r.primary.isOpen('t:1')).toBe(false)
  })

  it('a barrier that completes on a replica restored from a snapshot releases what the snapshot held', () => {
    const r = rig()
    const t = tagOf(r, 't:1')
    r.step({ t: 'data', conn: 't:1', data: Buffer.from(`hold ${t} kept`) })
    const other = createVmm({ guest: 'holder', definition: holder, mode, entropy: seeded(9) })
    other.restore(r.primary.snapshot())
    expect(other.pendingSyncs!()).toEqual([t])
    expect(shown(other.execute({ t: 'disk-synced', tag: t }).outputs)).toEqual(['t:1 kept'])
  })
})

describe('state transfer: the completion of a barrier', () => {
  it('names the barrier, lists none of the held outputs, and changes only the pages the guest changed after the release', () => {
    const r = new Rig('holder', { definition: holder, mode: 'state-transfer' })
    r.step({ t: 'boot' })
    const t = issue(r, 't:1')
    r.step({ t: 'data', conn: 't:1', data: Buffer.from(`hold ${t} ${'r'.repeat(100)}`) })
    const done = r.step({ t: 'disk-synced', tag: t })
    expect(shown(done.outputs)).toEqual([`t:1 ${'r'.repeat(100)}`])
    expect(done.body).toEqual({ kind: 'state', synced: t, pages: [['g:synced', String(t)]], outputs: [], io: [] })
  })

  it('a backup that does not hold the barrier refuses the completion as a divergence, its state unchanged', () => {
    const vmm = createVmm({ guest: 'holder', definition: holder, mode: 'state-transfer', entropy: seeded(1) })
    vmm.replay({ kind: 'state', pages: [['g:a', '1']], outputs: [], io: [] })
    const before = vmm.stateHash()
    expect(() => vmm.replay({ kind: 'state', pages: [['g:a', '2']], outputs: [], io: [], synced: 7 })).toThrow(/disk barrier 7/)
    // and one whose diff does not fit after the release leaves nothing of the release behind
    vmm.replay({ kind: 'state', pages: [['vmm:sync:8', 's3:t:12:hi']], outputs: [], io: [] })
    const held = vmm.stateHash()
    expect(() => vmm.replay({ kind: 'state', pages: [], diffs: [['g:a', 5, 0, 'x']], outputs: [], io: [], synced: 8 })).toThrow(/does not fit/)
    expect(vmm.stateHash()).toBe(held)
    expect(held).not.toBe(before)
  })
})

describe('memory: an indexed prefix', () => {
  it('lists the same keys as a scan, through writes, deletes, rollbacks, clear and a snapshot load', () => {
    const indexed = new Memory(1 << 20, ['vmm:sync:'])
    const plain = new Memory(1 << 20)
    const both = (f: (m: Memory) => void) => [indexed, plain].forEach(f)
    const same = () => expect(indexed.keys('vmm:sync:')).toEqual(plain.keys('vmm:sync:'))
    both((m) => {
      m.beginInput()
      m.set('vmm:sync:3', '')
      m.set('vmm:sync:10', 'x')
      m.set('vmm:syncx', '')
      m.set('g:vmm:sync:1', '')
    })
    same()
    expect(indexed.keys('vmm:sync:')).toEqual(['vmm:sync:10', 'vmm:sync:3'])
    both((m) => {
      const mark = m.mark()
      m.delete('vmm:sync:3')
      m.set('vmm:sync:11', '')
      m.set('vmm:sync:10', 'y')
      m.rollback(mark)
    })
    same()
    both((m) => m.delete('vmm:sync:10'))
    same()
    both((m) => m.clear())
    same()
    expect(indexed.keys('vmm:sync:')).toEqual([])
    // a restore loads pages without a guest write's bookkeeping: the index must list them all the same
    both((m) =>
      m.load([
        ['vmm:sync:4', 'a'],
        ['vmm:sync:5', ''],
        ['k', 'v']
      ])
    )
    same()
    expect(indexed.keys('vmm:sync:')).toEqual(['vmm:sync:4', 'vmm:sync:5'])
    both((m) => m.load([['vmm:sync:4', null]]))
    same()
    expect(indexed.keys('vmm:sync:')).toEqual(['vmm:sync:5'])
  })
})
