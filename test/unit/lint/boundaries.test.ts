import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'
import { beforeAll, describe, expect, it } from 'vitest'

// The layering rules as the project runs them: the repository's own eslint.config.js, applied to
// code placed (virtually, through lintText's filePath) in each area of the tree.
const root = resolve(fileURLToPath(import.meta.url), '../../../..')
let eslint: ESLint

beforeAll(() => {
  eslint = new ESLint({ cwd: root })
})

interface Finding {
  rule: string | null
  severity: number
  message: string
}

async function lint(file: string, code: string): Promise<Finding[]> {
  const [result] = await eslint.lintText(code, { filePath: resolve(root, file) })
  const fatal = result.messages.filter((m) => m.fatal)
  if (fatal.length > 0) throw new Error(`${file} did not parse: ${fatal.map((m) => m.message).join('; ')}`)
  return result.messages.map((m) => ({ rule: m.ruleId, severity: m.severity, message: m.message }))
}

const layering = (findings: Finding[]): Finding[] => findings.filter((f) => f.rule?.startsWith('layering/'))

/** Each breach must be an error of the named boundary rule (another boundary may object too), quoting the import. */
async function expectBreach(file: string, code: string, rule: string, spec: string): Promise<void> {
  const found = layering(await lint(file, code))
  expect(found, `${file}: ${code}`).toEqual(
    expect.arrayContaining([expect.objectContaining({ rule: `layering/${rule}`, severity: 2, message: expect.stringContaining(`'${spec}'`) })])
  )
}

async function expectAllowed(file: string, code: string): Promise<void> {
  expect(layering(await lint(file, code)), `${file}: ${code}`).toEqual([])
}

describe('layering: only the Electron shell and the preload use electron', () => {
  it('refuses electron in the console core, in every form of import', async () => {
    await expectBreach('main/lab/x.ts', "import { app } from 'electron'\nexport { app }\n", 'electron-only-in-shell', 'electron')
    await expectBreach('main/api/x.ts', "export async function f() {\n  return import('electron')\n}\n", 'electron-only-in-shell', 'electron')
    await expectBreach('main/lab/x.ts', "export * from 'electron/main'\n", 'electron-only-in-shell', 'electron/main')
    await expectBreach('main/lab/x.ts', "export type App = import('electron').App\n", 'electron-only-in-shell', 'electron')
    await expectBreach('scripts/x.mjs', "const { app } = require('electron')\nexport { app }\n", 'electron-only-in-shell', 'electron')
  })

  it('refuses electron in the agent, the renderer and the tests', async () => {
    await expectBreach('agent/replica/runtime.ts', "import 'electron'\n", 'electron-only-in-shell', 'electron')
    await expectBreach('renderer/src/x.ts', "import { ipcRenderer } from 'electron'\nexport { ipcRenderer }\n", 'electron-only-in-shell', 'electron')
    await expectBreach('test/unit/x.test.ts', "import { app } from 'electron'\nexport { app }\n", 'electron-only-in-shell', 'electron')
  })

  it('lets main/electron/ and preload/ import electron', async () => {
    await expectAllowed('main/electron/index.ts', "import { app, BrowserWindow } from 'electron'\nexport { app, BrowserWindow }\n")
    await expectAllowed(
      'preload/index.ts',
      "import { contextBridge } from 'electron'\nimport { IPC_CALL } from '../main/api/contract.js'\nexport { contextBridge, IPC_CALL }\n"
    )
  })

  it('does not mistake packages whose names start with electron for it', async () => {
    await expectAllowed('electron.vite.config.ts', "import { defineConfig } from 'electron-vite'\nexport default defineConfig({})\n")
  })
})

describe('layering: the replica core is pure', () => {
  it('refuses node: modules and bare builtins in agent/replica/core.ts', async () => {
    await expectBreach('agent/replica/core.ts', "import { readFileSync } from 'node:fs'\nexport { readFileSync }\n", 'pure-replica-core', 'node:fs')
    await expectBreach('agent/replica/core.ts', "import { randomUUID } from 'crypto'\nexport { randomUUID }\n", 'pure-replica-core', 'crypto')
    await expectBreach('agent/replica/core.ts', "import type { Socket } from 'node:net'\nexport type S = Socket\n", 'pure-replica-core', 'node:net')
  })

  it('lets the core import its own types, and the edge use Node', async () => {
    await expectAllowed(
      'agent/replica/core.ts',
      "import type { Action } from './types.js'\nimport { entryBytes } from './size.js'\nexport type A = Action\nexport { entryBytes }\n"
    )
    await expectAllowed('agent/replica/runtime.ts', "import { createServer } from 'node:net'\nexport { createServer }\n")
  })
})

