// The report's pictures as SVG text: the space-time diagram around a failover and the
// throughput/latency charts with faults as bands. Plain strings, so the report is one file
// that any browser opens from disk. Every piece of text from the recording goes through esc().
import type { AgentPoint, Failover, FaultSpan, LoadPoint, ReportData } from './collect.js'
import { suspicionText } from '../api/contract.js'

/** Text and attribute values from a recording are data: never markup. */
export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

export const BAND: Record<string, string> = {
  power: '#d64545',
  pause: '#c27c0e',
  isolate: '#8e44ad',
  cut: '#e0603a',
  loss: '#2c7fb8',
  delay: '#17916f'
}

const C = {
  lane: '#9aa4b1',
  text: '#1f2933',
  faint: '#6b7785',
  entries: '#2f6fbf',
  ack: '#3a9a52',
  tas: '#8e44ad',
  live: '#1e9e4a',
  warn: '#c27c0e',
  fault: '#d64545',
  served: '#2c7fb8'
}

const n = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) ? x : Number(x) || 0)
const f1 = (x: number): string => (Math.round(x * 10) / 10).toString()

function arrow(x1: number, y1: number, x2: number, y2: number, color: string, opts: { dash?: string; width?: number; title?: string } = {}): string {
  const t = opts.title ? `<title>${esc(opts.title)}</title>` : ''
  return `<line x1="${f1(x1)}" y1="${f1(y1)}" x2="${f1(x2)}" y2="${f1(y2)}" stroke="${color}" stroke-width="${opts.width ?? 1.2}"${opts.dash ? ` stroke-dasharray="${opts.dash}"` : ''} marker-end="url(#ah)">${t}</line>`
}

function text(x: number, y: number, s: string, color = C.text, anchor: 'start' | 'middle' | 'end' = 'start', size = 10): string {
  return `<text x="${f1(x)}" y="${f1(y)}" fill="${color}" font-size="${size}" text-anchor="${anchor}">${esc(s)}</text>`
}

const DEFS = `<defs><marker id="ah" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z" fill="context-stroke"/></marker></defs>`

const LANES = ['clients', 'a', 'b', 'disk'] as const
/** an entries batch is drawn to the ack that came within this long, else as sent and not (yet) acked */
const ACK_WINDOW_MS = 500
type Lane = (typeof LANES)[number]

/**
 * The space-time diagram around one failover: a lane per replica, the disk server and the
 * clients; log entries and acks as arrows, suspicion, test-and-set, go-live, the fault as a
 * band, and the three moments of the failover (cut, go-live, first answered operation) as lines.
 */
