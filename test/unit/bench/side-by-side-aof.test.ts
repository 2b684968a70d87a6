// The side-by-side report's writes at matched durability: redis-server with appendfsync always
// against kv at its default (shown, never judged), and kv with appendfsync no against the
// in-memory redis-server (judged against the same thresholds, counted apart from the goals).
import { describe, expect, it } from 'vitest'
import { judge, redisPersistenceArgs, renderSideBySide, samplesOf, type SbsTarget, type SideBySideResult } from '../../../main/bench/side-by-side.js'

function result(withAof: boolean, nofsync?: number): SideBySideResult {
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
  if (nofsync !== undefined) {
    const run = { pipeline: 1, requests: 1000, ok: true, tests: ['SET', 'INCR'].map((test) => ({ test, rps: nofsync, p50Ms: 1, p99Ms: 2 })) }
    r.samples.push(...samplesOf(run, 'rsm', 'replicated-nofsync', 1))
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

  it('shows its req/s and the replicated / durable ratio in a table of the writes, apart from the judged one', () => {
    const text = renderSideBySide(result(true), ['rsm']).join('\n')
    // the goals' table ends at its verdicts
    expect(text).toMatch(/^rsm\s+SET\s+10,000\s+1,000\s+1,100\s+0\.10 \(>= 0\.3\)\s+NOT MET\s+0\.91 \(>= 0\.9\)\s+MET\s*$/m)
    expect(text).toMatch(/REDIS AOF ALWAYS\s+FT REPLICATED\s+RATIO/)
    // no appendfsync-no run: its cells are empty; replicated 1,000 against 2,000: 0.50
    expect(text).toMatch(/^rsm\s+SET\s+10,000\s+-\s+-\s+n\/a\s+2,000\s+1,000\s+0\.50\s*$/m)
    // GET touches no disk: it is not in the writes' table
    expect(text).not.toMatch(/^rsm\s+GET\s+10,000\s+-/m)
    expect(text).not.toMatch(/like for like/)
  })

  it('judges kv with appendfsync no against the in-memory redis-server, counted apart from the goals', () => {
    const v = judge(result(true, 4_000), ['rsm'])
    const like = v.filter((x) => x.kind === 'like-for-like')
    expect(like.map((x) => x.goal)).toEqual(['rsm SET: replicated, appendfsync no / redis-server', 'rsm INCR: replicated, appendfsync no / redis-server'])
    expect(like[0]).toMatchObject({ value: 0.4, target: '>= 0.3', met: true })
    // the goals themselves are those of a run without the column
    expect(v.filter((x) => x.kind === undefined)).toEqual(judge(result(true), ['rsm']))
    const text = renderSideBySide(result(true, 4_000), ['rsm']).join('\n')
    expect(text).toMatch(/^rsm\s+SET\s+10,000\s+4,000\s+0\.40 \(>= 0\.3\)\s+MET\s+2,000\s+1,000\s+0\.50\s*$/m)
    expect(text).toMatch(/^rsm\s+INCR\s+10,000\s+4,000\s+0\.40 \(>= 0\.3\)\s+MET/m)
    expect(text).toMatch(/like for like, in memory: 2 of 2 met/)
    // 'goals met' counts issue 9's goals only: SET, GET, INCR / redis-server not met, / alone met
    expect(text).toMatch(/goals met: 3 of 6 judged/)
    // at 2,000 the in-memory ratio is 0.20: not met
    expect(renderSideBySide(result(true, 2_000), ['rsm']).join('\n')).toMatch(/like for like, in memory: 0 of 2 met/)
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
