// Helpers for feeding a ReplicaCore one event at a time.
import { defaultReplicaConfig, ReplicaCore } from '../../../agent/replica/core.js'
import type { Action, DiskReq, DiskRes, PeerMsg, ReplicaConfig, Telemetry } from '../../../agent/replica/types.js'
import type { Entropy, GuestInput, ReplicationMode } from '../../../agent/vmm/types.js'
import { encodeCommand, RegisterVmm } from '../../../sim/register-vmm.js'

export function fixedEntropy(): Entropy {
  let clock = 1_700_000_000_000
  let r = 12345
  return {
    now: () => (clock += 7),
    u32: () => (r = (Math.imul(r, 1103515245) + 12345) >>> 0)
  }
}

export function testConfig(id: string, peer: string | null, over: Partial<ReplicaConfig> = {}): ReplicaConfig {
  return { ...defaultReplicaConfig(id, peer), heartbeatMs: 10, suspectMs: 50, diskRetryMs: 20, hashEvery: 1, ...over }
}

export function makeCore(
  role: 'primary' | 'backup' | 'joining' | 'recover',
  opts: { id?: string; peer?: string | null; gen?: number; now?: number; mode?: ReplicationMode; cfg?: Partial<ReplicaConfig> } = {}
): { core: ReplicaCore; vmm: RegisterVmm } {
  const id = opts.id ?? (role === 'primary' ? 'a' : 'b')
  const peer = opts.peer === undefined ? (role === 'primary' ? 'b' : 'a') : opts.peer
  const vmm = new RegisterVmm({ mode: opts.mode ?? 'rsm', entropy: fixedEntropy() })
  const core = new ReplicaCore(testConfig(id, peer, opts.cfg), vmm, { role, gen: opts.gen ?? 1, now: opts.now ?? 0 })
  return { core, vmm }
}

export function ftreq(client: string, seq: number, ...cmd: string[]): GuestInput {
  return { t: 'data', conn: `s:${client}`, data: encodeCommand(['FTREQ', client, String(seq), ...cmd]) }
}

// ---- picking actions apart

export const peerMsgs = (as: Action[]): PeerMsg[] => as.flatMap((a) => (a.t === 'send-peer' ? [a.msg] : []))
export const diskReqs = (as: Action[]): DiskReq[] => as.flatMap((a) => (a.t === 'send-disk' ? [a.req] : []))
export const releases = (as: Action[]) => as.flatMap((a) => (a.t === 'release' ? [a] : []))
export const roles = (as: Action[]) => as.flatMap((a) => (a.t === 'role' ? [a] : []))
export const stalls = (as: Action[]) => as.flatMap((a) => (a.t === 'stall' ? [a.on] : []))
export const telemetry = (as: Action[]): Telemetry[] => as.flatMap((a) => (a.t === 'telemetry' ? [a.ev] : []))
export const entriesMsgs = (as: Action[]) => peerMsgs(as).flatMap((m) => (m.t === 'entries' ? [m] : []))
export const ackMsgs = (as: Action[]) => peerMsgs(as).flatMap((m) => (m.t === 'ack' ? [m] : []))
export const replyText = (a: { out: { t: string; data?: Uint8Array } }): string => new TextDecoder().decode(a.out.data)

/** The disk server's yes to a request (generation, tas, write). */
export function ok(req: DiskReq, from?: string): DiskRes {
  return req.op === 'tas' ? { id: req.id, ok: true, winner: from ?? req.from } : { id: req.id, ok: true }
}

/** Starts a primary, confirms its generation, and drops the start-up actions. */
export function confirmedPrimary(opts: Parameters<typeof makeCore>[1] = {}) {
  const made = makeCore('primary', opts)
  const start = made.core.takeActions()
  const reg = diskReqs(start).find((r) => r.op === 'generation')!
  made.core.step({ t: 'disk', now: opts.now ?? 0, res: ok(reg) })
  made.core.takeActions()
  return { ...made, start }
}

/** Delivers every peer message in `as` to `to`, in order; returns the receiver's actions. */
export function deliver(as: Action[], to: ReplicaCore, now: number): Action[] {
  for (const msg of peerMsgs(as)) to.step({ t: 'peer', now, msg })
  return to.takeActions()
}

/**
 * A state-transfer pair in step after the boot entry, and the slices (64 KiB each) of one
 * 300 KiB SET the primary has just logged: what the tests of sliced entries start from.
 */
export function pairWithSlicedSet(value = 'z'.repeat(300 * 1024)) {
  const cfg = { maxMessageBytes: 64 * 1024 }
  const p = confirmedPrimary({ mode: 'state-transfer', cfg })
  const b = makeCore('backup', { mode: 'state-transfer', cfg })
  b.core.takeActions()
  deliver(deliver(p.start, b.core, 1), p.core, 1)
  p.core.takeActions()
  p.core.step({ t: 'input', now: 2, input: ftreq('c1', 1, 'SET', 'k', value) })
  const parts = peerMsgs(p.core.takeActions()).filter((m) => m.t === 'entry-part')
  return { p, b, parts, value }
}
