// Remote labs on the network-namespace testbed, for the integration tests: a lab-file host
// entry for a testbed host, console options that accept the testbed's fresh host keys into a
// temporary store, and a teardown that leaves nothing behind even when a test failed.
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { RemoteLab, type RemoteLabOptions } from '../../main/remote/remote-lab.js'
import { KnownHosts } from '../../main/ssh/known-hosts.js'
import { SshConfig } from '../../main/ssh/ssh-config.js'
import { labHost, testbed, TESTBED_ROOT, type Lab as Testbed } from '../../scripts/testbed/harness.js'

/** The FT Lab lab file `testbed.sh up` writes for its hosts (a, b, disk, and spare with --spare). */
export const TESTBED_FTLAB_FILE = join(TESTBED_ROOT, 'ftlab-lab.json')

/** A lab-file host entry for testbed host `id` (key auth; faults run inside its namespace). */
export function testbedHostSpec(tb: Testbed, id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const h = labHost(tb, id)
  return { address: h.address, port: h.port, user: h.user, identityFile: h.identity, auth: 'key', faults: { run: 'netns', namespace: h.namespace }, ...extra }
}

/** Console options with FT Lab's own known_hosts in `home`; the testbed's keys are new on every `up`. */
export async function testbedLabOptions(home: string): Promise<RemoteLabOptions> {
  const knownHosts = await KnownHosts.load({ readOnly: [], store: join(home, 'known_hosts') })
  return { home, knownHosts, confirmHostKey: async () => true, sshConfig: SshConfig.empty(), connectTimeoutMs: 8000 }
}

/** Tear the lab down (reopening it from its state file if the test lost it), then the testbed and `home`. */
export async function tearDownTestbedLab(p: {
  name: string
  lab: RemoteLab | null
  home: string | undefined
  opts: RemoteLabOptions | undefined
  testbedUp: boolean
  say: (line: string) => void
}): Promise<void> {
  try {
    const l = p.lab ?? (p.home && p.opts && RemoteLab.exists(p.name, p.home) ? await RemoteLab.open(p.name, p.opts) : null)
    if (l) {
      const t = await l.teardown()
      if (t.problems.length) p.say(`teardown problems: ${t.problems.join('; ')}`)
      l.close()
    }
  } finally {
    if (p.testbedUp) testbed('-q', 'down')
    if (p.home) rmSync(p.home, { recursive: true, force: true })
  }
}
