// A reader for OpenSSH's client configuration (~/.ssh/config), so FT Lab connects to a
// host alias exactly as `ssh alias` would: same HostName, User, Port, keys and jump hosts.
// Only the options FT Lab acts on are interpreted; everything else is kept as raw text.
import { readFile } from 'node:fs/promises'
import { homedir, userInfo } from 'node:os'
import { join } from 'node:path'

export class SshConfigError extends Error {
  constructor(
    readonly source: string,
    readonly line: number,
    message: string
  ) {
    super(`${source}:${line}: ${message}`)
    this.name = 'SshConfigError'
  }
}

export interface JumpHop {
  host: string
  user?: string
  port?: number
}

export interface ResolvedHost {
  /** the name the operator typed */
  alias: string
  hostName: string
  user: string
  port: number
  /** in config order; `~` and %-tokens expanded */
  identityFiles: string[]
  identitiesOnly: boolean
  /** hops in the order they are connected through; empty = direct */
  proxyJump: JumpHop[]
  /** every option that applied, lower-cased keyword → first value (raw) */
  options: Map<string, string[]>
}

interface Block {
  /** null = before the first Host line (applies to every host) */
  patterns: string[] | null
  /** a `Match` block whose criteria FT Lab does not evaluate */
  inert: boolean
  options: { key: string; args: string[]; line: number }[]
}

export interface ResolveContext {
  home?: string
  localUser?: string
}

/** `*` and `?` globbing as in OpenSSH's match_pattern(); case-insensitive like host matching. */
export function matchPattern(text: string, pattern: string): boolean {
  const t = text.toLowerCase()
  const p = pattern.toLowerCase()
  // Iterative wildcard match with backtracking to the last `*`.
  let ti = 0
  let pi = 0
  let star = -1
  let mark = 0
  while (ti < t.length) {
    if (pi < p.length && (p[pi] === '?' || p[pi] === t[ti])) {
      ti++
      pi++
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++
      mark = ti
    } else if (star !== -1) {
      pi = star + 1
      ti = ++mark
    } else {
      return false
    }
  }
  while (pi < p.length && p[pi] === '*') pi++
  return pi === p.length
}

/** A pattern list matches when some positive pattern matches and no `!negated` one does. */
export function matchPatternList(text: string, patterns: string[]): boolean {
  let positive = false
  for (const pat of patterns) {
    if (pat.startsWith('!')) {
      if (matchPattern(text, pat.slice(1))) return false
    } else if (matchPattern(text, pat)) {
      positive = true
    }
  }
  return positive
}

/** Splits the arguments of one line, honouring double quotes as OpenSSH's argv_split does. */
function splitArgs(rest: string, source: string, line: number): string[] {
  const out: string[] = []
  let i = 0
  while (i < rest.length) {
    while (i < rest.length && /\s/.test(rest[i]!)) i++
    if (i >= rest.length) break
    if (rest[i] === '#') break
    let arg = ''
    if (rest[i] === '"') {
      const end = rest.indexOf('"', i + 1)
      if (end === -1) throw new SshConfigError(source, line, 'unterminated quote')
      arg = rest.slice(i + 1, end)
      i = end + 1
    } else {
      while (i < rest.length && !/\s/.test(rest[i]!)) arg += rest[i++]
    }
    out.push(arg)
  }
  return out
}

export function parseJumpSpec(spec: string, where = 'ProxyJump'): JumpHop[] {
  return spec.split(',').map((raw) => {
    let s = raw.trim()
    if (s === '') throw new Error(`${where}: empty hop in '${spec}'`)
    if (s.startsWith('ssh://')) s = s.slice(6).replace(/\/$/, '')
    let user: string | undefined
    const at = s.lastIndexOf('@')
    if (at !== -1) {
      user = s.slice(0, at)
      s = s.slice(at + 1)
    }
    let host = s
    let port: number | undefined
    const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s)
    if (bracket) {
      host = bracket[1]!
      if (bracket[2]) port = Number(bracket[2])
    } else {
      const colon = s.lastIndexOf(':')
      if (colon !== -1 && s.indexOf(':') === colon) {
        host = s.slice(0, colon)
        port = Number(s.slice(colon + 1))
      }
    }
    if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
      throw new Error(`${where}: bad port in hop '${raw.trim()}'`)
    }
    if (host === '') throw new Error(`${where}: no host in hop '${raw.trim()}'`)
    return { host, ...(user ? { user } : {}), ...(port ? { port } : {}) }
  })
}

export class SshConfig {
  private constructor(
    private readonly blocks: Block[],
    readonly source: string,
    /** things that were read but not applied (Include, Match), for the UI to show */
    readonly warnings: string[]
  ) {}

  static empty(): SshConfig {
    return new SshConfig([], '(none)', [])
  }

