// A lab on real machines: the same orchestration as the embedded lab (Lab over LabHost, which
// keeps the one fault registry), with SshHost for every role; SshHost brings what only real
// hosts have (network faults in the hosts' kernels with a dead-man on each host, power
// drivers). What is left here is what only a remote lab does: a deploy that checks every host
// in parallel and reports each one on its own line, reattach, restore onto another machine,
// power-on, and a teardown that removes FT Lab from every host.
import { join } from 'node:path'
import { choosePath, type FaultPath } from '../faults/network.js'
import type { HostCapabilities } from '../faults/probe.js'
import { HOST_IDS, Lab, REPLICA_IDS, type HostStatusRow, type LabExperiment, type RestoreResult } from '../lab/lab.js'
import { ftlabHome, LabStore } from '../lab/lab-state.js'
import { findAgentBundle } from '../lab/local-host.js'
import type { HostKeyPrompt, SecretSource } from '../ssh/connection.js'
import type { DeployProgress } from '../ssh/deploy.js'
import { KnownHosts } from '../ssh/known-hosts.js'
import type { SshConfig } from '../ssh/ssh-config.js'
import { labHosts, type LabFile, type Slot } from './lab-file.js'
import { RemoteStore, REMOTE_STATE_VERSION, type RemoteState } from './remote-state.js'
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
  /**
   * deploy progress, per step and host: `slot` is the lab-file host that deploys (the spare
   * after a restore onto it), `hostId` the lab slot its agent plays
   */
  onProgress?: (p: DeployProgress & { slot: string }) => void
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

export interface ReattachRow {
  slot: string
  ok: boolean
  detail: string
}

export class RemoteLab {
  private constructor(
    readonly name: string,
    private readonly state: RemoteState,
    private readonly remoteStore: RemoteStore,
    private readonly hosts: Map<string, SshHost>,
    /** the orchestration (faults, power, status, restore); null once its state is gone (a half-done teardown) */
    readonly lab: Lab | null
  ) {}

  // ——— deploy and open ———

  /**
   * Checks every host of the lab file in parallel (connect, host key, an agent of some
   * other lab already there, fault capabilities), each host on its own line; only when all
   * pass does it start the lab (deploy the agents, disk server, a primary, b backup).
   */
  static async deploy(
    file: LabFile,
    cfg: { name?: string; readyTimeoutMs?: number; onLine?: (l: PreflightLine) => void; experiments?: LabExperiment[] },
    opts: RemoteLabOptions = {}
  ): Promise<{ lab: RemoteLab; lines: PreflightLine[] }> {
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
      lab = await Lab.start(
        {
          name,
          guest: file.guest,
          mode: file.mode,
          readyTimeoutMs: cfg.readyTimeoutMs,
          ...(file.arbiter ? { arbiter: file.arbiter } : {}),
          // drill-only switches: the agents get them in their start spec (a drill's redeploy, never a plain one)
          ...(cfg.experiments?.length ? { experiments: cfg.experiments } : {})
        },
        hostOf,
        store
      )
    } catch (e) {
      // a host still deploying when another failed would otherwise leave its agent behind
      await Promise.all([...hosts.values()].map((h) => h.settle()))
      await Promise.all(
        HOST_IDS.map((id) =>
          hosts
            .get(id)!
            .stopAgent()
            .catch(() => {})
        )
      )
      store.remove(name)
      for (const h of hosts.values()) h.close()
      throw e
    }
    const state: RemoteState = { version: REMOTE_STATE_VERSION, name, deployedAt: Date.now(), file }
    remoteStore.save(state)
    return { lab: new RemoteLab(name, state, remoteStore, hosts, lab), lines }
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
    return new RemoteLab(name, state, remoteStore, hosts, lab)
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

  get deployedAt(): number {
    return this.state.deployedAt
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
    if (!this.lab)
      throw new Error(`lab '${this.name}' has no running agents on record (it was torn down part way); finish with \`ftlab teardown --name ${this.name}\``)
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
            return {
              slot,
              ok: false,
              detail: `${h.label} runs agent pid ${info.pid} on control port ${info.controlPort}, but this lab started pid ${rec.pid} on ${rec.controlPort}; another console redeployed it`
            }
          }
          return { slot, ok: true, detail: `pid ${info.pid}, control port ${info.controlPort}${info.startedAt ? `, up since ${info.startedAt}` : ''}` }
        } catch (e) {
          return { slot, ok: false, detail: `${h.label} unreachable: ${(e as Error).message}` }
        }
      })
    )
  }

  // ——— power ———

  /** Power a host back on with its driver, wait until SSH answers there again, and close its power fault. */
  async powerOn(slot: string): Promise<{ driver: string; detail: string }> {
    return this.need().powerOn(slot)
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
      if (!this.hosts.has(onto))
        throw new Error(`lab '${this.name}' has no host '${onto}' to restore onto (the lab file names: ${[...this.hosts.keys()].join(', ')})`)
      const playing = HOST_IDS.find((slot) => lab.machineOf(slot) === onto)
      if (playing && !(REPLICA_IDS as readonly string[]).includes(playing))
        throw new Error(`${this.host(onto).label} plays ${playing}; restore moves only a replica onto a machine of its own`)
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
        if (lab.canPowerOn(down.host)) await lab.powerOn(down.host)
        else
          throw new Error(
            `${h.label} cannot be reached (${h.lastError?.message ?? 'no answer'}); bring it back, then restore${this.spareFree() ? ` (or restore onto the spare: \`ftlab restore --onto spare --name ${this.name}\`)` : ''}`
          )
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
    if (this.lab) {
      const h = await this.lab.heal('all').catch((e: Error) => ({ healed: [], warnings: [e.message] }))
      problems.push(...h.warnings)
      await this.lab.stop().catch((e: Error) => problems.push(e.message))
    }
    await Promise.all(
      [...this.hosts.values()].map(async (h) => {
        try {
          // every host of the file, a spare too: whatever FT Lab put in its kernel goes
          await h.clearKernelFaults()
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
        onProgress: opts.onProgress ? (p) => opts.onProgress!({ ...p, slot: spec.slot }) : undefined,
        ...(file.network ? { network: file.network } : {}),
        ...(opts.ipmiPassword ? { ipmiPassword: (bmc: { host: string; user: string }) => opts.ipmiPassword!(spec.slot, bmc) } : {})
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
