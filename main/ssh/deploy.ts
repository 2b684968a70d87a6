// Deploys the FT Lab agent to hosts over SSH: detect the host, make sure it can run Node
// 18+ (uploading a runtime where it cannot), upload the bundle only when it changed, start
// the agent detached with its boot config on stdin, and hand back a factory for the control
// channel (a port-forward to the agent's loopback-only control port).
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import type { Duplex } from 'node:stream'
import type { AgentBootConfig } from '../../agent/control/protocol.js'
import type { SshConnection } from './connection.js'
import { SshError } from './errors.js'
import {
  AGENT_FILE,
  detectScript,
  freeSpaceScript,
  receiveFileScript,
  receiveRuntimeScript,
  startAgentScript,
  stopScript,
  teardownScript
} from './remote-scripts.js'
import { defaultRuntimeCacheDir, findCachedRuntime, nodeArchFor, prepareRuntime, type NodeArch, type PreparedRuntime } from './runtime-cache.js'

export const MIN_NODE_MAJOR = 18

export type DeployStep = 'connect' | 'detect' | 'runtime' | 'upload' | 'start'

export interface DeployProgress {
  hostId: string
  step: DeployStep
  state: 'running' | 'done' | 'skipped' | 'failed'
  detail: string
}

export interface DeployTarget {
  /** the host's id in the lab ('a', 'b', 'disk', …); also the agent's id */
  id: string
  /** opens the SSH connection (host-key checks and secrets are the caller's choice) */
  connect: () => Promise<SshConnection>
  /** the boot config minus what deploy decides (dataDir; controlPort defaults to 0 = any) */
  boot: Omit<AgentBootConfig, 'dataDir' | 'controlPort'> & { controlPort?: number }
}

export interface DeployOptions {
  /** default: out/agent/ftlab-agent.cjs under the working directory */
  bundlePath?: string
  runtimeCacheDir?: string
  readyTimeoutMs?: number
  onProgress?: (p: DeployProgress) => void
}

export interface HostFacts {
  os: string
  machine: string
  home: string
  /** version of the host's own `node`, or null */
  systemNode: string | null
  /** free KiB under ~/.ftlab */
  freeKiB: number | null
  /** the host can decompress a gzip stream (the runtime travels compressed) */
  gzip: boolean
  /** SHA-256 of the agent bundle already on the host, or null */
  agentSha256: string | null
  /** runtimes uploaded before (directory name under ~/.ftlab/runtime → SHA-256 of its bin/node), hashed only where the host's own Node will not do */
  runtimes: Record<string, string>
}

export interface DeployedAgent {
  hostId: string
  pid: number
  controlPort: number
  dataDir: string
  nodePath: string
  nodeVersion: string
  facts: HostFacts
  uploaded: { agent: boolean; runtime: boolean }
  connection: SshConnection
  /** a fresh control-channel stream to the agent (the agent client's `connect`) */
  connect(): Promise<Duplex>
  /** stops the agent, keeping its files */
  stop(): Promise<void>
}

export type DeployOutcome = { hostId: string; ok: true; agent: DeployedAgent } | { hostId: string; ok: false; step: DeployStep; error: Error }

/** A failed deploy: which host, at which step, and the underlying (usually SshError) cause. */
export class DeployError extends Error {
  constructor(
    readonly hostId: string,
    readonly step: DeployStep,
    readonly error: Error
  ) {
    super(`${hostId}: ${step} failed: ${error.message}`)
    this.name = 'DeployError'
  }
}

export function parseNodeVersion(v: string): { major: number; text: string } | null {
  const m = /^v(\d+)\.(\d+)\.(\d+)/.exec(v.trim())
  return m ? { major: Number(m[1]), text: v.trim() } : null
}

