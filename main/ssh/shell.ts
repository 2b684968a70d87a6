// An interactive terminal on a host: a PTY shell over the host's SSH connection whose
// output is raw bytes (the UI's xterm decodes them; splitting UTF-8 here would garble it).
import { EventEmitter } from 'node:events'
import type { ClientChannel } from 'ssh2'
import type { SshConnection } from './connection.js'
import { SshError } from './errors.js'

export interface ShellOptions {
  cols?: number
  rows?: number
  term?: string
}

export interface PtyShellEvents {
  data: [bytes: Uint8Array]
  exit: [info: { code: number | null; signal: string | null }]
}

function checkSize(cols: unknown, rows: unknown, where: string): void {
  const ok = (n: unknown): boolean => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 10_000
  if (!ok(cols) || !ok(rows)) throw new SshError('bad-input', where, `terminal size must be whole numbers from 1 to 10000, got ${String(cols)}x${String(rows)}`)
}

export class PtyShell extends EventEmitter<PtyShellEvents> {
  private exited = false

  private constructor(
    private readonly channel: ClientChannel,
    readonly host: string
  ) {
    super()
    channel.on('data', (d: Buffer) => this.emit('data', new Uint8Array(d.buffer, d.byteOffset, d.byteLength)))
    channel.stderr.on('data', (d: Buffer) => this.emit('data', new Uint8Array(d.buffer, d.byteOffset, d.byteLength)))
    let code: number | null = null
    let signal: string | null = null
    channel.on('exit', (c: number | null, sig?: string) => {
      code = c
      signal = sig ?? null
    })
    channel.on('close', () => {
      if (this.exited) return
      this.exited = true
      this.emit('exit', { code, signal })
    })
    channel.on('error', () => {
      // surfaced as 'exit': a broken terminal ends, it must not crash the console
    })
  }

  static open(conn: SshConnection, opts: ShellOptions = {}): Promise<PtyShell> {
    const cols = opts.cols ?? 80
    const rows = opts.rows ?? 24
    checkSize(cols, rows, conn.name)
    return new Promise((resolve, reject) => {
      if (conn.closed) return reject(new SshError('closed', conn.name, `connection to ${conn.name} is closed`))
      conn.client.shell({ term: opts.term ?? 'xterm-256color', cols, rows }, (err, ch) => {
        if (err) return reject(new SshError('remote', conn.name, `cannot open a shell on ${conn.name}: ${err.message}`))
        resolve(new PtyShell(ch, conn.name))
      })
    })
  }

  get closed(): boolean {
    return this.exited
  }

  write(data: string | Uint8Array): void {
    if (this.exited) return
    this.channel.write(typeof data === 'string' ? data : Buffer.from(data))
  }

  resize(cols: number, rows: number): void {
    checkSize(cols, rows, this.host)
    if (!this.exited) this.channel.setWindow(rows, cols, 0, 0)
  }

  close(): void {
    if (!this.exited) this.channel.close()
  }
}
