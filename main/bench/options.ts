// The benchmark's command line. Kept apart from the `ftlab` grammar on purpose: the
// benchmark is a measuring tool with its own knobs, not a lab command, and its defaults are
// chosen to finish in a minute or two on a small machine.
import { learningMs } from '../../agent/replica/detector.js'
import type { ReplicationMode } from '../../agent/vmm/types.js'
import { DEFAULT_TIMING } from '../lab/lab.js'

/**
 * How long after a lab starts or a restore the failover section cuts by default: until both fresh failure detectors
 * have learned their peer (detector.ts), and a second more.
 */
export const SETTLED_LEAD_MS = learningMs(DEFAULT_TIMING.heartbeatMs) + 1000

/** the scaling sweep's three series (`--scale-series`) */
export const SCALE_SERIES = ['clients', 'values', 'keys'] as const
export type ScaleSeriesName = (typeof SCALE_SERIES)[number]
export const SECTIONS = ['throughput', 'memory', 'failover', 'redis', 'vmm', 'deploy', 'saturate'] as const
export type Section = (typeof SECTIONS)[number]
const ALL_MODES: readonly ReplicationMode[] = ['rsm', 'state-transfer']

export interface BenchOptions {
  /** seconds of each measured throughput run (replicated, then unreplicated) */
  seconds: number
  /** seconds of load before each measurement, not counted */
  warmupSeconds: number
  /** replicated/unreplicated pairs, interleaved so that a change in the machine's load hits both */
  rounds: number
  clients: number
  keys: number
  modes: ReplicationMode[]
  sections: Section[]
  /** seconds of the sustained run whose memory is sampled */
  memorySeconds: number
  /** how many power cuts the failover section makes */
  failovers: number
  /** seconds from a restore to the next cut in the failover section (null: as long as the first cut waits) */
  failoverLeadSec: number | null
  /** minutes of the saturated run (section 'saturate') that counts false failovers */
  saturateMinutes: number
  /** clients of the saturated run on small values (big-value writers come on top) */
  saturateClients: number
  /** clients of the saturated run that write values of 16 KiB to 1 MiB */
  saturateBig: number
  /** seconds between power cuts of the backup, each followed by a restore, during the saturated run (0: none) */
  saturateRestoreEvery: number
  /** -n for each redis-benchmark run against FT Lab (redis-server gets ten times as many) */
  redisRequests: number
  /** no unrecorded warm-up run before FT Lab's recorded ones in the side-by-side table */
  redisCold: boolean
  /** rounds of the side-by-side table; each figure is the median over them */
  redisRounds: number
  /** cold and warm deploys each in the deploy section */
  deployReps: number
  /** the deploy section uses a testbed that is already up (and leaves it up) instead of skipping */
  deployOnUpTestbed: boolean
  /** run the scaling sweep (clients, value sizes, guest state) instead of the sections */
  scale: boolean
  /** the largest guest state of the sweep, in keys */
  scaleMaxKeys: number
  /** seconds a fill of the guest's state may take before the sweep stops growing it */
  scaleFillSeconds: number
  /** which of the sweep's series run (all by default): a profile or a rerun of one need not wait for the others */
  scaleSeries: ScaleSeriesName[]
  json: boolean
  help: boolean
}

export const DEFAULTS: BenchOptions = {
  seconds: 5,
  warmupSeconds: 2,
  rounds: 2,
  clients: 8,
  keys: 64,
  modes: [...ALL_MODES],
  // the saturated run lasts minutes: only on request (--saturate or --only saturate)
  sections: SECTIONS.filter((s) => s !== 'saturate'),
  memorySeconds: 12,
  failovers: 3,
  failoverLeadSec: null,
  saturateMinutes: 3,
  saturateClients: 64,
  saturateBig: 2,
  saturateRestoreEvery: 0,
  redisRequests: 10_000,
  redisCold: false,
  redisRounds: 3,
  deployReps: 3,
  deployOnUpTestbed: false,
  scale: false,
  scaleMaxKeys: 1_000_000,
  scaleFillSeconds: 240,
  scaleSeries: [...SCALE_SERIES],
  json: false,
  help: false
}

export class BenchUsageError extends Error {}

/** Cuts of the failover section when it runs alone: enough for a p99 worth the name. */
export const ONLY_FAILOVER_CUTS = 20

