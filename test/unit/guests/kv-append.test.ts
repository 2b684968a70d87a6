// The kv guest appends its log records at the offset where the log's last block ends instead
// of rewriting that block: the disk must hold byte for byte what rewriting it whole left
// (each block exactly its slice of the log), so disks written before and after boot alike.
// The harness's disk applies an append only where the block ends (as the disk server does).
import { describe, expect, it } from 'vitest'
import { BLOCK_SIZE } from '../../../agent/guests/kv.js'
import type { Output } from '../../../agent/vmm/types.js'
import { Rig, bytes, latin1 } from '../vmm/harness.js'

const BS = BLOCK_SIZE

/** The log as the disk holds it: the superblock's length of the blocks' bytes from block 1 on. */
function logOf(disk: Map<number, Uint8Array>): { len: number; log: string } {
  const m = /^FTKV1 (\d+)\n$/.exec(latin1(disk.get(0) ?? new Uint8Array(0)))
  if (!m) throw new Error('no kv superblock on the disk')
  const len = Number(m[1])
  let log = ''
  for (let b = 1; b <= Math.ceil(len / BS); b++) log += latin1(disk.get(b) ?? new Uint8Array(0))
  return { len, log }
}

/** What rewriting the last block whole leaves: every block of the log full, the last one exactly the rest. */
function expectWholeBlockLayout(disk: Map<number, Uint8Array>): void {
  const { len, log } = logOf(disk)
  expect(log.length, 'the blocks hold exactly the log, no byte past its end').toBe(len)
  for (let b = 1; b <= Math.ceil(len / BS); b++) expect(disk.get(b)!.length, `length of block ${b}`).toBe(Math.min(BS, len - (b - 1) * BS))
}

function writes(outputs: Output[]): Extract<Output, { t: 'disk-write' }>[] {
  return outputs.filter((o): o is Extract<Output, { t: 'disk-write' }> => o.t === 'disk-write')
}

describe('kv log appends', () => {
  it('send only the new records, at the offset where the last block ends, and the superblock whole', () => {
    for (const mode of ['rsm', 'state-transfer'] as const) {
      const rig = new Rig('kv', { mode })
      rig.boot()
      rig.cmd('t:1', 'SET', 'a', '1')
      const r = rig.step({ t: 'data', conn: 't:1', data: bytes('*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$2\r\nxy\r\n') })
      const w = writes(r.outputs)
      expect(w.map((o) => [o.block, o.offset, latin1(o.data)])).toEqual([
        [1, 7, 'S1:b2:xy'],
        [0, undefined, 'FTKV1 15\n']
      ])
      if (mode === 'state-transfer') {
        // the entry carries no copy of the block: the log's tail is not a memory page any more
        const body = r.body as Extract<typeof r.body, { kind: 'state' }>
        expect(body.pages.some(([k]) => k === 'g:kv:tail')).toBe(false)
      }
    }
  })

  it('leave the disk as whole-block rewrites did, across block boundaries, big and binary values, DEL and FLUSHALL', () => {
    const rig = new Rig('kv', { seed: 9 })
    rig.boot()
    const e = rig.entropy
    for (let i = 0; i < 400; i++) {
      const size = [0, 1, 3, 40, 700, 3000, 5000, 9000][e.below(8)]
      let v = ''
      for (let j = 0; j < size; j++) v += String.fromCharCode(e.below(256))
      const key = `k${e.below(30)}`
      if (i === 250) rig.cmd('t:1', 'FLUSHALL')
      else if (e.below(6) === 0) rig.cmd('t:1', 'DEL', key)
      else rig.cmd('t:1', 'SET', key, bytes(v))
      expectWholeBlockLayout(rig.disk)
    }
    // and it boots: a fresh guest on this disk holds the same keys
    const fresh = new Rig('kv', { disk: rig.disk, seed: 2 })
    fresh.boot()
    for (let i = 0; i < 30; i++) expect(fresh.cmd('t:1', 'GET', `k${i}`)).toBe(rig.cmd('t:1', 'GET', `k${i}`))
  })

  it('after a boot from disk, rewrite the last block whole once (it may run past the log), then append again', () => {
    const rig = new Rig('kv')
    rig.boot()
    rig.cmd('t:1', 'SET', 'a', '1')
    rig.cmd('t:1', 'SET', 'b', '2')
    const disk = new Map(rig.disk)
    // records past the superblock's length: a write whose superblock never landed, then both replicas died
    disk.set(1, bytes('S1:a1:1S1:b1:2S1:c1:3'))
    const fresh = new Rig('kv', { disk })
    fresh.boot()
    const set = (key: string, value: string): Output[] => {
      const outs = fresh.step({ t: 'data', conn: 't:1', data: bytes(`*3\r\n$3\r\nSET\r\n$1\r\n${key}\r\n$1\r\n${value}\r\n`) }).outputs
      for (const o of outs) if (o.t === 'disk-sync') fresh.step({ t: 'disk-synced', tag: o.tag })
      return outs
    }
    const first = writes(set('d', '4'))
    expect(first.map((o) => [o.block, o.offset, latin1(o.data)])).toEqual([
      [1, undefined, 'S1:a1:1S1:b1:2S1:d1:4'],
      [0, undefined, 'FTKV1 21\n']
    ])
    const next = writes(set('e', '5'))
    expect(next[0]).toMatchObject({ block: 1, offset: 21 })
    expectWholeBlockLayout(fresh.disk)
    expect(fresh.cmd('t:1', 'MGET', 'a', 'b', 'c', 'd', 'e')).toBe('*5\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n$1\r\n4\r\n$1\r\n5\r\n')
  })
})
