// The guest and the VMM alone, per command: what a replica's CPU spends in `Vmm.execute` (primary) and `Vmm.replay`
// (backup) with no network, no disk server, no logging channel and no other process on the cores. A request in a lab
// costs at least this, whatever the transport around it does. The kv guest runs at its defaults (`appendfsync
// always`), so a SET or INCR is also a disk barrier whose completion is an input of its own, answered at once, as a
// disk server that is never slow would answer it; the figures are per command, those inputs included. Everything runs
// in this process on a seeded clock and random, so every run executes the same inputs, and a change to the VMM or a
// guest can be measured against the code before it (in alternated runs) without a lab's noise.
import { encodeCommand } from '../../agent/guests/resp.js'
import { createVmm } from '../../agent/vmm/vmm.js'
import type { EntryBody, Entropy, GuestInput, ReplicationMode, Vmm } from '../../agent/vmm/types.js'
import { Prng } from '../../agent/prng.js'
import { renderTable } from '../cli/table.js'
import { median } from './side-by-side.js'

export const VMM_COMMANDS = ['SET', 'GET', 'INCR'] as const
export type VmmCommand = (typeof VMM_COMMANDS)[number]

export interface VmmCostRow {
  mode: ReplicationMode
  command: VmmCommand
  /** commands in one data input: 1 as redis-benchmark sends them without -P, 16 with -P 16 (or in a batch, below) */
  perInput: number
  /** connections in one input: 1 (a 'data' input), or perInput with one command each (a 'batch' input: one turn of many clients) */
  connsPerInput: number
  /** median over the rounds, µs of this process's time per command */
  primaryUs: number
  backupUs: number
  /** inputs (entries) per command: the data input's share and the barrier completions */
  entriesPerCommand: number
}

export interface VmmCostResult {
  connections: number
  keys: number
  commandsPerRound: number
  rounds: number
  rows: VmmCostRow[]
}

export interface VmmCostOptions {
  modes: readonly ReplicationMode[]
  /** commands measured per round and row (after as many unmeasured ones on the same VMMs) */
  commands?: number
  rounds?: number
}

const CONNECTIONS = 50
const KEYS = 1000
/** data inputs the primary executes before the backup replays their entries */
const REPLAY_BATCH = 32

/** The primary's clock and random from one seed (a clock that moves 1 ms a read): every run executes the same inputs. */
function seeded(seed: number): Entropy {
  const prng = new Prng(seed)
  let t = 1_700_000_000_000
  return { u32: () => prng.u32(), now: () => (t += 1) }
}

const refuse = (what: string) => (): never => {
  throw new Error(`vmm cost: the backup read its own ${what} while replaying`)
}

function request(command: VmmCommand, n: number): string[] {
  const k = 'key:' + (n % KEYS)
  return command === 'SET' ? ['SET', k, 'xxx'] : command === 'GET' ? ['GET', k] : ['INCR', 'counter:' + (n % KEYS)]
}

interface Pair {
  primary: Vmm
  backup: Vmm
  /** commands sent so far: the next key */
  sent: number
}

/**
 * One input on the primary and every input it leads to (disk reads answered empty, barriers completed at once), in
 * order; their entries for the backup. Only the primary's time is counted here.
 */
function execute(p: Pair, first: GuestInput, bodies: EntryBody[]): number {
  let us = 0
  const queue: GuestInput[] = [first]
  for (let input = queue.shift(); input !== undefined; input = queue.shift()) {
    const t0 = performance.now()
    const r = p.primary.execute(input)
    us += (performance.now() - t0) * 1000
    bodies.push(r.body)
    for (const io of r.io) if (io.t === 'disk-read') queue.push({ t: 'disk-read', tag: io.tag, block: io.block, data: new Uint8Array(0) })
    for (const o of r.outputs) if (o.t === 'disk-sync') queue.push({ t: 'disk-synced', tag: o.tag })
  }
  return us
}

function replay(p: Pair, bodies: EntryBody[]): number {
  const t0 = performance.now()
  for (const b of bodies) p.backup.replay(b)
  return (performance.now() - t0) * 1000
}

function pair(mode: ReplicationMode): Pair {
  const p: Pair = {
    primary: createVmm({ guest: 'kv', mode, entropy: seeded(1) }),
    backup: createVmm({ guest: 'kv', mode, entropy: { now: refuse('clock'), u32: refuse('random') } }),
    sent: 0
  }
  const bodies: EntryBody[] = []
  execute(p, { t: 'boot' }, bodies)
  for (let c = 0; c < CONNECTIONS; c++) execute(p, { t: 'open', conn: 'c' + c }, bodies)
  replay(p, bodies)
  return p
}

