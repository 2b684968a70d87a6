// The kv guest against Debian's redis-server, reply for reply: the same command script
// (test/fixtures/kv-redis-script.json) was run against redis-server 7.0 by
// scripts/record-redis-reference.mjs, and the kv must answer every command with the same
// bytes (errors included, since clients parse them). When redis-server is installed, the
// test also checks that the recorded reference is still what it answers (it stays
// fixed otherwise: the recorded file is the reference).
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Rig, repliesTo } from '../vmm/harness.js'

interface Entry {
  cmd: string[]
  reply: string
  sort?: boolean
  ignore?: string
}

const fixtures = join(import.meta.dirname, '../../fixtures')
const script = (JSON.parse(readFileSync(join(fixtures, 'kv-redis-script.json'), 'utf8')) as { script: (string[] | Omit<Entry, 'reply'>)[] }).script
const reference = JSON.parse(readFileSync(join(fixtures, 'kv-redis-reference.json'), 'utf8')) as { server: string; entries: Entry[] }

type Node = string | { t: string; items: Node[] }

/** A RESP2/RESP3 reply as a tree: aggregates keep their type letter, scalars are their raw frame text. */
function parse(buf: string, pos: number): { node: Node; end: number } {
  const nl = buf.indexOf('\r\n', pos)
  const t = buf[pos]
  const head = buf.slice(pos + 1, nl)
  let p = nl + 2
  if ('$=!'.includes(t) && Number(head) >= 0) return { node: buf.slice(pos, p + Number(head) + 2), end: p + Number(head) + 2 }
  if ('*~%'.includes(t) && Number(head) >= 0) {
    const items: Node[] = []
    for (let i = 0; i < (t === '%' ? 2 : 1) * Number(head); i++) {
      const r = parse(buf, p)
      items.push(r.node)
      p = r.end
    }
    return { node: { t, items }, end: p }
  }
  return { node: buf.slice(pos, p), end: p }
}

/** the reply with every array's items in one order: for replies whose order is Redis's hash table's */
function sorted(n: Node): Node {
  if (typeof n === 'string') return n
  return { t: n.t, items: n.items.map(sorted).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) }
}

const entries = script.map((s) => (Array.isArray(s) ? { cmd: s } : s))

describe('kv against the recorded replies of redis-server', () => {
  it('the reference was recorded from the current script (else: node scripts/record-redis-reference.mjs)', () => {
    expect(reference.entries.map((e) => e.cmd)).toEqual(entries.map((e) => e.cmd))
  })

  it(`answers every command of the script as ${reference.server.split(' ').slice(0, 3).join(' ')} did, byte for byte`, () => {
    const rig = new Rig('kv')
    rig.boot()
    const mismatches: string[] = []
    for (const e of reference.entries) {
      let got = rig.cmd('t:1', ...e.cmd)
      // a blocking pop with a timeout: the timeout is a timer on the virtual clock
      for (const id of [...rig.timers.keys()]) if (got === '') got += repliesTo('t:1', rig.fire(id).outputs)
      if (e.ignore !== undefined) continue
      const same = e.sort ? JSON.stringify(sorted(parse(got, 0).node)) === JSON.stringify(sorted(parse(e.reply, 0).node)) : got === e.reply
      if (!same) mismatches.push(`${e.cmd.join(' ')}\n  redis: ${JSON.stringify(e.reply)}\n  kv:    ${JSON.stringify(got)}`)
    }
    expect(mismatches.join('\n')).toBe('')
  })

  const haveServer = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
  it.skipIf(!haveServer)('the installed redis-server still answers as recorded', () => {
    const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
    expect(r.stdout.trim()).toBe(reference.server)
  })
})
