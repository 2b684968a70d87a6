// The console API over real agents: the local lab behind ConsoleBackend, as the UI sees it.
// Start, roles and the channel, faults in the contract's words, a power cut under load,
// restore redundancy, a restarted console reattaching, and a stop that leaves no agent.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ApiEvent, FaultInjectParams, LabStatus, MethodName, ResultOf } from '../../../main/api/contract.js'
import { dispatch } from '../../../main/api/dispatch.js'
import { ConsoleBackend } from '../../../main/console/console-backend.js'
import { inputMix } from '../../../main/console/event-translator.js'
import { toFaultInfo, toSpec } from '../../../main/console/lab-driver.js'
import { requireReplicaAgent } from '../../support/agent.js'
import { LabStore } from '../../../main/lab/lab-state.js'
import { openLocalLab } from '../../../main/lab/local-lab.js'
import { pidAlive } from '../../support/process.js'

await requireReplicaAgent()

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) {
    try {
      await cleanups.pop()!()
    } catch {
      // keep cleaning up the rest
    }
  }
})

/** A temp FTLAB_HOME whose lab, whatever a test left behind, is stopped and removed. */
function tempHome(): string {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-lb-'))
  cleanups.push(() => rmSync(home, { recursive: true, force: true }))
  cleanups.push(async () => {
    if (new LabStore(home).load('local')) await openLocalLab('local', { home }).stop()
  })
  return home
}

/** The console as a transport sees it: every call checked against the contract. */
class Console {
  constructor(readonly b: ConsoleBackend) {}
  call<M extends MethodName>(method: M, params: unknown = {}): Promise<ResultOf<M>> {
    return dispatch(this.b, method, params) as Promise<ResultOf<M>>
  }
  labStatus = () => this.call('lab.status')
  labStart = (p: unknown) => this.call('lab.start', p)
  labStop = () => this.call('lab.stop')
  labRestore = () => this.call('lab.restore')
  faultInject = (p: unknown) => this.call('fault.inject', p)
  faultHeal = (p: unknown) => this.call('fault.heal', p)
  loadStart = (p: unknown) => this.call('load.start', p)
  loadStop = () => this.call('load.stop')
  subscribe = (l: (ev: ApiEvent) => void) => this.b.subscribe(l)
  close = () => this.b.close()
}

function backend(home: string, opts: { agentBundle?: string } = {}): Console {
  const b = new ConsoleBackend({ home, statusEveryMs: 150, ...opts })
  cleanups.push(() => b.close())
  return new Console(b)
}

async function until(b: Console, what: string, ok: (s: LabStatus) => boolean, timeoutMs = 20_000): Promise<LabStatus> {
  const deadline = Date.now() + timeoutMs
  let s = await b.labStatus()
  while (!ok(s)) {
    if (Date.now() > deadline) {
      const seen = s.hosts.map((h) => `${h.id}=${h.role}/${h.gen}${h.error ? ` (${h.error})` : ''}`).join(' ')
      throw new Error(`timed out waiting for ${what}; last: state ${s.state}, ${seen}, load ${JSON.stringify(s.load)}`)
    }
    await new Promise((r) => setTimeout(r, 100))
    s = await b.labStatus()
  }
  return s
}

const role = (s: LabStatus, id: string) => s.hosts.find((h) => h.id === id)!.role
const host = (s: LabStatus, id: string) => s.hosts.find((h) => h.id === id)!
const alive = pidAlive

