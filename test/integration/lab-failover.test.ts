// End to end on the embedded local lab: a power cut of the primary under load, the backup
// going live, the clients following it, no acknowledged write lost, duplicates at cut-over
// dropped; then restore redundancy and fail over the other way.
// Fails (with the agent's stderr) when the agent bundle cannot start a replica: never skips.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { checkRun } from '../../main/check/check-run.js'
import { requireReplicaAgent } from '../support/agent.js'
import type { Lab } from '../../main/lab/lab.js'
import { startLocalLab } from '../../main/lab/local-lab.js'
import { paired, role, untilStatus } from '../support/lab.js'
import type { HistoryOp } from '../../main/load/history.js'
import { finalRead, runLoad, type LoadResult } from '../../main/load/load-runner.js'

await requireReplicaAgent()
const KEYS = 8

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

/** Load for a while and power-cut `victim` once enough operations have completed. */
async function loadThroughPowerCut(lab: Lab, victim: string, prefix: string): Promise<{ result: LoadResult; cutAt: number }> {
  let cut: Promise<unknown> | null = null
  let cutAt = 0
  const result = await runLoad({
    targets: lab.serviceEndpoints(),
    durationMs: 6000,
    clients: 4,
    keys: KEYS,
    clientPrefix: prefix,
    progressEveryMs: 100,
    onProgress: (p) => {
      if (cut === null && p.completed >= 200) {
        cutAt = performance.timeOrigin + performance.now()
        cut = lab.powerCut(victim)
      }
    }
  })
  expect(cut, 'the power cut happened during the load').not.toBeNull()
  await cut
  return { result, cutAt }
}

function answeredAfter(history: HistoryOp[], at: number, target: string): number {
  return history.filter((h) => h.status === 'ok' && h.invokeMs > at && h.target === target).length
}

describe.each(['rsm', 'state-transfer'] as const)('local lab: failover in %s mode', (mode) => {
  it(`primary power cut under load: the backup goes live, clients follow, nothing acknowledged is lost; then back the other way`, async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const lab = await startLocalLab({ name: 'failover', mode }, { home })
    cleanups.push(() => lab.stop())
    const [aService, bService] = lab.serviceEndpoints().map((e) => `${e.host}:${e.port}`)
    await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))

    // a dies under load; b goes live
    const one = await loadThroughPowerCut(lab, 'a', 'r1-')
    await untilStatus(lab, 'b live alone', (rows) => rows.get('a')?.state === 'down' && role(rows, 'b') === 'live')
    // the survivor's log keeps why it went live: the silence, the limit and what set it, and the test-and-set it won
    const logOfB = readFileSync(join(home, 'labs', 'failover', 'b-1', 'agent.log'), 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as { msg: string; data?: Record<string, unknown> })
    const suspicion = logOfB.find((l) => l.msg === 'suspect')
    expect(suspicion?.data).toMatchObject({ peer: 'a', silentMs: expect.any(Number), limitMs: expect.any(Number), by: expect.any(String) })
    expect(suspicion!.data!.silentMs as number).toBeGreaterThan(suspicion!.data!.limitMs as number)
    expect(logOfB.find((l) => l.msg === 'test-and-set')?.data).toMatchObject({ gen: 1, result: 'won' })
    const s1 = one.result.summary
    expect(s1.failoversFollowed).toBeGreaterThanOrEqual(1)
    expect(answeredAfter(one.result.history, one.cutAt, bService)).toBeGreaterThan(0)
    expect(s1.duplicatesDropped, 'replies re-emitted by the new live replica were seen and dropped').toBeGreaterThanOrEqual(1)
    const final1 = await finalRead(lab.serviceEndpoints(), one.result.keys)
    const v1 = checkRun(one.result.history, final1)
    expect(
      v1.checks.filter((c) => c.valid !== true),
      JSON.stringify(v1.checks, null, 1)
    ).toEqual([])

    // restore redundancy onto a fresh a, in generation 2
    expect(await lab.restore()).toEqual({ from: 'b', to: 'a', gen: 2 })
    await untilStatus(lab, 'b primary with the new a as its backup', paired('b', 'a'))

    // and the other way: b dies, a goes live
    const two = await loadThroughPowerCut(lab, 'b', 'r2-')
    await untilStatus(lab, 'a live alone', (rows) => rows.get('b')?.state === 'down' && role(rows, 'a') === 'live')
    expect(answeredAfter(two.result.history, two.cutAt, aService)).toBeGreaterThan(0)
    // round one's keys too: what was acknowledged then must survive two failovers and a restore
    const final2 = await finalRead(lab.serviceEndpoints(), [...one.result.keys, ...two.result.keys])
    const v2 = checkRun([...one.result.history, ...two.result.history], final2)
    expect(
      v2.checks.filter((c) => c.valid !== true),
      JSON.stringify(v2.checks, null, 1)
    ).toEqual([])

    expect(await lab.restore()).toEqual({ from: 'a', to: 'b', gen: 3 })
    await untilStatus(lab, 'a primary with the new b as its backup', paired('a', 'b'))
  }, 120_000)
})
