// The guest's side of the VMM: what a guest sees (devices, the shared library) and what it
// provides (handlers). A guest is a self-contained factory function: the VMM evaluates its
// source text (`factory.toString()`) inside a node:vm context that has no clock, no
// randomness, no timers and no I/O, so it may reference nothing outside its own body —
// only its parameters (`dev`, `lib`) and ECMAScript built-ins. Types are fine (erased).
//
// Bytes inside the guest are "byte strings": strings whose char codes are 0–255, one per
// byte (latin1). They are binary-safe, cheap to slice and concatenate, and memory pages
// are strings anyway.
import type { RespLib } from './resp.js'
import type { ServiceLib } from './service.js'

/** Disk block size of the lab's disk server, bytes. */
export const BLOCK_SIZE = 4096

export interface GuestMemory {
  get(key: string): string | undefined
  has(key: string): boolean
  set(key: string, value: string): void
  delete(key: string): void
  /** keys that start with `prefix`, sorted by code unit; O(pages) */
  keys(prefix: string): string[]
}

export interface GuestDevices {
  /** The guest's whole state lives here; anything kept in JS variables between inputs is lost on snapshot and state transfer. */
  mem: GuestMemory
  nic: {
    /**
     * Queue `bytes` for the client; ignored if the connection is closed. With `afterSync`, the tag of a disk.sync()
     * whose completion has not arrived: the VMM holds the reply (in its memory pages, so a backup holds it too) until
     * that barrier completes and sends it then, before `diskSynced` runs, if the connection is still open; replies
     * held this way leave in the order of their barriers, then in the order they were held. A barrier that completed
     * already (or a tag that is no barrier): at once, as without it.
     */
    send(conn: string, bytes: string, afterSync?: number): void
    /** close the connection after the replies queued so far; `afterSync` as for send (it stays open until then) */
    close(conn: string, afterSync?: number): void
    isOpen(conn: string): boolean
  }
  disk: {
    readonly blockSize: number
    /** ask for a block; the result arrives later as `diskRead(tag, block, bytes)`. Returns the tag. */
    read(block: number): number
    /**
     * Write a block (an output: held by the Output Rule, suppressed on a backup). Without `offset`, `bytes` (at most
     * blockSize) replace the block. With it, `bytes` are appended at `offset`, which must be where the block ends (the
     * length it was last written to; offset + bytes at most blockSize): only the new bytes travel, and the disk server
     * holds such a write back until the writes before it have landed. An append to a block whose length on disk the
     * guest does not know (after a boot from disk, say) must be a whole-block write first.
     */
    write(block: number, bytes: string, offset?: number): void
    /**
     * A barrier after every write made so far (this input's included): `diskSynced(tag)` arrives, as a logged input,
     * once they are all on the disk server's stable storage. Returns the tag. For replies that must not leave before
     * their data is durable (kv's appendfsync always). Barriers that complete together (a group commit) arrive as one
     * `diskSynced`, of the newest: it completes the earlier ones too, whose own tags the guest then never hears.
     */
    sync(): number
  }
  /** wall clock, ms since the epoch; each read is a logged non-deterministic input */
  clock: { now(): number }
  /**
   * What the replica serving the guest knows of itself: `field:value` lines (role, generation, logging-channel lag), or
   * '' where the host does not say. Each read is a logged non-deterministic input, like the clock: the backup replays
   * the primary's answer, so a guest may put it in a reply (kv's INFO replication) but must not keep it in its state.
   */
  replica: { info(): string }
  /** uniform unsigned 32-bit integer; each read is a logged non-deterministic input */
  random: { u32(): number }
  /** one-shot timers; a firing arrives as `timer(id)`; setting an armed id re-arms it */
  timer: { set(id: number, ms: number): void; cancel(id: number): void }
  /**
   * Run `fn`; if it throws, undo its memory writes, outputs and I/O requests, then rethrow.
   * Lets a guest fail one command of a pipeline without losing the others.
   */
  atomic<T>(fn: () => T): T
}

/** What a guest implements; every handler is optional. */
export interface Guest {
  /** once, as the very first input of a fresh replica (not after a snapshot restore) */
  boot?(): void
  /** a client connected; may come again for the same id (a session that reconnected): start it afresh */
  open?(conn: string): void
  /**
   * Bytes from a client. `batched`: this input carries several connections' bytes (one event-loop turn's), and
   * `endInput` runs once after the last of them; a guest may leave the work it does at the end of each input (kv:
   * writing out its log, the barrier, sending the replies) to it, so that the batch shares it.
   */
  data?(conn: string, bytes: string, batched?: boolean): void
  /** the end of an input of several connections' bytes (see `data`); not called after other inputs */
  endInput?(): void
  /** the client went away (not called for nic.close) */
  close?(conn: string): void
  diskRead?(tag: number, block: number, bytes: string): void
  timer?(id: number): void
  /** the writes before the disk.sync() that returned `tag` are durable, and so are every earlier barrier's (one call for them all) */
  diskSynced?(tag: number): void
  /**
   * Drill experiment 'read-fast-path' only: answer the one command in `bytes` now with nic.send, as a read
   * served outside the log would be (ahead of replies held for durability). Never an input: the VMM undoes
   * every change it makes, and uses the answer only if it is one reply to `conn` (see Vmm.query).
   */
  query?(conn: string, bytes: string): void
}

export interface GuestLib {
  resp: RespLib
  service: ServiceLib
}

export type GuestFactory = (dev: GuestDevices, lib: GuestLib) => Guest

export interface GuestDefinition {
  name: string
  description: string
  factory: GuestFactory
}
