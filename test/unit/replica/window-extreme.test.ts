import { describe, expect, it } from 'vitest'
import { WindowExtreme } from '../../../agent/replica/window-extreme.js'

describe('the extreme of a sliding window', () => {
  it('keeps the largest value of the span, and the next largest once it has aged out', () => {
    const w = new WindowExtreme(1000, 'max')
    expect(w.value()).toBeUndefined()
    w.add(0, 50)
    w.add(100, 120)
    w.add(200, 60)
    w.add(300, 30)
    expect(w.value()).toBe(120)
    w.forget(1100)
    expect(w.value()).toBe(120)
    w.forget(1101)
    expect(w.value()).toBe(60)
    w.forget(1301)
    expect(w.value()).toBeUndefined()
  })

  it('keeps the smallest for min, and its newest value until a smaller one replaces it', () => {
    const w = new WindowExtreme(1000, 'min')
    w.add(0, 10)
    w.add(100, 40)
    expect(w.newest()).toEqual({ at: 100, value: 40 })
    w.add(200, 20)
    expect(w.newest()).toEqual({ at: 200, value: 20 })
    expect(w.value()).toBe(10)
    w.add(1050, 30)
    expect(w.value()).toBe(20)
  })
})
