// `npm run bench`: figures for the embedded local lab. Prints a table (or JSON with --json);
// progress goes to stderr so that stdout holds only the result.
//
// Every lab lives in a temporary FTLAB_HOME of its own and is stopped on the way out, on
// success, failure or a signal alike: agents are detached processes that would otherwise
// outlive the benchmark.
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ReplicationMode } from '../../agent/vmm/types.js'
import { DEFAULT_TIMING, type Lab, type LabConfig } from '../lab/lab.js'
import { LabStore } from '../lab/lab-state.js'
import { LocalHost } from '../lab/local-host.js'
import { openLocalLab, startLocalLab } from '../lab/local-lab.js'
import { DEFAULT_MIX } from '../load/workload.js'
import type { LoadResult } from '../load/load-runner.js'
import {
  Aborted,
  channelDelta,
  channelSum,
  checkAbort,
  load,
  memoryOf,
  paired,
  pooled,
  redisBenchmark,
  respCall,
  redisBenchmarkVersion,
  FailoverWatch,
  roleOf,
  sampling,
  saturatedRun,
  spread,
  tail,
  timedFailover,
  until,
  type ChannelFigures,
  type LoadShape,
  type Progress
} from './measure.js'
import { deployRun } from './deploy.js'
import { measureVmmCost } from './vmm-cost.js'
import { SCALE_DEFAULTS, renderScale, scaleRun, writeScaleSvg, type ScaleOptions } from './scale.js'
import { BenchUsageError, parseBenchArgs, SETTLED_LEAD_MS, USAGE, type BenchOptions } from './options.js'
import {
  BASELINE_HOW,
  renderReport,
  type BenchResult,
  type FailoverRep,
  type FailoverResult,
  type MemoryResult,
  type ModeResult,
  type SaturateResult
} from './report.js'
import { runIfMain } from '../core/entry.js'
import { SBS_WRITES, samplesOf, startRedisServer, type RedisServer, type SbsChannelSample, type SbsTarget, type SideBySideResult } from './side-by-side.js'

const HOSTS = ['a', 'b', 'disk'] as const
const SAMPLE_EVERY_MS = 1000
const REDIS_PIPELINE = 16
/** redis-server is that much faster: it gets this many times FT Lab's -n, so its runs are not over before they begin */
const REDIS_SERVER_FACTOR = 10
/** the same for redis-server with appendfsync always */
const REDIS_AOF_FACTOR = 3
/** after a signal, how long the benchmark may take to unwind before it kills the agents itself */
const UNWIND_GRACE_MS = 12_000

/** The labs this run started, so that every exit path can stop them. */
class LabRegistry {
  private readonly names = new Set<string>()
  private readonly open = new Map<string, Lab>()

  constructor(readonly home: string) {}

  async start(cfg: LabConfig): Promise<Lab> {
    this.names.add(cfg.name)
    const lab = await startLocalLab(cfg, { home: this.home })
    this.open.set(cfg.name, lab)
    return lab
  }

  async stop(name: string): Promise<void> {
    const lab = this.open.get(name)
    this.open.delete(name)
    if (lab) await lab.stop().catch(() => this.kill(name))
  }

  /** Stop everything, including a lab whose start was cut short (its state file names its agents). */
  async stopAll(): Promise<void> {
    for (const name of this.names) {
      const lab = this.open.get(name)
      this.open.delete(name)
      try {
        if (lab) await lab.stop()
        else if (new LabStore(this.home).load(name)) await openLocalLab(name, { home: this.home }).stop()
      } catch {
        await this.kill(name)
      }
    }
  }

  /**
   * The last resort: SIGKILL every agent the state files name, and on Linux also every agent
   * whose working directory is inside this run's home: a lab interrupted while starting has
   * agents its state file does not name yet. Each pid is checked to run the agent bundle.
   */
  async kill(name?: string): Promise<void> {
    const store = new LabStore(this.home)
    const host = new LocalHost()
    const pids = new Set<number>()
    for (const n of name ? [name] : this.names) {
      const state = store.load(n)
      if (!state) continue
      for (const h of Object.values(state.hosts)) pids.add(h.pid)
      store.remove(n)
    }
    if (!name) for (const pid of agentsUnder(this.home)) pids.add(pid)
    await Promise.all([...pids].map((pid) => host.kill(pid).catch(() => false)))
  }
}

