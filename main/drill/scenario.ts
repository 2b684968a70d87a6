// Drill scenario files: YAML read with positions, checked field by field into a Scenario.
//
// Every problem is reported as `file:line:col: field.path: what is wrong (got …)`, with the
// position of the value at fault (or of its parent when the field is missing), so an operator
// editing a copy of a built-in drill lands on the right line. The format and the condition
// language are documented in docs/drills.md; keep the two in step.
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode, type Pair, type YAMLMap } from 'yaml'
import {
  EXPERIMENTS,
  GUESTS,
  HOST_IDS,
  LINKS,
  MODES,
  REPLICA_IDS,
  type Experiment,
  type FaultTarget,
  type GuestName,
  type HostId,
  type ReplicationMode
} from '../api/contract.js'
import { parseCondition, type Condition } from './condition.js'

export const DRILL_LAB_KINDS = ['local', 'simulated', 'remote'] as const
export type DrillLabKind = (typeof DRILL_LAB_KINDS)[number]

/** A duration range in ms; a single value has lo === hi. Repeats draw from it. */
export interface Range {
  lo: number
  hi: number
}

export type Trigger =
  { kind: 'at'; at: Range } | { kind: 'after-ops'; ops: number } | { kind: 'after'; after: Range } | { kind: 'when'; cond: Condition; text: string }

export type DrillFaultKind = 'power' | 'pause' | 'isolate' | 'cut' | 'delay' | 'loss'

export type Action =
  | { kind: 'fault'; fault: DrillFaultKind; target: FaultTarget; forMs: number; direction?: 'both' | 'forward' | 'backward'; ms?: number; probability?: number }
  | { kind: 'heal'; target: FaultTarget | 'all' }
  | { kind: 'restore'; onto?: string }
  | { kind: 'power-on'; host: HostId }
  | { kind: 'wait'; wait: Range }
  | { kind: 'stop-load' }
  /** a step with only a trigger: the drill waits for it and goes on */
  | { kind: 'checkpoint' }

export interface Step {
  trigger: Trigger | null
  action: Action
  /** how long a trigger may take before the drill fails ("b never became live within 30 s") */
  withinMs: number
  /** 1-based line in the scenario file */
  line: number
}

export type Expectation =
  | { kind: 'failover'; withinMs: number }
  | { kind: 'no-lost-writes' }
  | { kind: 'linearizable' }
  | { kind: 'exactly-once' }
  | { kind: 'one-live' }
  | { kind: 'bank-total' }
  | { kind: 'nobody-live' }
  | { kind: 'throughput'; backTo: number; withinMs: number }
  | { kind: 'end-roles'; roles: Partial<Record<'a' | 'b', string>> }
  | { kind: 'detected'; what: 'lost-writes' | 'stale-read' }
  | { kind: 'bytes-per-op' }

export interface Scenario {
  name: string
  title: string
  explain: string
  lab: {
    kind: DrillLabKind | null
    /** remote labs: the lab's name (as deployed) */
    remote: string | null
    guest: GuestName
    /** more than one: the workload and steps run once per mode, and bytes per op are compared */
    modes: ReplicationMode[]
    timing: { heartbeatMs: number; suspectMs: number } | null
    arbiter: 'disk' | 'etcd'
    etcd: string[] | null
    experiments: Experiment[]
  }
  workload: {
    clients: number
    keys: number
    seconds: number
    /** extra read-only clients that talk to one replica only, also after it failed (the read-fast-path drill's stale reader) */
    readers?: { on: 'a' | 'b'; clients: number }
  }
  steps: Step[]
  expect: Expectation[]
  /** the file's text, for the run and its report */
  source: string
  file: string
}

export const DEFAULT_STEP_WITHIN_MS = 30_000
const DEFAULT_FAULT_FOR_MS = 60_000

