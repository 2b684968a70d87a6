// The agent's log file. After the ready line the agent writes nothing to stdout or stderr
// (the console may have gone, and a write to a closed pipe must not kill the agent), so
// this file is where an operator looks. Never log secrets: no keys, no tokens.
import { closeSync, openSync, renameSync, statSync, writeSync } from 'node:fs'

export interface Logger {
  info(msg: string, data?: Record<string, unknown>): void
  warn(msg: string, data?: Record<string, unknown>): void
  error(msg: string, data?: Record<string, unknown>): void
}

export const MAX_LOG_BYTES = 16 * 1024 * 1024

/** Appends JSON lines synchronously (a crash loses nothing already logged); keeps one old file. */
export class FileLogger implements Logger {
  private fd: number
  private size: number

  constructor(private readonly path: string) {
    this.fd = openSync(path, 'a', 0o600)
    this.size = statSync(path).size
  }

  info(msg: string, data?: Record<string, unknown>): void {
    this.write('info', msg, data)
  }

  warn(msg: string, data?: Record<string, unknown>): void {
    this.write('warn', msg, data)
  }

  error(msg: string, data?: Record<string, unknown>): void {
    this.write('error', msg, data)
  }

  close(): void {
    if (this.fd < 0) return
    closeSync(this.fd)
    this.fd = -1
  }

  private write(level: string, msg: string, data?: Record<string, unknown>): void {
    if (this.fd < 0) return
    let line: string
    try {
      line = JSON.stringify({ ts: new Date().toISOString(), level, msg, ...(data ? { data } : {}) }) + '\n'
    } catch {
      line = JSON.stringify({ ts: new Date().toISOString(), level, msg, data: '(unserialisable)' }) + '\n'
    }
    try {
      if (this.size > MAX_LOG_BYTES) this.rotate()
      this.size += writeSync(this.fd, line)
    } catch {
      // a full disk must not take the agent down with it
    }
  }

  private rotate(): void {
    closeSync(this.fd)
    renameSync(this.path, `${this.path}.1`)
    this.fd = openSync(this.path, 'a', 0o600)
    this.size = 0
  }
}

export const NULL_LOGGER: Logger = { info() {}, warn() {}, error() {} }
