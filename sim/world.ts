// The simulator's world: a virtual clock, an event queue, and a network of links that
// drop, delay, reorder, duplicate and partition messages. Everything random comes from one
// seeded Prng, so a run is a pure function of its seed. The simulated lab (sim/lab/) runs
// the same world against real time, with the agents' own transport filters on its links.
import type { Prng } from '../agent/prng.js'
import type { LinkFilter } from '../agent/faults/filter.js'

interface Scheduled {
  at: number
  seq: number
  run: () => void
}

/** A binary heap ordered by (time, insertion order): equal times run in the order scheduled. */
export class EventQueue {
  private heap: Scheduled[] = []
  private seq = 0
  now = 0

  schedule(at: number, run: () => void): void {
    const item = { at: Math.max(at, this.now), seq: this.seq++, run }
    const h = this.heap
    h.push(item)
    let i = h.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(h[i], h[parent])) break
      ;[h[i], h[parent]] = [h[parent], h[i]]
      i = parent
    }
  }

  /** when the next event is due, if any */
  nextAt(): number | undefined {
    return this.heap[0]?.at
  }

  /** Move the clock to `t` when nothing is due before it (a world that follows real time). */
  advanceTo(t: number): void {
    if (t > this.now && !(this.heap.length > 0 && this.heap[0].at < t)) this.now = t
  }

  /** Runs the next event; false when nothing is left before `until`. */
  runNext(until: number): boolean {
    const h = this.heap
    if (h.length === 0 || h[0].at > until) return false
    const top = h[0]
    const last = h.pop()!
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l], h[m])) m = l
        if (r < h.length && before(h[r], h[m])) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m], h[i]]
        i = m
      }
    }
    this.now = top.at
    top.run()
    return true
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}

export interface LinkQuality {
  /** chance a message is lost */
  drop: number
  /** chance a message arrives twice */
  duplicate: number
  minDelay: number
  maxDelay: number
  /** in-order delivery (a TCP stream): delays never reorder, and nothing is duplicated */
  fifo: boolean
}

/**
 * Links between named endpoints. A cut link loses everything sent on it; a cut is
 * one-directional, so asymmetric partitions come for free.
 */
export class Network {
  private cuts = new Map<string, number>() // "from>to" -> how many faults cut it
  private lastArrival = new Map<string, number>()
  /** an endpoint's own transport filter (an agent's fault filter), judged as its links would */
  private readonly filters = new Map<string, LinkFilter>()
  sent = 0
  dropped = 0

  constructor(
    private readonly q: EventQueue,
    private readonly rng: Prng
  ) {}

  setFilter(endpoint: string, filter: LinkFilter | null): void {
    if (filter) this.filters.set(endpoint, filter)
    else this.filters.delete(endpoint)
  }

  /**
   * Send one message. `lost` (if given) hears of a message the network lost, for streams
   * that break rather than skip a message (a TCP connection).
   */
  send(from: string, to: string, quality: LinkQuality, deliver: () => void, lost?: () => void): void {
    this.sent++
    const key = `${from}>${to}`
    const filter = this.filters.get(from)
    // null: the sender's filter drops it; otherwise an added delay
    const extra = filter ? filter.outbound(to) : 0
    if (extra === null || this.cuts.has(key) || this.rng.chance(quality.drop)) {
      this.dropped++
      lost?.()
      return
    }
    const copies = !quality.fifo && this.rng.chance(quality.duplicate) ? 2 : 1
    for (let i = 0; i < copies; i++) {
      let at = this.q.now + extra + this.rng.int(quality.minDelay, quality.maxDelay)
      if (quality.fifo) {
        at = Math.max(at, this.lastArrival.get(key) ?? 0)
        this.lastArrival.set(key, at)
      }
      // a cut made while the message is in flight loses it too
      this.q.schedule(at, () => {
        if (this.cuts.has(key) || this.filters.get(to)?.inbound(from) === false) {
          this.dropped++
          lost?.()
        } else deliver()
      })
    }
  }

  cut(from: string, to: string): void {
    const key = `${from}>${to}`
    this.cuts.set(key, (this.cuts.get(key) ?? 0) + 1)
  }

  heal(from: string, to: string): void {
    const key = `${from}>${to}`
    const n = (this.cuts.get(key) ?? 0) - 1
    if (n <= 0) this.cuts.delete(key)
    else this.cuts.set(key, n)
  }

  healAll(): void {
    this.cuts.clear()
  }

  isCut(from: string, to: string): boolean {
    return this.cuts.has(`${from}>${to}`)
  }
}
