// What a lab remembers between commands: which process is which host, its ports, tokens and
// generation. Saved as ~/.ftlab/labs/<name>.json (FTLAB_HOME overrides ~/.ftlab), mode 0600
// because it holds the lab key and the control tokens.
import {
  closeSync,
  existsSync,
  fchmodSync,
  fstatSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync
} from 'node:fs'
import { homedir, hostname } from 'node:os'
import { join } from 'node:path'
import type { AgentFault, Endpoint, TimingConfig } from '../../agent/control/protocol.js'
import type { ArbiterSpec } from '../../agent/control/protocol.js'
import type { ReplicationMode } from '../../agent/vmm/types.js'
import { processAlive } from '../../agent/process.js'
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
  /** who wrote this state last, and doing what: a console that finds the file changed under it says so */
  changedBy?: { actor: string; doing: string; at: number }
}

/**
 * Who this process is, in the lock and the state's `changedBy` ("ftlab (pid 4711)", "the console
 * (pid 815)"); the command line and the console set it at their start.
 */
let actorName = 'a process'
export function setLabActor(name: string): void {
  actorName = name
}
export function labActor(): string {
  return `${actorName} (pid ${process.pid})`
}

/** An operation of this process waits for another process's hold on lab `name`. */
export interface LabLockWait {
  name: string
  /** who holds it: "ftlab restore (pid 4711)" */
  actor: string
  /** doing what: "restoring redundancy" */
  doing: string
  since: number
  /** how long this process waits before it gives up */
  waitMs: number
  /** the whole notice, in words */
  text: string
}

/**
 * Told once per wait when an operation of this process has to wait for another process's: the
 * command line prints it, the console's lab driver marks it on the timeline. Returns the
 * unsubscribe.
 */
const waitListeners = new Set<(w: LabLockWait) => void>()
export function onLabLockWait(listener: (w: LabLockWait) => void): () => void {
  waitListeners.add(listener)
  return () => void waitListeners.delete(listener)
}

/** What the lock file says: who holds the lab, doing what, since when. */
interface LockRecord {
  pid: number
  host: string
  actor: string
  doing: string
  since: number
}

/** Who holds a lab now, doing what, since when; `mine` when it is this process. */
export interface LabHolder {
  actor: string
  doing: string
  since: number
  mine: boolean
}

/** Another process holds the lab's lock longer than the caller would wait. */
export class LabBusyError extends Error {}

