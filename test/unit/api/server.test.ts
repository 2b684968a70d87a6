import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ConsoleBackend } from '../../../main/console/console-backend.js'
import { startApiServer, tokensEqual, type ApiServer } from '../../../main/transport/ws-server.js'
import { RawWsClient } from './ws-client.js'

const TOKEN = 'a1'.repeat(32)
let dir: string
let home: string
let backend: ConsoleBackend
let server: ApiServer
const clients: RawWsClient[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ftlab-api-'))
  mkdirSync(join(dir, 'assets'))
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>FT Lab</title>')
  writeFileSync(join(dir, 'assets/app.js'), 'console.log(1)')
  home = mkdtempSync(join(tmpdir(), 'ftlab-api-home-'))
  // the real console core: no lab until a test starts the simulated one (no processes, no reattach)
  backend = new ConsoleBackend({ home, reattach: false, shell: 'browser' })
  server = await startApiServer({ backend, rendererDir: dir, token: TOKEN, batchMs: 5, maxMessageBytes: 4096 })
})

afterAll(async () => {
  await server.close()
  await backend.handle('lab.stop', {}).catch(() => {})
  await backend.close()
  rmSync(dir, { recursive: true, force: true })
  rmSync(home, { recursive: true, force: true })
})

afterEach(() => {
  while (clients.length) clients.pop()!.close()
})

async function open(path = `/api?token=${TOKEN}`, headers: Record<string, string | undefined> = {}) {
  const r = await RawWsClient.open(server.port, path, headers)
  clients.push(r.client)
  return r
}

async function call(c: RawWsClient, id: number, method: string, params?: unknown) {
  c.sendText(JSON.stringify({ id, method, params }))
  return c.readJson((m) => m.t === 'res' && m.id === id)
}

describe('browser mode HTTP', () => {
  it('serves the renderer with a strict CSP and no token needed', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/`)
    expect(res.status).toBe(200)
    expect(await res.text()).toContain('<title>FT Lab</title>')
    const csp = res.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("default-src 'none'")
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain(`connect-src 'self' ws://127.0.0.1:${server.port}`)
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    const js = await fetch(`http://127.0.0.1:${server.port}/assets/app.js`)
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
  })

  it('refuses paths outside the renderer, other methods, and foreign Host headers', async () => {
    expect((await fetch(`http://127.0.0.1:${server.port}/..%2f..%2fetc%2fpasswd`)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${server.port}/nope.js`)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${server.port}/`, { method: 'POST' })).status).toBe(405)
    const { handshake } = await open('/', {
      Host: 'evil.example:80',
      Upgrade: undefined,
      Connection: 'close',
      'Sec-WebSocket-Key': undefined,
      'Sec-WebSocket-Version': undefined
    })
    expect(handshake.status).toBe(403)
    expect(handshake.body).toContain('unexpected Host')
  })

  it('binds loopback and prints the token only in the fragment', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/#token=${TOKEN}`)
  })
})

describe('WebSocket handshake', () => {
  it('accepts the right token and answers with the RFC 6455 accept key', async () => {
    const key = 'dGhlIHNhbXBsZSBub25jZQ=='
    const { handshake } = await open(undefined, { 'Sec-WebSocket-Key': key })
    expect(handshake.status).toBe(101)
    expect(handshake.headers['sec-websocket-accept']).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
  })

  it('refuses a missing or wrong token with 401 and sends no data', async () => {
    for (const path of ['/api', '/api?token=', `/api?token=${'b1'.repeat(32)}`, `/api?token=${TOKEN}x`]) {
      const { client, handshake } = await open(path)
      expect(handshake.status).toBe(401)
      expect(handshake.body).toBe('unauthorized: missing or wrong token')
      expect(client.ended).toBe(true)
    }
  })

  it('refuses a foreign or missing Origin, a bad version and a bad key', async () => {
    expect((await open(undefined, { Origin: 'http://evil.example' })).handshake.status).toBe(403)
    expect((await open(undefined, { Origin: undefined })).handshake.status).toBe(403)
    const v = await open(undefined, { 'Sec-WebSocket-Version': '8' })
    expect(v.handshake.status).toBe(426)
    expect(v.handshake.headers['sec-websocket-version']).toBe('13')
    expect((await open(undefined, { 'Sec-WebSocket-Key': 'short' })).handshake.status).toBe(400)
    expect((await open(`/other?token=${TOKEN}`)).handshake.status).toBe(404)
  })

  it('compares tokens by value only', () => {
    expect(tokensEqual(TOKEN, TOKEN)).toBe(true)
    expect(tokensEqual(TOKEN.slice(0, -1), TOKEN)).toBe(false)
    expect(tokensEqual('', TOKEN)).toBe(false)
  })
})

