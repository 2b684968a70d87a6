// `ftlab drill`: run a drill headless, for operators' CI. The verdict is the exit code.
//   ftlab drill NAME|FILE [--repeat N] [--seed S] [--lab local|simulated|remote [NAME]] [--etcd URLS]
//   ftlab drill --list          the built-in drills
//   ftlab drill --check FILE    check a scenario file without running it
import { existsSync, readFileSync } from 'node:fs'
import type { DrillRun } from '../api/contract.js'
import { writeReport } from '../report/report.js'
import { ConsoleBackend } from '../console/console-backend.js'
import { DrillLibrary } from '../drill/library.js'
import { fmtMs } from '../drill/runner.js'
import { checkScenario, type Scenario } from '../drill/scenario.js'
import type { CliIo } from './ftlab.js'

export const DRILL_USAGE = `usage:
  ftlab drill NAME|FILE [--repeat N] [--seed S] [--lab local|simulated|remote [NAME]] [--etcd URLS]
  ftlab drill --list              the built-in drills and what each shows
  ftlab drill --check FILE        check a scenario file (errors name file:line:column and field)
a drill starts its own local or simulated lab (stop yours first), or runs on the deployed remote lab NAME;
repeats draw fault timing from the printed seed; exit code: 0 every repeat passed, 1 a verdict failed, 2 bad input
the scenario format: docs/drills.md`

const LABS = ['local', 'simulated', 'remote'] as const

export async function runDrillCli(argv: readonly string[], io: CliIo, opts: { drillsDir?: string } = {}): Promise<number> {
  const usage = (msg: string): number => {
    io.err(`ftlab drill: ${msg}\n\n${DRILL_USAGE}\n`)
    return 2
  }
  let repeat = 1
  let seed: number | null = null
  let lab: (typeof LABS)[number] | null = null
  let remote: string | undefined
  let etcd: string[] | undefined
  let list = false
  let check = false
  const args: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = (): string => {
      const v = argv[++i]
      if (v === undefined || v.startsWith('--')) throw new UsageProblem(`${a} needs a value`)
      return v
    }
    try {
      if (a === '--help' || a === '-h' || a === 'help') {
        io.out(DRILL_USAGE + '\n')
        return 0
      } else if (a === '--list') list = true
      else if (a === '--check') check = true
      else if (a === '--repeat') repeat = intArg(a, value(), 1, 100)
      else if (a === '--seed') seed = intArg(a, value(), 0, 2 ** 32 - 1)
      else if (a === '--etcd') etcd = value().split(',')
      else if (a === '--lab') {
        const k = value()
        if (!(LABS as readonly string[]).includes(k)) throw new UsageProblem(`--lab must be one of ${LABS.join(', ')} (got "${k}")`)
        lab = k as (typeof LABS)[number]
        if (lab === 'remote') remote = value()
      } else if (a.startsWith('--')) throw new UsageProblem(`unknown option ${a}`)
      else args.push(a)
    } catch (err) {
      if (err instanceof UsageProblem) return usage(err.message)
      throw err
    }
  }
  let library: DrillLibrary
  try {
    library = new DrillLibrary(opts.drillsDir)
  } catch (err) {
    io.err(`ftlab drill: ${(err as Error).message}\n`)
    return 2
  }
  if (list) {
    for (const d of library.list())
      io.out(`${d.name.padEnd(28)} ${d.title}  [${d.labs.join(', ')}]${d.experiments.length ? `  EXPERIMENT: ${d.experiments.join(', ')}` : ''}\n`)
    return 0
  }
  if (args.length !== 1) return usage(args.length ? `one drill at a time (got ${args.join(', ')})` : 'name a built-in drill or a scenario file')
  const what = args[0]
  let sc: Scenario
  if (library.has(what) && !existsSync(what)) {
    sc = library.load(what)
  } else {
    if (!existsSync(what)) return usage(`'${what}' is neither a built-in drill (ftlab drill --list) nor a file`)
    const r = checkScenario(readFileSync(what, 'utf8'), what)
    if (!r.ok) {
      for (const e of r.errors) io.err(`${e.message}\n`)
      return 2
    }
    sc = r.scenario
  }
  if (check) {
    io.out(`${what}: ok (${sc.title}: ${sc.steps.length} steps, ${sc.expect.length} expectations)\n`)
    return 0
  }
  const drawnSeed = seed ?? Math.floor(Math.random() * 2 ** 31)
  io.out(`drill ${sc.name}: ${sc.title}\nseed ${drawnSeed} (repeat it with --seed ${drawnSeed})\n`)
  const backend = new ConsoleBackend({ home: io.home, reattach: false, drills: { dir: opts.drillsDir, etcd } })
  let shown = 0
  let current = ''
  const off = backend.subscribe((ev) => {
    if (ev.topic !== 'drill') return
    const r = ev.run
    if (r.id !== current) {
      current = r.id
      shown = 0
    }
    for (const l of r.log.slice(shown)) io.out(`${fmtTime(l.t - r.startedAt)}  ${l.text}\n`)
    shown = r.log.length
  })
  const stop = () => void backend.drills.stop()
  process.once('SIGINT', stop)
  let runs: DrillRun[]
  try {
    const text = library.has(what) && !existsSync(what) ? undefined : sc.source
    const started = backend.drills.start(
      {
        ...(text === undefined ? { name: what } : { text }),
        seed: drawnSeed,
        repeats: repeat,
        ...(lab ? { lab } : {}),
        ...(remote ? { remote } : {})
      },
      text === undefined ? undefined : what
    )
    runs = await started.done
  } catch (err) {
    io.err(`ftlab drill: ${(err as Error).message}\n`)
    return 2
  } finally {
    process.off('SIGINT', stop)
    off()
    await backend.close()
  }
  for (const r of runs) io.out(verdictText(r))
  // one report per recording (the runs of a multi-mode drill can share one)
  for (const rec of new Set(runs.map((r) => r.recording).filter((p): p is string => p !== null))) {
    try {
      io.out(`report: ${await writeReport(rec)}\n`)
    } catch (err) {
      io.err(`ftlab drill: the report of ${rec} could not be written: ${(err as Error).message}\n`)
    }
  }
  const passed = runs.filter((r) => r.state === 'passed').length
  if (runs.length > 1) io.out(`${passed} of ${repeat} repeats passed (seed ${drawnSeed})\n`)
  return passed === repeat ? 0 : 1
}

export function verdictText(r: DrillRun): string {
  const lines = [`── ${r.title} (repeat ${r.repeat} of ${r.repeats}): ${r.verdict?.summary ?? r.state}`]
  for (const e of r.expectations) lines.push(`   ${e.ok === true ? '✓' : e.ok === false ? '✗' : '·'} ${e.text}${e.detail ? `: ${e.detail}` : ''}`)
  if (r.verdict) lines.push(`   ${r.verdict.explanation}`)
  if (r.recording) lines.push(`   recorded in ${r.recording}`)
  return lines.join('\n') + '\n'
}

class UsageProblem extends Error {}

function intArg(opt: string, v: string, lo: number, hi: number): number {
  const n = Number(v)
  if (!/^\d+$/.test(v) || n < lo || n > hi) throw new UsageProblem(`${opt} must be an integer from ${lo} to ${hi} (got "${v}")`)
  return n
}

function fmtTime(ms: number): string {
  return fmtMs(Math.max(0, Math.round(ms / 100) * 100)).padStart(6)
}
