// A lab fault as the operator names it (isolate a host, cut a link) turned into the faults
// each agent applies to its own transport. The agents' filter delays and drops on the way
// out, so a link fault is set on both ends: each end handles the direction it sends.
import type { AgentFault } from '../../agent/control/protocol.js'
import type { LabFaultSpec } from './lab-state.js'

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

export function describeFault(spec: LabFaultSpec): string {
  switch (spec.kind) {
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
