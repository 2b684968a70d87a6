// Network faults on real kernels: two network namespaces of the test's own, ftlabf-x and
// ftlabf-y, joined by a veth pair on 10.88.0.0/24. x is the faulted host; y is its peer on
// the lab address 10.88.0.2 and the "console" on the management address 10.88.0.3.
// Needs root, ip, nft, iptables (skipped with a message otherwise).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cancelDeadmanScript, deadmanAliveScript } from '../../main/faults/deadman.js'
import { localExec, localNetnsExec, type HostExec } from '../../main/faults/exec.js'
import {
  emergencyStop,
  healNetworkFault,
  injectNetworkFault,
  listFaultTables,
  type FaultRecord,
  type NetworkFaultRequest,
  type NetworkInjectResult
} from '../../main/faults/network.js'
import { describeCapabilities, probeHost, type HostCapabilities } from '../../main/faults/probe.js'
import { lacks, needCommand, needRoot } from '../support/skips.js'

const NS_X = 'ftlabf-x'
const NS_Y = 'ftlabf-y'
const X = '10.88.0.1'
const Y_LAB = '10.88.0.2'
const Y_MGMT = '10.88.0.3'
const SSH_PORT = 2222 // stands in for sshd on x
const SERVICE_PORT = 5000 // a lab service on x
const UDP_PORT = 6000

