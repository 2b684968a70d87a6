// Deploys the FT Lab agent to hosts over SSH: detect the host, make sure it can run Node
// 18+ (uploading a runtime where it cannot), upload the bundle only when it changed, start
// the agent detached with its boot config on stdin, and hand back a factory for the control
// channel (a port-forward to the agent's loopback-only control port).
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import type { Duplex, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import type { AgentBootConfig } from '../../agent/control/protocol.js'
import type { SshConnection } from './connection.js'
import { SshError } from './errors.js'
import {
  AGENT_FILE,
  detectScript,
  freeSpaceScript,
  installScript,
  receiveRuntimeScript,
  shq,
  sha256Script,
  startAgentScript,
  stopScript,
  teardownScript
} from './remote-scripts.js'
import { defaultRuntimeCacheDir, findCachedRuntime, nodeArchFor, type NodeArch } from './runtime-cache.js'

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
  freeKiB: number | null
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

export function parseDetect(stdout: string, host: string): HostFacts {
  const lines = stdout.split('\n').map((l) => l.trim())
  const [os, machine, home, node, free] = lines
  if (!os || !machine || !home?.startsWith('/')) {
    throw new SshError('remote', host, `cannot tell what ${host} is: 'uname -s; uname -m; echo $HOME' printed ${JSON.stringify(stdout.slice(0, 200))}`)
  }
  return {
    os,
    machine,
    home,
    systemNode: node && node !== 'none' ? node : null,
    freeKiB: free && /^\d+$/.test(free) ? Number(free) : null
  }
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

async function ensureRoom(conn: SshConnection, dir: string, bytes: number, what: string): Promise<void> {
  const free = await freeKiB(conn, dir)
  if (free !== null && free * 1024 < bytes + SLACK_BYTES) throw diskFull(conn.name, `${what} (${dir})`, bytes + SLACK_BYTES, free)
}

async function uploadBySftp(conn: SshConnection, local: string, remoteDir: string, name: string, mode: string): Promise<string> {
  const sftp = await conn.sftp()
  const tmp = `${remoteDir}/.${name}.upload-${process.pid}`
  const size = (await stat(local)).size
  try {
    await new Promise<void>((resolve, reject) => sftp.fastPut(local, tmp, (err) => (err ? reject(err) : resolve())))
  } catch (e) {
    await new Promise<void>((resolve) => sftp.unlink(tmp, () => resolve()))
    // SFTP v3 reports ENOSPC as a bare "Failure"; ask the filesystem what happened.
    const free = await freeKiB(conn, remoteDir).catch(() => null)
    if (free !== null && free * 1024 < size + SLACK_BYTES) throw diskFull(conn.name, `${name} (${remoteDir})`, size, free)
    throw new SshError('remote', conn.name, `upload of ${name} to ${conn.name}:${remoteDir} failed: ${(e as Error).message}`)
  }
  const r = await conn.exec(installScript(tmp, `${remoteDir}/${name}`, mode))
  if (r.code !== 0) throw new SshError('remote', conn.name, `cannot install ${name} on ${conn.name}: ${r.stderr.toString().trim()}`)
  return r.stdout.toString().trim()
}

/** Streams a local file, gzip-compressed, into a remote command's stdin. */
function execWithInput(conn: SshConnection, command: string, input: Readable): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    conn.client.exec(command, (err, ch) => {
      if (err) return reject(new SshError('remote', conn.name, `cannot run a command on ${conn.name}: ${err.message}`))
      let stdout = ''
      let stderr = ''
      let code: number | null = null
      ch.on('data', (d: Buffer) => (stdout += d.toString()))
      ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
      ch.on('exit', (c: number | null) => (code = c))
      ch.on('close', () => resolve({ code, stdout, stderr }))
      pipeline(input, ch).catch(() => {
        // The remote side stopped reading (for example a full disk); its exit status says why.
      })
    })
  })
}

