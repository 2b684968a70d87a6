// Network faults on a real host: nftables in a table of FT Lab's own per fault
// (`inet ftlab_<id>`, so heal = delete that table), iptables chains of our own where nft is
// missing, tc netem for delay/duplication/reordering where the kernel has it. Every fault
// spares the console's management connection (its address and the SSH port) before any
// drop, and is armed with a dead-man on the target (deadman.ts) before it is applied.
import { isIP } from 'node:net'
import type { AgentFault } from '../../agent/control/protocol.js'
import { armDeadmanScript, cancelDeadmanScript, deadlineSeconds } from './deadman.js'
import { runChecked, type HostExec } from './exec.js'
import { probeHost, type HostCapabilities } from './probe.js'

export type Direction = 'in' | 'out' | 'both'

/** The console's own connection to the host: never cut. */
export interface ManagementPeer {
  /** the address the console's SSH connection comes from, as the host sees it */
  address: string
  /** the host's SSH port */
  sshPort: number
}

export type NetworkFaultSpec =
  /** drop everything to and from the lab addresses (addresses or CIDRs) */
  | { kind: 'isolate'; lab: string[] }
  /** drop traffic with one peer: 'in' = what the peer sends us, 'out' = what we send it */
  | { kind: 'cut'; peer: string; direction: Direction }
  /** drop `percent` of packets (0..100, steps of 0.01) with `peers` (all non-loopback traffic if absent) */
  | { kind: 'loss'; percent: number; peers?: string[]; direction?: Direction }
  /** tc netem on `dev`, on what the host sends to `peers` (egress only) */
  | {
      kind: 'netem'
      dev: string
      peers: string[]
      delayMs?: number
      jitterMs?: number
      lossPercent?: number
      duplicatePercent?: number
      reorderPercent?: number
    }

export type FaultPath = 'nft' | 'iptables' | 'netem' | 'agent-filter'

export interface NetworkFaultRequest {
  /** 1..16 of [a-z0-9_]; names the table (ftlab_<id>), the chains and the dead-man */
  id: string
  /** the host's name in the lab (for the record only) */
  target: string
  spec: NetworkFaultSpec
  management: ManagementPeer
  /** the dead-man heals the fault on the host after this long, console or not */
  deadlineMs: number
}

export interface FaultRecord {
  id: string
  target: string
  kind: NetworkFaultSpec['kind']
  params: NetworkFaultSpec
  /** console clock, ms since the epoch; the host counts the deadline from injection itself */
  healsAt: number
  path: FaultPath
}

export type NetworkInjectResult =
  | { status: 'applied'; record: FaultRecord }
  | {
      status: 'unavailable'
      /** why this host cannot do it, in the operator's words */
      reason: string
      /** what the agents' own transport filter could do instead (peers as given: map them to agent ids); null if nothing */
      fallback: { path: 'agent-filter'; faults: AgentFault[]; record: FaultRecord } | null
    }

export interface InjectOptions {
  /** the host's capabilities (probeHost); probed now if absent */
  caps?: HostCapabilities
  /** force a path (tests, or an operator who knows better); must be available */
  path?: 'nft' | 'iptables'
  now?: () => number
}

const ID = /^[a-z0-9_]{1,16}$/
const DEV = /^[A-Za-z0-9_.@:-]{1,15}$/

export function tableName(id: string): string {
  return `ftlab_${id}`
}

export function chainNames(id: string): { in: string; out: string } {
  return { in: `ftlab_${id}_in`, out: `ftlab_${id}_out` }
}

