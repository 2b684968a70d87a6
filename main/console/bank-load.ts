// The bank workload: clients move money between the bank guest's accounts while the
// operator cuts power and networks. Its invariant is the total: transfers (and the guest's
// own timed moves) only move money, so the sum of all balances after the run must equal the
// sum before it, whatever failed over in between. An "insufficient funds" refusal is the
// bank answering, not a failure.
import type { Endpoint } from '../../agent/control/protocol.js'
import type { LoadVerdict } from '../api/contract.js'
import { summarizeLatency } from '../load/latency.js'
import type { LoadProgress } from '../load/load-runner.js'
import { SessionClient } from '../load/session-client.js'

export interface BankLoadOptions {
  targets: Endpoint[]
  durationMs: number
  clients: number
  progressEveryMs?: number
  onProgress?: (p: LoadProgress) => void
  signal?: AbortSignal
}

export interface BankLoadResult {
  completed: number
  ok: number
  failed: number
  unknown: number
  elapsedMs: number
  latencyMs: { p50: number; p99: number }
  retries: number
  duplicatesDropped: number
  verdict: LoadVerdict
}

const now = (): number => performance.timeOrigin + performance.now()

export async function runBankLoad(opts: BankLoadOptions): Promise<BankLoadResult> {
  const runId = `B${Date.now().toString(36)}`
  const reader = new SessionClient({ clientId: `${runId}-r`, targets: opts.targets, now })
  const before = await readTotal(reader)
  const accounts = before.accounts
  const clients = Array.from({ length: opts.clients }, (_, i) => new SessionClient({ clientId: `${runId}-${i}`, targets: opts.targets, now }))
  const done: { status: 'ok' | 'fail' | 'unknown'; ms: number; at: number }[] = []
  const started = now()
  const endAt = started + opts.durationMs
  const stopped = () => now() >= endAt || opts.signal?.aborted === true
  let lastTick = started
  let lastCount = 0
  let failed = 0
  const sum = (f: (c: SessionClient) => number) => clients.reduce((a, c) => a + f(c), 0)
  const progress = (): LoadProgress => {
    const t = now()
    const recent = done.slice(lastCount)
    const okMs = recent.filter((d) => d.status === 'ok').map((d) => d.ms)
    for (const d of recent) if (d.status === 'fail') failed++
    const rate = (recent.length * 1000) / Math.max(1, t - lastTick)
    lastTick = t
    lastCount = done.length
    const lat = okMs.length ? summarizeLatency(okMs) : null
    const targets: Record<string, number> = {}
    for (const c of clients) targets[c.currentTarget] = (targets[c.currentTarget] ?? 0) + 1
    return {
      elapsedMs: t - started,
      opsPerSec: rate,
      completed: done.length,
      failed,
      latencyMs: lat && { p50: lat.p50, p99: lat.p99 },
      errors: sum((c) => c.stats.errors),
      retries: sum((c) => c.stats.retries),
      duplicatesDropped: sum((c) => c.stats.duplicatesDropped),
      targets
    }
  }
  const onAbort = () => clients.forEach((c) => c.close())
  opts.signal?.addEventListener('abort', onAbort, { once: true })
  const ticker = opts.onProgress ? setInterval(() => opts.onProgress!(progress()), opts.progressEveryMs ?? 500) : null
  try {
    await Promise.all(
      clients.map(async (c, i) => {
        let k = i
        while (!stopped()) {
          k++
          const from = (k * 7 + i) % accounts
          const to = (from + 1 + ((k * 3) % (accounts - 1))) % accounts
          const amount = 1 + ((k * 13 + i) % 50)
          const t0 = now()
          const r = await c.call('TRANSFER', [from, to, amount])
          // "insufficient funds" is the bank's answer to a valid request
          const status = r.status === 'fail' && /insufficient funds/.test(r.error) ? 'ok' : r.status
          done.push({ status, ms: now() - t0, at: now() })
        }
      })
    )
  } finally {
    if (ticker) clearInterval(ticker)
    opts.signal?.removeEventListener('abort', onAbort)
    for (const c of clients) c.close()
  }
  const elapsedMs = now() - started
  const okMs = done.filter((d) => d.status === 'ok').map((d) => d.ms)
  const lat = summarizeLatency(okMs)
  const counts = { ok: okMs.length, failed: done.filter((d) => d.status === 'fail').length, unknown: done.filter((d) => d.status === 'unknown').length }
  let verdict: LoadVerdict
  try {
    const after = await readTotal(reader)
    const held = after.total === before.total
    verdict = {
      result: held ? 'valid' : 'invalid',
      summary: held ? `valid (the total held: ${after.total})` : `INVALID (the total changed: ${before.total} before, ${after.total} after)`,
      ...counts,
      lostWrites: 0,
      details: [`total ${after.total} ${held ? '=' : '≠'} ${before.total}`, `${accounts} accounts`]
    }
  } catch (err) {
    verdict = {
      result: 'unknown',
      summary: `unknown (the total could not be read after the run: ${(err as Error).message})`,
      ...counts,
      lostWrites: 0,
      details: [`total before: ${before.total}`]
    }
  } finally {
    reader.close()
  }
  return {
    completed: done.length,
    ...counts,
    elapsedMs,
    latencyMs: { p50: lat.p50, p99: lat.p99 },
    retries: sum((c) => c.stats.retries),
    duplicatesDropped: sum((c) => c.stats.duplicatesDropped),
    verdict
  }
}

async function readTotal(c: SessionClient): Promise<{ total: number; accounts: number }> {
  const t = await c.call('TOTAL')
  if (t.status !== 'ok' || typeof t.value !== 'number')
    throw new Error(`TOTAL: ${t.status === 'ok' ? `unexpected answer ${JSON.stringify(t.value)}` : t.error}`)
  const a = await c.call('ACCOUNTS')
  if (a.status !== 'ok' || !Array.isArray(a.value) || a.value.length < 2)
    throw new Error(`ACCOUNTS: ${a.status === 'ok' ? `unexpected answer ${JSON.stringify(a.value)}` : a.error}`)
  return { total: t.value, accounts: a.value.length }
}
