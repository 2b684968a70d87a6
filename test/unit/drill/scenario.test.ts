// Scenario files: a good one reads into the runner's shape; a broken one gets an error that
// names the file, the line and column, and the field, and says what is wrong.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { holds, parseCondition } from '../../../main/drill/condition.js'
import { labsFor, DrillLibrary } from '../../../main/drill/library.js'
import { drawSchedule } from '../../../main/drill/runner.js'
import { checkScenario, parseScenario, ScenarioError } from '../../../main/drill/scenario.js'
import { emptyDetection, emptyInvariants, idleLoadStatus, downHostStatus, type LabStatus, type SilenceLimit } from '../../../main/api/contract.js'

const GOOD = `name: my-drill
title: My drill
explain: what it shows
lab:
  kind: simulated
  guest: kv
  mode: rsm
  timing: { heartbeat: 50ms, suspect: 400ms }
workload:
  clients: 4
  keys: 40
  seconds: 10
steps:
  - at: 2s..5s
    fault: { kind: power, target: a }
  - once: b is live
  - after: 2000 ops
    fault: { kind: cut, target: a-b, for: 3s, direction: forward }
  - when: backup lag > 50ms
    within: 5s
    heal: all
  - after: 1s
    restore: true
  - stop-load: true
expect:
  - failover: { within: 2s }
  - no-lost-writes
  - throughput: { back-to: 0.5, within: 5s }
  - end-roles: { a: backup, b: primary }
`

/** The error for GOOD with one line replaced. */
function errorFor(from: string, to: string, file = 'drills/x.yaml'): ScenarioError {
  expect(GOOD.includes(from), `the fixture has ${JSON.stringify(from)}`).toBe(true)
  const r = checkScenario(GOOD.replace(from, to), file)
  if (r.ok) throw new Error(`expected an error for ${JSON.stringify(to)}`)
  return r.errors[0]
}

const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1