/** Agent processes (Linux /proc) whose working directory is inside `dir`: the local host starts each agent in its data directory. */
function agentsUnder(dir: string): number[] {
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return []
  }
  const out: number[] = []
  for (const e of entries) {
    if (!/^[0-9]+$/.test(e)) continue
    try {
      const cwd = readlinkSync(`/proc/${e}/cwd`)
      if (cwd === dir || cwd.startsWith(dir + '/')) out.push(Number(e))
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out
}

/** Set while the deploy section has the testbed up, so that a signal can take it down. */
let testbedCleanup: (() => void) | null = null
/** Set while the benchmark's own redis-server runs, so that every exit path stops it. */
let redisServer: RedisServer | null = null
/** The same, durable (appendfsync always): the side-by-side table's fairer column */
let redisAof: RedisServer | null = null

export async function runBench(opts: BenchOptions, labs: LabRegistry, progress: Progress, signal: AbortSignal): Promise<BenchResult> {
  const started = Date.now()
  const shape: LoadShape = { clients: opts.clients, keys: opts.keys }
  const has = (s: BenchOptions['sections'][number]) => opts.sections.includes(s)
  const result: BenchResult = {
    startedAt: new Date(started).toISOString(),
    elapsedMs: 0,
    machine: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model?.trim() ?? 'unknown CPU',
      loadAvg: [loadavg()[0], 0]
    },
    load: { clients: opts.clients, keys: opts.keys, seconds: opts.seconds, warmupSeconds: opts.warmupSeconds, rounds: opts.rounds, mix: mixText() },
    timing: DEFAULT_TIMING,
    baseline: BASELINE_HOW,
    modes: [],
    memory: [],
    interrupted: false
  }

  let redisVersion: string | null = null
  if (has('redis')) {
    redisVersion = await redisBenchmarkVersion()
    const plain = opts.redisRequests
    result.sideBySide = {
      redisServer: { available: false, why: 'redis-benchmark is not on the PATH (Debian/Ubuntu: apt-get install redis-tools)' },
      rounds: opts.redisRounds,
      requests: { plain, pipelined: plain * 4, redisFactor: REDIS_SERVER_FACTOR },
      warmup: !opts.redisCold,
      samples: [],
      channel: [],
      errors: []
    }
    if (redisVersion) {
      progress('redis: starting redis-server on a free loopback port')
      const rs = await startRedisServer(signal)
      if ('why' in rs) {
        result.sideBySide.redisServer = { available: false, why: rs.why }
        progress(`redis: redis-server not measured: ${rs.why}`)
      } else {
        redisServer = rs
        result.sideBySide.redisServer = { available: true, version: rs.version }
      }
      progress('redis: starting redis-server with appendonly yes, appendfsync always')
      const aof = await startRedisServer(signal, 'aof-always')
      if ('why' in aof) {
        result.sideBySide.redisAof = { available: false, why: aof.why }
        progress(`redis: redis-server with appendfsync always not measured: ${aof.why}`)
      } else {
        redisAof = aof
        result.sideBySide.redisAof = { available: true }
      }
    }
  }

  try {
    const perMode = has('throughput') || has('memory') || (has('redis') && redisVersion !== null)
    if (perMode) {
      for (const mode of opts.modes) {
        const r = await modeRun(mode, opts, shape, labs, progress, signal, result, redisVersion !== null)
        if (has('throughput')) result.modes.push(r)
      }
    }
    if (has('failover')) result.failover = await failoverRun(opts.modes[0], opts, shape, labs, progress, signal)
    if (has('saturate')) result.saturate = await saturateRun(opts.modes[0], opts, labs, progress, signal)
    if (has('vmm')) {
      progress('vmm: the guest and the VMM alone, per command')
      result.vmm = measureVmmCost({ modes: opts.modes })
    }
    if (has('deploy')) {
      result.deploy = await deployRun(opts.deployReps, progress, signal, (fn) => (testbedCleanup = fn), { onUpTestbed: opts.deployOnUpTestbed })
      if (result.deploy.skipped) progress(`deploy: skipped: ${result.deploy.skipped}`)
    }
  } catch (err) {
    if (!(err instanceof Aborted)) throw err
    result.interrupted = true
  }
  result.elapsedMs = Date.now() - started
  result.machine.loadAvg[1] = loadavg()[0]
  return result
}

