// The console API over real agents: the local lab behind LabBackend, as the UI sees it.
// Start, roles and the channel, faults in the contract's words, a power cut under load,
// restore redundancy, a restarted console reattaching, and a stop that leaves no agent.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ApiEvent, FaultInjectParams, LabStatus } from '../../../main/api/contract.js'
import { inputMix, LabBackend, toFaultInfo, toSpec } from '../../../main/api/lab-backend.js'
import { probeLocalAgent } from '../../../main/lab/agent-probe.js'
import { LabStore } from '../../../main/lab/lab-state.js'
import { openLocalLab } from '../../../main/lab/local-lab.js'
import { pidAlive } from '../../support/process.js'

const probe = await probeLocalAgent()
const skipNote = probe.replicaRole ? '' : ` [skipped: needs the replica role in the agent bundle: ${probe.reason}]`

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
    if (new LabStore(home).load('console')) await openLocalLab('console', { home }).stop()
  })
  return home
}

function backend(home: string): LabBackend {
  const b = new LabBackend({ home, statusEveryMs: 150 })
  cleanups.push(() => b.close())
  return b
}

async function until(b: LabBackend, what: string, ok: (s: LabStatus) => boolean, timeoutMs = 20_000): Promise<LabStatus> {
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
    expect(toSpec(f({ target: 'a-disk', kind: 'delay', params: { ms: 40, jitterMs: 5 } }))).toEqual({ kind: 'delay', from: 'a', to: 'disk', ms: 40, jitterMs: 5 })
    expect(toSpec(f({ kind: 'loss', params: { probability: 0.25 } }))).toEqual({ kind: 'loss', from: 'a', to: 'b', probability: 0.25 })
    expect(toSpec(f({ target: 'b', kind: 'pause' }))).toEqual({ kind: 'pause', host: 'b' })
    expect(() => toSpec(f({ target: 'a', kind: 'power' }))).toThrow(/power does not apply/)

    const rec = (spec: Parameters<typeof toFaultInfo>[0]['spec']) => toFaultInfo({ id: 'f3', spec, parts: [], createdAt: 10, healsAt: 20 })
    expect(rec({ kind: 'cut', from: 'disk', to: 'b', oneWay: true })).toEqual({ id: 'f3', target: 'b-disk', kind: 'cut', params: { direction: 'backward' }, startedAt: 10, healsAt: 20 })
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

describe('LabBackend on the local lab', () => {
  it('a missing agent bundle is a lab in error with the reason, not a crash', async () => {
    const home = tempHome()
    const b = new LabBackend({ home, agentBundle: join(home, 'no-such-agent.cjs') })
    cleanups.push(() => b.close())
    const s = await b.labStart({ guest: 'kv', mode: 'rsm' })
    expect(s.state).toBe('error')
    expect(s.error).toMatch(/did not start/)
    await expect(b.loadStart({ clients: 1, seconds: 1, keys: 1 })).rejects.toThrow(/load.start: the lab is error; start it first/)
    expect((await b.labStop()).state).toBe('stopped')
  })

  it.skipIf(!probe.replicaRole)(`start, faults, power cut under load, restore, reattach, stop${skipNote}`, async () => {
    const home = tempHome()
    const b = backend(home)
    const events: ApiEvent[] = []
    b.subscribe((ev) => events.push(ev))
    expect(b.info().backend).toBe('local')

    // start: a primary, b its backup, the disk server, the channel a → b
    const started = await b.labStart({ guest: 'kv', mode: 'rsm' })
    expect(started.state).toBe('running')
    let s = await until(b, 'a primary with b as backup', (x) => role(x, 'a') === 'primary' && role(x, 'b') === 'backup' && x.channel?.connected === true)
    expect(role(s, 'disk')).toBe('disk-server')
    expect(s.channel).toMatchObject({ from: 'a', to: 'b', gen: 1 })
    expect(s.hosts.every((h) => h.reachable && h.pid !== null && h.memory !== null)).toBe(true)
    const firstPids = s.hosts.map((h) => h.pid!)
    await expect(b.labStart({ guest: 'kv', mode: 'rsm' })).rejects.toThrow(/is running .* stop it first/)

    // a link fault and a pause, in the contract's words, then heal all
    const delay = await b.faultInject({ target: 'a-b', kind: 'delay', params: { ms: 5 }, durationMs: 30_000 })
    expect(delay).toMatchObject({ target: 'a-b', kind: 'delay', params: { ms: 5 } })
    await b.faultInject({ target: 'disk', kind: 'pause', params: {}, durationMs: 30_000 })
    s = await until(b, 'the disk server paused', (x) => host(x, 'disk').paused)
    expect(host(s, 'disk').reachable).toBe(false)
    expect(s.faults.map((f) => `${f.kind} ${f.target}`).sort()).toEqual(['delay a-b', 'pause disk'])
    await expect(b.faultHeal({ id: 'f99' })).rejects.toThrow(/no open fault 'f99'/)
    expect((await b.faultHeal({ id: 'all' })).healed.sort()).toEqual([delay.id, 'f2'].sort())
    await until(b, 'the disk server back', (x) => host(x, 'disk').reachable && x.faults.length === 0)

    // load: entries flow a → b and are acknowledged
    const load = await b.loadStart({ clients: 4, seconds: 60, keys: 8 })
    expect(load.state).toBe('running')
    s = await until(b, 'entries acknowledged under load', (x) => (x.channel?.acked ?? 0) > 50 && x.load.completed > 50)
    expect(s.channel!.entriesPerSec).toBeGreaterThan(0)
    expect(s.load.target).toBe('a')

    // power cut of the primary: b goes live, the clients follow it
    const cut = await b.faultInject({ target: 'a', kind: 'power', params: {}, durationMs: 60_000 })
    expect(cut).toMatchObject({ target: 'a', kind: 'power' })
    s = await until(b, 'b live alone', (x) => role(x, 'b') === 'live' && role(x, 'a') === 'down')
    expect(host(s, 'a')).toMatchObject({ reachable: false, pid: null })
    expect(host(s, 'a').error).toMatch(/power cut/)
    expect(s.channel).toBeNull()
    // a local host's power is its agent: nothing heals it, so the cut is a moment, not an open fault
    expect(cut.healsAt).toBe(cut.startedAt)
    expect(s.faults).toEqual([])
    const atCut = s.load.completed
    await until(b, 'the load continuing on b', (x) => x.load.target === 'b' && x.load.completed > atCut + 50)
    await expect(b.faultInject({ target: 'a', kind: 'pause', params: {}, durationMs: 1000 })).rejects.toThrow(/fault.inject: host a is down/)

    // restore redundancy: b primary of generation 2, a fresh a its backup
    s = await b.labRestore()
    expect(s.gen).toBe(2)
    s = await until(b, 'b primary with a as backup', (x) => role(x, 'b') === 'primary' && role(x, 'a') === 'backup' && x.channel?.connected === true)
    expect(s.channel).toMatchObject({ from: 'b', to: 'a', gen: 2 })
    expect(host(s, 'a').pid).not.toBe(firstPids[0])

    // the load ends with the checkers' verdict
    await b.loadStop()
    await until(b, 'the load checked', () => events.some((e) => e.topic === 'mark' && /checks:/.test(e.mark.label)))
    const verdict = events.find((e) => e.topic === 'mark' && /checks:/.test(e.mark.label))
    expect(verdict && verdict.topic === 'mark' && verdict.mark.label).toMatch(/checks: valid/)
    expect((await b.labStatus()).load.state).toBe('idle')

    // what the UI was told along the way
    const marks = events.flatMap((e) => (e.topic === 'mark' ? [e.mark] : []))
    expect(marks.some((m) => m.kind === 'go-live' && m.host === 'b')).toBe(true)
    expect(marks.some((m) => m.kind === 'tas' && m.host === 'b' && /won/.test(m.label))).toBe(true)
    expect(marks.some((m) => m.kind === 'restore' && /b → a \(gen 2\)/.test(m.label))).toBe(true)
    const agentTypes = new Set(events.flatMap((e) => (e.topic === 'agent' ? [`${e.host}:${e.type}`] : [])))
    for (const t of ['a:entries', 'b:ack', 'b:role', 'b:go-live', 'b:snapshot', 'a:snapshot']) expect(agentTypes, t).toContain(t)
    expect(events.some((e) => e.topic === 'terminal' && /b goes live/.test(e.data))).toBe(true)
    expect(events.filter((e) => e.topic === 'status').length).toBeGreaterThan(10)
    const seqs = events.map((e) => e.seq)
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y))
    expect(b.eventsSince(seqs[seqs.length - 2]).events.map((e) => e.seq)).toEqual([seqs[seqs.length - 1]])

    // a restarted console reattaches to the running lab; it does not start a second one
    const pids = (await b.labStatus()).hosts.map((h) => h.pid!)
    await b.close()
    const again = backend(home)
    s = await again.labStatus()
    expect(s.state).toBe('running')
    expect(s.hosts.map((h) => h.pid)).toEqual(pids)
    s = await until(again, 'the reattached console seeing b primary', (x) => role(x, 'b') === 'primary' && role(x, 'a') === 'backup')
    expect(s.gen).toBe(2)
    await expect(again.labStart({ guest: 'kv', mode: 'rsm' })).rejects.toThrow(/stop it first/)

    // stop: every agent gone, the lab forgotten
    s = await again.labStop()
    expect(s.state).toBe('stopped')
    expect(s.hosts.every((h) => h.role === 'down')).toBe(true)
    for (const pid of [...firstPids, ...pids]) expect(alive(pid), `agent pid ${pid}`).toBe(false)
    expect(new LabStore(home).load('console')).toBeNull()
  }, 120_000)
})
