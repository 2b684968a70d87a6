// Deploys the FT Lab agent to hosts over SSH: detect the host, make sure it can run Node
// 18+ (uploading a runtime where it cannot), upload the bundle only when it changed, start
// the agent detached with its boot config on stdin, and hand back a factory for the control
// channel (a port-forward to the agent's loopback-only control port).
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import { Readable, type Duplex } from 'node:stream'
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
  teardownScript,
  type RuntimeEncoding,
  type StartAfter,
  type StartExpectation
} from './remote-scripts.js'
import {
  defaultRuntimeCacheDir,
  findCachedRuntime,
  nodeArchFor,
  preparedIfCurrent,
  prepareRuntime,
  type NodeArch,
  type PreparedRuntime
} from './runtime-cache.js'

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
  /** the host has zstd (the runtime's smaller copy, unpacked in a third of gzip's time) */
  zstd: boolean
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
    zstd: false,
    agentSha256: null,
    runtimes: {}
  }
  for (const l of lines.slice(5)) {
    const eq = l.indexOf('=')
    const [key, value] = [l.slice(0, eq), l.slice(eq + 1)]
    if (key === 'gzip') facts.gzip = value === 'yes'
    else if (key === 'zstd') facts.zstd = value === 'yes'
    else if (key === 'agent' && /^[0-9a-f]{64}$/.test(value)) facts.agentSha256 = value
    else if (key === 'runtime') {
      const m = /^(\S+) ([0-9a-f]{64})$/.exec(value)
      if (m) facts.runtimes[m[1]!] = m[2]!
    }
  }
  return facts
}

/** Parses what startAgentScript printed: the agent's ready line or its agent.json. */
export function parseReady(stdout: string, host: string): { controlPort: number; pid: number; version?: number; node?: string } {
  const line = stdout.split('\n').find((l) => l.startsWith('READY ') || l.startsWith('JSON '))
  if (!line) throw new SshError('remote', host, `the agent on ${host} did not report ready: ${JSON.stringify(stdout.slice(0, 300))}`)
  let obj: unknown
  try {
    obj = JSON.parse(line.slice(line.indexOf(' ') + 1))
  } catch {
    throw new SshError('remote', host, `the agent on ${host} printed a malformed ready line: ${JSON.stringify(line.slice(0, 300))}`)
  }
  const o = obj as { ready?: { controlPort?: unknown; pid?: unknown; node?: unknown }; controlPort?: unknown; pid?: unknown; version?: unknown }
  const src = line.startsWith('READY ') ? (o.ready ?? {}) : o
  const controlPort = Number(src.controlPort)
  const pid = Number(src.pid)
  if (!Number.isInteger(controlPort) || controlPort < 1 || controlPort > 65535 || !Number.isInteger(pid) || pid < 1) {
    throw new SshError('remote', host, `the agent on ${host} reported no valid control port and pid: ${JSON.stringify(line.slice(0, 300))}`)
  }
  const node = line.startsWith('READY ') ? o.ready?.node : undefined
  return { controlPort, pid, ...(typeof o.version === 'number' ? { version: o.version } : {}), ...(typeof node === 'string' ? { node } : {}) }
}

