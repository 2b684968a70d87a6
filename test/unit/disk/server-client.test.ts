import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { MemoryBlockStore } from '../../../agent/disk/arbiter.js'
import { DiskClient, DiskUnreachableError } from '../../../agent/disk/client.js'
import { DiskServer } from '../../../agent/disk/server.js'
import { TransportFilter } from '../../../agent/faults/filter.js'

const key = randomBytes(32)
const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function server(port = 0, store = new MemoryBlockStore()) {
  const events: [string, Record<string, unknown>][] = []
  const s = await DiskServer.start({ selfId: 'disk', key, host: '127.0.0.1', port, store, blockSize: 64, onEvent: (t, d) => events.push([t, d]) })
  cleanups.push(() => s.close())
  return { s, events }
}

function client(id: string, port: number, extra: Partial<ConstructorParameters<typeof DiskClient>[0]> = {}) {
  const c = new DiskClient({ selfId: id, key, host: '127.0.0.1', port, expectPeer: 'disk', timeoutMs: 3000, minBackoffMs: 10, maxBackoffMs: 50, ...extra })
  cleanups.push(() => c.close())
  return c
}

describe('disk server and client over loopback', () => {
  it('serves generation, writes, reads and the test-and-set, answering with the caller ids', async () => {
    const { s, events } = await server()
    const a = client('a', s.port)
    const b = client('b', s.port)
    expect(await a.request({ id: 10, op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })).toEqual({ id: 10, ok: true })
    expect(await a.request({ id: 11, op: 'write', gen: 1, from: 'a', block: 3, data: new Uint8Array([5, 6]) })).toEqual({ id: 11, ok: true })
    expect(await b.request({ id: 12, op: 'read', block: 3 })).toEqual({ id: 12, ok: true, data: new Uint8Array([5, 6]) })
    expect(await b.request({ id: 13, op: 'write', gen: 1, from: 'b', block: 3, data: new Uint8Array([0]) })).toMatchObject({
      id: 13,
      ok: false,
      error: 'fenced'
    })
    expect(await b.request({ id: 14, op: 'tas', gen: 1, from: 'b' })).toEqual({ id: 14, ok: true, winner: 'b' })
    expect(await a.request({ op: 'tas', gen: 1, from: 'a' })).toMatchObject({ ok: false, error: 'tas-lost', winner: 'b' })
    expect(await a.request({ op: 'status' })).toMatchObject({ ok: true, status: { gen: 1, live: 'b', tasWinner: 'b', writes: 1, fenced: 1 } })
    expect(events.map(([t]) => t)).toEqual(expect.arrayContaining(['disk-generation', 'disk-fenced', 'disk-tas']))
    expect(events.find(([t, d]) => t === 'disk-tas' && d.from === 'b')?.[1]).toMatchObject({ won: true, first: true })
  })

  it('refuses a request made in the name of another replica', async () => {
    const { s } = await server()
    const a = client('a', s.port)
    await a.request({ op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })
    const res = await a.request({ op: 'tas', gen: 1, from: 'b' })
    expect(res).toMatchObject({ ok: false, error: 'bad-request', message: expect.stringMatching(/authenticated as "a"/) })
    expect(s.status().tasWinner).toBeNull()
  })

  it('reports the server unreachable after the timeout when nobody listens', async () => {
    const { s } = await server()
    const port = s.port
    await s.close()
    const a = client('a', port, { timeoutMs: 100 })
    const unreachable = once(a, 'unreachable')
    await expect(a.request({ id: 7, op: 'tas', gen: 1, from: 'a' })).rejects.toThrow(DiskUnreachableError)
    const [req, message] = await unreachable
    expect(req).toMatchObject({ id: 7, op: 'tas' })
    expect(message).toMatch(/unreachable: no answer to tas \(id 7\) within 100 ms \(not connected\)/)
  })

  it('reports the server unreachable when the filter cuts the disk link', async () => {
    const { s } = await server()
    const filter = new TransportFilter()
    const a = client('a', s.port, { filter, timeoutMs: 200 })
    await a.request({ op: 'status' })
    filter.set('iso', { kind: 'isolate' })
    await expect(a.request({ op: 'status' })).rejects.toThrow(/within 200 ms/)
    filter.remove('iso')
    expect(await a.request({ op: 'status' })).toMatchObject({ ok: true })
  })

  it('sends a request made while disconnected once the server is back, and survives a server restart', async () => {
    const store = new MemoryBlockStore()
    const first = await server(0, store)
    const port = first.s.port
    const a = client('a', port)
    await a.request({ op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })
    const down = once(a, 'down')
    await first.s.close()
    await down
    const pending = a.request({ op: 'tas', gen: 1, from: 'a' })
    await server(port, store)
    expect(await pending).toMatchObject({ ok: true, winner: 'a' })
  })

  it('rejects pending requests when the client closes', async () => {
    const { s } = await server()
    await s.close()
    const a = client('a', s.port || 1)
    const p = a.request({ op: 'status' })
    a.close()
    await expect(p).rejects.toThrow(/closed before status/)
  })

  it('acknowledges a write only after the store has flushed it to stable storage', async () => {
    const log: string[] = []
    class Recording extends MemoryBlockStore {
      override write(block: number, data: Uint8Array): void {
        log.push(`write ${block}`)
        super.write(block, data)
      }
      override flush(): void {
        log.push('flush')
      }
    }
    const { s } = await server(0, new Recording())
    const a = client('a', s.port)
    await a.request({ op: 'generation', gen: 1, from: 'a', primary: 'a', backup: 'b' })
    const answers = await Promise.all(
      [1, 2].map((block) =>
        a.request({ op: 'write', gen: 1, from: 'a', block, data: new Uint8Array([block]) }).then((res) => {
          log.push(`ack ${block}`)
          return res
        })
      )
    )
    expect(answers.every((r) => r.ok)).toBe(true)
    const firstAck = log.findIndex((l) => l.startsWith('ack'))
    expect(log.slice(0, firstAck)).toEqual(expect.arrayContaining(['write 1', 'write 2', 'flush']))
    expect(log.lastIndexOf('write 2')).toBeLessThan(log.lastIndexOf('flush', firstAck))
  })
})
