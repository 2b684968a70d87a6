// The bench's failover and saturated sections say how their faults were timed: cuts soon after a restore
// (--failover-lead), and a saturated run with the backup cut and restored over and over (--saturate-restore-every).
import { describe, expect, it } from 'vitest'
import { renderReport, type BenchResult } from '../../../main/bench/report.js'

const base: BenchResult = {
  startedAt: '2026-12-03T15:00:00Z',
  elapsedMs: 60_000,
  machine: { node: 'v20.20.2', platform: 'linux', cpus: 2, cpuModel: 'AMD EPYC', loadAvg: [0.5, 1.5] },
  load: { clients: 8, keys: 64, seconds: 5, warmupSeconds: 2, rounds: 2, mix: '40% SET, 40% GET, 20% INCR' },
  timing: { heartbeatMs: 20, suspectMs: 800 },
  baseline: 'none',
  modes: [],
  memory: [],
  interrupted: false
}

const spread = { min: 60, median: 70, max: 95, n: 2 }

describe('the bench report', () => {
  it('says when the cuts came soon after a restore, and not otherwise', () => {
    const failover = { mode: 'rsm' as const, reps: [], firstOpMs: { ...spread, p99: 95 }, liveMs: spread, falseFailovers: 0 }
    expect(renderReport({ ...base, failover })).not.toMatch(/after the restore/)
    expect(renderReport({ ...base, failover: { ...failover, leadSec: 2 } })).toMatch(
      /Failover \(rsm\): power cut of the primary \(SIGKILL\) → first client operation answered by the survivor; after the first, each cut 2 s after the restore before it/
    )
  })

  it('gives the churn of a saturated run, and the suspicions between a restore and the next cut', () => {
    const saturate: BenchResult['saturate'] = {
      mode: 'rsm',
      minutes: 3,
      clients: 64,
      bigWriters: 2,
      completed: 900_000,
      opsPerSec: 5191,
      bigSets: 2658,
      bigBytes: 788_000_000,
      falseFailovers: 0,
      suspicions: 19,
      timeoutMs: { min: 228, median: 766, p99: 800, max: 924, n: 329 },
      restores: 0,
      churn: { every: 8, restores: 19, failed: 0, suspicions: 0 },
      latencyMs: { p50: 9, p99: 44.6, max: 842 },
      notes: []
    }
    const text = renderReport({ ...base, saturate })
    expect(text).toMatch(/Saturated run \(rsm, 3 min, a power cut of the backup and a restore every 8 s\)/)
    expect(text).toMatch(/churn: 19 restores \(0 failed\); suspicions between a restore's end and the next cut, with both replicas up: 0/)
    expect(renderReport({ ...base, saturate: { ...saturate, churn: undefined } })).toMatch(/Saturated run \(rsm, 3 min, no faults\)/)
  })
})
