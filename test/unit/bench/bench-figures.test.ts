// The benchmark's arithmetic and parsing, apart from any lab: the figures it prints are only
// as good as these.
import { describe, expect, it } from 'vitest'
import type { AgentStatus } from '../../../agent/control/protocol.js'
import type { HostStatusRow } from '../../../main/lab/lab.js'
import { channelDelta, channelSum, memoryOf, parseRedisCsv, spread, type MemSample } from '../../../main/bench/measure.js'
import { BenchUsageError, DEFAULTS, parseBenchArgs } from '../../../main/bench/options.js'
import { deployFigures, stepDurations, type DeployRep } from '../../../main/bench/deploy.js'
import { renderDeploy } from '../../../main/bench/report.js'

const channel = (bytesSent: number, entriesSent: number): AgentStatus['channel'] => ({
  connected: true,
  lastEntry: 0,
  acked: 0,
  unackedEntries: 0,
  unackedBytes: 0,
  bytesSent,
  bytesReceived: 0,
  entriesSent,
  entriesReceived: 0,
  heldOutputs: 0,
  stalled: false
})
const rows = (a: [number, number], b: [number, number]) =>
  new Map<string, HostStatusRow>(
    (
      [
        ['a', a],
        ['b', b]
      ] as const
    ).map(([id, [bytes, entries]]) => [
      id,
      { host: id, kind: 'replica', pid: 1, incarnation: 1, state: 'up', status: { channel: channel(bytes, entries) } as AgentStatus }
    ])
  )

describe('bench options', () => {
  it('has defaults that run every section in both modes', () => {
    const o = parseBenchArgs([])
    expect(o).toEqual(DEFAULTS)
    expect(o.sections).toEqual(['throughput', 'memory', 'failover', 'redis', 'vmm', 'deploy'])
    expect(o.deployReps).toBe(3)
    expect(o.modes).toEqual(['rsm', 'state-transfer'])
  })

  it('parses values, lists in canonical order, and flags', () => {
    const o = parseBenchArgs(['--seconds', '2.5', '--clients=3', '--only', 'redis,throughput', '--modes', 'state-transfer', '--json'])
    expect(o.seconds).toBe(2.5)
    expect(o.clients).toBe(3)
    expect(o.sections).toEqual(['throughput', 'redis'])
    expect(o.modes).toEqual(['state-transfer'])
    expect(o.json).toBe(true)
  })

  it('cuts after a restore as late as the first cut unless told, and churns the saturated run only when asked', () => {
    expect(DEFAULTS.failoverLeadSec).toBeNull()
    expect(DEFAULTS.saturateRestoreEvery).toBe(0)
    const o = parseBenchArgs(['--only', 'failover,saturate', '--failover-lead', '2', '--saturate-restore-every', '8'])
    expect(o.failoverLeadSec).toBe(2)
    expect(o.saturateRestoreEvery).toBe(8)
    expect(() => parseBenchArgs(['--failover-lead', '0'])).toThrow(/from 0.5 to/)
  })

  it('refuses what it does not understand, saying what was wrong', () => {
    expect(() => parseBenchArgs(['--clients', '2.5'])).toThrow(/whole number/)
    expect(() => parseBenchArgs(['--clients', '0'])).toThrow(/from 1 to/)
    expect(() => parseBenchArgs(['--sections', 'speed'])).toThrow(/'speed' is not one of/)
    expect(() => parseBenchArgs(['--frobnicate'])).toThrow(BenchUsageError)
    expect(() => parseBenchArgs(['--seconds'])).toThrow(/needs a value/)
    expect(() => parseBenchArgs(['--json=yes'])).toThrow(/takes no value/)
    expect(() => parseBenchArgs(['--only', 'redis', '--sections', 'memory'])).toThrow(/given twice/)
  })
})

