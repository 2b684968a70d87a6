// Drills from the UI, in Chromium through browser mode: open the Drills view, run a built-in
// drill on the simulated lab, watch its progress (the experiment banner while the unsafe
// switch is on) and read its verdict; a broken scenario shows its errors by line and field.
// Screenshots 60-* (FTLAB_SCREENSHOTS=1 writes them to screenshots/).
import { afterEach, describe, expect, it } from 'vitest'
import { shoot, startLab, type Lab, useBrowser } from './harness.js'

const ui = useBrowser()
let lab: Lab | null = null

afterEach(async () => {
  await lab?.close().catch(() => {})
  lab = null
})

describe.skipIf(ui.skip !== null)('drills in the UI', () => {
  it('runs the no-output-rule experiment on the simulated lab: a loud banner while it runs, then the verdict with its explanation', async () => {
    lab = await startLab({ lab: 'none' })
    const page = await ui.page(1440)
    await page.goto(lab.server.url)
    await page.locator('[data-test=drills-open]').click()
    await page.locator('[data-test=drill-view]').waitFor()
    await page.locator('[data-test=drill-no-output-rule]').click()
    expect(await page.locator('[data-test=drill-lab]').inputValue()).toBe('simulated')
    // an experiment runs on every lab kind: a remote lab is redeployed with it for the drill
    const disabled = await page
      .locator('[data-test=drill-lab] option')
      .evaluateAll((os) => os.filter((o) => (o as unknown as { disabled: boolean }).disabled).length)
    expect(disabled).toBe(0)
    expect(await page.locator('[data-test=drill-lab] option').allTextContents()).toContain('remote')
    await page.fill('[data-test=drill-seed]', '9')
    await page.locator('[data-test=drill-run]').click()

    // while the experiment's lab runs, the banner names the switch and what it breaks
    const banner = page.locator('[data-test=experiment-banner]')
    await banner.waitFor({ timeout: 30_000 })
    expect(await banner.textContent()).toMatch(/no-output-rule: the Output Rule is OFF/)
    await page.locator('[data-test=drill-log]').filter({ hasText: 'power cut a' }).waitFor({ timeout: 30_000 })
    await shoot(page, '60-drill-running-1440')

    const verdict = page.locator('[data-test=drill-verdict]')
    await verdict.waitFor({ timeout: 60_000 })
    expect(await page.locator('[data-test=drill-state]').textContent()).toBe('PASSED')
    expect(await verdict.textContent()).toMatch(/PASSED: 2 of 2 expectations held.*With the Output Rule off/s)
    expect(await page.locator('[data-test=drill-expectations]').textContent()).toMatch(/✓\s*the checker catches the lost write/)
    // the drill stopped its lab: the banner is gone with it
    await banner.waitFor({ state: 'detached', timeout: 10_000 })
    await shoot(page, '61-drill-verdict-1440')
    await page.setViewportSize({ width: 1024, height: 900 })
    await shoot(page, '62-drill-verdict-1024')
    expect(ui.errors).toEqual([])
  }, 120_000)

  it('shows a broken scenario’s errors with line and field, and will not run it', async () => {
    lab = await startLab({ lab: 'none' })
    const page = await ui.page(1024)
    await page.goto(lab.server.url)
    await page.locator('[data-test=drills-open]').click()
    await page.locator('[data-test=drill-own]').click()
    const text = [
      'name: my-drill',
      'title: Mine',
      'explain: what it shows',
      'lab: { kind: simulated }',
      'workload: { seconds: 5 }',
      'steps:',
      '  - at: 2s',
      '    fault: { kind: power, target: c }',
      'expect:',
      '  - no-lost-writes'
    ].join('\n')
    await page.fill('[data-test=drill-text]', text)
    const errors = page.locator('[data-test=drill-errors]')
    await errors.waitFor()
    expect(await errors.textContent()).toContain('scenario:8:35: steps[0].fault.target: must be one of a, b, disk, a-b, a-disk, b-disk (got "c")')
    expect(await page.locator('[data-test=drill-run]').isDisabled()).toBe(true)
    await shoot(page, '63-drill-scenario-errors-1024')
    await page.fill('[data-test=drill-text]', text.replace('target: c', 'target: a'))
    await page.locator('.ok').filter({ hasText: 'reads without error' }).waitFor()
    expect(await page.locator('[data-test=drill-run]').isDisabled()).toBe(false)
    expect(ui.errors).toEqual([])
  }, 60_000)
})
