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

/** What the host should have for the agent to start at once, without uploading anything. */
export interface StartExpectation {
  /** SHA-256 of the console's agent bundle */
  agentSha256: string
  /** the console's cached runtimes by Node arch (x64, arm64): their directory name and SHA-256 */
  runtimes: Partial<Record<'x64' | 'arm64', { name: string; sha256: string }>>
  readyTimeoutMs: number
}

/**
 * Prints what deploy needs to know before it uploads anything, in one round trip: OS,
 * machine, $HOME, node's version (or "none"), free KiB under ~/.ftlab (created here, as deploy
 * would: a host may mount a filesystem of its own there; empty where the agent is started at
 * once, as nothing is written), then `key=value` lines: whether
 * gzip and zstd are there, the installed agent bundle's SHA-256, and, only where the host has
 * no usable Node of its own, `runtime=<dir> <sha256>` for every runtime FT Lab uploaded
 * before: the check before use, as a runtime that does not hash as the console's copy is
 * uploaded again rather than run. Hashing 119 MiB took a second and more on a busy host, so a
 * runtime not modified since its upload was verified (not newer than the stamp written then,
 * same size) is taken at the stamp's hash. Starting Node for its version took 100 to 300 ms
 * on a busy host: the version is kept beside the identity of the binary that printed it
 * (device, inode, size, mtime and ctime: a package upgrade, which may keep the packaged mtime,
 * writes a new file, whose ctime no one can set back), and a changed binary is asked again.
 *
 * With `start` (the boot line then arrives on stdin), when everything is already there (the
 * host's Node or a runtime hashing as the console's, and the bundle hashing as the console's)
 * the agent is started in the same command: `START <node>` and the start's own output follow
 * the facts. A warm deploy is then one command after the handshake.
 */
export function detectScript(minNodeMajor: number, start?: StartExpectation): string {
  const lines = [
    `D="$HOME/${AGENT_DIR}"`,
    // every command forked is a wait for a core on a busy host: only what is needed runs
    '[ -d "$D" ] || mkdir -p "$D" 2>/dev/null',
    'v=none',
    'n=$(command -v node 2>/dev/null)',
    'if [ -n "$n" ]; then',
    // %y and %z carry nanoseconds where the filesystem keeps them
    `  id=$(stat -L -c '%d %i %s %y %z' "$n" 2>/dev/null)`,
    '  s=""',
    '  [ -n "$id" ] && [ -f "$D/.node-version" ] && read -r sv sid < "$D/.node-version" && [ "$sid" = "$id" ] && s=$sv',
    '  if [ -n "$s" ]; then v=$s; else',
    '    v=$(node --version 2>/dev/null); [ -n "$v" ] || v=none',
    `    [ -n "$id" ] && printf '%s %s\\n' "$v" "$id" > "$D/.node-version" 2>/dev/null`,
    '  fi',
    'fi',
    'command -v gzip >/dev/null 2>&1 && gz=yes || gz=no',
    'command -v zstd >/dev/null 2>&1 && zs=yes || zs=no',
    `f="$D/agent/${AGENT_FILE}"; a=""; [ -f "$f" ] && { set -- $( ${SHA256} < "$f"); a=$1; }`,
    'set -- $(uname -sm)',
    'os=$1; machine=$2',
    'major=${v#v}; major=${major%%.*}',
    "case $major in ''|*[!0-9]*) major=0 ;; esac",
    'node=""; rts=""',
    `if [ "$major" -ge ${minNodeMajor} ]; then`,
    '  node=node',
    'else',
    '  for n in "$D"/runtime/*/bin/node; do',
    '    [ -f "$n" ] || continue',
    // the stamp written when the upload was verified stands for the hash while the binary
    // is untouched since (same size, not newer than the stamp); otherwise it is hashed again
    '    h=""',
    '    if [ -f "$n.sha256" ] && [ -z "$(find "$n" -newer "$n.sha256" 2>/dev/null)" ]; then',
    '      read -r sum bytes < "$n.sha256" && [ "$bytes" = "$(($(wc -c < "$n")))" ] && h=$sum',
    '    fi',
    `    [ -n "$h" ] || { set -- $( ${SHA256} < "$n"); h=$1; }`,
    '    r=${n%/bin/node}; r=${r##*/}',
    // printed with the other facts below, once it is known whether df is needed
    '    rts="${rts}runtime=$r $h',
    '"',
    ...(start ? runtimeMatch(start) : []),
    '  done',
    'fi',
    // free space matters only to an upload: a host whose agent starts at once is not asked
    start ? `go=""; [ -n "$node" ] && [ "$a" = ${shq(start.agentSha256)} ] && go=1` : 'go=""',
    'free=""',
    `[ -n "$go" ] || free=$(df -Pk "$D" 2>/dev/null | { read -r _; read -r _ _ _ f _; echo "$f"; })`,
    `printf '%s\\n' "$os" "$machine" "$HOME" "$v" "$free" "gzip=$gz" "zstd=$zs"`,
    `[ -n "$a" ] && printf 'agent=%s\\n' "$a"`,
    `printf '%s' "$rts"`
  ]
  if (start) {
    lines.push('[ -n "$go" ] || exit 0', READ_BOOT, `printf 'START %s\\n' "$node"`, startSnippet(start.readyTimeoutMs))
  } else lines.push('true')
  return sh(lines.join('\n'))
}

