// One replica incarnation in the simulated world: the real ReplicaCore and the real edge
// (agent/replica/edge.ts), with their ports bound to the virtual clock and the simulated
// network instead of sockets and timers. The seeded simulator and the simulated lab both
// build their replicas here, so both run exactly the edge that runs on hosts.
import { PASS_FILTER, type LinkFilter } from '../agent/faults/filter.js'
import type { ReplicaCore } from '../agent/replica/core.js'
import { ReplicaEdge, type ClientHandle, type ClientPort, type EdgeLog, type EdgeObserver } from '../agent/replica/edge.js'
import type { DiskReq, DiskRes, PeerMsg } from '../agent/replica/types.js'
import { CodecError, decode, encode } from '../agent/net/codec.js'
import { approxBytes } from '../agent/replica/size.js'
import type { Vmm } from '../agent/vmm/types.js'
import type { EventQueue, LinkQuality, Network } from './world.js'

/** Where a replica's messages go: the current incarnation of a replica, and the disk server. */
export interface SimRoutes {
  replica(id: string): SimReplica | undefined
  disk: SimDiskEndpoint
}

/** The disk server as the network sees it: one named endpoint that answers requests. */
export interface SimDiskEndpoint {
  readonly id: string
  /** false while the disk server is down or paused: the request is lost (or parked) */
  handle(from: string, req: DiskReq, answer: (res: DiskRes) => void): void
  /**
   * Which run of the disk server process this is (it changes when the server restarts). A
   * restart breaks every connection: nothing sent to the old process arrives at the new one,
   * and no answer of the old one arrives after it. Absent: the server never restarts.
   */
  epoch?(): number
}

export interface SimReplicaOptions {
  id: string
  /** incarnation number: a restarted replica is a new process that never sees the old one's answers */
  inc: number
  q: EventQueue
  net: Network
  routes: SimRoutes
  core: ReplicaCore
  vmm: Vmm
  guest: string
  heartbeatMs: number
  diskRetryMs: number
  /** no answer from the disk server within this long: the request is reported unreachable */
  diskTimeoutMs: number
  peerLink: LinkQuality
  diskLink: LinkQuality
  /** the logging channel's frame limit (in approxBytes): a larger message is refused, as a link refuses it, and the edge tells the core */
  frameLimit?: number
  onRefused?: (msg: PeerMsg, bytes: number) => void
  /** wall-clock ms at virtual time 0 */
  epoch: number
  /** the agent's transport filter (client traffic obeys `isolate`); pass-through when absent */
  filter?: LinkFilter
  emit?: (type: string, data: Record<string, unknown>) => void
  log?: EdgeLog
  observer?: EdgeObserver
  /** drill experiment 'read-fast-path': the edge answers reads unlogged (agent/replica/fast-path.ts) */
  readFastPath?: boolean
  /** the disk server's answer reached this replica (the checker's view of what it knows) */
  diskAnswered?: (req: DiskReq, res: DiskRes) => void
}

const SILENT: EdgeLog = { info: () => {}, warn: () => {}, error: () => {} }

export class SimReplica {
  readonly id: string
  readonly inc: number
  readonly edge: ReplicaEdge
  alive = true
  paused = false
  /** deliveries that arrived while paused: a frozen process finds them in its socket buffers */
  private inbox: (() => void)[] = []