/** Check a request; throws an Error naming the field and the bad value. */
export function validateRequest(req: NetworkFaultRequest): void {
  const where = `network fault ${JSON.stringify(req?.id)}`
  if (typeof req !== 'object' || req === null) throw new Error('network fault request must be an object')
  if (typeof req.id !== 'string' || !ID.test(req.id)) throw new Error(`network fault id must be 1 to 16 of a-z, 0-9, '_', got ${JSON.stringify(req.id)}`)
  if (typeof req.target !== 'string' || req.target.length === 0) throw new Error(`${where}: target must name a host`)
  deadlineSecondsIn(where, req.deadlineMs)
  const m = req.management
  if (typeof m !== 'object' || m === null) throw new Error(`${where}: management {address, sshPort} is required; the console's connection is always spared`)
  if (!isIP(m.address)) throw new Error(`${where}: management.address must be an IP address, got ${JSON.stringify(m.address)}`)
  if (!Number.isInteger(m.sshPort) || m.sshPort < 1 || m.sshPort > 65535)
    throw new Error(`${where}: management.sshPort must be a port 1..65535, got ${String(m.sshPort)}`)
  const s = req.spec
  if (typeof s !== 'object' || s === null) throw new Error(`${where}: spec must be an object`)
  switch (s.kind) {
    case 'isolate':
      if (!Array.isArray(s.lab) || s.lab.length === 0)
        throw new Error(`${where}: isolate.lab must list the lab's addresses or networks (e.g. ["10.87.0.0/24"])`)
      s.lab.forEach((a, i) => addressOrCidr(`${where}: isolate.lab[${i}]`, a))
      return
    case 'cut':
      address(`${where}: cut.peer`, s.peer)
      direction(`${where}: cut.direction`, s.direction)
      return
    case 'loss':
      percent(`${where}: loss.percent`, s.percent)
      if (s.peers !== undefined) {
        if (!Array.isArray(s.peers) || s.peers.length === 0) throw new Error(`${where}: loss.peers, when given, must list at least one address`)
        s.peers.forEach((a, i) => addressOrCidr(`${where}: loss.peers[${i}]`, a))
      }
      if (s.direction !== undefined) direction(`${where}: loss.direction`, s.direction)
      return
    case 'netem': {
      if (typeof s.dev !== 'string' || !DEV.test(s.dev)) throw new Error(`${where}: netem.dev must be an interface name, got ${JSON.stringify(s.dev)}`)
      if (!Array.isArray(s.peers) || s.peers.length === 0) throw new Error(`${where}: netem.peers must list the peer addresses whose traffic is disturbed`)
      s.peers.forEach((a, i) => address(`${where}: netem.peers[${i}]`, a))
      const ms = (f: 'delayMs' | 'jitterMs') => {
        const v = s[f]
        if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 60_000))
          throw new Error(`${where}: netem.${f} must be an integer 0..60000, got ${String(v)}`)
      }
      ms('delayMs')
      ms('jitterMs')
      for (const f of ['lossPercent', 'duplicatePercent', 'reorderPercent'] as const) if (s[f] !== undefined) percent(`${where}: netem.${f}`, s[f])
      if ((s.jitterMs ?? 0) > 0 && !(s.delayMs ?? 0)) throw new Error(`${where}: netem.jitterMs needs a delayMs`)
      if ((s.reorderPercent ?? 0) > 0 && !(s.delayMs ?? 0))
        throw new Error(`${where}: netem.reorderPercent needs a delayMs (netem reorders by sending some packets without the delay)`)
      if (!s.delayMs && !s.lossPercent && !s.duplicatePercent) throw new Error(`${where}: netem needs at least one of delayMs, lossPercent, duplicatePercent`)
      return
    }
    default:
      throw new Error(`${where}: unknown kind ${JSON.stringify((s as { kind?: unknown }).kind)}; expected isolate, cut, loss or netem`)
  }
}

