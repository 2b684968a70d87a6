// A lab on real machines: the same orchestration as the embedded lab (Lab over LabHost), with
// SshHost for every role, plus what only real hosts have: network faults in the hosts'
// kernels (nftables, iptables, netem; each with a dead-man on its host), power drivers, and a
// deploy that checks every host in parallel and reports each one on its own line.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { localExec } from '../faults/exec.js'
import { choosePath, emergencyStop, healNetworkFault, injectNetworkFault, type FaultPath, type NetworkFaultSpec } from '../faults/network.js'
import { createPowerDriver, type PowerDriver, type PowerDriverSpec } from '../faults/power.js'
import type { HostCapabilities } from '../faults/probe.js'
import { DEFAULT_FAULT_MS, HOST_IDS, Lab, REPLICA_IDS, type HostStatusRow, type RestoreResult } from '../lab/lab.js'
import type { LabFaultSpec } from '../lab/lab-state.js'
import { ftlabHome, LabStore } from '../lab/lab-state.js'
import { findAgentBundle } from '../lab/local-host.js'
import type { HostKeyPrompt, SecretSource } from '../ssh/connection.js'
import type { DeployProgress } from '../ssh/deploy.js'
import { KnownHosts } from '../ssh/known-hosts.js'
import type { SshConfig } from '../ssh/ssh-config.js'
import { parseRouteDev, partId, planNetworkFault } from './fault-plan.js'
import { labHosts, type LabFile, type Slot } from './lab-file.js'
import { RemoteStore, REMOTE_STATE_VERSION, type RemoteFault, type RemoteState } from './remote-state.js'
import { SshHost } from './ssh-host.js'

export interface RemoteLabOptions {
  /** FT Lab's home (default $FTLAB_HOME or ~/.ftlab): lab state, known_hosts */
  home?: string
  knownHosts?: KnownHosts
  confirmHostKey?: (prompt: HostKeyPrompt & { slot: string }) => Promise<boolean>
  secrets?: SecretSource
  /** the BMC password for an ipmi power driver (keychain or prompt); never in the lab file */
  ipmiPassword?: (slot: string, bmc: { host: string; user: string }) => Promise<string>
  sshConfig?: SshConfig
  agentBundle?: string
  runtimeCacheDir?: string
  connectTimeoutMs?: number
  onProgress?: (p: DeployProgress) => void
}

/** One host's line in a deploy: what was checked, or why it failed. */
export interface PreflightLine {
  slot: string
  ok: boolean
  detail: string
  error?: Error
  /** which path network faults will take on this host */
  faultPath?: FaultPath
  caps?: HostCapabilities
}

export class RemoteDeployError extends Error {
  constructor(
    readonly lines: PreflightLine[],
    message: string
  ) {
    super(message)
    this.name = 'RemoteDeployError'
  }
}

export interface RemoteFaultResult {
  id: string
  spec: LabFaultSpec
  healsAt: number
  /** nft / iptables / netem in the hosts' kernels, agent-filter in the agents, sigstop for a pause */
  path: FaultPath | 'sigstop'
  /** one line per host piece: 'b: nft table inet ftlab_1a2b_3_0' */
  parts: string[]
  /** why the path is not the one asked for (netem missing, no root, …) */
  note?: string
}

export interface ReattachRow {
  slot: string
  ok: boolean
  detail: string
}

export class RemoteLab extends EventEmitter {
  private constructor(
    readonly name: string,
    private readonly state: RemoteState,
    private readonly remoteStore: RemoteStore,
    private readonly hosts: Map<string, SshHost>,
    /** null once the orchestration's state is gone (a half-done teardown) */
    readonly lab: Lab | null,
    private readonly opts: RemoteLabOptions
  ) {
    super()
  }

  // ——— deploy and open ———

