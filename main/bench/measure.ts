// The benchmark's measurements on a running lab. Every figure comes either from the load
// clients (what a user of the service sees) or from the agents' own status (what the
// replicas did), never from guesses: bytes on the logging channel are the links' byte
// counters, Output Rule holds are the primary's own percentiles.
import { spawn } from 'node:child_process'
import { createConnection } from 'node:net'
import type { AgentStatus, Endpoint } from '../../agent/control/protocol.js'
import type { HostStatusRow, Lab } from '../lab/lab.js'
import type { LabEvent } from '../lab/lab-events.js'
import { FalseFailoverJudge } from '../lab/false-failover.js'
import { suspicionText } from '../api/contract.js'
import { SessionClient } from '../load/session-client.js'
import { summarizeLatency } from '../load/latency.js'
import { RespError, RespReader, encodeCommand, type RespValue } from '../load/resp.js'
import { now, runLoad, type LoadResult, type LoadSummary } from '../load/load-runner.js'

export class Aborted extends Error {
  constructor() {
    super('interrupted')
    this.name = 'Aborted'
  }
}

export interface LoadShape {
  clients: number
  keys: number
}

/** What one measured load run (or several pooled) comes to: the load summary's own figures. */
export type RunFigures = Pick<LoadSummary, 'elapsedMs' | 'completed' | 'ok' | 'failed' | 'unknown' | 'opsPerSec' | 'latencyMs'>

export interface ChannelFigures {
  /** primary → backup bytes on the logging channel per completed client operation */
  bytesPerOp: number
  /** backup → primary (acks, heartbeats) per operation */
  ackBytesPerOp: number
  entriesPerOp: number
  /** primary → backup, MB/s (10^6 bytes) over the run */
  mbPerSec: number
  bytesSent: number
  entriesSent: number
  ops: number
}

export type OutputRuleFigures = NonNullable<AgentStatus['outputRule']>

export interface MemSample {
  /** ms since the sampled run began */
  atMs: number
  hosts: Record<string, AgentStatus['memory'] | undefined>
}

export interface HostMemory {
  host: string
  samples: number
  rssFirst: number
  rssLast: number
  rssMax: number
  heapFirst: number
  heapLast: number
  heapMax: number
  guestLast: number
  /**
   * The largest RSS of the second half of the run over that of the first half: near 1 for
   * a process whose memory levels off, well above 1 for one that keeps growing with the load.
   */
  secondHalfOverFirst: number
}

export interface RedisRun {
  pipeline: number
  requests: number
  ok: boolean
  error?: string
  tests: { test: string; rps: number; p50Ms: number; p99Ms: number }[]
}

export interface Progress {
  (line: string): void
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Aborted())
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(t)
      reject(new Aborted())
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })

export function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new Aborted()
}

export type Rows = Map<string, HostStatusRow>
export const roleOf = (rows: Rows, id: string): string | undefined => rows.get(id)?.status?.role

/** Poll the lab's status until `ok` holds (bounded by `timeoutMs`). */
export async function until(
  lab: Lab,
  what: string,
  ok: (rows: Rows) => boolean,
  opts: { timeoutMs?: number; everyMs?: number; signal?: AbortSignal } = {}
): Promise<Rows> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000)
  let last: Rows = new Map()
  while (Date.now() < deadline) {
    checkAbort(opts.signal)
    last = new Map((await lab.status(1000)).map((r) => [r.host, r]))
    if (ok(last)) return last
    await sleep(opts.everyMs ?? 50, opts.signal)
  }
  const seen = [...last.values()].map((r) => `${r.host}=${r.state === 'up' ? r.status?.role : r.state}`).join(' ')
  throw new Error(`timed out after ${opts.timeoutMs ?? 20_000} ms waiting for ${what}; last status: ${seen}`)
}

export const paired = (primary: string, backup: string) => (rows: Rows) =>
  roleOf(rows, primary) === 'primary' && roleOf(rows, backup) === 'backup' && rows.get(primary)?.status?.channel?.connected === true

export function figures(r: LoadResult): RunFigures {
  const s = r.summary
  return { elapsedMs: s.elapsedMs, completed: s.completed, ok: s.ok, failed: s.failed, unknown: s.unknown, opsPerSec: s.opsPerSec, latencyMs: s.latencyMs }
}

