// The replica role on a real host: the edge around the deterministic protocol core.
// Everything that touches the world lives here and only here: the logging-channel links,
// the disk client, the client service port, real timers and the monotonic clock. The core
// (core.ts) gets events and hands back actions; this file performs them.
import { createServer, type Server, type Socket } from 'node:net'
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { AgentContext, ReplicaSpec, RoleHandle, StartReplica } from '../context.js'
import type { AgentStatus, Endpoint } from '../control/protocol.js'
import { DiskClient, DiskUnreachableError } from '../disk/client.js'
import { dialLink, listenLinks, type DialedLink, type Link, type LinkListener } from '../net/link.js'
import { guestNames } from '../guests/index.js'
import { createVmm } from '../vmm/vmm.js'
import type { ConnId, Entropy, GuestInput, IoRequest, Output } from '../vmm/types.js'
import { ReplicaCore, defaultReplicaConfig } from './core.js'
import type { Action, DiskReq, PeerMsg, Telemetry } from './types.js'
import { EtcdArbiter, etcdPrefixForLab } from '../arbiter/etcd.js'
import { ChannelTelemetry } from './telemetry.js'
import { checkReplicaSpec } from './spec.js'

/** The session preamble an FT Lab client sends first, so it keeps its connection id across failover. */
export const SESSION_PREAMBLE = 'FTLAB-SESSION '
const MAX_PREAMBLE_BYTES = 256
/** how long a re-emitted reply waits for its session to reconnect to this replica */
const SESSION_GRACE_MS = 10_000
/**
 * Bounds on replies kept for sessions that are away. Dropping one is always safe: the client
 * retries with the same seq and the guest answers from its reply table. A session client
 * has one request in flight, so the newest replies are the ones kept, up to this many bytes
 * (one input's replies are one output: an output above the bound is not kept at all).
 */
export const MAX_WAITING_BYTES_PER_SESSION = 1024 * 1024
/** all sessions together; past either bound the session fed longest ago goes first */
export const MAX_WAITING_BYTES = 64 * 1024 * 1024
export const MAX_WAITING_SESSIONS = 4096
/** the service traffic's name in the transport filter: `isolate` cuts clients off too */
export const CLIENTS_PEER = 'clients'

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

interface ServiceConn {
  socket: Socket
  id: ConnId | null
  /** bytes before the connection's id is known (the preamble may be split) */
  head: Buffer
}

