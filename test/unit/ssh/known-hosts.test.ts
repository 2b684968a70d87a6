import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { KnownHosts, fingerprint, hashKnownHostName, keyTypeOf, knownHostName, parseKnownHosts } from '../../../main/ssh/known-hosts.js'

// Fixtures made with OpenSSH 9.2: `ssh-keygen -t ed25519`, `ssh-keygen -lf`, `ssh-keygen -H`.
const K1 = 'AAAAC3NzaC1lZDI1NTE5AAAAIIqtRLI7Kl87N5qBwvoW8esazdHbIqnnvy5CkaPKxvSq'
const K1_FP = 'SHA256:uI3ce09GgeOU8Xd/+1vL13uNfxpjV4M0wTNQmGtNxvA'
const K2 = 'AAAAC3NzaC1lZDI1NTE5AAAAIN6pWkFj3FrmIDu1L8LuaqzacBD7zxUV/5y9NcmfCyW6'
const K2_FP = 'SHA256:rCKVNTKbO5VDsrZ2kNrVBe5t8+G1Qm1+ImY0eZv6Ac0'
const RSA =
  'AAAAB3NzaC1yc2EAAAADAQABAAAAgQDQwAADjluIvlG/UQuwmq/Svv2+BrH0sltMyyjDL3HVUA5+rTT9KC+Hw2/t64KyGkz+tCjEF6tjb0bi7rXEHajJwYIH8/AlGC+igx4vpPdd70o30OERHE691KtXjHPAMA7E7iEuCsetagm9LqfWxC8HS/jmOX+jkXgyGg+46BYeYw=='
const RSA_FP = 'SHA256:2t8MR2kfEZ0pta7c0lHVAUxLq68oq1ZhnA9FD5e7L6U'
// alpha.example → K1 and [beta.example]:2222 → K2, hashed by `ssh-keygen -H`
const HASHED = [
  `|1|qYXtLOQnaCGXeUxLNhEd4u+xgUk=|WlXX3ySaalN8WQh/CluLXXDJLV8= ssh-ed25519 ${K1}`,
  `|1|hmFn8Eb0X/Zy1vAwAhQ/NCqQkgw=|E0l6etT/WmYpHggvfD1ol2/1brQ= ssh-ed25519 ${K2}`
].join('\n')

const blob = (b64: string): Buffer => Buffer.from(b64, 'base64')

describe('fingerprints and key blobs', () => {
  it('formats SHA256 fingerprints exactly as ssh-keygen -lf does', () => {
    expect(fingerprint(blob(K1))).toBe(K1_FP)
    expect(fingerprint(blob(K2))).toBe(K2_FP)
    expect(fingerprint(blob(RSA))).toBe(RSA_FP)
  })

  it('reads the key type out of the blob', () => {
    expect(keyTypeOf(blob(K1))).toBe('ssh-ed25519')
    expect(keyTypeOf(blob(RSA))).toBe('ssh-rsa')
    expect(() => keyTypeOf(Buffer.from([0, 0]))).toThrow(/too short/)
  })

  it('records non-default ports in [host]:port form', () => {
    expect(knownHostName('h', 22)).toBe('h')
    expect(knownHostName('10.0.0.1', 2222)).toBe('[10.0.0.1]:2222')
  })

  it('hashes host names like ssh-keygen -H (same salt, same hash)', () => {
    const salt = Buffer.from('qYXtLOQnaCGXeUxLNhEd4u+xgUk=', 'base64')
    expect(hashKnownHostName('alpha.example', salt)).toBe('|1|qYXtLOQnaCGXeUxLNhEd4u+xgUk=|WlXX3ySaalN8WQh/CluLXXDJLV8=')
  })
})

describe('parsing known_hosts', () => {
  it('skips bad lines with a warning naming file and line, and keeps the good ones', () => {
    const text = [
      '# comment',
      '',
      `good ssh-ed25519 ${K1}`,
      'short line',
      `bad ssh-ed25519 !!!notbase64`,
      `@weird h ssh-ed25519 ${K1}`,
      `mismatch ssh-rsa ${K1}`
    ].join('\n')
    const r = parseKnownHosts(text, 'kh')
    expect(r.entries).toHaveLength(1)
    expect(r.entries[0]).toMatchObject({ line: 3, patterns: ['good'], keyType: 'ssh-ed25519' })
    expect(r.warnings).toEqual([
      expect.stringMatching(/^kh:4: /),
      expect.stringMatching(/^kh:5: .*base64/),
      expect.stringMatching(/^kh:6: unknown marker '@weird'/),
      expect.stringMatching(/^kh:7: key type 'ssh-rsa' does not match/)
    ])
  })
})

