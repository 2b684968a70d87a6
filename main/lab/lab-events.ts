// The lab's event stream: agent events with their timestamps mapped onto the console's
// clock, operator actions, and what the console itself notices (an agent going quiet).
export interface LabEvent {
  /** console clock, ms since the epoch */
  ts: number
  source: 'agent' | 'operator' | 'lab'
  host?: string
  type: string
  data: Record<string, unknown>
  /** for agent events: the agent's own numbering and clock */
  agent?: { seq: number; ts: number; incarnation: number }
}

/**
 * Maps one host's wall clock onto the console's. For a host that shares the console's clock
 * the offset is zero. Otherwise the offset is the smallest (arrival − agent timestamp) seen
 * over recent live events: the event with the least delay on the way bounds the skew best
 * (the same filter NTP applies to its samples).
 */
export class ClockMap {
  private readonly samples: number[] = []

  constructor(
    private readonly sameClock: boolean,
    private readonly window = 64
  ) {}

  sample(agentTs: number, arrivedAt: number): void {
    if (this.sameClock) return
    this.samples.push(arrivedAt - agentTs)
    if (this.samples.length > this.window) this.samples.shift()
  }

  get offsetMs(): number {
    return this.sameClock || this.samples.length === 0 ? 0 : Math.min(...this.samples)
  }

  toConsole(agentTs: number): number {
    return agentTs + this.offsetMs
  }
}
