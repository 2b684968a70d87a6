// SSH terminals: one PTY shell per tab on a lab host (main/ssh/shell.ts over the host's SSH
// connection). Output goes out as `terminal` events with stream = the terminal's id; state
// changes as `term` events. Each terminal keeps its last 256 KiB of output, so a reconnect
// continues the same screen and a reloaded page redraws it (term.list).
import { TextDecoder } from 'node:util'
import { ApiError, TERM_SCROLLBACK_BYTES, type TermInfo, type TermListEntry } from '../api/contract.js'
import type { UnnumberedEvent } from '../api/event-log.js'

/** A shell as the terminals need it: PtyShell, or a fake in tests. */
export interface ShellLike {
  write(data: string): void
  resize(cols: number, rows: number): void
  close(): void
  on(event: 'data', listener: (bytes: Uint8Array) => void): unknown
  on(event: 'exit', listener: (info: { code: number | null; signal: string | null }) => void): unknown
}

/** Opens a shell on one of the current lab's hosts. */
export interface ShellOpener {
  /** e.g. "b · h2 (10.87.0.12)"; throws when the lab has no such host */
  title(host: string): string
  open(host: string, size: { cols: number; rows: number }): Promise<ShellLike>
}

interface Term {
  info: TermInfo
  shell: ShellLike | null
  size: { cols: number; rows: number }
  /** output kept for a reconnect or a reloaded page (UTF-8 text, the tail) */
  scrollback: string
  /** which shell is current: output of an older one (closing) is dropped */
  generation: number
}

const MAX_TERMS = 16

export class Terminals {
  private readonly terms = new Map<string, Term>()
  private next = 1
  private readonly decoder = new Map<string, TextDecoder>()

  constructor(
    private readonly sink: { publish(ev: UnnumberedEvent): void },
    private opener: ShellOpener | null = null
  ) {}

  /** The lab changed: its terminals close (their hosts may be gone), new ones use the new lab. */
  setOpener(opener: ShellOpener | null): void {
    this.opener = opener
    for (const id of [...this.terms.keys()]) this.close(id)
  }

  list(): { terms: TermListEntry[] } {
    return { terms: [...this.terms.values()].map((t) => ({ ...t.info, scrollback: t.scrollback })) }
  }

  async open(host: string): Promise<TermInfo> {
    const opener = this.opener
    if (!opener) throw new ApiError('conflict', 'term.open: terminals need a remote lab; this lab runs on this machine (use your own terminal)')
    if (this.terms.size >= MAX_TERMS) throw new ApiError('conflict', `term.open: ${MAX_TERMS} terminals are open already; close one first`)
    let title: string
    try {
      title = opener.title(host)
    } catch (err) {
      throw new ApiError('bad-request', `term.open: ${(err as Error).message}`)
    }
    const id = `t${this.next++}`
    const t: Term = { info: { id, host, title, state: 'connecting', error: null }, shell: null, size: { cols: 80, rows: 24 }, scrollback: '', generation: 0 }
    this.terms.set(id, t)
    this.decoder.set(id, new TextDecoder())
    await this.connect(t)
    return { ...t.info }
  }

  input(id: string, data: string): { ok: true } {
    const t = this.need('term.input', id)
    if (!t.shell || t.info.state !== 'open')
      throw new ApiError('conflict', `term.input: terminal ${id} is ${t.info.state}${t.info.error ? ` (${t.info.error})` : ''}; reconnect it first`)
    t.shell.write(data)
    return { ok: true }
  }

  resize(id: string, cols: number, rows: number): { ok: true } {
    const t = this.need('term.resize', id)
    t.size = { cols, rows }
    try {
      t.shell?.resize(cols, rows)
    } catch {
      // a shell closing under the resize: the size is used on reconnect
    }
    return { ok: true }
  }

  async reconnect(id: string): Promise<TermInfo> {
    const t = this.need('term.reconnect', id)
    this.drop(t)
    this.output(t, `\r\n\x1b[2m── reconnecting to ${t.info.title} ──\x1b[0m\r\n`)
    await this.connect(t)
    return { ...t.info }
  }

  close(id: string): { ok: true } {
    const t = this.need('term.close', id)
    this.drop(t)
    this.terms.delete(id)
    this.decoder.delete(id)
    this.setState(t, 'closed', null)
    return { ok: true }
  }

  closeAll(): void {
    for (const id of [...this.terms.keys()]) this.close(id)
  }

  private async connect(t: Term): Promise<void> {
    const opener = this.opener
    const gen = ++t.generation
    this.setState(t, 'connecting', null)
    if (!opener) {
      this.setState(t, 'closed', 'the lab this terminal belonged to is no longer open')
      return
    }
    let shell: ShellLike
    try {
      shell = await opener.open(t.info.host, t.size)
    } catch (err) {
      if (gen === t.generation) this.setState(t, 'closed', `cannot open a shell on ${t.info.title}: ${(err as Error).message}`)
      return
    }
    if (gen !== t.generation || !this.terms.has(t.info.id)) {
      shell.close() // closed or reconnected while connecting
      return
    }
    t.shell = shell
    shell.on('data', (bytes) => {
      if (gen === t.generation) this.output(t, this.decoder.get(t.info.id)?.decode(bytes, { stream: true }) ?? '')
    })
    shell.on('exit', (info) => {
      if (gen !== t.generation) return
      t.shell = null
      this.setState(t, 'closed', info.code === 0 || info.code === null ? null : `the shell exited with ${info.signal ?? info.code}`)
    })
    this.setState(t, 'open', null)
  }

  private drop(t: Term): void {
    t.generation++
    const s = t.shell
    t.shell = null
    s?.close()
  }

  private output(t: Term, text: string): void {
    if (!text) return
    t.scrollback += text
    if (t.scrollback.length > TERM_SCROLLBACK_BYTES) t.scrollback = t.scrollback.slice(t.scrollback.length - TERM_SCROLLBACK_BYTES)
    this.sink.publish({ ts: Date.now(), topic: 'terminal', stream: t.info.id, data: text })
  }

  private setState(t: Term, state: TermInfo['state'], error: string | null): void {
    t.info = { ...t.info, state, error }
    this.sink.publish({ ts: Date.now(), topic: 'term', term: { ...t.info } })
  }

  private need(method: string, id: string): Term {
    const t = this.terms.get(id)
    if (!t) throw new ApiError('conflict', `${method}: no terminal ${JSON.stringify(id)} (open: ${[...this.terms.keys()].join(', ') || 'none'})`)
    return t
  }
}
