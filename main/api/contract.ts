// The console API: the one contract between the renderer and the console core.
//
// Used on both sides of two transports: Electron IPC (preload → main) and the browser
// mode's WebSocket (renderer → main/transport/ws-server.ts). Every request is checked here
// against its zod schema before it reaches the backend, so a bad argument is refused with a
// message that names the method and the field, says what was expected and what came, and
// never reaches the lab. One schema per request gives both the TypeScript type (z.infer)
// and the runtime check.
//
// This file is compiled by both tsconfig.node.json and tsconfig.web.json: it must import
// nothing but `zod` (no Node modules, no agent types; TS composite projects refuse files
// outside their include list). The shapes below follow agent/control/protocol.ts
// (AgentStatus, AgentEvent) and agent/replica/types.ts (Role, Telemetry), seen from the console.
import { z } from 'zod'

export const API_VERSION = 2

/** Largest request or event batch that may cross either transport, in bytes (UTF-8 JSON). */
export const MAX_MESSAGE_BYTES = 1024 * 1024

/** Largest terminal input in one term.input call. */
export const MAX_TERM_INPUT = 64 * 1024

/** Scrollback a terminal keeps across reconnects and page reloads. */
export const TERM_SCROLLBACK_BYTES = 256 * 1024

// ---------------------------------------------------------------------------------------
// Vocabulary

export const HOST_IDS = ['a', 'b', 'disk'] as const
export type HostId = (typeof HOST_IDS)[number]

export const REPLICA_IDS = ['a', 'b'] as const
export type ReplicaHostId = (typeof REPLICA_IDS)[number]

export const GUESTS = ['kv', 'bank'] as const
export type GuestName = (typeof GUESTS)[number]

export const MODES = ['rsm', 'state-transfer'] as const
export type ReplicationMode = (typeof MODES)[number]

/** local: agent processes on this machine; simulated: the real core in-process under a simulated clock; remote: deployed over SSH. */
export const LAB_KINDS = ['local', 'simulated', 'remote'] as const
export type LabKind = (typeof LAB_KINDS)[number]

export const WORKLOADS = ['kv', 'bank'] as const
export type Workload = (typeof WORKLOADS)[number]

/** A host's role as the console shows it: the agent's role, or 'down' when the agent is unreachable. */
export type HostRole = 'primary' | 'backup' | 'live' | 'halted' | 'joining' | 'disk-server' | 'idle' | 'down'

/** Compound state shown beside the role ("primary · isolated · outputs held · cannot reach the disk server"). */
export const HOST_NOTES = ['isolated', 'paused', 'outputs-held', 'no-disk-server', 'no-peer', 'cannot-go-live', 'fenced', 'diverged', 'power-off'] as const
export type HostNote = (typeof HOST_NOTES)[number]

/** Links between hosts, named by their two ends. */
export const LINKS = ['a-b', 'a-disk', 'b-disk'] as const
export type LinkId = (typeof LINKS)[number]

export type FaultTarget = HostId | LinkId

/**
 * Fault kinds and the targets they apply to:
 *  power   host  cut the power (fail-stop): driver, or SIGKILL   params {}
 *  pause   host  SIGSTOP the agent (grey failure)                  params {}
 *  isolate host  cut the host from the lab network                 params {}
 *  cut     link  drop traffic on a link                            params { direction?: 'both'|'forward'|'backward' }
 *  delay   link  delay traffic on a link                           params { ms, jitterMs? }
 *  loss    link  drop a fraction of the packets on a link          params { probability }
 */
export const FAULT_KINDS = ['power', 'pause', 'isolate', 'cut', 'delay', 'loss'] as const
export type FaultKind = (typeof FAULT_KINDS)[number]
export const HOST_FAULT_KINDS: readonly FaultKind[] = ['power', 'pause', 'isolate']
export const LINK_FAULT_KINDS: readonly FaultKind[] = ['cut', 'delay', 'loss']

export const CUT_DIRECTIONS = ['both', 'forward', 'backward'] as const
export type CutDirection = (typeof CUT_DIRECTIONS)[number]
export interface FaultParams {
  direction?: CutDirection
  ms?: number
  jitterMs?: number
  probability?: number
}

/** How a fault is applied: in the host's kernel, by the agents' own filter, by a signal, by a power driver, or in the simulator. */
export const FAULT_PATHS = ['agent-filter', 'nft', 'iptables', 'netem', 'sigstop', 'kill', 'driver', 'sim'] as const
export type FaultPath = (typeof FAULT_PATHS)[number]

/** Every fault heals itself at its deadline, enforced on the target host (dead-man). */
export const MIN_FAULT_MS = 100
export const MAX_FAULT_MS = 60 * 60 * 1000

/** A lab's name (as lab files and ~/.ftlab/labs name them). */
export const LAB_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/

// ---------------------------------------------------------------------------------------
// State the console shows

export interface HostStatus {
  id: HostId
  /** the machine playing the slot: 'a', 'b', 'disk', 'spare' after a restore onto the spare; for remote labs the lab-file host name */
  machine: string
  /** where the agent runs ("127.0.0.1" in the local lab, the host name otherwise) */
  address: string
  /** the console's control connection to the agent is up */
  reachable: boolean
  role: HostRole
  gen: number
  pid: number | null
  uptimeMs: number
  /** set while the agent is SIGSTOPped */
  paused: boolean
  /** set while the host is cut from the lab network */
  isolated: boolean
  /** compound state beside the role, e.g. ['isolated', 'outputs-held', 'no-disk-server', 'cannot-go-live'] */
  notes: HostNote[]
  /** a power driver can switch it on, or a local/simulated host that is down */
  canPowerOn: boolean
  memory: { rss: number; heapUsed: number } | null
  /** disk server only */
  disk: { gen: number; live: string | null; tasWinner: string | null; blocks: number; writes: number; fenced: number } | null
  /** why the host is unreachable or failed to start, in plain words; null when fine */
  error: string | null
}

export interface ChannelStatus {
  /** primary end (sends entries) and backup end (sends acks); null when there is no pair */
  from: ReplicaHostId | null
  to: ReplicaHostId | null
  gen: number
  connected: boolean
  stalled: boolean
  lastEntry: number
  acked: number
  /** lastEntry - acked */
  lag: number
  unackedEntries: number
  unackedBytes: number
  /** primary's buffer limit; unackedBytes / maxUnackedBytes is the fill */
  maxUnackedBytes: number
  entriesPerSec: number
  acksPerSec: number
  bytesPerSec: number
  /** outputs held by the Output Rule right now */
  heldOutputs: number
  /** how long released outputs were held (recent window), ms */
  holdMs: { p50: number; p99: number; max: number }
}

export interface FaultInfo {
  id: string
  target: FaultTarget
  kind: FaultKind
  params: FaultParams
  startedAt: number
  /** console clock (ms since epoch) at which the target heals itself; null for a power cut (it heals only by restore or power-on) */
  healsAt: number | null
  /** how it is applied */
  path: FaultPath
  /** why that path (e.g. "no root on h2: the agents' filter") or null */
  note: string | null
  /** one readable line: "cut a↔b", "power cut a" */
  what: string
}

