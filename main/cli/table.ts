// Plain-text tables and lines for the terminal.
import type { AgentStatus } from '../../agent/control/protocol.js'
import { judgingReplica, type HostStatusRow } from '../lab/lab.js'
import type { FaultRecord, LabState } from '../lab/lab-state.js'
import { describeFault } from '../lab/lab-faults.js'
import { formatDuration } from '../core/duration.js'
import { LOCAL_LAB_NAME } from '../lab/local-lab.js'

export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (c ?? '').padEnd(widths[i]))
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}

/** "busy: the console (pid 815) has been restoring redundancy since 18:31:02", or nothing */
export function busyLine(busy: { actor: string; doing: string; since: number } | null): string {
  return busy ? `busy: ${busy.actor} has been ${busy.doing} since ${new Date(busy.since).toLocaleTimeString()}\n` : ''
}

export function statusTable(rows: HostStatusRow[], faults: FaultRecord[], now = Date.now()): string {
  const body = rows.map((r) => {
    const s: AgentStatus | undefined = r.status
    const ch = s?.channel
    const role = r.state === 'up' ? String(s?.role ?? '?') : r.state
    const gen = s ? String(s.disk?.gen ?? s.gen) : ''
    // only a primary has acks to wait for: a live replica logs to nobody, and a backup's acks are its own
    const onChannel = ch && s?.role === 'primary'
    // how long a silence of its peer it waits before suspecting it, and what set that
    const limit = judgingReplica(r)?.suspectLimit
    const suspect = limit ? `${Math.round(limit.ms)} ms ${limit.by}` : ''
    return [
      r.host,
      role,
      gen,
      r.pid > 0 ? String(r.pid) : '',
      ch ? String(ch.lastEntry) : '',
      ch ? (onChannel || s?.role === 'backup' ? String(ch.acked) : '-') : '',
      ch ? (onChannel ? String(Math.max(0, ch.lastEntry - ch.acked)) : '-') : '',
      ch ? String(ch.heldOutputs) : '',
      suspect,
      r.error ? r.error : s?.disk ? `live=${s.disk.live ?? '-'} tas=${s.disk.tasWinner ?? '-'} fenced=${s.disk.fenced}` : ''
    ]
  })
  const table = renderTable(['HOST', 'ROLE', 'GEN', 'PID', 'ENTRIES', 'ACKED', 'LAG', 'HELD', 'SUSPECT AFTER', 'NOTE'], body)
  if (faults.length === 0) return table
  const fl = faults.map((f) => `  ${f.id}  ${describeFault(f.spec)}  via ${f.path}  ${healsText(f, now)}${f.note ? `\n        ${f.note}` : ''}`)
  return `${table}\n\nopen faults:\n${fl.join('\n')}`
}

function healsText(f: FaultRecord, now: number): string {
  return f.healsAt === null ? 'until restore or power-on' : `heals in ${formatDuration(Math.max(0, f.healsAt - now))}`
}

/** What `ftlab fault` prints for the fault it opened: one line, the host-side pieces, the note. */
export function faultLines(f: FaultRecord, lab: string): string {
  const named = lab === LOCAL_LAB_NAME ? '' : ` --name ${lab}`
  const host = f.spec.kind === 'power' ? f.spec.host : null
  // the disk server comes back only by power-on; a replica's slot is refilled by restore (or switched on by its driver)
  const until =
    host === 'disk' ? `\`ftlab power-on disk${named}\`` : `\`ftlab restore${named}\`${f.path === 'driver' ? ` or \`ftlab power-on ${host}${named}\`` : ''}`
  const head =
    f.healsAt === null
      ? `${f.id}: ${describeFault(f.spec)} via ${f.path}; it stays cut until ${until}`
      : `${f.id}: ${describeFault(f.spec)} via ${f.path} until ${new Date(f.healsAt).toISOString()} (heal now with \`ftlab heal ${f.id}${named}\`)`
  const lines = [head, ...(f.kernel ?? []).map((k) => `  ${k.part.detail}`)]
  if (f.note) lines.push(`  ${f.healsAt === null ? '' : 'note: '}${f.note}`)
  return lines.join('\n') + '\n'
}

/** What `ftlab heal` prints: what was healed, each warning, and what stays open (power cuts). */
export function healText(r: { healed: string[]; warnings: string[] }, open: FaultRecord[]): string {
  const lines = [r.healed.length ? `healed ${r.healed.join(', ')}` : 'no open faults to heal; swept every host and agent for leftovers anyway']
  for (const w of r.warnings) lines.push(`warning: ${w}`)
  for (const f of open.filter((x) => x.healsAt === null)) lines.push(`still open: ${f.id} ${describeFault(f.spec)} (restore redundancy or power-on closes it)`)
  return lines.join('\n') + '\n'
}

/** What `lab start` and `deploy` print once a lab runs: one line per host. */
export function labStartedText(name: string, s: LabState): string {
  const lines = [`lab '${name}' started: ${s.guest} guest, ${s.mode} mode, generation ${s.gen}`]
  for (const id of ['a', 'b', 'disk']) {
    const h = s.hosts[id]
    const where = h.service ? `service ${h.service.host}:${h.service.port}` : `disk ${h.listen!.host}:${h.listen!.port}`
    lines.push(`  ${id.padEnd(5)} pid ${h.pid}  ${h.startedAs.padEnd(11)} ${where}`)
  }
  return lines.join('\n') + '\n'
}
