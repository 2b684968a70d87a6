// The console in a real browser over the real local lab: three agent processes behind
// browser mode. Start the lab from the UI, run the load, cut the primary's power, see the
// backup go live with the clients following it, restore redundancy, and stop, leaving no
// agent behind. Skips (with the reason) without chromium; fails when the agent bundle cannot start a replica.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { startApiServer, type ApiServer } from '../../main/transport/ws-server.js'
import { LabStore } from '../../main/lab/lab-state.js'
import { openLocalLab } from '../../main/lab/local-lab.js'
import { ensureRendererBuilt, openBrowser, rendererDir, shoot, type Browsing } from './harness.js'
import { pidAlive } from '../support/process.js'
import { requireReplicaAgent } from '../support/agent.js'
import { lacks, needChromium } from '../support/skips.js'

const noBrowser = lacks(needChromium())
if (!noBrowser) await requireReplicaAgent()

let browsing: Browsing | null = null
let backend: ConsoleBackend | null = null
let server: ApiServer | null = null
let home = ''

beforeAll(async () => {
  if (noBrowser) return
  home = mkdtempSync(join(tmpdir(), 'ftlab-e2e-lab-'))
  backend = new ConsoleBackend({ home })
  server = await startApiServer({ backend, rendererDir })
  ensureRendererBuilt()
  browsing = await openBrowser()
}, 120_000)

afterAll(async () => {
  await browsing?.close().catch(() => {})
  await server?.close().catch(() => {})
  await backend?.close().catch(() => {})
  // whatever the test left running: stop the lab's agents by what the lab store remembers
  if (home && new LabStore(home).load('local'))
    await openLocalLab('local', { home })
      .stop()
      .catch(() => {})
  if (home) rmSync(home, { recursive: true, force: true })
}, 60_000)

async function expectText(page: Page, selector: string, text: string, timeout = 20_000): Promise<void> {
  await page.locator(selector).filter({ hasText: text }).first().waitFor({ timeout })
}

const alive = pidAlive