  /**
   * Checks every host of the lab file in parallel (connect, host key, an agent of some
   * other lab already there, fault capabilities), each host on its own line; only when all
   * pass does it start the lab (deploy the agents, disk server, a primary, b backup).
   */
  static async deploy(file: LabFile, cfg: { name?: string; readyTimeoutMs?: number; onLine?: (l: PreflightLine) => void }, opts: RemoteLabOptions = {}): Promise<{ lab: RemoteLab; lines: PreflightLine[] }> {
    const name = cfg.name ?? file.name ?? 'remote'
    const home = opts.home ?? ftlabHome()
    const store = new LabStore(home)
    const remoteStore = new RemoteStore(home)
    const prior = store.load(name)
    const hosts = await makeHosts(file, home, opts)
    const lines = await Promise.all(
      labHosts(file).map(async (spec): Promise<PreflightLine> => {
        const h = hosts.get(spec.slot)!
        let line: PreflightLine
        try {
          line = await preflight(h, name, prior?.hosts[spec.slot]?.pid)
        } catch (e) {
          line = { slot: spec.slot, ok: false, detail: (e as Error).message, error: e as Error }
        }
        cfg.onLine?.(line)
        return line
      })
    )
    const failed = lines.filter((l) => !l.ok)
    if (failed.length) {
      for (const h of hosts.values()) h.close()
      throw new RemoteDeployError(lines, `lab '${name}' not deployed: ${failed.map((l) => `${l.slot}: ${l.detail}`).join('; ')}`)
    }
    const hostOf = (id: string) => hosts.get(id)!
    let lab: Lab
    try {
      lab = await Lab.start({ name, guest: file.guest, mode: file.mode, readyTimeoutMs: cfg.readyTimeoutMs, ...(file.arbiter ? { arbiter: file.arbiter } : {}) }, hostOf, store)
    } catch (e) {
      // a host still deploying when another failed would otherwise leave its agent behind
      await Promise.all([...hosts.values()].map((h) => h.settle()))
      await Promise.all(HOST_IDS.map((id) => hosts.get(id)!.stopAgent().catch(() => {})))
      store.remove(name)
      for (const h of hosts.values()) h.close()
      throw e
    }
    const state: RemoteState = { version: REMOTE_STATE_VERSION, name, deployedAt: Date.now(), file, tag: randomBytes(2).toString('hex'), nextFault: 1, faults: [] }
    remoteStore.save(state)
    return { lab: new RemoteLab(name, state, remoteStore, hosts, lab, opts), lines }
  }

  /** Reattach to a remote lab deployed earlier (by another command, or before a console restart). */
  static async open(name: string, opts: RemoteLabOptions = {}): Promise<RemoteLab> {
    const home = opts.home ?? ftlabHome()
    const remoteStore = new RemoteStore(home)
    const state = remoteStore.load(name)
    if (!state) throw new Error(`no remote lab named '${name}' (deploy one with \`ftlab deploy <labfile> --name ${name}\`)`)
    const hosts = await makeHosts(state.file, home, opts)
    const store = new LabStore(home)
    const lab = store.load(name) ? Lab.open(name, (id) => hosts.get(id)!, store) : null
    const rl = new RemoteLab(name, state, remoteStore, hosts, lab, opts)
    rl.expire()
    return rl
  }

  static exists(name: string, home: string = ftlabHome()): boolean {
    try {
      return new RemoteStore(home).load(name) !== null
    } catch {
      return true // a damaged state file still names a remote lab; opening it says what is wrong
    }
  }

  // ——— queries ———

  get file(): LabFile {
    return this.state.file
  }

  host(slot: string): SshHost {
    const h = this.hosts.get(slot)
    if (!h) throw new Error(`lab '${this.name}' has no host '${slot}' (hosts: ${[...this.hosts.keys()].join(', ')})`)
    return h
  }

  /**
   * The machine that plays lab slot `slot` now: its own host, or the one a restore moved it
   * onto (the spare). Faults, power and status of a slot go to this machine.
   */
  slotHost(slot: string): SshHost {
    return this.host(this.lab?.machineOf(slot) ?? slot)
  }

  private need(): Lab {
    if (!this.lab) throw new Error(`lab '${this.name}' has no running agents on record (it was torn down part way); finish with \`ftlab teardown --name ${this.name}\``)
    return this.lab
  }

  async status(timeoutMs = 1500): Promise<(HostStatusRow & { where: string; reason?: string })[]> {
    const rows = await this.need().status(timeoutMs)
    return rows.map((r) => {
      const h = this.slotHost(r.host)
      const out: HostStatusRow & { where: string; reason?: string } = { ...r, where: h.label }
      if (r.state === 'down' && h.lastError) out.reason = h.lastError.message
      return out
    })
  }

  openFaults(): RemoteFault[] {
    this.expire()
    return structuredClone(this.state.faults)
  }

