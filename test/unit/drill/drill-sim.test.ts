// Every built-in drill on the simulated lab (the real replica core, disk arbiter and guests
// under the simulated clock and network), driven through the console like the UI drives it:
// each passes, and the experiment's checker catches the violation it exists to show.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ApiEvent, DrillRun } from '../../../main/api/contract.js'
import { dispatch } from '../../../main/api/dispatch.js'
import { ConsoleBackend } from '../../../main/console/console-backend.js'
import { DrillLibrary, labsFor } from '../../../main/drill/library.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function backend(): ConsoleBackend {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-drill-'))
  const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100 })
  cleanups.push(() => rmSync(home, { recursive: true, force: true }))
  cleanups.push(() => b.close())
  return b
}

async function drill(b: ConsoleBackend, name: string, seed = 7): Promise<{ run: DrillRun; events: ApiEvent[] }> {
  const events: ApiEvent[] = []
  b.subscribe((ev) => events.push(ev))
  const { done } = b.drills.start({ name, seed, lab: 'simulated' })
  const runs = await done
  return { run: runs[runs.length - 1], events }
}

const explain = (r: DrillRun) => `${r.verdict?.summary}\n${r.log.map((l) => l.text).join('\n')}\n${JSON.stringify(r.expectations, null, 1)}`

const lib = new DrillLibrary()
const onSim = lib.names().filter((n) => labsFor(lib.load(n)).includes('simulated'))

describe('built-in drills on the simulated lab', () => {
  it('covers every built-in that the simulated lab can run', () => {
    expect(onSim.length).toBeGreaterThanOrEqual(10)
    expect(readdirSync(join(__dirname, '../../../drills')).length).toBeGreaterThanOrEqual(onSim.length)
  })

  for (const name of onSim) {
    it(`${name} passes, recorded, with its verdict explained`, async () => {
      const b = backend()
      const { run, events } = await drill(b, name)
      expect(run.state, explain(run)).toBe('passed')
      expect(run.verdict?.explanation).toBe(lib.load(name).explain)
      expect(run.expectations.every((e) => e.ok === true)).toBe(true)
      expect(run.recording).toMatch(/\.ftrec$/)
      // progress went out as drill events, the last one the finished run
      const drills = events.filter((e): e is Extract<ApiEvent, { topic: 'drill' }> => e.topic === 'drill')
      expect(drills.at(-1)?.run.state).toBe('passed')
      // the drill stopped the lab it started
      expect((await dispatch(b, 'lab.status', {})) as { state: string }).toMatchObject({ state: 'stopped' })
    }, 120_000)
  }

  it('the power cut drill fails its verdict when its bound cannot be met, and says why', async () => {
    const b = backend()
    const text = lib.text('power-cut-primary').replace('failover: { within: 3s }', 'failover: { within: 10ms }')
    const { done } = b.drills.start({ text, seed: 3, lab: 'simulated' })
    const [run] = await done
    expect(run.state).toBe('failed')
    expect(run.verdict?.summary).toMatch(/^FAILED: failover within 10ms: failover took \d+ ms/)
    expect(run.expectations.find((e) => e.text === 'failover within 10ms')?.ok).toBe(false)
  }, 120_000)

  it('drill.stop ends a running drill, heals and stops its lab', async () => {
    const b = backend()
    const { done } = b.drills.start({ name: 'power-cut-primary', seed: 3, lab: 'simulated' })
    const until = Date.now() + 20_000
    while (((await dispatch(b, 'lab.status', {})) as { load: { state: string } }).load.state !== 'running' && Date.now() < until)
      await new Promise((r) => setTimeout(r, 100))
    expect(await dispatch(b, 'drill.stop', {})).toEqual({ stopped: true })
    const [run] = await done
    expect(run.state).toBe('stopped')
    expect((await dispatch(b, 'lab.status', {})) as { state: string }).toMatchObject({ state: 'stopped' })
  }, 60_000)

  it('drill.run refuses while another lab is running, naming it, and leaves that lab alone', async () => {
    const b = backend()
    await dispatch(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm' })
    const { done } = b.drills.start({ name: 'power-cut-primary', seed: 3 })
    const [run] = await done
    expect(run.state).toBe('failed')
    expect(run.verdict?.summary).toMatch(/lab 'simulated' \(simulated\) is running; a drill starts a lab of its own/)
    // and it left the operator's lab alone
    expect((await dispatch(b, 'lab.status', {})) as { state: string }).toMatchObject({ state: 'running' })
  }, 60_000)

  it('drill.check and drill.list answer through the API', async () => {
    const b = backend()
    const list = (await dispatch(b, 'drill.list', {})) as { drills: { name: string; title: string; text: string }[] }
    expect(list.drills.map((d) => d.name)).toContain('power-cut-primary')
    const bad = (await dispatch(b, 'drill.check', { text: 'name: x\ntitle: [' })) as { ok: boolean; errors: { line: number; message: string }[] }
    expect(bad.ok).toBe(false)
    expect(bad.errors[0].message).toMatch(/^scenario:\d+:\d+: YAML syntax/)
    await expect(dispatch(b, 'drill.run', { name: 'no-such-drill' })).rejects.toThrow(/drill\.run\.name: no built-in drill 'no-such-drill'/)
    await expect(dispatch(b, 'drill.run', {})).rejects.toThrow(/needs exactly one of name/)
  })
})