function sh(cmd: string): { code: number; out: string } {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' })
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` }
}

const missing = lacks([needRoot('network namespaces'), needCommand('ip', 'iproute2'), needCommand('nft', 'nftables'), needCommand('iptables', 'iptables')])

const run = randomBytes(3).toString('hex')
const usedIds: string[] = []
const newId = (what: string) => {
  const id = `${what}${run}${usedIds.length}`.slice(0, 16)
  usedIds.push(id)
  return id
}

// Listeners in a namespace: TCP on the given ports (accept and close), UDP printing each datagram.
const LISTENER = `
const net = require('node:net'), dgram = require('node:dgram')
const ports = process.argv.slice(1).map(Number)
for (const p of ports.slice(0, -1)) net.createServer((s) => { s.on('error', () => {}); s.end('hi\\n') }).listen(p, '0.0.0.0')
const u = dgram.createSocket('udp4'); u.on('message', (m) => process.stdout.write('udp ' + m + '\\n'))
u.bind(ports[ports.length - 1], '0.0.0.0', () => process.stdout.write('ready\\n'))
`
const CONNECT = `
const net = require('node:net')
const [host, port, local, ms] = process.argv.slice(1)
const s = net.connect({ host, port: Number(port), localAddress: local })
const t = setTimeout(() => { console.log('fail timeout'); process.exit(0) }, Number(ms))
s.on('connect', () => { console.log('ok'); clearTimeout(t); s.destroy(); process.exit(0) })
s.on('error', (e) => { console.log('fail ' + e.code); process.exit(0) })
`
const SEND = `
const dgram = require('node:dgram')
const [host, port, local, msg] = process.argv.slice(1)
const u = dgram.createSocket('udp4')
u.bind(0, local, () => u.send(msg, Number(port), host, () => u.close()))
`

class Listener {
  lines: string[] = []
  readonly child: ChildProcess
  constructor(ns: string) {
    this.child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LISTENER, String(SSH_PORT), String(SERVICE_PORT), String(UDP_PORT)], {
      stdio: ['ignore', 'pipe', 'inherit']
    })
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => this.lines.push(...d.split('\n').filter(Boolean)))
  }
  async ready() {
    await until(() => this.lines.includes('ready'), 10_000, 'listener ready')
  }
  got(msg: string) {
    return this.lines.includes(`udp ${msg}`)
  }
}

function inNs(ns: string, script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    c.on('error', reject)
    c.on('close', () => resolve(out.trim()))
  })
}

/** TCP connect from y (bound to `from`) to x:port: 'ok' or 'fail <why>'. */
const connectFromY = (from: string, port: number) => inNs(NS_Y, CONNECT, [X, String(port), from, '1500'])
const connectFromX = (to: string, port: number) => inNs(NS_X, CONNECT, [to, String(port), X, '1500'])
const sendUdp = (ns: string, from: string, to: string, msg: string) => inNs(ns, SEND, [to, String(UDP_PORT), from, msg])

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what} after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

function applied(r: NetworkInjectResult): FaultRecord {
  if (r.status !== 'applied') throw new Error(`fault not applied: ${r.reason}`)
  console.log(`faults-network: ${r.record.kind} ${r.record.id} took path ${r.record.path}`)
  return r.record
}

function cleanupNamespaces() {
  sh(`ip netns del ${NS_X} 2>/dev/null; ip netns del ${NS_Y} 2>/dev/null; ip link del ftlabf-vx 2>/dev/null; true`)
}

describe.skipIf(missing !== null)('network faults in namespaces', () => {
  let x: HostExec
  let caps: HostCapabilities
  const listeners: Listener[] = []
  let lx: Listener
  let ly: Listener

  const req = (id: string, spec: NetworkFaultRequest['spec'], deadlineMs = 60_000): NetworkFaultRequest => ({
    id,
    target: 'x',
    spec,
    management: { address: Y_MGMT, sshPort: SSH_PORT },
    deadlineMs
  })

  beforeAll(async () => {
    cleanupNamespaces()
    const setup = [
      `ip netns add ${NS_X}`,
      `ip netns add ${NS_Y}`,
      `ip link add ftlabf-vx netns ${NS_X} type veth peer name ftlabf-vy netns ${NS_Y}`,
      `ip -n ${NS_X} addr add ${X}/24 dev ftlabf-vx`,
      `ip -n ${NS_Y} addr add ${Y_LAB}/24 dev ftlabf-vy`,
      `ip -n ${NS_Y} addr add ${Y_MGMT}/24 dev ftlabf-vy`,
      `ip -n ${NS_X} link set lo up`,
      `ip -n ${NS_Y} link set lo up`,
      `ip -n ${NS_X} link set ftlabf-vx up`,
      `ip -n ${NS_Y} link set ftlabf-vy up`
    ].join(' && ')
    const r = sh(setup)
    if (r.code !== 0) throw new Error(`namespace setup failed: ${r.out}`)
    x = localNetnsExec(NS_X)
    caps = await probeHost(x)
    console.log(`faults-network: capabilities of ${NS_X}:\n  ${describeCapabilities(caps).join('\n  ')}`)
    lx = new Listener(NS_X)
    ly = new Listener(NS_Y)
    listeners.push(lx, ly)
    await lx.ready()
    await ly.ready()
    // the veth needs a moment for DAD/carrier; wait until y reaches x at all
    await until(async () => (await connectFromY(Y_LAB, SERVICE_PORT)) === 'ok', 10_000, 'y to reach x')
  })

  // each test starts clean even if the one before failed half-way
  afterEach(async () => {
    if (x) await emergencyStop(x)
  })

  afterAll(async () => {
    for (const l of listeners) l.child.kill('SIGKILL')
    // dead-men keep a deleted namespace alive; stop the ones this run armed
    if (usedIds.length) await localExec().run(usedIds.map(cancelDeadmanScript).join('\n'))
    cleanupNamespaces()
  })

  it('isolate drops lab traffic both ways but spares the management address and SSH port; heal restores it', async () => {
    expect(await connectFromY(Y_LAB, SERVICE_PORT)).toBe('ok')
    const rec = applied(await injectNetworkFault(x, req(newId('iso'), { kind: 'isolate', lab: ['10.88.0.0/24'] }), { caps }))
    expect(rec.path).toBe('nft')
    expect(await connectFromY(Y_LAB, SERVICE_PORT)).toMatch(/^fail/)
    expect(await connectFromY(Y_LAB, SSH_PORT)).toMatch(/^fail/) // only the management address is spared
    expect(await connectFromY(Y_MGMT, SERVICE_PORT)).toMatch(/^fail/) // and only its SSH port
    expect(await connectFromX(Y_LAB, SSH_PORT)).toMatch(/^fail/) // outbound too
    expect(await connectFromY(Y_MGMT, SSH_PORT)).toBe('ok')
    // the heal goes over the spared management connection in real life; here through exec
    await healNetworkFault(x, rec)
    expect(await listFaultTables(x)).toEqual([])
    expect(await connectFromY(Y_LAB, SERVICE_PORT)).toBe('ok')
  })

  it('isolate through iptables (forced) behaves the same and heals', async () => {
    const rec = applied(await injectNetworkFault(x, req(newId('ipt'), { kind: 'isolate', lab: ['10.88.0.0/24'] }), { caps, path: 'iptables' }))
    expect(rec.path).toBe('iptables')
    expect(await connectFromY(Y_LAB, SERVICE_PORT)).toMatch(/^fail/)
    expect(await connectFromY(Y_MGMT, SSH_PORT)).toBe('ok')
    await healNetworkFault(x, rec)
    expect((await x.run('iptables -w -S')).stdout).not.toContain('ftlab_')
    expect(await connectFromY(Y_LAB, SERVICE_PORT)).toBe('ok')
  })

  for (const path of ['nft', 'iptables'] as const) {
    it(`cut in one direction drops only that direction (${path})`, async () => {
      // 'in' on x from y: y→x is lost, x→y still arrives
      const rec = applied(await injectNetworkFault(x, req(newId(`cut${path[0]}`), { kind: 'cut', peer: Y_LAB, direction: 'in' }), { caps, path }))
      const tag = `${rec.id}-`
      await sendUdp(NS_Y, Y_LAB, X, `${tag}y2x`) // should be dropped
      await sendUdp(NS_X, X, Y_LAB, `${tag}x2y`) // should arrive
      await until(() => ly.got(`${tag}x2y`), 5000, 'x→y datagram')
      // y→x was sent before x→y arrived; give it the same path time again before judging it lost
      await sendUdp(NS_Y, Y_MGMT, X, `${tag}mgmt-udp`) // management address, but not the SSH port: dropped? no: cut is per peer address
      await until(() => lx.got(`${tag}mgmt-udp`), 5000, 'y(mgmt)→x datagram, not on the cut link')
      expect(lx.got(`${tag}y2x`)).toBe(false)
      await healNetworkFault(x, rec)
      await sendUdp(NS_Y, Y_LAB, X, `${tag}after`)
      await until(() => lx.got(`${tag}after`), 5000, 'y→x datagram after heal')
    })
  }

  it('loss at 100% drops everything but management, at 0% nothing', async () => {
    const full = applied(await injectNetworkFault(x, req(newId('lossa'), { kind: 'loss', percent: 100 }), { caps }))
    expect(await connectFromY(Y_LAB, SERVICE_PORT)).toMatch(/^fail/)
    expect(await connectFromY(Y_MGMT, SSH_PORT)).toBe('ok')
    await healNetworkFault(x, full)
    const none = applied(await injectNetworkFault(x, req(newId('lossz'), { kind: 'loss', percent: 0, peers: [Y_LAB] }), { caps }))
    for (let i = 0; i < 5; i++) expect(await connectFromY(Y_LAB, SERVICE_PORT)).toBe('ok')
    await healNetworkFault(x, none)
  })

  it('the dead-man on the host removes the fault at its deadline with no console around', async () => {
    // Long enough that a busy machine still sees the fault and its dead-man before the
    // deadline: looking for the dead-man walks every process's command line, which takes
    // seconds on a loaded machine (14 s at a load of 14 on two cores).
    const rec = applied(await injectNetworkFault(x, req(newId('dead'), { kind: 'isolate', lab: [Y_LAB] }, 30_000), { caps }))
    // the exec session that armed it has ended; nobody calls heal
    expect((await x.run(deadmanAliveScript(rec.id))).stdout.trim()).toBe('armed')
    expect(await listFaultTables(x)).toEqual([`inet ftlab_${rec.id}`])
    await until(async () => (await listFaultTables(x)).length === 0, 60_000, 'the dead-man to delete the table')
    await until(async () => (await x.run(deadmanAliveScript(rec.id))).stdout.trim() === '', 30_000, 'the dead-man to exit')
    expect(await connectFromY(Y_LAB, SERVICE_PORT)).toBe('ok')
  }, 180_000)

  it('heal cancels the dead-man (killed by name, not left to notice the table is gone)', async () => {
    const rec = applied(await injectNetworkFault(x, req(newId('cancel'), { kind: 'cut', peer: Y_LAB, direction: 'both' }), { caps }))
    expect((await x.run(deadmanAliveScript(rec.id))).stdout.trim()).toBe('armed')
    // the cancel step alone, with the table still there: only the kill can make it go
    await x.run(cancelDeadmanScript(rec.id))
    await until(async () => (await x.run(deadmanAliveScript(rec.id))).stdout.trim() === '', 5000, 'the dead-man to be gone')
    expect(await listFaultTables(x)).toEqual([`inet ftlab_${rec.id}`])
    await healNetworkFault(x, rec)
    expect(await listFaultTables(x)).toEqual([])
  })

  it('refuses a second fault with the same id on the same host', async () => {
    const id = newId('dup')
    const rec = applied(await injectNetworkFault(x, req(id, { kind: 'cut', peer: Y_LAB, direction: 'out' }), { caps }))
    await expect(injectNetworkFault(x, req(id, { kind: 'cut', peer: Y_LAB, direction: 'in' }), { caps })).rejects.toThrow(/already in place/)
    await healNetworkFault(x, rec)
  })

  it('emergency stop removes every ftlab_ table and chain', async () => {
    applied(await injectNetworkFault(x, req(newId('es1'), { kind: 'isolate', lab: [Y_LAB] }), { caps }))
    applied(await injectNetworkFault(x, req(newId('es2'), { kind: 'cut', peer: Y_LAB, direction: 'out' }), { caps }))
    applied(await injectNetworkFault(x, req(newId('es3'), { kind: 'cut', peer: Y_LAB, direction: 'in' }), { caps, path: 'iptables' }))
    expect((await listFaultTables(x)).length).toBe(2)
    const { removed } = await emergencyStop(x)
    console.log(`faults-network: emergency stop removed ${removed.join('; ')}`)
    expect(removed.filter((r) => r.startsWith('nft ')).length).toBe(2)
    expect(removed.filter((r) => r.startsWith('iptables ')).length).toBe(2)
    expect(await listFaultTables(x)).toEqual([])
    expect((await x.run('iptables -w -S')).stdout).not.toContain('ftlab_')
    expect(await connectFromY(Y_LAB, SERVICE_PORT)).toBe('ok')
  })

  it('netem: reported with the reason when the kernel lacks it, with the agent-filter fallback where one exists', async () => {
    const delay = await injectNetworkFault(x, req(newId('netem'), { kind: 'netem', dev: 'ftlabf-vx', peers: [Y_LAB], delayMs: 50, jitterMs: 10 }), { caps })
    if (caps.netem.available) {
      console.log('faults-network: this kernel has netem; path netem')
      const rec = applied(delay)
      expect(rec.path).toBe('netem')
      expect((await x.run('tc qdisc show dev ftlabf-vx')).stdout).toMatch(/netem .*delay 50ms/)
      expect(await connectFromY(Y_MGMT, SSH_PORT)).toBe('ok')
      await healNetworkFault(x, rec)
      expect((await x.run('tc qdisc show dev ftlabf-vx')).stdout).not.toContain('netem')
      return
    }
    // the netem path itself goes untested here: listed in the skip summary as a kernel lack
    lacks(`netem unavailable (${caps.netem.detail}): the netem path was not taken, only its refusal and the agent-filter fallback`, { kernel: 'netem' })
    expect(caps.netem.detail).toMatch(/sch_netem missing/)
    expect(delay.status).toBe('unavailable')
    if (delay.status !== 'unavailable') return
    expect(delay.reason).toMatch(/netem unavailable: kernel module sch_netem missing/)
    expect(delay.fallback?.path).toBe('agent-filter')
    expect(delay.fallback?.faults).toEqual([{ kind: 'delay', peers: [Y_LAB], ms: 50, jitterMs: 10 }])
    expect(delay.fallback?.record.path).toBe('agent-filter')
    const dup = await injectNetworkFault(x, req(newId('netdup'), { kind: 'netem', dev: 'ftlabf-vx', peers: [Y_LAB], delayMs: 10, reorderPercent: 25 }), {
      caps
    })
    expect(dup).toMatchObject({ status: 'unavailable', fallback: null })
  })
})
