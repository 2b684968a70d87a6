// Power faults behind one interface. Each driver says what it can do (power on? status?)
// so the UI offers only what works, and each reports failures in the host's own words.
//
//   kill     SIGKILL the agent: fail-stop of the replica; "power on" is a redeploy (not here)
//   pause    SIGSTOP / SIGCONT the agent: a grey failure; a dead-man on the host resumes it
//   sysrq    echo o > /proc/sysrq-trigger on the host: the kernel powers off at once
//   ipmi     ipmitool -I lanplus ... -E chassis power off|on|status; password via IPMI_PASSWORD
//   libvirt  virsh -c <uri> destroy|start|domstate <domain>, run on the hypervisor host
//   command  an operator's command pair (a PDU script, the testbed's power-off/power-on)
import { armDeadmanScript, cancelDeadmanScript, deadlineSeconds } from './deadman.js'
import { runChecked, shq, type HostExec } from './exec.js'

export type PowerDriverKind = 'kill' | 'pause' | 'sysrq' | 'ipmi' | 'libvirt' | 'command'
export type PowerState = 'on' | 'off' | 'paused' | 'unknown'

export interface PowerCapabilities {
  powerOn: boolean
  status: boolean
  /** one line for the UI: what "off" means with this driver */
  effect: string
}

export interface PowerResult {
  driver: PowerDriverKind
  action: 'off' | 'on'
  /** what the tool said, trimmed */
  detail: string
}

export interface PowerDriver {
  readonly kind: PowerDriverKind
  readonly capabilities: PowerCapabilities
  powerOff(): Promise<PowerResult>
  powerOn?(): Promise<PowerResult>
  status?(): Promise<PowerState>
}

const PRELUDE = 'PATH="$PATH:/usr/sbin:/sbin"'

function pidOf(where: string, pid: unknown): number {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 2) throw new Error(`${where}: pid must be an integer above 1, got ${String(pid)}`)
  return pid
}

function text(r: { stdout: string; stderr: string }): string {
  return (r.stdout.trim() || r.stderr.trim()).split('\n').slice(-3).join(' | ')
}

/** The process state letter from /proc/<pid>/stat (R, S, T, Z, …), or '' if there is no such process. */
const procState = (pid: number) => `s=$(sed 's/.*) //' /proc/${pid}/stat 2>/dev/null | cut -c1)`

async function processState(exec: HostExec, pid: number): Promise<PowerState> {
  const r = await exec.run(`${procState(pid)}; echo "state:$s"`, { timeoutMs: 15_000 })
  const s = /state:(\w?)/.exec(r.stdout)?.[1] ?? ''
  if (s === '' || s === 'Z' || s === 'X') return 'off'
  if (s === 'T' || s === 't') return 'paused'
  return 'on'
}

export function killDriver(opts: { exec: HostExec; pid: number }): PowerDriver {
  const pid = pidOf('kill driver', opts.pid)
  return {
    kind: 'kill',
    capabilities: { powerOn: false, status: true, effect: `SIGKILL of the agent (pid ${pid}): fail-stop of the replica; bring it back by redeploying` },
    async powerOff() {
      const r = await runChecked(opts.exec, `kill -KILL ${pid}`, `kill -KILL ${pid} && echo "killed ${pid}"`)
      return { driver: 'kill', action: 'off', detail: text(r) }
    },
    status: () => processState(opts.exec, pid)
  }
}

export interface PauseDriver extends PowerDriver {
  pause(): Promise<PowerResult>
  resume(): Promise<PowerResult>
}

