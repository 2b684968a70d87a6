import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Agent } from '../../../agent/agent.js'
import type { RoleHandle } from '../../../agent/context.js'
import { NULL_LOGGER } from '../../../agent/log.js'
import { controlClient, type TestControlClient } from './control-client.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

async function agentWith(startReplica: ConstructorParameters<typeof Agent>[0]['startReplica']): Promise<{ agent: Agent; c: TestControlClient }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ftlab-agent-unit-'))
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
  const boot = { id: 'a', labKey: randomBytes(32).toString('hex'), controlToken: randomBytes(32).toString('hex'), controlPort: 0, dataDir }
  const agent = new Agent({ boot, log: NULL_LOGGER, startReplica })
  await agent.start()
  cleanups.push(() => agent.stop())
  const c = await controlClient(agent.controlPort, boot.controlToken)
  cleanups.push(() => c.close())
  return { agent, c }
}

const replicaSpec = {
  role: 'replica',
  as: 'primary',
  gen: 1,
  guest: 'kv',
  mode: 'rsm',
  channel: { host: '127.0.0.1', port: 0 },
  service: { host: '127.0.0.1', port: 0 },
  peer: null,
  disk: { host: '127.0.0.1', port: 1 },
  timing: { heartbeatMs: 50, suspectMs: 500 }
}

describe('Agent roles', () => {
  it('answers that the replica role is missing from a build without it', async () => {
    const { c } = await agentWith(null)
    expect(await c.request({ t: 'start', spec: replicaSpec })).toMatchObject({ ok: false, error: 'replica role not available in this agent build' })
  })

  it('hands the replica role its context (shared fault filter, event ring) and merges its status', async () => {
    let stopped = false
    const { agent, c } = await agentWith(async (spec, ctx) => {
      expect(ctx.filter).toBe(ctx.faults.filter)
      expect(ctx.labKey).toHaveLength(32)
      ctx.emit('replica-ready', { as: spec.as })
      const handle: RoleHandle & { result: unknown } = {
        result: { channel: { host: '127.0.0.1', port: 4242 } },
        status: () => ({ role: 'primary', gen: spec.gen, guest: spec.guest }),
        restore: async (req) => ({ restoring: req.peer.id, gen: req.gen }),
        stop: async () => {
          stopped = true
        }
      }
      return handle
    })
    await c.request({ t: 'subscribe', since: 0 })
    expect(await c.request({ t: 'start', spec: replicaSpec })).toMatchObject({ ok: true, result: { role: 'replica', channel: { port: 4242 } } })
    await c.waitFor((m) => m.t === 'event' && m.ev.type === 'replica-ready')
    expect(await c.request({ t: 'status' })).toMatchObject({ result: { id: 'a', role: 'primary', gen: 1, guest: 'kv', faults: [] } })
    expect(await c.request({ t: 'restore', peer: { id: 'c', channel: { host: '127.0.0.1', port: 9 } }, gen: 2 })).toMatchObject({
      ok: true,
      result: { restoring: 'c', gen: 2 }
    })
    await c.request({ t: 'fault', faultId: 'f', fault: { kind: 'isolate' }, deadlineMs: 60_000 })
    expect(agent.ctx.filter.outbound('b')).toBeNull()
    await agent.stop()
    expect(stopped).toBe(true)
    expect(agent.ctx.filter.outbound('b')).toBe(0)
  })

  it('reports a role that fails to start and stays idle', async () => {
    const { c } = await agentWith(async () => {
      throw new Error('guest "nope" is unknown')
    })
    expect(await c.request({ t: 'start', spec: replicaSpec })).toMatchObject({ ok: false, error: 'guest "nope" is unknown' })
    expect(await c.request({ t: 'status' })).toMatchObject({ result: { role: 'idle' } })
  })
})
