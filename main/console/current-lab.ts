// The console's current lab, whatever drives it: a LabDriver over a real `Lab` (local,
// remote, and the simulated lab on the real core), or, until the simulated lab on the real
// core lands (main/lab/sim-lab.ts), the hand-written imitation in main/api/fake-backend.ts.
import type { FaultHealResult, FaultInfo, FaultInjectParams, HostId, LabKind, LabStatus, LoadStartParams, LoadStatus } from '../api/contract.js'
import type { UnnumberedEvent } from '../api/event-log.js'
import type { FakeBackend } from '../api/fake-backend.js'
import type { LabDriver } from './lab-driver.js'

export interface CurrentLab {
  readonly kind: LabKind
  readonly name: string
  status(): LabStatus
  faultInject(p: FaultInjectParams): Promise<FaultInfo>
  faultHeal(id: string): Promise<FaultHealResult>
  restore(onto?: string): Promise<LabStatus>
  powerOn(host: HostId): Promise<LabStatus>
  loadStart(p: LoadStartParams): Promise<LoadStatus> | LoadStatus
  loadStop(): LoadStatus
  /** stop the lab's agents (local, simulated) */
  stop(): Promise<void>
  /** let go of the lab; its agents keep running */
  detach(): Promise<void>
}

export function driverLab(d: LabDriver): CurrentLab {
  return {
    kind: d.kind,
    name: d.name,
    status: () => d.snapshot(),
    faultInject: (p) => d.faultInject(p),
    faultHeal: (id) => d.faultHeal(id),
    restore: (onto) => d.restore(onto),
    powerOn: (h) => d.powerOn(h),
    loadStart: (p) => d.loadStart(p),
    loadStop: () => d.load.stop(),
    stop: () => d.stop(),
    detach: () => d.closeAfterLoad()
  }
}

/** The imitation as the simulated lab; its events are republished into the console's log. */
export function fakeLab(fake: FakeBackend, publish: (ev: UnnumberedEvent) => void): CurrentLab {
  const off = fake.subscribe((ev) => {
    const { seq: _seq, ...rest } = ev
    publish(rest as UnnumberedEvent)
  })
  const close = async () => {
    off()
    await fake.close()
  }
  return {
    kind: 'simulated',
    name: 'simulated',
    status: () => fake.snapshotNow(),
    faultInject: (p) => fake.faultInject(p),
    faultHeal: async (id) => ({ warnings: [], ...(await fake.faultHeal({ id })) }),
    restore: () => fake.labRestore(),
    powerOn: (h) => fake.powerOn(h),
    loadStart: (p) => fake.loadStart(p),
    loadStop: () => fake.loadStopNow(),
    stop: async () => {
      await fake.labStop()
      await close()
    },
    detach: close
  }
}
