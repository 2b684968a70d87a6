// The lab file: which real machines play a, b and the disk server (and an optional spare),
// how to reach them over SSH, where the agents bind on the lab network, and how to cut their
// power. It is the operator's file, so every mistake is reported with the file and the
// field it is in. It never holds a secret: `auth: password` means "ask", and a `password`
// field is refused rather than silently ignored.
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, isAbsolute, resolve } from 'node:path'
import { isIP } from 'node:net'
import type { ArbiterSpec } from '../../agent/control/protocol.js'
import type { ReplicationMode } from '../../agent/vmm/types.js'
import type { LabFileForm } from '../api/contract.js'

export const LAB_FILE_VERSION = 1
export const SLOTS = ['a', 'b', 'disk', 'spare'] as const
export type Slot = (typeof SLOTS)[number]
export const REQUIRED_SLOTS: readonly Slot[] = ['a', 'b', 'disk']

export type AuthMethod = 'agent' | 'key' | 'password'

export type PowerSpec =
  | { driver: 'kill' }
  | { driver: 'command'; off: string; on?: string; status?: string }
  | { driver: 'ipmi'; host: string; user: string; port?: number; cipherSuite?: number }
  | { driver: 'libvirt'; uri: string; domain: string }
  | { driver: 'sysrq' }

/**
 * How network faults (nft, iptables, tc) and sysrq reach root on the host:
 * ssh = the login user runs them (it is root), sudo = `sudo -n` (passwordless sudo for that user),
 * netns = the console's machine runs them in a network namespace (the testbed only; needs the
 * console to be root). Without root on the host, network faults fall back to the agents' filter.
 */
export type FaultRun = { run: 'ssh' } | { run: 'sudo' } | { run: 'netns'; namespace: string }

export interface HostSpec {
  slot: Slot
  /** an address, a host name, or an alias from ~/.ssh/config */
  address: string
  user?: string
  port?: number
  identityFile?: string
  auth: AuthMethod
  proxyJump?: string
  /** the address the agents bind to and peers and clients use (the lab network) */
  labAddress: string
  /** the first port tried for lab services on this host */
  portBase: number
  power: PowerSpec
  faults: FaultRun
}

export interface LabFile {
  /** absolute path of the file it came from (for messages and for relative paths) */
  path: string
  version: typeof LAB_FILE_VERSION
  name?: string
  guest?: string
  mode?: ReplicationMode
  /** the lab network as a CIDR: `isolate` drops all of it (the console's SSH excepted) */
  network?: string
  /** the tie-breaker: absent or {kind: 'disk'} = the disk server; {kind: 'etcd', endpoints} = an etcd cluster */
  arbiter?: ArbiterSpec
  hosts: Partial<Record<Slot, HostSpec>> & Record<'a' | 'b' | 'disk', HostSpec>
}

export class LabFileError extends Error {
  constructor(
    readonly file: string,
    /** the dotted path of the JSON field, as the lab form names it ('hosts.a.address'); '' for the whole file */
    readonly field: string,
    /** what is wrong with that field, without the file and field in front */
    readonly detail: string,
    /** every problem found, this one first (a file can have one per host and more) */
    readonly all: LabFileError[] = []
  ) {
    super(
      `${file}: ${field ? `${field}: ` : ''}${detail}${
        all.length > 1
          ? ` (and ${all.length - 1} more: ${all
              .slice(1)
              .map((e) => e.field || 'file')
              .join(', ')})`
          : ''
      }`
    )
    this.name = 'LabFileError'
  }
}

export type LabFileCheck = { ok: true; file: LabFile } | { ok: false; errors: { field: string; message: string }[] }

/**
 * Check a lab file's text and collect every problem (at least one per host, and one per
 * field within a host), each with the dotted path of its field, for a form that shows each
 * error at its field.
 */
export function checkLabFileText(text: string, where = 'lab file'): LabFileCheck {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (e) {
    return { ok: false, errors: [{ field: '', message: `not valid JSON: ${jsonWhere(text, (e as Error).message)}` }] }
  }
  const r = collect(raw, where)
  if (r.errors.length) return { ok: false, errors: r.errors.map((e) => ({ field: e.field, message: e.detail })) }
  return { ok: true, file: r.file! }
}

export const DEFAULT_PORT_BASE = 47300

const HOST_FIELDS = ['address', 'user', 'port', 'identityFile', 'auth', 'proxyJump', 'labAddress', 'portBase', 'power', 'faults'] as const
const TOP_FIELDS = ['version', 'name', 'guest', 'mode', 'network', 'arbiter', 'hosts', '$comment'] as const
const SECRET_FIELDS = ['password', 'passphrase', 'secret', 'token', 'ipmiPassword']

