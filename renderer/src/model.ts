// Readings of the lab status that several views share: a host's compound state, a fault's
// one-line description and deadline, the load's failures and verdict, the invariants.
//
// Contract v2 carries these as fields (HostStatus.notes, FaultInfo.what, LoadStatus.failed,
// LoadStatus.verdict, LabStatus.invariants). Where a backend leaves one empty that the status
// can answer (notes of an isolated host, live replicas per generation), it is derived here
// from the other fields, so every view reads one shape from one place.
import type { FaultInfo, HostId, HostNote, HostStatus, Invariants, LabStatus, LoadStatus, LoadVerdict, Workload } from '../../main/api/contract'

export type { HostNote, Invariants, LoadVerdict, Workload }

const NOTE_TEXT: Record<HostNote, string> = {
  isolated: 'isolated',
  paused: 'paused',
  'outputs-held': 'outputs held',
  'no-disk-server': 'cannot reach the disk server',
  'no-peer': 'no peer',
  'cannot-go-live': 'cannot go live',
  fenced: 'fenced',
  diverged: 'diverged',
  'power-off': 'power off'
}

const NOTE_WHY: Record<HostNote, string> = {
  isolated: 'cut from the lab network: nothing reaches it, nothing leaves it',
  paused: 'SIGSTOPped: alive but silent (grey failure)',
  'outputs-held': 'the Output Rule holds its replies and disk writes until the backup acknowledges the entries that produced them',
  'no-disk-server': 'its test-and-set and disk writes do not reach the disk server',
  'no-peer': 'the logging channel to the other replica is down',
  'cannot-go-live': 'going live needs the disk server’s test-and-set, which it cannot reach',
  fenced: 'the disk server refuses its writes: another replica holds the generation',
  diverged: 'its state no longer matches the primary’s',
  'power-off': 'powered off: comes back only by power-on or restore redundancy'
}

export function noteText(n: HostNote): string {
  return NOTE_TEXT[n] ?? n
}
export function noteWhy(n: HostNote, host?: HostId): string {
  // restore redundancy refills a replica's slot; the disk server comes back only by power-on
  if (n === 'power-off' && host === 'disk') return 'powered off: comes back by power-on, on the blocks and metadata it kept'
  return NOTE_WHY[n] ?? ''
}

function faultHits(f: FaultInfo, id: HostId, kinds: string[]): boolean {
  if (!kinds.includes(f.kind)) return false
  return f.target === id || (f.target.includes('-') && f.target.split('-').includes(id))
}

/** The host's compound-state flags: the backend's, or derived from its flags and the open faults. */
export function hostNotes(h: HostStatus, faults: FaultInfo[]): HostNote[] {
  if (h.notes?.length) return h.notes
  const notes: HostNote[] = []
  const power = faults.some((f) => f.target === h.id && f.kind === 'power')
  if (power) notes.push('power-off')
  if (h.isolated) notes.push('isolated')
  if (h.paused) notes.push('paused')
  if (h.id === 'disk' || power) return notes
  const cutFromDisk =
    h.isolated ||
    faults.some((f) => f.kind === 'cut' && f.target === `${h.id}-disk`) ||
    faults.some((f) => f.target === 'disk' && (f.kind === 'isolate' || f.kind === 'power' || f.kind === 'pause'))
  const cutFromPeer =
    h.isolated ||
    faults.some((f) => faultHits(f, h.id, ['cut']) && f.target === 'a-b') ||
    faults.some(
      (f) => f.target !== h.id && f.target !== 'disk' && !f.target.includes('-') && (f.kind === 'isolate' || f.kind === 'power' || f.kind === 'pause')
    )
  if (h.role === 'primary' && cutFromPeer) notes.push('outputs-held')
  if ((h.role === 'primary' || h.role === 'backup') && cutFromPeer && !notes.includes('isolated')) notes.push('no-peer')
  if (cutFromDisk && (h.role === 'primary' || h.role === 'backup' || h.role === 'live')) notes.push('no-disk-server')
  if (cutFromDisk && (h.role === 'primary' || h.role === 'backup')) notes.push('cannot-go-live')
  return notes
}

