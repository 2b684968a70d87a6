// A real machine as the lab orchestration sees it (LabHost), over one SSH connection that is
// opened on first use and again after it drops (a power cut takes sshd with it). Deploy and
// agent start go through main/ssh's deployAgent, the control channel is a forwardOut to the
// agent's loopback port, process faults are signals sent by the login user (the agent runs
// as that user), and fault drivers get a HostExec that reaches root the way the lab file says.
import { randomBytes } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { AgentBootConfig } from '../../agent/control/protocol.js'
import { armDeadmanScript, cancelDeadmanScript, deadlineSeconds } from '../faults/deadman.js'
import { localExec, localNetnsExec, shq, sshHostExec, DEFAULT_EXEC_TIMEOUT_MS, type HostExec } from '../faults/exec.js'
import {
  choosePath,
  emergencyStop,
  healNetworkFault,
  injectNetworkFault,
  type FaultRecord as NetFaultRecord,
  type ManagementPeer,
  type NetworkFaultSpec
} from '../faults/network.js'
import { createPowerDriver, type PowerDriverSpec } from '../faults/power.js'
import { probeHost, type HostCapabilities } from '../faults/probe.js'
import type { HostPowerDriver, KernelFaultPart, KernelFaultShare, LabHost, StartedAgent } from '../lab/lab-host.js'
import { describeKernelPart, kernelSpec, parseRouteDev } from './fault-plan.js'
import { connect, type HostKeyPrompt, type SecretSource, type SshConnection } from '../ssh/connection.js'
import { deployAgent, type DeployProgress } from '../ssh/deploy.js'
import { SshError } from '../ssh/errors.js'
import type { KnownHosts } from '../ssh/known-hosts.js'
import { ALIVE_FN, IS_AGENT_FN, agentPidsScript, stopScript, teardownScript } from '../ssh/remote-scripts.js'
import type { SshConfig } from '../ssh/ssh-config.js'
import type { HostSpec } from './lab-file.js'

export interface SshHostOptions {
  spec: HostSpec
  knownHosts: KnownHosts
  /** asked on first contact with an unknown host key; absent = unknown keys are refused */
  confirmHostKey?: (prompt: HostKeyPrompt) => Promise<boolean>
  secrets?: SecretSource
  /** default: ~/.ssh/config */
  sshConfig?: SshConfig
  /** the agent bundle to deploy */
  bundlePath: string
  runtimeCacheDir?: string
  /** deploy progress of this host's agent (deploy, restore) */
  onProgress?: (p: DeployProgress) => void
  connectTimeoutMs?: number
  /** the lab network (the lab file's "network"): isolate drops all of it */
  network?: string
  /** the BMC password for an ipmi power driver (keychain or prompt); never in the lab file */
  ipmiPassword?: (bmc: { host: string; user: string }) => Promise<string>
  /** how long power-on waits for SSH to answer again (default 60 s) */
  powerOnTimeoutMs?: number
}

/** What the agent wrote in <dataDir>/agent.json on the host when it became ready. */
export interface AgentInfo {
  pid: number
  controlPort: number
  version?: number
  startedAt?: string
  /** the pid runs the agent bundle now */
  alive: boolean
}

/** Where deploy puts the agent's data on every host (main/ssh/deploy.ts). */
export const REMOTE_DATA_DIR = '~/.ftlab/data'

export class SshHost implements LabHost {
  readonly sameClock = false
  private conn: Promise<SshConnection> | null = null
  private mgmt: { conn: SshConnection; peer: ManagementPeer } | null = null
  private capsCache: HostCapabilities | null = null
  private readonly handedOut = new Set<number>()
  private readonly inflight = new Set<Promise<unknown>>()
  /** why the host could not be reached the last time we tried, for status lines */
  lastError: Error | null = null

  constructor(private readonly opts: SshHostOptions) {}

  get spec(): HostSpec {
    return this.opts.spec
  }

  get address(): string {
    return this.opts.spec.labAddress
  }

  /** how messages name the machine: 'a (ftlab1@10.87.0.11)' */
  get label(): string {
    const s = this.opts.spec
    return `${s.slot} (${s.user ? `${s.user}@` : ''}${s.address}${s.port && s.port !== 22 ? `:${s.port}` : ''})`
  }

