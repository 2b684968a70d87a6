// One error type for everything the SSH layer reports, with a `kind` the UI can act on
// (offer "accept key", "enter password", "check the host is on") and a message that says
// what went wrong, where, and what to do next.
import type { HostKeyVerdict } from './known-hosts.js'

export type SshErrorKind =
  | 'unreachable'
  | 'refused'
  | 'timeout'
  | 'dns'
  | 'auth'
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'host-key-revoked'
  | 'closed'
  | 'protocol'
  | 'remote'
  | 'disk-full'
  | 'bad-input'

export class SshError extends Error {
  constructor(
    readonly kind: SshErrorKind,
    /** user@host:port (or just host:port before the user is known) */
    readonly target: string,
    message: string,
    readonly extra: { verdict?: HostKeyVerdict; methodsTried?: string[]; cause?: unknown } = {}
  ) {
    super(message)
    this.name = 'SshError'
  }
}

interface Ssh2Error extends Error {
  level?: string
  code?: string
}

/** Maps ssh2's and the socket's errors to a precise SshError. */
export function mapConnectError(err: unknown, target: string, timeoutMs: number): SshError {
  if (err instanceof SshError) return err
  const e = err as Ssh2Error
  const code = e?.code
  const msg = e?.message ?? String(err)
  switch (code) {
    case 'ECONNREFUSED':
      return new SshError('refused', target, `connection refused by ${target}: no SSH server is listening there (is sshd running, is the port right?)`, {
        cause: err
      })
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
      return new SshError('unreachable', target, `host unreachable: ${target} (${code}); is the host powered on and on this network?`, { cause: err })
    case 'ETIMEDOUT':
      return new SshError('timeout', target, `connection to ${target} timed out (${code}); the host may be down or a firewall drops the traffic`, {
        cause: err
      })
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new SshError('dns', target, `cannot resolve the host name of ${target} (${code})`, { cause: err })
    case 'ECONNRESET':
    case 'EPIPE':
      return new SshError('closed', target, `connection to ${target} was reset (${code}) before the SSH session was set up`, { cause: err })
  }
  if (e?.level === 'client-timeout') {
    return new SshError('timeout', target, `no SSH handshake from ${target} within ${timeoutMs} ms; the host may be down or overloaded`, { cause: err })
  }
  if (e?.level === 'client-dns') return new SshError('dns', target, `cannot resolve the host name of ${target}: ${msg}`, { cause: err })
  return new SshError('protocol', target, `SSH connection to ${target} failed: ${msg}`, { cause: err })
}
