// Playback through the console API: the session library's methods, a recording killed
// mid-write opening for playback, seeks landing on the state the console showed at that
// moment, and a recorded failover played back giving the sequence the live run gave.
import { mkdtempSync, rmSync, statSync, truncateSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ApiEvent, LabStatus, MethodName, PlaybackOpened, ResultOf } from '../../../main/api/contract.js'
import { dispatch } from '../../../main/api/dispatch.js'
import { ConsoleBackend } from '../../../main/console/console-backend.js'
import { MAGIC, SYNC } from '../../../main/record/format.js'
import { SessionLibrary } from '../../../main/record/library.js'
import { RecordingService, SEEK_WINDOW_MS } from '../../../main/record/playback.js'
import { syntheticSession } from '../../../main/record/synthetic.js'
import { RecordingWriter } from '../../../main/record/writer.js'
import { startApiServer } from '../../../main/transport/ws-server.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function tempHome(): string {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-playback-'))
  cleanups.push(() => rmSync(home, { recursive: true, force: true }))
  return home
}

async function call<M extends MethodName>(b: ConsoleBackend, method: M, params: unknown = {}): Promise<ResultOf<M>> {
  return (await dispatch(b, method, params)) as ResultOf<M>
}

const T0 = Date.UTC(2026, 11, 1, 12)
const header = (name: string) => ({
  ftlabVersion: 'test',
  startedAt: T0,
  lab: { kind: 'simulated' as const, name, guest: 'kv' as const, mode: 'rsm' as const, timing: null, sim: null, hosts: [] },
  console: { host: 'test', pid: 1 }
})

/** A synthetic session of `seconds` written into the library under `name`; closed unless told. */
function writeSession(lib: SessionLibrary, name: string, seconds: number, close = true): string {
  const path = lib.newPath(name, T0)
  const w = RecordingWriter.create(path, header(name), { fsync: 'never' })
  for (const r of syntheticSession(T0, seconds, 200)) w.append(r)
  if (close) w.close()
  else w.flush()
  return path
}

/** Roles and generation as one comparable line: "a primary · b backup · gen 1". */
const roles = (s: LabStatus) => `${s.hosts.map((h) => `${h.id} ${h.role}`).join(' · ')} · gen ${s.gen}`

/** Plays a whole recording through the API as the renderer does: a seek to its start, then reads to its end. */
async function playAll(b: ConsoleBackend, opened: PlaybackOpened, chunkMs = 500): Promise<ApiEvent[]> {
  const frame = await call(b, 'playback.seek', { id: opened.id, t: opened.t0 })
  const out = [...frame.events]
  let n = frame.n
  for (let t = opened.t0 + chunkMs; ; t += chunkMs) {
    const c = await call(b, 'playback.read', { id: opened.id, n, to: t, max: 300 })
    out.push(...c.events)
    n = c.n
    if (c.t < t) t = c.t - chunkMs // cut short: read on from where it stopped
    if (c.end) return out
  }
}

