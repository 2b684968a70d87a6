// The `ftlab` commands for labs on real hosts: `deploy`, `teardown`, `power-on`, and the
// remote side of `status`, `fault`, `heal`, `restore`, `lab stop` (load and events are the
// same code as for the local lab, given the remote lab's orchestration).
import { join } from 'node:path'
import { formatDuration } from '../core/duration.js'
import type { Lab } from '../lab/lab.js'
import { ftlabHome } from '../lab/lab-state.js'
import { loadLabFile } from '../remote/lab-file.js'
import { RemoteDeployError, RemoteLab, type PreflightLine, type RemoteLabOptions } from '../remote/remote-lab.js'
import type { HostKeyPrompt, SecretSource } from '../ssh/connection.js'
import type { DeployProgress } from '../ssh/deploy.js'
import { KnownHosts } from '../ssh/known-hosts.js'
import type { ParsedCommand } from './args.js'
import { faultFromArgs } from './fault-args.js'
import { statusTable, labStartedText } from './table.js'

export interface RemoteCliIo {
  out: (text: string) => void
  err: (text: string) => void
  isTty: boolean
  home?: string
  /** asks the operator one question on the terminal; absent = not interactive */
  ask?: (question: string, opts: { secret: boolean }) => Promise<string | null>
}

const OK = 0
const FAILED = 1
const USAGE = 2

export const REMOTE_WORDS = ['deploy', 'teardown', 'power-on'] as const

export function remoteUsage(): string {
  return [
    '  ftlab deploy <labfile> [--name <lab>] [--accept-new-host-keys]',
    '    deploy agents to the hosts of a lab file and start the lab (hosts are checked in parallel, one line each)',
    '    --name     which lab (default: the file\'s "name", else remote)',
    '    --accept-new-host-keys  accept unknown SSH host keys without asking (for testbeds; changed keys are always refused)',
    '  ftlab teardown [--name <lab>]',
    '    heal every fault, stop the agents, remove what FT Lab put on the hosts, forget the lab',
    '  ftlab power-on <host> [--name <lab>]',
    "    power a host on with its lab file's power driver and wait for SSH",
    '  status, load, fault, heal, restore, events and lab stop work on a remote lab by --name'
  ].join('\n')
}

export function isRemoteCommand(argv: readonly string[]): boolean {
  return (REMOTE_WORDS as readonly string[]).includes(argv[0] ?? '')
}

interface RemoteArgs {
  word: (typeof REMOTE_WORDS)[number]
  positional: string[]
  name?: string
  acceptNew: boolean
  json: boolean
  help: boolean
}

export function parseRemoteArgs(argv: readonly string[]): RemoteArgs {
  const word = argv[0] as RemoteArgs['word']
  const out: RemoteArgs = { word, positional: [], acceptNew: false, json: false, help: false }
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--help' || a === '-h') out.help = true
    else if (a === '--accept-new-host-keys' && word === 'deploy') out.acceptNew = true
    else if (a === '--json') out.json = true
    else if (a === '--name' || a.startsWith('--name=')) {
      const v = a.includes('=') ? a.slice(7) : argv[++i]
      if (!v || v.startsWith('--')) throw new Error('--name needs a value')
      if (out.name !== undefined) throw new Error('--name given twice')
      out.name = v
    } else if (a.startsWith('--')) throw new Error(`unknown option ${a} for '${word}'`)
    else out.positional.push(a)
  }
  const want = word === 'teardown' ? 0 : 1
  if (!out.help && out.positional.length !== want) {
    throw new Error(word === 'deploy' ? 'deploy needs exactly one <labfile>' : word === 'power-on' ? 'power-on needs exactly one <host> (a, b, disk or spare)' : `unexpected argument '${out.positional[0]}'`)
  }
  return out
}

/** One question at a time, even when every host of a parallel deploy wants to ask. */
function serial(): <T>(f: () => Promise<T>) => Promise<T> {
  let last: Promise<unknown> = Promise.resolve()
  return <T>(f: () => Promise<T>) => {
    const run = last.then(f, f)
    last = run.catch(() => {})
    return run
  }
}

/** Ask on the controlling terminal; a secret is not echoed. */
export function ttyAsk(question: string, opts: { secret: boolean }): Promise<string | null> {
  return new Promise((resolve) => {
    const stdin = process.stdin
    process.stderr.write(question)
    let answer = ''
    const wasRaw = stdin.isRaw
    stdin.setRawMode?.(true)
    stdin.resume()
    stdin.setEncoding('utf8')
    const done = (v: string | null) => {
      stdin.off('data', onData)
      stdin.setRawMode?.(wasRaw)
      stdin.pause()
      process.stderr.write('\n')
      resolve(v)
    }
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(answer)
        if (ch === '\u0003' || ch === '\u0004') return done(null) // ^C, ^D: declined
        if (ch === '\u007f' || ch === '\b') answer = answer.slice(0, -1)
        else {
          answer += ch
          if (!opts.secret) process.stderr.write(ch)
        }
      }
    }
    stdin.on('data', onData)
  })
}

