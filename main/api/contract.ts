// The console API: the one contract between the renderer and the console core.
//
// Used on both sides of two transports: Electron IPC (preload → main) and the browser
// mode's WebSocket (renderer → main/api/server.ts). Every request is checked here by a
// hand-written validator before it reaches the backend, so a bad argument is refused with
// a message that names the method and the field, and never reaches the lab.
//
// This file is compiled by both tsconfig.node.json and tsconfig.web.json: it must import
// nothing (no Node modules, no agent types; TS composite projects refuse files outside
// their include list). The shapes below follow agent/control/protocol.ts (AgentStatus,
// AgentEvent) and agent/replica/types.ts (Role, Telemetry), seen from the console.

export const API_VERSION = 1

/** Largest request or event batch that may cross either transport, in bytes (UTF-8 JSON). */
export const MAX_MESSAGE_BYTES = 1024 * 1024

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

/** A host's role as the console shows it: the agent's role, or 'down' when the agent is unreachable. */
export type HostRole = 'primary' | 'backup' | 'live' | 'halted' | 'joining' | 'disk-server' | 'idle' | 'down'

/** Links between hosts, named by their two ends. */
export const LINKS = ['a-b', 'a-disk', 'b-disk'] as const
export type LinkId = (typeof LINKS)[number]

export type FaultTarget = HostId | LinkId

/**
 * Fault kinds and the targets they apply to:
 *  power   host  kill the agent (fail-stop)                        params {}
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

export type CutDirection = 'both' | 'forward' | 'backward'
export interface FaultParams {
  direction?: CutDirection
  ms?: number
  jitterMs?: number
  probability?: number
}

/** Every fault heals itself at its deadline, enforced on the target host (dead-man). */
export const MIN_FAULT_MS = 100
export const MAX_FAULT_MS = 60 * 60 * 1000

// ---------------------------------------------------------------------------------------
// State the console shows

export interface HostStatus {
  id: HostId
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
  /** console clock (ms since epoch) at which the target heals itself */
  healsAt: number
}

export interface LoadStatus {
  state: 'idle' | 'running' | 'stopping'
  clients: number
  keys: number
  seconds: number
  startedAt: number | null
  /** completed operations per second (recent window) */
  opsPerSec: number
  latencyMs: { p50: number; p99: number }
  completed: number
  retries: number
  duplicatesDropped: number
  errors: number
  /** which replica the clients are talking to */
  target: ReplicaHostId | null
}

/** A host with no agent answering: the state every host card starts from. */
export function downHostStatus(id: HostId): HostStatus {
  return { id, address: '127.0.0.1', reachable: false, role: 'down', gen: 0, pid: null, uptimeMs: 0, paused: false, isolated: false, memory: null, disk: null, error: null }
}

/** No load running, none run yet. */
export function idleLoadStatus(): LoadStatus {
  return { state: 'idle', clients: 0, keys: 0, seconds: 0, startedAt: null, opsPerSec: 0, latencyMs: { p50: 0, p99: 0 }, completed: 0, retries: 0, duplicatesDropped: 0, errors: 0, target: null }
}

export type LabState = 'stopped' | 'starting' | 'running' | 'stopping' | 'error'

export interface LabStatus {
  state: LabState
  /** the lab's last error in plain words, e.g. why it failed to start; null when fine */
  error: string | null
  guest: GuestName | null
  mode: ReplicationMode | null
  gen: number
  startedAt: number | null
  /** always three: a, b, disk (in that order) */
  hosts: HostStatus[]
  channel: ChannelStatus | null
  faults: FaultInfo[]
  load: LoadStatus
}

export interface ConsoleInfo {
  apiVersion: number
  /** which backend is serving: 'simulated' (the fake lab) or 'local' / 'remote' */
  backend: string
  /** newest event sequence number */
  seq: number
}

// ---------------------------------------------------------------------------------------
// Events

export type MarkKind = 'start' | 'stop' | 'fault' | 'heal' | 'suspect' | 'tas' | 'go-live' | 'halt' | 'restore' | 'diverged' | 'error'

export interface Mark {
  kind: MarkKind
  label: string
  host?: HostId
}

interface EventBase {
  /** console-wide sequence number, 1, 2, 3, … */
  seq: number
  /** console clock, ms since epoch (agent timestamps are mapped onto it) */
  ts: number
}

/**
 * The event stream. Topics:
 *  status    a full lab status snapshot (sent on change, and at most a few times a second)
 *  agent     one agent event (AgentEvent: log entries, acks, role, suspect, tas, go-live, faults…)
 *  load      load progress
 *  terminal  text for a terminal pane (stream 'channel' is the logging channel pane)
 *  mark      a marked moment for the timeline (faults, heals, go-live…)
 */
