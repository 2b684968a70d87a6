import { describe, expect, it } from 'vitest'
import { deadlineSeconds } from '../../../main/faults/deadman.js'
import { localExec, localNetnsExec, sshHostExec, type HostExec } from '../../../main/faults/exec.js'
import { createPowerDriver, ipmiDriver, ipmiScript, parseDomstate, parseStatusWords, virshCommand, commandDriver } from '../../../main/faults/power.js'
import { describeCapabilities, parseProbeOutput } from '../../../main/faults/probe.js'

describe('exec', () => {
  it('runs sh scripts with stdin and reports exit code and both streams', async () => {
    const r = await localExec().run('read -r x; echo "got $x"; echo oops >&2; exit 3', { stdin: 'hello\n' })
    expect(r).toEqual({ code: 3, stdout: 'got hello\n', stderr: 'oops\n' })
  })

  it('kills a script and its children at the timeout and says so', async () => {
    const r = await localExec().run('sleep 30 & sleep 30; echo never', { timeoutMs: 300 })
    expect(r.code).toBe(124)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/timed out after 300 ms/)
  })

  it('refuses a namespace name that is not one', () => {
    expect(() => localNetnsExec('x; reboot')).toThrow(/not a network namespace name/)
  })

  it('the SSH adapter wraps the script for sh and maps the result', async () => {
    const seen: string[] = []
    const exec = sshHostExec({
      exec: async (command, opts) => {
        seen.push(command, String(opts?.stdin))
        return { code: 0, signal: null, stdout: Buffer.from('ok\n'), stderr: Buffer.from('') }
      }
    })
    expect(await exec.run(`echo 'it''s'`, { stdin: 'in' })).toEqual({ code: 0, stdout: 'ok\n', stderr: '' })
    expect(seen).toEqual([`sh -c 'echo '\\''it'\\'''\\''s'\\'''`, 'in'])
  })
})

describe('probe parsing', () => {
  it('reads name/yes|no/detail lines and marks unanswered checks unavailable', () => {
    const caps = parseProbeOutput(
      'nft\tyes\tnftables v1.0.6\nnetem\tno\tkernel module sch_netem missing (Error: Specified qdisc kind is unknown.)\njunk line\n'
    )
    expect(caps.nft).toEqual({ available: true, detail: 'nftables v1.0.6' })
    expect(caps.netem.available).toBe(false)
    expect(caps.virsh).toEqual({ available: false, detail: 'the probe gave no answer for this check' })
    expect(describeCapabilities(caps)).toContain('netem: unavailable (kernel module sch_netem missing (Error: Specified qdisc kind is unknown.))')
  })
})

describe('dead-man deadline', () => {
  it('rounds up to whole seconds and refuses nonsense', () => {
    expect(deadlineSeconds(1000)).toBe(1)
    expect(deadlineSeconds(1500)).toBe(2)
    expect(() => deadlineSeconds(999)).toThrow(/from 1000/)
    expect(() => deadlineSeconds(NaN)).toThrow(/deadlineMs/)
    expect(() => deadlineSeconds(25 * 3_600_000)).toThrow(/24 h/)
  })
})

describe('ipmi driver', () => {
  it('builds the lanplus command with -E and no password anywhere in it', () => {
    const s = ipmiScript({ host: 'bmc-1.lab', user: 'admin', port: 6230, cipherSuite: 3 }, 'off')
    expect(s).toContain(`exec ipmitool -I lanplus -H 'bmc-1.lab' -p 6230 -C 3 -U 'admin' -E chassis power off`)
    expect(s).toContain('IFS= read -r IPMI_PASSWORD')
    expect(s).not.toMatch(/ -P /)
  })

  it('passes the password on stdin only, and parses the status', async () => {
    const calls: { cmd: string; stdin?: string }[] = []
    const exec: HostExec = {
      run: async (cmd, opts) => {
        calls.push({ cmd, stdin: opts?.stdin })
        return { code: 0, stdout: 'Chassis Power is off\n', stderr: '' }
      }
    }
    const d = ipmiDriver({ exec, host: '10.0.0.50', user: 'admin', password: async () => 'hunter2' })
    expect(await d.status!()).toBe('off')
    expect(calls[0].stdin).toBe('hunter2\n')
    expect(calls[0].cmd).not.toContain('hunter2')
  })

  it('refuses bad settings before any fault, and a multi-line password', async () => {
    const exec: HostExec = { run: async () => ({ code: 0, stdout: '', stderr: '' }) }
    expect(() => ipmiDriver({ exec, host: 'bmc; reboot', user: 'admin', password: () => 'x' })).toThrow(/host must be an address/)
    expect(() => ipmiDriver({ exec, host: 'bmc', user: "ad'min", password: () => 'x' })).toThrow(/user must be/)
    await expect(ipmiDriver({ exec, host: 'bmc', user: 'admin', password: () => 'a\nb' }).powerOff()).rejects.toThrow(/single line/)
  })
})

describe('libvirt, command and factory', () => {
  it('quotes the virsh command and reads domstate words', () => {
    expect(virshCommand({ uri: 'qemu+ssh://root@hv/system', domain: "web 1's" }, 'destroy')).toBe(`virsh -c 'qemu+ssh://root@hv/system' destroy 'web 1'\\''s'`)
    expect(() => virshCommand({ uri: 'nonsense', domain: 'x' }, 'start')).toThrow(/libvirt URI/)
    expect(parseDomstate('running\n\n')).toBe('on')
    expect(parseDomstate('shut off\n')).toBe('off')
    expect(parseDomstate('paused')).toBe('paused')
    expect(parseDomstate('')).toBe('unknown')
  })

  it('reads operator status words', () => {
    expect(parseStatusWords('outlet 3 is OFF')).toBe('off')
    expect(parseStatusWords('power: on')).toBe('on')
    expect(parseStatusWords('¯\\_(ツ)_/¯')).toBe('unknown')
  })

  it('the command driver needs an off command and offers only what it was given', () => {
    const exec: HostExec = { run: async () => ({ code: 0, stdout: '', stderr: '' }) }
    expect(() => commandDriver({ exec, off: '  ' })).toThrow(/off must be a non-empty command/)
    expect(commandDriver({ exec, off: 'pdu off 3' }).capabilities).toMatchObject({ powerOn: false, status: false })
  })

  it('the factory says which dependency is missing and refuses unknown drivers', () => {
    expect(() => createPowerDriver({ driver: 'ipmi', host: 'bmc', user: 'a' }, { controller: localExec() })).toThrow(/needs ipmiPassword/)
    expect(() => createPowerDriver({ driver: 'kill', pid: 1 }, { target: localExec() })).toThrow(/pid must be an integer above 1/)
    expect(() => createPowerDriver({ driver: 'zap' } as never, {})).toThrow(/unknown power driver "zap"/)
    expect(createPowerDriver({ driver: 'libvirt', uri: 'test:///default', domain: 'test' }, { controller: localExec() }).kind).toBe('libvirt')
  })
})
