// The simulated lab's machines. SimHost implements LabHost, so the one Lab orchestration
// (main/lab/lab.ts) runs over it unchanged. Each agent it starts is the real agent code in
// this process: the real Agent with its control server (reached over an in-memory stream
// instead of a loopback port), its event ring and its fault filter; the replica role is the
// real ReplicaCore and edge with the real guests; the disk-server role is the real
// DiskArbiter. What is simulated: the clock (virtual, running at real time × speed) and the
// network between the agents (logging channel and disk traffic), which the agents' own
// fault filters judge message by message, as their links do on hosts. The replicas' client
// service ports are real loopback TCP listeners bridged into the simulated NIC, so the
// console's load runner and redis-cli work against a simulated lab.
import { createServer, type Server, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Agent } from '../../agent/agent.js'
import type { AgentContext, DiskServerSpec, ReplicaSpec, RoleHandle } from '../../agent/context.js'
import type { AgentBootConfig } from '../../agent/control/protocol.js'
import { DiskArbiter, MemoryBlockStore } from '../../agent/disk/arbiter.js'
import { checkDiskServerSpec } from '../../agent/disk/role.js'
import { guestNames } from '../../agent/guests/index.js'
import { NULL_LOGGER } from '../../agent/log.js'
import { ReplicaCore } from '../../agent/replica/core.js'
import { CLIENTS_PEER } from '../../agent/replica/edge.js'
import { replicaConfig } from '../../agent/replica/runtime.js'
import { checkReplicaSpec } from '../../agent/replica/spec.js'
import type { DiskReq, DiskRes } from '../../agent/replica/types.js'
import { createVmm } from '../../agent/vmm/vmm.js'
import type { LabHost, StartedAgent } from '../../main/lab/lab-host.js'
import { freeLoopbackPorts } from '../../main/lab/local-host.js'
import { SimReplica, SimStream, type SimDiskEndpoint } from '../replica.js'
import type { LinkQuality } from '../world.js'
import { duplexPair } from './duplex-pair.js'
import { RealtimeWorld } from './realtime.js'

/** The lab network between the agents: a quiet LAN; faults come from the agents' filters. */
const LAN: LinkQuality = { drop: 0, duplicate: 0, minDelay: 1, maxDelay: 2, fifo: true }
/** a client's TCP stream, from the loopback bridge to the replica's simulated NIC */
const CLIENT_LINK: LinkQuality = { drop: 0, duplicate: 0, minDelay: 0, maxDelay: 1, fifo: true }
/** fake pids: unique in this console process, far from real ones */
let nextPid = 7_000_001

/** One simulated agent process: alive until killed or stopped; a paused one runs nothing. */
class SimProcess {
  alive = true
  paused = false
  replica: SimReplica | null = null
  disk: SimDiskRole | null = null
  service: Server | null = null
  readonly sockets = new Set<Socket>()
  /** sockets the replica stopped reading (its core stalls): a resumed process leaves them be */
  readonly stalled = new Set<Socket>()
  /** the agent's ends of its control connections: a stopped process reads no request either */
  readonly control = new Set<Duplex>()
  private inbox: (() => void)[] = []

  constructor(
    readonly pid: number,
    readonly controlPort: number,
    readonly machine: string,
    readonly agent: Agent
  ) {}

  /** run `fn` in this process: dropped once it is dead, held while it is paused */
  deliver(fn: () => void): void {
    if (!this.alive) return
    if (this.paused) this.inbox.push(fn)
    else fn()
  }

  pause(): void {
    this.paused = true
    this.replica?.pause()
    for (const s of this.sockets) s.pause()
    for (const c of this.control) c.pause()
  }

  resume(): void {
    this.paused = false
    this.replica?.resume()
    for (const s of this.sockets) if (!this.stalled.has(s)) s.resume()
    for (const c of this.control) c.resume()
    const inbox = this.inbox
    this.inbox = []
    for (const fn of inbox) this.deliver(fn)
  }

  /** gone: nothing of it runs again, its connections reset, its ports closed */
  end(): void {
    this.alive = false
    this.paused = false
    this.inbox = []
    this.replica?.kill()
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    this.service?.close()
    this.service = null
  }
}

