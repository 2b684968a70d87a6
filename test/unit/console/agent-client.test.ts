import { EventEmitter, once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import type { AgentEvent } from '../../../agent/control/protocol.js'
import { AgentClient, AgentClientError, tcpConnector } from '../../../main/lab/agent-client.js'

/** A small control server: the protocol's handshake, a few requests, an event ring. */
class FakeAgent {
  readonly server: Server
  readonly sockets = new Set<Socket>()
  readonly ring: AgentEvent[] = []
  readonly subscribers = new Set<Socket>()
  readonly requests: Record<string, unknown>[] = []
  readonly subscribeSince: number[] = []
  /** requests of these types are never answered */
  silent = new Set<string>()
  readonly notes = new EventEmitter()

  constructor(readonly token: string) {
    this.server = createServer((s) => this.onSocket(s))
  }

  async listen(port = 0): Promise<number> {
    this.server.listen(port, '127.0.0.1')
    await once(this.server, 'listening')
    return (this.server.address() as { port: number }).port
  }

  emitEvent(type: string, data: Record<string, unknown> = {}): AgentEvent {
    const ev = { seq: this.ring.length + 1, ts: Date.now(), type, data }
    this.ring.push(ev)
    for (const s of this.subscribers) s.write(JSON.stringify({ t: 'event', ev }) + '\n')
    return ev
  }

  dropAll(): void {
    for (const s of this.sockets) s.destroy()
  }

  async close(): Promise<void> {
    this.dropAll()
    await new Promise<void>((r) => this.server.close(() => r()))
  }

  private onSocket(s: Socket): void {
    this.sockets.add(s)
    s.on('close', () => {
      this.sockets.delete(s)
      this.subscribers.delete(s)
    })
    s.on('error', () => {})
    let authed = false
    let buf = ''
    s.on('data', (chunk) => {
      buf += chunk.toString('utf8')
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        if (!authed) {
          if (msg.t !== 'auth' || msg.token !== this.token) {
            s.destroy()
            return
          }
          authed = true
          continue
        }
        this.requests.push(msg)
        if (this.silent.has(msg.t)) continue
        const reply = (r: object) => s.write(JSON.stringify({ t: 'res', id: msg.id, ...r }) + '\n')
        switch (msg.t) {
          case 'hello':
            reply({ ok: true, result: { id: 'b', version: 1 } })
            break
          case 'status':
            reply({ ok: true, result: { id: 'b', role: 'backup', gen: 1 } })
            break
          case 'subscribe':
            this.subscribeSince.push(msg.since)
            reply({ ok: true, result: { last: this.ring.length } })
            // resend from the start of what was asked, overlapping by one on purpose:
            // the client must drop what it has already seen
            for (const ev of this.ring.filter((e) => e.seq >= msg.since)) s.write(JSON.stringify({ t: 'event', ev }) + '\n')
            this.subscribers.add(s)
            this.notes.emit('subscribed')
            break
          case 'start':
            reply({ ok: false, error: 'replica role is not available in this agent' })
            break
          default:
            reply({ ok: true, result: null })
        }
      }
    })
  }
}

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function setup(token = 'secret', clientToken = token) {
  const agent = new FakeAgent(token)
  const port = await agent.listen()
  cleanups.push(() => agent.close())
  const client = new AgentClient({
    id: 'b',
    where: `127.0.0.1:${port}`,
    token: clientToken,
    connect: tcpConnector('127.0.0.1', port),
    requestTimeoutMs: 1000,
    backoffInitialMs: 10,
    backoffMaxMs: 50
  })
  cleanups.push(() => client.close())
  return { agent, port, client }
}

function nextEvent(client: AgentClient, count: number): Promise<AgentEvent[]> {
  return new Promise((resolve) => {
    const got: AgentEvent[] = []
    const off = client.subscribe((ev) => {
      got.push(ev)
      if (got.length === count) {
        off()
        resolve(got)
      }
    })
  })
}

