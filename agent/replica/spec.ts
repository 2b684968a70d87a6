// Checks a replica `start` request field by field, so a console bug or a hand-written
// request gets an answer that says what is wrong instead of a crash deep in the runtime.
import type { ReplicaSpec } from '../context.js'

function endpoint(v: unknown, where: string): void {
  const e = v as { host?: unknown; port?: unknown } | null
  if (typeof e !== 'object' || e === null) throw new Error(`${where} must be {host, port}`)
  if (typeof e.host !== 'string' || e.host.length === 0) throw new Error(`${where}.host must be an address, got ${JSON.stringify(e.host)}`)
  if (typeof e.port !== 'number' || !Number.isInteger(e.port) || e.port < 0 || e.port > 65535)
    throw new Error(`${where}.port must be an integer from 0 to 65535, got ${JSON.stringify(e.port)}`)
}

export function checkReplicaSpec(spec: ReplicaSpec, guests: readonly string[]): void {
  const s = spec as unknown as Record<string, unknown>
  if (s.as !== 'primary' && s.as !== 'backup' && s.as !== 'joining' && s.as !== 'recover')
    throw new Error(`start.spec.as must be 'primary', 'backup', 'joining' or 'recover', got ${JSON.stringify(s.as)}`)
  if (typeof s.gen !== 'number' || !Number.isSafeInteger(s.gen) || s.gen < 1)
    throw new Error(`start.spec.gen must be a positive integer, got ${JSON.stringify(s.gen)}`)
  if (typeof s.guest !== 'string' || !guests.includes(s.guest))
    throw new Error(`start.spec.guest must be one of ${guests.join(', ')}, got ${JSON.stringify(s.guest)}`)
  if (s.mode !== 'rsm' && s.mode !== 'state-transfer') throw new Error(`start.spec.mode must be 'rsm' or 'state-transfer', got ${JSON.stringify(s.mode)}`)
  endpoint(s.channel, 'start.spec.channel')
  endpoint(s.service, 'start.spec.service')
  endpoint(s.disk, 'start.spec.disk')
  if (s.peer !== null) {
    const p = s.peer as { id?: unknown; channel?: unknown } | undefined
    if (typeof p !== 'object' || p === null || typeof p.id !== 'string' || p.id.length === 0) throw new Error('start.spec.peer must be null or {id, channel}')
    endpoint(p.channel, 'start.spec.peer.channel')
  } else if (s.as === 'primary') {
    // a primary without a backup would wait for acks forever; a lone replica starts as primary with a peer that is down
    throw new Error('start.spec.peer is required for a primary: name its backup')
  }
  const arb = s.arbiter as { kind?: unknown; endpoints?: unknown; prefix?: unknown } | undefined
  if (arb !== undefined) {
    if (typeof arb !== 'object' || arb === null || (arb.kind !== 'disk' && arb.kind !== 'etcd'))
      throw new Error(`start.spec.arbiter must be {kind:'disk'} or {kind:'etcd', endpoints}, got ${JSON.stringify(arb)}`)
    if (arb.kind === 'etcd') {
      const eps = arb.endpoints
      if (!Array.isArray(eps) || eps.length === 0 || !eps.every((e) => typeof e === 'string' && /^https?:\/\/[^\s]+$/.test(e))) {
        throw new Error(`start.spec.arbiter.endpoints must be a non-empty list of etcd client URLs like http://10.0.0.5:2379, got ${JSON.stringify(eps)}`)
      }
      if (arb.prefix !== undefined && (typeof arb.prefix !== 'string' || arb.prefix.length === 0))
        throw new Error('start.spec.arbiter.prefix must be a non-empty string')
    }
  }
  for (const f of ['readFastPath', 'noOutputRule'] as const)
    if (s[f] !== undefined && typeof s[f] !== 'boolean') throw new Error(`start.spec.${f} must be true or false, got ${JSON.stringify(s[f])}`)
  const t = s.timing as { heartbeatMs?: unknown; suspectMs?: unknown } | undefined
  if (typeof t !== 'object' || t === null) throw new Error('start.spec.timing must be {heartbeatMs, suspectMs}')
  if (typeof t.heartbeatMs !== 'number' || !(t.heartbeatMs >= 5 && t.heartbeatMs <= 10_000))
    throw new Error(`start.spec.timing.heartbeatMs must be from 5 to 10000 ms, got ${JSON.stringify(t.heartbeatMs)}`)
  if (typeof t.suspectMs !== 'number' || !(t.suspectMs > t.heartbeatMs && t.suspectMs <= 60_000))
    throw new Error(`start.spec.timing.suspectMs must be above heartbeatMs and at most 60000 ms, got ${JSON.stringify(t.suspectMs)}`)
}
