// The logging channel carries whatever the guest does: a value near the frame limit (16 MiB)
// crosses it in both modes and survives a power cut of the primary, and restore redundancy
// ships a guest far larger than a frame. Real agents on loopback (main/lab/local-lab.ts).
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { probeLocalAgent } from '../../main/lab/agent-probe.js'
import { startLocalLab } from '../../main/lab/local-lab.js'
import { paired, role, untilStatus } from '../support/lab.js'

const probe = await probeLocalAgent()
const skipNote = probe.replicaRole ? '' : ` [skipped: needs the replica role in the agent bundle: ${probe.reason}]`
const MiB = 1024 * 1024
/**
 * The kv guest takes a while over a 9 MiB request, and a backup applying a batch of its
 * entries says nothing meanwhile; on a loaded test machine that can exceed the default 800 ms
 * of suspicion. What these tests pin is that the channel carries the value, not the timing.
 */
const PATIENT = { heartbeatMs: 200, suspectMs: 5000 }

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

function bulk(s: Buffer | string): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s
  return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')])
}

/** One RESP command on a fresh plain connection; resolves with the raw reply once it is complete. */
function command(endpoint: { host: string; port: number }, args: (string | Buffer)[], timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect(endpoint.port, endpoint.host)
    const chunks: Buffer[] = []
    let have = 0
    const timer = setTimeout(() => {
      sock.destroy()
      reject(new Error(`no complete reply from ${endpoint.host}:${endpoint.port} within ${timeoutMs} ms (${have} bytes so far)`))
    }, timeoutMs)
    const done = (err: Error | null, reply?: Buffer) => {
      clearTimeout(timer)
      sock.destroy()
      if (err) reject(err)
      else resolve(reply!)
    }
    sock.on('error', (err) => done(err))
    sock.on('data', (d: Buffer) => {
      chunks.push(d)
      have += d.length
      const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
      chunks.length = 0
      chunks.push(all)
      const nl = all.indexOf('\r\n')
      if (nl < 0) return
      if (all[0] !== 0x24) return done(null, all.subarray(0, nl + 2)) // status, error or integer
      const len = Number(all.subarray(1, nl).toString())
      if (len < 0 || all.length >= nl + 2 + len + 2) done(null, all)
    })
    sock.write(Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.map(bulk)]))
  })
}

/** What the replicas said about roles, suspicion and divergence: a failure explains itself. */
function watchRoles(lab: { onEvent(l: (ev: { host?: string; type: string; data: Record<string, unknown> }) => void): () => void }): string[] {
  const seen: string[] = []
  const telling = new Set(['replica-role', 'suspect', 'tas', 'diverged', 'dropped', 'error', 'channel-link'])
  lab.onEvent((ev) => {
    if (telling.has(ev.type) && seen.length < 200)
      seen.push(`${new Date().toISOString().slice(11, 23)} ${ev.host} ${ev.type} ${JSON.stringify(ev.data).slice(0, 300)}`)
  })
  return seen
}

const bulkValue = (reply: Buffer): Buffer => {
  const nl = reply.indexOf('\r\n')
  return reply.subarray(nl + 2, nl + 2 + Number(reply.subarray(1, nl).toString()))
}

describe.each(['rsm', 'state-transfer'] as const)('local lab: a 9 MiB value in %s mode', (mode) => {
  it.skipIf(!probe.replicaRole)(
    `is acknowledged, and read back from the backup after a power cut of the primary${skipNote}`,
    { timeout: 240_000 },
    async () => {
      const home = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
      cleanups.push(() => rmSync(home, { recursive: true, force: true }))
      const lab = await startLocalLab({ name: 'bigvalue', mode, timing: PATIENT }, { home })
      cleanups.push(() => lab.stop())
      const said = watchRoles(lab)
      const [aService, bService] = lab.serviceEndpoints()
      await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))

      // binary: a guest keeps bytes in string pages, where each byte above 0x7f takes two in UTF-8,
      // so in state-transfer mode this one value makes an entry of some 18 MiB
      const value = Buffer.alloc(9 * MiB)
      for (let i = 0; i < value.length; i++) value[i] = 0x80 + (i % 128)
      expect((await command(aService, ['SET', 'big', value], 180_000)).toString()).toBe('+OK\r\n')
      // the channel is not wedged: a small command after it is answered too
      expect((await command(aService, ['SET', 'small', 'x'], 30_000)).toString()).toBe('+OK\r\n')
      // and the backup kept up: still a's backup, holding the value
      await untilStatus(lab, 'a still primary with b as its backup', paired('a', 'b')).catch((err: Error) => {
        throw new Error(`${err.message}\n${said.join('\n')}`)
      })

      await lab.powerCut('a')
      await untilStatus(lab, 'b live alone', (rows) => rows.get('a')?.state === 'down' && role(rows, 'b') === 'live', 30_000)
      const got = bulkValue(await command(bService, ['GET', 'big'], 60_000))
      expect(got.length).toBe(value.length)
      expect(got.equals(value)).toBe(true)
    }
  )
})

describe('local lab: restore redundancy of a large guest', () => {
  it.skipIf(!probe.replicaRole)(
    `ships 200 MiB of guest state to a fresh backup, which holds it after the primary's power cut${skipNote}`,
    { timeout: 900_000 },
    async () => {
      const home = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
      cleanups.push(() => rmSync(home, { recursive: true, force: true }))
      const lab = await startLocalLab({ name: 'bigstate', mode: 'rsm', timing: PATIENT }, { home })
      cleanups.push(() => lab.stop())
      const [aService, bService] = lab.serviceEndpoints()
      await untilStatus(lab, 'a primary with b as its backup', paired('a', 'b'))

      // the backup dies first, so the state is built with a live primary alone (quicker), then shipped whole
      await lab.powerCut('b')
      await untilStatus(lab, 'a live alone', (rows) => rows.get('b')?.state === 'down' && role(rows, 'a') === 'live', 30_000)
      const values = 25
      const value = (i: number) => Buffer.alloc(8 * MiB, String.fromCharCode(65 + i))
      for (let i = 0; i < values; i++) expect((await command(aService, ['SET', `v${i}`, value(i)], 120_000)).toString()).toBe('+OK\r\n')
      const rows = await untilStatus(lab, 'a live', (r) => role(r, 'a') === 'live')
      expect(rows.get('a')?.status?.memory?.guestBytes ?? 0).toBeGreaterThanOrEqual(200 * MiB)

      expect(await lab.restore({ timeoutMs: 600_000 })).toEqual({ from: 'a', to: 'b', gen: 2 })
      await untilStatus(lab, 'a primary with the new b as its backup', paired('a', 'b'), 60_000)
      expect((await command(aService, ['SET', 'after', 'restore'], 60_000)).toString()).toBe('+OK\r\n')

      await lab.powerCut('a')
      await untilStatus(lab, 'b live alone', (r) => r.get('a')?.state === 'down' && role(r, 'b') === 'live', 30_000)
      for (const i of [0, 12, values - 1]) expect(bulkValue(await command(bService, ['GET', `v${i}`], 60_000)).equals(value(i))).toBe(true)
      expect(bulkValue(await command(bService, ['GET', 'after'], 30_000)).toString()).toBe('restore')
    }
  )
})
