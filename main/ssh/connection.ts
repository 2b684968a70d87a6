// An SSH connection from the console core to one host, on ssh2. Every connection verifies
// the host key (known_hosts + FT Lab's store), authenticates by ssh-agent, key file or
// password, and takes its secrets from a SecretSource at the moment they are needed, so
// nothing secret is kept, logged, or passed on a command line.
import { EventEmitter } from 'node:events'
import { readFile, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { Readable, type Duplex } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { AnyAuthMethod, Client as SshClient, ClientChannel, ConnectConfig, SFTPWrapper } from 'ssh2'
// ssh2 is CommonJS: Node's ESM loader gives its named exports only through the default export
import ssh2 from 'ssh2'

const { Client, utils } = ssh2
import { SshError, mapConnectError } from './errors.js'
import { KnownHosts, knownHostName, where, type HostKeyVerdict } from './known-hosts.js'
import { SshConfig, parseJumpSpec, type JumpHop } from './ssh-config.js'

/** Where passwords and key passphrases come from (a prompt, the OS keychain). */
export interface SecretSource {
  /** null = no password (the operator declined); `attempt` counts from 1 */
  password?(request: { user: string; host: string; port: number; attempt: number }): Promise<string | null>
  /** null = leave this key out */
  passphrase?(request: { keyPath: string; user: string; host: string; port: number; attempt: number }): Promise<string | null>
}

export interface HostKeyPrompt {
  host: string
  port: number
  keyType: string
  fingerprint: string
  otherKeyTypes: string[]
}

export interface ConnectOptions {
  /** an alias from ~/.ssh/config, a host name, or an address */
  host: string
  port?: number
  user?: string
  /** tried after the ones ~/.ssh/config names for the host */
  identityFiles?: string[]
  /** ssh-agent socket; default SSH_AUTH_SOCK; false = do not use an agent */
  agent?: string | false
  secrets?: SecretSource
  knownHosts: KnownHosts
  /** asked on first contact; true records the key in FT Lab's store; absent = refuse unknown keys */
  confirmHostKey?: (prompt: HostKeyPrompt) => Promise<boolean>
  /** default: ~/.ssh/config; SshConfig.empty() to ignore it */
  sshConfig?: SshConfig
  /** overrides the config's ProxyJump; 'none' or [] = direct */
  proxyJump?: string | JumpHop[]
  readyTimeoutMs?: number
  keepaliveIntervalMs?: number
  keepaliveCountMax?: number
  /** at most this many password prompts per connection (OpenSSH's NumberOfPasswordPrompts) */
  passwordAttempts?: number
}

export interface ExecResult {
  code: number | null
  signal: string | null
  stdout: Buffer
  stderr: Buffer
}

export interface ConnectionTarget {
  alias: string
  host: string
  port: number
  user: string
}

const DEFAULT_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa'
]

/** Offers algorithms for already-recorded key types first, as OpenSSH does, so a host with several keys shows the one we know. */
export function hostKeyAlgorithmsFor(knownTypes: string[]): string[] {
  const first: string[] = []
  for (const t of knownTypes) {
    const algos = t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t]
    for (const a of algos) if (DEFAULT_HOST_KEY_ALGORITHMS.includes(a) && !first.includes(a)) first.push(a)
  }
  return [...first, ...DEFAULT_HOST_KEY_ALGORITHMS.filter((a) => !first.includes(a))]
}

export function targetName(t: { user?: string; host: string; port: number }): string {
  return `${t.user ? t.user + '@' : ''}${t.host}:${t.port}`
}

export class SshConnection extends EventEmitter {
  private sftpSession: Promise<SFTPWrapper> | null = null
  private ended = false

  constructor(
    readonly client: SshClient,
    readonly target: ConnectionTarget,
    /** connections this one is tunnelled through, closed with it */
    private readonly jumps: SshConnection[] = []
  ) {
    super()
    client.on('close', () => {
      this.ended = true
      for (const j of this.jumps) j.close()
      this.emit('close')
    })
    // After the handshake, errors surface through the operations that hit them; an
    // 'error' with no listener would otherwise crash a long-running console.
    client.on('error', (err) => this.emit('connection-error', err))
  }

