// The console's parts, each on its own: compound host states from the poller, collapsed
// repeats from the event translation, prompts answered and refused (secrets never in an
// event), terminals that keep their scrollback across a reconnect, and the session moving
// between labs.
import { EventEmitter } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { AgentStatus } from '../../../agent/control/protocol.js'
import { TERM_SCROLLBACK_BYTES, type ApiEvent, type ConsoleInfo, type FaultInfo, type MethodName, type ResultOf } from '../../../main/api/contract.js'
import { dispatch } from '../../../main/api/dispatch.js'
import { ApiEventLog } from '../../../main/api/event-log.js'
import { ConsoleBackend } from '../../../main/console/console-backend.js'
import { EventTranslator } from '../../../main/console/event-translator.js'
import { Prompts, type SecretStore } from '../../../main/console/prompts.js'
import { StatusPoller } from '../../../main/console/status-poller.js'
import { Terminals, type ShellLike } from '../../../main/console/terminals.js'
import { timeOfDay } from '../../../main/console/session.js'
import type { HostStatusRow } from '../../../main/lab/lab.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

function agent(id: string, role: AgentStatus['role'], gen: number, extra: Partial<AgentStatus> = {}): AgentStatus {
  return { id, pid: 100, version: 1, uptimeMs: 1000, role, gen, faults: [], memory: { rss: 1, heapUsed: 1, guestBytes: 0 }, ...extra }
}

function row(host: string, st: AgentStatus): HostStatusRow {
  return { host, kind: host === 'disk' ? 'disk' : 'replica', pid: 100, incarnation: 1, state: 'up', status: st } as HostStatusRow
}

const channel = (connected: boolean) => ({
  connected,
  lastEntry: 10,
  acked: 8,
  unackedEntries: 2,
  unackedBytes: 20,
  bytesSent: 100,
  bytesReceived: 0,
  entriesSent: 10,
  entriesReceived: 0,
  heldOutputs: 3,
  stalled: false
})
const replica = (peer: string, peerSuspected: boolean) => ({
  peer,
  releasedThrough: 5,
  peerSuspected,
  queuedInputs: 0,
  clients: 0,
  guestConns: 0,
  channelPort: 1,
  servicePort: 2
})

