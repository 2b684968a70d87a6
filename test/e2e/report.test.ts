// The HTML report in Chromium, opened from a file:// URL as an operator would open it: a
// report of a real simulated-lab soak (through the console backend) renders its verdict,
// the failovers' space-time diagrams and the charts, and the page asks for nothing but
// itself. Screenshots 70–79 (screenshots/ with FTLAB_SCREENSHOTS=1, else screenshots/tmp/).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dispatch } from '../../main/api/dispatch.js'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { writeReport } from '../../main/report/report.js'
import { runSoak } from '../../main/soak/soak.js'
import { chromiumPath, lacks, needChromium } from '../support/skips.js'

const noBrowser = lacks(needChromium())
const root = resolve(import.meta.dirname, '../..')
const home = mkdtempSync(join(tmpdir(), 'ftlab-report-e2e-'))
let browser: Browser | null = null

beforeAll(async () => {
  if (noBrowser) return
  browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] })
})
afterAll(async () => {
  await browser?.close()
  rmSync(home, { recursive: true, force: true })
})

function shotPath(name: string): string {
  const dir = join(root, process.env.FTLAB_SCREENSHOTS === '1' ? 'screenshots' : 'screenshots/tmp')
  mkdirSync(dir, { recursive: true })
  return join(dir, `${name}.png`)
}

/** Opens a file in a fresh page, keeping every request the page makes. */
async function open(file: string, width: number): Promise<{ page: Page; requests: string[] }> {
  const page = await browser!.newPage({ viewport: { width, height: 900 } })
  const requests: string[] = []
  page.on('request', (r) => requests.push(r.url()))
  await page.goto(pathToFileURL(file).href)
  return { page, requests }
}

describe.skipIf(noBrowser)('the report in Chromium', () => {
  it('renders a simulated-lab soak: verdict, failover diagrams, charts, schedule; no request leaves the page', async () => {
    const b = new ConsoleBackend({ home, reattach: false, statusEveryMs: 100 })
    let r
    try {
      r = await runSoak(b, {
        lab: { kind: 'simulated' },
        seed: 77,
        faults: 4,
        minutes: 5,
        guest: 'kv',
        mode: 'rsm',
        clients: 3,
        heartbeatMs: 25,
        suspectMs: 200,
        loadRunSeconds: 4
      })
    } finally {
      await dispatch(b, 'lab.stop', {}).catch(() => {})
      await b.close()
    }
    expect(r.ok, r.run.verdict?.summary).toBe(true)
    const file = await writeReport(b.recorder!.finished.at(-1)!)
    const { page, requests } = await open(file, 1440)
    try {
      await expect.poll(() => page.locator('#verdict').innerText()).toMatch(/^PASSED/)
      const diagrams = page.locator('svg.spacetime')
      expect(await diagrams.count()).toBe(Math.min(12, r.run.failovers.length))
      expect(await diagrams.count()).toBeGreaterThan(0)
      // the diagram draws the failover: lanes, the go-live, the cut and the go-live as moments
      const first = diagrams.first()
      expect(await first.locator('circle.golive').count()).toBeGreaterThan(0)
      expect(await first.locator('line.m-cut').count()).toBe(1)
      expect(await first.locator('line.m-live').count()).toBe(1)
      const box = await first.boundingBox()
      expect(box!.width).toBeGreaterThan(600)
      expect(await page.locator('svg.chart.throughput path').count()).toBeGreaterThan(0)
      expect(await page.locator('svg.chart rect.band').count()).toBeGreaterThan(0)
      expect(await page.locator('#scenario pre').innerText()).toContain('# soak schedule: seed 77')
      expect(requests).toEqual([pathToFileURL(file).href])
      await page.screenshot({ path: shotPath('70-report-soak-verdict') })
      await first.screenshot({ path: shotPath('71-report-failover-spacetime') })
      await page.locator('#charts').screenshot({ path: shotPath('72-report-throughput-latency-bands') })
      await page.locator('#invariants').screenshot({ path: shotPath('73-report-invariants') })
    } finally {
      await page.close()
    }
    const narrow = await open(file, 1024)
    try {
      await narrow.page.screenshot({ path: shotPath('74-report-soak-1024'), fullPage: true })
      expect(narrow.requests).toEqual([pathToFileURL(file).href])
    } finally {
      await narrow.page.close()
    }
  }, 180_000)
})
