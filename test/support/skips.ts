// The one way a test may skip: because the machine lacks something, said in words that name
// what to install. Every skip goes through `lacks` (or `skipNow` inside a test), which
//  - records the reason for the end-of-run summary (test/support/skip-reporter.ts), and
//  - under CI=true throws instead, unless the reason is a kernel feature on KERNEL_FEATURES:
//    CI runs scripts/setup-machine.sh first, so anything else missing there is a broken CI.
// Our own code failing (an agent bundle that crashes, say) is never a reason to skip: see
// requireReplicaAgent in ./agent.ts.
import { spawnSync } from 'node:child_process'
import { appendFileSync, existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect, type TestContext } from 'vitest'

/** What only the running kernel can lack: the only skips allowed under CI=true. */
export const KERNEL_FEATURES = {
  netem: 'the sch_netem queueing discipline (kernel module; many container kernels lack it)',
  sysrq: 'magic SysRq (/proc/sysrq-trigger; absent in many containers)'
} as const
export type KernelFeature = keyof typeof KERNEL_FEATURES

export const SETUP_HINT = 'run scripts/setup-machine.sh (as root) to install what the tests need'

export const inCI = () => process.env.CI === 'true' || process.env.CI === '1'

/** The test file calling us (for the summary), from the stack: vitest reports sources by path. */
function callerFile(): string {
  for (const line of (new Error().stack ?? '').split('\n').slice(2)) {
    const m = /((?:file:\/\/)?\/[^\s()]+?\.test\.ts)/.exec(line)
    if (m) return m[1].startsWith('file:') ? fileURLToPath(m[1]) : m[1]
  }
  return expect.getState().testPath ?? 'an unknown test file'
}

function record(reason: string, file: string, kernel: KernelFeature | undefined): void {
  const log = process.env.FTLAB_SKIP_LOG
  if (log) appendFileSync(log, JSON.stringify({ file, reason, kernel: kernel ?? null }) + '\n')
}

export interface LackOptions {
  /** the reason is this kernel feature missing: allowed to skip under CI */
  kernel?: KernelFeature
}

/**
 * `reason` (a string saying what the machine lacks) or nothing; for `describe.skipIf(lacks(...))`.
 * Several reasons may be given; null/undefined/false entries are ignored, the rest are joined.
 * Under CI=true a reason that is not a listed kernel feature throws, failing the file.
 */
export function lacks(reasons: string | null | undefined | false | (string | null | undefined | false)[], opts: LackOptions = {}): string | null {
  const list = (Array.isArray(reasons) ? reasons : [reasons]).filter((r): r is string => typeof r === 'string' && r !== '')
  if (list.length === 0) return null
  const reason = list.join('; ')
  if (inCI() && !opts.kernel) {
    throw new Error(
      `CI=true and this machine lacks what a test needs: ${reason}. CI must not skip it: ${SETUP_HINT}. Only kernel features may skip under CI (${Object.keys(KERNEL_FEATURES).join(', ')}).`
    )
  }
  record(reason, callerFile(), opts.kernel)
  return reason
}

/** Inside a running test: skip it now, with the reason, under the same CI rule as `lacks`. */
export function skipNow(ctx: TestContext, reason: string, opts: LackOptions = {}): never {
  lacks(reason, opts)
  return ctx.skip(reason)
}

/** Is `cmd` on PATH? */
export const hasCommand = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0

/** Reason when a command is missing, naming its Debian package. */
export const needCommand = (cmd: string, pkg: string) => (hasCommand(cmd) ? null : `${cmd} is not installed (Debian package ${pkg})`)

/** Needs root (network namespaces, mounts, nftables). */
export const needRoot = (what: string) => (process.getuid?.() === 0 ? null : `${what} needs root`)

/** The browser the E2E tests drive: Debian's chromium, or FTLAB_CHROMIUM (never a downloaded one). */
export const chromiumPath = () => process.env.FTLAB_CHROMIUM || '/usr/bin/chromium'

export const needChromium = () =>
  existsSync(chromiumPath())
    ? null
    : `no chromium at ${chromiumPath()} (Debian package chromium; FTLAB_CHROMIUM names another binary); the tests never download a browser`
