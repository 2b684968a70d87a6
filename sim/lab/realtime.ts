// The simulator's world run against real time, for the simulated lab: virtual time advances
// as real time × speed, so an operator, the console's UI and real load clients can watch
// and drive it. Events run in virtual-time order as in the seeded simulator; what differs
// is only that the pump waits for real time to catch up with the next event.
import { performance } from 'node:perf_hooks'
import { Prng } from '../../agent/prng.js'
import { EventQueue, Network } from '../world.js'

export const MIN_SPEED = 0.1
export const MAX_SPEED = 50
/** events run per pump at most, so a burst cannot starve the real sockets of this process */
const PUMP_BUDGET = 20_000
/** longest real wait between pumps, so external input never waits long for the clock */
const MAX_WAIT_MS = 20

export function checkSpeed(x: number): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || x < MIN_SPEED || x > MAX_SPEED) {
    throw new Error(`simulation speed must be a number from ${MIN_SPEED} to ${MAX_SPEED} (virtual ms per real ms), got ${JSON.stringify(x)}`)
  }
  return x
}

export class RealtimeWorld {
  readonly q = new EventQueue()
  readonly rng: Prng
  readonly net: Network
  /** wall-clock ms at virtual time 0 (the guests' clock device reads epoch + virtual now) */
  readonly epoch = Date.now()
  private speedNow: number
  private baseReal = performance.now()
  private baseVirtual = 0
  private timer: NodeJS.Timeout | null = null
  private closed = false
  /** a handler that threw: reported, and the world goes on (one bad event must not stop the lab) */
  onError: (err: unknown) => void = (err) => console.error('simulated lab: an event failed:', err)

  constructor(seed: number, speed: number) {
    this.rng = new Prng(seed)
    this.net = new Network(this.q, this.rng.fork())
    this.speedNow = checkSpeed(speed)
    this.arm()
  }

  get speed(): number {
    return this.speedNow
  }

  setSpeed(x: number): void {
    checkSpeed(x)
    this.baseVirtual = this.virtualNow()
    this.baseReal = performance.now()
    this.speedNow = x
    this.arm()
  }

  virtualNow(): number {
    return this.baseVirtual + (performance.now() - this.baseReal) * this.speedNow
  }

  /** Run what is due, then `fn` at the current virtual time (input from outside: sockets, the control channel). */
  run<T>(fn: () => T): T {
    this.pump()
    try {
      return fn()
    } finally {
      this.arm()
    }
  }

  close(): void {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  private pump(): void {
    if (this.closed) return
    const until = this.virtualNow()
    for (let n = 0; n < PUMP_BUDGET; n++) {
      try {
        if (!this.q.runNext(until)) break
      } catch (err) {
        this.onError(err)
      }
    }
    this.q.advanceTo(until)
  }

  private arm(): void {
    if (this.closed) return
    if (this.timer) clearTimeout(this.timer)
    const next = this.q.nextAt()
    const wait = next === undefined ? MAX_WAIT_MS : Math.max(0, Math.min(MAX_WAIT_MS, (next - this.virtualNow()) / this.speedNow))
    this.timer = setTimeout(() => {
      this.timer = null
      this.pump()
      this.arm()
    }, wait)
  }
}
