// The console in a real browser, through browser mode: token, three hosts from the
// simulated lab (the real console backend over the real core), operator actions reaching
// the backend, and the empty/error states.
import { afterEach, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { expectText, shoot, startLab, type Lab, useBrowser } from './harness.js'

const ui = useBrowser()
let lab: Lab | null = null

afterEach(async () => {
  await lab?.close()
  lab = null
})

async function startedLab(page: Page): Promise<void> {
  await page.click('[data-test=lab-start]')
  await expectText(page, '[data-host=a] [data-test=host-role]', 'primary')
  await expectText(page, '[data-host=b] [data-test=host-role]', 'backup')
  await expectText(page, '[data-host=disk] [data-test=host-role]', 'disk server')
}

describe.skipIf(ui.skip !== null)('console in browser mode', () => {
  it('loads with the token, shows the empty state, then the three hosts of the simulated lab', async () => {
    lab = await startLab()
    const page = await ui.page()
    await page.goto(lab.server.url)
    await page.locator('[data-test=empty-state]').waitFor()
    expect(await page.locator('[data-test=lab-state]').textContent()).toContain('stopped')
    // the token left the address bar
    expect(page.url()).not.toContain('token=')
    await shoot(page, '01-no-lab')

    await startedLab(page)
    expect(await page.locator('[data-test=host-card]').count()).toBe(3)
    const status = await lab.status()
    expect(status.state).toBe('running')
    const pidA = String(status.hosts[0].pid)
    await expectText(page, '[data-host=a] [data-test=host-pid]', pidA)

    // load: entries and acks count up on the channel
    await page.fill('[data-test=load-panel] input >> nth=0', '16')
    await page.click('[data-test=load-start]')
    const rate = page.locator('[data-test=stat-entries-rate]')
    await expect.poll(async () => Number(await rate.textContent()), { timeout: 15_000 }).toBeGreaterThan(100)
    expect((await lab.status()).load.state).toBe('running')
    await page.waitForTimeout(2500) // let the sparklines fill for the picture; nothing is asserted on time
    await shoot(page, '02-running-under-load')
    expect(ui.errors).toEqual([])
  })

  it('a power cut clicked on the primary reaches the backend, and the backup goes live', async () => {
    lab = await startLab()
    const page = await ui.page()
    await page.goto(lab.server.url)
    await startedLab(page)
    await page.click('[data-test=load-start]')
    await page.click('[data-host=a] [data-test=fault-power]')

    await expectText(page, '[data-test=fault-item]', 'power')
    const faults = (await lab.status()).faults
    expect(faults).toHaveLength(1)
    expect(faults[0]).toMatchObject({ target: 'a', kind: 'power' })
    // a power cut switches the machine off: no dead-man heal, it stays until restore redundancy (or power-on)
    expect(faults[0].healsAt).toBeNull()
    await expectText(page, '[data-test=fault-countdown]', 'until restore')
    await expectText(page, '[data-host=a] [data-test=host-role]', 'down')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'live')
    await expectText(page, '[data-test=timeline-mark]', 'b goes live')
    await page.waitForTimeout(800)
    await shoot(page, '03-power-cut-backup-live')

    // restore redundancy repairs the power cut: b primary, a its new backup, the fault gone
    await page.click('[data-test=lab-restore]')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'primary')
    await expectText(page, '[data-host=a] [data-test=host-role]', 'backup')
    await expectText(page, '[data-test=channel-direction]', 'b → a')
    await page.locator('[data-test=fault-item]').waitFor({ state: 'detached' })
    expect((await lab.status()).faults).toEqual([])
    await page.waitForTimeout(1500)
    await shoot(page, '04-redundancy-restored')
    expect(ui.errors).toEqual([])
  })

  it('shows a refused action and link faults in the fault list', async () => {
    lab = await startLab()
    const page = await ui.page()
    await page.goto(lab.server.url)
    await startedLab(page)
    await page.click('[data-host=b] [data-test=fault-pause]')
    await expectText(page, '[data-test=fault-item]', 'pause')
    await page.selectOption('[data-test=fault-list] select[aria-label="link"]', 'a-disk')
    await page.selectOption('[data-test=fault-list] select[aria-label="link fault"]', 'delay')
    await page.click('[data-test=link-fault]')
    await expectText(page, '[data-test=fault-item]', 'delay')
    expect((await lab.status()).faults.map((f) => `${f.kind} ${f.target}`).sort()).toEqual(['delay a-disk', 'pause b'])
    // the paused b cannot apply a fault on its link: the backend refuses, and the message is shown, not swallowed
    await page.selectOption('[data-test=fault-list] select[aria-label="link"]', 'a-b')
    await page.click('[data-test=link-fault]')
    await expectText(page, '[data-test=action-error]', 'host b is paused, so its agent cannot apply delay')
    expect((await lab.status()).faults.map((f) => `${f.kind} ${f.target}`).sort()).toEqual(['delay a-disk', 'pause b'])
    await page.waitForTimeout(800)
    await shoot(page, '05-faults-and-refusal')
  })

  it('shows the lab error when the lab fails to start', async () => {
    // a real failed start: the local lab's agents cannot start from an agent bundle that is not there
    lab = await startLab({ lab: 'none', agentBundle: '/nonexistent/ftlab-agent.js' })
    const page = await ui.page()
    await page.goto(lab.server.url)
    await page.click('[data-test=pick-local-start]')
    await expectText(page, '[data-test=lab-error]', 'agent a exited before it was ready')
    await expectText(page, '[data-test=lab-error]', "Cannot find module '/nonexistent/ftlab-agent.js'")
    expect(await page.locator('[data-test=lab-state]').textContent()).toContain('error')
    await shoot(page, '06-lab-start-failed')
  })

  it('a wrong token gets no data and says what to do', async () => {
    lab = await startLab()
    const page = await ui.page()
    let frames = 0
    page.on('websocket', (ws) => ws.on('framereceived', () => frames++))
    const wrong = lab.server.url.replace(/token=.*/, 'token=' + '0'.repeat(64))
    await page.goto(wrong)
    await expectText(page, '[data-test=connection-error]', 'refused the connection')
    expect(await page.locator('[data-test=host-card]').count()).toBe(0)
    expect(frames).toBe(0)
    await shoot(page, '07-wrong-token')
  })
})
