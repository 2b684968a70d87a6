// The side-by-side table's durable column: redis-server with appendfsync always, beside the
// default in-memory one, its ratio shown and never judged.
import { describe, expect, it } from 'vitest'
import { judge, redisPersistenceArgs, renderSideBySide, samplesOf, type SbsTarget, type SideBySideResult } from '../../../main/bench/side-by-side.js'

function result(withAof: boolean): SideBySideResult {
  const r: SideBySideResult = {
    redisServer: { available: true, version: '7.0.15' },
    ...(withAof ? { redisAof: { available: true } } : {}),
    rounds: 1,
    requests: { plain: 1000, pipelined: 4000, redisFactor: 10 },
    samples: [],
    channel: [],
    errors: []
  }
  const rps: Partial<Record<SbsTarget, number>> = { redis: 10_000, replicated: 1_000, alone: 1_100, ...(withAof ? { 'redis-aof': 2_000 } : {}) }
  for (const [target, n] of Object.entries(rps) as [SbsTarget, number][]) {
    const run = { pipeline: 1, requests: 1000, ok: true, tests: ['SET', 'GET', 'INCR'].map((test) => ({ test, rps: n, p50Ms: 1, p99Ms: 2 })) }
    r.samples.push(...samplesOf(run, 'rsm', target, 1))
  }
  return r
}

describe('the durable redis-server column', () => {
  it('starts redis-server with an append-only file fsynced on every write, or with no persistence at all', () => {
    expect(redisPersistenceArgs('aof-always', '/tmp/x').join(' ')).toMatch(/--appendonly yes --appendfsync always/)
    expect(redisPersistenceArgs('aof-always', '/tmp/x').join(' ')).toMatch(/--dir \/tmp\/x/)
    expect(redisPersistenceArgs('none', '/tmp').join(' ')).toMatch(/--appendonly no/)
    expect(redisPersistenceArgs('none', '/tmp')).not.toContain('--appendfsync')
  })

  it('shows its req/s and the replicated / durable ratio in a column of their own', () => {
    const text = renderSideBySide(result(true), ['rsm']).join('\n')
    expect(text).toMatch(/REDIS AOF ALWAYS\s+REPL\/AOF/)
    // replicated 1,000 against 2,000: 0.50, at the end of the row, after the judged ratios
    expect(text).toMatch(/rsm\s+SET\s+10,000\s+1,000\s+1,100\s+0\.10 \(>= 0\.3\)\s+NOT MET\s+0\.91 \(>= 0\.9\)\s+MET\s+2,000\s+0\.50/)
  })

  it('leaves the goals judged against the default redis-server alone', () => {
    const withAof = judge(result(true), ['rsm'])
    const without = judge(result(false), ['rsm'])
    expect(withAof).toEqual(without)
    expect(withAof.find((v) => v.goal === 'rsm SET: replicated / redis-server')).toMatchObject({ value: 0.1, met: false })
  })

  it('says why the durable column is missing', () => {
    const r = result(false)
    r.redisAof = { available: false, why: 'redis-server did not accept connections' }
    expect(renderSideBySide(r, ['rsm']).join('\n')).toMatch(/appendfsync always not measured: redis-server did not accept connections/)
  })
})
