// A double failure in the console, on the simulated lab (the real core, disk arbiter and
// guest): both replicas power-cut under load, power-on boots a replica from the disk server in
// the next generation, no acknowledged write is lost, and restore redundancy takes a backup again.
// And the disk server's own power cut, which power-on ends.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { LabStatus, MethodName, ResultOf } from '../../../main/api/contract.js'
import { dispatch } from '../../../main/api/dispatch.js'
import { ConsoleBackend } from '../../../main/console/console-backend.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function call<M extends MethodName>(b: ConsoleBackend, method: M, params: unknown = {}): Promise<ResultOf<M>> {
  return (await dispatch(b, method, params)) as ResultOf<M>
}

async function until(b: ConsoleBackend, what: string, ok: (x: LabStatus) => boolean): Promise<LabStatus> {
  let last: LabStatus | null = null
  for (let i = 0; i < 300; i++) {
    last = await call(b, 'lab.status')
    if (ok(last)) return last
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last?.hosts.map((h) => [h.id, h.role, h.gen]))}`)
}

const role = (s: LabStatus, id: string) => s.hosts.find((h) => h.id === id)!.role
const host = (s: LabStatus, id: string) => s.hosts.find((h) => h.id === id)!

/** A console on a simulated kv lab of this seed, in its own home; both go away after the test. */
async function simulatedLab(seed: number): Promise<ConsoleBackend> {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-console-sim-'))
  cleanups.push(() => rmSync(home, { recursive: true, force: true }))
  const b = new ConsoleBackend({ home, reattach: false, record: false, statusEveryMs: 100 })
  cleanups.push(() => b.close())
  await call(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', seed })
  return b
}

describe('the console after a double failure', () => {
  it('after both replicas are power-cut under load, power-on boots a from the disk server and no acknowledged write is lost', async () => {
    const b = await simulatedLab(21)
    let s = await until(b, 'a primary, b backup', (x) => role(x, 'a') === 'primary' && role(x, 'b') === 'backup')
    expect(s.hosts.every((h) => !h.canPowerOn)).toBe(true)

    // load through both failures: what the service acknowledged must survive them
    await call(b, 'load.start', { clients: 4, seconds: 120, keys: 40 })
    await until(b, 'load under way', (x) => x.load.completed > 200)
    await call(b, 'fault.inject', { target: 'a', kind: 'power', durationMs: 60_000 })
    s = await until(b, 'b live', (x) => role(x, 'b') === 'live')
    const onB = s.load.completed
    await until(b, 'the clients served by b', (x) => x.load.completed > onB + 100)
    await call(b, 'fault.inject', { target: 'b', kind: 'power', durationMs: 60_000 })
    s = await until(b, 'both replicas down', (x) => role(x, 'a') === 'down' && role(x, 'b') === 'down')
    expect(host(s, 'a').canPowerOn).toBe(true)
    expect(host(s, 'disk').canPowerOn).toBe(false)

    await call(b, 'lab.powerOn', { host: 'a' })
    s = await until(b, 'a live from the disk server', (x) => role(x, 'a') === 'live')
    expect(host(s, 'a').gen).toBe(2)
    const onA = s.load.completed
    await until(b, 'the clients served by a again', (x) => x.load.completed > onA + 100)
    await call(b, 'load.stop')
    s = await until(b, 'the verdict', (x) => x.load.verdict !== null)
    expect(s.load.verdict, JSON.stringify(s.load.verdict)).toMatchObject({ result: 'valid', lostWrites: 0 })
    await call(b, 'lab.restore', {})
    s = await until(b, 'a primary with b as its backup', (x) => role(x, 'a') === 'primary' && role(x, 'b') === 'backup')
    expect(s.gen).toBe(3)
  }, 60_000)

  it('a power cut of the disk server under load ends by power-on: it restarts on its blocks and the load goes on', async () => {
    const b = await simulatedLab(22)
    await until(b, 'a primary, b backup', (x) => role(x, 'a') === 'primary' && role(x, 'b') === 'backup')
    await call(b, 'load.start', { clients: 4, seconds: 120, keys: 40 })
    await until(b, 'load under way', (x) => x.load.completed > 200)
    await call(b, 'fault.inject', { target: 'disk', kind: 'power', durationMs: 60_000 })
    let s = await until(b, 'the disk server down', (x) => role(x, 'disk') === 'down')
    expect(host(s, 'disk').canPowerOn).toBe(true)
    await expect(call(b, 'fault.heal', { id: s.faults[0].id })).rejects.toThrow(/heals by power-on/)
    await call(b, 'lab.powerOn', { host: 'disk' })
    s = await until(b, 'the disk server back', (x) => role(x, 'disk') === 'disk-server' && x.faults.length === 0)
    const on = s.load.completed
    s = await until(b, 'the load going on', (x) => x.load.completed > on + 100)
    expect(role(s, 'a')).toBe('primary')
    await call(b, 'load.stop')
    s = await until(b, 'the verdict', (x) => x.load.verdict !== null)
    expect(s.load.verdict, JSON.stringify(s.load.verdict)).toMatchObject({ result: 'valid', lostWrites: 0 })
  }, 60_000)
})
