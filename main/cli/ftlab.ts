// `ftlab`: the console core on the command line, for headless labs, drills and benchmarks.
// Every command opens the lab from its state file, does one thing, and lets go; the agents
// keep running between commands.
import { writeFileSync } from 'node:fs'
import { checkRun } from '../check/check-run.js'
import type { Verdict } from '../check/verdict.js'
import { formatDuration } from '../core/duration.js'
import type { Lab } from '../lab/lab.js'
import type { LabEvent } from '../lab/lab-events.js'
import { openLocalLab, startLocalLab } from '../lab/local-lab.js'
import { DEFAULT_TIMING } from '../lab/lab.js'
import { onLabLockWait, setLabActor } from '../lab/lab-state.js'
import { finalRead, runLoad, type LoadProgress } from '../load/load-runner.js'
import { COMMANDS, commandUsage, DEFAULT_LAB, parseArgs, usage, UsageError, type ParsedCommand } from './args.js'
import { EventLines } from './event-lines.js'
import { faultFromArgs } from './fault-args.js'
import { dispatchRemote, runRemoteCli } from './remote.js'
import { busyLine, faultLines, healText, labStartedText, statusTable } from './table.js'
import { runIfMain } from '../core/entry.js'
import { runSessionsCli } from './sessions.js'
import { runReportCli } from './report.js'
import { runSoakCli } from './soak.js'
import { runDrillCli } from './drill.js'

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2
export const EXIT_VIOLATION = 3

export interface CliIo {
  out: (text: string) => void
  err: (text: string) => void
  /** progress lines rewrite themselves on a terminal */
  isTty: boolean
  home?: string
}

const defaultIo = (): CliIo => ({
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  isTty: process.stdout.isTTY === true
})

export async function runCli(argv: readonly string[], io: CliIo = defaultIo()): Promise<number> {
  if (argv[0] === 'sessions') return runSessionsCli(argv.slice(1), io)
  if (argv[0] === 'soak') return runSoakCli(argv.slice(1), io)
  if (argv[0] === 'report') return runReportCli(argv.slice(1), io)
  if (argv[0] === 'drill') return runDrillCli(argv.slice(1), io)
  let cmd: ParsedCommand
  try {
    cmd = parseArgs(argv)
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`ftlab: ${err.message}\n\n${err.usage}\n`)
      return EXIT_USAGE
    }
    throw err
  }
  if (cmd.id === 'help') {
    const spec = COMMANDS.find((c) => c.words.join(' ') === cmd.positionals.join(' ') && c.id !== 'help')
    io.out((spec ? `usage:\n${commandUsage(spec)}` : usage()) + '\n')
    return EXIT_OK
  }
  if (cmd.id === 'deploy' || cmd.id === 'teardown') return runRemoteCli(cmd, io)
  const name = typeof cmd.options.name === 'string' ? cmd.options.name : DEFAULT_LAB
  try {
    return await dispatch(cmd, name, io)
  } catch (err) {
    io.err(`ftlab: ${(err as Error).message}\n`)
    return EXIT_FAILED
  }
}

