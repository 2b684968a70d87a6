import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { StartRole } from '../../../agent/control/protocol.js'
import { Lab } from '../../../main/lab/lab.js'
import type { LabEvent } from '../../../main/lab/lab-events.js'
import { planAgentFaults } from '../../../main/lab/lab-faults.js'
import { LabStore } from '../../../main/lab/lab-state.js'
import type { HostPowerDriver, KernelFaultPart, KernelFaultShare } from '../../../main/lab/lab-host.js'
import { FakeLabHost } from './fake-lab-host.js'

/** A machine with a kernel fault path and a power switch, as an SSH host with root has. */
class KernelFakeHost extends FakeLabHost {
  readonly applied = new Map<string, { share: KernelFaultShare; forMs: number }>()
  readonly healedParts: string[] = []
  cleared = 0
  /** what kernelFaultUnavailable answers (null = it can) */
  unavailable: string | null = null
  power: 'on' | 'off' = 'on'
  powerOns = 0

  async kernelFaultUnavailable(): Promise<string | null> {
    return this.unavailable
  }

  async applyKernelFault(id: string, share: KernelFaultShare, forMs: number): Promise<KernelFaultPart> {
    this.applied.set(id, { share, forMs })
    return { path: 'nft', detail: `nft table inet ftlab_${id}`, record: { id } }
  }

  async healKernelFault(part: KernelFaultPart): Promise<void> {
    const id = (part.record as { id: string }).id
    this.healedParts.push(id)
    this.applied.delete(id)
  }

  async clearKernelFaults(): Promise<string[]> {
    this.cleared++
    const ids = [...this.applied.keys()]
    this.applied.clear()
    return ids
  }

  powerDriver(): HostPowerDriver {
    return {
      kind: 'command',
      canPowerOn: true,
      off: async () => {
        this.power = 'off'
        await Promise.all(this.agents.filter((a) => a.boot.id === 'a').map((a) => a.exit()))
        return 'switched off'
      },
      on: async () => {
        this.power = 'on'
        this.powerOns++
        return 'switched on'
      }
    }
  }
}

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function startLab<H extends FakeLabHost = FakeLabHost>(configure?: (host: H) => void, make: () => H = () => new FakeLabHost() as H) {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-lab-'))
  cleanups.push(() => rmSync(home, { recursive: true, force: true }))
  const host = make()
  cleanups.push(() => host.closeAll())
  configure?.(host)
  const store = new LabStore(home)
  const lab = await Lab.start({ name: 't', guest: 'kv', mode: 'rsm' }, () => host, store)
  cleanups.push(() => lab.close())
  return { home, host, store, lab }
}

