// The transport filter: network faults applied by the agent to its own links, so the
// embedded local lab (no root, no nftables) can cut and slow the network and the same
// drills run anywhere. It judges whole messages, never bytes, so a dropped message can
// never desynchronise a framed stream.
import type { AgentFault } from '../control/protocol.js'

/** What a link asks before it sends or delivers a message. */
export interface LinkFilter {
  /** null: drop the message; otherwise send it after this many ms (0 = at once) */
  outbound(peer: string): number | null
  /** false: drop the received message */
  inbound(peer: string): boolean
}

/** A filter that lets everything through, for links without faults. */
export const PASS_FILTER: LinkFilter = {
  outbound: () => 0,
  inbound: () => true
}

export class TransportFilter implements LinkFilter {
  private readonly rules = new Map<string, AgentFault>()

  /** `random` is injectable so probabilistic drops are reproducible in tests. */
  constructor(private readonly random: () => number = Math.random) {}

  set(id: string, fault: AgentFault): void {
    this.rules.set(id, fault)
  }

  remove(id: string): boolean {
    return this.rules.delete(id)
  }

  clear(): void {
    this.rules.clear()
  }

  get size(): number {
    return this.rules.size
  }

  outbound(peer: string): number | null {
    let delay = 0
    for (const f of this.rules.values()) {
      switch (f.kind) {
        case 'isolate':
          return null
        case 'drop':
          if (f.direction !== 'in' && f.peers.includes(peer) && this.fires(f.probability)) return null
          break
        case 'delay':
          // delays add up, as chained netem qdiscs would
          if (f.peers.includes(peer)) delay += f.ms + (f.jitterMs ? this.random() * f.jitterMs : 0)
          break
      }
    }
    return delay
  }

  inbound(peer: string): boolean {
    for (const f of this.rules.values()) {
      if (f.kind === 'isolate') return false
      if (f.kind === 'drop' && f.direction !== 'out' && f.peers.includes(peer) && this.fires(f.probability)) return false
    }
    return true
  }

  private fires(probability: number | undefined): boolean {
    return probability === undefined || probability >= 1 || this.random() < probability
  }
}

/** Checks a fault from the control port field by field; returns an error message or null. */
export function validateFault(f: unknown): string | null {
  if (typeof f !== 'object' || f === null) return 'fault must be an object'
  const r = f as Record<string, unknown>
  const peersOk = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((p) => typeof p === 'string' && p.length > 0)
  switch (r.kind) {
    case 'isolate':
      return null
    case 'drop':
      if (!peersOk(r.peers)) return 'fault.peers must be a non-empty list of peer ids'
      if (r.direction !== 'in' && r.direction !== 'out' && r.direction !== 'both')
        return `fault.direction must be 'in', 'out' or 'both', got ${JSON.stringify(r.direction)}`
      if (r.probability !== undefined && (typeof r.probability !== 'number' || !(r.probability > 0 && r.probability <= 1))) {
        return `fault.probability must be a number in (0, 1], got ${JSON.stringify(r.probability)}`
      }
      return null
    case 'delay':
      if (!peersOk(r.peers)) return 'fault.peers must be a non-empty list of peer ids'
      if (typeof r.ms !== 'number' || !Number.isFinite(r.ms) || r.ms < 0 || r.ms > 60_000)
        return `fault.ms must be a number of milliseconds from 0 to 60000, got ${JSON.stringify(r.ms)}`
      if (r.jitterMs !== undefined && (typeof r.jitterMs !== 'number' || !Number.isFinite(r.jitterMs) || r.jitterMs < 0 || r.jitterMs > 60_000)) {
        return `fault.jitterMs must be a number of milliseconds from 0 to 60000, got ${JSON.stringify(r.jitterMs)}`
      }
      return null
    default:
      return `fault.kind must be 'drop', 'delay' or 'isolate', got ${JSON.stringify(r.kind)}`
  }
}
