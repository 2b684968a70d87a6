// Helpers for tests and benchmarks that run on the network-namespace testbed
// (scripts/testbed.sh): can it run here, bring it up and down, read its lab file.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const TESTBED_SCRIPT = findTestbedScript()

/** Next to this file, or (bundled into out/, as the benchmark is) in scripts/ of an enclosing directory. */
function findTestbedScript(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  const beside = resolve(dir, '..', 'testbed.sh')
  if (existsSync(beside)) return beside
  for (;;) {
    const c = join(dir, 'scripts', 'testbed.sh')
    if (existsSync(c)) return c
    const up = dirname(dir)
    if (up === dir) return beside
    dir = up
  }
}
export const TESTBED_ROOT = '/var/lib/ftlab-testbed'
export const LAB_FILE = join(TESTBED_ROOT, 'lab.json')

export interface LabHost {
  id: string
  address: string
  port: number
  user: string
  identity: string
  role: 'a' | 'b' | 'disk' | 'spare' | 'etcd'
  namespace: string
  hostKey: string
  node: boolean
}

export interface Lab {
  version: 1
  network: string
  console: string
  unusedAddress: string
  passwordFile: string
  hosts: LabHost[]
}

/** Why the testbed cannot run here, or null when it can (root, `ip netns`, sshd). */
export function testbedUnavailable(): string | null {
  if (process.platform !== 'linux') return `the testbed needs Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'the testbed needs root (network namespaces, users, sshd)'
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' })
  } catch {
    return "'ip netns' does not work here (iproute2 missing or no namespace support)"
  }
  try {
    execFileSync('/usr/sbin/sshd', ['-V'], { stdio: 'pipe' })
  } catch (e) {
    const out = String((e as { stderr?: Buffer }).stderr ?? '')
    if (!/OpenSSH/.test(out)) return '/usr/sbin/sshd is missing (apt-get install -y openssh-server)'
  }
  return null
}

export function testbed(...args: string[]): string {
  try {
    return execFileSync('bash', [TESTBED_SCRIPT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string }
    throw new Error(`testbed.sh ${args.join(' ')} failed: ${(err.stderr || err.stdout || err.message).trim()}`, { cause: e })
  }
}

export function readLab(): Lab {
  return JSON.parse(readFileSync(LAB_FILE, 'utf8')) as Lab
}

export function labHost(lab: Lab, id: string): LabHost {
  const h = lab.hosts.find((x) => x.id === id)
  if (!h) throw new Error(`testbed host ${id} is not up (hosts: ${lab.hosts.map((x) => x.id).join(', ')})`)
  return h
}

/**
 * Brings the testbed up with `args` (`--spare`, `--etcd`, `--no-node HOST`) for one test file
 * or benchmark run and returns how to give it back: down when it was not up before, otherwise
 * `up` again as it was (its hosts, and which had Node), so a testbed that someone else brought
 * up is never taken away. Hosts already up stay up meanwhile (`up` removes the ones it is not
 * asked for).
 */
export function testbedFor(...args: string[]): () => void {
  const before = existsSync(LAB_FILE) ? readLab() : null
  const had = (id: string): boolean => before?.hosts.some((h) => h.id === id) ?? false
  const extra = (flag: string, id: string): string[] => (had(id) && !args.includes(flag) ? [flag] : [])
  testbed('-q', 'up', ...args, ...extra('--spare', 'h4'), ...extra('--etcd', 'h5'))
  return () => {
    if (!before) {
      testbed('-q', 'down')
      return
    }
    testbed(
      '-q',
      'up',
      ...(had('h4') ? ['--spare'] : []),
      ...(had('h5') ? ['--etcd'] : []),
      ...before.hosts.filter((h) => !h.node).flatMap((h) => ['--no-node', h.id])
    )
  }
}