/**
 * One lab in one replication mode, used for everything that mode measures. Throughput comes
 * first, in rounds of a replicated run, a power cut of the backup, an unreplicated run, and
 * restore redundancy; interleaving the two kinds keeps a change in the machine's background
 * load from landing on one side of the ratio only. Memory and redis-benchmark follow on
 * the replicated lab.
 */
async function modeRun(
  mode: ReplicationMode,
  opts: BenchOptions,
  shape: LoadShape,
  labs: LabRegistry,
  progress: Progress,
  signal: AbortSignal,
  result: BenchResult,
  redisAvailable: boolean
): Promise<ModeResult> {
  const has = (s: BenchOptions['sections'][number]) => opts.sections.includes(s)
  const out: ModeResult = { mode, rounds: [] }
  const name = `bench-${mode}`
  progress(`${mode}: starting a lab (replicas a and b, disk server)`)
  const lab = await labs.start({ name, mode })
  const pairedAB = () => until(lab, 'a primary with b as its backup', paired('a', 'b'), { signal })
  const targets = lab.serviceEndpoints()
  const warm = async (seconds: number, what: string) => {
    if (seconds <= 0) return
    progress(`${mode}: ${what} ${seconds} s`)
    await load(targets, shape, seconds, signal)
    checkAbort(signal)
  }
  // a short unmeasured run after each change of configuration, so that reconnecting clients
  // and a new backup's first entries are not counted
  const settleSeconds = Math.min(0.5, opts.warmupSeconds)
  try {
    checkAbort(signal)
    await pairedAB()
    await warm(opts.warmupSeconds, 'warm-up')

    if (has('throughput')) {
      const replicated: LoadResult[] = []
      const unreplicated: LoadResult[] = []
      const channel: ChannelFigures[] = []
      try {
        for (let i = 1; i <= opts.rounds; i++) {
          const tag = `${mode} round ${i}/${opts.rounds}`
          progress(`${tag}: replicated run ${opts.seconds} s`)
          const before = new Map((await lab.status(1000)).map((r) => [r.host, r]))
          const rep = await load(targets, shape, opts.seconds, signal)
          checkAbort(signal)
          const after = new Map((await lab.status(1000)).map((r) => [r.host, r]))
          replicated.push(rep)
          channel.push(channelDelta(before, after, 'a', 'b', rep.summary.completed, rep.summary.elapsedMs))
          // only the first round: once a has been live, its ring of hold times also holds
          // the zero-hold releases of its unreplicated runs
          if (i === 1) out.outputRule = after.get('a')?.status?.outputRule

          progress(`${tag}: power cut of the backup b; waiting for a to go live alone`)
          await lab.powerCut('b')
          await until(lab, 'a live alone', (rows) => rows.get('b')?.state === 'down' && roleOf(rows, 'a') === 'live', { signal })
          await warm(settleSeconds, 'settle')
          progress(`${tag}: unreplicated run ${opts.seconds} s`)
          const unr = await load(targets, shape, opts.seconds, signal)
          checkAbort(signal)
          unreplicated.push(unr)
          const ratio = rep.summary.opsPerSec / Math.max(1e-9, unr.summary.opsPerSec)
          out.rounds.push({ replicatedOpsPerSec: rep.summary.opsPerSec, unreplicatedOpsPerSec: unr.summary.opsPerSec, ratio })
          progress(`${tag}: ${rep.summary.opsPerSec.toFixed(0)} vs ${unr.summary.opsPerSec.toFixed(0)} ops/s (ratio ${ratio.toFixed(2)})`)

          // back to a replicated pair for the next round, and for memory and redis-benchmark
          const more = i < opts.rounds || has('memory') || (has('redis') && redisAvailable)
          if (more) {
            progress(`${tag}: restoring redundancy onto a fresh b`)
            await lab.restore({ timeoutMs: 20_000 })
            await pairedAB()
            await warm(settleSeconds, 'settle')
          }
        }
      } catch (err) {
        if (err instanceof Aborted) throw err
        out.error = (err as Error).message
      } finally {
        if (replicated.length) out.replicated = pooled(replicated)
        if (unreplicated.length) out.unreplicated = pooled(unreplicated)
        if (out.replicated && out.unreplicated && out.unreplicated.opsPerSec > 0) out.ratio = out.replicated.opsPerSec / out.unreplicated.opsPerSec
        if (channel.length) out.channel = channelSum(channel, out.replicated?.elapsedMs ?? 0)
      }
    }

    if (has('memory')) {
      const m: MemoryResult = { mode, seconds: opts.memorySeconds, everyMs: SAMPLE_EVERY_MS, hosts: [] }
      result.memory.push(m)
      try {
        await pairedAB()
        progress(`${mode}: sustained load ${opts.memorySeconds} s, sampling every agent's memory`)
        const { samples } = await sampling(lab, SAMPLE_EVERY_MS, () => load(targets, shape, opts.memorySeconds, signal))
        checkAbort(signal)
        m.hosts = memoryOf(samples, HOSTS)
      } catch (err) {
        if (err instanceof Aborted) throw err
        m.error = (err as Error).message
      }
    }

    if (has('redis') && redisAvailable && result.sideBySide) {
      try {
        await sideBySideRounds(lab, mode, opts, result.sideBySide, progress, signal)
      } catch (err) {
        if (err instanceof Aborted) throw err
        result.sideBySide.errors.push(`${mode}: ${(err as Error).message}`)
      }
    }
  } finally {
    progress(`${mode}: stopping the lab`)
    await labs.stop(name)
  }
  return out
}

