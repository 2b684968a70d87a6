import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { bundleChild } from '../../support/child.js'
import { Recording } from '../../../main/record/reader.js'

const dir = mkdtempSync(join(tmpdir(), 'ftlab-record-kill-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('a recording whose writer is killed', () => {
  it('opens after a SIGKILL mid-write, with every record the writer had written', async () => {
    const child = await bundleChild(join(import.meta.dirname, 'kill-child.ts'), join(dir, 'kill-child.mjs'))
    for (const after of [3, 9]) {
      const path = join(dir, `killed-${after}.ftrec`)
      const p = spawn(process.execPath, [child, path], { stdio: ['ignore', 'pipe', 'inherit'] })
      const exited = new Promise((r) => p.once('exit', r))
      const lastWritten = await new Promise<number>((resolve, reject) => {
        let lines = 0
        let buf = ''
        p.stdout.on('data', (d: Buffer) => {
          buf += d.toString()
          let nl
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl)
            buf = buf.slice(nl + 1)
            const n = Number(/^written (\d+)$/.exec(line)?.[1])
            if (++lines >= after) {
              p.kill('SIGKILL')
              resolve(n)
            }
          }
        })
        p.on('exit', (code, sig) => (sig === 'SIGKILL' ? undefined : reject(new Error(`child exited ${code} ${sig} before it was killed`))))
      })
      await exited
      const rec = Recording.open(path)
      expect(rec.closed).toBe(false)
      expect(rec.records).toBeGreaterThanOrEqual(lastWritten)
      expect(rec.problems.every((x) => x.kind === 'truncated')).toBe(true)
      expect([...rec.events()].length).toBe(rec.records)
      expect(rec.marks[0]?.kind).toBe('start')
      expect(rec.stateAt(rec.t1).n).toBe(rec.records)
      rec.close()
    }
  })
})
