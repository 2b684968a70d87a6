// Tests that run the agent bundle ask it first; any answer but "a replica started" FAILS the
// file with the agent's own words and stderr. A broken bundle is our code crashing, never a
// reason to skip (a skip would hide exactly the bug the suite exists to catch).
import { describeProbe, probeLocalAgent, type ProbeResult } from '../../main/lab/agent-probe.js'

export async function requireReplicaAgent(bundle?: string): Promise<Extract<ProbeResult, { outcome: 'ok' }>> {
  const probe = await probeLocalAgent(bundle)
  if (probe.outcome === 'ok') return probe
  if (probe.outcome === 'no-replica-role') {
    throw new Error(`the agent bundle has no replica role (${probe.reason}); the shipped agent must have it: check agent/main.ts and rebuild (node scripts/build-node.mjs)`)
  }
  throw new Error(`the agent bundle failed its probe, so the tests that run it fail rather than skip: ${describeProbe(probe)}`)
}