export const USAGE = `usage: npm run bench -- [options]

Measures the embedded local lab (three agent processes on 127.0.0.1) and prints a table;
the deploy section times deploying the agent over SSH to the network-namespace testbed.

  --seconds N          length of each measured throughput run (default ${DEFAULTS.seconds})
  --warmup N           seconds of unmeasured load before measuring (default ${DEFAULTS.warmupSeconds})
  --rounds N           replicated/unreplicated pairs per mode, interleaved (default ${DEFAULTS.rounds})
  --clients C          concurrent load clients (default ${DEFAULTS.clients})
  --keys K             key space of the load (default ${DEFAULTS.keys})
  --modes LIST         replication modes, comma separated: rsm,state-transfer (default both)
  --sections LIST      any of ${SECTIONS.join(',')} (default all)
  --only LIST          same as --sections
  --memory-seconds N   length of the sustained run sampled for memory (default ${DEFAULTS.memorySeconds})
  --failovers N        power cuts in the failover section (default ${DEFAULTS.failovers}; ${ONLY_FAILOVER_CUTS} with --only failover)
  --failover-lead S    seconds from a restore to the next power cut in the failover section (default: as long as
                       the first cut waits, until both fresh failure detectors have learned: ${SETTLED_LEAD_MS / 1000} s with the default
                       timing); sooner, the restored survivor judges its peer on the peer's own report of its pauses
  --saturate MIN       a saturated run of MIN minutes (${DEFAULTS.saturateClients} clients and big values, no faults) that
                       counts false failovers and the failure detectors' timeouts; alone unless
                       --only/--sections names more (default ${DEFAULTS.saturateMinutes} with --only saturate)
  --saturate-clients C clients of the saturated run (default ${DEFAULTS.saturateClients})
  --saturate-big N     writers of 16 KiB to 1 MiB values besides them, a SET every 100 ms each (default ${DEFAULTS.saturateBig})
  --saturate-restore-every S  during the saturated run, every S seconds a power cut of the backup and a restore onto a
                       fresh agent: counts the suspicions between a restore and the next cut (fresh failure detectors
                       judging a saturated peer); default off
  --redis-requests N   -n of redis-benchmark against FT Lab; 4 × N with -P 16; redis-server gets 10 × (default ${DEFAULTS.redisRequests})
  --redis-rounds N     rounds of the side-by-side table, each figure their median (default ${DEFAULTS.redisRounds})
  --redis-cold         measure FT Lab's agents without the unrecorded warm-up run of the same size before each
                       recorded one (a fresh agent's first second of load runs before V8 has compiled its hot paths)
  --deploy-reps N      cold and warm deploys each in the deploy section (default ${DEFAULTS.deployReps})
  --deploy-on-up-testbed  where the testbed is already up, measure on it (repaired, h2's Node hidden for the
                       run, then given back as it was and left up) instead of skipping the deploy section
  --scale              instead of the sections: throughput, p99 and backup lag as clients (1..256), values
                       (16 B..1 MiB) and the guest's state (1k..1M keys) grow; writes docs/bench/scale.svg
  --scale-max-keys N   the largest state of the sweep (default ${DEFAULTS.scaleMaxKeys})
  --scale-fill-seconds N  stop growing the state when a fill would take longer (default ${DEFAULTS.scaleFillSeconds})
  --scale-series LIST  which series of the sweep: ${SCALE_SERIES.join(',')} (default all)
  --json               print the figures as JSON on stdout (progress stays on stderr)
  -h, --help           this text

The redis section is the headline table: redis-benchmark against redis-server (started by the
benchmark on a free loopback port), FT Lab replicated and FT Lab alone, side by side in each
round, with every goal judged MET or NOT MET. It runs where redis-benchmark is installed
(Debian: redis-tools); without redis-server the FT Lab columns are still measured.
The deploy section runs only as root where network namespaces work and the testbed is not
already up (it brings the testbed up and down itself; --deploy-on-up-testbed uses one that is
up); elsewhere the report says why not. The vmm section needs no lab: the guest and the VMM alone, in this
process, per command (primary execute, backup replay), a floor under the lab's cost per request.`

