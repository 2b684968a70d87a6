// The HTML report over a synthetic recording: the verdict from a drill run's own events, or
// from the recorded load verdicts and invariants when there is no run; every string from the
// recording escaped; one file with no external reference; failovers found from the events.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { idleLoadStatus, type ApiEvent, type DrillRun, type LoadVerdict } from '../../../main/api/contract.js'
import type { RecordEntry, RecordingHeader } from '../../../main/record/format.js'
import { Recording } from '../../../main/record/reader.js'
import { syntheticSession } from '../../../main/record/synthetic.js'
import { RecordingWriter } from '../../../main/record/writer.js'
import { collectReport } from '../../../main/report/collect.js'
import { renderReport, reportVerdict, writeReport } from '../../../main/report/report.js'
import { esc } from '../../../main/report/svg.js'

const dir = mkdtempSync(join(tmpdir(), 'ftlab-report-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const T0 = Date.UTC(2026, 11, 1, 14, 0, 0)
const EVIL = '<script>alert("x")</script>&\'"'
const header = (): Omit<RecordingHeader, 'format' | 'version'> => ({
  ftlabVersion: '0.1.0-test',
  startedAt: T0,
  lab: { kind: 'simulated', name: 'simulated', guest: 'kv', mode: 'rsm', timing: { heartbeatMs: 100, suspectMs: 800 }, sim: { speed: 1, seed: 7 }, hosts: [] },
  console: { host: 'test', pid: 1 }
})

let files = 0
let seq = 100_000
function recording(records: RecordEntry[]): string {
  const path = join(dir, `r${++files}.ftrec`)
  const w = RecordingWriter.create(path, header())
  for (const r of records) w.append(r)
  w.close()
  return path
}
const ev = (t: number, e: Record<string, unknown>): RecordEntry => ({ k: 'ev', t, ev: { ...e, ts: t, seq: ++seq } as ApiEvent })

/** the synthetic session (a power cut of a at 5 s, b live 900 ms later) with the agent events of that failover and a load verdict */
function failoverSession(verdict: LoadVerdict): RecordEntry[] {
  const cut = T0 + 5000
  // the synthetic statuses list the power cut from the cut on; it began at the cut
  const recs = [...syntheticSession(T0, 10, 200, 5000)].map((r) =>
    r.k === 'ev' && r.ev.topic === 'status'
      ? { ...r, ev: { ...r.ev, status: { ...r.ev.status, faults: r.ev.status.faults.map((f) => ({ ...f, startedAt: cut })) } } }
      : r
  )
  recs.push(ev(cut + 800, { topic: 'agent', host: 'b', type: 'suspect', data: { peer: 'a', silentMs: 800 } }))
  recs.push(ev(cut + 880, { topic: 'agent', host: 'b', type: 'tas', data: { gen: 1, result: 'won' } }))
  recs.push(ev(cut + 900, { topic: 'agent', host: 'b', type: 'go-live', data: { gen: 1, replayed: 40, reemitted: 2 } }))
  recs.push(ev(T0 + 9990, { topic: 'load', load: { ...idleLoadStatus(), startedAt: T0, verdict } }))
  return recs.sort((x, y) => x.t - y.t)
}

const valid: LoadVerdict = { result: 'valid', summary: 'valid (no acknowledged write lost ok)', ok: 900, failed: 0, unknown: 2, lostWrites: 0, details: [] }

describe('the report of a recording without a drill run', () => {
  it('takes its verdict from the load verdicts and invariants, and finds the failover from the events', async () => {
    const out = await writeReport(recording(failoverSession(valid)))
    const html = readFileSync(out, 'utf8')
    expect(html).toContain('<b>PASSED</b>')
    expect(html).toContain('load run 1: valid (no acknowledged write lost ok)')
    // the failover: the power cut (fault from the status at 5 s), b live 900 ms later
    expect(html).toMatch(/Failovers \(1\)/)
    expect(html).toContain('<svg class="spacetime"')
    expect(html).toMatch(/b live 900 ms after the cut/)
    expect(html).toContain('power cut a')
    expect(html).toContain('TAS g1 won')
  })

  it('fails when a load verdict is invalid, with its evidence', () => {
    const bad: LoadVerdict = {
      ...valid,
      result: 'invalid',
      summary: 'INVALID (no acknowledged write lost VIOLATED)',
      lostWrites: 1,
      details: ['no acknowledged write lost: k3 lost 17']
    }
    const rec = Recording.open(recording(failoverSession(bad)))
    try {
      const v = reportVerdict(collectReport(rec))
      expect(v.ok).toBe(false)
      expect(v.evidence.find((e) => e.ok === false)).toMatchObject({
        text: 'load run 1: INVALID (no acknowledged write lost VIOLATED)',
        detail: 'no acknowledged write lost: k3 lost 17'
      })
    } finally {
      rec.close()
    }
  })

  it('says there is no verdict when nothing was checked', () => {
    const rec = Recording.open(recording([...syntheticSession(T0, 3, 100)]))
    try {
      const html = renderReport(collectReport(rec))
      expect(html).toContain('<b>NO VERDICT</b>')
      expect(html).toContain('No replica went live in this recording.')
    } finally {
      rec.close()
    }
  })
})

describe("the report's list of actions", () => {
  it('puts what a terminal did to the lab among the console requests, in time order', () => {
    const recs: RecordEntry[] = [
      ...syntheticSession(T0, 3, 100),
      { k: 'req' as const, t: T0 + 100, method: 'load.start', params: { clients: 2 } },
      ev(T0 + 1500, {
        topic: 'mark',
        mark: { kind: 'outside', label: `changed outside the console by ftlab fault (pid 7), cutting the power of b: fault f1 opened: power cut b ${EVIL}` }
      }),
      ev(T0 + 1600, { topic: 'mark', mark: { kind: 'warning', label: 'not an action' } }),
      { k: 'req' as const, t: T0 + 2000, method: 'lab.restore', params: {} }
    ].sort((x, y) => x.t - y.t)
    const rec = Recording.open(recording(recs))
    try {
      const html = renderReport(collectReport(rec))
      const list = html.slice(html.indexOf('<section id="scenario">'))
      const at = (s: string) => list.indexOf(s)
      expect(at('load.start')).toBeGreaterThan(-1)
      expect(at('load.start')).toBeLessThan(at('changed outside the console by ftlab fault (pid 7)'))
      expect(at('changed outside the console')).toBeLessThan(at('lab.restore'))
      expect(list).toContain(esc(EVIL))
      expect(list).not.toContain(EVIL)
      expect(list).not.toContain('not an action')
    } finally {
      rec.close()
    }
  })
})

describe('the report of a drill run', () => {
  const run = (ok: boolean): DrillRun => ({
    id: 'power-cut-primary-1',
    kind: 'drill',
    name: 'power-cut-primary',
    title: `Power cut of the primary ${EVIL}`,
    seed: 9,
    repeat: 1,
    repeats: 1,
    state: ok ? 'passed' : 'failed',
    startedAt: T0,
    endedAt: T0 + 9000,
    step: null,
    log: [{ t: T0 + 5000, text: `power cut a; client wrote ${EVIL}` }],
    expectations: [{ text: 'failover within 2000 ms', ok, detail: ok ? 'took 900 ms' : 'took 2900 ms', evidence: [] }],
    failovers: [{ at: T0 + 5000, host: 'b', liveAt: T0 + 5900, servedAt: T0 + 6400 }],
    verdict: { ok, summary: ok ? 'passed' : 'failed: failover took 2900 ms', explanation: `the backup went live ${EVIL}` },
    scenario: `name: power-cut-primary\nsteps:\n  - at: 5s\n    fault: { power: a }  # ${EVIL}\n`,
    recording: null
  })

  it('shows the run’s verdict, expectations, failover durations and scenario, escaping everything from the recording', async () => {
    const recs = failoverSession(valid)
    recs.push(ev(T0 + 9500, { topic: 'drill', run: run(false) }))
    const html = readFileSync(await writeReport(recording(recs)), 'utf8')
    expect(html).toContain('<b>FAILED</b>')
    expect(html).toContain('failover within 2000 ms')
    expect(html).toContain('took 2900 ms')
    // the run's own failover: cut → live 900 ms, live → served 500 ms, cut → served 1400 ms
    expect(html).toMatch(/<td>900 ms<\/td><td>500 ms<\/td><td>1400 ms<\/td>/)
    expect(html).toContain('fault: { power: a }')
    expect(html).not.toContain('<script')
    expect(html).toContain(esc(EVIL))
  })

  it('is one file that refers to nothing outside it', async () => {
    const recs = failoverSession(valid)
    recs.push(ev(T0 + 9500, { topic: 'drill', run: run(true) }))
    const html = readFileSync(await writeReport(recording(recs), join(dir, 'out.html')), 'utf8')
    expect(html).toContain('<b>PASSED</b>')
    expect(html).toContain("default-src 'none'")
    expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?(https?:|\/\/|file:)/i)
    expect(html).not.toMatch(/@import|url\(\s*['"]?(https?:|\/\/)/i)
    expect(html).not.toMatch(/<(script|link|iframe|img)\b/i)
  })
})
