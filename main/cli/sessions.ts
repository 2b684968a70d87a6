// `ftlab sessions`: the library of recorded lab sessions (<FTLAB_HOME>/recordings).
//   ftlab sessions list                      one line per recording, newest first
//   ftlab sessions show <name|file>          header, marked moments, damage
//   ftlab sessions rename <name> <new-name>
//   ftlab sessions delete <name>
//   ftlab sessions import <file> [--as <name>]   copy a recording in (checked frame by frame)
//   ftlab sessions export <name> <path>      copy one out
import { existsSync } from 'node:fs'
import { formatDuration } from '../core/duration.js'
import { ftlabHome } from '../lab/lab-state.js'
import { SessionLibrary, sessionEntry, type SessionEntry } from '../record/library.js'
import { Recording } from '../record/reader.js'
import type { CliIo } from './ftlab.js'

export const SESSIONS_USAGE = `usage:
  ftlab sessions list                          the recordings, newest first
  ftlab sessions show <name|file>              a recording's lab, marked moments and any damage
  ftlab sessions rename <name> <new-name>
  ftlab sessions delete <name>
  ftlab sessions import <file> [--as <name>]   copy a recording into the library (every frame checked)
  ftlab sessions export <name> <path>          copy a recording out
recordings live in $FTLAB_HOME/recordings (default ~/.ftlab/recordings)`

const ARITY: Record<string, [number, number]> = { list: [0, 0], show: [1, 1], rename: [2, 2], delete: [1, 1], import: [1, 1], export: [2, 2] }

export async function runSessionsCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv
  if (!sub || sub === 'help' || sub === '--help' || sub === '-h') {
    io.out(SESSIONS_USAGE + '\n')
    return 0
  }
  const arity = ARITY[sub]
  if (!arity) return usage(io, `unknown command 'sessions ${sub}'`)
  const args: string[] = []
  let as: string | undefined
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--as' && sub === 'import') {
      as = rest[++i]
      if (as === undefined) return usage(io, '--as needs a name')
    } else if (rest[i].startsWith('--')) return usage(io, `unknown option ${rest[i]} for 'sessions ${sub}'`)
    else args.push(rest[i])
  }
  if (args.length < arity[0]) return usage(io, `'sessions ${sub}' needs ${arity[0]} argument${arity[0] > 1 ? 's' : ''}`)
  if (args.length > arity[1]) return usage(io, `unexpected argument '${args[arity[1]]}'`)
  const lib = new SessionLibrary(io.home ?? ftlabHome())
  try {
    switch (sub) {
      case 'list': {
        const all = lib.list()
        if (all.length === 0) io.out(`no recordings in ${lib.dir}\n`)
        for (const e of all) io.out(listLine(e) + '\n')
        return 0
      }
      case 'show': {
        const file = args[0]
        const e = (file.includes('/') || file.endsWith('.ftrec')) && existsSync(file) ? showFile(file) : lib.show(file)
        io.out(showText(e))
        return e.error ? 1 : 0
      }
      case 'rename':
        io.out(`renamed '${args[0]}' → ${lib.rename(args[0], args[1])}\n`)
        return 0
      case 'delete':
        io.out(`deleted ${lib.delete(args[0])}\n`)
        return 0
      case 'import': {
        const e = lib.import(args[0], as)
        io.out(`imported ${args[0]} as '${e.name}' (${e.path})\n`)
        for (const p of e.problems) io.out(`  damage: ${p.message}\n`)
        return 0
      }
      case 'export':
        io.out(`exported '${args[0]}' to ${lib.export(args[0], args[1])}\n`)
        return 0
    }
  } catch (err) {
    io.err(`ftlab sessions ${sub}: ${(err as Error).message}\n`)
    return 1
  }
  return 2
}

function usage(io: CliIo, message: string): number {
  io.err(`ftlab: ${message}\n\n${SESSIONS_USAGE}\n`)
  return 2
}

function showFile(path: string): SessionEntry {
  const r = Recording.open(path, { verify: true })
  r.close()
  return sessionEntry(path, path, r.size, r)
}

function listLine(e: SessionEntry): string {
  if (!e.header) return `${e.name}  does not open: ${e.error}`
  const h = e.header
  const counts = new Map<string, number>()
  for (const m of e.marks) if (['fault', 'heal', 'go-live', 'halt', 'restore'].includes(m.kind)) counts.set(m.kind, (counts.get(m.kind) ?? 0) + 1)
  const marks = [...counts].map(([k, n]) => `${n} ${k}`).join(', ')
  const state = e.problems.length ? `damaged (${e.problems.length})` : e.closed ? 'complete' : 'not closed'
  return [
    e.name,
    `${h.lab.kind} ${h.lab.name}${h.lab.guest ? ` · ${h.lab.guest} ${h.lab.mode}` : ''}`,
    new Date(h.startedAt)
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, ' UTC'),
    formatDuration(e.duration),
    `${e.records} records`,
    bytes(e.bytes),
    marks || 'no faults',
    state
  ].join('  ')
}

function showText(e: SessionEntry): string {
  if (!e.header) return `${e.path}: does not open: ${e.error}\n`
  const h = e.header
  const out = [
    `${e.name}  (${e.path})`,
    `  lab       ${h.lab.kind} '${h.lab.name}'${h.lab.guest ? `, guest ${h.lab.guest}, ${h.lab.mode}` : ''}${h.lab.timing ? `, heartbeat ${h.lab.timing.heartbeatMs} ms, suspect ${h.lab.timing.suspectMs} ms` : ''}${h.lab.sim ? `, seed ${h.lab.sim.seed}` : ''}`,
    `  hosts     ${h.lab.hosts.map((x) => `${x.id} ${x.machine}@${x.address}`).join(', ') || '-'}`,
    `  started   ${new Date(h.startedAt).toISOString()} on ${h.console.host}, FT Lab ${h.ftlabVersion}`,
    `  length    ${formatDuration(e.duration)}, ${e.records} records, ${bytes(e.bytes)} (${e.records ? Math.round(e.bytes / e.records) : 0} bytes/record)`,
    `  state     ${e.closed ? 'complete (closed with its index)' : 'not closed (the console stopped while recording): indexed by a scan'}`
  ]
  for (const p of e.problems) out.push(`  damage    ${p.message}`)
  out.push(`  marks     ${e.marks.length}`)
  for (const m of e.marks) out.push(`    +${clock(m.t - h.startedAt)}  ${m.kind.padEnd(8)} ${m.label}`)
  return out.join('\n') + '\n'
}

function clock(ms: number): string {
  const s = Math.max(0, ms) / 1000
  const m = Math.floor(s / 60)
  return `${String(m).padStart(2, '0')}:${(s - m * 60).toFixed(3).padStart(6, '0')}`
}

function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`
}
