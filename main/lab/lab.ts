// Lab orchestration: three hosts (replicas a and b, the disk server), their agents, roles,
// faults and generations. It speaks to machines only through LabHost and to agents only
// through the control channel, so the embedded local lab and SSH-deployed hosts share it.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import type { AgentEvent, AgentStatus, Endpoint, StartRole, TimingConfig, ArbiterSpec } from '../../agent/control/protocol.js'
import type { ReplicationMode } from '../../agent/vmm/types.js'
import { AgentClient } from './agent-client.js'
import { ClockMap, type LabEvent } from './lab-events.js'
import { describeFault, planAgentFaults, planKernelShares, type KernelSharePart } from './lab-faults.js'
import type { HostPowerDriver, LabHost } from './lab-host.js'
import {
  checkLabName,
  LAB_STATE_VERSION,
  labActor,
  type FaultRecord,
  type HostRecord,
  type LabFaultSpec,
  type LabHolder,
  type LabState,
  type LabStore
} from './lab-state.js'

export const REPLICA_IDS = ['a', 'b'] as const
export const DISK_ID = 'disk'
export const HOST_IDS = [...REPLICA_IDS, DISK_ID] as const

export const GUESTS = ['kv', 'bank'] as const
export const MODES: readonly ReplicationMode[] = ['rsm', 'state-transfer']
/**
 * 20 ms heartbeats (the edge ticks every 5 ms) and 800 ms as the longest suspicion timeout: each
 * replica's failure detector (agent/replica/detector.ts) learns how long its live peer goes silent and
 * suspects after 100 ms (five heartbeats, its floor) on a quiet or moderately loaded lab, longer as far as
 * 800 ms where it has seen the peer stall. docs/performance.md has the measurements behind these.
 */
export const DEFAULT_TIMING: TimingConfig = { heartbeatMs: 20, suspectMs: 800 }
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
  /** drill-only switches in the replicas (kept in the lab state, so restores and a reattaching console keep them) */
  experiments?: LabExperiment[]
}

/** The agents' drill-only switches (main/api/contract.ts EXPERIMENTS). */
export type LabExperiment = 'no-output-rule' | 'read-fast-path'

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

/**
 * A replica's status when it judges a peer now, so that its suspicion limit means something: up, and primary or
 * backup. A replica live alone (which keeps naming its old peer), joining or halted suspects nobody.
 */