export function spaceTimeSvg(d: ReportData, fo: Failover, index: number): string {
  const end0 = Math.max(fo.liveAt ?? fo.at, fo.servedAt ?? fo.liveAt ?? fo.at)
  const from = fo.at - 600
  const to = Math.min(Math.max(end0 + 600, fo.at + 1500), fo.at + 12_000)
  const W = 960
  const L = 96
  const R = 16
  const H = 300
  const laneY: Record<Lane, number> = { clients: 44, a: 112, b: 180, disk: 248 }
  const x = (t: number) => L + ((t - from) / (to - from)) * (W - L - R)
  const yOf = (h: string): number => laneY[(LANES as readonly string[]).includes(h) ? (h as Lane) : 'clients']
  const parts: string[] = []
  // fault bands over the lanes they concern
  for (const s of d.spans) {
    const e = s.end ?? d.t1
    if (e < from || s.start > to) continue
    const ends = s.target.includes('-') ? s.target.split('-') : [s.target]
    const ys = ends.map(yOf)
    const x1 = Math.max(L, x(s.start))
    const x2 = Math.min(W - R, x(e))
    const col = BAND[s.kind] ?? C.fault
    parts.push(
      `<rect class="band" x="${f1(x1)}" y="${f1(Math.min(...ys) - 14)}" width="${f1(Math.max(2, x2 - x1))}" height="${f1(Math.max(...ys) - Math.min(...ys) + 28)}" fill="${col}" fill-opacity="0.13" stroke="${col}" stroke-opacity="0.5"><title>${esc(`${s.what} (${s.id})`)}</title></rect>`
    )
    parts.push(text(x1 + 3, Math.min(...ys) - 17, s.what, col))
  }
  // lanes
  for (const l of LANES) {
    parts.push(
      `<line x1="${L}" y1="${laneY[l]}" x2="${W - R}" y2="${laneY[l]}" stroke="${C.lane}" stroke-width="${l === 'clients' ? 1 : 2}"${l === 'clients' ? ' stroke-dasharray="3 4"' : ''}/>`
    )
    parts.push(text(8, laneY[l] + 4, l === 'clients' ? 'clients' : l === 'disk' ? 'disk server' : `replica ${l}`, C.text, 'start', 12))
  }
  // time axis: ms from the cut
  const span = to - from
  const step = span > 8000 ? 2000 : span > 4000 ? 1000 : span > 2000 ? 500 : 250
  for (let t = Math.ceil((from - fo.at) / step) * step; fo.at + t <= to; t += step) {
    const xx = x(fo.at + t)
    parts.push(`<line x1="${f1(xx)}" y1="${H - 22}" x2="${f1(xx)}" y2="${H - 18}" stroke="${C.faint}"/>`)
    parts.push(text(xx, H - 8, `${t >= 0 ? '+' : ''}${t} ms`, C.faint, 'middle'))
  }
  const evs = d.agent.filter((e) => e.t >= from && e.t <= to)
  const acks = evs.filter((e) => e.type === 'ack')
  // role changes in quick succession (live, then primary after a restore) would print over each other: the last one in 50 px stands
  const shown = evs.filter((e) => {
    if (e.type !== 'role') return true
    const next = evs.find((o) => o.t > e.t && o.type === 'role' && o.host === e.host)
    return !next || x(next.t) - x(e.t) > 50
  })
  for (const e of shown) parts.push(...agentMarks(e, x, yOf, acks))
  // the failover's three moments
  // the three moments' labels share the top rows: a label that would run into the previous one drops a row
  const placed: { x1: number; x2: number; row: number }[] = []
  const moment = (t: number | null, label: string, col: string, cls: string) => {
    if (t === null || t < from || t > to) return
    const lx = x(t) + 3
    const w = label.length * 6.6
    let row = 0
    while (placed.some((p) => p.row === row && lx < p.x2 + 6 && lx + w > p.x1)) row++
    placed.push({ x1: lx, x2: lx + w, row })
    parts.push(
      `<line class="${cls}" x1="${f1(x(t))}" y1="${16 + row * 12}" x2="${f1(x(t))}" y2="${H - 26}" stroke="${col}" stroke-width="1.5" stroke-dasharray="5 3"/>`
    )
    parts.push(text(lx, 12 + row * 12, label, col, 'start', 11))
  }
  moment(fo.at, 'cut', C.fault, 'm-cut')
  moment(fo.liveAt, `${fo.host} live`, C.live, 'm-live')
  moment(fo.servedAt, 'first op answered', C.served, 'm-served')
  const title = `failover ${index + 1}: ${fo.host} goes live${fo.liveAt !== null ? ` ${fo.liveAt - fo.at} ms after the cut` : ''}`
  return `<svg class="spacetime" role="img" aria-label="${esc(title)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg">${DEFS}${parts.join('')}</svg>`
}

