// The Electron IPC transport without the Electron binary: a fake ipcMain and webContents
// that record what they are given. The same requests go over IPC and over the browser
// mode's WebSocket, and must be answered and refused in exactly the same words.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { IPC_CALL, IPC_EVENTS, type ApiEvent, type WireResult } from '../../../main/api/contract.js'
import { ConsoleBackend } from '../../../main/console/console-backend.js'
import { REFUSED_SENDER, serveIpc, streamEventsTo, type IpcCallEvent, type IpcMainLike, type WebContentsLike } from '../../../main/transport/ipc.js'
import { startApiServer, type ApiServer } from '../../../main/transport/ws-server.js'

class FakeIpcMain implements IpcMainLike {
  readonly handlers = new Map<string, (event: IpcCallEvent, ...args: unknown[]) => Promise<unknown>>()
  readonly removed: string[] = []
  handle(channel: string, listener: (event: IpcCallEvent, ...args: unknown[]) => Promise<unknown>): void {
    if (this.handlers.has(channel)) throw new Error(`a second handler for ${channel}`)
    this.handlers.set(channel, listener)
  }
  removeHandler(channel: string): void {
    this.handlers.delete(channel)
    this.removed.push(channel)
  }
  /** what ipcRenderer.invoke(channel, ...args) would get back */
  invoke(event: IpcCallEvent, channel: string, ...args: unknown[]): Promise<unknown> {
    const h = this.handlers.get(channel)
    if (!h) throw new Error(`no handler for ${channel}`)
    return h(event, ...args)
  }
}

class FakeWebContents implements WebContentsLike {
  readonly sent: { channel: string; args: unknown[] }[] = []
  destroyed = false
  send(channel: string, ...args: unknown[]): void {
    this.sent.push({ channel, args })
  }
  isDestroyed(): boolean {
    return this.destroyed
  }
}

const TOKEN = 'c3'.repeat(32)
const window = { id: 'our window' }
const ourFrame: IpcCallEvent = { sender: window, senderFrame: { url: 'file:///app/index.html', parent: null } }
const isTrusted = (e: IpcCallEvent) => e.sender === window && e.senderFrame?.parent === null && e.senderFrame.url === 'file:///app/index.html'

let dir: string
let home: string
let backend: ConsoleBackend
let server: ApiServer
const ipc = new FakeIpcMain()
let stopIpc: () => void

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ftlab-ipc-'))
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>FT Lab</title>')
  home = mkdtempSync(join(tmpdir(), 'ftlab-ipc-home-'))
  // the real console core: no lab until a test starts the simulated one (no processes, no reattach)
  backend = new ConsoleBackend({ home, reattach: false, shell: 'electron' })
  server = await startApiServer({ backend, rendererDir: dir, token: TOKEN, batchMs: 5, maxMessageBytes: 4096 })
  stopIpc = serveIpc({ ipcMain: ipc, service: backend, isTrusted, maxMessageBytes: 4096 })
})

afterAll(async () => {
  stopIpc()
  await server.close()
  await backend.handle('lab.stop', {}).catch(() => {})
  await backend.close()
  rmSync(dir, { recursive: true, force: true })
  rmSync(home, { recursive: true, force: true })
})

/** One call over the WebSocket, answered as IPC answers: { ok, result } or { ok, error }. */
async function overWs(method: string, params?: unknown): Promise<WireResult> {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api?token=${TOKEN}`, { origin: `http://127.0.0.1:${server.port}` })
  try {
    await new Promise<void>((ok, fail) => {
      ws.once('open', () => ok())
      ws.once('error', fail)
    })
    ws.send(JSON.stringify({ id: 1, method, params }))
    const res = await new Promise<{ ok: boolean; result?: unknown; error?: unknown }>((ok) => {
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as { t: string; id: number; ok: boolean; result?: unknown; error?: unknown }
        if (m.t === 'res' && m.id === 1) ok(m)
      })
    })
    return res.ok ? { ok: true, result: res.result } : { ok: false, error: res.error as WireResult extends { error: infer E } ? E : never }
  } finally {
    ws.close()
  }
}

const overIpc = (method: unknown, params?: unknown) => ipc.invoke(ourFrame, IPC_CALL, method, params) as Promise<WireResult>

