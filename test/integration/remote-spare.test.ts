// Restore redundancy onto the spare host, on the network-namespace testbed over real
// OpenSSH: a (h1) loses power under load, b (h2) goes live; redundancy comes back on h4 with
// the replica id a kept and its logging channel and service moved to h4's address; then b
// loses power and the replica on h4 goes live. Clients are handed the new service address
// and no acknowledged write is lost across both cuts. The lab is the one `testbed.sh up` writes
// (ftlab-lab.json), deployed by `ftlab deploy` as it is: power cuts go through the testbed's
// power switch (every process of the host killed), and the last restore switches b back on.
import { execFileSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkRun } from '../../main/check/check-run.js'
import { runCli } from '../../main/cli/ftlab.js'
import { requireReplicaAgent } from '../support/agent.js'
import { lacks } from '../support/skips.js'
import type { HistoryOp } from '../../main/load/history.js'
import { finalRead, runLoad, type LoadResult } from '../../main/load/load-runner.js'
import { RemoteLab, type RemoteLabOptions } from '../../main/remote/remote-lab.js'
import { labHost, readLab, testbed, testbedUnavailable, type Lab as Testbed } from '../../scripts/testbed/harness.js'
import { type StatusRows, paired, role, untilStatus } from '../support/lab.js'
import { TESTBED_FTLAB_FILE, tearDownTestbedLab, testbedLabOptions } from '../support/remote-lab.js'

const skip = lacks(testbedUnavailable())
if (!skip) await requireReplicaAgent()
const LAB = 'remote-spare'

/** Remote hosts answer through SSH: poll more patiently than on loopback. */
const until = (lab: RemoteLab, what: string, ok: (rows: StatusRows) => boolean, timeoutMs = 30_000) =>
  untilStatus(lab, what, ok, { timeoutMs, statusTimeoutMs: 1500, everyMs: 150 })

/** Load the service and cut `victim`'s power once enough operations have completed. */
async function cutUnderLoad(lab: RemoteLab, prefix: string, victim: string): Promise<{ result: LoadResult; at: number }> {
  let fired: Promise<unknown> | null = null
  let at = 0
  const result = await runLoad({
    targets: lab.lab!.serviceEndpoints(),
    durationMs: 6000,
    clients: 4,
    keys: 8,
    clientPrefix: prefix,
    progressEveryMs: 100,
    onProgress: (p) => {
      if (fired === null && p.completed >= 150) {
        at = performance.timeOrigin + performance.now()
        fired = lab.lab!.powerCut(victim)
      }
    }
  })
  expect(fired, 'the power cut happened during the load').not.toBeNull()
  await fired
  return { result, at }
}

const say = (line: string) => console.log(`[remote-spare] ${line}`)

