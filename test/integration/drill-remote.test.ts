// Every built-in drill on the network-namespace testbed: a remote lab deployed over real
// OpenSSH (h1 a, h2 b, h3 disk), power cuts through the kill driver, network faults with
// nftables inside the hosts' namespaces, one drill after the other, each starting from a
// primary with its backup (the runner fails back or restores first). The drills that need
// another shape of lab (the experiments, state transfer, etcd as the arbiter) redeploy it and
// put it back; etcd runs on h5, inside its namespace, as in remote-etcd.test.ts.
// DRILL_REMOTE_ONLY=name,name runs only those drills.
//
// Uses the shared testbed: run under `flock /tmp/ftlab-testbed.lock`. It brings the testbed
// up if needed and leaves it up.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DrillRun } from '../../main/api/contract.js'
import { dispatch } from '../../main/api/dispatch.js'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { DrillLibrary } from '../../main/drill/library.js'
import { RemoteStore } from '../../main/remote/remote-state.js'
import { KnownHosts } from '../../main/ssh/known-hosts.js'
import { SshConfig } from '../../main/ssh/ssh-config.js'
import { labHost, readLab, testbed, testbedUnavailable } from '../../scripts/testbed/harness.js'
import { requireReplicaAgent } from '../support/agent.js'
import { etcdHealthy, hasEtcd, until as poll } from '../support/etcd.js'
import { tearDownTestbedLab, testbedHostSpec, testbedLabOptions } from '../support/remote-lab.js'
import { lacks } from '../support/skips.js'

const skip = lacks(testbedUnavailable())
if (!skip) await requireReplicaAgent()
const LAB = 'drill-it'
const lib = new DrillLibrary()
const say = (line: string) => console.log(`[drill-remote] ${line}`)

describe.skipIf(skip !== null)(`built-in drills on the testbed${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let home: string
  let backend: ConsoleBackend
  let etcd: ChildProcess | null = null
  let etcdLog = ''

  beforeAll(async () => {
    testbed('-q', 'up', '--etcd')
    const tb = readLab()
    home = mkdtempSync(join(tmpdir(), 'ftlab-drill-remote-'))
    const h5 = labHost(tb, 'h5')
    const url = `http://${h5.address}:2379`
    const peer = `http://${h5.address}:2380`
    const flags = ['--name', 'h5', '--data-dir', join(home, 'etcd'), '--listen-client-urls', url, '--advertise-client-urls', url]
    flags.push('--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `h5=${peer}`, '--initial-cluster-state', 'new')
    if (hasEtcd) {
      const e = spawn('ip', ['netns', 'exec', h5.namespace, '/usr/bin/etcd', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] })
      etcd = e
      e.stdout.on('data', (d) => (etcdLog = (etcdLog + d).slice(-4000)))
      e.stderr.on('data', (d) => (etcdLog = (etcdLog + d).slice(-4000)))
      await poll(() => etcdHealthy(url), 20_000, `etcd on ${url}`).catch((err: Error) => {
        throw new Error(`${err.message}; etcd said:\n${etcdLog}`)
      })
    }
    const knownHosts = await KnownHosts.load({ readOnly: [], store: join(home, 'known_hosts') })
    backend = new ConsoleBackend({
      home,
      reattach: false,
      statusEveryMs: 300,
      remote: { knownHosts, sshConfig: SshConfig.empty(), connectTimeoutMs: 8000 },
      drills: { etcd: [url] }
    })
    backend.subscribe((ev) => {
      if (ev.topic === 'prompt' && ev.prompt.kind === 'host-key') void dispatch(backend, 'prompt.answer', { id: ev.prompt.id, accept: true })
    })
    const spec = (id: string) => testbedHostSpec(tb, id)
    const s = await dispatch(backend, 'lab.deploy', {
      name: LAB,
      file: { version: 1, network: tb.network, hosts: { a: spec('h1'), b: spec('h2'), disk: spec('h3') } }
    })
    expect(s).toMatchObject({ kind: 'remote', name: LAB, state: 'running' })
  }, 240_000)

  afterAll(async () => {
    await backend?.close().catch(() => {})
    if (etcd && etcd.exitCode === null && etcd.signalCode === null) etcd.kill('SIGKILL')
    if (home && existsSync(new RemoteStore(home).path(LAB))) {
      await tearDownTestbedLab({ name: LAB, lab: null, home, opts: await testbedLabOptions(home), testbedUp: false, say })
    } else if (home) rmSync(home, { recursive: true, force: true })
  }, 120_000)

  // every built-in, in the library's lecture order (the experiments too: the runner redeploys the lab with them)
  const all = lib.names()
  const only = process.env.DRILL_REMOTE_ONLY?.split(',')
  for (const name of only ? all.filter((n) => only.includes(n)) : all) {
    const noEtcd = name === 'etcd-arbiter-split-brain' && !hasEtcd ? ' (skipped: etcd is not installed, Debian package etcd-server)' : ''
    it.skipIf(noEtcd !== '')(
      `${name} ${name === 'no-output-rule' || name === 'read-fast-path' ? 'catches the violation' : 'passes'} on real hosts${noEtcd}`,
      async () => {
        const runs: DrillRun[] = await backend.drills.start({ name, seed: 5, lab: 'remote', remote: LAB }).done
        const run = runs[0]
        for (const l of run.log) say(`${name} ${((l.t - run.startedAt) / 1000).toFixed(1)}s ${l.text}`)
        expect(run.state, run.verdict?.summary).toBe('passed')
        expect(run.recording).toMatch(/\.ftrec$/)
        // every failover the progress told ("… N ms after the fault") is one the verdict judged: a power cut over SSH is
        // timed from the SIGKILL on the host in both, not from the call that sent it (the go-live may come before it returns)
        const told = run.log.flatMap((l) => [...l.text.matchAll(/(\d+) ms after the fault/g)].map((m) => Number(m[1])))
        const judged = run.failovers.filter((f) => f.liveAt !== null).map((f) => Math.round(f.liveAt! - f.at))
        for (const ms of told) expect(judged, `told ${ms} ms; the log:\n${run.log.map((l) => l.text).join('\n')}`).toContain(ms)
      },
      180_000
    )
  }
})