  /**
   * After a console restart: does the agent each host's agent.json names match what the lab
   * state remembers (pid, control port)? The control token is only in the console's state.
   */
  async reattach(): Promise<ReattachRow[]> {
    const snap = this.need().snapshot()
    return Promise.all(
      HOST_IDS.map(async (slot): Promise<ReattachRow> => {
        const rec = snap.hosts[slot]
        const h = this.host(rec.machine ?? slot)
        try {
          const info = await h.agentInfo()
          if (!info) return { slot, ok: false, detail: `${h.label} has no agent.json: no agent runs there` }
          if (!info.alive) return { slot, ok: false, detail: `${h.label}: agent.json names pid ${info.pid}, which is not running` }
          if (info.pid !== rec.pid || info.controlPort !== rec.controlPort) {
            return { slot, ok: false, detail: `${h.label} runs agent pid ${info.pid} on control port ${info.controlPort}, but this lab started pid ${rec.pid} on ${rec.controlPort}; another console redeployed it` }
          }
          return { slot, ok: true, detail: `pid ${info.pid}, control port ${info.controlPort}${info.startedAt ? `, up since ${info.startedAt}` : ''}` }
        } catch (e) {
          return { slot, ok: false, detail: `${h.label} unreachable: ${(e as Error).message}` }
        }
      })
    )
  }

  // ——— faults ———

  /**
   * Network faults go into the target hosts' kernels (nft, else iptables; netem for delay),
   * sparing the console's SSH connection, each with a dead-man on its host. Where a host
   * cannot (no root, no netem), the agents' transport filter does it and the result says so.
   */
  async injectFault(spec: LabFaultSpec, forMs = DEFAULT_FAULT_MS): Promise<RemoteFaultResult> {
    const lab = this.need()
    if (spec.kind === 'pause') {
      const rec = await lab.injectFault(spec, forMs)
      return this.announce({ id: rec.id, spec, healsAt: rec.healsAt, path: 'sigstop', parts: [`${spec.host}: SIGSTOP pid ${lab.snapshot().hosts[spec.host].pid}, dead-man on the host resumes it`] })
    }
    if ('from' in spec && spec.from === spec.to) throw new Error(`a link needs two different hosts, got ${spec.from}-${spec.to}`)
    const slots = 'host' in spec ? [spec.host] : [spec.from, spec.to]
    for (const s of slots) if (!(HOST_IDS as readonly string[]).includes(s)) throw new Error(`no host '${s}' in lab '${this.name}' (hosts: ${HOST_IDS.join(', ')})`)
    if (forMs < 1000) throw new Error(`a fault on real hosts lasts at least 1 s (its dead-man counts whole seconds), got ${forMs} ms`)

    // the path first, for every piece, so nothing is applied when some host cannot do its part
    const mgmt = new Map<string, Awaited<ReturnType<SshHost['managementPeer']>>>()
    for (const s of slots) mgmt.set(s, await this.slotHost(s).managementPeer())
    const devs = new Map<string, string>()
    if (spec.kind === 'delay') {
      for (const [from, to] of [[spec.from, spec.to], [spec.to, spec.from]] as const) {
        const peer = this.slotHost(to).address
        const r = await this.slotHost(from).faultExec().run(`PATH="$PATH:/usr/sbin:/sbin"; ip route get ${peer}`, { timeoutMs: 15_000 })
        const dev = parseRouteDev(r.stdout)
        if (dev) devs.set(`${from}>${peer}`, dev)
      }
    }
    let parts
    try {
      parts = planNetworkFault(spec, {
        labAddress: (s) => this.slotHost(s).address,
        slots: HOST_IDS,
        network: this.state.file.network,
        consoleAddress: (s) => mgmt.get(s)!.address,
        devTo: (s, peer) => {
          const d = devs.get(`${s}>${peer}`)
          if (!d) throw new Error(`no route from ${s} to ${peer}`)
          return d
        }
      })
    } catch (e) {
      return this.viaAgents(spec, forMs, `cannot place netem: ${(e as Error).message}`)
    }
    const reasons: string[] = []
    for (const p of parts) {
      let caps: HostCapabilities
      try {
        caps = await this.slotHost(p.slot).capabilities()
      } catch (e) {
        reasons.push(`${p.slot}: capability probe failed: ${(e as Error).message}`)
        continue
      }
      const c = choosePath(p.spec, caps)
      if ('reason' in c) reasons.push(`${p.slot}: ${c.reason}`)
    }
    if (reasons.length) return this.viaAgents(spec, forMs, reasons.join('; '))

    const no = this.state.nextFault++
    const id = `n${no}`
    const now = Date.now()
    const fault: RemoteFault = { id, spec, path: 'nft', createdAt: now, healsAt: now + forMs, parts: [] }
    try {
      for (const [i, p] of parts.entries()) {
        const machine = this.lab?.machineOf(p.slot) ?? p.slot
        const h = this.host(machine)
        const r = await injectNetworkFault(
          h.faultExec(),
          { id: partId(this.state.tag, no, i), target: p.slot, spec: p.spec as NetworkFaultSpec, management: mgmt.get(p.slot) ?? (await h.managementPeer()), deadlineMs: forMs },
          { caps: await h.capabilities() }
        )
        if (r.status !== 'applied') throw new Error(r.reason)
        fault.parts.push({ slot: p.slot, record: r.record, ...(machine !== p.slot ? { machine } : {}) })
      }
    } catch (e) {
      for (const part of fault.parts) await healNetworkFault(this.host(part.machine ?? part.slot).faultExec(), part.record).catch(() => {})
      this.remoteStore.save(this.state)
      throw e
    }
    fault.path = fault.parts[0]!.record.path
    this.state.faults.push(fault)
    this.remoteStore.save(this.state)
    return this.announce({ id, spec, healsAt: fault.healsAt, path: fault.path, parts: fault.parts.map((p) => `${p.slot}: ${describePart(p.record.path, p.record.id)}`) })
  }