/**
 * The headline table's rounds on one lab: each round runs redis-benchmark with and without
 * -P 16 against redis-server, the replicated primary (SET, GET, INCR one at a time, with the
 * logging channel's byte counters read around each) and the primary alone after a power cut of
 * the backup, then restores redundancy for the next round.
 */
async function sideBySideRounds(
  lab: Lab,
  mode: ReplicationMode,
  opts: BenchOptions,
  sbs: SideBySideResult,
  progress: Progress,
  signal: AbortSignal
): Promise<void> {
  const pairedAB = () => until(lab, 'a primary with b as its backup', paired('a', 'b'), { signal })
  const primary = lab.serviceEndpoints()[0]
  const n = (pipeline: number) => (pipeline > 1 ? sbs.requests.pipelined : sbs.requests.plain)
  const bench = async (target: SbsTarget | 'warm-up', round: number, pipeline: number, tests: string, requests: number) => {
    const ep = target === 'redis' ? redisServer!.ep : target === 'redis-aof' ? redisAof!.ep : primary
    const run = await redisBenchmark(ep, requests, pipeline, signal, 180_000, tests)
    checkAbort(signal)
    const what = `redis-benchmark -t ${tests}${pipeline > 1 ? ` -P ${pipeline}` : ''}`
    if (target === 'warm-up') {
      if (!run.ok) sbs.errors.push(`${mode} round ${round}: the warm-up run (${what}): ${run.error}`)
      return
    }
    if (!run.ok) sbs.errors.push(`${mode} round ${round}: ${what} against ${target}: ${run.error}`)
    sbs.samples.push(...samplesOf(run, mode, target, round))
  }
  for (let round = 1; round <= opts.redisRounds; round++) {
    const tag = `${mode} side by side ${round}/${opts.redisRounds}`
    for (const pipeline of [1, REDIS_PIPELINE]) {
      if (redisServer) {
        progress(`${tag}: redis-server${pipeline > 1 ? ' -P 16' : ''}`)
        await bench('redis', round, pipeline, 'set,get,incr', n(pipeline) * sbs.requests.redisFactor)
      }
      if (redisAof) {
        progress(`${tag}: redis-server appendfsync always${pipeline > 1 ? ' -P 16' : ''}`)
        // an fsync per write makes it a few times slower than the in-memory one: fewer requests keep its runs as short
        await bench('redis-aof', round, pipeline, 'set,get,incr', n(pipeline) * REDIS_AOF_FACTOR)
      }
      await pairedAB()
      if (!opts.redisCold) {
        progress(`${tag}: warming FT Lab replicated up${pipeline > 1 ? ' -P 16' : ''} (not recorded)`)
        await bench('warm-up', round, pipeline, 'set,get,incr', n(pipeline))
      }
      for (const test of ['set', 'get', 'incr'] as const) {
        progress(`${tag}: FT Lab replicated ${test}${pipeline > 1 ? ' -P 16' : ''}`)
        const before = new Map((await lab.status(1000)).map((r) => [r.host, r]))
        await bench('replicated', round, pipeline, test, n(pipeline))
        const after = new Map((await lab.status(1000)).map((r) => [r.host, r]))
        const sent = (rows: typeof before) => rows.get('a')?.status?.channel?.bytesSent
        const b0 = sent(before)
        const b1 = sent(after)
        if (b0 !== undefined && b1 !== undefined && b1 >= b0) {
          const c: SbsChannelSample = { mode, test: test.toUpperCase() as SbsChannelSample['test'], pipeline, round, bytesPerOp: (b1 - b0) / n(pipeline) }
          sbs.channel.push(c)
        }
      }
      // The writes again with the guest keeping them in memory (replies wait for the backup's ack, not the disk's
      // fsync), as the in-memory redis-server does; then back to the default for the rest of the run.
      progress(`${tag}: FT Lab replicated, appendfsync no: set, incr${pipeline > 1 ? ' -P 16' : ''}`)
      try {
        await respCall(primary, ['CONFIG', 'SET', 'appendfsync', 'no'])
        try {
          await bench('replicated-nofsync', round, pipeline, SBS_WRITES.join(',').toLowerCase(), n(pipeline))
        } finally {
          await respCall(primary, ['CONFIG', 'SET', 'appendfsync', 'always'])
        }
      } catch (err) {
        sbs.errors.push(`${mode} round ${round}: FT Lab replicated with appendfsync no: ${(err as Error).message}`)
      }
    }
    progress(`${tag}: power cut of the backup b; waiting for a to go live alone`)
    await lab.powerCut('b')
    await until(lab, 'a live alone', (rows) => rows.get('b')?.state === 'down' && roleOf(rows, 'a') === 'live', { signal })
    for (const pipeline of [1, REDIS_PIPELINE]) {
      if (!opts.redisCold) {
        progress(`${tag}: warming FT Lab alone up${pipeline > 1 ? ' -P 16' : ''} (not recorded)`)
        await bench('warm-up', round, pipeline, 'set,get,incr', n(pipeline))
      }
      progress(`${tag}: FT Lab alone${pipeline > 1 ? ' -P 16' : ''}`)
      await bench('alone', round, pipeline, 'set,get,incr', n(pipeline))
    }
    if (round === opts.redisRounds) break // the lab stops next
    progress(`${tag}: restoring redundancy onto a fresh b`)
    await lab.restore({ timeoutMs: 20_000 })
    await pairedAB()
  }
}

