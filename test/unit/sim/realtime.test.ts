// The simulated lab's clock: virtual time follows real time × speed, in the bounds the
// contract allows, and events run in virtual-time order.
import { afterEach, describe, expect, it } from 'vitest'
import { RealtimeWorld } from '../../../sim/lab/realtime.js'
import { startSimLab } from '../../../main/lab/sim-lab.js'

const worlds: RealtimeWorld[] = []
afterEach(() => {
  while (worlds.length) worlds.pop()!.close()
})

describe('the real-time world', () => {
  it('refuses a speed outside 0.1..50 and names the bound', async () => {
    expect(() => new RealtimeWorld(1, 0)).toThrow(/simulation speed must be a number from 0.1 to 50 \(virtual ms per real ms\), got 0/)
    await expect(startSimLab({ guest: 'kv', mode: 'rsm', speed: 51 })).rejects.toThrow(/got 51/)
  })

  it('runs scheduled events in virtual-time order as real time passes, and at a new speed after setSpeed', async () => {
    const w = new RealtimeWorld(1, 50)
    worlds.push(w)
    const ran: string[] = []
    w.run(() => {
      w.q.schedule(w.q.now + 40, () => ran.push('second'))
      w.q.schedule(w.q.now + 20, () => ran.push('first'))
    })
    w.setSpeed(20)
    expect(w.speed).toBe(20)
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (ran.length === 2) {
          clearInterval(poll)
          resolve()
        }
      }, 5)
    })
    expect(ran).toEqual(['first', 'second'])
    expect(w.virtualNow()).toBeGreaterThanOrEqual(40)
  })
})
