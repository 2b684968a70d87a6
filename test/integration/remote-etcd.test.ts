// etcd as the tie-breaker of a remote lab, on the network-namespace testbed: Debian's etcd
// runs on h5 (10.87.0.15, inside its namespace), the lab file names it, a (h1), b (h2) and
// the disk server (h3) are deployed over OpenSSH. An nftables cut of the logging channel ends
// with exactly one replica live, the one etcd's key names; after a restore, with h5 powered
// off, the same cut leaves both replicas as they were, however long they are silent.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdArbiter, etcdPrefixForLab } from '../../agent/arbiter/etcd.js'
import { requireReplicaAgent } from '../support/agent.js'
import { lacks } from '../support/skips.js'
import { DEFAULT_TIMING } from '../../main/lab/lab.js'
import type { LabEvent } from '../../main/lab/lab-events.js'
import { loadLabFile } from '../../main/remote/lab-file.js'
import { RemoteLab, type RemoteLabOptions } from '../../main/remote/remote-lab.js'
import { labHost, readLab, testbed, testbedUnavailable, type Lab as Testbed } from '../../scripts/testbed/harness.js'
import { etcdHealthy, hasEtcd, until as poll } from '../support/etcd.js'
import { type StatusRows, paired, role, untilStatus } from '../support/lab.js'
import { tearDownTestbedLab, testbedHostSpec, testbedLabOptions } from '../support/remote-lab.js'

const skip = lacks([testbedUnavailable(), hasEtcd ? null : 'etcd is not installed (Debian package etcd-server)'])
if (!skip) await requireReplicaAgent()
const LAB = 'remote-etcd'

/** Remote hosts answer through SSH: poll more patiently than on loopback. */
const until = (lab: RemoteLab, what: string, ok: (rows: StatusRows) => boolean, timeoutMs = 30_000) =>
  untilStatus(lab, what, ok, { timeoutMs, statusTimeoutMs: 1500, everyMs: 150 })

const say = (line: string) => console.log(`[remote-etcd] ${line}`)

describe.skipIf(skip !== null)(`etcd tie-breaker for a remote lab on the testbed${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tb: Testbed
  let home: string
  let opts: RemoteLabOptions
  let lab: RemoteLab | null = null
  let etcd: ChildProcess | null = null
  let etcdLog = ''
  let url = ''

  beforeAll(async () => {
    testbed('-q', 'up', '--etcd')
    tb = readLab()
    home = mkdtempSync(join(tmpdir(), 'ftlab-etcd-'))
    const h5 = labHost(tb, 'h5')
    url = `http://${h5.address}:2379`
    const peer = `http://${h5.address}:2380`
    // inside h5's namespace, so that powering h5 off takes etcd down with it
    etcd = spawn(
      'ip',
      [
        'netns',
        'exec',
        h5.namespace,
        '/usr/bin/etcd',
        '--name',
        'h5',
        '--data-dir',
        join(home, 'etcd'),
        '--listen-client-urls',
        url,
        '--advertise-client-urls',
        url,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `h5=${peer}`,
        '--initial-cluster-state',
        'new'
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] }
    )
    etcd.stdout!.on('data', (d) => (etcdLog = (etcdLog + d).slice(-4000)))
    etcd.stderr!.on('data', (d) => (etcdLog = (etcdLog + d).slice(-4000)))
    await poll(() => etcdHealthy(url), 20_000, `etcd on ${url}`).catch((e: Error) => {
      throw new Error(`${e.message}; etcd said:\n${etcdLog}`)
    })
    const host = (id: string, extra: Record<string, unknown> = {}) => testbedHostSpec(tb, id, extra)
    writeFileSync(
      join(home, 'lab.json'),
      JSON.stringify(
        { version: 1, network: tb.network, arbiter: { kind: 'etcd', endpoints: [url] }, hosts: { a: host('h1'), b: host('h2'), disk: host('h3') } },
        null,
        2
      )
    )
    opts = await testbedLabOptions(home)
  }, 180_000)

  afterAll(async () => {
    if (etcd && etcd.exitCode === null && etcd.signalCode === null) etcd.kill('SIGKILL')
    await tearDownTestbedLab({ name: LAB, lab, home, opts, testbedUp: Boolean(tb), say })
  }, 120_000)

  it('a cut logging channel makes live exactly the replica etcd names; with etcd powered off, nobody goes live', async () => {
    const { lab: l } = await RemoteLab.deploy(loadLabFile(join(home, 'lab.json')), { name: LAB }, opts)
    lab = l
    expect(l.lab!.snapshot().arbiter).toEqual({ kind: 'etcd', endpoints: [url] })
    const events: LabEvent[] = []
    l.lab!.onEvent((e) => events.push(e))
    await until(l, 'a primary with b as its backup', paired('a', 'b'))

    const cut = await l.lab!.injectFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false }, 60_000)
    say(`cut a-b: path ${cut.path}; ${cut.parts.join(', ')}`)
    expect(cut.path).toBe('nft')
    const rows = await until(l, 'one replica live and the other halted', (r) => [role(r, 'a'), role(r, 'b')].sort().join() === 'halted,live')
    const live = role(rows, 'a') === 'live' ? 'a' : 'b'
    const other = live === 'a' ? 'b' : 'a'
    // etcd holds the verdict for generation 1: anyone else asking now loses to the live replica
    const arbiter = new EtcdArbiter({ endpoints: [url], prefix: etcdPrefixForLab(Buffer.from(l.lab!.snapshot().labKey, 'hex')) })
    const verdict = await arbiter.tas(1, 'someone-else')
    say(`etcd key ${arbiter.keyFor(1)} names ${verdict.winner}; live: ${live}`)
    expect(verdict).toMatchObject({ verdict: 'lost', winner: live })
    // and the disk server fences for etcd's winner
    expect(rows.get('disk')?.status?.disk?.tasWinner).toBe(live)
    expect(events.filter((e) => e.type === 'go-live').map((e) => e.host)).toEqual([live])
    await l.lab!.heal(cut.id)

    const r = await l.restore()
    expect(r).toEqual({ from: live, to: other, gen: 2 })
    await until(
      l,
      `${live} primary with a fresh ${other}`,
      (x) => role(x, live) === 'primary' && role(x, other) === 'backup' && x.get(live)?.status?.channel?.connected === true
    )

    // h5 loses power: etcd goes with it
    testbed('-q', 'power-off', 'h5')
    expect(await etcdHealthy(url)).toBe(false)
    const mark = events.length
    const again = await l.lab!.injectFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false }, 60_000)
    expect(again.path).toBe('nft')
    const suspected = () =>
      new Set(
        events
          .slice(mark)
          .filter((e) => e.type === 'suspect')
          .map((e) => e.host)
      )
    await poll(() => suspected().size === 2, 15_000, 'both replicas to suspect their peer')
    // many suspicion periods later, still nobody has gone live or halted
    await new Promise((res) => setTimeout(res, 10 * DEFAULT_TIMING.suspectMs))
    const still = new Map((await l.status()).map((x) => [x.host, x]))
    say(`with etcd off, after ${10 * DEFAULT_TIMING.suspectMs} ms of silence: ${live}=${role(still, live)} ${other}=${role(still, other)}`)
    expect(role(still, live)).toBe('primary')
    expect(role(still, other)).toBe('backup')
    expect(events.slice(mark).some((e) => e.type === 'go-live' || (e.type === 'replica-role' && (e.data as { role?: string }).role === 'halted'))).toBe(false)
    await l.lab!.heal(again.id)
  }, 240_000)
})