describe('contract faults in the lab’s words', () => {
  const f = (p: Partial<FaultInjectParams>): FaultInjectParams => ({ target: 'a-b', kind: 'cut', params: {}, durationMs: 1000, ...p })
  it('maps link and host faults both ways', () => {
    expect(toSpec(f({}))).toEqual({ kind: 'cut', from: 'a', to: 'b', oneWay: false })
    expect(toSpec(f({ target: 'b-disk', params: { direction: 'backward' } }))).toEqual({ kind: 'cut', from: 'disk', to: 'b', oneWay: true })
    expect(toSpec(f({ target: 'a-disk', kind: 'delay', params: { ms: 40, jitterMs: 5 } }))).toEqual({
      kind: 'delay',
      from: 'a',
      to: 'disk',
      ms: 40,
      jitterMs: 5
    })
    expect(toSpec(f({ kind: 'loss', params: { probability: 0.25 } }))).toEqual({ kind: 'loss', from: 'a', to: 'b', probability: 0.25 })
    expect(toSpec(f({ target: 'b', kind: 'pause' }))).toEqual({ kind: 'pause', host: 'b' })
    expect(() => toSpec(f({ target: 'a', kind: 'power' }))).toThrow(/power does not apply/)

    const rec = (spec: Parameters<typeof toFaultInfo>[0]['spec']) =>
      toFaultInfo({ id: 'f3', spec, parts: [], createdAt: 10, healsAt: 20, path: 'agent-filter' })
    expect(rec({ kind: 'cut', from: 'disk', to: 'b', oneWay: true })).toEqual({
      id: 'f3',
      target: 'b-disk',
      kind: 'cut',
      params: { direction: 'backward' },
      startedAt: 10,
      healsAt: 20,
      path: 'agent-filter',
      note: null,
      what: 'cut disk→b'
    })
    expect(rec({ kind: 'power', host: 'a' })).toMatchObject({ target: 'a', kind: 'power', what: 'power cut a' })
    expect(rec({ kind: 'cut', from: 'a', to: 'b', oneWay: false }).params).toEqual({ direction: 'both' })
    expect(rec({ kind: 'isolate', host: 'disk' })).toMatchObject({ target: 'disk', kind: 'isolate', params: {} })
    expect(rec({ kind: 'delay', from: 'b', to: 'a', ms: 30 })).toMatchObject({ target: 'a-b', params: { ms: 30 } })
  })

  it('scales the sampled inputs of a channel window to its entry count', () => {
    const sample = (...kinds: string[]) => kinds.map((k) => ({ input: `${k} s:x 12B` }))
    expect(inputMix(sample('data', 'data', 'timer'), 3)).toEqual({ data: 2, timer: 1 })
    expect(inputMix(sample('data', 'data', 'data'), 90)).toEqual({ data: 90 })
    const mixed = inputMix(sample('data', 'data', 'data', 'timer'), 100)
    expect(mixed).toEqual({ data: 75, timer: 25 })
  })
})

