// The replica role on a real host: the shared edge (edge.ts) bound to the world. This file
// only binds ports: the logging-channel links, the disk client (or etcd for the
// test-and-set), the client service port, real timers and the monotonic clock. What the
// core's actions mean is decided in edge.ts, which the simulator runs too.
import { createServer, type Server, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { AgentContext, ReplicaSpec, StartReplica } from '../context.js'
import type { Endpoint } from '../control/protocol.js'
import { DiskClient, DiskUnreachableError } from '../disk/client.js'
import { dialLink, listenLinks, type DialedLink, type Link, type LinkListener } from '../net/link.js'
import { guestNames } from '../guests/index.js'
import { createVmm } from '../vmm/vmm.js'
import type { Entropy } from '../vmm/types.js'
import { ReplicaCore, defaultReplicaConfig } from './core.js'
import type { DiskReq, DiskRes, PeerMsg, ReplicaConfig } from './types.js'
import { EtcdArbiter, etcdPrefixForLab } from '../arbiter/etcd.js'
import { checkReplicaSpec } from './spec.js'
import { ReplicaEdge, type DiskPort, type PeerPort, type TimerPort } from './edge.js'

export { SESSION_PREAMBLE, MAX_WAITING_BYTES_PER_SESSION, MAX_WAITING_BYTES, MAX_WAITING_SESSIONS, CLIENTS_PEER } from './edge.js'

/** Real entropy for the devices, drawn in blocks: crypto per call would cost more than the guest. */
function hostEntropy(): Entropy {
  let pool = randomBytes(4096)
  let at = 0
  return {
    now: () => Date.now(),
    u32: () => {
      if (at + 4 > pool.length) {
        pool = randomBytes(4096)
        at = 0
      }
      const v = pool.readUInt32LE(at)
      at += 4
      return v
    }
  }
}

/** What a guest's replica device reads: `field:value` lines. */
function replicaFacts(self: string, s: ReturnType<ReplicaEdge['status']>): string {
  const c = s.channel
  const lines = [
    `ftlab_replica:${self}`,
    `ftlab_role:${s.role ?? 'unknown'}`,
    `ftlab_generation:${s.gen ?? 0}`,
    `ftlab_peer:${s.replica?.peer ?? ''}`,
    `ftlab_channel_connected:${c?.connected ? 1 : 0}`,
    `ftlab_channel_last_entry:${c?.lastEntry ?? 0}`,
    `ftlab_channel_acked:${c?.acked ?? 0}`,
    `ftlab_channel_lag_entries:${c?.unackedEntries ?? 0}`,
    `ftlab_channel_lag_bytes:${c?.unackedBytes ?? 0}`,
    `ftlab_held_outputs:${c?.heldOutputs ?? 0}`
  ]
  return lines.join('\n') + '\n'
}

/** The core's configuration for a replica spec: the same on hosts and in the simulated lab. */
export function replicaConfig(self: string, spec: ReplicaSpec): ReplicaConfig {
  return {
    ...defaultReplicaConfig(self, spec.peer?.id ?? null),
    mode: spec.mode,
    heartbeatMs: spec.timing.heartbeatMs,
    suspectMs: spec.timing.suspectMs,
    diskRetryMs: Math.max(50, Math.min(spec.timing.heartbeatMs * 2, 500)),
    ...(spec.noOutputRule === true ? { noOutputRule: true } : {})
  }
}

/**
 * How long the agent waits for a restore onto a new backup: 15 s, and a second per MB of guest (cutting, sending and
 * loading the snapshot on a busy host). A fixed 15 s failed the restore of a million keys (28 MB) while it went on.
 */
export const restoreWaitMs = (guestBytes: number): number => 15_000 + Math.ceil(guestBytes / 1000)

const realTimers: TimerPort = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as NodeJS.Timeout | undefined)
}

