// A raw WebSocket client for the tests (Node 20 has no global WebSocket): it writes the
// handshake and masked frames byte by byte, so the tests can also send what a browser never would.
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'

export interface Handshake {
  status: number
  headers: Record<string, string>
  body: string
}

export interface ServerFrame {
  fin: boolean
  opcode: number
  payload: Buffer
}

export class RawWsClient {
  private buf = Buffer.alloc(0)
  private waiters: (() => void)[] = []
  ended = false

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      this.wake()
    })
    socket.on('close', () => {
      this.ended = true
      this.wake()
    })
    socket.on('error', () => {})
  }

  static async open(port: number, path: string, headers: Record<string, string | undefined> = {}): Promise<{ client: RawWsClient; handshake: Handshake }> {
    const socket = connect(port, '127.0.0.1')
    await new Promise<void>((ok, fail) => socket.once('connect', ok).once('error', fail))
    const client = new RawWsClient(socket)
    const h: Record<string, string | undefined> = {
      Host: `127.0.0.1:${port}`,
      Origin: `http://127.0.0.1:${port}`,
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
      'Sec-WebSocket-Version': '13',
      ...headers
    }
    const lines = Object.entries(h)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('')
    socket.write(`GET ${path} HTTP/1.1\r\n${lines}\r\n`)
    const handshake = await client.readHandshake()
    return { client, handshake }
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  private async waitData(): Promise<void> {
    if (this.ended) throw new Error('connection closed')
    await new Promise<void>((ok) => this.waiters.push(ok))
  }

  private async readHandshake(): Promise<Handshake> {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n')
      if (end >= 0) {
        const head = this.buf.subarray(0, end).toString('latin1').split('\r\n')
        const status = Number(head[0].split(' ')[1])
        const headers: Record<string, string> = {}
        for (const l of head.slice(1)) {
          const i = l.indexOf(':')
          headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
        }
        this.buf = this.buf.subarray(end + 4)
        if (status !== 101) {
          while (!this.ended) await this.waitData().catch(() => {})
          const body = this.buf.toString('utf8')
          return { status, headers, body }
        }
        return { status, headers, body: '' }
      }
      await this.waitData()
    }
  }

  /** Sends one frame; masked unless told otherwise. */
  sendFrame(opcode: number, payload: Buffer | string, opts: { fin?: boolean; mask?: boolean; rsv?: number } = {}): void {
    const data: Buffer = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload
    const fin = opts.fin ?? true
    const mask = opts.mask ?? true
    const len = data.length
    const head: number[] = [(fin ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode]
    const m = mask ? 0x80 : 0
    if (len < 126) head.push(m | len)
    else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff)
    else {
      head.push(m | 127)
      const b = Buffer.alloc(8)
      b.writeBigUInt64BE(BigInt(len))
      head.push(...b)
    }
    let body: Buffer = data
    const parts: Buffer[] = [Buffer.from(head)]
    if (mask) {
      const key = randomBytes(4)
      body = Buffer.from(data)
      for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3]
      parts.push(key)
    }
    parts.push(body)
    this.socket.write(Buffer.concat(parts))
  }

  sendText(text: string): void {
    this.sendFrame(0x1, text)
  }

  async readFrame(): Promise<ServerFrame> {
    for (;;) {
      const b = this.buf
      if (b.length >= 2) {
        if (b[1] & 0x80) throw new Error('server frames must not be masked')
        let len = b[1] & 0x7f
        let off = 2
        if (len === 126 && b.length >= 4) {
          len = b.readUInt16BE(2)
          off = 4
        } else if (len === 127 && b.length >= 10) {
          len = Number(b.readBigUInt64BE(2))
          off = 10
        }
        if ((b[1] & 0x7f) < 126 || off > 2) {
          if (b.length >= off + len) {
            const f = { fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, payload: Buffer.from(b.subarray(off, off + len)) }
            this.buf = b.subarray(off + len)
            return f
          }
        }
      }
      await this.waitData()
    }
  }

  /** Reads frames until a text message whose JSON matches `pred`. */
  async readJson(pred: (m: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
    for (;;) {
      const f = await this.readFrame()
      if (f.opcode !== 0x1) continue
      const m = JSON.parse(f.payload.toString('utf8')) as Record<string, unknown>
      if (pred(m)) return m
    }
  }

  /** Reads until a close frame; returns its code. */
  async readClose(): Promise<number> {
    for (;;) {
      const f = await this.readFrame()
      if (f.opcode === 0x8) return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005
    }
  }

  close(): void {
    this.socket.destroy()
  }
}
