// The POSIX shell snippets deploy runs on hosts. They are kept here, apart from the deploy
// flow, because they are what must work on any Linux host's /bin/sh (dash, busybox, bash).
// Every value spliced in goes through shq(); the agent's boot config never appears here:
// it travels on stdin only.

/** Single-quotes a string for sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/** Runs `script` under sh whatever the user's login shell is. */
export function sh(script: string): string {
  return `sh -c ${shq(script)}`
}

export const AGENT_DIR = '.ftlab'
export const AGENT_FILE = 'ftlab-agent.cjs'

/** The one command that prints a file's SHA-256 (hex first), whichever tool the host has. */
const SHA256 = '(sha256sum 2>/dev/null || shasum -a 256 2>/dev/null || openssl dgst -sha256 -r)'

/**
 * Prints what deploy needs to know before it uploads anything, in one round trip: OS,
 * machine, $HOME, node's version (or "none"), free KiB under ~/.ftlab (created here, as deploy
 * would: a host may mount a filesystem of its own there), then `key=value` lines: whether
 * gzip is there, the installed agent bundle's SHA-256, and, only where the host has no usable
 * Node of its own, `runtime=<dir> <sha256>` for every runtime FT Lab uploaded before: the
 * check before use, as a runtime that does not hash as the console's copy is uploaded again
 * rather than run. Hashing 119 MiB took a second and more on a busy host, so a runtime not
 * modified since its upload was verified (not newer than the stamp written then, same size)
 * is taken at the stamp's hash.
 */
export function detectScript(minNodeMajor: number): string {
  return sh(
    [
      `D="$HOME/${AGENT_DIR}"`,
      'mkdir -p "$D" 2>/dev/null',
      // starting Node is the slow part (a few hundred ms on a busy host): it runs beside the rest
      'vf="$D/.node-version.$$"',
      'if [ -w "$D" ]; then { node --version > "$vf" 2>/dev/null || : > "$vf"; } & vp=$!; else vp=""; fi',
      `free=$(df -Pk "$D" 2>/dev/null | awk 'NR==2 {print $4}')`,
      'command -v gzip >/dev/null 2>&1 && gz=yes || gz=no',
      `f="$D/agent/${AGENT_FILE}"; a=""; [ -f "$f" ] && a=$( ${SHA256} < "$f" | cut -c1-64)`,
      'if [ -n "$vp" ]; then wait $vp; v=$(cat "$vf" 2>/dev/null); rm -f "$vf"; else v=$(node --version 2>/dev/null); fi',
      '[ -n "$v" ] || v=none',
      `printf '%s\\n' "$(uname -s)" "$(uname -m)" "$HOME" "$v" "$free" "gzip=$gz"`,
      '[ -n "$a" ] && printf \'agent=%s\\n\' "$a"',
      `major=$(printf '%s' "$v" | sed -n 's/^v\\([0-9]*\\)\\..*/\\1/p')`,
      `if [ -z "$major" ] || [ "$major" -lt ${minNodeMajor} ]; then`,
      '  for n in "$D"/runtime/*/bin/node; do',
      '    [ -f "$n" ] || continue',
      // the stamp written when the upload was verified stands for the hash while the binary
      // is untouched since (same size, not newer than the stamp); otherwise it is hashed again
      '    h=""',
      '    if [ -f "$n.sha256" ] && [ -z "$(find "$n" -newer "$n.sha256" 2>/dev/null)" ]; then',
      '      read -r sum bytes < "$n.sha256" && [ "$bytes" = "$(wc -c < "$n" | tr -d " ")" ] && h=$sum',
      '    fi',
      `    [ -n "$h" ] || h=$( ${SHA256} < "$n" | cut -c1-64)`,
      `    printf 'runtime=%s %s\\n' "$(basename "$(dirname "$(dirname "$n")")")" "$h"`,
      '  done',
      'fi',
      'true'
    ].join('\n')
  )
}

