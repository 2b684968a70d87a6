// The agent: one control server, one event ring, one fault manager, and at most one role
// (disk server or replica) at a time. Process concerns (stdin, signals, pid file, exit)
// stay in main.ts, so this can be started and stopped inside a test.
import type { Duplex } from 'node:stream'
import type { AgentBootConfig, AgentStatus, ControlRequest, StartRole } from './control/protocol.js'
import { CONTROL_PROTOCOL_VERSION } from './control/protocol.js'
import { EventRing } from './control/events.js'
import { ControlServer } from './control/server.js'
import type { AgentContext, DiskServerSpec, RoleHandle, StartReplica } from './context.js'
import { startDiskServerRole } from './disk/role.js'
import { FaultManager } from './faults/deadman.js'
import type { Logger } from './log.js'

export const AGENT_VERSION = CONTROL_PROTOCOL_VERSION

export interface AgentOptions {
  boot: AgentBootConfig
  log: Logger
  /** the replica runtime; null in a build without it */
  startReplica: StartReplica | null
  ringCapacity?: number
  /** called after a `stop` request has been answered and everything is closed */
  onStopped?: () => void
  /** the disk-server role (default: the real one on a TCP port; the simulated lab serves it on its network) */
  startDiskServer?: (spec: DiskServerSpec, ctx: AgentContext) => Promise<RoleHandle & { result: { listen: { host: string; port: number } } }>
  /** 'in-process': no control port; the console connects through connectControl() (the simulated lab) */
  control?: 'tcp' | 'in-process'
  /** the pid the agent reports (default: this process's; simulated agents have their own) */
  pid?: number
}

export class Agent {
  readonly ring: EventRing
  readonly faults = new FaultManager()
  readonly ctx: AgentContext
  private control: ControlServer | null = null
  private role: { name: 'disk-server' | 'replica'; handle: RoleHandle; result: unknown } | null = null
  private starting = false
  private stopping: Promise<void> | null = null
  private readonly startedAt = Date.now()

  constructor(private readonly opts: AgentOptions) {
    this.ring = new EventRing(opts.ringCapacity)
    const log = opts.log
    this.ctx = {
      boot: opts.boot,
      labKey: Buffer.from(opts.boot.labKey, 'hex'),
      dataDir: opts.boot.dataDir,
      emit: (type, data) => {
        this.ring.emit(type, data)
      },
      filter: this.faults.filter,
      faults: this.faults,
      log
    }
    this.faults.on('applied', (f) => {
      log.warn('fault applied', { id: f.id, fault: f.fault, healsAt: f.healsAt })
      this.ring.emit('fault', { id: f.id, fault: f.fault, healsAt: f.healsAt })
    })
    this.faults.on('healed', (f, reason) => {
      log.info('fault healed', { id: f.id, reason })
      this.ring.emit('heal', { id: f.id, reason })
    })
  }

  get controlPort(): number {
    return this.control?.port ?? 0
  }

  private get pid(): number {
    return this.opts.pid ?? process.pid
  }

  /** A control connection inside this process (agents started with control: 'in-process'). */
  connectControl(serverSide: Duplex, remote = 'in-process'): void {
    if (!this.control) throw new Error(`agent ${this.opts.boot.id} is not started (or stopped): no control connection`)
    this.control.attach(serverSide, remote)
  }

  async start(): Promise<void> {
    const control = new ControlServer({
      token: this.opts.boot.controlToken,
      port: this.opts.boot.controlPort,
      ring: this.ring,
      hello: () => ({ id: this.opts.boot.id, pid: this.pid, agentVersion: AGENT_VERSION }),
      onProblem: (what) => this.opts.log.warn(what)
    })
    control.handle('status', () => this.status())
    control.handle('start', (req) => this.startRole(req.spec))
    control.handle('fault', (req) => this.faults.apply(req.id, req.fault, req.deadlineMs))
    control.handle('heal', (req) => {
      if (typeof req.id !== 'string') throw new Error("heal needs a fault id, or '*' for all")
      return { healed: this.faults.heal(req.id) }
    })
    control.handle('restore', (req) => this.restore(req))
    control.handle('stop', () => {
      // answer first; the connection that asked goes down with the control server
      setImmediate(() => void this.stop().then(() => this.opts.onStopped?.()))
      return { stopping: true }
    })
    try {
      if (this.opts.control !== 'in-process') await control.listen()
    } catch (err) {
      throw new Error(`cannot listen on control port 127.0.0.1:${this.opts.boot.controlPort}: ${(err as Error).message}`, { cause: err })
    }
    this.control = control
    this.ring.emit('agent', { state: 'started', id: this.opts.boot.id, pid: this.pid, controlPort: control.port })
    this.opts.log.info('agent started', { id: this.opts.boot.id, pid: this.pid, controlPort: control.port })
  }

  status(): AgentStatus {
    const mem = process.memoryUsage()
    const base: AgentStatus = {
      id: this.opts.boot.id,
      pid: this.pid,
      version: AGENT_VERSION,
      uptimeMs: Date.now() - this.startedAt,
      role: 'idle',
      gen: 0,
      faults: this.faults.list(),
      memory: { rss: mem.rss, heapUsed: mem.heapUsed, guestBytes: 0 }
    }
    if (!this.role) return base
    const extra = this.role.handle.status()
    return { ...base, ...extra, faults: base.faults, memory: { ...base.memory, ...(extra.memory ?? {}) } }
  }

  private async startRole(spec: StartRole): Promise<unknown> {
    if (typeof spec !== 'object' || spec === null) throw new Error('start.spec must be an object with a role')
    if (this.stopping) throw new Error('the agent is stopping')
    if (this.role || this.starting) throw new Error(`this agent already runs the ${this.role?.name ?? 'starting'} role; stop the agent to change roles`)
    this.starting = true
    try {
      switch (spec.role) {
        case 'disk-server': {
          const h = await (this.opts.startDiskServer ?? startDiskServerRole)(spec, this.ctx)
          this.role = { name: 'disk-server', handle: h, result: h.result }
          return { role: 'disk-server', ...h.result }
        }
        case 'replica': {
          if (!this.opts.startReplica) throw new Error('replica role not available in this agent build')
          const h = await this.opts.startReplica(spec, this.ctx)
          this.role = { name: 'replica', handle: h, result: h.result }
          this.ring.emit('role', { role: 'replica', as: spec.as, gen: spec.gen })
          return { role: 'replica', ...(typeof h.result === 'object' && h.result ? h.result : {}) }
        }
        default:
          throw new Error(`start.spec.role must be 'disk-server' or 'replica', got ${JSON.stringify((spec as { role?: unknown }).role)}`)
      }
    } catch (err) {
      this.opts.log.error('role failed to start', { role: (spec as { role?: unknown }).role, message: (err as Error).message })
      throw err
    } finally {
      this.starting = false
    }
  }

  private async restore(req: Extract<ControlRequest, { t: 'restore' }>): Promise<unknown> {
    const h = this.role?.handle
    if (!h?.restore) throw new Error('restore needs a running replica role on this agent')
    return h.restore({ peer: req.peer, gen: req.gen })
  }

  /** Heal every fault, stop the role (flushing the disk), close the control port. Idempotent. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        this.opts.log.info('agent stopping')
        this.ring.emit('agent', { state: 'stopping' })
        this.faults.close()
        if (this.role) {
          try {
            await this.role.handle.stop()
          } catch (err) {
            this.opts.log.error('role did not stop cleanly', { message: (err as Error).message })
          }
        }
        await this.control?.close()
        this.opts.log.info('agent stopped')
      })()
    }
    return this.stopping
  }
}