function deadlineSecondsIn(where: string, ms: number): number {
  try {
    return deadlineSeconds(ms)
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`, { cause: e })
  }
}

function address(where: string, v: unknown): void {
  if (typeof v !== 'string' || !isIP(v)) throw new Error(`${where} must be an IP address, got ${JSON.stringify(v)}`)
}

function addressOrCidr(where: string, v: unknown): void {
  if (typeof v !== 'string') throw new Error(`${where} must be an address or network, got ${JSON.stringify(v)}`)
  const [a, len, extra] = v.split('/')
  const fam = isIP(a)
  const max = fam === 6 ? 128 : 32
  if (!fam || extra !== undefined || (len !== undefined && (!/^\d{1,3}$/.test(len) || Number(len) > max))) {
    throw new Error(`${where} must be an address or network like 10.87.0.0/24, got ${JSON.stringify(v)}`)
  }
}

function percent(where: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100) throw new Error(`${where} must be a percentage 0..100, got ${String(v)}`)
}

function direction(where: string, v: unknown): void {
  if (v !== 'in' && v !== 'out' && v !== 'both') throw new Error(`${where} must be 'in', 'out' or 'both', got ${JSON.stringify(v)}`)
}

const fam = (a: string): 4 | 6 => (isIP(a.split('/')[0]) === 6 ? 6 : 4)
const nftFam = (a: string) => (fam(a) === 6 ? 'ip6' : 'ip')
const hasIn = (d: Direction | undefined) => d !== 'out'
const hasOut = (d: Direction | undefined) => d !== 'in'

/** Per-direction address matches; null = every non-loopback packet. */
function targets(spec: Exclude<NetworkFaultSpec, { kind: 'netem' }>): { in: string[] | null; out: string[] | null } {
  switch (spec.kind) {
    case 'isolate':
      return { in: spec.lab, out: spec.lab }
    case 'cut':
      return { in: hasIn(spec.direction) ? [spec.peer] : [], out: hasOut(spec.direction) ? [spec.peer] : [] }
    case 'loss': {
      const p = spec.peers ?? null
      return { in: hasIn(spec.direction) ? p : [], out: hasOut(spec.direction) ? p : [] }
    }
  }
}

/** The nft ruleset of a fault, for `nft -f -`: one table, created in one transaction. */
export function nftRuleset(id: string, spec: Exclude<NetworkFaultSpec, { kind: 'netem' }>, mgmt: ManagementPeer): string {
  const t = targets(spec)
  // loss in steps of 0.01 %: numgen's value must stay below its modulus, so 100 % is a plain drop
  const n = spec.kind === 'loss' ? Math.round(spec.percent * 100) : 10000
  const verdict = n >= 10000 ? 'drop' : `numgen random mod 10000 < ${n} drop`
  const skip = n === 0
  const m = nftFam(mgmt.address)
  const chain = (name: 'input' | 'output', dir: 'saddr' | 'daddr', port: 'dport' | 'sport', lo: 'iifname' | 'oifname', addrs: string[] | null) => {
    const lines = [
      `  chain ${name} {`,
      `    type filter hook ${name} priority -5; policy accept;`,
      `    ${m} ${dir} ${mgmt.address} tcp ${port} ${mgmt.sshPort} accept comment "console management connection"`
    ]
    if (!skip) {
      if (addrs === null) lines.push(`    ${lo} != "lo" ${verdict}`)
      else
        for (const f of ['ip', 'ip6'] as const) {
          const a = addrs.filter((x) => nftFam(x) === f)
          if (a.length) lines.push(`    ${f} ${dir} { ${a.join(', ')} } ${verdict}`)
        }
    }
    lines.push('  }')
    return lines.join('\n')
  }
  return [
    `table inet ${tableName(id)} {`,
    chain('input', 'saddr', 'dport', 'iifname', t.in),
    chain('output', 'daddr', 'sport', 'oifname', t.out),
    '}',
    ''
  ].join('\n')
}

/** Shell lines that add the iptables chains of a fault and hook them first into INPUT/OUTPUT. */
export function iptablesApplyScript(id: string, spec: Exclude<NetworkFaultSpec, { kind: 'netem' }>, mgmt: ManagementPeer): string {
  const t = targets(spec)
  const c = chainNames(id)
  const n = spec.kind === 'loss' ? Math.round(spec.percent * 100) : 10000
  const verdict = n >= 10000 ? '-j DROP' : `-m statistic --mode random --probability ${(n / 10000).toFixed(4)} -j DROP`
  const skip = n === 0
  const tools: ('iptables' | 'ip6tables')[] = []
  const all = [...(t.in ?? []), ...(t.out ?? [])]
  if (t.in === null || t.out === null || all.some((a) => fam(a) === 4) || fam(mgmt.address) === 4) tools.push('iptables')
  if (t.in === null || t.out === null || all.some((a) => fam(a) === 6)) tools.push('ip6tables')
  const lines: string[] = []
  for (const tool of tools) {
    const f = tool === 'iptables' ? 4 : 6
    const ipt = `${tool} -w`
    // no ip6tables on an IPv4-only host is fine when only IPv4 is involved
    const guard = tool === 'ip6tables' && !all.some((a) => fam(a) === 6) ? `command -v ip6tables >/dev/null 2>&1 && ` : ''
    const cmds: string[] = [`${ipt} -N ${c.in}`, `${ipt} -N ${c.out}`]
    if (fam(mgmt.address) === f) {
      // RETURN, not ACCEPT: the host's own INPUT/OUTPUT rules still see the management traffic
      cmds.push(`${ipt} -A ${c.in} -s ${mgmt.address} -p tcp --dport ${mgmt.sshPort} -j RETURN`)
      cmds.push(`${ipt} -A ${c.out} -d ${mgmt.address} -p tcp --sport ${mgmt.sshPort} -j RETURN`)
    }
    if (!skip) {
      if (t.in === null) cmds.push(`${ipt} -A ${c.in} ! -i lo ${verdict}`)
      else for (const a of t.in.filter((x) => fam(x) === f)) cmds.push(`${ipt} -A ${c.in} -s ${a} ${verdict}`)
      if (t.out === null) cmds.push(`${ipt} -A ${c.out} ! -o lo ${verdict}`)
      else for (const a of t.out.filter((x) => fam(x) === f)) cmds.push(`${ipt} -A ${c.out} -d ${a} ${verdict}`)
    }
    cmds.push(`${ipt} -I INPUT 1 -j ${c.in}`, `${ipt} -I OUTPUT 1 -j ${c.out}`)
    lines.push(guard ? `if ${guard.replace(/ && $/, '')}; then\n  ${cmds.join(' &&\n  ')}\nfi` : cmds.join(' &&\n'))
  }
  return lines.join(' &&\n')
}

/** Idempotent: removes the fault's chains from iptables and ip6tables, wherever they are. */
export function iptablesHealScript(id: string): string {
  const c = chainNames(id)
  return [
    `for t in iptables ip6tables; do`,
    `  command -v $t >/dev/null 2>&1 || continue`,
    `  while $t -w -D INPUT -j ${c.in} 2>/dev/null; do :; done`,
    `  while $t -w -D OUTPUT -j ${c.out} 2>/dev/null; do :; done`,
    `  for ch in ${c.in} ${c.out}; do $t -w -F $ch 2>/dev/null; $t -w -X $ch 2>/dev/null; done`,
    `done`,
    `true`
  ].join('\n')
}

export function iptablesExistsScript(id: string): string {
  const c = chainNames(id)
  return `{ iptables -w -S ${c.in} >/dev/null 2>&1 || ip6tables -w -S ${c.in} >/dev/null 2>&1; }`
}

/** The root qdisc handle of a netem fault: 0xf700..0xf7ff, so FT Lab's qdiscs are recognisable. */
export function netemHandle(id: string): string {
  let h = 0
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) & 0xff
  return (0xf700 + h).toString(16)
}

/**
 * netem on the host's egress to the peers only: a prio root qdisc sends everything to band 1
 * (untouched) except what a u32 filter picks (the peers) which goes to band 3 (netem). The
 * management connection gets its own filter first, in case it shares an address with a peer.
 */
export function netemApplyScript(id: string, spec: Extract<NetworkFaultSpec, { kind: 'netem' }>, mgmt: ManagementPeer): string {
  const h = netemHandle(id)
  const d = spec.dev
  const args: string[] = []
  if (spec.delayMs) args.push(`delay ${spec.delayMs}ms${spec.jitterMs ? ` ${spec.jitterMs}ms` : ''}`)
  if (spec.lossPercent) args.push(`loss ${spec.lossPercent}%`)
  if (spec.duplicatePercent) args.push(`duplicate ${spec.duplicatePercent}%`)
  if (spec.reorderPercent) args.push(`reorder ${spec.reorderPercent}%`)
  const match = (a: string) => (fam(a) === 6 ? `protocol ipv6 prio 2 u32 match ip6 dst ${a}/128` : `protocol ip prio 2 u32 match ip dst ${a}/32`)
  const mg =
    fam(mgmt.address) === 6
      ? `protocol ipv6 prio 1 u32 match ip6 dst ${mgmt.address}/128 match ip6 sport ${mgmt.sshPort} 0xffff`
      : `protocol ip prio 1 u32 match ip dst ${mgmt.address}/32 match ip sport ${mgmt.sshPort} 0xffff`
  return [
    `if tc qdisc show dev ${d} | grep -q '^qdisc prio f7[0-9a-f][0-9a-f]: root'; then echo "${d} already carries an FT Lab netem fault; heal it first" >&2; exit 3; fi`,
    [
      `tc qdisc add dev ${d} root handle ${h}: prio bands 3 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0`,
      `tc qdisc add dev ${d} parent ${h}:3 netem ${args.join(' ')}`,
      `tc filter add dev ${d} parent ${h}: ${mg} flowid ${h}:1`,
      ...spec.peers.map((p) => `tc filter add dev ${d} parent ${h}: ${match(p)} flowid ${h}:3`)
    ].join(' &&\n')
  ].join('\n')
}

export function netemExistsScript(id: string, dev: string): string {
  return `tc qdisc show dev ${dev} 2>/dev/null | grep -q '^qdisc prio ${netemHandle(id)}: root'`
}

export function netemHealScript(id: string, dev: string): string {
  return `if ${netemExistsScript(id, dev)}; then tc qdisc del dev ${dev} root 2>/dev/null; fi; true`
}

export function nftExistsScript(id: string): string {
  return `nft list table inet ${tableName(id)} >/dev/null 2>&1`
}

export function nftHealScript(id: string): string {
  return `nft delete table inet ${tableName(id)} 2>/dev/null; true`
}

interface PathScripts {
  apply: string
  exists: string
  heal: string
  stdin?: string
}

function scriptsFor(path: 'nft' | 'iptables' | 'netem', req: NetworkFaultRequest): PathScripts {
  const { id, spec, management } = req
  if (spec.kind === 'netem') {
    return { apply: netemApplyScript(id, spec, management), exists: netemExistsScript(id, spec.dev), heal: netemHealScript(id, spec.dev) }
  }
  if (path === 'nft') return { apply: 'nft -f -', exists: nftExistsScript(id), heal: nftHealScript(id), stdin: nftRuleset(id, spec, management) }
  return { apply: iptablesApplyScript(id, spec, management), exists: iptablesExistsScript(id), heal: iptablesHealScript(id) }
}

const PRELUDE = 'PATH="$PATH:/usr/sbin:/sbin"'

/**
 * The whole injection, one round trip: refuse if the fault is already there, arm the
 * dead-man, apply; if applying fails, cancel the dead-man and undo whatever was applied.
 * The dead-man goes first so no moment exists where the fault is in place without it.
 */
export function injectScript(path: 'nft' | 'iptables' | 'netem', req: NetworkFaultRequest): { script: string; stdin?: string } {
  const s = scriptsFor(path, req)
  const seconds = deadlineSeconds(req.deadlineMs)
  const script = [
    PRELUDE,
    `if ${s.exists}; then echo "fault ${req.id} is already in place on this host" >&2; exit 3; fi`,
    armDeadmanScript(req.id, seconds, s.exists, s.heal),
    `if ! ( set -e\n${s.apply}\n); then`,
    cancelDeadmanScript(req.id),
    s.heal,
    `  exit 4`,
    `fi`,
    `echo applied`
  ].join('\n')
  return { script, stdin: s.stdin }
}

export function healScript(record: FaultRecord): string {
  if (record.path === 'agent-filter') throw new Error(`fault ${record.id} was applied by the agents' transport filter; heal it through the agent`)
  const s = scriptsFor(record.path, {
    id: record.id,
    target: record.target,
    spec: record.params,
    management: { address: '127.0.0.1', sshPort: 22 },
    deadlineMs: 1000
  })
  return [
    PRELUDE,
    cancelDeadmanScript(record.id),
    s.heal,
    `if ${s.exists}; then echo "fault ${record.id} is still in place after heal" >&2; exit 5; fi`,
    'echo healed'
  ].join('\n')
}

/** What the agents' filter would do instead; null when it cannot express the fault. */
export function agentFilterEquivalent(spec: NetworkFaultSpec): { faults: AgentFault[]; note?: string } | null {
  switch (spec.kind) {
    case 'isolate':
      return { faults: [{ kind: 'isolate' }] }
    case 'cut':
      return { faults: [{ kind: 'drop', peers: [spec.peer], direction: spec.direction }] }
    case 'loss':
      if (!spec.peers) return null
      return { faults: [{ kind: 'drop', peers: spec.peers, direction: spec.direction ?? 'both', probability: spec.percent / 100 }] }
    case 'netem': {
      if (spec.duplicatePercent || spec.reorderPercent) return null
      const faults: AgentFault[] = []
      if (spec.delayMs)
        faults.push(
          spec.jitterMs
            ? { kind: 'delay', peers: spec.peers, ms: spec.delayMs, jitterMs: spec.jitterMs }
            : { kind: 'delay', peers: spec.peers, ms: spec.delayMs }
        )
      if (spec.lossPercent) faults.push({ kind: 'drop', peers: spec.peers, direction: 'out', probability: spec.lossPercent / 100 })
      return { faults }
    }
  }
}

/** Choose the path for a fault on a host with these capabilities, or say why there is none. */
export function choosePath(
  spec: NetworkFaultSpec,
  caps: HostCapabilities,
  forced?: 'nft' | 'iptables'
): { path: 'nft' | 'iptables' | 'netem' } | { reason: string } {
  if (!caps.root.available) return { reason: `network faults need root on the host (${caps.root.detail})` }
  if (!caps.setsid.available) return { reason: `the dead-man deadline cannot be armed: ${caps.setsid.detail}` }
  if (spec.kind === 'netem') {
    if (!caps.tc.available) return { reason: `tc unavailable: ${caps.tc.detail}` }
    if (!caps.netem.available) return { reason: `netem unavailable: ${caps.netem.detail}` }
    return { path: 'netem' }
  }
  const nftOk = caps.nft.available && (spec.kind !== 'loss' || caps.numgen.available)
  if (forced === 'nft')
    return nftOk ? { path: 'nft' } : { reason: `nft path forced but unavailable: ${caps.nft.available ? caps.numgen.detail : caps.nft.detail}` }
  if (forced === 'iptables') return caps.iptables.available ? { path: 'iptables' } : { reason: `iptables path forced but unavailable: ${caps.iptables.detail}` }
  if (nftOk) return { path: 'nft' }
  if (caps.iptables.available) return { path: 'iptables' }
  return { reason: `neither nft (${caps.nft.detail}; ${caps.numgen.detail}) nor iptables (${caps.iptables.detail}) can be used` }
}

/** Inject a network fault on the host behind `exec`. Bad requests throw; a host that cannot do it answers 'unavailable'. */
export async function injectNetworkFault(exec: HostExec, req: NetworkFaultRequest, opts: InjectOptions = {}): Promise<NetworkInjectResult> {
  validateRequest(req)
  const now = opts.now ?? Date.now
  const caps = opts.caps ?? (await probeHost(exec))
  const chosen = choosePath(req.spec, caps, opts.path)
  const record = (path: FaultPath): FaultRecord => ({
    id: req.id,
    target: req.target,
    kind: req.spec.kind,
    params: req.spec,
    healsAt: now() + req.deadlineMs,
    path
  })
  if ('reason' in chosen) {
    const eq = agentFilterEquivalent(req.spec)
    return {
      status: 'unavailable',
      reason: `${req.spec.kind} on ${req.target}: ${chosen.reason}`,
      fallback: eq ? { path: 'agent-filter', faults: eq.faults, record: record('agent-filter') } : null
    }
  }
  const { script, stdin } = injectScript(chosen.path, req)
  await runChecked(exec, `${req.spec.kind} fault ${req.id} on ${req.target} (${chosen.path})`, script, { stdin, timeoutMs: 30_000 })
  return { status: 'applied', record: record(chosen.path) }
}

/** Heal: cancel the dead-man, remove the fault, check it is gone. Idempotent. */
export async function healNetworkFault(exec: HostExec, record: FaultRecord): Promise<void> {
  await runChecked(exec, `heal of fault ${record.id} on ${record.target}`, healScript(record), { timeoutMs: 30_000 })
}

/**
 * Emergency stop on one host: delete every ftlab_* nft table, every ftlab_* iptables chain,
 * every FT Lab netem root qdisc (handle f7xx:). Dead-men leave by themselves once they see
 * their fault gone. Prints what it removed, one per line.
 */
export const EMERGENCY_STOP_SCRIPT = [
  PRELUDE,
  `if command -v nft >/dev/null 2>&1; then`,
  `  nft list tables 2>/dev/null | while read -r kw family name; do`,
  `    case "$name" in ftlab_*) nft delete table "$family" "$name" 2>/dev/null && echo "nft $family $name";; esac`,
  `  done`,
  `fi`,
  `for t in iptables ip6tables; do`,
  `  command -v $t >/dev/null 2>&1 || continue`,
  `  for ch in $($t -w -S 2>/dev/null | sed -n 's/^-N \\(ftlab_[A-Za-z0-9_]*\\)$/\\1/p'); do`,
  `    for base in INPUT OUTPUT FORWARD; do while $t -w -D $base -j $ch 2>/dev/null; do :; done; done`,
  `    $t -w -F $ch 2>/dev/null; $t -w -X $ch 2>/dev/null && echo "$t $ch"`,
  `  done`,
  `done`,
  `if command -v tc >/dev/null 2>&1; then`,
  `  for dev in $(ls /sys/class/net 2>/dev/null); do`,
  `    if tc qdisc show dev "$dev" 2>/dev/null | grep -q '^qdisc prio f7[0-9a-f][0-9a-f]: root'; then tc qdisc del dev "$dev" root 2>/dev/null && echo "tc $dev"; fi`,
  `  done`,
  `fi`,
  `true`
].join('\n')

export async function emergencyStop(exec: HostExec): Promise<{ removed: string[] }> {
  const r = await runChecked(exec, 'emergency stop', EMERGENCY_STOP_SCRIPT, { timeoutMs: 60_000 })
  return {
    removed: r.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
  }
}

/** The FT Lab fault tables present on a host (nft only). */
export async function listFaultTables(exec: HostExec): Promise<string[]> {
  const r = await exec.run(`${PRELUDE}\nnft list tables 2>/dev/null`, { timeoutMs: 15_000 })
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((w) => w[0] === 'table' && w[2]?.startsWith('ftlab_'))
    .map((w) => `${w[1]} ${w[2]}`)
}
