// `npm run sim -- --seeds N [--guest kv|register] [--seed S] [--from F]`: runs any number of
// seeded simulations (sim/run.mjs bundles this file and runs it) and, for a failing seed,
// prints the whole report and the command that replays it.
import { parseArgs } from 'node:util'
import { SimFailure } from './checker.js'
import { MUTANTS, type MutantName } from './mutants.js'
import { replayCommand, runSimulation, type GuestKind, type SimStats } from './simulator.js'

const USAGE = `usage: npm run sim -- [--seeds N] [--from F] [--seed S] [--guest register|kv] [--keep-going] [--mutant ${Object.keys(MUTANTS).join('|')}]`

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt
  if (!/^\d+$/.test(v)) throw new Error(`--${name} must be a whole number, got ${JSON.stringify(v)}\n${USAGE}`)
  return Number(v)
}

function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      seeds: { type: 'string' },
      from: { type: 'string' },
      seed: { type: 'string' },
      guest: { type: 'string' },
      mutant: { type: 'string' },
      'keep-going': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    },
    strict: true
  })
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const guest = (values.guest ?? 'register') as GuestKind
  if (guest !== 'register' && guest !== 'kv') throw new Error(`--guest must be register or kv, got ${JSON.stringify(values.guest)}\n${USAGE}`)
  const mutant = values.mutant as MutantName | undefined
  if (mutant !== undefined && !(mutant in MUTANTS))
    throw new Error(`--mutant must be one of ${Object.keys(MUTANTS).join(', ')}, got ${JSON.stringify(mutant)}\n${USAGE}`)
  const seeds =
    values.seed !== undefined
      ? [positiveInt('seed', values.seed, 0)]
      : Array.from({ length: positiveInt('seeds', values.seeds, 100) }, (_, i) => positiveInt('from', values.from, 1000) + i)
  const started = Date.now()
  const failed: number[] = []
  const sum: Partial<Record<keyof SimStats, number>> = {}
  for (const [i, seed] of seeds.entries()) {
    try {
      const st = runSimulation({ seed, guest, mutant })
      for (const [k, v] of Object.entries(st)) if (typeof v === 'number' && k !== 'seed') sum[k as keyof SimStats] = (sum[k as keyof SimStats] ?? 0) + v
    } catch (err) {
      failed.push(seed)
      console.error(err instanceof SimFailure ? err.message : (err as Error).stack)
      if (!values['keep-going']) break
    }
    if ((i + 1) % 100 === 0) console.log(`${i + 1}/${seeds.length} seeds, ${failed.length} failed, ${Math.round((Date.now() - started) / 1000)} s`)
  }
  const figures = Object.entries(sum)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
  if (failed.length) {
    console.error(`\n${failed.length} failing seed(s) of guest ${guest}: ${failed.join(', ')}`)
    for (const s of failed) console.error(`replay: ${replayCommand(s, guest, mutant)}`)
    return 1
  }
  console.log(`${seeds.length} seeds of guest ${guest} passed in ${((Date.now() - started) / 1000).toFixed(1)} s (${figures})`)
  const secs = (Date.now() - started) / 1000
  console.log(
    `end of run: final guest states compared in ${sum.finalStatesCompared ?? 0} of ${seeds.length} seeds, ${sum.endedAlone ?? 0} ended with one replica alone` +
      (guest === 'kv' ? `, disk contents checked in ${sum.diskContentsChecked ?? 0}` : '') +
      `; ${(seeds.length / Math.max(secs, 0.001)).toFixed(1)} seeds/s`
  )
  return 0
}

try {
  process.exitCode = main(process.argv.slice(2))
} catch (err) {
  console.error((err as Error).message)
  process.exitCode = 2
}
