// The agent probe keeps "our agent crashed" apart from "this build lacks the replica role":
// a crash must fail the suites that run the agent (with its stderr), never make them skip.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { describeProbe, probeLocalAgent } from '../../main/lab/agent-probe.js'
import { buildAgentWithoutReplicaRole, requireReplicaAgent } from '../support/agent.js'

const REAL_BUNDLE = resolve('out/agent/ftlab-agent.cjs')
const dir = mkdtempSync(join(tmpdir(), 'ftlab-probe-test-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function bundle(name: string, source: string): string {
  const p = join(dir, name)
  writeFileSync(p, source)
  return p
}

describe('agent probe', () => {
  it('reports a healthy bundle as able to start a replica', async () => {
    const probe = await probeLocalAgent(REAL_BUNDLE)
    expect(probe).toMatchObject({ outcome: 'ok', replicaRole: true })
  })

  it('reports a bundle that throws on load as a failure with its stderr, not as a missing role', async () => {
    const crashing = bundle('crash-on-load.cjs', "throw new Error('deliberate crash: the bundle is broken')\n")
    const probe = await probeLocalAgent(crashing)
    expect(probe.outcome).toBe('failed')
    if (probe.outcome !== 'failed') return
    expect(probe.reason).toMatch(/^the agent did not start: agent probe exited before it was ready \(exit code 1\)/)
    expect(probe.stderr).toContain('deliberate crash: the bundle is broken')
    expect(describeProbe(probe)).toContain('--- agent stderr ---')
  })

  it('reports an agent that dies while starting the replica role as a failure, not as a role that is there', async () => {
    // the real agent, except that the second listening socket (the first one the replica role
    // opens, after the control port) kills the process as a crash in the role's code would
    const dying = bundle(
      'crash-on-replica-start.cjs',
      `const net = require('net')
let listens = 0
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (++listens === 2) {
    process.stderr.write('deliberate crash: the replica role fell over\\n')
    process.exit(70)
  }
  return listen.apply(this, args)
}
require(${JSON.stringify(REAL_BUNDLE)})
`
    )
    const probe = await probeLocalAgent(dying)
    expect(probe.outcome).toBe('failed')
    if (probe.outcome !== 'failed') return
    expect(probe.reason).toMatch(/^the agent \(pid \d+\) died while starting a replica: /)
    expect(probe.stderr).toContain('deliberate crash: the replica role fell over')
  })

  it('reports an agent built without the replica role by its own answer, and the suites still fail on it', async () => {
    const noRole = await buildAgentWithoutReplicaRole(dir)
    const probe = await probeLocalAgent(noRole)
    expect(probe).toMatchObject({
      outcome: 'no-replica-role',
      replicaRole: false,
      reason: expect.stringMatching(/replica role not available in this agent build/)
    })
    await expect(requireReplicaAgent(noRole)).rejects.toThrow(/the agent bundle has no replica role/)
  })

  it('reports a missing bundle as a failure', async () => {
    const probe = await probeLocalAgent(join(dir, 'no-such-bundle.cjs'))
    expect(probe.outcome).toBe('failed')
  })

  it('makes the suites that need the agent fail, with the agent’s stderr, when the bundle crashes', async () => {
    const crashing = bundle('crash-again.cjs', "process.stderr.write('deliberate crash on stderr\\n'); process.exit(3)\n")
    await expect(requireReplicaAgent(crashing)).rejects.toThrow(/failed its probe[\s\S]*exit code 3[\s\S]*deliberate crash on stderr/)
    await expect(requireReplicaAgent(REAL_BUNDLE)).resolves.toMatchObject({ outcome: 'ok' })
  })
})