export interface LoadVerdict {
  result: 'valid' | 'invalid' | 'unknown'
  summary: string
  ok: number
  failed: number
  unknown: number
  lostWrites: number
  /** the evidence, and for bank the invariant ("total 10000 = 10000") */
  details: string[]
  /** each checker's own outcome (kv workload), for drills that expect one to hold or to catch a violation */
  checks?: { checker: string; valid: boolean | 'unknown' }[]
}

export interface LoadStatus {
  state: 'idle' | 'running' | 'stopping'
  workload: Workload
  clients: number
  keys: number
  seconds: number
  startedAt: number | null
  /** completed operations per second (recent window) */
  opsPerSec: number
  /** recent window; never 0 while operations complete */
  latencyMs: { p50: number; p99: number }
  completed: number
  retries: number
  duplicatesDropped: number
  /** transient errors that were retried */
  errors: number
  /** operations that failed for good */
  failed: number
  /** which replica the clients are talking to */
  target: ReplicaHostId | null
  /** the checkers' verdict once a run is over; null while running or never run */
  verdict: LoadVerdict | null
}

export interface Invariants {
  /** which hosts were seen live (primary or live) in each generation, in the order they went live, over the lab's life (a failover adds the backup to its generation) */
  liveByGen: { gen: number; live: HostId[] }[]
  /** two replicas were seen releasing outputs at the same time (a primary with held outputs does not count) */
  splitBrain: boolean
  /** acknowledged writes lost (from the last checked load run); null when not known */
  acknowledgedLost: number | null
  duplicatesDropped: number
  /** writes the disk server refused from a stale generation */
  fencedWrites: number
  divergence: { host: HostId; entry: number } | null
  /** event seqs the UI can jump to */
  evidence: { kind: string; seq: number; text: string }[]
}

/** A host with no agent answering: the state every host card starts from. */
export function downHostStatus(id: HostId): HostStatus {
  return {
    id,
    machine: id,
    address: '127.0.0.1',
    reachable: false,
    role: 'down',
    gen: 0,
    pid: null,
    uptimeMs: 0,
    paused: false,
    isolated: false,
    notes: [],
    canPowerOn: false,
    memory: null,
    disk: null,
    error: null
  }
}

/** No load running, none run yet. */
export function idleLoadStatus(): LoadStatus {
  return {
    state: 'idle',
    workload: 'kv',
    clients: 0,
    keys: 0,
    seconds: 0,
    startedAt: null,
    opsPerSec: 0,
    latencyMs: { p50: 0, p99: 0 },
    completed: 0,
    retries: 0,
    duplicatesDropped: 0,
    errors: 0,
    failed: 0,
    target: null,
    verdict: null
  }
}

/**
 * Who served each generation, in the order they went live: `g1: a → b` is a's generation that b took over after a
 * failover (both served it, one after the other; two at once is split brain, flagged apart). `prefix` names a
 * generation ('g' in the console's panel, 'gen ' in a report).
 */
export function liveByGenText(liveByGen: Invariants['liveByGen'], prefix: string, none: string): string {
  return liveByGen.map((g) => `${prefix}${g.gen}: ${g.live.join(' → ') || none}`).join(' · ')
}

/** Nothing observed yet. */
export function emptyInvariants(): Invariants {
  return { liveByGen: [], splitBrain: false, acknowledgedLost: null, duplicatesDropped: 0, fencedWrites: 0, divergence: null, evidence: [] }
}

// ---------------------------------------------------------------------------------------
// Failure detection (issue 9): how fast a replica suspects its peer, and how often wrongly

/**
 * A false failover: a replica went live while the other was still alive and no operator fault
 * separated them (the deposed one lost the test-and-set or had a write fenced, and said so).
 */
export interface FalseFailoverInfo {
  /** the replica that was alive when its peer went live */
  host: ReplicaHostId
  gen: number
  /** console clock, ms */
  at: number
  why: string
}

export interface FailureDetection {
  /** false failovers seen since the console began watching this lab */
  falseFailovers: number
  last: FalseFailoverInfo | null
  /** each replica's current suspicion timeout (learned by its failure detector, at most timing.suspectMs); null: unknown or down */
  suspectAfterMs: Record<ReplicaHostId, number | null>
  /** what set each of them (absent from older consoles and recordings; null: unknown, down, or an older agent) */
  suspectLimit?: Record<ReplicaHostId, SilenceLimit | null>
}

export function emptyDetection(): FailureDetection {
  return { falseFailovers: 0, last: null, suspectAfterMs: { a: null, b: null }, suspectLimit: { a: null, b: null } }
}

/**
 * What set a replica's silence limit, as its agent reports it with a suspicion and in its status (the agent's
 * agent/replica/types.ts SilenceLimit, which test/unit/console/silence-limit.test.ts holds to this one):
 *  learning      a fresh failure detector (a new peer, a new generation) comes down from the ceiling while it learns
 *  history       learned from the peer's silences of the last minute
 *  reported      the peer's own report of its pauses of the last minute, standing in for a history still short
 *  floor         a few heartbeats: the least it ever waits
 *  ceiling       the configured suspect time, the most it waits
 *  large-entry   the detector's timeout plus an allowance for a large entry both replicas are handling
 *  guest-growth  the detector's timeout plus an allowance for the guest's growth (its garbage collections grow with it)
 *  own-pause     this replica's own longest pause of the last minute, with a margin: a pause of both replicas at once
 *  snapshot      a snapshot is going out: the ceiling plus its transfer time
 *  joining       a snapshot is going out to a replica that has not answered yet (a process still starting): a few
 *                ceilings plus its transfer time
 */
export const SILENCE_LIMIT_BY = [
  'learning',
  'history',
  'reported',
  'floor',
  'ceiling',
  'large-entry',
  'guest-growth',
  'own-pause',
  'snapshot',
  'joining'
] as const
export type SilenceLimitBy = (typeof SILENCE_LIMIT_BY)[number]

export interface SilenceLimit {
  ms: number
  by: SilenceLimitBy
  ceilingMs: number
  detectorMs: number
  learnedForMs: number
  learningMs: number
  allowanceMs: number
  ownPauseMs: number
  /** the peer's report of its own pauses: its longest of the last minute, and how long it watched (absent: none used) */
  report?: { longestMs: number; forMs: number }
}

/** A silence limit from an event or a status, or null when it is absent or not one (an older agent's, a broken recording's). */
export function asSilenceLimit(x: unknown): SilenceLimit | null {
  if (typeof x !== 'object' || x === null) return null
  const o = x as Record<string, unknown>
  if (!(SILENCE_LIMIT_BY as readonly unknown[]).includes(o.by)) return null
  const fields = ['ms', 'ceilingMs', 'detectorMs', 'learnedForMs', 'learningMs', 'allowanceMs', 'ownPauseMs'] as const
  if (!fields.every((f) => typeof o[f] === 'number' && Number.isFinite(o[f]))) return null
  const limit = Object.fromEntries(fields.map((f) => [f, o[f]])) as Omit<SilenceLimit, 'by' | 'report'>
  const r = o.report as Record<string, unknown> | undefined
  const report =
    typeof r === 'object' && r !== null && Number.isFinite(r.longestMs) && Number.isFinite(r.forMs)
      ? { longestMs: Number(r.longestMs), forMs: Number(r.forMs) }
      : null
  // a broken report loses the report, not the limit
  return { ...limit, by: o.by as SilenceLimitBy, ...(report ? { report } : {}) }
}