export function loadLabFile(path: string): LabFile {
  const abs = resolve(path)
  let text: string
  try {
    text = readFileSync(abs, 'utf8')
  } catch (e) {
    throw new LabFileError(abs, '', `cannot read the lab file: ${(e as Error).message}`)
  }
  return parseLabFile(text, abs)
}

export function parseLabFile(text: string, path: string): LabFile {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (e) {
    throw new LabFileError(path, '', `not valid JSON: ${jsonWhere(text, (e as Error).message)}`)
  }
  return validateLabFile(raw, path)
}

/** JSON.parse says "at position N"; the operator wants a line and a column. */
function jsonWhere(text: string, msg: string): string {
  const m = /position (\d+)/.exec(msg)
  if (!m) return msg
  const pos = Number(m[1])
  const before = text.slice(0, pos)
  const line = before.split('\n').length
  const col = pos - before.lastIndexOf('\n')
  return `${msg.replace(/ in JSON at position \d+.*$/, '')} at line ${line}, column ${col}`
}

/** Check a parsed lab file; throws a LabFileError naming the first problem (and how many more there are). */
export function validateLabFile(raw: unknown, path: string): LabFile {
  const r = collect(raw, path)
  if (r.errors.length) {
    const [first] = r.errors
    throw new LabFileError(path, first.field, first.detail, r.errors)
  }
  return r.file!
}

/** Thrown inside a check to end it; collect() turns it into one error and goes on with the next check. */
class Stop extends Error {}

function collect(raw: unknown, path: string): { file: LabFile | null; errors: LabFileError[] } {
  const errors: LabFileError[] = []
  const fail = (field: string, msg: string): never => {
    errors.push(new LabFileError(path, field, msg))
    throw new Stop()
  }
  /** run one check; its first failure is recorded and the next check runs */
  const attempt = <T>(f: () => T): T | undefined => {
    try {
      return f()
    } catch (e) {
      if (e instanceof Stop) return undefined
      throw e
    }
  }
  const file = attempt(() => validateAll(raw, path, fail, attempt)) ?? null
  return { file: errors.length ? null : file, errors }
}

type Attempt = <T>(f: () => T) => T | undefined

function validateAll(raw: unknown, path: string, fail: Fail, attempt: Attempt): LabFile {
  if (!isObj(raw)) fail('', `the lab file must be a JSON object, got ${kind(raw)}`)
  const o = raw as Record<string, unknown>
  attempt(() => unknownFields(o, TOP_FIELDS, '', fail, attempt))
  attempt(() => o.version !== LAB_FILE_VERSION && fail('version', `must be ${LAB_FILE_VERSION}, got ${JSON.stringify(o.version)}`))
  attempt(() => {
    if (o.name !== undefined && (typeof o.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$/.test(o.name))) {
      fail('name', `must be 1 to 40 letters, digits, '-' or '_', starting with a letter or digit; got ${JSON.stringify(o.name)}`)
    }
  })
  attempt(() => o.guest !== undefined && o.guest !== 'kv' && o.guest !== 'bank' && fail('guest', `must be "kv" or "bank", got ${JSON.stringify(o.guest)}`))
  attempt(
    () =>
      o.mode !== undefined &&
      o.mode !== 'rsm' &&
      o.mode !== 'state-transfer' &&
      fail('mode', `must be "rsm" or "state-transfer", got ${JSON.stringify(o.mode)}`)
  )
  attempt(() => o.network !== undefined && !isCidr(o.network) && fail('network', `must be a network like "10.87.0.0/24", got ${JSON.stringify(o.network)}`))
  const arbiter = o.arbiter === undefined ? undefined : attempt(() => validateArbiter('arbiter', o.arbiter, fail))
  if (!isObj(o.hosts)) fail('hosts', `must be an object with the hosts a, b, disk (and optionally spare), got ${kind(o.hosts)}`)
  const hostsRaw = o.hosts as Record<string, unknown>
  for (const k of Object.keys(hostsRaw)) {
    attempt(() => !(SLOTS as readonly string[]).includes(k) && fail(`hosts.${k}`, `unknown host role; the roles are ${SLOTS.join(', ')}`))
  }
  for (const s of REQUIRED_SLOTS) attempt(() => hostsRaw[s] === undefined && fail(`hosts.${s}`, `is missing; a lab needs hosts a, b and disk`))
  const hosts: Partial<Record<Slot, HostSpec>> = {}
  for (const slot of SLOTS) {
    if (hostsRaw[slot] === undefined) continue
    const h = attempt(() => validateHost(slot, hostsRaw[slot], path, fail, attempt))
    if (h) hosts[slot] = h
  }
  // two roles on one machine would share one agent slot (deploy keeps one agent per user and host)
  const seen = new Map<string, Slot>()
  for (const h of Object.values(hosts)) {
    const key = `${h.user ?? ''}@${h.address}:${h.port ?? ''}`
    const other = seen.get(key)
    if (other)
      attempt(() =>
        fail(
          `hosts.${h.slot}.address`,
          `is the same login as hosts.${other} (${key}); FT Lab runs one agent per user and host, so give each role its own user or machine`
        )
      )
    seen.set(key, h.slot)
  }
  const labAddrs = new Map<string, Slot>()
  for (const h of Object.values(hosts)) {
    const other = labAddrs.get(h.labAddress)
    if (other) {
      // FT Lab keeps one agent per login and host, so two roles on one lab address is a typo
      attempt(() => fail(`hosts.${h.slot}.labAddress`, `${h.labAddress} is also hosts.${other}'s lab address; each role needs its own machine`))
    }
    labAddrs.set(h.labAddress, h.slot)
  }
  const out: LabFile = { path, version: LAB_FILE_VERSION, hosts: hosts as LabFile['hosts'] }
  if (o.name !== undefined) out.name = o.name as string
  if (o.guest !== undefined) out.guest = o.guest as string
  if (o.mode !== undefined) out.mode = o.mode as ReplicationMode
  if (o.network !== undefined) out.network = o.network as string
  // the disk server is the default tie-breaker; saying so explicitly changes nothing
  if (arbiter && arbiter.kind === 'etcd') out.arbiter = arbiter
  return out
}

