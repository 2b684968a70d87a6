import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { checkLabFileText, DEFAULT_PORT_BASE, LabFileError, loadLabFile, parseLabFile } from '../../../main/remote/lab-file.js'

const F = '/labs/x.json'
const host = (address: string, extra: Record<string, unknown> = {}) => ({ address, user: 'ops', identityFile: '~/.ssh/id_ed25519', auth: 'key', ...extra })
const base = () => ({ version: 1, hosts: { a: host('10.0.0.1'), b: host('10.0.0.2'), disk: host('10.0.0.3') } })
const parse = (o: unknown) => parseLabFile(JSON.stringify(o), F)
const fails = (o: unknown) => {
  try {
    parse(o)
  } catch (e) {
    expect(e).toBeInstanceOf(LabFileError)
    return (e as Error).message
  }
  throw new Error('expected the lab file to be refused')
}

describe('lab file', () => {
  it('reads a minimal file with defaults: kill power, faults over ssh, lab address = address', () => {
    const f = parse(base())
    expect(f.hosts.a).toEqual({
      slot: 'a',
      address: '10.0.0.1',
      user: 'ops',
      identityFile: join(homedir(), '.ssh/id_ed25519'),
      auth: 'key',
      labAddress: '10.0.0.1',
      portBase: DEFAULT_PORT_BASE,
      power: { driver: 'kill' },
      faults: { run: 'ssh' }
    })
    expect(f.hosts.spare).toBeUndefined()
  })

  it('resolves a relative identity file against the lab file', () => {
    const o = base()
    o.hosts.a = host('10.0.0.1', { identityFile: 'keys/a' })
    expect(parse(o).hosts.a.identityFile).toBe('/labs/keys/a')
  })

  it('takes power drivers, fault runners, a spare, a network and an alias with a lab address', () => {
    const f = parse({
      version: 1,
      name: 'rack-3',
      network: '192.168.50.0/24',
      hosts: {
        a: host('node-a', {
          auth: 'agent',
          identityFile: undefined,
          labAddress: '192.168.50.11',
          power: { driver: 'ipmi', host: 'bmc-a', user: 'admin' },
          faults: { run: 'sudo' }
        }),
        b: host('10.0.0.2', { power: { driver: 'libvirt', uri: 'qemu:///system', domain: 'ft-b' } }),
        disk: host('10.0.0.3', { power: { driver: 'command', off: 'pdu off 3', on: 'pdu on 3' }, faults: { run: 'netns', namespace: 'ftlab-h3' } }),
        spare: host('10.0.0.4', { auth: 'password', identityFile: undefined, port: 2222 })
      }
    })
    expect(f.name).toBe('rack-3')
    expect(f.network).toBe('192.168.50.0/24')
    expect(f.hosts.a.power).toEqual({ driver: 'ipmi', host: 'bmc-a', user: 'admin' })
    expect(f.hosts.a.faults).toEqual({ run: 'sudo' })
    expect(f.hosts.b.power).toEqual({ driver: 'libvirt', uri: 'qemu:///system', domain: 'ft-b' })
    expect(f.hosts.disk.faults).toEqual({ run: 'netns', namespace: 'ftlab-h3' })
    expect(f.hosts.spare).toMatchObject({ auth: 'password', port: 2222 })
  })

  it('names the file and the field in every refusal', () => {
    expect(fails({ ...base(), version: 2 })).toBe(`${F}: version: must be 1, got 2`)
    const noDisk = base() as { hosts: Record<string, unknown> }
    delete noDisk.hosts.disk
    expect(fails(noDisk)).toBe(`${F}: hosts.disk: is missing; a lab needs hosts a, b and disk`)
    const o = base() as { hosts: Record<string, Record<string, unknown>> }
    o.hosts.b.port = 70000
    expect(fails(o)).toBe(`${F}: hosts.b.port: must be an integer from 1 to 65535, got 70000`)
    const typo = base() as { hosts: Record<string, Record<string, unknown>> }
    typo.hosts.a.adress = 'x'
    expect(fails(typo)).toMatch(new RegExp(`^${F}: hosts\\.a\\.adress: unknown field; expected one of address, `))
    expect(fails({ ...base(), hosts: { ...base().hosts, c: host('10.0.0.9') } })).toBe(`${F}: hosts.c: unknown host role; the roles are a, b, disk, spare`)
  })

  it('refuses a password in the file and says what to do instead', () => {
    const o = base() as { hosts: Record<string, Record<string, unknown>> }
    o.hosts.a.password = 'hunter2'
    const m = fails(o)
    expect(m).toContain('hosts.a.password: secrets are never kept in the lab file')
    expect(m).not.toContain('hunter2')
  })

  it('checks auth, key, lab address, drivers and duplicates', () => {
    const set = (slot: 'a' | 'b' | 'disk', extra: Record<string, unknown>) => {
      const o = base() as { hosts: Record<string, Record<string, unknown>> }
      o.hosts[slot] = { ...o.hosts[slot], ...extra }
      return fails(o)
    }
    expect(set('a', { auth: 'kerberos' })).toContain('hosts.a.auth: must be "agent", "key" or "password", got "kerberos"')
    expect(set('a', { auth: undefined })).toContain('hosts.a.auth: is required')
    expect(set('a', { identityFile: undefined })).toContain('hosts.a.identityFile: is required with "auth": "key"')
    expect(set('b', { address: 'node-b' })).toContain('hosts.b.labAddress: is required when address ("node-b") is a name or alias')
    expect(set('b', { labAddress: 'node-b' })).toContain('hosts.b.labAddress: must be an IP address')
    expect(set('disk', { power: { driver: 'command' } })).toContain('hosts.disk.power.off: is required for the command driver')
    expect(set('disk', { power: { driver: 'ups' } })).toContain('hosts.disk.power.driver: must be "kill", "command", "ipmi", "libvirt" or "sysrq", got "ups"')
    expect(set('disk', { power: { driver: 'libvirt', uri: 'system', domain: 'd' } })).toContain('hosts.disk.power.uri: must be a libvirt URI')
    expect(set('disk', { faults: { run: 'netns' } })).toContain('hosts.disk.faults.namespace: must name a network namespace')
    expect(set('b', { address: '10.0.0.1' })).toContain('hosts.b.address: is the same login as hosts.a')
    expect(set('b', { labAddress: '10.0.0.1', address: '10.9.9.9' })).toContain('hosts.b.labAddress: 10.0.0.1 is also hosts.a')
    expect(fails({ ...base(), network: '10.0.0.0' })).toContain('network: must be a network like "10.87.0.0/24"')
  })

  it('takes an etcd tie-breaker, and checks its endpoints', () => {
    expect(parse(base()).arbiter).toBeUndefined()
    expect(parse({ ...base(), arbiter: { kind: 'disk' } }).arbiter).toBeUndefined()
    const urls = ['http://10.0.0.5:2379', 'https://etcd-2.lab:2379']
    expect(parse({ ...base(), arbiter: { kind: 'etcd', endpoints: urls } }).arbiter).toEqual({ kind: 'etcd', endpoints: urls })
    expect(fails({ ...base(), arbiter: { kind: 'zookeeper' } })).toBe(
      `${F}: arbiter.kind: must be "disk" (the disk server, the default) or "etcd", got "zookeeper"`
    )
    expect(fails({ ...base(), arbiter: { kind: 'etcd', endpoints: [] } })).toContain('arbiter.endpoints: must list 1 to 16 etcd client URLs')
    expect(fails({ ...base(), arbiter: { kind: 'etcd', endpoints: ['10.0.0.5:2379'] } })).toContain(
      'arbiter.endpoints: endpoint 1 must be an http:// or https:// client URL'
    )
    expect(fails({ ...base(), arbiter: { kind: 'etcd', endpoints: ['http://root:pw@10.0.0.5:2379'] } })).toContain(
      'arbiter.endpoints: endpoint 1 must be an http:// or https:// client URL without credentials'
    )
    // a fixed key prefix would make a redeployed lab find its generations already won
    expect(fails({ ...base(), arbiter: { kind: 'etcd', endpoints: urls, prefix: 'x' } })).toContain('arbiter.prefix: unknown field')
  })

  it('collects every error with the dotted path of its field, for a form to show each at its field', () => {
    const o = base() as Record<string, unknown> & { hosts: Record<string, Record<string, unknown>> }
    o.hosts.a.port = 0
    o.hosts.a.auth = 'kerberos'
    o.hosts.b.labAddress = 'node-b'
    o.hosts.disk.power = { driver: 'command' }
    o.arbiter = { kind: 'etcd', endpoints: ['http://ok:2379', 'ftp://x'] }
    o.colour = 'red'
    const r = checkLabFileText(JSON.stringify(o))
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.errors.map((e) => e.field)).toEqual(['colour', 'arbiter.endpoints', 'hosts.a.port', 'hosts.a.auth', 'hosts.b.labAddress', 'hosts.disk.power.off'])
    expect(r.errors.find((e) => e.field === 'hosts.a.port')?.message).toBe('must be an integer from 1 to 65535, got 0')
    expect(r.errors.find((e) => e.field === 'arbiter.endpoints')?.message).toBe(
      'endpoint 2 must be an http:// or https:// client URL without credentials, got "ftp://x"'
    )
    // the thrown form names the first and counts the rest
    expect(fails(o)).toBe(
      `${F}: colour: unknown field; expected one of version, name, guest, mode, network, arbiter, hosts (and 5 more: arbiter.endpoints, hosts.a.port, hosts.a.auth, hosts.b.labAddress, hosts.disk.power.off)`
    )
    expect(
      (() => {
        try {
          parse(o)
        } catch (e) {
          return (e as LabFileError).all.length
        }
      })()
    ).toBe(6)
  })

  it('checks text for the console: the file when it is good, the JSON error at the whole file when it is not JSON', () => {
    const good = checkLabFileText(JSON.stringify(base()), 'form')
    expect(good.ok && good.file.hosts.b.address).toBe('10.0.0.2')
    expect(checkLabFileText('{"version": 1,')).toMatchObject({ ok: false, errors: [{ field: '', message: expect.stringMatching(/^not valid JSON: /) }] })
  })

  it('says where broken JSON breaks, and names an unreadable file', () => {
    const m = (() => {
      try {
        parseLabFile('{\n  "version": 1,\n  "hosts": {,}\n}', F)
      } catch (e) {
        return (e as Error).message
      }
      return ''
    })()
    expect(m).toMatch(new RegExp(`^${F}: not valid JSON: .*line 3, column \\d+`))
    expect(() => loadLabFile('/nonexistent/ftlab/lab.json')).toThrow(/\/nonexistent\/ftlab\/lab\.json: cannot read the lab file/)
  })

  it('accepts the example lab file shipped in examples/', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftlab-labfile-'))
    try {
      const p = join(dir, 'lab.json')
      writeFileSync(p, readFileSync(new URL('../../../examples/lab.example.json', import.meta.url)))
      const f = loadLabFile(p)
      expect(Object.keys(f.hosts).sort()).toEqual(['a', 'b', 'disk', 'spare'])
      expect(f.arbiter?.kind).toBe('etcd')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
