import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FRAME_HEAD, FrameType, MAGIC, SYNC, type RecordEntry, type RecordingHeader } from '../../../main/record/format.js'
import { Recording } from '../../../main/record/reader.js'
import { DerivedState, redactParams } from '../../../main/record/state.js'
import { RecordingWriter, type WriterOptions } from '../../../main/record/writer.js'
import { syntheticSession } from '../../../main/record/synthetic.js'

const dir = mkdtempSync(join(tmpdir(), 'ftlab-record-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

const T0 = Date.UTC(2026, 11, 1, 14, 0, 0)
const header = (): Omit<RecordingHeader, 'format' | 'version'> => ({
  ftlabVersion: '0.1.0-test',
  startedAt: T0,
  lab: { kind: 'simulated', name: 'simulated', guest: 'kv', mode: 'rsm', timing: { heartbeatMs: 100, suspectMs: 800 }, sim: { speed: 1, seed: 7 }, hosts: [] },
  console: { host: 'test', pid: 1 }
})

/** Writes records to a fresh file; returns its path, the records and each sample time's state as the writer saw it live. */
function record(records: RecordEntry[], opts: WriterOptions = {}, samples: number[] = [], close = true) {
  const path = join(dir, `r${++files}.ftrec`)
  const w = RecordingWriter.create(path, header(), { keyframeMs: 2000, ...opts })
  const live = new DerivedState()
  const seen = new Map<number, { n: number; status: string }>()
  const todo = [...samples].sort((x, y) => x - y)
  for (const r of records) {
    while (todo.length && todo[0] < r.t) {
      const s = todo.shift()!
      seen.set(s, { n: live.n, status: JSON.stringify(live.labStatus()) })
    }
    live.apply(r)
    w.append(r)
  }
  for (const s of todo) seen.set(s, { n: live.n, status: JSON.stringify(live.labStatus()) })
  if (close) w.close()
  else w.flush()
  return { path, records, seen, writer: w }
}

/** The frames of a file as an independent walk sees them (no checksums: the file is intact). */
function frames(buf: Buffer): { offset: number; end: number; type: number; count: number }[] {
  const out = []
  let pos = MAGIC.length
  while (pos < buf.length) {
    expect(buf.subarray(pos, pos + 4).equals(SYNC)).toBe(true)
    const type = buf[pos + 4]
    const end = pos + FRAME_HEAD + buf.readUInt32LE(pos + 5)
    out.push({ offset: pos, end, type, count: type === FrameType.Block ? buf.readUInt32LE(pos + FRAME_HEAD + 8) : 0 })
    pos = end
  }
  return out
}

const strip = ({ n: _n, ...r }: RecordEntry & { n: number }): RecordEntry => r

describe('recording file', () => {
  it('reads back every record, the header and the marks of a closed recording', () => {
    const { path, records } = record([...syntheticSession(T0, 20, 200, 8000)])
    const rec = Recording.open(path)
    expect(rec.closed).toBe(true)
    expect(rec.problems).toEqual([])
    expect(rec.header).toMatchObject({
      format: 'ftlab-recording',
      version: 1,
      ftlabVersion: '0.1.0-test',
      startedAt: T0,
      lab: { kind: 'simulated', guest: 'kv' }
    })
    expect(rec.records).toBe(records.length)
    expect([...rec.events()].map(strip)).toEqual(records)
    expect(rec.marks.map((m) => [m.kind, m.t - T0])).toEqual([
      ['start', 0],
      ['fault', 8000],
      ['go-live', 8900]
    ])
    expect(rec.duration).toBe(records[records.length - 1].t - T0)
    const mid = [...rec.events(T0 + 5000, T0 + 5100)]
    expect(mid.length).toBeGreaterThan(0)
    expect(mid.every((r) => r.t >= T0 + 5000 && r.t <= T0 + 5100)).toBe(true)
    rec.close()
  })

  it('an unclosed recording (no index) is indexed by a scan and reads the same', () => {
    const { path, records } = record([...syntheticSession(T0, 10, 200, 3000)], {}, [], false)
    const rec = Recording.open(path)
    expect(rec.closed).toBe(false)
    expect(rec.problems).toEqual([])
    expect(rec.records).toBe(records.length)
    expect([...rec.events()].map(strip)).toEqual(records)
    expect(rec.marks.map((m) => m.kind)).toEqual(['start', 'fault', 'go-live'])
  })

  it('seeks to the state the console showed live at any moment, from a keyframe plus replay', () => {
    const samples = [T0 - 1, T0, T0 + 1999, T0 + 2000, T0 + 2001, T0 + 7999, T0 + 8000, T0 + 8899, T0 + 8900, T0 + 8901, T0 + 19_999, T0 + 30_000]
    for (let i = 0; i < 40; i++) samples.push(T0 + Math.floor(((i * 7919) % 20_000) + 0.5))
    const { path, seen } = record([...syntheticSession(T0, 20, 200, 8000)], {}, samples)
    for (const closed of [true]) {
      const rec = Recording.open(path, { verify: !closed })
      for (const t of samples) {
        const s = rec.stateAt(t)
        expect({ t, n: s.n, status: JSON.stringify(s.status) }).toEqual({ t, ...seen.get(t)! })
        expect(s.recent.every((r) => r.t <= t && r.t >= t - 3000)).toBe(true)
      }
      const after = rec.stateAt(T0 + 9000)
      expect(after.status?.hosts[1].role).toBe('live')
      expect(after.faults.map((f) => f.what)).toEqual(['power cut a'])
      expect(after.marks.map((m) => m.kind)).toEqual(['start', 'fault', 'go-live'])
      expect(rec.stateAt(T0 + 7000).marks.map((m) => m.kind)).toEqual(['start'])
      rec.close()
    }
  })

  it('a file cut at any byte of its last records opens, keeps every complete record before the cut and reports the cut', () => {
    const { path, records } = record([...syntheticSession(T0, 2, 100, 500)], { keyframeMs: 1000 })
    const whole = readFileSync(path)
    const fs = frames(whole)
    const blocks = fs.filter((f) => f.type === FrameType.Block)
    const from = blocks[blocks.length - 2].offset
    const cutPath = join(dir, 'cut.ftrec')
    let checked = 0
    for (let cut = from; cut < whole.length; cut++) {
      writeFileSync(cutPath, whole.subarray(0, cut))
      const rec = Recording.open(cutPath)
      const complete = fs.filter((f) => f.end <= cut)
      const kept = complete.reduce((s, f) => s + f.count, 0)
      const partial = fs.find((f) => f.offset < cut && f.end > cut)
      // plain comparisons: this runs thousands of times
      const got = [...rec.events()].map(strip)
      if (rec.closed || rec.records !== kept || JSON.stringify(got) !== JSON.stringify(records.slice(0, kept)))
        expect({ cut, closed: rec.closed, records: rec.records, events: got.length }).toEqual({ cut, closed: false, records: kept, events: kept })
      const p = rec.problems
      const ok = partial ? p.length === 1 && p[0].kind === 'truncated' && p[0].offset === partial.offset && p[0].bytes === cut - partial.offset : p.length === 0
      if (!ok)
        expect({ cut, problems: p }).toEqual({ cut, problems: partial ? [{ kind: 'truncated', offset: partial.offset, bytes: cut - partial.offset }] : [] })
      rec.close()
      checked++
    }
    expect(checked).toBeGreaterThan(500)
  })

  it('a flipped byte in a middle block is reported with its records, and every record after it is still read', () => {
    const { path, records } = record([...syntheticSession(T0, 6, 100, 1000)], { keyframeMs: 1000 })
    const whole = readFileSync(path)
    const fs = frames(whole)
    const blocks = fs.filter((f) => f.type === FrameType.Block)
    const victim = blocks[Math.floor(blocks.length / 2)]
    const n0 = blocks.slice(0, blocks.indexOf(victim)).reduce((s, b) => s + b.count, 0)
    const expected = [...records.slice(0, n0), ...records.slice(n0 + victim.count)]
    for (const where of ['payload', 'length'] as const) {
      const bad = Buffer.from(whole)
      const at = where === 'payload' ? Math.floor((victim.offset + FRAME_HEAD + 28 + victim.end) / 2) : victim.offset + 6
      bad[at] ^= 0x5a
      const badPath = join(dir, `flip-${where}.ftrec`)
      writeFileSync(badPath, bad)
      // through the intact index: the damage shows when the block is read
      const viaIndex = Recording.open(badPath)
      expect(viaIndex.closed).toBe(true)
      expect([...viaIndex.events()].map(strip)).toEqual(expected)
      expect(viaIndex.problems).toEqual([expect.objectContaining({ kind: 'corrupt', offset: victim.offset, records: victim.count })])
      // by a full scan (import verifies; a file without an index is scanned)
      const scanned = Recording.open(badPath, { verify: true })
      expect(scanned.problems).toEqual([
        expect.objectContaining({ kind: 'corrupt', offset: victim.offset, bytes: victim.end - victim.offset, records: victim.count })
      ])
      expect(scanned.problems[0].message).toMatch(new RegExp(`bytes ${victim.offset} to ${victim.end} .* skipped.*${victim.count} records lost`))
      expect([...scanned.events()].map(strip)).toEqual(expected)
      expect(scanned.marks.map((m) => m.kind)).toEqual(['start', 'fault', 'go-live'])
      // a state after the damage is still found
      expect(scanned.stateAt(T0 + 5900).status?.hosts[1].role).toBe('live')
    }
  })

  it('refuses a file that is not a recording, saying which file and why', () => {
    const p = join(dir, 'not.ftrec')
    writeFileSync(p, 'hello, world\n')
    expect(() => Recording.open(p)).toThrow(`${p}: not an FT Lab recording (it does not start with the .ftrec signature)`)
    expect(() => Recording.open(join(dir, 'absent.ftrec'))).toThrow(/absent.ftrec: cannot open: ENOENT/)
  })

  it('keeps secrets out of recorded requests', () => {
    expect(redactParams('prompt.answer', { id: 'p1', accept: true, secret: 'hunter2', remember: true })).toEqual({
      id: 'p1',
      accept: true,
      secret: '[redacted]',
      remember: true
    })
    expect(redactParams('lab.deploy', { name: 'x', file: { hosts: { a: { password: 'pw', address: 'h' } } } })).toEqual({
      name: 'x',
      file: { hosts: { a: { password: '[redacted]', address: 'h' } } }
    })
    expect(redactParams('term.input', { id: 't1', data: 'sudo-password\r' })).toEqual({ id: 't1', data: '[14 characters not recorded]' })
  })
})