/** A scenario problem, at a place in the file. `message` is the whole line: file:line:col: field: problem. */
export class ScenarioError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    readonly field: string,
    readonly problem: string
  ) {
    super(`${file}:${line}:${col}: ${field ? `${field}: ` : ''}${problem}`)
    this.name = 'ScenarioError'
  }
}

/** Reads a scenario; throws ScenarioError naming file, line, column and field of the first problem. */
export function parseScenario(text: string, file: string): Scenario {
  const errors = checkScenario(text, file)
  if (!errors.ok) throw errors.errors[0]
  return errors.scenario
}

/** Reads a scenario, collecting every problem it can find (YAML syntax errors stop it). */
export function checkScenario(text: string, file: string): { ok: true; scenario: Scenario } | { ok: false; errors: ScenarioError[] } {
  const lc = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const pos = lc.linePos(e.pos[0])
        const msg = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')
        return new ScenarioError(file, pos.line, pos.col, '', `YAML syntax: ${msg}`)
      })
    }
  }
  const r = new Reader(file, lc)
  const scenario = r.scenario(doc.contents as YamlNode | null, text)
  if (r.errors.length > 0 || !scenario) return { ok: false, errors: r.errors }
  return { ok: true, scenario }
}

// ---------------------------------------------------------------------------------------

/** Thrown inside the reader to abandon one field; collected as the scenario's errors. */
class Stop extends Error {}

const FAULT_KINDS: readonly DrillFaultKind[] = ['power', 'pause', 'isolate', 'cut', 'delay', 'loss']
const HOST_FAULTS: readonly DrillFaultKind[] = ['power', 'pause', 'isolate']
const TARGETS = [...HOST_IDS, ...LINKS] as const
const ACTIONS = ['fault', 'heal', 'restore', 'power-on', 'wait', 'stop-load'] as const
const TRIGGERS = ['at', 'after', 'when', 'once'] as const
const EXPECTATIONS = [
  'failover',
  'no-lost-writes',
  'linearizable',
  'exactly-once',
  'one-live',
  'bank-total',
  'nobody-live',
  'throughput',
  'end-roles',
  'lost-writes',
  'stale-read',
  'bytes-per-op'
] as const
const ROLES = ['primary', 'backup', 'live', 'halted', 'down'] as const

const list = (xs: readonly string[]): string => xs.join(', ')
const got = (v: unknown): string => (v === null || v === undefined ? 'nothing' : typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v))

class Reader {
  readonly errors: ScenarioError[] = []

  constructor(
    private readonly file: string,
    private readonly lc: LineCounter
  ) {}

  private at(node: YamlNode | null | undefined, parent?: YamlNode | null): { line: number; col: number } {
    const range = node?.range ?? parent?.range
    return range ? this.lc.linePos(range[0]) : { line: 1, col: 1 }
  }

  /** Records a problem and abandons the field. */
  fail(node: YamlNode | null | undefined, field: string, problem: string, parent?: YamlNode | null): never {
    const p = this.at(node, parent)
    this.errors.push(new ScenarioError(this.file, p.line, p.col, field, problem))
    throw new Stop()
  }

  /** Runs one field's reading; a problem in it is recorded and the rest goes on. */
  field<T>(f: () => T): T | undefined {
    try {
      return f()
    } catch (err) {
      if (err instanceof Stop) return undefined
      throw err
    }
  }

  map(
    node: YamlNode | null | undefined,
    field: string,
    known: readonly string[],
    parent?: YamlNode | null
  ): Map<string, { key: YamlNode; value: YamlNode | null }> {
    if (!node || !isMap(node)) this.fail(node, field, `must be a mapping of ${list(known)} (got ${describeNode(node)})`, parent)
    const out = new Map<string, { key: YamlNode; value: YamlNode | null }>()
    for (const pair of (node as YAMLMap).items as Pair<YamlNode, YamlNode | null>[]) {
      const k = isScalar(pair.key) ? String(pair.key.value) : null
      const where = field ? `${field}.${k}` : String(k)
      if (k === null || !known.includes(k)) this.fail(pair.key, where, `unknown field (known here: ${list(known)})`)
      out.set(k, { key: pair.key, value: pair.value })
    }
    return out
  }