/** Several runs of one kind as if they were one: ops over total time, latency over every op. */
export function pooled(runs: readonly LoadResult[]): RunFigures {
  const sum = (f: (r: LoadResult) => number) => runs.reduce((a, r) => a + f(r), 0)
  const elapsedMs = sum((r) => r.summary.elapsedMs)
  const completed = sum((r) => r.summary.completed)
  const lat = runs.flatMap((r) => r.history.filter((h) => h.status === 'ok').map((h) => h.completeMs! - h.invokeMs))
  return {
    elapsedMs,
    completed,
    ok: sum((r) => r.summary.ok),
    failed: sum((r) => r.summary.failed),
    unknown: sum((r) => r.summary.unknown),
    opsPerSec: (completed * 1000) / Math.max(1, elapsedMs),
    latencyMs: summarizeLatency(lat)
  }
}

export function load(targets: Endpoint[], shape: LoadShape, seconds: number, signal?: AbortSignal): Promise<LoadResult> {
  return runLoad({ targets, durationMs: seconds * 1000, clients: shape.clients, keys: shape.keys, signal })
}

/** Run `work` while sampling every agent's status; the samples end with the work. */
export async function sampling<T>(lab: Lab, everyMs: number, work: () => Promise<T>): Promise<{ result: T; samples: MemSample[]; last: Rows }> {
  const samples: MemSample[] = []
  const started = now()
  let done = false
  let last: Rows = new Map()
  const sampler = (async () => {
    while (!done) {
      const rows = await lab.status(1000).catch(() => [] as HostStatusRow[])
      if (rows.length) last = new Map(rows.map((r) => [r.host, r]))
      samples.push({ atMs: now() - started, hosts: Object.fromEntries(rows.map((r) => [r.host, r.status?.memory])) })
      const next = started + samples.length * everyMs
      while (!done && now() < next) await sleep(Math.min(50, Math.max(1, next - now())))
    }
  })()
  try {
    const result = await work()
    return { result, samples, last }
  } finally {
    done = true
    await sampler
  }
}

/** Figures of several measured windows together (each from channelDelta). */
export function channelSum(parts: readonly ChannelFigures[], elapsedMs: number): ChannelFigures {
  const ops = parts.reduce((a, p) => a + p.ops, 0)
  const bytes = parts.reduce((a, p) => a + p.bytesSent, 0)
  const acks = parts.reduce((a, p) => a + p.ackBytesPerOp * p.ops, 0)
  const entries = parts.reduce((a, p) => a + p.entriesSent, 0)
  return channelFigures(bytes, acks, entries, ops, elapsedMs)
}

/** Per-op figures from the bytes and entries the primary sent and the bytes the backup acked with. */
function channelFigures(bytes: number, ackBytes: number, entries: number, ops: number, elapsedMs: number): ChannelFigures {
  const per = (x: number) => (ops > 0 ? x / ops : 0)
  return {
    bytesPerOp: per(bytes),
    ackBytesPerOp: per(ackBytes),
    entriesPerOp: per(entries),
    mbPerSec: bytes / 1e6 / Math.max(0.001, elapsedMs / 1000),
    bytesSent: bytes,
    entriesSent: entries,
    ops
  }
}

export function channelDelta(before: Rows, after: Rows, primary: string, backup: string, ops: number, elapsedMs: number): ChannelFigures {
  const ch = (rows: Rows, id: string) => rows.get(id)?.status?.channel
  const p0 = ch(before, primary)
  const p1 = ch(after, primary)
  const b0 = ch(before, backup)
  const b1 = ch(after, backup)
  if (!p0 || !p1 || !b0 || !b1) throw new Error('the agents reported no logging-channel figures; is this agent built with the replica role?')
  const bytes = p1.bytesSent - p0.bytesSent
  const acks = b1.bytesSent - b0.bytesSent
  const entries = p1.entriesSent - p0.entriesSent
  if (bytes < 0 || acks < 0 || entries < 0) throw new Error('the logging-channel counters went backwards during the run (a replica or its link was replaced)')
  return channelFigures(bytes, acks, entries, ops, elapsedMs)
}

