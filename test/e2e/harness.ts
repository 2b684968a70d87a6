// Shared by the e2e tests: a fresh renderer build when the sources changed, the browser
// mode server on a free loopback port serving the real console backend with the simulated
// lab (the real replica core, disk arbiter and guests under the simulator), and Debian's
// chromium driven by playwright-core (never a downloaded browser).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, expect } from 'vitest'
import type { LabStatus } from '../../main/api/contract.js'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { startApiServer, type ApiServer } from '../../main/transport/ws-server.js'
import { chromiumPath, lacks, needChromium } from '../support/skips.js'

export const root = resolve(import.meta.dirname, '../..')
export const rendererDir = join(root, 'out/renderer')
export const CHROMIUM = chromiumPath()

function newestMtime(dir: string): number {
  let newest = 0
  for (const name of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, name.name)
    newest = Math.max(newest, name.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)
  }
  return newest
}

/** Builds out/renderer unless it is newer than every renderer source and the contract. */
export function ensureRendererBuilt(): void {
  const index = join(rendererDir, 'index.html')
  const sources = Math.max(newestMtime(join(root, 'renderer')), statSync(join(root, 'main/api/contract.ts')).mtimeMs)
  if (existsSync(index) && statSync(index).mtimeMs > sources) return
  execFileSync(process.execPath, [join(root, 'node_modules/electron-vite/bin/electron-vite.js'), 'build'], { cwd: root, stdio: 'pipe' })
}

export interface LabOptions {
  /**
   * The simulated lab as the page first finds it: 'stopped' (default: started and stopped
   * again, so the toolbar offers Start lab for it, as after the operator stopped it),
   * 'running', or 'none' (no lab yet: the page opens on the lab picker).
   */
  lab?: 'stopped' | 'running' | 'none'
  /** the simulator's speed (virtual ms per real ms) and seed for the harness's own start */
  speed?: number
  seed?: number
  /** the local lab's agent bundle (one that is not there makes a local lab start fail for real) */
  agentBundle?: string
}

export interface Lab {
  backend: ConsoleBackend
  server: ApiServer
  /** the console's FTLAB_HOME: a temporary directory removed by close() */
  home: string
  status(): Promise<LabStatus>
  close(): Promise<void>
}

/** The real ConsoleBackend (temporary home, no reattach) behind browser mode, with the simulated lab. */
export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-e2e-home-'))
  const backend = new ConsoleBackend({ home, reattach: false, shell: 'browser', agentBundle: opts.agentBundle })
  const server = await startApiServer({ backend, rendererDir })
  const status = () => backend.handle('lab.status', {})
  const lab: Lab = {
    backend,
    server,
    home,
    status,
    close: async () => {
      await backend.handle('lab.stop', {}).catch(() => {})
      await server.close().catch(() => {})
      await backend.close()
      rmSync(home, { recursive: true, force: true })
    }
  }
  const want = opts.lab ?? 'stopped'
  if (want === 'none') return lab
  try {
    const s = await backend.handle('lab.start', {
      kind: 'simulated',
      guest: 'kv',
      mode: 'rsm',
      ...(opts.speed === undefined ? {} : { speed: opts.speed }),
      ...(opts.seed === undefined ? {} : { seed: opts.seed })
    })
    if (s.state !== 'running') throw new Error(`the simulated lab did not start: ${s.state}${s.error ? `: ${s.error}` : ''}`)
    if (want === 'stopped') expect(await backend.handle('lab.stop', {})).toMatchObject({ kind: 'simulated', state: 'stopped' })
  } catch (err) {
    await lab.close()
    throw err
  }
  return lab
}

export interface Browsing {
  context: BrowserContext
  page: Page
  close(): Promise<void>
}

export async function openBrowser(): Promise<Browsing> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM}: install Debian's (apt-get update && apt-get install -y chromium); the tests never download a browser`)
  }
  const userDataDir = mkdtempSync(join(tmpdir(), 'ftlab-e2e-'))
  // a fresh profile each time: launchPersistentContext owns the --user-data-dir flag
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1440, height: 900 },
    colorScheme: 'dark'
  })
  const page = context.pages()[0] ?? (await context.newPage())
  return {
    context,
    page,
    close: async () => {
      await context.close()
      rmSync(userDataDir, { recursive: true, force: true })
    }
  }
}

/** PNGs go to screenshots/ when FTLAB_SCREENSHOTS=1 (to be committed), else screenshots/tmp/. */
export async function shoot(page: Page, name: string): Promise<void> {
  const dir = join(root, process.env.FTLAB_SCREENSHOTS === '1' ? 'screenshots' : 'screenshots/tmp')
  mkdirSync(dir, { recursive: true })
  await page.screenshot({ path: join(dir, `${name}.png`) })
}

/** One browser per test file, a fresh page per test, and what each page reported as errors. */
export interface BrowserUse {
  /** why the file's suites skip (this machine has no Chromium), or null */
  readonly skip: string | null
  /** the current page's uncaught exceptions and console errors */
  readonly errors: string[]
  readonly browsing: Browsing
  /** closes the pages of the test before and opens a fresh one */
  page(width?: number, height?: number): Promise<Page>
}

/** Registers the file's beforeAll (renderer build, Chromium) and afterAll; call it at the top level of a test file. */
export function useBrowser(setupTimeoutMs = 180_000): BrowserUse {
  const skip = lacks(needChromium())
  let browsing: Browsing | null = null
  let errors: string[] = []
  beforeAll(async () => {
    if (skip) return
    ensureRendererBuilt()
    browsing = await openBrowser()
  }, setupTimeoutMs)
  afterAll(async () => {
    await browsing?.close()
  })
  const open = (): Browsing => {
    if (!browsing) throw new Error('the browser is not open (useBrowser skips when Chromium is missing)')
    return browsing
  }
  return {
    skip,
    get errors() {
      return errors
    },
    get browsing() {
      return open()
    },
    async page(width = 1440, height = 900) {
      const { context } = open()
      for (const p of context.pages()) await p.close()
      const page = await context.newPage()
      await page.setViewportSize({ width, height })
      errors = []
      page.on('pageerror', (e) => errors.push(String(e)))
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text())
      })
      return page
    }
  }
}

/** Waits until an element matching the selector shows the text. */
export async function expectText(page: Page, selector: string, text: string | RegExp, timeout = 20_000): Promise<void> {
  await page.locator(selector).filter({ hasText: text }).first().waitFor({ timeout })
}