/** Free KiB on the filesystem holding `dir` (created first). */
export function freeSpaceScript(dir: string): string {
  return sh(`mkdir -p ${shq(dir)} && df -Pk ${shq(dir)} | awk 'NR==2 {print $4}'`)
}

/**
 * Writes stdin to `dest` (the agent bundle) through a temp name: atomically, and only once what
 * arrived hashes as `sha256`.
 */
export function receiveFileScript(dest: string, sha256: string, mode: string): string {
  const tmp = `${dest}.partial`
  const dir = dest.slice(0, dest.lastIndexOf('/'))
  return sh(
    `mkdir -p ${shq(dir)} && cat > ${shq(tmp)} && h=$( ${SHA256} < ${shq(tmp)} | cut -c1-64) && ` +
      `{ [ "$h" = ${shq(sha256)} ] || { echo "arrived with sha256 $h, expected ${sha256}: the upload was corrupted" >&2; false; }; } && ` +
      `chmod ${mode} ${shq(tmp)} && mv -f ${shq(tmp)} ${shq(dest)} || { rc=$?; rm -f ${shq(tmp)}; exit $rc; }`
  )
}

/**
 * Reads the Node runtime on stdin and installs it only once it checks out: with `gz`, the
 * stream is the cache's gzip copy, hashed as it arrives (`expect.gzSha256`) while gzip
 * unpacks it through a fifo: the binary is then the one decompression of verified bytes (gzip
 * checks its own CRC too); without gzip it is the binary itself, hashed as written
 * (`expect.sha256`). Either way its size must be `expect.bytes`; then it is made executable,
 * moved into place, stamped with its hash (the stamp detectScript trusts while the binary is
 * untouched) and run (`--version`, printed). A corrupted or cut upload is removed and says so
 * on stderr. Hashing the 43 MiB that travel rather than the 119 MiB they unpack to, and no
 * second pass through a pipe, saved a third of the host's CPU for this step.
 */
export function receiveRuntimeScript(dest: string, expect: { sha256: string; gzSha256: string; bytes: number }, gz: boolean): string {
  const tmp = `${dest}.partial`
  const fifo = `${dest}.fifo`
  const dir = dest.slice(0, dest.lastIndexOf('/'))
  const want = gz ? expect.gzSha256 : expect.sha256
  const receive = gz
    ? `rm -f ${shq(fifo)} && mkfifo ${shq(fifo)} && { gzip -dc < ${shq(fifo)} > ${shq(tmp)} & g=$!; h=$(tee ${shq(fifo)} | ${SHA256} | cut -c1-64); ` +
      `wait $g; z=$?; rm -f ${shq(fifo)}; [ $z -eq 0 ] || { echo "gzip on this host could not unpack the runtime (exit $z)" >&2; false; }; }`
    : `h=$(tee ${shq(tmp)} | ${SHA256} | cut -c1-64)`
  return sh(
    `mkdir -p ${shq(dir)} && ${receive} && ` +
      `{ [ "$h" = ${shq(want)} ] || { echo "the runtime arrived with sha256 $h, expected ${want}: the upload was corrupted or cut short" >&2; false; }; } && ` +
      // a write that failed (a full disk) shows in the file's size
      `n=$(wc -c < ${shq(tmp)}) && { [ "$n" -eq ${expect.bytes} ] || { echo "the runtime was written with $n of its ${expect.bytes} bytes" >&2; false; }; } && ` +
      `chmod 755 ${shq(tmp)} && mv -f ${shq(tmp)} ${shq(dest)} && ` +
      `printf '%s %s\\n' ${shq(expect.sha256)} ${expect.bytes} > ${shq(`${dest}.sha256`)} && ${shq(dest)} --version` +
      ` || { rc=$?; rm -f ${shq(tmp)} ${shq(fifo)}; exit $rc; }`
  )
}

/**
 * A command printing the pids of every process one of whose arguments is exactly `bundleExpr`
 * (a shell word: the agent's bundle path), with one grep over all command lines. The hosts of
 * a namespace testbed share one pid namespace: a loop forking a `tr` per process took seconds
 * on a busy machine (the heal script's dead-man search had the same fix). The pattern comes
 * on stdin (-f -), so grep's own command line never matches it.
 */