  /** The host's SSH connection, opened now if there is none or the last one dropped. */
  connection(): Promise<SshConnection> {
    if (this.conn) {
      const current = this.conn
      return current.then(
        (c) => {
          if (!c.closed) return c
          if (this.conn === current) this.conn = null
          return this.connection()
        },
        () => {
          if (this.conn === current) this.conn = null
          return this.connection()
        }
      )
    }
    const s = this.opts.spec
    if (s.auth === 'agent' && !process.env.SSH_AUTH_SOCK) {
      const e = new SshError('auth', this.label, `${this.label} uses "auth": "agent" but no ssh-agent is running here (SSH_AUTH_SOCK is not set)`)
      this.lastError = e
      return Promise.reject(e)
    }
    const p = connect({
      host: s.address,
      ...(s.port !== undefined ? { port: s.port } : {}),
      ...(s.user !== undefined ? { user: s.user } : {}),
      ...(s.identityFile !== undefined ? { identityFiles: [s.identityFile] } : {}),
      ...(s.proxyJump !== undefined ? { proxyJump: s.proxyJump } : {}),
      agent: s.auth === 'agent' ? undefined : false,
      // a key's passphrase may be asked for with any method; a password only with 'password'
      secrets: s.auth === 'password' ? this.opts.secrets : this.opts.secrets?.passphrase ? { passphrase: this.opts.secrets.passphrase } : undefined,
      knownHosts: this.opts.knownHosts,
      ...(this.opts.confirmHostKey ? { confirmHostKey: this.opts.confirmHostKey } : {}),
      ...(this.opts.sshConfig ? { sshConfig: this.opts.sshConfig } : {}),
      readyTimeoutMs: this.opts.connectTimeoutMs ?? 10_000
    })
    this.conn = p.then(
      (c) => {
        this.lastError = null
        return c
      },
      (e: Error) => {
        this.lastError = e
        throw e
      }
    )
    return this.conn
  }

