// The simulated lab is the real protocol: the Lab orchestration over SimHost, the real
// replica core, edge, disk arbiter and kv guest under a virtual clock, with the console's
// real load runner on real loopback sockets. A primary power cut makes b go live in the
// SAME generation (it wins the test-and-set of generation 1); restore redundancy begins
// generation 2; nothing acknowledged is lost.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { checkRun } from '../../../main/check/check-run.js'
import type { Lab } from '../../../main/lab/lab.js'
import { startSimLab } from '../../../main/lab/sim-lab.js'
import { finalRead, runLoad, type LoadResult } from '../../../main/load/load-runner.js'
import { paired, role, untilStatus } from '../../support/lab.js'
import { lacks } from '../../support/skips.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function loadThroughPowerCut(lab: Lab, victim: string): Promise<LoadResult> {
  let cut: Promise<unknown> | null = null
  const result = await runLoad({
    targets: lab.serviceEndpoints(),
    durationMs: 3000,
    clients: 4,
    keys: 8,
    clientPrefix: 'sim-',
    progressEveryMs: 100,
    onProgress: (p) => {
      if (cut === null && p.completed >= 100) cut = lab.powerCut(victim)
    }
  })
  expect(cut, 'the power cut happened during the load').not.toBeNull()
  await cut
  return result
}

describe.each([1, 10])('simulated kv lab at speed %s', (speed) => {
  it('power cut of the primary under real load: b goes live in generation 1, restore begins generation 2, nothing acknowledged is lost', async () => {
    const { lab, sim } = await startSimLab({ guest: 'kv', mode: 'rsm', speed, seed: 42, timing: { heartbeatMs: 50, suspectMs: 400 } })
    cleanups.push(() => sim.close())
    expect(sim.seed).toBe(42)
    expect(sim.speed).toBe(speed)
    await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))

    const run = await loadThroughPowerCut(lab, 'a')
    const rows = await untilStatus(lab, 'b live alone', (r) => r.get('a')?.state === 'down' && role(r, 'b') === 'live')
    // go-live keeps the generation: b won the test-and-set of generation 1
    expect(rows.get('b')?.status?.gen).toBe(1)
    const disk = rows.get('disk')?.status?.disk
    expect(disk).toMatchObject({ gen: 1, tasWinner: 'b' })
    expect(run.summary.failoversFollowed).toBeGreaterThanOrEqual(1)
    expect(run.summary.ok).toBeGreaterThan(100)

    const final = await finalRead(lab.serviceEndpoints(), run.keys)
    const verdict = checkRun(run.history, final)
    expect(
      verdict.checks.filter((c) => c.valid !== true),
      JSON.stringify(verdict.checks, null, 1)
    ).toEqual([])

    expect(await lab.restore()).toEqual({ from: 'b', to: 'a', gen: 2 })
    const after = await untilStatus(lab, 'b primary with the new a as its backup', paired('b', 'a'))
    expect(after.get('disk')?.status?.disk).toMatchObject({ gen: 2, live: 'b' })
  }, 60_000)
})

describe('simulated lab: faults through the agents’ own filter and the simulated process', () => {
  it('isolating the primary (bank guest, state transfer): b wins generation 1, a never goes live and halts once healed', async () => {
    const { lab, sim } = await startSimLab({ guest: 'bank', mode: 'state-transfer', speed: 5, seed: 7, timing: { heartbeatMs: 50, suspectMs: 400 } })
    cleanups.push(() => sim.close())
    await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))
    const f = await lab.injectFault({ kind: 'isolate', host: 'a' }, 60_000)
    const during = await untilStatus(lab, 'b live', (r) => role(r, 'b') === 'live')
    expect(during.get('b')?.status?.gen).toBe(1)
    // a cannot reach the disk server, so it cannot win anything: it is not live
    expect(role(during, 'a')).not.toBe('live')
    expect(lab.openFaults().map((x) => x.id)).toEqual([f.id])
    await lab.heal(f.id)
    const after = await untilStatus(lab, 'a halted', (r) => role(r, 'a') === 'halted')
    expect(after.get('disk')?.status?.disk).toMatchObject({ gen: 1, tasWinner: 'b' })
  }, 60_000)

  it('pausing the backup: the primary goes live alone; the resumed backup loses the test-and-set and halts', async () => {
    const { lab, sim } = await startSimLab({ guest: 'kv', mode: 'rsm', speed: 5, seed: 9, timing: { heartbeatMs: 50, suspectMs: 400 } })
    cleanups.push(() => sim.close())
    await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))
    const f = await lab.injectFault({ kind: 'pause', host: 'b' }, 60_000)
    const during = await untilStatus(lab, 'a live, b paused', (r) => role(r, 'a') === 'live' && r.get('b')?.state === 'paused')
    expect(during.get('a')?.status?.gen).toBe(1)
    await lab.heal(f.id)
    await untilStatus(lab, 'b halted', (r) => role(r, 'b') === 'halted')
  }, 60_000)
})

const redisCli = ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'].find((p) => existsSync(p)) ?? null

describe('simulated lab: real clients on real sockets', () => {
  it.skipIf(lacks(redisCli ? null : 'redis-cli is not installed (Debian package redis-tools)') !== null)(
    `redis-cli sets and reads a key on the live primary's loopback service port`,
    async () => {
      const { lab, sim } = await startSimLab({ guest: 'kv', mode: 'rsm', seed: 3 })
      cleanups.push(() => sim.close())
      await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))
      const a = lab.serviceEndpoints()[0]
      const cli = (...args: string[]) => promisify(execFile)(redisCli!, ['-h', a.host, '-p', String(a.port), ...args]).then((r) => r.stdout.trim())
      expect(await cli('SET', 'greeting', 'hello from the simulator')).toBe('OK')
      expect(await cli('GET', 'greeting')).toBe('hello from the simulator')
    },
    30_000
  )
})

describe('simulated lab: restore onto another machine', () => {
  it('after a power cut of a, restores redundancy onto the spare machine, which plays a from then on', async () => {
    const { lab, sim } = await startSimLab({ guest: 'kv', mode: 'state-transfer', speed: 5, seed: 11, timing: { heartbeatMs: 50, suspectMs: 400 } })
    cleanups.push(() => sim.close())
    await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))
    await lab.powerCut('a')
    await untilStatus(lab, 'b live alone', (r) => r.get('a')?.state === 'down' && role(r, 'b') === 'live')
    expect(await lab.restore({ onto: 'spare' })).toEqual({ from: 'b', to: 'a', gen: 2, machine: 'spare' })
    expect(lab.machineOf('a')).toBe('spare')
    await untilStatus(lab, 'b primary with a (on the spare) as its backup', paired('b', 'a'))
  }, 60_000)
})
