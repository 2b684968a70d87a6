// A console and the command line on one lab: what `ftlab` does in a terminal while the console
// is open (a power cut, restore redundancy, a fault, a stop, a new lab of the same name), the
// console follows and says so, and the two never run an operation at the same time. Real
// agents, the bundled command line in its own process.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ApiEvent, LabStatus, MethodName, ResultOf } from '../../main/api/contract.js'
import { dispatch } from '../../main/api/dispatch.js'
import { ftlab } from '../support/cli.js'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { LabStore } from '../../main/lab/lab-state.js'
import { openLocalLab } from '../../main/lab/local-lab.js'
import { requireReplicaAgent } from '../support/agent.js'
import { pidAlive } from '../support/process.js'

await requireReplicaAgent()

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await Promise.resolve(cleanups.pop()!()).catch(() => {})
})

function tempHome(): string {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-outside-'))
  cleanups.push(() => rmSync(home, { recursive: true, force: true }))
  cleanups.push(async () => {
    if (new LabStore(home).load('local')) await openLocalLab('local', { home }).stop()
  })
  return home
}

function console_(home: string, statusEveryMs = 150) {
  const b = new ConsoleBackend({ home, statusEveryMs, reattach: false })
  cleanups.push(() => b.close())
  const events: ApiEvent[] = []
  b.subscribe((ev) => events.push(ev))
  const call = <M extends MethodName>(method: M, params: unknown = {}) => dispatch(b, method, params) as Promise<ResultOf<M>>
  const marks = () => events.flatMap((e) => (e.topic === 'mark' ? [`${e.mark.kind}: ${e.mark.label}`] : []))
  const until = async (what: string, ok: (s: LabStatus) => boolean, timeoutMs = 20_000): Promise<LabStatus> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const s = await call('lab.status')
      if (ok(s)) return s
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; last: ${s.state} ${s.error ?? ''} ${s.hosts.map((h) => `${h.id}=${h.role}/${h.gen}`).join(' ')}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  return { b, call, marks, until }
}

const role = (s: LabStatus, id: string) => s.hosts.find((h) => h.id === id)!.role
const pid = (s: LabStatus, id: string) => s.hosts.find((h) => h.id === id)!.pid

