// The Electron shell: the only folder in main/ that imports 'electron'. It opens one
// locked-down window on the built renderer and answers the page's calls through the IPC
// transport (main/transport/ipc.ts): the same contract and dispatch as the browser mode's
// WebSocket.
//
// Hardening (Electron's security checklist): context isolation, sandbox, no Node in the
// page, web security on, a strict CSP (the page's meta tag, plus the header for http
// loads in development), no permissions, navigation and new windows blocked, webviews
// refused, and every IPC message checked for its sender frame before its arguments are
// validated against the contract.
import { app, BrowserWindow, dialog, ipcMain, session, shell, type WebContents } from 'electron'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ConsoleBackend } from '../console/console-backend.js'
import { ftlabHome, setLabActor } from '../lab/lab-state.js'
import { serveIpc, streamEventsTo, type IpcCallEvent } from '../transport/ipc.js'
import { recordingDialogs } from './file-dialogs.js'
import { SafeStorageSecrets } from './safe-secrets.js'

const here = dirname(fileURLToPath(import.meta.url))
const devUrl = !app.isPackaged ? process.env['ELECTRON_RENDERER_URL'] : undefined
const rendererFile = join(here, '../renderer/index.html')
const rendererUrl = devUrl ?? pathToFileURL(rendererFile).href

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // xterm's DOM renderer writes <style> elements at run time
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'"
].join('; ')

let backend: ConsoleBackend | null = null
let mainWindow: BrowserWindow | null = null

function preloadPath(): string {
  // a sandboxed preload must be a classic script: electron-vite emits index.js or index.cjs
  // for format 'cjs', index.mjs for 'es' (which a sandbox cannot load)
  for (const name of ['index.cjs', 'index.js', 'index.mjs']) {
    const p = join(here, '../preload', name)
    if (existsSync(p)) return p
  }
  throw new Error(`no preload script in ${join(here, '../preload')}; run: npx electron-vite build`)
}

/** Only the top frame of our own window, showing our own page, may call the API. */
function trustedSender(e: IpcCallEvent): boolean {
  const frame = e.senderFrame
  if (!mainWindow || e.sender !== mainWindow.webContents || !frame || frame.parent !== null) return false
  const url = frame.url.split('#')[0]
  return devUrl ? new URL(url).origin === new URL(devUrl).origin : url === rendererUrl
}

function harden(contents: WebContents): void {
  contents.on('will-navigate', (ev, url) => {
    if (url.split('#')[0] !== rendererUrl.split('#')[0]) ev.preventDefault()
  })
  contents.on('will-redirect', (ev) => ev.preventDefault())
  contents.on('will-attach-webview', (ev) => ev.preventDefault())
  contents.setWindowOpenHandler(({ url }) => {
    // documentation links open in the user's browser, never in the app
    if (url.startsWith('https://')) void shell.openExternal(url)
    return { action: 'deny' }
  })
}

function createWindow(b: ConsoleBackend): void {
  const win = new BrowserWindow({
    width: 1440,
    height: 920,
    minWidth: 1100,
    minHeight: 720,
    backgroundColor: '#0f1419',
    title: 'FT Lab',
    show: false,
    webPreferences: {
      preload: preloadPath(),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      webSecurity: true,
      webviewTag: false,
      spellcheck: false,
      navigateOnDragDrop: false
    }
  })
  mainWindow = win
  win.once('ready-to-show', () => win.show())
  const stopEvents = streamEventsTo(win.webContents, b)
  win.on('closed', () => {
    stopEvents()
    mainWindow = null
  })
  if (devUrl) void win.loadURL(devUrl)
  else void win.loadFile(rendererFile)
}

app.enableSandbox()

app.on('web-contents-created', (_e, contents) => harden(contents))

app.whenReady().then(
  () => {
    setLabActor('the console')
    backend = new ConsoleBackend({
      shell: 'electron',
      secrets: new SafeStorageSecrets(ftlabHome()),
      recordingDialogs: recordingDialogs(
        dialog,
        () => mainWindow,
        () => app.getPath('downloads')
      )
    })
    const b = backend
    session.defaultSession.setPermissionRequestHandler((_wc, _permission, cb) => cb(false))
    session.defaultSession.setPermissionCheckHandler(() => false)
    session.defaultSession.webRequest.onHeadersReceived((details, cb) => {
      cb({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CSP] } })
    })
    serveIpc({ ipcMain, service: b, isTrusted: trustedSender })
    createWindow(b)
    app.on('activate', () => {
      if (BrowserWindow.getAllWindows().length === 0) createWindow(b)
    })
  },
  (err: unknown) => {
    console.error(`FT Lab could not start: ${err instanceof Error ? err.message : String(err)}`)
    app.exit(1)
  }
)

app.on('window-all-closed', () => {
  const b = backend
  backend = null
  const lab = b?.info().lab
  void (b ? b.close() : Promise.resolve()).finally(() => {
    // the agents are detached processes (or run on remote hosts): say so, not leave them silently
    if (lab && lab.kind !== 'simulated' && process.env.FTLAB_STARTED_BY !== 'npm-start') {
      console.log(
        `FT Lab closed; lab '${lab.name}' (${lab.kind}) keeps running. ${lab.kind === 'local' ? 'Stop it with: npm run ftlab -- lab stop' : `Tear it down with: npm run ftlab -- teardown --name ${lab.name}`}`
      )
    }
    app.quit()
  })
})
