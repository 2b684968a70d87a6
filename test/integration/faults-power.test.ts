// Power drivers against real tools: processes for kill and pause, virsh on libvirt's test
// driver, ipmitool against OpenIPMI's ipmi_sim (a lanplus BMC simulator on 127.0.0.1), and
// the command driver with a script that records how it was called. sysrq is only ever
// pointed at a bind-mounted stand-in file, never the real trigger.
import { spawn, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { cancelDeadmanScript } from '../../main/faults/deadman.js'
import { localExec, type ExecOutcome, type HostExec } from '../../main/faults/exec.js'
import { commandDriver, ipmiDriver, killDriver, libvirtDriver, pauseDriver, sysrqDriver, SYSRQ_MISSING } from '../../main/faults/power.js'
import { lacks, needCommand, needRoot } from '../support/skips.js'

const tmp = mkdtempSync(join(tmpdir(), 'ftlab-power-'))
const children: ChildProcess[] = []

function victim(): ChildProcess {
  const c = spawn('sleep', ['600'], { stdio: 'ignore' })
  children.push(c)
  return c
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what} after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  rmSync(tmp, { recursive: true, force: true })
})

describe('kill and pause drivers', () => {
  it('kill: SIGKILL turns a running process off', async () => {
    const c = victim()
    const d = killDriver({ exec: localExec(), pid: c.pid! })
    expect(d.capabilities.powerOn).toBe(false)
    expect(await d.status!()).toBe('on')
    await d.powerOff()
    await until(() => c.signalCode !== null, 5000, 'the process to die')
    expect(c.signalCode).toBe('SIGKILL')
    expect(await d.status!()).toBe('off')
    console.log('faults-power: kill path taken')
  })

  it('pause: SIGSTOP then SIGCONT, and the dead-man resumes a forgotten pause', async () => {
    const c = victim()
    const d = pauseDriver({ exec: localExec(), pid: c.pid!, deadlineMs: 60_000 })
    await d.pause()
    expect(await d.status!()).toBe('paused')
    await d.resume()
    expect(await d.status!()).toBe('on')

    const short = pauseDriver({ exec: localExec(), pid: c.pid!, deadlineMs: 2000 })
    await short.powerOff()
    expect(await short.status!()).toBe('paused')
    // nobody calls resume: the dead-man on the host does
    await until(async () => (await short.status!()) === 'on', 15_000, 'the dead-man to resume the process')
    console.log('faults-power: pause path taken, dead-man resumed it')
  })

  it('pause of a process that does not exist says so', async () => {
    const d = pauseDriver({ exec: localExec(), pid: 2 ** 22 + 1, deadlineMs: 5000 })
    await expect(d.pause()).rejects.toThrow(/no process 4194305/)
  })

  afterEach(async () => {
    await localExec().run(children.map((c) => cancelDeadmanScript(`pause_${c.pid}`)).join('\n') || 'true')
  })
})

describe('sysrq driver', () => {
  const trigger = existsSync('/proc/sysrq-trigger')

  it.skipIf(lacks(trigger ? 'this kernel has /proc/sysrq-trigger, so the sysrq-absent path cannot be shown' : null, { kernel: 'sysrq' }) !== null)(
    'reports that sysrq is absent on this kernel',
    async () => {
      await expect(sysrqDriver({ exec: localExec() }).powerOff()).rejects.toThrow(SYSRQ_MISSING)
      console.log('faults-power: sysrq unavailable here (no /proc/sysrq-trigger)')
    }
  )

  it.skipIf(
    lacks(trigger ? null : 'no /proc/sysrq-trigger on this kernel', { kernel: 'sysrq' }) !== null ||
      lacks([needRoot('the sysrq stand-in mount'), needCommand('unshare', 'util-linux')]) !== null
  )('writes "o" to the trigger (a bind-mounted stand-in, never the real one)', async () => {
    const fake = join(tmp, 'sysrq-trigger')
    writeFileSync(fake, '')
    // a private mount namespace in which /proc/sysrq-trigger is our file; the detached writer inherits it
    const exec: HostExec = {
      run: (cmd, opts) =>
        localExec().run(`exec unshare -m --propagation private sh -c ${shq(`mount --bind ${fake} /proc/sysrq-trigger && exec sh -c "$0"`)} ${shq(cmd)}`, opts)
    }
    await sysrqDriver({ exec }).powerOff()
    await until(() => readFileSync(fake, 'utf8').trim() === 'o', 10_000, 'the stand-in trigger to receive "o"')
    console.log('faults-power: sysrq path taken (stand-in trigger)')
  })
})