describe('AgentClient', () => {
  it('authenticates with the token and answers requests by id', async () => {
    const { client, agent } = await setup()
    const [st, again] = await Promise.all([client.status(), client.status()])
    expect(st).toMatchObject({ id: 'b', role: 'backup', gen: 1 })
    expect(again).toMatchObject({ role: 'backup' })
    // the handshake hello, then two status requests with distinct ids
    const ids = agent.requests.map((r) => r.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(agent.requests.map((r) => r.t)).toEqual(['hello', 'status', 'status'])
  })

  it('says "bad token" when the agent refuses the token', async () => {
    const { client } = await setup('right', 'wrong')
    const err = await client.status().catch((e) => e)
    expect(err).toBeInstanceOf(AgentClientError)
    expect(err.code).toBe('auth')
    expect(err.message).toMatch(/^agent b: bad token/)
  })

  it('names the agent and the address when the connection is refused', async () => {
    const agent = new FakeAgent('t')
    const port = await agent.listen()
    await agent.close() // the port is now free: nothing listens there
    const client = new AgentClient({ id: 'b', where: `127.0.0.1:${port}`, token: 't', connect: tcpConnector('127.0.0.1', port) })
    cleanups.push(() => client.close())
    await expect(client.status()).rejects.toThrow(`agent b at 127.0.0.1:${port}: connection refused`)
  })

  it('fails a request the agent never answers after the timeout, and the channel stays usable', async () => {
    const { client, agent } = await setup()
    agent.silent.add('stop')
    await expect(client.stop(100)).rejects.toThrow("agent b: no answer to 'stop' within 100 ms")
    await expect(client.status()).resolves.toMatchObject({ role: 'backup' })
  })

  it("sends a fault's own id as faultId, apart from the request id", async () => {
    const { client, agent } = await setup()
    await client.fault('f7', { kind: 'isolate' }, 30_000)
    await client.heal('*')
    const [fault, heal] = agent.requests.slice(-2)
    expect(fault).toMatchObject({ t: 'fault', faultId: 'f7', fault: { kind: 'isolate' }, deadlineMs: 30_000 })
    expect(typeof fault.id).toBe('number')
    expect(heal).toMatchObject({ t: 'heal', faultId: '*' })
    expect(typeof heal.id).toBe('number')
  })

  it('turns an error answer into a rejected request that carries the agent id', async () => {
    const { client } = await setup()
    await expect(client.start({ role: 'disk-server', listen: { host: '127.0.0.1', port: 1 }, blockSize: 4096 })).rejects.toThrow(
      'agent b: replica role is not available in this agent'
    )
  })

  it('delivers ring and live events once each, in order', async () => {
    const { client, agent } = await setup()
    agent.emitEvent('boot')
    agent.emitEvent('role', { role: 'backup' })
    const subscribed = once(agent.notes, 'subscribed')
    const three = nextEvent(client, 3)
    // the third event is live: it goes out once the subscription is in place
    await subscribed
    agent.emitEvent('ack', { n: 1 })
    const evs = await three
    expect(evs.map((e) => e.seq)).toEqual([1, 2, 3])
    expect(client.lastSeq).toBe(3)
  })

  it('resumes the subscription after the last seq when the connection drops', async () => {
    const { client, agent } = await setup()
    const seen: AgentEvent[] = []
    let wake: (() => void) | null = null
    client.subscribe((ev) => {
      seen.push(ev)
      wake?.()
    })
    const waitFor = async (n: number) => {
      while (seen.length < n) await new Promise<void>((r) => (wake = r))
    }
    agent.emitEvent('one') // may land in the ring before or after the subscription: either way once
    await waitFor(1)
    const down = once(client, 'link')
    agent.dropAll()
    expect((await down)[0]).toBe('down')
    const up = once(client, 'link')
    agent.emitEvent('two') // happens while disconnected: must come from the ring on resume
    await up
    await waitFor(2)
    agent.emitEvent('three')
    await waitFor(3)
    expect(seen.map((e) => e.type)).toEqual(['one', 'two', 'three'])
    expect(agent.subscribeSince.at(-1)).toBe(1)
  })

  it('ignores a line that is not JSON instead of failing', async () => {
    const { client, agent } = await setup()
    await client.status()
    const protoErr = once(client, 'protocol-error')
    for (const s of agent.sockets) s.write('garbage\n')
    expect(String((await protoErr)[0].message)).toMatch(/not JSON/)
    await expect(client.status()).resolves.toMatchObject({ gen: 1 })
  })
})