  constructor(private readonly o: SimReplicaOptions) {
    this.id = o.id
    this.inc = o.inc
    const { q, net } = o
    const timers = {
      set: (fn: () => void, ms: number) => {
        const h = { cancelled: false }
        q.schedule(q.now + ms, () => this.deliver(() => h.cancelled || fn()))
        return h
      },
      clear: (h: unknown) => {
        if (h) (h as { cancelled: boolean }).cancelled = true
      }
    }
    let nextDiskId = 1
    this.edge = new ReplicaEdge(
      o.core,
      o.vmm,
      {
        clock: { now: () => q.now, wall: () => o.epoch + q.now },
        timers,
        peer: {
          send: (to: string, msg: PeerMsg) => {
            if (o.frameLimit !== undefined) {
              const bytes = approxBytes(msg)
              if (bytes > o.frameLimit) {
                o.onRefused?.(msg, bytes)
                return `message of about ${bytes} bytes exceeds the frame limit of ${o.frameLimit}`
              }
            }
            // the wire carries bytes, as a host's link does: the receiver never holds the sender's objects
            let wire: Uint8Array
            try {
              wire = encode(msg)
            } catch (err) {
              return `cannot encode the message: ${err instanceof CodecError ? err.message : String(err)}`
            }
            net.send(this.id, to, o.peerLink, () => {
              const target = o.routes.replica(to)
              target?.deliver(() => target.edge.peerMessage(decode(wire) as PeerMsg))
            })
          },
          connect: () => {},
          hangUp: () => {},
          connected: (peer: string) => o.routes.replica(peer)?.alive === true && !net.isCut(this.id, peer) && !net.isCut(peer, this.id),
          stats: () => ({ bytesSent: 0, bytesReceived: 0 })
        },
        disk: {
          request: (req: DiskReq, done: (res: DiskRes | null, problem?: string) => void) => {
            // like the disk client: answers by a wire id of this incarnation, a timeout reports unreachable
            const wireId = nextDiskId++
            let settled = false
            const settle = (res: DiskRes | null) => {
              if (settled) return
              settled = true
              done(res ? { ...res, id: req.id } : null)
            }
            timers.set(() => settle(null), o.diskTimeoutMs)
            const disk = o.routes.disk
            const wire = encode({ ...req, id: wireId })
            // the connection this request travels on belongs to one run of the disk server
            const epoch = disk.epoch?.()
            const sameRun = () => disk.epoch?.() === epoch
            net.send(this.id, disk.id, o.diskLink, () => {
              if (!sameRun()) return
              disk.handle(this.id, decode(wire) as DiskReq, (res) => {
                if (!sameRun()) return
                const back = encode(res)
                net.send(disk.id, this.id, o.diskLink, () =>
                  this.deliver(() => {
                    if (!sameRun()) return
                    const answer = decode(back) as DiskRes
                    if (!settled) o.diskAnswered?.(req, answer)
                    settle(answer)
                  })
                )
              })
            })
          }
        },
        // a host's event-loop turn is one simulated event: deferred client inputs are performed right after it,
        // at the same simulated time (a paused process performs them when it resumes, a dead one never)
        turnEnd: (fn: () => void) => q.schedule(q.now, () => this.deliver(fn)),
        filter: o.filter ?? PASS_FILTER,
        emit: o.emit ?? (() => {}),
        log: o.log ?? SILENT
      },
      {
        self: o.id,
        guest: o.guest,
        mode: o.vmm.mode,
        heartbeatMs: o.heartbeatMs,
        diskRetryMs: o.diskRetryMs,
        observer: o.observer,
        ...(o.readFastPath === true ? { readFastPath: true } : {})
      }
    )
  }

  /** Arm the edge's timers and perform the core's first actions. */
  start(): this {
    this.edge.start()
    return this
  }

  /** Runs `fn` on the node if this incarnation is still up; holds it while the node is paused. */
  deliver(fn: () => void): void {
    if (!this.alive || this.o.routes.replica(this.id) !== this) return
    if (this.paused) this.inbox.push(fn)
    else fn()
  }

  /** Fail-stop: the process is gone, with its timers, its sockets and whatever it had not sent. */
  kill(): void {
    if (!this.alive) return
    this.alive = false
    this.inbox = []
    this.edge.stop()
  }

  pause(): void {
    if (this.alive) this.paused = true
  }

  resume(): void {
    if (!this.paused) return
    this.paused = false
    const inbox = this.inbox
    this.inbox = []
    for (const fn of inbox) this.deliver(fn)
  }
}

/**
 * A client's byte stream to a replica's service port, carried by the simulated network as
 * a TCP connection would be: in order, never duplicated, and broken (not thinned) by loss.
 * The client side is whoever made it: a simulated client, or a real socket (the simulated lab).
 */