  private async viaAgents(spec: LabFaultSpec, forMs: number, why: string): Promise<RemoteFaultResult> {
    const rec = await this.need().injectFault(spec, forMs)
    return this.announce({
      id: rec.id,
      spec,
      healsAt: rec.healsAt,
      path: 'agent-filter',
      parts: rec.parts.map((p) => `${p.host}: agent transport filter (${p.fault.kind})`),
      note: `the hosts' kernels cannot do this (${why}); the agents' transport filter does it instead`
    })
  }

  private announce(r: RemoteFaultResult): RemoteFaultResult {
    this.emit('fault', r)
    return r
  }

  /** Heal one fault, or everything ('all', the emergency stop: every FT Lab table, chain and qdisc on every host). */
  async heal(which: string): Promise<string[]> {
    this.expire()
    if (which === 'all') {
      const problems: string[] = []
      const healed = this.state.faults.map((f) => f.id)
      await Promise.all(
        [...this.hosts.values()].map(async (h) => {
          try {
            await emergencyStop(h.faultExec())
          } catch (e) {
            problems.push(`${h.label}: ${(e as Error).message}`)
          }
        })
      )
      this.state.faults = []
      this.remoteStore.save(this.state)
      if (this.lab) {
        try {
          healed.push(...(await this.lab.heal('all')))
        } catch (e) {
          problems.push((e as Error).message)
        }
      }
      this.emit('heal', { id: 'all', healed, problems })
      if (problems.length) throw new Error(`healed ${healed.join(', ') || 'nothing'} but: ${problems.join('; ')}`)
      return healed
    }
    const f = this.state.faults.find((x) => x.id === which)
    if (!f) return this.need().heal(which)
    const problems: string[] = []
    for (const p of f.parts) await healNetworkFault(this.host(p.machine ?? p.slot).faultExec(), p.record).catch((e: Error) => problems.push(e.message))
    this.state.faults = this.state.faults.filter((x) => x !== f)
    this.remoteStore.save(this.state)
    this.emit('heal', { id: which, problems })
    if (problems.length) throw new Error(`fault ${which} not fully healed: ${problems.join('; ')}`)
    return [which]
  }

  /** Dead-men have healed faults past their deadline on the hosts; forget them here. */
  private expire(): void {
    const now = Date.now()
    const left = this.state.faults.filter((f) => f.healsAt > now)
    if (left.length !== this.state.faults.length) {
      this.state.faults = left
      this.remoteStore.save(this.state)
    }
  }

  // ——— power ———

