// The console core in browser mode for the real-hosts E2E test: the real ConsoleBackend
// behind the real WebSocket server, with FT Lab's own known_hosts in a temporary home (the
// testbed's host keys are new on every `up`, so the page is asked about each) and no
// ~/.ssh/config. Nothing here answers a question for the operator: the page does.
import { join } from 'node:path'
import type { LabStatus } from '../../main/api/contract.js'
import { ConsoleBackend } from '../../main/console/console-backend.js'
import { RemoteLab } from '../../main/remote/remote-lab.js'
import { KnownHosts } from '../../main/ssh/known-hosts.js'
import { SshConfig } from '../../main/ssh/ssh-config.js'
import { startApiServer } from '../../main/transport/ws-server.js'
import { testbedLabOptions } from '../support/remote-lab.js'

export interface ConsoleUnderTest {
  /** the page's address, with its token */
  url: string
  status(): Promise<LabStatus>
  /** tears down lab `name` if the test left it deployed (through RemoteLab, not the page); `password` for hosts that log in with one */
  tearDownLeftovers(name: string, password: string): Promise<void>
  close(): Promise<void>
}

export async function startConsole(p: { home: string; rendererDir: string }): Promise<ConsoleUnderTest> {
  const knownHosts = await KnownHosts.load({ readOnly: [], store: join(p.home, 'known_hosts') })
  // the SSH handshake's time limit also runs while the page answers a host-key or password
  // question (the operator, here the test, takes a while): a minute, not the 8 s of the CLI tests
  const backend = new ConsoleBackend({
    home: p.home,
    shell: 'browser',
    reattach: false,
    remote: { knownHosts, sshConfig: SshConfig.empty(), connectTimeoutMs: 60_000 }
  })
  const server = await startApiServer({ backend, rendererDir: p.rendererDir })
  return {
    url: server.url,
    status: () => backend.handle('lab.status', {}),
    async tearDownLeftovers(name, password) {
      await backend.close()
      if (!RemoteLab.exists(name, p.home)) return
      const lab = await RemoteLab.open(name, { ...(await testbedLabOptions(p.home)), secrets: { password: async () => password } })
      try {
        const t = await lab.teardown()
        if (t.problems.length) throw new Error(t.problems.join('; '))
      } finally {
        lab.close()
      }
    },
    async close() {
      await server.close()
      await backend.close()
    }
  }
}
