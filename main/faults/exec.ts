// The one way fault drivers touch a host: run a POSIX sh script there, optionally with
// text on stdin, and get its exit code and output. Real hosts get an SSH implementation
// (see sshHostExec); the testbed and the tests use a network namespace or this machine.
// Scripts are passed as one `sh -c` argument; secrets never go into them, only into stdin.
import { spawn } from 'node:child_process'

export interface ExecOptions {
  /** written to the script's stdin, then stdin is closed */
  stdin?: string
  /** the script is killed (SIGKILL, whole process group) after this long; default 30 s */
  timeoutMs?: number
}

export interface ExecOutcome {
  /** exit code; 124 after a timeout (as timeout(1) does), 128+n after signal n */
  code: number
  stdout: string
  stderr: string
}

export interface HostExec {
  run(cmd: string, opts?: ExecOptions): Promise<ExecOutcome>
}

export const DEFAULT_EXEC_TIMEOUT_MS = 30_000

/** Quote one word for POSIX sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/** Run scripts on this machine. */
export function localExec(): HostExec {
  return { run: (cmd, opts) => spawnScript([], cmd, opts) }
}

const NETNS_NAME = /^[A-Za-z0-9_.-]{1,64}$/

/** Run scripts inside network namespace `nsName` (root only): `ip netns exec <ns> sh -c`. */
export function localNetnsExec(nsName: string): HostExec {
  if (!NETNS_NAME.test(nsName)) throw new Error(`localNetnsExec: "${nsName}" is not a network namespace name (letters, digits, '_', '.', '-'; at most 64)`)
  return { run: (cmd, opts) => spawnScript(['ip', 'netns', 'exec', nsName], cmd, opts) }
}

/** What an SSH connection offers (main/ssh's SshConnection has this shape). */
export interface SshLikeConnection {
  exec(
    command: string,
    opts?: { stdin?: string | Buffer; timeoutMs?: number }
  ): Promise<{ code: number | null; signal: string | null; stdout: Buffer; stderr: Buffer }>
}

/** Adapter: run scripts on an SSH-connected host. The remote login shell may not be sh, so wrap. */
export function sshHostExec(conn: SshLikeConnection): HostExec {
  return {
    async run(cmd, opts = {}) {
      const r = await conn.exec(`sh -c ${shq(cmd)}`, { stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS })
      const code = r.code ?? (r.signal ? 128 + (SIGNALS[r.signal] ?? 0) : 255)
      return { code, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') }
    }
  }
}

const SIGNALS: Record<string, number> = { HUP: 1, INT: 2, KILL: 9, TERM: 15 }

function spawnScript(prefix: string[], cmd: string, opts: ExecOptions = {}): Promise<ExecOutcome> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS
  const argv = [...prefix, 'sh', '-c', cmd]
  return new Promise((resolve, reject) => {
    // detached: the script leads its own process group, so a timeout kills its children too
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL')
      } catch {
        /* already gone */
      }
    }, timeoutMs)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(new Error(`could not start ${argv[0]}: ${e.message}`))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const stderr = Buffer.concat(err).toString('utf8')
      resolve({
        code: timedOut ? 124 : (code ?? 128 + (signal ? (SIGNALS[signal.replace(/^SIG/, '')] ?? 0) : 0)),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: timedOut ? `${stderr}timed out after ${timeoutMs} ms\n` : stderr
      })
    })
    // a script that does not read stdin may exit before we finish writing: not an error
    child.stdin.on('error', () => {})
    child.stdin.end(opts.stdin ?? '')
  })
}

/** Run a script and fail with a message naming `what` and the host's own words if it exits non-zero. */
export async function runChecked(exec: HostExec, what: string, cmd: string, opts?: ExecOptions): Promise<ExecOutcome> {
  const r = await exec.run(cmd, opts)
  if (r.code !== 0) {
    const words = (r.stderr.trim() || r.stdout.trim() || '(no output)').split('\n').slice(-5).join(' | ')
    throw new Error(`${what} failed (exit ${r.code}): ${words}`)
  }
  return r
}
