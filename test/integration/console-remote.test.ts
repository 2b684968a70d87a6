// The console drives a remote lab on the network-namespace testbed, over real OpenSSH, only
// through its contract (the calls the UI makes): deploy from a lab file form for h1 (a),
// h2 (b), h3 (disk) with per-host progress, accept each unknown host key through
// prompt.answer, open a terminal on each host and run a command in it, detach and reopen the
// lab by name (as a restarted console does), cut the primary's power and see b go live,
// restore redundancy onto the spare (h4) and reach a's new machine in a terminal, then tear
// the lab down with its name as confirmation. Then, from a console of its own, a deploy onto a
// host whose key changed is refused without asking.
//
// Uses the shared testbed: run under `flock /tmp/ftlab-testbed.lock`. It brings the testbed
// up if needed and leaves it up.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ApiEvent, LabStatus, MethodName, ResultOf } from '../../main/api/contract.js'
import { dispatch } from '../../main/api/dispatch.js'
import { ftlab } from '../support/cli.js'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { requireReplicaAgent } from '../support/agent.js'
import { lacks } from '../support/skips.js'
import { RemoteStore } from '../../main/remote/remote-state.js'
import { KnownHosts } from '../../main/ssh/known-hosts.js'
import { SshConfig } from '../../main/ssh/ssh-config.js'
import { labHost, readLab, testbed, testbedUnavailable, type Lab as Testbed } from '../../scripts/testbed/harness.js'
import { tearDownTestbedLab, testbedHostSpec, testbedLabOptions } from '../support/remote-lab.js'

const skip = lacks(testbedUnavailable())
if (!skip) await requireReplicaAgent()
const LAB = 'console-it'
const KEY_LAB = 'console-key'

const say = (line: string) => console.log(`[console-remote] ${line}`)

