// The operator flow on the simulated lab (the real replica core, disk arbiter and
// guests under the simulator), in Chromium through browser mode, with nothing started by
// the test but the console: pick "simulated" in the lab picker, start it, start load,
// power-cut the primary, read the failover on the space-time diagram, restore redundancy,
// and see generation 2 and the load's verdict. Screenshots 50-sim-*.
import { afterEach, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { expectText, shoot, startLab, type Lab, useBrowser } from './harness.js'

const ui = useBrowser()
let lab: Lab | null = null

afterEach(async () => {
  await lab?.close().catch(() => {})
  lab = null
})

const marks = (page: Page) => page.locator('[data-test=space-time]').getAttribute('data-marks')

describe.skipIf(ui.skip !== null)('the operator flow on the simulated lab', () => {
  it('picker → simulated lab → load → power cut of the primary read on the diagram → restore → generation 2, load valid', async () => {
    lab = await startLab({ lab: 'none' })
    const page = await ui.page()
    await page.goto(lab.server.url)

    // no lab yet: the picker offers the simulated lab for what it is
    const card = page.locator('[data-test=pick-simulated]')
    await card.waitFor()
    expect(await card.textContent()).toContain('no processes, any speed')
    await page.fill('[data-test=sim-seed]', '7')
    await shoot(page, '50-sim-1-picker')
    await page.click('[data-test=pick-simulated-start]')

    await expectText(page, '[data-host=a] [data-test=host-role]', 'primary')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'backup')
    await expectText(page, '[data-host=disk] [data-test=host-role]', 'disk server')
    expect(await page.locator('.app').getAttribute('data-lab-kind')).toBe('simulated')
    expect(await page.locator('[data-test=lab-name]').textContent()).toBe('simulated lab')
    const started = await lab.status()
    expect(started).toMatchObject({ kind: 'simulated', state: 'running', gen: 1, sim: { seed: 7 } })
    await expectText(page, '.toolbar', 'gen 1')
    await shoot(page, '50-sim-2-running')

    // load: the kv workload's clients, counted as they are answered
    await page.click('[data-test=load-start]')
    await expect.poll(async () => Number(await page.locator('[data-test=load-ops]').textContent()), { timeout: 20_000 }).toBeGreaterThan(0)
    expect((await lab.status()).load.state).toBe('running')
    await page.waitForTimeout(2500) // lets the diagram and sparklines fill for the picture; nothing is asserted on time
    await shoot(page, '50-sim-3-load')

    // power cut of the primary: b wins the disk server's test-and-set and goes live in the same generation
    await page.click('[data-host=a] [data-test=fault-power]')
    await expectText(page, '[data-host=a] [data-test=host-role]', 'down')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'live')
    await expectText(page, '[data-test=fault-item]', /power( cut)? a/)
    await expectText(page, '[data-test=fault-countdown]', 'until restore')
    await expectText(page, '[data-test=timeline-mark]', 'b goes live')
    // the diagram drew the failover: b's test-and-set won, granted by the disk server, b live
    await expect.poll(() => marks(page), { timeout: 20_000 }).toMatch(/b TAS g1 won/)
    await expect.poll(() => marks(page), { timeout: 20_000 }).toMatch(/b LIVE g1/)
    await page.click('[data-test=diagram-pause]')
    expect(await page.locator('[data-test=space-time]').getAttribute('data-paused')).toBe('true')
    const paused = (await marks(page)) ?? ''
    expect(paused).toMatch(/disk TAS g1 granted to b/)
    expect(paused).toMatch(/b TAS g1 won.*b LIVE g1/)
    expect(paused).not.toMatch(/a LIVE/)
    expect((await lab.status()).gen).toBe(1)
    await shoot(page, '50-sim-4-failover-diagram')

    // restore redundancy: a snapshot of b onto a's machine, a new generation with b primary and a its backup
    await page.click('[data-test=diagram-pause]')
    await page.click('[data-test=lab-restore]')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'primary')
    await expectText(page, '[data-host=a] [data-test=host-role]', 'backup')
    await expectText(page, '[data-test=channel-direction]', 'b → a')
    await page.locator('[data-test=fault-item]').waitFor({ state: 'detached' })
    await expectText(page, '.toolbar', 'gen 2')
    const restored = await lab.status()
    expect(restored.gen).toBe(2)
    expect(restored.faults).toEqual([])
    await page.waitForTimeout(2000)
    await shoot(page, '50-sim-5-restored')

    // the load ran through the failover and the restore: its history is checked, and valid
    await page.click('[data-test=load-stop]')
    const verdict = page.locator('[data-test=load-verdict]')
    await verdict.waitFor({ timeout: 60_000 })
    expect(await verdict.getAttribute('class')).toContain('v-valid')
    expect(await verdict.textContent()).toMatch(/✓ valid.* 0 lost/s)
    expect((await lab.status()).load.verdict).toMatchObject({ result: 'valid', lostWrites: 0 })
    await shoot(page, '50-sim-6-verdict')
    expect(ui.errors).toEqual([])
  })
})