export function memoryOf(samples: MemSample[], hosts: readonly string[]): HostMemory[] {
  return hosts.map((host) => {
    const seen = samples.map((s) => s.hosts[host]).filter((m): m is AgentStatus['memory'] => !!m && m.rss > 0)
    const rss = seen.map((m) => m.rss)
    const heap = seen.map((m) => m.heapUsed)
    const half = Math.floor(rss.length / 2)
    const firstHalf = rss.slice(0, Math.max(1, half))
    const secondHalf = rss.slice(half)
    const max = (xs: number[]) => (xs.length ? Math.max(...xs) : 0)
    return {
      host,
      samples: seen.length,
      rssFirst: rss[0] ?? 0,
      rssLast: rss[rss.length - 1] ?? 0,
      rssMax: max(rss),
      heapFirst: heap[0] ?? 0,
      heapLast: heap[heap.length - 1] ?? 0,
      heapMax: max(heap),
      guestLast: seen[seen.length - 1]?.guestBytes ?? 0,
      secondHalfOverFirst: max(firstHalf) > 0 ? max(secondHalf) / max(firstHalf) : 0
    }
  })
}

export function spread(xs: number[]): { min: number; median: number; max: number; n: number } {
  if (xs.length === 0) return { min: NaN, median: NaN, max: NaN, n: 0 }
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return { min: s[0], median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2, max: s[s.length - 1], n: s.length }
}

/**
 * One power cut of `victim` under load, timed from just before the SIGKILL to the first
 * operation the survivor answers. The load runs on both sides of the cut, so the clients
 * meet the failover as users would: a refused or reset connection, then the other replica.
 */
export async function timedFailover(
  lab: Lab,
  victim: string,
  survivor: string,
  shape: LoadShape,
  opts: { leadMs: number; afterMs: number; settleMs: number; signal?: AbortSignal }
): Promise<{ liveMs: number | null; firstOpMs: number | null; ok: number; unknown: number; cutWall: number; timeoutMs: number | null }> {
  const eps = new Map(lab.serviceEndpoints().map((e, i) => [['a', 'b'][i], `${e.host}:${e.port}`]))
  const survivorAddr = eps.get(survivor)!
  // the clients stop early on ^C, and also when the cut itself fails
  const stopLoad = new AbortController()
  const forward = () => stopLoad.abort()
  opts.signal?.addEventListener('abort', forward, { once: true })
  const running = runLoad({
    targets: lab.serviceEndpoints(),
    durationMs: opts.leadMs + opts.afterMs,
    clients: shape.clients,
    keys: shape.keys,
    signal: stopLoad.signal
  })
  running.catch(() => {}) // observed below; this only keeps an early rejection from counting as unhandled
  let cutAt = 0
  let cutWall: number
  let liveAt: number | null = null
  let timeoutMs: number | null
  try {
    await sleep(opts.leadMs, opts.signal)
    // the survivor's suspicion timeout as its detector learned it under this load, just before the cut
    const before = await lab.status(500).catch(() => [] as HostStatusRow[])
    timeoutMs = before.find((r) => r.host === survivor)?.status?.replica?.suspectAfterMs ?? null
    cutAt = now()
    cutWall = Date.now()
    await lab.powerCut(victim)
    // the status poll is only for the report ("live after"); the figure that matters is
    // the first answered operation, which the load clients record themselves
    const deadline = cutAt + opts.afterMs
    while (now() < deadline && !opts.signal?.aborted) {
      const rows = await lab.status(500).catch(() => [] as HostStatusRow[])
      if (rows.find((r) => r.host === survivor)?.status?.role === 'live') {
        liveAt = now()
        break
      }
      await sleep(10)
    }
    // the clients' first answer follows the go-live within their retry back-off (≤ 200 ms);
    // a generous margin, then no need to sit out the rest of the bound
    if (liveAt !== null) {
      await sleep(Math.max(0, Math.min(opts.settleMs, deadline - now())), opts.signal)
      stopLoad.abort()
    }
  } catch (err) {
    stopLoad.abort()
    await running.catch(() => null)
    opts.signal?.removeEventListener('abort', forward)
    throw err
  }
  const result = await running.finally(() => opts.signal?.removeEventListener('abort', forward))
  checkAbort(opts.signal)
  const firstOk = result.history
    .filter((h) => h.status === 'ok' && h.target === survivorAddr && h.completeMs !== null && h.completeMs > cutAt)
    .reduce((m, h) => Math.min(m, h.completeMs!), Infinity)
  return {
    liveMs: liveAt === null ? null : liveAt - cutAt,
    firstOpMs: Number.isFinite(firstOk) ? firstOk - cutAt : null,
    ok: result.summary.ok,
    unknown: result.summary.unknown,
    cutWall,
    timeoutMs
  }
}

