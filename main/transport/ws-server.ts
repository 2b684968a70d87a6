// Browser mode: the console served to a browser on this machine. Plain node:http on
// 127.0.0.1 serves the built renderer (out/renderer) with a strict CSP, and /api upgrades
// to a WebSocket (the `ws` library: framing, masking, UTF-8, fragments, size limit) that
// speaks the same contract, through the same dispatch, as Electron IPC.
//
// Guarding /api: every connection must present the random token printed at start (the
// page reads it from its URL's #token=… and sends it as ?token= on connect); it is
// compared in constant time. The Host header must name this loopback server (DNS
// rebinding) and the Origin must be this server's own (another site in the same browser
// cannot connect). Static files carry no data and need no token.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { extname, join, resolve, sep } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { MAX_MESSAGE_BYTES, toWireError, validateWireRequest, type WireMessage } from '../api/contract.js'
import { dispatch, EventBatcher, type ConsoleService } from '../api/dispatch.js'

export interface ApiServerOptions {
  /** the console core every connection talks to */
  backend: ConsoleService
  /** the built renderer (index.html and assets) */
  rendererDir: string
  /** 0 (default) picks a free port */
  port?: number
  /** loopback by default; anything else is the operator's explicit choice */
  host?: string
  /** random 32 bytes (hex) unless given */
  token?: string
  /** event batching interval, ms */
  batchMs?: number
  maxMessageBytes?: number
  maxConnections?: number
  pingIntervalMs?: number
}

export interface ApiServer {
  port: number
  token: string
  /** the address to open, with the token in the fragment */
  url: string
  close(): Promise<void>
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
  '.map': 'application/json'
}

/**
 * The page's policy. Scripts only from this server; connections only back to it.
 * style-src needs 'unsafe-inline' because xterm's DOM renderer writes <style> elements
 * at run time; no script can be injected through it.
 */
export function contentSecurityPolicy(port: number): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self' ws://127.0.0.1:${port} ws://localhost:${port}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'"
  ].join('; ')
}

