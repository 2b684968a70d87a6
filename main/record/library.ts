// The session library: recordings in <FTLAB_HOME>/recordings (~/.ftlab/recordings), each
// named by its lab and start time ("simulated-2026-12-01T14-35-02.ftrec"). List, rename,
// delete, import (copy a file in after checking it opens) and export (copy one out).
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, statSync, unlinkSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { ftlabHome } from '../lab/lab-state.js'
import { EXT, type RecordedMark, type RecordingHeader } from './format.js'
import { Recording, RecordingError, type RecordingProblem } from './reader.js'

export interface SessionEntry {
  /** the file name without .ftrec: what the library commands take */
  name: string
  path: string
  bytes: number
  /** null when the file does not open (then `error` says why) */
  header: RecordingHeader | null
  duration: number
  records: number
  closed: boolean
  marks: RecordedMark[]
  problems: RecordingProblem[]
  error: string | null
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$/

export class SessionLibrary {
  readonly dir: string

  constructor(home: string = ftlabHome()) {
    this.dir = join(home, 'recordings')
  }

  /** A fresh file name for a recording of `lab` started at `startedAt`. */
  newPath(lab: string, startedAt: number): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    const stamp = new Date(startedAt)
      .toISOString()
      .replace(/\.\d+Z$/, '')
      .replace(/:/g, '-')
    let name = `${lab}-${stamp}`
    for (let i = 2; existsSync(join(this.dir, name + EXT)); i++) name = `${lab}-${stamp}-${i}`
    return join(this.dir, name + EXT)
  }

  /** Newest first. A file that does not open is listed with the reason. */
  list(): SessionEntry[] {
    let files: string[]
    try {
      files = readdirSync(this.dir).filter((f) => f.endsWith(EXT))
    } catch {
      return [] // nothing recorded yet
    }
    return files.map((f) => this.describe(join(this.dir, f))).sort((x, y) => (y.header?.startedAt ?? 0) - (x.header?.startedAt ?? 0))
  }

  show(name: string): SessionEntry {
    return this.describe(this.pathOf(name))
  }

  rename(from: string, to: string): string {
    const src = this.pathOf(from)
    checkName(to)
    const dst = join(this.dir, stripExt(to) + EXT)
    if (existsSync(dst)) throw new Error(`cannot rename '${from}' to '${to}': ${dst} exists already (delete it first or choose another name)`)
    renameSync(src, dst)
    return dst
  }

  delete(name: string): string {
    const p = this.pathOf(name)
    unlinkSync(p)
    return p
  }

  /** Copies a recording into the library after checking every frame; damage is kept and reported, a file that is no recording is refused. */
  import(file: string, as?: string): SessionEntry {
    const src = resolve(file)
    if (!existsSync(src)) throw new Error(`cannot import ${src}: no such file`)
    const rec = openOrExplain(src, true)
    const problems = rec.problems
    const header = rec.header
    rec.close()
    const name = as ? stripExt(as) : stripExt(basename(src))
    checkName(name)
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    const dst = join(this.dir, name + EXT)
    if (existsSync(dst)) throw new Error(`cannot import ${src}: the library has '${name}' already (${dst}); import it under another name`)
    copyFileSync(src, dst)
    const e = this.describe(dst)
    return { ...e, header, problems }
  }

  export(name: string, to: string): string {
    const src = this.pathOf(name)
    let dst = resolve(to)
    if (existsSync(dst) && statSync(dst).isDirectory()) dst = join(dst, basename(src))
    if (existsSync(dst)) throw new Error(`cannot export '${name}' to ${dst}: the file exists (remove it or choose another path)`)
    copyFileSync(src, dst)
    return dst
  }

  pathOf(name: string): string {
    const p = join(this.dir, stripExt(name) + EXT)
    if (!NAME.test(stripExt(name)) || !existsSync(p)) {
      const known = this.list().map((e) => e.name)
      throw new Error(
        `no recording '${name}' in ${this.dir}${known.length ? ` (there are: ${known.slice(0, 8).join(', ')}${known.length > 8 ? ', …' : ''})` : ' (it is empty)'}`
      )
    }
    return p
  }

  private describe(path: string): SessionEntry {
    const name = stripExt(basename(path))
    const bytes = statSync(path).size
    try {
      const r = Recording.open(path)
      r.close()
      return sessionEntry(name, path, bytes, r)
    } catch (err) {
      return { name, path, bytes, header: null, duration: 0, records: 0, closed: false, marks: [], problems: [], error: (err as Error).message }
    }
  }
}

/** What the library and `ftlab sessions show` say of one recording that opened. */
export function sessionEntry(name: string, path: string, bytes: number, r: Recording): SessionEntry {
  return { name, path, bytes, header: r.header, duration: r.duration, records: r.records, closed: r.closed, marks: r.marks, problems: r.problems, error: null }
}

function openOrExplain(path: string, verify: boolean): Recording {
  try {
    return Recording.open(path, { verify })
  } catch (err) {
    if (err instanceof RecordingError) throw new Error(`cannot import ${err.message}`, { cause: err })
    throw err
  }
}

function stripExt(name: string): string {
  return name.endsWith(EXT) ? name.slice(0, -EXT.length) : name
}

function checkName(name: string): void {
  if (!NAME.test(stripExt(name)))
    throw new Error(`recording name ${JSON.stringify(name)}: use letters, digits, '.', '-' or '_' (at most 120), starting with a letter or digit`)
}