/** min, median, p99 (nearest rank: over fewer than 100 samples, the largest) and max. */
export function tail(xs: number[]): { min: number; median: number; p99: number; max: number; n: number } {
  const s = [...xs].sort((a, b) => a - b)
  return { ...spread(s), p99: s.length ? s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)] : NaN }
}

/** Lab events the failover measurements read: the steps of a go-live, and faults and heals for the false-failover judge. */
const FAILOVER_EVENTS = new Set(['suspect', 'tas', 'go-live', 'replica-role', 'fault', 'heal'])

/**
 * Watches a lab's events for the failover section: keeps the go-live steps (each cut is broken
 * down from them) and judges false failovers as they come.
 */
export class FailoverWatch {
  readonly judge = new FalseFailoverJudge()
  readonly events: LabEvent[] = []
  readonly off: () => void

  constructor(lab: Lab) {
    this.off = lab.onEvent((ev) => {
      // the lack-of-progress rule says why it suspected in a 'dropped' event
      const stalled = ev.type === 'dropped' && /unacknowledged for/.test(String(ev.data.why))
      if (!FAILOVER_EVENTS.has(ev.type) && !stalled) return
      this.events.push(ev)
      this.judge.observe(ev)
    })
  }

  /**
   * Where the milliseconds of one cut went, from the survivor's own events (same clock as the
   * cut on a local lab): the silence it waited before suspecting, the test-and-set's round trip,
   * and the go-live, as ms after the cut. Null where an event is missing.
   */
  breakdown(survivor: string, cutWall: number): { suspectMs: number | null; silentMs: number | null; tasMs: number | null; goLiveMs: number | null } {
    const after = this.events.filter((e) => e.source === 'agent' && e.host === survivor && e.ts >= cutWall - 1000)
    const suspect = after.find((e) => e.type === 'suspect')
    const won = after.find((e) => e.type === 'tas' && e.data.result === 'won')
    const live = after.find((e) => e.type === 'go-live')
    return {
      suspectMs: suspect ? suspect.ts - cutWall : null,
      silentMs: suspect && typeof suspect.data.silentMs === 'number' ? suspect.data.silentMs : null,
      tasMs: suspect && won ? won.ts - suspect.ts : null,
      goLiveMs: live ? live.ts - cutWall : null
    }
  }
}

/** What a saturated run found: false failovers, suspicions, and the timeouts the detectors settled on. */
export interface SaturateFigures {
  minutes: number
  clients: number
  bigWriters: number
  completed: number
  opsPerSec: number
  bigSets: number
  bigBytes: number
  /** go-lives while the other replica was alive and no fault separated them */
  falseFailovers: number
  /** every suspicion a replica raised (a false failover starts with one) */
  suspicions: number
  /** the replicas' suspicion timeouts, sampled once a second: the detectors' effective timeouts */
  timeoutMs: { min: number; median: number; p99: number; max: number; n: number }
  /** times redundancy was restored after a false failover */
  restores: number
  /**
   * With restoreEverySec: power cuts of the backup, each followed by a restore onto a fresh agent, how many failed, and
   * the suspicions raised between a restore's end and the next cut (none is provoked: both replicas are up; the false
   * failover count above forgives what follows a fault by FAULT_GRACE_MS, so it would not see these)
   */
  churn?: { every: number; restores: number; failed: number; suspicions: number }
  latencyMs: { p50: number; p99: number; max: number }
  notes: string[]
  /** why the run ended early (the figures cover the time until then) */
  error?: string
}