export function judgingReplica(row: HostStatusRow | undefined): AgentStatus['replica'] | undefined {
  return row?.state === 'up' && (row.status?.role === 'primary' || row.status?.role === 'backup') ? row.status.replica : undefined
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
  /** the state file as this lab last read or wrote it (LabStore.stamp) */
  private stamp: string | null = null
  /** why this lab no longer follows its state file (stopped or replaced by another process), or null */
  private lost: string | null = null
  /** what the operation under way is doing, for the lock and the state's changedBy */
  private doing = 'changing the lab'

  private constructor(
    private readonly store: LabStore,
    private state: LabState,
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
    const release = await store.lock(name, 'starting the lab')
    try {
      return await Lab.startLocked(name, guest, mode, cfg, hostOf, store)
    } finally {
      release()
    }
  }

  private static async startLocked(name: string, guest: string, mode: ReplicationMode, cfg: LabConfig, hostOf: HostResolver, store: LabStore): Promise<Lab> {
    const existing = store.load(name)
    if (existing) {
      const old = new Lab(store, existing, hostOf)
      const alive = await old.aliveHosts()
      old.close()
      if (alive.length > 0) {
        throw new Error(
          `lab '${name}' is already running (${alive.map((r) => `${r.id} pid ${r.pid}`).join(', ')}); stop it first with \`ftlab lab stop --name ${name}\``
        )
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
      ...(cfg.experiments?.length || cfg.readFastPath
        ? { experiments: [...new Set([...(cfg.experiments ?? []), ...(cfg.readFastPath ? ['read-fast-path' as const] : [])])] }
        : {}),
      hosts: {
        a: { ...rec('a', 'replica', 'primary'), channel: ep('a', aChannel), service: ep('a', aService) },
        b: { ...rec('b', 'replica', 'backup'), channel: ep('b', bChannel), service: ep('b', bService) },
        [DISK_ID]: { ...rec(DISK_ID, 'disk-server', 'disk-server'), listen: ep(DISK_ID, diskPort) }
      },
      faults: [],
      nextFault: 1
    }
    const lab = new Lab(store, state, hostOf)
    lab.doing = 'starting the lab'
    try {
      // every launch settles before a failure tears down, or a slow one could leave an agent behind
      const launched = await Promise.allSettled(HOST_IDS.map((id) => lab.launch(id, cfg.readyTimeoutMs)))
      const failed = launched.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) throw failed.reason
      const disk = state.hosts[DISK_ID]
      await lab.client(DISK_ID).start({ role: 'disk-server', listen: disk.listen!, blockSize: BLOCK_SIZE })
      // the backup listens on the logging channel, the primary connects: backup first
      await lab.client('b').start(lab.replicaSpec('b', 'backup', 1, 'a'))
      await lab.client('a').start(lab.replicaSpec('a', 'primary', 1, 'b'))
      // Started means replicated: until the backup has applied the boot entry it holds no
      // guest worth going live with (and so never suspects its primary).
      await lab.untilBackupHoldsState('b', cfg.readyTimeoutMs ?? 10_000)
    } catch (err) {
      await lab.teardown()
      throw new Error(`lab '${name}' did not start: ${(err as Error).message}`, { cause: err })
    }
    lab.save()
    lab.doing = 'changing the lab'
    lab.operator('lab-start', { guest, mode, gen: 1 })
    return lab
  }

  /** Reattach to a lab started earlier (by this console, another command, or before a restart). */
  static open(name: string, hostOf: HostResolver, store: LabStore): Lab {
    const read = store.read(checkLabName(name))
    if (!read) throw new Error(`no lab named '${name}' (start one with \`ftlab lab start --name ${name}\`)`)
    const lab = new Lab(store, read.state, hostOf)
    lab.stamp = read.stamp
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
    this.refresh()
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
  stop(): Promise<void> {
    return this.exclusive(
      'stopping the lab',
      async () => {
        this.operator('lab-stop', {})
        await this.teardown()
      },
      { evenIfLost: true }
    )
  }

  /**
   * Fail-stop of a machine: its power driver where it has one (a remote host's PDU, BMC, …),
   * else SIGKILL of its agent. Recorded as a fault { kind: 'power' } with no deadline: it
   * stays open until restore redundancy refills the slot or power-on switches the machine on.
   */
  powerCut(id: string): Promise<FaultRecord> {
    return this.exclusive(`cutting the power of ${id}`, async () => {
      const r = this.host(id)
      this.expireFaults()
      const open = this.state.faults.find((f) => f.spec.kind === 'power' && f.spec.host === id)
      if (open) throw new Error(`host ${id}'s power is already cut (${open.id}); power it on or restore redundancy`)
      // a paused agent first resumes: a SIGKILL works on it anyway, but its dead-man would linger
      for (const f of this.state.faults.filter((f) => f.spec.kind === 'pause' && f.spec.host === id)) await this.healRecord(f).catch(() => {})
      const host = this.machineHost(id)
      const driver = host.powerDriver?.() ?? null
      const pid = r.pid
      let path: FaultRecord['path']
      let note: string
      let cutAt: number | null = null
      if (driver) {
        const said = await driver.off()
        note = `${driver.kind} driver${said ? `: ${said}` : ''}`
        path = 'driver'
      } else {
        const calledAt = Date.now()
        const killed = await host.kill(pid)
        if (!killed) throw new Error(`host ${id} is already down (no agent with pid ${pid})`)
        // the fault began when the signal went, on the host (mapped to this clock as the agent's events are), not when the
        // call that sent it returned: over SSH the survivor may have gone live in between; without the host's word, when
        // the call began
        cutAt = killed.at === undefined ? calledAt : Math.max(calledAt, this.clocks.get(id)?.toConsole(killed.at) ?? killed.at)
        note = `agent ${id} (pid ${pid}) killed`
        path = 'kill'
      }
      r.paused = false
      this.dropClient(id)
      const record: FaultRecord = {
        id: `f${this.state.nextFault++}`,
        spec: { kind: 'power', host: id },
        parts: [],
        createdAt: Math.min(cutAt ?? Date.now(), Date.now()),
        healsAt: null,
        path,
        note
      }
      this.state.faults.push(record)
      this.save()
      this.operator('fault', { id: record.id, kind: 'power', host: id, pid, path, note, what: describeFault(record.spec) })
      return record
    })
  }

  /** Can `id`'s machine be switched on by its power driver? */
  canPowerOn(id: string): boolean {
    return this.machineHost(id).powerDriver?.()?.canPowerOn === true
  }

  /**
   * Switch a machine back on through its power driver, and close its power fault. The agent
   * is not running after that: restore redundancy starts a fresh one in the slot.
   */
  powerOn(id: string): Promise<{ driver: string; detail: string }> {
    return this.exclusive(`powering on ${id}`, async () => {
      this.host(id)
      const driver = this.machineHost(id).powerDriver?.() ?? null
      if (id === DISK_ID) return this.restartDisk(driver)
      if ((REPLICA_IDS as readonly string[]).includes(id)) {
        const rows = await this.status()
        const gone = (row: HostStatusRow) => row.state === 'down' || (row.state === 'up' && row.status?.role === 'halted')
        if (REPLICA_IDS.every((r) => gone(rows.find((row) => row.host === r)!))) return this.recoverFromDisk(id, rows, driver)
      }
      const where = this.machineOf(id) === id ? `host ${id}` : `host ${id} (machine ${this.machineOf(id)})`
      if (!driver)
        throw new Error(
          `${where} has no power driver, so nothing can switch it on (a power cut killed its agent); restore redundancy starts a fresh agent in its slot`
        )
      if (!driver.canPowerOn)
        throw new Error(`${where}: the ${driver.kind} power driver cannot switch a machine on; switch it on by hand, then restore redundancy`)
      const detail = await driver.on()
      const closed = this.closePowerFault(id)
      this.save()
      this.operator('power-on', { host: id, driver: driver.kind, detail, closed })
      return { driver: driver.kind, detail }
    })
  }

  /**
   * The disk server comes back on the blocks and metadata its data directory holds, as a disk keeps them through a
   * power cut: the same test-and-set winners and fencing per generation (durable before it answered), on the same
   * address, where the replicas' disk clients reconnect. Nothing else can restart it: restore redundancy refills a
   * replica's slot. A machine its driver switched off is switched on first; one without such a driver must be on (by
   * hand) for the agent to start.
   */
  private async restartDisk(driver: HostPowerDriver | null): Promise<{ driver: string; detail: string }> {
    const cut = this.state.faults.find((f) => f.spec.kind === 'power' && f.spec.host === DISK_ID)
    const row = (await this.status()).find((r) => r.host === DISK_ID)!
    if (!cut && row.state === 'up') throw new Error('the disk server is up: there is nothing to power on')
    let detail = 'its agent restarted on its data directory'
    if (cut?.path === 'driver' && driver?.canPowerOn) detail = `${await driver.on()}; ${detail}`
    // a halted or unresponsive agent still holds the port
    if (row.state !== 'down') await this.stopAgent(DISK_ID)
    await this.launch(DISK_ID)
    const disk = this.state.hosts[DISK_ID]
    await this.client(DISK_ID).start({ role: 'disk-server', listen: disk.listen!, blockSize: BLOCK_SIZE })
    const closed = this.closePowerFault(DISK_ID)
    this.save()
    const kind = driver?.kind ?? 'agent'
    this.operator('power-on', { host: DISK_ID, driver: kind, detail, closed })
    return { driver: kind, detail }
  }

  /**
   * Both replicas are down (or halted): start `id` as a replica that boots the guest from the disk server's contents
   * in the next generation, alone. Restore redundancy then takes a backup as usual.
   */
  private async recoverFromDisk(id: string, rows: HostStatusRow[], driver: HostPowerDriver | null): Promise<{ driver: string; detail: string }> {
    const disk = rows.find((row) => row.host === DISK_ID)!
    if (disk.state !== 'up' || !disk.status) {
      throw new Error(
        `cannot power on ${id} from disk: the disk server is ${describeRow(disk)}; both replicas are down and the guest's data is on the disk server, so it must be up first`
      )
    }
    if (this.state.arbiter)
      throw new Error(
        `cannot power on ${id} from disk: this lab arbitrates with ${this.state.arbiter.kind}, and recovery from disk needs the disk server to begin the next generation`
      )
    const r = this.host(id)
    const cut = this.state.faults.find((f) => f.spec.kind === 'power' && f.spec.host === id && f.path === 'driver')
    if (cut && driver?.canPowerOn) await driver.on()
    // a halted agent still holds the slot's ports
    await this.stopAgent(id)
    const gen = Math.max(this.state.gen, disk.status.gen) + 1
    const peer = REPLICA_IDS.find((x) => x !== id)!
    r.incarnation++
    r.dataDir = this.store.dataDir(this.state.name, id, r.incarnation)
    r.startedAs = 'recover'
    await this.launch(id)
    await this.client(id).start(this.replicaSpec(id, 'recover', gen, peer))
    this.state.gen = gen
    const closed = this.closePowerFault(id)
    this.save()
    // the replica goes live once the disk server has begun the generation with it: wait for that, or say why not
    const deadline = Date.now() + 10_000
    for (;;) {
      const st = await this.client(id).status(1500)
      if (st.role === 'live') break
      if (st.role === 'halted' || Date.now() > deadline) {
        throw new Error(
          `${id} was started to recover from the disk server in generation ${gen} but is ${st.role}${st.role === 'halted' ? '' : ' after 10 s'}; see its events (\`ftlab events\`)`
        )
      }
      await new Promise((res) => setTimeout(res, 50))
    }
    const detail = `both replicas were down: ${id} booted the guest from the disk server in generation ${gen} and serves alone; restore redundancy to take a backup`
    this.operator('power-on', { host: id, driver: driver?.kind ?? 'none', detail, closed, recovered: true, gen })
    return { driver: driver?.kind ?? 'none', detail }
  }

  /**
   * Inject a fault that heals by itself after `forMs`, even if the console is gone. Network
   * faults go into the hosts' kernels where every host that must act can (an SSH host with
   * root: nft, iptables, netem, each with a dead-man on the host), else into the agents' own
   * transport filter; the record says which (`path`) and why (`note`).
   */
  injectFault(spec: LabFaultSpec, forMs = DEFAULT_FAULT_MS): Promise<FaultRecord> {
    return this.exclusive(`injecting ${describeFault(spec)}`, async () => {
      if (!Number.isFinite(forMs) || forMs <= 0) throw new Error(`a fault needs a positive duration, got ${forMs} ms`)
      if (!(['pause', 'isolate', 'cut', 'loss', 'delay'] as string[]).includes((spec as { kind?: unknown })?.kind as string)) {
        throw new Error(
          `unknown fault kind ${JSON.stringify((spec as { kind?: unknown })?.kind)}; expected pause, isolate, cut, loss or delay (a power cut is powerCut)`
        )
      }
      for (const id of hostsOf(spec)) this.host(id)
      if ('from' in spec && spec.from === spec.to) throw new Error(`a link needs two different hosts, got ${spec.from}-${spec.to}`)
      this.expireFaults()
      // over SSH every check is a round trip: ask them all at once
      const [kernel, alive] = await Promise.all([
        spec.kind === 'pause' ? null : this.kernelPlan(spec, forMs),
        Promise.all(hostsOf(spec).map((id) => this.machineHost(id).isAgentAlive(this.host(id).pid)))
      ])
      for (const [i, id] of hostsOf(spec).entries()) {
        const r = this.host(id)
        if (!alive[i]) throw new Error(`host ${id} is down; cannot apply ${describeFault(spec)}`)
        if (r.paused && spec.kind === 'pause') throw new Error(`host ${id} is already paused`)
        // a stopped agent cannot take a request: say so now rather than after a timeout
        if (r.paused && !kernel?.shares) throw new Error(`host ${id} is paused, so its agent cannot apply ${describeFault(spec)}; heal the pause first`)
      }
      const no = this.state.nextFault++
      const id = `f${no}`
      const now = Date.now()
      const path: FaultRecord['path'] = spec.kind === 'pause' ? 'sigstop' : kernel?.shares ? 'nft' : this.filterPath(hostsOf(spec))
      const record: FaultRecord = { id, spec, parts: [], createdAt: now, healsAt: now + forMs, path, ...(kernel?.note ? { note: kernel.note } : {}) }
      try {
        if (spec.kind === 'pause') {
          const r = this.host(spec.host)
          const host = this.machineHost(spec.host)
          // the dead-man first: a paused agent cannot heal itself
          record.watchdog = await host.scheduleResume(r.pid, forMs)
          await host.pause(r.pid)
          r.paused = true
        } else if (kernel?.shares) {
          // every share at once; what was applied is recorded, so a failure heals exactly that
          const applied = await Promise.allSettled(
            kernel.shares.map(async (s, i) => {
              const machine = this.machineOf(s.host)
              return { host: s.host, machine, part: await this.hostOf(machine).applyKernelFault!(this.kernelId(no, i), s.share, forMs) }
            })
          )
          record.kernel = applied.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
          const failed = applied.find((r): r is PromiseRejectedResult => r.status === 'rejected')
          if (failed) throw failed.reason
          record.path = record.kernel[0]?.part.path ?? 'nft'
        } else {
          for (const part of planAgentFaults(spec)) {
            await this.client(part.host).fault(id, part.fault, forMs)
            record.parts.push({ host: part.host, agentFaultId: id, fault: part.fault })
          }
        }
      } catch (err) {
        await this.healRecord(record).catch(() => {})
        this.save()
        throw err
      }
      this.state.faults.push(record)
      this.save()
      this.operator('fault', {
        id,
        kind: spec.kind,
        spec,
        forMs,
        healsAt: record.healsAt,
        path: record.path,
        ...(record.note ? { note: record.note } : {}),
        what: describeFault(spec)
      })
      return record
    })
  }

  /**
   * Heal one fault by id, or everything ('all': the emergency stop). 'all' resumes paused
   * agents first (a stopped agent cannot heal its own filter), then heals every other fault
   * and sweeps every host and agent for leftovers, all in parallel. What could not be healed
   * is returned as warnings: an emergency stop does as much as it can. One fault by id that
   * cannot be healed is an error. Power cuts stay open: restore or power-on closes them.
   */
  heal(which: string): Promise<{ healed: string[]; warnings: string[] }> {
    return this.exclusive(which === 'all' ? 'healing every fault' : `healing ${which}`, async () => {
      this.expireFaults()
      if (which === 'all') return this.healAll()
      const f = this.state.faults.find((x) => x.id === which)
      if (!f) {
        const open = this.state.faults.map((x) => x.id)
        throw new Error(`no open fault '${which}'${open.length ? ` (open: ${open.join(', ')})` : ' (none are open)'}`)
      }
      if (f.spec.kind === 'power') {
        throw new Error(
          f.spec.host === DISK_ID
            ? `${f.id} is a power cut of the disk server: it heals by power-on (\`ftlab power-on disk\`), not by heal`
            : `${f.id} is a power cut of ${f.spec.host}: it heals by restore redundancy${this.canPowerOn(f.spec.host) ? ' or power-on' : ''}, not by heal`
        )
      }
      try {
        await this.healRecord(f)
      } finally {
        this.save()
      }
      this.operator('heal', { id: which, healed: [which], warnings: [] })
      return { healed: [which], warnings: [] }
    })
  }

  private async healAll(): Promise<{ healed: string[]; warnings: string[] }> {
    const warnings: string[] = []
    const healed: string[] = []
    const settle = async (f: FaultRecord) => {
      try {
        await this.healRecord(f)
        healed.push(f.id)
      } catch (e) {
        warnings.push((e as Error).message)
      }
    }
    // 1. paused agents first, so the agents whose filters hold the other faults can answer
    await Promise.all(this.state.faults.filter((f) => f.spec.kind === 'pause').map(settle))
    // a machine switched off by its driver has nothing to resume or sweep, and would only time out
    const off = new Set(this.state.faults.flatMap((f) => (f.spec.kind === 'power' && f.path === 'driver' ? [f.spec.host] : [])))
    await Promise.all(
      HOST_IDS.filter((id) => this.state.hosts[id]?.paused && !off.has(id)).map(async (id) => {
        const r = this.state.hosts[id]
        try {
          await this.machineHost(id).resume(r.pid)
          r.paused = false
        } catch (e) {
          warnings.push(`resume of ${id} failed: ${(e as Error).message}`)
        }
      })
    )
    // 2. everything else at once
    await Promise.all(this.state.faults.filter((f) => f.spec.kind !== 'pause' && f.spec.kind !== 'power').map(settle))
    // 3. whatever an earlier console left behind: FT Lab rules in the hosts' kernels, faults in the agents
    const hosts = new Map<LabHost, string>()
    for (const id of HOST_IDS) if (this.state.hosts[id] && !off.has(id)) hosts.set(this.machineHost(id), id)
    await Promise.all([
      ...[...hosts].map(async ([host, id]) => {
        if (!host.clearKernelFaults) return
        await host.clearKernelFaults().catch((e: Error) => warnings.push(`clearing FT Lab network rules on ${this.machineOf(id)} failed: ${e.message}`))
      }),
      ...HOST_IDS.filter((id) => this.state.hosts[id] && !off.has(id)).map(async (id) => {
        const r = this.state.hosts[id]
        if (r.paused || !(await this.machineHost(id).isAgentAlive(r.pid))) return
        await this.client(id)
          .heal('*')
          .catch((e: Error) => warnings.push(`agent ${id}: ${e.message}`))
      })
    ])
    this.save()
    const open = this.state.faults.filter((f) => f.spec.kind === 'power')
    this.operator('heal', { id: 'all', healed, warnings, ...(open.length ? { stillOpen: open.map((f) => f.id) } : {}) })
    return { healed, warnings }
  }

  /**
   * Restore redundancy: a fresh agent in the failed replica's slot joins, and the live
   * replica ships it a snapshot and begins generation g+1 with it as backup. Repeatable,
   * so failover can go back and forth.
   */
  restore(opts: RestoreOptions = {}): Promise<RestoreResult> {
    return this.exclusive('restoring redundancy', async () => {
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
        (f) =>
          (f.spec.kind === 'isolate' && f.spec.host === live) || (f.spec.kind === 'cut' && [f.spec.from, f.spec.to].sort().join() === [live, to].sort().join())
      )
      if (blocking.length) {
        const which = blocking.map((f) => `${f.id} (${describeFault(f.spec)})`).join(', ')
        throw new Error(
          `cannot restore redundancy from ${live} onto ${to} while ${which} is open: the snapshot could not get through; heal it first (\`ftlab heal ${blocking[0].id}\`)`
        )
      }
      const other = byId.get(to)!
      const moved = opts.onto !== undefined && opts.onto !== this.machineOf(to)
      // a machine switched off by its driver comes back first, where the driver can
      const cut = this.state.faults.find((f) => f.spec.kind === 'power' && f.spec.host === to && f.path === 'driver')
      if (cut && !moved && this.canPowerOn(to)) await this.powerOn(to)
      if (other.state === 'paused') throw new Error(`host ${to} is paused; heal it (\`ftlab heal all\`) or cut its power before restoring`)
      if (other.state !== 'down') {
        // a halted or unresponsive agent still holds the slot's ports
        await this.stopAgent(to)
      }
      const gen = Math.max(this.state.gen, byId.get(live)!.status!.gen) + 1
      const r = this.state.hosts[to]
      if (moved) await this.rebind(to, opts.onto!)
      r.incarnation++
      r.dataDir = this.store.dataDir(this.state.name, to, r.incarnation)
      r.startedAs = 'joining'
      this.operator('restore-begin', { from: live, to, gen, machine: this.machineOf(to), channel: r.channel, service: r.service })
      await this.launch(to, opts.readyTimeoutMs)
      await this.client(to).start(this.replicaSpec(to, 'joining', gen, live))
      await this.client(live).restore({ id: to, channel: r.channel! }, gen, opts.timeoutMs ?? 30_000)
      this.state.gen = gen
      const closed = this.closePowerFault(to)
      this.save()
      if (closed.length) this.operator('heal', { id: closed.join(','), healed: closed, by: 'restore' })
      const out: RestoreResult = { from: live, to, gen, ...(moved ? { machine: this.machineOf(to) } : {}) }
      this.operator('restore', { ...out })
      return out
    })
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

  /**
   * Follow what another process (the command line, another console) did to this lab since this
   * one last read or wrote its state: a restore's new agent, a fault, a power-on. Called before
   * every status and operation. A changed state is taken over and reported as a lab event
   * 'state-changed' with what changed; a lab stopped (its state file gone) or replaced (a new lab
   * of the same name) is reported once as 'state-lost', and from then on this lab neither writes
   * the file nor changes anything but stop.
   */
  refresh(): LabRefresh {
    if (this.lost) return { kind: 'lost', why: this.lost }
    if (this.store.stamp(this.state.name) === this.stamp) return { kind: 'same' }
    const read = this.store.read(this.state.name)
    if (!read || read.state.labKey !== this.state.labKey) {
      const why = !read
        ? `lab '${this.state.name}' was stopped by another process (its state file ${this.store.path(this.state.name)} is gone)`
        : `lab '${this.state.name}' was replaced: ${read.state.changedBy?.actor ?? 'another process'} started a new lab of that name at ${new Date(read.state.createdAt).toLocaleTimeString()}`
      this.lost = why
      this.emitEvent({ ts: Date.now(), source: 'lab', type: 'state-lost', data: { message: why, replaced: read !== null } })
      return { kind: 'lost', why }
    }
    const changes = describeChanges(this.state, read.state)
    const before = this.state
    this.state = read.state
    this.stamp = read.stamp
    // an agent that is not the one this lab spoke to: a fresh client (and event subscription) for it
    const restarted = HOST_IDS.filter((id) => before.hosts[id]?.pid !== this.state.hosts[id]?.pid)
    for (const id of restarted) this.dropClient(id)
    if (this.wantEvents) this.ensureSubscriptions()
    const powered = (st: LabState) => new Set(st.faults.flatMap((f) => (f.spec.kind === 'power' ? [f.spec.host] : [])))
    const stillCut = powered(this.state)
    const poweredOn = [...powered(before)].filter((id) => !stillCut.has(id))
    const by = read.state.changedBy
    this.emitEvent({
      ts: Date.now(),
      source: 'lab',
      type: 'state-changed',
      data: { changes, hosts: [...new Set([...restarted, ...poweredOn])], ...(by ? { by: by.actor, doing: by.doing, at: by.at } : {}) }
    })
    return { kind: 'changed', changes }
  }

  /** The operation another process (or this one) is running on the lab now, or null. */
  busy(): LabHolder | null {
    return this.store.holder(this.state.name)
  }

  // ——— internals ———

  /**
   * Run one operation that changes the lab, holding its lock (LabStore.lock) so that no other
   * process changes it meanwhile, on the state as the file has it now.
   */
  private async exclusive<T>(doing: string, f: () => Promise<T>, opts: { evenIfLost?: boolean } = {}): Promise<T> {
    if (this.lost && !opts.evenIfLost) throw new Error(`${this.lost}; nothing to do here`)
    const release = this.lost ? () => {} : await this.store.lock(this.state.name, doing)
    const outer = this.doing
    this.doing = doing
    try {
      const r = this.refresh()
      if (r.kind === 'lost' && !opts.evenIfLost) throw new Error(`${r.why}; nothing to do here`)
      return await f()
    } finally {
      this.doing = outer
      release()
    }
  }

  /** Write the state (unless another process stopped or replaced the lab), saying who changed it doing what. */
  private save(): void {
    if (this.lost) return
    this.state.changedBy = { actor: labActor(), doing: this.doing, at: Date.now() }
    this.stamp = this.store.save(this.state)
  }

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
    this.save()
    this.operator('rebind', { host: id, from, to: machine, channel: r.channel, service: r.service })
  }

  private host(id: string): HostRecord {
    const r = this.state.hosts[id]
    if (!r) throw new Error(`no host '${id}' in lab '${this.state.name}' (hosts: ${HOST_IDS.join(', ')})`)
    return r
  }

  private replicaSpec(id: string, as: 'primary' | 'backup' | 'joining' | 'recover', gen: number, peer: string): StartRole {
    const x = this.state.experiments ?? []
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
      ...(x.includes('read-fast-path') ? { readFastPath: true } : {}),
      ...(x.includes('no-output-rule') ? { noOutputRule: true } : {})
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
    this.save()
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

  /** Faults past their deadline were healed by their dead-man (agent or host); forget them. Power cuts have none. */
  private expireFaults(): void {
    const now = Date.now()
    const expired = this.state.faults.filter((f) => f.healsAt !== null && f.healsAt <= now)
    if (expired.length === 0) return
    for (const f of expired) if (f.spec.kind === 'pause') this.state.hosts[f.spec.host].paused = false
    // forgotten here only: the file keeps them until the next operation saves (a reader saving
    // outside the lock could write over another process's operation), and every reader expires them alike
    this.state.faults = this.state.faults.filter((f) => !expired.includes(f))
  }

  /**
   * Kernel shares for a network fault when every host that must act can apply its share in
   * its kernel; otherwise null shares (the agents' filter does it) and, when some host has a
   * kernel path but cannot use it now, a note that says why.
   */
  private async kernelPlan(spec: Exclude<LabFaultSpec, { kind: 'pause' }>, forMs: number): Promise<{ shares: KernelSharePart[] | null; note?: string }> {
    const shares = planKernelShares(spec, HOST_IDS, (slot) => this.machineHost(slot).address)
    if (!shares.some((s) => this.machineHost(s.host).applyKernelFault)) return { shares: null }
    const reasons = await Promise.all(
      shares.map(async (s): Promise<string | null> => {
        const host = this.machineHost(s.host)
        if (!host.applyKernelFault) return `${s.host}: this host has no kernel fault path`
        try {
          const why = (await host.kernelFaultUnavailable?.(s.share, forMs)) ?? null
          return why === null ? null : `${s.host}: ${why}`
        } catch (e) {
          return `${s.host}: ${(e as Error).message}`
        }
      })
    )
    const why = reasons.filter((r): r is string => r !== null)
    if (why.length === 0) return { shares }
    return { shares: null, note: `the hosts' kernels cannot do this (${why.join('; ')}); the agents' transport filter does it instead` }
  }

  /** Host-side fault ids: [a-z0-9_]{1,16}; the lab key's first characters keep two labs on one host apart. */
  private kernelId(no: number, part: number): string {
    return `${this.state.labKey.slice(0, 4).toLowerCase()}_${no}_${part}`
  }

  private filterPath(hosts: string[]): FaultRecord['path'] {
    return this.machineHost(hosts[0]).filterPath ?? 'agent-filter'
  }

  /** Close the power fault of slot `id` (restore refilled it, or its machine was switched on). */
  private closePowerFault(id: string): string[] {
    const closed = this.state.faults.filter((f) => f.spec.kind === 'power' && f.spec.host === id).map((f) => f.id)
    if (closed.length) this.state.faults = this.state.faults.filter((f) => !closed.includes(f.id))
    return closed
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
    await Promise.all([
      ...(f.kernel ?? []).map(async (k) => {
        const host = this.hostOf(k.machine)
        if (!host.healKernelFault) return problems.push(`${k.machine} cannot heal kernel faults`)
        await host.healKernelFault(k.part).catch((e: Error) => problems.push(`${k.machine}: ${e.message}`))
      }),
      ...f.parts.map(async (part) => {
        const r = this.state.hosts[part.host]
        if (!(await this.machineHost(part.host).isAgentAlive(r.pid))) return // the fault died with the agent
        await this.client(part.host)
          .heal(part.agentFaultId)
          .catch((e: Error) => problems.push(e.message))
      })
    ])
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
    await Promise.all(
      this.state.faults.map(async (f) => {
        if (f.watchdog)
          await this.machineHost((f.spec as { host: string }).host)
            .cancelScheduled(f.watchdog)
            .catch(() => {})
        for (const k of f.kernel ?? [])
          await this.hostOf(k.machine)
            .healKernelFault?.(k.part)
            .catch(() => {})
      })
    )
    this.state.faults = []
    await Promise.all(
      HOST_IDS.filter((id) => this.state.hosts[id]).map((id) =>
        this.stopAgent(id).catch(() =>
          this.machineHost(id)
            .kill(this.state.hosts[id].pid)
            .catch(() => null)
        )
      )
    )
    this.close()
    // a state file another process replaced belongs to its lab now
    if (!this.lost) this.store.remove(this.state.name)
    this.lost = `lab '${this.state.name}' was stopped`
  }
}

export type LabRefresh = { kind: 'same' } | { kind: 'changed'; changes: string[] } | { kind: 'lost'; why: string }

/** What another process changed, in the operator's words: "b: a new agent (pid 41 → 97, incarnation 2)". */
export function describeChanges(before: LabState, after: LabState): string[] {
  const out: string[] = []
  if (after.gen !== before.gen) out.push(`generation ${before.gen} → ${after.gen}`)
  for (const id of HOST_IDS) {
    const was = before.hosts[id]
    const is = after.hosts[id]
    if (!was || !is) continue
    if (is.pid !== was.pid)
      out.push(
        `${id}: ${is.incarnation !== was.incarnation ? `a new agent (pid ${was.pid} → ${is.pid}, incarnation ${is.incarnation})` : `its agent restarted (pid ${was.pid} → ${is.pid})`}`
      )
    if ((is.machine ?? id) !== (was.machine ?? id)) out.push(`${id}: now on machine ${is.machine ?? id}`)
    if (!!is.paused !== !!was.paused && is.pid === was.pid) out.push(`${id}: ${is.paused ? 'paused' : 'resumed'}`)
  }
  const had = new Set(before.faults.map((f) => f.id))
  const has = new Set(after.faults.map((f) => f.id))
  for (const f of after.faults) if (!had.has(f.id)) out.push(`fault ${f.id} opened: ${describeFault(f.spec)}`)
  for (const f of before.faults) if (!has.has(f.id)) out.push(`fault ${f.id} closed: ${describeFault(f.spec)}`)
  return out
}

function hostsOf(spec: LabFaultSpec): string[] {
  return 'host' in spec ? [spec.host] : [spec.from, spec.to]
}

function describeRow(r: HostStatusRow): string {
  if (r.state !== 'up') return r.state
  return r.status?.role ?? 'up'
}
