// The deploy section of the benchmark: how long it takes to put the agent on three hosts over
// real SSH and start it, on the network-namespace testbed. Cold = nothing of FT Lab on the
// hosts (the bundle is uploaded; the host without Node also gets a Node runtime); warm = the
// same bundle and runtime already there (hash-equal, uploads skipped). Every deploy opens its
// own connections, as a console does, so the SSH handshake is part of the figure.
import { existsSync } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { arch, tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { findAgentBundle } from '../lab/local-host.js'
import { connect, type SshConnection } from '../ssh/connection.js'
import { deployAgent, teardownHost, type DeployedAgent, type DeployProgress, type DeployStep } from '../ssh/deploy.js'
import { KnownHosts } from '../ssh/known-hosts.js'
import { findCachedRuntime, nodeArchFor, prepareRuntime } from '../ssh/runtime-cache.js'
import { SshConfig } from '../ssh/ssh-config.js'
import { LAB_FILE, labHost, readLab, testbedFor, testbedUnavailable, type LabHost } from '../../scripts/testbed/harness.js'
import { Aborted, checkAbort, spread, type Progress } from './measure.js'
import type { Spread } from './report.js'

export const DEPLOY_HOSTS = ['h1', 'h2', 'h3'] as const
/** the testbed host started without Node when a runtime is cached, so cold deploys upload one */
export const NO_NODE_HOST = 'h2'
export const DEPLOY_STEPS: readonly DeployStep[] = ['connect', 'detect', 'runtime', 'upload', 'start']

export interface HostDeploy {
  host: string
  totalMs: number
  /** from the step's first progress line to the next step's (the last one: to the agent's ready line) */
  stepsMs: Partial<Record<DeployStep, number>>
  uploaded: { agent: boolean; runtime: boolean }
}

export interface DeployRep {
  rep: number
  phase: 'cold' | 'warm'
  /** all three hosts in parallel, first connect to the last ready line */
  wallMs: number
  hosts: HostDeploy[]
}

export interface DeployPhaseFigures {
  phase: 'cold' | 'warm'
  wallMs: Spread
  perHost: { host: string; totalMs: Spread; stepsMs: Partial<Record<DeployStep, Spread>>; uploaded: { agent: number; runtime: number } }[]
}

export interface DeployResult {
  /** why the section did not run */
  skipped?: string
  hosts: { id: string; node: boolean }[]
  bundleBytes?: number
  /** the runtime uploaded to the host without Node, or why no host was without Node */
  runtime?: { version: string; bytes: number; gzBytes?: number; zstBytes?: number; stripped?: boolean; host: string } | { note: string }
  reps: DeployRep[]
  phases: DeployPhaseFigures[]
  error?: string
}

/**
 * Why the deploy section cannot run here, or null: the testbed's own needs, and a testbed that
 * is not already up unless `onUpTestbed` (then it uses that one and leaves it up).
 */
export function deployUnavailable(onUpTestbed = false): string | null {
  const why = testbedUnavailable()
  if (why) return why
  // the testbed is machine-wide: one already up belongs to a test or an operator, and this
  // section brings its own up and down, so by default it stays away from it
  if (existsSync(LAB_FILE) && !onUpTestbed)
    return `the testbed is already up (${LAB_FILE} exists); the deploy section brings up and tears down its own. To measure on the testbed that is up (it is repaired, h2's Node hidden for the run, and left up): --deploy-on-up-testbed; if it is a leftover: sudo scripts/testbed.sh down`
  return null
}

/**
 * Per-step durations of one host's deploy from its progress lines' arrival times: from a
 * step's first line to its own done/skipped/failed line (the runtime and the bundle go up side
 * by side, so a step does not end where the next begins), or, for a step without one, to the
 * next step's first line (the last one: to `endAt`).
 */
export function stepDurations(events: { step: DeployStep; at: number; state?: DeployProgress['state'] }[], endAt: number): Partial<Record<DeployStep, number>> {
  const starts: { step: DeployStep; at: number }[] = []
  for (const e of events) if (!starts.some((s) => s.step === e.step)) starts.push(e)
  const out: Partial<Record<DeployStep, number>> = {}
  starts.forEach((s, i) => {
    const ends = events.filter((e) => e.step === s.step && e.state !== undefined && e.state !== 'running')
    const end = ends.at(-1)?.at ?? starts[i + 1]?.at ?? endAt
    out[s.step] = Math.max(0, end - s.at)
  })
  return out
}

export function deployFigures(reps: DeployRep[], phase: 'cold' | 'warm'): DeployPhaseFigures {
  const mine = reps.filter((r) => r.phase === phase)
  const hosts = [...new Set(mine.flatMap((r) => r.hosts.map((h) => h.host)))]
  return {
    phase,
    wallMs: spread(mine.map((r) => r.wallMs)),
    perHost: hosts.map((host) => {
      const hs = mine.flatMap((r) => r.hosts.filter((h) => h.host === host))
      const stepsMs: Partial<Record<DeployStep, Spread>> = {}
      for (const step of DEPLOY_STEPS) {
        const xs = hs.map((h) => h.stepsMs[step]).filter((x): x is number => x !== undefined)
        if (xs.length) stepsMs[step] = spread(xs)
      }
      return {
        host,
        totalMs: spread(hs.map((h) => h.totalMs)),
        stepsMs,
        uploaded: { agent: hs.filter((h) => h.uploaded.agent).length, runtime: hs.filter((h) => h.uploaded.runtime).length }
      }
    })
  }
}

/**
 * Brings the testbed up, deploys cold and warm `reps` times each (interleaved), and brings it
 * down again (one that was already up, with --deploy-on-up-testbed, is given back as it was),
 * also on failure or abort. `registerCleanup` hands the caller a way to do that should the
 * process be interrupted before this returns.
 */
export async function deployRun(
  reps: number,
  progress: Progress,
  signal: AbortSignal,
  registerCleanup: (fn: (() => void) | null) => void,
  opts: { onUpTestbed?: boolean } = {}
): Promise<DeployResult> {
  const res: DeployResult = { hosts: [], reps: [], phases: [] }
  const why = deployUnavailable(opts.onUpTestbed)
  if (why) return { ...res, skipped: why }
  // a testbed already up is used as it is (its other hosts kept) and given back as it was
  const before = existsSync(LAB_FILE) ? readLab() : null
  const bundle = findAgentBundle()
  res.bundleBytes = (await stat(bundle)).size
  const machine = arch() === 'x64' ? 'x86_64' : arch() === 'arm64' ? 'aarch64' : arch()
  const nodeArch = nodeArchFor(machine)
  const cached = nodeArch ? await findCachedRuntime(nodeArch) : null
  // the compressed copy is part of the cache (fetch-node-runtime makes it); an older cache gets it here, before any timing
  if (cached) progress(`deploy: preparing the cached Node v${cached.version} runtime for upload (once per cache)`)
  const runtime = cached ? await prepareRuntime(cached) : null
  const home = await mkdtemp(join(tmpdir(), 'ftlab-bench-deploy-'))
  let release: (() => void) | null = null
  const down = () => {
    const r = release
    release = null
    try {
      r?.()
    } catch {
      // last resort from a signal handler: nothing more can be done here
    }
  }
  const conns = new Set<SshConnection>()
  try {
    progress(
      `deploy: bringing the testbed up (${DEPLOY_HOSTS.join(' ')}${runtime ? `, ${NO_NODE_HOST} without Node` : ''})${before ? ': using the one already up' : ''}`
    )
    registerCleanup(down)
    release = testbedFor(...(runtime ? ['--no-node', NO_NODE_HOST] : []))
    checkAbort(signal)
    const tb = readLab()
    const hosts = DEPLOY_HOSTS.map((id) => labHost(tb, id))
    res.hosts = hosts.map((h) => ({ id: h.id, node: h.node }))
    res.runtime = runtime
      ? {
          version: runtime.version,
          bytes: runtime.bytes,
          gzBytes: runtime.gzBytes,
          ...(runtime.zst ? { zstBytes: runtime.zst.bytes } : {}),
          stripped: runtime.stripped,
          host: NO_NODE_HOST
        }
      : {
          note: `no Node runtime is cached for ${nodeArch ?? machine}, so every host keeps its own Node and no runtime upload is measured (node scripts/fetch-node-runtime.mjs caches one)`
        }
    const knownHosts = await KnownHosts.load({ readOnly: [], store: join(home, 'known_hosts') })
    const open = async (h: LabHost): Promise<SshConnection> => {
      // the testbed's host keys are made fresh by `up`: first contact is trusted here, as the tests do
      const c = await connect({
        host: h.address,
        port: h.port,
        user: h.user,
        identityFiles: [h.identity],
        agent: false,
        knownHosts,
        confirmHostKey: async () => true,
        sshConfig: SshConfig.empty(),
        readyTimeoutMs: 15_000
      })
      conns.add(c)
      return c
    }
    const wipe = async () => {
      await Promise.all(
        hosts.map(async (h) => {
          const c = await open(h)
          try {
            await teardownHost(c)
          } finally {
            c.close()
            conns.delete(c)
          }
        })
      )
    }
    const once = async (rep: number, phase: 'cold' | 'warm'): Promise<DeployRep> => {
      const labKey = randomBytes(32).toString('hex')
      const t0 = performance.now()
      const deployed: DeployedAgent[] = []
      try {
        const out = await Promise.all(
          hosts.map(async (h): Promise<HostDeploy> => {
            const events: { step: DeployStep; at: number; state: DeployProgress['state'] }[] = []
            const start = performance.now()
            const agent = await deployAgent(
              { id: h.id, connect: () => open(h), boot: { id: h.id, labKey, controlToken: randomBytes(32).toString('hex') } },
              { bundlePath: bundle, onProgress: (p: DeployProgress) => events.push({ step: p.step, at: performance.now(), state: p.state }) }
            )
            deployed.push(agent)
            const end = performance.now()
            return { host: h.id, totalMs: end - start, stepsMs: stepDurations(events, end), uploaded: agent.uploaded }
          })
        )
        return { rep, phase, wallMs: performance.now() - t0, hosts: out }
      } finally {
        await Promise.all(deployed.map((a) => a.stop().catch(() => {})))
        for (const a of deployed) {
          a.connection.close()
          conns.delete(a.connection)
        }
      }
    }
    for (let i = 1; i <= reps; i++) {
      checkAbort(signal)
      await wipe()
      progress(`deploy ${i}/${reps}: cold (nothing on the hosts)`)
      const cold = await once(i, 'cold')
      res.reps.push(cold)
      checkAbort(signal)
      progress(`deploy ${i}/${reps}: warm (bundle${runtime ? ' and runtime' : ''} already there)`)
      const warm = await once(i, 'warm')
      res.reps.push(warm)
      progress(`deploy ${i}/${reps}: cold ${cold.wallMs.toFixed(0)} ms, warm ${warm.wallMs.toFixed(0)} ms`)
    }
    await wipe()
  } catch (err) {
    if (err instanceof Aborted) throw err
    res.error = (err as Error).message
  } finally {
    for (const c of conns) c.close()
    progress(before ? 'deploy: giving the testbed back as it was (left up)' : 'deploy: tearing the testbed down')
    down()
    registerCleanup(null)
    await rm(home, { recursive: true, force: true })
    res.phases = (['cold', 'warm'] as const).filter((p) => res.reps.some((r) => r.phase === p)).map((p) => deployFigures(res.reps, p))
  }
  return res
}