  /** Run a command as the login user (the agent's user). */
  async exec(cmd: string, opts: { stdin?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.loginExec().run(cmd, opts)
  }

  /** HostExec as the login user: signals to the agent, its files. */
  loginExec(): HostExec {
    return {
      run: async (cmd, o) => sshHostExec(await this.connection()).run(cmd, o)
    }
  }

  /** HostExec with root for network faults and sysrq, as the lab file's `faults.run` says. */
  faultExec(): HostExec {
    const f = this.opts.spec.faults
    switch (f.run) {
      case 'ssh':
        return this.loginExec()
      case 'netns':
        return localNetnsExec(f.namespace)
      case 'sudo':
        return {
          run: async (cmd, o = {}) => {
            const c = await this.connection()
            // -n: never prompt; a sudo that wants a password fails at once with its own message
            const r = await c.exec(`sudo -n sh -c ${shq(cmd)}`, { stdin: o.stdin, timeoutMs: o.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS })
            return { code: r.code ?? 255, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') }
          }
        }
    }
  }

  /** What the host can do for faults (probed once per console session). */
  async capabilities(): Promise<HostCapabilities> {
    if (!this.capsCache) this.capsCache = await probeHost(this.faultExec())
    return this.capsCache
  }

  /**
   * The console's management connection as the host sees it: SSH_CONNECTION's client
   * address and the server's port. Network faults always spare exactly this.
   */
  async managementPeer(): Promise<ManagementPeer> {
    const c = await this.connection()
    if (this.mgmt && this.mgmt.conn === c) return this.mgmt.peer
    const r = await c.exec(`printf '%s\\n' "$SSH_CONNECTION"`, { timeoutMs: 15_000 })
    const [address, , , port] = r.stdout.toString().trim().split(/\s+/)
    if (!address || !port || !/^\d+$/.test(port)) {
      throw new Error(
        `${this.label} did not report SSH_CONNECTION (got ${JSON.stringify(r.stdout.toString().trim())}); cannot tell which connection to spare from network faults`
      )
    }
    // an IPv4 client on a dual-stack sshd shows as ::ffff:a.b.c.d; nft matches the IPv4 form
    const peer = { address: address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1'), sshPort: Number(port) }
    this.mgmt = { conn: c, peer }
    return peer
  }

  async startAgent(boot: AgentBootConfig, opts: { readyTimeoutMs?: number } = {}): Promise<StartedAgent> {
    // Deploy replaces whatever agent runs for this user anyway; doing it first lets us clear
    // a pid file left by a killed agent. Where init does not reap orphans the killed agent
    // stays a zombie, which the new agent's pid-file check (kill -0) takes for a live one.
    await this.exec(
      `${ALIVE_FN}\n${IS_AGENT_FN}\nD="$HOME/.ftlab"\n[ -d "$D" ] || exit 0\n` +
        // one grep over every command line: the testbed's hosts share one pid namespace
        `for p in $(${agentPidsScript('"$D/agent/ftlab-agent.cjs"')}); do kill -KILL "$p" 2>/dev/null; done\n` +
        `f="$D/data/agent.pid"; [ -f "$f" ] || exit 0\np=$(cat "$f" 2>/dev/null)\ni=0; while [ -n "$p" ] && is_agent "$p" && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n` +
        `is_agent "$p" || rm -f "$f"`,
      { timeoutMs: 30_000 }
    ).catch(() => {
      // unreachable now: deploy's own connect step says so precisely
    })
    const run = deployAgent(
      // the lab's dataDir is a local path; on a real host deploy keeps the agent under ~/.ftlab/data
      { id: boot.id, connect: () => this.connection(), boot: { id: boot.id, labKey: boot.labKey, controlToken: boot.controlToken } },
      { bundlePath: this.opts.bundlePath, runtimeCacheDir: this.opts.runtimeCacheDir, readyTimeoutMs: opts.readyTimeoutMs, onProgress: this.opts.onProgress }
    )
    this.inflight.add(run)
    try {
      const a = await run
      return { pid: a.pid, controlPort: a.controlPort }
    } finally {
      this.inflight.delete(run)
    }
  }

  /** Wait for any deploy still running (a failed lab start must not leave one behind). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inflight])
  }

  /** An unreachable host has no running agent as far as the lab can tell. */
  async isAgentAlive(pid: number): Promise<boolean> {
    if (!Number.isInteger(pid) || pid <= 1) return false
    try {
      const r = await this.exec(`${ALIVE_FN}\n${IS_AGENT_FN}\nif is_agent ${pid}; then echo yes; else echo no; fi`, { timeoutMs: 15_000 })
      return r.stdout.trim() === 'yes'
    } catch (e) {
      this.lastError = e as Error
      return false
    }
  }

  async kill(pid: number): Promise<{ at?: number } | null> {
    if (!Number.isInteger(pid) || pid <= 1) return null
    // One round trip: the check, the host's clock as the signal goes (GNU date's nanoseconds), the SIGKILL, and the wait
    // until the process is gone (the cut is over then, not when the signal is sent), at most 5 s.
    const script = [
      ALIVE_FN,
      IS_AGENT_FN,
      `is_agent ${pid} || { echo "no-agent"; exit 0; }`,
      'at=$(date +%s%N 2>/dev/null)',
      `kill -KILL ${pid} || exit 3`,
      `i=0; while alive ${pid} && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done`,
      `alive ${pid} && { echo "pid ${pid} still runs 5 s after SIGKILL" >&2; exit 4; }`,
      'echo "killed $at"'
    ].join('\n')
    const r = await this.exec(script, { timeoutMs: 15_000 })
    if (r.stdout.includes('no-agent')) return null
    if (r.code !== 0) throw new Error(`power cut (SIGKILL) of pid ${pid} on ${this.label} failed: ${r.stderr.trim() || `exit ${r.code}`}`)
    // nanoseconds since the epoch, or something else where date has no %N (busybox): then the host cannot say
    const ns = /killed (\d{19})\b/.exec(r.stdout)?.[1]
    return ns === undefined ? {} : { at: Number(BigInt(ns) / 1_000_000n) }
  }

  async pause(pid: number): Promise<void> {
    const r = await this.exec(
      `${ALIVE_FN}\n${IS_AGENT_FN}\nis_agent ${pid} || { echo "no agent with pid ${pid} is running on this host" >&2; exit 3; }\nkill -STOP ${pid}`
    )
    if (r.code !== 0) throw new Error(`pause of ${this.label} failed: ${r.stderr.trim() || `exit ${r.code}`}`)
  }

  async resume(pid: number): Promise<void> {
    const r = await this.exec(`${ALIVE_FN}\n${IS_AGENT_FN}\nis_agent ${pid} || exit 0\nkill -CONT ${pid}`)
    if (r.code !== 0) throw new Error(`resume of ${this.label} failed: ${r.stderr.trim() || `exit ${r.code}`}`)
  }

  /** A dead-man on the host (deadman.ts): SIGCONT at the deadline, console or not. */
  async scheduleResume(pid: number, ms: number): Promise<string> {
    const handle = `pause_${pid}_${randomBytes(3).toString('hex')}`
    const stopped = `[ "$(sed 's/.*) //' /proc/${pid}/stat 2>/dev/null | cut -c1)" = T ]`
    const r = await this.exec(armDeadmanScript(handle, deadlineSeconds(Math.max(1000, ms)), stopped, `kill -CONT ${pid} 2>/dev/null`))
    if (r.code !== 0) throw new Error(`the dead-man for the pause could not be armed on ${this.label}: ${r.stderr.trim() || `exit ${r.code}`}`)
    return handle
  }

  async cancelScheduled(handle: string): Promise<void> {
    if (!/^pause_\d+_[0-9a-f]{6}$/.test(handle)) return
    await this.exec(cancelDeadmanScript(handle)).catch(() => {})
  }

  controlConnector(port: number): () => Promise<Duplex> {
    return async () => (await this.connection()).forwardOut('127.0.0.1', port)
  }

  describeControl(port: number): string {
    return `ssh ${this.label} → 127.0.0.1:${port}`
  }

  /** Ports from the host's portBase up that nothing listens on there (TCP, v4 and v6). */
  async freePorts(n: number): Promise<number[]> {
    const r = await this.exec(`cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk 'NR>1 && $4=="0A" {split($2,a,":"); print a[2]}'`, { timeoutMs: 15_000 })
    if (r.code !== 0) throw new Error(`cannot list the listening ports on ${this.label}: ${r.stderr.trim() || `exit ${r.code}`}`)
    const busy = new Set(
      r.stdout
        .split('\n')
        .filter(Boolean)
        .map((h) => parseInt(h, 16))
    )
    const out: number[] = []
    for (let p = this.opts.spec.portBase; out.length < n && p < 65536; p++) {
      if (busy.has(p) || this.handedOut.has(p)) continue
      this.handedOut.add(p)
      out.push(p)
    }
    if (out.length < n) throw new Error(`no ${n} free ports from ${this.opts.spec.portBase} up on ${this.label}`)
    return out
  }

  /** <dataDir>/agent.json on the host: which agent runs there now (null when none wrote one). */
  async agentInfo(): Promise<AgentInfo | null> {
    const r = await this.exec(
      `${ALIVE_FN}\n${IS_AGENT_FN}\nf="$HOME/.ftlab/data/agent.json"\n[ -s "$f" ] || exit 0\ncat "$f"; echo\np=$(sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p' "$f")\nif [ -n "$p" ] && is_agent "$p"; then echo ALIVE; else echo DEAD; fi`,
      {
        timeoutMs: 15_000
      }
    )
    const lines = r.stdout.trim().split('\n')
    if (lines.length < 2) return null
    try {
      const j = JSON.parse(lines[0]) as { pid?: unknown; controlPort?: unknown; version?: unknown; startedAt?: unknown }
      if (!Number.isInteger(j.pid) || !Number.isInteger(j.controlPort)) return null
      return {
        pid: j.pid as number,
        controlPort: j.controlPort as number,
        ...(typeof j.version === 'number' ? { version: j.version } : {}),
        ...(typeof j.startedAt === 'string' ? { startedAt: j.startedAt } : {}),
        alive: lines.at(-1) === 'ALIVE'
      }
    } catch {
      return null
    }
  }

  /** Stop the agent, keeping its files (logs, disk image). */
  async stopAgent(): Promise<void> {
    const r = await (await this.connection()).exec(stopScript, { timeoutMs: 30_000 })
    if (r.code !== 0) throw new Error(`cannot stop the agent on ${this.label}: ${r.stderr.toString().trim() || `exit ${r.code}`}`)
  }

  /** Stop the agent and remove ~/.ftlab (agent, runtime, data, logs). */
  async removeFiles(): Promise<void> {
    const r = await (await this.connection()).exec(teardownScript, { timeoutMs: 60_000 })
    if (r.code !== 0 || !r.stdout.toString().includes('removed'))
      throw new Error(`teardown on ${this.label} failed: ${r.stderr.toString().trim() || `exit ${r.code}`}`)
  }

  // ——— network faults in the host's kernel (LabHost's optional part) ———

  /** Why this host cannot apply `share` in its kernel now, or null when it can. */
  async kernelFaultUnavailable(share: KernelFaultShare, forMs: number): Promise<string | null> {
    if (forMs < 1000) return `the dead-man on the host counts whole seconds, and this fault lasts ${forMs} ms`
    let spec: NetworkFaultSpec
    try {
      spec = await this.kernelSpecFor(share)
    } catch (e) {
      return (e as Error).message
    }
    let caps: HostCapabilities
    try {
      caps = await this.capabilities()
    } catch (e) {
      return `capability probe failed: ${(e as Error).message}`
    }
    const c = choosePath(spec, caps)
    return 'reason' in c ? c.reason : null
  }

  /** nft (else iptables) or netem, sparing the console's SSH connection, with a dead-man on the host. */
  async applyKernelFault(id: string, share: KernelFaultShare, forMs: number): Promise<KernelFaultPart> {
    const spec = await this.kernelSpecFor(share)
    const r = await injectNetworkFault(
      this.faultExec(),
      { id, target: this.opts.spec.slot, spec, management: await this.managementPeer(), deadlineMs: forMs },
      { caps: await this.capabilities() }
    )
    if (r.status !== 'applied') throw new Error(`${this.label}: ${r.reason}`)
    const path = r.record.path as KernelFaultPart['path']
    return { path, detail: `${this.opts.spec.slot}: ${describeKernelPart(path, id)}`, record: r.record }
  }

  async healKernelFault(part: KernelFaultPart): Promise<void> {
    await healNetworkFault(this.faultExec(), part.record as NetFaultRecord)
  }

  /** Every ftlab_* nft table and iptables chain, every FT Lab netem qdisc on this host. */
  async clearKernelFaults(): Promise<string[]> {
    return (await emergencyStop(this.faultExec())).removed
  }

  private async kernelSpecFor(share: KernelFaultShare): Promise<NetworkFaultSpec> {
    const management = await this.managementPeer()
    let dev: string | null = null
    if (share.kind === 'delay') {
      const r = await this.faultExec().run(`PATH="$PATH:/usr/sbin:/sbin"; ip route get ${share.peer}`, { timeoutMs: 15_000 })
      dev = parseRouteDev(r.stdout)
      if (!dev) throw new Error(`cannot place netem: no route from ${this.opts.spec.slot} to ${share.peer}`)
    }
    return kernelSpec(share, { ...(this.opts.network ? { network: this.opts.network } : {}), management, devTo: () => dev! })
  }

  // ——— the power driver (LabHost's optional part) ———

  /** The lab file's power driver for this host; null for "kill" (the lab kills the agent instead). */
  powerDriver(): HostPowerDriver | null {
    const p = this.opts.spec.power
    if (p.driver === 'kill') return null
    const ask = this.opts.ipmiPassword
    const driver = createPowerDriver(p as PowerDriverSpec, {
      target: this.faultExec(),
      controller: localExec(),
      ipmiPassword:
        p.driver === 'ipmi'
          ? async () => {
              if (!ask)
                throw new Error(
                  `${this.label}: the ipmi power driver needs the BMC password for ${p.user}@${p.host}, and this console has no way to ask for it`
                )
              return ask({ host: p.host, user: p.user })
            }
          : undefined
    })
    return {
      kind: driver.kind,
      canPowerOn: driver.powerOn !== undefined,
      off: async () => {
        const r = await driver.powerOff()
        // the connection went down with the host; the next use reconnects (or says the host is off)
        this.dropConnection()
        return r.detail
      },
      on: async () => {
        if (!driver.powerOn) throw new Error(`${this.label}: the ${driver.kind} driver cannot power a host on; switch it on by hand, then restore`)
        const r = await driver.powerOn()
        await this.untilReachable(r.detail)
        return r.detail
      }
    }
  }

  private async untilReachable(after: string): Promise<void> {
    const timeoutMs = this.opts.powerOnTimeoutMs ?? 60_000
    const deadline = Date.now() + timeoutMs
    let last: Error | null = null
    while (Date.now() < deadline) {
      this.dropConnection()
      try {
        await this.exec('true', { timeoutMs: 10_000 })
        return
      } catch (e) {
        last = e as Error
        await new Promise((res) => setTimeout(res, 500))
      }
    }
    throw new Error(`${this.label} was powered on (${after}) but SSH did not answer within ${timeoutMs} ms: ${last?.message ?? 'no answer'}`)
  }

  /** Forget the connection (after a power cut the old one is dead anyway). */
  dropConnection(): void {
    const c = this.conn
    this.conn = null
    this.mgmt = null
    c?.then(
      (x) => x.close(),
      () => {}
    )
  }

  close(): void {
    this.dropConnection()
  }
}