export async function cliRemoteOptions(io: RemoteCliIo, acceptNew: boolean): Promise<RemoteLabOptions> {
  const home = io.home ?? ftlabHome()
  if (!io.ask && io.isTty && process.stdin.isTTY) io = { ...io, ask: ttyAsk }
  const one = serial()
  const confirmHostKey = async (p: HostKeyPrompt & { slot: string }): Promise<boolean> =>
    one(async () => {
      const where = p.port === 22 ? p.host : `[${p.host}]:${p.port}`
      io.err(`${p.slot}: the host key of ${where} is not known: ${p.keyType} ${p.fingerprint}\n`)
      if (acceptNew) {
        io.err(`${p.slot}: accepted (--accept-new-host-keys) and recorded in ${join(home, 'known_hosts')}\n`)
        return true
      }
      if (!io.ask) {
        io.err(`${p.slot}: refused: not a terminal, so nobody can compare the fingerprint; check it on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and deploy from a terminal, or use --accept-new-host-keys on a testbed\n`)
        return false
      }
      const a = await io.ask(`${p.slot}: does this fingerprint match the host's own? accept it [y/N] `, { secret: false })
      return a !== null && /^y(es)?$/i.test(a.trim())
    })
  const secrets: SecretSource = {
    password: ({ user, host, port, attempt }) =>
      one(async () => {
        if (!io.ask) {
          io.err(`${user}@${host}:${port}: "auth": "password" needs a terminal to ask for the password (it is never read from a file or the command line)\n`)
          return null
        }
        return io.ask(`password for ${user}@${host}${port === 22 ? '' : `:${port}`}${attempt > 1 ? ' (again)' : ''}: `, { secret: true })
      }),
    passphrase: ({ keyPath }) => one(async () => (io.ask ? io.ask(`passphrase for ${keyPath}: `, { secret: true }) : null))
  }
  return {
    home,
    knownHosts: await KnownHosts.load({ store: join(home, 'known_hosts') }),
    confirmHostKey,
    secrets,
    ipmiPassword: async (slot, bmc) => {
      const pw = io.ask ? await one(() => io.ask!(`${slot}: BMC password for ${bmc.user}@${bmc.host}: `, { secret: true })) : null
      if (!pw) throw new Error(`${slot}: no BMC password for ${bmc.user}@${bmc.host} (it is asked for on a terminal, never read from a file)`)
      return pw
    }
  }
}

function progressLine(p: DeployProgress): string | null {
  if (p.state === 'running' && p.step !== 'runtime') return null
  return `  ${p.hostId.padEnd(5)} ${p.step.padEnd(7)} ${p.state === 'failed' ? 'FAILED: ' : ''}${p.detail}\n`
}

function preflightText(l: PreflightLine): string {
  return `  ${l.slot.padEnd(5)} ${l.ok ? 'ok     ' : 'FAILED '} ${l.detail}\n`
}

export async function runRemoteCli(argv: readonly string[], io: RemoteCliIo): Promise<number> {
  let a: RemoteArgs
  try {
    a = parseRemoteArgs(argv)
  } catch (e) {
    io.err(`ftlab: ${(e as Error).message}\n\nusage:\n${remoteUsage()}\n`)
    return USAGE
  }
  if (a.help) {
    io.out(`usage:\n${remoteUsage()}\n`)
    return OK
  }
  try {
    const opts = await cliRemoteOptions(io, a.acceptNew)
    switch (a.word) {
      case 'deploy': {
        const file = loadLabFile(a.positional[0]!)
        const name = a.name ?? file.name ?? 'remote'
        io.out(`deploying lab '${name}' from ${file.path}\nchecking hosts:\n`)
        let started = false
        opts.onProgress = (p) => {
          if (!started) {
            started = true
            io.out('starting agents:\n')
          }
          const line = progressLine(p)
          if (line) io.out(line)
        }
        let lab: RemoteLab
        try {
          ;({ lab } = await RemoteLab.deploy(file, { name, onLine: (l) => io.out(preflightText(l)) }, opts))
        } catch (e) {
          if (e instanceof RemoteDeployError) {
            io.err(`ftlab: lab '${name}' was not deployed: ${e.lines.filter((l) => !l.ok).length} of ${e.lines.length} hosts failed (see above); nothing was started\n`)
            return FAILED
          }
          throw e
        }
        const s = lab.lab!.snapshot()
        lab.close()
        io.out(labStartedText(name, s))
        return OK
      }
      case 'teardown': {
        const name = a.name ?? 'remote'
        const lab = await RemoteLab.open(name, opts)
        try {
          const t = await lab.teardown()
          for (const s of t.removed) io.out(`  ${s.padEnd(5)} agent stopped, ~/.ftlab and FT Lab's fault rules removed\n`)
          if (t.problems.length) {
            io.err(`ftlab: teardown of '${name}' is incomplete (run it again once the hosts are back):\n${t.problems.map((p) => `  ${p}\n`).join('')}`)
            return FAILED
          }
          io.out(`lab '${name}' torn down\n`)
          return OK
        } finally {
          lab.close()
        }
      }
      case 'power-on': {
        const lab = await RemoteLab.open(a.name ?? 'remote', opts)
        try {
          const r = await lab.powerOn(a.positional[0]!)
          io.out(`power on ${a.positional[0]} (${r.driver}): ${r.detail}\n`)
          return OK
        } finally {
          lab.close()
        }
      }
    }
  } catch (e) {
    io.err(`ftlab: ${(e as Error).message}\n`)
    return FAILED
  }
}

