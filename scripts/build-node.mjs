// Bundles the parts that run on plain Node (no Electron): the agent (one file, Node
// stdlib only, for the hosts' Node 18+), the `ftlab` command line and the benchmark.
// esbuild takes well under a second, so `npm run ftlab` rebuilds every time.
import { build } from 'esbuild'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, resolve } from 'node:path'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const quiet = process.argv.includes('--quiet')
const at = (p) => resolve(root, p)

const targets = [
  {
    // The agent must not depend on anything but Node's standard library: `packages`
    // is not external here, so an accidental import of a dependency would be bundled and
    // caught by test/unit/agent-bundle.test.ts, which checks the bundle's requires.
    entryPoints: [at('agent/main.ts')],
    outfile: at('out/agent/ftlab-agent.cjs'),
    format: 'cjs',
    target: 'node18'
  },
  {
    entryPoints: [at('main/cli/ftlab.ts')],
    outfile: at('out/cli/ftlab.mjs'),
    format: 'esm',
    target: 'node20',
    packages: 'external'
  },
  {
    entryPoints: [at('main/bench/bench.ts')],
    outfile: at('out/bench/bench.mjs'),
    format: 'esm',
    target: 'node20',
    packages: 'external'
  },
  {
    entryPoints: [at('main/bench/record-bench.ts')],
    outfile: at('out/bench/record-bench.mjs'),
    format: 'esm',
    target: 'node20',
    packages: 'external'
  }
]

const started = Date.now()
for (const t of targets) {
  if (!existsSync(t.entryPoints[0])) continue
  await build({ bundle: true, platform: 'node', sourcemap: 'linked', logLevel: 'warning', ...t })
}
if (!quiet) console.log(`build-node: ${targets.length} bundles in ${Date.now() - started} ms`)
