// Built-in drills on the network-namespace testbed: a remote lab deployed over real OpenSSH
// (h1 a, h2 b, h3 disk), power cuts through the kill driver, network faults with nftables
// inside the hosts' namespaces. The power-cut, partition (logging channel cut) and restore drills run on it one
// after the other, each starting from a primary with its backup.
//
// Uses the shared testbed: run under `flock /tmp/ftlab-testbed.lock`. It brings the testbed
// up if needed and leaves it up.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DrillRun } from '../../main/api/contract.js'
import { dispatch } from '../../main/api/dispatch.js'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { RemoteStore } from '../../main/remote/remote-state.js'
import { KnownHosts } from '../../main/ssh/known-hosts.js'
import { SshConfig } from '../../main/ssh/ssh-config.js'
import { readLab, testbed, testbedUnavailable } from '../../scripts/testbed/harness.js'
import { requireReplicaAgent } from '../support/agent.js'
import { tearDownTestbedLab, testbedHostSpec, testbedLabOptions } from '../support/remote-lab.js'
import { lacks } from '../support/skips.js'

const skip = lacks(testbedUnavailable())
if (!skip) await requireReplicaAgent()
const LAB = 'drill-it'
const say = (line: string) => console.log(`[drill-remote] ${line}`)

describe.skipIf(skip !== null)(`built-in drills on the testbed${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let home: string
  let backend: ConsoleBackend

  beforeAll(async () => {
    testbed('-q', 'up')
    const tb = readLab()
    home = mkdtempSync(join(tmpdir(), 'ftlab-drill-remote-'))
    const knownHosts = await KnownHosts.load({ readOnly: [], store: join(home, 'known_hosts') })
    backend = new ConsoleBackend({ home, reattach: false, statusEveryMs: 300, remote: { knownHosts, sshConfig: SshConfig.empty(), connectTimeoutMs: 8000 } })
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
    if (home && existsSync(new RemoteStore(home).path(LAB))) {
      await tearDownTestbedLab({ name: LAB, lab: null, home, opts: await testbedLabOptions(home), testbedUp: false, say })
    } else if (home) rmSync(home, { recursive: true, force: true })
  }, 120_000)

  for (const name of ['power-cut-primary', 'channel-cut-split-brain', 'restore-fail-back']) {
    it(`${name} passes on real hosts`, async () => {
      const runs: DrillRun[] = await backend.drills.start({ name, seed: 5, lab: 'remote', remote: LAB }).done
      const run = runs[0]
      for (const l of run.log) say(`${name} ${((l.t - run.startedAt) / 1000).toFixed(1)}s ${l.text}`)
      expect(run.state, run.verdict?.summary).toBe('passed')
      expect(run.recording).toMatch(/\.ftrec$/)
    }, 180_000)
  }
})