/** Constant-time comparison of two secrets of any length. */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest()
  const b = createHash('sha256').update(expected, 'utf8').digest()
  return timingSafeEqual(a, b) && given.length === expected.length
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const host = opts.host ?? '127.0.0.1'
  const token = opts.token ?? randomBytes(32).toString('hex')
  if (token.length < 16) throw new Error('startApiServer: the token must be at least 16 characters')
  const rendererDir = resolve(opts.rendererDir)
  const maxMessageBytes = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES
  const maxConnections = opts.maxConnections ?? 16
  // noServer: the upgrade is ours to check (token, Host, Origin) before ws takes the socket
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxMessageBytes, perMessageDeflate: false, clientTracking: true })
  let port = 0

  const allowedHosts = (): string[] => [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `${host}:${port}`]

  const server = createServer((req, res) => {
    serveStatic(req, res).catch((err: unknown) => {
      if (!res.headersSent) plain(res, 500, `internal error: ${err instanceof Error ? err.message : String(err)}`)
      else res.destroy()
    })
  })

  async function serveStatic(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!allowedHosts().includes(req.headers.host ?? '')) return plain(res, 403, 'forbidden: unexpected Host header')
    if ((req.url ?? '').startsWith('/recordings')) return serveRecordings(req, res)
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD')
      return plain(res, 405, 'method not allowed')
    }
    let path: string
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    } catch {
      return plain(res, 400, 'bad request: malformed path')
    }
    if (path.includes('\0')) return plain(res, 400, 'bad request: malformed path')
    if (path === '/' || path === '') path = '/index.html'
    const file = resolve(join(rendererDir, path))
    if (!file.startsWith(rendererDir + sep)) return plain(res, 404, 'not found')
    const info = await stat(file).catch(() => null)
    if (!info || !info.isFile()) {
      if (path === '/index.html') {
        return plain(res, 503, `the console UI is not built (no ${file}); run: npx electron-vite build`)
      }
      return plain(res, 404, 'not found')
    }
    const body = await readFile(file)
    res.writeHead(200, {
      ...securityHeaders(port),
      'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': body.length,
      'Cache-Control': path === '/index.html' ? 'no-store' : 'no-cache'
    })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  /**
   * The session library's files, guarded like /api (token, Host, and Origin when a page sends one):
   *   GET  /recordings/<name>.ftrec?token=…       the file, as a download
   *   GET  /recordings/<name>.html?token=…        its report (written anew), shown in the browser
   *   POST /recordings?token=…&name=<name>        the body is a .ftrec file to import (checked before it is kept)
   */
  async function serveRecordings(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x')
    if (!tokensEqual(url.searchParams.get('token') ?? '', token)) return plain(res, 401, 'unauthorized: missing or wrong token')
    const origin = req.headers.origin
    if (origin && !allowedHosts().some((h) => origin === `http://${h}`)) return plain(res, 403, 'forbidden: unexpected Origin')
    const lib = opts.backend.recordings
    if (!lib) return plain(res, 404, 'not found: this console keeps no recordings')
    if (req.method === 'GET' && url.pathname.startsWith('/recordings/')) {
      const name = decodeURIComponent(url.pathname.slice('/recordings/'.length))
      if (name.endsWith('.html')) return serveReport(res, lib, name.slice(0, -'.html'.length))
      const file = lib.fileOf(name)
      if (!file) return plain(res, 404, `not found: no recording ${JSON.stringify(name)} in the library`)
      const info = await stat(file)
      const base = name.endsWith('.ftrec') ? name : `${name}.ftrec`
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': info.size,
        'Content-Disposition': `attachment; filename="${base}"`,
        'Cache-Control': 'no-store',
        'X-Content-Type-Options': 'nosniff'
      })
      await pipeline(createReadStream(file, { end: info.size - 1 }), res)
      return
    }
    if (req.method === 'POST' && url.pathname === '/recordings') {
      const name = url.searchParams.get('name') ?? ''
      const dir = await mkdtemp(join(tmpdir(), 'ftlab-import-'))
      const tmp = join(dir, 'upload.ftrec')
      try {
        await pipeline(req, createWriteStream(tmp, { mode: 0o600 }))
        const entry = lib.import(tmp, name || undefined)
        res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' })
        res.end(JSON.stringify(entry))
      } catch (err) {
        plain(res, 400, (err as Error).message.replaceAll(tmp, name || 'the uploaded file'))
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
      return
    }
    res.setHeader('Allow', 'GET, POST')
    return plain(res, 405, 'method not allowed: GET /recordings/<name>.ftrec or POST /recordings?name=<name>')
  }

  async function serveReport(res: ServerResponse, lib: NonNullable<ConsoleService['recordings']>, name: string): Promise<void> {
    if (!lib.fileOf(name)) return plain(res, 404, `not found: no recording ${JSON.stringify(name)} in the library`)
    let path: string
    try {
      path = (await lib.report(name)).path
    } catch (err) {
      return plain(res, 500, `the report of ${name} could not be written: ${(err as Error).message}`)
    }
    const body = await readFile(path)
    // the report is data from the recording, escaped and script-free; its own CSP keeps it from loading anything
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': body.length,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    })
    res.end(body)
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    const refuse = (status: number, text: string, extra: Record<string, string> = {}): void => {
      const headers = Object.entries({
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': String(Buffer.byteLength(text)),
        Connection: 'close',
        ...extra
      })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')
      socket.end(`HTTP/1.1 ${status} ${statusText(status)}\r\n${headers}\r\n${text}`)
    }
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://x')
    } catch {
      return refuse(400, 'bad request')
    }
    if (url.pathname !== '/api') return refuse(404, 'not found')
    // the token first: without it nothing else is disclosed
    if (!tokensEqual(url.searchParams.get('token') ?? '', token)) return refuse(401, 'unauthorized: missing or wrong token')
    const hostHeader = req.headers.host ?? ''
    if (!allowedHosts().includes(hostHeader)) return refuse(403, 'forbidden: unexpected Host header')
    const origin = req.headers.origin
    if (!origin || !allowedHosts().some((h) => origin === `http://${h}`)) return refuse(403, 'forbidden: unexpected Origin')
    // ws checks these too, but answers a wrong version without saying which one it speaks
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return refuse(400, 'bad request: expected Upgrade: websocket')
    if (req.headers['sec-websocket-version'] !== '13') return refuse(426, 'upgrade required: WebSocket version 13', { 'Sec-WebSocket-Version': '13' })
    if (!/^[A-Za-z0-9+/]{22}==$/.test(req.headers['sec-websocket-key'] ?? '')) return refuse(400, 'bad request: missing or malformed Sec-WebSocket-Key')
    if (wss.clients.size >= maxConnections) return refuse(503, 'too many connections')
    wss.handleUpgrade(req, socket, head, (ws) => serveConnection(ws))
  })

  function serveConnection(ws: WebSocket): void {
    const send = (m: WireMessage): void => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m))
    }
    const batcher = new EventBatcher((events) => send({ t: 'events', events }), opts.batchMs ?? 16)
    const unsubscribe = opts.backend.subscribe((ev) => batcher.add(ev))
    // a page whose machine slept or whose tab froze stops answering pings: let it go
    let alive = true
    const pinger = setInterval(() => {
      if (!alive) return ws.terminate()
      alive = false
      ws.ping()
    }, opts.pingIntervalMs ?? 20_000)
    pinger.unref?.()
    ws.on('pong', () => (alive = true))
    ws.on('error', () => ws.terminate())
    ws.on('close', () => {
      clearInterval(pinger)
      unsubscribe()
      batcher.close()
    })
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) return ws.close(1003, 'text messages only')
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8')
      let id = 0
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        send({ t: 'res', id: 0, ok: false, error: { code: 'bad-request', message: 'request is not valid JSON' } })
        return
      }
      try {
        const req = validateWireRequest(parsed)
        id = req.id
        dispatch(opts.backend, req.method, req.params).then(
          (result) => send({ t: 'res', id, ok: true, result }),
          (err: unknown) => send({ t: 'res', id, ok: false, error: toWireError(err) })
        )
      } catch (err) {
        send({ t: 'res', id, ok: false, error: toWireError(err) })
      }
    })
  }

  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
    else socket.destroy()
  })

  await new Promise<void>((ok, fail) => {
    server.once('error', fail)
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', fail)
      ok()
    })
  })
  port = (server.address() as AddressInfo).port
  const shownHost = host.includes(':') ? `[${host}]` : host

  return {
    port,
    token,
    url: `http://${shownHost}:${port}/#token=${token}`,
    close: async () => {
      for (const ws of wss.clients) ws.close(1001, 'server shutting down')
      // the close frames are queued; give them a turn to leave, then drop the sockets
      await new Promise((ok) => setImmediate(ok))
      for (const ws of wss.clients) ws.terminate()
      wss.close()
      server.closeAllConnections?.()
      await new Promise<void>((ok) => server.close(() => ok()))
    }
  }
}

function securityHeaders(port: number): Record<string, string> {
  return {
    'Content-Security-Policy': contentSecurityPolicy(port),
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin'
  }
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' })
  res.end(text)
}

function statusText(status: number): string {
  return { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 426: 'Upgrade Required', 503: 'Service Unavailable' }[status] ?? 'Error'
}
