// The built-in drills: the YAML files in drills/ at the top of the repository (readable and
// copyable by users), found next to the console the way the agent bundle is found.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { DrillInfo, LabKind } from '../api/contract.js'
import { parseScenario, type Scenario } from './scenario.js'

/** The folder of built-in drills: $FTLAB_DRILLS, else the nearest drills/ above this module. */
export function findDrillsDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.FTLAB_DRILLS) return resolve(env.FTLAB_DRILLS)
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const c = join(dir, 'drills')
    if (existsSync(join(c, 'power-cut-primary.yaml'))) return c
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  throw new Error('the built-in drills (drills/*.yaml) were not found next to the console; set FTLAB_DRILLS to their folder')
}

/**
 * The built-ins in the order the lecture builds its argument: fail-stop of each replica and of
 * both, the split brain the test-and-set averts, the disk server (or etcd) as the arbiter and
 * its single point of failure, a paused primary's late outputs, duplicates at cut-over,
 * restore, the two replication modes, then the two experiments that switch a rule off.
 * Files not named here follow in alphabetical order.
 */
const LECTURE_ORDER = [
  'power-cut-primary',
  'learned-failover',
  'power-cut-backup',
  'power-cut-both',
  'channel-cut-split-brain',
  'disk-server-partition',
  'etcd-arbiter-split-brain',
  'pause-primary',
  'duplicate-output',
  'restore-fail-back',
  'state-transfer-vs-rsm',
  'no-output-rule',
  'read-fast-path'
]

function lectureRank(name: string): number {
  const i = LECTURE_ORDER.indexOf(name)
  return i < 0 ? LECTURE_ORDER.length : i
}

export class DrillLibrary {
  constructor(private readonly dir: string = findDrillsDir()) {}

  names(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.slice(0, -'.yaml'.length))
      .sort((x, y) => lectureRank(x) - lectureRank(y) || x.localeCompare(y))
  }

  /** The file a built-in drill lives in (its path is what errors name). */
  path(name: string): string {
    return join(this.dir, `${name}.yaml`)
  }

  has(name: string): boolean {
    return /^[a-z0-9][a-z0-9-]{0,63}$/.test(name) && existsSync(this.path(name))
  }

  text(name: string): string {
    if (!this.has(name)) throw new Error(`no built-in drill '${name}' (built-in: ${this.names().join(', ')})`)
    return readFileSync(this.path(name), 'utf8')
  }

  load(name: string): Scenario {
    return parseScenario(this.text(name), `drills/${name}.yaml`)
  }

  list(): DrillInfo[] {
    return this.names().map((name) => {
      const text = this.text(name)
      const sc = parseScenario(text, `drills/${name}.yaml`)
      return { name, title: sc.title, explain: sc.explain, labs: labsFor(sc), experiments: sc.lab.experiments, text }
    })
  }
}

/**
 * The lab kinds a scenario can run on: all but the simulated lab where it needs etcd. A remote
 * lab that runs another shape (experiments, a mode, the tie-breaker) is redeployed for the drill
 * with the scenario's, and put back as deployed at the end (DrillRunner.reshapeRemote).
 */
export function labsFor(sc: Scenario): LabKind[] {
  const all: LabKind[] = ['simulated', 'local', 'remote']
  return all.filter((k) => !(k === 'simulated' && sc.lab.arbiter === 'etcd'))
}