function shq(s: string) {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/**
 * libvirt's test:///default driver keeps its state per connection, so a fresh virsh per
 * command would always see the domain running. This exec plays the hypervisor host: one
 * long-lived `virsh -c test:///default` reads the driver's commands (its `virsh -c <uri>`
 * prefix stripped) on stdin; an `echo` marks the end of each answer.
 */
class VirshSession implements HostExec {
  private readonly child: ChildProcess
  private out = ''
  private seq = 0
  readonly commands: string[] = []

  constructor(private readonly uri: string) {
    // one pipe for both streams, so an error is read before the marker that follows it
    this.child = spawn('sh', ['-c', 'exec virsh -q -c "$0" 2>&1', uri], { stdio: ['pipe', 'pipe', 'inherit'] })
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.out += d))
  }

  async run(cmd: string): Promise<ExecOutcome> {
    this.commands.push(cmd)
    const line = cmd.split('\n').pop()!
    const prefix = `virsh -c '${this.uri}' `
    if (!line.startsWith(prefix)) return { code: 127, stdout: '', stderr: `VirshSession only runs virsh -c '${this.uri}' commands, got: ${line}` }
    const marker = `__ftlab_done_${++this.seq}__`
    this.out = ''
    this.child.stdin!.write(`${line.slice(prefix.length)}\necho ${marker}\n`)
    // virsh echoes each command after its prompt; the marker's own output starts a line
    await until(() => this.out.includes(`\n${marker}`), 10_000, `virsh to answer "${line}"`)
    const sent = line.slice(prefix.length)
    const text = this.out
      .slice(0, this.out.indexOf(`\n${marker}`))
      .split('\n')
      .filter((l) => !l.startsWith('virsh #') && l !== sent) // prompts and the echoed command
      .join('\n')
      .trim()
    const failed = /^error:/m.test(text)
    return { code: failed ? 1 : 0, stdout: failed ? '' : `${text}\n`, stderr: failed ? `${text}\n` : '' }
  }

  close() {
    this.child.stdin!.end('quit\n')
  }
}

describe.skipIf(lacks(needCommand('virsh', 'libvirt-clients')) !== null)('libvirt driver (virsh, test:///default)', () => {
  it('destroy turns the domain off, start turns it back on', async () => {
    const host = new VirshSession('test:///default')
    try {
      const d = libvirtDriver({ exec: host, uri: 'test:///default', domain: 'test' })
      expect(await d.status!()).toBe('on')
      await d.powerOff()
      expect(await d.status!()).toBe('off')
      await d.powerOn!()
      expect(await d.status!()).toBe('on')
      expect(host.commands.map((c) => c.split('\n').pop())).toEqual([
        `virsh -c 'test:///default' domstate 'test'`,
        `virsh -c 'test:///default' destroy 'test'`,
        `virsh -c 'test:///default' domstate 'test'`,
        `virsh -c 'test:///default' start 'test'`,
        `virsh -c 'test:///default' domstate 'test'`
      ])
      await expect(libvirtDriver({ exec: host, uri: 'test:///default', domain: 'nosuch' }).powerOff()).rejects.toThrow(/virsh destroy nosuch .*failed.*nosuch/)
      console.log('faults-power: libvirt path taken (virsh against test:///default)')
    } finally {
      host.close()
    }
  })

  it('a plain virsh per command works as a HostExec too (domstate of the test domain)', async () => {
    expect(await libvirtDriver({ exec: localExec(), uri: 'test:///default', domain: 'test' }).status!()).toBe('on')
  })
})

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4')
    s.on('error', reject)
    s.bind(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
}

/** Records every script it runs, so the test can check that no secret ever reached a command line. */
function recording(inner: HostExec): HostExec & { scripts: string[] } {
  const scripts: string[] = []
  return { scripts, run: (cmd, opts) => (scripts.push(cmd), inner.run(cmd, opts)) }
}

