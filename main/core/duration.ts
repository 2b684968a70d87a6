// Durations as operators type them: "500ms", "30s", "2m", "1h", "1.5s". A bare number counts
// in the unit the option's help names: <ms> options read "20" as 20 ms, <duration> ones as seconds.
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

export function parseDuration(text: string, bare: 'ms' | 's' = 's'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text)
  if (!m) throw new Error(`"${text}" is not a duration; write it like 500ms, 30s, 2m or 1h`)
  const ms = Number(m[1]) * UNITS[m[2] ?? bare]
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`"${text}" is not a positive duration`)
  return Math.round(ms)
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${+(ms / 1000).toFixed(1)}s`
  if (ms < 3_600_000) return `${+(ms / 60_000).toFixed(1)}m`
  return `${+(ms / 3_600_000).toFixed(1)}h`
}
