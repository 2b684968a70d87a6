// `npm run bench -- --scale`: the cost as the work grows, on one replicated lab (rsm):
// throughput, p99 latency and the backup's lag as clients grow, as values grow, and as the
// guest's state grows. The state is filled with pipelined SETs over the service port (no
// DEBUG command, nothing the guest would not see from a client). Prints tables and writes
// an SVG plot (docs/bench/scale.svg by default).
import { writeFileSync, mkdirSync } from 'node:fs'
import { createConnection } from 'node:net'
import { dirname } from 'node:path'
import type { Endpoint } from '../../agent/control/protocol.js'
import type { Lab } from '../lab/lab.js'
import type { LabEvent } from '../lab/lab-events.js'
import { FalseFailoverJudge } from '../lab/false-failover.js'
import { renderTable } from '../cli/table.js'
import { checkAbort, redisBenchmark, until, type Progress } from './measure.js'

export interface ScalePoint {
  x: number
  rps: number | null
  p99Ms: number | null
  /** the most entries the backup was behind the primary (lastEntry - acked), sampled every 100 ms */
  maxLagEntries: number | null
  note?: string
  /** what the replicas' detectors did during the point: each suspicion with the silence and the limit, the loops' stalls */
  detection?: PointDetection
}

export interface PointDetection {
  /** go-lives while the other replica was alive */
  falseFailovers: number
  /** each suspicion: who, in which role, after how long a silence, against which limit */
  suspicions: string[]
  /** the longest event-loop stall of each replica during the point (ticks at least LOOP_STALL_MS late), ms */
  longestStallMs: Record<string, number>
  /** stalls of each replica at least LOOP_STALL_MS long */
  stalls: Record<string, number>
}

export interface ScaleSeries {
  name: 'clients' | 'value bytes' | 'keys'
  what: string
  points: ScalePoint[]
  stoppedAt?: string
  /** keys series: redundancy restored onto a fresh backup at the largest state filled (a power cut of the backup first) */
  restore?: { keys: number; ms: number | null; error?: string }
}

export interface ScaleOptions {
  clients: number[]
  values: number[]
  keys: number[]
  /** give up growing the state once a fill would take longer than this */
  fillBudgetSeconds: number
  svg: string
  /** the series to run, in this order of the sweep */
  series: readonly ('clients' | 'values' | 'keys')[]
}

export const SCALE_DEFAULTS: ScaleOptions = {
  clients: [1, 4, 16, 64, 256],
  values: [16, 1024, 16 * 1024, 256 * 1024, 1024 * 1024],
  keys: [1_000, 10_000, 100_000, 1_000_000],
  fillBudgetSeconds: 240,
  svg: 'docs/bench/scale.svg',
  series: ['clients', 'values', 'keys']
}

/** restores of the pair tried before a point, before the sweep gives up */
const RESTORE_ATTEMPTS = 3
/** a fill that gets no answer for this long gives up (and is tried again once the pair is back) */
const FILL_QUIET_MS = 30_000
/** fill slices tried again after the pair broke under them, over the whole sweep */
const FILL_RETRIES = 3

