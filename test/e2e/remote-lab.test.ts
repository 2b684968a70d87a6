// The console's real-hosts flow in Chromium through browser mode, against the
// network-namespace testbed (real OpenSSH): describe the lab in the form (a mistake first:
// the errors land at their fields), accept each host key after comparing its fingerprint,
// give the spare's password in the dialog, watch the deploy, open a terminal on every host
// and run a command in it, start load, cut the primary's power (confirmed), see b go live,
// restore redundancy onto the spare, and tear down by typing the lab's name.
//
// Uses the one shared testbed: run it under `flock /tmp/ftlab-testbed.lock`. It brings the
// testbed up with its spare (idempotent) and never takes it down.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest'
import type { Page } from 'playwright-core'
import { labHost, readLab, testbed, testbedUnavailable, TESTBED_SCRIPT, type Lab as Testbed } from '../../scripts/testbed/harness.js'
import { ensureRendererBuilt, openBrowser, rendererDir, shoot, type Browsing } from './harness.js'
import { startConsole, type ConsoleUnderTest } from './remote-console.js'
import { requireReplicaAgent } from '../support/agent.js'
import { lacks, needChromium } from '../support/skips.js'

// a machine without the testbed or Chromium skips (and says why); an agent that crashes fails
const skip = lacks(testbedUnavailable() ?? needChromium())
if (!skip) await requireReplicaAgent()
const LAB = 'ui-testbed'
const SLOT_HOST = { a: 'h1', b: 'h2', disk: 'h3', spare: 'h4' } as const
type Slot = keyof typeof SLOT_HOST

/** The same screen at 1024 px wide (the narrowest the console is made for), then back. */
async function shootNarrow(page: Page, name: string): Promise<void> {
  await page.setViewportSize({ width: 1024, height: 768 })
  await page.waitForTimeout(300) // let the terminals refit before the picture; nothing is asserted on time
  await shoot(page, name)
  await page.setViewportSize({ width: 1440, height: 900 })
  await page.waitForTimeout(300)
}

const say = (line: string) => console.log(`[remote-lab e2e] ${line}`)