export const startReplica: StartReplica = async (spec: ReplicaSpec, ctx: AgentContext) => {
  checkReplicaSpec(spec, guestNames)
  const self = ctx.boot.id
  // the guest's replica device (kv's INFO replication): this replica's role, generation and channel lag, read on
  // the primary and logged, so the backup replays the same text
  const entropy: Entropy = { ...hostEntropy(), replica: () => (edge === null ? '' : replicaFacts(self, edge.status({ channelPort: 0, servicePort: 0 }))) }
  const vmm = createVmm({ guest: spec.guest, mode: spec.mode, entropy })
  const cfg = replicaConfig(self, spec)
  const now = () => performance.now()

  // ---- the logging channel: every replica listens (it may be made a backup later);
  // a primary dials its backup.
  const listener: LinkListener = await listenLinks({
    selfId: self,
    key: ctx.labKey,
    filter: ctx.filter,
    host: spec.channel.host,
    port: spec.channel.port
  }).catch((err: Error) => {
    throw new Error(`replica ${self}: cannot listen for the logging channel on ${spec.channel.host}:${spec.channel.port}: ${err.message}`)
  })
  const dialed = new Map<string, DialedLink>()
  const dialedAt = new Map<string, string>()
  const wired = new WeakSet<Link>()
  let edge: ReplicaEdge | null = null
  const wire = (link: Link) => {
    if (wired.has(link)) return
    wired.add(link)
    link.on('message', (msg) => edge?.peerMessage(msg as PeerMsg))
    link.on('up', (peer) => ctx.emit('channel-link', { peer, state: 'up' }))
    link.on('down', (reason) => ctx.emit('channel-link', { peer: link.peerId, state: 'down', reason }))
    link.on('dropped', (r) => ctx.emit('dropped', { ...r }))
  }
  listener.on('link', wire)
  listener.on('dropped', (r) => ctx.emit('dropped', { ...r }))
  const linkTo = (peer: string): Link => dialed.get(peer) ?? listener.link(peer)
  const peerPort: PeerPort = {
    send: (to, msg) => {
      const r = linkTo(to).offer(msg)
      return typeof r === 'object' ? r.refused : undefined
    },
    connect(peer: { id: string; channel: Endpoint }) {
      const at = `${peer.channel.host}:${peer.channel.port}`
      const have = dialed.get(peer.id)
      if (!(have && dialedAt.get(peer.id) === at)) {
        // restore onto another machine keeps the replica id but moves its logging channel; going
        // live drops dialled links, but a restore asked again elsewhere (the first one failed)
        // would otherwise keep dialling the old address
        if (have) {
          have.close()
          dialed.delete(peer.id)
        }
        dialedAt.set(peer.id, at)
        const link = dialLink({
          selfId: self,
          key: ctx.labKey,
          filter: ctx.filter,
          host: peer.channel.host,
          port: peer.channel.port,
          expectPeer: peer.id,
          minBackoffMs: 50,
          maxBackoffMs: 1000
        })
        dialed.set(peer.id, link)
        wire(link)
      }
      wire(listener.link(peer.id))
    },
    hangUp() {
      for (const l of dialed.values()) l.close()
      dialed.clear()
    },
    connected: (peer) => linkTo(peer).up,
    stats() {
      const links = [...dialed.values(), ...listener.allLinks()]
      return {
        bytesSent: links.reduce((acc, l) => acc + l.stats().bytesSent, 0),
        bytesReceived: links.reduce((acc, l) => acc + l.stats().bytesReceived, 0)
      }
    }
  }
  if (spec.as === 'primary' && spec.peer) peerPort.connect(spec.peer)
  else if (spec.peer) wire(listener.link(spec.peer.id))

  // ---- the disk server (block store and test-and-set)
  const disk = new DiskClient({
    selfId: self,
    key: ctx.labKey,
    host: spec.disk.host,
    port: spec.disk.port,
    filter: ctx.filter,
    timeoutMs: Math.max(200, cfg.suspectMs),
    minBackoffMs: 50,
    maxBackoffMs: 1000
  })
  disk.on('dropped', (r) => ctx.emit('dropped', { ...r }))
  disk.on('up', () => ctx.emit('disk-link', { state: 'up' }))
  disk.on('down', (reason) => ctx.emit('disk-link', { state: 'down', reason }))
  const askDisk = (req: DiskReq, done: (res: DiskRes | null, problem?: string) => void) =>
    disk.request(req).then(
      (res) => done(res),
      (err: Error) => done(null, err instanceof DiskUnreachableError ? undefined : err.message)
    )

  // ---- the tie-breaker, where it is not the disk server
  const etcd =
    spec.arbiter?.kind === 'etcd'
      ? new EtcdArbiter({
          endpoints: spec.arbiter.endpoints,
          prefix: spec.arbiter.prefix ?? etcdPrefixForLab(ctx.labKey),
          timeoutMs: Math.max(200, cfg.suspectMs)
        })
      : null
  function tasByEtcd(req: Extract<DiskReq, { op: 'tas' }>, done: (res: DiskRes | null) => void): void {
    etcd!.handle(req).then(async (res) => {
      // An unreachable cluster answers error 'io': the core asks again and never goes live on
      // it. A loss is final.
      if (res.verdict !== 'won') return done(res)
      // The disk server fences by generation: it must know who etcd made live before the
      // winner's first write, or that write is refused and the only live replica halts. So
      // the winner goes live only once the disk server follows; until then the core keeps
      // asking (etcd answers the winner "won" again). Only etcd winners ever ask the disk.
      let fencing: string
      try {
        const d = await disk.request({ op: 'tas', gen: req.gen, from: req.from })
        if (d.ok) {
          ctx.emit('arbiter', { kind: 'etcd', gen: req.gen, fencing: 'disk server follows' })
          return done(res)
        }
        fencing = `the disk server refused: ${d.message}`
      } catch (err) {
        fencing = `the disk server has not been told: ${(err as Error).message}`
      }
      ctx.emit('arbiter', { kind: 'etcd', gen: req.gen, fencing })
      done({ id: req.id, ok: false, error: 'io', message: `etcd chose ${req.from} for generation ${req.gen}, but ${fencing}` })
    })
  }
  const diskPort: DiskPort = {
    request: (req, done) => (req.op === 'tas' && etcd ? tasByEtcd(req, done) : askDisk(req, done))
  }

  const core = new ReplicaCore(cfg, vmm, { role: spec.as, gen: spec.gen, now: now() })
  edge = new ReplicaEdge(
    core,
    vmm,
    {
      clock: { now, wall: () => Date.now() },
      timers: realTimers,
      peer: peerPort,
      disk: diskPort,
      filter: ctx.filter,
      emit: (type, data) => ctx.emit(type, data),
      log: ctx.log,
      turnEnd: (fn) => void setImmediate(fn),
      sent: () => {
        for (const l of dialed.values()) l.flush()
        for (const l of listener.allLinks()) l.flush()
        disk.link.flush()
      }
    },
    {
      self,
      guest: spec.guest,
      mode: spec.mode,
      heartbeatMs: cfg.heartbeatMs,
      diskRetryMs: cfg.diskRetryMs,
      ...(spec.readFastPath === true ? { readFastPath: true } : {})
    }
  )
  const theEdge = edge

  // ---- the client service: each TCP connection is one client port of the edge
  const service: Server = createServer((socket: Socket) => {
    socket.setNoDelay(true)
    socket.on('error', () => {})
    const client = theEdge.accept({
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
      // replies released in one turn (a pipelined client's, or a batch the Output Rule let go) leave in one write
      write: (data) => {
        if (!socket.writableCorked) {
          socket.cork()
          process.nextTick(() => socket.uncork())
        }
        socket.write(data)
      },
      end: (text) => void (text === undefined ? socket.end() : socket.end(text)),
      destroy: () => void socket.destroy(),
      pause: () => void socket.pause(),
      resume: () => void socket.resume()
    })
    socket.on('data', (chunk: Buffer) => client.data(chunk))
    socket.on('close', () => client.closed())
  })
  await new Promise<void>((resolve, reject) => {
    service.once('error', (err) => reject(new Error(`replica ${self}: cannot listen for clients on ${spec.service.host}:${spec.service.port}: ${err.message}`)))
    service.listen(spec.service.port, spec.service.host, () => resolve())
  }).catch(async (err) => {
    await listener.close()
    disk.close()
    throw err
  })

  theEdge.start()

  const servicePort = (service.address() as { port: number }).port
  const handle = {
    result: { channel: { host: spec.channel.host, port: listener.port }, service: { host: spec.service.host, port: servicePort } },
    status: () => theEdge.status({ channelPort: listener.port, servicePort }),
    async restore(req: { peer: { id: string; channel: Endpoint }; gen: number }) {
      theEdge.beginRestore(req.peer, req.gen)
      // answer once the new backup holds the snapshot and the new generation runs; a large guest takes its time (the
      // core gives up on a joining replica that answers but takes no part, or falls silent, long before this)
      return theEdge.waitRestored(req.peer, req.gen, restoreWaitMs(vmm.memoryBytes()))
    },
    async stop() {
      theEdge.stop()
      await new Promise<void>((r) => service.close(() => r()))
      peerPort.hangUp()
      await listener.close()
      disk.close()
    }
  }
  ctx.log.info('replica started', { as: spec.as, gen: spec.gen, guest: spec.guest, mode: spec.mode, channel: listener.port, service: servicePort })
  return handle
}
