// A test's helper program (a TypeScript file beside the test) bundled into one .mjs that plain
// Node runs as a process of its own: for tests that need another process doing real work (a
// writer to SIGKILL, racers for a lock).
import { build } from 'esbuild'

export async function bundleChild(entry: string, outfile: string): Promise<string> {
  await build({ entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'silent' })
  return outfile
}
