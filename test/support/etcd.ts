// A real single-member etcd (Debian: etcd-server, /usr/bin/etcd) on 127.0.0.1 with a
// temporary data dir and free ports, for the tests of the etcd tie-breaker.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { get } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const hasEtcd = spawnSync('sh', ['-c', 'command -v etcd']).status === 0

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port
      s.close(() => resolve(p))
    })
  })
}

export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what} after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export function etcdHealthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(`${url}/health`, (res) => {
      let body = ''
      res.on('data', (c) => (body += c))
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('true')))
    })
    req.on('error', () => resolve(false))
    req.setTimeout(1000, () => req.destroy())
  })
}

export interface EtcdProcess {
  url: string
  process: ChildProcess
  /** SIGKILL it (it stays killed) */
  kill(): void
  /** kill it and remove its data */
  close(): void
}

export async function startEtcd(): Promise<EtcdProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'ftlab-etcd-'))
  const url = `http://127.0.0.1:${await freePort()}`
  const peerUrl = `http://127.0.0.1:${await freePort()}`
  let log = ''
  const etcd = spawn(
    'etcd',
    [
      '--name',
      'ftlab-test',
      '--data-dir',
      join(dir, 'data'),
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `ftlab-test=${peerUrl}`,
      '--initial-cluster-state',
      'new'
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] }
  )
  etcd.stdout!.on('data', (d) => (log += d))
  etcd.stderr!.on('data', (d) => (log += d))
  const kill = () => {
    if (etcd.exitCode === null && etcd.signalCode === null) etcd.kill('SIGKILL')
  }
  const close = () => {
    kill()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await until(() => etcdHealthy(url), 20_000, 'etcd to be healthy')
  } catch (e) {
    close()
    throw new Error(`${(e as Error).message}; etcd said:\n${log.slice(-2000)}`, { cause: e })
  }
  return { url, process: etcd, kill, close }
}
