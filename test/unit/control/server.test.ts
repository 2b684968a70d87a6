import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { EventRing } from '../../../agent/control/events.js'
import { ControlServer } from '../../../agent/control/server.js'
import { controlClient, type TestControlClient } from './control-client.js'

const token = randomBytes(32).toString('hex')
const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function start(ring = new EventRing(100)) {
  const problems: string[] = []
  const server = await ControlServer.start({ token, port: 0, ring, hello: () => ({ id: 'a' }), onProblem: (p) => problems.push(p), authTimeoutMs: 200 })
  cleanups.push(() => server.close())
  return { server, ring, problems }
}

async function client(port: number, t: string | null = token): Promise<TestControlClient> {
  const c = await controlClient(port, t)
  cleanups.push(() => c.close())
  return c
}

describe('EventRing', () => {
  it('numbers events and keeps only the newest `capacity`, counting what was missed', () => {
    const ring = new EventRing(3, () => 42)
    for (let i = 1; i <= 5; i++) ring.emit('tick', { i })
    expect(ring.lastSeq).toBe(5)
    expect(ring.since(0)).toEqual({ events: [3, 4, 5].map((seq) => ({ seq, ts: 42, type: 'tick', data: { i: seq } })), missed: 2 })
    expect(ring.since(4).events.map((e) => e.seq)).toEqual([5])
    expect(ring.since(4).missed).toBe(0)
    expect(ring.since(9).events).toEqual([])
  })
})

describe('control server', () => {
  it('listens on loopback only', async () => {
    const { server } = await start()
    const c = await client(server.port)
    expect(c.socket.remoteAddress).toBe('127.0.0.1')
  })

  it('refuses a wrong token with a clear message and closes', async () => {
    const { server, problems } = await start()
    const c = await client(server.port, 'f'.repeat(64))
    const refusal = await c.waitFor((m) => m.t === 'res')
    expect(refusal).toMatchObject({ ok: false, error: expect.stringMatching(/authentication failed/) })
    await c.closed
    expect(problems.join()).toMatch(/wrong token/)
    expect(problems.join()).not.toContain(token)
  })

  it('refuses a first line that is not an auth, and ignores anything after it', async () => {
    const { server } = await start()
    const c = await client(server.port, null)
    c.sendLine(JSON.stringify({ id: 1, t: 'hello' }))
    c.sendLine(JSON.stringify({ t: 'auth', token }))
    await c.closed
    expect(c.messages).toHaveLength(1)
    expect(c.messages[0]).toMatchObject({ ok: false })
  })

  it('closes a connection that never authenticates', async () => {
    const { server, problems } = await start()
    const c = await client(server.port, null)
    await c.closed
    expect(problems.join()).toMatch(/did not authenticate/)
  })

  it('answers hello, dispatches to registered handlers by id, and reports handler errors', async () => {
    const { server } = await start()
    server.handle('status', () => ({ role: 'idle' }))
    server.handle('heal', async (req) => {
      throw new Error(`no fault ${req.id}`)
    })
    const c = await client(server.port)
    expect(await c.request({ t: 'hello' })).toMatchObject({ ok: true, result: { version: 1, id: 'a' } })
    expect(await c.request({ t: 'status' })).toMatchObject({ ok: true, result: { role: 'idle' } })
    expect(await c.request({ t: 'heal', faultId: 'cut-1' })).toMatchObject({ ok: false, error: 'no fault cut-1' })
    expect(await c.request({ t: 'heal' })).toMatchObject({ ok: false, error: expect.stringMatching(/heal\.faultId/) })
    expect(await c.request({ t: 'melt' })).toMatchObject({ ok: false, error: expect.stringMatching(/unknown request type "melt"/) })
  })

  it('answers malformed lines with an error and keeps the connection', async () => {
    const { server } = await start()
    const c = await client(server.port)
    c.sendLine('{nope')
    expect(await c.waitFor((m) => m.t === 'res' && m.id === 0)).toMatchObject({ ok: false, error: expect.stringMatching(/not valid JSON/) })
    c.sendLine('{"t":"hello"}')
    expect(await c.waitFor((m) => m.t === 'res' && !m.ok && /numeric id/.test(m.error))).toBeTruthy()
    expect(await c.request({ t: 'hello' })).toMatchObject({ ok: true })
  })

  it('closes a connection that sends a line over 1 MiB', async () => {
    const { server, problems } = await start()
    const c = await client(server.port)
    c.socket.write('x'.repeat(1024 * 1024 + 10))
    await c.closed
    expect(problems.join()).toMatch(/over 1048576 bytes/)
  })

  it('streams events from the ring and lets a restarted console resume from its last seq', async () => {
    const { server, ring } = await start()
    ring.emit('boot', {})
    ring.emit('go-live', { gen: 2 })
    const first = await client(server.port)
    expect(await first.request({ t: 'subscribe', since: 0 })).toMatchObject({ ok: true, result: { first: 1, last: 2, missed: 0 } })
    await first.waitFor((m) => m.t === 'event' && m.ev.seq === 2)
    ring.emit('tas', { won: true })
    await first.waitFor((m) => m.t === 'event' && m.ev.seq === 3)
    expect(first.events.map((e) => e.type)).toEqual(['boot', 'go-live', 'tas'])
    first.close()
    await first.closed
    ring.emit('while-away', {})
    const second = await client(server.port)
    expect(await second.request({ t: 'subscribe', since: 3 })).toMatchObject({ ok: true, result: { first: 4, last: 4, missed: 0 } })
    ring.emit('live', {})
    await second.waitFor((m) => m.t === 'event' && m.ev.seq === 5)
    expect(second.events.map((e) => [e.seq, e.type])).toEqual([
      [4, 'while-away'],
      [5, 'live']
    ])
  })

  it('tells a subscriber how many events it missed when the ring wrapped', async () => {
    const { server, ring } = await start(new EventRing(2))
    for (let i = 0; i < 5; i++) ring.emit('e', { i })
    const c = await client(server.port)
    expect(await c.request({ t: 'subscribe', since: 1 })).toMatchObject({ result: { first: 4, last: 5, missed: 2 } })
    expect(await c.request({ t: 'subscribe', since: -1 })).toMatchObject({ ok: false, error: expect.stringMatching(/since/) })
  })

  it('refuses to let a handler replace subscribe', async () => {
    const { server } = await start()
    expect(() => server.handle('subscribe', () => null)).toThrow(/served by the control server/)
  })
})
