// The tie-breaker on an existing replicated store: a local lab whose replicas ask etcd,
// not the disk server, who goes live. With etcd reachable, a cut logging channel ends with
// exactly one live replica, the one etcd named, and the disk server fencing for it; with
// etcd unreachable, nobody goes live however long the peers are silent.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { EtcdArbiter, etcdPrefixForLab } from '../../agent/arbiter/etcd.js'
import type { Lab } from '../../main/lab/lab.js'
import type { LabEvent } from '../../main/lab/lab-events.js'
import { startLocalLab } from '../../main/lab/local-lab.js'
import { paired, role, untilStatus } from '../support/lab.js'
import { runLoad } from '../../main/load/load-runner.js'
import { hasEtcd, startEtcd } from '../support/etcd.js'
import { lacks } from '../support/skips.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

const timing = { heartbeatMs: 50, suspectMs: 400 }

async function etcdLab(name: string, url: string): Promise<{ lab: Lab; events: LabEvent[] }> {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
  cleanups.push(() => rmSync(home, { recursive: true, force: true }))
  const lab = await startLocalLab({ name, timing, arbiter: { kind: 'etcd', endpoints: [url] } }, { home })
  cleanups.push(() => lab.stop())
  const events: LabEvent[] = []
  lab.onEvent((e) => events.push(e))
  await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))
  return { lab, events }
}

describe.skipIf(lacks(hasEtcd ? null : 'etcd is not installed (Debian package etcd-server)') !== null)('local lab with an etcd tie-breaker', () => {
  it('a cut logging channel ends with exactly the replica etcd chose live, and the disk server fences for it', async () => {
    const etcd = await startEtcd()
    cleanups.push(() => etcd.close())
    const { lab } = await etcdLab('etcd-on', etcd.url)

    const fault = await lab.injectFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false }, 60_000)
    cleanups.push(() => lab.heal(fault.id).catch(() => {}))
    const rows = await untilStatus(lab, 'one replica live and the other halted', (r) => [role(r, 'a'), role(r, 'b')].sort().join() === 'halted,live')
    const live = role(rows, 'a') === 'live' ? 'a' : 'b'

    // etcd holds the verdict: a third contender for generation 1 loses to the live replica
    const probe = await new EtcdArbiter({ endpoints: [etcd.url], prefix: etcdPrefixForLab(Buffer.from(lab.snapshot().labKey, 'hex')) }).tas(1, 'someone-else')
    expect(probe).toMatchObject({ verdict: 'lost', winner: live })
    // and the disk server learnt it, so the live replica's writes are accepted
    expect(rows.get('disk')?.status?.disk?.tasWinner).toBe(live)
    const after = await runLoad({ targets: lab.serviceEndpoints(), durationMs: 1000, clients: 2, keys: 4, clientPrefix: 'e1-' })
    expect(after.summary.ok).toBeGreaterThan(0)
    expect(new Map((await lab.status(1000)).map((r) => [r.host, r])).get('disk')?.status?.disk?.fenced).toBe(0)
  })

  it('with etcd unreachable, neither replica goes live, however long the peers are silent', async () => {
    const etcd = await startEtcd()
    cleanups.push(() => etcd.close())
    const { lab, events } = await etcdLab('etcd-off', etcd.url)
    etcd.kill()

    const fault = await lab.injectFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false }, 60_000)
    cleanups.push(() => lab.heal(fault.id).catch(() => {}))
    // both suspect their peer and ask etcd, which does not answer ...
    const suspected = () => new Set(events.filter((e) => e.type === 'suspect').map((e) => e.host))
    const deadline = Date.now() + 15_000
    while (suspected().size < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect([...suspected()].sort()).toEqual(['a', 'b'])
    // ... and after many more suspicion periods, still nobody has gone live or halted
    await new Promise((r) => setTimeout(r, 10 * timing.suspectMs))
    const rows = new Map((await lab.status(1000)).map((r) => [r.host, r]))
    expect(role(rows, 'a')).toBe('primary')
    expect(role(rows, 'b')).toBe('backup')
    expect(events.some((e) => e.type === 'go-live')).toBe(false)
  })

  it('the replica etcd chose goes live only once the disk server follows, so its first write is not fenced', async () => {
    const etcd = await startEtcd()
    cleanups.push(() => etcd.close())
    const { lab, events } = await etcdLab('etcd-disk', etcd.url)
    // b cannot reach the disk server; a freezes, so b suspects it and wins at etcd
    const cut = await lab.injectFault({ kind: 'cut', from: 'b', to: 'disk', oneWay: false }, 60_000)
    cleanups.push(() => lab.heal(cut.id).catch(() => {}))
    const pause = await lab.injectFault({ kind: 'pause', host: 'a' }, 60_000)
    cleanups.push(() => lab.heal(pause.id).catch(() => {}))
    const deadline = Date.now() + 15_000
    const toldDisk = () => events.some((e) => e.host === 'b' && e.type === 'arbiter' && String(e.data.fencing).includes('has not been told'))
    while (!toldDisk() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    expect(toldDisk(), 'b won at etcd and could not tell the disk server').toBe(true)
    expect(role(await untilStatus(lab, 'b still a backup', () => true), 'b')).toBe('backup')

    // the disk server comes back: b goes live, and its writes are accepted
    await lab.heal(cut.id)
    const rows = await untilStatus(lab, 'b live', (r) => role(r, 'b') === 'live')
    expect(rows.get('disk')?.status?.disk?.tasWinner).toBe('b')
    const after = await runLoad({ targets: [lab.serviceEndpoints()[1]], durationMs: 1000, clients: 2, keys: 4, clientPrefix: 'e3-' })
    expect(after.summary.ok).toBeGreaterThan(0)
    expect(new Map((await lab.status(1000)).map((r) => [r.host, r])).get('disk')?.status?.disk?.fenced).toBe(0)
  })
})