  get closed(): boolean {
    return this.ended
  }

  get name(): string {
    return targetName(this.target)
  }

  /**
   * Runs one command; `stdin` is written then closed (how secrets reach a remote process). A
   * stream as `stdin` is piped in with backpressure: how files are uploaded (one channel, no
   * SFTP subsystem, and the remote command can check what it received before using it).
   */
  exec(command: string, opts: { stdin?: string | Buffer | Readable; timeoutMs?: number } = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      if (this.ended) return reject(new SshError('closed', this.name, `connection to ${this.name} is closed`))
      this.client.exec(command, (err, ch) => {
        if (err) return reject(new SshError('remote', this.name, `cannot run a command on ${this.name}: ${err.message}`))
        const out: Buffer[] = []
        const errOut: Buffer[] = []
        let code: number | null = null
        let signal: string | null = null
        let timer: NodeJS.Timeout | undefined
        if (opts.timeoutMs) {
          timer = setTimeout(() => {
            ch.close()
            reject(new SshError('timeout', this.name, `command on ${this.name} did not finish within ${opts.timeoutMs} ms`))
          }, opts.timeoutMs)
        }
        ch.on('data', (d: Buffer) => out.push(d))
        ch.stderr.on('data', (d: Buffer) => errOut.push(d))
        ch.on('exit', (c: number | null, sig?: string) => {
          code = c
          signal = sig ?? null
        })
        ch.on('close', () => {
          clearTimeout(timer)
          resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(errOut) })
        })
        ch.on('error', (e: Error) => {
          clearTimeout(timer)
          reject(new SshError('remote', this.name, `command on ${this.name} failed: ${e.message}`))
        })
        if (opts.stdin instanceof Readable) {
          pipeline(opts.stdin, ch).catch(() => {
            // the remote command stopped reading (a full disk, a failed check): its exit status and stderr say why
          })
        } else if (opts.stdin !== undefined) ch.end(opts.stdin)
        else ch.end()
      })
    })
  }

  sftp(): Promise<SFTPWrapper> {
    if (!this.sftpSession) {
      this.sftpSession = new Promise((resolve, reject) => {
        this.client.sftp((err, sftp) => {
          if (err) {
            this.sftpSession = null
            return reject(new SshError('remote', this.name, `cannot open SFTP on ${this.name}: ${err.message}`))
          }
          sftp.on('close', () => {
            this.sftpSession = null
          })
          resolve(sftp)
        })
      })
    }
    return this.sftpSession
  }

  /** A TCP stream to host:port as seen from the remote host (the agent's loopback control port). */
  forwardOut(host: string, port: number): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      if (this.ended) return reject(new SshError('closed', this.name, `connection to ${this.name} is closed`))
      this.client.forwardOut('127.0.0.1', 0, host, port, (err, ch: ClientChannel) => {
        if (err) {
          return reject(new SshError('remote', this.name, `${this.name} cannot open a channel to ${host}:${port}: ${err.message}`))
        }
        resolve(ch)
      })
    })
  }

  close(): void {
    if (!this.ended) this.client.end()
    for (const j of this.jumps) j.close()
  }
}

