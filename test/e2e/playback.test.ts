// Playback in Chromium through browser mode: a failover recorded on the simulated lab (the
// real replica core under the simulator, recorded by the console as any session is), then
// opened from the session library, scrubbed to the go-live, stepped through entry by entry,
// played, exported and imported again. Screenshots 80–89 at 1440 and 1024 px.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import type { LabStatus, MethodName, ResultOf } from '../../main/api/contract.js'
import { dispatch } from '../../main/api/dispatch.js'
import { Recording } from '../../main/record/reader.js'
import { expectText, shoot, startLab, type Lab, useBrowser } from './harness.js'

const ui = useBrowser()
let lab: Lab | null = null

afterEach(async () => {
  await lab?.close().catch(() => {})
  lab = null
})

/** A failover on the simulated lab under load, recorded by the console: start, load, power cut of a, b live, restore, stop. */
async function recordFailover(l: Lab): Promise<void> {
  const call = async <M extends MethodName>(m: M, p: unknown = {}) => (await dispatch(l.backend, m, p)) as ResultOf<M>
  const until = async (what: string, ok: (s: LabStatus) => boolean) => {
    for (let i = 0; i < 400; i++) {
      const s = await call('lab.status')
      if (ok(s)) return s
      await new Promise((r) => setTimeout(r, 50))
    }
    throw new Error(`timed out waiting for ${what}`)
  }
  await call('lab.start', { kind: 'simulated', guest: 'kv', mode: 'rsm', seed: 7 })
  await until('a primary, b backup', (s) => s.hosts[0].role === 'primary' && s.hosts[1].role === 'backup')
  await call('load.start', { clients: 4, seconds: 60, keys: 100 })
  await new Promise((r) => setTimeout(r, 2500)) // a stretch of load before the cut, for the charts and the diagram
  await call('fault.inject', { target: 'a', kind: 'power', durationMs: 60_000 })
  await until('b live', (s) => s.hosts[1].role === 'live')
  await new Promise((r) => setTimeout(r, 1500))
  await call('lab.restore')
  await until('gen 2', (s) => s.gen === 2 && s.hosts[0].role === 'backup')
  await new Promise((r) => setTimeout(r, 1000))
  await call('load.stop')
  await call('lab.stop')
  await new Promise((r) => setTimeout(r, 300))
}

const time = async (page: Page) => (await page.locator('[data-test=playback-time]').textContent()) ?? ''
const marks = (page: Page) => page.locator('[data-test=space-time]').getAttribute('data-marks')

