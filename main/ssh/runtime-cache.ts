// The console's cache of Node runtimes for hosts that have no Node of their own, filled by
// scripts/fetch-node-runtime.mjs from the npm registry's node-linux-<arch> packages.
// Layout: <cache>/node-v<version>-linux-<arch>/bin/node
import { access, readdir } from 'node:fs/promises'
import { constants } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

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