/** While `work` runs, the largest gap between the primary's last entry and its backup's ack. */
async function withLag<T>(lab: Lab, host: () => string, work: () => Promise<T>): Promise<{ result: T; maxLag: number | null }> {
  let maxLag: number | null = null
  let done = false
  const poll = (async () => {
    while (!done) {
      const rows = await lab.status(500).catch(() => [])
      const a = rows.find((r) => r.host === host())?.status?.channel
      if (a) maxLag = Math.max(maxLag ?? 0, a.lastEntry - a.acked)
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  try {
    return { result: await work(), maxLag }
  } finally {
    done = true
    await poll
  }
}

/** Watches one point's agent events: suspicions (with the silence and the limit), event-loop stalls, false failovers. */
export class DetectionWatch {
  private readonly judge = new FalseFailoverJudge()
  private readonly events: LabEvent[] = []
  private readonly off: () => void

  /** `live`: told of each suspicion as it happens (a fill is long, and a sweep may hang after one) */
  constructor(lab: Pick<Lab, 'onEvent'>, live?: (line: string) => void) {
    this.off = lab.onEvent((ev) => {
      this.judge.observe(ev)
      if (ev.source !== 'agent') return
      const stalled = ev.type === 'dropped' && /unacknowledged for/.test(String(ev.data.why))
      if (ev.type === 'suspect' || ev.type === 'loop-stall' || stalled) this.events.push(ev)
      if (live && ev.type === 'suspect') live(this.describe(ev, ev.ts))
    })
  }

  private describe(e: LabEvent, t0: number): string {
    // the stalls of both replicas in the second before, which is what the silence is made of
    const near = this.events
      .filter((x) => x.type === 'loop-stall' && x.ts <= e.ts + 50 && x.ts >= e.ts - 1000)
      .map((x) => `${x.host} ${String(x.data.role)} stalled ${String(x.data.ms)} ms at ${x.ts - t0} ms`)
    const limit = typeof e.data.timeoutMs === 'number' ? `, limit ${e.data.timeoutMs} ms` : ''
    return `${e.host ?? '?'} suspected ${String(e.data.peer)} after ${Math.round(Number(e.data.silentMs))} ms of silence${limit}${near.length ? ` (${near.join('; ')})` : ' (no stall of either loop in the second before)'}`
  }

  /** What happened since the last take (or since the watch began), and start over. */
  take(): PointDetection {
    const out: PointDetection = { falseFailovers: this.judge.count, suspicions: [], longestStallMs: {}, stalls: {} }
    const t0 = this.events[0]?.ts ?? 0
    for (const e of this.events) {
      const host = e.host ?? '?'
      if (e.type === 'loop-stall') {
        const ms = Number(e.data.ms)
        out.stalls[host] = (out.stalls[host] ?? 0) + 1
        out.longestStallMs[host] = Math.max(out.longestStallMs[host] ?? 0, ms)
      } else if (e.type === 'suspect') out.suspicions.push(`+${e.ts - t0} ms: ${this.describe(e, t0)}`)
      else out.suspicions.push(`+${e.ts - t0} ms: ${host}: ${String(e.data.why)}`)
    }
    this.events.length = 0
    this.judge.found.length = 0
    return out
  }

  close(): void {
    this.off()
  }
}

/** SET key:<i> for i in [from, to) over one connection, `window` commands in flight: the guest's state grows by to - from keys. */
export function fillKeys(ep: Endpoint, from: number, to: number, window = 512, signal?: AbortSignal, quietMs = FILL_QUIET_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: ep.host, port: ep.port })
    // a primary deposed by a false failover halts and may keep the connection open unanswered: the fill would wait for ever
    sock.setTimeout(quietMs, () => sock.destroy(new Error(`no answer from the service for ${quietMs / 1000} s (its replica may have halted)`)))
    let next = from
    let answered = 0
    let pending = ''
    const want = to - from
    const send = () => {
      const parts: string[] = []
      while (next < to && next - from - answered < window) {
        const k = `key:${next}`
        parts.push(`*3\r\n$3\r\nSET\r\n$${k.length}\r\n${k}\r\n$3\r\nxxx\r\n`)
        next++
      }
      if (parts.length) sock.write(parts.join(''))
    }
    const onAbort = () => sock.destroy(new Error('aborted'))
    signal?.addEventListener('abort', onAbort, { once: true })
    sock.setNoDelay(true)
    sock.on('connect', send)
    sock.on('data', (d: Buffer) => {
      pending += d.toString('latin1')
      let at = 0
      for (;;) {
        const nl = pending.indexOf('\r\n', at)
        if (nl < 0) break
        if (pending[at] === '-') return sock.destroy(new Error(`the service refused a SET while filling keys: ${pending.slice(at, nl)}`))
        answered++
        at = nl + 2
      }
      pending = pending.slice(at)
      if (answered >= want) {
        signal?.removeEventListener('abort', onAbort)
        sock.end()
        return resolve()
      }
      send()
    })
    sock.on('error', (e) => {
      signal?.removeEventListener('abort', onAbort)
      reject(e)
    })
    // a replica that halts or stops serving ends its clients' connections without an error: the fill must hear it
    sock.on('close', () => {
      signal?.removeEventListener('abort', onAbort)
      reject(new Error(`the service closed the connection after ${answered.toLocaleString('en-US')} of ${want.toLocaleString('en-US')} SETs`))
    })
  })
}

