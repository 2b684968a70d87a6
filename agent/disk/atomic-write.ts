// Atomic file replacement, for metadata that a crash must never leave half-written
// (the disk server's generation, the agent's agent.json).
import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

/** Replace `path` so that a crash leaves either the old or the new content, never a mix. */
export function writeFileAtomic(path: string, content: string, mode = 0o600): void {
  const tmp = `${path}.tmp-${process.pid}`
  const fd = openSync(tmp, 'w', mode)
  try {
    writeFileSync(fd, content)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  // the rename itself must reach the disk, or a crash could bring the old file back
  const dirFd = openSync(dirname(path), 'r')
  try {
    fsyncSync(dirFd)
  } catch {
    // some file systems refuse fsync on a directory; the rename is still atomic
  } finally {
    closeSync(dirFd)
  }
}
