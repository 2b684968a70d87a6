// End to end on the network-namespace testbed, over real OpenSSH: deploy a remote lab to
// h1 (a), h2 (b), h3 (disk); power cut the primary under load, the backup goes live, the
// clients follow, nothing acknowledged is lost; restore redundancy onto the old primary's
// host; isolate the new primary with nftables and fail back. Then: a console that goes away
// mid-load (the service keeps serving, a new console reattaches from the state file), faults
// that heal by their dead-man with no console, a power cut through the testbed's power switch
// with restore onto the powered-on host, the disk server's power cut and power-on under load,
// and a deploy whose bad hosts fail on their own lines while the running lab is untouched.
// Prints the fault path each step took.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkRun } from '../../main/check/check-run.js'
import { runCli } from '../../main/cli/ftlab.js'
import { localNetnsExec } from '../../main/faults/exec.js'
import { listFaultTables } from '../../main/faults/network.js'
import { requireReplicaAgent } from '../support/agent.js'
import { lacks } from '../support/skips.js'
import type { LabEvent } from '../../main/lab/lab-events.js'
import type { HistoryOp } from '../../main/load/history.js'
import { finalRead, runLoad, type LoadResult } from '../../main/load/load-runner.js'
import { loadLabFile } from '../../main/remote/lab-file.js'
import { RemoteDeployError, RemoteLab, type RemoteLabOptions } from '../../main/remote/remote-lab.js'
import { SshError } from '../../main/ssh/errors.js'
import { labHost, readLab, TESTBED_ROOT, TESTBED_SCRIPT, testbed, testbedUnavailable, type Lab as Testbed } from '../../scripts/testbed/harness.js'
import { type StatusRows, paired, role, untilStatus } from '../support/lab.js'
import { tearDownTestbedLab, testbedHostSpec, testbedLabOptions } from '../support/remote-lab.js'

const skip = lacks(testbedUnavailable())
if (!skip) await requireReplicaAgent()
const KEYS = 8
const LAB = 'remote-it'

/** Remote hosts answer through SSH: poll more patiently than on loopback. */
const until = (lab: RemoteLab, what: string, ok: (rows: StatusRows) => boolean, timeoutMs = 30_000) =>
  untilStatus(lab, what, ok, { timeoutMs, statusTimeoutMs: 1500, everyMs: 150 })

