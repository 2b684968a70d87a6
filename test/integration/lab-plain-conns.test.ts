// Plain TCP clients (redis-cli and the like, no FT Lab session) on the replicated service:
// their connections are guest state, replicated like everything else. A closed one is closed
// in the guest; after a failover, those the dead primary held are closed in the new live
// replica's guest too (nothing moves a plain TCP connection), so they do not pile up.
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startLocalLab } from '../../main/lab/local-lab.js'
import type { Lab } from '../../main/lab/lab.js'
import { paired, role, untilStatus, type StatusRows } from '../support/lab.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

const guestConns = (rows: StatusRows, id: string) => rows.get(id)?.status?.replica?.guestConns

async function ping(lab: Lab): Promise<Socket> {
  const ep = lab.serviceEndpoints()[0]
  const s = createConnection(ep.port, ep.host)
  cleanups.push(() => s.destroy())
  const reply = await new Promise<string>((resolve, reject) => {
    s.once('error', reject)
    s.once('data', (d) => resolve(d.toString('latin1')))
    s.write('PING\r\n')
  })
  expect(reply).toBe('+PONG\r\n')
  return s
}

describe('local lab: plain TCP connections', () => {
  it('are closed in the guest when the client goes, and after a failover when their primary died', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const lab = await startLocalLab({ name: 'plain' }, { home })
    cleanups.push(() => lab.stop())
    await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))

    const gone = await ping(lab)
    await untilStatus(lab, 'the connection open in both guests', (r) => guestConns(r, 'a') === 1 && guestConns(r, 'b') === 1)
    gone.end()
    await untilStatus(lab, 'the closed connection closed in both guests', (r) => guestConns(r, 'a') === 0 && guestConns(r, 'b') === 0)

    await ping(lab) // left open when the primary dies
    await untilStatus(lab, 'the connection open in both guests', (r) => guestConns(r, 'a') === 1 && guestConns(r, 'b') === 1)
    await lab.powerCut('a')
    const rows = await untilStatus(lab, 'b live with no plain connection left from a', (r) => role(r, 'b') === 'live' && guestConns(r, 'b') === 0)
    expect(rows.get('a')?.state).toBe('down')
  })
})