export type ApiEvent =
  | (EventBase & { topic: 'status'; status: LabStatus })
  | (EventBase & { topic: 'agent'; host: HostId; type: string; data: Record<string, unknown> })
  | (EventBase & { topic: 'load'; load: LoadStatus })
  | (EventBase & { topic: 'terminal'; stream: string; data: string })
  | (EventBase & { topic: 'mark'; mark: Mark })

export type EventTopic = ApiEvent['topic']

export interface EventsSince {
  events: ApiEvent[]
  /** newest seq the backend has; pass it to the next events.since */
  seq: number
  /** true when events after `since` were already dropped from the ring (take a fresh status) */
  truncated: boolean
}

// ---------------------------------------------------------------------------------------
// Methods

export interface LabStartParams {
  guest: GuestName
  mode: ReplicationMode
}
export interface FaultInjectParams {
  target: FaultTarget
  kind: FaultKind
  params: FaultParams
  durationMs: number
}
export interface FaultHealParams {
  id: string | 'all'
}
export interface LoadStartParams {
  clients: number
  seconds: number
  keys: number
}
export interface EventsSinceParams {
  seq: number
}
export type NoParams = Record<string, never>

export interface ApiMethods {
  'console.info': { params: NoParams; result: ConsoleInfo }
  'lab.start': { params: LabStartParams; result: LabStatus }
  'lab.stop': { params: NoParams; result: LabStatus }
  'lab.status': { params: NoParams; result: LabStatus }
  'lab.restore': { params: NoParams; result: LabStatus }
  'fault.inject': { params: FaultInjectParams; result: FaultInfo }
  'fault.heal': { params: FaultHealParams; result: { healed: string[] } }
  'load.start': { params: LoadStartParams; result: LoadStatus }
  'load.stop': { params: NoParams; result: LoadStatus }
  'events.since': { params: EventsSinceParams; result: EventsSince }
}

export type MethodName = keyof ApiMethods
export type ParamsOf<M extends MethodName> = ApiMethods[M]['params']
export type ResultOf<M extends MethodName> = ApiMethods[M]['result']

/** Methods whose params may be omitted. */
type Optional<M extends MethodName> = NoParams extends ParamsOf<M> ? [params?: ParamsOf<M>] : [params: ParamsOf<M>]

/** What the renderer calls: the same object over IPC and over the WebSocket. */
export interface ConsoleApi {
  call<M extends MethodName>(method: M, ...params: Optional<M>): Promise<ResultOf<M>>
  /** events arrive in batches (about every 16 ms); returns an unsubscribe function */
  onEvents(listener: (events: ApiEvent[]) => void): () => void
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
// Validation

type Check<T> = (value: unknown, where: string) => T

function describe(v: unknown): string {
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

function fail(where: string, what: string, got: unknown): never {
  throw new ApiError('bad-request', `${where} must be ${what} (got ${describe(got)})`)
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

function oneOf<T extends string>(values: readonly T[]): Check<T> {
  return (v, where) => {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T
    return fail(where, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v)
  }
}

function int(min: number, max: number): Check<number> {
  return (v, where) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      return fail(where, `an integer from ${min} to ${max}`, v)
    }
    return v
  }
}

function fraction(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1) return fail(where, 'a number above 0 and at most 1', v)
  return v
}

/** Checks an object's fields: every required one present, no unknown ones. */
function object(
  v: unknown,
  where: string,
  fields: Record<string, { check: Check<unknown>; optional?: boolean }>
): Record<string, unknown> {
  if (v === undefined && Object.values(fields).every((f) => f.optional)) v = {}
  if (!isPlainObject(v)) return fail(where, 'an object', v)
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(v)) {
    if (!Object.prototype.hasOwnProperty.call(fields, key)) {
      const known = Object.keys(fields)
      throw new ApiError(
        'bad-request',
        `${where} has an unknown field ${JSON.stringify(key)}` + (known.length ? ` (known: ${known.join(', ')})` : ' (it takes none)')
      )
    }
  }
  for (const [key, f] of Object.entries(fields)) {
    const value = v[key]
    if (value === undefined) {
      if (!f.optional) throw new ApiError('bad-request', `${where}.${key} is missing`)
      continue
    }
    out[key] = f.check(value, `${where}.${key}`)
  }
  return out
}

const faultTarget = oneOf<FaultTarget>([...HOST_IDS, ...LINKS])
const faultKind = oneOf(FAULT_KINDS)
const FAULT_ID = /^[A-Za-z0-9_-]{1,64}$/

