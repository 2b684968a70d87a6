// A LabHost whose "agents" are small control servers in this process: enough of the
// control protocol to drive the lab orchestration without the real agent.
import { EventEmitter, once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import type { AgentBootConfig, AgentEvent, AgentStatus, ControlRequest, StartRole } from '../../../agent/control/protocol.js'
import { tcpConnector } from '../../../main/lab/agent-client.js'
import type { LabHost, StartedAgent } from '../../../main/lab/lab-host.js'

export class FakeAgentProcess {
  readonly requests: ControlRequest[] = []
  readonly faults = new Map<string, unknown>()
  spec: StartRole | null = null
  role: AgentStatus['role'] = 'idle'
  gen = 0
  alive = true
  paused = false
  /** answer `start` with this error (e.g. the replica role not wired yet) */
  failStart: string | null = null
  /** a replica whose logging channel never delivers: its last entry stays 0 */
  withholdEntries = false
  readonly ring: AgentEvent[] = []
  private readonly subs = new Set<Socket>()
  private readonly sockets = new Set<Socket>()

  constructor(
    readonly boot: AgentBootConfig,
    readonly pid: number,
    readonly server: Server
  ) {
    server.on('connection', (s) => this.onSocket(s))
  }

  emitEvent(type: string, data: Record<string, unknown> = {}): void {
    const ev = { seq: this.ring.length + 1, ts: Date.now(), type, data }
    this.ring.push(ev)
    for (const s of this.subs) s.write(JSON.stringify({ t: 'event', ev }) + '\n')
  }

  async exit(): Promise<void> {
    if (!this.alive) return
    this.alive = false
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((r) => this.server.close(() => r()))
  }

  private onSocket(s: Socket): void {
    this.sockets.add(s)
    s.on('close', () => {
      this.sockets.delete(s)
      this.subs.delete(s)
    })
    s.on('error', () => {})
    let authed = false
    let buf = ''
    s.on('data', (c) => {
      buf += c.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        if (!authed) {
          if (msg.token !== this.boot.controlToken) return void s.destroy()
          authed = true
          continue
        }
        if (this.paused) continue // a stopped process answers nothing
        this.requests.push(msg)
        const ok = (result: unknown = null) => s.write(JSON.stringify({ t: 'res', id: msg.id, ok: true, result }) + '\n')
        const fail = (error: string) => s.write(JSON.stringify({ t: 'res', id: msg.id, ok: false, error }) + '\n')
        switch (msg.t as ControlRequest['t']) {
          case 'hello':
            ok({ version: 1, id: this.boot.id })
            break
          case 'subscribe':
            ok({ first: 1, last: this.ring.length, missed: 0 })
            for (const ev of this.ring.filter((e) => e.seq > msg.since)) s.write(JSON.stringify({ t: 'event', ev }) + '\n')
            this.subs.add(s)
            break
          case 'status':
            ok({
              id: this.boot.id,
              pid: this.pid,
              version: 1,
              uptimeMs: 1,
              role: this.role,
              gen: this.gen,
              faults: [],
              memory: { rss: 0, heapUsed: 0, guestBytes: 0 },
              // a started replica has the boot entry, unless the test withholds it
              ...(this.spec?.role === 'replica'
                ? {
                    channel: {
                      connected: !this.withholdEntries,
                      lastEntry: this.withholdEntries ? 0 : 1,
                      acked: 0,
                      unackedEntries: 0,
                      unackedBytes: 0,
                      bytesSent: 0,
                      bytesReceived: 0,
                      entriesSent: 0,
                      entriesReceived: 0,
                      heldOutputs: 0,
                      stalled: false
                    }
                  }
                : {})
            })
            break
          case 'start':
            if (this.failStart) return void fail(this.failStart)
            this.spec = msg.spec
            this.role = msg.spec.role === 'disk-server' ? 'disk-server' : msg.spec.as
            this.gen = msg.spec.role === 'replica' ? msg.spec.gen : 0
            this.emitEvent('role', { role: this.role })
            ok()
            break
          case 'fault':
            this.faults.set(msg.faultId, msg.fault)
            ok()
            break
          case 'heal':
            if (msg.faultId === '*') this.faults.clear()
            else this.faults.delete(msg.faultId)
            ok()
            break
          case 'restore':
            this.role = 'primary'
            this.gen = msg.gen
            ok()
            break
          case 'stop':
            ok()
            void this.exit()
            break
        }
      }
    })
  }
}

export class FakeLabHost extends EventEmitter implements LabHost {
  /** another address stands for another machine (a spare); the fake agents still listen on loopback */
  constructor(readonly address = '127.0.0.1') {
    super()
  }

  readonly sameClock = true
  readonly agents: FakeAgentProcess[] = []
  readonly scheduled = new Map<string, { pid: number; ms: number }>()
  /** hook run for every started agent before it is ready (set failStart, …) */
  onStart: ((a: FakeAgentProcess) => void) | null = null
  private nextPid = 90_000
  private nextPort = 50_000

  /** runs before an agent is started: a test can slow one launch down or make it fail */
  beforeLaunch: ((boot: AgentBootConfig) => Promise<void>) | null = null

  async startAgent(boot: AgentBootConfig): Promise<StartedAgent> {
    await this.beforeLaunch?.(boot)
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const a = new FakeAgentProcess(boot, this.nextPid++, server)
    this.onStart?.(a)
    this.agents.push(a)
    this.emit('started', a)
    return { pid: a.pid, controlPort: (server.address() as { port: number }).port }
  }

  agent(id: string): FakeAgentProcess {
    const a = this.agents.filter((x) => x.boot.id === id).at(-1)
    if (!a) throw new Error(`no fake agent ${id}`)
    return a
  }

  private byPid(pid: number): FakeAgentProcess | undefined {
    return this.agents.find((a) => a.pid === pid && a.alive)
  }

  async isAgentAlive(pid: number): Promise<boolean> {
    return this.byPid(pid) !== undefined
  }

  async kill(pid: number): Promise<{ at?: number } | null> {
    const a = this.byPid(pid)
    if (!a) return null
    const at = Date.now()
    await a.exit()
    return { at }
  }

  async pause(pid: number): Promise<void> {
    this.byPid(pid)!.paused = true
  }

  async resume(pid: number): Promise<void> {
    const a = this.byPid(pid)
    if (a) a.paused = false
  }

  async scheduleResume(pid: number, ms: number): Promise<string> {
    const h = `w${pid}`
    this.scheduled.set(h, { pid, ms })
    return h
  }

  async cancelScheduled(handle: string): Promise<void> {
    this.scheduled.delete(handle)
  }

  controlConnector(port: number) {
    return tcpConnector('127.0.0.1', port)
  }

  describeControl(port: number): string {
    return `127.0.0.1:${port}`
  }

  async freePorts(n: number): Promise<number[]> {
    return Array.from({ length: n }, () => this.nextPort++)
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.exit()))
  }
}