describe('WebSocket frames and the contract', () => {
  it('answers calls, validates params, and refuses unknown methods', async () => {
    const { client } = await open()
    const info = await call(client, 1, 'console.info')
    expect(info).toMatchObject({ ok: true, result: { apiVersion: 2, backend: 'none', shell: 'browser', lab: null } })
    const bad = await call(client, 2, 'lab.start', { guest: 'redis', mode: 'rsm' })
    expect(bad).toEqual({ t: 'res', id: 2, ok: false, error: { code: 'bad-request', message: 'lab.start.guest must be one of "kv", "bank" (got "redis")' } })
    const unknown = await call(client, 3, 'lab.explode')
    expect(unknown).toMatchObject({ ok: false, error: { code: 'unknown-method' } })
    client.sendText('{not json')
    expect(await client.readJson((m) => m.t === 'res')).toMatchObject({ id: 0, ok: false, error: { message: 'request is not valid JSON' } })
  })

  it('streams backend events in batches', async () => {
    const { client } = await open()
    const started = await call(client, 1, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', speed: 5, seed: 1 })
    expect(started).toMatchObject({ ok: true, result: { kind: 'simulated', state: 'running' } })
    const batch = await client.readJson((m) => m.t === 'events')
    const events = batch.events as { topic: string; seq: number }[]
    expect(events.length).toBeGreaterThan(1)
    expect(events.map((e) => e.topic)).toContain('status')
    expect(events.every((e, i) => i === 0 || e.seq > events[i - 1].seq)).toBe(true)
    expect(await call(client, 2, 'lab.stop')).toMatchObject({ ok: true, result: { kind: 'simulated', state: 'stopped' } })
  }, 30_000)

  it('reassembles a fragmented message', async () => {
    const { client } = await open()
    const msg = JSON.stringify({ id: 7, method: 'console.info', params: {} })
    client.sendFrame(0x1, msg.slice(0, 5), { fin: false })
    client.sendFrame(0x9, 'mid-message ping') // control frames may come between fragments
    client.sendFrame(0x0, msg.slice(5, 20), { fin: false })
    client.sendFrame(0x0, msg.slice(20), { fin: true })
    const pong = await client.readFrame()
    expect(pong.opcode).toBe(0xa)
    expect(pong.payload.toString()).toBe('mid-message ping')
    expect(await client.readJson((m) => m.t === 'res')).toMatchObject({ id: 7, ok: true })
  })

  it('closes with 1002 on an unmasked frame', async () => {
    const { client } = await open()
    client.sendFrame(0x1, '{"id":1,"method":"console.info"}', { mask: false })
    expect(await client.readClose()).toBe(1002)
  })

  it('closes with 1002 on reserved bits and on a stray continuation', async () => {
    const a = (await open()).client
    a.sendFrame(0x1, 'x', { rsv: 4 })
    expect(await a.readClose()).toBe(1002)
    const b = (await open()).client
    b.sendFrame(0x0, 'x')
    expect(await b.readClose()).toBe(1002)
  })

  it('closes with 1009 on an oversized frame and on oversized fragments together', async () => {
    const a = (await open()).client
    a.sendFrame(0x1, 'x'.repeat(5000))
    expect(await a.readClose()).toBe(1009)
    const b = (await open()).client
    b.sendFrame(0x1, 'x'.repeat(3000), { fin: false })
    b.sendFrame(0x0, 'x'.repeat(3000), { fin: true })
    expect(await b.readClose()).toBe(1009)
  })

  it('closes with 1003 on binary and 1007 on invalid UTF-8', async () => {
    const a = (await open()).client
    a.sendFrame(0x2, Buffer.from([1, 2, 3]))
    expect(await a.readClose()).toBe(1003)
    const b = (await open()).client
    b.sendFrame(0x1, Buffer.from([0xff, 0xfe]))
    expect(await b.readClose()).toBe(1007)
  })

  it('answers a ping with a pong and a close with a close', async () => {
    const { client } = await open()
    client.sendFrame(0x9, 'hello')
    const pong = await client.readFrame()
    expect(pong).toMatchObject({ fin: true, opcode: 0xa })
    expect(pong.payload.toString()).toBe('hello')
    const code = Buffer.alloc(2)
    code.writeUInt16BE(1000)
    client.sendFrame(0x8, code)
    expect(await client.readClose()).toBe(1000)
  })

  it('a bad connection does not disturb the others', async () => {
    const good = (await open()).client
    const bad = (await open()).client
    bad.sendFrame(0x1, 'x', { mask: false })
    await bad.readClose()
    expect(await call(good, 1, 'lab.status')).toMatchObject({ ok: true })
  })
})