describe('status poller: compound states', () => {
  const isolateA: FaultInfo = {
    id: 'f1',
    target: 'a',
    kind: 'isolate',
    params: {},
    startedAt: 0,
    healsAt: 60_000,
    path: 'agent-filter',
    note: null,
    what: 'isolate a'
  }

  it('an isolated primary is not shown as a plain primary while b is live', () => {
    const poller = new StatusPoller({ status: async () => [], machineOf: (id) => id })
    poller.absorb([
      row('a', agent('a', 'primary', 1, { channel: channel(false), replica: replica('b', true) })),
      row('b', agent('b', 'live', 1, { replica: replica('a', true) })),
      row('disk', agent('disk', 'disk-server', 0, { disk: { gen: 1, live: 'b', tasWinner: 'b', blocks: 1, writes: 3, fenced: 2 } }))
    ])
    const hosts = poller.hosts({ faults: [isolateA], addressOf: () => '127.0.0.1', canPowerOn: () => false, downBecause: () => null })
    const a = hosts.find((h) => h.id === 'a')!
    expect(a.role).toBe('primary')
    expect(a.notes).toEqual(['isolated', 'outputs-held', 'no-disk-server', 'cannot-go-live'])
    expect(hosts.find((h) => h.id === 'b')!.notes).toEqual([])
    // the channel pane must not read "a → b" for an isolated primary
    expect(poller.channelFor(hosts)).toMatchObject({ from: 'a', to: null, connected: false })
    const inv = poller.invariants({ duplicatesDropped: 4, acknowledgedLost: 0 })
    expect(inv).toMatchObject({ liveByGen: [{ gen: 1, live: ['a', 'b'] }], splitBrain: false, fencedWrites: 2, duplicatesDropped: 4, acknowledgedLost: 0 })
  })

  it('lists who served each generation in the order it first served, not by name', () => {
    const poller = new StatusPoller({ status: async () => [], machineOf: (id) => id })
    const disk = row('disk', agent('disk', 'disk-server', 0, { disk: { gen: 2, live: null, tasWinner: null, blocks: 1, writes: 3, fenced: 0 } }))
    // generation 2: b primary with a as backup, then a power cut of b, and a goes live in b's generation
    poller.absorb([row('a', agent('a', 'backup', 2)), row('b', agent('b', 'primary', 2)), disk])
    poller.absorb([row('a', agent('a', 'live', 2)), { ...row('b', agent('b', 'primary', 2)), state: 'down', status: undefined }, disk])
    expect(poller.invariants({ duplicatesDropped: 0, acknowledgedLost: null })).toMatchObject({ liveByGen: [{ gen: 2, live: ['b', 'a'] }], splitBrain: false })
  })

  it('two replicas releasing outputs at once is split brain', () => {
    const poller = new StatusPoller({ status: async () => [], machineOf: (id) => id })
    poller.absorb([row('a', agent('a', 'live', 1)), row('b', agent('b', 'live', 1)), row('disk', agent('disk', 'disk-server', 0))])
    poller.hosts({ faults: [], addressOf: () => '127.0.0.1', canPowerOn: () => false, downBecause: () => null })
    expect(poller.invariants({ duplicatesDropped: 0, acknowledgedLost: null }).splitBrain).toBe(true)
  })

  it('a primary whose backup went live in the same generation is deposed, not a second serving replica (a nemesis soak saw this between a heal and the halt)', () => {
    const poller = new StatusPoller({ status: async () => [], machineOf: (id) => id })
    // the link is healed and the channel reconnected, but a has not yet heard that b won the test-and-set
    poller.absorb([
      row('a', agent('a', 'primary', 9, { channel: channel(true), replica: replica('b', false) })),
      row('b', agent('b', 'live', 9, { replica: replica('a', false) })),
      row('disk', agent('disk', 'disk-server', 0))
    ])
    const hosts = poller.hosts({ faults: [], addressOf: () => '127.0.0.1', canPowerOn: () => false, downBecause: () => null })
    expect(hosts.find((h) => h.id === 'a')!.notes).toContain('fenced')
    expect(poller.invariants({ duplicatesDropped: 0, acknowledgedLost: null }).splitBrain).toBe(false)
  })

  it('a backup behind a newer live generation is fenced; a power cut says power-off', () => {
    const poller = new StatusPoller({ status: async () => [], machineOf: (id) => (id === 'a' ? 'spare' : id) })
    poller.absorb([
      row('a', agent('a', 'live', 2)),
      row('b', agent('b', 'backup', 1, { replica: replica('a', false), channel: channel(true) })),
      { ...row('disk', agent('disk', 'disk-server', 0)), state: 'down' }
    ])
    const power: FaultInfo = { ...isolateA, id: 'f2', target: 'disk', kind: 'power', healsAt: null, what: 'power cut disk', path: 'kill' }
    const hosts = poller.hosts({ faults: [power], addressOf: () => 'x', canPowerOn: (id) => id === 'disk', downBecause: () => 'power cut' })
    expect(hosts.find((h) => h.id === 'a')).toMatchObject({ machine: 'spare', notes: ['no-disk-server'] })
    expect(hosts.find((h) => h.id === 'b')!.notes).toEqual(['no-disk-server', 'cannot-go-live', 'fenced'])
    expect(hosts.find((h) => h.id === 'disk')).toMatchObject({ role: 'down', notes: ['power-off'], canPowerOn: true, error: 'power cut' })
  })
})