/**
 * A saturated lab for `minutes`: `clients` closed-loop clients on small values, and `bigWriters`
 * more that SET values of 16 KiB to 1 MiB every BIG_WRITER_PAUSE_MS (both event loops busy encoding,
 * hashing, logging and applying them: the stalls that make a live peer look dead). No faults: every go-live is false.
 * The load runs in chunks so that its history does not grow with the run; after a false failover
 * redundancy is restored and the run goes on.
 */
export async function saturatedRun(
  lab: Lab,
  watch: FailoverWatch,
  shape: LoadShape & { minutes: number; bigWriters: number; restoreEverySec?: number },
  progress: Progress,
  signal?: AbortSignal
): Promise<SaturateFigures> {
  const endAt = Date.now() + shape.minutes * 60_000
  const timeouts: number[] = []
  const lat: number[] = []
  let completed = 0
  let restores = 0
  const notes: string[] = []
  const big = { sets: 0, bytes: 0 }
  const seenBefore = watch.events.length
  const started = Date.now()
  let done = false
  const sampler = (async () => {
    while (!done) {
      const rows = await lab.status(1000).catch(() => [] as HostStatusRow[])
      for (const r of rows) {
        const t = r.state === 'up' ? r.status?.replica?.suspectAfterMs : undefined
        if (typeof t === 'number' && (r.status?.role === 'primary' || r.status?.role === 'backup')) timeouts.push(t)
      }
      await sleep(1000).catch(() => {})
    }
  })()
  const stopBig = new AbortController()
  const writers = Array.from({ length: shape.bigWriters }, (_, i) => bigWriter(lab.serviceEndpoints(), `sat-big-${i}`, big, stopBig.signal))
  // churn: the backup loses power and a fresh agent is restored in its place, over and over, so that the run also covers
  // fresh failure detectors judging a saturated peer (the seconds after a restore, where false failovers came from)
  const churn = shape.restoreEverySec ? { every: shape.restoreEverySec, restores: 0, failed: 0, suspicions: 0 } : undefined
  /** console-clock spans from a churn restore's end to the next cut: both replicas up, no fault */
  const calm: [number, number][] = []
  // one restore at a time: the churn's and the one after a false failover (below) take turns
  let restoring: Promise<unknown> = Promise.resolve()
  const restore = (timeoutMs: number): Promise<void> => {
    const next = restoring.then(async () => void (await lab.restore({ timeoutMs })))
    restoring = next.catch(() => {})
    return next
  }
  let churning = false
  const churner = (async () => {
    if (!churn) return
    while (!done) {
      await sleep(churn.every * 1000, stopBig.signal).catch(() => {})
      if (done) return
      const rows = new Map((await lab.status(1000).catch(() => [] as HostStatusRow[])).map((x) => [x.host, x]))
      const backup = ['a', 'b'].find((id) => roleOf(rows, id) === 'backup')
      if (backup === undefined || !['a', 'b'].some((id) => roleOf(rows, id) === 'primary')) continue
      churning = true
      try {
        const open = calm[calm.length - 1]
        if (open && open[1] === Infinity) open[1] = Date.now()
        await lab.powerCut(backup)
        // the primary suspects its dead backup and goes on alone: only a live replica can be restored from
        const primary = backup === 'a' ? 'b' : 'a'
        await until(lab, `${primary} live after the power cut of ${backup}`, (now) => roleOf(now, primary) === 'live', { timeoutMs: 10_000, everyMs: 100 })
        await restore(30_000)
        churn.restores++
        calm.push([Date.now(), Infinity])
      } catch (err) {
        churn.failed++
        notes.push(`${Math.round((Date.now() - started) / 1000)} s: churn: ${(err as Error).message}`)
      } finally {
        churning = false
      }
    }
  })()
  let error: string | undefined
  try {
    while (Date.now() < endAt) {
      checkAbort(signal)
      const chunk = Math.min(30_000, endAt - Date.now())
      if (chunk < 500) break
      const r = await runLoad({ targets: lab.serviceEndpoints(), durationMs: chunk, clients: shape.clients, keys: shape.keys, signal })
      completed += r.summary.completed
      for (const h of r.history) if (h.status === 'ok' && h.completeMs !== null) lat.push(h.completeMs - h.invokeMs)
      const left = Math.max(0, (endAt - Date.now()) / 1000)
      progress(
        `saturate: ${Math.round((Date.now() - started) / 1000)} s, ${Math.round(r.summary.opsPerSec)} ops/s, ${big.sets} big SETs, false failovers ${watch.judge.count}, ${Math.round(left)} s left`
      )
      const rows = new Map((await lab.status(1000)).map((x) => [x.host, x]))
      const roles = ['a', 'b'].map((id) => roleOf(rows, id))
      if (!churning && !(roles.includes('primary') && roles.includes('backup'))) {
        notes.push(`${Math.round((Date.now() - started) / 1000)} s: the pair was ${roles.map((r) => r ?? 'down').join('/')}: restoring redundancy`)
        // a restore under this load may itself fail (the new backup too slow to take the snapshot): once more, then give up
        await restore(30_000).catch(async (err: Error) => {
          notes.push(`${Math.round((Date.now() - started) / 1000)} s: restore failed (${err.message}); trying once more`)
          await sleep(2000, signal)
          await restore(60_000)
        })
        restores++
      }
    }
  } catch (err) {
    if (err instanceof Aborted) throw err
    error = (err as Error).message
  } finally {
    done = true
    stopBig.abort()
    await Promise.all(writers)
    await sampler
    await churner
  }
  const elapsed = (Date.now() - started) / 1000
  const l = summarizeLatency(lat)
  // each suspicion, and which rule raised it: silence beyond the detector's timeout, or an entry unacknowledged too long
  const during = watch.events.slice(seenBefore)
  if (churn) {
    const open = calm[calm.length - 1]
    if (open && open[1] === Infinity) open[1] = Date.now()
    const unprovoked = during.filter((e) => e.type === 'suspect' && calm.some(([from, to]) => e.ts >= from && e.ts < to))
    churn.suspicions = unprovoked.length
    for (const e of unprovoked) notes.push(`${Math.round((e.ts - started) / 1000)} s: churn: ${e.host} ${suspicionText(e.data)} with no fault`)
  }
  for (const e of during) {
    const at = `${Math.round((e.ts - started) / 1000)} s`
    if (e.type === 'suspect') notes.push(`${at}: ${e.host} suspected ${String(e.data.peer)} after ${Math.round(Number(e.data.silentMs))} ms of silence`)
    if (e.type === 'dropped') notes.push(`${at}: ${e.host}: ${String(e.data.why)}`)
  }
  for (const f of watch.judge.found) notes.push(`${Math.round((f.at - started) / 1000)} s: false failover: ${f.host} deposed (${f.why})`)
  return {
    minutes: shape.minutes,
    clients: shape.clients,
    bigWriters: shape.bigWriters,
    completed,
    opsPerSec: completed / Math.max(0.001, elapsed),
    bigSets: big.sets,
    bigBytes: big.bytes,
    falseFailovers: watch.judge.count,
    suspicions: during.filter((e) => e.type === 'suspect').length,
    timeoutMs: tail(timeouts),
    restores,
    ...(churn ? { churn } : {}),
    latencyMs: { p50: l.p50, p99: l.p99, max: l.max },
    notes,
    ...(error ? { error } : {})
  }
}