async function dispatch(cmd: ParsedCommand, name: string, io: CliIo): Promise<number> {
  const opts = { home: io.home }
  const o = cmd.options
  const remote = await dispatchRemote(cmd, name, io, { load, events })
  if (remote !== null) return remote
  switch (cmd.id) {
    case 'lab-start': {
      const timing =
        o.heartbeat !== undefined || o.suspect !== undefined
          ? {
              heartbeatMs: (o.heartbeat as number | undefined) ?? DEFAULT_TIMING.heartbeatMs,
              suspectMs: (o.suspect as number | undefined) ?? DEFAULT_TIMING.suspectMs
            }
          : undefined
      if (timing && timing.suspectMs <= timing.heartbeatMs)
        throw new UsageError(
          `--suspect (${timing.suspectMs} ms) must be longer than --heartbeat (${timing.heartbeatMs} ms)`,
          commandUsage(COMMANDS.find((c) => c.id === 'lab-start')!)
        )
      const arbiter =
        typeof o.etcd === 'string'
          ? {
              kind: 'etcd' as const,
              endpoints: o.etcd
                .split(',')
                .map((u) => u.trim())
                .filter(Boolean)
            }
          : undefined
      const lab = await startLocalLab(
        { name, guest: o.guest as string | undefined, mode: o.mode as 'rsm' | 'state-transfer' | undefined, timing, arbiter },
        opts
      )
      const s = lab.snapshot()
      lab.close()
      io.out(labStartedText(name, s))
      return EXIT_OK
    }
    case 'lab-stop':
      return withLab(name, opts, async (lab) => {
        await lab.stop()
        io.out(`lab '${name}' stopped\n`)
        return EXIT_OK
      })
    case 'status':
      return withLab(name, opts, async (lab) => {
        const rows = await lab.status()
        if (o.json) io.out(JSON.stringify({ name, gen: lab.generation, hosts: rows, faults: lab.openFaults(), busy: lab.busy() }, null, 2) + '\n')
        else io.out(`lab '${name}', generation ${lab.generation}\n${statusTable(rows, lab.openFaults())}\n${busyLine(lab.busy())}`)
        return EXIT_OK
      })
    case 'load':
      return withLab(name, opts, (lab) => load(lab, cmd, io))
    case 'fault':
      return withLab(name, opts, async (lab) => {
        const f = faultFromArgs(cmd.positionals[0], cmd.positionals[1], o)
        const rec = f.kind === 'power' ? await lab.powerCut(f.host) : await lab.injectFault(f.spec, f.forMs)
        io.out(faultLines(rec, name))
        return EXIT_OK
      })
    case 'heal':
      return withLab(name, opts, async (lab) => {
        io.out(healText(await lab.heal(cmd.positionals[0]), lab.openFaults()))
        return EXIT_OK
      })
    case 'power-on':
      return withLab(name, opts, async (lab) => {
        const r = await lab.powerOn(cmd.positionals[0])
        io.out(`power on ${cmd.positionals[0]} (${r.driver}): ${r.detail}\n`)
        return EXIT_OK
      })
    case 'restore':
      if (o.onto !== undefined) {
        io.err(`ftlab: --onto moves a replica to another machine of a remote lab; the local lab '${name}' runs every host on this machine\n`)
        return EXIT_USAGE
      }
      return withLab(name, opts, async (lab) => {
        const r = await lab.restore()
        io.out(`redundancy restored: ${r.from} is primary, ${r.to} is its new backup, generation ${r.gen}\n`)
        return EXIT_OK
      })
    case 'events':
      return withLab(name, opts, (lab) => events(lab, !!o.follow, !!o.json, io))
    default:
      return EXIT_USAGE
  }
}

async function withLab(name: string, opts: { home?: string }, f: (lab: Lab) => Promise<number>): Promise<number> {
  const lab = openLocalLab(name, opts)
  try {
    return await f(lab)
  } finally {
    lab.close()
  }
}

async function load(lab: Lab, cmd: ParsedCommand, io: CliIo): Promise<number> {
  const o = cmd.options
  const guest = lab.snapshot().guest
  if (guest !== 'kv') throw new Error(`ftlab load drives the kv guest; lab '${lab.name}' runs '${guest}'`)
  const keys = (o.keys as number | undefined) ?? 16
  const ac = new AbortController()
  const onSigint = () => ac.abort()
  process.once('SIGINT', onSigint)
  const targets = lab.serviceEndpoints()
  let result
  try {
    result = await runLoad({
      targets,
      durationMs: (o.seconds as number) * 1000,
      clients: o.clients as number | undefined,
      keys,
      signal: ac.signal,
      onProgress: o.json ? undefined : (p) => io.out(progressLine(p, io.isTty))
    })
  } finally {
    process.off('SIGINT', onSigint)
  }
  if (io.isTty && !o.json) io.out('\n')
  const final = await finalRead(targets, result.keys)
  const verdict = checkRun(result.history, final)
  if (typeof o.history === 'string') writeFileSync(o.history, JSON.stringify({ history: result.history, final: Object.fromEntries(final) }) + '\n')
  const s = result.summary
  if (o.json) {
    io.out(JSON.stringify({ summary: s, verdict }, null, 2) + '\n')
  } else {
    io.out(
      [
        `load: ${formatDuration(s.elapsedMs)}, ${s.clients} clients, ${s.completed} ops (${s.opsPerSec.toFixed(0)} ops/s): ${s.ok} ok, ${s.failed} failed, ${s.unknown} unknown`,
        `latency ms: p50 ${s.latencyMs.p50.toFixed(1)}  p90 ${s.latencyMs.p90.toFixed(1)}  p99 ${s.latencyMs.p99.toFixed(1)}  max ${s.latencyMs.max.toFixed(1)}`,
        `retries ${s.retries}, duplicates dropped ${s.duplicatesDropped}, failovers followed ${s.failoversFollowed}${s.strays ? `, stray replies ${s.strays}` : ''}`,
        'checks:',
        ...verdict.checks.map(verdictLine),
        `verdict: ${word(verdict.valid)}`
      ].join('\n') + '\n'
    )
  }
  return verdict.valid === false ? EXIT_VIOLATION : EXIT_OK
}