describe.skipIf(ui.skip !== null)('playback of a recorded session', () => {
  it('library → open → scrub to the go-live → step entry by entry → play → back to live; export and import', async () => {
    lab = await startLab({ lab: 'none' })
    await recordFailover(lab)
    const page = await ui.page()
    await page.goto(lab.server.url)

    // the library lists the session with its lab, duration, size and marks
    await page.click('[data-test=open-recordings]')
    const row = page.locator('[data-test=recording-row]').first()
    await row.waitFor()
    expect(await row.textContent()).toMatch(/simulated · kv · rsm/)
    expect(await row.locator('[data-test=recording-state]').textContent()).toBe('complete')
    const name = (await row.getAttribute('data-name'))!
    expect(name).toMatch(/^simulated-/)
    await shoot(page, '80-recording-library')

    // open: the banner says it is a recording; the operator's controls are gone or off
    await row.locator('[data-test=recording-open]').click()
    await expectText(page, '[data-test=playback-banner]', `Playback of ${name} — not live`)
    expect(await page.locator('.app').getAttribute('data-playback')).toBe('true')
    expect(await page.locator('[data-test=lab-start]').count()).toBe(0)
    expect(await page.locator('[data-test=lab-restore]').count()).toBe(0)
    const kinds = await page.locator('[data-test=playback-mark]').evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')))
    expect(kinds).toContain('fault')
    expect(kinds).toContain('go-live')
    expect(kinds.indexOf('go-live')).toBeGreaterThan(kinds.indexOf('fault'))

    // scrub (the range input, as a drag sets it) to just before the restore: b's card shows it live, a is down
    const rec = Recording.open(join(lab.home, 'recordings', `${name}.ftrec`))
    const restoreMark = rec.marks.find((m) => m.kind === 'restore')!
    rec.close()
    await page.locator('[data-test=playback-scrub]').fill(String(Math.round(restoreMark.t - 100)))
    await expectText(page, '[data-host=b] [data-test=host-role]', 'live')
    await expectText(page, '[data-host=a] [data-test=host-role]', 'down')
    await expectText(page, '[data-test=timeline-mark]', 'b goes live')
    // back to the start, then from mark to mark up to the go-live
    await page.locator('[data-test=playback-scrub]').fill(String(Math.round(rec.t0)))
    await page.locator('[data-test=timeline-mark]').filter({ hasText: 'b goes live' }).waitFor({ state: 'detached' })

    // jump from mark to mark up to the go-live: b live, a down, the failover on the diagram and in the timeline
    for (let i = 0; i < 10 && !(await page.locator('[data-test=timeline-mark]').filter({ hasText: 'b goes live' }).count()); i++) {
      await page.click('[data-test=playback-next-mark]')
      await page.waitForTimeout(150)
    }
    await expect.poll(() => marks(page), { timeout: 10_000 }).toMatch(/b LIVE g1/)
    expect(await marks(page)).toMatch(/b TAS g1 won/)
    await expectText(page, '[data-host=a] [data-test=host-role]', 'down')
    await expectText(page, '[data-test=fault-item]', /power( cut)? a/)
    await shoot(page, '81-playback-go-live')

    // step back through the failover's moves, one agent event at a time, then forward again over the same ones
    const stepped = async () => (await page.locator('[data-test=playback-stepped]').textContent())?.trim() ?? ''
    const back: string[] = []
    for (let i = 0; i < 4; i++) {
      const was = await time(page)
      await page.click('[data-test=playback-step-prev]')
      await expect.poll(async () => (await stepped()) !== (back[back.length - 1] ?? '') || (await time(page)) !== was).toBe(true)
      back.push(await stepped())
    }
    expect(back.join(' | ')).toMatch(/at b tas/)
    await expect.poll(() => page.locator('[data-test=space-time]').getAttribute('data-paused')).toBe('true')
    await shoot(page, '82-playback-step-before-go-live')
    const forward: string[] = []
    for (let i = 0; i < 3; i++) {
      await page.click('[data-test=playback-step-next]')
      await expect.poll(stepped).toBe(back[back.length - 2 - i])
      forward.push(await stepped())
    }
    expect(forward).toEqual(back.slice(0, 3).reverse())

    // play on at 1×: b's card shows it live once the next status arrives
    await page.click('[data-test=playback-play]')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'live')
    await page.click('[data-test=playback-play]')
    // before the go-live b was not yet live
    await page.click('[data-test=playback-prev-mark]')
    await expect.poll(async () => (await page.locator('[data-host=b] [data-test=host-role]').textContent())?.trim()).not.toBe('live')

    // operator actions are refused while playing back
    const pointerEvents = (el: unknown) =>
      (globalThis as unknown as { getComputedStyle(e: unknown): { pointerEvents: string } }).getComputedStyle(el).pointerEvents
    expect(await page.locator('[data-host=a] [data-test=fault-power]').evaluate(pointerEvents)).toBe('none')

    // play at 10×: the moment moves on; pause
    await page.selectOption('[data-test=playback-speed]', '2')
    const before = await time(page)
    await page.click('[data-test=playback-play]')
    await expect.poll(() => time(page), { timeout: 10_000 }).not.toBe(before)
    await page.waitForTimeout(700)
    await page.click('[data-test=playback-play]')
    expect(await page.locator('[data-test=playback-play]').textContent()).toContain('Play')
    await page.click('[data-test=tab-charts]')
    await shoot(page, '83-playback-playing-charts')

    // the same at 1024 px
    await page.setViewportSize({ width: 1024, height: 768 })
    await page.click('[data-test=tab-diagram]')
    await page.click('[data-test=playback-mark][data-kind=go-live]')
    await expectText(page, '[data-test=timeline-mark]', 'b goes live')
    await page.waitForTimeout(300)
    await shoot(page, '84-playback-1024')
    await page.setViewportSize({ width: 1440, height: 900 })

    // back to live: the banner goes, the views show the (stopped) lab again
    await page.click('[data-test=playback-close]')
    await page.locator('[data-test=playback-banner]').waitFor({ state: 'detached' })
    expect(await page.locator('.app').getAttribute('data-playback')).toBe('false')

    // export (a download with the token) and import it again under another name
    await page.click('[data-test=open-recordings]')
    await row.waitFor()
    const [download] = await Promise.all([page.waitForEvent('download'), row.locator('[data-test=recording-export]').click()])
    expect(download.suggestedFilename()).toBe(`${name}.ftrec`)
    const saved = join(lab.home, 'downloaded.ftrec')
    await download.saveAs(saved)
    expect(readFileSync(saved).equals(readFileSync(join(lab.home, 'recordings', `${name}.ftrec`)))).toBe(true)
    await page.setInputFiles('[data-test=recording-import-file]', {
      name: 'copy of failover.ftrec',
      mimeType: 'application/octet-stream',
      buffer: readFileSync(saved)
    })
    await expectText(page, '[data-test=recording-notice]', /imported copy of failover.ftrec as copy-of-failover/)
    await page.locator('[data-test=recording-row][data-name=copy-of-failover]').waitFor()
    await page.setViewportSize({ width: 1024, height: 768 })
    await shoot(page, '85-recording-library-1024')
    await page.setViewportSize({ width: 1440, height: 900 })

    // delete asks first
    await page.locator('[data-test=recording-row][data-name=copy-of-failover] [data-test=recording-delete]').click()
    await page.click('[data-test=confirm-ok]')
    await page.locator('[data-test=recording-row][data-name=copy-of-failover]').waitFor({ state: 'detached' })
    expect(ui.errors).toEqual([])
  }, 180_000)
})
