// The status poller: asks every agent for its status a few times a second and turns the
// answers into the contract's HostStatus, ChannelStatus and Invariants. The poll is the truth
// for roles, generations and figures, and it notices what no event reports, like an agent
// that died.
//
// Compound states: a role alone misleads. An isolated primary still says "primary" (it cannot
// know that b went live), so its card gets notes: isolated, outputs held (the Output Rule
// holds every output until the backup acks it, and no ack can come), no disk server, cannot go
// live (test-and-set is out of reach). The notes are derived here from the agents' statuses and
// the lab's open faults, so every lab kind (local, remote, simulated) shows the same.
import type { AgentStatus } from '../../agent/control/protocol.js'
import {
  HOST_IDS,
  REPLICA_IDS,
  asSilenceLimit,
  downHostStatus,
  emptyDetection,
  emptyInvariants,
  type FailureDetection,
  type ChannelStatus,
  type FaultInfo,
  type HostId,
  type HostNote,
  type HostRole,
  type HostStatus,
  type Invariants,
  type ReplicaHostId
} from '../api/contract.js'
import { judgingReplica, type HostStatusRow } from '../lab/lab.js'
import type { LabEvent } from '../lab/lab-events.js'
import { FalseFailoverJudge } from '../lab/false-failover.js'

/** The replica's buffer limit (agent/replica/core.ts, maxUnackedBytes); the agent's status does not carry it. */
export const MAX_UNACKED_BYTES = 4 * 1024 * 1024
const EVIDENCE_KEPT = 50

type Row = HostStatusRow & { reason?: string }

/** What the poller needs of a lab: the rows, and what a host is and where it runs. */
export interface PolledLab {
  status(timeoutMs?: number): Promise<Row[]>
  machineOf(id: string): string
}

export interface HostContext {
  faults: FaultInfo[]
  /** where a slot's agent runs, for the card ("127.0.0.1", "h2 (10.87.0.12)") */
  addressOf: (id: HostId) => string
  /** a power driver (or the local/simulated lab) can switch it back on */
  canPowerOn: (id: HostId) => boolean
  /** why a host is down, when the console knows */
  downBecause: (id: HostId) => string | null
}

export class StatusPoller {
  private rows = new Map<string, Row>()
  /** the last status each host gave: a paused or silent agent keeps showing what it was */
  private lastSeen = new Map<string, AgentStatus>()
  private rate: { host: string; gen: number; at: number; lastEntry: number; acked: number; bytes: number } | null = null
  private rates = { entries: 0, acks: 0, bytes: 0 }
  private readonly liveByGen = new Map<number, Set<HostId>>()
  private divergence: Invariants['divergence'] = null
  private splitBrain = false
  private readonly evidence: Invariants['evidence'] = []
  /** go-lives while the other replica was alive (main/lab/false-failover.ts) */
  private readonly falseFailovers = new FalseFailoverJudge()
  /** the lab's last poll error, or null */
  error: string | null = null

  constructor(private readonly lab: PolledLab) {}

  /** Ask every agent; returns the rows (also kept). Throws when the lab cannot be read at all. */
  async poll(timeoutMs = 1000): Promise<Row[]> {
    const rows = await this.lab.status(timeoutMs)
    this.absorb(rows)
    return rows
  }

  absorb(rows: Row[], now = Date.now()): void {
    for (const r of rows) {
      this.rows.set(r.host, r)
      if (r.status) this.lastSeen.set(r.host, r.status)
      const st = r.state === 'up' ? r.status : undefined
      if (st && (st.role === 'primary' || st.role === 'live') && (HOST_IDS as readonly string[]).includes(r.host)) {
        let set = this.liveByGen.get(st.gen)
        if (!set) this.liveByGen.set(st.gen, (set = new Set()))
        set.add(r.host as HostId)
      }
    }
    // rates from the primary's counters between two polls
    const p = this.primaryRow()
    const ch = p?.status?.channel
    if (!p || !ch) {
      this.rate = null
      this.rates = { entries: 0, acks: 0, bytes: 0 }
      return
    }
    const prev = this.rate
    const cur = { host: p.host, gen: p.status!.gen, at: now, lastEntry: ch.lastEntry, acked: ch.acked, bytes: ch.bytesSent }
    if (prev && prev.host === cur.host && prev.gen === cur.gen && now > prev.at) {
      const k = 1000 / (now - prev.at)
      const smooth = (old: number, x: number) => Math.round(old * 0.4 + Math.max(0, x) * k * 0.6)
      this.rates = {
        entries: smooth(this.rates.entries, cur.lastEntry - prev.lastEntry),
        acks: smooth(this.rates.acks, cur.acked - prev.acked),
        bytes: smooth(this.rates.bytes, cur.bytes - prev.bytes)
      }
    } else {
      this.rates = { entries: 0, acks: 0, bytes: 0 }
    }
    this.rate = cur
  }

  get allDown(): boolean {
    return this.rows.size > 0 && [...this.rows.values()].every((r) => r.state === 'down')
  }