/**
 * A suspicion as one phrase, from its event's data: "suspects a: silent for 512 ms (limit 504 ms: a fresh detector, …)".
 * Older agents' suspicions carry no limit, or only its length.
 */
export function suspicionText(d: Record<string, unknown>): string {
  const peer = typeof d.peer === 'string' ? d.peer : 'its peer'
  const limit = asSilenceLimit(d.limit)
  const timeout = limit?.ms ?? (typeof d.timeoutMs === 'number' && Number.isFinite(d.timeoutMs) ? d.timeoutMs : null)
  const why = limit ? `: ${silenceLimitText(limit, peer)}` : ''
  return `suspects ${peer}: silent for ${Math.round(Number(d.silentMs))} ms${timeout === null ? '' : ` (limit ${Math.round(timeout)} ms${why})`}`
}

/**
 * Why a replica waits as long as it does before suspecting `peer`, in a phrase: "a fresh detector, 4.1 of the 10 s it
 * takes to learn a's heartbeats, coming down from the 800 ms ceiling". Shown beside a suspicion and the status's
 * timeouts, so that a slow failover explains itself.
 */
export function silenceLimitText(limit: SilenceLimit, peer: string): string {
  const secs = (ms: number) => (ms >= 10_000 ? Math.round(ms / 1000) : Math.round(ms / 100) / 10)
  const s = (ms: number) => `${secs(ms)} s`
  const ms = (x: number) => `${Math.round(x)} ms`
  const capped = limit.ms >= limit.ceilingMs ? `, held to the ${ms(limit.ceilingMs)} ceiling` : ''
  switch (limit.by) {
    case 'learning':
      // the peer's report is worth a mention where it reaches a second or more further back than what was heard here
      return limit.report && limit.report.forMs >= limit.learnedForMs + 1000
        ? `a fresh detector, coming down from the ${ms(limit.ceilingMs)} ceiling over the ${s(limit.learningMs)} it takes to learn ${peer}'s heartbeats: ${peer}'s report of its own pauses covers ${s(limit.report.forMs)}, and this replica has heard ${peer} for ${s(limit.learnedForMs)}`
        : `a fresh detector, ${secs(limit.learnedForMs)} of the ${s(limit.learningMs)} it takes to learn ${peer}'s heartbeats, coming down from the ${ms(limit.ceilingMs)} ceiling`
    case 'history':
      return `learned from ${s(limit.learnedForMs)} of ${peer}'s heartbeats`
    case 'reported':
      return `${peer} reported its own longest pause of the last ${s(limit.report?.forMs ?? 0)} as ${ms(limit.report?.longestMs ?? 0)}, which stands in for the heartbeats not yet heard here (${secs(limit.learnedForMs)} of the ${s(limit.learningMs)} it takes to learn them)`
    case 'floor':
      return `${peer}'s heartbeats have been regular, so the floor of a few heartbeats`
    case 'ceiling':
      return `the ${ms(limit.ceilingMs)} ceiling: ${peer} has been silent as long while alive`
    case 'large-entry':
      return `the detector's ${ms(limit.detectorMs)}, and ${ms(limit.allowanceMs)} more for a large entry both replicas are handling${capped}`
    case 'guest-growth':
      return `the detector's ${ms(limit.detectorMs)}, and ${ms(limit.allowanceMs)} more for the guest's growth in the last minute: its garbage collections grow with it${capped}`
    case 'own-pause':
      return `this replica's own longest pause of the last minute was ${ms(limit.ownPauseMs)}, and ${peer}'s may be as long${capped}`
    case 'snapshot':
      return `a snapshot is going out: the ${ms(limit.ceilingMs)} ceiling and its transfer time`
    case 'joining':
      return `a snapshot is going out to ${peer}, which has not answered yet: a process still starting gets ${ms(limit.ms)}, a few times the ${ms(limit.ceilingMs)} ceiling`
  }
}

// ---------------------------------------------------------------------------------------
// Drills and soaks

/**
 * Switches in the agent that only a drill turns on, to show what a rule protects against:
 *  no-output-rule  outputs leave at once, without waiting for the backup's ack (the checker must catch the lost write)
 *  read-fast-path  the primary answers reads without logging them (the checker must catch the stale read after failover)
 * The UI shows them loudly while on.
 */
export const EXPERIMENTS = ['no-output-rule', 'read-fast-path'] as const
export type Experiment = (typeof EXPERIMENTS)[number]

/** One expectation of a drill and how it came out. */
export interface DrillExpectation {
  /** the scenario's words for it, e.g. "failover within 2000 ms" */
  text: string
  /** null while not yet decided */
  ok: boolean | null
  /** what was measured, e.g. "failover took 912 ms (b live in gen 2)" */
  detail: string
  /** event seqs (console-wide) that show it, for the UI and reports to jump to */
  evidence: { seq: number; text: string }[]
}

/** Largest scenario text drill.check and drill.run take. */
export const MAX_SCENARIO_CHARS = 256 * 1024

/** A built-in drill, as drill.list offers it. */
export interface DrillInfo {
  name: string
  title: string
  /** what the verdict explains */
  explain: string
  /** the lab kinds it runs on ('simulated' is missing for etcd drills) */
  labs: LabKind[]
  experiments: Experiment[]
  /** the scenario file's text, to show or copy */
  text: string
}

/** A scenario checked: the first problems with their place in the text. */
export type DrillCheck = { ok: true; name: string; title: string } | { ok: false; errors: { line: number; col: number; field: string; message: string }[] }

/** A drill or soak run, as its progress events and the recording carry it. */
export interface DrillRun {
  /** unique per run, e.g. "power-cut-primary-20261201-1612-1" */
  id: string
  kind: 'drill' | 'soak'
  /** built-in name or the scenario file's path */
  name: string
  title: string
  /** fault timing is drawn from it; the same seed gives the same schedule */
  seed: number
  /** 1-based, of `repeats` */
  repeat: number
  repeats: number
  state: 'running' | 'passed' | 'failed' | 'error' | 'stopped'
  startedAt: number
  endedAt: number | null
  /** the step running now ("power cut a at 3000 ms"), or null */
  step: string | null
  /** what the run did so far, one line each, console clock */
  log: { t: number; text: string }[]
  expectations: DrillExpectation[]
  /** each failover seen: the cut, the go-live, and the first client operation answered after it */
  failovers: { at: number; host: HostId; liveAt: number | null; servedAt: number | null }[]
  /** set when the run ends: passed or not, one line, and what it showed in the lecture's terms */
  verdict: { ok: boolean; summary: string; explanation: string } | null
  /** the scenario's source text (YAML), for reports */
  scenario: string
  /** the recording this run is in, or null */
  recording: string | null
}

// ---------------------------------------------------------------------------------------
// Recordings and playback (the session library and a recording driving the UI)