/**
 * Power cuts of the primary, back and forth: after each one, restore redundancy onto a
 * fresh agent in the dead replica's slot, so the next cut hits the other side.
 */
async function failoverRun(
  mode: ReplicationMode,
  opts: BenchOptions,
  shape: LoadShape,
  labs: LabRegistry,
  progress: Progress,
  signal: AbortSignal
): Promise<FailoverResult> {
  const name = 'bench-failover'
  const reps: FailoverRep[] = []
  let watch: FailoverWatch | null = null
  const res = (): FailoverResult => {
    const done = reps.filter((r) => !r.error)
    return {
      mode,
      reps,
      firstOpMs: tail(done.map((r) => r.firstOpMs).filter((x): x is number => x !== null)),
      liveMs: spread(done.map((r) => r.liveMs).filter((x): x is number => x !== null)),
      ...(watch ? { falseFailovers: watch.judge.count } : {}),
      ...(opts.failoverLeadSec === null ? {} : { leadSec: opts.failoverLeadSec })
    }
  }
  progress(`failover (${mode}): starting a lab`)
  const lab = await labs.start({ name, mode })
  watch = new FailoverWatch(lab)
  let primary = 'a'
  let backup = 'b'
  try {
    checkAbort(signal)
    for (let i = 1; i <= opts.failovers; i++) {
      await until(lab, `${primary} primary with ${backup} as its backup`, paired(primary, backup), { signal })
      progress(`failover ${i}/${opts.failovers}: power cut of ${primary} under load`)
      const rep: FailoverRep = { rep: i, cut: primary, survivor: backup, liveMs: null, firstOpMs: null }
      reps.push(rep)
      try {
        // enough after the cut for suspicion, the test-and-set and the clients' retries
        const afterMs = Math.max(3000, DEFAULT_TIMING.suspectMs * 4)
        // The first cut meets two fresh detectors, both coming down from the ceiling while they learn (detector.ts): it
        // waits until they have, and so by default does every cut after a restore, whose survivor is a fresh agent too.
        // --failover-lead cuts sooner after a restore: the survivor then judges its peer on the peer's own report of its
        // pauses, which stands in for the history it lacks, as far as the peer's own life reaches
        const leadMs = i === 1 || opts.failoverLeadSec === null ? SETTLED_LEAD_MS : opts.failoverLeadSec * 1000
        const t = await timedFailover(lab, primary, backup, shape, { leadMs, afterMs, settleMs: 1500, signal })
        rep.liveMs = t.liveMs
        rep.firstOpMs = t.firstOpMs
        rep.timeoutMs = t.timeoutMs
        Object.assign(rep, watch.breakdown(backup, t.cutWall))
        if (t.firstOpMs === null) rep.error = `no operation answered by ${backup} within ${afterMs} ms of the cut`
        progress(
          `failover ${i}: first op on ${backup} ${t.firstOpMs === null ? 'never' : `${t.firstOpMs.toFixed(0)} ms`} after the cut` +
            ` (suspected at ${rep.suspectMs?.toFixed(0) ?? '?'} ms, live at ${rep.goLiveMs?.toFixed(0) ?? '?'} ms)`
        )
      } catch (err) {
        if (err instanceof Aborted) throw err
        rep.error = (err as Error).message
        break
      }
      if (i < opts.failovers) {
        progress(`failover ${i}: restoring redundancy onto a fresh ${primary}`)
        await lab.restore({ timeoutMs: 20_000 })
        ;[primary, backup] = [backup, primary]
      }
    }
    return res()
  } catch (err) {
    if (err instanceof Aborted) throw err
    return { ...res(), error: (err as Error).message }
  } finally {
    watch.off()
    progress('failover: stopping the lab')
    await labs.stop(name)
  }
}