export async function scaleRun(lab: Lab, opts: ScaleOptions, progress: Progress, signal: AbortSignal): Promise<ScaleSeries[]> {
  let ep = lab.serviceEndpoints()[0]
  /**
   * A pair again before each point. Under a heavy point the backup may have gone live (a false
   * failover: the primary was alive but busy); the sweep then restores redundancy and says so.
   */
  const ready = async (): Promise<string | undefined> => {
    const rows = new Map((await lab.status(1000)).map((r) => [r.host, r]))
    const live = [...rows.values()].find((r) => r.status?.role === 'live')
    if (!live) {
      await until(
        lab,
        'a primary with its backup',
        (rs) => [...rs.values()].some((r) => r.status?.role === 'primary') || [...rs.values()].some((r) => r.status?.role === 'live'),
        { signal }
      )
    }
    const now = new Map((await lab.status(1000)).map((r) => [r.host, r]))
    const alone = [...now.values()].find((r) => r.status?.role === 'live')
    let note: string | undefined
    if (alone) {
      note = `${alone.host} had gone live alone before this point (failover under the previous load); redundancy restored`
      // a restore that fails (the fresh backup did not take a large snapshot in time) says to restore again
      for (let attempt = 1; ; attempt++) {
        try {
          await lab.restore({ timeoutMs: 120_000 })
          break
        } catch (err) {
          checkAbort(signal)
          if (attempt >= RESTORE_ATTEMPTS) throw err
          progress(`scale: restoring redundancy failed (${(err as Error).message}); again`)
        }
      }
    }
    await until(
      lab,
      'a primary with a backup',
      (rs) => [...rs.values()].some((r) => r.status?.role === 'primary') && [...rs.values()].some((r) => r.status?.role === 'backup'),
      {
        signal
      }
    )
    const prim = (await lab.status(1000)).find((r) => r.status?.role === 'primary')
    if (prim) ep = lab.serviceEndpoints()[['a', 'b'].indexOf(prim.host)] ?? ep
    primaryHost = prim?.host ?? 'a'
    return note
  }
  let primaryHost = 'a'
  const point = async (x: number, args: { clients: number; requests: number; value: number; tests: string; keyspace?: number }): Promise<ScalePoint> => {
    const restored = await ready()
    watch.take()
    const { result, maxLag } = await withLag(
      lab,
      () => primaryHost,
      () =>
        redisBenchmark(ep, args.requests, 1, signal, 300_000, args.tests, args.clients, [
          '-d',
          String(args.value),
          ...(args.keyspace ? ['-r', String(args.keyspace)] : [])
        ])
    )
    checkAbort(signal)
    const t = result.tests[0]
    const detection = watch.take()
    const suspected = detection.suspicions.length ? `${detection.suspicions.length} suspicion(s), ${detection.falseFailovers} false failover(s)` : undefined
    const note = [restored, suspected, result.ok ? undefined : result.error].filter(Boolean).join('; ')
    return { x, rps: t?.rps ?? null, p99Ms: t?.p99Ms ?? null, maxLagEntries: maxLag, ...(note ? { note } : {}), detection }
  }
  const out: ScaleSeries[] = []
  const watch = new DetectionWatch(lab, (line) => progress(`scale: ${line}`))
  try {
    await sweep(out)
  } catch (err) {
    // a lab that cannot be made a pair again ends the sweep; what was measured is still reported
    checkAbort(signal)
    const last = out.at(-1)
    const why = `the sweep stopped here: ${(err as Error).message}`
    if (last) last.stoppedAt = last.stoppedAt ?? why
    progress(`scale: ${why}`)
  } finally {
    watch.close()
  }
  return out

  async function sweep(out: ScaleSeries[]): Promise<void> {
    const clients: ScaleSeries = { name: 'clients', what: 'redis-benchmark -t set -d 16, clients 1..256', points: [] }
    if (opts.series.includes('clients')) out.push(clients)
    for (const c of opts.series.includes('clients') ? opts.clients : []) {
      progress(`scale: ${c} client(s)`)
      clients.points.push(await point(c, { clients: c, requests: Math.max(400, c * 40), value: 16, tests: 'set' }))
    }

    const values: ScaleSeries = { name: 'value bytes', what: 'redis-benchmark -t set -c 16, value size 16 B..1 MiB', points: [] }
    if (opts.series.includes('values')) out.push(values)
    for (const v of opts.series.includes('values') ? opts.values : []) {
      progress(`scale: values of ${v} bytes`)
      // bounded bytes per point: a 1 MiB value is logged, sent to the backup and written to the disk server whole
      values.points.push(await point(v, { clients: 16, requests: Math.max(64, Math.min(2000, Math.floor((64 * 1024 * 1024) / v))), value: v, tests: 'set' }))
    }

    const keys: ScaleSeries = { name: 'keys', what: 'redis-benchmark -t get -c 16 -r <keys> after filling the state with pipelined SETs', points: [] }
    if (opts.series.includes('keys')) out.push(keys)
    let have = 0
    let fillRetries = 0
    for (const k of opts.series.includes('keys') ? opts.keys : []) {
      const t0 = Date.now()
      progress(`scale: filling the guest to ${k.toLocaleString('en-US')} keys (pipelined SETs)`)
      // fill the first slice, and give up before a fill that would outrun the budget
      const rate = { keys: 0, ms: 0 }
      while (have < k) {
        const step = Math.min(k - have, Math.max(1000, Math.floor(k / 10)))
        const s0 = Date.now()
        await ready()
        try {
          await fillKeys(ep, have, have + step, 512, signal)
        } catch (err) {
          // the pair broke under the fill (a false failover closes the primary's connections): SET is idempotent, so
          // the same slice goes again once ready() has a pair again
          checkAbort(signal)
          watch.take()
          if (++fillRetries > FILL_RETRIES) throw err
          progress(`scale: filling failed at ${have.toLocaleString('en-US')} keys (${(err as Error).message}); again`)
          continue
        }
        watch.take()
        rate.keys += step
        rate.ms += Date.now() - s0
        have += step
        progress(`scale: ${have.toLocaleString('en-US')} keys (${Math.round((step / Math.max(1, Date.now() - s0)) * 1000).toLocaleString('en-US')} keys/s)`)
        const left = ((k - have) * rate.ms) / Math.max(1, rate.keys) / 1000
        if ((Date.now() - t0) / 1000 + left > opts.fillBudgetSeconds) {
          keys.stoppedAt = `stopped at ${have.toLocaleString('en-US')} of ${k.toLocaleString('en-US')} keys: filling at ${Math.round((rate.keys / rate.ms) * 1000).toLocaleString('en-US')} keys/s would take ${Math.round(left)} s more than the budget of ${opts.fillBudgetSeconds} s on this machine`
          break
        }
      }
      if (have < k) break
      progress(`scale: ${k.toLocaleString('en-US')} keys filled in ${((Date.now() - t0) / 1000).toFixed(1)} s; measuring GET`)
      keys.points.push(await point(k, { clients: 16, requests: 4000, value: 3, tests: 'get', keyspace: k }))
    }
    if (keys.stoppedAt) progress(`scale: ${keys.stoppedAt}`)
    if (have > 0) keys.restore = await restoreAt(have)
  }

  /**
   * A new backup for a guest of `keys` keys: the backup's power is cut, and redundancy restored onto a fresh one,
   * which must take the whole snapshot while the live replica waits (a restore at 200,000 to 300,000 keys once failed,
   * the joining replica silent while it applied the snapshot in one step).
   */
  async function restoreAt(keys: number): Promise<NonNullable<ScaleSeries['restore']>> {
    try {
      await ready()
      const backup = primaryHost === 'a' ? 'b' : 'a'
      progress(`scale: power cut of the backup ${backup} at ${keys.toLocaleString('en-US')} keys, then restoring redundancy onto a fresh one`)
      await lab.powerCut(backup)
      await until(lab, `${primaryHost} live alone`, (rs) => rs.get(primaryHost)?.status?.role === 'live', { signal })
      const t0 = Date.now()
      await lab.restore({ timeoutMs: 300_000 })
      const ms = Date.now() - t0
      progress(`scale: restored redundancy at ${keys.toLocaleString('en-US')} keys in ${(ms / 1000).toFixed(1)} s`)
      return { keys, ms }
    } catch (err) {
      checkAbort(signal)
      progress(`scale: restoring redundancy at ${keys.toLocaleString('en-US')} keys failed: ${(err as Error).message}`)
      return { keys, ms: null, error: (err as Error).message }
    }
  }
}

