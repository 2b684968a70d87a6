// The console's cache of Node runtimes for hosts that have no Node of their own, filled by
// scripts/fetch-node-runtime.mjs from the npm registry's node-linux-<arch> packages.
// Layout: <cache>/node-v<version>-linux-<arch>/bin/node, and beside bin/ what deploy sends:
// node.gz (the binary, gzip -9) with node.gz.json (the binary's size, mtime and SHA-256).
import { createHash } from 'node:crypto'
import { access, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { constants, createReadStream, createWriteStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'

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

/** What deploy uploads for a cached runtime: the binary's hash and size, and its compressed copy. */
export interface PreparedRuntime extends CachedRuntime {
  sha256: string
  bytes: number
  /** node.gz beside bin/: the same binary, gzip -9 */
  gzPath: string
  gzBytes: number
  gzSha256: string
}

interface GzMeta {
  bytes: number
  mtimeMs: number
  sha256: string
  gzBytes: number
  gzSha256: string
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/**
 * The runtime's compressed copy and hash, made once per cached runtime (scripts/fetch-node-runtime.mjs
 * makes them when it fetches; an older cache gets them here, on first use). Compressing at
 * deploy time cost more than the upload saved (gzip -1 of 119 MiB: 2.4 s here); made ahead,
 * gzip -9 sends 37% of the bytes and the host only decompresses. A binary changed since
 * (another size or mtime) is hashed and compressed again.
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

async function prepare(rt: CachedRuntime): Promise<PreparedRuntime> {
  const entry = dirname(dirname(rt.path))
  const gzPath = join(entry, 'node.gz')
  const metaPath = `${gzPath}.json`
  const st = await stat(rt.path)
  try {
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as GzMeta
    const gz = await stat(gzPath)
    const hex = (x: unknown): boolean => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x)
    if (meta.bytes === st.size && meta.mtimeMs === st.mtimeMs && gz.size === meta.gzBytes && hex(meta.sha256) && hex(meta.gzSha256)) {
      return { ...rt, sha256: meta.sha256, bytes: meta.bytes, gzPath, gzBytes: meta.gzBytes, gzSha256: meta.gzSha256 }
    }
  } catch {
    // absent or unreadable: made below
  }
  const tmp = `${gzPath}.partial-${process.pid}`
  try {
    const hash = createHash('sha256')
    const src = createReadStream(rt.path)
    src.on('data', (d) => hash.update(d))
    await pipeline(src, createGzip({ level: 9 }), createWriteStream(tmp))
    const sha256 = hash.digest('hex')
    const gzBytes = (await stat(tmp)).size
    const gzSha256 = await sha256Of(tmp)
    await rename(tmp, gzPath)
    const meta: GzMeta = { bytes: st.size, mtimeMs: st.mtimeMs, sha256, gzBytes, gzSha256 }
    await writeFile(`${metaPath}.partial-${process.pid}`, JSON.stringify(meta) + '\n')
    await rename(`${metaPath}.partial-${process.pid}`, metaPath)
    return { ...rt, sha256, bytes: st.size, gzPath, gzBytes, gzSha256 }
  } catch (e) {
    await rm(tmp, { force: true })
    throw new Error(`cannot prepare the cached Node runtime ${rt.path} for upload (writing ${gzPath}): ${(e as Error).message}`, { cause: e })
  }
}
