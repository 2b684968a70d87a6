// The stock Redis tools against a replicated local lab: the kv guest must look like a Redis
// server to redis-cli and redis-benchmark (Debian's redis-tools) when they talk to the
// primary, the backup must turn them away plainly, and what they wrote must survive a power
// cut of the primary, value for value, on the backup that goes live.
import { execFile, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Endpoint } from '../../agent/control/protocol.js'
import type { HostStatusRow, Lab } from '../../main/lab/lab.js'
import type { LabEvent } from '../../main/lab/lab-events.js'
import { startLocalLab } from '../../main/lab/local-lab.js'
import { requireReplicaAgent } from '../support/agent.js'
import { lacks } from '../support/skips.js'

const installed = (bin: string) => spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0
const haveTools = installed('redis-cli') && installed('redis-benchmark')
const skip = lacks(haveTools ? null : 'redis-cli and redis-benchmark are not installed (Debian package redis-tools)')
if (!skip) await requireReplicaAgent()

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

interface Run {
  code: number | null
  out: string
}

function run(bin: string, args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0
      resolve({ code, out: `${stdout}${stderr}` })
    })
  })
}

/** redis-cli with its output as a pipe sees it: raw, one value per line. */
async function cli(ep: Endpoint, ...args: string[]): Promise<string> {
  const r = await run('redis-cli', ['-h', ep.host, '-p', String(ep.port), ...args], 15_000)
  expect(r.code, `redis-cli ${args.join(' ')} exited with ${r.code}: ${r.out}`).toBe(0)
  return r.out.replace(/\n+$/, '')
}

