// The console's current lab: a LabDriver over a real `Lab` (local, remote, or the simulated
// lab on the real core, main/lab/sim-lab.ts), as the session and the console backend use it.
import type { FaultHealResult, FaultInfo, FaultInjectParams, HostId, LabKind, LabStatus, LoadStartParams, LoadStatus } from '../api/contract.js'
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
  /** the simulated lab's clock (virtual ms since it started), for what must run on the simulator's time (a soak's schedule); absent on other labs */
  virtualNow?(): number
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
