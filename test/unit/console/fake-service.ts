// A stand-in for the replicated service: two listeners ("replicas") over one key-value store
// with a reply table per client session, so tests can kill the live one, make the other
// go live, answer twice, or stay silent.
import { EventEmitter, once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import type { Endpoint } from '../../../agent/control/protocol.js'
import { encodeValue, RespError, RespReader, type RespValue } from '../../../main/load/resp.js'

export interface Request {
  replica: number
  clientId: string
  seq: number
  cmd: string
  args: string[]
}

export class FakeService extends EventEmitter {
  readonly kv = new Map<string, string>()
  /** clientId → seq → reply: a retried seq is answered from here, not executed again */
  readonly replies = new Map<string, Map<number, RespValue>>()
  readonly requests: Request[] = []
  readonly executed: Request[] = []
  /** which replica answers; the other accepts connections and says nothing (a backup) */
  live = 0
  /** answer every request twice (duplicates for the client to drop) */
  doubleSend = false
  /** requests to leave unanswered, once each, by `${clientId}:${seq}` */
  readonly swallow = new Set<string>()
  /** when set, a non-live replica answers with this unwrapped error instead of silence */
  refusal: string | null = null
  private readonly servers: Server[] = []
  private readonly sockets: Set<Socket>[] = []
  readonly endpoints: Endpoint[] = []

  async start(replicas = 2): Promise<void> {
    for (let r = 0; r < replicas; r++) {
      const set = new Set<Socket>()
      const server = createServer((s) => this.onSocket(r, s, set))
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      this.servers.push(server)
      this.sockets.push(set)
      this.endpoints.push({ host: '127.0.0.1', port: (server.address() as { port: number }).port })
    }
  }

  /** Power cut of one replica: its listener and every connection go away. */
  async kill(r: number): Promise<void> {
    for (const s of this.sockets[r]) s.destroy()
    await new Promise<void>((res) => this.servers[r].close(() => res()))
  }

  /** Go live: like a backup that takes over, re-emit the last reply of every connected session. */
  goLive(r: number): void {
    this.live = r
    for (const s of this.sockets[r]) {
      const id = (s as Socket & { clientId?: string }).clientId
      const table = id ? this.replies.get(id) : undefined
      if (!table || table.size === 0) continue
      const last = Math.max(...table.keys())
      s.write(encodeValue([last, table.get(last)!]))
    }
  }

  async close(): Promise<void> {
    for (let r = 0; r < this.servers.length; r++) {
      for (const s of this.sockets[r]) s.destroy()
      if (this.servers[r].listening) await new Promise<void>((res) => this.servers[r].close(() => res()))
    }
  }

  private onSocket(r: number, s: Socket, set: Set<Socket>): void {
    set.add(s)
    s.on('close', () => set.delete(s))
    s.on('error', () => {})
    let preamble = ''
    let reader: RespReader | null = null
    s.on('data', (chunk: Buffer) => {
      if (!reader) {
        preamble += chunk.toString('latin1')
        const end = preamble.indexOf('\r\n')
        if (end < 0) return
        const m = /^FTLAB-SESSION (\S+)$/.exec(preamble.slice(0, end))
        if (!m) {
          s.destroy()
          return
        }
        ;(s as Socket & { clientId?: string }).clientId = m[1]
        reader = new RespReader()
        chunk = Buffer.from(preamble.slice(end + 2), 'latin1')
      }
      for (const v of reader.push(chunk)) this.onRequest(r, s, v)
    })
  }

  private onRequest(r: number, s: Socket, v: RespValue): void {
    if (!Array.isArray(v) || v[0] !== 'FTREQ') {
      s.write(encodeValue(new RespError('ERR expected FTREQ')))
      return
    }
    const [, clientId, seqText, cmd, ...args] = v as string[]
    const req: Request = { replica: r, clientId, seq: Number(seqText), cmd, args }
    this.requests.push(req)
    this.emit('request', req)
    if (r !== this.live) {
      if (this.refusal) s.write(encodeValue(new RespError(this.refusal)))
      return
    }
    const tag = `${clientId}:${req.seq}`
    if (this.swallow.delete(tag)) return
    let table = this.replies.get(clientId)
    if (!table) this.replies.set(clientId, (table = new Map()))
    let reply = table.get(req.seq)
    if (reply === undefined) {
      reply = this.execute(cmd, args)
      table.set(req.seq, reply)
      this.executed.push(req)
    }
    const frame = encodeValue([req.seq, reply])
    s.write(frame)
    if (this.doubleSend) s.write(frame)
  }

  private execute(cmd: string, args: string[]): RespValue {
    switch (cmd.toUpperCase()) {
      case 'SET':
        this.kv.set(args[0], args[1])
        return 'OK'
      case 'GET':
        return this.kv.get(args[0]) ?? null
      case 'INCR': {
        const n = Number(this.kv.get(args[0]) ?? '0') + 1
        this.kv.set(args[0], String(n))
        return n
      }
      default:
        return new RespError(`ERR unknown command '${cmd}'`)
    }
  }
}
