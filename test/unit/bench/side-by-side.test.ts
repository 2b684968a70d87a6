import { describe, expect, it } from 'vitest'
import { cell, judge, median, renderSideBySide, samplesOf, type SideBySideResult } from '../../../main/bench/side-by-side.js'
import { renderScale, scaleSvg, type ScaleSeries } from '../../../main/bench/scale.js'

function result(): SideBySideResult {
  const r: SideBySideResult = {
    redisServer: { available: true, version: '7.0.15' },
    rounds: 3,
    requests: { plain: 1000, pipelined: 4000, redisFactor: 10 },
    samples: [],
    channel: [],
    errors: []
  }
  const rps = { redis: [10_000, 12_000, 11_000], replicated: [4_000, 3_000, 3_500], alone: [3_800, 3_900, 3_700] }
  for (const target of ['redis', 'replicated', 'alone'] as const) {
    for (let round = 1; round <= 3; round++) {
      const run = {
        pipeline: 1,
        requests: 1000,
        ok: true,
        tests: ['SET', 'GET', 'INCR'].map((test) => ({ test, rps: rps[target][round - 1], p50Ms: 1, p99Ms: 2 }))
      }
      r.samples.push(...samplesOf(run, 'rsm', target, round))
    }
  }
  r.channel.push({ mode: 'rsm', test: 'SET', pipeline: 1, round: 1, bytesPerOp: 60 }, { mode: 'rsm', test: 'SET', pipeline: 1, round: 2, bytesPerOp: 80 })
  r.channel.push({ mode: 'state-transfer', test: 'SET', pipeline: 1, round: 1, bytesPerOp: 210 })
  return r
}

describe('the side-by-side table', () => {
  it('takes the median of the rounds for each cell', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1])).toBe(2.5)
    expect(median([])).toBeNull()
    const r = result()
    expect(cell(r, 'redis', null, 'SET', 1)).toBe(11_000)
    expect(cell(r, 'replicated', 'rsm', 'GET', 1)).toBe(3_500)
    expect(cell(r, 'replicated', 'rsm', 'GET', 16)).toBeNull()
  })

  it('judges each goal from the medians and leaves a goal without figures unjudged', () => {
    const v = judge(result(), ['rsm', 'state-transfer'])
    const get = (goal: string) => v.find((x) => x.goal === goal)!
    expect(get('rsm SET: replicated / redis-server')).toMatchObject({ met: true })
    expect(get('rsm SET: replicated / redis-server').value).toBeCloseTo(3500 / 11000)
    expect(get('rsm SET: replicated / alone')).toMatchObject({ met: true })
    expect(get('rsm SET -P 16: replicated / redis-server')).toMatchObject({ value: null, met: null })
    // median of 60 and 80 is 70: one byte over the request's 45 + 24
    expect(get('rsm logging channel bytes per SET')).toMatchObject({ value: 70, met: false })
    expect(get('state-transfer / rsm bytes per SET')).toMatchObject({ value: 3, met: false })
  })

  it('prints MET and NOT MET beside the figures, and why redis-server was not measured', () => {
    const r = result()
    const text = renderSideBySide(r, ['rsm']).join('\n')
    expect(text).toMatch(/rsm\s+SET\s+11,000\s+3,500\s+3,800\s+0\.32 \(>= 0\.3\)\s+MET/)
    expect(text).toMatch(/NOT MET/)
    r.redisServer = { available: false, why: 'redis-server is not on the PATH' }
    expect(renderSideBySide(r, ['rsm']).join('\n')).toMatch(/redis-server not measured: redis-server is not on the PATH/)
  })
})

describe('the scaling report', () => {
  const series: ScaleSeries[] = [
    {
      name: 'clients',
      what: 'clients',
      points: [
        { x: 1, rps: 100, p99Ms: 5, maxLagEntries: 1 },
        { x: 16, rps: 900, p99Ms: 20, maxLagEntries: 12 }
      ]
    },
    { name: 'keys', what: 'keys', points: [{ x: 1000, rps: 800, p99Ms: 9, maxLagEntries: 3 }], stoppedAt: 'stopped at 10,000 of 1,000,000 keys' }
  ]
  it('prints one table per series and says where the state stopped growing', () => {
    const text = renderScale(series).join('\n')
    expect(text).toMatch(/CLIENTS\s+REQ\/S\s+p99 ms\s+BACKUP LAG/)
    expect(text).toMatch(/16\s+900\s+20\.0\s+12/)
    expect(text).toMatch(/stopped at 10,000 of 1,000,000 keys/)
  })

  it('plots each series as a panel with a throughput and a p99 line', () => {
    const svg = scaleSvg(series, 'test')
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg.match(/<polyline/g)).toHaveLength(4)
    expect(svg).toContain('>clients<')
  })

  it('spans each x axis over the points measured, with short ticks for thousands and millions', () => {
    const keys: ScaleSeries = {
      name: 'keys',
      what: 'keys',
      points: [1000, 10_000, 100_000, 1_000_000].map((x) => ({ x, rps: 1000, p99Ms: 5, maxLagEntries: 1 }))
    }
    const svg = scaleSvg([keys], 'test')
    const ticks = [...svg.matchAll(/<text x="([0-9.]+)" y="[0-9.]+" font-size="9" text-anchor="middle">([^<]+)<\/text>/g)].map((m) => [Number(m[1]), m[2]])
    expect(ticks.map((t) => t[1])).toEqual(['1k', '10k', '100k', '1M'])
    // the first point on the frame's left edge, the last on its right one, evenly between on the log scale
    const frame = /<rect x="([0-9.]+)" y="[0-9.]+" width="([0-9.]+)"/.exec(svg)!
    const [left, width] = [Number(frame[1]), Number(frame[2])]
    expect(ticks[0][0]).toBeCloseTo(left, 0)
    expect(ticks[3][0]).toBeCloseTo(left + width, 0)
    expect((ticks[1][0] as number) - (ticks[0][0] as number)).toBeCloseTo((ticks[2][0] as number) - (ticks[1][0] as number), 0)
  })
})