describe('event translation', () => {
  it('collapses "test-and-set unreachable": five a second scroll once, then once per window with the count', () => {
    const log = new ApiEventLog()
    const t = new EventTranslator(log)
    const tas = (ts: number) => t.translate({ ts, source: 'agent', host: 'a', type: 'tas', data: { gen: 1, result: 'unreachable' } })
    for (let i = 0; i < 20; i++) tas(1000 + i * 200) // 4 s of retries
    let events = log.since(0).events
    expect(events.filter((e) => e.topic === 'agent')).toHaveLength(1)
    expect(events.filter((e) => e.topic === 'terminal')).toHaveLength(1)
    expect(events.find((e) => e.topic === 'terminal')).toMatchObject({
      data: expect.stringContaining('a cannot reach the test-and-set (gen 1): it holds its outputs and cannot go live')
    })
    tas(6500)
    events = log.since(0).events
    expect(events.filter((e) => e.topic === 'agent').map((e) => (e.topic === 'agent' ? e.data.repeats : null))).toEqual([0, 19])
    expect(events.filter((e) => e.topic === 'terminal').at(-1)).toMatchObject({ data: expect.stringContaining('(again; 19 more since the last report)') })
    // winning it is news at once, and a later loss of the disk server is news again
    t.translate({ ts: 6600, source: 'agent', host: 'a', type: 'tas', data: { gen: 1, result: 'won' } })
    tas(6700)
    const marks = log.since(0).events.filter((e) => e.topic === 'mark')
    expect(marks.map((e) => (e.topic === 'mark' ? e.mark.label : ''))).toEqual(['a won test-and-set (gen 1)'])
    expect(log.since(0).events.filter((e) => e.topic === 'agent')).toHaveLength(4)
  })
})

