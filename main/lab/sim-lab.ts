// The simulated lab: the real replica core, edge, disk arbiter and guests in this process,
// under the simulator's virtual clock and network (sim/lab/), driven by the same Lab
// orchestration as local and remote labs. No processes, any speed; the replicas' service
// ports are real loopback listeners, so load clients and redis-cli work against it.
//
// The lab lives and dies with the console process: its state goes to a temporary FT Lab
// home that close() removes, and nothing of it survives a console restart (there is no
// process to reattach to).
import { randomInt } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TimingConfig } from '../../agent/control/protocol.js'
import { SimLab } from '../../sim/lab/sim-host.js'
import { checkSpeed } from '../../sim/lab/realtime.js'
import { Lab, type LabExperiment } from './lab.js'
import { LabStore } from './lab-state.js'

export const SIM_LAB_NAME = 'simulated'

export interface SimLabOptions {
  guest: 'kv' | 'bank'
  mode: 'rsm' | 'state-transfer'
  timing?: TimingConfig
  /** 0.1..50, virtual ms per real ms (default 1) */
  speed?: number
  /** the simulated network's and devices' seed (default: random; reported in SimControl) */
  seed?: number
  name?: string
  readyTimeoutMs?: number
  /** drill-only switches in the replicas */
  experiments?: LabExperiment[]
}

export interface SimControl {
  readonly seed: number
  /** virtual ms per real ms; assigning it is setSpeed */
  speed: number
  setSpeed(x: number): void
  /** virtual ms since the simulated lab started (what its replicas' clocks read, less the epoch) */
  virtualNow(): number
  /** stop the lab's agents and the clock, and remove the lab's temporary state */
  close(): Promise<void>
}

export async function startSimLab(opts: SimLabOptions): Promise<{ lab: Lab; sim: SimControl }> {
  const speed = checkSpeed(opts.speed ?? 1)
  if (opts.seed !== undefined && !Number.isSafeInteger(opts.seed)) throw new Error(`simulated lab seed must be an integer, got ${JSON.stringify(opts.seed)}`)
  const seed = opts.seed ?? randomInt(0, 2 ** 31)
  const home = mkdtempSync(join(tmpdir(), 'ftlab-sim-'))
  const machines = new SimLab(seed, speed)
  const cleanup = () => {
    machines.close()
    rmSync(home, { recursive: true, force: true })
  }
  let lab: Lab
  try {
    lab = await Lab.start(
      {
        name: opts.name ?? SIM_LAB_NAME,
        guest: opts.guest,
        mode: opts.mode,
        timing: opts.timing,
        readyTimeoutMs: opts.readyTimeoutMs,
        experiments: opts.experiments
      },
      (id) => machines.host(id),
      new LabStore(home)
    )
  } catch (err) {
    cleanup()
    throw err
  }
  let closed: Promise<void> | null = null
  const sim: SimControl = {
    seed,
    get speed() {
      return machines.world.speed
    },
    set speed(x: number) {
      machines.world.setSpeed(x)
    },
    setSpeed: (x) => machines.world.setSpeed(x),
    virtualNow: () => machines.world.virtualNow(),
    close: () =>
      (closed ??= (async () => {
        try {
          await lab.stop()
        } catch {
          // whatever did not stop gracefully goes with the clock below
        }
        cleanup()
      })())
  }
  return { lab, sim }
}
