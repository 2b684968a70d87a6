import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { parseArgs, UsageError } from '../../../main/cli/args.js'
import { faultFromArgs } from '../../../main/cli/fault-args.js'
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, runCli } from '../../../main/cli/ftlab.js'
import { parseDuration } from '../../../main/core/duration.js'

function usageError(argv: string[]): UsageError {
  try {
    parseArgs(argv)
  } catch (err) {
    if (err instanceof UsageError) return err
    throw err
  }
  throw new Error(`parseArgs(${argv.join(' ')}) did not fail`)
}

describe('ftlab argument parser', () => {
  it('parses lab start with its choices', () => {
    expect(parseArgs(['lab', 'start', '--guest', 'bank', '--mode=state-transfer', '--name', 'x'])).toEqual({
      id: 'lab-start',
      positionals: [],
      options: { guest: 'bank', mode: 'state-transfer', name: 'x' }
    })
  })

  it('parses load numbers and fault positionals with a duration', () => {
    expect(parseArgs(['load', '--seconds', '2.5', '--clients', '8', '--keys', '3'])).toMatchObject({
      id: 'load',
      options: { seconds: 2.5, clients: 8, keys: 3 }
    })
    expect(parseArgs(['fault', 'cut', 'a-b', '--for', '30s'])).toEqual({ id: 'fault', positionals: ['cut', 'a-b'], options: { for: 30_000 } })
    expect(parseArgs(['events', '--follow'])).toEqual({ id: 'events', positionals: [], options: { follow: true } })
  })

  it('reads a bare --heartbeat or --suspect as milliseconds, as the help says, and still takes units', () => {
    expect(parseArgs(['lab', 'start', '--heartbeat', '20']).options).toEqual({ heartbeat: 20 })
    expect(parseArgs(['lab', 'start', '--heartbeat', '20ms', '--suspect=1s']).options).toEqual({ heartbeat: 20, suspect: 1000 })
    expect(parseArgs(['lab', 'start', '--suspect', '250']).options).toEqual({ suspect: 250 })
    // --for says <duration>, and its help says a bare number is seconds
    expect(parseArgs(['fault', 'pause', 'a', '--for', '10']).options).toEqual({ for: 10_000 })
  })

  it('parses the remote commands from the same table', () => {
    expect(parseArgs(['deploy', 'lab.json', '--name', 'x', '--accept-new-host-keys'])).toEqual({
      id: 'deploy',
      positionals: ['lab.json'],
      options: { name: 'x', 'accept-new-host-keys': true }
    })
    expect(parseArgs(['teardown', '--name=x'])).toEqual({ id: 'teardown', positionals: [], options: { name: 'x' } })
    expect(parseArgs(['power-on', 'b'])).toEqual({ id: 'power-on', positionals: ['b'], options: {} })
  })

  it('treats no arguments and --help as a request for help', () => {
    expect(parseArgs([]).id).toBe('help')
    expect(parseArgs(['status', '--help'])).toEqual({ id: 'help', positionals: ['status'], options: {} })
  })

  it.each([
    [['frobnicate'], "unknown command 'frobnicate'"],
    [['lab', 'explode'], "unknown command 'lab explode'"],
    [['lab', 'start', '--guest', 'redis'], "--guest must be one of kv, bank, got 'redis'"],
    [['lab', 'start', '--colour', 'red'], "unknown option --colour for 'lab start'"],
    [['load'], '--seconds is required'],
    [['load', '--seconds'], '--seconds needs a value'],
    [['load', '--seconds', 'ten'], "--seconds must be a number, got 'ten'"],
    [['load', '--seconds', '5', '--clients', '2.5'], "--clients must be a whole number, got '2.5'"],
    [['load', '--seconds', '5', '--clients', '0'], '--clients must be from 1 to 1000, got 0'],
    [['fault', 'melt', 'a'], "<kind> must be one of power, pause, isolate, cut, loss, delay, got 'melt'"],
    [['fault', 'power'], 'missing <target>'],
    [['fault', 'power', 'a', 'b'], "unexpected argument 'b'"],
    [['fault', 'pause', 'a', '--for', 'soon'], '--for: "soon" is not a duration'],
    [['status', '--json=yes'], '--json takes no value'],
    [['status', '--json', '--json'], '--json given twice'],
    [['status', '--name', '--json'], '--name needs a value'],
    [['lab', 'start', '--heartbeat', 'fast'], '--heartbeat: "fast" is not a duration'],
    [['lab', 'start', '--heartbeat', '20s'], "--heartbeat must be from 5 to 10000 ms, got 20000 ms ('20s')"],
    [['deploy'], 'missing <labfile>'],
    [['teardown', '--accept-new-host-keys'], "unknown option --accept-new-host-keys for 'teardown'"],
    [['deploy', 'x.json', '--name'], '--name needs a value'],
    [['teardown', 'extra'], "unexpected argument 'extra'"],
    [['power-on'], 'missing <host>']
  ])('rejects %j: %s', (argv, message) => {
    const err = usageError(argv)
    expect(err.message).toContain(message)
    expect(err.usage).toMatch(/ftlab/)
  })
})

