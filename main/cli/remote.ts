// The `ftlab` commands for labs on real hosts: `deploy`, `teardown`, and the remote side of
// `status`, `fault`, `heal`, `restore`, `power-on`, `lab stop` (faults, load and events are the
// same Lab as for the local lab, given the remote lab's orchestration).
import { join } from 'node:path'
import { formatDuration } from '../core/duration.js'
import type { Lab } from '../lab/lab.js'
import { ftlabHome } from '../lab/lab-state.js'
import { loadLabFile } from '../remote/lab-file.js'
import { RemoteDeployError, RemoteLab, type PreflightLine, type RemoteLabOptions } from '../remote/remote-lab.js'
import type { HostKeyPrompt, SecretSource } from '../ssh/connection.js'
import type { DeployProgress } from '../ssh/deploy.js'
import { KnownHosts } from '../ssh/known-hosts.js'
import { DEFAULT_REMOTE_LAB, type ParsedCommand } from './args.js'
import { faultFromArgs } from './fault-args.js'
import { busyLine, faultLines, healText, labStartedText, statusTable } from './table.js'

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
        io.err(
          `${p.slot}: refused: not a terminal, so nobody can compare the fingerprint; check it on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and deploy from a terminal, or use --accept-new-host-keys on a testbed\n`
        )
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

/** `deploy` and `teardown`: the commands that exist only for remote labs. */
export async function runRemoteCli(cmd: ParsedCommand, io: RemoteCliIo): Promise<number> {
  const named = typeof cmd.options.name === 'string' ? cmd.options.name : undefined
  try {
    const opts = await cliRemoteOptions(io, cmd.options['accept-new-host-keys'] === true)
    switch (cmd.id) {
      case 'deploy': {
        const file = loadLabFile(cmd.positionals[0]!)
        const name = named ?? file.name ?? DEFAULT_REMOTE_LAB
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
            io.err(
              `ftlab: lab '${name}' was not deployed: ${e.lines.filter((l) => !l.ok).length} of ${e.lines.length} hosts failed (see above); nothing was started\n`
            )
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
        const name = named ?? DEFAULT_REMOTE_LAB
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
      default:
        return FAILED
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
  if (cmd.id === 'help' || cmd.id === 'lab-start' || cmd.id === 'deploy' || cmd.id === 'teardown' || !RemoteLab.exists(name, home)) return null
  const lab = await RemoteLab.open(name, await cliRemoteOptions(io, false))
  const o = cmd.options
  try {
    const orch = lab.lab
    if (!orch && cmd.id !== 'heal' && cmd.id !== 'lab-stop')
      throw new Error(`lab '${name}' has no running agents on record; finish with \`ftlab teardown --name ${name}\``)
    switch (cmd.id) {
      case 'status': {
        const rows = await lab.status()
        const faults = orch!.openFaults()
        if (o.json) {
          io.out(JSON.stringify({ name, gen: orch!.generation, hosts: rows, faults, busy: orch!.busy() }, null, 2) + '\n')
          return OK
        }
        io.out(`lab '${name}' (remote), generation ${orch!.generation}\n${statusTable(rows, faults)}\n`)
        for (const r of rows) io.out(`  ${r.host.padEnd(5)} ${r.where}${r.reason ? `: ${r.reason}` : ''}\n`)
        for (const f of faults) for (const k of f.kernel ?? []) io.out(`  fault ${f.id}: ${k.part.detail}\n`)
        io.out(busyLine(orch!.busy()))
        return OK
      }
      case 'fault': {
        const f = faultFromArgs(cmd.positionals[0]!, cmd.positionals[1]!, o)
        io.out(faultLines(f.kind === 'power' ? await orch!.powerCut(f.host) : await orch!.injectFault(f.spec, f.forMs), name))
        return OK
      }
      case 'heal': {
        if (!orch) throw new Error(`lab '${name}' has no running agents on record; \`ftlab teardown --name ${name}\` removes FT Lab's rules from every host`)
        io.out(healText(await orch.heal(cmd.positionals[0]!), orch.openFaults()))
        return OK
      }
      case 'power-on': {
        const r = await lab.powerOn(cmd.positionals[0]!)
        io.out(`power on ${cmd.positionals[0]} (${r.driver}): ${r.detail}; restore redundancy (\`ftlab restore --name ${name}\`) starts a fresh agent there\n`)
        return OK
      }
      case 'restore': {
        const t0 = Date.now()
        const r = await lab.restore(typeof o.onto === 'string' ? { onto: o.onto } : {})
        const svc = lab.lab?.snapshot().hosts[r.to]?.service
        const moved = r.machine ? `, moved onto ${r.machine}${svc ? `; its service is now ${svc.host}:${svc.port}` : ''}` : ''
        io.out(
          `redundancy restored: ${r.from} is primary, ${r.to} is its new backup (agent deployed on ${lab.slotHost(r.to).label}${moved}), generation ${r.gen}, in ${formatDuration(Date.now() - t0)}\n`
        )
        return OK
      }
      case 'lab-stop': {
        await orch?.heal('all').catch(() => {})
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
