// The console UI under a busy logging channel: frame time p50/p95 and JS heap of the page
// in Chromium, at the start and every minute for N minutes, while a synthetic source pushes
// 20,000 log entries a second through the backend's event path (the same event log, the
// same WebSocket, the same stores as a real lab's entries and acks).
//
//   node scripts/ui-bench.mjs                       # 10 minutes
//   node scripts/ui-bench.mjs --minutes 1           # a quick run
//   node scripts/ui-bench.mjs --rate 20000 --batch 1   # one agent event per entry (the worst case)
//
// Printed figures only; the goal (frame p95 at most 16 ms, a heap that stays bounded) is for
// a person to read, not an assertion.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { loadavg, cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { chromium } from 'playwright-core'
import type { ApiEvent, MethodName, ParamsOf, ResultOf } from '../api/contract.js'
import type { ConsoleService } from '../api/dispatch.js'
import { ApiEventLog } from '../api/event-log.js'
import { ConsoleBackend } from '../console/console-backend.js'
import { startApiServer } from '../transport/ws-server.js'

const CHROMIUM = '/usr/bin/chromium'

interface UiBenchOptions {
  minutes: number
  /** log entries per second on the channel */
  rate: number
  /** entries per agent 'entries' event (the agents report batches; 1 = one event per entry) */
  batch: number
  width: number
  height: number
}

