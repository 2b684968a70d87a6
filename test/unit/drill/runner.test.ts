// The drill runner against a scripted console (no lab): what it asks the console for, and how
// it judges what the console's events show. Fast and exact where the lab tests are realistic.
import { describe, expect, it } from 'vitest'
import {
  downHostStatus,
  idleLoadStatus,
  stoppedLabStatus,
  type ApiEvent,
  type HostRole,
  type LabStatus,
  type LoadStatus,
  type MethodName,
  type ParamsOf,
  type ResultOf
} from '../../../main/api/contract.js'
import type { UnnumberedEvent } from '../../../main/api/event-log.js'
import { runDrill, type DrillConsole } from '../../../main/drill/runner.js'
import { parseScenario } from '../../../main/drill/scenario.js'

const SCENARIO = `name: t
title: T
explain: what it shows
lab: { kind: simulated }
workload: { seconds: 1 }
steps:
  - at: 10ms
    fault: { kind: power, target: a }
  - once: b is live
expect:
  - failover: { within: 2s }
  - one-live
  - no-lost-writes
`

/** A console whose lab does what the test scripts, publishing events as the real one does. */
class ScriptedConsole implements DrillConsole {
  readonly calls: string[] = []
  private readonly listeners = new Set<(ev: ApiEvent) => void>()
  private seq = 0
  roles: Record<'a' | 'b', HostRole> = { a: 'primary', b: 'backup' }
  state: LabStatus['state'] = 'stopped'
  load: LoadStatus = idleLoadStatus()
  /** what happens while fault.inject is under way (before it returns) */
  onPowerCut: (c: ScriptedConsole) => void = () => {}

  status(): LabStatus {
    return {
      ...stoppedLabStatus(),
      state: this.state,
      kind: 'simulated',
      name: 'simulated',
      guest: 'kv',
      mode: 'rsm',
      gen: 1,
      startedAt: 0,
      hosts: [
        { ...downHostStatus('a'), reachable: this.roles.a !== 'down', role: this.roles.a },
        { ...downHostStatus('b'), reachable: true, role: this.roles.b },
        { ...downHostStatus('disk'), reachable: true, role: 'disk-server' }
      ],
      load: this.load
    }
  }

  emit(ev: UnnumberedEvent): void {
    const full = { ...ev, seq: ++this.seq } as ApiEvent
    for (const l of this.listeners) l(full)
  }

  goLive(host: 'a' | 'b', gen = 1): void {
    this.roles[host] = 'live'
    this.emit({ ts: Date.now(), topic: 'mark', mark: { kind: 'go-live', label: `${host} goes live (gen ${gen})`, host } })
    this.emit({ ts: Date.now(), topic: 'status', status: this.status() })
  }

  async call<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    this.calls.push(
      method === 'fault.inject' ? `${method} ${(params as { kind: string; target: string }).kind} ${(params as { target: string }).target}` : method
    )
    const r = (x: unknown) => x as ResultOf<M>
    switch (method) {
      case 'lab.start':
        this.state = 'running'
        return r(this.status())
      case 'lab.status':
        return r(this.status())
      case 'load.start':
        this.load = { ...idleLoadStatus(), state: 'running', startedAt: Date.now() }
        // the load ends at once with a verdict: the runner waits for it after its steps
        setTimeout(() => {
          this.load = {
            ...this.load,
            state: 'idle',
            completed: 100,
            verdict: {
              result: 'valid',
              summary: 'valid',
              ok: 100,
              failed: 0,
              unknown: 0,
              lostWrites: 0,
              details: [],
              checks: [{ checker: 'no acknowledged write lost', valid: true }]
            }
          }
          this.emit({ ts: Date.now(), topic: 'load', load: this.load })
        }, 200)
        return r(this.load)
      case 'fault.inject': {
        const startedAt = Date.now()
        this.roles.a = 'down'
        this.onPowerCut(this)
        await new Promise((res) => setTimeout(res, 30))
        return r({ id: 'f1', target: 'a', kind: 'power', params: {}, startedAt, healsAt: null, path: 'kill', note: null, what: 'power cut a' })
      }
      case 'lab.stop':
        this.state = 'stopped'
        return r(this.status())
      default:
        return r({})
    }
  }

  subscribe(l: (ev: ApiEvent) => void): () => void {
    this.listeners.add(l)
    return () => this.listeners.delete(l)
  }

  publish(): void {}

  recording(): string | null {
    return '/tmp/x.ftrec'
  }
}

const run = async (c: ScriptedConsole) => (await runDrill(c, parseScenario(SCENARIO, 't.yaml'), { name: 't', seed: 1, repeats: 1 }))[0]

describe('the drill runner', () => {
  it('drives the console like an operator: start, load, the fault, then stops its lab', async () => {
    const c = new ScriptedConsole()
    c.onPowerCut = (x) => setTimeout(() => x.goLive('b'), 5)
    const r = await run(c)
    expect(r.state, r.verdict?.summary).toBe('passed')
    expect(c.calls.filter((m) => m !== 'lab.status')).toEqual(['lab.start', 'load.start', 'fault.inject power a', 'lab.stop'])
    expect(r.recording).toBe('/tmp/x.ftrec')
  })

  it('times a failover whose go-live is marked before fault.inject returns', async () => {
    const c = new ScriptedConsole()
    c.onPowerCut = (x) => x.goLive('b')
    const r = await run(c)
    expect(r.state, r.verdict?.summary).toBe('passed')
    expect(r.failovers).toHaveLength(1)
    expect(r.failovers[0].host).toBe('a')
    expect(r.failovers[0].liveAt).not.toBeNull()
  })

  it('fails one-live when both replicas are live at once, and says when', async () => {
    const c = new ScriptedConsole()
    c.onPowerCut = (x) => {
      x.goLive('b')
      x.goLive('a', 2)
      x.roles.a = 'live'
      x.emit({ ts: Date.now(), topic: 'status', status: x.status() })
    }
    const r = await run(c)
    expect(r.state).toBe('failed')
    expect(r.expectations.find((e) => e.text === 'never two live replicas')).toMatchObject({ ok: false, detail: expect.stringMatching(/a and b both live at/) })
  })

  it('fails one-live when two replicas go live in one generation', async () => {
    const c = new ScriptedConsole()
    c.onPowerCut = (x) => {
      // b goes live, then a (restarted in the same generation) too, while b is halted
      x.goLive('b', 1)
      x.roles.b = 'halted'
      x.goLive('a', 1)
      x.roles.a = 'halted'
      x.roles.b = 'live'
      x.emit({ ts: Date.now(), topic: 'status', status: x.status() })
    }
    const r = await run(c)
    expect(r.expectations.find((e) => e.text === 'never two live replicas')).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/both went live in generation 1/)
    })
  })

  it('fails the step and the run when its condition never comes, naming the step and line', async () => {
    const c = new ScriptedConsole()
    const sc = parseScenario(SCENARIO.replace('  - once: b is live', '  - once: b is live\n    within: 300ms'), 't.yaml')
    const [r] = await runDrill(c, sc, { name: 't', seed: 1, repeats: 1 })
    expect(r.state).toBe('failed')
    expect(r.verdict?.summary).toBe('FAILED: "b is live" (step 2, line 9) never happened in time')
    expect(c.calls.at(-1)).toBe('lab.stop')
  })
})
