// The drill condition language: what a step may wait for (`when:` / `once:`), judged on the
// lab status the console publishes. Deliberately small and exact (docs/drills.md):
//
//   condition := all ( "or" all )*            all := clause ( "and" clause )*
//   clause    := replica "is" [ "not" ] role          b is live · a is not primary
//              | replica "is" [ "not" ] "learning"    b is not learning
//              | metric op number [ unit ]             backup lag > 50ms · ops >= 2000
//   replica   := a | b            role := primary | backup | live | halted | joining | down
//   learning: the replica's failure detector is still coming down from its ceiling (a new peer, a new generation);
//             either way the clause holds only while the replica has a peer and reports its limit (an agent too old
//             to say, a replica down or live alone: neither "is learning" nor "is not learning")
//   op        := > | >= | < | <= | =
//   metric    := ops            operations the load completed so far
//              | ops/s          the load's throughput (recent window)
//              | lag            log entries the backup has not acknowledged
//              | backup lag     how long the Output Rule held the slowest recent output (ms)
//              | held outputs   outputs held by the Output Rule right now
//              | gen            the lab's generation
import type { LabStatus } from '../api/contract.js'

const ROLES = ['primary', 'backup', 'live', 'halted', 'joining', 'down'] as const
type Role = (typeof ROLES)[number]
type Op = '>=' | '<=' | '>' | '<' | '='

const METRICS = {
  ops: { unit: null, read: (s: LabStatus) => s.load.completed },
  'ops/s': { unit: null, read: (s: LabStatus) => s.load.opsPerSec },
  lag: { unit: null, read: (s: LabStatus) => s.channel?.lag ?? 0 },
  'backup lag': { unit: 'ms', read: (s: LabStatus) => s.channel?.holdMs.max ?? 0 },
  'held outputs': { unit: null, read: (s: LabStatus) => s.channel?.heldOutputs ?? 0 },
  gen: { unit: null, read: (s: LabStatus) => s.gen }
} as const
type Metric = keyof typeof METRICS

export type Clause =
  | { kind: 'role'; host: 'a' | 'b'; not: boolean; role: Role }
  | { kind: 'learning'; host: 'a' | 'b'; not: boolean }
  | { kind: 'metric'; metric: Metric; op: Op; value: number }

/** Any of `anyOf` holds when all of its clauses hold ("and" binds tighter than "or"). */
export interface Condition {
  anyOf: Clause[][]
}

/** Parses a condition; throws an Error whose message says what is wrong and what is allowed. */
export function parseCondition(text: string): Condition {
  return {
    anyOf: text
      .trim()
      .split(/\s+or\s+/)
      .map((alt) => alt.split(/\s+and\s+/).map((p) => parseClause(p.trim(), text)))
  }
}

function parseClause(c: string, whole: string): Clause {
  const role = /^(a|b)\s+is\s+(not\s+)?([a-z]+)$/.exec(c)
  if (role?.[3] === 'learning') return { kind: 'learning', host: role[1] as 'a' | 'b', not: !!role[2] }
  if (role) {
    if (!(ROLES as readonly string[]).includes(role[3]))
      throw new Error(`"${c}": a replica's role is one of ${ROLES.join(', ')}, or "learning" (got "${role[3]}")`)
    return { kind: 'role', host: role[1] as 'a' | 'b', not: !!role[2], role: role[3] as Role }
  }
  const m = /^([a-z/ ]+?)\s*(>=|<=|>|<|=)\s*(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(c)
  if (!m) {
    throw new Error(
      `cannot read the condition "${whole}": write "<replica> is <role>" (b is live) or "<metric> <op> <number>" (backup lag > 50ms), joined by "and" and "or"`
    )
  }
  const metric = m[1].trim()
  if (!Object.prototype.hasOwnProperty.call(METRICS, metric)) throw new Error(`"${c}": unknown metric "${metric}" (known: ${Object.keys(METRICS).join(', ')})`)
  const spec = METRICS[metric as Metric]
  let value = Number(m[3])
  const unit = m[4]
  if (spec.unit === 'ms') {
    if (unit !== 'ms' && unit !== 's') throw new Error(`"${c}": ${metric} is a time: give a unit, ms or s`)
    if (unit === 's') value *= 1000
  } else if (unit !== '') throw new Error(`"${c}": ${metric} is a count and takes no unit (got "${unit}")`)
  return { kind: 'metric', metric: metric as Metric, op: m[2] as Op, value }
}

/** Does the condition hold on this status? */
export function holds(cond: Condition, s: LabStatus): boolean {
  return cond.anyOf.some((all) => all.every((c) => clauseHolds(c, s)))
}

function clauseHolds(c: Clause, s: LabStatus): boolean {
  if (c.kind === 'role') {
    const h = s.hosts.find((x) => x.id === c.host)
    return (h?.role === c.role) !== c.not
  }
  if (c.kind === 'learning') {
    const limit = s.detection?.suspectLimit?.[c.host]
    return limit ? (limit.by === 'learning') !== c.not : false
  }
  const v = METRICS[c.metric].read(s)
  switch (c.op) {
    case '>':
      return v > c.value
    case '>=':
      return v >= c.value
    case '<':
      return v < c.value
    case '<=':
      return v <= c.value
    case '=':
      return v === c.value
  }
}
