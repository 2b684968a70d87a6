// The command line as users run it: the bundled out/cli/ftlab.mjs under plain Node (not
// vitest's module loader, which forgives ESM/CommonJS mismatches that Node does not).
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const home = mkdtempSync(join(tmpdir(), 'ftlab-cli-'))
afterAll(() => {
  ftlab('lab', 'stop')
  rmSync(home, { recursive: true, force: true })
})

function run(bundle: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [bundle, ...args], { encoding: 'utf8', env: { ...process.env, FTLAB_HOME: home }, timeout: 60_000 })
  return { code: r.status, out: r.stdout, err: r.stderr }
}
const ftlab = (...args: string[]) => run('out/cli/ftlab.mjs', ...args)

describe('the bundled command line', () => {
  it('prints its usage and says what is wrong with a bad command, with exit code 2', () => {
    const help = ftlab('--help')
    expect(help.code).toBe(0)
    expect(help.out).toContain('ftlab lab start')
    expect(help.out).toContain('ftlab deploy')
    const bad = ftlab('bogus')
    expect(bad.code).toBe(2)
    expect(bad.err).toContain("unknown command 'bogus'")
  })

  it('starts a local lab, shows it, runs a short load with a valid verdict, and stops it', () => {
    const start = ftlab('lab', 'start')
    expect(start.err).toBe('')
    expect(start.code).toBe(0)
    expect(start.out).toMatch(/a +pid \d+ +primary/)
    const status = ftlab('status', '--json')
    expect(status.code).toBe(0)
    const lab = JSON.parse(status.out) as { name: string; gen: number; hosts: { host: string; status?: { role: string } }[] }
    expect([lab.name, lab.gen]).toEqual(['local', 1])
    expect(lab.hosts.map((r) => [r.host, r.status?.role])).toEqual([
      ['a', 'primary'],
      ['b', 'backup'],
      ['disk', 'disk-server']
    ])
    const load = ftlab('load', '--seconds', '1', '--clients', '2')
    expect(load.code).toBe(0)
    expect(load.out).toContain('verdict: valid')
    const stop = ftlab('lab', 'stop')
    expect(stop.code).toBe(0)
    expect(ftlab('status').code).not.toBe(0)
  })

  it('the benchmark bundle loads and prints its options', () => {
    const r = run('out/bench/bench.mjs', '--help')
    expect(r.code).toBe(0)
    expect(r.out).toContain('usage: npm run bench')
  })
})