const fmt = (n: number | null, d = 0) => (n === null || !Number.isFinite(n) ? '-' : d ? n.toFixed(d) : Math.round(n).toLocaleString('en-US'))
const xText = (s: ScaleSeries, x: number) =>
  s.name === 'value bytes' ? (x >= 1048576 ? `${x / 1048576} MiB` : x >= 1024 ? `${x / 1024} KiB` : `${x} B`) : x.toLocaleString('en-US')
/** a plot's tick: thousands and millions short (K and M of bytes binary), so that neighbouring ticks do not run into each other */
const tickText = (s: ScaleSeries, x: number) => {
  const [k, m, K, M] = s.name === 'value bytes' ? [1024, 1048576, 'K', 'M'] : [1e3, 1e6, 'k', 'M']
  return x >= m && x % m === 0 ? `${x / m}${M}` : x >= k && x % k === 0 ? `${x / k}${K}` : String(x)
}

export function renderScale(series: ScaleSeries[]): string[] {
  const out: string[] = []
  for (const s of series) {
    out.push('', `${s.what} (FT Lab replicated, rsm)`)
    out.push(
      renderTable(
        [s.name.toUpperCase(), 'REQ/S', 'p99 ms', 'BACKUP LAG max entries', 'NOTE'],
        s.points.map((p) => [xText(s, p.x), fmt(p.rps), fmt(p.p99Ms, 1), fmt(p.maxLagEntries), p.note ?? ''])
      )
    )
    if (s.stoppedAt) out.push(s.stoppedAt)
    if (s.restore) {
      const r = s.restore
      const at = `${r.keys.toLocaleString('en-US')} keys`
      out.push(
        r.ms === null
          ? `restoring redundancy at ${at} failed: ${r.error ?? 'unknown'}`
          : `redundancy restored onto a fresh backup at ${at} in ${(r.ms / 1000).toFixed(1)} s`
      )
    }
  }
  return out
}

