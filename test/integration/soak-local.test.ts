// The nemesis soak on the embedded local lab (real agent processes): at least 200 random
// faults — power cuts, pauses, isolation, one-way and two-way link cuts, disk-server cuts,
// loss, delay, double failures — under a kv load, and nothing acknowledged is lost, no two
// replicas are live at once, every history is linearizable, no replica diverges, and
// redundancy is back at the end. Fast timing (25 ms heartbeats, 300 ms suspicion) keeps it to about six minutes on two cores.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { dispatch } from '../../main/api/dispatch.js'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { LabStore } from '../../main/lab/lab-state.js'
import { openLocalLab } from '../../main/lab/local-lab.js'
import { runSoak } from '../../main/soak/soak.js'
import { requireReplicaAgent } from '../support/agent.js'

await requireReplicaAgent()

const home = mkdtempSync(join(tmpdir(), 'ftlab-soak-local-'))
afterAll(async () => {
  // a soak cut short by the test's timeout leaves its lab running: stop its agents
  if (new LabStore(home).load('local')) await openLocalLab('local', { home }).stop()
  rmSync(home, { recursive: true, force: true })
})

describe('the nemesis soak on the local lab', () => {
  it('survives at least 200 random faults with nothing lost, split or non-linearizable', async () => {
    const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100, record: false })
    let r
    try {
      r = await runSoak(b, {
        lab: { kind: 'local' },
        seed: 11,
        faults: 210,
        // the soak's own bound ends it (healed, checked, stopped) before the test's timeout on a slow machine
        minutes: 9,
        guest: 'kv',
        mode: 'rsm',
        clients: 4,
        heartbeatMs: 25,
        // above a loaded machine's snapshot latency: a shorter timeout makes restores time out (docs/soak-and-reports.md)
        suspectMs: 300,
        loadRunSeconds: 20
      })
    } finally {
      await dispatch(b, 'lab.stop', {}).catch(() => {})
      await b.close()
    }
    const why = `${r.run.verdict?.summary}\n${r.checks.map((c) => `${c.ok ? 'ok' : 'VIOLATED'} ${c.text}: ${c.detail}`).join('\n')}\n${r.run.log
      .slice(-40)
      .map((l) => l.text)
      .join('\n')}`
    const injected = r.faults.filter((f) => 'injected' in f.result)
    expect(injected.length, why).toBeGreaterThanOrEqual(200)
    expect(
      r.checks.map((c) => [c.text, c.ok]),
      why
    ).toEqual(r.checks.map((c) => [c.text, true]))
    expect(r.ok, why).toBe(true)
    expect(r.loads.length).toBeGreaterThan(1)
    expect(r.loads.every((l) => l.result === 'valid' && l.lostWrites === 0)).toBe(true)
    // the schedule's double failures happened and were recovered from the disk server
    expect(r.plan.some((f) => f.overlap)).toBe(true)
    expect(r.powerOns).toBeGreaterThan(0)
    expect(r.restores).toBeGreaterThan(20)
    expect(r.run.failovers.length).toBeGreaterThan(20)
  }, 720_000)
})