function agentMarks(e: AgentPoint, x: (t: number) => number, yOf: (h: string) => number, acks: AgentPoint[]): string[] {
  const out: string[] = []
  const d = e.data
  const hx = x(e.t)
  const hy = yOf(e.host)
  const other = e.host === 'a' ? 'b' : 'a'
  switch (e.type) {
    case 'entries': {
      const to = String(d.to)
      if (to !== 'a' && to !== 'b') break
      // acks are cumulative: the first one from the backup covering these entries, soon after (a later generation's acks are another channel)
      const ack = acks.find((a) => a.host === to && n(a.data.n) >= n(d.first) && a.t >= e.t && a.t - e.t <= ACK_WINDOW_MS)
      const tx = ack ? x(ack.t) : hx + 4
      out.push(
        arrow(hx, hy, Math.max(hx + 3, tx), yOf(to), C.entries, {
          dash: ack ? undefined : '3 3',
          title: `${e.host} → ${to}: log entries ${n(d.first)}–${n(d.last)} (${n(d.count)})`
        })
      )
      break
    }
    case 'ack':
      out.push(arrow(hx, hy, hx + 3, yOf(other), C.ack, { width: 1, title: `${e.host} acks entry ${n(d.n)}: ${other} releases the outputs it held` }))
      break
    case 'suspect':
      out.push(text(hx, hy - 8, '?', C.warn, 'middle', 14))
      out.push(`<circle cx="${f1(hx)}" cy="${hy}" r="3" fill="${C.warn}"><title>${esc(`${e.host} ${suspicionText(d)}`)}</title></circle>`)
      break
    case 'tas': {
      const res = String(d.result)
      const dy = yOf('disk')
      if (res === 'unreachable') {
        out.push(arrow(hx, hy, hx + 4, (hy + dy) / 2, C.fault, { dash: '3 3', title: `${e.host}: the test-and-set is unreachable (gen ${n(d.gen)})` }))
        out.push(text(hx + 6, (hy + dy) / 2, '✕', C.fault))
      } else {
        out.push(arrow(hx - 6, hy, hx - 3, dy, C.tas, { title: `${e.host} asks the disk server's test-and-set for gen ${n(d.gen)}` }))
        out.push(arrow(hx - 3, dy, hx, hy, C.tas, { width: 1.6, title: `test-and-set gen ${n(d.gen)}: ${e.host} ${res}` }))
        // below the lane (towards the disk server), clear of the go-live label above it and the role label just under it
        out.push(text(hx + 5, hy + 28, `TAS g${n(d.gen)} ${res}`, C.tas))
      }
      break
    }
    case 'disk-tas':
      out.push(
        `<rect x="${f1(hx - 4)}" y="${hy - 4}" width="8" height="8" transform="rotate(45 ${f1(hx)} ${hy})" fill="${C.tas}"><title>${esc(`disk server: test-and-set gen ${n(d.gen)} from ${String(d.from)}: ${d.won ? 'granted' : 'refused'}`)}</title></rect>`
      )
      break
    case 'go-live':
      out.push(
        `<circle class="golive" cx="${f1(hx)}" cy="${hy}" r="6" fill="${C.live}"><title>${esc(`${e.host} goes live in gen ${n(d.gen)}: replayed through entry ${n(d.replayed)}, re-emitted ${n(d.reemitted)} outputs`)}</title></circle>`
      )
      out.push(text(hx + 9, hy - 9, `LIVE g${n(d.gen)}`, C.live, 'start', 11))
      break
    case 'role':
      if (d.role === 'halted' || d.role === 'live' || d.role === 'primary' || d.role === 'backup')
        out.push(text(hx + 2, hy + 14, `▸${String(d.role)}`, d.role === 'halted' ? C.fault : C.faint))
      break
    case 'fault':
    case 'heal':
      out.push(text(hx, hy + 4, e.type === 'fault' ? '⚡' : '✓', e.type === 'fault' ? C.fault : C.ack, 'middle', 12))
      break
    case 'diverged':
      out.push(text(hx, hy + 5, '✕', C.fault, 'middle', 16))
      break
    case 'channel-link':
    case 'disk-link':
      if (d.state === 'down') out.push(text(hx, hy + 4, '⨯', C.warn, 'middle', 12))
      break
    case 'snapshot':
      if (d.direction === 'sent') out.push(arrow(hx, hy, hx + 8, yOf(other), C.tas, { width: 2, title: `${e.host} → ${other}: snapshot for gen ${n(d.gen)}` }))
      break
  }
  return out
}

