import { describe, expect, it } from 'vitest'
import { Memory } from '../../../agent/vmm/memory.js'

/** The hash a fresh memory gives the same pages, written once each in a fixed order. */
function freshHash(pages: Map<string, string>): string {
  const m = new Memory(1 << 30)
  for (const [k, v] of [...pages].sort((a, b) => (a[0] < b[0] ? -1 : 1))) m.set(k, v)
  return m.hash()
}

/** xorshift32, so a failing sequence replays */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1
  return (n) => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x % n
  }
}

describe('memory state hash (settled lazily)', () => {
  it('depends only on the pages, whatever writes, deletes, rollbacks and hash() calls came in between', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed)
      const m = new Memory(1 << 30)
      const model = new Map<string, string>()
      m.beginInput()
      let marks: { mark: number; model: Map<string, string> }[] = []
      for (let i = 0; i < 400; i++) {
        const key = 'k' + r(12)
        switch (r(7)) {
          case 0:
          case 1: {
            // short values and values past the size whose hash is cached
            const v = 'v'.repeat(r(3) === 0 ? 64 + r(200) : r(20)) + i
            m.set(key, v)
            model.set(key, v)
            break
          }
          case 2: {
            // appending to a page, as a log buffer does
            const v = (m.get(key) ?? '') + 'x' + i
            m.set(key, v)
            model.set(key, v)
            break
          }
          case 3:
            m.delete(key)
            model.delete(key)
            break
          case 4:
            expect(m.hash(), `seed ${seed} step ${i}`).toBe(freshHash(model))
            break
          case 5:
            marks.push({ mark: m.mark(), model: new Map(model) })
            break
          case 6: {
            const back = marks.pop()
            if (!back) break
            m.rollback(back.mark)
            model.clear()
            for (const [k, v] of back.model) model.set(k, v)
            break
          }
        }
        if (r(50) === 0) {
          m.beginInput()
          marks = []
        }
      }
      expect(m.hash(), `seed ${seed} at the end`).toBe(freshHash(model))
    }
  })

  it('a page appended to many times between two hashes hashes like the page written once', () => {
    const m = new Memory(1 << 30)
    m.set('other', 'o')
    const before = m.hash()
    let log = ''
    for (let i = 0; i < 2000; i++) {
      log += `S${i}:${'k' + i}3:xxx`
      m.set('log', log)
    }
    expect(m.hash()).toBe(
      freshHash(
        new Map([
          ['other', 'o'],
          ['log', log]
        ])
      )
    )
    m.delete('log')
    expect(m.hash()).toBe(before)
  })

  it('stays right when more pages are written between two hashes than it leaves stale', () => {
    const m = new Memory(1 << 30)
    const model = new Map<string, string>()
    for (let i = 0; i < 70_000; i++) {
      m.set('key:' + i, 'v' + (i % 97))
      model.set('key:' + i, 'v' + (i % 97))
    }
    for (let i = 0; i < 70_000; i += 3) {
      m.set('key:' + i, 'w')
      model.set('key:' + i, 'w')
    }
    expect(m.hash()).toBe(freshHash(model))
  })
})
