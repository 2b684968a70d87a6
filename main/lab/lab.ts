// Lab orchestration: three hosts (replicas a and b, the disk server), their agents, roles,
// faults and generations. It speaks to machines only through LabHost and to agents only
// through the control channel, so the embedded local lab and SSH-deployed hosts share it.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { AgentEvent, AgentStatus, Endpoint, StartRole, TimingConfig, ArbiterSpec } from '../../agent/control/protocol.js'
import type { ReplicationMode } from '../../agent/vmm/types.js'
import { AgentClient } from './agent-client.js'
import { ClockMap, type LabEvent } from './lab-events.js'
import { describeFault, planAgentFaults } from './lab-faults.js'
import type { LabHost } from './lab-host.js'
import { checkLabName, LAB_STATE_VERSION, type FaultRecord, type HostRecord, type LabFaultSpec, type LabState, type LabStore } from './lab-state.js'

export const REPLICA_IDS = ['a', 'b'] as const
export const DISK_ID = 'disk'
export const HOST_IDS = [...REPLICA_IDS, DISK_ID] as const

export const GUESTS = ['kv', 'bank'] as const
export const MODES: readonly ReplicationMode[] = ['rsm', 'state-transfer']
export const DEFAULT_TIMING: TimingConfig = { heartbeatMs: 100, suspectMs: 800 }
export const DEFAULT_FAULT_MS = 60_000
const BLOCK_SIZE = 4096

export interface LabConfig {
  name: string
  guest?: string
  mode?: ReplicationMode
  timing?: TimingConfig
  readFastPath?: boolean
  readyTimeoutMs?: number
  /** break ties with an etcd cluster instead of the disk server */
  arbiter?: ArbiterSpec
}

/** Which machine plays each host of the lab. */
export type HostResolver = (id: string) => LabHost

export interface HostStatusRow {
  host: string
  kind: HostRecord['kind']
  pid: number
  incarnation: number
  /** down: no agent process; unresponsive: a process that does not answer */
  state: 'up' | 'down' | 'paused' | 'unresponsive'
  status?: AgentStatus
  error?: string
}

export interface RestoreResult {
  from: string
  to: string
  gen: number
  /** set only when the slot moved: the machine that now plays `to` (e.g. 'spare') */
  machine?: string
}

export interface RestoreOptions {
  timeoutMs?: number
  readyTimeoutMs?: number
  /**
   * Start the joining replica on this machine (a host the resolver knows, e.g. 'spare')
   * instead of the one its slot used: the slot keeps its replica id and gets new
   * logging-channel and service addresses there. Absent: the slot's current machine.
   */
  onto?: string
}

const token = () => randomBytes(32).toString('hex')

export class Lab extends EventEmitter {
  private readonly clients = new Map<string, { pid: number; client: AgentClient }>()
  private readonly subscribed = new Set<string>()
  private readonly clocks = new Map<string, ClockMap>()
  private wantEvents = false

  private constructor(
    private readonly store: LabStore,
    private readonly state: LabState,
    private readonly hostOf: HostResolver
  ) {
    super()
  }