describe.skipIf(skip !== null)(`restore redundancy onto the spare host on the testbed${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tb: Testbed
  let home: string
  let opts: RemoteLabOptions
  let lab: RemoteLab | null = null

  beforeAll(async () => {
    testbed('-q', 'up', '--spare')
    tb = readLab()
    home = mkdtempSync(join(tmpdir(), 'ftlab-spare-'))
    opts = await testbedLabOptions(home)
  }, 180_000)

  afterAll(async () => {
    await tearDownTestbedLab({ name: LAB, lab, home, opts, testbedUp: Boolean(tb), say })
  }, 120_000)

  it('power cut of a, restore onto h4 as a, power cut of b: the replica on h4 goes live and nothing acknowledged is lost', async () => {
    const h1 = labHost(tb, 'h1')
    const h4 = labHost(tb, 'h4')
    const deployed: string[] = []
    const deployCode = await runCli(['deploy', TESTBED_FTLAB_FILE, '--name', LAB, '--accept-new-host-keys'], {
      out: (t) => deployed.push(t),
      err: (t) => deployed.push(t),
      isTty: false,
      home
    })
    say(`ftlab deploy ${TESTBED_FTLAB_FILE}:\n${deployed.join('')}`)
    expect(deployCode, deployed.join('')).toBe(0)
    const l = await RemoteLab.open(LAB, opts)
    lab = l
    expect(l.file.hosts.spare?.address).toBe(h4.address)
    expect(l.file.hosts.b.power).toMatchObject({ driver: 'command', off: expect.stringContaining('power-off h2') })
    await until(l, 'a primary with b as its backup', paired('a', 'b'))
    const histories: HistoryOp[] = []
    const keys = new Set<string>()
    const keep = (r: LoadResult) => {
      histories.push(...r.history)
      r.keys.forEach((k) => keys.add(k))
    }

    const one = await cutUnderLoad(l, 's1-', 'a')
    keep(one.result)
    await until(l, 'b live alone', (rows) => rows.get('a')?.state === 'down' && role(rows, 'b') === 'live')
    expect(l.lab!.openFaults()).toMatchObject([{ spec: { kind: 'power', host: 'a' }, path: 'driver', healsAt: null }])

    // onto the spare: same replica id, the machine and its addresses change
    const oldA = l.lab!.serviceEndpoints()[0]
    expect(oldA.host).toBe(h1.address)
    const r = await l.restore({ onto: 'spare' })
    expect(r).toEqual({ from: 'b', to: 'a', gen: 2, machine: 'spare' })
    // restore refilled a's slot: its power cut is closed, though h1 stays off
    expect(l.lab!.openFaults()).toEqual([])
    const snap = l.lab!.snapshot()
    say(
      `restored onto h4: a's channel ${snap.hosts.a.channel!.host}:${snap.hosts.a.channel!.port}, service ${snap.hosts.a.service!.host}:${snap.hosts.a.service!.port}`
    )
    expect(snap.hosts.a.machine).toBe('spare')
    expect(snap.hosts.a.channel!.host).toBe(h4.address)
    expect(l.lab!.serviceEndpoints()[0].host).toBe(h4.address)
    expect(l.slotHost('a').label).toContain(h4.address)
    const restored = await until(l, 'b primary with a (on h4) as its backup', paired('b', 'a'))
    expect(restored.get('a')?.status?.gen).toBe(2)
    // the agent really runs on h4: its pid is one of h4's namespace's processes
    expect(execFileSync('ip', ['netns', 'pids', h4.namespace], { encoding: 'utf8' }).split('\n')).toContain(String(snap.hosts.a.pid))
    // status reports the slot where it lives now
    const st = (await l.status()).find((x) => x.host === 'a')!
    expect(st.where).toContain(h4.address)

    // the clients are handed the moved service address; b's power goes, a on h4 takes over
    const two = await cutUnderLoad(l, 's2-', 'b')
    keep(two.result)
    await until(l, 'a (on h4) live alone', (rows) => rows.get('b')?.state === 'down' && role(rows, 'a') === 'live')
    const h4Service = `${snap.hosts.a.service!.host}:${snap.hosts.a.service!.port}`
    const servedByH4 = two.result.history.filter((h) => h.status === 'ok' && h.invokeMs > two.at && h.target === h4Service).length
    say(`after b's power cut: ${servedByH4} ops answered by ${h4Service}; failovers followed ${two.result.summary.failoversFollowed}`)
    expect(servedByH4).toBeGreaterThan(0)
    const v = checkRun(histories, await finalRead(l.lab!.serviceEndpoints(), [...keys]))
    expect(
      v.checks.filter((c) => c.valid !== true),
      JSON.stringify(v.checks, null, 1)
    ).toEqual([])

    // and the command line: b comes back on its own host (h2), a stays on h4
    const out: string[] = []
    l.close()
    lab = null
    const code = await runCli(['restore', '--name', LAB], { out: (t) => out.push(t), err: (t) => out.push(t), isTty: false, home })
    say(`ftlab restore: ${out.join('').trim()}`)
    expect(code).toBe(0)
    expect(out.join('')).toMatch(/a is primary, b is its new backup .*generation 3/)
    lab = await RemoteLab.open(LAB, opts)
    await until(lab, 'a (on h4) primary with b as its backup', (rows) => role(rows, 'a') === 'primary' && role(rows, 'b') === 'backup')
    expect(lab.lab!.machineOf('a')).toBe('spare')
    // h1 played nothing since the move: switched back on, nothing of this lab runs there
    await lab.host('a').powerDriver()!.on()
    expect(
      await lab
        .host('a')
        .agentInfo()
        .then((i) => i?.alive ?? false)
    ).toBe(false)
  }, 240_000)
})
