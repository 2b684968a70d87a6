// Runs many closed-loop session clients against the replicated service for a while,
// reports progress every second and hands back the history and a summary.
import type { Endpoint } from '../../agent/control/protocol.js'
import type { FinalRead, HistoryOp } from './history.js'
import { summarizeLatency, type LatencySummary } from './latency.js'
import type { RespValue } from './resp.js'
import { SessionClient, type CallOutcome } from './session-client.js'
import { allKeys, DEFAULT_MIX, Workload, type Mix, type PlannedOp } from './workload.js'

export interface LoadOptions {
  targets: Endpoint[]
  durationMs: number
  clients?: number
  keys?: number
  mix?: Mix
  seed?: number
  attemptTimeoutMs?: number
  opDeadlineMs?: number
  /** client ids are `<prefix><n>`; distinct runs against one lab should use distinct prefixes */
  clientPrefix?: string
  /** the run's key namespace (default: unique per run) */
  keyPrefix?: string
  progressEveryMs?: number
  onProgress?: (p: LoadProgress) => void
  /** ends the run early (the operator pressed ^C) */
  signal?: AbortSignal
  /**
   * Extra clients that only read, and only from these addresses: they never follow the service to
   * another replica. A drill keeps them on a primary it cut off, to catch what that replica answers
   * after the other one went live (the read-fast-path experiment's stale reads).
   */
  readers?: { targets: Endpoint[]; clients: number }
}

export interface LoadProgress {
  elapsedMs: number
  /** operations completed in the last interval, per second */
  opsPerSec: number
  completed: number
  /** operations that failed for good (errors that were retried are in `errors`) */
  failed: number
  /** latency of the operations that completed ok since the last progress report; null when none did */
  latencyMs: { p50: number; p99: number } | null
  errors: number
  retries: number
  duplicatesDropped: number
  /** how many clients currently talk to each service address */
  targets: Record<string, number>
}

export interface LoadSummary {
  elapsedMs: number
  clients: number
  completed: number
  ok: number
  failed: number
  unknown: number
  opsPerSec: number
  latencyMs: LatencySummary
  retries: number
  duplicatesDropped: number
  strays: number
  failoversFollowed: number
}

export interface LoadResult {
  history: HistoryOp[]
  /** every key the run may have touched: read them all at the end for the checkers */
  keys: string[]
  summary: LoadSummary
}

export const now = (): number => performance.timeOrigin + performance.now()

const READS_ONLY: Mix = { set: 0, get: 1, incr: 0 }

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const clientCount = opts.clients ?? 4
  const keys = opts.keys ?? 16
  if (!Number.isInteger(clientCount) || clientCount < 1) throw new Error(`clients must be a positive integer, got ${clientCount}`)
  if (!(opts.durationMs > 0)) throw new Error(`the duration must be positive, got ${opts.durationMs} ms`)
  const runId = `L${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`
  const prefix = opts.clientPrefix ?? `${runId}-`
  const ns = opts.keyPrefix ?? runId
  const seed = opts.seed ?? 1
  const history: HistoryOp[] = []
  const clients = Array.from(
    { length: clientCount },
    (_, i) =>
      new SessionClient({ clientId: `${prefix}${i}`, targets: opts.targets, attemptTimeoutMs: opts.attemptTimeoutMs, opDeadlineMs: opts.opDeadlineMs, now })
  )
  const started = now()
  const endAt = started + opts.durationMs
  const stopped = () => now() >= endAt || opts.signal?.aborted === true

  let lastTick = started
  let lastCompleted = 0
  let failedSoFar = 0
  const progress = (): LoadProgress => {
    const t = now()
    const completed = history.length
    const rate = ((completed - lastCompleted) * 1000) / Math.max(1, t - lastTick)
    const recent = history.slice(lastCompleted).filter((h) => h.status === 'ok' && h.completeMs !== null)
    const lat = recent.length ? summarizeLatency(recent.map((h) => h.completeMs! - h.invokeMs)) : null
    for (let i = lastCompleted; i < completed; i++) if (history[i].status === 'fail') failedSoFar++
    lastTick = t
    lastCompleted = completed
    const targets: Record<string, number> = {}
    for (const c of clients) targets[c.currentTarget] = (targets[c.currentTarget] ?? 0) + 1
    const sum = (f: (c: SessionClient) => number) => clients.reduce((a, c) => a + f(c), 0)
    return {
      elapsedMs: t - started,
      opsPerSec: rate,
      completed,
      failed: failedSoFar,
      latencyMs: lat && { p50: lat.p50, p99: lat.p99 },
      errors: sum((c) => c.stats.errors),
      retries: sum((c) => c.stats.retries),
      duplicatesDropped: sum((c) => c.stats.duplicatesDropped),
      targets
    }
  }
  // an abort (^C) ends operations in flight at once: they go into the history as unknown
  const readerCount = opts.readers?.clients ?? 0
  const readers = Array.from(
    { length: readerCount },
    (_, i) =>
      new SessionClient({
        clientId: `${prefix}r${i}`,
        targets: opts.readers!.targets,
        attemptTimeoutMs: opts.attemptTimeoutMs,
        opDeadlineMs: opts.opDeadlineMs,
        now
      })
  )
  const onAbort = () => [...clients, ...readers].forEach((c) => c.close())
  opts.signal?.addEventListener('abort', onAbort, { once: true })
  const ticker = opts.onProgress ? setInterval(() => opts.onProgress!(progress()), opts.progressEveryMs ?? 1000) : null

  try {
    await Promise.all([
      ...clients.map(async (client, i) => {
        const workload = new Workload(client.clientId, ns, keys, seed * 7919 + i, opts.mix ?? DEFAULT_MIX)
        while (!stopped()) history.push(await perform(client, workload.next()))
      }),
      ...readers.map(async (client, i) => {
        const workload = new Workload(client.clientId, ns, keys, seed * 7919 + clientCount + i, READS_ONLY)
        while (!stopped()) history.push(await perform(client, workload.next()))
      })
    ])
  } finally {
    if (ticker) clearInterval(ticker)
    opts.signal?.removeEventListener('abort', onAbort)
    for (const c of [...clients, ...readers]) c.close()
  }
  const elapsedMs = now() - started
  const ok = history.filter((h) => h.status === 'ok')
  const sum = (f: (c: SessionClient) => number) => clients.reduce((a, c) => a + f(c), 0)
  return {
    history,
    keys: allKeys(ns, keys),
    summary: {
      elapsedMs,
      clients: clientCount,
      completed: history.length,
      ok: ok.length,
      failed: history.filter((h) => h.status === 'fail').length,
      unknown: history.filter((h) => h.status === 'unknown').length,
      opsPerSec: (history.length * 1000) / Math.max(1, elapsedMs),
      latencyMs: summarizeLatency(ok.map((h) => h.completeMs! - h.invokeMs)),
      retries: sum((c) => c.stats.retries),
      duplicatesDropped: sum((c) => c.stats.duplicatesDropped),
      strays: sum((c) => c.stats.strays),
      failoversFollowed: sum((c) => c.stats.failoversFollowed)
    }
  }
}