/** Three panels (one per series), req/s and p99 against a log x axis; a plain SVG docs/performance.md embeds. */
export function scaleSvg(series: ScaleSeries[], title: string): string {
  const W = 320
  const H = 200
  const pad = { l: 52, r: 60, t: 28, b: 36 }
  const panels = series.map((s, i) => {
    const pts = s.points.filter((p) => p.rps !== null)
    const xs = pts.map((p) => Math.log10(p.x))
    // the axis spans the points measured (a lone point sits at its left end)
    const x0 = xs.length > 0 ? Math.min(...xs) : 0
    const x1 = Math.max(...xs, x0 + 1)
    const rMax = Math.max(1, ...pts.map((p) => p.rps ?? 0))
    const lMax = Math.max(1, ...pts.map((p) => p.p99Ms ?? 0))
    const px = (x: number) => pad.l + ((Math.log10(x) - x0) / (x1 - x0)) * (W - pad.l - pad.r)
    const py = (v: number, max: number) => pad.t + (1 - v / max) * (H - pad.t - pad.b)
    const line = (get: (p: ScalePoint) => number | null, max: number) =>
      pts
        .filter((p) => get(p) !== null)
        .map((p) => `${px(p.x).toFixed(1)},${py(get(p)!, max).toFixed(1)}`)
        .join(' ')
    const ticks = pts.map((p) => `<text x="${px(p.x).toFixed(1)}" y="${H - pad.b + 14}" font-size="9" text-anchor="middle">${tickText(s, p.x)}</text>`).join('')
    return `<g transform="translate(${i * W},0)">
<text x="${W / 2}" y="16" font-size="11" text-anchor="middle" font-weight="bold">${s.name}</text>
<rect x="${pad.l}" y="${pad.t}" width="${W - pad.l - pad.r}" height="${H - pad.t - pad.b}" fill="none" stroke="#ccc"/>
<polyline points="${line((p) => p.rps, rMax)}" fill="none" stroke="#1f77b4" stroke-width="2"/>
<polyline points="${line((p) => p.p99Ms, lMax)}" fill="none" stroke="#d62728" stroke-width="2" stroke-dasharray="4 3"/>
<text x="${pad.l - 4}" y="${pad.t + 8}" font-size="9" text-anchor="end" fill="#1f77b4">${fmt(rMax)}</text>
<text x="${pad.l - 4}" y="${H - pad.b}" font-size="9" text-anchor="end" fill="#1f77b4">0</text>
<text x="${W - pad.r + 4}" y="${pad.t + 8}" font-size="9" fill="#d62728">${fmt(lMax, 1)} ms</text>
<text x="${W - pad.r + 4}" y="${H - pad.b}" font-size="9" fill="#d62728">0 ms</text>
${ticks}
</g>`
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W * Math.max(1, series.length)}" height="${H + 20}" font-family="sans-serif">
<text x="6" y="${H + 14}" font-size="10">${title} — blue: req/s (left scale), red dashed: p99 ms (right scale); x axis logarithmic</text>
${panels.join('\n')}
</svg>
`
}

export function writeScaleSvg(path: string, series: ScaleSeries[], title: string): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, scaleSvg(series, title))
}
