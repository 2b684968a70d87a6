import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // integration tests start processes and bind ports; keep files from stepping on each other
    fileParallelism: false,
    reporters: ['default']
  }
})