  need(m: Map<string, { key: YamlNode; value: YamlNode | null }>, name: string, field: string, parent: YamlNode | null | undefined): YamlNode {
    const e = m.get(name)
    if (!e) this.fail(null, field, 'is missing', parent)
    if (e.value === null || (isScalar(e.value) && e.value.value === null)) this.fail(e.key, field, 'has no value')
    return e.value
  }

  str(node: YamlNode, field: string, test?: (s: string) => boolean, what = 'a string'): string {
    const v = isScalar(node) ? node.value : undefined
    if (typeof v !== 'string' || v.trim() === '' || (test && !test(v))) this.fail(node, field, `must be ${what} (got ${describeNode(node)})`)
    return v
  }

  oneOf<T extends string>(node: YamlNode, field: string, choices: readonly T[]): T {
    const v = isScalar(node) ? node.value : undefined
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v))
      this.fail(node, field, `must be one of ${list(choices)} (got ${describeNode(node)})`)
    return v as T
  }

  int(node: YamlNode, field: string, lo: number, hi: number): number {
    const v = isScalar(node) ? node.value : undefined
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi)
      this.fail(node, field, `must be an integer from ${lo} to ${hi} (got ${describeNode(node)})`)
    return v
  }

  fraction(node: YamlNode, field: string): number {
    const v = isScalar(node) ? node.value : undefined
    if (typeof v !== 'number' || !(v > 0 && v <= 1)) this.fail(node, field, `must be a number above 0 and at most 1 (got ${describeNode(node)})`)
    return v
  }

  /** "3s", "500ms", 2000 (ms) */
  duration(node: YamlNode, field: string, minMs = 1, maxMs = 3_600_000): number {
    const v = isScalar(node) ? node.value : undefined
    const ms = typeof v === 'number' ? v : typeof v === 'string' ? durationMs(v) : null
    if (ms === null || !Number.isFinite(ms)) this.fail(node, field, `must be a duration like 500ms, 3s or 2m (got ${describeNode(node)})`)
    if (ms < minMs || ms > maxMs) this.fail(node, field, `must be from ${fmt(minMs)} to ${fmt(maxMs)} (got ${describeNode(node)})`)
    return Math.round(ms)
  }

  /** "3s" or "2s..5s": repeats draw a value from the range */
  range(node: YamlNode, field: string, minMs = 0): Range {
    const v = isScalar(node) ? node.value : undefined
    if (typeof v === 'string' && v.includes('..')) {
      const [a, b] = v.split('..')
      const lo = durationMs(a)
      const hi = durationMs(b)
      if (lo === null || hi === null) this.fail(node, field, `must be a duration or a range like 2s..5s (got ${describeNode(node)})`)
      if (lo < minMs || hi < lo) this.fail(node, field, `the range must run from low to high, from at least ${fmt(minMs)} (got ${describeNode(node)})`)
      return { lo, hi }
    }
    const ms = this.duration(node, field, minMs === 0 ? 0 : minMs)
    return { lo: ms, hi: ms }
  }

  scenario(root: YamlNode | null, source: string): Scenario | null {
    const top = ['name', 'title', 'explain', 'lab', 'workload', 'steps', 'expect'] as const
    let m: Map<string, { key: YamlNode; value: YamlNode | null }>
    try {
      m = this.map(root, '', top)
    } catch (err) {
      if (err instanceof Stop) return null
      throw err
    }
    const name = this.field(() =>
      this.str(this.need(m, 'name', 'name', root), 'name', (s) => /^[a-z0-9][a-z0-9-]{0,63}$/.test(s), 'a name of lowercase letters, digits and "-"')
    )
    const title = this.field(() => this.str(this.need(m, 'title', 'title', root), 'title'))
    const explain = this.field(() => this.str(this.need(m, 'explain', 'explain', root), 'explain').trim())
    const lab = this.field(() => this.lab(this.need(m, 'lab', 'lab', root)))
    const workload = this.field(() => this.workload(this.need(m, 'workload', 'workload', root)))
    const steps = this.field(() => this.steps(this.need(m, 'steps', 'steps', root)))
    const expect = this.field(() => this.expectations(this.need(m, 'expect', 'expect', root), lab ?? null))
    if (this.errors.length > 0 || !name || !title || !explain || !lab || !workload || !steps || !expect) return null
    return { name, title, explain, lab, workload, steps, expect, source, file: this.file }
  }

  private lab(node: YamlNode): Scenario['lab'] {
    const m = this.map(node, 'lab', ['kind', 'remote', 'guest', 'mode', 'timing', 'arbiter', 'etcd', 'experiments'])
    const get = (k: string) => m.get(k)?.value ?? null
    const kind = get('kind') ? this.oneOf(get('kind')!, 'lab.kind', DRILL_LAB_KINDS) : null
    const remote = get('remote') ? this.str(get('remote')!, 'lab.remote', (s) => /^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/.test(s), 'a lab name') : null
    if (kind === 'remote' && !remote) this.fail(null, 'lab.remote', 'is missing: a remote drill names the deployed lab it runs on', node)
    const guest = get('guest') ? this.oneOf(get('guest')!, 'lab.guest', GUESTS) : 'kv'
    let modes: ReplicationMode[] = ['rsm']
    const mode = get('mode')
    if (mode && isSeq(mode)) {
      modes = mode.items.map((it, i) => this.oneOf(it as YamlNode, `lab.mode[${i}]`, MODES))
      if (modes.length === 0 || new Set(modes).size !== modes.length) this.fail(mode, 'lab.mode', `must name each of ${list(MODES)} at most once`)
    } else if (mode) modes = [this.oneOf(mode, 'lab.mode', MODES)]
    let timing: Scenario['lab']['timing'] = null
    const t = get('timing')
    if (t) {
      const tm = this.map(t, 'lab.timing', ['heartbeat', 'suspect'])
      const heartbeatMs = this.duration(this.need(tm, 'heartbeat', 'lab.timing.heartbeat', t), 'lab.timing.heartbeat', 5, 10_000)
      const sNode = this.need(tm, 'suspect', 'lab.timing.suspect', t)
      const suspectMs = this.duration(sNode, 'lab.timing.suspect', 20, 60_000)
      if (suspectMs <= heartbeatMs) this.fail(sNode, 'lab.timing.suspect', `must be longer than the heartbeat (${fmt(heartbeatMs)})`)
      timing = { heartbeatMs, suspectMs }
    }
    const arbiter = get('arbiter') ? this.oneOf(get('arbiter')!, 'lab.arbiter', ['disk', 'etcd'] as const) : 'disk'
    let etcd: string[] | null = null
    const e = get('etcd')
    if (e) {
      if (!isSeq(e) || e.items.length === 0) this.fail(e, 'lab.etcd', `must be a list of etcd client URLs (got ${describeNode(e)})`)
      etcd = e.items.map((it, i) => this.str(it as YamlNode, `lab.etcd[${i}]`, (s) => /^https?:\/\/\S+$/.test(s), 'an http:// or https:// URL'))
    }
    if (arbiter === 'etcd' && kind === 'simulated')
      this.fail(get('arbiter'), 'lab.arbiter', 'etcd is for the local and remote labs (the simulated lab has no etcd)')
    if (etcd && arbiter !== 'etcd') this.fail(e, 'lab.etcd', 'applies only with arbiter: etcd')
    let experiments: Experiment[] = []
    const x = get('experiments')
    if (x) {
      if (!isSeq(x)) this.fail(x, 'lab.experiments', `must be a list of ${list(EXPERIMENTS)} (got ${describeNode(x)})`)
      experiments = x.items.map((it, i) => this.oneOf(it as YamlNode, `lab.experiments[${i}]`, EXPERIMENTS))
    }
    return { kind, remote, guest, modes, timing, arbiter, etcd, experiments }
  }

  private workload(node: YamlNode): Scenario['workload'] {
    const m = this.map(node, 'workload', ['clients', 'keys', 'seconds', 'readers'])
    const clients = m.get('clients')?.value ? this.int(m.get('clients')!.value!, 'workload.clients', 1, 256) : 4
    const keys = m.get('keys')?.value ? this.int(m.get('keys')!.value!, 'workload.keys', 1, 1_000_000) : 40
    const seconds = this.int(this.need(m, 'seconds', 'workload.seconds', node), 'workload.seconds', 1, 3600)
    const r = m.get('readers')?.value
    if (!r) return { clients, keys, seconds }
    const rm = this.map(r, 'workload.readers', ['on', 'clients'])
    const on = this.oneOf(this.need(rm, 'on', 'workload.readers.on', r), 'workload.readers.on', REPLICA_IDS)
    const readers = rm.get('clients')?.value ? this.int(rm.get('clients')!.value!, 'workload.readers.clients', 1, 64) : 2
    return { clients, keys, seconds, readers: { on, clients: readers } }
  }

  private steps(node: YamlNode): Step[] {
    if (!isSeq(node)) this.fail(node, 'steps', `must be a list of steps (got ${describeNode(node)})`)
    const out: Step[] = []
    node.items.forEach((it, i) => {
      const s = this.field(() => this.step(it as YamlNode, `steps[${i}]`))
      if (s) out.push(s)
    })
    return out
  }

  private step(node: YamlNode, f: string): Step {
    const m = this.map(node, f, [...TRIGGERS, ...ACTIONS, 'within'])
    const triggers = TRIGGERS.filter((k) => m.has(k))
    const actions = ACTIONS.filter((k) => m.has(k))
    if (triggers.length > 1) this.fail(m.get(triggers[1])!.key, `${f}.${triggers[1]}`, `a step has at most one trigger (it has ${list(triggers)})`)
    if (actions.length > 1 || (actions.length === 0 && triggers.length === 0))
      this.fail(
        actions.length ? m.get(actions[1])!.key : null,
        f,
        `a step does one of ${list(ACTIONS)}, or waits for a trigger (${list(TRIGGERS)}) alone (it has ${actions.length ? list(actions) : 'neither'})`,
        node
      )
    let trigger: Trigger | null = null
    const tk = triggers[0]
    if (tk) {
      const v = this.need(m, tk, `${f}.${tk}`, node)
      if (tk === 'at') trigger = { kind: 'at', at: this.range(v, `${f}.at`) }
      else if (tk === 'after') {
        const s = isScalar(v) ? v.value : undefined
        const ops = typeof s === 'string' ? /^\s*(\d+)\s*ops?\s*$/.exec(s) : null
        trigger = ops ? { kind: 'after-ops', ops: Number(ops[1]) } : { kind: 'after', after: this.range(v, `${f}.after`) }
      } else {
        const text = this.str(v, `${f}.${tk}`)
        try {
          trigger = { kind: 'when', cond: parseCondition(text), text }
        } catch (err) {
          this.fail(v, `${f}.${tk}`, (err as Error).message)
        }
      }
    }
    const withinMs = m.get('within')?.value ? this.duration(m.get('within')!.value!, `${f}.within`, 100) : DEFAULT_STEP_WITHIN_MS
    if (m.has('within') && (!trigger || trigger.kind !== 'when'))
      this.fail(m.get('within')!.key, `${f}.within`, 'bounds a when/once condition; this step has none')
    const ak = actions[0]
    const line = this.at(node).line
    if (!ak) return { trigger, action: { kind: 'checkpoint' }, withinMs, line }
    const a = m.get(ak)!.value
    const af = `${f}.${ak}`
    let action: Action
    switch (ak) {
      case 'fault':
        action = this.fault(a, af, node)
        break
      case 'heal':
        action = { kind: 'heal', target: a ? this.oneOf(a, af, ['all', ...TARGETS] as const) : 'all' }
        break
      case 'restore': {
        let onto: string | undefined
        if (a && isMap(a)) {
          const r = this.map(a, af, ['onto'])
          onto = this.str(this.need(r, 'onto', `${af}.onto`, a), `${af}.onto`, (s) => /^[A-Za-z0-9_.-]{1,64}$/.test(s), '"spare" or a machine name')
        } else if (a && !(isScalar(a) && (a.value === true || a.value === null))) this.fail(a, af, `must be true or {onto: spare} (got ${describeNode(a)})`)
        action = { kind: 'restore', ...(onto ? { onto } : {}) }
        break
      }
      case 'power-on':
        action = { kind: 'power-on', host: this.oneOf(this.need(m, ak, af, node), af, REPLICA_IDS) }
        break
      case 'wait':
        action = { kind: 'wait', wait: this.range(this.need(m, ak, af, node), af, 1) }
        break
      case 'stop-load':
        if (a && !(isScalar(a) && (a.value === true || a.value === null))) this.fail(a, af, `must be true (got ${describeNode(a)})`)
        action = { kind: 'stop-load' }
        break
    }
    return { trigger, action, withinMs, line }
  }

  private fault(node: YamlNode | null, f: string, parent: YamlNode): Action {
    const m = this.map(node, f, ['kind', 'target', 'for', 'direction', 'ms', 'probability'], parent)
    const kind = this.oneOf(this.need(m, 'kind', `${f}.kind`, node), `${f}.kind`, FAULT_KINDS)
    const tNode = this.need(m, 'target', `${f}.target`, node)
    const target = this.oneOf(tNode, `${f}.target`, TARGETS)
    const isHost = (HOST_IDS as readonly string[]).includes(target)
    if (isHost !== HOST_FAULTS.includes(kind))
      this.fail(
        tNode,
        `${f}.target`,
        `a ${kind} fault applies to ${isHost ? 'a link' : 'a host'}: ${isHost ? list(LINKS) : list(HOST_IDS)} (got ${got(target)})`
      )
    const forMs = m.get('for')?.value ? this.duration(m.get('for')!.value!, `${f}.for`, 100, 3_600_000) : DEFAULT_FAULT_FOR_MS
    if (kind === 'power' && m.has('for')) this.fail(m.get('for')!.key, `${f}.for`, 'a power cut has no duration: it lasts until restore or power-on')
    const out: Action = { kind: 'fault', fault: kind, target, forMs }
    const only = (k: string, kinds: DrillFaultKind[]) => {
      if (m.has(k) && !kinds.includes(kind)) this.fail(m.get(k)!.key, `${f}.${k}`, `applies to ${kinds.join(' and ')} faults only`)
    }
    only('direction', ['cut'])
    only('ms', ['delay'])
    only('probability', ['loss'])
    if (m.get('direction')?.value) out.direction = this.oneOf(m.get('direction')!.value!, `${f}.direction`, ['both', 'forward', 'backward'] as const)
    if (kind === 'delay') out.ms = this.duration(this.need(m, 'ms', `${f}.ms`, node), `${f}.ms`, 1, 60_000)
    if (kind === 'loss') out.probability = this.fraction(this.need(m, 'probability', `${f}.probability`, node), `${f}.probability`)
    return out
  }

  private expectations(node: YamlNode, lab: Scenario['lab'] | null): Expectation[] {
    if (!isSeq(node)) this.fail(node, 'expect', `must be a list of expectations (got ${describeNode(node)})`)
    const out: Expectation[] = []
    node.items.forEach((it, i) => {
      const e = this.field(() => this.expectation(it as YamlNode, `expect[${i}]`, lab))
      if (e) out.push(e)
    })
    return out
  }

  private expectation(node: YamlNode, f: string, lab: Scenario['lab'] | null): Expectation {
    let key: string
    let value: YamlNode | null = null
    let keyNode: YamlNode = node
    if (isScalar(node) && typeof node.value === 'string') key = node.value
    else if (isMap(node) && node.items.length === 1) {
      const p = node.items[0] as Pair<YamlNode, YamlNode | null>
      key = isScalar(p.key) ? String(p.key.value) : ''
      keyNode = p.key
      value = p.value
    } else
      return this.fail(
        node,
        f,
        `must be one expectation: a name (no-lost-writes) or one name with its settings (failover: {within: 2s}) (got ${describeNode(node)})`
      )
    if (!(EXPECTATIONS as readonly string[]).includes(key)) this.fail(keyNode, f, `unknown expectation ${got(key)} (known: ${list(EXPECTATIONS)})`)
    const ef = `${f}.${key}`
    const bare = (): void => {
      if (value && !(isScalar(value) && (value.value === true || value.value === null))) this.fail(value, ef, `takes no settings (got ${describeNode(value)})`)
    }
    const kvOnly = (): void => {
      if (lab && lab.guest !== 'kv') this.fail(keyNode, ef, `is checked on the kv workload's history; this drill runs guest ${lab.guest}`)
    }
    switch (key) {
      case 'failover': {
        const m = this.map(value, ef, ['within'], node)
        return { kind: 'failover', withinMs: this.duration(this.need(m, 'within', `${ef}.within`, value), `${ef}.within`, 1, 600_000) }
      }
      case 'throughput': {
        const m = this.map(value, ef, ['back-to', 'within'], node)
        return {
          kind: 'throughput',
          backTo: this.fraction(this.need(m, 'back-to', `${ef}.back-to`, value), `${ef}.back-to`),
          withinMs: this.duration(this.need(m, 'within', `${ef}.within`, value), `${ef}.within`, 1, 600_000)
        }
      }
      case 'end-roles': {
        const m = this.map(value, ef, REPLICA_IDS, node)
        const roles: Partial<Record<'a' | 'b', string>> = {}
        for (const id of REPLICA_IDS) if (m.get(id)?.value) roles[id] = this.oneOf(m.get(id)!.value!, `${ef}.${id}`, ROLES)
        if (Object.keys(roles).length === 0) this.fail(value, ef, 'must name the role of a, b or both')
        return { kind: 'end-roles', roles }
      }
      case 'lost-writes':
      case 'stale-read': {
        if (!value) this.fail(keyNode, ef, 'must say "detected" (an experiment: the checker must catch the violation)')
        this.oneOf(value, ef, ['detected'] as const)
        kvOnly()
        return { kind: 'detected', what: key }
      }
      case 'bank-total':
        bare()
        if (lab && lab.guest !== 'bank') this.fail(keyNode, ef, `is the bank guest's invariant; this drill runs guest ${lab.guest}`)
        return { kind: 'bank-total' }
      case 'no-lost-writes':
      case 'linearizable':
      case 'exactly-once':
        bare()
        kvOnly()
        return { kind: key }
      default:
        bare()
        return { kind: key as 'one-live' | 'nobody-live' | 'bytes-per-op' }
    }
  }
}

function describeNode(n: YamlNode | null | undefined): string {
  if (!n) return 'nothing'
  if (isMap(n)) return 'a mapping'
  if (isSeq(n)) return 'a list'
  if (isScalar(n)) return got(n.value)
  return 'something else'
}

/** "500ms", "3s", "1.5s", "2m"; null when it is not one. */
export function durationMs(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$/.exec(text)
  if (!m) return null
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'])
}

function fmt(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
}
