// The benchmark's figures as one JSON-able object, and as text tables for the terminal.
import type { TimingConfig } from '../../agent/control/protocol.js'
import type { ReplicationMode } from '../../agent/vmm/types.js'
import { renderTable } from '../cli/table.js'
import type { DeployResult } from './deploy.js'
import type { ChannelFigures, HostMemory, OutputRuleFigures, RunFigures, SaturateFigures } from './measure.js'
import { renderSideBySide, type SideBySideResult } from './side-by-side.js'
import { renderVmmCost, type VmmCostResult } from './vmm-cost.js'

export const BASELINE_HOW =
  'unreplicated = the same lab after a power cut (SIGKILL) of the backup: the primary won the ' +
  "disk server's test-and-set and went live alone, so the same guest on the same code path serves " +
  'the same load without the logging channel and without Output Rule waits (disk writes still go ' +
  'to the disk server, as they do when replicated)'

export interface RoundFigures {
  replicatedOpsPerSec: number
  unreplicatedOpsPerSec: number
  ratio: number
}

export interface ModeResult {
  mode: ReplicationMode
  /** each replicated/unreplicated pair as measured */
  rounds: RoundFigures[]
  /** every replicated run pooled: ops over total time, latency over every op */
  replicated?: RunFigures
  unreplicated?: RunFigures
  /** pooled replicated ops/s over pooled unreplicated ops/s */
  ratio?: number
  channel?: ChannelFigures
  outputRule?: OutputRuleFigures
  error?: string
}

export interface MemoryResult {
  mode: ReplicationMode
  seconds: number
  everyMs: number
  hosts: HostMemory[]
  error?: string
}

export interface FailoverRep {
  rep: number
  cut: string
  survivor: string
  /** power cut → the survivor's status says live (polled) */
  liveMs: number | null
  /** power cut → the first operation the survivor answered */
  firstOpMs: number | null
  /** the survivor's suspicion timeout just before the cut (its failure detector's, learned) */
  timeoutMs?: number | null
  /** power cut → the survivor suspects; then the test-and-set's round trip; power cut → go-live (the survivor's own events) */
  suspectMs?: number | null
  tasMs?: number | null
  goLiveMs?: number | null
  error?: string
}

export interface Spread {
  min: number
  median: number
  max: number
  n: number
}

export interface FailoverResult {
  mode: ReplicationMode
  reps: FailoverRep[]
  firstOpMs: Spread & { p99: number }
  liveMs: Spread
  /** go-lives while the other replica was alive and no fault separated them, over the whole section */
  falseFailovers?: number
  /** --failover-lead: the cuts after the first came this many seconds after a restore (absent: once both detectors had learned) */
  leadSec?: number
  error?: string
}

/** The failover goal of issue 9: p99 of power cut → first answered operation, over at least 20 cuts. */
export const FAILOVER_GOAL = { p99Ms: 150, cuts: 20 }

