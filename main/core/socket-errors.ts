// Socket error codes in the words an operator reads in a status line.
const WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed by the other side',
  ENOTFOUND: 'host name not found',
  EADDRNOTAVAIL: 'address not available'
}

export function describeSocketError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string' && WORDS[code]) return WORDS[code]
  if (err instanceof Error) return err.message
  return String(err)
}
