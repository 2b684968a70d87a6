// The nemesis's choices over a lab's status: what it may inject, what it may heal, and what
// brings redundancy back (restore, power-on after a double failure, or wait).
import { describe, expect, it } from 'vitest'
import { downHostStatus, stoppedLabStatus, type FaultInfo, type HostRole, type LabStatus } from '../../../main/api/contract.js'
import { isOpen, isPaired, recoveryFor, whyNotApplicable } from '../../../main/soak/nemesis.js'

interface HostSpec {
  role: HostRole
  paused?: boolean
  canPowerOn?: boolean
}

/** A running lab's status with these roles and open faults; the channel is up between a primary and a backup. */
function lab(a: HostRole | HostSpec, b: HostRole | HostSpec, faults: FaultInfo[] = [], disk: HostRole = 'disk-server'): LabStatus {
  const spec = (x: HostRole | HostSpec): HostSpec => (typeof x === 'string' ? { role: x } : x)
  const host = (id: 'a' | 'b' | 'disk', s: HostSpec) => ({
    ...downHostStatus(id),
    reachable: s.role !== 'down',
    role: s.role,
    paused: s.paused ?? false,
    canPowerOn: s.canPowerOn ?? false,
    gen: 1
  })
  const ha = host('a', spec(a))
  const hb = host('b', spec(b))
  const pair = [ha.role, hb.role].sort().join() === 'backup,primary'
  return {
    ...stoppedLabStatus(),
    state: 'running',
    kind: 'simulated',
    name: 'simulated',
    guest: 'kv',
    mode: 'rsm',
    gen: 1,
    startedAt: 0,
    timing: { heartbeatMs: 100, suspectMs: 800 },
    hosts: [ha, hb, host('disk', { role: disk })],
    channel: pair
      ? {
          from: ha.role === 'primary' ? 'a' : 'b',
          to: ha.role === 'primary' ? 'b' : 'a',
          gen: 1,
          connected: true,
          stalled: false,
          lastEntry: 10,
          acked: 10,
          lag: 0,
          unackedEntries: 0,
          unackedBytes: 0,
          maxUnackedBytes: 1 << 20,
          entriesPerSec: 0,
          acksPerSec: 0,
          bytesPerSec: 0,
          heldOutputs: 0,
          holdMs: { p50: 0, p99: 0, max: 0 }
        }
      : null,
    faults
  }
}

const fault = (id: string, target: FaultInfo['target'], kind: FaultInfo['kind'], what: string): FaultInfo => ({
  id,
  target,
  kind,
  params: {},
  startedAt: 0,
  healsAt: kind === 'power' ? null : 10_000,
  path: 'sim',
  note: null,
  what
})

describe('what the nemesis may inject', () => {
  it('injects into a healthy pair', () => {
    const s = lab('primary', 'backup')
    expect(whyNotApplicable({ target: 'a', kind: 'power', params: {} }, s)).toBeNull()
    expect(whyNotApplicable({ target: 'a-disk', kind: 'cut', params: { direction: 'forward' } }, s)).toBeNull()
    expect(whyNotApplicable({ target: 'disk', kind: 'isolate', params: {} }, s)).toBeNull()
  })

  it('skips a fault whose target is down, naming the host', () => {
    const s = lab('down', 'live', [fault('f1', 'a', 'power', 'power cut a')])
    expect(whyNotApplicable({ target: 'a', kind: 'power', params: {} }, s)).toBe('a is down')
    expect(whyNotApplicable({ target: 'a-b', kind: 'cut', params: {} }, s)).toBe('a is down')
    expect(whyNotApplicable({ target: 'b', kind: 'power', params: {} }, s)).toBeNull()
  })

  it('does not pause a paused agent, nor ask a paused agent to filter its own links', () => {
    const s = lab({ role: 'primary', paused: true }, 'backup', [fault('f2', 'a', 'pause', 'pause a')])
    expect(whyNotApplicable({ target: 'a', kind: 'pause', params: {} }, s)).toMatch(/paused already/)
    expect(whyNotApplicable({ target: 'a-b', kind: 'loss', params: { probability: 0.2 } }, s)).toMatch(/a is paused, so its agent cannot apply loss a↔b 20%/)
    expect(whyNotApplicable({ target: 'b-disk', kind: 'delay', params: { ms: 5 } }, s)).toBeNull()
  })

  it('never power-cuts the disk server and never doubles a fault already open on the same target', () => {
    const s = lab('primary', 'backup', [fault('f3', 'b', 'isolate', 'isolate b')])
    expect(whyNotApplicable({ target: 'disk', kind: 'power', params: {} }, s)).toMatch(/disk server is never power-cut/)
    expect(whyNotApplicable({ target: 'b', kind: 'isolate', params: {} }, s)).toBe('isolate b (f3) is open already')
  })

  it('injects nothing into a lab that is not running', () => {
    expect(whyNotApplicable({ target: 'a', kind: 'pause', params: {} }, { ...lab('primary', 'backup'), state: 'stopping' })).toBe('the lab is stopping')
  })
})