interface AuthAttempt {
  label: string
  method: 'publickey' | 'password'
  make: () => Promise<AnyAuthMethod | null>
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

function keyAttempt(keyPath: string, user: string, host: string, port: number, secrets?: SecretSource): AuthAttempt {
  return {
    label: `publickey (${keyPath})`,
    method: 'publickey',
    make: async () => {
      let data: Buffer
      try {
        data = await readFile(keyPath)
      } catch {
        return null
      }
      let parsed = utils.parseKey(data)
      for (let attempt = 1; parsed instanceof Error && /passphrase|encrypted/i.test(parsed.message); attempt++) {
        if (!secrets?.passphrase || attempt > 3) return null
        const pass = await secrets.passphrase({ keyPath, user, host, port, attempt })
        if (pass === null) return null
        parsed = utils.parseKey(data, pass)
      }
      if (parsed instanceof Error) return null
      const key = Array.isArray(parsed) ? parsed[0] : parsed
      if (!key) return null
      return { type: 'publickey', username: user, key }
    }
  }
}

/** Connects directly (or over `sock`) to one hop; no ProxyJump handling here. */
function connectHop(
  opts: ConnectOptions,
  target: ConnectionTarget,
  identityFiles: string[],
  sock: Duplex | undefined,
  jumps: SshConnection[]
): Promise<SshConnection> {
  const name = targetName(target)
  const readyTimeout = opts.readyTimeoutMs ?? 20_000
  const attempts: AuthAttempt[] = []
  const agentSock = opts.agent === false ? undefined : (opts.agent ?? process.env.SSH_AUTH_SOCK)
  if (agentSock) {
    attempts.push({
      label: 'publickey (ssh-agent)',
      method: 'publickey',
      make: async () => ({ type: 'agent', username: target.user, agent: agentSock })
    })
  }
  for (const f of identityFiles) attempts.push(keyAttempt(f, target.user, target.host, target.port, opts.secrets))
  const maxPw = opts.passwordAttempts ?? 3
  for (let attempt = 1; opts.secrets?.password && attempt <= maxPw; attempt++) {
    attempts.push({
      label: 'password',
      method: 'password',
      make: async () => {
        const pw = await opts.secrets!.password!({ user: target.user, host: target.host, port: target.port, attempt })
        // Once declined, do not ask again in this connection.
        if (pw === null) {
          for (let i = attempts.length - 1; i >= 0; i--) if (attempts[i]!.method === 'password') attempts.splice(i, 1)
          return null
        }
        return { type: 'password', username: target.user, password: pw }
      }
    })
  }

  return new Promise((resolve, reject) => {
    const client = new Client()
    let hostKeyRefusal: SshError | null = null
    const tried: string[] = []
    let serverMethods: string[] | null = null
    let settled = false
    // The handshake deadline is ours, not ssh2's readyTimeout: it stops while the operator is
    // asked (an unknown host key, a password, a passphrase) and starts afresh after the answer,
    // so a deploy does not fail because someone took ten seconds to compare a fingerprint.
    let deadline: ReturnType<typeof setTimeout> | null = null
    const disarm = (): void => {
      if (deadline) clearTimeout(deadline)
      deadline = null
    }
    const arm = (): void => {
      disarm()
      if (settled || readyTimeout <= 0) return
      deadline = setTimeout(() => {
        client.destroy()
        fail(mapConnectError(Object.assign(new Error('Timed out while waiting for handshake'), { level: 'client-timeout' }), name, readyTimeout))
      }, readyTimeout)
    }
    const whileAsking = async <T>(ask: () => Promise<T>): Promise<T> => {
      disarm()
      try {
        return await ask()
      } finally {
        arm()
      }
    }
    const fail = (err: unknown): void => {
      if (settled) return
      settled = true
      disarm()
      client.removeAllListeners('ready')
      client.on('error', () => {}) // late errors after the failure is reported
      client.end()
      reject(err)
    }

    const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
      let v: HostKeyVerdict
      try {
        v = opts.knownHosts.check(target.host, target.port, key)
      } catch (e) {
        hostKeyRefusal = new SshError('protocol', name, `${name} sent a malformed host key: ${(e as Error).message}`)
        return verify(false)
      }
      const recorded = knownHostName(target.host, target.port)
      switch (v.kind) {
        case 'known':
          return verify(true)
        case 'revoked':
          hostKeyRefusal = new SshError(
            'host-key-revoked',
            name,
            `host key of ${recorded} (${v.keyType} ${v.fingerprint}) is REVOKED (marked @revoked at ${where(v.recordedAt)}); refusing to connect`,
            { verdict: v }
          )
          return verify(false)
        case 'changed':
          hostKeyRefusal = new SshError(
            'host-key-changed',
            name,
            `HOST KEY CHANGED for ${recorded}: it now shows ${v.keyType} ${v.fingerprint}, but ${v.recordedFingerprint} is recorded at ${where(v.recordedAt)}. ` +
              `This may be an attack (someone in the middle) or the host was reinstalled; refusing to connect. ` +
              `If the change is expected, remove that line and connect again.`,
            { verdict: v }
          )
          return verify(false)
        case 'unknown': {
          const unknownError = new SshError(
            'host-key-unknown',
            name,
            `host key of ${recorded} is not known: ${v.keyType} ${v.fingerprint}` +
              (v.otherKeyTypes.length ? ` (keys of other types are recorded: ${v.otherKeyTypes.join(', ')})` : '') +
              `; compare it with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_${v.keyType.replace(/^ssh-|-sha2-.*$/g, '')}_key.pub) and accept it to continue`,
            { verdict: v }
          )
          if (!opts.confirmHostKey) {
            hostKeyRefusal = unknownError
            return verify(false)
          }
          const confirm = opts.confirmHostKey
          whileAsking(() => confirm({ host: target.host, port: target.port, keyType: v.keyType, fingerprint: v.fingerprint, otherKeyTypes: v.otherKeyTypes }))
            .then(async (ok) => {
              if (!ok) {
                hostKeyRefusal = unknownError
                return verify(false)
              }
              await opts.knownHosts.accept(target.host, target.port, key)
              verify(true)
            })
            .catch((e: unknown) => {
              hostKeyRefusal = new SshError('host-key-unknown', name, `host key of ${recorded} was not accepted: ${(e as Error).message}`, { verdict: v })
              verify(false)
            })
          return
        }
      }
    }

    const authHandler = (methodsLeft: string[] | null, _partial: boolean | null, next: (auth: AnyAuthMethod | false) => void): void => {
      if (methodsLeft) serverMethods = methodsLeft
      const step = async (): Promise<void> => {
        while (attempts.length > 0) {
          const a = attempts.shift()!
          if (serverMethods && !serverMethods.includes(a.method)) continue
          let auth: AnyAuthMethod | null
          try {
            // making an attempt may ask the operator (a password, a key's passphrase)
            auth = await whileAsking(() => a.make())
          } catch {
            auth = null
          }
          if (auth) {
            if (tried.at(-1) !== a.label || a.method === 'password') tried.push(a.label)
            return next(auth)
          }
        }
        next(false)
      }
      void step()
    }

    client.on('ready', () => {
      if (settled) return
      settled = true
      disarm()
      client.removeAllListeners('error')
      resolve(new SshConnection(client, target, jumps))
    })
    client.on('error', (err: Error & { level?: string }) => {
      if (hostKeyRefusal) return fail(hostKeyRefusal)
      if (err.level === 'client-authentication') {
        const triedText = tried.length ? tried.join(', ') : 'nothing (no agent, no readable key, no password source)'
        return fail(
          new SshError('auth', name, `authentication failed for ${name}; tried: ${triedText}; the server accepts: ${serverMethods?.join(', ') ?? 'unknown'}`, {
            methodsTried: [...tried]
          })
        )
      }
      if (err.level === 'agent') return // one agent failure: the handler moves on to the next method
      fail(mapConnectError(err, name, readyTimeout))
    })
    client.on('close', () => {
      if (hostKeyRefusal) return fail(hostKeyRefusal)
      fail(new SshError('closed', name, `${name} closed the connection during the SSH handshake`))
    })

    const config: ConnectConfig = {
      host: target.host,
      port: target.port,
      username: target.user,
      readyTimeout: 0, // the deadline above, which does not count the operator's time
      keepaliveInterval: opts.keepaliveIntervalMs ?? 10_000,
      keepaliveCountMax: opts.keepaliveCountMax ?? 3,
      hostVerifier: hostVerifier as ConnectConfig['hostVerifier'],
      authHandler: authHandler as ConnectConfig['authHandler'],
      algorithms: { serverHostKey: hostKeyAlgorithmsFor(opts.knownHosts.knownKeyTypes(target.host, target.port)) as never },
      ...(sock ? { sock: sock as never } : {})
    }
    try {
      client.connect(config)
      arm()
    } catch (e) {
      fail(new SshError('bad-input', name, `cannot connect to ${name}: ${(e as Error).message}`))
    }
  })
}