/** A marked moment of a recording (a mark event's content, with its time and seq). */
export interface RecordingMark {
  /** console clock, ms */
  t: number
  seq: number
  kind: MarkKind
  label: string
  host?: HostId
}

/** One recording in the session library. */
export interface RecordingInfo {
  /** the file name without .ftrec: what the other recording.* methods take */
  name: string
  bytes: number
  /** null when the file does not open (then `error` says why) */
  lab: { kind: LabKind; name: string; guest: GuestName | null; mode: ReplicationMode | null } | null
  startedAt: number | null
  durationMs: number
  records: number
  marks: number
  /** false: the console died while writing it, or its tail is damaged (it still opens) */
  closed: boolean
  /** damage found (a cut or corrupted tail, a bad block), one line each */
  problems: string[]
  error: string | null
  /** the console is writing it now (it cannot be renamed or deleted) */
  live: boolean
}

/** A recording opened for playback. */
export interface PlaybackOpened {
  /** pass it to playback.seek / read / step / close */
  id: string
  info: RecordingInfo
  t0: number
  t1: number
  records: number
  marks: RecordingMark[]
}

/** The state at a moment of a recording and the recorded events that rebuild the views' recent window. */
export interface PlaybackFrame {
  t: number
  /** records applied up to t: read on from here */
  n: number
  /** the lab as the console showed it at t (null before the first status) */
  status: LabStatus | null
  /** marks up to t, then the window's events in the order the console published them */
  events: ApiEvent[]
  terms: TermInfo[]
  drills: DrillRun[]
}

/** Recorded events after a frame, for playing: from record n up to the first later than `to` (or up to record `upto` inclusive, whatever its time: a step). */
export interface PlaybackChunk {
  events: ApiEvent[]
  /** read on from here */
  n: number
  /** the time reached (the requested end, or the last event's when `max` cut the chunk short) */
  t: number
  /** the end of the recording was reached */
  end: boolean
}

/** Where a step landed: record n, its time, and the agent event it is. */
export interface PlaybackStep {
  n: number
  t: number
  seq: number
  host: HostId
  /** 'entries', 'ack', or a failover's step: 'suspect', 'tas', 'go-live', 'role', … */
  type: string
}

/** Marked moments playback jumps between. */
export const PLAYBACK_JUMP_KINDS: readonly MarkKind[] = ['fault', 'heal', 'suspect', 'tas', 'go-live', 'halt', 'restore', 'outside']

export type LabState = 'stopped' | 'starting' | 'running' | 'stopping' | 'error'

export interface LabStatus {
  state: LabState
  /** which lab the console drives; null before one is chosen */
  kind: LabKind | null
  name: string | null
  /** the lab's last error in plain words, e.g. why it failed to start; null when fine */
  error: string | null
  guest: GuestName | null
  mode: ReplicationMode | null
  gen: number
  startedAt: number | null
  timing: { heartbeatMs: number; suspectMs: number } | null
  /** simulated labs only */
  sim: { speed: number; seed: number } | null
  /** drill-only agent switches that are on (shown loudly); [] normally */
  experiments: Experiment[]
  /** remote labs with a spare host */
  spare: { machine: string; address: string } | null
  /** always three: a, b, disk (in that order) */
  hosts: HostStatus[]
  channel: ChannelStatus | null
  faults: FaultInfo[]
  load: LoadStatus
  invariants: Invariants
  detection: FailureDetection
  /**
   * Another process (`ftlab restore` in a terminal, another console) holds the lab for an
   * operation now: the console's own actions wait for it (up to 15 s). null otherwise.
   */
  heldBy: { actor: string; doing: string; since: number } | null
}

/** No lab: every host down, nothing loaded or seen (the status before a lab starts; tests build theirs on it). */
export function stoppedLabStatus(): LabStatus {
  return {
    state: 'stopped',
    kind: null,
    name: null,
    error: null,
    guest: null,
    mode: null,
    gen: 0,
    startedAt: null,
    timing: null,
    sim: null,
    experiments: [],
    spare: null,
    hosts: HOST_IDS.map((id) => downHostStatus(id)),
    channel: null,
    faults: [],
    load: idleLoadStatus(),
    invariants: emptyInvariants(),
    detection: emptyDetection(),
    heldBy: null
  }
}

export interface ConsoleInfo {
  apiVersion: number
  /** the current lab's kind, or 'none' */
  backend: LabKind | 'none'
  shell: 'electron' | 'browser'
  lab: { kind: LabKind; name: string } | null
  /** true only in Electron with safeStorage available */
  canRememberSecrets: boolean
  /** newest event sequence number */
  seq: number
  /** questions put to the operator and not answered yet (a reloaded page shows them again) */
  prompts: Prompt[]
}

export interface LabEntry {
  kind: LabKind
  name: string
  /** null when not known without asking the hosts */
  running: boolean | null
  detail: string
  when: number | null
}

export interface TermInfo {
  id: string
  host: string
  title: string
  state: 'connecting' | 'open' | 'closed'
  error: string | null
}

// ---------------------------------------------------------------------------------------
// Events

export type MarkKind =
  | 'start'
  | 'stop'
  | 'fault'
  | 'heal'
  | 'suspect'
  | 'tas'
  | 'go-live'
  | 'halt'
  | 'restore'
  | 'diverged'
  | 'error'
  | 'power-on'
  | 'deploy'
  | 'teardown'
  | 'warning'
  /** another process (`ftlab` in a terminal, another console) changed, stopped or replaced the lab */
  | 'outside'

export interface Mark {
  kind: MarkKind
  label: string
  host?: HostId
}

export const DEPLOY_STEPS = ['connect', 'host-key', 'detect', 'runtime', 'upload', 'start', 'ready'] as const
export type DeployStep = (typeof DEPLOY_STEPS)[number]

export interface DeployProgressEvent {
  /** 'a', 'b', 'disk' or 'spare' */
  slot: string
  step: DeployStep
  state: 'running' | 'done' | 'failed'
  detail: string
}

export type Prompt =
  | { id: string; kind: 'host-key'; slot: string; host: string; port: number; keyType: string; fingerprint: string }
  | { id: string; kind: 'secret'; slot: string; host: string; user: string; what: 'password' | 'passphrase'; keyPath: string | null; canRemember: boolean }

interface EventBase {
  /** console-wide sequence number, 1, 2, 3, … */
  seq: number
  /** console clock, ms since epoch (agent timestamps are mapped onto it) */
  ts: number
}

/**
 * The event stream. Topics:
 *  status       a full lab status snapshot (sent on change, at most ~4/s)
 *  agent        one agent event (AgentEvent: log entries, acks, role, suspect, tas, go-live, faults…)
 *  load         load progress
 *  terminal     text for a terminal pane (stream 'channel' is the logging channel pane; a shell's output uses its TermInfo.id)
 *  mark         a marked moment for the timeline (faults, heals, go-live…)
 *  deploy       a deploy step on one host
 *  prompt       a question for the operator (host key, password), answered by prompt.answer
 *  prompt-done  the question is settled
 *  term         a terminal's state changed
 *  drill        a drill or soak run's progress (the whole DrillRun each time)
 */
