// The disk server role: the DiskArbiter served over authenticated links. Each request's
// `from` must be the peer the link authenticated, so one replica cannot write, win a
// test-and-set or begin a generation in another's name.
import type { DiskReq, DiskRes, DiskStatus } from '../replica/types.js'
import type { LinkFilter } from '../faults/filter.js'
import { type DropReport, type Link, LinkListener } from '../net/link.js'
import { DiskArbiter, type BlockStore } from './arbiter.js'

export interface DiskServerOptions {
  selfId: string
  key: Uint8Array
  host: string
  /** 0 = any free port */
  port: number
  store: BlockStore
  blockSize?: number
  filter?: LinkFilter
  maxFrameBytes?: number
  /** things worth showing: test-and-set verdicts, new generations, fenced writes, refused frames */
  onEvent?: (type: string, data: Record<string, unknown>) => void
}

export class DiskServer {
  readonly arbiter: DiskArbiter
  private readonly listener: LinkListener

  private constructor(private readonly opts: DiskServerOptions) {
    this.arbiter = new DiskArbiter(opts.store, { blockSize: opts.blockSize })
    this.listener = new LinkListener({
      selfId: opts.selfId,
      key: opts.key,
      host: opts.host,
      port: opts.port,
      filter: opts.filter,
      maxFrameBytes: opts.maxFrameBytes
    })
    this.listener.on('dropped', (r: DropReport) => this.event('dropped', { ...r }))
    this.listener.on('link', (link) => this.serve(link))
  }

  static async start(opts: DiskServerOptions): Promise<DiskServer> {
    const s = new DiskServer(opts)
    await s.listener.listen()
    return s
  }

  get port(): number {
    return this.listener.port
  }

  status(): DiskStatus {
    return this.arbiter.status()
  }

  links(): Link[] {
    return this.listener.allLinks()
  }

  async close(): Promise<void> {
    await this.listener.close()
    try {
      this.opts.store.flush()
    } catch (err) {
      this.event('error', { message: `flushing the disk store on close failed: ${(err as Error).message}` })
    }
  }

  private event(type: string, data: Record<string, unknown>): void {
    try {
      this.opts.onEvent?.(type, data)
    } catch {
      // an observer's failure must not stop the disk from serving
    }
  }

  private serve(link: Link): void {
    const peer = link.peerId!
    link.on('up', () => this.event('disk-peer', { peer, up: true }))
    link.on('down', (reason) => this.event('disk-peer', { peer, up: false, reason }))
    this.event('disk-peer', { peer, up: true })
    link.on('message', (msg) => {
      const res = this.answer(peer, msg)
      // An accepted write is acknowledged only once it is on stable storage. Answers wait for one fsync per turn of
      // the event loop (group commit), and every answer queued behind a write waits too, so they leave in order.
      if (this.unsynced.length > 0 || (res.ok && (msg as DiskReq).op === 'write')) this.afterSync(link, res)
      else link.send(res)
    })
  }

  private readonly unsynced: [Link, DiskRes][] = []

  private afterSync(link: Link, res: DiskRes): void {
    this.unsynced.push([link, res])
    if (this.unsynced.length === 1) setImmediate(() => this.sync())
  }

  private sync(): void {
    const answers = this.unsynced.splice(0)
    try {
      this.opts.store.flush()
    } catch (err) {
      // the writes may not have reached the disk: tell the writers so, and let them retry
      const message = `disk store fsync failed: ${(err as Error).message}`
      this.event('error', { op: 'flush', message })
      for (const [link, res] of answers) link.send(res.ok ? { id: res.id, ok: false, error: 'io', message } : res)
      return
    }
    for (const [link, res] of answers) link.send(res)
    // the batch's answers leave now, not a turn later: a writer waits for them, and the next requests may be read first
    for (const link of new Set(answers.map(([l]) => l))) link.flush()
  }

  private answer(peer: string, msg: unknown): DiskRes {
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      this.event('dropped', { what: 'message', from: peer, why: 'disk request is not an object' })
      return { id: 0, ok: false, error: 'bad-request', message: 'disk request must be an object' }
    }
    const req = msg as DiskReq & { from?: unknown }
    const id = typeof req.id === 'number' ? req.id : 0
    if ((req.op === 'write' || req.op === 'tas' || req.op === 'generation') && req.from !== peer) {
      this.event('dropped', { what: 'message', from: peer, why: `request ${req.op} claims to be from ${JSON.stringify(req.from)}` })
      return {
        id,
        ok: false,
        error: 'bad-request',
        message: `${req.op} from ${JSON.stringify(req.from)} refused: this link is authenticated as ${JSON.stringify(peer)}`
      }
    }
    const before = this.arbiter.status()
    const res = this.arbiter.handle(req)
    this.observe(peer, req, res, before)
    return res
  }

  private observe(peer: string, req: DiskReq, res: DiskRes, before: DiskStatus): void {
    if (req.op === 'tas')
      this.event('disk-tas', { gen: req.gen, from: peer, won: res.ok, winner: res.winner ?? null, first: res.ok && before.tasWinner === null })
    else if (req.op === 'generation' && res.ok && before.gen !== req.gen)
      this.event('disk-generation', { gen: req.gen, primary: req.primary, backup: req.backup, from: peer })
    else if (!res.ok && res.error === 'fenced') this.event('disk-fenced', { op: req.op, from: peer, message: res.message })
    else if (!res.ok && res.error === 'io') this.event('error', { op: req.op, from: peer, message: res.message })
  }
}
