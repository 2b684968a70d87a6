import { describe, expect, it } from 'vitest'
import { DEFAULTS, parseBenchArgs } from '../../../main/bench/options.js'

describe('the scaling sweep options', () => {
  it('runs every series unless --scale-series names some, in the sweep’s own order', () => {
    expect(DEFAULTS.scaleSeries).toEqual(['clients', 'values', 'keys'])
    const o = parseBenchArgs(['--scale', '--scale-series', 'keys,values', '--scale-fill-seconds', '600'])
    expect(o.scaleSeries).toEqual(['values', 'keys'])
    expect(o.scaleFillSeconds).toBe(600)
  })

  it('names the series it knows when given another', () => {
    expect(() => parseBenchArgs(['--scale', '--scale-series', 'pages'])).toThrow(/'pages' is not one of clients, values, keys/)
  })
})