function faultParams(kind: FaultKind, v: unknown, where: string): FaultParams {
  switch (kind) {
    case 'power':
    case 'pause':
    case 'isolate':
      return object(v, where, {}) as FaultParams
    case 'cut':
      return object(v, where, { direction: { check: oneOf<CutDirection>(['both', 'forward', 'backward']), optional: true } }) as FaultParams
    case 'delay':
      return object(v, where, { ms: { check: int(1, 60_000) }, jitterMs: { check: int(0, 60_000), optional: true } }) as FaultParams
    case 'loss':
      return object(v, where, { probability: { check: fraction } }) as FaultParams
  }
}

function noParams(method: string): Check<NoParams> {
  return (v) => object(v, method, {}) as NoParams
}

const validators: { [M in MethodName]: Check<ParamsOf<M>> } = {
  'console.info': noParams('console.info'),
  'lab.start': (v, where) =>
    object(v, where, { guest: { check: oneOf(GUESTS) }, mode: { check: oneOf(MODES) } }) as unknown as LabStartParams,
  'lab.stop': noParams('lab.stop'),
  'lab.status': noParams('lab.status'),
  'lab.restore': noParams('lab.restore'),
  'fault.inject': (v, where) => {
    const o = object(v, where, {
      target: { check: faultTarget },
      kind: { check: faultKind },
      params: { check: (x) => x, optional: true },
      durationMs: { check: int(MIN_FAULT_MS, MAX_FAULT_MS) }
    })
    const target = o.target as FaultTarget
    const kind = o.kind as FaultKind
    const isHost = (HOST_IDS as readonly string[]).includes(target)
    const allowed = isHost ? HOST_FAULT_KINDS : LINK_FAULT_KINDS
    if (!allowed.includes(kind)) {
      throw new ApiError(
        'bad-request',
        `${where}.kind ${JSON.stringify(kind)} does not apply to ${isHost ? 'host' : 'link'} ${JSON.stringify(target)} (use one of ${allowed.join(', ')})`
      )
    }
    return { target, kind, params: faultParams(kind, o.params, `${where}.params`), durationMs: o.durationMs as number }
  },
  'fault.heal': (v, where) =>
    object(v, where, {
      id: {
        check: (x, w) => {
          if (typeof x === 'string' && (x === 'all' || FAULT_ID.test(x))) return x
          return fail(w, 'a fault id (letters, digits, "-" or "_", at most 64) or "all"', x)
        }
      }
    }) as unknown as FaultHealParams,
  'load.start': (v, where) =>
    object(v, where, {
      clients: { check: int(1, 256) },
      seconds: { check: int(1, 3600) },
      keys: { check: int(1, 1_000_000) }
    }) as unknown as LoadStartParams,
  'load.stop': noParams('load.stop'),
  'events.since': (v, where) => object(v, where, { seq: { check: int(0, Number.MAX_SAFE_INTEGER) } }) as unknown as EventsSinceParams
}

export const METHOD_NAMES = Object.keys(validators) as MethodName[]

export function isMethodName(name: unknown): name is MethodName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(validators, name)
}

/**
 * Checks a request's method name and params. Returns the params as a fresh object holding
 * only known fields; throws ApiError('bad-request' | 'unknown-method') with a precise message.
 */
export function validateRequest<M extends MethodName>(method: M, params: unknown): ParamsOf<M>
export function validateRequest(method: unknown, params: unknown): ParamsOf<MethodName>
export function validateRequest(method: unknown, params: unknown): ParamsOf<MethodName> {
  if (!isMethodName(method)) {
    throw new ApiError('unknown-method', `unknown method ${describe(method)} (known: ${METHOD_NAMES.join(', ')})`)
  }
  const check = validators[method] as Check<ParamsOf<MethodName>>
  return check(params, method)
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
  | { t: 'res'; id: number; ok: true; result: unknown }
  | { t: 'res'; id: number; ok: false; error: WireError }
  | { t: 'events'; events: ApiEvent[] }

/** Checks a decoded client message's envelope (not its params: validateRequest does that). */
export function validateWireRequest(v: unknown): WireRequest {
  if (!isPlainObject(v)) return fail('request', 'an object {id, method, params}', v)
  for (const key of Object.keys(v)) {
    if (key !== 'id' && key !== 'method' && key !== 'params') {
      throw new ApiError('bad-request', `request has an unknown field ${JSON.stringify(key)} (known: id, method, params)`)
    }
  }
  const id = int(1, Number.MAX_SAFE_INTEGER)(v.id, 'request.id')
  if (typeof v.method !== 'string') return fail('request.method', 'a method name', v.method)
  return { id, method: v.method, params: v.params }
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
