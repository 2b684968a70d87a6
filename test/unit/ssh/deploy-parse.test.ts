import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { parseDetect, parseNodeVersion, parseReady, parseStarted } from '../../../main/ssh/deploy.js'
import { SshError } from '../../../main/ssh/errors.js'
import { shq } from '../../../main/ssh/remote-scripts.js'
import { nodeArchFor } from '../../../main/ssh/runtime-cache.js'

describe('deploy parsing', () => {
  it('reads the host facts the detect script prints', () => {
    expect(parseDetect('Linux\nx86_64\n/home/u\nv16.20.0\n123456\n', 'h')).toEqual({
      os: 'Linux',
      machine: 'x86_64',
      home: '/home/u',
      systemNode: 'v16.20.0',
      freeKiB: 123456,
      gzip: false,
      zstd: false,
      agentSha256: null,
      runtimes: {}
    })
    expect(parseDetect('Linux\naarch64\n/root\nnone\n\n', 'h')).toMatchObject({ systemNode: null, freeKiB: null })
    const a = 'a'.repeat(64)
    const b = 'b'.repeat(64)
    expect(
      parseDetect(`Linux\nx86_64\n/home/u\nnone\n99\ngzip=yes\nzstd=yes\nagent=${a}\nruntime=node-v22.1.0-linux-x64 ${b}\nruntime=broken\nagent=short\n`, 'h')
    ).toMatchObject({ gzip: true, zstd: true, agentSha256: a, runtimes: { 'node-v22.1.0-linux-x64': b } })
    expect(() => parseDetect('garbage', 'u@h:22')).toThrow(/cannot tell what u@h:22 is/)
  })

  it('takes the control port and pid from the ready line or from agent.json', () => {
    expect(parseReady('READY {"ready":{"controlPort":4100,"pid":77}}\n', 'h')).toEqual({ controlPort: 4100, pid: 77 })
    expect(parseReady('JSON {"controlPort":4101,"pid":78,"version":1,"startedAt":1}\n', 'h')).toEqual({ controlPort: 4101, pid: 78, version: 1 })
  })

  it("takes the Node version from an agent's ready line", () => {
    expect(parseReady('READY {"ready":{"controlPort":4100,"pid":77,"node":"v22.1.0"}}\n', 'h')).toEqual({ controlPort: 4100, pid: 77, node: 'v22.1.0' })
  })

  it('tells a command that did not try to start the agent from one that did, and from one whose start printed no ready line', () => {
    expect(parseStarted('Linux\nx86_64\n/home/u\nv20.1.0\n99\ngzip=yes\n', 'h')).toEqual({ tried: false })
    expect(parseStarted('NOSTART\n', 'h')).toEqual({ tried: false })
    expect(parseStarted('Linux\nx86_64\n/home/u\nv20.1.0\n99\nSTART node\nREADY {"ready":{"controlPort":4100,"pid":77}}\n', 'h')).toEqual({
      tried: true,
      node: 'node',
      ready: { controlPort: 4100, pid: 77 }
    })
    expect(parseStarted('START /home/u/.ftlab/runtime/node-v22.1.0-linux-x64/bin/node\n', 'h')).toEqual({
      tried: true,
      node: '/home/u/.ftlab/runtime/node-v22.1.0-linux-x64/bin/node',
      ready: null
    })
  })

  it('rejects a ready line without a usable port or pid, naming the host', () => {
    expect(() => parseReady('READY {"ready":{"controlPort":0,"pid":77}}', 'u@h:22')).toThrow(SshError)
    expect(() => parseReady('READY {"ready":{"controlPort":0,"pid":77}}', 'u@h:22')).toThrow(/agent on u@h:22 reported no valid control port/)
    expect(() => parseReady('READY {not json', 'h')).toThrow(/malformed ready line/)
    expect(() => parseReady('', 'h')).toThrow(/did not report ready/)
  })

  it('knows which Node versions and machines it can serve', () => {
    expect(parseNodeVersion('v22.12.0\n')?.major).toBe(22)
    expect(parseNodeVersion('bash: node: command not found')).toBeNull()
    expect(nodeArchFor('x86_64')).toBe('x64')
    expect(nodeArchFor('aarch64')).toBe('arm64')
    expect(nodeArchFor('riscv64')).toBeNull()
  })

  it('quotes anything safely for sh', () => {
    const nasty = `it's a "path" with $HOME and \`cmd\` and \\`
    expect(execFileSync('sh', ['-c', `printf '%s' ${shq(nasty)}`], { encoding: 'utf8' })).toBe(nasty)
  })
})