describe('console in browser mode over the real local lab', () => {
  it.skipIf(noBrowser !== null)(
    `start, load, power cut, failover, restore, stop`,
    async () => {
      const b = backend!
      const page = browsing!.page
      const pageErrors: string[] = []
      page.on('pageerror', (e) => pageErrors.push(String(e)))
      page.on('console', (m) => {
        if (m.type() === 'error') pageErrors.push(m.text())
      })
      await page.goto(server!.url)
      // no lab yet: the lab picker; start the local lab from it: real agents, real pids
      await page.locator('[data-test=lab-picker]').waitFor()
      await page.click('[data-test=pick-local-start]')
      await expectText(page, '.toolbar', 'local lab')
      await expectText(page, '[data-host=a] [data-test=host-role]', 'primary')
      await expectText(page, '[data-host=b] [data-test=host-role]', 'backup')
      await expectText(page, '[data-host=disk] [data-test=host-role]', 'disk server')
      const started = await b.handle('lab.status', {})
      expect(started.state).toBe('running')
      const pids = started.hosts.map((h) => h.pid!)
      for (const pid of pids) expect(alive(pid)).toBe(true)
      await expectText(page, '[data-host=a] [data-test=host-pid]', String(pids[0]))

      // load: the channel carries entries, the clients talk to a
      await page.fill('[data-test=load-panel] input >> nth=0', '8')
      await page.fill('[data-test=load-panel] input >> nth=2', '64')
      await page.click('[data-test=load-start]')
      await expect.poll(async () => Number(await page.locator('[data-test=stat-entries-rate]').textContent()), { timeout: 20_000 }).toBeGreaterThan(0)
      await expect.poll(async () => Number(await page.locator('[data-test=load-ops]').textContent()), { timeout: 20_000 }).toBeGreaterThan(0)
      expect((await b.handle('lab.status', {})).load).toMatchObject({ state: 'running', target: 'a' })
      await page.waitForTimeout(2500) // let the sparklines and the channel pane fill for the picture; nothing is asserted on time
      await shoot(page, '10-real-running-under-load')
      // every host fact ("58.4 MiB") and channel figure is whole at any width the console supports: none cut to an
      // ellipsis, none running out of its cell (the disk server's six facts in a row used to show "58.4 …")
      for (const width of [1440, 1100, 820]) {
        await page.setViewportSize({ width, height: 900 })
        await expect.poll(async () => (await page.locator('[data-host=disk] dd').allTextContents()).join(' '), { timeout: 10_000 }).toMatch(/MiB/)
        const cut = await page.$$eval('[data-test=host-card] dd, [data-test=channel-stats] .metric', (els) =>
          els.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => (e.textContent ?? '').trim())
        )
        expect(cut, `cut off at ${width} px`).toEqual([])
      }
      await shoot(page, '10-real-running-under-load-820')
      await page.setViewportSize({ width: 1440, height: 900 })

      // each replica's suspicion limit and what set it, on the invariants panel's false-failover row
      const limits = page.locator('[data-test=inv-false-failovers] .v')
      await expect
        .poll(async () => (await limits.getAttribute('title')) ?? '', { timeout: 10_000 })
        .toMatch(/^a suspects b after \d+ ms of silence: .+\nb suspects a after \d+ ms of silence: .+$/)

      // power cut of the primary: a down, b live, the load goes on against b
      await page.click('[data-host=a] [data-test=fault-power]')
      await expectText(page, '[data-host=a] [data-test=host-role]', 'down')
      await expectText(page, '[data-host=b] [data-test=host-role]', 'live')
      await expectText(page, '[data-test=timeline-mark]', 'b goes live')
      await expectText(page, '[data-test=timeline-mark]', 'power cut a')
      // the suspicion says the limit it passed and why; b, live alone, suspects nobody now and shows no limit
      await expect
        .poll(async () => (await page.locator('[data-test=timeline-mark]').allTextContents()).join('\n'), { timeout: 10_000 })
        .toMatch(/b suspects a: silent for \d+ ms \(limit \d+ ms: [^)]+\)/)
      await expect.poll(async () => (await limits.textContent())?.trim(), { timeout: 10_000 }).toBe('0')
      await expectText(page, '[data-host=a] [data-test=host-error]', 'power cut')
      expect(alive(pids[0])).toBe(false)
      const atLive = (await b.handle('lab.status', {})).load.completed
      await expect.poll(async () => (await b.handle('lab.status', {})).load, { timeout: 20_000 }).toMatchObject({ state: 'running', target: 'b' })
      await expect.poll(async () => (await b.handle('lab.status', {})).load.completed, { timeout: 20_000 }).toBeGreaterThan(atLive + 100)
      await expectText(page, '[data-test=load-panel]', '→ b')
      await page.waitForTimeout(1500)
      await shoot(page, '10-real-power-cut-backup-live')

      // restore redundancy: b primary of generation 2, a fresh agent on a as its backup
      await page.click('[data-test=lab-restore]')
      await expectText(page, '[data-host=b] [data-test=host-role]', 'primary', 40_000)
      await expectText(page, '[data-host=a] [data-test=host-role]', 'backup')
      await expectText(page, '[data-test=channel-direction]', 'b → a')
      await expectText(page, '.toolbar', 'gen 2')
      const restored = await b.handle('lab.status', {})
      expect(restored.gen).toBe(2)
      expect(restored.faults).toEqual([])
      expect(restored.hosts[0].pid).not.toBe(pids[0])
      await page.waitForTimeout(2000)
      await shoot(page, '10-real-redundancy-restored')

      // stop the load: the checkers' verdict lands on the timeline
      await page.click('[data-test=load-stop]')
      await expectText(page, '[data-test=timeline-mark]', 'checks: valid', 30_000)
      await page.waitForTimeout(500)
      await shoot(page, '10-real-load-checked')

      // another process holds the lab (a terminal's restore): the banner names it; gone with its holder
      const holder = spawn('sleep', ['60'], { stdio: 'ignore' })
      try {
        writeFileSync(
          join(home, 'labs', 'local.lock'),
          JSON.stringify({ pid: holder.pid, host: hostname(), actor: `ftlab restore (pid ${holder.pid})`, doing: 'restoring redundancy', since: Date.now() })
        )
        await expectText(page, '[data-test=lab-held]', `ftlab restore (pid ${holder.pid}) has been restoring redundancy since`)
        await shoot(page, '10-real-held-by-terminal')
      } finally {
        holder.kill('SIGKILL')
      }
      await page.locator('[data-test=lab-held]').waitFor({ state: 'detached', timeout: 20_000 })

      // stop the lab: every agent process gone
      const last = (await b.handle('lab.status', {})).hosts.map((h) => h.pid!)
      await page.click('[data-test=lab-stop]')
      await expectText(page, '[data-test=lab-state]', 'stopped', 30_000)
      for (const pid of [...pids, ...last]) expect(alive(pid), `agent pid ${pid}`).toBe(false)
      expect(new LabStore(home).load('local')).toBeNull()
      expect(pageErrors).toEqual([])
    },
    180_000
  )
})