/** One chart over the whole session: one or more series, faults as bands, go-lives as ticks. */
export function timeChartSvg(
  d: ReportData,
  cls: string,
  label: string,
  unit: string,
  series: { name: string; color: string; pick: (p: LoadPoint) => number }[]
): string {
  const W = 960
  const H = 220
  const L = 64
  const R = 16
  const T = 22
  const B = 30
  const from = d.t0
  const to = Math.max(d.t1, from + 1)
  const x = (t: number) => L + ((t - from) / (to - from)) * (W - L - R)
  const pts = thin(d.loadPoints, 1500)
  const max = Math.max(1, ...pts.flatMap((p) => series.map((s) => s.pick(p))))
  const top = niceCeil(max)
  const y = (v: number) => H - B - (Math.min(v, top) / top) * (H - T - B)
  const parts: string[] = []
  for (const s of d.spans) bandRect(parts, s, x, T, H - B, d.t1)
  for (const f of d.failovers)
    if (f.liveAt !== null)
      parts.push(
        `<line x1="${f1(x(f.liveAt))}" y1="${T}" x2="${f1(x(f.liveAt))}" y2="${H - B}" stroke="${C.live}" stroke-width="1" stroke-opacity="0.7"><title>${esc(`${f.host} live`)}</title></line>`
      )
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4
    parts.push(`<line x1="${L}" y1="${f1(y(v))}" x2="${W - R}" y2="${f1(y(v))}" stroke="#e3e7ec"/>`)
    parts.push(text(L - 6, y(v) + 3, `${Math.round(v * 100) / 100}`, C.faint, 'end'))
  }
  const secs = (to - from) / 1000
  const step = niceCeil(secs / 8)
  for (let s = 0; s <= secs; s += step) parts.push(text(x(from + s * 1000), H - 10, `${s}s`, C.faint, 'middle'))
  for (const s of series) {
    if (!pts.length) break
    const path = pts.map((p, i) => `${i ? 'L' : 'M'}${f1(x(p.t))},${f1(y(s.pick(p)))}`).join('')
    parts.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="1.4"><title>${esc(s.name)}</title></path>`)
  }
  if (!pts.length) parts.push(text(W / 2, H / 2, 'no load ran in this recording', C.faint, 'middle', 13))
  parts.push(text(L, 14, `${label} (${unit})`, C.text, 'start', 12))
  let lx = W - R
  for (const s of [...series].reverse()) {
    parts.push(text(lx, 14, `— ${s.name}`, s.color, 'end', 11))
    lx -= 24 + s.name.length * 7
  }
  return `<svg class="chart ${cls}" role="img" aria-label="${esc(label)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg>`
}

function bandRect(parts: string[], s: FaultSpan, x: (t: number) => number, y1: number, y2: number, t1: number): void {
  const col = BAND[s.kind] ?? C.fault
  const x1 = x(s.start)
  const x2 = x(s.end ?? t1)
  parts.push(
    `<rect class="band" x="${f1(x1)}" y="${y1}" width="${f1(Math.max(1.5, x2 - x1))}" height="${y2 - y1}" fill="${col}" fill-opacity="0.16"><title>${esc(`${s.what} (${s.id}), ${Math.round(((s.end ?? t1) - s.start) / 10) / 100} s`)}</title></rect>`
  )
}

/** At most `max` points, keeping each bucket's extremes visible (a failover's dip must not vanish). */
function thin(ps: LoadPoint[], max: number): LoadPoint[] {
  if (ps.length <= max) return ps
  const per = Math.ceil(ps.length / (max / 2))
  const out: LoadPoint[] = []
  for (let i = 0; i < ps.length; i += per) {
    const chunk = ps.slice(i, i + per)
    const lo = chunk.reduce((m, p) => (p.opsPerSec < m.opsPerSec ? p : m))
    const hi = chunk.reduce((m, p) => (p.opsPerSec > m.opsPerSec ? p : m))
    out.push(...(lo.t <= hi.t ? [lo, hi] : [hi, lo]))
  }
  return out
}

function niceCeil(v: number): number {
  if (v <= 0) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p
  return 10 * p
}

/** The fault colours, for the legend under the charts. */
export function bandLegend(kinds: Iterable<string>): string {
  return [...new Set(kinds)].map((k) => `<span class="swatch" style="background:${BAND[k] ?? C.fault}"></span>${esc(k)}`).join(' ')
}