/** `--scale`: the sweep on one replicated rsm lab; tables on stdout (or JSON), the plot into docs/bench/. */
async function scaleMain(opts: BenchOptions, labs: LabRegistry, progress: Progress, signal: AbortSignal): Promise<number> {
  const started = new Date()
  progress('scale: starting a lab (rsm; replicas a and b, disk server)')
  const lab = await labs.start({ name: 'bench-scale', mode: 'rsm' })
  const sweep: ScaleOptions = {
    ...SCALE_DEFAULTS,
    keys: SCALE_DEFAULTS.keys.filter((k) => k <= opts.scaleMaxKeys),
    fillBudgetSeconds: opts.scaleFillSeconds,
    series: opts.scaleSeries
  }
  try {
    const series = await scaleRun(lab, sweep, progress, signal)
    const title = `FT Lab scaling, ${started.toISOString().slice(0, 16)}Z, ${cpus().length} × ${cpus()[0]?.model?.trim() ?? 'CPU'}, load ${loadavg()[0].toFixed(1)}`
    writeScaleSvg(sweep.svg, series, title)
    progress(`scale: wrote ${sweep.svg}`)
    if (opts.json) process.stdout.write(JSON.stringify({ startedAt: started.toISOString(), series }, null, 2) + '\n')
    else process.stdout.write([title, ...renderScale(series), ''].join('\n'))
    return 0
  } finally {
    await labs.stop('bench-scale')
  }
}