/** What a command that may start the agent printed after its own output: not tried, not started (NOSTART), or the ready line. */
export function parseStarted(stdout: string, host: string): { tried: false } | { tried: true; node: string; ready: ReturnType<typeof parseReady> | null } {
  const lines = stdout.split('\n')
  const start = lines.find((l) => l.startsWith('START '))
  if (!start) return { tried: false }
  return { tried: true, node: start.slice(6).trim(), ready: lines.some((l) => l.startsWith('READY ')) ? parseReady(stdout, host) : null }
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

/** The marker the host's shell replaces with its $HOME in the boot line: deploy learns the home only from the command that may start the agent. */
export const HOME_MARKER = '@HOME@'

/** stdin for a command that may start the agent: the boot line first, then the file (if any). */
function bootThen(bootLine: string, path?: string): Readable {
  return Readable.from(
    (async function* () {
      yield Buffer.from(bootLine)
      if (path) yield* createReadStream(path, { highWaterMark: 1 << 20 })
    })()
  )
}

/** An upload command's failure in its own words; a start it went on to make that failed is a start failure. */
class StartFailed extends Error {}

function startFailure(host: string, r: { code: number | null; stderr: Buffer }, node: string): StartFailed {
  return new StartFailed(
    `agent did not start on ${host} (with ${node === 'node' ? "the host's node" : node}): ${r.stderr.toString().trim() || `exit ${r.code}`}`
  )
}

/**
 * Sends the runtime (the cache's zstd copy where the host has zstd, else its gzip copy where
 * it has gzip) into a command that unpacks it, hashes it as it is written, puts it in place
 * only when hash and size match, and then, with `start`, starts the agent on it.
 */
async function uploadRuntime(
  conn: SshConnection,
  facts: HostFacts,
  plan: Extract<NodePlan, { kind: 'upload' }>,
  start: (StartAfter & { bootLine: string }) | null
): Promise<{ started: ReturnType<typeof parseStarted> }> {
  const rt = plan.runtime
  const what = 'the Node runtime'
  const [encoding, path, packedSha256]: [RuntimeEncoding, string, string] =
    facts.zstd && rt.zst ? ['zstd', rt.zst.path, rt.zst.sha256] : facts.gzip ? ['gzip', rt.gzPath, rt.gzSha256] : ['none', rt.path, rt.sha256]
  const script = receiveRuntimeScript(plan.nodePath, { sha256: rt.sha256, packedSha256, bytes: rt.bytes }, encoding, start ?? undefined)
  const r = await conn.exec(script, { stdin: start ? bootThen(start.bootLine, path) : createReadStream(path, { highWaterMark: 1 << 20 }) })
  const started = start ? parseStarted(r.stdout.toString(), conn.name) : ({ tried: false } as const)
  if (started.tried) {
    // 126/127: the runtime could not be executed at all (another architecture, a missing loader)
    if (r.code === 12 && /exited \(status 12[67]\)/.test(r.stderr.toString())) {
      throw new SshError('remote', conn.name, `uploaded Node runtime does not run on ${conn.name}: ${r.stderr.toString().trim()}`)
    }
    if (r.code !== 0 || !started.ready) throw startFailure(conn.name, r, plan.nodePath)
    return { started }
  }
  if (r.code === 0 && (start ? r.stdout.toString().includes('NOSTART') : r.stdout.toString().trim() === plan.nodeVersion)) return { started }
  if (/no space left|written with|could not unpack/i.test(r.stderr.toString())) throw await uploadFailure(conn, `${plan.dir}/bin`, what, rt.bytes, r)
  if (/arrived with sha256/.test(r.stderr.toString())) throw new SshError('remote', conn.name, `${what} for ${conn.name}: ${r.stderr.toString().trim()}`)
  const out = (r.stderr.toString() || r.stdout.toString()).trim()
  throw new SshError('remote', conn.name, `uploaded Node runtime does not run on ${conn.name}: ${out || `exit ${r.code}`}`)
}

/** Uploads the agent bundle and then, with `start`, starts the agent. */
async function uploadBundle(
  conn: SshConnection,
  facts: HostFacts,
  bundlePath: string,
  local: { sha256: string; bytes: number },
  start: (StartAfter & { bootLine: string }) | null
): Promise<{ started: ReturnType<typeof parseStarted> }> {
  const dir = `${facts.home}/.ftlab/agent`
  const what = 'the agent bundle'
  const r = await conn.exec(receiveFileScript(`${dir}/${AGENT_FILE}`, local.sha256, '644', start ?? undefined), {
    stdin: start ? bootThen(start.bootLine, bundlePath) : createReadStream(bundlePath)
  })
  const started = start ? parseStarted(r.stdout.toString(), conn.name) : ({ tried: false } as const)
  if (started.tried) {
    if (r.code !== 0 || !started.ready) throw startFailure(conn.name, r, started.node)
    return { started }
  }
  if (r.code === 0) return { started }
  if (/arrived with sha256/.test(r.stderr.toString())) throw new SshError('remote', conn.name, `${what} on ${conn.name} ${r.stderr.toString().trim()}`)
  throw await uploadFailure(conn, dir, what, local.bytes, r)
}

/** The console's runtimes for each architecture, as far as they are already prepared (nothing is made here). */
async function knownRuntimes(cacheDir: string | undefined): Promise<StartExpectation['runtimes']> {
  const out: StartExpectation['runtimes'] = {}
  await Promise.all(
    (['x64', 'arm64'] as const).map(async (arch) => {
      const cached = await findCachedRuntime(arch, cacheDir ?? defaultRuntimeCacheDir())
      const rt = cached && (await preparedIfCurrent(cached))
      if (rt) out[arch] = { name: `node-v${rt.version}-linux-${arch}`, sha256: rt.sha256 }
    })
  )
  return out
}

/**
 * Deploys to one host; progress goes to opts.onProgress, failures throw with their step.
 * Round trips are few and overlap: the bundle is hashed and the console's runtimes looked up
 * while the connection is made; one command tells everything about the host (including the
 * hashes of what is already there) and, when nothing needs uploading, starts the agent at
 * once; otherwise the runtime and the bundle go up at once on two channels, and the command
 * that finishes the upload starts the agent (the runtime's, which checks the bundle is in
 * place; a separate start command only when it was not). Warm: connect, one command; cold:
 * connect, detect, the uploads that start the agent.
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
  // the local bundle's hash and the cached runtimes are looked up while connecting; a failure is reported at its own step
  let localHash: Promise<string> | undefined
  try {
    const bundlePath = resolvePath(opts.bundlePath ?? 'out/agent/ftlab-agent.cjs')
    const bundle = await stat(bundlePath).catch(() => null)
    if (!bundle?.isFile()) throw new SshError('bad-input', target.id, `agent bundle ${bundlePath} is missing; build it with: node scripts/build-node.mjs`)
    localHash = sha256File(bundlePath)
    localHash.catch(() => {})
    const runtimes = knownRuntimes(opts.runtimeCacheDir).catch(() => ({}))
    const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000
    // the host's shell puts its $HOME in place of the marker (the console learns the home from the same command)
    const bootLine =
      JSON.stringify({ ...target.boot, controlPort: target.boot.controlPort ?? 0, dataDir: `${HOME_MARKER}/.ftlab/data` } satisfies AgentBootConfig) + '\n'

    conn = await run('connect', 'connecting', () => target.connect())
    const c = conn
    emit('connect', 'done', `connected to ${c.name}`)

    const expectation: StartExpectation = { agentSha256: await localHash, runtimes: await runtimes, readyTimeoutMs }
    const detected = await run(
      'detect',
      'detecting OS, architecture, Node and what is already there (and starting the agent if nothing needs uploading)',
      async () => {
        const r = await c.exec(detectScript(MIN_NODE_MAJOR, expectation), { stdin: bootLine, timeoutMs: readyTimeoutMs + 10_000 })
        const stdout = r.stdout.toString()
        if (r.code !== 0 && !stdout.includes('\nSTART '))
          throw new SshError('remote', c.name, `host detection failed on ${c.name}: ${r.stderr.toString().trim()}`)
        return { facts: parseDetect(stdout, c.name), started: parseStarted(stdout, c.name), r }
      }
    )
    const facts = detected.facts
    emit('detect', 'done', `${facts.os} ${facts.machine}, Node ${facts.systemNode ?? 'none'}`)
    const dataDir = `${facts.home}/.ftlab/data`
    const local = { sha256: expectation.agentSha256, bytes: bundle.size }

    let node: NodePlan
    let uploaded = { agent: false, runtime: false }
    let ready: ReturnType<typeof parseReady> | null = null
    if (detected.started.tried) {
      // warm: everything was there and the detect command started the agent
      step = 'start'
      if (detected.r.code !== 0 || !detected.started.ready) throw startFailure(c.name, detected.r, detected.started.node)
      ready = detected.started.ready
      const startedWith = detected.started.node
      node = await run('runtime', 'checking for Node', () => planNode(c.name, facts, opts.runtimeCacheDir))
      emit('runtime', 'skipped', node.detail)
      emit('upload', 'skipped', `agent bundle unchanged (sha256 ${local.sha256.slice(0, 12)})`)
      if (node.nodePath !== startedWith)
        throw new SshError('remote', c.name, `the agent on ${c.name} was started with ${startedWith}, but deploy chose ${node.nodePath}`)
      emit('start', 'running', 'started by the detect command')
    } else {
      node = await run('runtime', 'checking for Node', () => planNode(c.name, facts, opts.runtimeCacheDir))
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
      // the last upload to finish starts the agent: the runtime's when there is one (the bundle, 1/100 of its size, is in place by then)
      const start = (nodePath: string) => ({ node: nodePath, agentSha256: local.sha256, readyTimeoutMs, bootLine })
      const plan = node
      const runtimeUpload = (async () => {
        if (plan.kind !== 'upload') {
          emit('runtime', 'skipped', plan.detail)
          return null
        }
        emit('runtime', 'running', plan.detail)
        const t0 = Date.now()
        const res = await uploadRuntime(c, facts, plan, start(plan.nodePath))
        const rt = plan.runtime
        const sent =
          facts.zstd && rt.zst
            ? `${(rt.zst.bytes / 1048576).toFixed(0)} MiB zstd`
            : facts.gzip
              ? `${(rt.gzBytes / 1048576).toFixed(0)} MiB gzip`
              : `${(rt.bytes / 1048576).toFixed(0)} MiB`
        emit('runtime', 'done', `Node ${plan.nodeVersion} uploaded (${sent}${rt.stripped ? ', stripped' : ''}, sha256 checked) in ${Date.now() - t0} ms`)
        return res
      })().catch((e: unknown) => {
        throw Object.assign(e as Error, { deployStep: e instanceof StartFailed ? 'start' : ('runtime' as const) })
      })
      const bundleUpload = (async () => {
        emit('upload', 'running', 'comparing agent bundle')
        if (!sendBundle) {
          emit('upload', 'skipped', `agent bundle unchanged (sha256 ${local.sha256.slice(0, 12)})`)
          return null
        }
        const res = await uploadBundle(c, facts, bundlePath, local, plan.kind === 'upload' ? null : start(plan.nodePath))
        emit('upload', 'done', `agent bundle uploaded (${bundle.size} bytes, sha256 checked)`)
        return res
      })().catch((e: unknown) => {
        throw Object.assign(e as Error, { deployStep: e instanceof StartFailed ? 'start' : ('upload' as const) })
      })
      // both run to the end before either failure is reported, so no upload is left running on a closed connection
      const [rt, up] = await Promise.allSettled([runtimeUpload, bundleUpload])
      for (const x of [rt, up]) {
        if (x.status === 'rejected') {
          step = (x.reason as { deployStep?: DeployStep }).deployStep ?? step
          throw x.reason
        }
      }
      uploaded = { agent: up.status === 'fulfilled' && up.value !== null, runtime: rt.status === 'fulfilled' && rt.value !== null }
      for (const x of [rt, up]) {
        const started = x.status === 'fulfilled' ? x.value?.started : undefined
        if (started?.tried && started.ready) ready = started.ready
      }
      if (ready) emit('start', 'running', 'started by the upload command')
    }

    if (!ready) {
      ready = await run('start', 'starting agent', async () => {
        const r = await c.exec(startAgentScript(node.nodePath, readyTimeoutMs), { stdin: bootLine, timeoutMs: readyTimeoutMs + 10_000 })
        if (node.kind === 'upload' && r.code === 12 && /exited \(status 12[67]\)/.test(r.stderr.toString())) {
          step = 'runtime'
          throw new SshError('remote', c.name, `uploaded Node runtime does not run on ${c.name}: ${r.stderr.toString().trim()}`)
        }
        if (r.code !== 0) throw new SshError('remote', c.name, startFailure(c.name, r, node.nodePath).message)
        return parseReady(r.stdout.toString(), c.name)
      })
    }
    step = 'start'
    // a runtime's ready line names the Node it runs on: the version deploy meant to run
    if (node.kind !== 'system' && ready.node !== undefined && ready.node !== node.nodeVersion) {
      throw new SshError(
        'remote',
        c.name,
        `the Node runtime on ${c.name} (${node.nodePath}) reports ${ready.node}, expected ${node.nodeVersion}; deploy again to replace it`
      )
    }
    emit('start', 'done', `agent pid ${ready.pid}, control port ${ready.controlPort}`)
    const controlPort = ready.controlPort

    return {
      hostId: target.id,
      pid: ready.pid,
      controlPort,
      dataDir,
      nodePath: node.nodePath,
      nodeVersion: node.nodeVersion,
      facts,
      uploaded,
      connection: c,
      connect: () => c.forwardOut('127.0.0.1', controlPort),
      stop: async () => {
        const r = await c.exec(stopScript)
        if (r.code !== 0) throw new SshError('remote', c.name, `cannot stop the agent on ${c.name}: ${r.stderr.toString().trim()}`)
      }
    }
  } catch (e) {
    conn?.close()
    const err = e instanceof StartFailed ? new SshError('remote', conn?.name ?? target.id, e.message) : e instanceof Error ? e : new Error(String(e))
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