describe('IPC transport', () => {
  it('registers one handler on the call channel and removes it when stopped', () => {
    expect([...ipc.handlers.keys()]).toEqual([IPC_CALL])
    const other = new FakeIpcMain()
    const stop = serveIpc({ ipcMain: other, service: backend, isTrusted })
    stop()
    expect(other.removed).toEqual([IPC_CALL])
    expect(other.handlers.size).toBe(0)
  })

  it('answers and refuses exactly as the WebSocket does', async () => {
    const requests: [string, unknown][] = [
      ['console.info', undefined],
      ['lab.status', {}],
      ['lab.start', { guest: 'redis', mode: 'rsm' }],
      ['lab.start', { guest: 'kv', mode: 'rsm', extra: 1 }],
      ['lab.stop', { now: true }],
      ['fault.inject', { target: 'a', kind: 'delay', params: { ms: 5 }, durationMs: 1000 }],
      ['fault.inject', { target: 'a', kind: 'power', durationMs: 1000 }],
      ['term.resize', { id: 't1', cols: 1, rows: 24 }],
      ['lab.deploy', { name: 'x', file: { version: 2, hosts: {} } }],
      ['lab.explode', {}],
      ['events.since', { seq: -1 }]
    ]
    for (const [method, params] of requests) {
      const a = await overIpc(method, params)
      const b = await overWs(method, params)
      if (method === 'console.info' || method === 'lab.status') {
        expect(a.ok, method).toBe(true)
        expect(b.ok, method).toBe(true)
        continue
      }
      expect(a, `${method} ${JSON.stringify(params)}`).toEqual(b)
    }
    expect(await overIpc('lab.start', { guest: 'redis', mode: 'rsm' })).toEqual({
      ok: false,
      error: { code: 'bad-request', message: 'lab.start.guest must be one of "kv", "bank" (got "redis")' }
    })
    expect(await overIpc('lab.explode', {})).toMatchObject({ ok: false, error: { code: 'unknown-method' } })
    expect(await overIpc(42, {})).toMatchObject({ ok: false, error: { code: 'unknown-method', message: expect.stringMatching(/^unknown method 42/) } })
  })

  it('refuses calls from another window or a subframe before looking at them', async () => {
    const foreign: IpcCallEvent = { sender: { id: 'another window' }, senderFrame: { url: 'file:///app/index.html', parent: null } }
    const subframe: IpcCallEvent = { sender: window, senderFrame: { url: 'file:///app/index.html', parent: {} } }
    const elsewhere: IpcCallEvent = { sender: window, senderFrame: { url: 'https://evil.example/', parent: null } }
    for (const e of [foreign, subframe, elsewhere]) {
      expect(await ipc.invoke(e, IPC_CALL, 'lab.status', {})).toEqual({ ok: false, error: { code: 'bad-request', message: REFUSED_SENDER } })
    }
  })

  it('refuses a request above the message size limit, as the WebSocket does', async () => {
    const r = await overIpc('term.input', { id: 't1', data: 'x'.repeat(5000) })
    expect(r).toMatchObject({
      ok: false,
      error: { code: 'bad-request', message: expect.stringMatching(/^request too large: \d+ bytes of params \(at most 4096\)$/) }
    })
  })

  it('streams events to the window in batches, and not to a destroyed one', async () => {
    const contents = new FakeWebContents()
    const stop = streamEventsTo(contents, backend, 5)
    expect(await overIpc('lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', speed: 5, seed: 1 })).toMatchObject({
      ok: true,
      result: { kind: 'simulated', state: 'running' }
    })
    await new Promise((r) => setTimeout(r, 30))
    expect(contents.sent.length).toBeGreaterThan(0)
    expect(contents.sent.every((m) => m.channel === IPC_EVENTS)).toBe(true)
    const events = contents.sent.flatMap((m) => m.args[0] as ApiEvent[])
    expect(events.map((e) => e.topic)).toContain('status')
    expect(events.every((e, i) => i === 0 || e.seq > events[i - 1].seq)).toBe(true)
    contents.destroyed = true
    const before = contents.sent.length
    expect(await overIpc('lab.stop')).toMatchObject({ ok: true, result: { kind: 'simulated', state: 'stopped' } })
    await new Promise((r) => setTimeout(r, 30))
    expect(contents.sent.length).toBe(before)
    stop()
  }, 30_000)
})