/** A saturated lab with no faults for --saturate minutes: every go-live in it is a false failover. */
async function saturateRun(mode: ReplicationMode, opts: BenchOptions, labs: LabRegistry, progress: Progress, signal: AbortSignal): Promise<SaturateResult> {
  const name = 'bench-saturate'
  const bigWriters = opts.saturateBig
  progress(`saturate (${mode}): starting a lab`)
  const lab = await labs.start({ name, mode })
  const watch = new FailoverWatch(lab)
  try {
    await until(lab, 'a primary with b as its backup', paired('a', 'b'), { signal })
    const shape = { clients: opts.saturateClients, keys: 1024, minutes: opts.saturateMinutes, bigWriters, restoreEverySec: opts.saturateRestoreEvery }
    return { mode, ...(await saturatedRun(lab, watch, shape, progress, signal)) }
  } catch (err) {
    if (err instanceof Aborted) throw err
    const empty = { min: NaN, median: NaN, p99: NaN, max: NaN, n: 0 }
    return {
      mode,
      minutes: opts.saturateMinutes,
      clients: opts.saturateClients,
      bigWriters,
      completed: 0,
      opsPerSec: 0,
      bigSets: 0,
      bigBytes: 0,
      falseFailovers: watch.judge.count,
      suspicions: watch.events.filter((e) => e.type === 'suspect').length,
      timeoutMs: empty,
      restores: 0,
      latencyMs: { p50: NaN, p99: NaN, max: NaN },
      notes: [],
      error: (err as Error).message
    }
  } finally {
    watch.off()
    progress('saturate: stopping the lab')
    await labs.stop(name)
  }
}

function mixText(): string {
  const m = DEFAULT_MIX
  const t = m.set + m.get + m.incr
  const pct = (x: number) => `${Math.round((x / t) * 100)}%`
  return `${pct(m.set)} SET, ${pct(m.get)} GET, ${pct(m.incr)} INCR`
}

export async function main(argv: readonly string[]): Promise<number> {
  let opts: BenchOptions
  try {
    opts = parseBenchArgs(argv)
  } catch (err) {
    if (!(err instanceof BenchUsageError)) throw err
    process.stderr.write(`bench: ${err.message}\n\n${USAGE}\n`)
    return 2
  }
  if (opts.help) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  const home = mkdtempSync(join(tmpdir(), 'ftlab-bench-'))
  const labs = new LabRegistry(home)
  const ac = new AbortController()
  const t0 = Date.now()
  const progress: Progress = (line) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`)
  let signals = 0
  const onSignal = (sig: NodeJS.Signals) => {
    signals++
    if (signals === 1) {
      progress(`${sig}: stopping the labs (again to kill them at once)`)
      ac.abort()
      // the run unwinds through its finally blocks; should a step not listen, do it here
      setTimeout(() => void hardExit(), UNWIND_GRACE_MS).unref()
      return
    }
    void hardExit()
  }
  const hardExit = async () => {
    testbedCleanup?.()
    await redisServer?.stop().catch(() => {})
    await redisAof?.stop().catch(() => {})
    await labs.kill().catch(() => {})
    rmSync(home, { recursive: true, force: true })
    process.exit(130)
  }
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
  for (const s of sigs) process.on(s, onSignal)
  if (opts.scale) {
    try {
      return await scaleMain(opts, labs, progress, ac.signal)
    } catch (err) {
      process.stderr.write(`bench --scale: ${(err as Error)?.stack ?? String(err)}\n`)
      return ac.signal.aborted ? 130 : 1
    } finally {
      await labs.stopAll().catch(() => labs.kill())
      rmSync(home, { recursive: true, force: true })
      for (const s of sigs) process.off(s, onSignal)
    }
  }
  try {
    const result = await runBench(opts, labs, progress, ac.signal)
    if (opts.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    else process.stdout.write(renderReport(result))
    return result.interrupted ? 130 : 0
  } catch (err) {
    // after a signal, a step failing because its agents were killed under it is expected
    if (ac.signal.aborted) {
      process.stderr.write(`bench: interrupted (${(err as Error)?.message ?? String(err)})\n`)
      return 130
    }
    process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`)
    return 1
  } finally {
    await labs.stopAll().catch(() => labs.kill())
    await redisServer?.stop().catch(() => {})
    redisServer = null
    await redisAof?.stop().catch(() => {})
    redisAof = null
    testbedCleanup?.()
    rmSync(home, { recursive: true, force: true })
    for (const s of sigs) process.off(s, onSignal)
  }
}

runIfMain(import.meta.url, 'bench', () => main(process.argv.slice(2)))