describe('prompts', () => {
  class MemoryStore implements SecretStore {
    readonly kept = new Map<string, string>()
    constructor(readonly canRemember: boolean) {}
    get(k: string) {
      return this.kept.get(k) ?? null
    }
    remember(k: string, s: string) {
      this.kept.set(k, s)
    }
    forget(k: string) {
      this.kept.delete(k)
    }
  }
  const next = async (log: ApiEventLog, topic: ApiEvent['topic']) => {
    for (let i = 0; i < 50; i++) {
      const e = log
        .since(0)
        .events.filter((x) => x.topic === topic)
        .at(-1)
      if (e) return e
      await new Promise((r) => setTimeout(r, 5))
    }
    throw new Error(`no ${topic} event`)
  }

  it('asks about an unknown host key with its fingerprint; accepted and refused answers settle it for every page', async () => {
    const log = new ApiEventLog()
    const p = new Prompts(log)
    const asked = p.confirmHostKey({ slot: 'b', host: '10.87.0.12', port: 22, keyType: 'ssh-ed25519', fingerprint: 'SHA256:abc', otherKeyTypes: [] })
    const ev = await next(log, 'prompt')
    if (ev.topic !== 'prompt') throw new Error('unreachable')
    expect(ev.prompt).toMatchObject({ kind: 'host-key', slot: 'b', host: '10.87.0.12', fingerprint: 'SHA256:abc' })
    expect(p.pending().map((x) => x.id)).toEqual([ev.prompt.id])
    expect(() => p.answer({ id: ev.prompt.id, secret: 'x' })).toThrow(/a host-key question takes accept, not a secret/)
    expect(p.answer({ id: ev.prompt.id, accept: true })).toEqual({ ok: true })
    expect(await asked).toBe(true)
    expect(await next(log, 'prompt-done')).toMatchObject({ id: ev.prompt.id, answer: 'accepted' })
    expect(() => p.answer({ id: ev.prompt.id, accept: true })).toThrow(/no open question/)

    const refused = p.confirmHostKey({ slot: 'a', host: 'h1', port: 22, keyType: 'ssh-ed25519', fingerprint: 'SHA256:def', otherKeyTypes: [] })
    const ev2 = log
      .since(0)
      .events.filter((e) => e.topic === 'prompt')
      .at(-1)!
    if (ev2.topic !== 'prompt') throw new Error('unreachable')
    p.answer({ id: ev2.prompt.id, accept: false })
    expect(await refused).toBe(false)
    expect(
      log
        .since(0)
        .events.filter((e) => e.topic === 'prompt-done')
        .map((e) => (e.topic === 'prompt-done' ? e.answer : ''))
    ).toEqual(['accepted', 'refused'])
  })

  it('a password is asked, never put in an event, and kept only when remembering is possible and asked for', async () => {
    for (const canRemember of [true, false]) {
      const log = new ApiEventLog()
      const store = new MemoryStore(canRemember)
      const p = new Prompts(log, store)
      const src = p.secretsFor(() => 'a')
      const got = src.password!({ user: 'ftlab', host: 'h1', port: 22, attempt: 1 })
      const ev = await next(log, 'prompt')
      if (ev.topic !== 'prompt' || ev.prompt.kind !== 'secret') throw new Error('expected a secret prompt')
      expect(ev.prompt).toMatchObject({ slot: 'a', user: 'ftlab', what: 'password', canRemember })
      p.answer({ id: ev.prompt.id, secret: 'hunter2-secret', remember: true })
      expect(await got).toBe('hunter2-secret')
      expect(JSON.stringify(log.since(0).events)).not.toContain('hunter2-secret')
      expect(store.kept.size).toBe(canRemember ? 1 : 0)
      if (canRemember) {
        // the remembered one is used without asking; when it fails it is forgotten and asked again
        expect(await src.password!({ user: 'ftlab', host: 'h1', port: 22, attempt: 1 })).toBe('hunter2-secret')
        void src.password!({ user: 'ftlab', host: 'h1', port: 22, attempt: 2 })
        expect(store.kept.size).toBe(0)
        p.withdrawAll()
      }
    }
  })

  it('detaching from a lab withdraws the questions its connections left open', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-detach-prompt-'))
    const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100 })
    try {
      await dispatch(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', seed: 2 })
      const asked = b.prompts.ask({ kind: 'secret', slot: 'spare', host: 'h4', user: 'ftlab4', what: 'password', keyPath: null, canRemember: false })
      expect(((await dispatch(b, 'console.info', {})) as ConsoleInfo).prompts).toHaveLength(1)
      await dispatch(b, 'lab.detach', {})
      expect(await asked).toBeNull()
      expect(((await dispatch(b, 'console.info', {})) as ConsoleInfo).prompts).toEqual([])
      expect(b.events.since(0).events.some((e) => e.topic === 'prompt-done' && e.answer === 'refused')).toBe(true)
    } finally {
      await b.close()
      rmSync(home, { recursive: true, force: true })
    }
  })

  it("a lab's questions are withdrawn when the console lets go of it, and one asked later is answered no without being shown", async () => {
    const log = new ApiEventLog()
    const p = new Prompts(log)
    const lab = p.scope()
    const src = p.secretsFor(() => 'spare', lab)
    const open = src.password!({ user: 'ftlab4', host: 'h4', port: 22, attempt: 1 })
    const unscoped = p.ask({ kind: 'host-key', slot: 'a', host: 'h1', port: 22, keyType: 'ssh-ed25519', fingerprint: 'SHA256:x' })
    expect(p.pending()).toHaveLength(2)
    lab.close()
    expect(await open).toBeNull()
    expect(p.pending().map((q) => q.kind)).toEqual(['host-key']) // only the lab's own question went
    const before = log.since(0).events.length
    // a reconnect that was under way asks after the close: no question reaches the page
    expect(await src.password!({ user: 'ftlab4', host: 'h4', port: 22, attempt: 2 })).toBeNull()
    expect(await p.confirmHostKey({ slot: 'spare', host: 'h4', port: 22, keyType: 'ssh-ed25519', fingerprint: 'SHA256:y', otherKeyTypes: [] }, lab)).toBe(false)
    expect(log.since(0).events.length).toBe(before)
    p.withdrawAll()
    expect(await unscoped).toBeNull()
  })

  it('an unanswered question times out', async () => {
    const log = new ApiEventLog()
    const p = new Prompts(log, undefined, 20)
    expect(await p.ask({ kind: 'host-key', slot: 'a', host: 'h', port: 22, keyType: 'k', fingerprint: 'SHA256:x' })).toBeNull()
    expect(log.since(0).events.at(-1)).toMatchObject({ topic: 'prompt-done', answer: 'timeout' })
  })
})