/** Inside detect's runtime loop: the runtime the console would send for this machine, hashing as the console's copy, is the one to start with. */
function runtimeMatch(start: StartExpectation): string[] {
  const arms = (['x64', 'arm64'] as const).flatMap((arch) => {
    const rt = start.runtimes[arch]
    if (!rt) return []
    const machines = arch === 'x64' ? 'x86_64|amd64' : 'aarch64|arm64'
    return [`      ${machines}) [ "$r" = ${shq(rt.name)} ] && [ "$h" = ${shq(rt.sha256)} ] && node=$n ;;`]
  })
  return arms.length ? ['    case $machine in', ...arms, '    esac'] : []
}

/** Free KiB on the filesystem holding `dir` (created first). */
export function freeSpaceScript(dir: string): string {
  return sh(`mkdir -p ${shq(dir)} && df -Pk ${shq(dir)} | awk 'NR==2 {print $4}'`)
}

/** What an upload command does once its file is in place: start the agent with `node`. */
export interface StartAfter {
  /** a path, or `node` from PATH */
  node: string
  /** the bundle must hash so before the agent starts (another channel may still be writing it): else `NOSTART` is printed */
  agentSha256: string
  readyTimeoutMs: number
}

/**
 * The boot line comes first on stdin, before the file: `read` takes one line and leaves the rest
 * to what follows. Its dataDir holds `@HOME@` (deploy.ts HOME_MARKER), which becomes this
 * $HOME: deploy learns the home from the same command. A home that JSON would need escaped
 * is refused rather than spliced.
 */
const READ_BOOT = [
  'IFS= read -r boot || { echo "no boot config on stdin" >&2; exit 11; }',
  'case $boot in *@HOME@*)',
  '  case $HOME in *\\"*|*\\\\*) echo "HOME ($HOME) holds a quote or a backslash, which the agent\'s boot line cannot carry; give the user another home" >&2; exit 15 ;; esac',
  '  boot="${boot%%@HOME@*}$HOME${boot#*@HOME@}" ;;',
  'esac'
].join('\n')

/** Starts the agent once the upload is in place and the bundle checks out; `START <node>` then the start's output. */
function startAfterUpload(start: StartAfter): string {
  return [
    `D="$HOME/${AGENT_DIR}"`,
    `set -- $( ${SHA256} < "$D/agent/${AGENT_FILE}" 2>/dev/null)`,
    `[ "$1" = ${shq(start.agentSha256)} ] || { echo NOSTART; exit 0; }`,
    `node=${shq(start.node)}`,
    `printf 'START %s\\n' "$node"`,
    startSnippet(start.readyTimeoutMs)
  ].join('\n')
}

/**
 * Writes stdin to `dest` (the agent bundle) through a temp name: atomically, and only once what
 * arrived hashes as `sha256`. With `start`, the boot line precedes the file on stdin and the
 * agent is started in the same command (a cold deploy of a host with Node: one command fewer).
 */
export function receiveFileScript(dest: string, sha256: string, mode: string, start?: StartAfter): string {
  const tmp = `${dest}.partial`
  const dir = dest.slice(0, dest.lastIndexOf('/'))
  const receive =
    `mkdir -p ${shq(dir)} && cat > ${shq(tmp)} && set -- $( ${SHA256} < ${shq(tmp)}) && h=$1 && ` +
    `{ [ "$h" = ${shq(sha256)} ] || { echo "arrived with sha256 $h, expected ${sha256}: the upload was corrupted" >&2; false; }; } && ` +
    `chmod ${mode} ${shq(tmp)} && mv -f ${shq(tmp)} ${shq(dest)} || { rc=$?; rm -f ${shq(tmp)}; exit $rc; }`
  return sh(start ? [READ_BOOT, receive, startAfterUpload(start)].join('\n') : receive)
}