  static parse(text: string, source = 'ssh_config'): SshConfig {
    const blocks: Block[] = [{ patterns: null, inert: false, options: [] }]
    const warnings: string[] = []
    const lines = text.split(/\r?\n/)
    for (let n = 0; n < lines.length; n++) {
      const lineNo = n + 1
      const line = lines[n]!.trim()
      if (line === '' || line.startsWith('#')) continue
      const m = /^([A-Za-z][A-Za-z0-9]*)(?:\s*=\s*|\s+)(.*)$/.exec(line)
      if (!m) {
        if (/^[A-Za-z][A-Za-z0-9]*$/.test(line)) throw new SshConfigError(source, lineNo, `'${line}' has no value`)
        throw new SshConfigError(source, lineNo, `cannot parse '${line}'`)
      }
      const key = m[1]!.toLowerCase()
      const args = splitArgs(m[2]!, source, lineNo)
      if (args.length === 0) throw new SshConfigError(source, lineNo, `'${m[1]}' has no value`)
      if (key === 'host') {
        blocks.push({ patterns: args, inert: false, options: [] })
      } else if (key === 'match') {
        const all = args.length === 1 && args[0]!.toLowerCase() === 'all'
        if (!all) warnings.push(`${source}:${lineNo}: '${line}' is not evaluated; its options are ignored`)
        blocks.push({ patterns: all ? ['*'] : [], inert: !all, options: [] })
      } else if (key === 'include') {
        warnings.push(`${source}:${lineNo}: 'Include' is not followed; the included files are ignored`)
      } else {
        if (key === 'port') {
          const p = Number(args[0])
          if (!/^\d+$/.test(args[0]!) || p < 1 || p > 65535) {
            throw new SshConfigError(source, lineNo, `Port must be a number from 1 to 65535, got '${args[0]}'`)
          }
        }
        if (key === 'proxyjump' && args[0]!.toLowerCase() !== 'none') {
          try {
            parseJumpSpec(args.join(''))
          } catch (e) {
            throw new SshConfigError(source, lineNo, (e as Error).message)
          }
        }
        blocks[blocks.length - 1]!.options.push({ key, args, line: lineNo })
      }
    }
    return new SshConfig(blocks, source, warnings)
  }

  /** Reads ~/.ssh/config (or `path`); a missing file is an empty configuration. */
  static async load(path = join(homedir(), '.ssh', 'config')): Promise<SshConfig> {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new SshConfig([], path, [])
      throw new Error(`cannot read SSH config ${path}: ${(e as Error).message}`, { cause: e })
    }
    return SshConfig.parse(text, path)
  }

  /** OpenSSH semantics: for each option the first value obtained wins; IdentityFile accumulates. */
  resolve(alias: string, ctx: ResolveContext = {}): ResolvedHost {
    const home = ctx.home ?? homedir()
    const localUser = ctx.localUser ?? safeLocalUser()
    const options = new Map<string, string[]>()
    const identityRaw: string[] = []
    for (const block of this.blocks) {
      if (block.inert) continue
      if (block.patterns !== null && !matchPatternList(alias, block.patterns)) continue
      for (const opt of block.options) {
        if (opt.key === 'identityfile') identityRaw.push(opt.args[0]!)
        else if (!options.has(opt.key)) options.set(opt.key, opt.args)
      }
    }
    const first = (k: string): string | undefined => options.get(k)?.[0]
    const hostName = expandTokens(first('hostname') ?? alias, { h: alias })
    const user = first('user') ?? localUser
    const port = first('port') ? Number(first('port')) : 22
    const tokens = { h: hostName, d: home, u: localUser, r: user, p: String(port) }
    const identityFiles = identityRaw.filter((f) => f.toLowerCase() !== 'none').map((f) => expandTokens(expandTilde(f, home), tokens))
    const jumpRaw = options.get('proxyjump')?.join('')
    const proxyJump = jumpRaw === undefined || jumpRaw.toLowerCase() === 'none' ? [] : parseJumpSpec(jumpRaw)
    return {
      alias,
      hostName,
      user,
      port,
      identityFiles,
      identitiesOnly: (first('identitiesonly') ?? 'no').toLowerCase() === 'yes',
      proxyJump,
      options
    }
  }
}

function safeLocalUser(): string {
  try {
    return userInfo().username
  } catch {
    return process.env.USER ?? 'root'
  }
}

export function expandTilde(path: string, home: string): string {
  if (path === '~') return home
  if (path.startsWith('~/')) return join(home, path.slice(2))
  return path
}

function expandTokens(s: string, tokens: Record<string, string>): string {
  return s.replace(/%(.)/g, (all, c: string) => (c === '%' ? '%' : (tokens[c] ?? all)))
}
