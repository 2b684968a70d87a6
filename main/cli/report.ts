// `ftlab report RECORDING|SESSION [-o out.html]`: one self-contained HTML report of a
// recording (a file, or a name from `ftlab sessions list`), written next to it by default.
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ftlabHome } from '../lab/lab-state.js'
import { SessionLibrary } from '../record/library.js'
import { writeReport } from '../report/report.js'
import type { CliIo } from './ftlab.js'

export const REPORT_USAGE = `usage:
  ftlab report <recording.ftrec | session name> [-o <out.html>]
      writes a self-contained HTML report (verdict and evidence, failovers with space-time
      diagrams, throughput and latency with faults as bands, invariants, the scenario);
      default: next to the recording, <name>.html. Session names: ftlab sessions list`

export async function runReportCli(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: [...argv], allowPositionals: true, options: { out: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } } })
  } catch (err) {
    io.err(`ftlab report: ${(err as Error).message}\n\n${REPORT_USAGE}\n`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help || positionals[0] === 'help') {
    io.out(REPORT_USAGE + '\n')
    return 0
  }
  if (positionals.length !== 1) {
    io.err(
      `ftlab report: ${positionals.length ? `one recording at a time (got ${positionals.length})` : 'which recording? give a .ftrec file or a session name'}\n\n${REPORT_USAGE}\n`
    )
    return 2
  }
  const which = positionals[0]
  try {
    const path = existsSync(which) ? which : new SessionLibrary(io.home ?? ftlabHome()).pathOf(which)
    const out = await writeReport(path, values.out)
    io.out(`report: ${out}\n`)
    return 0
  } catch (err) {
    io.err(`ftlab report: ${(err as Error).message}\n`)
    return 1
  }
}