  powerDriver(slot: string): PowerDriver | null {
    const h = this.slotHost(slot)
    const p = h.spec.power
    if (p.driver === 'kill') return null
    const spec = p as PowerDriverSpec
    return createPowerDriver(spec, {
      target: h.faultExec(),
      controller: localExec(),
      ipmiPassword:
        p.driver === 'ipmi'
          ? async () => {
              if (!this.opts.ipmiPassword) throw new Error(`${h.label}: the ipmi power driver needs the BMC password for ${p.user}@${p.host}, and this console has no way to ask for it`)
              return this.opts.ipmiPassword(slot, { host: p.host, user: p.user })
            }
          : undefined
    })
  }

  /** Cut a host's power with its driver (kill = SIGKILL of the agent, the default). */
  async powerCut(slot: string): Promise<{ driver: string; detail: string }> {
    const lab = this.need()
    const driver = this.powerDriver(slot)
    if (!driver) {
      await lab.powerCut(slot)
      return { driver: 'kill', detail: `agent ${slot} (pid ${lab.snapshot().hosts[slot].pid}) killed` }
    }
    const r = await driver.powerOff()
    // the connection went down with the host; the next use reconnects (or says the host is off)
    this.slotHost(slot).dropConnection()
    this.emit('power', { slot, action: 'off', driver: driver.kind })
    return { driver: driver.kind, detail: r.detail }
  }

  /** Power a host back on where its driver can, and wait until SSH answers there again. */
  async powerOn(slot: string, timeoutMs = 60_000): Promise<{ driver: string; detail: string }> {
    const driver = this.powerDriver(slot)
    const h = this.slotHost(slot)
    if (!driver) return { driver: 'kill', detail: `${h.label}: nothing to power on (kill stops only the agent); restore redeploys it` }
    if (!driver.powerOn) throw new Error(`${h.label}: the ${driver.kind} driver cannot power a host on; switch it on by hand, then run restore`)
    const r = await driver.powerOn()
    const deadline = Date.now() + timeoutMs
    let last: Error | null = null
    while (Date.now() < deadline) {
      h.dropConnection()
      try {
        await h.exec('true', { timeoutMs: 10_000 })
        this.emit('power', { slot, action: 'on', driver: driver.kind })
        return { driver: driver.kind, detail: r.detail }
      } catch (e) {
        last = e as Error
        await new Promise((res) => setTimeout(res, 500))
      }
    }
    throw new Error(`${h.label} was powered on (${r.detail}) but SSH did not answer within ${timeoutMs} ms: ${last?.message ?? 'no answer'}`)
  }

