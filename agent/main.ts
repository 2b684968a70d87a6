// Agent entry point. Reads one JSON line (the boot config) from stdin, prints one ready
// line on stdout, and from then on talks only through its control port and its log
// file: the console may detach it, close the pipes, or go away altogether.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, AGENT_VERSION } from './agent.js'
import { BootConfigError, MAX_BOOT_LINE_BYTES, parseBootConfig } from './boot.js'
import type { StartReplica } from './context.js'
import type { AgentBootConfig } from './control/protocol.js'
import { FileLogger } from './log.js'
import { processAlive } from './process.js'

// The replica runtime (VMM, guests, logging channel, the etcd client with node:http and
// node:https) is evaluated when a replica role starts, not before the ready line: an agent
// that serves as the disk server, or waits for its role, never needs it. The bundle stays
// one file (esbuild turns this import into a lazily run module initialiser).
const START_REPLICA: StartReplica | null = async (spec, ctx) => {
  // null in a build without the replica role (test/support/agent.ts makes one)
  const start = (await import('./replica/runtime.js')).startReplica as StartReplica | null
  if (!start) throw new Error('replica role not available in this agent build')
  return start(spec, ctx)
}

// A write to a closed stdout/stderr pipe must never kill the agent.
process.stdout.on('error', () => {})
process.stderr.on('error', () => {})

function readBootLine(): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = ''
    const done = (fn: () => void) => {
      process.stdin.off('data', onData)
      process.stdin.off('end', onEnd)
      process.stdin.off('error', onError)
      // one line and no more: stop reading, so a closed or chatty stdin cannot matter later
      process.stdin.pause()
      process.stdin.destroy()
      fn()
    }
    const onData = (chunk: string) => {
      buf += chunk
      const nl = buf.indexOf('\n')
      if (nl >= 0) return done(() => resolve(buf.slice(0, nl)))
      if (buf.length > MAX_BOOT_LINE_BYTES) done(() => reject(new BootConfigError(`first stdin line is longer than ${MAX_BOOT_LINE_BYTES} bytes`)))
    }
    const onEnd = () => done(() => (buf.trim() ? resolve(buf) : reject(new BootConfigError('stdin closed before a boot config line arrived'))))
    const onError = (err: Error) => done(() => reject(new BootConfigError(`reading stdin failed: ${err.message}`)))
    process.stdin.setEncoding('utf8')
    process.stdin.on('data', onData)
    process.stdin.on('end', onEnd)
    process.stdin.on('error', onError)
  })
}

function fatal(message: string): never {
  process.stderr.write(JSON.stringify({ error: message }) + '\n')
  process.exit(2)
}

/**
 * Replaces a file through a temp name, so a reader never sees half of it, without fsync:
 * the pid file and agent.json describe this process, which a machine crash ends anyway
 * (four fsyncs were a third of the agent's start-up on a busy host).
 */
function replaceFile(path: string, content: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, content, { mode })
  renameSync(tmp, path)
}

/** Another live agent on the same data directory would fight over the disk image. */
function claimPidFile(boot: AgentBootConfig): string {
  const pidPath = join(boot.dataDir, 'agent.pid')
  if (existsSync(pidPath)) {
    const other = Number(readFileSync(pidPath, 'utf8').trim())
    if (Number.isInteger(other) && other > 0 && other !== process.pid && processAlive(other)) {
      fatal(`another agent (pid ${other}) is running with dataDir ${boot.dataDir}; stop it first or use another dataDir`)
    }
  }
  replaceFile(pidPath, `${process.pid}\n`, 0o644)
  return pidPath
}

async function main(): Promise<void> {
  let boot: AgentBootConfig
  try {
    boot = parseBootConfig(await readBootLine())
  } catch (err) {
    fatal((err as Error).message)
  }
  try {
    mkdirSync(boot.dataDir, { recursive: true, mode: 0o700 })
  } catch (err) {
    fatal(`cannot create dataDir ${boot.dataDir}: ${(err as Error).message}`)
  }
  const pidPath = claimPidFile(boot)
  const infoPath = join(boot.dataDir, 'agent.json')
  const log = new FileLogger(join(boot.dataDir, 'agent.log'))

  const cleanupFiles = () => {
    rmSync(pidPath, { force: true })
    rmSync(infoPath, { force: true })
  }
  const agent = new Agent({
    boot,
    log,
    startReplica: START_REPLICA,
    onStopped: () => {
      cleanupFiles()
      log.close()
      process.exit(0)
    }
  })

  // The console detaching (SSH session closing) sends SIGHUP: the agent serves on.
  process.on('SIGHUP', () => log.info('SIGHUP ignored: the agent keeps running without its console'))
  const stopOnSignal = (sig: string) => {
    log.info(`${sig} received; stopping`)
    void agent.stop().then(() => {
      cleanupFiles()
      log.close()
      process.exit(0)
    })
  }
  process.on('SIGTERM', () => stopOnSignal('SIGTERM'))
  process.on('SIGINT', () => stopOnSignal('SIGINT'))
  // A bug in one handler must not take down a running lab; it is logged and reported.
  process.on('uncaughtException', (err) => {
    log.error('uncaught exception', { message: err.message, stack: err.stack })
    agent.ring.emit('agent-error', { message: err.message })
  })
  process.on('unhandledRejection', (reason) => {
    const message = reason instanceof Error ? reason.message : String(reason)
    log.error('unhandled rejection', { message })
    agent.ring.emit('agent-error', { message })
  })

  try {
    await agent.start()
  } catch (err) {
    log.error('agent failed to start', { message: (err as Error).message })
    cleanupFiles()
    fatal((err as Error).message)
  }
  const startedAt = new Date().toISOString()
  replaceFile(infoPath, JSON.stringify({ controlPort: agent.controlPort, pid: process.pid, version: AGENT_VERSION, startedAt }) + '\n', 0o600)
  // the Node version lets deploy check a runtime it has just uploaded without running it a second time
  process.stdout.write(JSON.stringify({ ready: { controlPort: agent.controlPort, pid: process.pid, node: process.version } }) + '\n')
}

void main()
