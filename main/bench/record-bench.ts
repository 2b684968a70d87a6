// Recording figures, on demand (no assertions): bytes per event, the events per second the
// writer sustains, and opening and seeking in an hour-long recording of a busy lab.
//   npx esbuild main/bench/record-bench.ts --bundle --platform=node --format=esm --packages=external \
//     --outfile=out/bench/record-bench.mjs && node out/bench/record-bench.mjs [--minutes 60] [--rate 500]
// The session is synthetic (main/record/synthetic.ts): status snapshots 4/s, agent entries and
// acks, channel terminal lines, load progress, a power cut and a go-live, at `rate` events/s.
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runIfMain } from '../core/entry.js'
import type { RecordEntry } from '../record/format.js'
import { Recording } from '../record/reader.js'
import { syntheticSession } from '../record/synthetic.js'
import { RecordingWriter } from '../record/writer.js'

const header = (t0: number) => ({
  ftlabVersion: 'bench',
  startedAt: t0,
  lab: { kind: 'simulated' as const, name: 'bench', guest: 'kv' as const, mode: 'rsm' as const, timing: null, sim: null, hosts: [] },
  console: { host: 'bench', pid: process.pid }
})

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}

const f1 = (x: number) => x.toFixed(1)

async function main(): Promise<number> {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`)
    return i > 0 ? Number(process.argv[i + 1]) : dflt
  }
  const minutes = arg('minutes', 60)
  const rate = arg('rate', 500)
  const dir = mkdtempSync(join(tmpdir(), 'ftlab-record-bench-'))
  try {
    const t0 = Date.UTC(2026, 0, 1)
    // 1. the writer alone, on a minute of records already in memory
    const minute: RecordEntry[] = [...syntheticSession(t0, 60, rate)]
    const jsonBytes = minute.reduce((s, r) => s + JSON.stringify(r).length + 1, 0)
    const p1 = join(dir, 'minute.ftrec')
    const start = performance.now()
    const w1 = RecordingWriter.create(p1, header(t0))
    for (const r of minute) w1.append(r)
    w1.close()
    const ms = performance.now() - start
    const size1 = statSync(p1).size
    console.log(`events in a minute at ${rate}/s:  ${minute.length}`)
    console.log(`bytes per event:            ${f1(size1 / minute.length)} (JSON ${f1(jsonBytes / minute.length)}, ${f1(jsonBytes / size1)}x smaller)`)
    console.log(
      `writer sustains:            ${Math.round(minute.length / (ms / 1000))} events/s (${f1((ms / minute.length) * 1000)} µs per event, blocks every 250 ms of record time, fsync at keyframes)`
    )

    // 2. an hour-long recording
    const p2 = join(dir, 'hour.ftrec')
    const w2 = RecordingWriter.create(p2, header(t0))
    let n = 0
    const g0 = performance.now()
    for (const r of syntheticSession(t0, minutes * 60, rate, minutes * 30_000)) {
      w2.append(r)
      n++
    }
    const unclosedAt = w2.bytes
    w2.close()
    const g1 = performance.now()
    const size2 = statSync(p2).size
    console.log(
      `${minutes} min recording:        ${n} events, ${f1(size2 / 1024 / 1024)} MiB (${f1((size2 / 1024 / 1024) * (60 / minutes))} MiB per hour), written in ${f1((g1 - g0) / 1000)} s with generation`
    )
    let o = performance.now()
    const rec = Recording.open(p2)
    console.log(`open (index):               ${f1(performance.now() - o)} ms, ${rec.marks.length} marks, ${rec.records} records`)
    const seeks: number[] = []
    for (let i = 0; i < 200; i++) {
      const t = t0 + Math.random() * rec.duration
      const s = performance.now()
      rec.stateAt(t)
      seeks.push(performance.now() - s)
    }
    console.log(`seek (stateAt, random t):   p50 ${f1(pct(seeks, 50))} ms, p99 ${f1(pct(seeks, 99))} ms, max ${f1(Math.max(...seeks))} ms over 200 seeks`)
    const spans: number[] = []
    for (let i = 0; i < 50; i++) {
      const t = t0 + Math.random() * (rec.duration - 10_000)
      const s = performance.now()
      let c = 0
      for (const _ of rec.events(t, t + 10_000)) c++
      spans.push(performance.now() - s)
    }
    console.log(`events(t, t+10 s):          p50 ${f1(pct(spans, 50))} ms`)
    rec.close()
    o = performance.now()
    const scanned = Recording.open(p2, { verify: true })
    console.log(
      `open by scan (no index):    ${f1(performance.now() - o)} ms (a recording whose console died; ${f1(unclosedAt / 1024 / 1024)} MiB), ${scanned.problems.length} problems`
    )
    scanned.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return 0
}

runIfMain(import.meta.url, 'record-bench', main)