export class SimStream {
  private handle: ClientHandle | null = null
  /** each side's view: the client may still be writing when the replica has closed, and back */
  private clientOpen = true
  private serverOpen = true
  private paused = false
  private parked: Uint8Array[] = []
  private broken = false

  constructor(
    private readonly net: Network,
    private readonly q: EventQueue,
    readonly clientId: string,
    readonly node: SimReplica,
    private readonly link: LinkQuality,
    /** the client side: bytes from the replica, the end of the stream, and (for a real socket) back-pressure */
    private readonly toClient: { data(bytes: Uint8Array): void; closed(): void; pause?(): void; resume?(): void }
  ) {
    net.send(
      clientId,
      node.id,
      link,
      () => node.deliver(() => this.accept()),
      () => this.break()
    )
  }

  get isOpen(): boolean {
    return this.clientOpen && !this.broken
  }

  /** The client writes. */
  write(bytes: Uint8Array): void {
    if (!this.clientOpen || this.broken) return
    this.net.send(
      this.clientId,
      this.node.id,
      this.link,
      () => this.node.deliver(() => this.arrive(bytes)),
      () => this.break()
    )
  }

  /** The client closes its side. */
  close(): void {
    if (!this.clientOpen) return
    this.clientOpen = false
    this.net.send(
      this.clientId,
      this.node.id,
      this.link,
      () => this.node.deliver(() => this.serverClosed()),
      () => this.break()
    )
  }

  private accept(): void {
    if (!this.serverOpen) return
    const port: ClientPort = {
      remote: this.clientId,
      write: (data) => this.sendToClient(data),
      end: (text) => {
        if (text !== undefined) this.sendToClient(new TextEncoder().encode(text))
        this.serverClose()
      },
      destroy: () => this.serverClose(),
      pause: () => {
        this.paused = true
        this.toClient.pause?.()
      },
      resume: () => {
        this.paused = false
        this.toClient.resume?.()
        // a resumed socket hands over what it buffered first, in order, then what comes after
        this.q.schedule(this.q.now, () => this.node.deliver(() => this.drain()))
      }
    }
    this.handle = this.node.edge.accept(port)
  }

  private arrive(bytes: Uint8Array): void {
    if (!this.serverOpen || !this.handle || this.broken) return
    if (this.paused || this.parked.length > 0) return void this.parked.push(bytes)
    this.handle.data(bytes)
  }

  private drain(): void {
    while (!this.paused && this.serverOpen && this.parked.length > 0) this.handle!.data(this.parked.shift()!)
  }

  private sendToClient(data: Uint8Array): void {
    if (!this.serverOpen) return
    this.net.send(
      this.node.id,
      this.clientId,
      this.link,
      () => this.clientOpen && !this.broken && this.toClient.data(data),
      () => this.break()
    )
  }

  /** the replica's side is gone (closed by either end, or broken) */
  private serverClosed(): void {
    if (!this.serverOpen) return
    this.serverOpen = false
    this.handle?.closed()
  }

  private clientClosed(): void {
    if (!this.clientOpen) return
    this.clientOpen = false
    this.toClient.closed()
  }

  /** The replica closes or resets the connection; the client learns it after what was sent before. */
  private serverClose(): void {
    if (!this.serverOpen) return
    this.q.schedule(this.q.now, () => this.serverClosed())
    this.net.send(
      this.node.id,
      this.clientId,
      this.link,
      () => this.clientClosed(),
      () => this.break()
    )
  }

  /** A lost segment: the connection breaks, as a TCP stream that cannot skip bytes would. */
  private break(): void {
    // nothing after the gap is delivered, on either side; both ends learn it as soon as they look
    if (this.broken) return
    this.broken = true
    this.q.schedule(this.q.now, () => this.node.deliver(() => this.serverClosed()))
    this.q.schedule(this.q.now, () => this.clientClosed())
  }
}
