// The console's cache of Node runtimes for hosts that have no Node of their own, filled by
// scripts/fetch-node-runtime.mjs from the npm registry's node-linux-<arch> packages.
// Layout: <cache>/node-v<version>-linux-<arch>/bin/node, and beside bin/ what deploy sends:
// node.gz (gzip -9) and, where this machine has zstd, node.zst (zstd -19) of the binary that is
// sent (stripped where it could be checked), with node.gz.json: the source's size and mtime,
// the sent binary's size and SHA-256, each copy's size and SHA-256.
import { createHash } from 'node:crypto'
import { access, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { constants, createReadStream, createWriteStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'

export type NodeArch = 'x64' | 'arm64'

export interface CachedRuntime {
  version: string
  arch: NodeArch
  path: string
}

export function defaultRuntimeCacheDir(): string {
  if (process.env.FTLAB_RUNTIME_CACHE) return process.env.FTLAB_RUNTIME_CACHE
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ftlab', 'node-runtime')
}

/** Maps `uname -m` to the npm package's arch; null = FT Lab carries no runtime for it. */
export function nodeArchFor(machine: string): NodeArch | null {
  switch (machine.trim()) {
    case 'x86_64':
    case 'amd64':
      return 'x64'
    case 'aarch64':
    case 'arm64':
      return 'arm64'
    default:
      return null
  }
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pa[i] ?? 0) - (pb[i] ?? 0)
  return 0
}

/** The newest cached runtime for `arch` that can run the agent (Node 18+), or null. */
export async function findCachedRuntime(arch: NodeArch, cacheDir = defaultRuntimeCacheDir()): Promise<CachedRuntime | null> {
  let entries: string[]
  try {
    entries = await readdir(cacheDir)
  } catch {
    return null
  }
  const re = new RegExp(`^node-v(\\d+\\.\\d+\\.\\d+)-linux-${arch}$`)
  const versions = entries
    .map((e) => re.exec(e)?.[1])
    .filter((v): v is string => v !== undefined && Number(v.split('.')[0]) >= 18)
    .sort(compareVersions)
    .reverse()
  for (const version of versions) {
    const path = join(cacheDir, `node-v${version}-linux-${arch}`, 'bin', 'node')
    try {
      await access(path, constants.R_OK)
      return { version, arch, path }
    } catch {
      // a half-removed entry; try the next one
    }
  }
  return null
}

/** What deploy uploads for a cached runtime: the binary's hash and size, and its compressed copies. */
export interface PreparedRuntime extends CachedRuntime {
  /** of the binary that is sent and run: the cached one, stripped of its symbols where this machine could check the result */
  sha256: string
  bytes: number
  stripped: boolean
  /** node.gz beside bin/: that binary, gzip -9 */
  gzPath: string
  gzBytes: number
  gzSha256: string
  /** node.zst beside bin/: that binary, zstd -19, made where this machine has zstd */
  zst: { path: string; bytes: number; sha256: string } | null
}

interface PackMeta {
  format: 2
  /** the cached binary the copies were made from */
  srcBytes: number
  srcMtimeMs: number
  stripped: boolean
  bytes: number
  sha256: string
  gzBytes: number
  gzSha256: string
  zstBytes?: number
  zstSha256?: string
}

const run = promisify(execFile)

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

async function hasTool(name: string, args: string[]): Promise<boolean> {
  try {
    await run(name, args, { timeout: 10_000 })
    return true
  } catch {
    return false
  }
}

const HOST_ARCH: NodeArch | null = process.platform !== 'linux' ? null : process.arch === 'x64' ? 'x64' : process.arch === 'arm64' ? 'arm64' : null

/**
 * The official binary carries its symbols and debug info (125 of them are 107 MB stripped).
 * Stripped with binutils' `strip` where this machine has it and can run the result to see it
 * still reports its version (same architecture); otherwise null, and the binary goes as it is.
 */
async function stripped(rt: CachedRuntime, out: string): Promise<string | null> {
  if (rt.arch !== HOST_ARCH || !(await hasTool('strip', ['--version']))) return null
  try {
    await run('strip', ['-o', out, rt.path], { timeout: 120_000 })
    const { stdout } = await run(out, ['--version'], { timeout: 30_000 })
    if (stdout.trim() === `v${rt.version}`) return out
  } catch {
    // not an ELF file strip knows, or the result does not run: send the binary as it is
  }
  await rm(out, { force: true })
  return null
}

/**
 * The runtime's compressed copies and hashes, made once per cached runtime (scripts/fetch-node-runtime.mjs
 * makes them when it fetches; an older cache gets them here, on first use). Compressing at
 * deploy time cost more than the upload saved (gzip -1 of 119 MiB: 2.4 s here); made ahead,
 * the host only decompresses. zstd -19 sends 29 of the stripped binary's 107 MB and a host
 * unpacks it in a third of gzip's time (0.3 s against 0.7 s of CPU here), so a host with zstd
 * gets that copy; gzip -9 (40 MB) is for hosts without it. A binary changed since (another
 * size or mtime) is prepared again.
 */
export function prepareRuntime(rt: CachedRuntime): Promise<PreparedRuntime> {
  // hosts deploy in parallel: one preparation per runtime, whoever asks
  let p = preparing.get(rt.path)
  if (!p) {
    p = prepare(rt).finally(() => preparing.delete(rt.path))
    preparing.set(rt.path, p)
  }
  return p
}

const preparing = new Map<string, Promise<PreparedRuntime>>()

function fromMeta(rt: CachedRuntime, entry: string, meta: PackMeta): PreparedRuntime {
  const zst = meta.zstBytes !== undefined && meta.zstSha256 ? { path: join(entry, 'node.zst'), bytes: meta.zstBytes, sha256: meta.zstSha256 } : null
  return {
    ...rt,
    sha256: meta.sha256,
    bytes: meta.bytes,
    stripped: meta.stripped,
    gzPath: join(entry, 'node.gz'),
    gzBytes: meta.gzBytes,
    gzSha256: meta.gzSha256,
    zst
  }
}

/** The prepared copies of `rt` when they are current, without making anything; null otherwise. */
export async function preparedIfCurrent(rt: CachedRuntime): Promise<PreparedRuntime | null> {
  const entry = dirname(dirname(rt.path))
  try {
    const [st, meta, zstd] = await Promise.all([
      stat(rt.path),
      readFile(join(entry, 'node.gz.json'), 'utf8').then((t) => JSON.parse(t) as PackMeta),
      zstdHere()
    ])
    const hex = (x: unknown): boolean => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x)
    const current =
      meta.format === 2 &&
      meta.srcBytes === st.size &&
      meta.srcMtimeMs === st.mtimeMs &&
      (await stat(join(entry, 'node.gz'))).size === meta.gzBytes &&
      hex(meta.sha256) &&
      hex(meta.gzSha256) &&
      // a zstd copy where this machine can make one, of the size recorded
      (meta.zstBytes === undefined ? !zstd : hex(meta.zstSha256) && (await stat(join(entry, 'node.zst')).catch(() => null))?.size === meta.zstBytes)
    return current ? fromMeta(rt, entry, meta) : null
  } catch {
    // absent, of an older format or unreadable
    return null
  }
}

