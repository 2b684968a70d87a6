// The desktop app's import and export through native file dialogs: everything but the dialog
// itself (main/electron/file-dialogs.ts gets a stand-in for Electron's `dialog`).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ApiError } from '../../../main/api/contract.js'
import { dispatch } from '../../../main/api/dispatch.js'
import { ConsoleBackend } from '../../../main/console/console-backend.js'
import { recordingDialogs } from '../../../main/electron/file-dialogs.js'
import { SessionLibrary } from '../../../main/record/library.js'
import type { RecordingDialogs } from '../../../main/record/playback.js'
import { syntheticSession } from '../../../main/record/synthetic.js'
import { RecordingWriter } from '../../../main/record/writer.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), 'ftlab-dialogs-'))
  dirs.push(d)
  return d
}
const T0 = Date.UTC(2026, 11, 1, 12)

/** A closed synthetic recording of a few seconds at `path`. */
function recording(path: string): void {
  const w = RecordingWriter.create(
    path,
    {
      ftlabVersion: 'test',
      startedAt: T0,
      lab: { kind: 'simulated', name: 'sim', guest: 'kv', mode: 'rsm', timing: null, sim: null, hosts: [] },
      console: { host: 'test', pid: 1 }
    },
    { fsync: 'never' }
  )
  for (const r of syntheticSession(T0, 3, 50)) w.append(r)
  w.close()
}

/** A console whose dialogs answer with the queued paths (null: cancelled), recording what they were asked. */
function consoleWith(answers: (string | null)[]) {
  const home = temp()
  const asked: string[] = []
  const dialogs: RecordingDialogs = {
    open: async () => (asked.push('open'), answers.shift() ?? null),
    save: async (name) => (asked.push(`save ${name}`), answers.shift() ?? null)
  }
  const b = new ConsoleBackend({ home, reattach: false, record: false, recordingDialogs: dialogs })
  return { b, home, asked, lib: new SessionLibrary(home) }
}

describe('recording import and export through file dialogs', () => {
  it('imports the file the open dialog chose into the library', async () => {
    const src = join(temp(), 'from-elsewhere.ftrec')
    recording(src)
    const { b, asked } = consoleWith([src])
    const info = (await dispatch(b, 'recording.importDialog', {})) as { name: string }
    expect(asked).toEqual(['open'])
    expect(info.name).toBe('from-elsewhere')
    const list = (await dispatch(b, 'recording.list', {})) as { recordings: { name: string }[] }
    expect(list.recordings.map((r) => r.name)).toContain('from-elsewhere')
    await b.close()
  })

  it('a cancelled dialog imports or exports nothing and answers null', async () => {
    const { b, lib } = consoleWith([null, null])
    mkdirSync(lib.dir, { recursive: true })
    recording(join(lib.dir, 'kept.ftrec'))
    expect(await dispatch(b, 'recording.importDialog', {})).toBeNull()
    expect(await dispatch(b, 'recording.exportDialog', { name: 'kept' })).toBeNull()
    const list = (await dispatch(b, 'recording.list', {})) as { recordings: { name: string }[] }
    expect(list.recordings.map((r) => r.name)).toEqual(['kept'])
    await b.close()
  })

  it('exports a copy where the save dialog said, replacing a file the dialog confirmed', async () => {
    const out = join(temp(), 'copy.ftrec')
    writeFileSync(out, 'old contents')
    const { b, lib, asked } = consoleWith([out])
    mkdirSync(lib.dir, { recursive: true })
    recording(join(lib.dir, 'run-1.ftrec'))
    expect(await dispatch(b, 'recording.exportDialog', { name: 'run-1' })).toEqual({ path: out })
    expect(asked).toEqual(['save run-1'])
    expect(readFileSync(out).equals(readFileSync(join(lib.dir, 'run-1.ftrec')))).toBe(true)
    await b.close()
  })

  it('an unknown recording is refused before any dialog opens', async () => {
    const { b, asked } = consoleWith(['/tmp/never'])
    await expect(dispatch(b, 'recording.exportDialog', { name: 'nothing-here' })).rejects.toThrow(/no recording 'nothing-here'/)
    expect(asked).toEqual([])
    await b.close()
  })

  it('browser mode has no dialogs: refused as unavailable, saying what to do instead', async () => {
    const b = new ConsoleBackend({ home: temp(), reattach: false, record: false })
    const err = await dispatch(b, 'recording.importDialog', {}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect((err as ApiError).code).toBe('unavailable')
    expect((err as ApiError).message).toMatch(/desktop app.*upload/)
    await b.close()
  })
})

describe("the Electron dialogs' wrapper", () => {
  it('asks for .ftrec files, suggests <name>.ftrec in the downloads folder, and maps a cancel to null', async () => {
    const calls: unknown[] = []
    const fake = {
      showOpenDialog: async (...a: unknown[]) => (calls.push(a.at(-1)), { canceled: false, filePaths: ['/x/a.ftrec'] }),
      showSaveDialog: async (...a: unknown[]) => (calls.push(a.at(-1)), { canceled: true, filePath: '' })
    }
    const d = recordingDialogs(
      fake as never,
      () => null,
      () => '/home/op/Downloads'
    )
    expect(await d.open()).toBe('/x/a.ftrec')
    expect(await d.save('run-1')).toBeNull()
    expect(calls[0]).toMatchObject({ filters: [{ extensions: ['ftrec'] }], properties: ['openFile'] })
    expect(calls[1]).toMatchObject({ defaultPath: '/home/op/Downloads/run-1.ftrec', filters: [{ extensions: ['ftrec'] }] })
  })
})
