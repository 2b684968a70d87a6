// A self-contained HTML report of a recording: one file with inline CSS and SVG, no script,
// no network (a Content-Security-Policy forbids any fetch), that opens from file:// in any
// browser. For a drill or soak run it shows the run's verdict with its evidence; for any
// other recording the verdict comes from the recorded load verdicts and invariants. Then the
// failovers (durations and a space-time diagram around each), throughput and latency with the
// faults as bands, the invariants, the faults, and the scenario itself.
import { writeFile } from 'node:fs/promises'
import { liveByGenText, type DrillRun } from '../api/contract.js'
import { EXT } from '../record/format.js'
import { Recording } from '../record/reader.js'
import { collectReport, type Failover, type ReportData } from './collect.js'
import { bandLegend, esc, spaceTimeSvg, timeChartSvg } from './svg.js'

/** failovers drawn as a diagram; the rest are in the table (an hour-long soak has hundreds) */
const MAX_DIAGRAMS = 12

export interface ReportVerdict {
  /** true passed, false failed, null: nothing in the recording decides */
  ok: boolean | null
  summary: string
  explanation: string
  evidence: { text: string; ok: boolean | null; detail: string }[]
}

/** Reads the recording and writes its report; returns the report's path (default: next to the recording, .html). */
export async function writeReport(recordingPath: string, outPath?: string): Promise<string> {
  const rec = Recording.open(recordingPath)
  let html: string
  try {
    html = renderReport(collectReport(rec))
  } finally {
    rec.close()
  }
  const out = outPath ?? (recordingPath.endsWith(EXT) ? recordingPath.slice(0, -EXT.length) : recordingPath) + '.html'
  await writeFile(out, html)
  return out
}

/** The verdict: the runs' own when the recording has drill or soak runs, else the load verdicts and invariants recorded. */
export function reportVerdict(d: ReportData): ReportVerdict {
  const ended = d.runs.filter((r) => r.verdict)
  if (ended.length) {
    const ok = ended.every((r) => r.verdict!.ok)
    return {
      ok,
      summary: ended.length === 1 ? ended[0].verdict!.summary : `${ended.filter((r) => r.verdict!.ok).length} of ${ended.length} runs passed`,
      explanation: ended.map((r) => r.verdict!.explanation).join(' '),
      evidence: ended.flatMap((r) => r.expectations.map((e) => ({ text: (ended.length > 1 ? `${r.name}: ` : '') + e.text, ok: e.ok, detail: e.detail })))
    }
  }
  const inv = d.invariants
  const ev: ReportVerdict['evidence'] = []
  for (const [i, l] of d.loadVerdicts.entries())
    ev.push({
      text: `load run ${i + 1}: ${l.verdict.summary}`,
      ok: l.verdict.result === 'valid' ? true : l.verdict.result === 'invalid' ? false : null,
      detail: l.verdict.details.join('; ') || `${l.verdict.ok} ok, ${l.verdict.failed} failed, ${l.verdict.unknown} unknown`
    })
  if (inv) {
    ev.push({
      text: 'never two live replicas',
      ok: !inv.splitBrain,
      detail: inv.splitBrain ? 'two replicas were seen releasing outputs at once' : 'one serving replica at a time'
    })
    ev.push({
      text: 'no divergence',
      ok: inv.divergence === null,
      detail: inv.divergence ? `${inv.divergence.host} diverged at entry ${inv.divergence.entry}` : 'no state hash mismatch reported'
    })
    if (inv.acknowledgedLost !== null)
      ev.push({ text: 'no acknowledged write lost', ok: inv.acknowledgedLost === 0, detail: `${inv.acknowledgedLost} lost in the last checked run` })
  }
  if (!d.loadVerdicts.length) {
    const bad = ev.some((e) => e.ok === false)
    return {
      ok: bad ? false : null,
      summary: bad ? 'FAILED: an invariant was violated' : 'no verdict: no load was checked in this recording',
      explanation: bad
        ? 'The console saw an invariant violated (below).'
        : 'Run a load (ftlab load, the console, a drill or a soak) to have its history checked.',
      evidence: ev
    }
  }
  const ok = ev.every((e) => e.ok !== false) && ev.some((e) => e.ok === true)
  return {
    ok,
    summary: ok ? `PASSED: ${d.loadVerdicts.length} load run(s) checked valid, invariants held` : 'FAILED: see the evidence below',
    explanation: ok
      ? 'Every checked history was valid (no acknowledged write lost, per-key registers linearizable, counters exact) and the console never saw two live replicas or a divergence.'
      : 'A check failed; its evidence is listed below with the moment it refers to.',
    evidence: ev
  }
}

