// Bundles main/bench/ui-bench.ts with esbuild (well under a second) and runs it: the UI
// benchmark (frame time and JS heap in Chromium under a 20,000 entries/s logging channel).
// Usage: node scripts/ui-bench.mjs [--minutes 10] [--rate 20000] [--batch 20]
import { build } from 'esbuild'
import { dirname, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const outfile = resolve(root, 'out/bench/ui-bench.mjs')
await build({
  entryPoints: [resolve(root, 'main/bench/ui-bench.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning'
})
const { main } = await import(pathToFileURL(outfile).href)
try {
  await main(process.argv.slice(2))
} catch (err) {
  console.error(`ui-bench: ${err instanceof Error ? err.message : String(err)}`)
  process.exitCode = 1
}
