// The bundled command line (out/cli/ftlab.mjs) in its own process, as a user runs it in a terminal
// beside the console: for the tests of a console and `ftlab` sharing a lab.
import { execFile } from 'node:child_process'

export function ftlab(home: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, ['out/cli/ftlab.mjs', ...args], { env: { ...process.env, FTLAB_HOME: home }, timeout: 60_000 }, (err, out, stderr) =>
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, out, err: stderr })
    )
  )
}