/** The disk server's requests handled by the real arbiter, with the events its TCP server reports. */
class SimDiskRole implements SimDiskEndpoint {
  readonly arbiter: DiskArbiter

  constructor(
    readonly id: string,
    private readonly proc: SimProcess,
    private readonly ctx: AgentContext,
    store: MemoryBlockStore,
    blockSize: number
  ) {
    this.arbiter = new DiskArbiter(store, { blockSize })
  }

  handle(from: string, req: DiskReq, answer: (res: DiskRes) => void): void {
    // the network names the sender, as the authenticated link does on hosts
    this.proc.deliver(() => {
      const before = this.arbiter.status()
      const res = this.arbiter.handle(req)
      if (req.op === 'tas')
        this.ctx.emit('disk-tas', { gen: req.gen, from, won: res.ok, winner: res.winner ?? null, first: res.ok && before.tasWinner === null })
      else if (req.op === 'generation' && res.ok && before.gen !== req.gen)
        this.ctx.emit('disk-generation', { gen: req.gen, primary: req.primary, backup: req.backup, from })
      else if (!res.ok && res.error === 'fenced') this.ctx.emit('disk-fenced', { op: req.op, from, message: res.message })
      answer(res)
    })
  }
}

/** Everything the simulated lab's machines share: the world, and who runs where. */
export class SimLab {
  readonly world: RealtimeWorld
  private readonly procs = new Map<number, SimProcess>()
  private readonly byControlPort = new Map<number, SimProcess>()
  /** the running replica of each agent id (a restore onto another machine keeps the id) */
  private readonly replicas = new Map<string, SimReplica>()
  /** disk servers by the port replicas are told to reach them on */
  private readonly disks = new Map<number, SimDiskRole>()
  /**
   * What a disk server's data directory holds, by that directory: blocks and metadata outlive its process, as a host's
   * disk-server files do, so a disk server started again there (power-on) finds them
   */
  private readonly diskStores = new Map<string, MemoryBlockStore>()
  private readonly resumes = new Map<string, NodeJS.Timeout>()
  private nextControlPort = 1
  private nextResume = 1
  private readonly hosts = new Map<string, SimHost>()

  constructor(
    readonly seed: number,
    speed: number
  ) {
    this.world = new RealtimeWorld(seed, speed)
  }

  /** The machine named `name` ('a', 'b', 'disk', 'spare'), made on first use. */
  host(name: string): SimHost {
    let h = this.hosts.get(name)
    if (!h) this.hosts.set(name, (h = new SimHost(name, this)))
    return h
  }

  process(pid: number, machine?: string): SimProcess | undefined {
    const p = this.procs.get(pid)
    return p && (machine === undefined || p.machine === machine) ? p : undefined
  }

  async startAgent(machine: string, boot: AgentBootConfig): Promise<StartedAgent> {
    const pid = nextPid++
    const controlPort = this.nextControlPort++
    let proc: SimProcess | null = null
    const agent = new Agent({
      boot,
      log: NULL_LOGGER,
      pid,
      control: 'in-process',
      startReplica: (spec, ctx) => this.startReplica(proc!, spec, ctx),
      startDiskServer: (spec, ctx) => this.startDiskServer(proc!, spec, ctx),
      onStopped: () => this.gone(proc!)
    })
    proc = new SimProcess(pid, controlPort, machine, agent)
    await agent.start()
    this.procs.set(pid, proc)
    this.byControlPort.set(controlPort, proc)
    this.world.net.setFilter(boot.id, agent.ctx.filter)
    return { pid, controlPort }
  }

  connectControl(port: number): Duplex {
    const proc = this.byControlPort.get(port)
    if (!proc?.alive) throw new Error(`simulated agent with control port ${port} is not running (connection refused)`)
    const [console, agentSide] = duplexPair()
    proc.agent.connectControl(agentSide, `in-process console`)
    proc.control.add(agentSide)
    agentSide.once('close', () => proc.control.delete(agentSide))
    if (proc.paused) agentSide.pause()
    return console
  }

  kill(pid: number): boolean {
    const proc = this.procs.get(pid)
    if (!proc?.alive) return false
    this.world.run(() => this.gone(proc))
    // the agent's own stop closes its control connections (reset, as a killed process's are)
    void proc.agent.stop()
    return true
  }