/** SIGSTOP/SIGCONT. The pause carries a dead-man on the host: SIGCONT at the deadline, console or not. */
export function pauseDriver(opts: { exec: HostExec; pid: number; deadlineMs: number }): PauseDriver {
  const pid = pidOf('pause driver', opts.pid)
  const seconds = deadlineSeconds(opts.deadlineMs)
  const id = `pause_${pid}`
  const stopped = `[ "$(sed 's/.*) //' /proc/${pid}/stat 2>/dev/null | cut -c1)" = T ]`
  const pause = async (): Promise<PowerResult> => {
    const script = [
      PRELUDE,
      `kill -0 ${pid} 2>/dev/null || { echo "no process ${pid} on this host" >&2; exit 3; }`,
      cancelDeadmanScript(id),
      armDeadmanScript(id, seconds, stopped, `kill -CONT ${pid} 2>/dev/null`),
      `kill -STOP ${pid} && echo "paused ${pid} for at most ${seconds} s"`
    ].join('\n')
    const r = await runChecked(opts.exec, `pause (SIGSTOP) of pid ${pid}`, script)
    return { driver: 'pause', action: 'off', detail: text(r) }
  }
  const resume = async (): Promise<PowerResult> => {
    const script = [PRELUDE, cancelDeadmanScript(id), `kill -CONT ${pid} && echo "resumed ${pid}"`].join('\n')
    const r = await runChecked(opts.exec, `resume (SIGCONT) of pid ${pid}`, script)
    return { driver: 'pause', action: 'on', detail: text(r) }
  }
  return {
    kind: 'pause',
    capabilities: { powerOn: true, status: true, effect: `SIGSTOP of the agent (pid ${pid}): alive but silent; resumed by heal or after ${seconds} s` },
    pause,
    resume,
    powerOff: pause,
    powerOn: resume,
    status: () => processState(opts.exec, pid)
  }
}

export const SYSRQ_MISSING = 'sysrq unavailable on this host: /proc/sysrq-trigger is absent (kernel without CONFIG_MAGIC_SYSRQ) or not writable'

/** The kernel powers off at once; nothing is synced. The trigger fires a second after the exec returns. */
export function sysrqDriver(opts: { exec: HostExec }): PowerDriver {
  return {
    kind: 'sysrq',
    capabilities: { powerOn: false, status: false, effect: 'immediate kernel power-off (sysrq o); power on needs another driver or a person' },
    async powerOff() {
      const script = [
        `if [ ! -w /proc/sysrq-trigger ]; then echo ${shq(SYSRQ_MISSING)} >&2; exit 3; fi`,
        // detached and delayed, so this exec returns its answer before the host goes dark
        `setsid sh -c 'sleep 1; echo o > /proc/sysrq-trigger' </dev/null >/dev/null 2>&1 &`,
        `echo "power-off requested through /proc/sysrq-trigger"`
      ].join('\n')
      const r = await opts.exec.run(script, { timeoutMs: 15_000 })
      if (r.code === 3) throw new Error(SYSRQ_MISSING)
      if (r.code !== 0) throw new Error(`sysrq power-off failed (exit ${r.code}): ${text(r)}`)
      return { driver: 'sysrq', action: 'off', detail: text(r) }
    }
  }
}

export interface IpmiOptions {
  /** where ipmitool runs (usually the console's machine, or a jump host on the BMC network) */
  exec: HostExec
  /** the BMC's address or name */
  host: string
  user: string
  /** the BMC password, fetched when needed (keychain); reaches ipmitool only through IPMI_PASSWORD */
  password: () => string | Promise<string>
  /** UDP port of the BMC; default 623 */
  port?: number
  /** RMCP+ cipher suite (-C); ipmitool's default if absent */
  cipherSuite?: number
  timeoutMs?: number
}

