// The lab-file form's model: every field as the operator types it (strings), and the
// conversions to and from the lab file (LabFileForm). The form never judges a value itself:
// what the operator typed goes to labfile.check as it is, so a port of "22x" comes back as
// the console core's precise message at hosts.a.port rather than being silently dropped.
import type { LabFileForm } from '../../main/api/contract'

export const FORM_SLOTS = ['a', 'b', 'disk', 'spare'] as const
export type FormSlot = (typeof FORM_SLOTS)[number]
export type AuthChoice = 'agent' | 'key' | 'password'
export type PowerDriver = 'kill' | 'command' | 'ipmi' | 'libvirt' | 'sysrq'
export type FaultsRun = 'ssh' | 'sudo' | 'netns'

export interface HostDraft {
  address: string
  user: string
  port: string
  auth: AuthChoice
  identityFile: string
  proxyJump: string
  labAddress: string
  portBase: string
  power: PowerDriver
  powerOff: string
  powerOn: string
  powerStatus: string
  ipmiHost: string
  ipmiUser: string
  ipmiPort: string
  libvirtUri: string
  libvirtDomain: string
  faults: FaultsRun
  namespace: string
}

export interface LabDraft {
  name: string
  guest: 'kv' | 'bank'
  mode: 'rsm' | 'state-transfer'
  network: string
  arbiter: 'disk' | 'etcd'
  /** one etcd client URL per line (commas work too) */
  endpoints: string
  spare: boolean
  hosts: Record<FormSlot, HostDraft>
}

export function emptyHost(): HostDraft {
  return {
    address: '',
    user: '',
    port: '',
    auth: 'agent',
    identityFile: '',
    proxyJump: '',
    labAddress: '',
    portBase: '',
    power: 'kill',
    powerOff: '',
    powerOn: '',
    powerStatus: '',
    ipmiHost: '',
    ipmiUser: '',
    ipmiPort: '',
    libvirtUri: '',
    libvirtDomain: '',
    faults: 'ssh',
    namespace: ''
  }
}