describe('KnownHosts verdicts', () => {
  let dir: string
  let userFile: string
  let store: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ftlab-kh-'))
    userFile = join(dir, 'known_hosts')
    store = join(dir, 'ftlab', 'known_hosts')
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const load = (text: string): Promise<KnownHosts> => writeFile(userFile, text).then(() => KnownHosts.load({ readOnly: [userFile], store }))

  it('knows a key from a plain entry, a comma list, and a wildcard', async () => {
    const kh = await load(`a.example,10.0.0.5 ssh-ed25519 ${K1}\n*.lab.example,!bad.lab.example ssh-ed25519 ${K2}\n`)
    expect(kh.check('a.example', 22, blob(K1))).toMatchObject({ kind: 'known', recordedAt: { source: userFile, line: 1 } })
    expect(kh.check('10.0.0.5', 22, blob(K1)).kind).toBe('known')
    expect(kh.check('x.lab.example', 22, blob(K2)).kind).toBe('known')
    expect(kh.check('bad.lab.example', 22, blob(K2)).kind).toBe('unknown')
  })

  it('matches hashed entries, including [host]:port ones', async () => {
    const kh = await load(HASHED + '\n')
    expect(kh.check('alpha.example', 22, blob(K1)).kind).toBe('known')
    expect(kh.check('beta.example', 2222, blob(K2)).kind).toBe('known')
    // the port is part of the name: beta on 22 was never recorded
    expect(kh.check('beta.example', 22, blob(K2)).kind).toBe('unknown')
    expect(kh.check('alpha.example', 22, blob(K2))).toMatchObject({ kind: 'changed', recordedFingerprint: K1_FP, fingerprint: K2_FP })
  })

  it('reports an unknown host with the SHA256 fingerprint and other recorded key types', async () => {
    const kh = await load(`a.example ssh-rsa ${RSA}\n`)
    expect(kh.check('a.example', 22, blob(K1))).toEqual({ kind: 'unknown', keyType: 'ssh-ed25519', fingerprint: K1_FP, otherKeyTypes: ['ssh-rsa'] })
    expect(kh.check('nobody.example', 22, blob(K1))).toEqual({ kind: 'unknown', keyType: 'ssh-ed25519', fingerprint: K1_FP, otherKeyTypes: [] })
    expect(kh.knownKeyTypes('a.example', 22)).toEqual(['ssh-rsa'])
  })

  it('says where the old key of a changed host is recorded', async () => {
    const kh = await load(`# first\nother ssh-ed25519 ${K2}\na.example ssh-ed25519 ${K1}\n`)
    expect(kh.check('a.example', 22, blob(K2))).toEqual({
      kind: 'changed',
      keyType: 'ssh-ed25519',
      fingerprint: K2_FP,
      recordedFingerprint: K1_FP,
      recordedAt: { source: userFile, line: 3 }
    })
  })

  it('refuses a @revoked key even where another line vouches for it', async () => {
    const kh = await load(`a.example ssh-ed25519 ${K1}\n@revoked * ssh-ed25519 ${K1}\n`)
    expect(kh.check('a.example', 22, blob(K1))).toMatchObject({ kind: 'revoked', recordedAt: { line: 2 } })
    await expect(kh.accept('b.example', 22, blob(K1))).rejects.toThrow(/revoked/)
  })

  it('does not treat @cert-authority lines as a host key', async () => {
    const kh = await load(`@cert-authority *.example ssh-ed25519 ${K1}\n`)
    expect(kh.check('a.example', 22, blob(K1)).kind).toBe('unknown')
  })

  it("records accepted keys in FT Lab's store only, readable on the next load", async () => {
    const kh = await load('')
    await kh.accept('10.87.0.11', 22, blob(K1))
    await kh.accept('10.87.0.12', 2200, blob(K2))
    expect(kh.check('10.87.0.11', 22, blob(K1)).kind).toBe('known')
    expect(await readFile(userFile, 'utf8')).toBe('')
    expect(await readFile(store, 'utf8')).toBe(`10.87.0.11 ssh-ed25519 ${K1}\n[10.87.0.12]:2200 ssh-ed25519 ${K2}\n`)
    const again = await KnownHosts.load({ readOnly: [userFile], store })
    expect(again.check('10.87.0.12', 2200, blob(K2))).toMatchObject({ kind: 'known', recordedAt: { source: store, line: 2 } })
  })

  it('will not record over a changed key, and forgets only its own entries', async () => {
    const kh = await load(`a.example ssh-ed25519 ${K1}\n`)
    await expect(kh.accept('a.example', 22, blob(K2))).rejects.toThrow(new RegExp(`recorded at ${userFile}:1`))
    await kh.accept('b.example', 22, blob(K1))
    expect(await kh.forget('b.example', 22)).toBe(1)
    expect(kh.check('b.example', 22, blob(K1)).kind).toBe('unknown')
    expect(await kh.forget('a.example', 22)).toBe(0)
    expect(kh.check('a.example', 22, blob(K1)).kind).toBe('known')
  })

  it('uses FTLAB_HOME for the store by default', async () => {
    const saved = process.env.FTLAB_HOME
    process.env.FTLAB_HOME = join(dir, 'home')
    try {
      const kh = await KnownHosts.load({ readOnly: [] })
      expect(kh.storePath).toBe(join(dir, 'home', 'known_hosts'))
    } finally {
      if (saved === undefined) delete process.env.FTLAB_HOME
      else process.env.FTLAB_HOME = saved
    }
  })
})
