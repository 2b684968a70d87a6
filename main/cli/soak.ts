// `ftlab soak`: the nemesis soak on the command line. It runs a console backend of its own
// (so the soak is recorded like any console session), prints the schedule drawn from the seed,
// one line per fault as it goes, the verdict, and the path of the HTML report it writes next
// to the recording. Exit code: 0 passed, 1 failed (or could not run), 2 bad arguments.
import { randomInt } from 'node:crypto'
import { parseArgs } from 'node:util'
import { GUESTS, MODES, type GuestName, type ReplicationMode } from '../api/contract.js'
import { ConsoleBackend } from '../console/console-backend.js'
import { dispatch } from '../api/dispatch.js'
import { ftlabHome, LabStore } from '../lab/lab-state.js'
import { LOCAL_LAB_NAME } from '../lab/local-lab.js'
import { writeReport } from '../report/report.js'
import { runSoak, type SoakLab } from '../soak/soak.js'
import type { CliIo } from './ftlab.js'

export const SOAK_USAGE = `usage:
  ftlab soak [--lab local|simulated|remote NAME] [--faults N] [--minutes M] [--seed S]
             [--guest kv|bank] [--mode rsm|state-transfer] [--clients C]
             [--heartbeat MS] [--suspect MS] [--speed X] [--run-seconds S]
  runs a workload while a nemesis injects random faults (power cut, pause, isolate, one-way
  and two-way link cuts, disk-server cuts, loss, delay), heals them, restores redundancy
  (power-on from the disk server after a double failure), and checks everything at the end.
    --lab          local (default: starts the embedded lab), simulated, or remote NAME (a deployed lab)
    --faults       how many faults at most (default 20)
    --minutes      time bound on the soak's clock (default 10; the simulator's clock on the simulated lab)
    --seed         draws the schedule (default: random, printed); the same seed gives the same schedule
    --clients      load clients (default 4); --run-seconds: each load run is checked after this long (default 30)
    --heartbeat, --suspect   timing of a lab the soak starts (ms); --speed: the simulated lab's speed
  exit code: 0 passed, 1 failed, 2 bad arguments; the report is written next to the recording`

class Bad extends Error {}

function int(v: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < min || n > max) throw new Bad(`--${flag} must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`)
  return n
}

function oneOf<T extends string>(v: string | undefined, flag: string, choices: readonly T[]): T | undefined {
  if (v === undefined) return undefined
  if (!(choices as readonly string[]).includes(v)) throw new Bad(`--${flag} must be one of ${choices.join(', ')} (got ${JSON.stringify(v)})`)
  return v as T
}

export async function runSoakCli(argv: readonly string[], io: CliIo): Promise<number> {
  let o
  try {
    const { values: v, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        lab: { type: 'string' },
        name: { type: 'string' },
        faults: { type: 'string' },
        minutes: { type: 'string' },
        seed: { type: 'string' },
        guest: { type: 'string' },
        mode: { type: 'string' },
        clients: { type: 'string' },
        heartbeat: { type: 'string' },
        suspect: { type: 'string' },
        speed: { type: 'string' },
        'run-seconds': { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    if (v.help || positionals[0] === 'help') {
      io.out(SOAK_USAGE + '\n')
      return 0
    }
    const kind = oneOf(v.lab, 'lab', ['local', 'simulated', 'remote'] as const) ?? 'local'
    const name = v.name ?? (kind === 'remote' ? positionals.shift() : undefined)
    if (positionals.length) throw new Bad(`unexpected argument ${JSON.stringify(positionals[0])}`)
    if (kind === 'remote' && !name) throw new Bad("--lab remote needs the lab's name: --lab remote NAME (see `ftlab deploy`)")
    if (kind !== 'remote' && name) throw new Bad(`a name goes with --lab remote only (the ${kind} lab has one)`)
    const speed = v.speed === undefined ? undefined : Number(v.speed)
    if (speed !== undefined && (kind !== 'simulated' || !(speed >= 0.1 && speed <= 50))) throw new Bad('--speed is for --lab simulated, from 0.1 to 50')
    const heartbeatMs = int(v.heartbeat, 'heartbeat', 5, 10_000)
    const suspectMs = int(v.suspect, 'suspect', 20, 60_000)
    if (kind === 'remote' && (heartbeatMs !== undefined || suspectMs !== undefined))
      throw new Bad('--heartbeat and --suspect set the timing of a lab the soak starts; a remote lab keeps its own')
    if (heartbeatMs !== undefined && suspectMs !== undefined && suspectMs <= heartbeatMs)
      throw new Bad(`--suspect (${suspectMs}) must be longer than --heartbeat (${heartbeatMs})`)
    const lab: SoakLab = kind === 'remote' ? { kind, name: name! } : kind === 'simulated' ? { kind, ...(speed !== undefined ? { speed } : {}) } : { kind }
    o = {
      lab,
      seed: int(v.seed, 'seed', 0, 2 ** 32 - 1) ?? randomInt(0, 2 ** 31),
      faults: int(v.faults, 'faults', 1, 100_000) ?? 20,
      minutes: int(v.minutes, 'minutes', 1, 7 * 24 * 60) ?? 10,
      guest: oneOf(v.guest, 'guest', GUESTS) ?? ('kv' as GuestName),
      mode: oneOf(v.mode, 'mode', MODES) ?? ('rsm' as ReplicationMode),
      clients: int(v.clients, 'clients', 1, 256) ?? 4,
      heartbeatMs,
      suspectMs,
      loadRunSeconds: int(v['run-seconds'], 'run-seconds', 2, 3600)
    }
  } catch (err) {
    if (err instanceof Bad || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`ftlab soak: ${(err as Error).message}\n\n${SOAK_USAGE}\n`)
      return 2
    }
    throw err
  }
  const home = io.home ?? ftlabHome()
  if (o.lab.kind === 'local' && new LabStore(home).load(LOCAL_LAB_NAME)) {
    io.err(
      `ftlab soak: a local lab '${LOCAL_LAB_NAME}' is already running in ${home}; a soak starts its own lab and stops it at the end: stop that one first (ftlab lab stop)\n`
    )
    return 1
  }
  const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100 })
  const ac = new AbortController()
  const onSigint = () => {
    io.err('\nftlab soak: interrupted: healing, restoring redundancy and checking what ran so far\n')
    ac.abort()
  }
  process.once('SIGINT', onSigint)
  io.out(`soak: seed ${o.seed} (ftlab soak --seed ${o.seed} … repeats this schedule)\n`)
  let result
  try {
    result = await runSoak(b, { ...o, signal: ac.signal, log: (l) => io.out(l + '\n') })
  } finally {
    process.off('SIGINT', onSigint)
    // the soak's lab goes with it; a remote lab keeps running (detach)
    await dispatch(b, o.lab.kind === 'remote' ? 'lab.detach' : 'lab.stop', {}).catch(() => {})
    await b.close()
  }
  const v = result.run.verdict!
  io.out(
    ['', 'checks:', ...result.checks.map((c) => `  ${c.ok ? 'ok      ' : 'VIOLATED'} ${c.text}: ${c.detail}`), `verdict: ${v.summary}`, v.explanation, ''].join(
      '\n'
    )
  )
  const recording = b.recorder?.finished.at(-1) ?? result.recording
  if (recording) {
    try {
      io.out(`recording: ${recording}\nreport: ${await writeReport(recording)}\n`)
    } catch (err) {
      io.err(`ftlab soak: the report could not be written: ${(err as Error).message}\n`)
    }
  }
  return result.ok ? 0 : 1
}
