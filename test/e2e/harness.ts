// Shared by the e2e tests: a fresh renderer build when the sources changed, the browser
// mode server on a free loopback port with the simulated lab, and Debian's chromium
// driven by playwright-core (never a downloaded browser).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { FakeBackend, type FakeBackendOptions } from '../../main/api/fake-backend.js'
import { startApiServer, type ApiServer } from '../../main/transport/ws-server.js'
import { chromiumPath } from '../support/skips.js'

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

export interface Lab {
  backend: FakeBackend
  server: ApiServer
  close(): Promise<void>
}

export async function startLab(opts: FakeBackendOptions = {}): Promise<Lab> {
  const backend = new FakeBackend(opts)
  const server = await startApiServer({ backend, rendererDir })
  return {
    backend,
    server,
    close: async () => {
      await server.close()
      await backend.close()
    }
  }
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