describe('ConsoleBackend on the local lab', () => {
  it('a missing agent bundle is a lab in error with the reason, not a crash', async () => {
    const home = tempHome()
    const b = backend(home, { agentBundle: join(home, 'no-such-agent.cjs') })
    const s = await b.labStart({ guest: 'kv', mode: 'rsm' })
    expect(s).toMatchObject({ state: 'error', kind: 'local', name: 'local' })
    expect(s.error).toMatch(/did not start/)
    await expect(b.loadStart({ clients: 1, seconds: 1, keys: 1 })).rejects.toThrow(/load.start: no lab is open/)
    expect((await b.labStop()).state).toBe('stopped')
  })

  it(`start, faults, power cut under load, restore, reattach, stop`, async () => {
    const home = tempHome()
    const b = backend(home)
    const events: ApiEvent[] = []
    b.subscribe((ev) => events.push(ev))
    expect((await b.call('console.info')).backend).toBe('none')

    // start: a primary, b its backup, the disk server, the channel a → b
    const started = await b.labStart({ guest: 'kv', mode: 'rsm' })
    expect(started.state).toBe('running')
    let s = await until(b, 'a primary with b as backup', (x) => role(x, 'a') === 'primary' && role(x, 'b') === 'backup' && x.channel?.connected === true)
    expect(role(s, 'disk')).toBe('disk-server')
    expect(s.channel).toMatchObject({ from: 'a', to: 'b', gen: 1 })
    expect(s).toMatchObject({ kind: 'local', name: 'local', timing: { heartbeatMs: 20, suspectMs: 800 } })
    expect((await b.call('console.info')).lab).toEqual({ kind: 'local', name: 'local' })
    expect(s.hosts.every((h) => h.reachable && h.pid !== null && h.memory !== null)).toBe(true)
    const firstPids = s.hosts.map((h) => h.pid!)
    await expect(b.labStart({ guest: 'kv', mode: 'rsm' })).rejects.toThrow(/lab 'local' \(local\) is running; stop or detach it first/)

    // a link fault and a pause, in the contract's words, then heal all
    const delay = await b.faultInject({ target: 'a-b', kind: 'delay', params: { ms: 5 }, durationMs: 30_000 })
    expect(delay).toMatchObject({ target: 'a-b', kind: 'delay', params: { ms: 5 } })
    await b.faultInject({ target: 'disk', kind: 'pause', params: {}, durationMs: 30_000 })
    s = await until(b, 'the disk server paused', (x) => host(x, 'disk').paused)
    expect(host(s, 'disk').reachable).toBe(false)
    expect(s.faults.map((f) => `${f.kind} ${f.target}`).sort()).toEqual(['delay a-b', 'pause disk'])
    await expect(b.faultHeal({ id: 'f99' })).rejects.toThrow(/no open fault 'f99'/)
    const healed = await b.faultHeal({ id: 'all' })
    expect(healed.healed.sort()).toEqual([delay.id, 'f2'].sort())
    expect(healed.warnings).toEqual([])
    await until(b, 'the disk server back', (x) => host(x, 'disk').reachable && x.faults.length === 0)

    // load: entries flow a → b and are acknowledged
    const load = await b.loadStart({ clients: 4, seconds: 60, keys: 8 })
    expect(load.state).toBe('running')
    s = await until(b, 'entries acknowledged under load', (x) => (x.channel?.acked ?? 0) > 50 && x.load.completed > 50)
    expect(s.channel!.entriesPerSec).toBeGreaterThan(0)
    expect(s.load.target).toBe('a')
    // latency is live while the load runs, not only in the final summary
    s = await until(b, 'a live latency', (x) => x.load.latencyMs.p50 > 0)
    expect(s.load.latencyMs.p99).toBeGreaterThanOrEqual(s.load.latencyMs.p50)

    // power cut of the primary: b goes live, the clients follow it
    const cut = await b.faultInject({ target: 'a', kind: 'power', params: {}, durationMs: 60_000 })
    expect(cut).toMatchObject({ target: 'a', kind: 'power' })
    // the cut's status goes out before the call returns, not after the status rate limit's gap: b goes live within a few
    // heartbeats, and the cards (and a recording's playback) must show a down by then
    const afterCut = events.filter((e) => e.topic === 'status').at(-1)
    expect(afterCut?.topic === 'status' && role(afterCut.status, 'a')).toBe('down')
    s = await until(b, 'b live alone', (x) => role(x, 'b') === 'live' && role(x, 'a') === 'down')
    expect(host(s, 'a')).toMatchObject({ reachable: false, pid: null })
    expect(host(s, 'a').error).toMatch(/power cut/)
    expect(host(s, 'a').notes).toContain('power-off')
    expect(host(s, 'a').canPowerOn).toBe(true)
    await expect(b.call('lab.powerOn', { host: 'b' })).rejects.toThrow(/lab.powerOn: host b is not down/)
    await expect(b.call('lab.powerOn', { host: 'disk' })).rejects.toThrow(/lab.powerOn: the disk server is not down/)
    expect(s.channel).toBeNull()
    // a power cut stays open, with no deadline, until restore redundancy (or power-on) closes it
    expect(cut).toMatchObject({ healsAt: null, path: 'kill', what: 'power cut a' })
    expect(s.faults.map((f) => f.id)).toEqual([cut.id])
    // b goes live in a's generation; restore redundancy begins the next one
    expect(s.invariants.liveByGen).toEqual([{ gen: 1, live: ['a', 'b'] }])
    expect(s.invariants.splitBrain).toBe(false)
    const atCut = s.load.completed
    s = await until(b, 'the load continuing on b', (x) => x.load.target === 'b' && x.load.completed > atCut + 50)
    await expect(b.faultInject({ target: 'a', kind: 'pause', params: {}, durationMs: 1000 })).rejects.toThrow(/fault.inject: host a is down/)
    expect(s.faults).toHaveLength(1)

    // restore redundancy: b primary of generation 2, a fresh a its backup
    s = await b.labRestore()
    expect(s.gen).toBe(2)
    s = await until(b, 'b primary with a as backup', (x) => role(x, 'b') === 'primary' && role(x, 'a') === 'backup' && x.channel?.connected === true)
    expect(s.channel).toMatchObject({ from: 'b', to: 'a', gen: 2 })
    expect(host(s, 'a').pid).not.toBe(firstPids[0])
    expect(s.faults).toEqual([])

    // the disk server's power cut: the load stalls on its writes; power-on restarts it on its blocks and the load goes on
    const diskCut = await b.faultInject({ target: 'disk', kind: 'power', params: {}, durationMs: 60_000 })
    s = await until(b, 'the disk server down', (x) => host(x, 'disk').reachable === false)
    expect(host(s, 'disk').canPowerOn).toBe(true)
    expect(host(s, 'disk').error).toMatch(/power it on: the disk server restarts on its blocks/)
    s = await b.call('lab.powerOn', { host: 'disk' })
    expect(s.faults.map((f) => f.id)).not.toContain(diskCut.id)
    const atPowerOn = (await b.labStatus()).load.completed
    s = await until(b, 'the disk server up and the load going on', (x) => host(x, 'disk').reachable && x.load.completed > atPowerOn + 50)
    expect(role(s, 'b')).toBe('primary')

    // the load ends with the checkers' verdict
    await b.loadStop()
    await until(b, 'the load checked', () => events.some((e) => e.topic === 'mark' && /checks:/.test(e.mark.label)))
    const verdict = events.find((e) => e.topic === 'mark' && /checks:/.test(e.mark.label))
    expect(verdict && verdict.topic === 'mark' && verdict.mark.label).toMatch(/checks: valid/)
    const done = (await b.labStatus()).load
    expect(done.state).toBe('idle')
    expect(done.verdict).toMatchObject({ result: 'valid', lostWrites: 0 })
    expect(done.failed).toBe(done.verdict!.failed)

    // what the UI was told along the way
    const marks = events.flatMap((e) => (e.topic === 'mark' ? [e.mark] : []))
    expect(marks.some((m) => m.kind === 'go-live' && m.host === 'b')).toBe(true)
    expect(marks.some((m) => m.kind === 'tas' && m.host === 'b' && /won/.test(m.label))).toBe(true)
    expect(marks.some((m) => m.kind === 'restore' && /b → a \(gen 2\)/.test(m.label))).toBe(true)
    expect(marks.some((m) => m.kind === 'power-on' && m.host === 'disk' && /restarted on its data directory/.test(m.label))).toBe(true)
    const agentTypes = new Set(events.flatMap((e) => (e.topic === 'agent' ? [`${e.host}:${e.type}`] : [])))
    for (const t of ['a:entries', 'b:ack', 'b:role', 'b:go-live', 'b:snapshot', 'a:snapshot']) expect(agentTypes, t).toContain(t)
    expect(events.some((e) => e.topic === 'terminal' && /b goes live/.test(e.data))).toBe(true)
    // status snapshots told the UI each state it went through (how many depends on how fast the run was; status
    // events are at least 250 ms apart, and a quick restore and verdict can come within that, so wait for the last)
    const isStatus = (e: ApiEvent) => e.topic === 'status' && role(e.status, 'b') === 'primary' && role(e.status, 'a') === 'backup' && e.status.gen === 2
    await until(b, 'a status event of b primary with a as backup', () => events.some(isStatus))
    const statuses = events.flatMap((e) => (e.topic === 'status' ? [e.status] : []))
    expect(statuses.some((x) => role(x, 'a') === 'primary' && role(x, 'b') === 'backup' && x.gen === 1)).toBe(true)
    expect(statuses.some((x) => role(x, 'b') === 'live' && role(x, 'a') === 'down')).toBe(true)
    expect(statuses.some((x) => role(x, 'b') === 'primary' && role(x, 'a') === 'backup' && x.gen === 2)).toBe(true)
    const seqs = events.map((e) => e.seq)
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y))
    expect((await b.call('events.since', { seq: seqs[seqs.length - 2] })).events.map((e) => e.seq)).toEqual([seqs[seqs.length - 1]])

    // a restarted console reattaches to the running lab; it does not start a second one
    const pids = (await b.labStatus()).hosts.map((h) => h.pid!)
    await b.close()
    const again = backend(home)
    s = await again.labStatus()
    expect(s).toMatchObject({ kind: 'local', name: 'local' })
    expect(s.state).toBe('running')
    expect(s.hosts.map((h) => h.pid)).toEqual(pids)
    s = await until(again, 'the reattached console seeing b primary', (x) => role(x, 'b') === 'primary' && role(x, 'a') === 'backup')
    expect(s.gen).toBe(2)
    await expect(again.labStart({ guest: 'kv', mode: 'rsm' })).rejects.toThrow(/stop or detach it first/)

    // stop: every agent gone, the lab forgotten
    s = await again.labStop()
    expect(s.state).toBe('stopped')
    expect(s.hosts.every((h) => h.role === 'down')).toBe(true)
    for (const pid of [...firstPids, ...pids]) expect(alive(pid), `agent pid ${pid}`).toBe(false)
    expect(new LabStore(home).load('local')).toBeNull()
  }, 120_000)

  it(`the bank guest has its own workload, checked by its invariant total, across a failover`, async () => {
    const home = tempHome()
    const b = backend(home)
    await b.labStart({ guest: 'bank', mode: 'rsm' })
    await until(b, 'a primary with b as backup', (x) => role(x, 'a') === 'primary' && role(x, 'b') === 'backup' && x.channel?.connected === true)
    await expect(b.loadStart({ clients: 2, seconds: 5, keys: 1, workload: 'kv' })).rejects.toThrow(
      /the kv workload speaks to the kv guest; this lab runs 'bank'/
    )
    const load = await b.loadStart({ clients: 3, seconds: 4, keys: 1 })
    expect(load).toMatchObject({ state: 'running', workload: 'bank' })
    await until(b, 'transfers completing', (x) => x.load.completed > 30)
    await b.faultInject({ target: 'a', kind: 'power', durationMs: 60_000 })
    const s = await until(b, 'the bank run checked', (x) => x.load.state === 'idle' && x.load.verdict !== null, 30_000)
    expect(role(s, 'b')).toBe('live')
    expect(s.load.verdict).toMatchObject({ result: 'valid' })
    expect(s.load.verdict!.details[0]).toMatch(/^total (\d+) = \1$/)
    expect(s.load.latencyMs.p50).toBeGreaterThan(0)
    await b.labStop()
  }, 120_000)
})