/** Run one planned operation and describe it as a history entry. */
export async function perform(client: SessionClient, p: PlannedOp): Promise<HistoryOp> {
  const seq = client.nextSeq
  const invokeMs = now()
  const out: CallOutcome =
    p.op === 'set' ? await client.call('SET', [p.key, p.value!]) : p.op === 'incr' ? await client.call('INCR', [p.key]) : await client.call('GET', [p.key])
  const base: HistoryOp = { client: client.clientId, seq, op: p.op, key: p.key, invokeMs, completeMs: null, status: 'unknown' }
  if (p.value !== undefined) base.value = p.value
  if (out.status === 'unknown') return { ...base, error: out.error }
  const completeMs = now()
  if (out.status === 'fail') return { ...base, completeMs, status: 'fail', error: out.error, target: out.target }
  const result = resultOf(p, out.value)
  if (typeof result === 'object' && result !== null) return { ...base, completeMs, status: 'fail', error: result.error, target: out.target }
  return { ...base, completeMs, status: 'ok', result, target: out.target }
}

function resultOf(p: PlannedOp, v: RespValue): string | number | null | { error: string } {
  if (p.op === 'set') return v === 'OK' ? 'OK' : { error: `SET answered ${JSON.stringify(v)} instead of OK` }
  if (p.op === 'incr') return typeof v === 'number' ? v : { error: `INCR answered ${JSON.stringify(v)} instead of an integer` }
  if (v === null || typeof v === 'string') return v
  return { error: `GET answered ${JSON.stringify(v)}` }
}

/**
 * Read every key the workload may have touched, through a fresh session, after the load.
 * A key that cannot be read is left out: the checkers then say 'unknown' for it.
 */
export async function finalRead(targets: Endpoint[], keys: readonly string[], opts: { clientId?: string; opDeadlineMs?: number } = {}): Promise<FinalRead> {
  const client = new SessionClient({ clientId: opts.clientId ?? `F${Date.now().toString(36)}`, targets, opDeadlineMs: opts.opDeadlineMs ?? 10_000, now })
  const out: FinalRead = new Map()
  try {
    for (const key of keys) {
      const r = await client.call('GET', [key])
      if (r.status === 'ok' && (r.value === null || typeof r.value === 'string')) out.set(key, r.value)
      // no replica answers: the rest would only wait out the same deadline, key after key
      if (r.status === 'unknown') break
    }
  } finally {
    client.close()
  }
  return out
}
