import { createServer, type Server } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { freeLoopbackPorts, labPortRange } from '../../../main/lab/local-host.js'

const servers: Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))))
})

describe('local lab ports', () => {
  it('come from below the ephemeral range, where no outgoing connection can take them as its source port', () => {
    expect(labPortRange(32768)).toEqual([20000, 32768])
    expect(labPortRange(49152)).toEqual([20000, 32768])
    // a range that starts low (1024-65535 on a tuned host) leaves no room below it: a fixed block is used
    expect(labPortRange(1024)).toEqual([10000, 20000])
  })

  it('are distinct, free to listen on, and never handed out twice in one process', async () => {
    const [lo, hi] = labPortRange()
    const first = await freeLoopbackPorts(20)
    const second = await freeLoopbackPorts(20)
    const all = [...first, ...second]
    expect(new Set(all).size).toBe(40)
    for (const p of all) {
      expect(p).toBeGreaterThanOrEqual(lo)
      expect(p).toBeLessThan(hi)
    }
    for (const p of first.slice(0, 3)) {
      const s = createServer()
      servers.push(s)
      await new Promise<void>((res, rej) => {
        s.once('error', rej)
        s.listen(p, '127.0.0.1', () => res())
      })
    }
  })

  it('skip a port something already listens on', async () => {
    const [lo, hi] = labPortRange()
    // occupy a run of ports; whatever is picked must not be one of them
    const busy = new Set<number>()
    for (let p = lo + 5000; busy.size < 50 && p < hi; p++) {
      const s = createServer()
      const ok = await new Promise<boolean>((res) => {
        s.once('error', () => res(false))
        s.listen(p, '127.0.0.1', () => res(true))
      })
      if (ok) {
        servers.push(s)
        busy.add(p)
      }
    }
    const picked = await freeLoopbackPorts(5, lo + 5000)
    for (const p of picked) expect(busy.has(p)).toBe(false)
    expect(Math.min(...picked)).toBeGreaterThan(Math.max(...busy))
  })
})