export interface LocalCommands {
  load: (lab: Lab, cmd: ParsedCommand, io: RemoteCliIo) => Promise<number>
  events: (lab: Lab, follow: boolean, json: boolean, io: RemoteCliIo) => Promise<number>
}

/**
 * The lab commands for a remote lab, or null when `name` is not one (the local lab's code
 * then runs). Load and events reuse the local lab's code on the remote orchestration.
 */
export async function dispatchRemote(cmd: ParsedCommand, name: string, io: RemoteCliIo, local: LocalCommands): Promise<number | null> {
  const home = io.home ?? ftlabHome()
  if (cmd.id === 'help' || cmd.id === 'lab-start' || !RemoteLab.exists(name, home)) return null
  const lab = await RemoteLab.open(name, await cliRemoteOptions(io, false))
  const o = cmd.options
  try {
    const orch = lab.lab
    if (!orch && cmd.id !== 'heal' && cmd.id !== 'lab-stop') throw new Error(`lab '${name}' has no running agents on record; finish with \`ftlab teardown --name ${name}\``)
    switch (cmd.id) {
      case 'status': {
        const rows = await lab.status()
        const faults = [...lab.openFaults().map((f) => ({ id: f.id, spec: f.spec, parts: [], createdAt: f.createdAt, healsAt: f.healsAt })), ...orch!.openFaults()]
        if (o.json) {
          io.out(JSON.stringify({ name, gen: orch!.generation, hosts: rows, faults: { host: lab.openFaults(), agent: orch!.openFaults() } }, null, 2) + '\n')
          return OK
        }
        io.out(`lab '${name}' (remote), generation ${orch!.generation}\n${statusTable(rows, faults)}\n`)
        for (const r of rows) io.out(`  ${r.host.padEnd(5)} ${r.where}${r.reason ? `: ${r.reason}` : ''}\n`)
        for (const f of lab.openFaults()) io.out(`  fault ${f.id} via ${f.path}: ${f.parts.map((p) => `${p.slot} ${p.record.path} ftlab_${p.record.id}`).join(', ')}\n`)
        return OK
      }
      case 'fault': {
        const f = faultFromArgs(cmd.positionals[0]!, cmd.positionals[1]!, o)
        if (f.kind === 'power') {
          const r = await lab.powerCut(f.host)
          io.out(`power cut ${f.host} (${r.driver}): ${r.detail}\n`)
          return OK
        }
        const r = await lab.injectFault(f.spec, f.forMs)
        io.out(`${r.id}: ${cmd.positionals[0]} ${cmd.positionals[1]} via ${r.path} until ${new Date(r.healsAt).toISOString()} (heal now with \`ftlab heal ${r.id} --name ${name}\`)\n`)
        for (const p of r.parts) io.out(`  ${p}\n`)
        if (r.note) io.out(`  note: ${r.note}\n`)
        return OK
      }
      case 'heal': {
        const healed = await lab.heal(cmd.positionals[0]!)
        io.out(healed.length ? `healed ${healed.join(', ')}\n` : 'no open faults; cleared FT Lab rules on every host and asked every agent to heal anyway\n')
        return OK
      }
      case 'restore': {
        const t0 = Date.now()
        const r = await lab.restore(typeof o.onto === 'string' ? { onto: o.onto } : {})
        const svc = lab.lab?.snapshot().hosts[r.to]?.service
        const moved = r.machine ? `, moved onto ${r.machine}${svc ? `; its service is now ${svc.host}:${svc.port}` : ''}` : ''
        io.out(`redundancy restored: ${r.from} is primary, ${r.to} is its new backup (agent deployed on ${lab.slotHost(r.to).label}${moved}), generation ${r.gen}, in ${formatDuration(Date.now() - t0)}\n`)
        return OK
      }
      case 'lab-stop': {
        await lab.heal('all').catch(() => {})
        await orch?.stop()
        io.out(`lab '${name}' stopped; its files stay on the hosts until \`ftlab teardown --name ${name}\`\n`)
        return OK
      }
      case 'load':
        return await local.load(orch!, cmd, io)
      case 'events':
        return await local.events(orch!, !!o.follow, !!o.json, io)
      default:
        return null
    }
  } finally {
    lab.close()
  }
}
