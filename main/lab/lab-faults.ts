// A lab fault as the operator names it (isolate a host, cut a link) turned into the faults
// each agent applies to its own transport. The agents' filter delays and drops on the way
// out, so a link fault is set on both ends: each end handles the direction it sends.
import type { AgentFault } from '../../agent/control/protocol.js'
import type { KernelFaultShare } from './lab-host.js'
import type { FaultSpec, LabFaultSpec } from './lab-state.js'

export interface AgentFaultPart {
  host: string
  fault: AgentFault
}

export function planAgentFaults(spec: LabFaultSpec): AgentFaultPart[] {
  switch (spec.kind) {
    case 'pause':
      return [] // a process fault: the host does it, not the agent's filter
    case 'isolate':
      return [{ host: spec.host, fault: { kind: 'isolate' } }]
    case 'cut':
      if (spec.oneWay) {
        // from → to only: the sender drops on the way out, the receiver on the way in
        return [
          { host: spec.from, fault: { kind: 'drop', peers: [spec.to], direction: 'out' } },
          { host: spec.to, fault: { kind: 'drop', peers: [spec.from], direction: 'in' } }
        ]
      }
      return [
        { host: spec.from, fault: { kind: 'drop', peers: [spec.to], direction: 'both' } },
        { host: spec.to, fault: { kind: 'drop', peers: [spec.from], direction: 'both' } }
      ]
    case 'loss':
      // each end drops what it sends, so each direction loses `probability` of its messages once
      return [
        { host: spec.from, fault: { kind: 'drop', peers: [spec.to], direction: 'out', probability: spec.probability } },
        { host: spec.to, fault: { kind: 'drop', peers: [spec.from], direction: 'out', probability: spec.probability } }
      ]
    case 'delay': {
      const d = (peer: string): AgentFault =>
        spec.jitterMs ? { kind: 'delay', peers: [peer], ms: spec.ms, jitterMs: spec.jitterMs } : { kind: 'delay', peers: [peer], ms: spec.ms }
      return [
        { host: spec.from, fault: d(spec.to) },
        { host: spec.to, fault: d(spec.from) }
      ]
    }
  }
}

export interface KernelSharePart {
  /** the lab slot whose machine applies this share */
  host: string
  share: KernelFaultShare
}

/**
 * The same fault for hosts that apply it in their kernels: one share per host that must act.
 * A cut or a loss needs only one end, which drops both what it sends and what it receives, so
 * the other end sees the same silence; a delay is egress-only in netem, so both ends delay
 * what they send. `addressOf(slot)` is the lab address of the machine playing the slot.
 */
export function planKernelShares(
  spec: Exclude<LabFaultSpec, { kind: 'pause' }>,
  slots: readonly string[],
  addressOf: (slot: string) => string
): KernelSharePart[] {
  switch (spec.kind) {
    case 'isolate':
      return [{ host: spec.host, share: { kind: 'isolate', peers: [...new Set(slots.filter((s) => s !== spec.host).map(addressOf))] } }]
    case 'cut':
      return [{ host: spec.from, share: { kind: 'cut', peer: addressOf(spec.to), direction: spec.oneWay ? 'out' : 'both' } }]
    case 'loss':
      return [{ host: spec.from, share: { kind: 'loss', peer: addressOf(spec.to), percent: Math.round(spec.probability * 10_000) / 100 } }]
    case 'delay': {
      const one = (from: string, to: string): KernelSharePart => ({
        host: from,
        share: { kind: 'delay', peer: addressOf(to), ms: spec.ms, ...(spec.jitterMs ? { jitterMs: spec.jitterMs } : {}) }
      })
      return [one(spec.from, spec.to), one(spec.to, spec.from)]
    }
  }
}

export function describeFault(spec: FaultSpec): string {
  switch (spec.kind) {
    case 'power':
      return `power cut ${spec.host}`
    case 'pause':
      return `pause ${spec.host}`
    case 'isolate':
      return `isolate ${spec.host}`
    case 'cut':
      return spec.oneWay ? `cut ${spec.from}→${spec.to}` : `cut ${spec.from}↔${spec.to}`
    case 'loss':
      return `loss ${Math.round(spec.probability * 100)}% ${spec.from}↔${spec.to}`
    case 'delay':
      return `delay ${spec.ms}ms ${spec.from}↔${spec.to}`
  }
}