describe('layering: the agent uses the Node standard library only', () => {
  it('refuses npm packages', async () => {
    await expectBreach('agent/replica/runtime.ts', "import { z } from 'zod'\nexport { z }\n", 'agent-stdlib-only', 'zod')
    await expectBreach('agent/net/x.ts', "import type { Client } from 'ssh2'\nexport type C = Client\n", 'agent-stdlib-only', 'ssh2')
  })

  it('refuses files outside agent/', async () => {
    await expectBreach('agent/agent.ts', "import { Lab } from '../main/lab/lab.js'\nexport { Lab }\n", 'agent-stdlib-only', '../main/lab/lab.js')
    await expectBreach(
      'agent/replica/runtime.ts',
      "import { x } from '../../test/sim/simulator.js'\nexport { x }\n",
      'agent-stdlib-only',
      '../../test/sim/simulator.js'
    )
  })

  it('lets agent modules import each other and Node builtins', async () => {
    await expectAllowed(
      'agent/replica/runtime.ts',
      "import { ReplicaCore } from './core.js'\nimport type { Vmm } from '../vmm/types.js'\nimport { createHash } from 'node:crypto'\nexport { ReplicaCore, createHash }\nexport type V = Vmm\n"
    )
  })
})

describe('layering: the renderer reaches the console only through the contract', () => {
  it('refuses console-core modules other than the contract', async () => {
    await expectBreach('renderer/src/x.ts', "import { Lab } from '../../main/lab/lab'\nexport { Lab }\n", 'renderer-contract-only', '../../main/lab/lab')
    await expectBreach(
      'renderer/src/stores/x.ts',
      "import type { WsServer } from '../../../main/api/ws-server'\nexport type W = WsServer\n",
      'renderer-contract-only',
      '../../../main/api/ws-server'
    )
    await expectBreach(
      'renderer/src/x.ts',
      "import { dispatch } from '@contract/dispatch'\nexport { dispatch }\n",
      'renderer-contract-only',
      '@contract/dispatch'
    )
  })

  it('refuses the agent, Node modules and the Node-only packages', async () => {
    await expectBreach(
      'renderer/src/x.ts',
      "import type { Action } from '../../agent/replica/types'\nexport type A = Action\n",
      'renderer-contract-only',
      '../../agent/replica/types'
    )
    await expectBreach('renderer/src/x.ts', "import { join } from 'node:path'\nexport { join }\n", 'renderer-contract-only', 'node:path')
    await expectBreach('renderer/src/x.ts', "import { Client } from 'ssh2'\nexport { Client }\n", 'renderer-contract-only', 'ssh2')
    await expectBreach('renderer/src/x.ts', "import WebSocket from 'ws'\nexport { WebSocket }\n", 'renderer-contract-only', 'ws')
  })

  it('checks the script of single-file components too', async () => {
    const sfc =
      '<script setup lang="ts">\nimport { Lab } from \'../../../main/lab/lab\'\nconst lab = Lab\n</script>\n\n<template>\n  <p>{{ lab }}</p>\n</template>\n'
    await expectBreach('renderer/src/components/LabThing.vue', sfc, 'renderer-contract-only', '../../../main/lab/lab')
  })

  it('lets the renderer import the contract, by relative path or by alias, and browser packages', async () => {
    await expectAllowed('renderer/src/stores/x.ts', "import type { LabStatus } from '../../../main/api/contract'\nexport type L = LabStatus\n")
    await expectAllowed('renderer/src/x.ts', "import { GUESTS } from '../../main/api/contract.js'\nexport { GUESTS }\n")
    await expectAllowed(
      'renderer/src/x.ts',
      "import { GUESTS } from '@contract/contract'\nimport { ref } from 'vue'\nimport { Terminal } from '@xterm/xterm'\nexport { GUESTS, ref, Terminal }\n"
    )
  })
})

describe('layering: the console core does not depend on the UI', () => {
  it('refuses renderer modules in main/', async () => {
    await expectBreach(
      'main/api/x.ts',
      "import { formatClock } from '../../renderer/src/format'\nexport { formatClock }\n",
      'core-not-renderer',
      '../../renderer/src/format'
    )
  })

  it('lets main/ import the agent and npm packages', async () => {
    await expectAllowed(
      'main/lab/x.ts',
      "import type { Action } from '../../agent/replica/types.js'\nimport { Client } from 'ssh2'\nexport type A = Action\nexport { Client }\n"
    )
  })
})

describe('layering: the preload stays sandboxable', () => {
  it('refuses Node modules, npm packages and console-core modules other than the contract', async () => {
    await expectBreach('preload/index.ts', "import { readFileSync } from 'node:fs'\nexport { readFileSync }\n", 'preload-sandboxed', 'node:fs')
    await expectBreach('preload/index.ts', "import { z } from 'zod'\nexport { z }\n", 'preload-sandboxed', 'zod')
    await expectBreach(
      'preload/index.ts',
      "import { dispatch } from '../main/api/dispatch.js'\nexport { dispatch }\n",
      'preload-sandboxed',
      '../main/api/dispatch.js'
    )
  })
})
