// Tests that run the agent bundle ask it first; any answer but "a replica started" FAILS the
// file with the agent's own words and stderr. A broken bundle is our code crashing, never a
// reason to skip (a skip would hide exactly the bug the suite exists to catch).
import { join, resolve } from 'node:path'
import { describeProbe, probeLocalAgent, type ProbeResult } from '../../main/lab/agent-probe.js'

export async function requireReplicaAgent(bundle?: string): Promise<Extract<ProbeResult, { outcome: 'ok' }>> {
  const probe = await probeLocalAgent(bundle)
  if (probe.outcome === 'ok') return probe
  if (probe.outcome === 'no-replica-role') {
    throw new Error(
      `the agent bundle has no replica role (${probe.reason}); the shipped agent must have it: check agent/main.ts and rebuild (node scripts/build-node.mjs)`
    )
  }
  throw new Error(`the agent bundle failed its probe, so the tests that run it fail rather than skip: ${describeProbe(probe)}`)
}

/**
 * Builds the real agent with its replica role left out (agent/main.ts's import of the role
 * resolves to `startReplica = null`), into `dir`: the honest "this build has no role" agent,
 * for tests of how the console and the probe treat it. Returns the bundle's path.
 */
export async function buildAgentWithoutReplicaRole(dir: string): Promise<string> {
  const { build } = await import('esbuild')
  const outfile = join(dir, 'ftlab-agent-no-replica.cjs')
  await build({
    entryPoints: [resolve(import.meta.dirname, '../../agent/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node18',
    logLevel: 'silent',
    plugins: [
      {
        name: 'no-replica-role',
        setup(b) {
          b.onResolve({ filter: /^\.\/replica\/runtime\.js$/ }, (args) =>
            args.importer.endsWith(join('agent', 'main.ts')) ? { path: 'no-replica-role', namespace: 'ftlab-test' } : undefined
          )
          b.onLoad({ filter: /.*/, namespace: 'ftlab-test' }, () => ({ contents: 'export const startReplica = null\n', loader: 'ts' }))
        }
      }
    ]
  })
  return outfile
}