/** How the runtime travels: the cache's zstd or gzip copy, or the binary itself. */
export type RuntimeEncoding = 'zstd' | 'gzip' | 'none'

/**
 * Reads the Node runtime on stdin and installs it only once it checks out: compressed (zstd
 * or gzip), the stream is hashed as it arrives (`expect.packedSha256`) while the decompressor
 * unpacks it through a fifo: the binary is then the one decompression of verified bytes (both
 * check their own checksum too); uncompressed it is the binary itself, hashed as written
 * (`expect.sha256`). Either way its size must be `expect.bytes`; then it is made executable,
 * moved into place and stamped with its hash (the stamp detectScript trusts while the binary
 * is untouched). A corrupted or cut upload is removed and says so on stderr. Then, with
 * `start` (the boot line first on stdin), the agent is started on it, whose ready line names
 * the Node version; without, the runtime's `--version` is printed.
 */
export function receiveRuntimeScript(
  dest: string,
  expect: { sha256: string; packedSha256: string; bytes: number },
  encoding: RuntimeEncoding,
  start?: StartAfter
): string {
  const tmp = `${dest}.partial`
  const fifo = `${dest}.fifo`
  const dir = dest.slice(0, dest.lastIndexOf('/'))
  const want = encoding === 'none' ? expect.sha256 : expect.packedSha256
  const unpack = encoding === 'zstd' ? 'zstd -dcq' : 'gzip -dc'
  const receive =
    encoding === 'none'
      ? `h=$(tee ${shq(tmp)} | ${SHA256} | cut -c1-64)`
      : `rm -f ${shq(fifo)} && mkfifo ${shq(fifo)} && { ${unpack} < ${shq(fifo)} > ${shq(tmp)} & g=$!; h=$(tee ${shq(fifo)} | ${SHA256} | cut -c1-64); ` +
        `wait $g; z=$?; rm -f ${shq(fifo)}; [ $z -eq 0 ] || { echo "${unpack.split(' ')[0]} on this host could not unpack the runtime (exit $z)" >&2; false; }; }`
  const install =
    `mkdir -p ${shq(dir)} && ${receive} && ` +
    `{ [ "$h" = ${shq(want)} ] || { echo "the runtime arrived with sha256 $h, expected ${want}: the upload was corrupted or cut short" >&2; false; }; } && ` +
    // a write that failed (a full disk) shows in the file's size
    `n=$(wc -c < ${shq(tmp)}) && { [ "$n" -eq ${expect.bytes} ] || { echo "the runtime was written with $n of its ${expect.bytes} bytes" >&2; false; }; } && ` +
    `chmod 755 ${shq(tmp)} && mv -f ${shq(tmp)} ${shq(dest)} && ` +
    `printf '%s %s\\n' ${shq(expect.sha256)} ${expect.bytes} > ${shq(`${dest}.sha256`)}` +
    (start ? '' : ` && ${shq(dest)} --version`) +
    ` || { rc=$?; rm -f ${shq(tmp)} ${shq(fifo)}; exit $rc; }`
  return sh(start ? [READ_BOOT, install, startAfterUpload({ ...start, node: dest })].join('\n') : install)
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

/**
 * `alive PID`: the process runs. A zombie still answers kill -0; it is dead all the same (and on hosts whose init does
 * not reap orphans it stays a zombie for good), once it is alone: a process whose main thread has exited shows as a
 * zombie while its other threads are still exiting, holding its files and sockets, so it counts as alive while
 * /proc/PID/task lists more than one thread. The state is the field after the last ") " of /proc/PID/stat, read with
 * the shell's own `read` and cut out by parameter expansion, the threads counted by a glob: the stop loops ask every
 * 50 ms for every pid, and a `sed | cut` there was two forks each time on a busy host. Without a /proc it goes by
 * kill -0 alone.
 */
export const ALIVE_FN =
  'alive() { kill -0 "$1" 2>/dev/null || return 1; _st=""; { read -r _st < "/proc/$1/stat"; } 2>/dev/null || return 0; _st=${_st##*) }; ' +
  '[ "${_st%% *}" != Z ] && return 0; set -- /proc/"$1"/task/*; [ $# -gt 1 ]; }'
/** `is_agent PID`: the process runs and runs the agent bundle (one grep over its NUL-separated argument list; with -q a match in a binary file needs no -a, which not every grep has). */
export const IS_AGENT_FN = `is_agent() { alive "$1" && grep -qF 'ftlab-agent.cjs' "/proc/$1/cmdline" 2>/dev/null; }`

/**
 * Kills this user's running agent from `home`/.ftlab (the pid in agent.json, and any other
 * process running that bundle), waiting up to ~5 s for it to go before SIGKILL.
 */
function stopAgentSnippet(): string {
  return [
    ALIVE_FN,
    'bundle="$D/agent/ftlab-agent.cjs"',
    // agentPidsScript, with the shell taking the pids out of the paths instead of a sed
    'pids=""',
    `for p in $(printf '%s\\n' "$bundle" | grep -lxzF -f - /proc/[0-9]*/cmdline 2>/dev/null); do p=\${p#/proc/}; pids="$pids \${p%/cmdline}"; done`,
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
 * Starts the agent detached (own session, stderr to ~/.ftlab/agent.out) so it outlives this SSH
 * connection, hands it the boot line from `$boot` through a pipe (never argv, never a file),
 * and reads its ready line from a fifo on its stdout: no polling, the line is there the moment
 * it is written, and the agent's exit is an end of file at once. Prints `READY <json>`, or
 * fails with the log tail (12: exited before ready, 13: no ready line in time). Expects `$D`,
 * `$node` and `$boot`.
 */
function startSnippet(timeoutMs: number): string {
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000))
  const tail = 'last lines of ~/.ftlab/agent.out:" >&2; tail -n 20 agent.out >&2'
  return [
    'cd "$D" || exit 10',
    stopAgentSnippet(),
    '[ -d data ] || mkdir -p data',
    '[ -e data/agent.json ] && rm -f data/agent.json',
    // A fresh fifo for each start. The agent stopped above may still hold its end of the old one: its main thread shows
    // as a zombie while its other threads exit, and those hold its files. A reader of the old fifo would pair with it, and
    // could take its close for the end of the new agent's output when that agent had not opened its end yet: the ready
    // line would go into a pipe nobody reads, and the start wait out its timeout (the likeliest cause of one such start
    // in CI, after a redeploy; not reproduced since).
    'rdy="$D/ready.fifo"',
    'rm -f "$rdy" && mkfifo "$rdy" || { echo "cannot make a fifo in $D for the agent\'s ready line" >&2; exit 14; }',
    ': > agent.out',
    // printf is a builtin: the secret reaches the agent through a pipe and nowhere else
    'printf \'%s\\n\' "$boot" | setsid "$node" "$bundle" > "$rdy" 2>> agent.out &',
    'pid=$!',
    'boot=""',
    // the watchdog's fds are not the channel's, or sshd would keep the command open until it ends; killed once the
    // agent is ready, it takes its sleep with it (a sleep left behind lingered on the host for the whole timeout)
    `( trap 'kill $s 2>/dev/null; exit 0' TERM; sleep ${seconds} & s=$!; wait $s; kill $pid ) < /dev/null > /dev/null 2>&1 &`,
    'w=$!',
    'exec 3< "$rdy"',
    'while IFS= read -r line <&3; do',
    `  case $line in *'"ready"'*) kill $w 2>/dev/null; printf 'READY %s\\n' "$line"; exit 0 ;; esac`,
    'done',
    'wait $pid; rc=$?',
    'kill $w 2>/dev/null',
    `[ $rc -eq 143 ] && { echo "the agent printed no ready line within ${timeoutMs} ms; ${tail}; exit 13; }`,
    `echo "the agent exited (status $rc) before it was ready; ${tail}`,
    'exit 12'
  ].join('\n')
}

/**
 * Starts the agent with `node` (see startSnippet), the boot line read from stdin. Prints
 * `START <node>` then `READY <json>`, or fails with the log tail.
 */
export function startAgentScript(node: string, timeoutMs: number): string {
  return sh(['D="$HOME/.ftlab"', READ_BOOT, `node=${shq(node)}`, `printf 'START %s\\n' "$node"`, startSnippet(timeoutMs)].join('\n'))
}

/** Stops the agent and removes every FT Lab file from the host. */
export const teardownScript = sh(['D="$HOME/.ftlab"', stopAgentSnippet(), 'rm -rf "$D"', 'echo removed'].join('\n'))

/** Stops the agent but keeps its files (logs, disk image) for inspection. */
export const stopScript = sh(['D="$HOME/.ftlab"', stopAgentSnippet(), 'echo stopped'].join('\n'))
