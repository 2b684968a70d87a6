// The largest (or smallest) value seen within a sliding window of time, for the failure detector's own pauses and
// the core's guest sizes. Pure: `now` comes with every call. A monotonic queue: each entry beats every later one, so
// the head is the extreme and the queue stays short however many values come.

export class WindowExtreme {
  private readonly q: { at: number; value: number }[] = []

  constructor(
    /** how long a value counts */
    private readonly spanMs: number,
    private readonly kind: 'max' | 'min'
  ) {}

  /** The extreme of the values within the span, as of the last add or forget (undefined: none). */
  value(): number | undefined {
    return this.q[0]?.value
  }

  /** The value added last and when, unless a later value or the span has dropped it. */
  newest(): { at: number; value: number } | undefined {
    return this.q[this.q.length - 1]
  }

  add(now: number, value: number): void {
    this.forget(now)
    const q = this.q
    while (q.length > 0 && (this.kind === 'max' ? q[q.length - 1].value <= value : q[q.length - 1].value >= value)) q.pop()
    q.push({ at: now, value })
  }

  /** Drops the values older than the span. */
  forget(now: number): void {
    const q = this.q
    while (q.length > 0 && now - q[0].at > this.spanMs) q.shift()
  }
}
