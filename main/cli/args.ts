// The `ftlab` command line's grammar: commands, their positionals and options, and usage
// text generated from the same table, so help and parser cannot drift apart.
import { parseDuration } from '../core/duration.js'

export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string
  ) {
    super(message)
    this.name = 'UsageError'
  }
}

type OptType = 'string' | 'int' | 'number' | 'duration' | 'flag'

interface OptSpec {
  name: string
  type: OptType
  help: string
  choices?: readonly string[]
  required?: boolean
  min?: number
  max?: number
  placeholder?: string
}

interface PosSpec {
  name: string
  help: string
  choices?: readonly string[]
}

export interface CommandSpec {
  id: CommandId
  words: string[]
  summary: string
  positionals: PosSpec[]
  options: OptSpec[]
}

export type CommandId = 'lab-start' | 'lab-stop' | 'status' | 'load' | 'fault' | 'heal' | 'restore' | 'events' | 'help'

export type OptValue = string | number | boolean

export interface ParsedCommand {
  id: CommandId
  positionals: string[]
  options: Record<string, OptValue>
}

export const FAULT_KINDS = ['power', 'pause', 'isolate', 'cut', 'loss', 'delay'] as const

const nameOpt: OptSpec = { name: 'name', type: 'string', help: 'which lab (default: local)', placeholder: 'lab' }
const jsonOpt: OptSpec = { name: 'json', type: 'flag', help: 'print JSON instead of text' }

export const COMMANDS: CommandSpec[] = [
  {
    id: 'lab-start',
    words: ['lab', 'start'],
    summary: 'start the embedded local lab: replicas a and b, disk server',
    positionals: [],
    options: [
      { name: 'guest', type: 'string', choices: ['kv', 'bank'], help: 'the guest program (default: kv)' },
      { name: 'mode', type: 'string', choices: ['rsm', 'state-transfer'], help: 'replication mode (default: rsm)' },
      { name: 'heartbeat', type: 'duration', help: 'heartbeat interval on the logging channel (default: 100ms)', placeholder: 'ms' },
      { name: 'suspect', type: 'duration', help: 'silence after which a replica suspects its peer (default: 800ms)', placeholder: 'ms' },
      { name: 'etcd', type: 'string', help: 'break ties with this etcd cluster instead of the disk server (comma-separated client URLs)', placeholder: 'urls' },
      nameOpt
    ]
  },
  { id: 'lab-stop', words: ['lab', 'stop'], summary: "stop the lab's agents and forget it", positionals: [], options: [nameOpt] },
  { id: 'status', words: ['status'], summary: 'one line per host: role, generation, logging channel', positionals: [], options: [nameOpt, jsonOpt] },
  {
    id: 'load',
    words: ['load'],
    summary: 'run clients against the service, then check the history',
    positionals: [],
    options: [
      { name: 'seconds', type: 'number', required: true, min: 0.1, max: 86_400, help: 'how long to run', placeholder: 'N' },
      { name: 'clients', type: 'int', min: 1, max: 1000, help: 'concurrent clients (default: 4)', placeholder: 'C' },
      { name: 'keys', type: 'int', min: 1, max: 100_000, help: 'key space (default: 16)', placeholder: 'K' },
      { name: 'history', type: 'string', help: 'also write the history as JSON to this file', placeholder: 'file' },
      nameOpt,
      jsonOpt
    ]
  },
  {
    id: 'fault',
    words: ['fault'],
    summary: 'inject a fault on a host (a, b, disk) or a link (a-b; a>b for one way)',
    positionals: [
      { name: 'kind', help: FAULT_KINDS.join('|'), choices: FAULT_KINDS },
      { name: 'target', help: 'host or link' }
    ],
    options: [
      { name: 'for', type: 'duration', help: 'heal by itself after this long (default: 60s)', placeholder: 'duration' },
      { name: 'p', type: 'number', min: 0, max: 1, help: 'loss: probability of dropping a message', placeholder: '0..1' },
      { name: 'ms', type: 'int', min: 0, max: 600_000, help: 'delay: milliseconds each way' },
      { name: 'jitter', type: 'int', min: 0, max: 600_000, help: 'delay: extra random milliseconds', placeholder: 'ms' },
      nameOpt
    ]
  },
  { id: 'heal', words: ['heal'], summary: 'heal one fault by id, or all of them (emergency stop)', positionals: [{ name: 'id|all', help: 'fault id or all' }], options: [nameOpt] },
  {
    id: 'restore',
    words: ['restore'],
    summary: 'restore redundancy: a fresh replica joins the live one',
    positionals: [],
    options: [{ name: 'onto', type: 'string', help: "remote lab: start the fresh replica on this host of the lab file (e.g. spare); its slot moves there", placeholder: 'host' }, nameOpt]
  },
  {
    id: 'events',
    words: ['events'],
    summary: "print the lab's events",
    positionals: [],
    options: [{ name: 'follow', type: 'flag', help: 'keep printing new events until interrupted' }, nameOpt, jsonOpt]
  },
  { id: 'help', words: ['help'], summary: 'show this help', positionals: [], options: [] }
]

