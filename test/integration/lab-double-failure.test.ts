// End to end on the embedded local lab: a double failure is survivable. Power-cut the primary under
// load, then the replica that went live; power on the first: it boots the guest from the disk server
// in the next generation. With kv's appendfsync always (the default), no acknowledged write is lost.
// Then restore redundancy and load again. And the disk server's own power cut: power-on restarts it
// on the blocks it kept.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { checkRun } from '../../main/check/check-run.js'
import { probeLocalAgent } from '../../main/lab/agent-probe.js'
import type { Lab } from '../../main/lab/lab.js'
import { startLocalLab } from '../../main/lab/local-lab.js'
import { paired, role, untilStatus } from '../support/lab.js'
import { finalRead, runLoad, type LoadResult } from '../../main/load/load-runner.js'

const probe = await probeLocalAgent()
const skipNote = probe.replicaRole ? '' : ` [skipped: needs the replica role in the agent bundle: ${probe.reason}]`
const KEYS = 8

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

/** Load for a while and power-cut `victim` once `after` operations have completed. */
async function loadThroughPowerCut(lab: Lab, victim: string, prefix: string, durationMs: number, after: number): Promise<LoadResult> {
  let cut: Promise<unknown> | null = null
  const result = await runLoad({
    targets: lab.serviceEndpoints(),
    durationMs,
    clients: 4,
    keys: KEYS,
    clientPrefix: prefix,
    progressEveryMs: 100,
    onProgress: (p) => {
      if (cut === null && p.completed >= after) cut = lab.powerCut(victim)
    }
  })
  expect(cut, `the power cut of ${victim} happened during the load`).not.toBeNull()
  await cut
  return result
}

/** A local lab in its own home, a primary with b as its backup; both go away after the test. */
async function pairedLab(name: string): Promise<Lab> {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
  cleanups.push(() => rmSync(home, { recursive: true, force: true }))
  const lab = await startLocalLab({ name, mode: 'rsm' }, { home })
  cleanups.push(() => lab.stop())
  await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))
  return lab
}

describe('local lab: double failure', () => {
  it.skipIf(!probe.replicaRole)(
    `both replicas power-cut under load; power-on boots from the disk server in the next generation and no acknowledged write is lost${skipNote}`,
    async () => {
      const lab = await pairedLab('double')

      const one = await loadThroughPowerCut(lab, 'a', 'd1-', 3000, 150)
      await untilStatus(lab, 'b live alone', (rows) => rows.get('a')?.state === 'down' && role(rows, 'b') === 'live')
      // A slow disk link: with appendfsync no, b would acknowledge writes that are still on their way to the disk
      // when it dies, and they would be lost (the test fails so); with always, a reply waits for its write.
      await lab.injectFault({ kind: 'delay', from: 'b', to: 'disk', ms: 150 }, 30_000)
      const two = await loadThroughPowerCut(lab, 'b', 'd2-', 4000, 10)
      await untilStatus(lab, 'both replicas down', (rows) => rows.get('a')?.state === 'down' && rows.get('b')?.state === 'down')
      expect(two.history.filter((h) => h.status === 'ok').length, 'b acknowledged writes before it died').toBeGreaterThan(0)

      // nobody is alive: power-on a boots the guest from what the disk server holds, in the next generation
      const on = await lab.powerOn('a')
      expect(on.detail).toMatch(/booted the guest from the disk server in generation \d+/)
      await untilStatus(lab, 'a live alone', (rows) => role(rows, 'a') === 'live')
      const keys = [...one.keys, ...two.keys]
      const final = await finalRead(lab.serviceEndpoints(), keys)
      const verdict = checkRun([...one.history, ...two.history], final)
      expect(
        verdict.checks.filter((c) => c.valid !== true),
        JSON.stringify(verdict.checks, null, 1)
      ).toEqual([])

      // redundancy as usual, then load again
      const restored = await lab.restore()
      expect(restored).toMatchObject({ from: 'a', to: 'b' })
      await untilStatus(lab, 'a primary with the new b as its backup', paired('a', 'b'))
      const three = await runLoad({ targets: lab.serviceEndpoints(), durationMs: 1500, clients: 4, keys: KEYS, clientPrefix: 'd3-' })
      expect(three.summary.ok).toBeGreaterThan(0)
      const final3 = await finalRead(lab.serviceEndpoints(), [...keys, ...three.keys])
      const v3 = checkRun([...one.history, ...two.history, ...three.history], final3)
      expect(
        v3.checks.filter((c) => c.valid !== true),
        JSON.stringify(v3.checks, null, 1)
      ).toEqual([])
    },
    120_000
  )

  it.skipIf(!probe.replicaRole)(
    `a power cut of the disk server under load: power-on restarts it on its blocks, the primary that lost its backup meanwhile wins the test-and-set there, and nothing acknowledged is lost${skipNote}`,
    async () => {
      const lab = await pairedLab('diskcut')

      const one = await loadThroughPowerCut(lab, 'disk', 'k1-', 1500, 150)
      await untilStatus(lab, 'the disk server down', (rows) => rows.get('disk')?.state === 'down')
      await expect(lab.heal('f1')).rejects.toThrow(/power cut of the disk server: it heals by power-on \(`ftlab power-on disk`\)/)
      // the primary loses b while nobody can run the test-and-set: b is power-cut, and a must stay a primary that waits
      await lab.powerCut('b')
      const on = await lab.powerOn('disk')
      expect(on.detail).toMatch(/restarted on its data directory/)
      expect(lab.openFaults().map((f) => f.spec.kind === 'power' && f.spec.host)).toEqual(['b'])
      // back on its blocks: the test-and-set of this generation goes to a, and the guest's data is all there
      const rows = await untilStatus(lab, 'a live alone', (r) => role(r, 'a') === 'live' && r.get('disk')?.state === 'up')
      expect(rows.get('disk')?.status?.disk).toMatchObject({ live: 'a', tasWinner: 'a' })
      const two = await runLoad({ targets: lab.serviceEndpoints(), durationMs: 1000, clients: 4, keys: KEYS, clientPrefix: 'k2-' })
      expect(two.summary.ok).toBeGreaterThan(0)
      const final = await finalRead(lab.serviceEndpoints(), [...one.keys, ...two.keys])
      const verdict = checkRun([...one.history, ...two.history], final)
      expect(
        verdict.checks.filter((c) => c.valid !== true),
        JSON.stringify(verdict.checks, null, 1)
      ).toEqual([])
      await expect(lab.powerOn('disk')).rejects.toThrow(/the disk server is up: there is nothing to power on/)
    },
    120_000
  )
})
