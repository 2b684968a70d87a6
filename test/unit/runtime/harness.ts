// An in-process replicated service on 127.0.0.1 for runtime tests: a disk-server role and
// two replica runtimes (a primary, b its backup), each with its own agent context, real
// sockets, real timers. Every test gets its own, and `close()` stops everything it started.
import { randomBytes } from 'node:crypto'
import { EventEmitter, once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../../../agent/agent.js'
import type { RoleHandle } from '../../../agent/context.js'
import type { AgentStatus, Endpoint } from '../../../agent/control/protocol.js'
import { startDiskServerRole } from '../../../agent/disk/role.js'
import { NULL_LOGGER } from '../../../agent/log.js'
import { startReplica } from '../../../agent/replica/runtime.js'
import { encodeCommand, RespReader, type RespValue } from '../../../main/load/resp.js'

export interface Replica {
  id: string
  agent: Agent
  handle: RoleHandle
  service: Endpoint
  /** every event the runtime emitted, as it happens */
  events: EventEmitter
  status(): Partial<AgentStatus>
}

export interface Pair {
  a: Replica
  b: Replica
  disk: { agent: Agent; handle: RoleHandle }
  close(): Promise<void>
}

const TIMING = { heartbeatMs: 50, suspectMs: 400 }

function agentFor(id: string, dirs: string[]): { agent: Agent; events: EventEmitter } {
  const dataDir = mkdtempSync(join(tmpdir(), `ftlab-rt-${id}-`))
  dirs.push(dataDir)
  const boot = { id, labKey: LAB_KEY, controlToken: randomBytes(32).toString('hex'), controlPort: 0, dataDir }
  const agent = new Agent({ boot, log: NULL_LOGGER, startReplica })
  const events = new EventEmitter()
  const emit = agent.ctx.emit
  agent.ctx.emit = (type, data) => {
    emit(type, data)
    events.emit(type, data)
    events.emit('*', type, data)
  }
  return { agent, events }
}

let LAB_KEY = ''

/** Poll `ok` on the event loop until it holds (status has no event to wait on). */
export async function until<T>(what: string, ok: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = ok()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

export async function startPair(): Promise<Pair> {
  LAB_KEY = randomBytes(32).toString('hex')
  const dirs: string[] = []
  const stops: (() => Promise<unknown>)[] = []
  const close = async () => {
    while (stops.length) await stops.pop()!().catch(() => {})
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
  try {
    const d = agentFor('disk', dirs)
    const diskHandle = await startDiskServerRole({ role: 'disk-server', listen: { host: '127.0.0.1', port: 0 }, blockSize: 4096 }, d.agent.ctx)
    stops.push(() => diskHandle.stop())
    const disk = diskHandle.result.listen
    const spec = (as: 'primary' | 'backup', peer: { id: string; channel: Endpoint }) =>
      ({
        role: 'replica',
        as,
        gen: 1,
        guest: 'kv',
        mode: 'rsm',
        channel: { host: '127.0.0.1', port: 0 },
        service: { host: '127.0.0.1', port: 0 },
        peer,
        disk,
        timing: TIMING
      }) as const
    const replica = async (id: string, as: 'primary' | 'backup', peer: { id: string; channel: Endpoint }): Promise<Replica> => {
      const { agent, events } = agentFor(id, dirs)
      const handle = await startReplica(spec(as, peer), agent.ctx)
      stops.push(() => handle.stop())
      const result = handle.result as { channel: Endpoint; service: Endpoint }
      return { id, agent, handle, service: result.service, events, status: () => handle.status() }
    }
    // the backup listens on the logging channel, the primary dials it
    const b = await replica('b', 'backup', { id: 'a', channel: { host: '127.0.0.1', port: 1 } })
    const bChannel = { host: '127.0.0.1', port: b.status().replica!.channelPort }
    const a = await replica('a', 'primary', { id: 'b', channel: bChannel })
    await until('the backup to hold the boot entry', () => (b.status().channel?.lastEntry ?? 0) >= 1 && a.status().channel?.connected)
    return { a, b, disk: { agent: d.agent, handle: diskHandle }, close }
  } catch (err) {
    await close()
    throw err
  }
}

/** A raw client socket that collects every RESP value it is sent. */
export class RawClient {
  readonly socket: Socket
  readonly values: RespValue[] = []
  private readonly reader = new RespReader()
  private readonly bus = new EventEmitter()
  closed = false
  /** the service closed its side */
  ended = false

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      for (const v of this.reader.push(chunk)) {
        this.values.push(v)
        this.bus.emit('value')
      }
    })
    socket.on('error', () => {})
    socket.on('end', () => {
      this.ended = true
      this.bus.emit('value')
    })
    socket.on('close', () => {
      this.closed = true
      this.bus.emit('value')
    })
  }

  /** `allowHalfOpen`: keep this side open after the service has closed its side */
  static async connect(ep: Endpoint, opts: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
    const s = createConnection({ port: ep.port, host: ep.host, allowHalfOpen: opts.allowHalfOpen ?? false })
    await once(s, 'connect')
    return new RawClient(s)
  }

  /** Wait until the service has closed its side of the connection. */
  async untilEnded(): Promise<void> {
    while (!this.ended && !this.closed) await once(this.bus, 'value')
  }

  write(b: Buffer | string): void {
    this.socket.write(b)
  }

  /** Wait until `pred` holds over the values received so far. */
  async until(pred: (vs: RespValue[]) => boolean): Promise<RespValue[]> {
    while (!pred(this.values)) {
      if (this.closed || this.ended) throw new Error(`the connection closed; got ${JSON.stringify(this.values)}`)
      await once(this.bus, 'value')
    }
    return this.values
  }

  destroy(): Promise<void> {
    if (this.closed) return Promise.resolve()
    const done = once(this.socket, 'close').then(() => undefined)
    this.socket.destroy()
    return done
  }
}

export const ftreq = (client: string, seq: number, ...cmd: (string | number)[]): Buffer => encodeCommand(['FTREQ', client, seq, ...cmd])
export const preamble = (client: string): string => `FTLAB-SESSION ${client}\r\n`