/** Reads what detectScript printed: five lines of facts, then `key=value` lines. */
export function parseDetect(stdout: string, host: string): HostFacts {
  const lines = stdout.split('\n').map((l) => l.trim())
  const [os, machine, home, node, free] = lines
  if (!os || !machine || !home?.startsWith('/')) {
    throw new SshError('remote', host, `cannot tell what ${host} is: 'uname -s; uname -m; echo $HOME' printed ${JSON.stringify(stdout.slice(0, 200))}`)
  }
  const facts: HostFacts = {
    os,
    machine,
    home,
    systemNode: node && node !== 'none' ? node : null,
    freeKiB: free && /^\d+$/.test(free) ? Number(free) : null,
    gzip: false,
    agentSha256: null,
    runtimes: {}
  }
  for (const l of lines.slice(5)) {
    const eq = l.indexOf('=')
    const [key, value] = [l.slice(0, eq), l.slice(eq + 1)]
    if (key === 'gzip') facts.gzip = value === 'yes'
    else if (key === 'agent' && /^[0-9a-f]{64}$/.test(value)) facts.agentSha256 = value
    else if (key === 'runtime') {
      const m = /^(\S+) ([0-9a-f]{64})$/.exec(value)
      if (m) facts.runtimes[m[1]!] = m[2]!
    }
  }
  return facts
}

/** Parses what startAgentScript printed: the agent's ready line or its agent.json. */
export function parseReady(stdout: string, host: string): { controlPort: number; pid: number; version?: number } {
  const line = stdout.split('\n').find((l) => l.startsWith('READY ') || l.startsWith('JSON '))
  if (!line) throw new SshError('remote', host, `the agent on ${host} did not report ready: ${JSON.stringify(stdout.slice(0, 300))}`)
  let obj: unknown
  try {
    obj = JSON.parse(line.slice(line.indexOf(' ') + 1))
  } catch {
    throw new SshError('remote', host, `the agent on ${host} printed a malformed ready line: ${JSON.stringify(line.slice(0, 300))}`)
  }
  const o = obj as { ready?: { controlPort?: unknown; pid?: unknown }; controlPort?: unknown; pid?: unknown; version?: unknown }
  const src = line.startsWith('READY ') ? (o.ready ?? {}) : o
  const controlPort = Number(src.controlPort)
  const pid = Number(src.pid)
  if (!Number.isInteger(controlPort) || controlPort < 1 || controlPort > 65535 || !Number.isInteger(pid) || pid < 1) {
    throw new SshError('remote', host, `the agent on ${host} reported no valid control port and pid: ${JSON.stringify(line.slice(0, 300))}`)
  }
  return { controlPort, pid, ...(typeof o.version === 'number' ? { version: o.version } : {}) }
}

async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex')
}

function diskFull(host: string, where: string, needBytes: number, freeKiB: number): SshError {
  return new SshError(
    'disk-full',
    host,
    `disk full on ${host}: ${where} needs ${Math.ceil(needBytes / 1024)} KiB but only ${freeKiB} KiB are free there; free some space (or point the host's home elsewhere) and deploy again`
  )
}

async function freeKiB(conn: SshConnection, dir: string): Promise<number | null> {
  const r = await conn.exec(freeSpaceScript(dir))
  const n = r.stdout.toString().trim()
  return r.code === 0 && /^\d+$/.test(n) ? Number(n) : null
}

/** Room for the file plus a little slack: an agent that cannot write its logs is no better. */
const SLACK_BYTES = 256 * 1024

/** After a failed upload: a full disk when the host says so (or has no room left), else the host's own words. */
async function uploadFailure(conn: SshConnection, dir: string, what: string, bytes: number, r: { code: number | null; stderr: Buffer }): Promise<SshError> {
  const stderr = r.stderr.toString().trim()
  const free = await freeKiB(conn, dir).catch(() => null)
  if (/no space left/i.test(stderr) || (free !== null && free * 1024 < bytes + SLACK_BYTES)) return diskFull(conn.name, `${what} (${dir})`, bytes, free ?? 0)
  return new SshError('remote', conn.name, `upload of ${what} to ${conn.name}:${dir} failed: ${stderr || `exit ${r.code}`}`)
}

/** What ensureNode decided before any byte moves: the host's own Node, a runtime already there, or one to upload. */
type NodePlan =
  | { kind: 'system'; nodePath: string; nodeVersion: string; detail: string }
  | { kind: 'present'; nodePath: string; nodeVersion: string; detail: string }
  | { kind: 'upload'; nodePath: string; nodeVersion: string; detail: string; runtime: PreparedRuntime; dir: string }

