// Browser mode's entry point (bundled to out/serve/serve.mjs by scripts/start.mjs):
// runs the console core in plain Node and serves the console to a browser on this
// machine. Prints the address, with its token, on stdout.
//
//   node out/serve/serve.mjs [--port N] [--host 127.0.0.1] [--renderer out/renderer]
import { existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createBackend } from './backend.js'
import { startApiServer } from './server.js'

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
  const backend = createBackend()
  const server = await startApiServer({ backend, rendererDir: args.renderer, port: args.port, host: args.host }).catch((err: Error) => {
    console.error(`ftlab serve: cannot listen on ${args.host}:${args.port}: ${err.message}`)
    process.exit(1)
  })
  if (args.host !== '127.0.0.1' && args.host !== 'localhost' && args.host !== '::1') {
    console.warn(`ftlab serve: listening on ${args.host}, not loopback: anyone who can reach it and has the token controls the lab`)
  }
  console.log(`FT Lab console (${backend.info().backend} lab): ${server.url}`)
  console.log('Open that address in a browser on this machine. Ctrl+C stops the console.')
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    void Promise.all([server.close(), backend.close()]).finally(() => process.exit(0))
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

const invokedDirectly = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)
if (invokedDirectly) void main()