function validateArbiter(f: string, raw: unknown, fail: Fail): ArbiterSpec {
  if (!isObj(raw)) fail(f, `must be an object like {"kind": "etcd", "endpoints": ["http://10.0.0.5:2379"]}, got ${kind(raw)}`)
  const a = raw as Record<string, unknown>
  switch (a.kind) {
    case 'disk':
      unknownFields(a, ['kind'], f, fail)
      return { kind: 'disk' }
    case 'etcd': {
      unknownFields(a, ['kind', 'endpoints'], f, fail)
      if (!Array.isArray(a.endpoints) || a.endpoints.length === 0 || a.endpoints.length > 16) {
        fail(`${f}.endpoints`, `must list 1 to 16 etcd client URLs like "http://10.0.0.5:2379", got ${JSON.stringify(a.endpoints)}`)
      }
      const endpoints = (a.endpoints as unknown[]).map((e, i) => {
        let url: URL | null
        try {
          url = typeof e === 'string' ? new URL(e) : null
        } catch {
          url = null
        }
        // the agents speak etcd's JSON gateway with node:http(s) and no client certificates
        if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password) {
          fail(`${f}.endpoints`, `endpoint ${i + 1} must be an http:// or https:// client URL without credentials, got ${JSON.stringify(e)}`)
        }
        return e as string
      })
      // no key prefix here on purpose: the agents name their keys after the lab session's key,
      // so a redeployed lab never finds its generation 1 already won by the last one
      const out: ArbiterSpec = { kind: 'etcd', endpoints }
      return out
    }
    default:
      return fail(`${f}.kind`, `must be "disk" (the disk server, the default) or "etcd", got ${JSON.stringify(a.kind)}`)
  }
}

type Fail = (field: string, msg: string) => never

