// The `ftlab` command line's grammar: commands, their positionals and options, and usage
// text generated from the same table, so help and parser cannot drift apart. Tokenising is
// node:util's parseArgs; what each option accepts (choices, ranges, durations) and the
// messages that name the flag and what it expects are ours.
import { parseArgs as tokenize } from 'node:util'
import { parseDuration } from '../core/duration.js'
import { LOCAL_LAB_NAME } from '../lab/local-lab.js'

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
  /** duration: what a bare number counts (the placeholder says it: <ms> or <duration>) */
  bare?: 'ms' | 's'
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
  /** listed under "real hosts" in the help */
  remote?: boolean
}

export type CommandId = 'lab-start' | 'lab-stop' | 'status' | 'load' | 'fault' | 'heal' | 'restore' | 'power-on' | 'events' | 'deploy' | 'teardown' | 'help'

export type OptValue = string | number | boolean

export interface ParsedCommand {
  id: CommandId
  positionals: string[]
  options: Record<string, OptValue>
}

export const FAULT_KINDS = ['power', 'pause', 'isolate', 'cut', 'loss', 'delay'] as const

/** The lab every command works on unless --name says otherwise; the console's lab has the same name. */
export const DEFAULT_LAB = LOCAL_LAB_NAME
/** A remote lab deployed without a name in the lab file or on the command line. */
export const DEFAULT_REMOTE_LAB = 'remote'

const nameOpt: OptSpec = { name: 'name', type: 'string', help: `which lab (default: ${DEFAULT_LAB})`, placeholder: 'lab' }
const remoteNameOpt: OptSpec = { name: 'name', type: 'string', help: `which remote lab (default: ${DEFAULT_REMOTE_LAB})`, placeholder: 'lab' }
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
      {
        name: 'heartbeat',
        type: 'duration',
        bare: 'ms',
        min: 5,
        max: 10_000,
        help: 'heartbeat interval on the logging channel, in ms (or 20ms, 1s; default: 20)',
        placeholder: 'ms'
      },
      {
        name: 'suspect',
        type: 'duration',
        bare: 'ms',
        min: 20,
        max: 60_000,
        help: 'the longest silence before a replica suspects its peer, in ms (or 2s; default: 800); its failure detector learns a shorter one, from 5 heartbeats up',
        placeholder: 'ms'
      },
      { name: 'etcd', type: 'string', help: 'break ties with this etcd cluster instead of the disk server (comma-separated client URLs)', placeholder: 'urls' },
      nameOpt
    ]
  },
  { id: 'lab-stop', words: ['lab', 'stop'], summary: "stop the lab's agents and forget it", positionals: [], options: [nameOpt] },
  {
    id: 'status',
    words: ['status'],
    summary: 'one line per host: role, generation, logging channel; then the open faults',
    positionals: [],
    options: [nameOpt, jsonOpt]
  },
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
    summary: 'inject a fault on a host (a, b, disk) or a link (a-b; a>b for one way); power stays cut until restore or power-on',
    positionals: [
      { name: 'kind', help: FAULT_KINDS.join('|'), choices: FAULT_KINDS },
      { name: 'target', help: 'host or link' }
    ],
    options: [
      {
        name: 'for',
        type: 'duration',
        bare: 's',
        help: 'heal by itself after this long (30s, 2m, 500ms; a bare number is seconds; default: 60s)',
        placeholder: 'duration'
      },
      { name: 'p', type: 'number', min: 0, max: 1, help: 'loss: probability of dropping a message', placeholder: '0..1' },
      { name: 'ms', type: 'int', min: 0, max: 600_000, help: 'delay: milliseconds each way' },
      { name: 'jitter', type: 'int', min: 0, max: 600_000, help: 'delay: extra random milliseconds', placeholder: 'ms' },
      nameOpt
    ]
  },
  {
    id: 'heal',
    words: ['heal'],
    summary: 'heal one fault by id, or all of them (emergency stop: paused agents first, then the rest at once)',
    positionals: [{ name: 'id|all', help: 'fault id or all' }],
    options: [nameOpt]
  },
  {
    id: 'restore',
    words: ['restore'],
    summary: 'restore redundancy: a fresh replica joins the live one',
    positionals: [],
    options: [
      {
        name: 'onto',
        type: 'string',
        help: 'remote lab: start the fresh replica on this host of the lab file (e.g. spare); its slot moves there',
        placeholder: 'host'
      },
      nameOpt
    ]
  },
  {
    id: 'events',
    words: ['events'],
    summary: "print the lab's events, one readable line each (repeats collapsed)",
    positionals: [],
    options: [
      { name: 'follow', type: 'flag', help: 'keep printing new events until interrupted' },
      nameOpt,
      { name: 'json', type: 'flag', help: 'print the raw events, one JSON object a line' }
    ]
  },
  {
    id: 'deploy',
    words: ['deploy'],
    summary: 'deploy agents to the hosts of a lab file and start the lab (hosts are checked in parallel, one line each)',
    positionals: [{ name: 'labfile', help: 'the lab file (JSON)' }],
    options: [
      { name: 'name', type: 'string', help: `which lab (default: the file's "name", else ${DEFAULT_REMOTE_LAB})`, placeholder: 'lab' },
      { name: 'accept-new-host-keys', type: 'flag', help: 'accept unknown SSH host keys without asking (for testbeds; changed keys are always refused)' }
    ],
    remote: true
  },
  {
    id: 'teardown',
    words: ['teardown'],
    summary: 'heal every fault, stop the agents, remove what FT Lab put on the hosts, forget the lab',
    positionals: [],
    options: [remoteNameOpt],
    remote: true
  },
  {
    id: 'power-on',
    words: ['power-on'],
    summary:
      "switch a host on with its lab file's power driver and wait for SSH (closes its power cut); with both replicas down, start this one booting the guest from the disk server in the next generation",
    positionals: [{ name: 'host', help: 'a, b, disk' }],
    options: [remoteNameOpt],
    remote: true
  },
  { id: 'help', words: ['help'], summary: 'show this help', positionals: [], options: [] }
]

