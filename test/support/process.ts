import { existsSync, readFileSync } from 'node:fs'

/** Is `pid` a running process? A killed child nobody reaped yet (a zombie) is not. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return existsSync(`/proc/${pid}`) ? !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ') : true
  } catch {
    return false
  }
}
