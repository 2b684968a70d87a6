// Host-key verification against OpenSSH's known_hosts files and FT Lab's own store.
// ssh2 accepts any host key unless told otherwise (DESIGN.md, Security), so every
// connection asks this module first: known keys pass, unknown ones are put to the
// operator with their SHA256 fingerprint, changed or revoked ones are refused.
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { appendFile, mkdir, readFile, writeFile, rename } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { matchPatternList } from './ssh-config.js'

export function ftlabHome(): string {
  return process.env.FTLAB_HOME || join(homedir(), '.ftlab')
}

export interface KnownHostEntry {
  source: string
  line: number
  marker: 'revoked' | 'cert-authority' | null
  /** plain patterns (may hold wildcards, negations, `[host]:port`); empty when hashed */
  patterns: string[]
  hashed: { salt: Buffer; hash: Buffer } | null
  keyType: string
  key: Buffer
}

export interface RecordedAt {
  source: string
  line: number
}

export type HostKeyVerdict =
  | { kind: 'known'; keyType: string; fingerprint: string; recordedAt: RecordedAt }
  | {
      kind: 'unknown'
      keyType: string
      fingerprint: string
      /** key types recorded for this host other than the one offered (not a mismatch) */
      otherKeyTypes: string[]
    }
  | { kind: 'changed'; keyType: string; fingerprint: string; recordedFingerprint: string; recordedAt: RecordedAt }
  | { kind: 'revoked'; keyType: string; fingerprint: string; recordedAt: RecordedAt }

/** OpenSSH's `SHA256:` fingerprint: base64 of the key blob's digest, padding removed. */
export function fingerprint(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')
}

/** The algorithm name inside an SSH public-key blob (its first length-prefixed string). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) throw new Error('host key blob is too short')
  const len = keyBlob.readUInt32BE(0)
  if (len === 0 || len > 64 || 4 + len > keyBlob.length) throw new Error('host key blob has no key type')
  return keyBlob.subarray(4, 4 + len).toString('latin1')
}

/** The name a host is recorded under: `host` for port 22, `[host]:port` otherwise. */
export function knownHostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`
}

/** `|1|salt|hash`, as written by `ssh-keygen -H` (HMAC-SHA1 keyed by the salt). */
export function hashKnownHostName(name: string, salt: Buffer = randomBytes(20)): string {
  const hash = createHmac('sha1', salt).update(name).digest()
  return `|1|${salt.toString('base64')}|${hash.toString('base64')}`
}

export interface ParseResult {
  entries: KnownHostEntry[]
  /** lines that were skipped, with why; never fatal, since the file is the operator's */
  warnings: string[]
}

export function parseKnownHosts(text: string, source: string): ParseResult {
  const entries: KnownHostEntry[] = []
  const warnings: string[] = []
  const lines = text.split(/\r?\n/)
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim()
    if (line === '' || line.startsWith('#')) continue
    const fields = line.split(/\s+/)
    let marker: KnownHostEntry['marker'] = null
    if (fields[0]!.startsWith('@')) {
      const m = fields.shift()!
      if (m === '@revoked') marker = 'revoked'
      else if (m === '@cert-authority') marker = 'cert-authority'
      else {
        warnings.push(`${source}:${n + 1}: unknown marker '${m}', line ignored`)
        continue
      }
    }
    if (fields.length < 3) {
      warnings.push(`${source}:${n + 1}: expected 'hosts keytype key', line ignored`)
      continue
    }
    const [hosts, keyType, b64] = fields as [string, string, string]
    const key = Buffer.from(b64, 'base64')
    let blobType: string
    try {
      blobType = keyTypeOf(key)
    } catch {
      warnings.push(`${source}:${n + 1}: key is not valid base64 SSH key data, line ignored`)
      continue
    }
    if (blobType !== keyType && !keyType.includes('-cert-')) {
      warnings.push(`${source}:${n + 1}: key type '${keyType}' does not match the key's own '${blobType}', line ignored`)
      continue
    }
    let hashed: KnownHostEntry['hashed'] = null
    let patterns: string[] = []
    if (hosts.startsWith('|1|')) {
      const parts = hosts.split('|')
      const salt = Buffer.from(parts[2] ?? '', 'base64')
      const hash = Buffer.from(parts[3] ?? '', 'base64')
      if (parts.length !== 4 || salt.length === 0 || hash.length !== 20) {
        warnings.push(`${source}:${n + 1}: malformed hashed host name, line ignored`)
        continue
      }
      hashed = { salt, hash }
    } else {
      patterns = hosts.split(',').filter((p) => p !== '')
    }
    entries.push({ source, line: n + 1, marker, patterns, hashed, keyType, key })
  }
  return { entries, warnings }
}

function entryMatches(e: KnownHostEntry, name: string): boolean {
  if (e.hashed) {
    const h = createHmac('sha1', e.hashed.salt).update(name).digest()
    return h.equals(e.hashed.hash)
  }
  return matchPatternList(name, e.patterns)
}

export interface KnownHostsFiles {
  /** OpenSSH's files, read only; default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts */
  readOnly?: string[]
  /** FT Lab's own store, where accepted keys go; default <FTLAB_HOME or ~/.ftlab>/known_hosts */
  store?: string
}

