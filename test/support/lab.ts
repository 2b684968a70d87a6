// Waiting on a lab in integration tests: poll the status until a condition on the hosts'
// roles holds. The status shape is the contract; the agents' event names are theirs.
import type { HostStatusRow } from '../../main/lab/lab.js'

export type StatusRows = Map<string, HostStatusRow>

/** A local Lab or a RemoteLab: anything that answers a status per host. */
export interface HasStatus {
  status(timeoutMs?: number): Promise<HostStatusRow[]>
}

export interface PollOptions {
  timeoutMs?: number
  /** per status request (remote hosts answer through SSH: give them longer) */
  statusTimeoutMs?: number
  everyMs?: number
}

export async function untilStatus(lab: HasStatus, what: string, ok: (rows: StatusRows) => boolean, opts: number | PollOptions = {}): Promise<StatusRows> {
  const { timeoutMs = 20_000, statusTimeoutMs = 1000, everyMs = 100 } = typeof opts === 'number' ? { timeoutMs: opts } : opts
  const deadline = Date.now() + timeoutMs
  let last: StatusRows = new Map()
  while (Date.now() < deadline) {
    last = new Map((await lab.status(statusTimeoutMs)).map((r) => [r.host, r]))
    if (ok(last)) return last
    await new Promise((r) => setTimeout(r, everyMs))
  }
  const seen = [...last.values()].map((r) => `${r.host}=${r.state === 'up' ? r.status?.role : r.state}`).join(' ')
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last status: ${seen}`)
}

export const role = (rows: StatusRows, id: string) => rows.get(id)?.status?.role

/** `primary` is primary, `backup` its backup, and the logging channel between them is up. */
export const paired = (primary: string, backup: string) => (rows: StatusRows) =>
  role(rows, primary) === 'primary' && role(rows, backup) === 'backup' && rows.get(primary)?.status?.channel?.connected === true