/** A big writer's pause between two SETs: big values mixed into the load, not a stream of them. */
export const BIG_WRITER_PAUSE_MS = 100

/** One client that SETs large values (16 KiB to 1 MiB) on a key of its own until stopped. */
async function bigWriter(targets: Endpoint[], id: string, tally: { sets: number; bytes: number }, signal: AbortSignal): Promise<void> {
  const client = new SessionClient({ clientId: id, targets, opDeadlineMs: 30_000, attemptTimeoutMs: 10_000 })
  signal.addEventListener('abort', () => client.close(), { once: true })
  let n = 0
  try {
    while (!signal.aborted) {
      const size = 16 * 1024 * 2 ** (n++ % 7) // 16 KiB, 32, …, 1 MiB
      const r = await client.call('SET', [`${id}:v`, 'x'.repeat(size)])
      if (r.status === 'ok') {
        tally.sets++
        tally.bytes += size
      }
      await sleep(BIG_WRITER_PAUSE_MS, signal).catch(() => {})
    }
  } finally {
    client.close()
  }
}

/** Is there a redis-benchmark on the PATH? Answers with its version line, or null. */
export function redisBenchmarkVersion(): Promise<string | null> {
  return new Promise((resolve) => {
    const p = spawn('redis-benchmark', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    p.stdout.on('data', (d: Buffer) => (out += d.toString()))
    p.on('error', () => resolve(null))
    p.on('close', (code) => resolve(code === 0 ? out.trim() : null))
  })
}

/** redis-benchmark -t set,get,incr against one service address; figures from its CSV output. */
export function redisBenchmark(
  ep: Endpoint,
  requests: number,
  pipeline: number,
  signal?: AbortSignal,
  timeoutMs = 180_000,
  tests = 'set,get,incr',
  clients = 50,
  extra: readonly string[] = []
): Promise<RedisRun> {
  const args = ['-h', ep.host, '-p', String(ep.port), '-t', tests, '-n', String(requests), '-c', String(clients), '--csv', ...extra]
  if (pipeline > 1) args.push('-P', String(pipeline))
  return new Promise((resolve) => {
    const p = spawn('redis-benchmark', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (d: Buffer) => (out += d.toString()))
    p.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const kill = () => p.kill('SIGKILL')
    const timer = setTimeout(kill, timeoutMs)
    signal?.addEventListener('abort', kill, { once: true })
    p.on('error', (e) => {
      clearTimeout(timer)
      resolve({ pipeline, requests, ok: false, error: e.message, tests: [] })
    })
    p.on('close', (code, sig) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', kill)
      const got = parseRedisCsv(out)
      // redis-benchmark 7 stops at the first error reply and says so
      const serverError = /Error from server: ([^\r\n]*)/.exec(out)?.[1]
      const ok = code === 0 && !serverError && got.length === tests.split(',').length
      const error = ok
        ? undefined
        : serverError
          ? `error from the service: ${serverError}`
          : sig
            ? `killed (${sig})`
            : `exit code ${code}: ${out.trim().split('\n').slice(-2).join(' ')}`
      resolve({ pipeline, requests, ok, error, tests: got })
    })
  })
}