export function agentPidsScript(bundleExpr: string): string {
  return `printf '%s\\n' ${bundleExpr} | grep -lxzF -f - /proc/[0-9]*/cmdline 2>/dev/null | sed -e 's|^/proc/||' -e 's|/cmdline$||'`
}

// A zombie still answers kill -0; it is dead all the same (and on hosts whose init does not
// reap orphans it stays a zombie for good).
const ALIVE = `alive() { kill -0 "$1" 2>/dev/null && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }`

/**
 * Kills this user's running agent from `home`/.ftlab (the pid in agent.json, and any other
 * process running that bundle), waiting up to ~5 s for it to go before SIGKILL.
 */
function stopAgentSnippet(): string {
  return [
    ALIVE,
    'bundle="$D/agent/ftlab-agent.cjs"',
    `pids=$(${agentPidsScript('"$bundle"')})`,
    'if [ -n "$pids" ]; then',
    '  kill $pids 2>/dev/null',
    '  i=0',
    '  while [ $i -lt 100 ]; do',
    '    left=""',
    '    for p in $pids; do alive "$p" && left="$left $p"; done',
    '    [ -z "$left" ] && break',
    '    sleep 0.05; i=$((i+1))',
    '  done',
    '  [ -n "$left" ] && kill -9 $left 2>/dev/null',
    'fi'
  ].join('\n')
}

/**
 * Starts the agent detached (own session, stdout/err to a log) so it outlives this SSH
 * connection, hands it the boot line read from our stdin through a pipe (never argv, never
 * a file), and waits for its ready line. Prints `READY <json>`, or fails with the log tail.
 */
export function startAgentScript(node: string, timeoutMs: number): string {
  const rounds = Math.max(1, Math.ceil(timeoutMs / 50))
  return sh(
    [
      'D="$HOME/.ftlab"',
      'cd "$D" || exit 10',
      stopAgentSnippet(),
      'mkdir -p data && rm -f data/agent.json',
      ': > agent.out',
      // Read the boot line in this shell: a background job's stdin is /dev/null, and printf
      // is a builtin, so the secret reaches the agent through a pipe and nowhere else.
      'IFS= read -r boot || { echo "no boot config on stdin" >&2; exit 11; }',
      `printf '%s\\n' "$boot" | setsid nohup ${shq(node)} "$bundle" >> agent.out 2>&1 &`,
      'pid=$!',
      'boot=""',
      'i=0',
      `while [ $i -lt ${rounds} ]; do`,
      `  line=$(grep -m1 '"ready"' agent.out 2>/dev/null) && { printf 'READY %s\\n' "$line"; exit 0; }`,
      '  [ -s data/agent.json ] && { printf "JSON %s\\n" "$(cat data/agent.json)"; exit 0; }',
      '  if ! alive $pid; then',
      `    line=$(grep -m1 '"ready"' agent.out 2>/dev/null) && { printf 'READY %s\\n' "$line"; exit 0; }`,
      '    echo "the agent exited before it was ready; last lines of ~/.ftlab/agent.out:" >&2; tail -n 20 agent.out >&2; exit 12',
      '  fi',
      '  sleep 0.05; i=$((i+1))',
      'done',
      `echo "the agent printed no ready line within ${timeoutMs} ms; last lines of ~/.ftlab/agent.out:" >&2; tail -n 20 agent.out >&2`,
      'kill $pid 2>/dev/null',
      'exit 13'
    ].join('\n')
  )
}

/** Stops the agent and removes every FT Lab file from the host. */
export const teardownScript = sh(['D="$HOME/.ftlab"', stopAgentSnippet(), 'rm -rf "$D"', 'echo removed'].join('\n'))

/** Stops the agent but keeps its files (logs, disk image) for inspection. */
export const stopScript = sh(['D="$HOME/.ftlab"', stopAgentSnippet(), 'echo stopped'].join('\n'))
