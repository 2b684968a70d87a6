// The lab state file as two processes share it: the stamp that tells a holder the file changed
// under it, and the lock that keeps two operations (a console's, a terminal's) from interleaving.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hostname } from 'node:os'
import { afterEach, describe, expect, it } from 'vitest'
import { bundleChild } from '../../support/child.js'
import { LabBusyError, LabStore, LAB_STATE_VERSION, onLabLockWait, type LabLockWait, type LabState } from '../../../main/lab/lab-state.js'

const cleanups: (() => void)[] = []
afterEach(() => {
  while (cleanups.length) cleanups.pop()!()
})

function store(): LabStore {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-store-'))
  cleanups.push(() => rmSync(home, { recursive: true, force: true }))
  return new LabStore(home)
}

function state(gen: number): LabState {
  return {
    version: LAB_STATE_VERSION,
    name: 'local',
    createdAt: 1,
    guest: 'kv',
    mode: 'rsm',
    labKey: 'k',
    gen,
    timing: { heartbeatMs: 20, suspectMs: 800 },
    hosts: {},
    faults: [],
    nextFault: 1
  }
}

/** A live process that is not this one, to hold a lock. */
function otherProcess(): ChildProcess {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  cleanups.push(() => child.kill('SIGKILL'))
  return child
}

function writeLock(s: LabStore, pid: number, doing: string): string {
  const p = join(s.labsDir, 'local.lock')
  mkdirSync(s.labsDir, { recursive: true })
  writeFileSync(p, JSON.stringify({ pid, host: hostname(), actor: `ftlab restore (pid ${pid})`, doing, since: Date.now() }))
  return p
}

describe('the lab state file', () => {
  it("save returns the stamp a later stat sees, and another writer's save changes it", () => {
    const s = store()
    expect(s.stamp('local')).toBeNull()
    const mine = s.save(state(1))
    expect(s.stamp('local')).toBe(mine)
    expect(s.read('local')).toEqual({ state: state(1), stamp: mine })
    // the same size and, within a clock tick, the same mtime: the new inode still tells them apart
    const theirs = new LabStore(join(s.labsDir, '..')).save(state(2))
    expect(theirs).not.toBe(mine)
    expect(s.stamp('local')).toBe(theirs)
    expect(s.read('local')!.state.gen).toBe(2)
  })

  it('is held by one operation at a time: another live holder is waited for, then refused with who and what', async () => {
    const s = store()
    s.save(state(1))
    const holder = otherProcess()
    writeLock(s, holder.pid!, 'restoring redundancy')
    const t0 = Date.now()
    const err = await s.lock('local', 'cutting the power of b', 300).catch((e: Error) => e)
    expect(err).toBeInstanceOf(LabBusyError)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300)
    expect((err as Error).message).toContain(`lab 'local' is busy: ftlab restore (pid ${holder.pid}) has been restoring redundancy since`)
  })

  it('goes to the waiter once the holder lets go', async () => {
    const s = store()
    const other = new LabStore(join(s.labsDir, '..'))
    const holder = otherProcess()
    const p = writeLock(s, holder.pid!, 'restoring redundancy')
    setTimeout(() => rmSync(p), 200)
    const release = await s.lock('local', 'injecting a fault', 5_000)
    expect(JSON.parse(readFileSync(p, 'utf8'))).toMatchObject({ pid: process.pid, doing: 'injecting a fault' })
    release()
    expect(existsSync(p)).toBe(false)
    // and the next one takes it at once
    ;(await other.lock('local', 'healing f1', 0))()
  })

  it('is taken over from a holder that died mid-operation', async () => {
    const s = store()
    const holder = otherProcess()
    const pid = holder.pid!
    holder.kill('SIGKILL')
    await new Promise((r) => holder.once('exit', r))
    const p = writeLock(s, pid, 'restoring redundancy')
    const release = await s.lock('local', 'healing f1', 0)
    expect(JSON.parse(readFileSync(p, 'utf8')).pid).toBe(process.pid)
    release()
  })

  it('may be held again by its holder (an operation that calls another), and is freed by the outermost release only', async () => {
    const s = store()
    const outer = await s.lock('local', 'restoring redundancy', 0)
    const inner = await s.lock('local', 'powering on b', 0)
    const p = join(s.labsDir, 'local.lock')
    inner()
    inner()
    expect(existsSync(p)).toBe(true)
    outer()
    expect(existsSync(p)).toBe(false)
  })

  it('tells its wait listeners once per wait, who holds the lab and doing what', async () => {
    const s = store()
    const holder = otherProcess()
    writeLock(s, holder.pid!, 'restoring redundancy')
    const heard: LabLockWait[] = []
    const off = onLabLockWait((w) => heard.push(w))
    cleanups.push(off)
    const err = await s.lock('local', 'healing f1', 200).catch((e: Error) => e)
    expect(err).toBeInstanceOf(LabBusyError)
    expect(heard).toHaveLength(1)
    expect(heard[0]).toMatchObject({ name: 'local', actor: `ftlab restore (pid ${holder.pid})`, doing: 'restoring redundancy', waitMs: 200 })
    expect(heard[0]!.text).toBe(`lab 'local' is busy: ftlab restore (pid ${holder.pid}) is restoring redundancy; waiting for it (up to 200 ms)`)
    off()
    await s.lock('local', 'healing f1', 100).catch(() => {})
    expect(heard).toHaveLength(1)
  })

  it('lets exactly one of several processes that find the same dead holder take its lock at a time', async () => {
    const s = store()
    const child = await bundleChild(join(import.meta.dirname, 'lock-child.ts'), join(s.labsDir, '..', 'lock-child.mjs'))
    const dead = spawn('true')
    await new Promise((r) => dead.once('exit', r))
    for (let round = 0; round < 4; round++) {
      const p = writeLock(s, dead.pid!, 'restoring redundancy')
      const startAt = Date.now() + 400
      const racers = Array.from({ length: 6 }, () => {
        const c = spawn(process.execPath, [child, join(s.labsDir, '..'), String(startAt), '30'], { stdio: ['ignore', 'pipe', 'inherit'] })
        let out = ''
        c.stdout.on('data', (d: Buffer) => (out += d.toString()))
        return new Promise<[number, number]>((resolve, reject) =>
          c.once('exit', (code) => (code === 0 ? resolve(out.trim().split(' ').map(Number) as [number, number]) : reject(new Error(`racer exited ${code}`))))
        )
      })
      const held = (await Promise.all(racers)).sort((x, y) => x[0] - y[0])
      for (let i = 1; i < held.length; i++)
        expect(held[i]![0], `round ${round}: racer ${i} took the lock while another held it`).toBeGreaterThanOrEqual(held[i - 1]![1])
      expect(existsSync(p)).toBe(false)
      expect(existsSync(`${p}.steal`)).toBe(false)
    }
  })

  it('treats an unreadable lock as a holder starting up, and as stale after 5 s', async () => {
    const s = store()
    await (
      await s.lock('local', 'x', 0)
    )()
    const p = join(s.labsDir, 'local.lock')
    writeFileSync(p, '')
    const err = await s.lock('local', 'healing f1', 100).catch((e: Error) => e)
    expect((err as Error).message).toContain('another process has been starting an operation')
    utimesSync(p, new Date(Date.now() - 10_000), new Date(Date.now() - 10_000))
    const release = await s.lock('local', 'healing f1', 0)
    expect(JSON.parse(readFileSync(p, 'utf8')).doing).toBe('healing f1')
    release()
  })
})
