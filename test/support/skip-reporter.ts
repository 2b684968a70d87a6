// Prints, after vitest's own summary, every skip with its reason, so a skip can never pass
// unnoticed: reasons recorded by test/support/skips.ts (into FTLAB_SKIP_LOG, one JSON line
// each) and notes given to ctx.skip(note), grouped by test file.
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { relative } from 'node:path'
import type { Reporter, TestModule, Vitest } from 'vitest/node'
import { KERNEL_FEATURES } from './skips.js'

interface Logged {
  file: string
  reason: string
  kernel: string | null
}

export class SkipReporter implements Reporter {
  /** with -t, vitest marks every test that does not match as skipped: those are no machine's doing */
  private filtered = false

  constructor(private readonly log: string) {}

  onInit(vitest: Vitest): void {
    this.filtered = vitest.config.testNamePattern !== undefined
    rmSync(this.log, { force: true })
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const logged: Logged[] = existsSync(this.log)
      ? readFileSync(this.log, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Logged)
      : []
    rmSync(this.log, { force: true })
    const rel = (f: string) => relative(process.cwd(), f)
    const lines: string[] = []
    let total = 0
    let unexplained = 0
    for (const m of modules) {
      const reasons = new Set(logged.filter((l) => l.file === m.moduleId).map((l) => (l.kernel ? `[kernel: ${l.kernel}] ` : '') + l.reason))
      let skipped = 0
      for (const t of m.children.allTests()) {
        const r = t.result()
        if (r.state !== 'skipped') continue
        skipped++
        if (r.note) reasons.add(r.note)
      }
      if (!reasons.size && (this.filtered || !skipped)) continue
      total += skipped
      if (!reasons.size) unexplained += skipped
      lines.push(
        `  ${rel(m.moduleId)} (${skipped ? `${skipped} skipped` : 'ran, a path not taken'}): ${reasons.size ? [...reasons].join(' | ') : 'NO REASON RECORDED (skip through test/support/skips.ts)'}`
      )
    }
    if (!lines.length) return
    const out = [
      '',
      ` Skipped tests and why (${total} test${total === 1 ? '' : 's'}${unexplained ? `, ${unexplained} without a reason` : ''}):`,
      ...lines,
      `  Under CI=true only kernel features may skip: ${Object.entries(KERNEL_FEATURES)
        .map(([k, v]) => `${k} (${v})`)
        .join(', ')}; anything else missing fails. To install the rest: scripts/setup-machine.sh`,
      ''
    ]
    process.stdout.write(out.join('\n') + '\n')
  }
}