  pause(pid: number): void {
    const proc = this.procs.get(pid)
    if (!proc?.alive) throw new Error(`no simulated agent with pid ${pid} is running`)
    this.world.run(() => proc.pause())
  }

  resume(pid: number): void {
    const proc = this.procs.get(pid)
    if (proc?.alive) this.world.run(() => proc.resume())
  }

  /** Fault deadlines run on real time, like the Lab's fault records and the agents' dead-men. */
  scheduleResume(pid: number, ms: number): string {
    const handle = `sim-resume-${this.nextResume++}`
    this.resumes.set(
      handle,
      setTimeout(() => {
        this.resumes.delete(handle)
        this.resume(pid)
      }, ms)
    )
    return handle
  }

  cancelScheduled(handle: string): void {
    clearTimeout(this.resumes.get(handle))
    this.resumes.delete(handle)
  }

  /** Stop the clock and everything still running (the lab dies with the console process). */
  close(): void {
    for (const t of this.resumes.values()) clearTimeout(t)
    this.resumes.clear()
    for (const p of this.procs.values()) {
      if (!p.alive) continue
      this.gone(p)
      void p.agent.stop()
    }
    this.world.close()
  }

  private gone(proc: SimProcess): void {
    if (!proc.alive) return
    const id = proc.agent.ctx.boot.id
    if (proc.replica && this.replicas.get(id) === proc.replica) this.replicas.delete(id)
    for (const [port, d] of this.disks) if (d === proc.disk) this.disks.delete(port)
    proc.end()
    this.world.net.setFilter(id, null)
  }

  private async startDiskServer(
    proc: SimProcess,
    spec: DiskServerSpec,
    ctx: AgentContext
  ): Promise<RoleHandle & { result: { listen: { host: string; port: number } } }> {
    checkDiskServerSpec(spec)
    let store = this.diskStores.get(ctx.boot.dataDir)
    if (!store) this.diskStores.set(ctx.boot.dataDir, (store = new MemoryBlockStore()))
    const role = new SimDiskRole(ctx.boot.id, proc, ctx, store, spec.blockSize)
    proc.disk = role
    this.disks.set(spec.listen.port, role)
    ctx.emit('role', { role: 'disk-server', listen: spec.listen })
    return {
      result: { listen: spec.listen },
      status() {
        const s = role.arbiter.status()
        return {
          role: 'disk-server',
          gen: s.gen,
          disk: { gen: s.gen, live: s.live, tasWinner: s.tasWinner, blocks: s.blocks, writes: s.writes, fenced: s.fenced }
        }
      },
      stop: async () => {
        if (this.disks.get(spec.listen.port) === role) this.disks.delete(spec.listen.port)
      }
    }
  }