describe.skipIf(lacks([needCommand('ipmitool', 'ipmitool'), needCommand('ipmi_sim', 'openipmi')]) !== null)(
  'ipmi driver (ipmitool lanplus against ipmi_sim)',
  () => {
    let sim: ChildProcess | undefined
    const password = 'Ft-s3cret-pw'

    afterAll(() => {
      sim?.kill('SIGKILL')
    })

    it('powers the simulated chassis off and on; the password travels only in IPMI_PASSWORD', async () => {
      const dir = mkdtempSync(join(tmp, 'ipmi-'))
      const port = await freeUdpPort()
      const chassis = join(dir, 'chassis')
      // ipmi_sim calls: chassis get power | chassis set power 0|1
      writeFileSync(
        chassis,
        [
          '#!/bin/sh',
          `state=${dir}/power`,
          'op=$1; shift',
          'case $op in',
          '  get) for p in "$@"; do case $p in power) echo "power:$(cat "$state" 2>/dev/null || echo 1)";; boot) echo boot:default;; esac; done;;',
          '  set) while [ $# -gt 1 ]; do [ "$1" = power ] && echo "$2" > "$state"; shift 2; done;;',
          'esac',
          ''
        ].join('\n')
      )
      chmodSync(chassis, 0o755)
      writeFileSync(
        join(dir, 'lan.conf'),
        [
          'name "ftlabtest"',
          'set_working_mc 0x20',
          '  startlan 1',
          `    addr 127.0.0.1 ${port}`,
          '    priv_limit admin',
          ...['callback', 'user', 'operator', 'admin'].map((p) => `    allowed_auths_${p} md5`),
          '    guid a123456789abcdefa123456789abcdef',
          '  endlan',
          `  chassis_control "${chassis}"`,
          `  user 2 true "ftadmin" "${password}" admin 10 md5`,
          ''
        ].join('\n')
      )
      writeFileSync(join(dir, 'sim.emu'), 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n')
      sim = spawn('ipmi_sim', ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'sim.emu'), '-s', dir, '-n', '-p'], { stdio: 'ignore' })

      const exec = recording(localExec())
      // cipher suite 3 (the one ipmi_sim offers): without -C, ipmitool first asks for the list and waits ~10 s
      const d = ipmiDriver({ exec, host: '127.0.0.1', port, user: 'ftadmin', cipherSuite: 3, password: () => password })
      await until(async () => (await d.status!().catch(() => 'unknown')) === 'on', 10_000, 'ipmi_sim to answer')
      await d.powerOff()
      expect(readFileSync(join(dir, 'power'), 'utf8').trim()).toBe('0')
      expect(await d.status!()).toBe('off')
      await d.powerOn!()
      expect(await d.status!()).toBe('on')
      for (const s of exec.scripts) {
        expect(s).not.toContain(password)
        expect(s).toContain(' -E ')
      }
      const wrong = ipmiDriver({ exec, host: '127.0.0.1', port, user: 'ftadmin', cipherSuite: 3, password: () => 'not-it' })
      await expect(wrong.status!()).rejects.toThrow(/ipmitool chassis power status on 127.0.0.1 failed/)
      console.log('faults-power: ipmi path taken (ipmitool lanplus against ipmi_sim)')
    })
  }
)

describe('command driver', () => {
  it('runs the operator commands and reads the status words', async () => {
    const log = join(tmp, 'pdu.log')
    const state = join(tmp, 'pdu.state')
    const script = join(tmp, 'pdu.sh')
    writeFileSync(
      script,
      [
        '#!/bin/sh',
        `echo "$*" >> ${log}`,
        'case $1 in',
        `  power-off) echo off > ${state};;`,
        `  power-on) echo on > ${state};;`,
        `  status) echo "outlet $2 is $(cat ${state} 2>/dev/null || echo on)";;`,
        '  *) echo "unknown command $1" >&2; exit 2;;',
        'esac',
        ''
      ].join('\n')
    )
    chmodSync(script, 0o755)
    const d = commandDriver({ exec: localExec(), off: `${script} power-off h1`, on: `${script} power-on h1`, status: `${script} status h1` })
    expect(d.capabilities).toMatchObject({ powerOn: true, status: true })
    expect(await d.status!()).toBe('on')
    await d.powerOff()
    expect(await d.status!()).toBe('off')
    await d.powerOn!()
    expect(await d.status!()).toBe('on')
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['status h1', 'power-off h1', 'status h1', 'power-on h1', 'status h1'])
    const broken = commandDriver({ exec: localExec(), off: `${script} explode h1` })
    await expect(broken.powerOff()).rejects.toThrow(/power off command ".*explode h1" failed \(exit 2\): unknown command explode/)
    expect(broken.powerOn).toBeUndefined()
    console.log('faults-power: command path taken')
  })
})
