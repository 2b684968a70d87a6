// A bundled entry (the CLI, the benchmark) runs its main only when node was started on it,
// not when a test imports it; and a crash outside main's own error handling still exits
// with a message and a failing status instead of an unhandled rejection.
import { pathToFileURL } from 'node:url'

export function runIfMain(moduleUrl: string, name: string, main: () => Promise<number>, failureCode = 1): void {
  let direct: boolean
  try {
    direct = process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href
  } catch {
    direct = false
  }
  if (!direct) return
  main().then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${name}: unexpected failure: ${(err as Error)?.stack ?? String(err)}\n`)
      process.exit(failureCode)
    }
  )
}
