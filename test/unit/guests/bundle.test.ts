import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { build } from 'esbuild'
import { afterAll, describe, expect, it } from 'vitest'

// Guests reach the sandbox as source text (factory.toString()): whatever the bundler does
// to their bodies must still run there. Bundle a small program the way the agent is
// bundled (and harder: minified, and with keepNames) and run it on plain Node.
const dir = mkdtempSync(join(tmpdir(), 'ftlab-guest-bundle-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const program = (root: string): string => `
import { createVmm } from ${JSON.stringify(resolve(root, 'agent/vmm/vmm.ts'))}
import { encodeCommand } from ${JSON.stringify(resolve(root, 'agent/guests/resp.ts'))}
const out = []
for (const guest of ['kv', 'bank']) {
  const vmm = createVmm({ guest, mode: 'rsm', entropy: { now: () => 1700000000123, u32: () => 5 } })
  vmm.execute({ t: 'boot' })
  vmm.execute({ t: 'disk-read', tag: 1, block: 0, data: new Uint8Array(0) })
  const cmds = guest === 'kv'
    ? [['SET', 'k', 'v'], ['GET', 'k'], ['TIME'], ['RANDOMKEY']]
    : [['TRANSFER', '0', '1', '5'], ['TOTAL']]
  for (const c of cmds) {
    const r = vmm.execute({ t: 'data', conn: 't:1', data: encodeCommand(c) })
    // appendfsync always: the reply waits for its writes, made durable at once here
    const outputs = [...r.outputs]
    for (const o of r.outputs) if (o.t === 'disk-sync') outputs.push(...vmm.execute({ t: 'disk-synced', tag: o.tag }).outputs)
    out.push(outputs.filter((o) => o.t === 'reply').map((o) => Buffer.from(o.data).toString('latin1')).join(''))
  }
}
process.stdout.write(JSON.stringify(out))
`

describe('guests survive bundling', () => {
  const expected = ['+OK\r\n', '$1\r\nv\r\n', '*2\r\n$10\r\n1700000000\r\n$6\r\n123000\r\n', '$1\r\nk\r\n', '+OK\r\n', ':8000\r\n']
  it.each([
    ['as the agent is bundled', {}],
    ['minified', { minify: true }],
    ['with keepNames', { keepNames: true }]
  ])('kv and bank run from an esbuild bundle (%s)', async (_, extra) => {
    const entry = join(dir, 'entry.mjs')
    writeFileSync(entry, program(process.cwd()))
    const outfile = join(dir, `bundle-${Object.keys(extra).join('') || 'plain'}.cjs`)
    await build({ entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'cjs', target: 'node18', logLevel: 'silent', ...extra })
    const stdout = execFileSync(process.execPath, [outfile], { encoding: 'utf8' })
    expect(JSON.parse(stdout)).toEqual(expected)
  })
})