  /** both replicas gone (down, or halted): the lab comes back only by booting one from the disk server */
  get replicasGone(): boolean {
    return REPLICA_IDS.every((id) => {
      const r = this.rows.get(id)
      return r !== undefined && (r.state === 'down' || (r.state === 'up' && r.status?.role === 'halted'))
    })
  }

  row(id: string): Row | undefined {
    return this.rows.get(id)
  }

  /** A restore moved a slot or started a fresh agent: its rates and its channel start over. */
  resetRates(): void {
    this.rate = null
  }

  /** Every lab event, in order: a deposed replica's report, and the operator's faults that may explain it. */
  noteLabEvent(ev: LabEvent): void {
    this.falseFailovers.observe(ev)
  }

  /** False failovers so far, and each replica's current suspicion timeout as its last status said. */
  detection(): FailureDetection {
    const out = emptyDetection()
    const found = this.falseFailovers.found
    out.falseFailovers = found.length
    const last = found[found.length - 1]
    if (last && (REPLICA_IDS as readonly string[]).includes(last.host)) out.last = { ...last, host: last.host as ReplicaHostId }
    for (const id of REPLICA_IDS) {
      const row = this.rows.get(id)
      const replica = judgingReplica(row)
      out.suspectAfterMs[id] = typeof replica?.suspectAfterMs === 'number' ? replica.suspectAfterMs : null
      out.suspectLimit![id] = asSilenceLimit(replica?.suspectLimit)
    }
    return out
  }

  noteDivergence(host: HostId, entry: number): void {
    this.divergence ??= { host, entry }
  }

  noteEvidence(kind: string, seq: number, text: string): void {
    this.evidence.push({ kind, seq, text })
    if (this.evidence.length > EVIDENCE_KEPT) this.evidence.splice(0, this.evidence.length - EVIDENCE_KEPT)
  }

  primaryRow(): Row | undefined {
    return REPLICA_IDS.map((id) => this.rows.get(id)).find((r) => r?.state === 'up' && r.status?.role === 'primary')
  }

  /** The replica the clients should be talking to. */
  serving(): ReplicaHostId | null {
    for (const id of REPLICA_IDS) {
      const r = this.rows.get(id)
      if (r?.state === 'up' && (r.status?.role === 'primary' || r.status?.role === 'live')) return id
    }
    return null
  }

  peerOf(id: HostId): string | null {
    return this.rows.get(id)?.status?.replica?.peer ?? null
  }

  /** The highest generation any replica is live in. */
  liveGen(): number {
    let g = 0
    for (const id of REPLICA_IDS) {
      const st = this.rows.get(id)?.state === 'up' ? this.rows.get(id)?.status : undefined
      if (st && (st.role === 'live' || st.role === 'primary')) g = Math.max(g, st.gen)
    }
    return g
  }

  hosts(ctx: HostContext): HostStatus[] {
    const base = HOST_IDS.map((id) => this.hostStatus(id, ctx))
    const out = base.map((h) => ({ ...h, notes: this.notesFor(h, base, ctx) }))
    // split brain: two replicas releasing outputs at once. A primary whose outputs are held
    // (isolated, no peer) or that is fenced does not count: the Output Rule keeps it silent.
    const serving = out.filter(
      (h) => h.reachable && (h.role === 'live' || (h.role === 'primary' && !h.notes.includes('outputs-held') && !h.notes.includes('fenced')))
    )
    if (serving.length > 1) this.splitBrain = true
    return out
  }

  private hostStatus(id: HostId, ctx: HostContext): HostStatus {
    const r = this.rows.get(id)
    const seen = this.lastSeen.get(id)
    const isolatedByFault = ctx.faults.some((f) => f.target === id && f.kind === 'isolate')
    const base: HostStatus = {
      ...downHostStatus(id),
      machine: this.lab.machineOf(id),
      address: ctx.addressOf(id),
      isolated: isolatedByFault,
      canPowerOn: false
    }
    if (!r) return base
    if (r.state === 'down') {
      return {
        ...base,
        gen: seen?.gen ?? 0,
        canPowerOn: ctx.canPowerOn(id),
        error: ctx.downBecause(id) ?? r.reason ?? `agent not running (pid ${r.pid} is gone)`
      }
    }
    const st = r.status ?? seen
    const role: HostRole = st ? (st.role as HostRole) : 'idle'
    const out: HostStatus = {
      ...base,
      reachable: r.state === 'up',
      role,
      gen: st?.role === 'disk-server' ? (st.disk?.gen ?? 0) : (st?.gen ?? 0),
      pid: r.pid,
      uptimeMs: st?.uptimeMs ?? 0,
      paused: r.state === 'paused',
      isolated: isolatedByFault || (st?.faults.some((f) => f.fault.kind === 'isolate') ?? false),
      memory: st ? { rss: st.memory.rss, heapUsed: st.memory.heapUsed } : null,
      disk: st?.disk ? { ...st.disk } : null
    }
    if (r.state === 'paused') out.error = 'agent not answering: paused (SIGSTOP)'
    else if (r.state === 'unresponsive') out.error = `agent not answering: ${r.error ?? 'no reply'}`
    return out
  }