/** How many times this process holds each lock (one operation may call another: restore powers on). */
const held = new Map<string, number>()

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
    return this.read(name)?.state ?? null
  }

  /** The state and the stamp of the file it came from (see `stamp`), or null when there is none. */
  read(name: string): { state: LabState; stamp: string } | null {
    const p = this.path(name)
    let text: string
    let stamp: string
    try {
      const fd = openSync(p, 'r')
      try {
        stamp = stampOf(fstatSync(fd))
        text = readFileSync(fd, 'utf8')
      } finally {
        closeSync(fd)
      }
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
    return { state: raw as LabState, stamp }
  }

  /**
   * Write to a temp file and rename, so a crash never leaves half a state behind. Returns the
   * written file's stamp (see `stamp`), taken before the rename so no other writer can slip in.
   */
  save(state: LabState): string {
    mkdirSync(this.labsDir, { recursive: true, mode: 0o700 })
    const p = this.path(state.name)
    const tmp = `${p}.${process.pid}.tmp`
    const fd = openSync(tmp, 'w', 0o600)
    let stamp: string
    try {
      fchmodSync(fd, 0o600)
      writeSync(fd, JSON.stringify(state, null, 2) + '\n')
      stamp = stampOf(fstatSync(fd))
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, p)
    return stamp
  }

  /**
   * Which version of the state file is on disk: inode, modification time and size (every save
   * renames a new file into place, so its inode differs), or null when there is none. A holder of
   * the state compares it with the stamp of what it last read or wrote to see another process's change.
   */
  stamp(name: string): string | null {
    try {
      return stampOf(statSync(this.path(name)))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
  }

  /** Who holds lab `name`'s lock now (a live process; `mine` when it is this one), or null. */
  holder(name: string): LabHolder | null {
    const p = join(this.labsDir, `${checkLabName(name)}.lock`)
    const r = readLock(p)
    if (!r || (r.host === hostname() && !processAlive(r.pid))) return null
    return { actor: r.actor, doing: r.doing, since: r.since, mine: r.host === hostname() && r.pid === process.pid }
  }

  /**
   * Hold lab `name` for one operation, so two processes (the console and a command in a terminal,
   * two terminals) never change it at once: each would save its own copy over the other's. A
   * holder that died leaves a lock whose process is gone: taken over. Another live holder is waited
   * for up to `waitMs`, then refused, saying who holds it and doing what. The same process may hold
   * it more than once (an operation that calls another). Returns the release.
   */
  async lock(name: string, doing: string, waitMs = 15_000): Promise<() => void> {
    const p = join(this.labsDir, `${checkLabName(name)}.lock`)
    mkdirSync(this.labsDir, { recursive: true, mode: 0o700 })
    const deadline = Date.now() + waitMs
    let told = false
    for (;;) {
      const mine = held.get(p) ?? 0
      if (mine > 0) {
        held.set(p, mine + 1)
        break
      }
      const other = tryLock(p, doing)
      if (other === null) {
        held.set(p, 1)
        break
      }
      if (!told && waitMs > 0) {
        told = true
        const text = `lab '${name}' is busy: ${other.actor} is ${other.doing}; waiting for it (up to ${waitMs >= 1000 ? `${Math.round(waitMs / 1000)} s` : `${waitMs} ms`})`
        for (const l of waitListeners) l({ name, actor: other.actor, doing: other.doing, since: other.since, waitMs, text })
      }
      if (Date.now() >= deadline) {
        throw new LabBusyError(
          `lab '${name}' is busy: ${other.actor} has been ${other.doing} since ${new Date(other.since).toLocaleTimeString()}; try again when it is done (a holder that died frees it at once; the lock is ${p})`
        )
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (held.get(p) ?? 1) - 1
      if (n > 0) return void held.set(p, n)
      held.delete(p)
      if (readLock(p)?.pid === process.pid) rmSync(p, { force: true })
    }
  }

  remove(name: string): void {
    rmSync(this.path(name), { force: true })
  }

  removeData(name: string): void {
    rmSync(join(this.labsDir, checkLabName(name)), { recursive: true, force: true })
  }
}

function stampOf(st: { ino: number; mtimeMs: number; size: number }): string {
  return `${st.ino}:${st.mtimeMs}:${st.size}`
}

/** how old an unreadable lock file, or a steal guard, must be before it counts as left behind */
const ORPHAN_AFTER_MS = 5_000

/**
 * Take the lock file, or say who holds it. The record is written to a file of this process's own
 * and hard-linked into place: link() fails when the lock exists, and the lock is never seen
 * half-written. A lock left behind (its holder gone, on this machine; or unreadable for 5 s) is
 * removed under a steal guard, then taken like a free one.
 */
function tryLock(p: string, doing: string): LockRecord | null {
  const rec: LockRecord = { pid: process.pid, host: hostname(), actor: labActor(), doing, since: Date.now() }
  const mine = `${p}.${process.pid}.new`
  try {
    writeFileSync(mine, JSON.stringify(rec), { mode: 0o600 })
  } catch (err) {
    throw new Error(`cannot lock lab state (${p}): ${(err as Error).message}`, { cause: err })
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (linked(mine, p)) return null
      const other = readLock(p)
      if (other === null && !existsSync(p)) continue // released meanwhile
      if (leftBehind(p, other)) {
        removeLeftBehind(p, mine)
        continue
      }
      return other ?? { pid: 0, host: rec.host, actor: 'another process', doing: 'starting an operation', since: Date.now() }
    }
    return { pid: 0, host: rec.host, actor: 'another process', doing: 'taking the lock', since: Date.now() }
  } finally {
    rmSync(mine, { force: true })
  }
}

/** Hard-link `from` as `to`: true, or false when `to` exists. */
function linked(from: string, to: string): boolean {
  try {
    linkSync(from, to)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw new Error(`cannot lock lab state (${to}): ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Whether lock `p` (as read: `rec`, null if unreadable) was left behind: its holder died
 * mid-operation (the state says what it got done); or it names this process, which does not hold
 * it (the caller checked), so a dead holder's pid came round again; or it has been unreadable
 * for 5 s (a file someone broke: a holder of an older version between creating and writing it
 * is younger).
 */
function leftBehind(p: string, rec: LockRecord | null): boolean {
  if (rec !== null) return rec.host === hostname() && (rec.pid === process.pid || !processAlive(rec.pid))
  return olderThan(p, ORPHAN_AFTER_MS)
}

function olderThan(p: string, ms: number): boolean {
  try {
    return Date.now() - statSync(p).mtimeMs > ms
  } catch {
    return false
  }
}

/**
 * Remove lock `p` if it is still left behind, holding the steal guard `<p>.steal` (linked from
 * `mine` like a lock). Without the guard, two processes that found the same dead holder could
 * both remove "it", the second removing the lock the first had just taken. Only a remover can
 * take a lock that exists away, and removers take turns under the guard, so what the one holding
 * it reads stays in place until it unlinks. A guard is held for microseconds: one 5 s old was
 * left by a process that died holding it, and is removed (that removal alone is unguarded).
 */
function removeLeftBehind(p: string, mine: string): void {
  const guard = `${p}.steal`
  if (!linked(mine, guard)) {
    if (olderThan(guard, ORPHAN_AFTER_MS)) rmSync(guard, { force: true })
    return
  }
  try {
    if (existsSync(p) && leftBehind(p, readLock(p))) unlinkSync(p)
  } finally {
    rmSync(guard, { force: true })
  }
}

function readLock(p: string): LockRecord | null {
  try {
    const r = JSON.parse(readFileSync(p, 'utf8')) as Partial<LockRecord>
    return typeof r.pid === 'number' && typeof r.host === 'string' && typeof r.since === 'number'
      ? { pid: r.pid, host: r.host, actor: String(r.actor ?? `pid ${r.pid}`), doing: String(r.doing ?? 'an operation'), since: r.since }
      : null
  } catch {
    return null
  }
}