describe('the session library through the console API', () => {
  it('lists, renames, exports, deletes and imports recordings; refuses a name that is not one', async () => {
    const home = tempHome()
    const b = new ConsoleBackend({ home, reattach: false })
    cleanups.push(() => b.close())
    const lib = b.recordings.library
    writeSession(lib, 'first', 4)
    const list = await call(b, 'recording.list')
    expect(list.dir).toBe(join(home, 'recordings'))
    expect(list.recordings).toHaveLength(1)
    const r = list.recordings[0]
    expect(r).toMatchObject({ lab: { kind: 'simulated', name: 'first' }, startedAt: T0, closed: true, problems: [], error: null, live: false })
    expect(r.marks).toBe(3) // start, the power cut, the go-live
    expect(r.durationMs).toBeGreaterThan(3900)

    const renamed = await call(b, 'recording.rename', { name: r.name, to: 'failover-demo' })
    expect(renamed.name).toBe('failover-demo')
    const out = join(home, 'exported.ftrec')
    expect(await call(b, 'recording.export', { name: 'failover-demo', to: out })).toMatchObject({ path: out })
    expect(await call(b, 'recording.export', { name: 'failover-demo' })).toEqual({
      path: join(home, 'recordings', 'failover-demo.ftrec'),
      download: '/recordings/failover-demo.ftrec'
    })
    await call(b, 'recording.delete', { name: 'failover-demo' })
    expect((await call(b, 'recording.list')).recordings).toEqual([])
    const back = await call(b, 'recording.import', { path: out, as: 'again' })
    expect(back).toMatchObject({ name: 'again', closed: true, marks: 3 })

    writeFileSync(join(home, 'junk.ftrec'), 'not a recording')
    await expect(call(b, 'recording.import', { path: join(home, 'junk.ftrec') })).rejects.toThrow(
      /recording.import: cannot import .*junk.ftrec: not an FT Lab recording/
    )
    await expect(call(b, 'recording.rename', { name: 'again', to: '../escape' })).rejects.toThrow(/recording.rename.to must be a recording name/)
    await expect(call(b, 'playback.seek', { id: 'nope', t: 1 })).rejects.toThrow(/no open playback 'nope'.*open the recording again/)
  })

  it('refuses to delete or rename the recording being written, and lists it as live', async () => {
    const home = tempHome()
    const b = new ConsoleBackend({ home, reattach: false })
    cleanups.push(() => b.close())
    await call(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm' })
    const live = (await call(b, 'recording.list')).recordings.find((r) => r.live)
    expect(live).toBeDefined()
    await expect(call(b, 'recording.delete', { name: live!.name })).rejects.toThrow(/is being recorded now/)
    await expect(call(b, 'recording.rename', { name: live!.name, to: 'x' })).rejects.toThrow(/is being recorded now/)
    await call(b, 'lab.stop')
  })

  it('browser mode serves a recording as a download and takes one as an upload, both only with the token', async () => {
    const home = tempHome()
    const b = new ConsoleBackend({ home, reattach: false })
    cleanups.push(() => b.close())
    const path = writeSession(b.recordings.library, 'served', 2)
    const name = readdirSync(join(home, 'recordings'))[0].replace(/\.ftrec$/, '')
    const server = await startApiServer({ backend: b, rendererDir: home, token: 'a'.repeat(32) })
    cleanups.push(() => server.close())
    const base = `http://127.0.0.1:${server.port}`
    expect((await fetch(`${base}/recordings/${name}.ftrec`)).status).toBe(401)
    const got = await fetch(`${base}/recordings/${name}.ftrec?token=${'a'.repeat(32)}`)
    expect(got.status).toBe(200)
    expect(got.headers.get('content-disposition')).toBe(`attachment; filename="${name}.ftrec"`)
    expect(Buffer.from(await got.arrayBuffer()).equals(readFileSync(path))).toBe(true)
    expect((await fetch(`${base}/recordings/nothing.ftrec?token=${'a'.repeat(32)}`)).status).toBe(404)

    const up = await fetch(`${base}/recordings?token=${'a'.repeat(32)}&name=uploaded`, { method: 'POST', body: readFileSync(path) })
    expect(up.status).toBe(200)
    expect(await up.json()).toMatchObject({ name: 'uploaded', closed: true })
    const bad = await fetch(`${base}/recordings?token=${'a'.repeat(32)}&name=bad`, { method: 'POST', body: 'hello' })
    expect(bad.status).toBe(400)
    expect(await bad.text()).toMatch(/cannot import bad: not an FT Lab recording/)
    expect((await fetch(`${base}/recordings?name=x`, { method: 'POST', body: 'x' })).status).toBe(401)

    // its report: written next to it, shown inline, only with the token
    expect((await fetch(`${base}/recordings/${name}.html`)).status).toBe(401)
    const rep = await fetch(`${base}/recordings/${name}.html?token=${'a'.repeat(32)}`)
    expect(rep.status).toBe(200)
    expect(rep.headers.get('content-type')).toMatch(/^text\/html/)
    expect(rep.headers.get('content-security-policy')).toContain("default-src 'none'")
    const html = await rep.text()
    expect(html).toMatch(/^<!doctype html>/i)
    expect(html).toContain('<svg')
    expect(readFileSync(path.replace(/\.ftrec$/, '.html'), 'utf8')).toBe(html)
    expect((await fetch(`${base}/recordings/nothing.html?token=${'a'.repeat(32)}`)).status).toBe(404)
    expect(await dispatch(b, 'recording.report', { name })).toEqual({ path: path.replace(/\.ftrec$/, '.html'), view: `/recordings/${name}.html` })
  })
})

describe('playback', () => {
  it('opens a recording whose console was killed mid-write, reports the cut tail, and plays it to its last whole block', () => {
    const home = tempHome()
    const lib = new SessionLibrary(home)
    const path = writeSession(lib, 'killed', 6, false)
    // the console died in the middle of a write: the file ends inside a frame
    const size = statSync(path).size
    truncateSync(path, size - 37)
    const svc = new RecordingService(lib)
    const entry = svc.list().recordings[0]
    expect(entry).toMatchObject({ closed: false, error: null })
    expect(entry.problems.join('\n')).toMatch(/the tail from byte \d+ .* dropped; every record before it/)
    const opened = svc.openPlayback(entry.name)
    expect(opened.info.closed).toBe(false)
    expect(opened.marks.map((m) => m.kind)).toEqual(['start', 'fault', 'go-live'])
    const end = svc.seek(opened.id, opened.t1)
    expect(end.status && roles(end.status)).toBe('a down · b live · disk disk-server · gen 2')
    // reading on from the start reaches the end without error, every record once
    let n = svc.seek(opened.id, opened.t0).n
    let count = n
    for (;;) {
      const c = svc.read(opened.id, n, opened.t1, 1000)
      count += c.n - n
      n = c.n
      if (c.end) break
    }
    expect(count).toBe(opened.records)
    // a file cut right after its header still opens, empty
    const bare = join(lib.dir, 'bare.ftrec')
    const whole = readFileSync(path)
    writeFileSync(bare, whole.subarray(0, whole.indexOf(SYNC, MAGIC.length + 1) + 5))
    const empty = svc.openPlayback('bare')
    expect(empty.records).toBe(0)
    expect(svc.seek(empty.id, empty.t0).status).toBeNull()
    svc.close()
  })

  it('seeks land on the state at that moment: before the cut, between the cut and the go-live, after it, and back again', () => {
    const lib = new SessionLibrary(tempHome())
    writeSession(lib, 'seek', 20) // cut of a at 10 s, b live at 10.9 s; keyframes every 2 s
    const svc = new RecordingService(lib)
    const o = svc.openPlayback(lib.list()[0].name)
    const at = (ms: number) => svc.seek(o.id, T0 + ms)
    const before = at(9_000)
    expect(roles(before.status!)).toBe('a primary · b backup · disk disk-server · gen 1')
    expect(before.status!.faults).toEqual([])
    expect(before.events.filter((e) => e.topic === 'mark').map((e) => (e.topic === 'mark' ? e.mark.kind : ''))).toEqual(['start'])
    const cut = at(10_500)
    expect(cut.events.filter((e) => e.topic === 'mark').map((e) => (e.topic === 'mark' ? e.mark.kind : ''))).toEqual(['start', 'fault'])
    const after = at(12_000)
    expect(roles(after.status!)).toBe('a down · b live · disk disk-server · gen 2')
    expect(after.status!.faults.map((f) => f.what)).toEqual(['power cut a'])
    // backwards: the same moment gives the same state as before
    expect(at(9_000).status).toEqual(before.status)
    // the diagram's window: agent events of the last seconds only, in the order recorded
    const agents = after.events.filter((e) => e.topic === 'agent')
    expect(agents.length).toBeGreaterThan(0)
    expect(agents.every((e) => e.ts >= T0 + 12_000 - SEEK_WINDOW_MS && e.ts <= T0 + 12_000)).toBe(true)
    // the charts' history before the window: the keyframes' statuses, oldest first, then the window's own
    const statusTimes = at(17_000)
      .events.filter((e) => e.topic === 'status')
      .map((e) => e.ts)
    expect(statusTimes[0]).toBeLessThan(T0 + 17_000 - SEEK_WINDOW_MS)
    expect(statusTimes).toEqual([...statusTimes].sort((x, y) => x - y))
    const seqs = after.events.filter((e) => e.topic !== 'mark').map((e) => e.seq)
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y))
    svc.close()
  })

  it("a seek redraws a host terminal's screen as it stood then, however long ago its output came", () => {
    const lib = new SessionLibrary(tempHome())
    const path = lib.newPath('terms', T0)
    const w = RecordingWriter.create(path, header('terms'), { fsync: 'never' })
    const term = { id: 't1', host: 'a', title: 'a: shell', state: 'open' as const, error: null }
    let seq = 0
    const ev = (t: number, e: Record<string, unknown>) => w.append({ k: 'ev', t: T0 + t, ev: { ...e, ts: T0 + t, seq: ++seq } as ApiEvent })
    ev(0, { topic: 'term', term })
    ev(100, { topic: 'terminal', stream: 't1', data: '$ uptime\r\n' })
    ev(200, { topic: 'terminal', stream: 't1', data: ' 12:00  up 3 days\r\n$ ' })
    for (const r of syntheticSession(T0 + 1000, 30, 100)) w.append(r) // a busy lab in between (its own seqs: not compared here)
    ev(31_000, { topic: 'terminal', stream: 't1', data: 'ls\r\n' })
    w.close()
    const svc = new RecordingService(lib)
    const o = svc.openPlayback('terms-' + new Date(T0).toISOString().slice(0, 19).replace(/:/g, '-'))
    const screen = (f: ReturnType<RecordingService['seek']>) =>
      f.events.filter((e) => e.topic === 'terminal' && e.stream === 't1').map((e) => (e.topic === 'terminal' ? e.data : ''))
    const mid = svc.seek(o.id, T0 + 25_000)
    expect(mid.terms).toEqual([term])
    expect(screen(mid)).toEqual(['$ uptime\r\n 12:00  up 3 days\r\n$ '])
    expect(screen(svc.seek(o.id, T0 + 31_000))).toEqual(['$ uptime\r\n 12:00  up 3 days\r\n$ ls\r\n'])
    expect(svc.seek(o.id, T0 + 50).terms).toEqual([term])
    expect(screen(svc.seek(o.id, T0 + 50))).toEqual([])
    svc.close()
  })

  it('steps entry by entry around the failover: the next and previous log entry or ack', () => {
    const lib = new SessionLibrary(tempHome())
    writeSession(lib, 'step', 14)
    const svc = new RecordingService(lib)
    const o = svc.openPlayback(lib.list()[0].name)
    const goLive = o.marks.find((m) => m.kind === 'go-live')!
    const frame = svc.seek(o.id, goLive.t)
    const next = svc.step(o.id, frame.n - 1, 1)!
    expect(next.t).toBeGreaterThanOrEqual(goLive.t)
    const chunk = svc.read(o.id, frame.n, next.t, 10_000, next.n)
    const last = chunk.events[chunk.events.length - 1]
    expect(last).toMatchObject({ topic: 'agent', seq: next.seq, host: next.host, type: next.type })
    expect(['entry', 'ack']).toContain(last.topic === 'agent' ? last.type : '')
    const prev = svc.step(o.id, next.n, -1)!
    expect(prev.n).toBeLessThan(next.n)
    expect(svc.step(o.id, 0, -1)).toBeNull()
    svc.close()
  })

  it('a recorded failover on the simulated lab plays back as the live run showed it: the same marks, roles and generations in the same order', async () => {
    const home = tempHome()
    const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100 })
    cleanups.push(() => b.close())
    const live: ApiEvent[] = []
    b.subscribe((ev) => live.push(ev))
    await call(b, 'lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', seed: 11 })
    const until = async (what: string, ok: (x: LabStatus) => boolean) => {
      for (let i = 0; i < 300; i++) {
        const x = await call(b, 'lab.status')
        if (ok(x)) return x
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error(`timed out waiting for ${what}`)
    }
    await until('a primary, b backup', (x) => x.hosts[0].role === 'primary' && x.hosts[1].role === 'backup')
    await call(b, 'load.start', { clients: 2, seconds: 30, keys: 50 })
    await new Promise((r) => setTimeout(r, 500))
    await call(b, 'fault.inject', { target: 'a', kind: 'power', durationMs: 60_000 })
    await until('b live', (x) => x.hosts[1].role === 'live')
    await call(b, 'lab.restore')
    await until('gen 2 with b primary', (x) => x.gen === 2 && x.hosts[1].role === 'primary' && x.hosts[0].role === 'backup')
    await call(b, 'load.stop')
    await call(b, 'lab.stop')
    await new Promise((r) => setTimeout(r, 200))

    const name = (await call(b, 'recording.list')).recordings[0].name
    const opened = await call(b, 'playback.open', { name })
    const played = await playAll(b, opened)

    const sequence = (evs: ApiEvent[]) => {
      const out: string[] = []
      for (const ev of evs) {
        const line = ev.topic === 'mark' ? `mark ${ev.mark.kind}: ${ev.mark.label}` : ev.topic === 'status' ? roles(ev.status) : null
        if (line && out[out.length - 1] !== line) out.push(line)
      }
      return out
    }
    const liveSeq = sequence(live.filter((e) => e.topic !== 'prompt' && e.topic !== 'deploy'))
    expect(liveSeq.filter((l) => l.startsWith('mark go-live'))).toHaveLength(1)
    expect(liveSeq).toContain('a backup · b primary · disk disk-server · gen 2')
    expect(sequence(played)).toEqual(liveSeq)
    // and the seeks land where the live run was: at each status the console published, that status
    const statuses = live.filter((e): e is Extract<ApiEvent, { topic: 'status' }> => e.topic === 'status')
    for (const s of statuses.filter((_, i) => i % 7 === 0)) {
      const f = await call(b, 'playback.seek', { id: opened.id, t: s.ts })
      const expected = statuses.filter((x) => x.ts <= s.ts).pop()!
      expect(roles(f.status!)).toBe(roles(expected.status))
    }
    await call(b, 'playback.close', { id: opened.id })
  }, 60_000)
})