describe('scenario files', () => {
  it('reads a good scenario into steps with triggers, actions and expectations', () => {
    const sc = parseScenario(GOOD, 'my.yaml')
    expect(sc.lab).toMatchObject({
      kind: 'simulated',
      guest: 'kv',
      modes: ['rsm'],
      timing: { heartbeatMs: 50, suspectMs: 400 },
      arbiter: 'disk',
      experiments: []
    })
    expect(sc.steps.map((s) => [s.trigger?.kind ?? null, s.action.kind])).toEqual([
      ['at', 'fault'],
      ['when', 'checkpoint'],
      ['after-ops', 'fault'],
      ['when', 'heal'],
      ['after', 'restore'],
      [null, 'stop-load']
    ])
    expect(sc.steps[0].trigger).toEqual({ kind: 'at', at: { lo: 2000, hi: 5000 } })
    expect(sc.steps[2].action).toMatchObject({ kind: 'fault', fault: 'cut', target: 'a-b', forMs: 3000, direction: 'forward' })
    expect(sc.steps[3].withinMs).toBe(5000)
    expect(sc.steps[1].line).toBe(lineOf(GOOD, 'once: b is live'))
    expect(sc.expect.map((e) => e.kind)).toEqual(['failover', 'no-lost-writes', 'throughput', 'end-roles'])
  })

  it('reads readers kept on one replica, and names a wrong replica or count', () => {
    const withReaders = GOOD.replace('  seconds: 10\n', '  seconds: 10\n  readers: { on: a, clients: 3 }\n')
    expect(parseScenario(withReaders, 'x.yaml').workload).toEqual({ clients: 4, keys: 40, seconds: 10, readers: { on: 'a', clients: 3 } })
    expect(parseScenario(GOOD, 'x.yaml').workload.readers).toBeUndefined()
    const e = errorFor('  seconds: 10\n', '  seconds: 10\n  readers: { on: disk }\n')
    expect(e.field).toBe('workload.readers.on')
    expect(e.message).toMatch(/must be one of a, b/)
    expect(errorFor('  seconds: 10\n', '  seconds: 10\n  readers: { on: b, clients: 0 }\n').field).toBe('workload.readers.clients')
  })

  it('names file, line, column and field of a wrong fault target, with the choices', () => {
    const e = errorFor('fault: { kind: power, target: a }', 'fault: { kind: cut, target: c }')
    const col = '    fault: { kind: cut, target: c }'.indexOf('target: c') + 'target: '.length + 1
    expect(e.message).toBe(
      `drills/x.yaml:${lineOf(GOOD, 'kind: power')}:${col}: steps[0].fault.target: must be one of a, b, disk, a-b, a-disk, b-disk (got "c")`
    )
  })

  it('refuses a host fault on a link and a link fault on a host', () => {
    expect(errorFor('fault: { kind: power, target: a }', 'fault: { kind: power, target: a-b }').message).toMatch(
      /steps\[0\]\.fault\.target: a power fault applies to a host: a, b, disk \(got "a-b"\)/
    )
    expect(errorFor('kind: cut, target: a-b', 'kind: cut, target: disk').message).toMatch(/steps\[2\]\.fault\.target: a cut fault applies to a link/)
  })

  it('reports YAML syntax errors at their line', () => {
    const e = errorFor('  keys: 40\n', '  keys: [40\n')
    expect(e.file).toBe('drills/x.yaml')
    expect(e.line).toBeGreaterThanOrEqual(lineOf(GOOD, 'keys: 40'))
    expect(e.message).toMatch(/^drills\/x\.yaml:\d+:\d+: YAML syntax: /)
  })

  it('reports a duplicate key as a YAML error', () => {
    const e = errorFor('  clients: 4\n', '  clients: 4\n  clients: 5\n')
    expect(e.message).toMatch(/YAML syntax: .*(unique|duplicate)/i)
  })

  it('names an unknown field and the known ones', () => {
    const e = errorFor('  guest: kv', '  gust: kv')
    expect(e.line).toBe(lineOf(GOOD, 'guest: kv'))
    expect(e.message).toMatch(/lab\.gust: unknown field \(known here: kind, remote, guest, mode, timing, arbiter, etcd, experiments\)/)
  })

  it('says which required field is missing, at its parent', () => {
    const e = errorFor('  seconds: 10\n', '')
    expect(e.field).toBe('workload.seconds')
    expect(e.problem).toBe('is missing')
    expect(e.line).toBe(lineOf(GOOD, 'clients: 4'))
  })

  it('refuses a bad duration, a backwards range and a suspect time under the heartbeat', () => {
    expect(errorFor('at: 2s..5s', 'at: soon').message).toMatch(/steps\[0\]\.at: must be a duration like 500ms, 3s or 2m \(got "soon"\)/)
    expect(errorFor('at: 2s..5s', 'at: 5s..2s').message).toMatch(/steps\[0\]\.at: the range must run from low to high/)
    expect(errorFor('suspect: 400ms', 'suspect: 40ms').message).toMatch(/lab\.timing\.suspect: must be longer than the heartbeat \(50ms\)/)
  })

  it('refuses a step with two actions, two triggers, or nothing to do', () => {
    expect(errorFor('    restore: true', '    restore: true\n    heal: all').message).toMatch(/steps\[4\]: a step does one of/)
    expect(errorFor('  - after: 1s\n', '  - after: 1s\n    at: 3s\n').message).toMatch(
      /steps\[4\]\.(at|after): a step has at most one trigger \(it has at, after\)/
    )
    expect(errorFor('  - stop-load: true', '  - within: 3s').message).toMatch(/steps\[5\]: a step does one of .* \(it has neither\)/)
  })

  it('explains a condition it cannot read, and an unknown metric', () => {
    expect(errorFor('once: b is live', 'once: b is sleepy').message).toMatch(/steps\[1\]\.once: "b is sleepy": a replica's role is one of primary, backup/)
    expect(errorFor('when: backup lag > 50ms', 'when: backup lagg > 50ms').message).toMatch(/unknown metric "backup lagg" \(known: ops, ops\/s, lag/)
    expect(errorFor('when: backup lag > 50ms', 'when: backup lag > 50').message).toMatch(/backup lag is a time: give a unit/)
    expect(errorFor('when: backup lag > 50ms', 'when: b live').message).toMatch(/cannot read the condition "b live"/)
  })

  it('refuses unknown expectations and settings where none are taken', () => {
    expect(errorFor('  - no-lost-writes', '  - no-lost-write').message).toMatch(/expect\[1\]: unknown expectation "no-lost-write" \(known: failover/)
    expect(errorFor('  - no-lost-writes', '  - no-lost-writes: { strict: true }').message).toMatch(/expect\[1\]\.no-lost-writes: takes no settings/)
    expect(errorFor('back-to: 0.5', 'back-to: 2').message).toMatch(/expect\[2\]\.throughput\.back-to: must be a number above 0 and at most 1 \(got 2\)/)
    expect(errorFor('  - no-lost-writes', '  - lost-writes: maybe').message).toMatch(/expect\[1\]\.lost-writes: must be one of detected/)
  })

  it('refuses checks that do not fit the guest, unknown experiments, and etcd where it cannot run', () => {
    expect(errorFor('  guest: kv', '  guest: bank').message).toMatch(
      /expect\[1\]\.no-lost-writes: is checked on the kv workload's history; this drill runs guest bank/
    )
    expect(errorFor('  mode: rsm', '  mode: rsm\n  arbiter: etcd').message).toMatch(/lab\.arbiter: etcd is for the local and remote labs/)
    expect(errorFor('  mode: rsm', '  mode: rsm\n  experiments: [no-rules]').message).toMatch(
      /lab\.experiments\[0\]: must be one of no-output-rule, read-fast-path/
    )
    expect(errorFor('  kind: simulated', '  kind: remote').message).toMatch(/lab\.remote: is missing/)
  })

  it('reads an experiment on a remote lab (the drill redeploys that lab with it), and offers every built-in drill on the remote lab', () => {
    const sc = parseScenario(GOOD.replace('  kind: simulated', '  kind: remote\n  remote: rack3\n  experiments: [no-output-rule]'), 'x.yaml')
    expect(sc.lab).toMatchObject({ kind: 'remote', remote: 'rack3', experiments: ['no-output-rule'] })
    const lib = new DrillLibrary()
    for (const n of lib.names()) expect(labsFor(lib.load(n)), n).toContain('remote')
    // the simulated lab has no etcd: the etcd drill is offered on the local and remote labs only
    const etcd = lib.names().filter((n) => lib.load(n).lab.arbiter === 'etcd')
    expect(etcd.length).toBeGreaterThan(0)
    for (const n of etcd) expect(labsFor(lib.load(n))).toEqual(['local', 'remote'])
  })

  it('collects one error per broken field rather than stopping at the first', () => {
    const r = checkScenario(GOOD.replace('clients: 4', 'clients: 0').replace('target: a }', 'target: q }'), 'x.yaml')
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.errors.map((e) => e.field)).toEqual(['workload.clients', 'steps[0].fault.target'])
  })

  it('refuses a document that is not a mapping', () => {
    const r = checkScenario('- just\n- a list\n', 'x.yaml')
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.errors[0].message).toBe('x.yaml:1:1: must be a mapping of name, title, explain, lab, workload, steps, expect (got a list)')
  })

  it('draws the same schedule from the same seed and repeat, and within the stated range', () => {
    const sc = parseScenario(GOOD, 'my.yaml')
    const a = drawSchedule(sc, 42, 1)
    expect(drawSchedule(sc, 42, 1)).toEqual(a)
    const draws = Array.from({ length: 20 }, (_, i) => drawSchedule(sc, 42, i + 1)[0])
    expect(draws.every((d) => d >= 2000 && d <= 5000)).toBe(true)
    expect(new Set(draws).size).toBeGreaterThan(1)
  })

  it('every built-in drill reads without error', () => {
    const dir = join(__dirname, '../../../drills')
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'))
    expect(files.length).toBeGreaterThanOrEqual(11)
    for (const f of files) {
      const sc = parseScenario(readFileSync(join(dir, f), 'utf8'), `drills/${f}`)
      expect(sc.name + '.yaml').toBe(f)
    }
  })
})

describe('the condition language', () => {
  const status = (roles: Record<string, string>, lagMs = 0): LabStatus =>
    ({
      hosts: ['a', 'b', 'disk'].map((id) => ({ ...downHostStatus(id as 'a'), role: roles[id] ?? 'down' })),
      channel: { lag: 3, holdMs: { p50: 1, p99: lagMs, max: lagMs }, heldOutputs: 2 },
      load: { ...idleLoadStatus(), completed: 2500, opsPerSec: 900 },
      gen: 2,
      invariants: emptyInvariants()
    }) as unknown as LabStatus

  it('judges roles, metrics, "and" and "or" on a status', () => {
    const s = status({ a: 'down', b: 'live' }, 80)
    expect(holds(parseCondition('b is live'), s)).toBe(true)
    expect(holds(parseCondition('a is not primary and b is live'), s)).toBe(true)
    expect(holds(parseCondition('a is live or b is live'), s)).toBe(true)
    expect(holds(parseCondition('a is live or b is backup'), s)).toBe(false)
    expect(holds(parseCondition('backup lag > 50ms'), s)).toBe(true)
    expect(holds(parseCondition('backup lag > 0.1s'), s)).toBe(false)
    expect(holds(parseCondition('ops >= 2500 and gen = 2'), s)).toBe(true)
    expect(holds(parseCondition('ops/s < 100'), s)).toBe(false)
  })

  it('judges whether a replica’s failure detector is still learning, and says nothing of one that reports no limit', () => {
    const limit = (by: SilenceLimit['by']): SilenceLimit => ({
      ms: 400,
      by,
      ceilingMs: 800,
      detectorMs: 400,
      learnedForMs: 5000,
      learningMs: 10_000,
      allowanceMs: 0,
      ownPauseMs: 0
    })
    const s = status({ a: 'primary', b: 'backup' })
    s.detection = { ...emptyDetection(), suspectLimit: { a: limit('learning'), b: limit('history') } }
    expect(holds(parseCondition('a is learning'), s)).toBe(true)
    expect(holds(parseCondition('b is not learning'), s)).toBe(true)
    expect(holds(parseCondition('a is not learning and b is not learning'), s)).toBe(false)
    s.detection.suspectLimit!.a = limit('floor')
    expect(holds(parseCondition('a is not learning and b is not learning'), s)).toBe(true)
    // down, live alone, or an agent too old to say: neither learning nor not
    s.detection.suspectLimit!.a = null
    expect(holds(parseCondition('a is learning'), s)).toBe(false)
    expect(holds(parseCondition('a is not learning'), s)).toBe(false)
    delete (s as Partial<LabStatus>).detection
    expect(holds(parseCondition('b is not learning'), s)).toBe(false)
    expect(() => parseCondition('a is lerning')).toThrow(/one of primary, backup, live, halted, joining, down, or "learning" \(got "lerning"\)/)
  })
})
