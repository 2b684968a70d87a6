import { readFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { describe, expect, it } from 'vitest'

// The agent runs on hosts that have only Node 18+: its bundle may require nothing but
// Node's standard library.
describe('agent bundle', () => {
  it('requires only Node standard-library modules', () => {
    const code = readFileSync('out/agent/ftlab-agent.cjs', 'utf8')
    const required = [...code.matchAll(/require\(["']([^"']+)["']\)/g)].map((m) => m[1])
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))
    const foreign = required.filter((r) => !builtins.has(r))
    expect(foreign).toEqual([])
  })
})
