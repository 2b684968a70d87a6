// `ftlab drill`: the verdict is the exit code (0 passed, 1 failed, 2 bad input), the seed is
// printed, progress and the verdict's explanation are printed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { runDrillCli } from '../../../main/cli/drill.js'
import { DrillLibrary } from '../../../main/drill/library.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const home = mkdtempSync(join(tmpdir(), 'ftlab-drill-cli-'))
  dirs.push(home)
  let out = ''
  let err = ''
  const code = await runDrillCli(argv, { out: (t) => (out += t), err: (t) => (err += t), isTty: false, home })
  return { code, out, err }
}

function file(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ftlab-drill-file-'))
  dirs.push(dir)
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

describe('ftlab drill', () => {
  it('--list names every built-in with the labs it runs on, experiments marked', async () => {
    const r = await cli('--list')
    expect(r.code).toBe(0)
    for (const n of new DrillLibrary().names()) expect(r.out).toContain(n)
    expect(r.out).toMatch(/no-output-rule .*EXPERIMENT: no-output-rule/)
    expect(r.out).toMatch(/etcd-arbiter-split-brain .*\[local, remote\]/)
  })

  it('lists the built-ins in the lecture order: the power cuts first, the experiments last, a drill of your own after them', async () => {
    const src = new DrillLibrary()
    const dir = mkdtempSync(join(tmpdir(), 'ftlab-drills-'))
    dirs.push(dir)
    for (const n of src.names()) writeFileSync(join(dir, `${n}.yaml`), src.text(n))
    writeFileSync(join(dir, 'aaa-mine.yaml'), src.text('power-cut-backup'))
    const names = new DrillLibrary(dir).names()
    expect(names.slice(0, 4)).toEqual(['power-cut-primary', 'learned-failover', 'power-cut-backup', 'power-cut-both'])
    expect(names.indexOf('no-output-rule')).toBeGreaterThan(names.indexOf('state-transfer-vs-rsm'))
    expect(names.at(-1)).toBe('aaa-mine')
  })

  it('exits 2 on a broken scenario file, naming file:line:column and field', async () => {
    const p = file('broken.yaml', new DrillLibrary().text('power-cut-primary').replace('target: a }', 'target: q }'))
    const r = await cli(p)
    expect(r.code).toBe(2)
    expect(r.err).toMatch(new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: steps\\[0\\]\\.fault\\.target: must be one of`))
  })

  it('exits 2 on unknown drills and options', async () => {
    expect((await cli('no-such-drill')).err).toMatch(/'no-such-drill' is neither a built-in drill \(ftlab drill --list\) nor a file/)
    expect((await cli('power-cut-primary', '--lab', 'cloud')).code).toBe(2)
    expect((await cli('power-cut-primary', '--repeat', '0')).err).toMatch(/--repeat must be an integer from 1 to 100 \(got "0"\)/)
    expect((await cli('power-cut-primary', '--frobnicate')).err).toMatch(/unknown option --frobnicate/)
  })

  it('--check reads a file without running it', async () => {
    const r = await cli('--check', file('ok.yaml', new DrillLibrary().text('pause-primary')))
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/ok\.yaml: ok \(Pause of the primary longer than the timeout: \d+ steps, 5 expectations\)/)
  })

  it('runs a drill on the simulated lab: prints the seed, the progress and the explained verdict, exits 0', async () => {
    const r = await cli('power-cut-primary', '--seed', '4')
    expect(r.code, r.out + r.err).toBe(0)
    expect(r.out).toContain('seed 4 (repeat it with --seed 4)')
    expect(r.out).toMatch(/power cut a/)
    expect(r.out).toMatch(/── Power cut of the primary \(repeat 1 of 1\): PASSED/)
    expect(r.out).toMatch(/✓ failover within 3s: failover took \d+ ms/)
    expect(r.out).toContain('The primary was switched off mid-load.')
  }, 90_000)

  it('exits 1 when the verdict fails', async () => {
    const p = file('strict.yaml', new DrillLibrary().text('power-cut-primary').replace('failover: { within: 3s }', 'failover: { within: 5ms }'))
    const r = await cli(p, '--seed', '4')
    expect(r.code, r.out + r.err).toBe(1)
    expect(r.out).toMatch(/✗ failover within 5ms: failover took \d+ ms/)
  }, 90_000)
})
