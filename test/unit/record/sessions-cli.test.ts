import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runCli } from '../../../main/cli/ftlab.js'
import { SessionLibrary } from '../../../main/record/library.js'
import { RecordingWriter } from '../../../main/record/writer.js'
import { syntheticSession } from '../../../main/record/synthetic.js'

const home = mkdtempSync(join(tmpdir(), 'ftlab-sessions-'))
const outside = mkdtempSync(join(tmpdir(), 'ftlab-sessions-out-'))
afterAll(() => {
  rmSync(home, { recursive: true, force: true })
  rmSync(outside, { recursive: true, force: true })
})

async function ftlab(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t), isTty: false, home })
  return { code, out, err }
}

function recordInto(path: string, t0: number, close = true): void {
  const w = RecordingWriter.create(path, {
    ftlabVersion: '0.1.0',
    startedAt: t0,
    lab: {
      kind: 'simulated',
      name: 'simulated',
      guest: 'bank',
      mode: 'rsm',
      timing: { heartbeatMs: 100, suspectMs: 800 },
      sim: { speed: 1, seed: 9 },
      hosts: [{ id: 'a', machine: 'a', address: '127.0.0.1' }]
    },
    console: { host: 'box', pid: 1 }
  })
  for (const r of syntheticSession(t0, 3, 100, 1000)) w.append(r)
  if (close) w.close()
  else w.flush()
}

describe('ftlab sessions', () => {
  const lib = new SessionLibrary(home)
  const t0 = Date.UTC(2026, 11, 1, 14, 35, 2)
  const first = lib.newPath('simulated', t0)
  recordInto(first, t0)
  const second = lib.newPath('simulated', t0 + 60_000)
  recordInto(second, t0 + 60_000, false)

  it('names recordings by lab and start time and lists them newest first with their marks and state', async () => {
    expect(first).toBe(join(home, 'recordings', 'simulated-2026-12-01T14-35-02.ftrec'))
    const r = await ftlab('sessions', 'list')
    expect(r.code).toBe(0)
    const lines = r.out.trim().split('\n')
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^simulated-2026-12-01T14-36-02 {2}simulated simulated · bank rsm {2}2026-12-01 14:36:02 UTC .* 1 fault, 1 go-live {2}not closed$/)
    expect(lines[1]).toMatch(/^simulated-2026-12-01T14-35-02 .* 1 fault, 1 go-live {2}complete$/)
  })

  it('shows a recording: its lab, its marked moments with their times', async () => {
    const r = await ftlab('sessions', 'show', 'simulated-2026-12-01T14-35-02')
    expect(r.code).toBe(0)
    expect(r.out).toContain("lab       simulated 'simulated', guest bank, rsm, heartbeat 100 ms, suspect 800 ms, seed 9")
    expect(r.out).toMatch(/\+00:01\.000 {2}fault {4}power cut a\n/)
    expect(r.out).toMatch(/\+00:01\.900 {2}go-live {2}b goes live \(gen 2\)\n/)
  })

  it('renames, exports, deletes and imports, and says which file and what is wrong when it cannot', async () => {
    expect((await ftlab('sessions', 'rename', 'simulated-2026-12-01T14-35-02', 'failover-demo')).out).toContain(join(home, 'recordings', 'failover-demo.ftrec'))
    const missing = await ftlab('sessions', 'delete', 'nope')
    expect(missing.code).toBe(1)
    expect(missing.err).toContain(`ftlab sessions delete: no recording 'nope' in ${join(home, 'recordings')} (there are: `)
    expect(missing.err).toContain('failover-demo')
    const ex = await ftlab('sessions', 'export', 'failover-demo', outside)
    expect(ex.out).toBe(`exported 'failover-demo' to ${join(outside, 'failover-demo.ftrec')}\n`)
    expect((await ftlab('sessions', 'export', 'failover-demo', outside)).err).toMatch(/the file exists/)
    expect((await ftlab('sessions', 'delete', 'failover-demo')).code).toBe(0)
    expect(existsSync(join(home, 'recordings', 'failover-demo.ftrec'))).toBe(false)

    const back = await ftlab('sessions', 'import', join(outside, 'failover-demo.ftrec'))
    expect(back).toMatchObject({
      code: 0,
      out: `imported ${join(outside, 'failover-demo.ftrec')} as 'failover-demo' (${join(home, 'recordings', 'failover-demo.ftrec')})\n`
    })
    expect((await ftlab('sessions', 'import', join(outside, 'failover-demo.ftrec'))).err).toMatch(/the library has 'failover-demo' already/)

    // a damaged copy is imported with its damage reported; a file that is no recording is refused
    const bad = Buffer.from(readFileSync(join(outside, 'failover-demo.ftrec')))
    bad[Math.floor(bad.length / 2)] ^= 0xff
    writeFileSync(join(outside, 'damaged.ftrec'), bad)
    const dmg = await ftlab('sessions', 'import', join(outside, 'damaged.ftrec'))
    expect(dmg.code).toBe(0)
    expect(dmg.out).toMatch(/damage: bytes \d+ to \d+ \(\d+ bytes\) are damaged \(checksum mismatch\): skipped/)
    writeFileSync(join(outside, 'notes.txt'), 'not a recording')
    const refused = await ftlab('sessions', 'import', join(outside, 'notes.txt'), '--as', 'notes')
    expect(refused).toMatchObject({
      code: 1,
      err: `ftlab sessions import: cannot import ${join(outside, 'notes.txt')}: not an FT Lab recording (it does not start with the .ftrec signature)\n`
    })
    expect((await ftlab('sessions', 'rename', 'damaged', '../escape')).err).toMatch(/recording name "..\/escape": use letters/)
    expect((await ftlab('sessions', 'frobnicate')).code).toBe(2)
  })
})
