// Every built-in drill on the local lab: three real agent processes on loopback, faults
// through the agents' own filter, power cuts by SIGKILL, driven through the console like the
// UI drives it. The etcd drill runs against a real single-member etcd.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { asSilenceLimit, type DrillRun } from '../../main/api/contract.js'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { DrillLibrary, labsFor } from '../../main/drill/library.js'
import { hasEtcd, startEtcd } from '../support/etcd.js'
import { lacks } from '../support/skips.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

const lib = new DrillLibrary()
const onLocal = lib.names().filter((n) => labsFor(lib.load(n)).includes('local'))
const noEtcd = lacks(hasEtcd ? null : 'etcd is not installed (Debian package etcd-server)')

/** The drill's last run, and the agents' suspicions in it (host, and the event's data). */
async function runOnLocal(name: string, etcd?: string[]): Promise<DrillRun & { suspects: { host: string; data: Record<string, unknown> }[] }> {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-drill-local-'))
  cleanups.push(() => rmSync(home, { recursive: true, force: true }))
  const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100, drills: { etcd } })
  cleanups.push(() => b.close())
  const suspects: { host: string; data: Record<string, unknown> }[] = []
  cleanups.push(b.subscribe((ev) => ev.topic === 'agent' && ev.type === 'suspect' && suspects.push({ host: ev.host, data: ev.data })))
  const runs = await b.drills.start({ name, seed: 11, lab: 'local' }).done
  return { ...runs[runs.length - 1], suspects }
}

const explain = (r: DrillRun) => `${r.verdict?.summary}\n${r.log.map((l) => `${l.t - r.startedAt} ${l.text}`).join('\n')}`

describe('experiments on the local lab', () => {
  it('are in the lab status, and a console that reattaches to the running lab still shows them', async () => {
    const home = mkdtempSync(join(tmpdir(), 'ftlab-drill-local-'))
    cleanups.push(() => rmSync(home, { recursive: true, force: true }))
    const first = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100 })
    const s = await first.handle('lab.start', { kind: 'local', guest: 'kv', mode: 'rsm', experiments: ['no-output-rule'] })
    expect(s).toMatchObject({ state: 'running', experiments: ['no-output-rule'] })
    await first.close() // lets go of the lab; its agents keep running
    const second = new ConsoleBackend({ home, statusEveryMs: 100 })
    cleanups.push(() => second.close())
    cleanups.push(() => second.handle('lab.stop', {}))
    await second.whenReady()
    expect(await second.handle('lab.status', {})).toMatchObject({ kind: 'local', state: 'running', experiments: ['no-output-rule'] })
  }, 60_000)
})

describe('built-in drills on the local lab', () => {
  for (const name of onLocal) {
    const etcdDrill = lib.load(name).lab.arbiter === 'etcd'
    it.skipIf(etcdDrill && noEtcd !== null)(
      `${name} passes on real agent processes`,
      async () => {
        let etcd: string[] | undefined
        if (etcdDrill) {
          const e = await startEtcd()
          cleanups.push(() => e.close())
          etcd = [e.url]
        }
        const run = await runOnLocal(name, etcd)
        expect(run.state, explain(run)).toBe('passed')
        expect(run.recording).toMatch(/local-.*\.ftrec$/)
        // the survivor's suspicion is in the drill's progress, with the limit it passed and what set that limit; in
        // learned-failover, whose cut waits for both detectors to have learned, not a fresh detector's
        const suspicions = run.log.map((l) => l.text).filter((t) => /^b suspects a: silent for \d+ ms \(limit \d+ ms: .+\)$/.test(t))
        if (name === 'power-cut-primary' || name === 'learned-failover') expect(suspicions, explain(run)).toHaveLength(1)
        if (name === 'learned-failover') expect(suspicions[0], explain(run)).not.toMatch(/a fresh detector/)
        // restore-fail-back's second cut: a, restored half a second before, judges b, which has run since the start, on b's own
        // report of its pauses (sent with b's heartbeats), which reaches further back than what a has heard itself
        if (name === 'restore-fail-back') {
          const second = run.suspects.find((s) => s.host === 'a')
          const limit = asSilenceLimit(second?.data.limit)
          expect(limit?.report, explain(run)).toBeDefined()
          expect(limit!.report!.forMs, explain(run)).toBeGreaterThan(limit!.learnedForMs)
        }
      },
      150_000
    )
  }
})
