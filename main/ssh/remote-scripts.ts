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

/** Prints: OS, machine, $HOME, node's version (or "none"), then free KiB under $HOME. */
export const detectScript = sh(
  [
    'uname -s',
    'uname -m',
    `printf '%s\\n' "$HOME"`,
    'v=$(node --version 2>/dev/null) && printf \'%s\\n\' "$v" || echo none',
    `df -Pk "$HOME" 2>/dev/null | awk 'NR==2 {print $4}'`
  ].join('; ')
)

/** Prints the SHA-256 of a remote file, or nothing when it is absent. */
export function sha256Script(path: string): string {
  return sh(
    `f=${shq(path)}; [ -f "$f" ] || exit 0; ` + `(sha256sum "$f" 2>/dev/null || shasum -a 256 "$f" 2>/dev/null || openssl dgst -sha256 -r "$f") | cut -c1-64`
  )
}

/** Free KiB on the filesystem holding `dir` (created first). */
export function freeSpaceScript(dir: string): string {
  return sh(`mkdir -p ${shq(dir)} && df -Pk ${shq(dir)} | awk 'NR==2 {print $4}'`)
}

/** Moves an uploaded temp file into place atomically and prints its SHA-256. */
export function installScript(tmp: string, dest: string, mode: string): string {
  return sh(`chmod ${mode} ${shq(tmp)} && mv -f ${shq(tmp)} ${shq(dest)} && (sha256sum ${shq(dest)} 2>/dev/null || shasum -a 256 ${shq(dest)}) | cut -c1-64`)
}

/** Reads a gzip stream on stdin into `dest` (through a temp name), then prints `node --version`. */
export function receiveRuntimeScript(dest: string, gz: boolean): string {
  const tmp = `${dest}.partial`
  const dir = dest.slice(0, dest.lastIndexOf('/'))
  const unpack = gz ? 'gzip -dc' : 'cat'
  return sh(
    `mkdir -p ${shq(dir)} && ${unpack} > ${shq(tmp)} && chmod 755 ${shq(tmp)} && mv -f ${shq(tmp)} ${shq(dest)} && ${shq(dest)} --version` +
      ` || { rc=$?; rm -f ${shq(tmp)}; exit $rc; }`
  )
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
    'pids=""',
    'for p in /proc/[0-9]*; do',
    '  [ -r "$p/cmdline" ] || continue',
    `  case "$(tr '\\000' ' ' < "$p/cmdline" 2>/dev/null)" in *"$bundle"*) pids="$pids \${p#/proc/}" ;; esac`,
    'done',
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