  private async startReplica(proc: SimProcess, spec: ReplicaSpec, ctx: AgentContext): Promise<RoleHandle & { result: unknown }> {
    checkReplicaSpec(spec, guestNames)
    const { world } = this
    const self = ctx.boot.id
    const cfg = replicaConfig(self, spec)
    const entropy = world.rng.fork()
    const { replicas, disks } = this
    const replica = world.run(() => {
      const vmm = createVmm({ guest: spec.guest, mode: spec.mode, entropy: { now: () => world.epoch + world.q.now, u32: () => entropy.u32() } })
      const core = new ReplicaCore(cfg, vmm, { role: spec.as, gen: spec.gen, now: world.q.now })
      return new SimReplica({
        id: self,
        inc: proc.pid,
        q: world.q,
        net: world.net,
        routes: {
          replica: (id) => replicas.get(id),
          get disk(): SimDiskEndpoint {
            // a disk server that is down loses the request, as a dead host would
            return disks.get(spec.disk.port) ?? { id: 'disk', handle: () => {} }
          }
        },
        core,
        vmm,
        guest: spec.guest,
        heartbeatMs: cfg.heartbeatMs,
        diskRetryMs: cfg.diskRetryMs,
        diskTimeoutMs: Math.max(200, cfg.suspectMs),
        peerLink: LAN,
        diskLink: LAN,
        epoch: world.epoch,
        ...(spec.readFastPath === true ? { readFastPath: true } : {}),
        filter: ctx.filter,
        emit: (type, data) => ctx.emit(type, data),
        log: ctx.log
      })
    })
    // the client service: a real loopback port; each connection is a stream into the simulated NIC
    const service = createServer((socket) => {
      if (!proc.alive) return void socket.destroy()
      proc.sockets.add(socket)
      socket.setNoDelay(true)
      if (proc.paused) socket.pause()
      const stream = world.run(
        () =>
          new SimStream(world.net, world.q, CLIENTS_PEER, replica, CLIENT_LINK, {
            data: (bytes) => void socket.write(bytes),
            closed: () => void socket.end(),
            // the core stalls (logging channel full): stop reading the socket, as the host runtime does
            pause: () => {
              proc.stalled.add(socket)
              socket.pause()
            },
            resume: () => {
              proc.stalled.delete(socket)
              if (!proc.paused) socket.resume()
            }
          })
      )
      socket.on('data', (chunk: Buffer) => world.run(() => stream.write(new Uint8Array(chunk))))
      socket.on('error', () => {})
      socket.on('close', () => {
        proc.sockets.delete(socket)
        proc.stalled.delete(socket)
        world.run(() => stream.close())
      })
    })
    await new Promise<void>((resolve, reject) => {
      service.once('error', (err) =>
        reject(new Error(`simulated replica ${self}: cannot listen for clients on ${spec.service.host}:${spec.service.port}: ${err.message}`))
      )
      service.listen(spec.service.port, spec.service.host, () => resolve())
    })
    proc.service = service
    proc.replica = replica
    world.run(() => {
      this.replicas.set(self, replica)
      replica.start()
    })
    const servicePort = (service.address() as { port: number }).port
    return {
      result: { channel: spec.channel, service: { host: spec.service.host, port: servicePort } },
      status: () => world.run(() => replica.edge.status({ channelPort: spec.channel.port, servicePort })),
      async restore(req) {
        world.run(() => replica.edge.beginRestore(req.peer, req.gen))
        return replica.edge.waitRestored(req.peer, req.gen)
      },
      stop: async () => {
        world.run(() => {
          replica.kill()
          if (this.replicas.get(self) === replica) this.replicas.delete(self)
        })
        for (const s of proc.sockets) s.destroy()
        proc.sockets.clear()
        await new Promise<void>((r) => service.close(() => r()))
      }
    }
  }
}

/** One simulated machine, as the Lab sees it. */
export class SimHost implements LabHost {
  readonly address = '127.0.0.1'
  /** agents stamp their events with this process's wall clock */
  readonly sameClock = true

  constructor(
    readonly machine: string,
    private readonly lab: SimLab
  ) {}

  startAgent(boot: AgentBootConfig): Promise<StartedAgent> {
    return this.lab.startAgent(this.machine, boot)
  }

  async isAgentAlive(pid: number): Promise<boolean> {
    return this.lab.process(pid, this.machine)?.alive === true
  }

  async kill(pid: number): Promise<{ at?: number } | null> {
    if (!this.lab.process(pid, this.machine)) return null
    const at = Date.now()
    return this.lab.kill(pid) ? { at } : null
  }

  async pause(pid: number): Promise<void> {
    if (!this.lab.process(pid, this.machine)) throw new Error(`no simulated agent with pid ${pid} on machine ${this.machine}`)
    this.lab.pause(pid)
  }

  async resume(pid: number): Promise<void> {
    if (this.lab.process(pid, this.machine)) this.lab.resume(pid)
  }

  async scheduleResume(pid: number, ms: number): Promise<string> {
    return this.lab.scheduleResume(pid, ms)
  }

  async cancelScheduled(handle: string): Promise<void> {
    this.lab.cancelScheduled(handle)
  }

  controlConnector(port: number): () => Promise<Duplex> {
    return async () => this.lab.connectControl(port)
  }

  describeControl(port: number): string {
    return `simulated ${this.machine} (in-process control ${port})`
  }

  async freePorts(n: number): Promise<number[]> {
    return freeLoopbackPorts(n)
  }
}