  /** Start a fresh lab: three agents, the disk server, `a` primary and `b` backup of generation 1. */
  static async start(cfg: LabConfig, hostOf: HostResolver, store: LabStore): Promise<Lab> {
    const name = checkLabName(cfg.name)
    const guest = cfg.guest ?? 'kv'
    const mode = cfg.mode ?? 'rsm'
    if (!(GUESTS as readonly string[]).includes(guest)) throw new Error(`guest ${JSON.stringify(guest)}: choose one of ${GUESTS.join(', ')}`)
    if (!MODES.includes(mode)) throw new Error(`mode ${JSON.stringify(mode)}: choose one of ${MODES.join(', ')}`)
    const existing = store.load(name)
    if (existing) {
      const old = new Lab(store, existing, hostOf)
      const alive = await old.aliveHosts()
      old.close()
      if (alive.length > 0) {
        throw new Error(`lab '${name}' is already running (${alive.map((r) => `${r.id} pid ${r.pid}`).join(', ')}); stop it first with \`ftlab lab stop --name ${name}\``)
      }
    }
    store.removeData(name)
    const [diskPort] = await hostOf(DISK_ID).freePorts(1)
    const [aChannel, aService] = await hostOf('a').freePorts(2)
    const [bChannel, bService] = await hostOf('b').freePorts(2)
    const rec = (id: string, kind: HostRecord['kind'], startedAs: HostRecord['startedAs']): HostRecord => ({
      id,
      kind,
      pid: 0,
      controlPort: 0,
      controlToken: '',
      incarnation: 1,
      dataDir: store.dataDir(name, id, 1),
      startedAs
    })
    const ep = (id: string, port: number): Endpoint => ({ host: hostOf(id).address, port })
    const state: LabState = {
      version: LAB_STATE_VERSION,
      name,
      createdAt: Date.now(),
      guest,
      mode,
      labKey: token(),
      gen: 1,
      timing: cfg.timing ?? DEFAULT_TIMING,
      ...(cfg.arbiter ? { arbiter: cfg.arbiter } : {}),
      hosts: {
        a: { ...rec('a', 'replica', 'primary'), channel: ep('a', aChannel), service: ep('a', aService) },
        b: { ...rec('b', 'replica', 'backup'), channel: ep('b', bChannel), service: ep('b', bService) },
        [DISK_ID]: { ...rec(DISK_ID, 'disk-server', 'disk-server'), listen: ep(DISK_ID, diskPort) }
      },
      faults: [],
      nextFault: 1
    }
    const lab = new Lab(store, state, hostOf)
    try {
      // every launch settles before a failure tears down, or a slow one could leave an agent behind
      const launched = await Promise.allSettled(HOST_IDS.map((id) => lab.launch(id, cfg.readyTimeoutMs)))
      const failed = launched.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) throw failed.reason
      const disk = state.hosts[DISK_ID]
      await lab.client(DISK_ID).start({ role: 'disk-server', listen: disk.listen!, blockSize: BLOCK_SIZE })
      // the backup listens on the logging channel, the primary connects: backup first
      await lab.client('b').start(lab.replicaSpec('b', 'backup', 1, 'a', cfg.readFastPath))
      await lab.client('a').start(lab.replicaSpec('a', 'primary', 1, 'b', cfg.readFastPath))
      // Started means replicated: until the backup has applied the boot entry it holds no
      // guest worth going live with (and so never suspects its primary).
      await lab.untilBackupHoldsState('b', cfg.readyTimeoutMs ?? 10_000)
    } catch (err) {
      await lab.teardown()
      throw new Error(`lab '${name}' did not start: ${(err as Error).message}`, { cause: err })
    }
    store.save(state)
    lab.operator('lab-start', { guest, mode, gen: 1 })
    return lab
  }

  /** Reattach to a lab started earlier (by this console, another command, or before a restart). */
  static open(name: string, hostOf: HostResolver, store: LabStore): Lab {
    const state = store.load(checkLabName(name))
    if (!state) throw new Error(`no lab named '${name}' (start one with \`ftlab lab start --name ${name}\`)`)
    const lab = new Lab(store, state, hostOf)
    lab.expireFaults()
    return lab
  }

  get name(): string {
    return this.state.name
  }

  get generation(): number {
    return this.state.gen
  }

  /** A copy of what the lab remembers (for the UI and for tests). */
  snapshot(): LabState {
    return structuredClone(this.state)
  }

  /** Every replica's client service address, for the load clients. */
  serviceEndpoints(): Endpoint[] {
    return REPLICA_IDS.map((id) => this.state.hosts[id].service!)
  }

  openFaults(): FaultRecord[] {
    this.expireFaults()
    return structuredClone(this.state.faults)
  }

  async status(timeoutMs = 1500): Promise<HostStatusRow[]> {
    this.expireFaults()
    return Promise.all(
      HOST_IDS.map(async (id): Promise<HostStatusRow> => {
        const r = this.state.hosts[id]
        const row: HostStatusRow = { host: id, kind: r.kind, pid: r.pid, incarnation: r.incarnation, state: 'down' }
        if (!(await this.machineHost(id).isAgentAlive(r.pid))) return row
        if (r.paused) return { ...row, state: 'paused' }
        try {
          return { ...row, state: 'up', status: await this.client(id).status(timeoutMs) }
        } catch (err) {
          return { ...row, state: 'unresponsive', error: (err as Error).message }
        }
      })
    )
  }

  /** Stop every agent (gracefully, then by force) and forget the lab. */
  async stop(): Promise<void> {
    this.operator('lab-stop', {})
    await this.teardown()
  }

  /** Fail-stop of a host: SIGKILL its agent. Heals only by restoring redundancy. */
  async powerCut(id: string): Promise<void> {
    const r = this.host(id)
    for (const f of this.state.faults.filter((f) => f.spec.kind === 'pause' && f.spec.host === id)) await this.healRecord(f)
    if (!(await this.machineHost(id).kill(r.pid))) throw new Error(`host ${id} is already down (no agent with pid ${r.pid})`)
    r.paused = false
    this.dropClient(id)
    this.store.save(this.state)
    this.operator('fault', { kind: 'power', host: id, pid: r.pid })
  }

  /** Inject a fault that heals by itself after `forMs`, even if the console is gone. */
  async injectFault(spec: LabFaultSpec, forMs = DEFAULT_FAULT_MS): Promise<FaultRecord> {
    if (!Number.isFinite(forMs) || forMs <= 0) throw new Error(`a fault needs a positive duration, got ${forMs} ms`)
    for (const id of hostsOf(spec)) {
      const r = this.host(id)
      if (!(await this.machineHost(id).isAgentAlive(r.pid))) throw new Error(`host ${id} is down; cannot apply ${describeFault(spec)}`)
      if (r.paused && spec.kind === 'pause') throw new Error(`host ${id} is already paused`)
      // a stopped agent cannot take a request: say so now rather than after a timeout
      if (r.paused) throw new Error(`host ${id} is paused, so its agent cannot apply ${describeFault(spec)}; heal the pause first`)
    }
    if ('from' in spec && spec.from === spec.to) throw new Error(`a link needs two different hosts, got ${spec.from}-${spec.to}`)
    const id = `f${this.state.nextFault++}`
    const now = Date.now()
    const record: FaultRecord = { id, spec, parts: [], createdAt: now, healsAt: now + forMs }
    try {
      if (spec.kind === 'pause') {
        const r = this.host(spec.host)
        const host = this.machineHost(spec.host)
        // the dead-man first: a paused agent cannot heal itself
        record.watchdog = await host.scheduleResume(r.pid, forMs)
        await host.pause(r.pid)
        r.paused = true
      }
      for (const part of planAgentFaults(spec)) {
        await this.client(part.host).fault(id, part.fault, forMs)
        record.parts.push({ host: part.host, agentFaultId: id, fault: part.fault })
      }
    } catch (err) {
      await this.healRecord(record).catch(() => {})
      this.store.save(this.state)
      throw err
    }
    this.state.faults.push(record)
    this.store.save(this.state)
    this.operator('fault', { id, kind: spec.kind, spec, forMs, healsAt: record.healsAt, what: describeFault(spec) })
    return record
  }

  /** Heal one fault by id, or everything ('all': the emergency stop). Returns what was healed. */
  async heal(which: string): Promise<string[]> {
    this.expireFaults()
    if (which === 'all') {
      const ids = this.state.faults.map((f) => f.id)
      const problems: string[] = []
      for (const f of [...this.state.faults]) await this.healRecord(f).catch((e) => problems.push((e as Error).message))
      // also whatever an earlier console left behind on the agents
      for (const id of HOST_IDS) {
        const r = this.state.hosts[id]
        const host = this.machineHost(id)
        if (!(await host.isAgentAlive(r.pid))) continue
        if (r.paused) await host.resume(r.pid)
        r.paused = false
        await this.client(id)
          .heal('*')
          .catch((e) => problems.push((e as Error).message))
      }
      this.store.save(this.state)
      this.operator('heal', { id: 'all', healed: ids, problems })
      if (problems.length) throw new Error(`healed ${ids.join(', ') || 'nothing'} but: ${problems.join('; ')}`)
      return ids
    }
    const f = this.state.faults.find((x) => x.id === which)
    if (!f) {
      const open = this.state.faults.map((x) => x.id)
      throw new Error(`no open fault '${which}'${open.length ? ` (open: ${open.join(', ')})` : ' (none are open)'}`)
    }
    await this.healRecord(f)
    this.store.save(this.state)
    this.operator('heal', { id: which })
    return [which]
  }

  /**
   * Restore redundancy: a fresh agent in the failed replica's slot joins, and the live
   * replica ships it a snapshot and begins generation g+1 with it as backup. Repeatable,
   * so failover can go back and forth.
   */
  async restore(opts: RestoreOptions = {}): Promise<RestoreResult> {
    const rows = await this.status()
    const byId = new Map(rows.map((r) => [r.host, r]))
    const live = REPLICA_IDS.find((id) => byId.get(id)?.status?.role === 'live')
    if (!live) {
      const what = REPLICA_IDS.map((id) => `${id} is ${describeRow(byId.get(id)!)}`).join(', ')
      throw new Error(`no replica is live alone, so there is nothing to restore from: ${what}`)
    }
    const to = REPLICA_IDS.find((id) => id !== live)!
    // The snapshot and its ack must cross between the live replica and the new one: a cut
    // or an isolation on that path would only show as a timeout much later.
    const blocking = this.openFaults().filter(
      (f) => (f.spec.kind === 'isolate' && f.spec.host === live) || (f.spec.kind === 'cut' && [f.spec.from, f.spec.to].sort().join() === [live, to].sort().join())
    )
    if (blocking.length) {
      const which = blocking.map((f) => `${f.id} (${describeFault(f.spec)})`).join(', ')
      throw new Error(`cannot restore redundancy from ${live} onto ${to} while ${which} is open: the snapshot could not get through; heal it first (\`ftlab heal ${blocking[0].id}\`)`)
    }
    const other = byId.get(to)!
    if (other.state === 'paused') throw new Error(`host ${to} is paused; heal it (\`ftlab heal all\`) or cut its power before restoring`)
    if (other.state !== 'down') {
      // a halted or unresponsive agent still holds the slot's ports
      await this.stopAgent(to)
    }
    const gen = Math.max(this.state.gen, byId.get(live)!.status!.gen) + 1
    const r = this.state.hosts[to]
    const moved = opts.onto !== undefined && opts.onto !== this.machineOf(to)
    if (moved) await this.rebind(to, opts.onto!)
    r.incarnation++
    r.dataDir = this.store.dataDir(this.state.name, to, r.incarnation)
    r.startedAs = 'joining'
    this.operator('restore-begin', { from: live, to, gen, machine: this.machineOf(to), channel: r.channel, service: r.service })
    await this.launch(to, opts.readyTimeoutMs)
    await this.client(to).start(this.replicaSpec(to, 'joining', gen, live))
    await this.client(live).restore({ id: to, channel: r.channel! }, gen, opts.timeoutMs ?? 30_000)
    this.state.gen = gen
    this.store.save(this.state)
    const out: RestoreResult = { from: live, to, gen, ...(moved ? { machine: this.machineOf(to) } : {}) }
    this.operator('restore', { ...out })
    return out
  }

  /** The machine (a host name the resolver knows: 'a', 'spare', …) that plays slot `id` now. */
  machineOf(id: string): string {
    return this.host(id).machine ?? id
  }

  /** Lab events: agent events of every host (from the start of their rings), operator actions. */
  onEvent(listener: (ev: LabEvent) => void): () => void {
    this.on('event', listener)
    this.wantEvents = true
    this.ensureSubscriptions()
    return () => {
      this.off('event', listener)
    }
  }

  /** Let go of the agents; they keep running, and the lab can be opened again. */
  close(): void {
    for (const { client } of this.clients.values()) client.close()
    this.clients.clear()
    this.subscribed.clear()
    this.wantEvents = false
  }

  // ——— internals ———

  private async untilBackupHoldsState(id: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last: string
    for (;;) {
      try {
        const s = await this.client(id).status()
        if ((s.channel?.lastEntry ?? 0) >= 1) return
        last = `role ${s.role}, logging channel ${s.channel?.connected ? 'up' : 'down'}, last entry ${s.channel?.lastEntry ?? 0}`
      } catch (err) {
        last = (err as Error).message
      }
      if (Date.now() > deadline) throw new Error(`backup ${id} did not receive the boot entry within ${timeoutMs} ms (${last})`)
      await new Promise((r) => setTimeout(r, 25))
    }
  }

  /** The machine playing slot `id`: a slot moved by restore onto another machine keeps its id. */
  private machineHost(id: string): LabHost {
    return this.hostOf(this.state.hosts[id]?.machine ?? id)
  }

  /**
   * Move replica slot `id` onto `machine`: fresh ports there, and the slot's logging-channel
   * and service addresses point at it from now on (the live replica learns the channel in
   * the restore request, clients the service from serviceEndpoints()). Saved at once, so a
   * restore that fails after this point leaves the slot on its new machine and the next
   * restore tries there again.
   */
  private async rebind(id: string, machine: string): Promise<void> {
    const r = this.host(id)
    if (r.kind !== 'replica') throw new Error(`only a replica slot can move to another machine, not ${id}`)
    const taken = HOST_IDS.find((other) => other !== id && this.machineOf(other) === machine)
    if (taken) throw new Error(`machine '${machine}' already plays ${taken}; a machine runs one agent of a lab`)
    let host: LabHost | undefined
    try {
      host = this.hostOf(machine)
    } catch (err) {
      throw new Error(`cannot restore ${id} onto '${machine}': ${(err as Error).message}`, { cause: err })
    }
    if (!host) throw new Error(`cannot restore ${id} onto '${machine}': the lab has no such machine`)
    const [channel, service] = await host.freePorts(2)
    const from = this.machineOf(id)
    r.channel = { host: host.address, port: channel }
    r.service = { host: host.address, port: service }
    // the slot's own name stays implicit, so a lab state that never moved looks as before
    if (machine === id) delete r.machine
    else r.machine = machine
    this.store.save(this.state)
    this.operator('rebind', { host: id, from, to: machine, channel: r.channel, service: r.service })
  }

  private host(id: string): HostRecord {
    const r = this.state.hosts[id]
    if (!r) throw new Error(`no host '${id}' in lab '${this.state.name}' (hosts: ${HOST_IDS.join(', ')})`)
    return r
  }

  private replicaSpec(id: string, as: 'primary' | 'backup' | 'joining', gen: number, peer: string, readFastPath?: boolean): StartRole {
    const r = this.state.hosts[id]
    const p = this.state.hosts[peer]
    return {
      role: 'replica',
      as,
      gen,
      guest: this.state.guest,
      mode: this.state.mode,
      channel: r.channel!,
      service: r.service!,
      peer: { id: peer, channel: p.channel! },
      disk: this.state.hosts[DISK_ID].listen!,
      timing: this.state.timing,
      ...(this.state.arbiter ? { arbiter: this.state.arbiter } : {}),
      ...(readFastPath ? { readFastPath } : {})
    }
  }

  private async launch(id: string, readyTimeoutMs?: number): Promise<void> {
    const r = this.state.hosts[id]
    r.controlToken = token()
    r.paused = false
    const started = await this.machineHost(id).startAgent(
      { id, labKey: this.state.labKey, controlToken: r.controlToken, controlPort: 0, dataDir: r.dataDir },
      { readyTimeoutMs }
    )
    r.pid = started.pid
    r.controlPort = started.controlPort
    this.dropClient(id)
    // saved at once, so a later `lab stop` finds even a half-started lab's processes
    this.store.save(this.state)
    if (this.wantEvents) this.ensureSubscriptions()
  }

  private client(id: string): AgentClient {
    const r = this.host(id)
    const have = this.clients.get(id)
    if (have && have.pid === r.pid) return have.client
    if (have) have.client.close()
    const host = this.machineHost(id)
    const client = new AgentClient({ id, where: host.describeControl(r.controlPort), token: r.controlToken, connect: host.controlConnector(r.controlPort) })
    client.on('protocol-error', (e: Error) => this.emitEvent({ ts: Date.now(), source: 'lab', host: id, type: 'protocol-error', data: { message: e.message } }))
    this.clients.set(id, { pid: r.pid, client })
    return client
  }

  private dropClient(id: string): void {
    const have = this.clients.get(id)
    if (!have) return
    have.client.close()
    this.clients.delete(id)
    this.subscribed.delete(`${id}:${have.pid}`)
  }

  private ensureSubscriptions(): void {
    for (const id of HOST_IDS) {
      const r = this.state.hosts[id]
      const key = `${id}:${r.pid}`
      if (r.pid <= 0 || this.subscribed.has(key)) continue
      this.subscribed.add(key)
      const clock = new ClockMap(this.machineHost(id).sameClock)
      this.clocks.set(id, clock)
      const incarnation = r.incarnation
      const client = this.client(id)
      client.on('link', (state: string, err?: Error) =>
        this.emitEvent({ ts: Date.now(), source: 'lab', host: id, type: `agent-link-${state}`, data: err ? { message: err.message } : {} })
      )
      // 'caught-up' tells a reader of the history (`ftlab events` without --follow) that the
      // ring as it stood at subscription time has been delivered
      let target: number | null = null
      let caughtUp = false
      const check = () => {
        if (caughtUp || target === null || client.lastSeq < target) return
        caughtUp = true
        this.emitEvent({ ts: Date.now(), source: 'lab', host: id, type: 'caught-up', data: { seq: client.lastSeq } })
      }
      client.on('subscribed', (res: { last?: unknown; missed?: unknown } | null) => {
        if (typeof res?.missed === 'number' && res.missed > 0) {
          this.emitEvent({ ts: Date.now(), source: 'lab', host: id, type: 'events-missed', data: { missed: res.missed } })
        }
        if (typeof res?.last === 'number' && target === null) target = res.last
        check()
      })
      client.subscribe((ev: AgentEvent) => {
        clock.sample(ev.ts, Date.now())
        this.emitEvent({ ts: clock.toConsole(ev.ts), source: 'agent', host: id, type: ev.type, data: ev.data, agent: { seq: ev.seq, ts: ev.ts, incarnation } })
        check()
      })
    }
  }

  private emitEvent(ev: LabEvent): void {
    this.emit('event', ev)
  }

  private operator(type: string, data: Record<string, unknown>): void {
    this.emitEvent({ ts: Date.now(), source: 'operator', type, data })
  }

  private async aliveHosts(): Promise<HostRecord[]> {
    const out: HostRecord[] = []
    for (const id of HOST_IDS) {
      const r = this.state.hosts[id]
      if (r && (await this.machineHost(id).isAgentAlive(r.pid))) out.push(r)
    }
    return out
  }

  /** Faults past their deadline were healed by the agents' dead-man; forget them. */
  private expireFaults(): void {
    const now = Date.now()
    const expired = this.state.faults.filter((f) => f.healsAt <= now)
    if (expired.length === 0) return
    for (const f of expired) if (f.spec.kind === 'pause') this.state.hosts[f.spec.host].paused = false
    this.state.faults = this.state.faults.filter((f) => f.healsAt > now)
    this.store.save(this.state)
  }

  private async healRecord(f: FaultRecord): Promise<void> {
    const problems: string[] = []
    if (f.spec.kind === 'pause') {
      const r = this.state.hosts[f.spec.host]
      const host = this.machineHost(f.spec.host)
      await host.resume(r.pid)
      r.paused = false
      if (f.watchdog) await host.cancelScheduled(f.watchdog)
    }
    for (const part of f.parts) {
      const r = this.state.hosts[part.host]
      if (!(await this.machineHost(part.host).isAgentAlive(r.pid))) continue // the fault died with the agent
      await this.client(part.host)
        .heal(part.agentFaultId)
        .catch((e) => problems.push((e as Error).message))
    }
    this.state.faults = this.state.faults.filter((x) => x.id !== f.id)
    if (problems.length) throw new Error(`fault ${f.id} (${describeFault(f.spec)}) not fully healed: ${problems.join('; ')}`)
  }

  /** Ask an agent to stop, then make sure: a paused one is resumed first, a stuck one killed. */
  private async stopAgent(id: string): Promise<void> {
    const r = this.state.hosts[id]
    const host = this.machineHost(id)
    if (!(await host.isAgentAlive(r.pid))) return
    if (r.paused) await host.resume(r.pid)
    r.paused = false
    await this.client(id)
      .stop(2000)
      .catch(() => {})
    const deadline = Date.now() + 3000
    while (Date.now() < deadline && (await host.isAgentAlive(r.pid))) await new Promise((res) => setTimeout(res, 50))
    await host.kill(r.pid)
    this.dropClient(id)
  }

  private async teardown(): Promise<void> {
    for (const f of [...this.state.faults]) {
      if (f.watchdog) await this.machineHost((f.spec as { host: string }).host).cancelScheduled(f.watchdog).catch(() => {})
    }
    this.state.faults = []
    await Promise.all(HOST_IDS.filter((id) => this.state.hosts[id]).map((id) => this.stopAgent(id).catch(() => this.machineHost(id).kill(this.state.hosts[id].pid))))
    this.close()
    this.store.remove(this.state.name)
  }
}

function hostsOf(spec: LabFaultSpec): string[] {
  return 'host' in spec ? [spec.host] : [spec.from, spec.to]
}

function describeRow(r: HostStatusRow): string {
  if (r.state !== 'up') return r.state
  return r.status?.role ?? 'up'
}
