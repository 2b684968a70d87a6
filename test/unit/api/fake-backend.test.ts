import { afterEach, describe, expect, it, vi } from 'vitest'
import type { ApiEvent } from '../../../main/api/contract.js'
import { dispatch, EventBatcher } from '../../../main/api/dispatch.js'
import { FakeBackend } from '../../../main/api/fake-backend.js'

let backend: FakeBackend

afterEach(async () => {
  await backend?.close()
  vi.useRealTimers()
})

async function running(): Promise<FakeBackend> {
  backend = new FakeBackend({ timers: false, startTime: 0 })
  await backend.labStart({ guest: 'kv', mode: 'rsm' })
  backend.advance(1000)
  return backend
}

const roles = async (b: FakeBackend) => Object.fromEntries((await b.labStatus()).hosts.map((h) => [h.id, h.role]))

describe('simulated lab', () => {
  it('starts with a primary, a backup and a disk server, and a channel that counts up', async () => {
    const b = await running()
    expect(await roles(b)).toEqual({ a: 'primary', b: 'backup', disk: 'disk-server' })
    await b.loadStart({ clients: 8, seconds: 60, keys: 100 })
    b.advance(2000)
    const s = await b.labStatus()
    expect(s.channel).toMatchObject({ from: 'a', to: 'b', connected: true })
    expect(s.channel!.lastEntry).toBeGreaterThan(100)
    expect(s.channel!.acked).toBeLessThanOrEqual(s.channel!.lastEntry)
    expect(s.channel!.lag).toBe(s.channel!.lastEntry - s.channel!.acked)
    expect(s.load.completed).toBeGreaterThan(0)
  })

  it('a power cut of the primary makes the backup win test-and-set and go live', async () => {
    const b = await running()
    const marks: string[] = []
    b.subscribe((e) => e.topic === 'mark' && marks.push(e.mark.kind))
    await b.faultInject({ target: 'a', kind: 'power', params: {}, durationMs: 60_000 })
    expect((await roles(b)).a).toBe('down')
    b.advance(1000)
    const s = await b.labStatus()
    expect(s.hosts.find((h) => h.id === 'b')).toMatchObject({ role: 'live', gen: 2 })
    expect(s.hosts.find((h) => h.id === 'disk')!.disk).toMatchObject({ tasWinner: 'b', gen: 2 })
    expect(marks).toEqual(['fault', 'suspect', 'tas', 'go-live'])
  })

  it('the backup cannot go live while the disk server is unreachable', async () => {
    const b = await running()
    await b.faultInject({ target: 'disk', kind: 'isolate', params: {}, durationMs: 60_000 })
    await b.faultInject({ target: 'a', kind: 'power', params: {}, durationMs: 60_000 })
    b.advance(3000)
    expect((await roles(b)).b).toBe('backup')
    await b.faultHeal({ id: 'all' })
    b.advance(1000)
    expect((await roles(b)).b).toBe('live')
  })

  it('a paused primary that wakes after the backup went live halts', async () => {
    const b = await running()
    const f = await b.faultInject({ target: 'a', kind: 'pause', params: {}, durationMs: 60_000 })
    b.advance(1500)
    expect(await roles(b)).toMatchObject({ a: 'primary', b: 'live' })
    await b.faultHeal({ id: f.id })
    expect((await roles(b)).a).toBe('halted')
  })

  it('faults heal themselves at their deadline', async () => {
    const b = await running()
    await b.faultInject({ target: 'a-b', kind: 'delay', params: { ms: 20 }, durationMs: 500 })
    expect((await b.labStatus()).faults).toHaveLength(1)
    b.advance(600)
    expect((await b.labStatus()).faults).toHaveLength(0)
  })

  it('restore redundancy puts a new backup behind the live replica in a new generation', async () => {
    const b = await running()
    await expect(b.labRestore()).rejects.toThrow('no replica is live alone')
    const f = await b.faultInject({ target: 'a', kind: 'power', params: {}, durationMs: 60_000 })
    b.advance(1000)
    await expect(b.labRestore()).rejects.toThrow('host a still has a fault; heal it first')
    await b.faultHeal({ id: f.id })
    await b.labRestore()
    b.advance(1000)
    const s = await b.labStatus()
    expect(await roles(b)).toMatchObject({ a: 'backup', b: 'primary' })
    expect(s.channel).toMatchObject({ from: 'b', to: 'a', gen: 3 })
  })

  it('refuses actions that do not fit the lab state, with the reason', async () => {
    backend = new FakeBackend({ timers: false })
    await expect(backend.faultInject({ target: 'a', kind: 'power', params: {}, durationMs: 1000 })).rejects.toThrow(
      'fault.inject: the lab is stopped; start it first'
    )
    await expect(backend.faultHeal({ id: 'f9' })).rejects.toThrow('fault.heal: no active fault "f9"')
  })

  it('keeps a ring of events for events.since and says when it was truncated', async () => {
    backend = new FakeBackend({ timers: false, ringSize: 50 })
    await backend.labStart({ guest: 'kv', mode: 'rsm' })
    backend.advance(5000)
    const all = backend.eventsSince(0)
    expect(all.events).toHaveLength(50)
    expect(all.truncated).toBe(true)
    const recent = backend.eventsSince(all.seq - 3)
    expect(recent.events.map((e) => e.seq)).toEqual([all.seq - 2, all.seq - 1, all.seq])
    expect(recent.truncated).toBe(false)
  })
})

describe('dispatch and batching', () => {
  it('dispatch validates before the backend sees anything', async () => {
    backend = new FakeBackend({ timers: false })
    const spy = vi.spyOn(backend, 'labStart')
    await expect(dispatch(backend, 'lab.start', { guest: 'kv' })).rejects.toThrow('lab.start.mode is missing')
    expect(spy).not.toHaveBeenCalled()
    await expect(dispatch(backend, 'lab.start', { guest: 'kv', mode: 'rsm' })).resolves.toMatchObject({ state: 'starting' })
    expect(spy).toHaveBeenCalledWith({ guest: 'kv', mode: 'rsm' })
  })

  it('the batcher hands over one batch per interval, bounded in size', () => {
    vi.useFakeTimers()
    const batches: ApiEvent[][] = []
    const batcher = new EventBatcher((b) => batches.push(b), 16, 3)
    const ev = (seq: number): ApiEvent => ({ seq, ts: 0, topic: 'terminal', stream: 'channel', data: String(seq) })
    for (let i = 1; i <= 5; i++) batcher.add(ev(i))
    expect(batches).toHaveLength(0)
    vi.advanceTimersByTime(16)
    expect(batches.map((b) => b.map((e) => e.seq))).toEqual([[1, 2, 3]])
    vi.advanceTimersByTime(16)
    expect(batches.map((b) => b.map((e) => e.seq))).toEqual([
      [1, 2, 3],
      [4, 5]
    ])
    batcher.add(ev(6))
    batcher.close()
    vi.advanceTimersByTime(100)
    expect(batches).toHaveLength(2)
  })
})
