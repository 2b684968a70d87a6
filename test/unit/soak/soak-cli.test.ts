// `ftlab soak` and `ftlab report` on the command line: bad arguments are refused naming the
// flag and what it takes (exit 2), a recording is found by file or by session name, and the
// report's path is printed.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runCli, type CliIo } from '../../../main/cli/ftlab.js'
import { SessionLibrary } from '../../../main/record/library.js'
import { syntheticSession } from '../../../main/record/synthetic.js'
import { RecordingWriter } from '../../../main/record/writer.js'

const home = mkdtempSync(join(tmpdir(), 'ftlab-soak-cli-'))
afterAll(() => rmSync(home, { recursive: true, force: true }))

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const io: CliIo = { out: (t) => (out += t), err: (t) => (err += t), isTty: false, home }
  const code = await runCli(argv, io)
  return { code, out, err }
}

describe('ftlab soak arguments', () => {
  it.each([
    [['--faults', '0'], /--faults must be an integer from 1 to 100000 \(got "0"\)/],
    [['--lab', 'cloud'], /--lab must be one of local, simulated, remote \(got "cloud"\)/],
    [['--lab', 'remote'], /--lab remote needs the lab's name/],
    [['--speed', '2'], /--speed is for --lab simulated/],
    [['--heartbeat', '100', '--suspect', '50'], /--suspect \(50\) must be longer than --heartbeat \(100\)/],
    [['--lab', 'remote', 'rack3', '--suspect', '300'], /a remote lab keeps its own/],
    [['--seeds', '3'], /Unknown option '--seeds'/]
  ])('refuses %j with exit code 2 and the usage', async (args, message) => {
    const r = await cli('soak', ...args)
    expect(r.code).toBe(2)
    expect(r.err).toMatch(message)
    expect(r.err).toContain('usage:\n  ftlab soak')
  })

  it('prints its usage on --help', async () => {
    const r = await cli('soak', '--help')
    expect(r.code).toBe(0)
    expect(r.out).toContain('exit code: 0 passed, 1 failed, 2 bad arguments')
  })
})

describe('ftlab report', () => {
  it('writes the report of a session named as the library names it, and prints its path', async () => {
    const lib = new SessionLibrary(home)
    const path = lib.newPath('simulated', Date.UTC(2026, 11, 1, 14, 0, 0))
    const w = RecordingWriter.create(path, {
      ftlabVersion: 'test',
      startedAt: Date.UTC(2026, 11, 1, 14, 0, 0),
      lab: { kind: 'simulated', name: 'simulated', guest: 'kv', mode: 'rsm', timing: null, sim: null, hosts: [] },
      console: { host: 'test', pid: 1 }
    })
    for (const r of syntheticSession(Date.UTC(2026, 11, 1, 14, 0, 0), 2, 100)) w.append(r)
    w.close()
    const name = lib.list()[0].name
    const r = await cli('report', name)
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    const out = path.replace(/\.ftrec$/, '.html')
    expect(r.out).toBe(`report: ${out}\n`)
    expect(existsSync(out)).toBe(true)
    const other = join(home, 'elsewhere.html')
    expect((await cli('report', path, '-o', other)).out).toBe(`report: ${other}\n`)
    expect(existsSync(other)).toBe(true)
  })

  it('names the library and its sessions when a recording is not found', async () => {
    const r = await cli('report', 'no-such-session')
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/no recording 'no-such-session' in .*recordings \(there are: simulated-/)
  })

  it('takes one recording', async () => {
    expect((await cli('report')).code).toBe(2)
    expect((await cli('report', 'a', 'b')).err).toMatch(/one recording at a time \(got 2\)/)
  })
})
