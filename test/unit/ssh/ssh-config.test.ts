import { describe, expect, it } from 'vitest'
import { SshConfig, SshConfigError, matchPattern, matchPatternList, parseJumpSpec } from '../../../main/ssh/ssh-config.js'

const ctx = { home: '/home/op', localUser: 'op' }

describe('host patterns', () => {
  it('globs with * and ? case-insensitively', () => {
    expect(matchPattern('web1.lab', '*.lab')).toBe(true)
    expect(matchPattern('WEB1.LAB', 'web?.lab')).toBe(true)
    expect(matchPattern('web10.lab', 'web?.lab')).toBe(false)
    expect(matchPattern('abc', 'a*b*c')).toBe(true)
    expect(matchPattern('ab', 'a*b*c')).toBe(false)
  })

  it('lets a negation veto a positive match, and needs a positive one', () => {
    expect(matchPatternList('db.lab', ['*.lab', '!db.lab'])).toBe(false)
    expect(matchPatternList('web.lab', ['*.lab', '!db.lab'])).toBe(true)
    expect(matchPatternList('web.lab', ['!db.lab'])).toBe(false)
  })
})

describe('ssh config resolution', () => {
  const text = `
# global defaults come first
ServerAliveInterval 30

Host a
  HostName 10.87.0.11
  User ftlab1
  IdentityFile ~/.ssh/lab_key

Host b c
  HostName %h.lab.example
  Port=2222

Host *.internal !gw.internal
  ProxyJump admin@gw.internal:2200,bastion
  User deploy

Host "quoted"
  IdentityFile "/keys/with space"

Host *
  User fallback
  Port 22
  IdentityFile ~/.ssh/id_ed25519
  ProxyJump none
`
  const cfg = SshConfig.parse(text, 'cfg')

  it('applies the first value obtained for each option, and collects IdentityFiles in order', () => {
    const a = cfg.resolve('a', ctx)
    expect(a).toMatchObject({ alias: 'a', hostName: '10.87.0.11', user: 'ftlab1', port: 22, proxyJump: [] })
    expect(a.identityFiles).toEqual(['/home/op/.ssh/lab_key', '/home/op/.ssh/id_ed25519'])
    expect(a.options.get('serveraliveinterval')).toEqual(['30'])
  })

  it('expands %h in HostName and takes Key=Value syntax', () => {
    expect(cfg.resolve('c', ctx)).toMatchObject({ hostName: 'c.lab.example', port: 2222, user: 'fallback' })
  })

  it('parses ProxyJump hops, and a negated pattern keeps the jump host itself direct', () => {
    const db = cfg.resolve('db.internal', ctx)
    expect(db.user).toBe('deploy')
    expect(db.proxyJump).toEqual([{ host: 'gw.internal', user: 'admin', port: 2200 }, { host: 'bastion' }])
    expect(cfg.resolve('gw.internal', ctx).proxyJump).toEqual([])
  })

  it('honours quoted arguments', () => {
    expect(cfg.resolve('quoted', ctx).identityFiles[0]).toBe('/keys/with space')
  })

  it('falls back to the alias, port 22 and the local user when nothing matches', () => {
    const r = SshConfig.parse('Host other\n  User x\n').resolve('10.0.0.9', ctx)
    expect(r).toMatchObject({ hostName: '10.0.0.9', user: 'op', port: 22, identityFiles: [], proxyJump: [] })
  })

  it('ignores Match blocks (with a warning) but applies Match all', () => {
    const c = SshConfig.parse('Match exec "true"\n  User nope\nMatch all\n  User yes\n', 'm')
    expect(c.resolve('h', ctx).user).toBe('yes')
    expect(c.warnings).toEqual([expect.stringMatching(/^m:1: 'Match exec "true"' is not evaluated/)])
  })

  it('rejects a bad port with the file and line', () => {
    expect(() => SshConfig.parse('Host x\n  Port 99999\n', '/etc/cfg')).toThrow(
      new SshConfigError('/etc/cfg', 2, "Port must be a number from 1 to 65535, got '99999'")
    )
    expect(() => SshConfig.parse('Host x\n  HostName\n', 'f')).toThrow(/^f:2: 'HostName' has no value/)
    expect(() => SshConfig.parse('Host x\n  ProxyJump a:0\n', 'f')).toThrow(/^f:2: .*bad port/)
  })

  it('loads a missing file as an empty configuration', async () => {
    const c = await SshConfig.load('/nonexistent/ftlab/ssh_config')
    expect(c.resolve('h', ctx).hostName).toBe('h')
  })
})

describe('jump specs', () => {
  it('handles ssh:// URIs and bracketed IPv6 addresses', () => {
    expect(parseJumpSpec('ssh://u@[::1]:2022,h')).toEqual([{ host: '::1', user: 'u', port: 2022 }, { host: 'h' }])
  })
  it('rejects empty hops', () => {
    expect(() => parseJumpSpec('a,,b')).toThrow(/empty hop/)
  })
})