  private notesFor(h: HostStatus, all: HostStatus[], ctx: HostContext): HostNote[] {
    const notes = new Set<HostNote>()
    const powerCut = ctx.faults.some((f) => f.kind === 'power' && f.target === h.id)
    if (powerCut) notes.add('power-off')
    if (h.isolated) notes.add('isolated')
    if (h.paused) notes.add('paused')
    if (this.divergence?.host === h.id) notes.add('diverged')
    const replica = h.id !== 'disk'
    if (!replica || h.role === 'down' || powerCut) return sortNotes(notes)
    const st = this.rows.get(h.id)?.status
    const disk = all.find((x) => x.id === 'disk')!
    const diskCut = ctx.faults.some((f) => f.kind === 'cut' && f.target === (`${h.id}-disk` as string))
    const noDisk = h.isolated || diskCut || disk.role === 'down' || disk.notes.includes('power-off') || disk.isolated
    const peerCut = ctx.faults.some((f) => f.kind === 'cut' && f.target === 'a-b')
    const noPeer = !h.isolated && (peerCut || st?.replica?.peerSuspected === true || (st?.channel !== undefined && !st.channel.connected))
    if (noDisk && h.role !== 'idle') notes.add('no-disk-server')
    if (noPeer && (h.role === 'primary' || h.role === 'backup')) notes.add('no-peer')
    // the Output Rule: a primary releases an output only once the backup has acked its entries
    if (h.role === 'primary' && (h.isolated || noPeer || (st?.channel?.stalled ?? false))) notes.add('outputs-held')
    // going live needs the test-and-set, which the disk server (or etcd) holds
    if ((h.role === 'primary' || h.role === 'backup') && noDisk) notes.add('cannot-go-live')
    const liveGen = this.liveGen()
    // a replica live in this generation won its test-and-set: a primary of the same generation is deposed (it halts once it hears), not serving
    const deposedBy = all.some((x) => x.id !== h.id && x.id !== 'disk' && x.reachable && x.role === 'live' && x.gen >= h.gen)
    if (!h.isolated && (h.role === 'primary' || h.role === 'backup') && (liveGen > h.gen || deposedBy)) notes.add('fenced')
    return sortNotes(notes)
  }

  channel(): ChannelStatus | null {
    const p = this.primaryRow()
    const st = p?.status
    if (!p || !st?.channel) return null
    const ch = st.channel
    const to = st.replica?.peer ?? null
    const holds = st.outputRule
    return {
      from: p.host as ReplicaHostId,
      to: to === 'a' || to === 'b' ? to : null,
      gen: st.gen,
      connected: ch.connected,
      stalled: ch.stalled,
      lastEntry: ch.lastEntry,
      acked: ch.acked,
      lag: Math.max(0, ch.lastEntry - ch.acked),
      unackedEntries: ch.unackedEntries,
      unackedBytes: ch.unackedBytes,
      maxUnackedBytes: MAX_UNACKED_BYTES,
      entriesPerSec: this.rates.entries,
      acksPerSec: this.rates.acks,
      bytesPerSec: this.rates.bytes,
      heldOutputs: ch.heldOutputs,
      holdMs: holds ? { p50: round2(holds.p50Ms), p99: round2(holds.p99Ms), max: round2(holds.maxMs) } : { p50: 0, p99: 0, max: 0 }
    }
  }

  /** The channel as the card should show it: an isolated or fenced primary's channel is not "a → b". */
  channelFor(hosts: HostStatus[]): ChannelStatus | null {
    const ch = this.channel()
    if (!ch || !ch.from) return ch
    const from = hosts.find((h) => h.id === ch.from)
    if (from && (from.notes.includes('isolated') || from.notes.includes('fenced'))) return { ...ch, connected: false, to: null }
    return ch
  }

  invariants(extra: { duplicatesDropped: number; acknowledgedLost: number | null }): Invariants {
    const inv = emptyInvariants()
    // each generation's replicas in the order this console first saw them serve it (a → b: b took over after a failover)
    inv.liveByGen = [...this.liveByGen.entries()].sort((x, y) => x[0] - y[0]).map(([gen, live]) => ({ gen, live: [...live] }))
    inv.splitBrain = this.splitBrain
    inv.fencedWrites = this.lastSeen.get('disk')?.disk?.fenced ?? 0
    inv.duplicatesDropped = extra.duplicatesDropped
    inv.acknowledgedLost = extra.acknowledgedLost
    inv.divergence = this.divergence
    inv.evidence = [...this.evidence]
    return inv
  }
}

function sortNotes(notes: Set<HostNote>): HostNote[] {
  const order: readonly HostNote[] = ['isolated', 'paused', 'outputs-held', 'no-disk-server', 'no-peer', 'cannot-go-live', 'fenced', 'diverged', 'power-off']
  return order.filter((n) => notes.has(n))
}

export function round2(x: number): number {
  return Math.round(x * 100) / 100
}
