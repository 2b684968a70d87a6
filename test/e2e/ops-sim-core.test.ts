// The operator views over the simulated lab on the real core (ConsoleBackend, kind
// 'simulated': the real ReplicaCore, disk arbiter and guests under the simulator): a power
// cut of the primary read on the space-time diagram, an isolated primary's compound state,
// and the invariants the console reports. The lab is started through the API (the lab picker
// is another view's), everything after that through the page.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { startApiServer, type ApiServer } from '../../main/transport/ws-server.js'
import { expectText, rendererDir, shoot, useBrowser } from './harness.js'

const ui = useBrowser()
let backend: ConsoleBackend | null = null
let server: ApiServer | null = null
let home = ''

afterEach(async () => {
  await backend?.handle('lab.stop', {}).catch(() => {})
  await server?.close().catch(() => {})
  await backend?.close().catch(() => {})
  if (home) rmSync(home, { recursive: true, force: true })
  backend = null
  server = null
})

async function simLab(guest: 'kv' | 'bank' = 'kv'): Promise<Page> {
  home = mkdtempSync(join(tmpdir(), 'ftlab-e2e-sim-'))
  backend = new ConsoleBackend({ home, reattach: false, shell: 'browser' })
  server = await startApiServer({ backend, rendererDir })
  await backend.handle('lab.start', { kind: 'simulated', guest, mode: 'rsm' })
  await expect.poll(async () => (await backend!.handle('lab.status', {})).state, { timeout: 30_000 }).toBe('running')
  const page = await ui.page()
  await page.goto(server.url)
  await expectText(page, '[data-host=a] [data-test=host-role]', 'primary')
  await page.click('[data-test=load-start]')
  await expect.poll(async () => Number(await page.locator('[data-test=load-ops]').textContent()), { timeout: 20_000 }).toBeGreaterThan(0)
  return page
}

describe.skipIf(ui.skip !== null)('operator views on the simulated lab on the real core', () => {
  it('a power cut of the primary: the fault stays until restore, b goes live, the diagram shows test-and-set and go-live', async () => {
    const page = await simLab()
    await page.waitForTimeout(3000)
    await shoot(page, '41-sim-core-running')
    await page.click('[data-host=a] [data-test=fault-power]')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'live')
    await expectText(page, '[data-test=fault-item]', /power/)
    await expectText(page, '[data-test=fault-countdown]', /until restore|heals in/)
    await expectText(page, '[data-test=timeline-mark]', /b goes live/)
    // the latency is live during the run, not "–"
    await expect.poll(async () => await page.locator('[data-test=load-latency]').textContent(), { timeout: 20_000 }).toMatch(/ms/)
    await page.waitForTimeout(1500)
    await page.click('[data-test=diagram-pause]')
    await shoot(page, '42-sim-core-failover')
    await page.click('[data-test=tab-charts]')
    await page.selectOption('[data-test=chart-window]', '30000')
    await shoot(page, '43-sim-core-failover-charts')
  })

  it('an isolated primary reads as such and the channel does not read a → b', async () => {
    const page = await simLab()
    await page.click('[data-host=a] [data-test=fault-isolate]')
    await expectText(page, '[data-host=a] [data-test=host-state]', /isolated/)
    await expectText(page, '[data-host=b] [data-test=host-role]', 'live')
    await expectText(page, '[data-test=channel-direction]', /cut off/)
    expect(await page.locator('[data-test=channel-direction]').textContent()).not.toMatch(/a → b/)
    await page.waitForTimeout(1500)
    await shoot(page, '44-sim-core-isolated-primary')

    // the evidence behind an invariant is one click away: the diagram pauses on it, the timeline marks it
    const evidence = page.locator('[data-test=inv-evidence]').first()
    await evidence.waitFor({ timeout: 20_000 })
    await evidence.click()
    expect(await page.locator('[data-test=space-time]').getAttribute('data-paused')).toBe('true')
    await page.locator('[data-test=timeline-mark].hl').waitFor()
    await shoot(page, '45-sim-core-evidence')
  })

  it('the bank guest gets the bank workload, and its verdict checks the constant total', async () => {
    const page = await simLab('bank')
    expect(await page.locator('[data-test=load-workload]').inputValue()).toBe('bank')
    await expectText(page, '[data-test=load-invariant]', 'total constant')
    await page.waitForTimeout(3000)
    await page.click('[data-test=load-stop]')
    await expectText(page, '[data-test=load-verdict]', /valid|invalid|unknown/, 40_000)
    expect(await page.locator('[data-test=load-verdict]').textContent()).toMatch(/total/)
    await shoot(page, '46-sim-core-bank-verdict')
  })
})