export class KnownHosts {
  private constructor(
    private entries: KnownHostEntry[],
    readonly storePath: string,
    readonly warnings: string[]
  ) {}

  static async load(files: KnownHostsFiles = {}): Promise<KnownHosts> {
    const readOnly = files.readOnly ?? [join(homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts']
    const store = files.store ?? join(ftlabHome(), 'known_hosts')
    const entries: KnownHostEntry[] = []
    const warnings: string[] = []
    for (const path of [...readOnly, store]) {
      let text: string
      try {
        text = await readFile(path, 'utf8')
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code !== 'ENOENT' && code !== 'ENOTDIR') warnings.push(`${path}: cannot read (${(e as Error).message})`)
        continue
      }
      const r = parseKnownHosts(text, path)
      entries.push(...r.entries)
      warnings.push(...r.warnings)
    }
    return new KnownHosts(entries, store, warnings)
  }

  /** Certificate-authority lines need host certificates, which FT Lab does not use, so they vouch for nothing. */
  check(host: string, port: number, keyBlob: Buffer): HostKeyVerdict {
    const name = knownHostName(host, port)
    const keyType = keyTypeOf(keyBlob)
    const fp = fingerprint(keyBlob)
    // A revoked key is refused for every host, whatever else vouches for it.
    const revoked = this.entries.find((e) => e.marker === 'revoked' && e.key.equals(keyBlob))
    if (revoked) return { kind: 'revoked', keyType, fingerprint: fp, recordedAt: at(revoked) }
    const forHost = this.entries.filter((e) => e.marker === null && entryMatches(e, name))
    const good = forHost.find((e) => e.key.equals(keyBlob))
    if (good) return { kind: 'known', keyType, fingerprint: fp, recordedAt: at(good) }
    const sameType = forHost.find((e) => e.keyType === keyType)
    if (sameType) {
      return { kind: 'changed', keyType, fingerprint: fp, recordedFingerprint: fingerprint(sameType.key), recordedAt: at(sameType) }
    }
    return { kind: 'unknown', keyType, fingerprint: fp, otherKeyTypes: [...new Set(forHost.map((e) => e.keyType))] }
  }

  /** Key types already recorded for a host: offered first, so a known key is what the server shows. */
  knownKeyTypes(host: string, port: number): string[] {
    const name = knownHostName(host, port)
    return [...new Set(this.entries.filter((e) => e.marker === null && entryMatches(e, name)).map((e) => e.keyType))]
  }

  /** Records an operator-accepted key in FT Lab's store (never in the operator's own files). */
  async accept(host: string, port: number, keyBlob: Buffer): Promise<void> {
    const verdict = this.check(host, port, keyBlob)
    if (verdict.kind === 'known') return
    if (verdict.kind === 'revoked') {
      throw new Error(`refusing to record a revoked key for ${knownHostName(host, port)} (revoked at ${where(verdict.recordedAt)})`)
    }
    if (verdict.kind === 'changed') {
      throw new Error(
        `refusing to record a new key for ${knownHostName(host, port)}: a different ${verdict.keyType} key is recorded at ${where(verdict.recordedAt)}; remove that line first`
      )
    }
    const keyType = keyTypeOf(keyBlob)
    const line = `${knownHostName(host, port)} ${keyType} ${keyBlob.toString('base64')}\n`
    await mkdir(dirname(this.storePath), { recursive: true, mode: 0o700 })
    let prefix = ''
    let lineNo = 1
    try {
      const current = await readFile(this.storePath, 'utf8')
      if (current.length > 0 && !current.endsWith('\n')) prefix = '\n'
      lineNo = (current + prefix).split('\n').length
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    }
    await appendFile(this.storePath, prefix + line, { mode: 0o600 })
    this.entries.push({ source: this.storePath, line: lineNo, marker: null, patterns: [knownHostName(host, port)], hashed: null, keyType, key: keyBlob })
  }

  /** Removes a host's entries from FT Lab's store; OpenSSH's files are the operator's to edit. */
  async forget(host: string, port: number): Promise<number> {
    const name = knownHostName(host, port)
    let text: string
    try {
      text = await readFile(this.storePath, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0
      throw e
    }
    const { entries } = parseKnownHosts(text, this.storePath)
    const drop = new Set(entries.filter((e) => e.marker === null && entryMatches(e, name)).map((e) => e.line))
    if (drop.size === 0) return 0
    const kept = text.split(/\r?\n/).filter((_, i) => !drop.has(i + 1))
    const tmp = `${this.storePath}.tmp-${process.pid}`
    await writeFile(tmp, kept.join('\n'), { mode: 0o600 })
    await rename(tmp, this.storePath)
    const rest = this.entries.filter((e) => e.source !== this.storePath)
    this.entries = [...rest, ...parseKnownHosts(kept.join('\n'), this.storePath).entries]
    return drop.size
  }
}

function at(e: KnownHostEntry): RecordedAt {
  return { source: e.source, line: e.line }
}

export function where(r: RecordedAt): string {
  return `${r.source}:${r.line}`
}
