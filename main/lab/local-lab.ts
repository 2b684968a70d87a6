// The embedded local lab: all three hosts are agent processes on this machine, network
// faults go through the agents' own transport filter, so every drill runs without root.
import { Lab, type LabConfig } from './lab.js'
import { LabStore } from './lab-state.js'
import { findAgentBundle, LocalHost } from './local-host.js'

/** The embedded local lab's name, for the console and every `ftlab` command alike. */
export const LOCAL_LAB_NAME = 'local'

export interface LocalLabOptions {
  /** FT Lab's home (default $FTLAB_HOME or ~/.ftlab) */
  home?: string
  /** the agent bundle (default: found next to the console) */
  agentBundle?: string
}

function parts(opts: LocalLabOptions): { store: LabStore; hostOf: () => LocalHost } {
  const host = new LocalHost(opts.agentBundle ?? findAgentBundle())
  return { store: new LabStore(opts.home), hostOf: () => host }
}

export function startLocalLab(cfg: LabConfig, opts: LocalLabOptions = {}): Promise<Lab> {
  const { store, hostOf } = parts(opts)
  return Lab.start(cfg, hostOf, store)
}

export function openLocalLab(name: string, opts: LocalLabOptions = {}): Lab {
  const { store, hostOf } = parts(opts)
  return Lab.open(name, hostOf, store)
}