let zstdProbe: Promise<boolean> | null = null
const zstdHere = (): Promise<boolean> => (zstdProbe ??= hasTool('zstd', ['--version']))

async function prepare(rt: CachedRuntime): Promise<PreparedRuntime> {
  const ready = await preparedIfCurrent(rt)
  if (ready) return ready
  const entry = dirname(dirname(rt.path))
  const gzPath = join(entry, 'node.gz')
  const zstPath = join(entry, 'node.zst')
  const metaPath = `${gzPath}.json`
  const st = await stat(rt.path)
  const zstd = await zstdHere()
  const tag = `partial-${process.pid}`
  const tmps = [`${gzPath}.${tag}`, `${zstPath}.${tag}`, join(entry, 'bin', `node.stripped.${tag}`)] as const
  try {
    const src = (await stripped(rt, tmps[2])) ?? rt.path
    const hash = createHash('sha256')
    const input = createReadStream(src)
    input.on('data', (d) => hash.update(d))
    const gz = pipeline(input, createGzip({ level: 9 }), createWriteStream(tmps[0]))
    // zstd runs beside gzip on the other core; -T0: all cores once gzip is done
    const zs = zstd ? run('zstd', ['-q', '-19', '-T0', '-f', '-o', tmps[1], src], { timeout: 900_000 }).then(() => true) : Promise.resolve(false)
    const [, madeZst] = await Promise.all([gz, zs])
    const meta: PackMeta = {
      format: 2,
      srcBytes: st.size,
      srcMtimeMs: st.mtimeMs,
      stripped: src !== rt.path,
      bytes: (await stat(src)).size,
      sha256: hash.digest('hex'),
      gzBytes: (await stat(tmps[0])).size,
      gzSha256: await sha256Of(tmps[0]),
      ...(madeZst ? { zstBytes: (await stat(tmps[1])).size, zstSha256: await sha256Of(tmps[1]) } : {})
    }
    await rename(tmps[0], gzPath)
    if (madeZst) await rename(tmps[1], zstPath)
    else await rm(zstPath, { force: true })
    await writeFile(`${metaPath}.${tag}`, JSON.stringify(meta) + '\n')
    await rename(`${metaPath}.${tag}`, metaPath)
    return fromMeta(rt, entry, meta)
  } catch (e) {
    throw new Error(`cannot prepare the cached Node runtime ${rt.path} for upload (writing ${gzPath}): ${(e as Error).message}`, { cause: e })
  } finally {
    for (const t of tmps) await rm(t, { force: true })
  }
}