/** OpenSSH's SHA256 fingerprint of a public key file ("ssh-ed25519 AAAA… comment"). */
function fingerprintOf(pubFile: string): string {
  const blob = Buffer.from(readFileSync(pubFile, 'utf8').trim().split(/\s+/)[1], 'base64')
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`
}

async function expectText(page: Page, selector: string, text: string, timeout = 30_000): Promise<void> {
  await page.locator(selector).filter({ hasText: text }).first().waitFor({ timeout })
}

/** Processes of a testbed user on its host: none may be left after teardown but sshd's. */
function userProcesses(user: string): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-u', user], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim() !== '' && !/sshd/.test(l))
  } catch {
    return [] // pgrep exits 1 when nothing matches
  }
}

describe.skipIf(skip !== null)(`the console runs a lab on real hosts (testbed, real OpenSSH)${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tb: Testbed
  let home = ''
  let console_: ConsoleUnderTest | null = null
  let browsing: Browsing | null = null
  const pageErrors: string[] = []

  beforeAll(async () => {
    testbed('-q', 'up', '--spare')
    tb = readLab()
    home = mkdtempSync(join(tmpdir(), 'ftlab-e2e-remote-'))
    console_ = await startConsole({ home, rendererDir })
    ensureRendererBuilt()
    browsing = await openBrowser()
    await browsing.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(console_.url).origin })
  }, 240_000)

  afterAll(async () => {
    if (pageErrors.length) say(`page errors:\n${pageErrors.join('\n')}`)
    await browsing?.close().catch(() => {})
    // whatever the test left deployed goes, through the same core; the testbed stays up
    await console_
      ?.tearDownLeftovers(LAB, tb ? readFileSync(tb.passwordFile, 'utf8').trim() : '')
      .catch((e: Error) => say(`teardown of leftovers: ${e.message}`))
    await console_?.close().catch(() => {})
    if (tb) testbed('-q', 'power-on', 'h1')
    if (home) rmSync(home, { recursive: true, force: true })
  }, 180_000)

  async function fillHost(page: Page, slot: Slot, opts: { auth: 'key' | 'password'; power: 'command' | 'kill' }): Promise<void> {
    const h = labHost(tb, SLOT_HOST[slot])
    const f = (field: string) => page.locator(`[data-field="hosts.${slot}.${field}"]`)
    await f('address').fill(h.address)
    await f('user').fill(h.user)
    await f('port').fill(String(h.port))
    await f(`auth:${opts.auth}`).check()
    if (opts.auth === 'key') await f('identityFile').fill(h.identity)
    await f('faults').selectOption('netns')
    await f('faults.namespace').fill(h.namespace)
    if (opts.power === 'command') {
      await f('power').selectOption('command')
      await f('power.off').fill(`bash ${TESTBED_SCRIPT} -q power-off ${h.id}`)
      await f('power.on').fill(`bash ${TESTBED_SCRIPT} -q power-on ${h.id}`)
    }
  }

  it('describe, deploy with host keys and a password, terminals, load, power cut, restore onto the spare, teardown', async () => {
    const page = browsing!.page
    const ui = console_!
    onTestFailed(async () => {
      await shoot(page, '29-remote-lab-failure').catch(() => {})
    })
    page.on('pageerror', (e) => pageErrors.push(String(e)))
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text())
    })

    // the picker: local, simulated, real hosts
    await page.goto(ui.url)
    await page.locator('[data-test=lab-switch]').click()
    await page.locator('[data-test=lab-picker]').waitFor()
    await expectText(page, '[data-test=pick-simulated]', 'no processes, any speed')
    await shoot(page, '20-lab-picker')
    await shootNarrow(page, '20-lab-picker-1024')

    // a lab file with mistakes, opened from disk: each error at its field
    await page.click('[data-test=pick-form]')
    await page.locator('[data-test=labfile-form]').waitFor()
    const broken = {
      version: 1,
      name: LAB,
      hosts: {
        a: { address: '10.87.0.11', auth: 'agent', port: 70000 },
        b: { address: 'has space', auth: 'agent' },
        disk: { address: '10.87.0.13', auth: 'sso' }
      }
    }
    await page.setInputFiles('[data-test=labfile-input]', { name: 'broken.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(broken)) })
    await expectText(page, '[data-error-for="hosts.a.port"]', '65535')
    expect(await page.locator('[data-field="hosts.a.address"]').inputValue()).toBe('10.87.0.11')
    expect(await page.locator('[data-field="hosts.b.address"]').inputValue()).toBe('has space')
    await shoot(page, '21-lab-form-field-errors')
    await shootNarrow(page, '21-lab-form-field-errors-1024')
    // mended there, the check moves on to what is wrong next, again at its field
    await page.locator('[data-field="hosts.a.port"]').fill('22')
    await page.click('[data-test=labfile-check]')
    await expectText(page, '[data-error-for="hosts.b.address"]', 'has space')
    expect(await page.locator('[data-error-for="hosts.a.port"]').count()).toBe(0)

    // describe the lab in the form: key auth for a, b, disk; the spare logs in with a password
    await page.locator('[data-field="name"]').fill(LAB)
    await page.locator('[data-field="spare"]').check()
    await fillHost(page, 'a', { auth: 'key', power: 'command' })
    await fillHost(page, 'b', { auth: 'key', power: 'command' })
    await fillHost(page, 'disk', { auth: 'key', power: 'kill' })
    await fillHost(page, 'spare', { auth: 'password', power: 'kill' })
    await page.click('[data-test=labfile-check]')
    await expectText(page, '[data-test=labfile-outcome]', 'valid')
    expect(await page.locator('[data-error-for]').count()).toBe(0)
    await shoot(page, '21-lab-form-filled')

    // deploy: every host's key is new to this console; compare and accept each
    await page.click('[data-test=labfile-deploy]')
    await page.locator('[data-test=deploy-progress]').waitFor()
    const password = readFileSync(tb.passwordFile, 'utf8').trim()
    const seenKeys = new Set<string>()
    let askedPassword = false
    let shotProgress = false
    for (;;) {
      // whichever comes first: a question, the deploy screen closing (done), or its failure
      const wait = (l: ReturnType<Page['locator']>, state: 'visible' | 'detached') =>
        l.waitFor({ state, timeout: 240_000 }).then(
          () => true,
          () => false
        )
      const which = await Promise.race([
        wait(page.locator('[data-test=hostkey-dialog], [data-test=secret-dialog]').first(), 'visible').then((ok) =>
          ok ? ('dialog' as const) : ('timeout' as const)
        ),
        wait(page.locator('[data-test=deploy-progress]'), 'detached').then((ok) => (ok ? ('done' as const) : ('timeout' as const))),
        wait(page.locator('[data-test=deploy-error]'), 'visible').then((ok) => (ok ? ('failed' as const) : ('timeout' as const)))
      ])
      if (which === 'timeout') throw new Error('the deploy neither asked, finished nor failed within 4 minutes')
      if (which === 'failed') {
        await shoot(page, '22-deploy-failed')
        throw new Error(`the deploy failed: ${await page.locator('[data-test=deploy-progress]').innerText()}`)
      }
      if (which === 'done') break
      const promptId = await page.locator('[data-prompt-id]').getAttribute('data-prompt-id')
      if (await page.locator('[data-test=hostkey-dialog]').isVisible()) {
        const title = await page.locator('[data-test=hostkey-dialog] h3').innerText()
        const slot = (/for (a|b|disk|spare) /.exec(title)?.[1] ?? '') as Slot
        expect(slot, title).not.toBe('')
        const shown = (await page.locator('[data-test=hostkey-fingerprint]').innerText()).trim()
        expect(shown).toBe(fingerprintOf(labHost(tb, SLOT_HOST[slot]).hostKey))
        if (seenKeys.size === 0) await shoot(page, '23-host-key-dialog')
        seenKeys.add(slot)
        await page.click('[data-test=prompt-accept]')
      } else {
        await expectText(page, '[data-test=secret-dialog] h3', labHost(tb, 'h4').user)
        // browser mode never offers to remember a secret
        expect(await page.locator('[data-test=prompt-remember]').count()).toBe(0)
        await page.locator('[data-test=prompt-secret]').fill(password)
        await shoot(page, '24-password-dialog')
        await page.click('[data-test=prompt-accept]')
        askedPassword = true
      }
      // the next question (if any) replaces this one in the same dialog
      await page.locator(`[data-prompt-id="${promptId}"]`).waitFor({ state: 'detached', timeout: 30_000 })
      // the deploy screen with no question in front of it (the last one taken wins)
      if ((await page.locator('[data-prompt-id]').count()) === 0 && (await page.locator('[data-test=deploy-progress]').isVisible())) {
        shotProgress = true
        await shoot(page, '22-deploy-progress')
      }
    }
    expect([...seenKeys].sort()).toEqual(['a', 'b', 'disk', 'spare'])
    expect(askedPassword).toBe(true)
    expect(shotProgress).toBe(true)

    // the lab runs on the testbed's machines
    await expectText(page, '[data-host=a] [data-test=host-role]', 'primary', 60_000)
    await expectText(page, '[data-host=b] [data-test=host-role]', 'backup')
    await expectText(page, '[data-host=disk] [data-test=host-role]', 'disk server')
    await expectText(page, '[data-test=lab-name]', LAB)
    const deployed = await ui.status()
    expect(deployed).toMatchObject({ kind: 'remote', name: LAB, state: 'running' })
    deployed.hosts.forEach((h, i) => expect(h.address).toContain(labHost(tb, ['h1', 'h2', 'h3'][i]).address))

    // a terminal on every host; each runs a command as the host's own user
    await page.click('[data-test=dock-terminals]')
    for (const slot of ['a', 'b', 'disk'] as const) {
      await page.click(`[data-test=term-open-${slot}]`)
      const pane = page.locator(`[data-test=host-terminal][data-host=${slot}]`)
      await pane.locator('[data-test=term-state]').filter({ hasText: 'open' }).waitFor({ timeout: 30_000 })
      await pane.locator('.xterm-screen').click()
      await page.keyboard.type(`echo "ftlab-term $((6*7)) $(id -un)"`)
      await page.keyboard.press('Enter')
      await expectText(page, `[data-test=host-terminal][data-host=${slot}] .xterm-rows`, `ftlab-term 42 ${labHost(tb, SLOT_HOST[slot]).user}`)
    }
    // search finds the command's output in a's scrollback
    await page.locator('[data-test=term-tab]').first().locator('[role=tab]').click()
    const paneA = page.locator('[data-test=host-terminal][data-host=a]')
    await paneA.locator('[data-test=term-search]').fill('ftlab-term 42')
    await paneA.locator('[data-test=term-search]').press('Enter')
    await expect.poll(async () => await paneA.locator('[data-test=term-search-count]').innerText()).toMatch(/^1\/\d+$/)
    // paste: the clipboard's text reaches the shell (bracketed: the shell waits for Enter)
    await page.evaluate(`navigator.clipboard.writeText('echo pasted-$((40+2))')`)
    await paneA.locator('[data-test=term-paste]').click()
    // the button reads the clipboard, pastes and then gives the terminal focus, all after the click returns: an Enter
    // pressed before that lands on the button (a second paste, no Enter for the shell). Wait for both.
    await expectText(page, '[data-test=host-terminal][data-host=a] .xterm-rows', 'echo pasted-$((40+2))')
    await expect.poll(() => page.evaluate(`document.activeElement?.classList.contains('xterm-helper-textarea') === true`)).toBe(true)
    await page.keyboard.press('Enter')
    await expectText(page, '[data-test=host-terminal][data-host=a] .xterm-rows', 'pasted-42')
    await shoot(page, '25-host-terminals')
    await shootNarrow(page, '25-host-terminals-1024')

    // reconnect keeps the scrollback; so does a page reload (term.list)
    await paneA.locator('[data-test=term-reconnect]').click()
    await paneA.locator('[data-test=term-state]').filter({ hasText: 'open' }).waitFor({ timeout: 30_000 })
    await expectText(page, '[data-test=host-terminal][data-host=a] .xterm-rows', `ftlab-term 42 ${labHost(tb, 'h1').user}`)
    await page.reload()
    await page.click('[data-test=dock-terminals]')
    await expect.poll(async () => await page.locator('[data-test=term-tab]').count(), { timeout: 20_000 }).toBe(3)
    await page.locator('[data-test=term-tab]').first().locator('[role=tab]').click()
    await expectText(page, '[data-test=host-terminal][data-host=a] .xterm-rows', 'pasted-42')

    // load, then cut the primary's power: a real machine, so the console asks first
    await page.click('[data-test=tab-diagram]')
    await page.fill('[data-test=load-panel] input >> nth=0', '4')
    await page.click('[data-test=load-start]')
    await expect.poll(async () => Number(await page.locator('[data-test=load-ops]').textContent()), { timeout: 30_000 }).toBeGreaterThan(0)
    await page.click('[data-host=a] [data-test=fault-power]')
    await page.locator('[data-test=confirm-dialog]').waitFor()
    await expectText(page, '[data-test=confirm-dialog]', labHost(tb, 'h1').address)
    await shoot(page, '26-confirm-power-cut')
    await page.click('[data-test=confirm-ok]')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'live', 60_000)
    await expectText(page, '[data-host=a] [data-test=host-role]', 'down')
    await shoot(page, '27-remote-power-cut-b-live')

    // restore redundancy onto the spare: the slot a moves to h4
    await page.locator('[data-test=restore-onto]').selectOption('spare')
    await page.click('[data-test=lab-restore]')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'primary', 120_000)
    await expectText(page, '[data-host=a] [data-test=host-role]', 'backup', 60_000)
    const restored = await ui.status()
    expect(restored.hosts[0]).toMatchObject({ id: 'a', machine: 'spare' })
    expect(restored.hosts[0].address).toContain(labHost(tb, 'h4').address)
    expect(restored.gen).toBe(2)
    await page.click('[data-test=load-stop]').catch(() => {})
    await shoot(page, '28-remote-restored-onto-spare')

    // detach: the console lets go, the agents keep running; the picker lists the lab and reopens it
    const pids = restored.hosts.map((h) => h.pid)
    await page.click('[data-test=lab-detach]')
    await page.locator('[data-test=lab-picker]').waitFor()
    const row = page.locator(`[data-test=recent-lab][data-lab="${LAB}"]`)
    await row.waitFor()
    await shoot(page, '20-lab-picker-recent')
    // nothing may be asking the operator anything once the console has let go of the lab
    const dialog = page.locator('.backdrop')
    if (await dialog.count()) throw new Error(`a dialog is open after detach: ${await dialog.first().innerText()}`)
    await row.locator('[data-test=recent-open]').click()
    // browser mode kept no secret: reopening asks for the spare's password again
    await page.locator('[data-test=secret-dialog]').waitFor({ timeout: 60_000 })
    await page.locator('[data-test=prompt-secret]').fill(password)
    await page.click('[data-test=prompt-accept]')
    await expectText(page, '[data-host=b] [data-test=host-role]', 'primary', 60_000)
    await expectText(page, '[data-host=a] [data-test=host-role]', 'backup')
    expect((await ui.status()).hosts.map((h) => h.pid)).toEqual(pids)

    // the operator switches h1 back on; teardown then removes FT Lab from every machine
    testbed('-q', 'power-on', 'h1')
    await page.click('[data-test=lab-teardown]')
    const confirm = page.locator('[data-test=confirm-dialog]')
    await confirm.waitFor()
    expect(await page.locator('[data-test=confirm-ok]').isDisabled()).toBe(true)
    await page.locator('[data-test=confirm-input]').fill('ui-testbe')
    expect(await page.locator('[data-test=confirm-ok]').isDisabled()).toBe(true)
    await page.locator('[data-test=confirm-input]').fill(LAB)
    await shoot(page, '29-confirm-teardown')
    await page.click('[data-test=confirm-ok]')
    await page.locator('[data-test=lab-picker]').waitFor({ timeout: 120_000 })
    // agents and shells are gone (a shell's sshd session may take a moment to reap it)
    for (const id of ['h1', 'h2', 'h3', 'h4'])
      await expect.poll(() => userProcesses(labHost(tb, id).user), { message: `processes left on ${id}`, timeout: 15_000 }).toEqual([])
    expect(pageErrors).toEqual([])
  }, 600_000)
})