async function pollUntil(what: string, ok: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await ok()) return
    await new Promise((r) => setTimeout(r, 250))
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms`)
}

/** Load the service and run `fault` once enough operations have completed. */
async function loadThrough(lab: RemoteLab, prefix: string, fault: () => Promise<unknown>, ms = 7000): Promise<{ result: LoadResult; at: number }> {
  let fired: Promise<unknown> | null = null
  let at = 0
  const result = await runLoad({
    targets: lab.lab!.serviceEndpoints(),
    durationMs: ms,
    clients: 4,
    keys: KEYS,
    clientPrefix: prefix,
    progressEveryMs: 100,
    onProgress: (p) => {
      if (fired === null && p.completed >= 150) {
        at = performance.timeOrigin + performance.now()
        fired = fault()
      }
    }
  })
  expect(fired, 'the fault happened during the load').not.toBeNull()
  await fired
  return { result, at }
}

function answeredAfter(history: HistoryOp[], at: number, target: string): number {
  return history.filter((h) => h.status === 'ok' && h.invokeMs > at && h.target === target).length
}

function expectValid(history: HistoryOp[], final: Awaited<ReturnType<typeof finalRead>>): void {
  const v = checkRun(history, final)
  expect(
    v.checks.filter((c) => c.valid !== true),
    JSON.stringify(v.checks, null, 1)
  ).toEqual([])
}

const say = (line: string) => console.log(`[remote-failover] ${line}`)

describe.skipIf(skip !== null)(`remote lab on the testbed over OpenSSH${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tb: Testbed
  let home: string
  let labFile: string
  let opts: RemoteLabOptions
  let lab: RemoteLab | null = null
  const histories: HistoryOp[] = []
  const keys = new Set<string>()

  /** The lab's events (`ftlab events`: what every agent still holds in its ring) whose line matches `pattern`. */
  const agentsSaid = async (pattern: RegExp): Promise<string> => {
    const out: string[] = []
    await runCli(['events', '--name', LAB], { out: (t) => out.push(t), err: (t) => out.push(t), isTty: false, home })
    return out
      .join('')
      .split('\n')
      .filter((line) => pattern.test(line))
      .slice(-40)
      .join('\n')
  }

  const reopen = async (): Promise<RemoteLab> => {
    lab?.close()
    lab = await RemoteLab.open(LAB, opts)
    return lab
  }

  beforeAll(async () => {
    testbed('-q', 'up', '--spare')
    tb = readLab()
    home = mkdtempSync(join(tmpdir(), 'ftlab-remote-'))
    const host = (id: string, extra: Record<string, unknown> = {}) => testbedHostSpec(tb, id, extra)
    labFile = join(home, 'lab.json')
    writeFileSync(
      labFile,
      JSON.stringify(
        {
          version: 1,
          network: tb.network,
          hosts: {
            a: host('h1'),
            b: host('h2', { power: { driver: 'command', off: `bash ${TESTBED_SCRIPT} -q power-off h2`, on: `bash ${TESTBED_SCRIPT} -q power-on h2` } }),
            disk: host('h3')
          }
        },
        null,
        2
      )
    )
    opts = await testbedLabOptions(home)
  }, 180_000)

  afterAll(async () => {
    await tearDownTestbedLab({ name: LAB, lab, home, opts, testbedUp: Boolean(tb), say })
  }, 120_000)

  it('deploys, fails over on a power cut, restores redundancy onto the old primary, and fails back when the new primary is isolated with nftables', async () => {
    const lines: string[] = []
    const { lab: l, lines: pre } = await RemoteLab.deploy(loadLabFile(labFile), { name: LAB, onLine: (x) => lines.push(`${x.slot}: ${x.detail}`) }, opts)
    lab = l
    for (const x of lines) say(`deploy ${x}`)
    expect(pre.map((x) => [x.slot, x.ok])).toEqual([
      ['a', true],
      ['b', true],
      ['disk', true]
    ])
    expect(pre.every((x) => x.faultPath === 'nft')).toBe(true)
    const [aService, bService] = l.lab!.serviceEndpoints()
    expect(aService.host).toBe(labHost(tb, 'h1').address)
    await until(l, 'a primary with b as its backup', paired('a', 'b'))

    // power cut (kill) of the primary under load: b goes live, the clients follow it
    const goLives: number[] = []
    const off = l.lab!.onEvent((ev) => ev.source === 'agent' && ev.host === 'b' && ev.type === 'go-live' && goLives.push(ev.ts))
    let cutAt = 0
    const one = await loadThrough(l, 'r1-', async () => {
      const called = Date.now()
      const cut = await l.lab!.powerCut('a')
      say(`power cut a: ${cut.note} (path: ${cut.path} over ssh), ${cut.createdAt - called} ms into a call of ${Date.now() - called} ms`)
      expect(cut.path).toBe('kill')
      // the fault began when the signal went on h1, inside the call, not when the call returned
      expect(cut.createdAt).toBeGreaterThanOrEqual(called)
      expect(cut.createdAt).toBeLessThanOrEqual(Date.now())
      cutAt = cut.createdAt
    })
    await until(l, 'b live alone', (rows) => rows.get('a')?.state === 'down' && role(rows, 'b') === 'live')
    off()
    // b went live after the cut, by the lab's one clock for both (the go-live is b's own event, mapped from h2's clock)
    expect(goLives).toHaveLength(1)
    expect(goLives[0]).toBeGreaterThan(cutAt)
    say(`b went live ${goLives[0] - cutAt} ms after the SIGKILL on h1`)
    expect(one.result.summary.failoversFollowed).toBeGreaterThanOrEqual(1)
    expect(answeredAfter(one.result.history, one.at, `${bService.host}:${bService.port}`)).toBeGreaterThan(0)
    histories.push(...one.result.history)
    one.result.keys.forEach((k) => keys.add(k))
    expectValid(histories, await finalRead(l.lab!.serviceEndpoints(), [...keys]))
    // the power cut is a fault of the lab until restore refills the slot; heal all leaves it open
    expect(await l.lab!.heal('all')).toEqual({ healed: [], warnings: [] })
    expect(l.lab!.openFaults().map((f) => [f.spec.kind, f.healsAt])).toEqual([['power', null]])

    // restore redundancy onto h1 again: a fresh agent is deployed there and joins b
    const r = await l.restore()
    expect(r).toEqual({ from: 'b', to: 'a', gen: 2 })
    expect(l.lab!.openFaults()).toEqual([])
    await until(l, 'b primary with the new a as its backup', paired('b', 'a'))

    // isolate the new primary in its own kernel; a goes live (fail back)
    let isolated = ''
    const two = await loadThrough(l, 'r2-', async () => {
      const f = await l.lab!.injectFault({ kind: 'isolate', host: 'b' }, 30_000)
      isolated = f.id
      say(`isolate b: path ${f.path}; ${(f.kernel ?? []).map((k) => k.part.detail).join(', ')}${f.note ? ` (${f.note})` : ''}`)
      expect(f.path).toBe('nft')
      // one registry: the kernel fault is the lab's own, with the lab's ids
      expect(f.id).toMatch(/^f\d+$/)
      expect(l.lab!.openFaults().find((x) => x.id === f.id)).toMatchObject({ path: 'nft', spec: { kind: 'isolate', host: 'b' } })
    })
    await until(l, 'a live', (rows) => role(rows, 'a') === 'live')
    // the console's SSH connection was spared: b's agent still answers over it
    const rows = new Map((await l.status()).map((x) => [x.host, x]))
    expect(rows.get('b')?.state).toBe('up')
    expect(answeredAfter(two.result.history, two.at, `${aService.host}:${aService.port}`)).toBeGreaterThan(0)
    histories.push(...two.result.history)
    two.result.keys.forEach((k) => keys.add(k))
    expectValid(histories, await finalRead(l.lab!.serviceEndpoints(), [...keys]))
    expect(await l.lab!.heal(isolated)).toEqual({ healed: [isolated], warnings: [] })
    expect(l.lab!.openFaults()).toEqual([])
    expect(await listFaultTables(localNetnsExec(labHost(tb, 'h2').namespace))).toEqual([])

    const r2 = await l.restore()
    expect(r2).toEqual({ from: 'a', to: 'b', gen: 3 })
    await until(l, 'a primary with the new b as its backup', paired('a', 'b'))
  }, 240_000)

  it('keeps serving when the console goes away mid-load, and a new console reattaches from the state file and sees events', async () => {
    let l = lab!
    let reattached: Awaited<ReturnType<RemoteLab['reattach']>> = []
    const events: LabEvent[] = []
    const three = await loadThrough(l, 'r3-', async () => {
      // the console dies: every console-side connection and client goes at once
      l.close()
      lab = null
      l = await reopen()
      reattached = await l.reattach()
      l.lab!.onEvent((e) => events.push(e))
    })
    for (const x of reattached) say(`reattach ${x.slot}: ${x.detail}`)
    expect(reattached.map((x) => [x.slot, x.ok])).toEqual([
      ['a', true],
      ['b', true],
      ['disk', true]
    ])
    expect(three.result.summary.ok).toBeGreaterThan(0)
    expect(three.result.history.filter((h) => h.status === 'ok' && h.invokeMs > three.at).length, 'served after the console went').toBeGreaterThan(0)
    histories.push(...three.result.history)
    three.result.keys.forEach((k) => keys.add(k))
    expectValid(histories, await finalRead(l.lab!.serviceEndpoints(), [...keys]))
    await pollUntil('events from every agent', async () => ['a', 'b', 'disk'].every((h) => events.some((e) => e.source === 'agent' && e.host === h)), 15_000)
    const rows = await until(l, 'the pair as before', paired('a', 'b'))
    expect(rows.get('disk')?.state).toBe('up')
  }, 120_000)

  it('heals every fault by its dead-man deadline on the host with the console gone', async () => {
    const l = lab!
    // The loss is on a's link to the disk server, not on the logging channel: a segment lost there delays the
    // heartbeats behind it until TCP resends it, longer on a loaded machine than the 60 ms a quiet pair's detectors
    // have learned, and the pair rightly fails over, which is not what this test is about (CI once ended this test
    // with a live and b halted, most likely so).
    const loss = await l.lab!.injectFault({ kind: 'loss', from: 'a', to: 'disk', probability: 0.01 }, 2000)
    const parts = (f: typeof loss) =>
      [...(f.kernel ?? []).map((k) => k.part.detail), ...f.parts.map((p) => `${p.host}: agent filter (${p.fault.kind})`)].join(', ')
    say(`loss a-disk: path ${loss.path}; ${parts(loss)}`)
    expect(loss.path).toBe('nft')
    const h1 = localNetnsExec(labHost(tb, 'h1').namespace)
    expect(await listFaultTables(h1)).toEqual([`inet ftlab_${(loss.kernel![0].part.record as { id: string }).id}`])
    const pause = await l.lab!.injectFault({ kind: 'pause', host: 'disk' }, 2000)
    say(`pause disk: path ${pause.path}`)
    expect(pause.path).toBe('sigstop')
    const delay = await l.lab!.injectFault({ kind: 'delay', from: 'a', to: 'b', ms: 5 }, 2000)
    say(`delay a-b: path ${delay.path}; ${parts(delay)}${delay.note ? ` (${delay.note})` : ''}`)
    if (delay.path === 'agent-filter') expect(delay.note).toMatch(/netem/)
    else expect(delay.path).toBe('netem')
    const diskPid = l.lab!.snapshot().hosts.disk.pid
    l.close()
    lab = null
    // nothing of the console is left; only the hosts' dead-men can heal now
    await pollUntil('the nft table on h1 removed by its dead-man', async () => (await listFaultTables(h1)).length === 0, 20_000)
    const h3 = localNetnsExec(labHost(tb, 'h3').namespace)
    await pollUntil(
      'the disk agent resumed by its dead-man',
      async () => {
        const r = await h3.run(`sed 's/.*) //' /proc/${diskPid}/stat | cut -c1`)
        return r.code === 0 && r.stdout.trim() !== 'T' && r.stdout.trim() !== ''
      },
      20_000
    )
    const again = await reopen()
    // every record lapses at its deadline, whichever dead-man (host or agent) healed it
    await pollUntil('every fault past its deadline', async () => again.lab!.openFaults().length === 0, 10_000)
    await until(again, 'the pair as before', paired('a', 'b')).catch(async (err: Error) => {
      // a failover meanwhile: say who suspected whom and why, from the agents' own events
      throw new Error(`${err.message}\nwhat the agents said:\n${await agentsSaid(/suspects|now \w+ in generation|test-and-set|stalled|fenced/)}`)
    })
  }, 120_000)

  it("cuts the backup's power with the testbed's switch (command driver), and restore powers it on and redeploys it as the new backup", async () => {
    const l = lab!
    const cut = await l.lab!.powerCut('b')
    say(`power cut b: ${cut.path}: ${cut.note}`)
    expect(cut.path).toBe('driver')
    expect(cut.note).toMatch(/^command driver/)
    expect(l.lab!.openFaults().find((f) => f.id === cut.id)).toMatchObject({ spec: { kind: 'power', host: 'b' }, healsAt: null })
    const rows = await until(l, 'a live, b down', (rows) => rows.get('b')?.state === 'down' && role(rows, 'a') === 'live')
    const down = (await l.status()).find((x) => x.host === 'b')
    say(`b after power-off: ${down?.state}${down?.reason ? ` (${down.reason})` : ''}`)
    expect(rows.get('a')?.state).toBe('up')
    const r = await l.restore()
    expect(r).toEqual({ from: 'a', to: 'b', gen: 4 })
    // restore switched b on with its driver and refilled the slot: the cut is closed
    expect(l.lab!.openFaults()).toEqual([])
    await until(l, 'a primary with the redeployed b as its backup', paired('a', 'b'))
  }, 120_000)

  it("cuts the disk server's power under load and powers it on over SSH: its agent restarts on its blocks, and the pair writes on", async () => {
    const l = lab!
    const disk = l.lab!.snapshot().hosts.disk
    const four = await loadThrough(l, 'r4-', async () => {
      const cut = await l.lab!.powerCut('disk')
      say(`power cut disk: ${cut.note} (path: ${cut.path} over ssh)`)
      expect(cut.path).toBe('kill')
      await until(l, 'the disk server down', (rows) => rows.get('disk')?.state === 'down')
      const on = await l.lab!.powerOn('disk')
      say(`power on disk: ${on.driver}: ${on.detail}`)
      expect(on.detail).toMatch(/its agent restarted on its data directory/)
    })
    expect(l.lab!.openFaults()).toEqual([])
    const after = l.lab!.snapshot().hosts.disk
    // the same slot, data directory and address; a new process
    expect([after.incarnation, after.dataDir, after.listen]).toEqual([disk.incarnation, disk.dataDir, disk.listen])
    expect(after.pid).not.toBe(disk.pid)
    expect(four.result.history.filter((h) => h.status === 'ok' && h.invokeMs > four.at + 500).length, 'writes answered after the power-on').toBeGreaterThan(0)
    histories.push(...four.result.history)
    four.result.keys.forEach((k) => keys.add(k))
    expectValid(histories, await finalRead(l.lab!.serviceEndpoints(), [...keys]))
    await until(l, 'the pair as before, the disk server up', (rows) => paired('a', 'b')(rows) && rows.get('disk')?.state === 'up')
  }, 120_000)

  it('reports an unreachable host and a wrong password on their own lines, and the running lab is unharmed', async () => {
    const l = lab!
    const before = l.lab!.snapshot()
    const h4 = labHost(tb, 'h4')
    const h2 = labHost(tb, 'h2')
    const bad = join(home, 'bad.json')
    writeFileSync(
      bad,
      JSON.stringify({
        version: 1,
        hosts: {
          a: { address: h4.address, user: h4.user, identityFile: h4.identity, auth: 'key', faults: { run: 'netns', namespace: h4.namespace } },
          b: { address: h2.address, user: h2.user, auth: 'password' },
          disk: { address: tb.unusedAddress, user: 'nobody', identityFile: h4.identity, auth: 'key' }
        }
      })
    )
    const err = await RemoteLab.deploy(
      loadLabFile(bad),
      { name: 'remote-bad' },
      {
        ...opts,
        secrets: { password: async ({ attempt }) => (attempt === 1 ? 'not-the-password' : null) }
      }
    ).then(
      () => null,
      (e: unknown) => e
    )
    expect(err).toBeInstanceOf(RemoteDeployError)
    const lines = new Map((err as RemoteDeployError).lines.map((x) => [x.slot, x]))
    for (const x of lines.values()) say(`bad deploy ${x.slot}: ${x.ok ? 'ok' : 'FAILED'}: ${x.detail}`)
    expect(lines.get('a')?.ok).toBe(true)
    expect(lines.get('b')?.ok).toBe(false)
    expect((lines.get('b')?.error as SshError).kind).toBe('auth')
    expect(lines.get('b')?.detail).toMatch(/authentication failed for ftlab2@10\.87\.0\.12:22; tried: .*password/)
    expect(lines.get('disk')?.ok).toBe(false)
    expect(['unreachable', 'timeout']).toContain((lines.get('disk')?.error as SshError).kind)
    expect(lines.get('disk')?.detail).toContain(tb.unusedAddress)
    // the same through the command line: one line per host, exit 1, nothing started
    const out: string[] = []
    const code = await runCli(['deploy', bad, '--name', 'remote-bad'], { out: (t) => out.push(t), err: (t) => out.push(t), isTty: false, home })
    say(`ftlab deploy (bad):\n${out.join('')}`)
    expect(code).toBe(1)
    expect(out.join('')).toMatch(/ a +ok +a \(ftlab4@10\.87\.0\.14\)/)
    expect(out.join('')).toMatch(/ b +FAILED +authentication failed for ftlab2@10\.87\.0\.12:22/)
    expect(out.join('')).toMatch(/ disk +FAILED +host unreachable: .*10\.87\.0\.99/)
    const st: string[] = []
    expect(await runCli(['status', '--name', LAB], { out: (t) => st.push(t), err: (t) => st.push(t), isTty: false, home })).toBe(0)
    say(`ftlab status:\n${st.join('')}`)
    expect(st.join('')).toContain(`lab '${LAB}' (remote)`)
    // deploying the running lab again is refused before anything is touched
    const twice = await RemoteLab.deploy(loadLabFile(labFile), { name: LAB }, opts).then(
      () => null,
      (e: unknown) => e
    )
    expect(twice).toBeInstanceOf(RemoteDeployError)
    expect((twice as RemoteDeployError).lines.every((x) => !x.ok && /lab 'remote-it' is already running there/.test(x.detail))).toBe(true)
    // nothing was started for the bad lab, and the running one kept every agent
    expect(existsSync(join(home, 'labs', 'remote-bad.json'))).toBe(false)
    const rows = await until(l, 'the pair as before', paired('a', 'b'))
    for (const id of ['a', 'b', 'disk']) expect(rows.get(id)?.pid).toBe(before.hosts[id].pid)
  }, 120_000)

  it('tears down: agents stopped, ~/.ftlab and fault tables gone from every host', async () => {
    const l = lab!
    await l.lab!.injectFault({ kind: 'cut', from: 'a', to: 'disk', oneWay: true }, 60_000)
    const t = await l.teardown()
    l.close()
    lab = null
    expect(t.problems).toEqual([])
    expect(t.removed.sort()).toEqual(['a', 'b', 'disk'])
    for (const id of ['h1', 'h2', 'h3']) {
      const h = labHost(tb, id)
      expect(existsSync(join(TESTBED_ROOT, 'home', h.user, '.ftlab')), `${id}: ~/.ftlab`).toBe(false)
      expect(await listFaultTables(localNetnsExec(h.namespace)), `${id}: nft tables`).toEqual([])
    }
    expect(RemoteLab.exists(LAB, home)).toBe(false)
  }, 120_000)
})
