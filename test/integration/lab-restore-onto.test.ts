// Restore onto another machine with the real agents, on the embedded local lab (every
// "machine" is this one, so the move shows as new ports): after a round of failover and
// restore in place, the slot moves, the live replica reaches its new logging channel, and
// the moved replica takes over when the other one goes.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { requireReplicaAgent } from '../support/agent.js'
import { startLocalLab } from '../../main/lab/local-lab.js'
import { finalRead, runLoad } from '../../main/load/load-runner.js'
import { checkRun } from '../../main/check/check-run.js'
import { paired, role, untilStatus } from '../support/lab.js'

await requireReplicaAgent()
const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

describe('restore onto another machine (local lab)', () => {
  it('moves slot a to new addresses after a restore in place, pairs with it there, and fails over to it', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const lab = await startLocalLab({ name: 'onto', timing: { heartbeatMs: 50, suspectMs: 400 } }, { home })
    cleanups.push(() => lab.stop())
    await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))

    // a first round in place: b primary of a restored a
    await lab.powerCut('a')
    await untilStatus(lab, 'b live', (r) => role(r, 'b') === 'live')
    await lab.restore()
    await untilStatus(lab, 'b primary with a as its backup', paired('b', 'a'))
    const before = lab.snapshot().hosts.a

    // a fails again, and this time comes back on another machine with other ports
    await lab.powerCut('a')
    await untilStatus(lab, 'b live', (r) => role(r, 'b') === 'live')
    const r = await lab.restore({ onto: 'spare', timeoutMs: 20_000 })
    expect(r).toEqual({ from: 'b', to: 'a', gen: 3, machine: 'spare' })
    const after = lab.snapshot().hosts.a
    expect(after.channel!.port).not.toBe(before.channel!.port)
    expect(after.service!.port).not.toBe(before.service!.port)
    await untilStatus(lab, 'b primary with the moved a as its backup', paired('b', 'a'))

    // and the moved replica takes over when b goes
    let cut: Promise<unknown> | null = null
    const load = await runLoad({
      targets: lab.serviceEndpoints(),
      durationMs: 3000,
      clients: 2,
      keys: 4,
      clientPrefix: 'o-',
      progressEveryMs: 100,
      onProgress: (p) => {
        if (p.completed >= 100 && !cut) cut = lab.powerCut('b')
      }
    })
    expect(cut, 'b lost power during the load').not.toBeNull()
    await cut
    await untilStatus(lab, 'a live', (rows) => role(rows, 'a') === 'live')
    const v = checkRun(load.history, await finalRead(lab.serviceEndpoints(), load.keys))
    expect(v.checks.filter((c) => c.valid !== true)).toEqual([])
  })
})
