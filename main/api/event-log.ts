// The console's event stream as a backend keeps it: every event numbered with a
// console-wide seq, a bounded ring so a reconnecting page can catch up (events.since),
// and live listeners. Shared by the real and the simulated backend.
import type { ApiEvent, EventsSince } from './contract.js'

/** An event before it has its number. */
export type UnnumberedEvent = ApiEvent extends infer E ? (E extends ApiEvent ? Omit<E, 'seq'> : never) : never

export class ApiEventLog {
  private ring: ApiEvent[] = []
  private lastSeq = 0
  private readonly listeners = new Set<(ev: ApiEvent) => void>()

  constructor(private readonly capacity = 10_000) {}

  get seq(): number {
    return this.lastSeq
  }

  publish(ev: UnnumberedEvent): void {
    const numbered = { ...ev, seq: ++this.lastSeq } as ApiEvent
    this.ring.push(numbered)
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity)
    for (const l of this.listeners) {
      try {
        l(numbered)
      } catch {
        // a failing listener (a closed connection) must not stop the others
      }
    }
  }

  since(since: number): EventsSince {
    const first = this.ring.length ? this.ring[0].seq : this.lastSeq + 1
    const events = this.ring.filter((e) => e.seq > since)
    return { events, seq: this.lastSeq, truncated: since + 1 < first && since < this.lastSeq }
  }

  subscribe(listener: (ev: ApiEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  unsubscribeAll(): void {
    this.listeners.clear()
  }
}
