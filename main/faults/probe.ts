// What a host's kernel and tools can do for fault injection, found by trying (not by
// guessing from versions): create an nft table, add a numgen rule, add a netem qdisc in a
// throw-away network namespace. The answer is data: the UI and the drills show it, and the
// drivers use it to choose a path (nft, iptables, netem, or the agents' own filter).
import type { HostExec } from './exec.js'

export interface Capability {
  available: boolean
  /** why not, or what was found (a version, a value) */
  detail: string
}

export const CAPABILITY_NAMES = ['root', 'setsid', 'nft', 'numgen', 'iptables', 'tc', 'netem', 'tbf', 'sysrq', 'ipmitool', 'virsh'] as const
export type CapabilityName = (typeof CAPABILITY_NAMES)[number]

export type HostCapabilities = Record<CapabilityName, Capability>

// One round trip. Each check prints: name <TAB> yes|no <TAB> detail. Scratch objects are
// named after the shell's pid so two probes at once do not collide, and removed at once.
const PROBE_SCRIPT = String.raw`
PATH="$PATH:/usr/sbin:/sbin"
say() { printf '%s\t%s\t%s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\t\n' '  ' | cut -c1-300)"; }
if [ "$(id -u)" = 0 ]; then say root yes "uid 0"; else say root no "uid $(id -u): network and process faults need root"; fi
if command -v setsid >/dev/null 2>&1; then say setsid yes "$(command -v setsid)"; else say setsid no "setsid not found (util-linux): the dead-man deadline cannot be armed"; fi
T="ftlab_probe_$$"
if command -v nft >/dev/null 2>&1; then
  if e=$(nft add table inet "$T" 2>&1); then
    say nft yes "$(nft --version 2>/dev/null)"
    # a chain without a hook: the rule is checked by the kernel but sees no traffic
    if e=$(nft add chain inet "$T" probe 2>&1 && nft add rule inet "$T" probe numgen random mod 100 '<' 50 drop 2>&1); then
      say numgen yes "numgen random accepted"
    else say numgen no "numgen random refused: $e"; fi
    nft delete table inet "$T" >/dev/null 2>&1
  else say nft no "nft present but cannot create a table: $e"; say numgen no "needs nft"; fi
else say nft no "nft not found (package nftables)"; say numgen no "needs nft"; fi
if command -v iptables >/dev/null 2>&1; then
  if e=$(iptables -w -S OUTPUT 2>&1 >/dev/null); then say iptables yes "$(iptables --version 2>/dev/null)"
  else say iptables no "iptables present but not usable: $e"; fi
else say iptables no "iptables not found (package iptables)"; fi
qdisc() { # kind args...: try a root qdisc on a throw-away interface
  kind=$1; shift
  N="ftlabq$$"
  if ip netns add "$N" 2>/dev/null; then
    e=$(ip netns exec "$N" tc qdisc add dev lo root "$kind" "$@" 2>&1); rc=$?
    ip netns del "$N" 2>/dev/null
  elif ip link add "$N" type dummy 2>/dev/null; then
    e=$(tc qdisc add dev "$N" root "$kind" "$@" 2>&1); rc=$?
    ip link del "$N" 2>/dev/null
  else e="no scratch interface (neither a network namespace nor a dummy link could be created)"; rc=2; fi
  return $rc
}
if command -v tc >/dev/null 2>&1 && command -v ip >/dev/null 2>&1; then
  say tc yes "$(tc -V 2>/dev/null)"
  if qdisc netem delay 1ms; then say netem yes "netem qdisc accepted"
  else case "$e" in
    *nknown*|*"not supported"*|*"No such file"*) say netem no "kernel module sch_netem missing; tc said: $e";;
    *) say netem no "$e";; esac; fi
  if qdisc tbf rate 1mbit burst 32kbit latency 400ms; then say tbf yes "tbf qdisc accepted"
  else case "$e" in
    *nknown*|*"not supported"*) say tbf no "kernel module sch_tbf missing; tc said: $e";;
    *) say tbf no "$e";; esac; fi
else say tc no "tc or ip not found (package iproute2)"; say netem no "needs tc"; say tbf no "needs tc"; fi
if [ -e /proc/sysrq-trigger ]; then
  v=$(cat /proc/sys/kernel/sysrq 2>/dev/null || echo unknown)
  if [ -w /proc/sysrq-trigger ]; then say sysrq yes "/proc/sysrq-trigger writable; kernel.sysrq=$v (the trigger file works whatever this value)"
  else say sysrq no "/proc/sysrq-trigger not writable (not root?); kernel.sysrq=$v"; fi
else say sysrq no "/proc/sysrq-trigger absent (kernel built without CONFIG_MAGIC_SYSRQ, or /proc restricted)"; fi
if command -v ipmitool >/dev/null 2>&1; then say ipmitool yes "$(ipmitool -V 2>&1)"; else say ipmitool no "ipmitool not found (package ipmitool)"; fi
if command -v virsh >/dev/null 2>&1; then say virsh yes "virsh $(virsh --version 2>/dev/null)"; else say virsh no "virsh not found (package libvirt-clients)"; fi
exit 0
`

/** Probe one host. Throws only when the probe itself cannot run. */
export async function probeHost(exec: HostExec, opts: { timeoutMs?: number } = {}): Promise<HostCapabilities> {
  const r = await exec.run(PROBE_SCRIPT, { timeoutMs: opts.timeoutMs ?? 30_000 })
  if (r.code !== 0) throw new Error(`capability probe failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim() || 'no output'}`)
  return parseProbeOutput(r.stdout)
}

export function parseProbeOutput(stdout: string): HostCapabilities {
  const caps = {} as HostCapabilities
  for (const line of stdout.split('\n')) {
    const [name, yes, detail] = line.split('\t')
    if ((CAPABILITY_NAMES as readonly string[]).includes(name) && (yes === 'yes' || yes === 'no')) {
      caps[name as CapabilityName] = { available: yes === 'yes', detail: (detail ?? '').trim() }
    }
  }
  for (const name of CAPABILITY_NAMES) {
    if (!caps[name]) caps[name] = { available: false, detail: 'the probe gave no answer for this check' }
  }
  return caps
}

/** One line per capability, e.g. "netem: unavailable (kernel module sch_netem missing; tc said: ...)". */
export function describeCapabilities(caps: HostCapabilities): string[] {
  return CAPABILITY_NAMES.map((n) => `${n}: ${caps[n].available ? 'available' : 'unavailable'} (${caps[n].detail})`)
}
