// @ts-check
// FT Lab's layering, enforced: who may import whom (docs/layering.md says why). One rule per
// boundary, so an error names the boundary it breaks. Every kind of module reference is checked:
// import/export ... from, import(), require(), `import x = require()` and `import('x').T` types.
// Type-only imports count too: the layering is about what a module may know, not only what it loads.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { dirname, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

// tsconfig.web.json's paths: the renderer may name the contract as '@contract/contract'
const aliases = [['@contract/', 'main/api/']]

const CONTRACT = 'main/api/contract'

/**
 * What a module specifier refers to, as the boundaries see it.
 * @typedef {{ kind: 'builtin', name: string } | { kind: 'package', name: string } | { kind: 'file', path: string }} Target
 */

/**
 * @param {string} spec the specifier as written
 * @param {string} fromFile absolute path of the importing file
 * @returns {Target}
 */
function classify(spec, fromFile) {
  const bare = spec.replace(/[?#].*$/, '') // './x.svg?url' is still ./x.svg
  if (bare.startsWith('node:') || builtinModules.includes(bare)) return { kind: 'builtin', name: bare.replace(/^node:/, '') }
  const alias = aliases.find(([prefix]) => bare.startsWith(prefix))
  if (alias) return { kind: 'file', path: alias[1] + bare.slice(alias[0].length) }
  if (bare.startsWith('.') || bare.startsWith('/')) {
    const abs = resolve(dirname(fromFile), bare)
    return { kind: 'file', path: relative(root, abs).split(sep).join('/') }
  }
  const parts = bare.split('/')
  return { kind: 'package', name: bare.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0] }
}

/** @param {string} path repo-relative, with or without extension @param {string} dir e.g. 'main/' */
const inside = (path, dir) => path.startsWith(dir)
/** the contract, however it is spelt: contract, contract.js, contract.ts */
const isContract = (/** @type {string} */ path) => path.replace(/\.(js|ts|mjs|mts)$/, '') === CONTRACT

/**
 * A boundary: for one area of the tree (the `files` it is enabled on in eslint.config.js), which
 * targets it forbids. `forbids` returns what the target is, in words, or null when it is allowed.
 * @typedef {{ files: string[], ignores?: string[], why: string, forbids: (t: Target) => string | null }} Boundary
 */

/** @type {Record<string, Boundary>} */
export const boundaries = {
  'electron-only-in-shell': {
    files: ['**/*.{ts,mts,cts,js,mjs,cjs,vue}'],
    ignores: ['main/electron/**', 'preload/**'],
    why: 'only main/electron/ and preload/ may use Electron, so that the console core also runs as the CLI, in browser mode and under test; put the Electron-specific part in main/electron/ and hand the core what it needs',
    forbids: (t) => (t.kind === 'package' && t.name === 'electron' ? 'the Electron API' : null)
  },
  'pure-replica-core': {
    files: ['agent/replica/core.ts'],
    why: 'the replica core is a pure state machine (events in, actions out) that the hosts and the seeded simulator both run; I/O, clocks and randomness belong to the edge that performs its actions, so pass the value in as an event or in the config',
    forbids: (t) => (t.kind === 'builtin' ? `the Node module '${t.name}'` : null)
  },
  'agent-stdlib-only': {
    files: ['agent/**'],
    why: "the agent is bundled to one file and runs on the hosts' bare Node (18+) with no node_modules and none of the console; use Node's standard library and agent/ modules",
    forbids: (t) => {
      if (t.kind === 'package') return `the npm package '${t.name}'`
      if (t.kind === 'file' && !inside(t.path, 'agent/')) return `${t.path}, outside agent/`
      return null
    }
  },
  'renderer-contract-only': {
    files: ['renderer/**'],
    why: 'the renderer reaches the console only through the contract (main/api/contract.ts) over IPC or the WebSocket: it runs in a browser page without Node; add what it needs to the contract',
    forbids: (t) => {
      if (t.kind === 'builtin') return `the Node module '${t.name}'`
      if (t.kind === 'package' && ['ssh2', 'ws'].includes(t.name)) return `the Node-only package '${t.name}'`
      if (t.kind === 'file' && inside(t.path, 'main/') && !isContract(t.path)) return `${t.path}, in main/ but not the contract`
      if (t.kind === 'file' && (inside(t.path, 'agent/') || inside(t.path, 'preload/'))) return t.path
      return null
    }
  },
  'core-not-renderer': {
    files: ['main/**'],
    ignores: ['main/electron/**'],
    why: 'the console core serves every front end (Electron, browser mode, the CLI); the UI depends on the core through the contract, never the other way round; move what both need into main/api/contract.ts',
    forbids: (t) => (t.kind === 'file' && inside(t.path, 'renderer/') ? `${t.path}, in the renderer` : null)
  },
  'preload-sandboxed': {
    files: ['preload/**'],
    why: "the preload runs in Electron's sandbox, which loads no Node modules and no npm packages: it may import only 'electron' and the contract (bundled in by electron-vite)",
    forbids: (t) => {
      if (t.kind === 'builtin') return `the Node module '${t.name}'`
      if (t.kind === 'package' && t.name !== 'electron') return `the npm package '${t.name}'`
      if (t.kind === 'file' && !inside(t.path, 'preload/') && !isContract(t.path)) return `${t.path}, which is not the contract`
      return null
    }
  }
}

/**
 * @param {Boundary} boundary
 * @returns {import('eslint').Rule.RuleModule}
 */
function ruleFor(boundary) {
  return {
    meta: {
      type: 'problem',
      docs: { description: boundary.why, url: 'docs/layering.md' },
      schema: [],
      messages: { forbidden: "Importing '{{spec}}' ({{what}}) crosses a layer boundary: {{why}} (docs/layering.md)." }
    },
    create(context) {
      const file = context.filename
      /** @param {any} node a string literal holding a specifier */
      const check = (node) => {
        if (!node || node.type !== 'Literal' || typeof node.value !== 'string') return
        const what = boundary.forbids(classify(node.value, file))
        if (what) context.report({ node, messageId: 'forbidden', data: { spec: node.value, what, why: boundary.why } })
      }
      return {
        ImportDeclaration: (node) => check(node.source),
        ExportNamedDeclaration: (node) => check(node.source),
        ExportAllDeclaration: (node) => check(node.source),
        ImportExpression: (node) => check(node.source),
        CallExpression(node) {
          if (node.callee.type === 'Identifier' && node.callee.name === 'require') check(node.arguments[0])
        },
        /** @param {any} node */
        TSExternalModuleReference: (node) => check(node.expression),
        /** @param {any} node */
        TSImportType: (node) => check(node.source ?? node.argument?.literal)
      }
    }
  }
}

/** @type {import('eslint').ESLint.Plugin} */
export const plugin = {
  // the version is this file's hash, so that `eslint --cache` forgets its results when a boundary changes
  meta: {
    name: 'ftlab-layering',
    version: createHash('sha256')
      .update(readFileSync(fileURLToPath(import.meta.url)))
      .digest('hex')
      .slice(0, 12)
  },
  rules: Object.fromEntries(Object.entries(boundaries).map(([name, b]) => [name, ruleFor(b)]))
}

/** Flat-config blocks that enable each boundary on its area, as errors. */
export const layeringConfigs = [
  { name: 'ftlab/layering/plugin', plugins: { layering: plugin } },
  ...Object.entries(boundaries).map(([name, b]) => ({
    name: `ftlab/layering/${name}`,
    files: b.files,
    ...(b.ignores ? { ignores: b.ignores } : {}),
    rules: { [`layering/${name}`]: /** @type {const} */ ('error') }
  }))
]
