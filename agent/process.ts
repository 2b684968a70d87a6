// Is a process still running? For the agent's pid file (one agent per data directory) and the
// console's lab lock (a holder that died frees it). Node's stdlib only: the agent runs on bare hosts.
import { readFileSync } from 'node:fs'

/** Is `pid` a running process on this machine? One that exited but is not reaped yet (a zombie) is not. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    // EPERM: it exists, owned by someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  // A killed process whose parent never reaped it (an init that does not reap orphans, as in
  // some containers) still answers signal 0 as a zombie; it holds no port, file or lock.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true // no /proc (macOS): trust the signal
  }
}