function word(v: boolean | 'unknown'): string {
  return v === true ? 'valid' : v === false ? 'INVALID' : 'unknown'
}

function verdictLine(v: Verdict): string {
  const head = `  ${word(v.valid).padEnd(8)} ${v.checker}`
  const ev = v.evidence.slice(0, 3).map((e) => `\n             ${e.message}`)
  const more = v.evidence.length > 3 ? `\n             … and ${v.evidence.length - 3} more` : ''
  return head + ev.join('') + more
}

function progressLine(p: LoadProgress, tty: boolean): string {
  const targets = Object.entries(p.targets)
    .map(([t, n]) => `${t}×${n}`)
    .join(' ')
  const line = `${formatDuration(p.elapsedMs).padStart(6)}  ${p.opsPerSec.toFixed(0).padStart(6)} ops/s  done ${p.completed}  errors ${p.errors}  retries ${p.retries}  dups ${p.duplicatesDropped}  → ${targets}`
  return tty ? `\r\x1b[K${line}` : `${line}\n`
}

async function events(lab: Lab, follow: boolean, json: boolean, io: CliIo): Promise<number> {
  const up = (await lab.status()).filter((r) => r.state === 'up').map((r) => r.host)
  const lines = new EventLines()
  const write = (ls: string[]) => {
    if (ls.length) io.out(ls.join('\n') + '\n')
  }
  // the history arrives one agent's ring after another: a one-shot read is put in time order first
  const history: LabEvent[] = []
  const print = (e: LabEvent) => {
    if (e.type === 'caught-up') return
    if (json) io.out(JSON.stringify(e) + '\n')
    else if (!follow) history.push(e)
    else write(lines.push(e))
  }
  // a live stream still shows the channel summaries and repeat counts when nothing else happens
  const ticker = follow && !json ? setInterval(() => write(lines.tick(Date.now())), 500) : null
  await new Promise<void>((resolve) => {
    const waiting = new Set(up)
    let timer: NodeJS.Timeout | null = null
    const done = () => {
      if (timer) clearTimeout(timer)
      if (ticker) clearInterval(ticker)
      process.off('SIGINT', done)
      off()
      if (!json) {
        for (const e of history.sort((x, y) => x.ts - y.ts)) write(lines.push(e))
        write(lines.flush())
      }
      resolve()
    }
    const off = lab.onEvent((e) => {
      print(e)
      if (!follow && e.type === 'caught-up' && e.host) {
        waiting.delete(e.host)
        if (waiting.size === 0) done()
      }
    })
    process.once('SIGINT', done)
    // an agent that stops answering must not hang a one-shot read of the history
    if (!follow) timer = setTimeout(done, 5000)
    if (!follow && waiting.size === 0) done()
  })
  return EXIT_OK
}

runIfMain(
  import.meta.url,
  'ftlab',
  () => {
    // `ftlab events | head`: the reader went away, which is how a pipe ends, not a failure
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(EXIT_OK)
      throw e
    })
    // how another process holding this lab names us: "ftlab restore (pid 4711)"
    const argv = process.argv.slice(2)
    setLabActor(['ftlab', ...argv.slice(0, argv[0] === 'lab' ? 2 : 1)].join(' '))
    onLabLockWait((w) => void process.stderr.write(`${w.text}\n`))
    return runCli(argv)
  },
  EXIT_FAILED
)
