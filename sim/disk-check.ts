// The end-of-run check that the disk server holds what the live guest acknowledged (kv): boot a
// fresh guest from the disk server's blocks, as a replica powered on after a double failure
// does (its boot reads the superblock and the log back through disk-read inputs), and compare
// its durable state with the live guest's.
//
// What is durable: a kv guest's keys and their expiry times (memory pages `k:<key>` and
// `x:<key>`, under the VMM's `g:` in a snapshot), which every write logs to disk. Not durable by design, and not compared: the
// reply table of reads (only replies of inputs that wrote are logged), the clock high-water
// mark, blocked clients, connections, MULTI queues and whatever else lives only in memory;
// also not, under appendfsync no (none), the writes the guest made after its last completed
// sync: Redis's appendfsync no loses them on a crash too, so the check is made only with
// appendfsync always (the default, and the only setting the simulator's clients use).
import type { BlockStore } from '../agent/disk/arbiter.js'
import type { GuestInput, IoRequest, PageWrite, Vmm } from '../agent/vmm/types.js'

/** where the VMM keeps the guest's own pages in a snapshot (agent/vmm/vmm.ts; its own bookkeeping is under vmm:) */
const GUEST = 'g:'
/** The memory pages of a kv guest that its disk log must reproduce exactly, as a snapshot names them. */
export const DURABLE_PREFIXES = [`${GUEST}k:`, `${GUEST}x:`] as const
/** the kv guest's appendfsync page (absent: always) */
const FSYNC_PAGE = `${GUEST}kv:appendfsync`

/** How many rounds of disk reads a boot may take (superblock, then the log's blocks): a bound, so a guest that reads forever fails. */
const MAX_READ_ROUNDS = 64

/**
 * Boots `vmm`'s guest from `store`'s blocks: the boot input, then every disk read it asks for,
 * answered at once from the store, as logged inputs, until it asks for none. Throws if the guest
 * still waits for reads after MAX_READ_ROUNDS rounds.
 */
export function bootFromDisk(vmm: Vmm, store: Pick<BlockStore, 'read'>): void {
  let io: IoRequest[] = vmm.execute({ t: 'boot' }).io
  for (let round = 0; ; round++) {
    const reads = io.filter((r): r is Extract<IoRequest, { t: 'disk-read' }> => r.t === 'disk-read')
    if (reads.length === 0) return
    if (round >= MAX_READ_ROUNDS)
      throw new Error(
        `booting the ${vmm.guestName} guest from disk: it still asks for blocks ${reads.map((r) => r.block).join(', ')} after ${round} rounds of reads`
      )
    io = []
    for (const r of reads) {
      const input: GuestInput = { t: 'disk-read', tag: r.tag, block: r.block, data: store.read(r.block) }
      io.push(...vmm.execute(input).io)
    }
  }
}

/** The durable pages among `pages`, by key. */
export function durablePages(pages: PageWrite[]): Map<string, string> {
  const out = new Map<string, string>()
  for (const [k, v] of pages) if (v !== null && DURABLE_PREFIXES.some((p) => k.startsWith(p))) out.set(k, v)
  return out
}

/** Whether the guest whose pages these are acknowledges writes only once they are on stable storage (kv's appendfsync always). */
export function syncsEveryWrite(pages: PageWrite[]): boolean {
  const fsync = pages.find(([k]) => k === FSYNC_PAGE)?.[1]
  return fsync === undefined || fsync === null || fsync === 'always'
}

const show = (v: string | undefined): string => {
  if (v === undefined) return 'nothing'
  const text = JSON.stringify(v)
  return text.length > 80 ? `${text.slice(0, 60)}… (${text.length} chars)` : text
}

/**
 * The first durable page (in key order) where the live guest and the guest booted from disk
 * differ, said plainly; null when they hold the same keys, values and expiry times.
 */
export function firstDurableDifference(live: PageWrite[], booted: PageWrite[]): string | null {
  // a snapshot with no guest page at all means the VMM names pages otherwise now: comparing nothing would pass anything
  if (!live.some(([k]) => k.startsWith(GUEST)))
    throw new Error(
      `disk check: the live guest's snapshot has no page under '${GUEST}'; update GUEST in sim/disk-check.ts to how agent/vmm/vmm.ts names guest pages`
    )
  const a = durablePages(live)
  const b = durablePages(booted)
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort()
  for (const k of keys) {
    const x = a.get(k)
    const y = b.get(k)
    if (x === y) continue
    const key = JSON.stringify(k.slice(DURABLE_PREFIXES[0].length))
    const what = k.startsWith(DURABLE_PREFIXES[1]) ? `the expiry of key ${key}` : `key ${key}`
    return `${what}: the live guest holds ${show(x)}, the guest booted from the disk server's blocks holds ${show(y)} (${a.size} durable pages live, ${b.size} from disk)`
  }
  return null
}
