// The runtime cache's prepared copies: made once, kept while the cached binary is unchanged,
// made again when it changes, and read back without making anything (what deploy does while
// it connects). The "runtime" here is a small script: strip does not know it, so it goes as it is.
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { preparedIfCurrent, prepareRuntime, type CachedRuntime } from '../../../main/ssh/runtime-cache.js'

const zstdHere = spawnSync('zstd', ['--version']).status === 0

describe('runtime cache preparation', () => {
  let root: string
  let rt: CachedRuntime
  const body = `#!/bin/sh\necho v22.1.0\n# ${'padding '.repeat(2000)}\n`

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ftlab-rtcache-'))
    const bin = join(root, 'node-v22.1.0-linux-x64', 'bin')
    mkdirSync(bin, { recursive: true })
    writeFileSync(join(bin, 'node'), body)
    chmodSync(join(bin, 'node'), 0o755)
    rt = { version: '22.1.0', arch: 'x64', path: join(bin, 'node') }
  })

  afterAll(() => rmSync(root, { recursive: true, force: true }))

  it('is not current before it is made, and making it gives copies that unpack to the binary it describes', async () => {
    expect(await preparedIfCurrent(rt)).toBeNull()
    const p = await prepareRuntime(rt)
    expect(p.stripped).toBe(false)
    expect(p.bytes).toBe(Buffer.byteLength(body))
    expect(gunzipSync(readFileSync(p.gzPath)).toString()).toBe(body)
    expect(p.gzBytes).toBe(statSync(p.gzPath).size)
    if (zstdHere) {
      expect(p.zst).not.toBeNull()
      expect(spawnSync('zstd', ['-dcq', p.zst!.path]).stdout.toString()).toBe(body)
    } else expect(p.zst).toBeNull()
    expect(await preparedIfCurrent(rt)).toEqual(p)
  })

  it('keeps the copies while the binary is unchanged and makes them again when it changes', async () => {
    const first = await prepareRuntime(rt)
    const made = statSync(first.gzPath).mtimeMs
    expect((await prepareRuntime(rt)).sha256).toBe(first.sha256)
    expect(statSync(first.gzPath).mtimeMs).toBe(made)
    writeFileSync(rt.path, body.replace('padding', 'PADDING'))
    const later = new Date(Date.now() + 5000)
    utimesSync(rt.path, later, later)
    expect(await preparedIfCurrent(rt)).toBeNull()
    const again = await prepareRuntime(rt)
    expect(again.sha256).not.toBe(first.sha256)
    expect(gunzipSync(readFileSync(again.gzPath)).toString()).toContain('PADDING')
  })

  it('takes copies made in an older format as not current', async () => {
    const p = await prepareRuntime(rt)
    const meta = JSON.parse(readFileSync(`${p.gzPath}.json`, 'utf8')) as Record<string, unknown>
    delete meta.format
    writeFileSync(`${p.gzPath}.json`, JSON.stringify(meta))
    expect(await preparedIfCurrent(rt)).toBeNull()
  })
})