export type SaturateResult = SaturateFigures & { mode: ReplicationMode; error?: string }
export interface BenchResult {
  startedAt: string
  elapsedMs: number
  /** loadAvg: the 1-minute load average when the run began and when it ended (other processes compete for the cores) */
  machine: { node: string; platform: string; cpus: number; cpuModel: string; loadAvg: [number, number] }
  load: { clients: number; keys: number; seconds: number; warmupSeconds: number; rounds: number; mix: string }
  timing: TimingConfig
  baseline: string
  modes: ModeResult[]
  memory: MemoryResult[]
  failover?: FailoverResult
  saturate?: SaturateResult
  /** the headline: redis-benchmark against redis-server and FT Lab side by side, and the goals judged */
  sideBySide?: SideBySideResult
  deploy?: DeployResult
  /** the guest and the VMM alone, per command (no lab) */
  vmm?: VmmCostResult
  interrupted: boolean
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-')
const ms = (n: number | null | undefined, d = 1) => (n === null || n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(d))
const mib = (b: number) => (b > 0 ? (b / 1048576).toFixed(1) : '-')

export function renderReport(r: BenchResult): string {
  const out: string[] = []
  const localLab = r.modes.length > 0 || r.memory.length > 0 || r.failover !== undefined || r.saturate !== undefined || r.sideBySide !== undefined
  out.push(`FT Lab benchmark: ${localLab ? 'embedded local lab on 127.0.0.1, ' : ''}${r.machine.cpus} × ${r.machine.cpuModel}, Node ${r.machine.node}`)
  if (localLab) {
    out.push(
      `load: ${r.load.clients} closed-loop clients, ${r.load.keys} keys (${r.load.mix}), ${r.load.seconds} s per measured run after ${r.load.warmupSeconds} s warm-up`,
      `timing: heartbeat ${r.timing.heartbeatMs} ms, suspect after ${r.timing.suspectMs} ms; 1-min load average ${r.machine.loadAvg[0].toFixed(2)} at the start, ${r.machine.loadAvg[1].toFixed(2)} at the end`
    )
  } else out.push(`1-min load average ${r.machine.loadAvg[0].toFixed(2)} at the start, ${r.machine.loadAvg[1].toFixed(2)} at the end`)
  if (r.interrupted) out.push('INTERRUPTED: the figures below are partial')
  if (r.sideBySide) out.push('', ...renderSideBySide(r.sideBySide, [...new Set(r.sideBySide.samples.map((x) => x.mode))]))

  const tp = r.modes.filter((m) => m.replicated || m.unreplicated || m.error)
  if (tp.length) {
    out.push('', `Throughput (ops/s over ${r.load.rounds} interleaved round(s) per mode; client latency p50/p99 in ms)`)
    out.push(
      renderTable(
        ['MODE', 'REPLICATED', 'p50/p99', 'UNREPLICATED', 'p50/p99', 'RATIO', 'PER ROUND', 'NOTE'],
        tp.map((m) => [
          m.mode,
          m.replicated ? int(m.replicated.opsPerSec) : '-',
          m.replicated ? `${ms(m.replicated.latencyMs.p50)}/${ms(m.replicated.latencyMs.p99)}` : '-',
          m.unreplicated ? int(m.unreplicated.opsPerSec) : '-',
          m.unreplicated ? `${ms(m.unreplicated.latencyMs.p50)}/${ms(m.unreplicated.latencyMs.p99)}` : '-',
          m.ratio !== undefined ? m.ratio.toFixed(2) : '-',
          m.rounds.map((x) => x.ratio.toFixed(2)).join(' '),
          m.error ? `FAILED: ${m.error}` : runNote(m)
        ])
      )
    )
    out.push(wrap(`baseline: ${r.baseline}.`))

    const ch = tp.filter((m) => m.channel)
    if (ch.length) {
      out.push('', 'Logging channel, replicated runs (from the agents: link byte counters / completed client ops)')
      out.push(
        renderTable(
          ['MODE', 'BYTES/OP', 'ENTRIES/OP', 'ACK BYTES/OP', 'MB/s', 'ENTRIES'],
          ch.map((m) => [
            m.mode,
            int(m.channel!.bytesPerOp),
            m.channel!.entriesPerOp.toFixed(2),
            int(m.channel!.ackBytesPerOp),
            m.channel!.mbPerSec.toFixed(2),
            int(m.channel!.entriesSent)
          ])
        )
      )
    }
    const or = tp.filter((m) => m.outputRule)
    if (or.length) {
      out.push('', "Output Rule hold time, first replicated run (the primary's figures: output produced → released on the backup's ack, ms)")
      out.push(
        renderTable(
          ['MODE', 'RELEASED', 'p50', 'p99', 'max'],
          or.map((m) => [m.mode, int(m.outputRule!.released), ms(m.outputRule!.p50Ms, 2), ms(m.outputRule!.p99Ms, 2), ms(m.outputRule!.maxMs, 2)])
        )
      )
      out.push('(p50/p99 over the last 4096 released outputs, max since the agent started)')
    }
  }

  if (r.failover) {
    const f = r.failover
    out.push(
      '',
      `Failover (${f.mode}): power cut of the primary (SIGKILL) → first client operation answered by the survivor` +
        (f.leadSec === undefined ? '' : `; after the first, each cut ${f.leadSec} s after the restore before it`)
    )
    if (f.reps.length) {
      out.push(
        renderTable(
          ['REP', 'CUT', 'SURVIVOR', 'TIMEOUT ms', 'SUSPECT ms', 'TAS ms', 'GO-LIVE ms', 'FIRST OP ms', 'NOTE'],
          f.reps.map((x) => [
            String(x.rep),
            x.cut,
            x.survivor,
            ms(x.timeoutMs, 0),
            ms(x.suspectMs, 0),
            ms(x.tasMs, 0),
            ms(x.goLiveMs ?? x.liveMs, 0),
            ms(x.firstOpMs, 0),
            x.error ?? ''
          ])
        )
      )
      const g = f.firstOpMs
      const met = g.n >= FAILOVER_GOAL.cuts && g.p99 <= FAILOVER_GOAL.p99Ms && (f.falseFailovers ?? 0) === 0
      out.push(
        `first op after the cut: min ${ms(g.min, 0)} / median ${ms(g.median, 0)} / p99 ${ms(g.p99, 0)} / max ${ms(g.max, 0)} ms over ${g.n} cuts` +
          `; goal p99 ≤ ${FAILOVER_GOAL.p99Ms} ms over ≥ ${FAILOVER_GOAL.cuts} cuts: ${met ? 'met' : 'NOT met'}`
      )
      if (f.falseFailovers !== undefined) out.push(`false failovers during the section: ${f.falseFailovers}`)
      out.push(
        `(all ms after the cut except TIMEOUT, the survivor's learned suspicion timeout before it (at most ${r.timing.suspectMs}), and TAS, the test-and-set's round trip;`,
        ' p99 is the nearest rank: over fewer than 100 cuts, the largest)'
      )
    }
    if (f.error) out.push(`FAILED: ${f.error}`)
  }

  if (r.saturate) {
    const x = r.saturate
    out.push(
      '',
      `Saturated run (${x.mode}, ${x.minutes} min, ${x.churn ? `a power cut of the backup and a restore every ${x.churn.every} s` : 'no faults'}): ${x.clients} clients on small values + ${x.bigWriters} writing 16 KiB to 1 MiB values`
    )
    out.push(
      renderTable(
        ['OPS/s', 'p50/p99/max ms', 'BIG SETs', 'SUSPICIONS', 'FALSE FAILOVERS', 'TIMEOUT min/median/p99/max ms'],
        [
          [
            int(x.opsPerSec),
            `${ms(x.latencyMs.p50)}/${ms(x.latencyMs.p99)}/${ms(x.latencyMs.max, 0)}`,
            `${int(x.bigSets)} (${mib(x.bigBytes)} MiB)`,
            String(x.suspicions),
            String(x.falseFailovers),
            `${ms(x.timeoutMs.min, 0)}/${ms(x.timeoutMs.median, 0)}/${ms(x.timeoutMs.p99, 0)}/${ms(x.timeoutMs.max, 0)}`
          ]
        ]
      )
    )
    out.push(`(TIMEOUT: both replicas' learned suspicion timeouts, sampled every second; ${x.timeoutMs.n} samples)`)
    if (x.churn)
      out.push(
        `churn: ${x.churn.restores} restores (${x.churn.failed} failed); suspicions between a restore's end and the next cut, with both replicas up: ${x.churn.suspicions}` +
          ' (FALSE FAILOVERS forgives what follows a fault by 5 s, so it cannot see these)'
      )
    for (const n of x.notes) out.push(`note: ${n}`)
    if (x.error) out.push(`FAILED: ${x.error}`)
  }

  for (const m of r.memory) {
    out.push('', `Memory under sustained load (${m.mode}, ${m.seconds} s, a sample every ${m.everyMs} ms; MiB)`)
    if (m.hosts.length) {
      out.push(
        renderTable(
          ['HOST', 'SAMPLES', 'RSS FIRST', 'RSS LAST', 'RSS MAX', 'MAX 2nd/1st HALF', 'HEAP FIRST', 'HEAP LAST', 'GUEST'],
          m.hosts.map((h) => [
            h.host,
            String(h.samples),
            mib(h.rssFirst),
            mib(h.rssLast),
            mib(h.rssMax),
            h.secondHalfOverFirst ? h.secondHalfOverFirst.toFixed(2) : '-',
            mib(h.heapFirst),
            mib(h.heapLast),
            h.guestLast ? `${(h.guestLast / 1024).toFixed(0)} KiB` : '-'
          ])
        )
      )
      out.push('(MAX 2nd/1st HALF near 1.00: RSS levelled off; well above 1: still growing at the end of the run)')
    }
    if (m.error) out.push(`FAILED: ${m.error}`)
  }

  if (r.vmm) out.push('', ...renderVmmCost(r.vmm))
  if (r.deploy) out.push('', ...renderDeploy(r.deploy))
  out.push('', `total ${(r.elapsedMs / 1000).toFixed(1)} s`)
  return out.join('\n') + '\n'
}

const spreadText = (s: Spread | undefined) => (s && s.n > 0 ? `${ms(s.min, 0)} / ${ms(s.median, 0)} / ${ms(s.max, 0)}` : '-')

export function renderDeploy(d: DeployResult): string[] {
  const out = ["Deploy over SSH to the testbed: three hosts in parallel, each with a fresh SSH connection, up to the agent's ready line"]
  if (d.skipped) return [...out, `skipped: ${d.skipped}`]
  const kib = d.bundleBytes ? `${(d.bundleBytes / 1024).toFixed(0)} KiB` : '?'
  out.push(
    `cold: nothing of FT Lab on the hosts, the agent bundle (${kib}) is uploaded to each; warm: the same bundle already there (sha256 equal), upload skipped`
  )
  if (d.runtime && 'version' in d.runtime) {
    out.push(
      `${d.runtime.host} has no Node: cold deploys there include uploading Node v${d.runtime.version} (${(d.runtime.bytes / 1048576).toFixed(0)} MiB${d.runtime.stripped ? ' stripped' : ''}${d.runtime.zstBytes ? `, ${(d.runtime.zstBytes / 1048576).toFixed(0)} MiB on the wire to a host with zstd: the cache's zstd -19 copy` : d.runtime.gzBytes ? `, ${(d.runtime.gzBytes / 1048576).toFixed(0)} MiB on the wire: the cache's gzip -9 copy` : ''}, sha256 checked on the host); the other hosts run their own Node`
    )
  } else if (d.runtime) out.push(`note: ${d.runtime.note}`)
  if (d.phases.length) {
    const hosts = d.hosts.map((h) => h.id)
    out.push(
      renderTable(
        ['PHASE', 'REPS', 'ALL 3 HOSTS ms min/median/max', ...hosts.map((h) => `${h} median ms`), 'UPLOADS (bundle, runtime)'],
        d.phases.map((p) => [
          p.phase,
          String(p.wallMs.n),
          spreadText(p.wallMs),
          ...hosts.map((h) => ms(p.perHost.find((x) => x.host === h)?.totalMs.median, 0)),
          p.perHost.map((x) => `${x.host} ${x.uploaded.agent},${x.uploaded.runtime}`).join('  ')
        ])
      )
    )
    const steps: string[][] = []
    for (const p of d.phases) {
      for (const h of p.perHost) {
        steps.push([p.phase, h.host, ...(['connect', 'detect', 'runtime', 'upload', 'start'] as const).map((s) => ms(h.stepsMs[s]?.median, 0))])
      }
    }
    out.push(
      '',
      "Deploy steps, median ms (connect: SSH handshake; detect: host facts and hashes of what is there; runtime: Node check or upload; upload: bundle upload, beside the runtime's; start: agent up to its ready line)"
    )
    out.push(renderTable(['PHASE', 'HOST', 'CONNECT', 'DETECT', 'RUNTIME', 'UPLOAD', 'START'], steps))
  }
  if (d.error) out.push(`FAILED: ${d.error}`)
  return out
}

function runNote(m: ModeResult): string {
  const bad = [m.replicated, m.unreplicated].filter((x): x is RunFigures => !!x).reduce((a, x) => a + x.failed + x.unknown, 0)
  return bad ? `${bad} ops failed or unanswered` : ''
}

function wrap(text: string, width = 100): string {
  const lines: string[] = []
  let line = ''
  for (const w of text.split(' ')) {
    if (line && line.length + 1 + w.length > width) {
      lines.push(line)
      line = '  ' + w
    } else line = line ? `${line} ${w}` : w
  }
  if (line) lines.push(line)
  return lines.join('\n')
}
