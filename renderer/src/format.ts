// Plain formatting helpers shared by components and the channel terminal.
import type { ApiEvent } from '../../main/api/contract'
import { suspicionText } from '../../main/api/contract'

export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`
}

export function formatRate(n: number): string {
  if (n >= 10_000) return `${(n / 1000).toFixed(1)}k`
  return String(Math.round(n))
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s} s`
  const m = Math.floor(s / 60)
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`
  return `${Math.floor(m / 60)} h ${m % 60} min`
}

/** Milliseconds at a precision that fits a figure: 0.4, 6.7, 32, 857. */
export function formatMs(ms: number): string {
  return ms < 10 ? ms.toFixed(1) : String(Math.round(ms))
}

export function formatClock(ts: number): string {
  const d = new Date(ts)
  const p = (n: number, w = 2) => String(n).padStart(w, '0')
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`
}

const DIM = '\x1b[2m'
const RESET = '\x1b[0m'
const color = (code: string, s: string) => `\x1b[${code}m${s}${RESET}`

/** One terminal line for an agent event, or null for events the pane does not show. */
export function formatAgentEvent(ev: Extract<ApiEvent, { topic: 'agent' }>): string | null {
  const t = `${DIM}${formatClock(ev.ts)}${RESET} `
  const d = ev.data
  const host = ev.host.padEnd(5)
  switch (ev.type) {
    case 'entries': {
      const inputs =
        d.inputs && typeof d.inputs === 'object'
          ? Object.entries(d.inputs as Record<string, number>)
              .map(([k, v]) => `${k}×${v}`)
              .join(' ')
          : ''
      return `${t}${color('36', `${ev.host} → ${String(d.to)}`)}  entries ${d.first}–${d.last}  ${d.count} · ${formatBytes(Number(d.bytes))}  ${DIM}${inputs}${RESET}`
    }
    case 'ack':
      return `${t}${color('32', `${ev.host} → ${ev.host === 'a' ? 'b' : 'a'}`)}  ack ${d.n}`
    case 'role':
      return `${t}${color('1', host)}role ${color('1', String(d.role))} (gen ${d.gen}): ${d.reason}`
    case 'suspect':
      return `${t}${color('33', host)}${suspicionText(d)}`
    case 'tas':
      return `${t}${color('35', host)}test-and-set gen ${d.gen}: ${color('1', String(d.result))}`
    case 'go-live':
      return `${t}${color('1;33', host)}goes live (gen ${d.gen}), replayed ${d.replayed}, re-emitted ${d.reemitted}`
    case 'fault':
      return `${t}${color('31', host)}fault ${d.kind} (${d.id}), heals in ${formatDuration(Number(d.deadlineMs))}`
    case 'heal':
      return `${t}${color('32', host)}healed ${d.id} (${d.why})`
    case 'stall':
      return `${t}${color('31', host)}logging channel ${d.on ? 'stalled: buffer full' : 'flowing again'}`
    case 'snapshot':
      return `${t}${color('35', host)}snapshot ${d.direction} (${formatBytes(Number(d.bytes))}, gen ${d.gen})`
    case 'diverged':
      return `${t}${color('1;31', host)}DIVERGED at entry ${d.n}`
    // the real agents' link and housekeeping events (the simulated lab has none of these)
    case 'channel-link':
      return `${t}${color(d.state === 'up' ? '32' : '33', host)}logging channel to ${d.peer ?? '?'} ${d.state}${d.reason ? `: ${d.reason}` : ''}`
    case 'disk-link':
      return `${t}${color(d.state === 'up' ? '32' : '33', host)}disk server link ${d.state}${d.reason ? `: ${d.reason}` : ''}`
    case 'disk-peer':
      return `${t}${color(d.up ? '32' : '33', host)}replica ${d.peer} ${d.up ? 'connected' : 'disconnected'}${d.reason ? `: ${d.reason}` : ''}`
    case 'disk-tas':
      return `${t}${color('35', host)}test-and-set gen ${d.gen} from ${d.from}: ${d.won ? color('1', 'granted') : `refused (winner ${d.winner})`}`
    case 'dropped':
      return `${t}${color('33', host)}dropped ${d.what}${d.from ? ` from ${d.from}` : ''}: ${d.why}`
    case 'agent':
      return `${t}${DIM}${host}agent ${d.state}${d.pid ? ` (pid ${d.pid})` : ''}${RESET}`
    case 'error':
    case 'agent-error':
      return `${t}${color('1;31', host)}error${d.where ? ` in ${d.where}` : ''}: ${d.message}`
    default:
      return `${t}${host}${ev.type} ${JSON.stringify(d)}`
  }
}
