// The agent's event ring: a bounded history of what happened, each event numbered, so a
// console that restarts (or whose SSH forward dropped) resumes from the last seq it saw.
import type { AgentEvent } from './protocol.js'

export const DEFAULT_RING_CAPACITY = 10_000

export type EventListener = (ev: AgentEvent) => void

export class EventRing {
  private readonly buf: (AgentEvent | undefined)[]
  private nextSeq = 1
  private readonly listeners = new Set<EventListener>()

  constructor(
    readonly capacity: number = DEFAULT_RING_CAPACITY,
    private readonly now: () => number = Date.now
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`event ring capacity must be a positive integer, got ${capacity}`)
    this.buf = new Array(capacity)
  }

  /** The seq of the newest event (0 before the first). */
  get lastSeq(): number {
    return this.nextSeq - 1
  }

  /** The seq of the oldest event still held. */
  get firstSeq(): number {
    return Math.max(1, this.nextSeq - this.capacity)
  }

  emit(type: string, data: Record<string, unknown> = {}): AgentEvent {
    const ev: AgentEvent = { seq: this.nextSeq++, ts: this.now(), type, data }
    this.buf[ev.seq % this.capacity] = ev
    for (const l of this.listeners) {
      try {
        l(ev)
      } catch {
        // one broken subscriber must not stop the others or the emitter
      }
    }
    return ev
  }

  /**
   * Events with seq > `since` still in the ring, oldest first, at most `max` of them; `missed` counts those already
   * overwritten.
   */
  since(since: number, max = Infinity): { events: AgentEvent[]; missed: number } {
    const from = Math.max(since + 1, this.firstSeq)
    const events: AgentEvent[] = []
    for (let s = from; s < this.nextSeq && events.length < max; s++) events.push(this.buf[s % this.capacity]!)
    return { events, missed: Math.max(0, from - (since + 1)) }
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}
