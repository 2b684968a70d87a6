// Split brain prevented by the disk server: cut the a↔b link both ways while both replicas
// still reach the disk server. Each suspects the other and asks the test-and-set; exactly
// one goes live, the other halts, and the clients keep a consistent service.
// Fails (with the agent's stderr) when the agent bundle cannot start a replica: never skips.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { checkRun } from '../../main/check/check-run.js'
import { requireReplicaAgent } from '../support/agent.js'
import { startLocalLab } from '../../main/lab/local-lab.js'
import { paired, role, untilStatus } from '../support/lab.js'
import { finalRead, runLoad } from '../../main/load/load-runner.js'

await requireReplicaAgent()
const KEYS = 8

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

describe('local lab: split brain', () => {
  it(`with the a↔b link cut both ways, exactly one replica stays live and the other halts`, async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const lab = await startLocalLab({ name: 'split' }, { home })
    cleanups.push(() => lab.stop())
    await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))

    const before = await runLoad({ targets: lab.serviceEndpoints(), durationMs: 1000, clients: 2, keys: KEYS, clientPrefix: 's1-' })
    const fault = await lab.injectFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false }, 60_000)
    cleanups.push(() => lab.heal(fault.id).catch(() => {}))

    const rows = await untilStatus(lab, 'one replica live and the other halted', (r) => {
      const roles = [role(r, 'a'), role(r, 'b')].sort()
      return roles[0] === 'halted' && roles[1] === 'live'
    })
    const live = role(rows, 'a') === 'live' ? 'a' : 'b'
    // the disk server's test-and-set picked that one
    expect(rows.get('disk')?.status?.disk?.tasWinner).toBe(live)

    // the service goes on through the live replica alone
    const during = await runLoad({ targets: lab.serviceEndpoints(), durationMs: 2000, clients: 2, keys: KEYS, clientPrefix: 's2-' })
    expect(during.summary.ok).toBeGreaterThan(0)
    const liveService = lab.serviceEndpoints()[live === 'a' ? 0 : 1]
    expect(during.history.filter((h) => h.status === 'ok').every((h) => h.target === `${liveService.host}:${liveService.port}`)).toBe(true)
    const final = await finalRead(lab.serviceEndpoints(), [...before.keys, ...during.keys])
    const verdict = checkRun([...before.history, ...during.history], final)
    expect(
      verdict.checks.filter((c) => c.valid !== true),
      JSON.stringify(verdict.checks, null, 1)
    ).toEqual([])

    // still exactly one live, however long the cut lasts
    const after = await lab.status()
    expect(after.filter((r) => r.status?.role === 'live').map((r) => r.host)).toEqual([live])
  }, 120_000)
})
