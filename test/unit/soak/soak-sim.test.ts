// The soak on the simulated lab (the real core, disk arbiter and guests under the
// simulator's clock), driven through the console backend: the same seed runs the same
// schedule — the same faults, targets and planned times, each injected no earlier than
// planned on the simulator's clock — another seed another one; the soak's progress is
// published as `drill` events and recorded, and its recording makes a report.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { DrillRun } from '../../../main/api/contract.js'
import { dispatch } from '../../../main/api/dispatch.js'
import { ConsoleBackend } from '../../../main/console/console-backend.js'
import { writeReport } from '../../../main/report/report.js'
import { runSoak, type SoakResult } from '../../../main/soak/soak.js'

const home = mkdtempSync(join(tmpdir(), 'ftlab-soak-sim-'))
afterAll(() => rmSync(home, { recursive: true, force: true }))

async function soak(seed: number): Promise<{ result: SoakResult; drills: DrillRun[]; recording: string }> {
  const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100 })
  const drills: DrillRun[] = []
  b.subscribe((ev) => {
    if (ev.topic === 'drill') drills.push(ev.run)
  })
  let result: SoakResult
  try {
    result = await runSoak(b, {
      lab: { kind: 'simulated' },
      seed,
      faults: 5,
      minutes: 5,
      guest: 'kv',
      mode: 'rsm',
      clients: 3,
      heartbeatMs: 25,
      suspectMs: 200,
      loadRunSeconds: 4
    })
  } finally {
    await dispatch(b, 'lab.stop', {}).catch(() => {})
    await b.close()
  }
  return { result, drills, recording: b.recorder!.finished.at(-1)! }
}

/** what a run did with its schedule: each fault, when it was planned, and whether it went in */
const outcomes = (r: SoakResult) => r.faults.map((f) => ({ n: f.n, what: f.what, plannedAt: f.plannedAt, injected: 'injected' in f.result }))

describe('the soak on the simulated lab', () => {
  let first: Awaited<ReturnType<typeof soak>>

  it('runs the same schedule for the same seed, on the simulator clock, and passes its checks', async () => {
    first = await soak(4242)
    const again = await soak(4242)
    for (const r of [first.result, again.result]) expect(r.ok, `${r.run.verdict?.summary}\n${r.run.log.map((l) => l.text).join('\n')}`).toBe(true)
    expect(again.result.schedule).toBe(first.result.schedule)
    expect(again.result.plan).toEqual(first.result.plan)
    expect(outcomes(again.result)).toEqual(outcomes(first.result))
    for (const f of [...first.result.faults, ...again.result.faults]) if (f.at !== null) expect(f.at).toBeGreaterThanOrEqual(f.plannedAt)
    expect(first.result.faults.filter((f) => 'injected' in f.result).length).toBe(5)
    expect(first.result.schedule).toMatch(/^# soak schedule: seed 4242, 5 faults .*simulator clock\n {3}1 /)
  }, 120_000)

  it('runs another schedule for another seed', async () => {
    const other = await soak(4243)
    expect(other.result.schedule).not.toBe(first.result.schedule)
    expect(other.result.plan.map((f) => [f.kind, f.target, f.at])).not.toEqual(first.result.plan.map((f) => [f.kind, f.target, f.at]))
  }, 120_000)

  it('publishes its progress as drill events of kind soak, ending with the verdict and the failovers it saw', () => {
    const last = first.drills.at(-1)!
    expect(first.drills.length).toBeGreaterThan(2)
    expect(first.drills.every((d) => d.kind === 'soak' && d.seed === 4242 && d.id === last.id)).toBe(true)
    expect(last).toMatchObject({ state: 'passed', verdict: { ok: true }, step: null })
    expect(last.scenario).toBe(first.result.schedule)
    expect(last.expectations.map((e) => e.text)).toEqual(expect.arrayContaining(['no acknowledged write lost', 'never two live replicas', 'no divergence']))
    expect(last.expectations.every((e) => e.ok === true)).toBe(true)
    expect(last.failovers.length).toBeGreaterThan(0)
    for (const f of last.failovers) {
      expect(f.liveAt).not.toBeNull()
      expect(f.liveAt!).toBeGreaterThanOrEqual(f.at)
    }
  })

  it('leaves a recording whose report shows the soak’s verdict, schedule and a space-time diagram per failover', async () => {
    const out = await writeReport(first.recording)
    expect(out).toBe(first.recording.replace(/\.ftrec$/, '.html'))
    const html = readFileSync(out, 'utf8')
    expect(html).toContain('<b>PASSED</b>')
    expect(html).toContain('# soak schedule: seed 4242')
    const failovers = first.drills.at(-1)!.failovers.length
    expect(html.match(/<svg class="spacetime"/g)?.length ?? 0).toBe(Math.min(12, failovers))
    expect(html).toMatch(/<svg class="chart throughput"/)
  })
})
