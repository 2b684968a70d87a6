// What a remote lab remembers beyond the orchestration's own state (lab-state.ts): the lab
// file it was deployed from (so later commands need only the name) and when. Faults are not
// here: the lab state keeps the one registry for every kind of lab. Saved next to the lab
// state as <name>.remote.json, mode 0600, written through a temp file and a rename. No
// secrets in it: the control tokens live in the lab state file (also 0600), passwords nowhere.
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkLabName } from '../lab/lab-state.js'
import type { LabFile } from './lab-file.js'

export const REMOTE_STATE_VERSION = 1

export interface RemoteState {
  version: typeof REMOTE_STATE_VERSION
  name: string
  deployedAt: number
  file: LabFile
}

export class RemoteStore {
  readonly labsDir: string

  constructor(home: string) {
    this.labsDir = join(home, 'labs')
  }

  /** A lab name has no dots, so this never collides with another lab's state file. */
  path(name: string): string {
    return join(this.labsDir, `${checkLabName(name)}.remote.json`)
  }

  load(name: string): RemoteState | null {
    const p = this.path(name)
    let text: string
    try {
      text = readFileSync(p, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw new Error(`cannot read ${p}: ${(e as Error).message}`, { cause: e })
    }
    let s: RemoteState
    try {
      s = JSON.parse(text) as RemoteState
    } catch (e) {
      throw new Error(`${p} is not valid JSON (${(e as Error).message}); remove it once the lab's hosts are torn down`, { cause: e })
    }
    if (s?.version !== REMOTE_STATE_VERSION || typeof s.file !== 'object' || s.file === null) {
      throw new Error(`${p} is not a version ${REMOTE_STATE_VERSION} remote lab state`)
    }
    // an older console kept host-side faults here too; their dead-men heal them on the hosts
    return { version: s.version, name: s.name, deployedAt: s.deployedAt, file: s.file }
  }

  save(s: RemoteState): void {
    mkdirSync(this.labsDir, { recursive: true, mode: 0o700 })
    const p = this.path(s.name)
    const tmp = `${p}.${process.pid}.tmp`
    writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n', { mode: 0o600 })
    chmodSync(tmp, 0o600)
    renameSync(tmp, p)
  }

  remove(name: string): void {
    rmSync(this.path(name), { force: true })
  }
}