/** Decides where Node comes from on this host; every refusal says what to do about it. */
export async function planNode(host: string, facts: HostFacts, runtimeCacheDir: string | undefined): Promise<NodePlan> {
  const sys = facts.systemNode ? parseNodeVersion(facts.systemNode) : null
  if (sys && sys.major >= MIN_NODE_MAJOR) return { kind: 'system', nodePath: 'node', nodeVersion: sys.text, detail: `host has Node ${sys.text}` }
  const why = sys ? `host's Node ${sys.text} is older than ${MIN_NODE_MAJOR}` : 'host has no Node'
  if (facts.os !== 'Linux') {
    throw new SshError(
      'remote',
      host,
      `${why}, and FT Lab carries Node runtimes only for Linux (this host is ${facts.os}); install Node ${MIN_NODE_MAJOR}+ on it`
    )
  }
  const arch: NodeArch | null = nodeArchFor(facts.machine)
  if (!arch) {
    throw new SshError(
      'remote',
      host,
      `${why}, and FT Lab carries Node runtimes only for x86_64 and aarch64 (this host is ${facts.machine}); install Node ${MIN_NODE_MAJOR}+ on it`
    )
  }
  const cacheDir = runtimeCacheDir ?? defaultRuntimeCacheDir()
  const cached = await findCachedRuntime(arch, cacheDir)
  if (!cached) {
    throw new SshError(
      'remote',
      host,
      `${why}, and no Node runtime for linux-${arch} is cached in ${cacheDir}; run: node scripts/fetch-node-runtime.mjs --arch ${arch}`
    )
  }
  const runtime = await prepareRuntime(cached)
  const name = `node-v${cached.version}-linux-${arch}`
  const dir = `${facts.home}/.ftlab/runtime/${name}`
  const nodePath = `${dir}/bin/node`
  const nodeVersion = `v${cached.version}`
  // detect hashed what is there: the same bytes as the console's copy, or it is sent again
  if (facts.runtimes[name] === runtime.sha256)
    return { kind: 'present', nodePath, nodeVersion, detail: `${why}; runtime ${nodeVersion} already uploaded (sha256 checked)` }
  const again = facts.runtimes[name] ? ' (the copy there no longer hashes as it should)' : ''
  return { kind: 'upload', nodePath, nodeVersion, runtime, dir, detail: `${why}; uploading Node ${nodeVersion} for linux-${arch}${again}` }
}

/**
 * Sends the runtime (its gzip -9 copy where the host has gzip) into a command that unpacks it,
 * hashes it as it is written and puts it in place only when hash and size match.
 */
async function uploadRuntime(conn: SshConnection, facts: HostFacts, plan: Extract<NodePlan, { kind: 'upload' }>): Promise<void> {
  const rt = plan.runtime
  const what = 'the Node runtime'
  const input = facts.gzip ? createReadStream(rt.gzPath, { highWaterMark: 1 << 20 }) : createReadStream(rt.path, { highWaterMark: 1 << 20 })
  const r = await conn.exec(receiveRuntimeScript(plan.nodePath, { sha256: rt.sha256, gzSha256: rt.gzSha256, bytes: rt.bytes }, facts.gzip), { stdin: input })
  if (r.code === 0 && r.stdout.toString().trim() === plan.nodeVersion) return
  if (/no space left|written with|could not unpack/i.test(r.stderr.toString())) throw await uploadFailure(conn, `${plan.dir}/bin`, what, rt.bytes, r)
  if (/arrived with sha256/.test(r.stderr.toString())) throw new SshError('remote', conn.name, `${what} for ${conn.name}: ${r.stderr.toString().trim()}`)
  const out = (r.stderr.toString() || r.stdout.toString()).trim()
  throw new SshError('remote', conn.name, `uploaded Node runtime does not run on ${conn.name}: ${out || `exit ${r.code}`}`)
}

