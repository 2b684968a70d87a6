// Built-in drills on the simulated lab (the real replica core, disk arbiter and guests under
// the simulated clock and network), driven through the console like the UI drives it.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ApiEvent, DrillRun } from '../../../main/api/contract.js'
import { ConsoleBackend } from '../../../main/console/console-backend.js'

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

async function drill(name: string, seed = 7): Promise<{ run: DrillRun; events: ApiEvent[] }> {
  const b = backend()
  const events: ApiEvent[] = []
  b.subscribe((ev) => events.push(ev))
  const { done } = b.drills.start({ name, seed, lab: 'simulated' })
  const runs = await done
  return { run: runs[runs.length - 1], events }
}

const explain = (r: DrillRun) => `${r.verdict?.summary}\n${r.log.map((l) => l.text).join('\n')}\n${JSON.stringify(r.expectations, null, 1)}`

describe('built-in drills on the simulated lab', () => {
  it('power-cut-primary: b goes live, nothing acknowledged is lost, and the run is recorded', async () => {
    const { run, events } = await drill('power-cut-primary')
    expect(run.state, explain(run)).toBe('passed')
    expect(run.failovers[0].liveAt).not.toBeNull()
    expect(run.recording).toMatch(/\.ftrec$/)
    expect(events.filter((e) => e.topic === 'drill').length).toBeGreaterThan(3)
  }, 90_000)
})