type Kind = 'number' | 'int' | 'list' | 'flag'
const OPTS: Record<string, { key: keyof BenchOptions; kind: Kind; min?: number; max?: number; choices?: readonly string[] }> = {
  seconds: { key: 'seconds', kind: 'number', min: 0.5, max: 3600 },
  warmup: { key: 'warmupSeconds', kind: 'number', min: 0, max: 600 },
  rounds: { key: 'rounds', kind: 'int', min: 1, max: 50 },
  clients: { key: 'clients', kind: 'int', min: 1, max: 1000 },
  keys: { key: 'keys', kind: 'int', min: 1, max: 100_000 },
  modes: { key: 'modes', kind: 'list', choices: ALL_MODES },
  sections: { key: 'sections', kind: 'list', choices: SECTIONS },
  only: { key: 'sections', kind: 'list', choices: SECTIONS },
  'memory-seconds': { key: 'memorySeconds', kind: 'number', min: 1, max: 86_400 },
  failovers: { key: 'failovers', kind: 'int', min: 1, max: 100 },
  'failover-lead': { key: 'failoverLeadSec', kind: 'number', min: 0.5, max: 600 },
  saturate: { key: 'saturateMinutes', kind: 'number', min: 0.1, max: 600 },
  'saturate-clients': { key: 'saturateClients', kind: 'int', min: 1, max: 1000 },
  'saturate-big': { key: 'saturateBig', kind: 'int', min: 0, max: 64 },
  'saturate-restore-every': { key: 'saturateRestoreEvery', kind: 'number', min: 1, max: 3600 },
  'redis-requests': { key: 'redisRequests', kind: 'int', min: 100, max: 10_000_000 },
  'redis-rounds': { key: 'redisRounds', kind: 'int', min: 1, max: 50 },
  'redis-cold': { key: 'redisCold', kind: 'flag' },
  'deploy-reps': { key: 'deployReps', kind: 'int', min: 1, max: 50 },
  'deploy-on-up-testbed': { key: 'deployOnUpTestbed', kind: 'flag' },
  scale: { key: 'scale', kind: 'flag' },
  'scale-max-keys': { key: 'scaleMaxKeys', kind: 'int', min: 1000, max: 10_000_000 },
  'scale-fill-seconds': { key: 'scaleFillSeconds', kind: 'number', min: 1, max: 86_400 },
  'scale-series': { key: 'scaleSeries', kind: 'list', choices: SCALE_SERIES },
  json: { key: 'json', kind: 'flag' },
  help: { key: 'help', kind: 'flag' }
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const out: BenchOptions = { ...DEFAULTS, modes: [...DEFAULTS.modes], sections: [...DEFAULTS.sections] }
  const seen = new Set<string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '-h') {
      out.help = true
      continue
    }
    if (!arg.startsWith('--')) throw new BenchUsageError(`unexpected argument '${arg}'`)
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq < 0 ? undefined : eq)
    const spec = OPTS[name]
    if (!spec) throw new BenchUsageError(`unknown option --${name}`)
    if (seen.has(spec.key)) throw new BenchUsageError(`--${name} given twice`)
    seen.add(spec.key)
    if (spec.kind === 'flag') {
      if (eq >= 0) throw new BenchUsageError(`--${name} takes no value`)
      ;(out[spec.key] as boolean) = true
      continue
    }
    let text: string | undefined
    if (eq >= 0) text = arg.slice(eq + 1)
    else {
      text = argv[++i]
      if (text === undefined || text.startsWith('--')) throw new BenchUsageError(`--${name} needs a value`)
    }
    if (spec.kind === 'list') {
      const items = text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
      if (items.length === 0) throw new BenchUsageError(`--${name} needs at least one of ${spec.choices!.join(', ')}`)
      for (const it of items) if (!spec.choices!.includes(it)) throw new BenchUsageError(`--${name}: '${it}' is not one of ${spec.choices!.join(', ')}`)
      // keep the canonical order, so the report reads the same whatever order was typed
      ;(out[spec.key] as string[]) = spec.choices!.filter((c) => items.includes(c))
      continue
    }
    const n = Number(text)
    if (text.trim() === '' || !Number.isFinite(n) || (spec.kind === 'int' && !Number.isInteger(n))) {
      throw new BenchUsageError(`--${name} must be ${spec.kind === 'int' ? 'a whole number' : 'a number'}, got '${text}'`)
    }
    if (n < spec.min! || n > spec.max!) throw new BenchUsageError(`--${name} must be from ${spec.min} to ${spec.max}, got ${n}`)
    ;(out[spec.key] as number) = n
  }
  if (seen.has('saturateMinutes') && !out.sections.includes('saturate')) out.sections = seen.has('sections') ? [...out.sections, 'saturate'] : ['saturate']
  if (!seen.has('failovers') && out.sections.length === 1 && out.sections[0] === 'failover') out.failovers = ONLY_FAILOVER_CUTS
  return out
}