export function commandUsage(c: CommandSpec): string {
  const pos = c.positionals.map((p) => `<${p.name === 'kind' ? p.help : p.name}>`).join(' ')
  const opts = c.options.map((o) => (o.required ? '' : '[') + `--${o.name}` + (o.type === 'flag' ? '' : ` ${o.choices ? o.choices.join('|') : `<${o.placeholder ?? o.type}>`}`) + (o.required ? '' : ']'))
  const head = ['ftlab', ...c.words, pos, ...opts].filter(Boolean).join(' ')
  const lines = c.options.map((o) => `    --${o.name.padEnd(8)} ${o.help}`)
  return [`  ${head}`, `    ${c.summary}`, ...lines].join('\n')
}

export function usage(): string {
  return ['usage:', ...COMMANDS.filter((c) => c.id !== 'help').map((c) => commandUsage(c)), '', 'exit codes: 0 ok, 1 failed, 2 bad arguments, 3 a check found a violation'].join('\n')
}

export function parseArgs(argv: readonly string[]): ParsedCommand {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') return { id: 'help', positionals: [], options: {} }
  const spec = COMMANDS.find((c) => c.words.every((w, i) => argv[i] === w))
  if (!spec) {
    const group = argv[0] === 'lab' ? `'lab ${argv[1] ?? ''}'`.replace(/ '$/, "'") : `'${argv[0]}'`
    throw new UsageError(`unknown command ${group}`, usage())
  }
  const u = commandUsage(spec)
  const positionals: string[] = []
  const options: Record<string, OptValue> = {}
  const rest = argv.slice(spec.words.length)
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]
    if (arg === '--help' || arg === '-h') return { id: 'help', positionals: spec.words, options: {} }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      const name = arg.slice(2, eq < 0 ? undefined : eq)
      const o = spec.options.find((x) => x.name === name)
      if (!o) throw new UsageError(`unknown option --${name} for '${spec.words.join(' ')}'`, u)
      if (name in options) throw new UsageError(`--${name} given twice`, u)
      if (o.type === 'flag') {
        if (eq >= 0) throw new UsageError(`--${name} takes no value`, u)
        options[name] = true
        continue
      }
      let text: string | undefined
      if (eq >= 0) text = arg.slice(eq + 1)
      else {
        text = rest[i + 1]
        if (text === undefined || (text.startsWith('--') && text.length > 2)) throw new UsageError(`--${name} needs a value`, u)
        i++
      }
      options[name] = convert(o, text, u)
      continue
    }
    positionals.push(arg)
  }
  if (positionals.length > spec.positionals.length) throw new UsageError(`unexpected argument '${positionals[spec.positionals.length]}'`, u)
  if (positionals.length < spec.positionals.length) throw new UsageError(`missing <${spec.positionals[positionals.length].name}>`, u)
  spec.positionals.forEach((p, i) => {
    if (p.choices && !p.choices.includes(positionals[i])) throw new UsageError(`<${p.name}> must be one of ${p.choices.join(', ')}, got '${positionals[i]}'`, u)
  })
  for (const o of spec.options) if (o.required && !(o.name in options)) throw new UsageError(`--${o.name} is required`, u)
  return { id: spec.id, positionals, options }
}

function convert(o: OptSpec, text: string, u: string): OptValue {
  switch (o.type) {
    case 'string':
      if (text.length === 0) throw new UsageError(`--${o.name} needs a value`, u)
      if (o.choices && !o.choices.includes(text)) throw new UsageError(`--${o.name} must be one of ${o.choices.join(', ')}, got '${text}'`, u)
      return text
    case 'duration':
      try {
        return parseDuration(text)
      } catch (err) {
        throw new UsageError(`--${o.name}: ${(err as Error).message}`, u)
      }
    case 'int':
    case 'number': {
      const n = Number(text)
      const ok = text.trim() !== '' && Number.isFinite(n) && (o.type === 'number' || Number.isInteger(n))
      if (!ok) throw new UsageError(`--${o.name} must be ${o.type === 'int' ? 'a whole number' : 'a number'}, got '${text}'`, u)
      if ((o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) throw new UsageError(`--${o.name} must be from ${o.min} to ${o.max}, got ${n}`, u)
      return n
    }
    case 'flag':
      return true
  }
}