  /**
   * Restore redundancy: the failed replica's host gets a fresh agent (deployed again over
   * SSH) that joins as the live replica's new backup. A host whose power was cut is powered
   * on first when its driver can. With `onto` (a host of the lab file that plays no slot,
   * typically 'spare'), the fresh agent is deployed there instead and the slot moves to it:
   * same replica id, new logging-channel and service addresses on that machine.
   */
  async restore(opts: { timeoutMs?: number; onto?: string } = {}): Promise<RestoreResult> {
    const lab = this.need()
    if (opts.onto !== undefined) {
      const onto = opts.onto
      if (!this.hosts.has(onto)) throw new Error(`lab '${this.name}' has no host '${onto}' to restore onto (the lab file names: ${[...this.hosts.keys()].join(', ')})`)
      const playing = HOST_IDS.find((slot) => lab.machineOf(slot) === onto)
      if (playing && !(REPLICA_IDS as readonly string[]).includes(playing)) throw new Error(`${this.host(onto).label} plays ${playing}; restore moves only a replica onto a machine of its own`)
      const h = this.host(onto)
      // the spare was checked at deploy, but much may have happened since: say so before touching the live replica
      await h.exec('true', { timeoutMs: 10_000 }).catch((e: Error) => {
        throw new Error(`${h.label} cannot be reached, so nothing can be restored onto it: ${e.message}`)
      })
      return lab.restore({ ...opts, onto })
    }
    const rows = await lab.status()
    const down = rows.find((r) => r.kind === 'replica' && r.state === 'down')
    if (down) {
      const h = this.slotHost(down.host)
      const reachable = await h.exec('true', { timeoutMs: 10_000 }).then(
        () => true,
        () => false
      )
      if (!reachable) {
        const d = this.powerDriver(down.host)
        if (d?.powerOn) await this.powerOn(down.host)
        else throw new Error(`${h.label} cannot be reached (${h.lastError?.message ?? 'no answer'}); bring it back, then restore${this.spareFree() ? ` (or restore onto the spare: \`ftlab restore --onto spare --name ${this.name}\`)` : ''}`)
      }
    }
    return lab.restore(opts)
  }

  /** A spare host in the lab file that plays no slot now. */
  private spareFree(): boolean {
    return this.hosts.has('spare') && !HOST_IDS.some((slot) => this.lab?.machineOf(slot) === 'spare')
  }

  // ——— teardown ———

  /**
   * Heal every fault, stop the agents, and remove what FT Lab put on each host (~/.ftlab:
   * agent, runtime, data, logs; ftlab_* nft tables and iptables chains, FT Lab netem qdiscs).
   * A host that cannot be reached is reported and the state is kept, so teardown can be run
   * again once it is back.
   */
  async teardown(): Promise<{ removed: string[]; problems: string[] }> {
    const problems: string[] = []
    const removed: string[] = []
    await this.heal('all').catch((e: Error) => problems.push(e.message))
    if (this.lab) await this.lab.stop().catch((e: Error) => problems.push(e.message))
    await Promise.all(
      [...this.hosts.values()].map(async (h) => {
        try {
          await h.removeFiles()
          removed.push(h.spec.slot)
        } catch (e) {
          problems.push(`${h.label}: ${(e as Error).message}`)
        }
      })
    )
    if (problems.length === 0) this.remoteStore.remove(this.name)
    return { removed, problems }
  }

  /** Let go of the agents and the SSH connections; the lab keeps running on its hosts. */
  close(): void {
    this.lab?.close()
    for (const h of this.hosts.values()) h.close()
  }
}

async function makeHosts(file: LabFile, home: string, opts: RemoteLabOptions): Promise<Map<string, SshHost>> {
  const knownHosts = opts.knownHosts ?? (await KnownHosts.load({ store: join(home, 'known_hosts') }))
  const bundlePath = opts.agentBundle ?? findAgentBundle()
  const hosts = new Map<string, SshHost>()
  for (const spec of labHosts(file)) {
    hosts.set(
      spec.slot,
      new SshHost({
        spec,
        knownHosts,
        confirmHostKey: opts.confirmHostKey ? (p) => opts.confirmHostKey!({ ...p, slot: spec.slot }) : undefined,
        secrets: opts.secrets,
        sshConfig: opts.sshConfig,
        bundlePath,
        runtimeCacheDir: opts.runtimeCacheDir,
        connectTimeoutMs: opts.connectTimeoutMs,
        onProgress: opts.onProgress
      })
    )
  }
  return hosts
}

async function preflight(h: SshHost, name: string, ownPid: number | undefined): Promise<PreflightLine> {
  const slot = h.spec.slot as Slot
  await h.connection()
  const info = await h.agentInfo()
  // deploy replaces the agent of this login, so a running one would be killed: refuse instead
  if (info?.alive) {
    const whose = info.pid === ownPid ? `lab '${name}' is already running there` : 'it belongs to another lab'
    throw new Error(
      `${h.label} already runs an FT Lab agent (pid ${info.pid}${info.startedAt ? `, up since ${info.startedAt}` : ''}); ${whose}: tear it down first (\`ftlab teardown --name <lab>\`)`
    )
  }
  const mgmt = await h.managementPeer()
  let caps: HostCapabilities | undefined
  let faultPath: FaultPath = 'agent-filter'
  let why = ''
  try {
    caps = await h.capabilities()
    const c = choosePath({ kind: 'cut', peer: '192.0.2.1', direction: 'both' }, caps)
    if ('path' in c) faultPath = c.path
    else why = ` (${c.reason})`
  } catch (e) {
    why = ` (capability probe failed: ${(e as Error).message})`
  }
  const netem = caps?.netem.available ? 'netem' : 'no netem: delay via the agents'
  return {
    slot,
    ok: true,
    detail: `${h.label} reachable, console seen as ${mgmt.address}; network faults via ${faultPath}${why}; ${netem}`,
    faultPath,
    ...(caps ? { caps } : {})
  }
}

function describePart(path: FaultPath, id: string): string {
  switch (path) {
    case 'nft':
      return `nft table inet ftlab_${id}`
    case 'iptables':
      return `iptables chains ftlab_${id}_in/out`
    case 'netem':
      return `tc netem (prio root qdisc) for fault ${id}`
    case 'agent-filter':
      return `agent filter ${id}`
  }
}