export function parseRedisCsv(text: string): RedisRun['tests'] {
  const rows = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.startsWith('"'))
    .map((l) => l.split(',').map((c) => c.replace(/^"|"$/g, '')))
  const header = rows.find((r) => r[0] === 'test')
  if (!header) return []
  const col = (name: string) => header.indexOf(name)
  return rows
    .filter((r) => r !== header && r[0] !== 'test')
    .map((r) => ({ test: r[0], rps: Number(r[col('rps')]), p50Ms: Number(r[col('p50_latency_ms')]), p99Ms: Number(r[col('p99_latency_ms')]) }))
    .filter((t) => Number.isFinite(t.rps))
}

/**
 * One command to a service, its one reply: for the benchmark's own settings (CONFIG SET), not for measuring.
 * Rejects with what went wrong and where: no connection, no reply in time, an error reply, a reply not RESP.
 */
export function respCall(ep: Endpoint, args: readonly string[], timeoutMs = 5000): Promise<RespValue> {
  const where = `${args.join(' ')} to ${ep.host}:${ep.port}`
  return new Promise((resolve, reject) => {
    const reader = new RespReader()
    const sock = createConnection({ host: ep.host, port: ep.port })
    const done = (err: Error | null, v?: RespValue) => {
      clearTimeout(timer)
      sock.destroy()
      if (err) reject(err)
      else resolve(v as RespValue)
    }
    const timer = setTimeout(() => done(new Error(`${where}: no reply within ${timeoutMs} ms`)), timeoutMs)
    sock.once('connect', () => sock.write(encodeCommand(args)))
    sock.on('data', (chunk: Buffer) => {
      let got: RespValue[]
      try {
        got = reader.push(chunk)
      } catch (err) {
        return done(new Error(`${where}: the reply is not RESP: ${(err as Error).message}`))
      }
      if (got.length === 0) return
      if (got[0] instanceof RespError) return done(new Error(`${where}: ${got[0].message}`))
      done(null, got[0])
    })
    sock.once('error', (err) => done(new Error(`${where}: ${err.message}`)))
    sock.once('close', () => done(new Error(`${where}: the connection closed before a reply`)))
  })
}
