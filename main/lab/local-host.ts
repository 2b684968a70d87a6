// The embedded local lab's host: agents are processes on this machine, detached so that they
// outlive the console (a restarted console reattaches), with stdout and stderr going to
// files in their data directory rather than to pipes the console would have to keep open.
import { spawn, execFile } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AgentBootConfig } from '../../agent/control/protocol.js'
import { tcpConnector } from './agent-client.js'
import type { LabHost, StartedAgent } from './lab-host.js'

export const AGENT_BUNDLE_NAME = 'ftlab-agent.cjs'

/**
 * The agent bundle: $FTLAB_AGENT_BUNDLE, else out/agent/ftlab-agent.cjs found by walking up
 * from this module (works from the sources, from out/cli and from out/main).
 */
export function findAgentBundle(env: NodeJS.ProcessEnv = process.env): string {
  if (env.FTLAB_AGENT_BUNDLE) return resolve(env.FTLAB_AGENT_BUNDLE)
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    for (const c of [join(dir, 'out', 'agent', AGENT_BUNDLE_NAME), join(dir, 'agent', AGENT_BUNDLE_NAME)]) if (existsSync(c)) return c
    const up = dirname(dir)
    if (up === dir) break
    dir = up
  }
  throw new Error(`the agent bundle ${AGENT_BUNDLE_NAME} was not found; build it with \`node scripts/build-node.mjs\` or set FTLAB_AGENT_BUNDLE`)
}

/**
 * Ports handed out by this process, with when, so two hosts on one machine never get the same
 * one while the first has yet to bind it. After HAND_OUT_MS a port is bound (and so not free) or
 * given up, and may be handed out again: a console that restores for days does not run dry.
 */
const handedOut = new Map<number, number>()
const HAND_OUT_MS = 10 * 60_000

export class LocalHost implements LabHost {
  readonly address = '127.0.0.1'
  readonly sameClock = true

  constructor(private readonly bundle: string = findAgentBundle()) {}

  async startAgent(boot: AgentBootConfig, opts: { readyTimeoutMs?: number } = {}): Promise<StartedAgent> {
    const timeoutMs = opts.readyTimeoutMs ?? 10_000
    mkdirSync(boot.dataDir, { recursive: true, mode: 0o700 })
    const outPath = join(boot.dataDir, 'stdout.log')
    const errPath = join(boot.dataDir, 'stderr.log')
    const out = openSync(outPath, 'w', 0o600)
    const err = openSync(errPath, 'w', 0o600)
    const env = { ...process.env }
    // inside Electron, execPath is the Electron binary: make it behave as plain Node
    if (process.versions.electron) env.ELECTRON_RUN_AS_NODE = '1'
    let child
    try {
      // FTLAB_AGENT_NODE_OPTIONS: extra Node flags for the agents only (profiling: --cpu-prof --cpu-prof-dir=DIR)
      const nodeFlags = (process.env.FTLAB_AGENT_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean)
      child = spawn(process.execPath, [...nodeFlags, this.bundle], { detached: true, stdio: ['pipe', out, err], cwd: boot.dataDir, env })
    } finally {
      // the child holds its own copies of the descriptors
      closeSync(out)
      closeSync(err)
    }
    child.stdin!.on('error', () => {}) // an agent that dies at once closes stdin under us
    // the boot config carries secrets: stdin only, never argv or env
    child.stdin!.end(JSON.stringify(boot) + '\n')
    const what = `agent ${boot.id}`
    const explain = () => {
      const said = [tail(errPath), tail(join(boot.dataDir, 'agent.log'), 800)].filter(Boolean).join('\n')
      return said || tail(outPath) || `(no output; see ${boot.dataDir})`
    }
    try {
      const ready = await new Promise<StartedAgent>((resolveReady, reject) => {
        let settled = false
        const finish = (e: Error | null, v?: StartedAgent) => {
          if (settled) return
          settled = true
          clearInterval(poll)
          clearTimeout(timer)
          child.removeListener('exit', onExit)
          if (e) reject(e)
          else resolveReady(v!)
        }
        const onExit = (code: number | null, signal: string | null) =>
          finish(new Error(`${what} exited before it was ready (${signal ? `signal ${signal}` : `exit code ${code}`}): ${explain()}`))
        child.once('exit', onExit)
        child.once('error', (e) => finish(new Error(`${what} could not be started: ${e.message}`)))
        // The ready line lands in a file, not a pipe; a short poll is the portable way to see it.
        const poll = setInterval(() => {
          const r = readyLine(outPath)
          if (r) finish(null, r)
        }, 20)
        const timer = setTimeout(() => finish(new Error(`${what} printed no ready line within ${timeoutMs} ms: ${explain()}`)), timeoutMs)
      })
      child.unref()
      ;(child.stdin as unknown as { unref?: () => void })?.unref?.()
      return ready
    } catch (e) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      throw e
    }
  }

  async isAgentAlive(pid: number): Promise<boolean> {
    if (!Number.isInteger(pid) || pid <= 0) return false
    try {
      process.kill(pid, 0)
    } catch {
      // EPERM: a process exists but is not ours, so it is not our agent
      return false
    }
    return isOurAgent(pid, this.bundle)
  }

  async kill(pid: number): Promise<{ at?: number } | null> {
    if (!(await this.isAgentAlive(pid))) return null
    const at = Date.now()
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      return null
    }
    // a power cut is over when the process is gone, not when the signal is sent
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && (await this.isAgentAlive(pid))) await new Promise((r) => setTimeout(r, 10))
    return { at }
  }

  async pause(pid: number): Promise<void> {
    if (!(await this.isAgentAlive(pid))) throw new Error(`no agent with pid ${pid} is running`)
    process.kill(pid, 'SIGSTOP')
  }

  async resume(pid: number): Promise<void> {
    if (!(await this.isAgentAlive(pid))) return
    process.kill(pid, 'SIGCONT')
  }

  async scheduleResume(pid: number, ms: number): Promise<string> {
    // a detached one-line Node process: it resumes the agent even if the console is gone
    const code = `setTimeout(()=>{try{process.kill(${pid},'SIGCONT')}catch{}},${Math.max(1, Math.round(ms))})`
    const env = { ...process.env }
    if (process.versions.electron) env.ELECTRON_RUN_AS_NODE = '1'
    const w = spawn(process.execPath, ['-e', code, '--', 'ftlab-deadman'], { detached: true, stdio: 'ignore', env })
    w.unref()
    if (!w.pid) throw new Error('the dead-man process for the pause could not be started')
    return String(w.pid)
  }

  async cancelScheduled(handle: string): Promise<void> {
    const pid = Number(handle)
    if (!Number.isInteger(pid) || pid <= 0) return
    if (!commandLine(pid)?.includes('ftlab-deadman')) return // long gone, and the pid reused
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      /* already gone */
    }
  }

  controlConnector(port: number) {
    return tcpConnector('127.0.0.1', port)
  }

  describeControl(port: number): string {
    return `127.0.0.1:${port}`
  }

  freePorts(n: number): Promise<number[]> {
    return freeLoopbackPorts(n)
  }
}

