import { execFileSync } from 'node:child_process'
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, type ConnectOptions, type SshConnection } from '../../main/ssh/connection.js'
import { SshError } from '../../main/ssh/errors.js'
import { KnownHosts } from '../../main/ssh/known-hosts.js'
import { PtyShell } from '../../main/ssh/shell.js'
import { SshConfig } from '../../main/ssh/ssh-config.js'
import { labHost, readLab, testbed, testbedFor, testbedUnavailable, type Lab, type LabHost } from '../../scripts/testbed/harness.js'
import { lacks } from '../support/skips.js'

const unavailable = lacks(testbedUnavailable())

async function rejection(p: Promise<unknown>): Promise<SshError> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(SshError)
    return e as SshError
  }
  throw new Error('expected the connection to fail')
}

describe.skipIf(unavailable !== null)(`SSH against the testbed's OpenSSH${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let lab: Lab
  // a testbed that was already up is given back as it was, not taken down
  let release: (() => void) | undefined
  let home: string
  let knownHosts: KnownHosts
  const open: SshConnection[] = []

  const base = (h: LabHost, extra: Partial<ConnectOptions> = {}): ConnectOptions => ({
    host: h.address,
    user: h.user,
    identityFiles: [h.identity],
    knownHosts,
    sshConfig: SshConfig.empty(),
    agent: false,
    ...extra
  })
  const track = (c: SshConnection): SshConnection => (open.push(c), c)
  const hostFingerprint = (h: LabHost): string => execFileSync('ssh-keygen', ['-lf', h.hostKey], { encoding: 'utf8' }).split(' ')[1]!

  beforeAll(async () => {
    release = testbedFor()
    lab = readLab()
    home = mkdtempSync(join(tmpdir(), 'ftlab-home-'))
    // Only FT Lab's own store: the machine's ~/.ssh/known_hosts must not decide these tests.
    knownHosts = await KnownHosts.load({ readOnly: [], store: join(home, 'known_hosts') })
  })

  afterAll(() => {
    for (const c of open) c.close()
    release?.()
    if (home) rmSync(home, { recursive: true, force: true })
  })

  it('reports an unknown host key on first contact with the fingerprint ssh-keygen shows', async () => {
    const h1 = labHost(lab, 'h1')
    const err = await rejection(connect(base(h1)))
    expect(err.kind).toBe('host-key-unknown')
    const fp = hostFingerprint(h1)
    expect(err.message).toContain(fp)
    expect(err.extra.verdict).toMatchObject({ kind: 'unknown', keyType: 'ssh-ed25519', fingerprint: fp })
  })

  it('connects once the key is accepted, then recognises it without asking', async () => {
    const h1 = labHost(lab, 'h1')
    const prompts: string[] = []
    const c = track(await connect(base(h1, { confirmHostKey: async (p) => (prompts.push(p.fingerprint), true) })))
    expect(prompts).toEqual([hostFingerprint(h1)])
    expect((await c.exec('id -un')).stdout.toString().trim()).toBe(h1.user)
    expect(readFileSync(knownHosts.storePath, 'utf8')).toContain(`${h1.address} ssh-ed25519 `)
    c.close()
    const again = track(
      await connect(
        base(h1, {
          confirmHostKey: async () => {
            throw new Error('must not ask for a known key')
          }
        })
      )
    )
    expect((await again.exec('echo ok')).stdout.toString()).toBe('ok\n')
  })

  it("does not count the operator's time on a host-key question against the handshake deadline", async () => {
    const h2 = labHost(lab, 'h2')
    // a store of its own: h2's key is unknown here whatever the other tests accepted
    const own = await KnownHosts.load({ readOnly: [], store: join(home, 'known_hosts.slow-operator') })
    const c = track(
      await connect(
        base(h2, {
          knownHosts: own,
          readyTimeoutMs: 1500,
          confirmHostKey: async () => {
            await new Promise((r) => setTimeout(r, 3000)) // twice the deadline spent reading the fingerprint
            return true
          }
        })
      )
    )
    expect((await c.exec('echo ok')).stdout.toString()).toBe('ok\n')
  })

  it('refuses a regenerated host key as changed and says where the old one is recorded', async () => {
    const h3 = labHost(lab, 'h3')
    track(await connect(base(h3, { confirmHostKey: async () => true }))).close()
    testbed('-q', 'rekey', 'h3')
    const err = await rejection(connect(base(h3, { confirmHostKey: async () => true })))
    expect(err.kind).toBe('host-key-changed')
    expect(err.message).toMatch(/HOST KEY CHANGED/)
    expect(err.message).toContain(`${knownHosts.storePath}:`)
    expect(err.message).toContain(hostFingerprint(h3))
  })

  it('authenticates with the password from the secret source, and reports a wrong one precisely', async () => {
    const h1 = labHost(lab, 'h1')
    const password = readFileSync(lab.passwordFile, 'utf8').trim()
    const ok = track(await connect(base(h1, { identityFiles: [], secrets: { password: async () => password } })))
    expect((await ok.exec('id -un')).stdout.toString().trim()).toBe(h1.user)
    const asked: number[] = []
    const err = await rejection(
      connect(base(h1, { identityFiles: [], passwordAttempts: 2, secrets: { password: async ({ attempt }) => (asked.push(attempt), 'wrong-password') } }))
    )
    expect(err.kind).toBe('auth')
    expect(asked).toEqual([1, 2])
    expect(err.message).toMatch(new RegExp(`authentication failed for ${h1.user}@${h1.address}:22; tried: password, password`))
    expect(err.message).not.toContain('wrong-password')
  })

  it('asks for a key passphrase when the key file is encrypted', async () => {
    const h1 = labHost(lab, 'h1')
    const key = join(home, 'id_pass')
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'correct horse', '-f', key])
    appendFileSync(`/var/lib/ftlab-testbed/home/${h1.user}/.ssh/authorized_keys`, readFileSync(`${key}.pub`))
    const c = track(
      await connect(base(h1, { identityFiles: [key], secrets: { passphrase: async ({ keyPath }) => (keyPath === key ? 'correct horse' : null) } }))
    )
    expect((await c.exec('echo in')).stdout.toString()).toBe('in\n')
    const err = await rejection(connect(base(h1, { identityFiles: [key], secrets: { passphrase: async () => null } })))
    expect(err.kind).toBe('auth')
  })

  it('reports an unreachable address as unreachable', async () => {
    const err = await rejection(connect({ host: lab.unusedAddress, user: 'nobody', knownHosts, sshConfig: SshConfig.empty(), agent: false }))
    expect(err.kind).toBe('unreachable')
    expect(err.message).toContain(`host unreachable: nobody@${lab.unusedAddress}:22`)
  })

  it('reports a powered-off host as connection refused', async () => {
    const h3 = labHost(lab, 'h3')
    testbed('-q', 'power-off', 'h3')
    try {
      const err = await rejection(connect(base(h3)))
      expect(err.kind).toBe('refused')
      expect(err.message).toMatch(/connection refused/)
    } finally {
      testbed('-q', 'power-on', 'h3')
    }
  })

  it('tunnels through a ProxyJump host', async () => {
    const h1 = labHost(lab, 'h1')
    const h2 = labHost(lab, 'h2')
    const c = track(await connect(base(h2, { proxyJump: `${h1.user}@${h1.address}`, confirmHostKey: async () => true })))
    // The SSH client address h2 sees is h1's: the connection really went through h1.
    const from = (await c.exec('echo "$SSH_CLIENT"')).stdout.toString()
    expect(from.split(' ')[0]).toBe(h1.address)
    expect((await c.exec('id -un')).stdout.toString().trim()).toBe(h2.user)
  })

  it('runs an interactive PTY shell: output as bytes, input, resize, exit', async () => {
    const h1 = labHost(lab, 'h1')
    const c = track(await connect(base(h1)))
    const shell = await PtyShell.open(c, { cols: 100, rows: 30 })
    let text = ''
    const seen = (needle: string): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (text.includes(needle)) {
            shell.off('data', onData)
            resolve()
          }
        }
        const onData = (b: Uint8Array): void => {
          expect(b).toBeInstanceOf(Uint8Array)
          text += Buffer.from(b).toString()
          check()
        }
        shell.on('data', onData)
        check()
      })
    shell.write('echo ftlab-$((6*7)); stty size\n')
    await seen('ftlab-42')
    await seen('30 100')
    shell.resize(120, 40)
    shell.write('stty size\n')
    await seen('40 120')
    const exited = new Promise<{ code: number | null }>((resolve) => shell.once('exit', resolve))
    shell.write('exit 3\n')
    expect((await exited).code).toBe(3)
    expect(() => shell.resize(0, 10)).toThrow(/terminal size/)
  })
})
