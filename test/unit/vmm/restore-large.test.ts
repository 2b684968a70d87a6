// Restoring a large guest: memory loads a snapshot's pages without a guest write's undo and dirty bookkeeping,
// and the VMM takes a snapshot a part at a time (a joining replica loads each part as it arrives), to the same
// state and hash as a whole restore.
import { describe, expect, it } from 'vitest'
import { encodeCommand } from '../../../agent/guests/resp.js'
import { Memory } from '../../../agent/vmm/memory.js'
import { createVmm } from '../../../agent/vmm/vmm.js'
import type { PageWrite } from '../../../agent/vmm/types.js'
import { fixedEntropy } from '../replica/harness.js'

const pagesOf = (n: number): PageWrite[] => Array.from({ length: n }, (_, i) => [`g:kv:d:key:${i}`, i % 97 === 0 ? 'x'.repeat(200 + i) : `v${i}`])

describe('memory load', () => {
  it('gives the hash that the same pages written one by one give, and leaves nothing to roll back or ship as dirty', () => {
    const pages = pagesOf(5000)
    const written = new Memory(1 << 30)
    for (const [k, v] of pages) written.set(k, v!)
    const loaded = new Memory(1 << 30)
    loaded.load(pages.slice(0, 2000))
    loaded.load(pages.slice(2000))
    expect(loaded.hash()).toBe(written.hash())
    expect(loaded.sizeBytes()).toBe(written.sizeBytes())
    expect(loaded.dirty()).toEqual([])
    loaded.rollback(0)
    expect(loaded.get('g:kv:d:key:4999')).toBe('v4999')
  })

  it('replaces a page already there (a stale one too) and deletes a null page, keeping hash and size right', () => {
    const m = new Memory(1 << 20)
    m.set('a', 'old value of a, long enough to have its hash cached: ' + 'z'.repeat(80))
    m.set('b', 'b')
    m.hash()
    m.set('a', 'stale since the last hash() ' + 'y'.repeat(80))
    m.load([
      ['a', 'new'],
      ['b', null],
      ['c', 'c']
    ])
    const fresh = new Memory(1 << 20)
    fresh.set('a', 'new')
    fresh.set('c', 'c')
    expect(m.hash()).toBe(fresh.hash())
    expect(m.sizeBytes()).toBe(fresh.sizeBytes())
    expect(m.has('b')).toBe(false)
  })

  it('refuses a page that is not a string pair before loading anything, and pages beyond the bound', () => {
    const m = new Memory(100)
    expect(() => m.load([['a', 'b'], [7, 'x'] as unknown as PageWrite])).toThrow(/each page must be \[key: string/)
    expect(m.has('a')).toBe(false)
    expect(() => m.load([['k', 'v'.repeat(200)]])).toThrow(/out of guest memory/)
  })
})

describe('vmm restore in parts', () => {
  function filled(keys: number) {
    const vmm = createVmm({ guest: 'kv', mode: 'rsm', entropy: fixedEntropy() })
    const cmds: Uint8Array[] = []
    for (let i = 0; i < keys; i++) cmds.push(encodeCommand(['SET', `key:${i}`, `value-${i}`]))
    vmm.execute({ t: 'open', conn: 't:1' })
    // pipelined, as the scale sweep fills the guest
    for (let at = 0; at < cmds.length; at += 500) vmm.execute({ t: 'data', conn: 't:1', data: Buffer.concat(cmds.slice(at, at + 500)) })
    return vmm
  }

  it('a snapshot of 20,000 keys loaded part by part has the primary’s hash and answers as it does', () => {
    const primary = filled(20_000)
    const snap = primary.snapshot()
    const joining = createVmm({ guest: 'kv', mode: 'rsm', entropy: fixedEntropy() })
    const loader = joining.restoreInParts!('kv')
    for (let at = 0; at < snap.pages.length; at += 1500) loader.pages(snap.pages.slice(at, at + 1500))
    loader.finish(snap.hash)
    expect(joining.stateHash()).toBe(primary.stateHash())
    const get = (v: typeof primary) => v.execute({ t: 'data', conn: 't:1', data: encodeCommand(['GET', 'key:19999']) }).outputs
    expect(get(joining)).toEqual(get(primary))
  })

  it('refuses a snapshot of another guest, and one whose pages do not hash to what it says', () => {
    const joining = createVmm({ guest: 'kv', mode: 'rsm', entropy: fixedEntropy() })
    expect(() => joining.restoreInParts!('bank')).toThrow(/snapshot is of guest 'bank'/)
    const snap = filled(10).snapshot()
    const loader = joining.restoreInParts!('kv')
    loader.pages(snap.pages.slice(1))
    expect(() => loader.finish(snap.hash)).toThrow(/hash to .* but the snapshot says/)
  })
})