const HOSTNAME = /^[A-Za-z0-9.:_-]{1,253}$/
const USER = /^[^\s'"\\]{1,16}$/

/** The script that runs ipmitool; the password is read from stdin into the environment, never argv. */
export function ipmiScript(o: Pick<IpmiOptions, 'host' | 'user' | 'port' | 'cipherSuite'>, action: 'off' | 'on' | 'status'): string {
  if (!HOSTNAME.test(o.host)) throw new Error(`ipmi driver: host must be an address or host name, got ${JSON.stringify(o.host)}`)
  if (!USER.test(o.user)) throw new Error(`ipmi driver: user must be 1 to 16 characters without spaces or quotes, got ${JSON.stringify(o.user)}`)
  if (o.port !== undefined && (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535))
    throw new Error(`ipmi driver: port must be 1..65535, got ${String(o.port)}`)
  if (o.cipherSuite !== undefined && (!Number.isInteger(o.cipherSuite) || o.cipherSuite < 0 || o.cipherSuite > 17))
    throw new Error(`ipmi driver: cipherSuite must be 0..17, got ${String(o.cipherSuite)}`)
  const args = ['ipmitool', '-I', 'lanplus', '-H', shq(o.host)]
  if (o.port !== undefined) args.push('-p', String(o.port))
  if (o.cipherSuite !== undefined) args.push('-C', String(o.cipherSuite))
  args.push('-U', shq(o.user), '-E', 'chassis', 'power', action)
  return [PRELUDE, 'IFS= read -r IPMI_PASSWORD || exit 2', 'export IPMI_PASSWORD', `exec ${args.join(' ')}`].join('\n')
}

export function ipmiDriver(o: IpmiOptions): PowerDriver {
  ipmiScript(o, 'status') // validate now, not at the moment of the fault
  const run = async (action: 'off' | 'on' | 'status') => {
    const pw = await o.password()
    if (typeof pw !== 'string' || pw.length === 0 || /[\r\n]/.test(pw))
      throw new Error(`ipmi driver: the password for ${o.user}@${o.host} must be a non-empty single line`)
    const r = await o.exec.run(ipmiScript(o, action), { stdin: `${pw}\n`, timeoutMs: o.timeoutMs ?? 30_000 })
    if (r.code !== 0) throw new Error(`ipmitool chassis power ${action} on ${o.host} failed (exit ${r.code}): ${text(r)}`)
    return r
  }
  return {
    kind: 'ipmi',
    capabilities: { powerOn: true, status: true, effect: `BMC chassis power off of ${o.host} (hard, no shutdown)` },
    async powerOff() {
      return { driver: 'ipmi', action: 'off', detail: text(await run('off')) }
    },
    async powerOn() {
      return { driver: 'ipmi', action: 'on', detail: text(await run('on')) }
    },
    async status() {
      const out = (await run('status')).stdout
      const m = /Chassis Power is (on|off)/i.exec(out)
      return m ? (m[1].toLowerCase() as 'on' | 'off') : 'unknown'
    }
  }
}

export interface LibvirtOptions {
  /** the hypervisor host (virsh runs there) */
  exec: HostExec
  /** libvirt connection URI, e.g. qemu:///system */
  uri: string
  domain: string
  timeoutMs?: number
}

export function virshCommand(o: Pick<LibvirtOptions, 'uri' | 'domain'>, verb: 'destroy' | 'start' | 'domstate'): string {
  if (typeof o.uri !== 'string' || !/^[a-z0-9+]+:\/\//.test(o.uri))
    throw new Error(`libvirt driver: uri must be a libvirt URI like qemu:///system, got ${JSON.stringify(o.uri)}`)
  if (typeof o.domain !== 'string' || o.domain.length === 0 || /[\r\n]/.test(o.domain))
    throw new Error(`libvirt driver: domain must name a domain, got ${JSON.stringify(o.domain)}`)
  return `virsh -c ${shq(o.uri)} ${verb} ${shq(o.domain)}`
}

export function parseDomstate(out: string): PowerState {
  const s = out.trim().split('\n')[0]?.trim().toLowerCase() ?? ''
  if (s === 'running' || s === 'idle' || s === 'in shutdown') return 'on'
  if (s === 'shut off' || s === 'crashed' || s === 'pmsuspended') return 'off'
  if (s === 'paused') return 'paused'
  return 'unknown'
}

export function libvirtDriver(o: LibvirtOptions): PowerDriver {
  virshCommand(o, 'domstate')
  const run = async (verb: 'destroy' | 'start' | 'domstate') => {
    const r = await o.exec.run(`${PRELUDE}\n${virshCommand(o, verb)}`, { timeoutMs: o.timeoutMs ?? 60_000 })
    if (r.code !== 0) throw new Error(`virsh ${verb} ${o.domain} (${o.uri}) failed (exit ${r.code}): ${text(r)}`)
    return r
  }
  return {
    kind: 'libvirt',
    capabilities: { powerOn: true, status: true, effect: `virsh destroy of domain ${o.domain}: the VM stops at once (pulled plug)` },
    async powerOff() {
      return { driver: 'libvirt', action: 'off', detail: text(await run('destroy')) }
    },
    async powerOn() {
      return { driver: 'libvirt', action: 'on', detail: text(await run('start')) }
    },
    async status() {
      return parseDomstate((await run('domstate')).stdout)
    }
  }
}

export interface CommandOptions {
  /** where the commands run (the console's machine for a PDU script or the testbed) */
  exec: HostExec
  /** sh command lines, written by the operator; no secrets in them (they may show in ps) */
  off: string
  on?: string
  /** prints on / off / paused (or running / shut off); exit code alone is not trusted */
  status?: string
  timeoutMs?: number
}

export function parseStatusWords(out: string): PowerState {
  const s = out.toLowerCase()
  if (/\bpaused\b/.test(s)) return 'paused'
  if (/\b(off|shut off|down|stopped)\b/.test(s)) return 'off'
  if (/\b(on|running|up)\b/.test(s)) return 'on'
  return 'unknown'
}

export function commandDriver(o: CommandOptions): PowerDriver {
  const check = (name: string, v: unknown) => {
    if (v !== undefined && (typeof v !== 'string' || v.trim().length === 0))
      throw new Error(`command driver: ${name} must be a non-empty command line, got ${JSON.stringify(v)}`)
  }
  if (o.off === undefined) throw new Error('command driver: an "off" command is required')
  check('off', o.off)
  check('on', o.on)
  check('status', o.status)
  const run = (what: string, cmd: string) => runChecked(o.exec, `power ${what} command "${cmd}"`, cmd, { timeoutMs: o.timeoutMs ?? 60_000 })
  const d: PowerDriver = {
    kind: 'command',
    capabilities: { powerOn: o.on !== undefined, status: o.status !== undefined, effect: `operator command: ${o.off}` },
    async powerOff() {
      return { driver: 'command', action: 'off', detail: text(await run('off', o.off)) }
    }
  }
  if (o.on !== undefined) {
    const on = o.on
    d.powerOn = async () => ({ driver: 'command', action: 'on', detail: text(await run('on', on)) })
  }
  if (o.status !== undefined) {
    const st = o.status
    d.status = async () => parseStatusWords((await run('status', st)).stdout)
  }
  return d
}

/** A driver as a drill or the lab config names it. */
export type PowerDriverSpec =
  | { driver: 'kill'; pid: number }
  | { driver: 'pause'; pid: number; deadlineMs: number }
  | { driver: 'sysrq' }
  | { driver: 'ipmi'; host: string; user: string; port?: number; cipherSuite?: number }
  | { driver: 'libvirt'; uri: string; domain: string }
  | { driver: 'command'; off: string; on?: string; status?: string }

export interface PowerDriverDeps {
  /** the target host (kill, pause, sysrq) */
  target?: HostExec
  /** where ipmitool, virsh or operator commands run */
  controller?: HostExec
  /** the IPMI password source (keychain); never part of the spec */
  ipmiPassword?: () => string | Promise<string>
}

export function createPowerDriver(spec: PowerDriverSpec, deps: PowerDriverDeps): PowerDriver {
  const need = (what: keyof PowerDriverDeps) => {
    const v = deps[what]
    if (!v) throw new Error(`power driver ${spec.driver}: needs ${what}`)
    return v
  }
  switch (spec.driver) {
    case 'kill':
      return killDriver({ exec: need('target') as HostExec, pid: spec.pid })
    case 'pause':
      return pauseDriver({ exec: need('target') as HostExec, pid: spec.pid, deadlineMs: spec.deadlineMs })
    case 'sysrq':
      return sysrqDriver({ exec: need('target') as HostExec })
    case 'ipmi':
      return ipmiDriver({
        exec: need('controller') as HostExec,
        host: spec.host,
        user: spec.user,
        port: spec.port,
        cipherSuite: spec.cipherSuite,
        password: need('ipmiPassword') as () => string
      })
    case 'libvirt':
      return libvirtDriver({ exec: need('controller') as HostExec, uri: spec.uri, domain: spec.domain })
    case 'command':
      return commandDriver({ exec: need('controller') as HostExec, off: spec.off, on: spec.on, status: spec.status })
    default:
      throw new Error(`unknown power driver ${JSON.stringify((spec as { driver?: unknown }).driver)}; expected kill, pause, sysrq, ipmi, libvirt or command`)
  }
}
