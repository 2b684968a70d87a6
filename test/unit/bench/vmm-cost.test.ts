// The bench's vmm section: the guest and the VMM alone, per command. The figures are times and are not asserted; what
// is: every row is measured, the backup replayed to the primary's state, and the entries per command are what the kv
// guest at appendfsync always logs (a write is its data input and its barrier's completion, a read only its input; a
// batch of connections shares both, as a pipeline does).
import { describe, expect, it } from 'vitest'
import { measureVmmCost, renderVmmCost, VMM_COMMANDS } from '../../../main/bench/vmm-cost.js'

describe('bench: guest and VMM cost per command', () => {
  it('measures each mode, command and batching, with the entries each command logs', () => {
    const r = measureVmmCost({ modes: ['rsm', 'state-transfer'], commands: 320, rounds: 1 })
    expect(r.rows).toHaveLength(2 * VMM_COMMANDS.length * 3)
    expect(r.rows.filter((x) => x.connsPerInput === 16).map((x) => x.perInput)).toEqual(Array(2 * VMM_COMMANDS.length).fill(16))
    for (const row of r.rows) {
      expect(row.primaryUs, `${row.mode} ${row.command} ×${row.perInput}`).toBeGreaterThan(0)
      expect(row.backupUs, `${row.mode} ${row.command} ×${row.perInput}`).toBeGreaterThan(0)
      expect(Number.isFinite(row.primaryUs + row.backupUs)).toBe(true)
      const inputsPerCommand = 1 / row.perInput
      const expected = row.command === 'GET' ? inputsPerCommand : 2 * inputsPerCommand
      expect(row.entriesPerCommand, `${row.mode} ${row.command} ×${row.perInput}`).toBeCloseTo(expected, 6)
    }
    const text = renderVmmCost(r).join('\n')
    expect(text).toMatch(/^MODE +COMMAND +PER INPUT +PRIMARY µs +BACKUP µs +ENTRIES\/CMD$/m)
    expect(text).toMatch(/^state-transfer +INCR +16 +[0-9.]+ +[0-9.]+ +0\.125$/m)
    // a batch of 16 connections logs like a pipeline of 16: one input and, for writes, one barrier
    expect(text).toMatch(/^rsm +SET +16 conns +[0-9.]+ +[0-9.]+ +0\.125$/m)
  })
})
