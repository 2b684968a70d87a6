// `ftlab fault <kind> <target>` into a lab fault: which hosts, which link, which direction.
import type { LabFaultSpec } from '../lab/lab-state.js'
import type { OptValue } from './args.js'

export const LAB_HOSTS = ['a', 'b', 'disk'] as const

export type FaultCommand = { kind: 'power'; host: string } | { kind: 'fault'; spec: LabFaultSpec; forMs?: number }

function host(text: string, what: string): string {
  if (!(LAB_HOSTS as readonly string[]).includes(text)) throw new Error(`${what}: '${text}' is not a host of the lab (hosts: ${LAB_HOSTS.join(', ')})`)
  return text
}

function link(text: string, kind: string): { from: string; to: string; oneWay: boolean } {
  const m = /^([^->]+)(-|>)([^->]+)$/.exec(text)
  if (!m) throw new Error(`${kind} needs a link such as a-b (both ways) or a>b (a to b only), got '${text}'`)
  const from = host(m[1], kind)
  const to = host(m[3], kind)
  if (from === to) throw new Error(`${kind}: a link needs two different hosts, got '${text}'`)
  return { from, to, oneWay: m[2] === '>' }
}

export function faultFromArgs(kind: string, target: string, options: Record<string, OptValue>): FaultCommand {
  const forMs = typeof options.for === 'number' ? options.for : undefined
  const only = (allowed: string[]) => {
    for (const o of ['p', 'ms', 'jitter', 'for']) {
      if (o in options && !allowed.includes(o)) throw new Error(`--${o} does not apply to a ${kind} fault`)
    }
  }
  switch (kind) {
    case 'power':
      only([])
      return { kind: 'power', host: host(target, 'power') }
    case 'pause':
    case 'isolate':
      only(['for'])
      if (/[->]/.test(target)) throw new Error(`${kind} applies to a host, not a link; got '${target}'`)
      return { kind: 'fault', spec: { kind, host: host(target, kind) }, forMs }
    case 'cut': {
      only(['for'])
      const l = link(target, 'cut')
      return { kind: 'fault', spec: { kind: 'cut', ...l }, forMs }
    }
    case 'loss': {
      only(['for', 'p'])
      const l = link(target, 'loss')
      if (l.oneWay) throw new Error(`loss applies to both directions of a link; write ${l.from}-${l.to}`)
      if (typeof options.p !== 'number' || options.p <= 0) throw new Error('loss needs --p, the probability of dropping a message (0 < p <= 1)')
      return { kind: 'fault', spec: { kind: 'loss', from: l.from, to: l.to, probability: options.p }, forMs }
    }
    case 'delay': {
      only(['for', 'ms', 'jitter'])
      const l = link(target, 'delay')
      if (l.oneWay) throw new Error(`delay applies to both directions of a link; write ${l.from}-${l.to}`)
      if (typeof options.ms !== 'number' || options.ms <= 0) throw new Error('delay needs --ms, the delay each way in milliseconds')
      const spec: LabFaultSpec = { kind: 'delay', from: l.from, to: l.to, ms: options.ms }
      if (typeof options.jitter === 'number' && options.jitter > 0) spec.jitterMs = options.jitter
      return { kind: 'fault', spec, forMs }
    }
    default:
      throw new Error(`unknown fault kind '${kind}'`)
  }
}
