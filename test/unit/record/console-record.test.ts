import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { MethodName, ResultOf } from '../../../main/api/contract.js'
import { dispatch } from '../../../main/api/dispatch.js'
import { ConsoleBackend } from '../../../main/console/console-backend.js'
import { Recording } from '../../../main/record/reader.js'
import { checkRun } from '../../../main/check/check-run.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function call<M extends MethodName>(b: ConsoleBackend, method: M, params: unknown = {}): Promise<ResultOf<M>> {
  return (await dispatch(b, method, params)) as ResultOf<M>
}

describe('the console records every lab session', () => {
  it('a simulated lab with a power cut of the primary: the recording holds every event, the requests, and the fault then the go-live', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-rec-console-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100 })
    cleanups.push(() => b.close())
    await call(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', seed: 5 })
    const until = async (what: string, ok: (x: ResultOf<'lab.status'>) => boolean) => {
      for (let i = 0; i < 200; i++) {
        const x = await call(b, 'lab.status')
        if (ok(x)) return x
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error(`timed out waiting for ${what}`)
    }
    await until('a primary, b backup', (x) => x.hosts[0].role === 'primary' && x.hosts[1].role === 'backup')
    expect(b.recorder?.path).toMatch(new RegExp(`^${join(home, 'recordings', 'simulated-')}`))
    await call(b, 'fault.inject', { target: 'a', kind: 'power', durationMs: 60_000 })
    await until('b live', (x) => x.hosts[1].role === 'live')
    await call(b, 'lab.stop')
    await new Promise((r) => setTimeout(r, 200))
    expect(b.recorder?.path).toBeNull()
    const files = readdirSync(join(home, 'recordings'))
    expect(files).toHaveLength(1)
    expect(b.recorder?.finished).toEqual([join(home, 'recordings', files[0])])

    const rec = Recording.open(b.recorder!.finished[0])
    cleanups.push(() => rec.close())
    expect(rec.closed).toBe(true)
    expect(rec.problems).toEqual([])
    expect(rec.header.lab).toMatchObject({ kind: 'simulated', name: 'simulated', guest: 'kv', mode: 'rsm' })
    const kinds = rec.marks.map((m) => m.kind)
    const at = (k: (typeof kinds)[number]) => kinds.indexOf(k)
    expect(at('start')).toBe(0)
    expect(at('fault')).toBeGreaterThan(0)
    expect(at('go-live')).toBeGreaterThan(at('fault'))
    expect(kinds[kinds.length - 1]).toBe('stop')
    expect(rec.marks.find((m) => m.kind === 'go-live')?.host).toBe('b')
    // every event the console published, in order, and the operator's requests between them
    const all = [...rec.events()]
    const seqs = all.flatMap((r) => (r.k === 'ev' ? [r.ev.seq] : []))
    expect(seqs).toEqual(b.events.since(0).events.map((e) => e.seq))
    expect(all.filter((r) => r.k === 'req').map((r) => (r.k === 'req' ? r.method : ''))).toEqual(['lab.start', 'fault.inject', 'lab.stop'])
    // the state just after the go-live, as the console showed it
    const live = rec.marks.find((m) => m.kind === 'go-live')!
    const s = rec.stateAt(live.t)
    expect(s.status?.state).toBe('running')
    expect(s.faults.map((f) => f.what)).toEqual(['power cut a'])
    expect(s.recent.some((r) => r.k === 'ev' && r.ev.topic === 'mark' && r.ev.mark.kind === 'go-live')).toBe(true)
  })

  it("keeps each load run's client history, final read and verdict: the run can be checked again from the file alone", async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-rec-hist-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100 })
    cleanups.push(() => b.close())
    await call(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', seed: 11 })
    for (let i = 0; i < 200 && (await call(b, 'lab.status')).hosts[1].role !== 'backup'; i++) await new Promise((r) => setTimeout(r, 50))
    await call(b, 'load.start', { clients: 3, seconds: 2, keys: 10 })
    let load = await call(b, 'lab.status')
    for (let i = 0; i < 300 && !load.load.verdict; i++) {
      await new Promise((r) => setTimeout(r, 50))
      load = await call(b, 'lab.status')
    }
    const verdict = load.load.verdict
    expect(verdict?.result).toBe('valid')
    await call(b, 'lab.stop')
    await new Promise((r) => setTimeout(r, 200))

    const rec = Recording.open(b.recorder!.finished[0])
    cleanups.push(() => rec.close())
    const runs = rec.histories()
    expect(runs).toHaveLength(1)
    const h = runs[0]
    expect(h).toMatchObject({ workload: 'kv', clients: 3, keys: 10, verdict })
    expect(h.ops.length).toBe(load.load.completed)
    expect(new Set(h.ops.map((o) => o.client)).size).toBe(3)
    // the checkers, run again on what the file holds, reach the verdict the console showed
    const again = checkRun(h.ops, new Map(h.final ?? []))
    expect(again.valid).toBe(true)
    // and a history that lost an acknowledged write is caught from the file as well
    const lastSet = [...h.ops].reverse().find((o) => o.op === 'set' && o.status === 'ok')!
    const tampered = new Map(h.final ?? [])
    tampered.set(lastSet.key, 'never-written')
    expect(checkRun(h.ops, tampered).valid).toBe(false)
  })

  it("writes an operator's request without its secret, and the refusal with it", async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-rec-console-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const b = new ConsoleBackend({ home, reattach: false })
    cleanups.push(() => b.close())
    await call(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm' })
    await expect(call(b, 'prompt.answer', { id: 'p9', secret: 'hunter2', remember: false })).rejects.toThrow()
    await call(b, 'lab.stop')
    await b.close()
    const rec = Recording.open(b.recorder!.finished[0])
    cleanups.push(() => rec.close())
    const all = [...rec.events()]
    expect(JSON.stringify(all)).not.toContain('hunter2')
    expect(all.find((r) => r.k === 'req' && r.method === 'prompt.answer')).toMatchObject({ params: { id: 'p9', secret: '[redacted]', remember: false } })
    expect(all.find((r) => r.k === 'fail')).toMatchObject({ method: 'prompt.answer', error: expect.stringContaining('p9') })
  })

  it('records nothing when told not to', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-rec-console-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const b = new ConsoleBackend({ home, reattach: false, record: false })
    cleanups.push(() => b.close())
    await call(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm' })
    await call(b, 'lab.stop')
    expect(b.recorder).toBeNull()
    expect(() => readdirSync(join(home, 'recordings'))).toThrow(/ENOENT/)
  })
})