function readyLine(path: string): StartedAgent | null {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return null
  }
  for (const line of text.split('\n')) {
    if (!line.includes('"ready"')) continue
    try {
      const r = JSON.parse(line)?.ready
      if (r && Number.isInteger(r.controlPort) && Number.isInteger(r.pid)) return { controlPort: r.controlPort, pid: r.pid }
    } catch {
      /* a partial line: the next poll sees it whole */
    }
  }
  return null
}

function tail(path: string, chars = 1500): string {
  try {
    const t = readFileSync(path, 'utf8').trim()
    return t.length > chars ? '…' + t.slice(-chars) : t
  } catch {
    return ''
  }
}

function commandLine(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')
  } catch {
    return null
  }
}

/** Guard every signal against pid reuse: the pid must still run the agent bundle. */
async function isOurAgent(pid: number, bundle: string): Promise<boolean> {
  if (existsSync('/proc/self/cmdline')) {
    const cmd = commandLine(pid)
    return cmd !== null && (cmd.includes(bundle) || cmd.includes(AGENT_BUNDLE_NAME))
  }
  // no /proc (macOS): ask ps
  return new Promise((res) => {
    execFile('ps', ['-o', 'command=', '-p', String(pid)], (err, stdout) => res(!err && stdout.includes(AGENT_BUNDLE_NAME)))
  })
}

/**
 * Ports free on loopback now, none handed out before in this process (a lab's ports are
 * chosen before its agents bind them, so two labs of one console must not draw the same).
 * The simulated lab's service ports are real listeners too and draw from the same pool.
 *
 * They come from below the kernel's ephemeral range, never from `listen(0)`: a port from
 * that range is free only until some outgoing connection draws it as its source port, and a
 * replica restarted on its slot's channel port then failed with EADDRINUSE (the soak's CI run).
 * A random start keeps the consoles and test workers that pick at the same moment apart.
 */
export async function freeLoopbackPorts(n: number, startAt?: number): Promise<number[]> {
  const [lo, hi] = labPortRange()
  const ports: number[] = []
  const span = hi - lo
  let next = startAt !== undefined && startAt >= lo && startAt < hi ? startAt : lo + Math.floor(Math.random() * span)
  for (let tried = 0; ports.length < n; tried++) {
    if (tried >= span) throw new Error(`no ${n} free loopback ports in ${lo}–${hi - 1} (below the ephemeral range)`)
    const port = next
    next = next + 1 >= hi ? lo : next + 1
    const at = handedOut.get(port)
    if ((at !== undefined && Date.now() - at < HAND_OUT_MS) || !(await canListen(port))) continue
    handedOut.set(port, Date.now())
    ports.push(port)
  }
  return ports
}

/** [first, end) of the ports labs use: 20000 up to the ephemeral range (32768 on Linux by default), at most 12768 ports. */
export function labPortRange(ephemeralLow = ephemeralRangeStart()): [number, number] {
  const lo = 20000
  const hi = Math.min(ephemeralLow, 32768)
  return hi - lo >= 1000 ? [lo, hi] : [10000, 20000]
}

/** Linux says where its ephemeral range starts; elsewhere (macOS, Windows) IANA's 49152. */
function ephemeralRangeStart(): number {
  try {
    const first = parseInt(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0] ?? '', 10)
    if (Number.isInteger(first) && first > 1024) return first
  } catch {
    /* not Linux */
  }
  return 49152
}

function canListen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s: Server = createServer()
    s.once('error', () => res(false))
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => res(true)))
  })
}
