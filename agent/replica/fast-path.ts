// Drill experiment 'read-fast-path': the tempting "optimisation" of answering reads on the
// primary straight from the guest's current state, without logging them and without the
// Output Rule. It is wrong on purpose: a primary cut off from its backup and the disk server
// does not know the backup went live, and keeps answering reads with values the new primary
// has since overwritten (a stale read the linearizability checker must catch).
//
// It lives at the edge, not in the core (which stays pure and never sees these reads), and
// asks the VMM for a side-effect-free query (Vmm.query), so the replicated state never
// changes: a read answered here is no input, no entry, and the backup never hears of it.
// Only drills turn it on (StartRole.readFastPath); with it off the edge never builds one.
//
// No imports from `node:`, like edge.ts: Buffer is Node's global.
import type { ConnId, Vmm } from '../vmm/types.js'

/** Commands the fast path treats as reads, per guest. The VMM's query still refuses any that would change state. */
export const FAST_READS: Readonly<Record<string, readonly string[]>> = {
  kv: ['GET', 'MGET', 'EXISTS', 'STRLEN', 'GETRANGE', 'HGET', 'HMGET', 'HEXISTS', 'HLEN', 'HSTRLEN'],
  bank: ['BALANCE', 'TOTAL', 'ACCOUNTS']
}

/** What the fast path keeps per client connection: the bytes the guest holds of a command not yet complete. */
export interface FastPathConn {
  /** bytes handed to the guest after the last complete command (the guest buffers them too) */
  pending: Buffer
  /** the stream could not be framed (bad RESP): the guest's buffer is unknown, so this connection never takes the fast path again */
  lost: boolean
}

export const newFastPathConn = (): FastPathConn => ({ pending: Buffer.alloc(0), lost: false })

type Framed = { commands: string[][]; end: number } | { bad: true }

/**
 * Split `buf` into complete commands as the guests' RESP reader does: arrays of bulk strings
 * (`*N\r\n$len\r\n…\r\n`), or inline commands ending at `\n` (their words matter only for the
 * command name). `end` is where the incomplete rest begins.
 */
export function frameCommands(buf: Buffer): Framed {
  const commands: string[][] = []
  let pos = 0
  const line = (from: number): { text: string; next: number } | null => {
    const nl = buf.indexOf(0x0a, from)
    if (nl < 0) return null
    return { text: buf.subarray(from, nl).toString('latin1').replace(/\r$/, ''), next: nl + 1 }
  }
  while (pos < buf.length) {
    if (buf[pos] !== 0x2a) {
      const l = line(pos)
      if (l === null) break
      const words = l.text
        .trim()
        .split(/\s+/)
        .filter((w) => w.length > 0)
      if (words.length) commands.push(words)
      pos = l.next
      continue
    }
    const head = line(pos)
    if (head === null) break
    const n = Number(head.text.slice(1))
    if (!Number.isInteger(n) || n < 0 || n > 1024 * 1024) return { bad: true }
    let at = head.next
    const args: string[] = []
    let complete = true
    for (let i = 0; i < n; i++) {
      const h = line(at)
      if (h === null) {
        complete = false
        break
      }
      const len = Number(h.text.slice(1))
      if (h.text[0] !== '$' || !Number.isInteger(len) || len < 0) return { bad: true }
      if (h.next + len + 2 > buf.length) {
        complete = false
        break
      }
      args.push(buf.subarray(h.next, h.next + len).toString('latin1'))
      at = h.next + len + 2
    }
    if (!complete) break
    if (n > 0) commands.push(args)
    pos = at
  }
  return { commands, end: pos }
}

/** The command a client's request runs: FT Lab's FTREQ <client> <seq> <cmd> … wraps it. */
function commandName(args: string[]): string {
  const name = (args[0] ?? '').toUpperCase()
  return name === 'FTREQ' ? (args[3] ?? '').toUpperCase() : name
}

export class ReadFastPath {
  private readonly reads: ReadonlySet<string>
  /** reads answered here, for the replica's status */
  answered = 0

  constructor(
    private readonly vmm: Vmm,
    guest: string
  ) {
    this.reads = new Set(FAST_READS[guest] ?? [])
  }

  /**
   * Bytes a client sent on `conn`. Returns the reply when they are exactly one complete read
   * command and the guest answers it without changing anything; otherwise null, and the caller
   * logs the bytes as an input as usual (this keeps track of what the guest then buffers).
   * `mayAnswer` false: only keep track (the replica is not serving, or has inputs queued).
   */
  offer(state: FastPathConn, conn: ConnId, bytes: Buffer, mayAnswer = true): Uint8Array | null {
    if (state.lost) return null
    const buf = state.pending.length ? Buffer.concat([state.pending, bytes]) : bytes
    const framed = frameCommands(buf)
    if ('bad' in framed) {
      state.lost = true
      state.pending = Buffer.alloc(0)
      return null
    }
    const one = state.pending.length === 0 && framed.commands.length === 1 && framed.end === buf.length
    if (one && mayAnswer && this.reads.has(commandName(framed.commands[0])) && this.vmm.query) {
      let reply: Uint8Array | null
      try {
        reply = this.vmm.query(conn, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
      } catch {
        reply = null
      }
      // a read the guest queued (MULTI) rather than answered must reach the guest as an input
      if (reply !== null && !Buffer.from(reply).toString('latin1').endsWith('+QUEUED\r\n')) {
        this.answered++
        return reply
      }
    }
    state.pending = Buffer.from(buf.subarray(framed.end))
    return null
  }
}
