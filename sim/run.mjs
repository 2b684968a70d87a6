// Bundles sim/cli.ts with esbuild (as scripts/build-node.mjs does for the node entry points)
// and runs it with this process's arguments: `npm run sim -- --seeds 1000`.
import { build } from 'esbuild'
import { dirname, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const outfile = resolve(root, 'out/sim/sim.mjs')
await build({ entryPoints: [resolve(root, 'sim/cli.ts')], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', sourcemap: 'linked', logLevel: 'warning' })
await import(pathToFileURL(outfile).href)