export function emptyDraft(): LabDraft {
  return {
    name: '',
    guest: 'kv',
    mode: 'rsm',
    network: '',
    arbiter: 'disk',
    endpoints: '',
    spare: false,
    hosts: { a: emptyHost(), b: emptyHost(), disk: emptyHost(), spare: emptyHost() }
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : ''
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {}
}

function pick<T extends string>(v: unknown, allowed: readonly T[], fallback: T): T {
  return (allowed as readonly unknown[]).includes(v) ? (v as T) : fallback
}

/** A draft from a lab file, or from any JSON that looks like one (a file with errors still fills the form). */
export function draftFromFile(file: LabFileForm | Record<string, unknown> | null): LabDraft {
  const d = emptyDraft()
  if (!file) return d
  const f = file as Record<string, unknown>
  d.name = str(f.name)
  d.guest = pick(f.guest, ['kv', 'bank'] as const, 'kv')
  d.mode = pick(f.mode, ['rsm', 'state-transfer'] as const, 'rsm')
  d.network = str(f.network)
  const arb = obj(f.arbiter)
  d.arbiter = arb.kind === 'etcd' ? 'etcd' : 'disk'
  d.endpoints = Array.isArray(arb.endpoints) ? arb.endpoints.map(str).join('\n') : ''
  const hosts = obj(f.hosts)
  for (const slot of FORM_SLOTS) {
    const h = obj(hosts[slot])
    if (slot === 'spare') d.spare = hosts.spare !== undefined
    const power = obj(h.power)
    const faults = obj(h.faults)
    d.hosts[slot] = {
      address: str(h.address),
      user: str(h.user),
      port: str(h.port),
      auth: pick(h.auth, ['agent', 'key', 'password'] as const, 'agent'),
      identityFile: str(h.identityFile),
      proxyJump: str(h.proxyJump),
      labAddress: str(h.labAddress),
      portBase: str(h.portBase),
      power: pick(power.driver, ['kill', 'command', 'ipmi', 'libvirt', 'sysrq'] as const, 'kill'),
      powerOff: str(power.off),
      powerOn: str(power.on),
      powerStatus: str(power.status),
      ipmiHost: power.driver === 'ipmi' ? str(power.host) : '',
      ipmiUser: power.driver === 'ipmi' ? str(power.user) : '',
      ipmiPort: power.driver === 'ipmi' ? str(power.port) : '',
      libvirtUri: str(power.uri),
      libvirtDomain: str(power.domain),
      faults: pick(faults.run, ['ssh', 'sudo', 'netns'] as const, 'ssh'),
      namespace: str(faults.namespace)
    }
  }
  return d
}

/** A number where the text is one, else the text itself, for the core to refuse with its own message. */
function num(text: string): number | string {
  const t = text.trim()
  return /^-?\d+$/.test(t) ? Number(t) : t
}

function hostToFile(h: HostDraft): Record<string, unknown> {
  const out: Record<string, unknown> = { address: h.address.trim(), auth: h.auth }
  if (h.user.trim()) out.user = h.user.trim()
  if (h.port.trim()) out.port = num(h.port)
  if (h.identityFile.trim()) out.identityFile = h.identityFile.trim()
  if (h.proxyJump.trim()) out.proxyJump = h.proxyJump.trim()
  if (h.labAddress.trim()) out.labAddress = h.labAddress.trim()
  if (h.portBase.trim()) out.portBase = num(h.portBase)
  switch (h.power) {
    case 'kill':
      break
    case 'sysrq':
      out.power = { driver: 'sysrq' }
      break
    case 'command': {
      const p: Record<string, unknown> = { driver: 'command', off: h.powerOff }
      if (h.powerOn.trim()) p.on = h.powerOn
      if (h.powerStatus.trim()) p.status = h.powerStatus
      out.power = p
      break
    }
    case 'ipmi': {
      const p: Record<string, unknown> = { driver: 'ipmi', host: h.ipmiHost.trim(), user: h.ipmiUser.trim() }
      if (h.ipmiPort.trim()) p.port = num(h.ipmiPort)
      out.power = p
      break
    }
    case 'libvirt':
      out.power = { driver: 'libvirt', uri: h.libvirtUri.trim(), domain: h.libvirtDomain.trim() }
      break
  }
  if (h.faults === 'netns') out.faults = { run: 'netns', namespace: h.namespace.trim() }
  else if (h.faults === 'sudo') out.faults = { run: 'sudo' }
  return out
}

/** The lab file the draft describes (version 1), as labfile.check, labfile.save and lab.deploy take it. */
export function fileFromDraft(d: LabDraft): LabFileForm {
  const out: Record<string, unknown> = { version: 1 }
  if (d.name.trim()) out.name = d.name.trim()
  out.guest = d.guest
  out.mode = d.mode
  if (d.network.trim()) out.network = d.network.trim()
  if (d.arbiter === 'etcd') {
    out.arbiter = {
      kind: 'etcd',
      endpoints: d.endpoints
        .split(/[\s,]+/)
        .map((e) => e.trim())
        .filter((e) => e !== '')
    }
  }
  const hosts: Record<string, unknown> = { a: hostToFile(d.hosts.a), b: hostToFile(d.hosts.b), disk: hostToFile(d.hosts.disk) }
  if (d.spare) hosts.spare = hostToFile(d.hosts.spare)
  out.hosts = hosts
  return out as unknown as LabFileForm
}

/**
 * Where each error is shown: at its own field when the form has one, else at the nearest
 * enclosing part of the form that is on screen (a host's card, or the form's top for '').
 * Field paths may come as 'arbiter.endpoints[0]' or 'arbiter.endpoints.0'.
 */
export function placeErrors(errors: Record<string, string>, shown: ReadonlySet<string>): Map<string, string[]> {
  const placed = new Map<string, string[]>()
  for (const [field, message] of Object.entries(errors)) {
    let at = field.replace(/\[(\d+)\]/g, '.$1')
    const own = at
    while (at !== '' && !shown.has(at)) {
      const cut = at.lastIndexOf('.')
      at = cut < 0 ? '' : at.slice(0, cut)
    }
    // an error shown away from its field says which field it is about
    const text = at === own ? message : `${field || 'lab file'}: ${message}`
    placed.set(at, [...(placed.get(at) ?? []), text])
  }
  return placed
}
