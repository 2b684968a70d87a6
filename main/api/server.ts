// Browser mode: the console served to a browser on this machine. Plain node:http on
// 127.0.0.1 serves the built renderer (out/renderer) with a strict CSP, and /api upgrades
// to a WebSocket that speaks the same contract as Electron IPC.
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
import { readFile, stat } from 'node:fs/promises'
import { extname, join, resolve, sep } from 'node:path'
import type { ConsoleBackend } from './backend.js'
import { MAX_MESSAGE_BYTES, toWireError, validateWireRequest, type WireMessage } from './contract.js'
import { dispatch, EventBatcher } from './dispatch.js'
import { acceptKey, CloseCode, isValidKey, WsConnection } from './websocket.js'

export interface ApiServerOptions {
  backend: ConsoleBackend
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
  const connections = new Set<WsConnection>()
  const upgraded = new Set<Duplex>()
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

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    const refuse = (status: number, text: string, extra: Record<string, string> = {}): void => {
      const headers = Object.entries({ 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), Connection: 'close', ...extra })
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
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return refuse(400, 'bad request: expected Upgrade: websocket')
    if (req.headers['sec-websocket-version'] !== '13') return refuse(426, 'upgrade required: WebSocket version 13', { 'Sec-WebSocket-Version': '13' })
    const key = req.headers['sec-websocket-key']
    if (!isValidKey(key)) return refuse(400, 'bad request: missing or malformed Sec-WebSocket-Key')
    if (connections.size >= maxConnections) return refuse(503, 'too many connections')

    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`
    )
    const ws = new WsConnection(socket, { maxMessageBytes, pingIntervalMs: opts.pingIntervalMs ?? 20_000 }, head)
    connections.add(ws)
    upgraded.add(socket)
    socket.on('close', () => upgraded.delete(socket))
    const send = (m: WireMessage): void => ws.sendText(JSON.stringify(m))
    const batcher = new EventBatcher((events) => send({ t: 'events', events }), opts.batchMs ?? 16)
    const unsubscribe = opts.backend.subscribe((ev) => batcher.add(ev))
    ws.onClose = () => {
      connections.delete(ws)
      unsubscribe()
      batcher.close()
    }
    ws.onMessage = (text) => {
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
    }
  })

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
      for (const ws of connections) ws.close(CloseCode.GoingAway, 'server shutting down')
      // the close frames are queued; give them a turn to leave, then drop the sockets
      await new Promise((ok) => setImmediate(ok))
      for (const s of upgraded) s.destroy()
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
  return (
    { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 426: 'Upgrade Required', 503: 'Service Unavailable' }[status] ?? 'Error'
  )
}