export type ApiEvent =
  | (EventBase & { topic: 'status'; status: LabStatus })
  | (EventBase & { topic: 'agent'; host: HostId; type: string; data: Record<string, unknown> })
  | (EventBase & { topic: 'load'; load: LoadStatus })
  | (EventBase & { topic: 'terminal'; stream: string; data: string })
  | (EventBase & { topic: 'mark'; mark: Mark })
  | (EventBase & ({ topic: 'deploy' } & DeployProgressEvent))
  | (EventBase & { topic: 'prompt'; prompt: Prompt })
  | (EventBase & { topic: 'prompt-done'; id: string; answer: 'accepted' | 'refused' | 'timeout' })
  | (EventBase & { topic: 'term'; term: TermInfo })
  | (EventBase & { topic: 'drill'; run: DrillRun })

export type EventTopic = ApiEvent['topic']

export interface EventsSince {
  events: ApiEvent[]
  /** newest seq the backend has; pass it to the next events.since */
  seq: number
  /** true when events after `since` were already dropped from the ring (take a fresh status) */
  truncated: boolean
}

// ---------------------------------------------------------------------------------------
// Errors

export type ApiErrorCode = 'bad-request' | 'unknown-method' | 'conflict' | 'unavailable' | 'internal'

/** A refusal that crosses the wire as { code, message }. */
export class ApiError extends Error {
  readonly code: ApiErrorCode
  constructor(code: ApiErrorCode, message: string) {
    super(message)
    this.name = 'ApiError'
    this.code = code
  }
}

export interface WireError {
  code: ApiErrorCode
  message: string
}

// ---------------------------------------------------------------------------------------
// Schema building blocks. Each leaf schema carries its own "must be …" phrase; describeIssue
// below turns a zod issue into "method.field must be … (got …)", "method.field is missing" or
// "method has an unknown field "x" (known: …)".

/** What a value was, for a refusal: short, never the whole of a long string. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing'
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (typeof v === 'object') {
    const name = (Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null)?.constructor?.name
    return name && name !== 'Object' ? `a ${name}` : 'an object'
  }
  return `a ${typeof v}`
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

const MUST = 'must be '
const quoted = (values: readonly string[]): string => values.map((x) => JSON.stringify(x)).join(', ')

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `${MUST}one of ${quoted(values)}` })
}

function int(min: number, max: number) {
  const error = `${MUST}an integer from ${min} to ${max}`
  return z.int({ error }).min(min, { error }).max(max, { error })
}

function num(min: number, max: number) {
  const error = `${MUST}a number from ${min} to ${max}`
  return z.number({ error }).min(min, { error }).max(max, { error })
}

function str(what: string, test: (s: string) => boolean = () => true) {
  return z.custom<string>((v) => typeof v === 'string' && test(v), { error: `${MUST}${what}` })
}

const bool = z.boolean({ error: `${MUST}true or false` })

/**
 * A plain object with exactly these fields: class instances and arrays are refused, unknown
 * fields are refused naming the known ones (a JSON "__proto__" key is an unknown field, never merged).
 */
function obj<S extends z.ZodRawShape>(shape: S, what = 'an object') {
  const known = Object.keys(shape)
  const unknownField = (keys: readonly string[]): string =>
    `has an unknown field ${JSON.stringify(keys[0])}` + (known.length ? ` (known: ${known.join(', ')})` : ' (it takes none)')
  return z.custom<Record<string, unknown>>(isPlainObject, { error: `${MUST}${what}` }).pipe(
    z.strictObject(shape, {
      error: (iss) => (iss.code === 'unrecognized_keys' ? unknownField(iss.keys) : `${MUST}${what}`)
    })
  )
}

const FAULT_ID = /^[A-Za-z0-9_-]{1,64}$/
const labName = str("a lab name (1 to 40 letters, digits, '-' or '_', starting with a letter or digit)", (s) => LAB_NAME.test(s))
const recordingName = str("a recording name (letters, digits, '.', '-' or '_', at most 120, starting with a letter or digit)", (s) =>
  /^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$/.test(s.endsWith('.ftrec') ? s.slice(0, -6) : s)
)
const plainId = str('an id (letters, digits, "-" or "_", at most 64)', (s) => FAULT_ID.test(s))

/** Formats the first zod issue as an ApiError message, `where` naming the request (e.g. "lab.start"). */
export function describeIssue(where: string, issue: z.core.$ZodIssue): string {
  const path = where + issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')
  const input = (issue as { input?: unknown }).input
  // a field left out of an object; not a nested value that was checked as a whole (fault.inject.params)
  const whole = issue.code === 'custom' && (issue.params as { whole?: boolean } | undefined)?.whole === true
  if (input === undefined && issue.path.length > 0 && !whole && issue.code !== 'unrecognized_keys') return `${path} is missing`
  const msg = issue.message
  return msg.startsWith(MUST) ? `${path} ${msg} (got ${describe(input)})` : `${path} ${msg}`
}

/** Parses with a schema; on failure throws ApiError('bad-request') naming the first problem. */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value, { reportInput: true })
  if (r.success) return r.data
  // an unknown field is named first, as it usually explains the rest (a misspelt field is also "missing")
  const issues = [...r.error.issues].sort((x, y) => Number(y.code === 'unrecognized_keys') - Number(x.code === 'unrecognized_keys'))
  throw new ApiError('bad-request', describeIssue(where, issues[0]))
}

/** Parses `value` with `schema` inside a transform; its issues become the outer parse's, under `at`. */
function nested<T>(ctx: z.core.$RefinementCtx, schema: z.ZodType<T>, value: unknown, at: PropertyKey[]): T | typeof z.NEVER {
  const r = schema.safeParse(value, { reportInput: true })
  if (r.success) return r.data
  for (const iss of r.error.issues) {
    const input = (iss as { input?: unknown }).input
    if (iss.path.length === 0) ctx.issues.push({ code: 'custom', message: iss.message, path: [...at], input, params: { whole: true } })
    else ctx.issues.push({ ...iss, path: [...at, ...iss.path], input } as z.core.$ZodRawIssue)
  }
  return z.NEVER
}

/** An object whose shape depends on one field (power.driver, faults.run, arbiter.kind), with that field's choices named when it is wrong. */
function byField<O extends Record<string, z.ZodType>>(field: string, options: O) {
  const choices = `${MUST}one of ${quoted(Object.keys(options))}`
  return z
    .custom<Record<string, unknown>>(isPlainObject, { error: `${MUST}an object with "${field}": one of ${quoted(Object.keys(options))}` })
    .transform((o, ctx) => {
      const key = o[field]
      const schema = typeof key === 'string' && Object.prototype.hasOwnProperty.call(options, key) ? options[key] : undefined
      if (!schema) {
        ctx.issues.push({ code: 'custom', input: key, path: [field], message: choices })
        return z.NEVER
      }
      return nested(ctx, schema as z.ZodType<z.infer<O[keyof O]>>, o, [])
    })
}

// ---------------------------------------------------------------------------------------
// Request schemas

const noParams = obj({})