const when = (d: ReportData, t: number | null): string => (t === null ? '—' : `${((t - d.t0) / 1000).toFixed(3)} s`)
const ms = (a: number | null, b: number | null): string => (a === null || b === null ? '—' : `${Math.round(b - a)} ms`)
const mark = (ok: boolean | null): string =>
  ok === true ? '<span class="ok">✔</span>' : ok === false ? '<span class="bad">✘</span>' : '<span class="unk">?</span>'

export function renderReport(d: ReportData): string {
  const v = reportVerdict(d)
  const h = d.header
  const run: DrillRun | undefined = d.runs[d.runs.length - 1]
  const title = run ? run.title : `Recording of lab ${h.lab.name} (${h.lab.kind})`
  const started = new Date(d.t0)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC')
  const cls = v.ok === true ? 'pass' : v.ok === false ? 'fail' : 'none'
  const word = v.ok === true ? 'PASSED' : v.ok === false ? 'FAILED' : 'NO VERDICT'
  const sections: string[] = []

  sections.push(`<header>
<h1>${esc(title)}</h1>
<p class="meta">${esc(`${h.lab.kind} lab '${h.lab.name}' · guest ${h.lab.guest ?? '?'} · ${h.lab.mode ?? '?'} · heartbeat ${h.lab.timing?.heartbeatMs ?? '?'} ms, suspicion ${h.lab.timing?.suspectMs ?? '?'} ms${h.lab.sim ? ` · simulated, seed ${h.lab.sim.seed}, speed ×${h.lab.sim.speed}` : ''} · ${started} · ${((d.t1 - d.t0) / 1000).toFixed(1)} s`)}</p>
<div class="verdict ${cls}" id="verdict"><b>${word}</b> ${esc(v.summary.replace(/^(PASSED|FAILED): /, ''))}</div>
<p class="explain">${esc(v.explanation)}</p>
${d.problems.length ? `<p class="warn">This recording is damaged; what follows is what could be read: ${esc(d.problems.map((p) => p.message).join('; '))}</p>` : ''}
${!d.closed && !d.problems.length ? '<p class="warn">The recording was not closed (the console stopped without closing it); every record written is shown.</p>' : ''}
</header>`)

  sections.push(
    `<section id="evidence"><h2>The verdict's evidence</h2>${
      v.evidence.length
        ? `<table><tr><th></th><th>check</th><th>what was measured</th></tr>${v.evidence.map((e) => `<tr><td>${mark(e.ok)}</td><td>${esc(e.text)}</td><td>${esc(e.detail)}</td></tr>`).join('')}</table>`
        : '<p>Nothing in this recording was checked.</p>'
    }</section>`
  )

  sections.push(failoverSection(d))

  const kinds = d.spans.map((s) => s.kind)
  sections.push(`<section id="charts"><h2>Throughput and latency</h2>
${timeChartSvg(d, 'throughput', 'throughput', 'completed ops/s', [{ name: 'ops/s', color: '#2f6fbf', pick: (p) => p.opsPerSec }])}
${timeChartSvg(d, 'latency', 'latency', 'ms', [
  { name: 'p50', color: '#3a9a52', pick: (p) => p.p50 },
  { name: 'p99', color: '#c27c0e', pick: (p) => p.p99 }
])}
<p class="legend">Faults as bands: ${bandLegend(kinds) || 'none'} · green ticks: go-live</p></section>`)

  sections.push(invariantSection(d))
  sections.push(faultSection(d))

  const scenario = run?.scenario || ''
  sections.push(
    `<section id="scenario"><h2>The scenario</h2>${scenario ? `<pre>${esc(scenario)}</pre>` : `<p>No drill or soak ran in this recording; the operator's actions:</p>${requestList(d)}`}</section>`
  )
  if (run && run.log.length)
    sections.push(
      `<section id="log"><h2>The run's log</h2><details${run.log.length <= 60 ? ' open' : ''}><summary>${run.log.length} lines</summary><pre>${esc(run.log.map((l) => `${when(d, l.t).padStart(10)}  ${l.text}`).join('\n'))}</pre></details></section>`
    )
  sections.push(
    `<footer>${esc(`recording ${d.path} · ${h.ftlabVersion} · console ${h.console.host} pid ${h.console.pid} · written ${new Date().toISOString()}`)}</footer>`
  )

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(`${word}: ${title}`)}</title>
<style>${CSS}</style></head>
<body>
${sections.join('\n')}
</body></html>
`
}

function failoverSection(d: ReportData): string {
  const fos = d.failovers
  if (!fos.length) return '<section id="failovers"><h2>Failovers</h2><p>No replica went live in this recording.</p></section>'
  const rows = fos
    .map(
      (f, i) =>
        `<tr><td>${i + 1}</td><td>${when(d, f.at)}</td><td>${esc(f.host)}</td><td>${ms(f.at, f.liveAt)}</td><td>${ms(f.liveAt, f.servedAt)}</td><td>${ms(f.at, f.servedAt)}</td><td>${esc(causeOf(d, f))}</td></tr>`
    )
    .join('')
  const lat = fos.filter((f) => f.liveAt !== null).map((f) => f.liveAt! - f.at)
  const sorted = [...lat].sort((x, y) => x - y)
  const stats = sorted.length
    ? `cut → go-live: min ${Math.round(sorted[0])} ms, median ${Math.round(sorted[Math.floor(sorted.length / 2)])} ms, max ${Math.round(sorted[sorted.length - 1])} ms`
    : ''
  const diagrams = fos
    .slice(0, MAX_DIAGRAMS)
    .map(
      (f, i) =>
        `<figure>${spaceTimeSvg(d, f, i)}<figcaption>${esc(`Failover ${i + 1} at ${when(d, f.at)}: ${causeOf(d, f)}; ${f.host} live ${ms(f.at, f.liveAt)} after the cut, first operation answered ${ms(f.at, f.servedAt)} after it.`)}</figcaption></figure>`
    )
    .join('\n')
  return `<section id="failovers"><h2>Failovers (${fos.length})</h2>