export function commandUsage(c: CommandSpec): string {
  const pos = c.positionals.map((p) => `<${p.name === 'kind' ? p.help : p.name}>`).join(' ')
  const opts = c.options.map(
    (o) =>
      (o.required ? '' : '[') +
      `--${o.name}` +
      (o.type === 'flag' ? '' : ` ${o.choices ? o.choices.join('|') : `<${o.placeholder ?? o.type}>`}`) +
      (o.required ? '' : ']')
  )
  const head = ['ftlab', ...c.words, pos, ...opts].filter(Boolean).join(' ')
  const lines = c.options.map((o) => `    --${o.name.padEnd(8)} ${o.help}`)
  return [`  ${head}`, `    ${c.summary}`, ...lines].join('\n')
}

export function remoteUsage(): string {
  return [
    ...COMMANDS.filter((c) => c.remote).map((c) => commandUsage(c)),
    '  status, load, fault, heal, restore, events and lab stop work on a remote lab by --name'
  ].join('\n')
}

export function usage(): string {
  return [
    'usage:',
    ...COMMANDS.filter((c) => c.id !== 'help' && !c.remote).map((c) => commandUsage(c)),
    '',
    'real hosts:',
    remoteUsage(),
    '',
    'recordings:',
    '  ftlab sessions list | show | rename | delete | import | export   (ftlab sessions help)',
    '  ftlab soak [--lab local|simulated|remote NAME] [--faults N] [--minutes M] [--seed S]   (ftlab soak --help)',
    '  ftlab report RECORDING|SESSION [-o out.html]                  a self-contained HTML report',
    '  ftlab drill NAME|FILE [--repeat N] [--seed S] [--lab local|simulated|remote NAME]   (ftlab drill --help; --list the built-ins)',
    '',
    'exit codes: 0 ok, 1 failed, 2 bad arguments, 3 a check found a violation'
  ].join('\n')
}

export function parseArgs(argv: readonly string[]): ParsedCommand {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') return { id: 'help', positionals: [], options: {} }
  const spec = COMMANDS.find((c) => c.words.every((w, i) => argv[i] === w))
  if (!spec) {
    const group = argv[0] === 'lab' ? `'lab ${argv[1] ?? ''}'`.replace(/ '$/, "'") : `'${argv[0]}'`
    throw new UsageError(`unknown command ${group}`, usage())
  }
  const u = commandUsage(spec)
  const rest = argv.slice(spec.words.length)
  if (rest.includes('--help') || rest.includes('-h')) return { id: 'help', positionals: spec.words, options: {} }
  // not strict: unknown options and missing values come back as tokens, and the messages below name them better
  const { tokens } = tokenize({
    args: [...rest],
    options: Object.fromEntries(spec.options.map((o) => [o.name, { type: o.type === 'flag' ? ('boolean' as const) : ('string' as const) }])),
    strict: false,
    allowPositionals: true,
    tokens: true
  })
  const positionals: string[] = []
  const options: Record<string, OptValue> = {}
  for (const t of tokens) {
    if (t.kind === 'positional') {
      positionals.push(t.value)
      continue
    }
    if (t.kind !== 'option') continue
    const o = spec.options.find((x) => x.name === t.name)
    if (!o) throw new UsageError(`unknown option ${t.rawName.startsWith('--') ? t.rawName : `-${t.name}`} for '${spec.words.join(' ')}'`, u)
    if (o.name in options) throw new UsageError(`--${o.name} given twice`, u)
    if (o.type === 'flag') {
      if (t.value !== undefined) throw new UsageError(`--${o.name} takes no value`, u)
      options[o.name] = true
      continue
    }
    // `--name --json`: the next word is another option, not this one's value
    if (t.value === undefined || (!t.inlineValue && t.value.startsWith('--') && t.value.length > 2)) throw new UsageError(`--${o.name} needs a value`, u)
    options[o.name] = convert(o, t.value, u)
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
    case 'duration': {
      let ms: number
      try {
        ms = parseDuration(text, o.bare ?? 's')
      } catch (err) {
        throw new UsageError(`--${o.name}: ${(err as Error).message}`, u)
      }
      if ((o.min !== undefined && ms < o.min) || (o.max !== undefined && ms > o.max))
        throw new UsageError(`--${o.name} must be from ${o.min} to ${o.max} ms, got ${ms} ms ('${text}')`, u)
      return ms
    }
    case 'int':
    case 'number': {
      const n = Number(text)
      const ok = text.trim() !== '' && Number.isFinite(n) && (o.type === 'number' || Number.isInteger(n))
      if (!ok) throw new UsageError(`--${o.name} must be ${o.type === 'int' ? 'a whole number' : 'a number'}, got '${text}'`, u)
      if ((o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max))
        throw new UsageError(`--${o.name} must be from ${o.min} to ${o.max}, got ${n}`, u)
      return n
    }
    case 'flag':
      return true
  }
}
