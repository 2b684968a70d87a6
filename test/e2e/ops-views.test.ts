// The operator's views in a real browser: the space-time diagram, the throughput and latency
// charts with fault bands, the invariants panel, compound host states, fault countdowns, the
// emergency stop's keyboard shortcut, a reload that keeps the picture, a console that goes
// away, and the layout at 1024 px. Runs on the simulated lab (the real console backend over
// the real core) behind browser mode.
import { afterEach, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { expectText, shoot, startLab, type Lab, useBrowser } from './harness.js'

const ui = useBrowser()
let lab: Lab | null = null

afterEach(async () => {
  await lab?.close().catch(() => {})
  lab = null
})

async function startedWithLoad(page: Page): Promise<void> {
  await page.goto(lab!.server.url)
  await page.click('[data-test=lab-start]')
  await expectText(page, '[data-host=a] [data-test=host-role]', 'primary')
  await expectText(page, '[data-host=b] [data-test=host-role]', 'backup')
  await page.click('[data-test=load-start]')
  await expect.poll(async () => Number(await page.locator('[data-test=load-ops]').textContent()), { timeout: 15_000 }).toBeGreaterThan(0)
}

/** the diagram's canvas has drawn something other than its background */
async function diagramInk(page: Page): Promise<number> {
  // runs in the page; written against a minimal shape because the tests compile without the DOM lib
  return page.evaluate(() => {
    type Canvas = {
      width: number
      height: number
      getContext(k: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } }
    }
    const doc = (globalThis as unknown as { document: { querySelector(s: string): unknown } }).document
    const c = doc.querySelector('[data-test=space-time] canvas') as Canvas | null
    if (!c) return 0
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
    let lit = 0
    for (let i = 0; i < d.length; i += 4 * 7) if (d[i] > 60 || d[i + 1] > 60 || d[i + 2] > 60) lit++
    return lit
  })
}