export const startReplica: StartReplica = async (spec: ReplicaSpec, ctx: AgentContext) => {
  checkReplicaSpec(spec, guestNames)
  const self = ctx.boot.id
  const vmm = createVmm({ guest: spec.guest, mode: spec.mode, entropy: hostEntropy() })
  const cfg = {
    ...defaultReplicaConfig(self, spec.peer?.id ?? null),
    mode: spec.mode,
    heartbeatMs: spec.timing.heartbeatMs,
    suspectMs: spec.timing.suspectMs,
    diskRetryMs: Math.max(50, Math.min(spec.timing.heartbeatMs * 2, 500))
  }
  const now = () => performance.now()
  const telemetry = new ChannelTelemetry((type, data) => ctx.emit(type, data))

  // ---- the logging channel: every replica listens (it may be made a backup later);
  // a primary dials its backup.
  const listener: LinkListener = await listenLinks({ selfId: self, key: ctx.labKey, filter: ctx.filter, host: spec.channel.host, port: spec.channel.port }).catch(
    (err: Error) => {
      throw new Error(`replica ${self}: cannot listen for the logging channel on ${spec.channel.host}:${spec.channel.port}: ${err.message}`)
    }
  )
  const dialed = new Map<string, DialedLink>()
  const wired = new WeakSet<Link>()
  const wire = (link: Link) => {
    if (wired.has(link)) return
    wired.add(link)
    link.on('message', (msg) => {
      const m = msg as PeerMsg
      if (m?.t === 'entries' && Array.isArray(m.entries)) telemetry.received(m.entries.length)
      step({ t: 'peer', now: now(), msg: m })
    })
    link.on('up', (peer) => ctx.emit('channel-link', { peer, state: 'up' }))
    link.on('down', (reason) => ctx.emit('channel-link', { peer: link.peerId, state: 'down', reason }))
    link.on('dropped', (r) => ctx.emit('dropped', { ...r }))
  }
  listener.on('link', wire)
  listener.on('dropped', (r) => ctx.emit('dropped', { ...r }))
  const dialedAt = new Map<string, string>()
  const dialPeer = (peer: { id: string; channel: Endpoint }) => {
    const at = `${peer.channel.host}:${peer.channel.port}`
    const have = dialed.get(peer.id)
    if (have && dialedAt.get(peer.id) === at) return
    // restore onto another machine keeps the replica id but moves its logging channel; going
    // live drops dialled links, but a restore asked again elsewhere (the first one failed)
    // would otherwise keep dialling the old address
    if (have) {
      have.close()
      dialed.delete(peer.id)
    }
    dialedAt.set(peer.id, at)
    const link = dialLink({ selfId: self, key: ctx.labKey, filter: ctx.filter, host: peer.channel.host, port: peer.channel.port, expectPeer: peer.id, minBackoffMs: 50, maxBackoffMs: 1000 })
    dialed.set(peer.id, link)
    wire(link)
  }
  const linkTo = (peer: string): Link => dialed.get(peer) ?? listener.link(peer)
  if (spec.as === 'primary' && spec.peer) dialPeer(spec.peer)
  if (spec.peer) wire(listener.link(spec.peer.id))

  // ---- the disk server (block store and test-and-set)
  const disk = new DiskClient({ selfId: self, key: ctx.labKey, host: spec.disk.host, port: spec.disk.port, filter: ctx.filter, timeoutMs: Math.max(200, cfg.suspectMs), minBackoffMs: 50, maxBackoffMs: 1000 })
  disk.on('dropped', (r) => ctx.emit('dropped', { ...r }))
  disk.on('up', () => ctx.emit('disk-link', { state: 'up' }))
  disk.on('down', (reason) => ctx.emit('disk-link', { state: 'down', reason }))

  // ---- the tie-breaker, where it is not the disk server
  const etcd = spec.arbiter?.kind === 'etcd' ? new EtcdArbiter({ endpoints: spec.arbiter.endpoints, prefix: spec.arbiter.prefix ?? etcdPrefixForLab(ctx.labKey), timeoutMs: Math.max(200, cfg.suspectMs) }) : null
  function tasByEtcd(req: Extract<DiskReq, { op: 'tas' }>): void {
    etcd!.handle(req).then(async (res) => {
      // An unreachable cluster answers error 'io': the core asks again and never goes live on
      // it. A loss is final.
      if (res.verdict !== 'won') return step({ t: 'disk', now: now(), res })
      // The disk server fences by generation: it must know who etcd made live before the
      // winner's first write, or that write is refused and the only live replica halts. So
      // the winner goes live only once the disk server follows; until then the core keeps
      // asking (etcd answers the winner "won" again). Only etcd winners ever ask the disk.
      let fencing: string
      try {
        const d = await disk.request({ op: 'tas', gen: req.gen, from: req.from })
        if (d.ok) {
          ctx.emit('arbiter', { kind: 'etcd', gen: req.gen, fencing: 'disk server follows' })
          return step({ t: 'disk', now: now(), res })
        }
        fencing = `the disk server refused: ${d.message}`
      } catch (err) {
        fencing = `the disk server has not been told: ${(err as Error).message}`
      }
      ctx.emit('arbiter', { kind: 'etcd', gen: req.gen, fencing })
      step({ t: 'disk', now: now(), res: { id: req.id, ok: false, error: 'io', message: `etcd chose ${req.from} for generation ${req.gen}, but ${fencing}` } })
    })
  }

  // ---- the client service
  const conns = new Map<ConnId, ServiceConn>()
  const sockets = new Set<ServiceConn>()
  /** replies re-emitted for a session that has not reconnected to this replica yet */
  const waiting = new Map<ConnId, { data: Uint8Array[]; bytes: number; until: number }>()
  let waitingBytes = 0
  const takeWaiting = (id: ConnId) => {
    const w = waiting.get(id)
    if (!w) return undefined
    waiting.delete(id)
    waitingBytes -= w.bytes
    return w
  }
  const timers = new Map<number, NodeJS.Timeout>()
  let stalled = false
  let stopped = false

  const core = new ReplicaCore(cfg, vmm, { role: spec.as, gen: spec.gen, now: now() })

  function step(ev: Parameters<ReplicaCore['step']>[0]): void {
    if (stopped) return
    try {
      core.step(ev)
    } catch (err) {
      // a fault in the protocol or the guest must be seen, not crash the host's agent
      ctx.log.error('replica step failed', { event: ev.t, message: (err as Error).message })
      ctx.emit('error', { where: `replica ${self} step(${ev.t})`, message: (err as Error).message })
    }
    perform(core.takeActions())
  }

  function perform(actions: Action[]): void {
    for (const a of actions) {
      switch (a.t) {
        case 'send-peer':
          linkTo(a.to ?? core.status().peer ?? '').send(a.msg)
          if (a.msg.t === 'entries') telemetry.sent(a.msg)
          break
        case 'send-disk':
          if (a.req.op === 'tas' && etcd) {
            tasByEtcd(a.req)
            break
          }
          disk.request(a.req).then(
            (res) => step({ t: 'disk', now: now(), res }),
            (err: Error) => {
              // no answer: the core retries by itself (diskRetryMs); a replica that cannot
              // reach the disk server never goes live
              if (!(err instanceof DiskUnreachableError)) ctx.log.warn('disk request failed', { op: a.req.op, message: err.message })
            }
          )
          break
        case 'release':
          telemetry.released(a.heldMs)
          deliver(a.out)
          break
        case 'io':
          doIo(a.req)
          break
        case 'role':
          onRole(a.role, a.gen, a.reason)
          break
        case 'stall':
          stalled = a.on
          for (const c of sockets) if (a.on) c.socket.pause()
          else c.socket.resume()
          ctx.emit('stall', { on: a.on })
          break
        case 'telemetry':
          onTelemetry(a.ev)
          break
      }
    }
  }

  function onTelemetry(ev: Telemetry): void {
    if (ev.k === 'entry') telemetry.entry(ev.n, ev.bytes, ev.input)
    else if (ev.k === 'ack') telemetry.ack(ev.n)
    else ctx.emit(ev.k, { ...ev })
  }

  function deliver(out: Output): void {
    if (out.t === 'disk-write') return // disk writes leave through send-disk
    const c = conns.get(out.conn)
    if (c && ctx.filter.outbound(CLIENTS_PEER) === null) {
      // Isolated. The filter works on whole messages, but a client's TCP stream has no
      // message boundaries the filter could respect: dropping a chunk of it would corrupt
      // the stream. A cut network breaks the connection instead; the client reconnects.
      c.socket.destroy()
      return
    }
    if (out.t === 'close') {
      c?.socket.end()
      return
    }
    if (c) {
      c.socket.write(out.data)
    } else if (out.conn.startsWith('s:')) {
      // the client's session has not reached this replica yet (e.g. just after go-live);
      // re-inserted, so the map stays in the order sessions were last fed
      const w = takeWaiting(out.conn) ?? { data: [], bytes: 0, until: 0 }
      w.data.push(out.data)
      w.bytes += out.data.length
      while (w.bytes > MAX_WAITING_BYTES_PER_SESSION) w.bytes -= w.data.shift()!.length
      if (w.data.length === 0) return
      w.until = Date.now() + SESSION_GRACE_MS
      waiting.set(out.conn, w)
      waitingBytes += w.bytes
      for (const id of waiting.keys()) {
        if (id === out.conn || (waiting.size <= MAX_WAITING_SESSIONS && waitingBytes <= MAX_WAITING_BYTES)) break
        takeWaiting(id)
      }
    }
  }

  function doIo(req: IoRequest): void {
    switch (req.t) {
      case 'disk-read': {
        const ask = () =>
          disk.request({ op: 'read', block: req.block }).then(
            (res) => {
              if (res.ok) step({ t: 'input', now: now(), input: { t: 'disk-read', tag: req.tag, block: req.block, data: res.data ?? new Uint8Array(0) } })
              else ctx.emit('error', { where: `disk read of block ${req.block}`, message: res.message })
            },
            () => {
              // the guest waits for this read; keep asking while this replica serves
              const r = core.status().role
              if (!stopped && (r === 'primary' || r === 'live')) setTimeout(ask, cfg.diskRetryMs)
            }
          )
        ask()
        break
      }
      case 'timer-set': {
        clearTimeout(timers.get(req.id))
        timers.set(
          req.id,
          setTimeout(() => {
            timers.delete(req.id)
            step({ t: 'input', now: now(), input: { t: 'timer', id: req.id } })
          }, req.ms)
        )
        break
      }
      case 'timer-cancel':
        clearTimeout(timers.get(req.id))
        timers.delete(req.id)
        break
    }
  }

  function onRole(role: string, gen: number, reason: string): void {
    ctx.log.info('role', { role, gen, reason })
    ctx.emit('replica-role', { role, gen, reason })
    telemetry.newRolePeriod()
    if (role === 'live') {
      // going live alone stops the logging channel
      for (const l of dialed.values()) l.close()
      dialed.clear()
      // Plain TCP connections do not move with the service (no virtual IP): those the old
      // primary held died with it. Close them in the guest, as a NIC would see them reset;
      // FT Lab sessions stay open, their clients reconnect here.
      for (const conn of vmm.openConns()) if (conn.startsWith('t:') && !conns.has(conn)) input({ t: 'close', conn })
    }
    if (role === 'halted') {
      for (const t of timers.values()) clearTimeout(t)
      timers.clear()
      for (const c of sockets) c.socket.destroy()
      // a halted replica serves no session again
      waiting.clear()
      waitingBytes = 0
    }
  }

  const serving = () => {
    const r = core.status().role
    return r === 'primary' || r === 'live'
  }

  function input(i: GuestInput): void {
    step({ t: 'input', now: now(), input: i })
  }

  function onServiceData(c: ServiceConn, chunk: Buffer): void {
    // isolated: break the connection rather than lose part of its byte stream (see deliver)
    if (!ctx.filter.inbound(CLIENTS_PEER)) return void c.socket.destroy()
    if (c.id === null) {
      c.head = c.head.length ? Buffer.concat([c.head, chunk]) : chunk
      const text = c.head.subarray(0, Math.min(c.head.length, SESSION_PREAMBLE.length)).toString('latin1')
      if (SESSION_PREAMBLE.startsWith(text) && c.head.length < SESSION_PREAMBLE.length) return // wait for more
      let rest: Buffer
      if (text === SESSION_PREAMBLE) {
        const nl = c.head.indexOf('\n')
        if (nl < 0) {
          if (c.head.length > MAX_PREAMBLE_BYTES) refuse(c, 'session preamble too long')
          return
        }
        const clientId = c.head.subarray(SESSION_PREAMBLE.length, nl).toString('utf8').replace(/\r$/, '').trim()
        if (!/^[A-Za-z0-9._:-]{1,64}$/.test(clientId)) return refuse(c, `bad session client id ${JSON.stringify(clientId)}`)
        c.id = `s:${clientId}`
        rest = c.head.subarray(nl + 1)
      } else {
        c.id = core.newConnId()
        rest = c.head
      }
      c.head = Buffer.alloc(0)
      const prev = conns.get(c.id)
      if (prev && prev !== c) prev.socket.destroy()
      conns.set(c.id, c)
      // A new TCP connection is a new byte stream, also for a session the guest holds open
      // (a reconnect, or a session that followed the service here): the guest's partial
      // frame from the old stream must not be glued to this one's bytes. 'open' of an open
      // connection resets its stream in the guest; it is an input, so the backup does the same.
      input({ t: 'open', conn: c.id })
      const w = takeWaiting(c.id)
      if (w && w.until >= Date.now()) for (const d of w.data) c.socket.write(d)
      if (rest.length) input({ t: 'data', conn: c.id, data: new Uint8Array(rest) })
      return
    }
    input({ t: 'data', conn: c.id, data: new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength) })
  }

  function refuse(c: ServiceConn, why: string): void {
    c.socket.end(`-ERR ftlab: ${why}\r\n`)
    ctx.emit('dropped', { what: 'client connection', from: `${c.socket.remoteAddress}:${c.socket.remotePort}`, why })
  }

  /** connections told they are not served here: end() waits for the client's side, which may never come */
  const refused = new Set<Socket>()
  const service: Server = createServer((socket) => {
    socket.setNoDelay(true)
    const r = core.status().role
    if (!serving()) {
      // a backup's service is suppressed; tell the client plainly so it moves on
      refused.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => refused.delete(socket))
      socket.end(`-NOTLIVE ftlab replica ${self} is ${r}, not serving\r\n`)
      return
    }
    const c: ServiceConn = { socket, id: null, head: Buffer.alloc(0) }
    sockets.add(c)
    if (stalled) socket.pause()
    socket.on('data', (chunk: Buffer) => onServiceData(c, chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      sockets.delete(c)
      if (c.id === null || conns.get(c.id) !== c) return
      conns.delete(c.id)
      // A plain connection is gone for good; an FT Lab session may come back (to us or the
      // peer). Log the close even if the guest has not seen the open yet (it may be queued
      // behind a stall): inputs keep their order, and a close of an unknown connection is a no-op.
      if (c.id.startsWith('t:') && serving()) input({ t: 'close', conn: c.id })
    })
  })
  await new Promise<void>((resolve, reject) => {
    service.once('error', (err) => reject(new Error(`replica ${self}: cannot listen for clients on ${spec.service.host}:${spec.service.port}: ${err.message}`)))
    service.listen(spec.service.port, spec.service.host, () => resolve())
  }).catch(async (err) => {
    await listener.close()
    disk.close()
    throw err
  })

  const tickMs = Math.max(5, Math.min(50, Math.floor(cfg.heartbeatMs / 4)))
  const ticker = setInterval(() => {
    step({ t: 'tick', now: now() })
    const t = Date.now()
    for (const [id, w] of waiting) if (w.until < t) takeWaiting(id)
  }, tickMs)
  const flusher = setInterval(() => telemetry.flush(core.status()), 200)
  perform(core.takeActions())

  const servicePort = (service.address() as { port: number }).port
  const handle: RoleHandle & { result: unknown } = {
    result: { channel: { host: spec.channel.host, port: listener.port }, service: { host: spec.service.host, port: servicePort } },
    status(): Partial<AgentStatus> {
      const s = core.status()
      const links = [...dialed.values(), ...listener.allLinks()]
      const sum = (k: 'bytesSent' | 'bytesReceived' | 'messagesSent' | 'messagesReceived') => links.reduce((acc, l) => acc + l.stats()[k], 0)
      const t = telemetry.totals()
      return {
        role: s.role,
        gen: s.gen,
        guest: spec.guest,
        mode: spec.mode,
        channel: {
          connected: s.peer !== null && linkTo(s.peer).up,
          lastEntry: s.lastEntry,
          acked: s.acked,
          unackedEntries: s.unackedEntries,
          unackedBytes: s.unackedBytes,
          bytesSent: sum('bytesSent'),
          bytesReceived: sum('bytesReceived'),
          entriesSent: t.entriesSent,
          entriesReceived: t.entriesReceived,
          heldOutputs: s.heldOutputs,
          stalled: s.stalled
        },
        outputRule: t.outputRule,
        replica: { peer: s.peer, releasedThrough: s.releasedThrough, peerSuspected: s.peerSuspected, queuedInputs: s.queuedInputs, clients: conns.size, guestConns: vmm.openConns().length, channelPort: listener.port, servicePort },
        // the agent fills in the process figures; only the guest's size is the role's to say
        memory: { guestBytes: vmm.memoryBytes() } as AgentStatus['memory']
      }
    },
    async restore(req) {
      dialPeer(req.peer)
      wire(listener.link(req.peer.id))
      core.beginRestore(req.peer.id, req.gen, now())
      perform(core.takeActions())
      // answer once the new backup holds the snapshot and the new generation runs
      const deadline = Date.now() + 15_000
      for (;;) {
        const s = core.status()
        if (s.gen === req.gen && s.role === 'primary' && !s.restoring) return { gen: s.gen, backup: req.peer.id }
        if (s.role === 'halted') throw new Error(`replica ${self} halted during restore redundancy`)
        if (Date.now() > deadline) throw new Error(`restore redundancy onto ${req.peer.id} (${req.peer.channel.host}:${req.peer.channel.port}) did not complete within 15 s; is it running as 'joining' for generation ${req.gen}?`)
        await new Promise((r) => setTimeout(r, 20))
      }
    },
    async stop() {
      stopped = true
      clearInterval(ticker)
      clearInterval(flusher)
      for (const t of timers.values()) clearTimeout(t)
      for (const c of sockets) c.socket.destroy()
      for (const s of refused) s.destroy()
      await new Promise<void>((r) => service.close(() => r()))
      for (const l of dialed.values()) l.close()
      await listener.close()
      disk.close()
    }
  }
  ctx.log.info('replica started', { as: spec.as, gen: spec.gen, guest: spec.guest, mode: spec.mode, channel: listener.port, service: servicePort })
  return handle
}