describe('Lab orchestration', () => {
  it('starts the disk server, then b as backup, then a as primary of generation 1, and saves the lab 0600', async () => {
    const { host, store, lab } = await startLab()
    const [a, b, disk] = ['a', 'b', 'disk'].map((id) => host.agent(id))
    expect(disk.spec).toMatchObject({ role: 'disk-server', blockSize: 4096 })
    const diskAddr = (disk.spec as Extract<StartRole, { role: 'disk-server' }>).listen
    expect(b.spec).toMatchObject({ role: 'replica', as: 'backup', gen: 1, guest: 'kv', mode: 'rsm', peer: { id: 'a' }, disk: diskAddr })
    expect(a.spec).toMatchObject({
      role: 'replica',
      as: 'primary',
      gen: 1,
      peer: { id: 'b', channel: (b.spec as { channel: unknown }).channel },
      disk: diskAddr
    })
    // every agent got the same lab key and its own control token
    expect(new Set([a, b, disk].map((x) => x.boot.labKey)).size).toBe(1)
    expect(new Set([a, b, disk].map((x) => x.boot.controlToken)).size).toBe(3)
    expect(statSync(store.path('t')).mode & 0o777).toBe(0o600)
    const saved = store.load('t')!
    expect(saved.hosts.a.pid).toBe(a.pid)
    expect(lab.serviceEndpoints()).toEqual([saved.hosts.a.service, saved.hosts.b.service])
  })

  it('cleans up every agent when a role does not start, and says which agent refused', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-lab-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const host = new FakeLabHost()
    cleanups.push(() => host.closeAll())
    host.onStart = (a) => {
      if (a.boot.id === 'b') a.failStart = 'the replica role is not wired yet'
    }
    const store = new LabStore(home)
    await expect(Lab.start({ name: 't' }, () => host, store)).rejects.toThrow("lab 't' did not start: agent b: the replica role is not wired yet")
    expect(host.agents.every((a) => !a.alive)).toBe(true)
    expect(store.load('t')).toBeNull()
  })

  it('waits for a slow launch before tearing down after another launch failed, so no agent is left behind', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-lab-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const host = new FakeLabHost()
    cleanups.push(() => host.closeAll())
    host.beforeLaunch = async (boot) => {
      if (boot.id === 'disk') throw new Error('disk host unreachable')
      if (boot.id === 'b') await new Promise((r) => setTimeout(r, 200))
    }
    const store = new LabStore(home)
    await expect(Lab.start({ name: 't' }, () => host, store)).rejects.toThrow(/disk host unreachable/)
    expect(host.agents.map((a) => a.boot.id).sort()).toEqual(['a', 'b'])
    expect(host.agents.every((a) => !a.alive)).toBe(true)
    expect(store.load('t')).toBeNull()
  })

  it('does not call a lab started until the backup holds the boot entry, and cleans up when it never does', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-lab-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const host = new FakeLabHost()
    cleanups.push(() => host.closeAll())
    host.onStart = (a) => {
      if (a.boot.id === 'b') a.withholdEntries = true
    }
    const store = new LabStore(home)
    await expect(Lab.start({ name: 't', readyTimeoutMs: 300 }, () => host, store)).rejects.toThrow(
      "lab 't' did not start: backup b did not receive the boot entry within 300 ms (role backup, logging channel down, last entry 0)"
    )
    expect(host.agents.every((a) => !a.alive)).toBe(true)
    expect(store.load('t')).toBeNull()
  })

  it('refuses to start a lab whose agents still run', async () => {
    const { host, store } = await startLab()
    await expect(Lab.start({ name: 't' }, () => host, store)).rejects.toThrow(/lab 't' is already running \(a pid \d+, b pid \d+, disk pid \d+\)/)
  })

  it('shows a killed host as down in status instead of failing', async () => {
    const { lab } = await startLab()
    await lab.powerCut('a')
    const rows = await lab.status()
    expect(rows.map((r) => [r.host, r.state])).toEqual([
      ['a', 'down'],
      ['b', 'up'],
      ['disk', 'up']
    ])
    expect(rows[1].status?.role).toBe('backup')
    await expect(lab.powerCut('a')).rejects.toThrow("host a's power is already cut (f1); power it on or restore redundancy")
  })

  it('turns a link cut into a drop on both ends, each with the dead-man deadline, and heals it', async () => {
    const { host, lab } = await startLab()
    const f = await lab.injectFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false }, 5000)
    expect(host.agent('a').faults.get(f.id)).toEqual({ kind: 'drop', peers: ['b'], direction: 'both' })
    expect(host.agent('b').faults.get(f.id)).toEqual({ kind: 'drop', peers: ['a'], direction: 'both' })
    const req = host.agent('a').requests.find((r) => r.t === 'fault')
    expect(req).toMatchObject({ deadlineMs: 5000 })
    expect(lab.openFaults().map((x) => x.id)).toEqual([f.id])
    expect(lab.openFaults()[0]).toMatchObject({ path: 'agent-filter', healsAt: expect.any(Number) })
    expect(lab.openFaults()[0].note).toBeUndefined()
    expect(await lab.heal(f.id)).toEqual({ healed: [f.id], warnings: [] })
    expect(host.agent('a').faults.size).toBe(0)
    expect(host.agent('b').faults.size).toBe(0)
    expect(lab.openFaults()).toEqual([])
    await expect(lab.heal(f.id)).rejects.toThrow(`no open fault '${f.id}' (none are open)`)
  })

  it('pauses with a host-side dead-man, shows the host as paused, and heal all resumes it', async () => {
    const { host, lab } = await startLab()
    await lab.injectFault({ kind: 'pause', host: 'b' }, 10_000)
    expect(host.agent('b').paused).toBe(true)
    expect([...host.scheduled.values()]).toEqual([{ pid: host.agent('b').pid, ms: 10_000 }])
    expect((await lab.status()).find((r) => r.host === 'b')?.state).toBe('paused')
    await lab.injectFault({ kind: 'isolate', host: 'disk' })
    expect((await lab.heal('all')).healed).toHaveLength(2)
    expect(host.agent('b').paused).toBe(false)
    expect(host.scheduled.size).toBe(0)
    expect(host.agent('disk').faults.size).toBe(0)
    expect(host.agent('a').requests.some((r) => r.t === 'heal' && (r as unknown as { faultId: string }).faultId === '*')).toBe(true)
  })

  it('refuses a network fault on a paused host at once instead of timing out', async () => {
    const { lab } = await startLab()
    await lab.injectFault({ kind: 'pause', host: 'a' })
    await expect(lab.injectFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false })).rejects.toThrow(
      'host a is paused, so its agent cannot apply cut a↔b; heal the pause first'
    )
  })

  it('refuses a fault on a host that is down', async () => {
    const { lab } = await startLab()
    await lab.powerCut('b')
    await expect(lab.injectFault({ kind: 'isolate', host: 'b' })).rejects.toThrow('host b is down; cannot apply isolate b')
  })

  it('restores redundancy into the dead slot in generation g+1, and can go back the other way', async () => {
    const { host, lab, store } = await startLab()
    await lab.powerCut('a')
    host.agent('b').role = 'live' // b went live alone
    const r1 = await lab.restore()
    expect(r1).toEqual({ from: 'b', to: 'a', gen: 2 })
    const fresh = host.agent('a')
    expect(fresh.spec).toMatchObject({ role: 'replica', as: 'joining', gen: 2, peer: { id: 'b' } })
    const saved = store.load('t')!
    expect(saved.hosts.a.incarnation).toBe(2)
    expect(saved.hosts.a.pid).toBe(fresh.pid)
    expect((fresh.spec as { service: unknown }).service).toEqual(saved.hosts.a.service) // same slot, same service port
    expect(host.agent('b').requests.find((x) => x.t === 'restore')).toMatchObject({ peer: { id: 'a', channel: saved.hosts.a.channel }, gen: 2 })

    // and back: b dies, a goes live, b is restored in generation 3
    await lab.powerCut('b')
    fresh.role = 'live'
    expect(await lab.restore()).toEqual({ from: 'a', to: 'b', gen: 3 })
    expect(lab.generation).toBe(3)
  })

  it('refuses at once to restore across an open cut of the path the snapshot must take, naming the fault', async () => {
    const { host, lab } = await startLab()
    const cut = await lab.injectFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false }, 60_000)
    await lab.powerCut('a')
    host.agent('b').role = 'live'
    await expect(lab.restore()).rejects.toThrow(
      `cannot restore redundancy from b onto a while ${cut.id} (cut a↔b) is open: the snapshot could not get through; heal it first (\`ftlab heal ${cut.id}\`)`
    )
    expect(host.agent('b').requests.some((x) => x.t === 'restore')).toBe(false)
    await lab.heal(cut.id)
    expect(await lab.restore()).toEqual({ from: 'b', to: 'a', gen: 2 })
  })

  it("restores onto another machine: the slot keeps its id, gets that machine's addresses, and stays there", async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-lab-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const host = new FakeLabHost()
    const spare = new FakeLabHost('10.0.0.14')
    cleanups.push(
      () => host.closeAll(),
      () => spare.closeAll()
    )
    const hostOf = (id: string) => {
      if (id === 'spare') return spare
      if (['a', 'b', 'disk'].includes(id)) return host
      throw new Error(`no machine '${id}'`)
    }
    const store = new LabStore(home)
    const lab = await Lab.start({ name: 't' }, hostOf, store)
    cleanups.push(() => lab.close())
    const before = lab.serviceEndpoints()
    await lab.powerCut('a')
    host.agent('b').role = 'live'
    await expect(lab.restore({ onto: 'nowhere' })).rejects.toThrow("cannot restore a onto 'nowhere': no machine 'nowhere'")
    await expect(lab.restore({ onto: 'b' })).rejects.toThrow("machine 'b' already plays b")

    const r = await lab.restore({ onto: 'spare' })
    expect(r).toEqual({ from: 'b', to: 'a', gen: 2, machine: 'spare' })
    const fresh = spare.agent('a')
    expect(fresh.spec).toMatchObject({
      role: 'replica',
      as: 'joining',
      gen: 2,
      channel: { host: '10.0.0.14' },
      service: { host: '10.0.0.14' },
      peer: { id: 'b' }
    })
    const saved = store.load('t')!
    expect(saved.hosts.a.machine).toBe('spare')
    expect(host.agent('b').requests.find((x) => x.t === 'restore')).toMatchObject({ peer: { id: 'a', channel: saved.hosts.a.channel }, gen: 2 })
    // clients learn the moved service; b's is untouched
    expect(lab.serviceEndpoints()).toEqual([saved.hosts.a.service, before[1]])
    expect(lab.serviceEndpoints()[0]).not.toEqual(before[0])
    expect(lab.machineOf('a')).toBe('spare')

    // a console opening the lab later finds the slot on the spare, and faults go there
    const again = Lab.open('t', hostOf, store)
    cleanups.push(() => again.close())
    expect((await again.status()).find((x) => x.host === 'a')).toMatchObject({ state: 'up', pid: fresh.pid })
    await again.powerCut('a')
    expect(fresh.alive).toBe(false)
    // a plain restore now restarts the slot where it lives: on the spare
    host.agent('b').role = 'live'
    expect(await again.restore()).toEqual({ from: 'b', to: 'a', gen: 3 })
    expect(spare.agent('a').pid).not.toBe(fresh.pid)
    expect(spare.agent('a').spec).toMatchObject({ channel: saved.hosts.a.channel })
  })

  it('stops a halted replica before starting a fresh one in its slot', async () => {
    const { host, lab } = await startLab()
    const oldA = host.agent('a')
    oldA.role = 'halted'
    host.agent('b').role = 'live'
    await lab.restore()
    expect(oldA.alive).toBe(false)
    expect(oldA.requests.some((r) => r.t === 'stop')).toBe(true)
  })

  it('says why there is nothing to restore from', async () => {
    const { lab } = await startLab()
    await expect(lab.restore()).rejects.toThrow('no replica is live alone, so there is nothing to restore from: a is primary, b is backup')
  })

  it('merges agent events and operator actions, and a reopened lab reads the same rings', async () => {
    const { host, lab, store } = await startLab()
    const seen: LabEvent[] = []
    const caught = new Set<string>()
    await new Promise<void>((resolve) => {
      lab.onEvent((e) => {
        seen.push(e)
        if (e.type === 'caught-up' && e.host) caught.add(e.host)
        if (caught.size === 3) resolve()
      })
    })
    const roles = seen.filter((e) => e.source === 'agent' && e.type === 'role').map((e) => [e.host, e.data.role])
    expect(roles).toEqual(
      expect.arrayContaining([
        ['a', 'primary'],
        ['b', 'backup'],
        ['disk', 'disk-server']
      ])
    )
    const live = new Promise<LabEvent>((resolve) => lab.onEvent((e) => e.type === 'go-live' && resolve(e)))
    host.agent('b').emitEvent('go-live', { gen: 1 })
    const ev = await live
    expect(ev).toMatchObject({ source: 'agent', host: 'b', agent: { seq: 2, incarnation: 1 } })
    const op = new Promise<LabEvent>((resolve) => lab.onEvent((e) => e.source === 'operator' && resolve(e)))
    await lab.injectFault({ kind: 'isolate', host: 'a' })
    expect((await op).type).toBe('fault')

    const again = Lab.open('t', () => host, store)
    cleanups.push(() => again.close())
    const replayed = await new Promise<LabEvent>((resolve) => again.onEvent((e) => e.type === 'go-live' && resolve(e)))
    expect(replayed.agent?.seq).toBe(2)
    expect(again.openFaults()).toHaveLength(1)
  })

  it('stop stops every agent and forgets the lab', async () => {
    const { host, lab, store } = await startLab()
    await lab.injectFault({ kind: 'pause', host: 'a' })
    await lab.stop()
    expect(host.agents.every((a) => !a.alive)).toBe(true)
    expect(host.scheduled.size).toBe(0)
    expect(store.load('t')).toBeNull()
    expect(() => Lab.open('t', () => host, store)).toThrow("no lab named 't'")
  })
})

