// A lab fault as the operator names it (isolate b, cut a>b, loss a-b, delay a-b) turned
// into host-side network faults (main/faults/network.ts): which host applies what, against
// which lab addresses. Kept apart from the SSH plumbing so the mapping is tested on its own.
import type { NetworkFaultSpec } from '../faults/network.js'
import type { LabFaultSpec } from '../lab/lab-state.js'

export interface NetPart {
  /** the host that applies this piece, in its own kernel */
  slot: string
  spec: NetworkFaultSpec
}

export interface PlanContext {
  /** each lab host's address on the lab network */
  labAddress: (slot: string) => string
  /** every host of the lab */
  slots: readonly string[]
  /** the lab network, when the lab file names one */
  network?: string
  /** the console's address as `slot` sees it (clients come from there too) */
  consoleAddress: (slot: string) => string
  /** the interface `slot` reaches `peer` through (netem works on an interface) */
  devTo: (slot: string, peer: string) => string
}

/**
 * One piece per host that must act. A cut or a loss needs only one end: the host drops
 * both what it sends and what it receives, so the other end sees the same silence. A delay
 * is egress-only in netem, so both ends delay what they send.
 */
export function planNetworkFault(spec: Exclude<LabFaultSpec, { kind: 'pause' }>, ctx: PlanContext): NetPart[] {
  switch (spec.kind) {
    case 'isolate': {
      // the whole lab network when it is known; otherwise every peer and the clients' side
      const lab = ctx.network
        ? [ctx.network]
        : unique([...ctx.slots.filter((s) => s !== spec.host).map((s) => ctx.labAddress(s)), ctx.consoleAddress(spec.host)])
      return [{ slot: spec.host, spec: { kind: 'isolate', lab } }]
    }
    case 'cut':
      return [{ slot: spec.from, spec: { kind: 'cut', peer: ctx.labAddress(spec.to), direction: spec.oneWay ? 'out' : 'both' } }]
    case 'loss':
      return [{ slot: spec.from, spec: { kind: 'loss', percent: round2(spec.probability * 100), peers: [ctx.labAddress(spec.to)], direction: 'both' } }]
    case 'delay': {
      const one = (from: string, to: string): NetPart => {
        const peer = ctx.labAddress(to)
        const s: NetworkFaultSpec = { kind: 'netem', dev: ctx.devTo(from, peer), peers: [peer], delayMs: spec.ms }
        if (spec.jitterMs) s.jitterMs = spec.jitterMs
        return { slot: from, spec: s }
      }
      return [one(spec.from, spec.to), one(spec.to, spec.from)]
    }
  }
}

/** The ids network.ts accepts: [a-z0-9_]{1,16}; the tag keeps two labs on one host apart. */
export function partId(tag: string, faultNo: number, part: number): string {
  const id = `${tag}_${faultNo}_${part}`
  if (!/^[a-z0-9_]{1,16}$/.test(id)) throw new Error(`fault id ${JSON.stringify(id)} is not 1..16 of [a-z0-9_]`)
  return id
}

/** `ip route get` prints "<addr> dev <ifname> src ..." */
export function parseRouteDev(out: string): string | null {
  const m = /\bdev\s+(\S+)/.exec(out)
  return m ? m[1]! : null
}

function round2(n: number): number {
  return Math.round(n * 100) / 100
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)]
}
