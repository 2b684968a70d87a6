// The dead-man deadline, enforced on the target host itself: a detached shell (its own
// session through setsid, stdio on /dev/null, so it outlives the exec session that armed
// it, an SSH disconnect and the console) that runs the fault's heal script at the
// deadline. It also leaves early, doing nothing, once it has seen the fault and the fault
// is gone (healed by the console, or by an emergency stop), so no stale dead-man lingers.
//
// The process is found again by its $0, "ftlab-deadman-<id>", the last word of its
// command line; no pid file, so nothing on a shared /run (namespace testbeds) gets mixed up.

/** Longest deadline accepted: a day. A fault meant to last longer is a configuration. */
export const MAX_DEADLINE_MS = 24 * 3_600_000

export function deadmanName(id: string): string {
  return `ftlab-deadman-${id}`
}

export function deadlineSeconds(deadlineMs: number): number {
  if (typeof deadlineMs !== 'number' || !Number.isFinite(deadlineMs) || deadlineMs < 1000 || deadlineMs > MAX_DEADLINE_MS) {
    throw new Error(`deadlineMs must be from 1000 (1 s) to ${MAX_DEADLINE_MS} (24 h), got ${String(deadlineMs)}`)
  }
  return Math.ceil(deadlineMs / 1000)
}

/**
 * Shell lines that arm the dead-man. `exists` is a command that succeeds while the fault is
 * in place; `heal` undoes it and must be idempotent. Both run inside the dead-man, in the
 * same network namespace as the script that arms it.
 */
export function armDeadmanScript(id: string, seconds: number, exists: string, heal: string): string {
  const body = [
    `end=$(( $(date +%s) + ${seconds} )); seen=0`,
    `while [ "$(date +%s)" -lt "$end" ]; do`,
    `  if ${exists}; then seen=1; elif [ "$seen" = 1 ]; then exit 0; fi`,
    `  sleep 1`,
    `done`,
    heal,
    `exit 0`
  ].join('\n')
  return `setsid sh -c ${shq1(body)} ${deadmanName(id)} </dev/null >/dev/null 2>&1 &`
}

/**
 * The pids of the dead-man of fault `id`, found by one grep over every process's command line
 * (-z: NUL-separated arguments, -x: one whole argument). The pattern brackets its last
 * character so the grep's own arguments never match it. The hosts of a namespace testbed
 * share one pid namespace: a loop with a `tr` per process forked hundreds of times, and a
 * heal over SSH took 10 s of it on a busy machine.
 */
function deadmanPidsScript(id: string): string {
  const name = deadmanName(id)
  const pattern = `${name.slice(0, -1)}[${name.slice(-1)}]`
  return `{ grep -lxz -e ${shq1(pattern)} /proc/[0-9]*/cmdline 2>/dev/null | sed -e 's|^/proc/||' -e 's|/cmdline$||'; }`
}

/** Shell lines that stop the dead-man of fault `id` (and its sleep), if it is still there. */
export function cancelDeadmanScript(id: string): string {
  return [
    `for p in $(${deadmanPidsScript(id)}); do`,
    `  [ "$p" = "$$" ] && continue`,
    `  kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null`,
    `done`
  ].join('\n')
}

/** Shell lines that print "armed" if the dead-man of fault `id` is running. */
export function deadmanAliveScript(id: string): string {
  return `[ -n "$(${deadmanPidsScript(id)})" ] && echo armed; true`
}

function shq1(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}