/** One host; every field is checked on its own, so a host with three mistakes reports three. */
function validateHost(slot: Slot, raw: unknown, path: string, fail: Fail, attempt: Attempt): HostSpec {
  const f = `hosts.${slot}`
  if (!isObj(raw)) fail(f, `must be an object, got ${kind(raw)}`)
  const h = raw as Record<string, unknown>
  let bad = false
  const check = (c: () => unknown): void => {
    if (attempt(() => (c(), true)) !== true) bad = true
  }
  for (const s of SECRET_FIELDS) {
    if (s in h)
      check(() => fail(`${f}.${s}`, `secrets are never kept in the lab file; set "auth": "password" and FT Lab asks for it (or uses the OS keychain)`))
  }
  check(() => unknownFields(h, HOST_FIELDS.concat(SECRET_FIELDS as never[]), f, fail, attempt))
  const addressOk = typeof h.address === 'string' && h.address.trim() !== '' && !/\s/.test(h.address)
  check(() => !addressOk && fail(`${f}.address`, `must be a host name, an address or an ~/.ssh/config alias, got ${JSON.stringify(h.address)}`))
  const address = addressOk ? (h.address as string) : ''
  check(() => {
    if (h.user !== undefined && (typeof h.user !== 'string' || !/^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$/.test(h.user)))
      fail(`${f}.user`, `must be a login name, got ${JSON.stringify(h.user)}`)
  })
  check(() => h.port !== undefined && !isPort(h.port) && fail(`${f}.port`, `must be an integer from 1 to 65535, got ${JSON.stringify(h.port)}`))
  check(() => {
    if (h.auth === undefined) fail(`${f}.auth`, `is required: "agent" (ssh-agent), "key" (identityFile) or "password" (asked for, never stored)`)
    if (h.auth !== 'agent' && h.auth !== 'key' && h.auth !== 'password')
      fail(`${f}.auth`, `must be "agent", "key" or "password", got ${JSON.stringify(h.auth)}`)
  })
  let identityFile: string | undefined
  check(() => {
    if (h.identityFile !== undefined) {
      if (typeof h.identityFile !== 'string' || h.identityFile === '')
        fail(`${f}.identityFile`, `must be a path to a private key, got ${JSON.stringify(h.identityFile)}`)
      identityFile = expandPath(h.identityFile as string, dirname(path))
    }
    if (h.auth === 'key' && identityFile === undefined && addressOk && isIP(address) !== 0) {
      // with an alias, ~/.ssh/config may name the key; with a bare address nothing would
      fail(`${f}.identityFile`, `is required with "auth": "key" when address is not an ~/.ssh/config alias`)
    }
  })
  check(() => {
    if (h.proxyJump !== undefined && (typeof h.proxyJump !== 'string' || h.proxyJump.trim() === ''))
      fail(`${f}.proxyJump`, `must be [user@]host[:port][,...], got ${JSON.stringify(h.proxyJump)}`)
  })
  let labAddress = address
  check(() => {
    if (h.labAddress === undefined) {
      if (addressOk && isIP(address) === 0)
        fail(`${f}.labAddress`, `is required when address (${JSON.stringify(address)}) is a name or alias: the agents bind to an IP address on the lab network`)
    } else {
      if (typeof h.labAddress !== 'string' || isIP(h.labAddress) === 0)
        fail(`${f}.labAddress`, `must be an IP address on the lab network, got ${JSON.stringify(h.labAddress)}`)
      labAddress = h.labAddress as string
    }
  })
  check(() => {
    if (h.portBase !== undefined && !(isPort(h.portBase) && (h.portBase as number) >= 1024 && (h.portBase as number) <= 65000)) {
      fail(`${f}.portBase`, `must be an integer from 1024 to 65000, got ${JSON.stringify(h.portBase)}`)
    }
  })
  let power: PowerSpec = { driver: 'kill' }
  check(() => (power = validatePower(`${f}.power`, h.power, fail)))
  let faults: FaultRun = { run: 'ssh' }
  check(() => (faults = validateFaults(`${f}.faults`, h.faults, fail)))
  // a host with a mistake is left out, so the checks across hosts do not report it again
  if (bad) throw new Stop()
  const spec: HostSpec = {
    slot,
    address,
    auth: h.auth as AuthMethod,
    labAddress,
    portBase: (h.portBase as number | undefined) ?? DEFAULT_PORT_BASE,
    power,
    faults
  }
  if (h.user !== undefined) spec.user = h.user as string
  if (h.port !== undefined) spec.port = h.port as number
  if (identityFile !== undefined) spec.identityFile = identityFile
  if (h.proxyJump !== undefined) spec.proxyJump = h.proxyJump as string
  return spec
}