async function defaultIdentityFiles(): Promise<string[]> {
  const dir = join(homedir(), '.ssh')
  const out: string[] = []
  for (const f of ['id_ed25519', 'id_ecdsa', 'id_rsa']) if (await exists(join(dir, f))) out.push(join(dir, f))
  return out
}

/**
 * Connects to a host as `ssh` would: ~/.ssh/config decides the real address, user, port,
 * keys and jump hosts (explicit options win), each hop's key is verified, and a failure is
 * an SshError whose kind and message say exactly what went wrong.
 */
export async function connect(opts: ConnectOptions): Promise<SshConnection> {
  if (typeof opts.host !== 'string' || opts.host.trim() === '' || /\s/.test(opts.host)) {
    throw new SshError('bad-input', String(opts.host), `host must be a non-empty name or address without spaces, got ${JSON.stringify(opts.host)}`)
  }
  if (opts.port !== undefined && !(Number.isInteger(opts.port) && opts.port >= 1 && opts.port <= 65535)) {
    throw new SshError('bad-input', opts.host, `port must be an integer from 1 to 65535, got ${JSON.stringify(opts.port)}`)
  }
  const config = opts.sshConfig ?? (await SshConfig.load())
  const resolved = config.resolve(opts.host)
  const target: ConnectionTarget = {
    alias: opts.host,
    host: resolved.hostName,
    port: opts.port ?? resolved.port,
    user: opts.user ?? resolved.user
  }
  const configured = [...resolved.identityFiles, ...(opts.identityFiles ?? [])]
  const identityFiles = configured.length > 0 || resolved.identitiesOnly ? configured : await defaultIdentityFiles()

  let hops: JumpHop[]
  if (opts.proxyJump === undefined) hops = resolved.proxyJump
  else if (typeof opts.proxyJump === 'string') hops = opts.proxyJump.toLowerCase() === 'none' ? [] : parseJumpSpec(opts.proxyJump)
  else hops = opts.proxyJump

  // Each hop is a host in its own right: its alias is looked up in the config too.
  const hopTargets = hops.map((hop) => {
    const hr = config.resolve(hop.host)
    const t: ConnectionTarget = { alias: hop.host, host: hr.hostName, port: hop.port ?? hr.port, user: hop.user ?? hr.user }
    return { target: t, identityFiles: hr.identityFiles.length > 0 ? [...hr.identityFiles, ...(opts.identityFiles ?? [])] : identityFiles }
  })
  const jumps: SshConnection[] = []
  try {
    let sock: Duplex | undefined
    for (let i = 0; i < hopTargets.length; i++) {
      const hop = hopTargets[i]!
      let conn: SshConnection
      try {
        conn = await connectHop(opts, hop.target, hop.identityFiles, sock, [])
      } catch (e) {
        const err = e as SshError
        throw new SshError(err.kind, targetName(target), `via jump host ${targetName(hop.target)}: ${err.message}`, err.extra)
      }
      jumps.push(conn)
      const next = hopTargets[i + 1]?.target ?? target
      try {
        sock = await conn.forwardOut(next.host, next.port)
      } catch (e) {
        throw new SshError('unreachable', targetName(target), `jump host ${conn.name} cannot reach ${next.host}:${next.port}: ${(e as Error).message}`)
      }
    }
    return await connectHop(opts, target, identityFiles, sock, jumps)
  } catch (e) {
    for (const j of jumps) j.close()
    throw e
  }
}