describe('a console beside the command line', () => {
  it('follows a power cut, a restore and a fault made from a terminal, and its own next action works on the lab as it is now', async () => {
    const home = tempHome()
    const c = console_(home)
    await c.call('lab.start', { guest: 'kv', mode: 'rsm' })
    let s = await c.until('a primary, b backup', (x) => role(x, 'a') === 'primary' && role(x, 'b') === 'backup')
    const oldB = pid(s, 'b')!

    const cut = await ftlab(home, 'fault', 'power', 'b')
    expect(cut.code, cut.err).toBe(0)
    s = await c.until('a live alone, b down', (x) => role(x, 'a') === 'live' && role(x, 'b') === 'down')
    expect(s.faults.map((f) => `${f.kind} ${f.target}`)).toEqual(['power b'])
    expect(
      c.marks().some((m) => /^outside: changed outside the console by ftlab fault \(pid \d+\), cutting the power of b: fault f1 opened: power cut b$/.test(m))
    ).toBe(true)

    const restore = await ftlab(home, 'restore')
    expect(restore.code, restore.err).toBe(0)
    // the power cut closes with the restore's last save
    s = await c.until('b backup again, in generation 2, the power cut closed', (x) => role(x, 'b') === 'backup' && x.gen === 2 && x.faults.length === 0)
    // the console speaks to b's new agent: its pid, no error, no stale "every agent is gone"
    expect(s.state).toBe('running')
    expect(s.error).toBeNull()
    expect(pid(s, 'b')).not.toBe(oldB)
    expect(pidAlive(pid(s, 'b')!)).toBe(true)
    // seen in one step or, when a poll falls between the restore's saves, in two
    const byRestore = c.marks().filter((m) => /^outside: changed outside the console by ftlab restore \(pid \d+\), restoring redundancy: /.test(m))
    expect(byRestore.length).toBeGreaterThanOrEqual(1)
    expect(byRestore.join(' | ')).toMatch(/b: a new agent \(pid \d+ → \d+, incarnation 2\)/)
    expect(byRestore.join(' | ')).toMatch(/generation 1 → 2/)
    expect(byRestore.join(' | ')).toMatch(/fault f1 closed: power cut b/)
    await c.until('the channel a → b in generation 2', (x) => x.channel?.connected === true && x.channel.gen === 2)

    // the console's own action on the lab the terminal changed: a fault id after the terminal's
    const f = await c.call('fault.inject', { target: 'a-b', kind: 'delay', params: { ms: 2 }, durationMs: 30_000 })
    expect(f.id).toBe('f2')
    const status = await ftlab(home, 'status')
    expect(status.out).toMatch(/f2 .*delay/)
    expect(status.out).not.toMatch(/busy:/)
    const heal = await ftlab(home, 'heal', 'f2')
    expect(heal.code, heal.err).toBe(0)
    await c.until('the delay healed', (x) => x.faults.length === 0)
  })

  it("waits for the other's operation rather than running beside it", async () => {
    const home = tempHome()
    const c = console_(home)
    await c.call('lab.start', { guest: 'kv', mode: 'rsm' })
    await c.until('a primary, b backup', (x) => role(x, 'a') === 'primary' && role(x, 'b') === 'backup')
    // hold the lab as an operation of the console's would, until the command has said it waits
    const release = await new LabStore(home).lock('local', 'restoring redundancy')
    cleanups.push(release)
    // a reader does not wait, and says who holds the lab
    const st = await ftlab(home, 'status')
    expect(st.code, st.err).toBe(0)
    expect(st.out).toMatch(/^busy: a process \(pid \d+\) has been restoring redundancy since /m)
    const fault = spawn(process.execPath, ['out/cli/ftlab.mjs', 'fault', 'pause', 'b', '--for', '2s'], { env: { ...process.env, FTLAB_HOME: home } })
    cleanups.push(() => fault.kill('SIGKILL'))
    let err = ''
    let releasedAt = 0
    fault.stderr.on('data', (d: Buffer) => {
      err += d.toString()
      if (!releasedAt && err.includes('is busy')) {
        releasedAt = Date.now()
        release()
      }
    })
    const code = await new Promise<number | null>((res) => fault.once('exit', res))
    expect(err).toMatch(/^lab 'local' is busy: a process \(pid \d+\) is restoring redundancy; waiting for it \(up to 15 s\)$/m)
    expect(code, err).toBe(0)
    // it waited (the notice comes from the lock's wait) and went ahead once the lab was let go of
    expect(releasedAt).toBeGreaterThan(0)
    await c.until('b paused', (x) => x.hosts.find((h) => h.id === 'b')!.paused)
  })

  it('shows who holds the lab from another process, and says at once when its own action waits for it', async () => {
    const home = tempHome()
    const c = console_(home)
    await c.call('lab.start', { guest: 'kv', mode: 'rsm' })
    await c.until('a primary, b backup', (x) => role(x, 'a') === 'primary' && role(x, 'b') === 'backup')
    // a terminal's restore holds the lab: its lock names a live process that is not the console
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' })
    cleanups.push(() => holder.kill('SIGKILL'))
    const lock = join(home, 'labs', 'local.lock')
    writeFileSync(
      lock,
      JSON.stringify({ pid: holder.pid, host: hostname(), actor: `ftlab restore (pid ${holder.pid})`, doing: 'restoring redundancy', since: Date.now() })
    )
    const held = await c.until('the status naming the holder', (x) => x.heldBy !== null)
    expect(held.heldBy).toMatchObject({ actor: `ftlab restore (pid ${holder.pid})`, doing: 'restoring redundancy' })
    // the console's own action waits, and its timeline says so before the action ends
    const injected = c.call('fault.inject', { target: 'a-b', kind: 'delay', params: { ms: 2 }, durationMs: 30_000 })
    const waitMark = `outside: lab 'local' is busy: ftlab restore (pid ${holder.pid}) is restoring redundancy; waiting for it (up to 15 s)`
    const deadline = Date.now() + 10_000
    while (!c.marks().includes(waitMark) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(c.marks()).toContain(waitMark)
    expect(c.marks().some((m) => m.startsWith('fault: '))).toBe(false)
    // the holder ends (its process gone): the action goes ahead, and the banner's cause is gone
    holder.kill('SIGKILL')
    const f = await injected
    expect(f.id).toBe('f1')
    const after = await c.until('no holder', (x) => x.heldBy === null && x.faults.length === 1)
    expect(after.faults[0]!.kind).toBe('delay')
    // the console's own hold is not shown as another process's
    expect(c.marks().filter((m) => m.includes('is busy'))).toHaveLength(1)
  })

  it('lets go of a lab stopped from a terminal, and follows a new lab of its name', async () => {
    const home = tempHome()
    // polls so rare that only the console's own action finds the change: the stop and the new start look like one replacement
    const c = console_(home, 3_600_000)
    await c.call('lab.start', { guest: 'kv', mode: 'rsm' })
    const before = await c.call('lab.status')
    expect(await ftlab(home, 'lab', 'stop')).toMatchObject({ code: 0 })
    expect(await ftlab(home, 'lab', 'start', '--guest', 'bank')).toMatchObject({ code: 0 })
    await expect(c.call('fault.inject', { target: 'a', kind: 'pause', params: {}, durationMs: 1000 })).rejects.toThrow(
      /lab 'local' was replaced: ftlab lab start \(pid \d+\) started a new lab of that name at .*; nothing to do here/
    )
    const s = await c.until('the new lab followed', (x) => x.state === 'running' && x.guest === 'bank' && role(x, 'a') === 'primary', 10_000)
    expect(s.startedAt).toBeGreaterThan(before.startedAt!)
    expect(c.marks().some((m) => m.startsWith("start: following the new lab 'local'"))).toBe(true)

    // a stop from the terminal, seen by a console that polls: it lets go, saying who stopped it
    const d = console_(home)
    await d.call('lab.open', { kind: 'local', name: 'local' })
    expect(await ftlab(home, 'lab', 'stop')).toMatchObject({ code: 0 })
    const gone = await d.until('the lab let go of', (x) => x.state === 'stopped' && x.kind === 'local')
    expect(gone.hosts.every((h) => h.pid === null)).toBe(true)
    expect(d.marks().some((m) => /^outside: lab 'local' was stopped by another process \(its state file .* is gone\)$/.test(m))).toBe(true)
  })
})
