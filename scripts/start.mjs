// `npm start`: build what is needed, then open the console in Electron, or, where
// Electron's binary is missing and cannot be fetched (or there is no display), serve
// the very same console to a browser on this machine.
//
//   npm start [-- --browser] [-- --port N] [-- --no-download]
//
//   --browser      skip Electron: serve the console to your browser
//   --port N       browser mode's port (default: a free one)
//   --no-download  do not try to fetch Electron's binary when it is missing
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const at = (p) => resolve(root, p)

function usage(code) {
  console.log('usage: npm start [-- --browser] [-- --port N] [-- --no-download]')
  process.exit(code)
}

function parseArgs(argv) {
  const o = { browser: false, port: 0, download: true }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--browser') o.browser = true
    else if (a === '--no-download') o.download = false
    else if (a === '--port' || a.startsWith('--port=')) {
      const v = a.includes('=') ? a.slice(7) : argv[++i]
      if (v === undefined || !/^\d+$/.test(v) || Number(v) > 65535) {
        console.error(`start: --port needs a port number from 0 to 65535 (got ${v === undefined ? 'nothing' : JSON.stringify(v)})`)
        process.exit(2)
      }
      o.port = Number(v)
    } else if (a === '--help' || a === '-h') usage(0)
    else {
      console.error(`start: unknown option ${JSON.stringify(a)}`)
      usage(2)
    }
  }
  return o
}

function run(what, cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' })
  if (r.status !== 0) {
    console.error(`start: ${what} failed (${r.error ? r.error.message : `exit ${r.status}`}); fix the error above and run npm start again`)
    process.exit(1)
  }
}

async function build() {
  console.log('start: building the console (electron-vite) and the Node bundles…')
  run('building the console UI, main and preload', process.execPath, [at('node_modules/electron-vite/bin/electron-vite.js'), 'build'])
  run('building the agent and command line', process.execPath, [at('scripts/build-node.mjs'), '--quiet'])
  const { build: esbuild } = await import('esbuild')
  await esbuild({
    entryPoints: [at('main/transport/serve.ts')],
    outfile: at('out/serve/serve.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    logLevel: 'warning'
  })
}

/** Electron's executable, or { reason } saying why there is none. */
function electronBinary(download) {
  const pkgDir = at('node_modules/electron')
  if (!existsSync(join(pkgDir, 'package.json'))) return { reason: 'the electron package is not installed (run npm install)' }
  const installed = () => {
    const pathFile = join(pkgDir, 'path.txt')
    if (!existsSync(pathFile)) return null
    const exe = join(pkgDir, 'dist', readFileSync(pathFile, 'utf8').trim())
    return existsSync(exe) ? exe : null
  }
  let exe = installed()
  if (exe) return { exe }
  if (!download) return { reason: 'it is not installed and --no-download was given' }
  const [major, minor] = process.versions.node.split('.').map(Number)
  const nodeNote = major < 22 || (major === 22 && minor < 12) ? ` (Electron's installer wants Node 22.12+; this is Node ${process.versions.node})` : ''
  console.log("start: Electron's binary is missing; trying to fetch it…")
  const r = spawnSync(process.execPath, [join(pkgDir, 'install.js')], { cwd: pkgDir, encoding: 'utf8', timeout: 180_000 })
  exe = installed()
  if (exe) return { exe }
  const text = `${r.stderr ?? ''}\n${r.stdout ?? ''}`
  const line =
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => /error|ENOTFOUND|EAI_AGAIN|ECONN|ETIMEDOUT|status|unsupported/i.test(l) && !l.startsWith('at ')) ??
    (r.error ? r.error.message : r.status !== 0 ? `the installer exited with ${r.status ?? r.signal}` : 'the installer finished but left no binary')
  return { reason: `${line.slice(0, 300)}${nodeNote}` }
}

function hasDisplay() {
  if (process.platform !== 'linux') return true
  return Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY)
}

/**
 * The labs whose agents outlive the console (they are detached processes, or run on remote
 * hosts): read from FT Lab's lab store, so Ctrl+C says plainly what keeps running and how to stop it.
 */
function runningLabsNote() {
  const home = process.env.FTLAB_HOME || join(homedir(), '.ftlab')
  let files
  try {
    files = readdirSync(join(home, 'labs')).filter((f) => f.endsWith('.json'))
  } catch {
    return null // no lab was ever started from this home
  }
  const remote = files.filter((f) => f.endsWith('.remote.json')).map((f) => f.slice(0, -'.remote.json'.length))
  const local = files.filter((f) => !f.endsWith('.remote.json') && !remote.includes(f.slice(0, -'.json'.length))).map((f) => f.slice(0, -'.json'.length))
  const lines = []
  for (const name of local) {
    lines.push(
      `  lab '${name}': its agents keep running on this machine; stop them with: npm run ftlab -- lab stop${name === 'local' ? '' : ` --name ${name}`}`
    )
  }
  for (const name of remote)
    lines.push(`  remote lab '${name}': its agents keep running on its hosts; remove them with: npm run ftlab -- teardown --name ${name}`)
  if (!lines.length) return null
  return ['start: the console stopped, but these labs keep running (a restarted console reattaches to them):', ...lines].join('\n')
}

function runChild(cmd, args, env = process.env) {
  const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', env: { ...env, FTLAB_STARTED_BY: 'npm-start' } })
  let interrupted = false
  const forward = (sig) => () => {
    interrupted = true
    child.kill(sig)
  }
  process.on('SIGINT', forward('SIGINT'))
  process.on('SIGTERM', forward('SIGTERM'))
  child.on('exit', (code, signal) => {
    const note = runningLabsNote()
    if (note) console.log(interrupted ? note : note.replace('the console stopped', 'the console closed'))
    process.exit(code ?? (signal ? 1 : 0))
  })
  return child
}

function serveBrowser(port) {
  runChild(process.execPath, [at('out/serve/serve.mjs'), '--port', String(port)])
}

const opts = parseArgs(process.argv.slice(2))
await build()

if (opts.browser) {
  serveBrowser(opts.port)
} else {
  const found = electronBinary(opts.download)
  if (!found.exe) {
    console.log(`Electron's binary could not be downloaded: ${found.reason}; serving the same console to your browser instead`)
    serveBrowser(opts.port)
  } else if (!hasDisplay()) {
    console.log('Electron cannot open a window: no display (DISPLAY and WAYLAND_DISPLAY are unset); serving the same console to your browser instead')
    serveBrowser(opts.port)
  } else {
    // keep createRequire out of the hot path: only to show which Electron runs
    const version = createRequire(import.meta.url)(at('node_modules/electron/package.json')).version
    console.log(`start: opening FT Lab in Electron ${version}`)
    const env = { ...process.env }
    delete env.ELECTRON_RUN_AS_NODE
    runChild(found.exe, [root], env)
  }
}
