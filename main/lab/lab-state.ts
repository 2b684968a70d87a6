// What a lab remembers between commands: which process is which host, its ports, tokens and
// generation. Saved as ~/.ftlab/labs/<name>.json (FTLAB_HOME overrides ~/.ftlab), mode 0600
// because it holds the lab key and the control tokens.
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { AgentFault, Endpoint, TimingConfig } from '../../agent/control/protocol.js'
import type { ArbiterSpec } from '../../agent/control/protocol.js'
import type { ReplicationMode } from '../../agent/vmm/types.js'
import type { KernelFaultPart } from './lab-host.js'

export const LAB_STATE_VERSION = 1

export interface HostRecord {
  id: string
  kind: 'replica' | 'disk-server'
  pid: number
  controlPort: number
  controlToken: string
  /** counts the agents started in this host's slot (restore redundancy starts a new one) */
  incarnation: number
  dataDir: string
  /** replica: logging channel and client service addresses */
  channel?: Endpoint
  service?: Endpoint
  /** disk server: where replicas reach it */
  listen?: Endpoint
  startedAs: 'primary' | 'backup' | 'joining' | 'recover' | 'disk-server'
  /** SIGSTOPped by the console and not yet resumed */
  paused?: boolean
  /** the machine playing this slot when it is not the one named like it (restore onto a spare) */
  machine?: string
}

export type LabFaultSpec =
  | { kind: 'pause'; host: string }
  | { kind: 'isolate'; host: string }
  | { kind: 'cut'; from: string; to: string; oneWay: boolean }
  | { kind: 'loss'; from: string; to: string; probability: number }
  | { kind: 'delay'; from: string; to: string; ms: number; jitterMs?: number }

/** A power cut: fail-stop of a machine. It has no deadline: restore of its slot or power-on closes it. */
export interface PowerFaultSpec {
  kind: 'power'
  host: string
}

export type FaultSpec = LabFaultSpec | PowerFaultSpec

/**
 * How a fault was applied: the agents' transport filter (or the simulator's network), the
 * hosts' kernels (nft, iptables, netem), a SIGSTOP, or for a power cut a SIGKILL of the agent
 * or the machine's power driver.
 */
export type FaultPathName = 'agent-filter' | 'nft' | 'iptables' | 'netem' | 'sigstop' | 'kill' | 'driver' | 'sim'

export interface FaultRecord {
  id: string
  spec: FaultSpec
  /** the pieces handed to agents; each heals itself at the deadline */
  parts: { host: string; agentFaultId: string; fault: AgentFault }[]
  /** the pieces in hosts' kernels, each with a dead-man on its host; machine = the host that applied it */
  kernel?: { host: string; machine: string; part: KernelFaultPart }[]
  createdAt: number
  /** null for a power cut: it heals only by restore redundancy or power-on */
  healsAt: number | null
  path: FaultPathName
  /** why the path is not the usual one (no root on the host, no netem), or what a power driver said */
  note?: string
  /** pause: the host-side process that resumes the agent at the deadline */
  watchdog?: string
}

export interface LabState {
  version: typeof LAB_STATE_VERSION
  name: string
  createdAt: number
  guest: string
  mode: ReplicationMode
  labKey: string
  /** the newest generation the console began */
  gen: number
  timing: TimingConfig
  /** the tie-breaker; absent = the disk server */
  arbiter?: ArbiterSpec
  /** drill-only switches in the replicas; absent = none */
  experiments?: ('no-output-rule' | 'read-fast-path')[]
  hosts: Record<string, HostRecord>
  faults: FaultRecord[]
  nextFault: number
}

export function ftlabHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.FTLAB_HOME && env.FTLAB_HOME.length > 0 ? env.FTLAB_HOME : join(homedir(), '.ftlab')
}

export function checkLabName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/.test(name))
    throw new Error(`lab name ${JSON.stringify(name)}: use 1 to 40 letters, digits, '-' or '_', starting with a letter or digit`)
  return name
}

export class LabStore {
  readonly labsDir: string

  constructor(home: string = ftlabHome()) {
    this.labsDir = join(home, 'labs')
  }

  path(name: string): string {
    return join(this.labsDir, `${checkLabName(name)}.json`)
  }

  /** Where the lab's agents keep their files: one directory per host incarnation. */
  dataDir(name: string, host: string, incarnation: number): string {
    return join(this.labsDir, checkLabName(name), `${host}-${incarnation}`)
  }

  load(name: string): LabState | null {
    const p = this.path(name)
    let text: string
    try {
      text = readFileSync(p, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw new Error(`cannot read lab state ${p}: ${(err as Error).message}`, { cause: err })
    }
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (err) {
      throw new Error(`lab state ${p} is not valid JSON (${(err as Error).message}); remove the file if no agents of this lab run`, { cause: err })
    }
    const s = raw as Partial<LabState>
    if (
      typeof s !== 'object' ||
      s === null ||
      s.version !== LAB_STATE_VERSION ||
      typeof s.hosts !== 'object' ||
      s.hosts === null ||
      typeof s.gen !== 'number'
    ) {
      throw new Error(`lab state ${p} is not a version ${LAB_STATE_VERSION} lab state; remove the file if no agents of this lab run`)
    }
    // a state written before faults carried their path
    for (const f of (s.faults ?? []) as FaultRecord[]) f.path ??= f.spec.kind === 'pause' ? 'sigstop' : 'agent-filter'
    return raw as LabState
  }

  /** Write to a temp file and rename, so a crash never leaves half a state behind. */
  save(state: LabState): void {
    mkdirSync(this.labsDir, { recursive: true, mode: 0o700 })
    const p = this.path(state.name)
    const tmp = `${p}.${process.pid}.tmp`
    writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 })
    chmodSync(tmp, 0o600)
    renameSync(tmp, p)
  }

  remove(name: string): void {
    rmSync(this.path(name), { force: true })
  }

  removeData(name: string): void {
    rmSync(join(this.labsDir, checkLabName(name)), { recursive: true, force: true })
  }
}