/** "primary · isolated · outputs held · cannot reach the disk server" */
export function compoundRole(h: HostStatus, faults: FaultInfo[]): string {
  const role = h.role === 'disk-server' ? 'disk server' : h.role
  return [role, ...hostNotes(h, faults).map(noteText)].join(' · ')
}

/** A primary cut off from its backup: the channel must not read as flowing a → b. */
export function channelCutOff(status: LabStatus | null): boolean {
  if (!status?.channel?.from) return false
  const from = status.hosts.find((h) => h.id === status.channel!.from)
  const to = status.hosts.find((h) => h.id === status.channel!.to)
  if (!from) return false
  if (!to) return true // a primary whose backup the console cannot name has nobody to log to
  if (!from.reachable || from.role !== 'primary') return true
  const notes = [...hostNotes(from, status.faults), ...hostNotes(to, status.faults)]
  return notes.includes('isolated') || notes.includes('no-peer') || notes.includes('power-off') || to.role === 'live' || !status.channel.connected
}

export function faultWhat(f: FaultInfo): string {
  // the backend's line when it names what it hit ("cut a↔b"); a bare kind ("power") says less than ours
  const ends = f.target.split('-')
  if (f.what && ends.every((e) => f.what.includes(e))) return f.what
  const p = f.params
  const link = f.target.replace('-', '↔')
  switch (f.kind) {
    case 'power':
      return `power cut ${f.target}`
    case 'pause':
      return `pause ${f.target}`
    case 'isolate':
      return `isolate ${f.target}`
    case 'cut':
      return `cut ${p.direction === 'forward' ? f.target.replace('-', '→') : p.direction === 'backward' ? f.target.replace('-', '←') : link}`
    case 'delay':
      return `delay ${link} ${p.ms} ms${p.jitterMs ? ` ±${p.jitterMs}` : ''}`
    case 'loss':
      return `loss ${link} ${Math.round((p.probability ?? 0) * 100)}%`
  }
}

/** null: heals only by restore redundancy or power-on (a power cut, in contract v2). */
export function faultHealsAt(f: FaultInfo): number | null {
  return typeof f.healsAt === 'number' ? f.healsAt : null
}

export function loadFailed(l: LoadStatus | null): number | null {
  return typeof l?.failed === 'number' ? l.failed : null
}

export function loadVerdict(l: LoadStatus | null): LoadVerdict | null {
  return l?.verdict ?? null
}

export function loadWorkload(l: LoadStatus | null): Workload | null {
  return l?.workload ?? null
}

/** The backend's invariants; what it left empty and the status can tell is filled from the status. */
export function labInvariants(s: LabStatus | null): { inv: Invariants; derived: boolean } {
  const sent = s?.invariants
  if (sent && (sent.liveByGen.length > 0 || sent.evidence.length > 0 || !s?.hosts.some((h) => h.role === 'primary' || h.role === 'live')))
    return { inv: sent, derived: false }
  const byGen = new Map<number, HostId[]>()
  for (const h of s?.hosts ?? []) {
    if (h.role !== 'primary' && h.role !== 'live') continue
    byGen.set(h.gen, [...(byGen.get(h.gen) ?? []), h.id])
  }
  const liveByGen = [...byGen.entries()].sort((a, b) => a[0] - b[0]).map(([gen, live]) => ({ gen, live }))
  const disk = s?.hosts.find((h) => h.id === 'disk')?.disk
  return {
    inv: {
      liveByGen,
      splitBrain: liveByGen.some((g) => g.live.length > 1),
      acknowledgedLost: sent?.acknowledgedLost ?? null,
      duplicatesDropped: Math.max(sent?.duplicatesDropped ?? 0, s?.load.duplicatesDropped ?? 0),
      fencedWrites: Math.max(sent?.fencedWrites ?? 0, disk?.fenced ?? 0),
      divergence: sent?.divergence ?? null,
      evidence: sent?.evidence ?? []
    },
    derived: true
  }
}