const faultParamsByKind = {
  power: obj({}),
  pause: obj({}),
  isolate: obj({}),
  cut: obj({ direction: oneOf(CUT_DIRECTIONS).optional() }),
  delay: obj({ ms: int(1, 60_000), jitterMs: int(0, 60_000).optional() }),
  loss: obj({
    probability: z
      .number({ error: `${MUST}a number above 0 and at most 1` })
      .gt(0, { error: `${MUST}a number above 0 and at most 1` })
      .lte(1, { error: `${MUST}a number above 0 and at most 1` })
  })
} satisfies Record<FaultKind, z.ZodType>

const faultInject = obj({
  target: oneOf([...HOST_IDS, ...LINKS]),
  kind: oneOf(FAULT_KINDS),
  params: z.unknown().optional(),
  durationMs: int(MIN_FAULT_MS, MAX_FAULT_MS)
}).transform((o, ctx) => {
  const isHost = (HOST_IDS as readonly string[]).includes(o.target)
  const allowed = isHost ? HOST_FAULT_KINDS : LINK_FAULT_KINDS
  if (!allowed.includes(o.kind)) {
    ctx.issues.push({
      code: 'custom',
      input: o.kind,
      path: ['kind'],
      message: `${JSON.stringify(o.kind)} does not apply to ${isHost ? 'host' : 'link'} ${JSON.stringify(o.target)} (use one of ${allowed.join(', ')})`
    })
    return z.NEVER
  }
  const schema = faultParamsByKind[o.kind] as z.ZodType<FaultParams>
  // kinds whose params are all optional (power, pause, isolate, cut) may leave them out
  const raw = o.params === undefined && schema.safeParse({}).success ? {} : o.params
  const params = nested(ctx, schema, raw, ['params'])
  if (params === z.NEVER) return z.NEVER
  return { target: o.target as FaultTarget, kind: o.kind as FaultKind, params, durationMs: o.durationMs }
})

