import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defineConfig } from 'vitest/config'
import { SkipReporter } from './test/support/skip-reporter.js'

// where test/support/skips.ts records skip reasons for the summary; one per vitest run
const skipLog = join(tmpdir(), `ftlab-skips-${process.pid}.jsonl`)

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // integration tests start processes and bind ports; keep files from stepping on each other
    fileParallelism: false,
    env: { FTLAB_SKIP_LOG: skipLog },
    reporters: ['default', new SkipReporter(skipLog)]
  }
})