describe('terminals', () => {
  class FakeShell extends EventEmitter implements ShellLike {
    written: string[] = []
    size: [number, number] | null = null
    closed = false
    write(d: string) {
      this.written.push(d)
    }
    resize(c: number, r: number) {
      this.size = [c, r]
    }
    close() {
      this.closed = true
      this.emit('exit', { code: null, signal: null })
    }
  }

  it('opens, streams output by terminal id, resizes, reconnects keeping the scrollback, and lists for a reload', async () => {
    const log = new ApiEventLog()
    const shells: FakeShell[] = []
    const terms = new Terminals(log, {
      title: (h) => {
        if (h === 'spare') throw new Error('lab has no host spare')
        return `${h} · h1`
      },
      open: async () => {
        const s = new FakeShell()
        shells.push(s)
        return s
      }
    })
    const t = await terms.open('a')
    expect(t).toMatchObject({ id: 't1', host: 'a', title: 'a · h1', state: 'open', error: null })
    await expect(terms.open('spare')).rejects.toThrow(/term.open: lab has no host spare/)
    terms.input(t.id, 'hostname\r')
    expect(shells[0].written).toEqual(['hostname\r'])
    shells[0].emit('data', new TextEncoder().encode('h1\r\n'))
    expect(log.since(0).events.filter((e) => e.topic === 'terminal')).toEqual([expect.objectContaining({ stream: 't1', data: 'h1\r\n' })])
    terms.resize(t.id, 120, 40)
    expect(shells[0].size).toEqual([120, 40])

    // the shell drops; a reconnect opens a new one with the old size and keeps the screen
    shells[0].emit('exit', { code: 255, signal: null })
    expect(terms.list().terms[0]).toMatchObject({ state: 'closed', error: 'the shell exited with 255' })
    expect(() => terms.input(t.id, 'x')).toThrow(/terminal t1 is closed .* reconnect it first/)
    expect(await terms.reconnect(t.id)).toMatchObject({ state: 'open' })
    shells[1].emit('data', new TextEncoder().encode('back\r\n'))
    const listed = terms.list().terms[0]
    expect(listed.scrollback).toMatch(/^h1\r\n.*reconnecting to a · h1.*back\r\n$/s)

    // scrollback is the last 256 KiB
    shells[1].emit('data', new TextEncoder().encode('y'.repeat(TERM_SCROLLBACK_BYTES + 10)))
    expect(terms.list().terms[0].scrollback).toHaveLength(TERM_SCROLLBACK_BYTES)
    terms.close(t.id)
    expect(shells[1].closed).toBe(true)
    expect(terms.list().terms).toEqual([])
    expect(
      log
        .since(0)
        .events.filter((e) => e.topic === 'term')
        .at(-1)
    ).toMatchObject({ term: { id: 't1', state: 'closed' } })
  })

  it('a lab without SSH hosts has no terminals', async () => {
    const terms = new Terminals(new ApiEventLog(), null)
    await expect(terms.open('a')).rejects.toThrow(/terminals need a remote lab/)
  })
})