function options(argv: string[]): UiBenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string', default: '10' },
      rate: { type: 'string', default: '20000' },
      batch: { type: 'string', default: '20' },
      width: { type: 'string', default: '1440' },
      height: { type: 'string', default: '900' },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) {
    console.log('usage: node scripts/ui-bench.mjs [--minutes 10] [--rate 20000] [--batch 20] [--width 1440] [--height 900]')
    process.exit(0)
  }
  const num = (name: string, v: string, min: number, max: number) => {
    const n = Number(v)
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number from ${min} to ${max} (got ${JSON.stringify(v)})`)
    return n
  }
  return {
    minutes: num('minutes', values.minutes, 0.1, 120),
    rate: num('rate', values.rate, 1, 1_000_000),
    batch: Math.round(num('batch', values.batch, 1, 100_000)),
    width: num('width', values.width, 320, 4000),
    height: num('height', values.height, 240, 4000)
  }
}

/**
 * The console, with its events re-numbered into a log of our own so a synthetic channel can
 * be interleaved: every method but events.since is the console's own.
 */
function withSyntheticChannel(inner: ConsoleService, log: ApiEventLog): ConsoleService {
  inner.subscribe((ev) => {
    const { seq: _seq, ...rest } = ev
    log.publish(rest as Parameters<ApiEventLog['publish']>[0])
  })
  return {
    handle<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
      if (method === 'events.since') return Promise.resolve(log.since((params as ParamsOf<'events.since'>).seq) as ResultOf<M>)
      return inner.handle(method, params)
    },
    subscribe: (l: (ev: ApiEvent) => void) => log.subscribe(l),
    close: () => inner.close()
  }
}

/** entries from a to b and acks back, `rate` entries a second in events of `batch` entries */
function startChannel(log: ApiEventLog, rate: number, batch: number): { stop(): void; sent(): number } {
  const tickMs = 10
  let n = 0
  let owed = 0
  let events = 0
  const timer = setInterval(() => {
    owed += (rate * tickMs) / 1000
    const ts = Date.now()
    while (owed >= batch) {
      owed -= batch
      const first = n + 1
      n += batch
      log.publish({
        ts,
        topic: 'agent',
        host: 'a',
        type: 'entries',
        data: { to: 'b', first, last: n, count: batch, bytes: batch * 96, inputs: { data: batch } }
      })
      log.publish({ ts, topic: 'agent', host: 'b', type: 'ack', data: { n } })
      events += 2
    }
  }, tickMs)
  return { stop: () => clearInterval(timer), sent: () => events }
}

function percentile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0
}

const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const o = options(argv)
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: install Debian's (apt-get install chromium); the benchmark never downloads a browser`)
  const root = resolve(import.meta.dirname, '../..')
  const rendererDir = join(root, 'out/renderer')
  if (!existsSync(join(rendererDir, 'index.html'))) {
    console.log('ui-bench: building the renderer (electron-vite build)…')
    execFileSync(process.execPath, [join(root, 'node_modules/electron-vite/bin/electron-vite.js'), 'build'], { cwd: root, stdio: 'inherit' })
  }

  const home = mkdtempSync(join(tmpdir(), 'ftlab-ui-bench-home-'))
  const inner = new ConsoleBackend({ home, reattach: false, shell: 'browser' })
  const log = new ApiEventLog()
  const backend = withSyntheticChannel(inner, log)
  const server = await startApiServer({ backend, rendererDir })
  const profile = mkdtempSync(join(tmpdir(), 'ftlab-ui-bench-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    viewport: { width: o.width, height: o.height },
    colorScheme: 'dark'
  })
  let channel: ReturnType<typeof startChannel> | null = null
  try {
    await inner.handle('lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm' })
    for (let i = 0; i < 300 && (await inner.handle('lab.status', {})).state !== 'running'; i++) await new Promise((r) => setTimeout(r, 100))
    await inner.handle('load.start', { clients: 8, seconds: Math.ceil(o.minutes * 60) + 60, keys: 1000 })
    const page = context.pages()[0] ?? (await context.newPage())
    await page.goto(server.url)
    await page.locator('[data-test=space-time]').waitFor({ timeout: 30_000 })
    const cdp = await context.newCDPSession(page)
    await cdp.send('Runtime.enable')

    // frame intervals from requestAnimationFrame, collected in the page, drained each minute
    await page.evaluate(() => {
      const w = globalThis as unknown as { __frames: number[]; requestAnimationFrame(cb: (t: number) => void): number }
      w.__frames = []
      let last = 0
      const tick = (t: number) => {
        if (last) w.__frames.push(t - last)
        last = t
        w.requestAnimationFrame(tick)
      }
      w.requestAnimationFrame(tick)
    })
    const drain = () =>
      page.evaluate(() => {
        const w = globalThis as unknown as { __frames: number[] }
        const f = w.__frames
        w.__frames = []
        return f
      })
    const heap = async () => {
      await cdp.send('HeapProfiler.collectGarbage').catch(() => {})
      const u = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number; totalSize: number }
      return u.usedSize
    }

    channel = startChannel(log, o.rate, o.batch)
    console.log(
      `ui-bench: ${o.rate} entries/s in events of ${o.batch} (${Math.round((2 * o.rate) / o.batch)} agent events/s with the acks), ${o.width}×${o.height}, ${o.minutes} min, chromium ${context.browser()?.version() ?? ''}`
    )
    await page.waitForTimeout(5000) // the page takes the stream; not measured
    if (process.env.FTLAB_UI_BENCH_PROFILE) {
      // a CPU profile of the page for 5 s, its functions by self time (to find what costs the frames)
      await cdp.send('Profiler.enable')
      await cdp.send('Profiler.start')
      await page.waitForTimeout(5000)
      const { profile } = (await cdp.send('Profiler.stop')) as {
        profile: { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number } }[]; samples: number[] }
      }
      const self = new Map<string, number>()
      const byId = new Map(profile.nodes.map((n) => [n.id, n]))
      for (const id of profile.samples) {
        const f = byId.get(id)!.callFrame
        const k = `${f.functionName || '(anon)'} ${f.url.split('/').pop()}:${f.lineNumber}:${f.columnNumber}`
        self.set(k, (self.get(k) ?? 0) + 1)
      }
      for (const [k, n] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${String(n).padStart(6)}  ${k}`)
    }
    await drain()
    const heapStart = await heap()
    // frame times depend on the machine as much as on the page: say how busy it was
    const load = () => `load average ${loadavg()[0].toFixed(1)} on ${cpus().length} cores`
    console.log(`  start      heap ${mib(heapStart)}   (${load()})`)
    const all: number[] = []
    const totalMs = o.minutes * 60_000
    const stepMs = Math.min(60_000, totalMs)
    let elapsed = 0
    let heapEnd = heapStart
    while (elapsed < totalMs) {
      const wait = Math.min(stepMs, totalMs - elapsed)
      await page.waitForTimeout(wait)
      elapsed += wait
      const frames = (await drain()).sort((a, b) => a - b)
      all.push(...frames)
      heapEnd = await heap()
      console.log(
        `  ${(elapsed / 60_000).toFixed(1).padStart(4)} min   frames ${String(frames.length).padStart(5)}  p50 ${percentile(frames, 0.5).toFixed(1)} ms  p95 ${percentile(frames, 0.95).toFixed(1)} ms  max ${(frames[frames.length - 1] ?? 0).toFixed(1)} ms   heap ${mib(heapEnd)}   (${load()})`
      )
    }
    all.sort((a, b) => a - b)
    const p95 = percentile(all, 0.95)
    console.log(
      `ui-bench: frame p50 ${percentile(all, 0.5).toFixed(1)} ms, p95 ${p95.toFixed(1)} ms (goal ≤ 16 ms, i.e. no frame dropped at 60 Hz, whose interval is 16.7 ms: ${p95 <= 16.7 ? 'met' : 'missed'}); heap ${mib(heapStart)} at start, ${mib(heapEnd)} after ${o.minutes} min; ${channel.sent()} agent events sent`
    )
  } finally {
    channel?.stop()
    await context.close().catch(() => {})
    rmSync(profile, { recursive: true, force: true })
    await server.close().catch(() => {})
    await inner.handle('lab.stop', {}).catch(() => {})
    await inner.close().catch(() => {})
    rmSync(home, { recursive: true, force: true })
  }
}
