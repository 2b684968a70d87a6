import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { HostId, TermInfo } from '../../../main/api/contract'
import { useClient } from '../api/client'
import { useLabStore } from './lab'

/** As much output as the core keeps per terminal (term.list's scrollback is the last 256 KiB). */
const KEEP_CHARS = 256 * 1024

type Writer = (text: string) => void

/**
 * The SSH terminals on the lab's hosts. The output of each is kept here (outside Vue's
 * reactivity: it is text, not state) so a pane that is remounted, a reconnect, or a reloaded
 * page (term.list) redraws what was on the screen.
 */
export const useTerminalStore = defineStore('terminal', () => {
  const lab = useLabStore()
  const terms = ref<TermInfo[]>([])
  const activeId = ref<string | null>(null)

  const output = new Map<string, string>()
  const writers = new Map<string, Set<Writer>>()
  /** while term.list is in flight its scrollback already holds what arrives live */
  let listing = false

  const active = computed(() => terms.value.find((t) => t.id === activeId.value) ?? null)

  function upsert(t: TermInfo): void {
    const i = terms.value.findIndex((x) => x.id === t.id)
    // a terminal closed here (or with its lab) reports 'closed' once more: no tab for it
    if (i < 0 && t.state === 'closed') return
    if (i >= 0) terms.value[i] = t
    else terms.value.push(t)
    if (!activeId.value) activeId.value = t.id
  }

  function keep(id: string, text: string): void {
    const all = (output.get(id) ?? '') + text
    output.set(id, all.length > KEEP_CHARS ? all.slice(all.length - KEEP_CHARS) : all)
  }

  let loading: Promise<void> | null = null

  /** Reads the open terminals and their scrollback (after a page load, or when the lab changed). */
  function load(): Promise<void> {
    loading ??= (async () => {
      listing = true
      try {
        const r = await useClient().call('term.list')
        for (const t of r.terms) {
          const { scrollback, ...info } = t
          // a terminal this page already shows is kept current by its live output
          if (!terms.value.some((x) => x.id === t.id))
            output.set(t.id, scrollback.length > KEEP_CHARS ? scrollback.slice(scrollback.length - KEEP_CHARS) : scrollback)
          upsert(info)
        }
      } catch {
        // no lab or no terminals yet: nothing to redraw
      } finally {
        listing = false
        loading = null
      }
    })()
    return loading
  }

  /** Text from a terminal's shell (a `terminal` event whose stream is the terminal's id). */
  function pushOutput(id: string, data: string): void {
    // a terminal this page does not show yet gets its screen from term.list's scrollback
    if (listing && !terms.value.some((x) => x.id === id)) return
    keep(id, data)
    for (const w of writers.get(id) ?? []) w(data)
  }

  /** A terminal's state changed (`term` event). */
  function apply(t: TermInfo): void {
    upsert(t)
  }

  /** Writes what the terminal has shown so far, then every new piece. Returns the detach function. */
  function attach(id: string, w: Writer): () => void {
    const saved = output.get(id)
    if (saved) w(saved)
    let set = writers.get(id)
    if (!set) writers.set(id, (set = new Set()))
    set.add(w)
    return () => set.delete(w)
  }

  async function open(host: HostId | 'spare'): Promise<TermInfo | undefined> {
    const existing = terms.value.find((t) => t.host === host && t.state !== 'closed')
    if (existing) {
      activeId.value = existing.id
      return existing
    }
    const t = await lab.act(`term.open:${host}`, () => useClient().call('term.open', { host }))
    if (t) {
      upsert(t)
      activeId.value = t.id
    }
    return t
  }

  function input(id: string, data: string): void {
    if (lab.playback) return
    // keystrokes are fire-and-forget; a closed terminal refuses them and its state says why
    useClient()
      .call('term.input', { id, data })
      .catch(() => {})
  }

  function resize(id: string, cols: number, rows: number): void {
    useClient()
      .call('term.resize', { id, cols: Math.max(2, Math.min(1000, cols)), rows: Math.max(1, Math.min(500, rows)) })
      .catch(() => {})
  }

  async function reconnect(id: string): Promise<void> {
    const t = await lab.act(`term.reconnect:${id}`, () => useClient().call('term.reconnect', { id }))
    if (t) upsert(t)
  }

  async function close(id: string): Promise<void> {
    await lab.act(`term.close:${id}`, () => useClient().call('term.close', { id }))
    terms.value = terms.value.filter((t) => t.id !== id)
    output.delete(id)
    writers.delete(id)
    if (activeId.value === id) activeId.value = terms.value[0]?.id ?? null
  }

  /** Another lab became current: its terminals are other terminals. */
  function forget(): void {
    terms.value = []
    activeId.value = null
    output.clear()
    // a pane that stays mounted (a playback seek lists the same terminal again at once) starts from a clean screen
    for (const set of writers.values()) for (const w of set) w('\x1bc')
  }

  return { terms, activeId, active, load, pushOutput, apply, attach, open, input, resize, reconnect, close, forget }
})