/**
 * `commands` commands, `perInput` to an input, round robin over the connections: µs per command on each side. Spread:
 * each input a 'batch' of `perInput` connections, one command each, as one event-loop turn of that many clients.
 */
function run(p: Pair, command: VmmCommand, perInput: number, commands: number, spread = false): { primaryUs: number; backupUs: number; entries: number } {
  const inputs: GuestInput[] = []
  let conn = 0
  const next = () => 'c' + (conn++ % CONNECTIONS)
  for (let i = 0; i < commands / perInput; i++) {
    const parts: Uint8Array[] = []
    for (let k = 0; k < perInput; k++) parts.push(encodeCommand(request(command, p.sent++)))
    if (spread) inputs.push({ t: 'batch', reads: parts.map((data) => ({ conn: next(), data })) })
    else inputs.push({ t: 'data', conn: next(), data: perInput === 1 ? parts[0] : Buffer.concat(parts) })
  }
  let primaryUs = 0
  let backupUs = 0
  let entries = 0
  // the backup replays what the primary logged a batch at a time, as it would from the logging channel: entries do not
  // pile up in the heap (which both VMMs share here) as they would if the backup waited for the whole round
  for (let i = 0; i < inputs.length; i += REPLAY_BATCH) {
    const bodies: EntryBody[] = []
    for (let j = i; j < Math.min(inputs.length, i + REPLAY_BATCH); j++) primaryUs += execute(p, inputs[j], bodies)
    backupUs += replay(p, bodies)
    entries += bodies.length
  }
  if (p.backup.stateHash() !== p.primary.stateHash())
    throw new Error(`vmm cost: the backup's state differs from the primary's after ${command} ×${perInput}${spread ? ' connections' : ''}`)
  return { primaryUs: primaryUs / commands, backupUs: backupUs / commands, entries: entries / commands }
}

export function measureVmmCost(opts: VmmCostOptions): VmmCostResult {
  const commands = opts.commands ?? 10_000
  const rounds = opts.rounds ?? 5
  const rows: VmmCostRow[] = []
  for (const mode of opts.modes) {
    for (const command of VMM_COMMANDS) {
      for (const [perInput, spread] of [
        [1, false],
        [16, false],
        [16, true]
      ] as const) {
        const n = Math.max(perInput, Math.floor(commands / perInput) * perInput)
        const p = pair(mode)
        // unmeasured first: V8 compiles the hot paths, and the keys exist, as they do in a lab under load
        run(p, command, perInput, n, spread)
        const prim: number[] = []
        const back: number[] = []
        let entries = 0
        for (let r = 0; r < rounds; r++) {
          const f = run(p, command, perInput, n, spread)
          prim.push(f.primaryUs)
          back.push(f.backupUs)
          entries = f.entries
        }
        // rounds ≥ 1: the medians exist
        rows.push({
          mode,
          command,
          perInput,
          connsPerInput: spread ? perInput : 1,
          primaryUs: median(prim)!,
          backupUs: median(back)!,
          entriesPerCommand: entries
        })
      }
    }
  }
  return { connections: CONNECTIONS, keys: KEYS, commandsPerRound: commands, rounds, rows }
}

export function renderVmmCost(r: VmmCostResult): string[] {
  return [
    `guest and VMM per command, in this process, no network (kv at appendfsync always, ${r.connections} connections, ${r.keys.toLocaleString('en-US')} keys; median of ${r.rounds} rounds of ${r.commandsPerRound.toLocaleString('en-US')} commands):`,
    renderTable(
      ['MODE', 'COMMAND', 'PER INPUT', 'PRIMARY µs', 'BACKUP µs', 'ENTRIES/CMD'],
      r.rows.map((x) => [
        x.mode,
        x.command,
        x.connsPerInput > 1 ? `${x.perInput} conns` : String(x.perInput),
        x.primaryUs.toFixed(2),
        x.backupUs.toFixed(2),
        x.entriesPerCommand.toFixed(3)
      ])
    ),
    "PER INPUT: commands per input; 'N conns': N connections' commands, one each, as one 'batch' input (a turn of N clients without -P)"
  ]
}