describe('what the nemesis heals', () => {
  it('never heals what isn’t there: only faults the lab still lists open', () => {
    const s = lab('primary', 'backup', [fault('f4', 'a-b', 'cut', 'cut a↔b')])
    expect(isOpen('f4', s)).toBe(true)
    expect(isOpen('f3', s)).toBe(false)
    expect(isOpen('f4', lab('primary', 'backup'))).toBe(false)
  })
})

describe('how the nemesis restores redundancy', () => {
  it('does nothing to a primary with its backup', () => {
    expect(isPaired(lab('primary', 'backup'))).toBe(true)
    expect(recoveryFor(lab('backup', 'primary'))).toEqual({ action: 'none' })
  })

  it('restores redundancy onto the gone replica when the other is live alone', () => {
    expect(recoveryFor(lab('down', 'live', [fault('f1', 'a', 'power', 'power cut a')]))).toEqual({ action: 'restore', from: 'b', to: 'a' })
    expect(recoveryFor(lab('live', 'halted'))).toEqual({ action: 'restore', from: 'a', to: 'b' })
    // a restore that failed on the new agent (its channel port taken) leaves it idle: restore again
    expect(recoveryFor(lab('idle', 'live'))).toEqual({ action: 'restore', from: 'b', to: 'a' })
  })

  it('powers a replica on from the disk server when both are gone (a double failure)', () => {
    const s = lab('down', { role: 'down', canPowerOn: true }, [fault('f1', 'a', 'power', 'power cut a'), fault('f2', 'b', 'power', 'power cut b')])
    expect(recoveryFor(s)).toEqual({ action: 'power-on', host: 'b' })
    expect(recoveryFor(lab('halted', 'down'))).toEqual({ action: 'power-on', host: 'a' })
  })

  it('waits while a fault other than a power cut is open: restoring through a cut would fail', () => {
    const r = recoveryFor(lab('live', 'halted', [fault('f5', 'a-b', 'cut', 'cut a↔b')]))
    expect(r).toEqual({ action: 'wait', why: 'open faults: cut a↔b' })
  })

  it('waits out a power cut’s planned down time before bringing the host back', () => {
    const s = lab('down', 'live', [fault('f1', 'a', 'power', 'power cut a')])
    expect(recoveryFor(s, new Set(['f1']))).toMatchObject({ action: 'wait', why: expect.stringMatching(/power cut a within its planned down time/) })
    expect(recoveryFor(s, new Set())).toMatchObject({ action: 'restore' })
  })

  it('waits while the failover is still settling or an agent is paused', () => {
    expect(recoveryFor(lab('primary', 'halted'))).toMatchObject({ action: 'wait', why: expect.stringMatching(/settling \(a primary, b halted\)/) })
    expect(recoveryFor(lab('live', 'joining'))).toMatchObject({ action: 'wait' })
    expect(recoveryFor(lab('live', { role: 'backup', paused: true }))).toMatchObject({ action: 'wait', why: 'b paused' })
  })

  it('does not power on from the disk server while the disk server does not answer', () => {
    expect(recoveryFor(lab('down', 'down', [], 'down'))).toMatchObject({ action: 'wait', why: expect.stringMatching(/disk server does not answer/) })
  })
})