describe('session: one console, any lab', () => {
  async function call<M extends MethodName>(b: ConsoleBackend, method: M, params: unknown = {}): Promise<ResultOf<M>> {
    return (await dispatch(b, method, params)) as ResultOf<M>
  }

  it('starts the simulated lab on the real core, refuses a second lab while it runs, stops it, and lists the labs', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-session-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100 })
    cleanups.push(() => b.close())
    expect(await call(b, 'console.info')).toMatchObject({ apiVersion: 2, backend: 'none', shell: 'browser', lab: null, canRememberSecrets: false, prompts: [] })
    expect(await call(b, 'lab.status')).toMatchObject({ state: 'stopped', kind: null, name: null })
    await expect(call(b, 'fault.inject', { target: 'a', kind: 'pause', durationMs: 1000 })).rejects.toThrow(/fault.inject: no lab is open/)

    const s = await call(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', seed: 3, speed: 2 })
    expect(s).toMatchObject({ kind: 'simulated', name: 'simulated', state: 'running', sim: { seed: 3, speed: 2 } })
    expect(await call(b, 'console.info')).toMatchObject({ backend: 'simulated', lab: { kind: 'simulated', name: 'simulated' } })
    for (let i = 0; i < 100; i++) {
      const x = await call(b, 'lab.status')
      if (x.hosts[0].role === 'primary' && x.hosts[1].role === 'backup') break
      await new Promise((r) => setTimeout(r, 50))
    }
    expect((await call(b, 'lab.status')).hosts.map((h) => h.role)).toEqual(['primary', 'backup', 'disk-server'])
    await expect(call(b, 'lab.start', { guest: 'kv', mode: 'rsm' })).rejects.toThrow(
      /lab.start: lab 'simulated' \(simulated\) is running; stop or detach it first/
    )
    await expect(call(b, 'lab.teardown', { confirm: 'simulated' })).rejects.toThrow(/no remote lab is open \('simulated' is a simulated lab: use lab.stop\)/)
    await expect(call(b, 'term.open', { host: 'a' })).rejects.toThrow(/terminals need a remote lab/)
    const labs = (await call(b, 'lab.list')).labs
    expect(labs.map((l) => `${l.kind}:${l.name}:${l.running}`)).toEqual(['local:local:null', 'simulated:simulated:true'])

    const stopped = await call(b, 'lab.stop')
    expect(stopped).toMatchObject({ state: 'stopped', kind: 'simulated', name: 'simulated' })
    expect((await call(b, 'console.info')).lab).toBeNull()
    const marks = b.events.since(0).events.flatMap((e) => (e.topic === 'mark' ? [e.mark.label] : []))
    expect(marks).toContain("lab 'simulated' stopped")
  })

  it('isolating the primary of a simulated lab: b goes live, a shows its compound state, and its test-and-set retries scroll once', async () => {
    const b = new ConsoleBackend({ home: mkdtempSync(join(tmpdir(), 'ftlab-session-')), reattach: false, statusEveryMs: 100 })
    cleanups.push(() => b.close())
    await call(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', seed: 11 })
    const until = async (what: string, ok: (x: Awaited<ReturnType<typeof call<'lab.status'>>>) => boolean) => {
      for (let i = 0; i < 200; i++) {
        const x = await call(b, 'lab.status')
        if (ok(x)) return x
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify((await call(b, 'lab.status')).hosts.map((h) => [h.id, h.role, h.notes]))}`)
    }
    await until('a primary, b backup', (x) => x.hosts[0].role === 'primary' && x.hosts[1].role === 'backup')
    const f = await call(b, 'fault.inject', { target: 'a', kind: 'isolate', durationMs: 8000 })
    expect(f).toMatchObject({ target: 'a', kind: 'isolate', what: 'isolate a' })
    const s = await until('b live while a is isolated', (x) => x.hosts[1].role === 'live' && x.hosts[0].notes.includes('cannot-go-live'))
    expect(s.hosts[0].role).toBe('primary')
    expect(s.hosts[0].notes).toEqual(['isolated', 'outputs-held', 'no-disk-server', 'cannot-go-live'])
    expect(s.channel?.to ?? null).toBeNull()
    await new Promise((r) => setTimeout(r, 1500))
    // a keeps retrying the test-and-set; the operator reads it once per window, not five times a second
    const lines = b.events.since(0).events.filter((e) => e.topic === 'terminal' && /a cannot reach the test-and-set/.test(e.data))
    expect(lines.length).toBe(1)
    const healed = await call(b, 'fault.heal', { id: 'all' })
    expect(healed).toEqual({ healed: [f.id], warnings: [] })
    await call(b, 'lab.stop')
  })

  it('checks a lab file at the field it concerns, and saves a good one 0600', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-session-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const b = new ConsoleBackend({ home, reattach: false })
    cleanups.push(() => b.close())
    const host = (n: number) => ({ address: `10.87.0.1${n}`, user: 'ftlab', auth: 'agent' })
    const good = { version: 1, hosts: { a: host(1), b: host(2), disk: host(3) } }
    expect(await call(b, 'labfile.check', { text: JSON.stringify(good) })).toEqual({ ok: true, file: good })
    const bad = { ...good, hosts: { ...good.hosts, b: { ...host(2), port: 70000 } } }
    expect(await call(b, 'labfile.check', { text: JSON.stringify(bad) })).toEqual({
      ok: false,
      errors: [{ field: 'hosts.b.port', message: 'must be an integer from 1 to 65535, got 70000' }]
    })
    expect(await call(b, 'labfile.check', { text: '{"version": 1,' })).toMatchObject({
      ok: false,
      errors: [{ field: '', message: expect.stringMatching(/^not valid JSON/) }]
    })
    const saved = await call(b, 'labfile.save', { name: 'tb', file: good })
    expect(saved.path).toBe(join(home, 'labfiles', 'tb.json'))
    const { statSync } = await import('node:fs')
    expect(statSync(saved.path).mode & 0o777).toBe(0o600)
  })

  it('a deploy is refused at the lab-file field it concerns, and fails per host when the hosts cannot be reached', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-session-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const { SshConfig } = await import('../../../main/ssh/ssh-config.js')
    const b = new ConsoleBackend({ home, reattach: false, remote: { sshConfig: SshConfig.empty(), connectTimeoutMs: 2000 } })
    cleanups.push(() => b.close())
    const host = (n: number, extra: Record<string, unknown> = {}) => ({
      address: '127.0.0.1',
      port: n,
      user: 'nobody',
      auth: 'agent',
      labAddress: `127.0.0.${n}`,
      ...extra
    })
    const twice = { version: 1, hosts: { a: host(1), b: host(2, { labAddress: '127.0.0.1' }), disk: host(3) } }
    await expect(call(b, 'lab.deploy', { name: 'nowhere', file: twice })).rejects.toThrow(
      /^lab.deploy.file.hosts.b.labAddress: 127.0.0.1 is also hosts.a's lab address/
    )
    expect((await call(b, 'lab.status')).state).toBe('stopped')

    const unreachable = { version: 1, hosts: { a: host(1), b: host(2), disk: host(3) } }
    await expect(call(b, 'lab.deploy', { name: 'nowhere', file: unreachable })).rejects.toThrow(/lab.deploy: lab 'nowhere' not deployed: a: .*; b: .*; disk: /)
    const failed = b.events.since(0).events.flatMap((e) => (e.topic === 'deploy' && e.state === 'failed' ? [e.slot] : []))
    expect(failed.sort()).toEqual(['a', 'b', 'disk'])
    expect(await call(b, 'lab.status')).toMatchObject({ state: 'error', kind: 'remote', name: 'nowhere', error: expect.stringMatching(/not deployed/) })
  })
})

describe('the time of day in a timeline message', () => {
  it('reads as the timeline does, 24-hour with two digits each, whatever the locale', () => {
    expect(timeOfDay(new Date(2026, 11, 4, 2, 5, 9, 700).getTime())).toBe('02:05:09')
    expect(timeOfDay(new Date(2026, 11, 4, 14, 15, 2).getTime())).toBe('14:15:02')
  })
})