/** Uploads the agent bundle unless the host has the same bytes; true when it was uploaded. */
async function uploadBundle(conn: SshConnection, facts: HostFacts, bundlePath: string, local: { sha256: string; bytes: number }): Promise<void> {
  const dir = `${facts.home}/.ftlab/agent`
  const what = 'the agent bundle'
  const r = await conn.exec(receiveFileScript(`${dir}/${AGENT_FILE}`, local.sha256, '644'), { stdin: createReadStream(bundlePath) })
  if (r.code === 0) return
  if (/arrived with sha256/.test(r.stderr.toString())) throw new SshError('remote', conn.name, `${what} on ${conn.name} ${r.stderr.toString().trim()}`)
  throw await uploadFailure(conn, dir, what, local.bytes, r)
}

/**
 * Deploys to one host; progress goes to opts.onProgress, failures throw with their step.
 * Round trips are few and overlap: the bundle is hashed and the runtime prepared while the
 * connection is made, one command tells everything about the host (including the hashes of
 * what is already there), the runtime and the bundle go up at once on two channels, then the
 * agent starts. Cold: connect, detect, two uploads side by side, start; warm: connect, detect, start.
 */
export async function deployAgent(target: DeployTarget, opts: DeployOptions = {}): Promise<DeployedAgent> {
  const emit = (step: DeployStep, state: DeployProgress['state'], detail: string): void => opts.onProgress?.({ hostId: target.id, step, state, detail })
  let step: DeployStep = 'connect'
  let conn: SshConnection | undefined
  const run = async <T>(s: DeployStep, detail: string, fn: () => Promise<T>): Promise<T> => {
    step = s
    emit(s, 'running', detail)
    return fn()
  }
  // the local bundle's hash is computed while connecting; its failure is reported at its own step
  let localHash: Promise<string> | undefined
  try {
    const bundlePath = resolvePath(opts.bundlePath ?? 'out/agent/ftlab-agent.cjs')
    const bundle = await stat(bundlePath).catch(() => null)
    if (!bundle?.isFile()) throw new SshError('bad-input', target.id, `agent bundle ${bundlePath} is missing; build it with: node scripts/build-node.mjs`)
    localHash = sha256File(bundlePath)
    localHash.catch(() => {})

    conn = await run('connect', 'connecting', () => target.connect())
    const c = conn
    emit('connect', 'done', `connected to ${c.name}`)

    const facts = await run('detect', 'detecting OS, architecture, Node and what is already there', async () => {
      const r = await c.exec(detectScript(MIN_NODE_MAJOR))
      if (r.code !== 0) throw new SshError('remote', c.name, `host detection failed on ${c.name}: ${r.stderr.toString().trim()}`)
      return parseDetect(r.stdout.toString(), c.name)
    })
    emit('detect', 'done', `${facts.os} ${facts.machine}, Node ${facts.systemNode ?? 'none'}`)

    const node = await run('runtime', 'checking for Node', () => planNode(c.name, facts, opts.runtimeCacheDir))
    const local = { sha256: await localHash, bytes: bundle.size }
    const sendBundle = facts.agentSha256 !== local.sha256
    // one check for everything about to be written, before a byte moves
    const needs = [
      ...(node.kind === 'upload' ? [{ what: 'the Node runtime', bytes: node.runtime.bytes }] : []),
      ...(sendBundle ? [{ what: 'the agent bundle', bytes: local.bytes }] : [])
    ]
    const needBytes = needs.reduce((n, x) => n + x.bytes, 0) + SLACK_BYTES
    if (needs.length && facts.freeKiB !== null && facts.freeKiB * 1024 < needBytes) {
      step = sendBundle && node.kind !== 'upload' ? 'upload' : 'runtime'
      throw diskFull(c.name, `${needs.map((x) => x.what).join(' and ')} (${facts.home}/.ftlab)`, needBytes, facts.freeKiB)
    }
    const runtimeUpload = (async () => {
      if (node.kind !== 'upload') {
        emit('runtime', 'skipped', node.detail)
        return false
      }
      emit('runtime', 'running', node.detail)
      const t0 = Date.now()
      await uploadRuntime(c, facts, node)
      const sent = facts.gzip ? `${(node.runtime.gzBytes / 1048576).toFixed(0)} MiB gzip` : `${(node.runtime.bytes / 1048576).toFixed(0)} MiB`
      emit('runtime', 'done', `Node ${node.nodeVersion} uploaded (${sent}, sha256 checked) in ${Date.now() - t0} ms`)
      return true
    })().catch((e: unknown) => {
      throw Object.assign(e as Error, { deployStep: 'runtime' as const })
    })
    const bundleUpload = (async () => {
      emit('upload', 'running', 'comparing agent bundle')
      if (!sendBundle) {
        emit('upload', 'skipped', `agent bundle unchanged (sha256 ${local.sha256.slice(0, 12)})`)
        return false
      }
      await uploadBundle(c, facts, bundlePath, local)
      emit('upload', 'done', `agent bundle uploaded (${bundle.size} bytes, sha256 checked)`)
      return true
    })().catch((e: unknown) => {
      throw Object.assign(e as Error, { deployStep: 'upload' as const })
    })
    // both run to the end before either failure is reported, so no upload is left running on a closed connection
    const [rt, up] = await Promise.allSettled([runtimeUpload, bundleUpload])
    for (const x of [rt, up]) {
      if (x.status === 'rejected') {
        step = (x.reason as { deployStep?: DeployStep }).deployStep ?? step
        throw x.reason
      }
    }
    const uploaded = { agent: up.status === 'fulfilled' && up.value, runtime: rt.status === 'fulfilled' && rt.value }

    const dataDir = `${facts.home}/.ftlab/data`
    const boot: AgentBootConfig = { ...target.boot, controlPort: target.boot.controlPort ?? 0, dataDir }
    const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000
    const ready = await run('start', 'starting agent', async () => {
      const r = await c.exec(startAgentScript(node.nodePath, readyTimeoutMs), { stdin: JSON.stringify(boot) + '\n', timeoutMs: readyTimeoutMs + 10_000 })
      if (r.code !== 0) {
        throw new SshError('remote', c.name, `agent did not start on ${c.name}: ${r.stderr.toString().trim() || `exit ${r.code}`}`)
      }
      return parseReady(r.stdout.toString(), c.name)
    })
    emit('start', 'done', `agent pid ${ready.pid}, control port ${ready.controlPort}`)

    return {
      hostId: target.id,
      pid: ready.pid,
      controlPort: ready.controlPort,
      dataDir,
      nodePath: node.nodePath,
      nodeVersion: node.nodeVersion,
      facts,
      uploaded,
      connection: c,
      connect: () => c.forwardOut('127.0.0.1', ready.controlPort),
      stop: async () => {
        const r = await c.exec(stopScript)
        if (r.code !== 0) throw new SshError('remote', c.name, `cannot stop the agent on ${c.name}: ${r.stderr.toString().trim()}`)
      }
    }
  } catch (e) {
    conn?.close()
    const err = e instanceof Error ? e : new Error(String(e))
    emit(step, 'failed', err.message)
    throw new DeployError(target.id, step, err)
  }
}

/** Deploys to every host at once; one host's failure is its own outcome and never stops the others. */
export async function deployAll(targets: DeployTarget[], opts: DeployOptions = {}): Promise<DeployOutcome[]> {
  const ids = new Set<string>()
  for (const t of targets) {
    if (ids.has(t.id)) throw new SshError('bad-input', t.id, `host id '${t.id}' appears twice in the deploy list`)
    ids.add(t.id)
  }
  return Promise.all(
    targets.map(async (t): Promise<DeployOutcome> => {
      try {
        return { hostId: t.id, ok: true, agent: await deployAgent(t, opts) }
      } catch (e) {
        if (e instanceof DeployError) return { hostId: t.id, ok: false, step: e.step, error: e.error }
        return { hostId: t.id, ok: false, step: 'connect', error: e as Error }
      }
    })
  )
}

/** Stops the agent and removes ~/.ftlab (agent, runtime, data, logs) from the host. */
export async function teardownHost(conn: SshConnection): Promise<void> {
  const r = await conn.exec(teardownScript)
  if (r.code !== 0 || !r.stdout.toString().includes('removed')) {
    throw new SshError('remote', conn.name, `teardown on ${conn.name} failed: ${r.stderr.toString().trim() || `exit ${r.code}`}`)
  }
}
