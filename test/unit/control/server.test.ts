import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { EventRing } from '../../../agent/control/events.js'
import { Duplex } from 'node:stream'
import type { ControlMessage } from '../../../agent/control/protocol.js'
import { ControlServer, REPLAY_PAUSE_BYTES, REPLAY_SLICE_EVENTS } from '../../../agent/control/server.js'
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

/**
 * A control connection inside this process (ControlServer.attach): what the server writes, parsed, and in which turn of
 * the event loop each write came (a setImmediate loop counts the turns). With holdWrites, writes are not completed
 * until release(), as a subscriber that does not read.
 */
function inProcess(opts: { holdWrites?: boolean } = {}) {
  const messages: ControlMessage[] = []
  const writes: { turn: number; events: number }[] = []
  const held: (() => void)[] = []
  let holding = opts.holdWrites ?? false
  let turn = 0
  let counting = true
  const count = () => {
    turn++
    if (counting) setImmediate(count)
  }
  setImmediate(count)
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, done) {
      const lines = chunk
        .toString('utf8')
        .split('\n')
        .filter((l) => l.length > 0)
      const parsed = lines.map((l) => JSON.parse(l) as ControlMessage)
      messages.push(...parsed)
      writes.push({ turn, events: parsed.filter((m) => m.t === 'event').length })
      if (holding) held.push(done)
      else done()
    }
  })
  return {
    stream,
    messages,
    writes,
    send: (m: Record<string, unknown>) => stream.push(JSON.stringify(m) + '\n'),
    async until(pred: (ms: ControlMessage[]) => boolean): Promise<ControlMessage[]> {
      for (let i = 0; i < 20_000 && !pred(messages); i++) await new Promise((r) => setTimeout(r, 1))
      if (!pred(messages)) throw new Error(`in-process control connection: condition not met after ${messages.length} messages`)
      return messages
    },
    release() {
      holding = false
      while (held.length) held.shift()!()
    },
    stop() {
      counting = false
      stream.destroy()
    }
  }
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

  it('replays a full ring a slice per event-loop turn, in order, with what was emitted meanwhile after it', async () => {
    // the agent's loop also runs the replica: a whole ring replayed in one piece held it 50 ms, and a peer took that for a death
    const ring = new EventRing()
    for (let i = 0; i < ring.capacity; i++) ring.emit('telemetry', { k: 'entries', from: i, to: i + 9, kinds: { batch: 9 } })
    const conn = inProcess()
    new ControlServer({ token, port: 0, ring }).attach(conn.stream, 'test')
    conn.send({ t: 'auth', token })
    conn.send({ t: 'subscribe', since: 0, id: 1 })
    await conn.until((ms) => ms.some((m) => m.t === 'res'))
    expect(conn.messages[0]).toMatchObject({ t: 'res', id: 1, ok: true, result: { first: 1, last: ring.capacity, missed: 0 } })
    // events come while the replay is under way: they follow it, in the ring's order
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setImmediate(r))
      ring.emit('during', { i })
    }
    await conn.until((ms) => ms.filter((m) => m.t === 'event').length === ring.capacity + 3)
    ring.emit('after', {})
    const events = (await conn.until((ms) => ms.filter((m) => m.t === 'event').length === ring.capacity + 4)).flatMap((m) => (m.t === 'event' ? [m.ev] : []))
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: ring.capacity + 4 }, (_, i) => i + 1))
    expect(events.slice(-4).map((e) => e.type)).toEqual(['during', 'during', 'during', 'after'])
    // no turn of the loop wrote more than a slice
    const perTurn = new Map<number, number>()
    for (const w of conn.writes) perTurn.set(w.turn, (perTurn.get(w.turn) ?? 0) + w.events)
    expect(REPLAY_SLICE_EVENTS).toBeLessThanOrEqual(500)
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(REPLAY_SLICE_EVENTS)
    expect(perTurn.size).toBeGreaterThanOrEqual(ring.capacity / REPLAY_SLICE_EVENTS)
    conn.stop()
  })

  it('holds the replay while the subscriber reads slowly, and goes on when it has read', async () => {
    const ring = new EventRing()
    const big = 'x'.repeat(1000)
    for (let i = 0; i < ring.capacity; i++) ring.emit('telemetry', { big })
    const conn = inProcess({ holdWrites: true })
    new ControlServer({ token, port: 0, ring }).attach(conn.stream, 'test')
    conn.send({ t: 'auth', token })
    conn.send({ t: 'subscribe', since: 0, id: 1 })
    await conn.until((ms) => ms.some((m) => m.t === 'res'))
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r))
    // 10 MB of events, but only REPLAY_PAUSE_BYTES and the slice that crossed it wait in the stream
    const waiting = conn.stream.writableLength
    expect(waiting).toBeGreaterThan(REPLAY_PAUSE_BYTES)
    expect(waiting).toBeLessThan(REPLAY_PAUSE_BYTES + REPLAY_SLICE_EVENTS * 1100)
    conn.release()
    const all = await conn.until((ms) => ms.filter((m) => m.t === 'event').length === ring.capacity)
    expect(all.filter((m) => m.t === 'event').map((m) => (m.t === 'event' ? m.ev.seq : 0))).toEqual(Array.from({ length: ring.capacity }, (_, i) => i + 1))
    conn.stop()
  })

  it('refuses to let a handler replace subscribe', async () => {
    const { server } = await start()
    expect(() => server.handle('subscribe', () => null)).toThrow(/served by the control server/)
  })
})