async function ensureNode(
  conn: SshConnection,
  facts: HostFacts,
  opts: DeployOptions,
  progress: (state: DeployProgress['state'], detail: string) => void
): Promise<{ nodePath: string; nodeVersion: string; uploaded: boolean }> {
  const sys = facts.systemNode ? parseNodeVersion(facts.systemNode) : null
  if (sys && sys.major >= MIN_NODE_MAJOR) {
    progress('skipped', `host has Node ${sys.text}`)
    return { nodePath: 'node', nodeVersion: sys.text, uploaded: false }
  }
  const why = sys ? `host's Node ${sys.text} is older than ${MIN_NODE_MAJOR}` : 'host has no Node'
  if (facts.os !== 'Linux') {
    throw new SshError(
      'remote',
      conn.name,
      `${why}, and FT Lab carries Node runtimes only for Linux (this host is ${facts.os}); install Node ${MIN_NODE_MAJOR}+ on it`
    )
  }
  const arch: NodeArch | null = nodeArchFor(facts.machine)
  if (!arch) {
    throw new SshError(
      'remote',
      conn.name,
      `${why}, and FT Lab carries Node runtimes only for x86_64 and aarch64 (this host is ${facts.machine}); install Node ${MIN_NODE_MAJOR}+ on it`
    )
  }
  const cacheDir = opts.runtimeCacheDir ?? defaultRuntimeCacheDir()
  const cached = await findCachedRuntime(arch, cacheDir)
  if (!cached) {
    throw new SshError(
      'remote',
      conn.name,
      `${why}, and no Node runtime for linux-${arch} is cached in ${cacheDir}; run: node scripts/fetch-node-runtime.mjs --arch ${arch}`
    )
  }
  const dir = `${facts.home}/.ftlab/runtime/node-v${cached.version}-linux-${arch}`
  const nodePath = `${dir}/bin/node`
  const want = `v${cached.version}`
  const have = await conn.exec(`${shq(nodePath)} --version`)
  if (have.code === 0 && have.stdout.toString().trim() === want) {
    progress('skipped', `${why}; runtime ${want} already uploaded`)
    return { nodePath, nodeVersion: want, uploaded: false }
  }
  progress('running', `${why}; uploading Node ${want} for linux-${arch}`)
  const size = (await stat(cached.path)).size
  await ensureRoom(conn, `${dir}/bin`, size, 'the Node runtime')
  const gz = (await conn.exec('command -v gzip')).code === 0
  const input = gz ? createReadStream(cached.path).pipe(createGzip({ level: 1 })) : createReadStream(cached.path)
  const r = await execWithInput(conn, receiveRuntimeScript(nodePath, gz), input)
  if (r.code !== 0 || r.stdout.trim() !== want) {
    if (/no space left/i.test(r.stderr)) {
      const free = (await freeKiB(conn, `${dir}/bin`).catch(() => null)) ?? 0
      throw diskFull(conn.name, `the Node runtime (${dir})`, size, free)
    }
    throw new SshError('remote', conn.name, `uploaded Node runtime does not run on ${conn.name}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`)
  }
  return { nodePath, nodeVersion: want, uploaded: true }
}

/** Deploys to one host; progress goes to opts.onProgress, failures throw with their step. */
export async function deployAgent(target: DeployTarget, opts: DeployOptions = {}): Promise<DeployedAgent> {
  const emit = (step: DeployStep, state: DeployProgress['state'], detail: string): void => opts.onProgress?.({ hostId: target.id, step, state, detail })
  let step: DeployStep = 'connect'
  let conn: SshConnection | undefined
  const run = async <T>(s: DeployStep, detail: string, fn: () => Promise<T>): Promise<T> => {
    step = s
    emit(s, 'running', detail)
    return fn()
  }
  try {
    const bundlePath = resolvePath(opts.bundlePath ?? 'out/agent/ftlab-agent.cjs')
    const bundle = await stat(bundlePath).catch(() => null)
    if (!bundle?.isFile()) throw new SshError('bad-input', target.id, `agent bundle ${bundlePath} is missing; build it with: node scripts/build-node.mjs`)

    conn = await run('connect', 'connecting', () => target.connect())
    const c = conn
    emit('connect', 'done', `connected to ${c.name}`)

    const facts = await run('detect', 'detecting OS, architecture and Node', async () => {
      const r = await c.exec(detectScript)
      if (r.code !== 0) throw new SshError('remote', c.name, `host detection failed on ${c.name}: ${r.stderr.toString().trim()}`)
      return parseDetect(r.stdout.toString(), c.name)
    })
    emit('detect', 'done', `${facts.os} ${facts.machine}, Node ${facts.systemNode ?? 'none'}`)

    step = 'runtime'
    const node = await ensureNode(c, facts, opts, (state, detail) => emit('runtime', state, detail))
    if (node.uploaded) emit('runtime', 'done', `Node ${node.nodeVersion} uploaded`)

    const agentDir = `${facts.home}/.ftlab/agent`
    const uploadedAgent = await run('upload', 'comparing agent bundle', async () => {
      const [localHash, remote] = await Promise.all([sha256File(bundlePath), c.exec(sha256Script(`${agentDir}/${AGENT_FILE}`))])
      if (remote.stdout.toString().trim() === localHash) {
        emit('upload', 'skipped', `agent bundle unchanged (sha256 ${localHash.slice(0, 12)})`)
        return false
      }
      await ensureRoom(c, agentDir, bundle.size, 'the agent bundle')
      const got = await uploadBySftp(c, bundlePath, agentDir, AGENT_FILE, '644')
      if (got !== localHash)
        throw new SshError('remote', c.name, `agent bundle on ${c.name} has sha256 ${got}, expected ${localHash}: the upload was corrupted`)
      emit('upload', 'done', `agent bundle uploaded (${bundle.size} bytes)`)
      return true
    })

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
      uploaded: { agent: uploadedAgent, runtime: node.uploaded },
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