describe('fault targets', () => {
  it('reads hosts and links, one way or both', () => {
    expect(faultFromArgs('power', 'a', {})).toEqual({ kind: 'power', host: 'a' })
    expect(faultFromArgs('isolate', 'disk', { for: 5000 })).toEqual({ kind: 'fault', spec: { kind: 'isolate', host: 'disk' }, forMs: 5000 })
    expect(faultFromArgs('cut', 'a-b', {})).toMatchObject({ spec: { kind: 'cut', from: 'a', to: 'b', oneWay: false } })
    expect(faultFromArgs('cut', 'b>disk', {})).toMatchObject({ spec: { kind: 'cut', from: 'b', to: 'disk', oneWay: true } })
    expect(faultFromArgs('loss', 'a-b', { p: 0.25 })).toMatchObject({ spec: { kind: 'loss', probability: 0.25 } })
    expect(faultFromArgs('delay', 'a-disk', { ms: 40, jitter: 5 })).toMatchObject({ spec: { kind: 'delay', from: 'a', to: 'disk', ms: 40, jitterMs: 5 } })
  })

  it.each([
    ['power', 'c', {}, "'c' is not a host of the lab"],
    ['power', 'a', { for: 1000 }, '--for does not apply to a power fault'],
    ['pause', 'a-b', {}, 'pause applies to a host, not a link'],
    ['cut', 'a', {}, 'cut needs a link such as a-b'],
    ['cut', 'a-a', {}, 'a link needs two different hosts'],
    ['loss', 'a-b', {}, 'loss needs --p'],
    ['loss', 'a>b', { p: 0.5 }, 'loss applies to both directions'],
    ['delay', 'a-b', {}, 'delay needs --ms'],
    ['isolate', 'a', { ms: 5 }, '--ms does not apply to a isolate fault']
  ] as const)('rejects %s %s %j', (kind, target, opts, message) => {
    expect(() => faultFromArgs(kind, target, { ...opts })).toThrow(message)
  })
})

describe('durations', () => {
  it('reads the units operators type', () => {
    expect(parseDuration('500ms')).toBe(500)
    expect(parseDuration('30s')).toBe(30_000)
    expect(parseDuration('1.5s')).toBe(1500)
    expect(parseDuration('2m')).toBe(120_000)
    expect(parseDuration('10')).toBe(10_000)
    expect(parseDuration('20', 'ms')).toBe(20)
    expect(parseDuration('1s', 'ms')).toBe(1000)
    expect(() => parseDuration('0s')).toThrow(/positive/)
    expect(() => parseDuration('-1s')).toThrow(/not a duration/)
  })
})

describe('runCli exit codes', () => {
  let home: string | null = null
  afterEach(() => {
    if (home) rmSync(home, { recursive: true, force: true })
    home = null
  })

  function io() {
    const out: string[] = []
    const err: string[] = []
    home = mkdtempSync(join(tmpdir(), 'ftlab-cli-'))
    return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), isTty: false, home }, out, err }
  }

  it('exits 0 with usage for help', async () => {
    const { io: i, out } = io()
    expect(await runCli(['help'], i)).toBe(EXIT_OK)
    expect(out.join('')).toMatch(/ftlab lab start/)
    expect(out.join('')).toMatch(/real hosts:\n {2}ftlab deploy <labfile>/)
    expect(out.join('')).toMatch(/--heartbeat <ms>\]/)
  })

  it('exits 2 and shows usage for a bad argument', async () => {
    const { io: i, err } = io()
    expect(await runCli(['load', '--seconds', 'x'], i)).toBe(EXIT_USAGE)
    expect(err.join('')).toMatch(/--seconds must be a number[\s\S]*ftlab load --seconds/)
  })

  it('exits 1 with a clear message when the lab does not exist', async () => {
    const { io: i, err } = io()
    expect(await runCli(['status', '--name', 'nolab'], i)).toBe(EXIT_FAILED)
    expect(err.join('')).toContain("no lab named 'nolab' (start one with `ftlab lab start --name nolab`)")
  })
})