describe('bench figures', () => {
  it('logging-channel bytes per operation come from the counters of both sides', () => {
    const f = channelDelta(rows([1000, 10], [50, 0]), rows([301_000, 1010], [66_050, 0]), 'a', 'b', 1000, 2000)
    expect(f.bytesPerOp).toBe(300)
    expect(f.ackBytesPerOp).toBe(66)
    expect(f.entriesPerOp).toBe(1)
    expect(f.mbPerSec).toBeCloseTo(0.15)
    const sum = channelSum([f, { ...f, bytesSent: 100_000, ops: 1000, entriesSent: 1000, ackBytesPerOp: 34 }], 4000)
    expect(sum.bytesPerOp).toBe(200)
    expect(sum.ackBytesPerOp).toBe(50)
  })

  it('refuses counters that went backwards rather than print a negative figure', () => {
    expect(() => channelDelta(rows([5000, 10], [0, 0]), rows([100, 20], [0, 0]), 'a', 'b', 10, 1000)).toThrow(/backwards/)
  })

  it('memory: first, last, max, and whether the second half outgrew the first', () => {
    const mem = (rss: number) => ({ rss, heapUsed: rss / 2, guestBytes: 10 })
    const flat: MemSample[] = [100, 120, 110, 118, 112, 119].map((r, i) => ({ atMs: i * 1000, hosts: { a: mem(r), b: mem(r * 2 ** i) } }))
    const [a, b] = memoryOf(flat, ['a', 'b'])
    expect(a).toMatchObject({ samples: 6, rssFirst: 100, rssLast: 119, rssMax: 120, guestLast: 10 })
    expect(a.secondHalfOverFirst).toBeCloseTo(119 / 120)
    expect(b.secondHalfOverFirst).toBeGreaterThan(2)
    // a host that did not answer a sample is left out of it, not counted as zero
    const gaps: MemSample[] = [
      { atMs: 0, hosts: { a: undefined } },
      { atMs: 1, hosts: { a: mem(50) } }
    ]
    expect(memoryOf(gaps, ['a'])[0]).toMatchObject({ samples: 1, rssFirst: 50 })
  })

  it('min / median / max', () => {
    expect(spread([900, 800, 1000])).toEqual({ min: 800, median: 900, max: 1000, n: 3 })
    expect(spread([1, 4])).toEqual({ min: 1, median: 2.5, max: 4, n: 2 })
    expect(spread([]).n).toBe(0)
  })

  it("reads redis-benchmark's CSV", () => {
    const csv = [
      'WARNING: something',
      '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"',
      '"SET","2234.64","22.178","5.968","20.895","37.791","61.279","82.431"',
      '"INCR","4535.15","10.884","4.336","9.711","19.567","31.263","43.327"'
    ].join('\n')
    expect(parseRedisCsv(csv)).toEqual([
      { test: 'SET', rps: 2234.64, p50Ms: 20.895, p99Ms: 61.279 },
      { test: 'INCR', rps: 4535.15, p50Ms: 9.711, p99Ms: 31.263 }
    ])
    expect(parseRedisCsv('Error from server: NOTLIVE')).toEqual([])
  })
})

describe('deploy figures', () => {
  it('times each step from its first progress line to the next step, the last one to the end', () => {
    const ev = [
      { step: 'connect', at: 100 },
      { step: 'connect', at: 180 },
      { step: 'detect', at: 200 },
      { step: 'runtime', at: 230 },
      { step: 'upload', at: 1230 },
      { step: 'upload', at: 1300 },
      { step: 'start', at: 1400 }
    ] as const
    expect(stepDurations([...ev], 1700)).toEqual({ connect: 100, detect: 30, runtime: 1000, upload: 170, start: 300 })
  })

  it('times steps that overlap (runtime and bundle uploads side by side) each to its own done or skipped line', () => {
    const ev = [
      { step: 'connect', at: 0, state: 'running' },
      { step: 'connect', at: 100, state: 'done' },
      { step: 'detect', at: 100, state: 'running' },
      { step: 'detect', at: 150, state: 'done' },
      { step: 'runtime', at: 150, state: 'running' },
      { step: 'upload', at: 160, state: 'running' },
      { step: 'upload', at: 400, state: 'done' },
      { step: 'runtime', at: 2150, state: 'done' },
      { step: 'start', at: 2150, state: 'running' },
      { step: 'start', at: 2900, state: 'done' }
    ] as const
    expect(stepDurations([...ev], 3000)).toEqual({ connect: 100, detect: 50, runtime: 2000, upload: 240, start: 750 })
  })

  it('spreads per phase and host, and counts uploads', () => {
    const rep = (rep: number, phase: 'cold' | 'warm', wallMs: number, h2: number, uploaded: boolean): DeployRep => ({
      rep,
      phase,
      wallMs,
      hosts: [
        { host: 'h1', totalMs: wallMs - 10, stepsMs: { connect: 5 }, uploaded: { agent: uploaded, runtime: false } },
        { host: 'h2', totalMs: h2, stepsMs: { connect: 7, runtime: h2 - 7 }, uploaded: { agent: uploaded, runtime: uploaded } }
      ]
    })
    const reps = [rep(1, 'cold', 4000, 3900, true), rep(1, 'warm', 500, 480, false), rep(2, 'cold', 3000, 2900, true), rep(3, 'cold', 5000, 4900, true)]
    const cold = deployFigures(reps, 'cold')
    expect(cold.wallMs).toEqual({ min: 3000, median: 4000, max: 5000, n: 3 })
    const h2 = cold.perHost.find((h) => h.host === 'h2')!
    expect(h2.totalMs.median).toBe(3900)
    expect(h2.stepsMs.runtime?.median).toBe(3893)
    expect(h2.uploaded).toEqual({ agent: 3, runtime: 3 })
    expect(deployFigures(reps, 'warm').perHost.map((h) => h.uploaded)).toEqual([
      { agent: 0, runtime: 0 },
      { agent: 0, runtime: 0 }
    ])
  })

  it('says why the section was skipped', () => {
    const lines = renderDeploy({ skipped: 'the testbed needs root (network namespaces, users, sshd)', hosts: [], reps: [], phases: [] })
    expect(lines.at(-1)).toBe('skipped: the testbed needs root (network namespaces, users, sshd)')
  })
})