describe('one fault registry for every kind of host', () => {
  it('lists a power cut as an open fault with no deadline until restore refills the slot; heal does not close it', async () => {
    const { host, lab } = await startLab()
    const cut = await lab.powerCut('a')
    expect(cut).toMatchObject({ spec: { kind: 'power', host: 'a' }, healsAt: null, path: 'kill' })
    expect(cut.note).toMatch(/agent a \(pid \d+\) killed/)
    expect(lab.openFaults().map((f) => f.id)).toEqual([cut.id])
    expect(await lab.heal('all')).toEqual({ healed: [], warnings: [] })
    expect(lab.openFaults().map((f) => f.id)).toEqual([cut.id])
    await expect(lab.heal(cut.id)).rejects.toThrow(`${cut.id} is a power cut of a: it heals by restore redundancy, not by heal`)
    await expect(lab.powerOn('a')).rejects.toThrow(/host a has no power driver/)
    host.agent('b').role = 'live'
    expect(await lab.restore()).toEqual({ from: 'b', to: 'a', gen: 2 })
    expect(lab.openFaults()).toEqual([])
  })

  it('heal all with a paused agent and an open cut on it resumes first, then heals both, without an error', async () => {
    const { host, lab } = await startLab()
    const cut = await lab.injectFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false }, 60_000)
    const pause = await lab.injectFault({ kind: 'pause', host: 'a' }, 60_000)
    // a stopped agent answers nothing: healing its cut first would wait for a timeout and fail
    expect(host.agent('a').paused).toBe(true)
    const r = await lab.heal('all')
    expect(r.warnings).toEqual([])
    expect(r.healed.sort()).toEqual([cut.id, pause.id].sort())
    expect(host.agent('a').paused).toBe(false)
    expect(host.agent('a').faults.size).toBe(0)
    expect(host.agent('b').faults.size).toBe(0)
    expect(lab.openFaults()).toEqual([])
  })

  it('returns what heal all could not do as warnings, not as an error', async () => {
    const { host, lab } = await startLab()
    const isolate = (await lab.injectFault({ kind: 'isolate', host: 'b' }, 60_000)).id
    host.agent('disk').paused = true // an agent that stopped answering without the lab knowing
    const r = await lab.heal('all')
    expect(r.healed).toEqual([isolate])
    expect(r.warnings.length).toBeGreaterThan(0)
    expect(r.warnings.join('\n')).toMatch(/agent disk/)
  }, 20_000)

  it("puts a network fault into the hosts' kernels where they can, with the lab's own id, and heals it by id", async () => {
    const { host, lab } = await startLab(undefined, () => new KernelFakeHost())
    const f = await lab.injectFault({ kind: 'cut', from: 'a', to: 'b', oneWay: false }, 5000)
    expect(f).toMatchObject({ id: 'f1', path: 'nft', spec: { kind: 'cut', from: 'a', to: 'b' }, parts: [] })
    expect(f.kernel).toHaveLength(1)
    expect(f.kernel![0]).toMatchObject({ host: 'a', machine: 'a', part: { path: 'nft' } })
    expect([...host.applied.values()]).toEqual([{ share: { kind: 'cut', peer: '127.0.0.1', direction: 'both' }, forMs: 5000 }])
    const hostId = [...host.applied.keys()][0]
    expect(hostId).toMatch(/^[0-9a-f]{4}_1_0$/)
    // the agents' filter stays out of it
    expect(host.agent('a').faults.size + host.agent('b').faults.size).toBe(0)
    expect(lab.openFaults().map((x) => [x.id, x.path])).toEqual([['f1', 'nft']])
    expect(await lab.heal('f1')).toEqual({ healed: ['f1'], warnings: [] })
    expect(host.healedParts).toEqual([hostId])
    expect(lab.openFaults()).toEqual([])
    // heal all also sweeps the hosts' kernels for what an earlier console left
    await lab.heal('all')
    expect(host.cleared).toBe(1)
  })

  it("falls back to the agents' filter when a host cannot do it in its kernel, and says why in the note", async () => {
    const { host, lab } = await startLab(
      (h) => (h.unavailable = 'network faults need root on the host (uid 1000)'),
      () => new KernelFakeHost()
    )
    const f = await lab.injectFault({ kind: 'isolate', host: 'b' }, 5000)
    expect(f.path).toBe('agent-filter')
    expect(f.note).toBe("the hosts' kernels cannot do this (b: network faults need root on the host (uid 1000)); the agents' transport filter does it instead")
    expect(host.agent('b').faults.get(f.id)).toEqual({ kind: 'isolate' })
    expect(host.applied.size).toBe(0)
  })

  it("cuts power with the machine's driver, and power-on switches it back and closes the cut", async () => {
    const { host, lab } = await startLab(undefined, () => new KernelFakeHost())
    const cut = await lab.powerCut('a')
    expect(cut).toMatchObject({ path: 'driver', healsAt: null, note: 'command driver: switched off' })
    expect(host.power).toBe('off')
    expect(lab.canPowerOn('a')).toBe(true)
    await expect(lab.powerCut('a')).rejects.toThrow(`host a's power is already cut (${cut.id})`)
    expect(await lab.powerOn('a')).toEqual({ driver: 'command', detail: 'switched on' })
    expect(lab.openFaults()).toEqual([])
    expect((await lab.status()).find((r) => r.host === 'a')?.state).toBe('down')
  })

  it('restore switches a machine cut by its driver back on before starting the fresh agent there', async () => {
    const { host, lab } = await startLab(undefined, () => new KernelFakeHost())
    await lab.powerCut('a')
    host.agent('b').role = 'live'
    expect(await lab.restore()).toEqual({ from: 'b', to: 'a', gen: 2 })
    expect(host.powerOns).toBe(1)
    expect(lab.openFaults()).toEqual([])
  })
})

describe('planAgentFaults', () => {
  it('cuts one way on both ends: out at the sender, in at the receiver', () => {
    expect(planAgentFaults({ kind: 'cut', from: 'a', to: 'disk', oneWay: true })).toEqual([
      { host: 'a', fault: { kind: 'drop', peers: ['disk'], direction: 'out' } },
      { host: 'disk', fault: { kind: 'drop', peers: ['a'], direction: 'in' } }
    ])
  })

  it('puts loss and delay on the way out of each end, so each direction is hit once', () => {
    expect(planAgentFaults({ kind: 'loss', from: 'a', to: 'b', probability: 0.1 }).map((p) => p.fault)).toEqual([
      { kind: 'drop', peers: ['b'], direction: 'out', probability: 0.1 },
      { kind: 'drop', peers: ['a'], direction: 'out', probability: 0.1 }
    ])
    expect(planAgentFaults({ kind: 'delay', from: 'a', to: 'b', ms: 30 }).map((p) => [p.host, p.fault])).toEqual([
      ['a', { kind: 'delay', peers: ['b'], ms: 30 }],
      ['b', { kind: 'delay', peers: ['a'], ms: 30 }]
    ])
  })
})