// The lab file's JSON object, as main/remote/lab-file.ts accepts it (version 1). lab-file.ts
// stays the authority for what needs the file system (identityFile exists, paths resolve).
const port = int(1, 65535)
const line = str('a non-empty single line', (s) => s.trim() !== '' && !/[\r\n]/.test(s))
const powerSpec = byField('driver', {
  kill: obj({ driver: z.literal('kill') }),
  command: obj({ driver: z.literal('command'), off: line, on: line.optional(), status: line.optional() }),
  ipmi: obj({ driver: z.literal('ipmi'), host: line, user: line, port: port.optional(), cipherSuite: int(0, 17).optional() }),
  libvirt: obj({ driver: z.literal('libvirt'), uri: str('a libvirt URI like "qemu:///system"', (s) => /^[a-z0-9+]+:\/\//.test(s)), domain: line }),
  sysrq: obj({ driver: z.literal('sysrq') })
})
const faultRun = byField('run', {
  ssh: obj({ run: z.literal('ssh') }),
  sudo: obj({ run: z.literal('sudo') }),
  netns: obj({ run: z.literal('netns'), namespace: str('a network namespace name', (s) => /^[A-Za-z0-9_.-]{1,64}$/.test(s)) })
})
const noSpace = (s: string): boolean => s.trim() !== '' && !/\s/.test(s)
export const labHostSchema = obj({
  address: str('a host name, an address or an ~/.ssh/config alias', noSpace),
  user: str('a login name', (s) => /^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$/.test(s)).optional(),
  port: port.optional(),
  identityFile: str('a path to a private key', (s) => s !== '').optional(),
  auth: oneOf(['agent', 'key', 'password']),
  proxyJump: str('[user@]host[:port][,...]', (s) => s.trim() !== '').optional(),
  labAddress: str('an IP address on the lab network', noSpace).optional(),
  portBase: int(1024, 65000).optional(),
  power: powerSpec.optional(),
  faults: faultRun.optional()
})
const etcdList = `${MUST}a list of 1 to 16 etcd client URLs`
export const labFileSchema = obj({
  version: z.literal(1, { error: `${MUST}1` }),
  name: labName.optional(),
  guest: oneOf(GUESTS).optional(),
  mode: oneOf(MODES).optional(),
  network: str('a network like "10.87.0.0/24"', (s) => /^[0-9a-fA-F.:]+\/\d{1,3}$/.test(s)).optional(),
  arbiter: byField('kind', {
    disk: obj({ kind: z.literal('disk') }),
    etcd: obj({
      kind: z.literal('etcd'),
      endpoints: z
        .array(
          str('an http:// or https:// client URL', (s) => /^https?:\/\//.test(s)),
          { error: etcdList }
        )
        .min(1, { error: etcdList })
        .max(16, { error: etcdList })
    })
  }).optional(),
  hosts: obj({ a: labHostSchema, b: labHostSchema, disk: labHostSchema, spare: labHostSchema.optional() }),
  $comment: z.string().optional()
})
export type LabFileForm = z.infer<typeof labFileSchema>
export type LabHostForm = z.infer<typeof labHostSchema>

const labStart = obj({
  kind: oneOf(['local', 'simulated']).optional(),
  guest: oneOf(GUESTS),
  mode: oneOf(MODES),
  heartbeatMs: int(5, 10_000).optional(),
  suspectMs: int(20, 60_000).optional(),
  speed: num(0.1, 50).optional(),
  seed: int(0, 2 ** 32 - 1).optional(),
  /** drill-only agent switches (drills turn them on; the UI shows them loudly) */
  experiments: z.array(oneOf(EXPERIMENTS), { error: `${MUST}a list of ${quoted(EXPERIMENTS)}` }).optional(),
  /** the local lab breaks ties with this etcd cluster instead of the disk server */
  etcd: z
    .array(
      str('an http:// or https:// client URL', (s) => /^https?:\/\/\S+$/.test(s)),
      { error: `${MUST}a list of 1 to 16 etcd client URLs` }
    )
    .min(1, { error: `${MUST}a list of 1 to 16 etcd client URLs` })
    .max(16, { error: `${MUST}a list of 1 to 16 etcd client URLs` })
    .optional()
}).transform((o, ctx) => {
  if ((o.kind ?? 'local') !== 'simulated') {
    for (const f of ['speed', 'seed'] as const) {
      if (o[f] !== undefined) {
        ctx.issues.push({ code: 'custom', input: o[f], path: [f], message: `applies to the simulated lab only (this is kind "${o.kind ?? 'local'}")` })
        return z.NEVER
      }
    }
  }
  if (o.etcd !== undefined && (o.kind ?? 'local') !== 'local') {
    ctx.issues.push({ code: 'custom', input: o.etcd, path: ['etcd'], message: `applies to the local lab only (this is kind "${o.kind}")` })
    return z.NEVER
  }
  if (o.heartbeatMs !== undefined && o.suspectMs !== undefined && o.suspectMs <= o.heartbeatMs) {
    ctx.issues.push({ code: 'custom', input: o.suspectMs, path: ['suspectMs'], message: `must be more than heartbeatMs (${o.heartbeatMs})` })
    return z.NEVER
  }
  return o
})

export const requestSchemas = {
  'console.info': noParams,
  'lab.list': noParams,
  'lab.start': labStart,
  'lab.open': obj({ kind: oneOf(['local', 'remote']), name: labName }),
  'lab.deploy': obj({
    name: labName,
    file: labFileSchema,
    /** drill-only agent switches, as lab.start's: a drill redeploys a remote lab with them (the UI shows them loudly) */
    experiments: z.array(oneOf(EXPERIMENTS), { error: `${MUST}a list of ${quoted(EXPERIMENTS)}` }).optional()
  }),
  'lab.stop': noParams,
  'lab.teardown': obj({ confirm: str("the lab's name, typed to confirm", (s) => s.length <= 64) }),
  'lab.detach': noParams,
  'lab.status': noParams,
  'lab.restore': obj({ onto: str('"spare" or a machine name', (s) => /^[A-Za-z0-9_.-]{1,64}$/.test(s)).optional() }),
  'lab.powerOn': obj({ host: oneOf(HOST_IDS) }),
  'labfile.check': obj({ text: str("the lab file's text (at most 1 MiB)", (s) => s.length <= MAX_MESSAGE_BYTES) }),
  'labfile.save': obj({ name: labName, file: labFileSchema }),
  'fault.inject': faultInject,
  'fault.heal': obj({ id: str('a fault id (letters, digits, "-" or "_", at most 64) or "all"', (s) => s === 'all' || FAULT_ID.test(s)) }),
  'load.start': obj({
    clients: int(1, 256),
    seconds: int(1, 3600),
    keys: int(1, 1_000_000),
    workload: oneOf(WORKLOADS).optional(),
    /** kv: extra read-only clients that talk to replica `on` only, and stay there after a failover (drills' stale readers) */
    readers: obj({ on: oneOf(REPLICA_IDS), clients: int(1, 64) }).optional()
  }),
  'load.stop': noParams,
  'prompt.answer': obj({
    id: plainId,
    accept: bool.optional(),
    secret: str('a string of at most 4096 characters', (s) => s.length <= 4096).optional(),
    remember: bool.optional()
  }),
  'term.open': obj({ host: oneOf([...HOST_IDS, 'spare']) }),
  'term.input': obj({ id: plainId, data: str(`a string of at most ${MAX_TERM_INPUT} characters`, (s) => s.length <= MAX_TERM_INPUT) }),
  'term.resize': obj({ id: plainId, cols: int(2, 1000), rows: int(1, 500) }),
  'term.reconnect': obj({ id: plainId }),
  'term.close': obj({ id: plainId }),
  'term.list': noParams,
  'events.since': obj({ seq: int(0, Number.MAX_SAFE_INTEGER) }),
  'recording.list': noParams,
  'recording.rename': obj({ name: recordingName, to: recordingName }),
  'recording.delete': obj({ name: recordingName }),
  'recording.import': obj({
    path: str('a path to a .ftrec file on the console machine', (s) => s.trim() !== '' && s.length <= 4096),
    as: recordingName.optional()
  }),
  'recording.export': obj({ name: recordingName, to: str('a path on the console machine', (s) => s.trim() !== '' && s.length <= 4096).optional() }),
  /** the desktop app: a native open dialog, then recording.import of the file chosen */
  'recording.importDialog': noParams,
  /** the desktop app: a native save dialog, then a copy of the recording there */
  'recording.exportDialog': obj({ name: recordingName }),
  'recording.report': obj({ name: recordingName }),
  'playback.open': obj({ name: recordingName }),
  'playback.seek': obj({ id: plainId, t: num(0, 8.64e15) }),
  'playback.read': obj({
    id: plainId,
    n: int(0, Number.MAX_SAFE_INTEGER),
    to: num(0, 8.64e15),
    max: int(1, 20_000).optional(),
    upto: int(0, Number.MAX_SAFE_INTEGER).optional()
  }),
  'playback.step': obj({ id: plainId, n: int(0, Number.MAX_SAFE_INTEGER), dir: z.union([z.literal(1), z.literal(-1)], { error: `${MUST}1 or -1` }) }),
  'playback.close': obj({ id: plainId }),
  'drill.list': noParams,
  'drill.check': obj({ text: str(`the scenario's text (at most ${MAX_SCENARIO_CHARS} characters)`, (s) => s.length <= MAX_SCENARIO_CHARS) }),
  'drill.run': obj({
    name: str('a built-in drill name', (s) => /^[a-z0-9][a-z0-9-]{0,63}$/.test(s)).optional(),
    text: str(`the scenario's text (at most ${MAX_SCENARIO_CHARS} characters)`, (s) => s.length <= MAX_SCENARIO_CHARS).optional(),
    seed: int(0, 2 ** 32 - 1).optional(),
    repeats: int(1, 100).optional(),
    lab: oneOf(['local', 'simulated', 'remote']).optional(),
    remote: labName.optional()
  }).transform((o, ctx) => {
    if ((o.name === undefined) === (o.text === undefined)) {
      ctx.issues.push({ code: 'custom', input: o, path: [], message: 'needs exactly one of name (a built-in drill) or text (a scenario)' })
      return z.NEVER
    }
    return o
  }),
  'drill.stop': noParams
} as const

// ---------------------------------------------------------------------------------------
// Methods

type In<K extends keyof typeof requestSchemas> = z.infer<(typeof requestSchemas)[K]>

export type NoParams = Record<string, never>
export type LabStartParams = In<'lab.start'>
export type LabOpenParams = In<'lab.open'>
export type LabDeployParams = In<'lab.deploy'>
export type LabTeardownParams = In<'lab.teardown'>
export type LabRestoreParams = In<'lab.restore'>
export type LabPowerOnParams = In<'lab.powerOn'>
export type LabFileCheckParams = In<'labfile.check'>
export type LabFileSaveParams = In<'labfile.save'>
export type FaultInjectParams = In<'fault.inject'>
export type FaultHealParams = In<'fault.heal'>
export type LoadStartParams = In<'load.start'>
export type PromptAnswerParams = In<'prompt.answer'>
export type TermOpenParams = In<'term.open'>
export type TermInputParams = In<'term.input'>
export type TermResizeParams = In<'term.resize'>
export type TermIdParams = In<'term.close'>
export type EventsSinceParams = In<'events.since'>
export type RecordingRenameParams = In<'recording.rename'>
export type RecordingImportParams = In<'recording.import'>
export type RecordingExportParams = In<'recording.export'>
export type PlaybackSeekParams = In<'playback.seek'>
export type PlaybackReadParams = In<'playback.read'>
export type PlaybackStepParams = In<'playback.step'>
export type DrillCheckParams = In<'drill.check'>
export type DrillRunParams = In<'drill.run'>

export type LabFileCheck = { ok: true; file: LabFileForm } | { ok: false; errors: { field: string; message: string }[] }
export type FaultHealResult = { healed: string[]; warnings: string[] }
export type TermListEntry = TermInfo & { scrollback: string }

export interface ApiMethods {
  'console.info': { params: NoParams; result: ConsoleInfo }
  'lab.list': { params: NoParams; result: { labs: LabEntry[] } }
  'lab.start': { params: LabStartParams; result: LabStatus }
  'lab.open': { params: LabOpenParams; result: LabStatus }
  'lab.deploy': { params: LabDeployParams; result: LabStatus }
  'lab.stop': { params: NoParams; result: LabStatus }
  'lab.teardown': { params: LabTeardownParams; result: LabStatus }
  'lab.detach': { params: NoParams; result: LabStatus }
  'lab.status': { params: NoParams; result: LabStatus }
  'lab.restore': { params: LabRestoreParams; result: LabStatus }
  'lab.powerOn': { params: LabPowerOnParams; result: LabStatus }
  'labfile.check': { params: LabFileCheckParams; result: LabFileCheck }
  'labfile.save': { params: LabFileSaveParams; result: { path: string } }
  'fault.inject': { params: FaultInjectParams; result: FaultInfo }
  'fault.heal': { params: FaultHealParams; result: FaultHealResult }
  'load.start': { params: LoadStartParams; result: LoadStatus }
  'load.stop': { params: NoParams; result: LoadStatus }
  'prompt.answer': { params: PromptAnswerParams; result: { ok: true } }
  'term.open': { params: TermOpenParams; result: TermInfo }
  'term.input': { params: TermInputParams; result: { ok: true } }
  'term.resize': { params: TermResizeParams; result: { ok: true } }
  'term.reconnect': { params: TermIdParams; result: TermInfo }
  'term.close': { params: TermIdParams; result: { ok: true } }
  'term.list': { params: NoParams; result: { terms: TermListEntry[] } }
  'events.since': { params: EventsSinceParams; result: EventsSince }
  'recording.list': { params: NoParams; result: { dir: string; recordings: RecordingInfo[] } }
  'recording.rename': { params: RecordingRenameParams; result: RecordingInfo }
  'recording.delete': { params: In<'recording.delete'>; result: { ok: true } }
  'recording.import': { params: RecordingImportParams; result: RecordingInfo }
  /** without `to`: where the file is, and the browser mode's download address (GET, token-guarded) */
  'recording.export': { params: RecordingExportParams; result: { path: string; download: string } }
  /** null: the operator cancelled the dialog; refused as 'unavailable' in browser mode */
  'recording.importDialog': { params: NoParams; result: RecordingInfo | null }
  /** null: the operator cancelled the dialog; refused as 'unavailable' in browser mode */
  'recording.exportDialog': { params: In<'recording.exportDialog'>; result: { path: string } | null }
  /** writes the recording's HTML report next to it; `view` is the browser mode's address for it (GET, token-guarded) */
  'recording.report': { params: In<'recording.report'>; result: { path: string; view: string } }
  'playback.open': { params: In<'playback.open'>; result: PlaybackOpened }
  'playback.seek': { params: PlaybackSeekParams; result: PlaybackFrame }
  'playback.read': { params: PlaybackReadParams; result: PlaybackChunk }
  /** the nearest log entry, ack or failover step (suspect, tas, go-live, role…) after/before record n, or null */
  'playback.step': { params: PlaybackStepParams; result: PlaybackStep | null }
  'playback.close': { params: In<'playback.close'>; result: { ok: true } }
  'drill.list': { params: NoParams; result: { drills: DrillInfo[] } }
  'drill.check': { params: DrillCheckParams; result: DrillCheck }
  'drill.run': { params: DrillRunParams; result: DrillRun }
  'drill.stop': { params: NoParams; result: { stopped: boolean } }
}

export type MethodName = keyof ApiMethods
export type ParamsOf<M extends MethodName> = ApiMethods[M]['params']
export type ResultOf<M extends MethodName> = ApiMethods[M]['result']

// every method has a schema, and every schema a method
const _everyMethodHasASchema: Record<MethodName, unknown> = requestSchemas
const _everySchemaIsAMethod: Record<keyof typeof requestSchemas, unknown> = {} as ApiMethods
void _everyMethodHasASchema
void _everySchemaIsAMethod

/** Methods whose params may be omitted. */
type Optional<M extends MethodName> = NoParams extends ParamsOf<M> ? [params?: ParamsOf<M>] : [params: ParamsOf<M>]

/** What the renderer calls: the same object over IPC and over the WebSocket. */
export interface ConsoleApi {
  call<M extends MethodName>(method: M, ...params: Optional<M>): Promise<ResultOf<M>>
  /** events arrive in batches (about every 16 ms); returns an unsubscribe function */
  onEvents(listener: (events: ApiEvent[]) => void): () => void
}

export const METHOD_NAMES = Object.keys(requestSchemas) as MethodName[]

export function isMethodName(name: unknown): name is MethodName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(requestSchemas, name)
}

/**
 * Checks a request's method name and params. Returns the params as a fresh object holding
 * only known fields; throws ApiError('bad-request' | 'unknown-method') with a precise message.
 * Params may be left out for methods whose fields are all optional.
 */
export function validateRequest<M extends MethodName>(method: M, params: unknown): ParamsOf<M>
export function validateRequest(method: unknown, params: unknown): ParamsOf<MethodName>
export function validateRequest(method: unknown, params: unknown): ParamsOf<MethodName> {
  if (!isMethodName(method)) {
    throw new ApiError('unknown-method', `unknown method ${describe(method)} (known: ${METHOD_NAMES.join(', ')})`)
  }
  const schema = requestSchemas[method] as z.ZodType<ParamsOf<MethodName>>
  if (params === undefined && schema.safeParse({}).success) params = {}
  return parseOrThrow(schema, params, method)
}

// ---------------------------------------------------------------------------------------
// WebSocket wire format (browser mode). One JSON text message each way:
//   client → server  { id, method, params }
//   server → client  { t: 'res', id, ok: true, result } | { t: 'res', id, ok: false, error }
//                    { t: 'events', events }            (batched, about every 16 ms)

export interface WireRequest {
  id: number
  method: string
  params?: unknown
}

export type WireMessage =
  { t: 'res'; id: number; ok: true; result: unknown } | { t: 'res'; id: number; ok: false; error: WireError } | { t: 'events'; events: ApiEvent[] }

const wireRequest = obj(
  { id: int(1, Number.MAX_SAFE_INTEGER), method: str('a method name', () => true), params: z.unknown().optional() },
  'an object {id, method, params}'
)

/** Checks a decoded client message's envelope (not its params: validateRequest does that). */
export function validateWireRequest(v: unknown): WireRequest {
  const r = parseOrThrow(wireRequest, v, 'request')
  return { id: r.id, method: r.method, params: r.params }
}

/** Converts anything thrown by a backend into what crosses the wire, without stack traces. */
export function toWireError(err: unknown): WireError {
  if (err instanceof ApiError) return { code: err.code, message: err.message }
  if (err instanceof Error) return { code: 'internal', message: err.message || err.name }
  return { code: 'internal', message: String(err) }
}

// ---------------------------------------------------------------------------------------
// Electron bridge (preload → renderer). The preload exposes exactly this object as
// window.ftlab; errors come back as values because Electron flattens thrown errors.

export const IPC_CALL = 'ftlab:call'
export const IPC_EVENTS = 'ftlab:events'

export type WireResult = { ok: true; result: unknown } | { ok: false; error: WireError }

export interface FtlabBridge {
  call(method: string, params?: unknown): Promise<WireResult>
  onEvents(listener: (events: ApiEvent[]) => void): () => void
}
