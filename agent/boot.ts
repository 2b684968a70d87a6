// The boot config arrives as one JSON line on stdin (never argv: the process list is
// world-readable and it carries the lab key). Every field is checked and a bad one is
// named, with what was expected, so an operator can fix the deploy at once.
import { isAbsolute } from 'node:path'
import type { AgentBootConfig } from './control/protocol.js'

export const MAX_BOOT_LINE_BYTES = 64 * 1024

export class BootConfigError extends Error {
  constructor(message: string) {
    super(`boot config: ${message}`)
    this.name = 'BootConfigError'
  }
}

const HEX64 = /^[0-9a-fA-F]{64}$/
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

function shape(v: unknown): string {
  if (v === undefined) return 'nothing'
  if (typeof v === 'string') return `a string of ${v.length} characters`
  if (v === null) return 'null'
  return `${Array.isArray(v) ? 'an array' : typeof v}`
}

export function parseBootConfig(line: string): AgentBootConfig {
  let raw: unknown
  try {
    raw = JSON.parse(line)
  } catch (err) {
    throw new BootConfigError(
      `stdin's first line is not JSON (${(err as Error).message}); expected one line {"id","labKey","controlToken","controlPort","dataDir"}`
    )
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BootConfigError(`expected a JSON object, got ${shape(raw)}`)
  const r = raw as Record<string, unknown>
  if (typeof r.id !== 'string' || !AGENT_ID.test(r.id))
    throw new BootConfigError(
      `field "id" must be 1 to 64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit; got ${typeof r.id === 'string' ? JSON.stringify(r.id) : shape(r.id)}`
    )
  if (typeof r.labKey !== 'string' || !HEX64.test(r.labKey))
    throw new BootConfigError(`field "labKey" must be 64 hex characters (32 bytes); got ${shape(r.labKey)}`)
  if (typeof r.controlToken !== 'string' || !HEX64.test(r.controlToken))
    throw new BootConfigError(`field "controlToken" must be 64 hex characters (32 bytes); got ${shape(r.controlToken)}`)
  if (typeof r.controlPort !== 'number' || !Number.isInteger(r.controlPort) || r.controlPort < 0 || r.controlPort > 65535) {
    throw new BootConfigError(`field "controlPort" must be an integer from 0 to 65535 (0 = any free port); got ${JSON.stringify(r.controlPort) ?? 'nothing'}`)
  }
  if (typeof r.dataDir !== 'string' || r.dataDir.length === 0 || !isAbsolute(r.dataDir))
    throw new BootConfigError(`field "dataDir" must be an absolute path; got ${typeof r.dataDir === 'string' ? JSON.stringify(r.dataDir) : shape(r.dataDir)}`)
  const known = new Set(['id', 'labKey', 'controlToken', 'controlPort', 'dataDir'])
  const extra = Object.keys(r).filter((k) => !known.has(k))
  if (extra.length)
    throw new BootConfigError(
      `unknown field${extra.length > 1 ? 's' : ''} ${extra.map((k) => JSON.stringify(k)).join(', ')} (a newer console than this agent?)`
    )
  return { id: r.id, labKey: r.labKey, controlToken: r.controlToken, controlPort: r.controlPort, dataDir: r.dataDir }
}