describe.skipIf(ui.skip !== null)('operator views on the simulated lab', () => {
  it('draws the logging channel on the space-time diagram and reads a failover message by message', async () => {
    lab = await startLab()
    const page = await ui.page()
    await startedWithLoad(page)
    await page.locator('[data-test=space-time]').waitFor()
    await expect.poll(() => diagramInk(page), { timeout: 10_000 }).toBeGreaterThan(500)
    await page.waitForTimeout(3000)
    await shoot(page, '30-diagram-running')

    // power cut of the primary: the band, the backup's test-and-set, its go-live
    await page.click('[data-host=a] [data-test=fault-power]')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'live')
    await expectText(page, '[data-test=fault-item]', /power( cut)? a/)
    await expectText(page, '[data-test=fault-countdown]', /heals in \d+ s|until restore/)
    await page.waitForTimeout(1500)
    await page.click('[data-test=diagram-pause]')
    expect(await page.locator('[data-test=space-time]').getAttribute('data-paused')).toBe('true')
    // hovering a message names it: find one by sweeping the lanes
    const box = (await page.locator('[data-test=space-time] canvas').boundingBox())!
    let tip = ''
    for (let x = box.x + box.width - 20; x > box.x + 140 && !tip; x -= 6) {
      for (const f of [0.35, 0.45, 0.55, 0.65]) {
        await page.mouse.move(x, box.y + box.height * f)
        const t = page.locator('[data-test=diagram-tip]')
        if (await t.count()) {
          tip = (await t.textContent()) ?? ''
          break
        }
      }
    }
    expect(tip).toMatch(/→|test-and-set|goes live|power|suspects|role/)
    await shoot(page, '31-diagram-failover')
    await page.click('[data-test=diagram-zoom-in]')
    expect(await page.locator('[data-test=diagram-window]').textContent()).toBe('4.0 s')

    // restore redundancy cannot cross an open cut of the live replica's path to the disk server: disabled, saying why
    const restore = page.locator('[data-test=lab-restore]')
    expect(await restore.isDisabled()).toBe(false)
    await page.selectOption('[data-test=fault-list] select[aria-label="link"]', 'b-disk')
    await page.click('[data-test=link-fault]')
    await expectText(page, '[data-test=fault-item]', /cut b/)
    await expect.poll(() => restore.isDisabled()).toBe(true)
    expect(await restore.getAttribute('title')).toMatch(/^heal .*cut.* first/)
    expect(ui.errors).toEqual([])
  })

  it('charts throughput and latency with the fault as a band, and the invariants panel jumps to the evidence', async () => {
    lab = await startLab()
    const page = await ui.page()
    await startedWithLoad(page)
    await page.waitForTimeout(2500)
    await page.click('[data-host=b] [data-test=fault-pause]')
    await expectText(page, '[data-test=fault-item]', /pause b/)
    await page.waitForTimeout(2500)
    await page.click('[data-test=tab-charts]')
    await page.selectOption('[data-test=chart-window]', '30000')
    // the open fault is a band over the charts, labelled with what it is
    await expectText(page, '[data-test=chart-ops] .band-labels', 'pause b')
    expect(await page.locator('[data-test=chart-ops] path').first().getAttribute('d')).toMatch(/^M[\d.]+,[\d.]+L/)
    await shoot(page, '32-charts-fault-band')

    const inv = page.locator('[data-test=invariants]')
    await expectText(page, '[data-test=inv-live]', /g\d+: a/)
    expect(await inv.locator('[data-test=inv-fenced]').textContent()).toMatch(/\d/)
    // a click on a timeline mark highlights it and pauses the diagram there
    await page.click('[data-test=tab-diagram]')
    await page.locator('[data-test=timeline-mark]').first().click()
    await page.locator('[data-test=timeline-mark].hl').waitFor()
    expect(await page.locator('[data-test=space-time]').getAttribute('data-paused')).toBe('true')
    await shoot(page, '33-invariants-and-highlight')
    expect(ui.errors).toEqual([])
  })

  it('isolating the primary reads as a compound state and the channel as cut off, not a → b', async () => {
    lab = await startLab()
    const page = await ui.page()
    await startedWithLoad(page)
    await page.click('[data-host=a] [data-test=fault-isolate]')
    await expectText(page, '[data-host=a] [data-test=host-state]', 'isolated')
    await expectText(page, '[data-host=a] [data-test=host-state]', 'cannot reach the disk server')
    await expectText(page, '[data-test=channel-direction]', /cut off|b →/)
    expect(await page.locator('[data-test=channel-direction]').textContent()).not.toMatch(/a → b/)
    // no second isolate on an isolated host; the button says why
    const iso = page.locator('[data-host=a] [data-test=fault-isolate]')
    expect(await iso.isDisabled()).toBe(true)
    expect(await iso.getAttribute('title')).toContain('already has')
    await page.waitForTimeout(1200)
    await shoot(page, '34-isolated-primary')
    await page.setViewportSize({ width: 1024, height: 800 })
    await page.waitForTimeout(500)
    await shoot(page, '34-isolated-primary-1024')
    // the channel pane: agent events, repeats counted rather than listed
    await page.click('[data-test=tab-channel]')
    await page.waitForTimeout(2500)
    await page.locator('[data-test=insights]').scrollIntoViewIfNeeded()
    await shoot(page, '40-channel-pane-1024')
    await page.setViewportSize({ width: 1440, height: 900 })

    // the emergency stop from the keyboard
    await page.locator('body').click({ position: { x: 5, y: 5 } })
    await page.keyboard.press('Control+Shift+H')
    await page.locator('[data-test=fault-item]').waitFor({ state: 'detached' })
    expect((await lab.status()).faults).toEqual([])
    expect(ui.errors).toEqual([])
  })

  it('a reload keeps the timeline, the charts and the running lab’s settings', async () => {
    lab = await startLab()
    const page = await ui.page()
    await page.goto(lab.server.url)
    await page.selectOption('[data-test=mode]', 'state-transfer')
    await page.click('[data-test=lab-start]')
    await expectText(page, '[data-host=a] [data-test=host-role]', 'primary')
    await page.fill('[data-test=load-panel] input >> nth=0', '5')
    await page.click('[data-test=load-start]')
    await page.click('[data-host=b] [data-test=fault-pause]')
    await expectText(page, '[data-test=timeline-mark]', /pause|fault/)
    await page.waitForTimeout(1500)
    const marks = await page.locator('[data-test=timeline-mark]').count()

    await page.reload()
    await expectText(page, '[data-host=a] [data-test=host-role]', /primary|live/)
    await expect.poll(() => page.locator('[data-test=timeline-mark]').count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(marks)
    // the toolbar names the running lab's guest and mode (its selects are shown only while stopped)
    expect(await page.locator('[data-test=lab-guest-mode]').textContent()).toBe('kv · state-transfer')
    expect(await page.locator('[data-test=load-panel] input >> nth=0').inputValue()).toBe('5')
    await page.click('[data-test=tab-charts]')
    expect(await page.locator('[data-test=chart-ops] path').first().getAttribute('d')).toMatch(/L/)
    await shoot(page, '35-after-reload')
    // stopped, the next start is offered with the mode the lab ran in, not this page's default
    await page.click('[data-test=lab-stop]')
    await page.locator('[data-test=mode]').waitFor({ timeout: 20_000 })
    expect(await page.locator('[data-test=mode]').inputValue()).toBe('state-transfer')
    expect(ui.errors).toEqual([])
  })

  it('with the console gone the page greys out and disables what cannot work', async () => {
    lab = await startLab()
    const page = await ui.page()
    await startedWithLoad(page)
    await lab.server.close()
    await page.locator('.app.stale').waitFor({ timeout: 15_000 })
    expect(await page.locator('[data-host=a] [data-test=host-stale]').count()).toBe(1)
    expect(await page.locator('[data-host=a] [data-test=fault-power]').isDisabled()).toBe(true)
    expect(await page.locator('[data-host=a] [data-test=fault-power]').getAttribute('title')).toContain('not connected')
    await shoot(page, '36-console-gone')
    await page.setViewportSize({ width: 1024, height: 800 })
    await page.waitForTimeout(500)
    await shoot(page, '36-console-gone-1024')
  })

  for (const width of [1024, 900]) {
    it(`at ${width} px the right column does not cover replica b`, async () => {
      lab = await startLab()
      const page = await ui.page(width, 800)
      await startedWithLoad(page)
      await page.waitForTimeout(1500)
      const b = (await page.locator('[data-host=b]').boundingBox())!
      const right = (await page.locator('aside.right').boundingBox())!
      // below 1100 px the side panels go under the hosts; at either place they must not overlap b's card
      const beside = b.x + b.width <= right.x
      const below = b.y + b.height <= right.y
      expect(beside || below, `b ${JSON.stringify(b)}, right column ${JSON.stringify(right)}`).toBe(true)
      expect(b.width).toBeGreaterThan(180)
      await shoot(page, `37-layout-${width}`)
      // the other views at this width: the diagram scrolled into sight with a fault open, the charts
      await page.click('[data-host=b] [data-test=fault-pause]')
      await page.waitForTimeout(2000)
      await page.locator('[data-test=insights]').scrollIntoViewIfNeeded()
      await shoot(page, `38-diagram-${width}`)
      await page.click('[data-test=tab-charts]')
      await page.selectOption('[data-test=chart-window]', '30000')
      await page.locator('[data-test=invariants]').scrollIntoViewIfNeeded()
      await shoot(page, `39-charts-${width}`)
      expect(ui.errors).toEqual([])
    })
  }
})