async function until(lab: Lab, what: string, ok: (rows: Map<string, HostStatusRow>) => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = new Map<string, HostStatusRow>()
  while (Date.now() < deadline) {
    last = new Map((await lab.status(1000)).map((r) => [r.host, r]))
    if (ok(last)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  const seen = [...last.values()].map((r) => `${r.host}=${r.state === 'up' ? r.status?.role : r.state}`).join(' ')
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last status: ${seen}`)
}

/** Every key and its value, read with the tools themselves (KEYS, then GET one by one). */
async function dump(ep: Endpoint): Promise<Map<string, string>> {
  const keys = (await cli(ep, 'KEYS', '*')).split('\n').filter((k) => k !== '')
  const out = new Map<string, string>()
  for (const k of keys.sort()) out.set(k, await cli(ep, 'GET', k))
  return out
}

describe('redis-tools against a replicated local lab', () => {
  it.skipIf(skip !== null)(
    `redis-cli and redis-benchmark through the primary; the backup refuses; the writes survive a failover`,
    async () => {
      const home = mkdtempSync(join(tmpdir(), 'ftlab-it-'))
      cleanups.push(() => rmSync(home, { recursive: true, force: true }))
      const lab = await startLocalLab({ name: 'redis-tools' }, { home })
      cleanups.push(() => lab.stop())
      const events: LabEvent[] = []
      cleanups.push(lab.onEvent((e) => events.push(e)))
      const [primary, backup] = lab.serviceEndpoints()
      await until(
        lab,
        'a primary with b as its backup',
        (rows) => rows.get('a')?.status?.role === 'primary' && rows.get('b')?.status?.role === 'backup' && rows.get('a')?.status?.channel?.connected === true
      )

      // redis-cli, one command per invocation, as a script would use it
      expect(await cli(primary, 'PING')).toBe('PONG')
      expect(await cli(primary, 'SET', 'rt:greeting', 'hello world')).toBe('OK')
      expect(await cli(primary, 'GET', 'rt:greeting')).toBe('hello world')
      expect(await cli(primary, 'SET', 'rt:empty', '')).toBe('OK')
      expect(await cli(primary, 'GET', 'rt:missing')).toBe('')
      expect(await cli(primary, 'INCR', 'rt:counter')).toBe('1')
      expect(await cli(primary, 'INCR', 'rt:counter')).toBe('2')
      expect(await cli(primary, 'INCR', 'rt:counter')).toBe('3')
      // an error reply: redis-cli's exit code for it differs between versions, its text does not
      const notInt = await run('redis-cli', ['-h', primary.host, '-p', String(primary.port), 'INCR', 'rt:greeting'], 15_000)
      expect(notInt.out).toMatch(/not an integer/)
      expect(await cli(primary, 'DBSIZE')).toBe('3')
      const randomKey = await cli(primary, 'RANDOMKEY')
      expect(['rt:greeting', 'rt:empty', 'rt:counter']).toContain(randomKey)
      // TIME comes from the clock device: two integers, seconds and microseconds of the host's clock
      const time = (await cli(primary, 'TIME')).split('\n')
      expect(time).toHaveLength(2)
      const [sec, usec] = time.map(Number)
      expect(Number.isInteger(sec) && Number.isInteger(usec)).toBe(true)
      expect(usec).toBeGreaterThanOrEqual(0)
      expect(usec).toBeLessThan(1_000_000)
      expect(Math.abs(sec - Date.now() / 1000), 'TIME is the host clock, not something made up').toBeLessThan(24 * 3600)

      // the backup's service is suppressed: a plain client is told so, and nothing is executed
      const refused = await run('redis-cli', ['-h', backup.host, '-p', String(backup.port), 'SET', 'rt:via-backup', 'x'], 15_000)
      expect(refused.out).toMatch(/NOTLIVE/)
      expect(refused.out).toMatch(/backup/)
      expect(await cli(primary, 'EXISTS', 'rt:via-backup')).toBe('0')
      const refusedBench = await run('redis-benchmark', ['-h', backup.host, '-p', String(backup.port), '-t', 'set', '-n', '10', '-q'], 30_000)
      expect(refusedBench.out).toMatch(/NOTLIVE/)

      // redis-benchmark 7 stops at the first error reply and prints it: a clean exit with all
      // three tests reported is a run without errors
      for (const extra of [[], ['-P', '16']]) {
        const b = await run('redis-benchmark', ['-h', primary.host, '-p', String(primary.port), '-t', 'set,get,incr', '-n', '2000', '-q', ...extra], 120_000)
        const what = `redis-benchmark ${extra.join(' ')}: ${b.out.slice(-2000)}`
        expect(b.code, what).toBe(0)
        expect(b.out, what).not.toMatch(/Error from server/i)
        for (const t of ['SET', 'GET', 'INCR']) expect(b.out, what).toMatch(new RegExp(`${t}: [0-9.]+ requests per second`))
      }
      // its keys sit beside ours; its INCR counter counted every request of both runs
      expect(await cli(primary, 'GET', 'counter:__rand_int__')).toBe('4000')
      expect(await cli(primary, 'DBSIZE')).toBe('5')

      const before = await dump(primary)
      expect(before.get('rt:greeting')).toBe('hello world')
      expect(before.get('rt:counter')).toBe('3')
      expect(before.size).toBe(5)

      // power cut of the primary: the backup goes live and holds exactly what the tools wrote
      await lab.powerCut('a')
      await until(lab, 'b live alone', (rows) => rows.get('a')?.state === 'down' && rows.get('b')?.status?.role === 'live')
      const after = await dump(backup)
      expect(after).toEqual(before)
      expect(await cli(backup, 'DBSIZE')).toBe(String(before.size))
      // and it goes on from there, not from some other state
      expect(await cli(backup, 'INCR', 'rt:counter')).toBe('4')
      expect(await cli(backup, 'INCR', 'counter:__rand_int__')).toBe('4001')

      // the primary put its state hash into the logging channel every few entries and the
      // backup compared it with its own: a mismatch would have been reported as a divergence
      expect(events.filter((e) => /diverge/i.test(e.type)).map((e) => JSON.stringify(e.data))).toEqual([])
    },
    180_000
  )
})