<p>${esc(stats)}. Times: the cut (the fault injected), the go-live (the survivor won the test-and-set and took over), the first operation answered after it (the first load report showing progress${fos[0].source === 'run' ? ', as the run recorded it' : ''}; load reports come every 500 ms, so it is an upper bound).</p>
<table><tr><th>#</th><th>cut at</th><th>live</th><th>cut → live</th><th>live → served</th><th>cut → served</th><th>fault</th></tr>${rows}</table>
<h3>Space-time diagrams${fos.length > MAX_DIAGRAMS ? ` (the first ${MAX_DIAGRAMS})` : ''}</h3>
<p class="legend"><span class="k" style="color:#2f6fbf">→ log entries</span> primary → backup (solid when acked) · <span class="k" style="color:#3a9a52">→ acks</span> · <span class="k" style="color:#c27c0e">? suspicion</span> (heartbeats stopped) · <span class="k" style="color:#8e44ad">TAS</span> test-and-set at the disk server · <span class="k" style="color:#1e9e4a">● go-live</span> · bands: the fault</p>
${diagrams}</section>`
}

function causeOf(d: ReportData, f: Failover): string {
  const s = [...d.spans].reverse().find((x) => x.start <= f.at + 1 && x.start >= f.at - 60_000)
  return s ? s.what : 'no fault recorded before it'
}

function invariantSection(d: ReportData): string {
  const inv = d.invariants
  if (!inv) return '<section id="invariants"><h2>Invariants</h2><p>No status was recorded.</p></section>'
  const gens = liveByGenText(inv.liveByGen, 'gen ', '—')
  const rows: [boolean | null, string, string][] = [
    [!inv.splitBrain, 'never two live replicas', inv.splitBrain ? 'two replicas released outputs at the same time' : 'never seen'],
    [inv.divergence === null, 'no divergence', inv.divergence ? `${inv.divergence.host} at entry ${inv.divergence.entry}` : 'none reported'],
    [
      inv.acknowledgedLost === null ? null : inv.acknowledgedLost === 0,
      'no acknowledged write lost (last checked run)',
      inv.acknowledgedLost === null ? 'no run checked' : String(inv.acknowledgedLost)
    ],
    [null, 'live replicas by generation', gens || '—'],
    [null, 'duplicates dropped by the clients', String(inv.duplicatesDropped)],
    [null, 'writes fenced by the disk server', String(inv.fencedWrites)]
  ]
  const loads = d.loadVerdicts
    .map(
      (l, i) =>
        `<tr><td>${mark(l.verdict.result === 'valid' ? true : l.verdict.result === 'invalid' ? false : null)}</td><td>load run ${i + 1} (ended ${when(d, l.endedAt)})</td><td>${esc(l.verdict.summary)}</td></tr>`
    )
    .join('')
  return `<section id="invariants"><h2>Invariants checked</h2><table><tr><th></th><th>invariant</th><th>seen</th></tr>${rows
    .map(([ok, t, detail]) => `<tr><td>${ok === null ? '' : mark(ok)}</td><td>${esc(t)}</td><td>${esc(detail)}</td></tr>`)
    .join('')}${loads}</table></section>`
}

function faultSection(d: ReportData): string {
  if (!d.spans.length) return '<section id="faults"><h2>Faults</h2><p>No fault was injected.</p></section>'
  const rows = d.spans
    .map(
      (s) =>
        `<tr><td>${esc(s.id)}</td><td>${esc(s.what)}</td><td>${when(d, s.start)}</td><td>${s.end === null ? 'open at the end' : when(d, s.end)}</td><td>${s.end === null ? '—' : ms(s.start, s.end)}</td></tr>`
    )
    .join('')
  return `<section id="faults"><h2>Faults (${d.spans.length})</h2><details${d.spans.length <= 40 ? ' open' : ''}><summary>every fault, from the status the console recorded</summary><table><tr><th>id</th><th>fault</th><th>from</th><th>to</th><th>lasted</th></tr>${rows}</table></details></section>`
}

/** The console's requests, and what other processes (`ftlab` in a terminal) did to the lab meanwhile, in time order. */
function requestList(d: ReportData): string {
  const lines = [
    ...d.requests.map((r) => ({ t: r.t, text: `${r.method} ${JSON.stringify(r.params)}${r.error ? `  → refused: ${r.error}` : ''}` })),
    ...d.marks.filter((m) => m.mark.kind === 'outside').map((m) => ({ t: m.t, text: m.mark.label }))
  ].sort((x, y) => x.t - y.t)
  if (!lines.length) return '<p>None recorded.</p>'
  return `<pre>${esc(lines.map((l) => `${when(d, l.t).padStart(10)}  ${l.text}`).join('\n'))}</pre>`
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2933;margin:0 auto;max-width:1000px;padding:16px 20px 40px;background:#fff}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e3e7ec;padding-bottom:4px}h3{font-size:15px}
.meta{color:#6b7785;margin:0 0 10px}
.verdict{font-size:16px;padding:10px 14px;border-radius:6px;border:1px solid}
.verdict.pass{background:#e9f7ee;border-color:#3a9a52}.verdict.fail{background:#fdecec;border-color:#d64545}.verdict.none{background:#f3f4f6;border-color:#9aa4b1}
.verdict b{margin-right:8px}.explain{margin:8px 0}
.warn{background:#fff6e0;border:1px solid #e0b040;padding:6px 10px;border-radius:4px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}th{color:#6b7785;font-weight:600}
.ok{color:#1e9e4a;font-weight:700}.bad{color:#d64545;font-weight:700}.unk{color:#9aa4b1;font-weight:700}
svg{display:block;max-width:100%;height:auto;background:#fbfcfd;border:1px solid #eef0f3;border-radius:4px;font-family:ui-monospace,"DejaVu Sans Mono",monospace}
figure{margin:14px 0}figcaption{color:#6b7785;font-size:12px;margin-top:4px}
.legend{color:#6b7785;font-size:12px}.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 3px 0 8px;vertical-align:middle}
pre{background:#f6f8fa;border:1px solid #eef0f3;padding:8px 10px;overflow-x:auto;font-size:12px;line-height:1.35}
footer{margin-top:30px;color:#9aa4b1;font-size:11px}
`