function validatePower(f: string, raw: unknown, fail: Fail): PowerSpec {
  if (raw === undefined) return { driver: 'kill' }
  if (!isObj(raw)) fail(f, `must be an object like {"driver": "kill"}, got ${kind(raw)}`)
  const p = raw as Record<string, unknown>
  const str = (k: string, required: boolean): string | undefined => {
    const v = p[k]
    if (v === undefined) {
      if (required) fail(`${f}.${k}`, `is required for the ${String(p.driver)} driver`)
      return undefined
    }
    if (typeof v !== 'string' || v.trim() === '' || /[\r\n]/.test(v)) fail(`${f}.${k}`, `must be a non-empty single line, got ${JSON.stringify(v)}`)
    return v as string
  }
  switch (p.driver) {
    case 'kill':
    case 'sysrq':
      unknownFields(p, ['driver'], f, fail)
      return { driver: p.driver }
    case 'command': {
      unknownFields(p, ['driver', 'off', 'on', 'status'], f, fail)
      const out: PowerSpec = { driver: 'command', off: str('off', true)! }
      const on = str('on', false)
      const status = str('status', false)
      if (on !== undefined) out.on = on
      if (status !== undefined) out.status = status
      return out
    }
    case 'ipmi': {
      unknownFields(p, ['driver', 'host', 'user', 'port', 'cipherSuite'], f, fail)
      const out: PowerSpec = { driver: 'ipmi', host: str('host', true)!, user: str('user', true)! }
      if (p.port !== undefined) {
        if (!isPort(p.port)) fail(`${f}.port`, `must be an integer from 1 to 65535, got ${JSON.stringify(p.port)}`)
        out.port = p.port as number
      }
      if (p.cipherSuite !== undefined) {
        if (!Number.isInteger(p.cipherSuite) || (p.cipherSuite as number) < 0 || (p.cipherSuite as number) > 17)
          fail(`${f}.cipherSuite`, `must be an integer 0..17, got ${JSON.stringify(p.cipherSuite)}`)
        out.cipherSuite = p.cipherSuite as number
      }
      return out
    }
    case 'libvirt': {
      unknownFields(p, ['driver', 'uri', 'domain'], f, fail)
      const uri = str('uri', true)!
      if (!/^[a-z0-9+]+:\/\//.test(uri)) fail(`${f}.uri`, `must be a libvirt URI like "qemu:///system", got ${JSON.stringify(uri)}`)
      return { driver: 'libvirt', uri, domain: str('domain', true)! }
    }
    default:
      return fail(`${f}.driver`, `must be "kill", "command", "ipmi", "libvirt" or "sysrq", got ${JSON.stringify(p.driver)}`)
  }
}

function validateFaults(f: string, raw: unknown, fail: Fail): FaultRun {
  if (raw === undefined) return { run: 'ssh' }
  if (!isObj(raw)) fail(f, `must be an object like {"run": "sudo"}, got ${kind(raw)}`)
  const p = raw as Record<string, unknown>
  switch (p.run) {
    case 'ssh':
    case 'sudo':
      unknownFields(p, ['run'], f, fail)
      return { run: p.run }
    case 'netns':
      unknownFields(p, ['run', 'namespace'], f, fail)
      if (typeof p.namespace !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(p.namespace))
        fail(`${f}.namespace`, `must name a network namespace on the console's machine, got ${JSON.stringify(p.namespace)}`)
      return { run: 'netns', namespace: p.namespace as string }
    default:
      return fail(`${f}.run`, `must be "ssh" (the login user is root), "sudo" (passwordless sudo) or "netns" (testbed), got ${JSON.stringify(p.run)}`)
  }
}

function unknownFields(o: Record<string, unknown>, known: readonly string[], where: string, fail: Fail, attempt?: Attempt): void {
  const shown = known.filter((x) => !x.startsWith('$') && !SECRET_FIELDS.includes(x)).join(', ')
  let bad = false
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue
    const report = () => fail(where ? `${where}.${k}` : k, `unknown field; expected one of ${shown}`)
    if (!attempt) report()
    attempt!(report)
    bad = true
  }
  if (bad) throw new Stop()
}

function expandPath(p: string, base: string): string {
  if (p === '~') return homedir()
  if (p.startsWith('~/')) return resolve(homedir(), p.slice(2))
  return isAbsolute(p) ? p : resolve(base, p)
}

function isObj(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function kind(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`
}

function isPort(v: unknown): boolean {
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535
}

function isCidr(v: unknown): boolean {
  if (typeof v !== 'string') return false
  const [a, len, extra] = v.split('/')
  const fam = isIP(a ?? '')
  if (!fam || extra !== undefined || len === undefined || !/^\d{1,3}$/.test(len)) return false
  return Number(len) <= (fam === 6 ? 128 : 32)
}

/** Which machines the lab uses, in a stable order. */
export function labHosts(file: LabFile): HostSpec[] {
  return SLOTS.map((s) => file.hosts[s]).filter((h): h is HostSpec => h !== undefined)
}

/**
 * A validated lab file back in the form lab.deploy takes (no resolved path, no slots): what a
 * drill redeploys a remote lab from, and puts it back with.
 */
export function labFileForm(file: LabFile): LabFileForm {
  const { path: _path, hosts, ...rest } = file
  const form: Record<string, unknown> = { ...rest, hosts: {} }
  for (const [slot, h] of Object.entries(hosts)) {
    if (!h) continue
    const { slot: _slot, ...host } = h
    ;(form.hosts as Record<string, unknown>)[slot] = host
  }
  return form as LabFileForm
}
