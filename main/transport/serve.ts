// Browser mode's entry point (bundled to out/serve/serve.mjs by scripts/start.mjs):
// runs the console core in plain Node and serves the console to a browser on this
// machine. Prints the address, with its token, on stdout.
//
//   node out/serve/serve.mjs [--port N] [--host 127.0.0.1] [--renderer out/renderer]
import { existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConsoleBackend } from '../console/console-backend.js'
import { startApiServer } from './ws-server.js'
import { setLabActor } from '../lab/lab-state.js'

interface Args {
  port: number
  host: string
  renderer: string
}

export function parseServeArgs(argv: string[], root: string): Args {
  const args: Args = { port: 0, host: '127.0.0.1', renderer: resolve(root, 'out/renderer') }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = (): string => {
      const v = argv[++i]
      if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--port') {
      const v = value()
      const n = Number(v)
      if (!/^\d+$/.test(v) || n > 65535) throw new Error(`--port must be a port number from 0 to 65535 (got ${JSON.stringify(v)})`)
      args.port = n
    } else if (a === '--host') args.host = value()
    else if (a === '--renderer') args.renderer = resolve(value())
    else throw new Error(`unknown option ${JSON.stringify(a)} (known: --port, --host, --renderer)`)
  }
  return args
}

async function main(): Promise<void> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
  let args: Args
  try {
    args = parseServeArgs(process.argv.slice(2), root)
  } catch (err) {
    console.error(`ftlab serve: ${(err as Error).message}`)
    process.exit(2)
  }
  if (!existsSync(resolve(args.renderer, 'index.html'))) {
    console.error(`ftlab serve: the console UI is not built (no ${args.renderer}/index.html); run: npx electron-vite build`)
    process.exit(1)
  }
  setLabActor('the console')
  const backend = new ConsoleBackend({ shell: 'browser' })
  await backend.whenReady()
  const server = await startApiServer({ backend, rendererDir: args.renderer, port: args.port, host: args.host }).catch((err: Error) => {
    console.error(`ftlab serve: cannot listen on ${args.host}:${args.port}: ${err.message}`)
    process.exit(1)
  })
  if (args.host !== '127.0.0.1' && args.host !== 'localhost' && args.host !== '::1') {
    console.warn(`ftlab serve: listening on ${args.host}, not loopback: anyone who can reach it and has the token controls the lab`)
  }
  const lab = backend.info().lab
  console.log(`FT Lab console${lab ? ` (reattached to the ${lab.kind} lab '${lab.name}')` : ''}: ${server.url}`)
  console.log("Open that address in a browser on this machine. Ctrl+C stops the console; the lab's agents keep running.")
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    const lab = backend.info().lab
    void Promise.all([server.close(), backend.close()]).finally(() => {
      // under `npm start`, scripts/start.mjs says what keeps running (for Electron too)
      if (lab && lab.kind !== 'simulated' && process.env.FTLAB_STARTED_BY !== 'npm-start') console.log(keepsRunning(lab.kind, lab.name))
      process.exit(0)
    })
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

/** What Ctrl+C leaves running, and how to stop it. */
export function keepsRunning(kind: 'local' | 'remote', name: string): string {
  return kind === 'local'
    ? `The console stopped; lab '${name}' keeps running (its agents are processes on this machine). Stop it with: npm run ftlab -- lab stop${name === 'local' ? '' : ` --name ${name}`}`
    : `The console stopped; remote lab '${name}' keeps running on its hosts. Tear it down with: npm run ftlab -- teardown --name ${name}`
}

const invokedDirectly = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)
if (invokedDirectly) void main()