describe.skipIf(skip !== null)(`the console drives a remote lab on the testbed${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tb: Testbed
  let home: string
  let backend: ConsoleBackend
  const events: ApiEvent[] = []
  const answered: string[] = []

  const call = async <M extends MethodName>(method: M, params: unknown = {}): Promise<ResultOf<M>> => (await dispatch(backend, method, params)) as ResultOf<M>

  async function until(what: string, ok: (s: LabStatus) => boolean, timeoutMs = 60_000): Promise<LabStatus> {
    const deadline = Date.now() + timeoutMs
    let s = await call('lab.status')
    while (!ok(s)) {
      if (Date.now() > deadline)
        throw new Error(
          `timed out waiting for ${what}; last: ${s.state} ${s.hosts.map((h) => `${h.id}=${h.role}/${h.gen} [${h.notes.join(',')}]${h.error ? ` (${h.error})` : ''}`).join(' ')}`
        )
      await new Promise((r) => setTimeout(r, 250))
      s = await call('lab.status')
    }
    return s
  }

  async function termOutput(id: string, has: RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const text = events.flatMap((e) => (e.topic === 'terminal' && e.stream === id ? [e.data] : [])).join('')
      if (has.test(text)) return text
      if (Date.now() > deadline) throw new Error(`terminal ${id} never showed ${has}; it showed: ${JSON.stringify(text.slice(-500))}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  beforeAll(async () => {
    testbed('-q', 'up', '--spare')
    tb = readLab()
    home = mkdtempSync(join(tmpdir(), 'ftlab-console-remote-'))
    // FT Lab's own known_hosts in `home`: the testbed's keys are new, so every host asks
    const knownHosts = await KnownHosts.load({ readOnly: [], store: join(home, 'known_hosts') })
    backend = new ConsoleBackend({ home, reattach: false, statusEveryMs: 300, remote: { knownHosts, sshConfig: SshConfig.empty(), connectTimeoutMs: 8000 } })
    backend.subscribe((ev) => {
      events.push(ev)
      // the operator accepts each unknown host key after reading its fingerprint
      if (ev.topic === 'prompt' && ev.prompt.kind === 'host-key') {
        expect(ev.prompt.fingerprint).toMatch(/^SHA256:/)
        answered.push(`${ev.prompt.slot} ${ev.prompt.host}:${ev.prompt.port} ${ev.prompt.keyType} ${ev.prompt.fingerprint}`)
        void dispatch(backend, 'prompt.answer', { id: ev.prompt.id, accept: true })
      }
    })
  }, 180_000)

  afterAll(async () => {
    await backend?.close().catch(() => {})
    // whatever the test left deployed goes; the testbed stays up for the next user
    if (home && existsSync(new RemoteStore(home).path(LAB))) {
      await tearDownTestbedLab({ name: LAB, lab: null, home, opts: await testbedLabOptions(home), testbedUp: false, say })
    } else if (home) rmSync(home, { recursive: true, force: true })
  }, 120_000)

  it('deploys from a form, accepts host keys, opens a terminal per host, fails over on a power cut, and tears down on confirmation', async () => {
    const spec = (id: string) => testbedHostSpec(tb, id)
    const file = { version: 1, network: tb.network, hosts: { a: spec('h1'), b: spec('h2'), disk: spec('h3'), spare: spec('h4') } }
    expect(await call('labfile.check', { text: JSON.stringify(file) })).toMatchObject({ ok: true })

    const deployed = await call('lab.deploy', { name: LAB, file })
    expect(deployed).toMatchObject({ kind: 'remote', name: LAB, state: 'running' })
    for (const a of answered) say(`host key accepted: ${a}`)
    expect(new Set(answered.map((a) => a.split(' ')[0]))).toEqual(new Set(['a', 'b', 'disk', 'spare']))
    const done = events.flatMap((e) => (e.topic === 'prompt-done' ? [e.answer] : []))
    expect(done.length).toBe(answered.length)
    expect(done.every((d) => d === 'accepted')).toBe(true)
    const steps = events.flatMap((e) => (e.topic === 'deploy' ? [`${e.slot}:${e.step}:${e.state}`] : []))
    say(`deploy events: ${steps.join(' ')}`)
    for (const slot of ['a', 'b', 'disk']) {
      expect(steps, slot).toContain(`${slot}:host-key:done`)
      expect(steps, slot).toContain(`${slot}:ready:done`)
    }
    expect(steps.some((s) => s.endsWith(':failed'))).toBe(false)
    // nothing secret travelled: the lab uses keys, and no prompt asked for one
    expect(events.some((e) => e.topic === 'prompt' && e.prompt.kind === 'secret')).toBe(false)

    let s = await until('a primary with b as its backup', (x) => x.hosts[0].role === 'primary' && x.hosts[1].role === 'backup' && x.channel?.connected === true)
    expect(s.hosts.map((h) => h.machine)).toEqual(['a', 'b', 'disk'])
    expect(s.spare).toEqual({ machine: 'spare', address: labHost(tb, 'h4').address })
    expect(s.hosts[0].address).toContain(labHost(tb, 'h1').address)
    expect((await call('console.info')).lab).toEqual({ kind: 'remote', name: LAB })
    expect((await call('lab.list')).labs.find((l) => l.kind === 'remote' && l.name === LAB)).toMatchObject({ running: true })

    // a terminal on each host: the command runs there (SSH_CONNECTION names the host's address)
    for (const [slot, id] of [
      ['a', 'h1'],
      ['b', 'h2'],
      ['disk', 'h3']
    ] as const) {
      const t = await call('term.open', { host: slot })
      expect(t, slot).toMatchObject({ state: 'open', error: null })
      await call('term.resize', { id: t.id, cols: 120, rows: 30 })
      await call('term.input', { id: t.id, data: 'hostname; echo "ftlab-term $(( 6 * 7 )) at ${SSH_CONNECTION}"\r' })
      const out = await termOutput(t.id, new RegExp(`ftlab-term 42 at \\S+ \\d+ ${labHost(tb, id).address.replace(/\./g, '\\.')} `))
      say(
        `terminal on ${slot}: ${JSON.stringify(
          out
            .split('\n')
            .filter((l) => /ftlab-term 42/.test(l))
            .pop()
        )}`
      )
    }
    const listed = (await call('term.list')).terms
    expect(listed).toHaveLength(3)
    expect(listed.map((t) => t.host)).toEqual(['a', 'b', 'disk'])
    expect(listed.every((t) => /ftlab-term 42/.test(t.scrollback))).toBe(true)

    // the console lets go of the lab and reattaches to it by name, as after a restart
    expect(await call('lab.detach')).toMatchObject({ state: 'stopped', kind: null })
    expect((await call('term.list')).terms).toEqual([])
    expect(await call('lab.open', { kind: 'remote', name: LAB })).toMatchObject({ kind: 'remote', name: LAB, state: 'running' })
    await until('the reopened lab showing a primary with b as its backup', (x) => x.hosts[0].role === 'primary' && x.hosts[1].role === 'backup')

    // `ftlab` in a terminal beside the console, on the same lab: its delay on the logging channel shows in the
    // console, marked as done outside it; its heal closes it there too
    const delayed = await ftlab(home, 'fault', 'delay', 'a-b', '--ms', '2', '--for', '60s', '--name', LAB)
    expect(delayed.code, delayed.err).toBe(0)
    await until("the terminal's delay open", (x) => x.faults.some((f) => f.kind === 'delay' && f.target === 'a-b'))
    const outside = events.flatMap((e) => (e.topic === 'mark' && e.mark.kind === 'outside' ? [e.mark.label] : []))
    say(`the terminal's fault, as the console marked it: ${outside.join(' | ')}`)
    expect(
      outside.some((l) => /^changed outside the console by ftlab fault \(pid \d+\), injecting delay 2ms a↔b: fault f1 opened: delay 2ms a↔b$/.test(l))
    ).toBe(true)
    const healed = await ftlab(home, 'heal', 'all', '--name', LAB)
    expect(healed.code, healed.err).toBe(0)
    await until('no fault open, a primary with b as its backup', (x) => x.faults.length === 0 && x.hosts[0].role === 'primary' && x.hosts[1].role === 'backup')

    // power cut of the primary: b goes live; the cut stays open until restore or power-on
    const cut = await call('fault.inject', { target: 'a', kind: 'power', durationMs: 60_000 })
    say(`power cut a: ${cut.what} via ${cut.path}${cut.note ? ` (${cut.note})` : ''}`)
    expect(cut).toMatchObject({ target: 'a', kind: 'power', healsAt: null })
    s = await until('b live alone', (x) => x.hosts[1].role === 'live' && x.hosts[0].role === 'down')
    expect(s.hosts[0].notes).toContain('power-off')
    expect(s.faults.map((f) => f.id)).toContain(cut.id)
    const marks = events.flatMap((e) => (e.topic === 'mark' ? [e.mark] : []))
    expect(marks.some((m) => m.kind === 'go-live' && m.host === 'b')).toBe(true)

    // restore redundancy onto the spare: a's slot moves to h4, and the power cut closes
    await call('lab.restore', { onto: 'spare' })
    s = await until(
      'b primary with a backup on the spare',
      (x) => x.hosts[1].role === 'primary' && x.hosts[0].role === 'backup' && x.channel?.connected === true
    )
    expect(s.hosts[0].machine).toBe('spare')
    expect(s.hosts[0].address).toContain(labHost(tb, 'h4').address)
    expect(s.faults).toEqual([])
    const onSpare = await call('term.open', { host: 'a' })
    await call('term.input', { id: onSpare.id, data: 'echo "ftlab-term $(( 6 * 7 )) at ${SSH_CONNECTION}"\r' })
    await termOutput(onSpare.id, new RegExp(`ftlab-term 42 at \\S+ \\d+ ${labHost(tb, 'h4').address.replace(/\./g, '\\.')} `))

    // teardown only with the lab's name typed as confirmation
    await expect(call('lab.stop')).rejects.toThrow(/use lab.teardown/)
    await expect(call('lab.teardown', { confirm: 'console' })).rejects.toThrow(/lab.teardown.confirm must be the lab's name/)
    const gone = await call('lab.teardown', { confirm: LAB })
    expect(gone).toMatchObject({ state: 'stopped', kind: 'remote', name: LAB, error: null })
    expect((await call('term.list')).terms).toEqual([])
    expect(existsSync(new RemoteStore(home).path(LAB))).toBe(false)
  }, 300_000)

  it('refuses a changed host key without asking, failing that host with the explanation', async () => {
    // a console of its own, whose known_hosts records the testbed's real keys, except that h1's line names h2's key:
    // nothing here depends on the first case, and its lab's teardown keeps the store it deployed with
    const own = mkdtempSync(join(tmpdir(), 'ftlab-console-key-'))
    const keyOf = (id: string) => readFileSync(labHost(tb, id).hostKey, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ')
    const store = join(own, 'known_hosts')
    writeFileSync(store, [`${labHost(tb, 'h1').address} ${keyOf('h2')}`, ...['h2', 'h3'].map((id) => `${labHost(tb, id).address} ${keyOf(id)}`), ''].join('\n'))
    const knownHosts = await KnownHosts.load({ readOnly: [], store })
    const again = new ConsoleBackend({ home: own, reattach: false, remote: { knownHosts, sshConfig: SshConfig.empty(), connectTimeoutMs: 8000 } })
    const seen: ApiEvent[] = []
    again.subscribe((ev) => seen.push(ev))
    try {
      const spec = (id: string) => testbedHostSpec(tb, id)
      const file = { version: 1, network: tb.network, hosts: { a: spec('h1'), b: spec('h2'), disk: spec('h3') } }
      await expect(dispatch(again, 'lab.deploy', { name: KEY_LAB, file })).rejects.toThrow(/lab.deploy: lab 'console-key' not deployed: a: .*HOST KEY CHANGED/)
      expect(seen.some((e) => e.topic === 'prompt')).toBe(false)
      const failedA = seen.find((e) => e.topic === 'deploy' && e.slot === 'a' && e.state === 'failed')
      expect(failedA && failedA.topic === 'deploy' && failedA.detail).toMatch(/HOST KEY CHANGED .* SHA256:/)
      say(`changed key refused: ${failedA && failedA.topic === 'deploy' ? failedA.detail.slice(0, 300) : ''}`)
      expect(seen.some((e) => e.topic === 'deploy' && e.slot !== 'a' && e.state === 'failed')).toBe(false)
      // a refused deploy leaves no lab behind
      expect(existsSync(new RemoteStore(own).path(KEY_LAB))).toBe(false)
      expect(((await dispatch(again, 'lab.list', {})) as ResultOf<'lab.list'>).labs.some((l) => l.kind === 'remote' && l.name === KEY_LAB)).toBe(false)
    } finally {
      await again.close()
      rmSync(own, { recursive: true, force: true })
    }
  }, 120_000)
})
