import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { Prompt } from '../../../main/api/contract'
import { useClient } from '../api/client'
import { useLabStore } from './lab'

/** A question the console core puts to the operator and how it ended. */
export interface PromptOutcome {
  id: string
  answer: 'accepted' | 'refused' | 'timeout'
}

/** A destructive action the console itself asks the operator to confirm. */
export interface ConfirmRequest {
  title: string
  message: string
  confirmLabel: string
  /** the operator must type this exactly (a lab's name before teardown) */
  typeToConfirm?: string
}

interface PendingConfirm extends ConfirmRequest {
  resolve: (ok: boolean) => void
}

/**
 * Questions put to the operator. From the console core: unknown host keys (accept or
 * refuse) and passwords or passphrases; from the UI itself: confirmations before
 * destructive actions on real hosts. A secret goes from the dialog straight into
 * prompt.answer and is never kept here.
 */
export const usePromptStore = defineStore('prompt', () => {
  const lab = useLabStore()
  const queue = ref<Prompt[]>([])
  const lastOutcome = ref<PromptOutcome | null>(null)
  const answering = ref(false)
  const confirming = ref<PendingConfirm | null>(null)

  /** the question shown now; the others wait in arrival order */
  const current = computed<Prompt | null>(() => queue.value[0] ?? null)

  /** the event seq each question arrived with (0: from a console.info list) */
  const seqOf = new Map<string, number>()
  /** questions answered here or settled in the core: a list read before that must not bring them back */
  const settled = new Set<string>()

  function add(p: Prompt, seq = 0): void {
    if (settled.has(p.id) || queue.value.some((q) => q.id === p.id)) return
    queue.value.push(p)
    seqOf.set(p.id, seq)
  }

  /**
   * The questions still open in the core as console.info listed them at event seq `asOf`, read
   * after (re)connecting: the event ring may have dropped a prompt event while the page was
   * away, or its prompt-done. A question that arrived after `asOf` is newer than the list and stays.
   */
  function sync(open: Prompt[], asOf: number): void {
    const ids = new Set(open.map((p) => p.id))
    queue.value = queue.value.filter((q) => ids.has(q.id) || (seqOf.get(q.id) ?? 0) > asOf)
    for (const p of open) add(p)
  }

  /** the core closed a prompt: answered here, in another window, or timed out */
  function done(id: string, answer: PromptOutcome['answer']): void {
    const p = queue.value.find((q) => q.id === id)
    if (p && answer === 'timeout') {
      const what = p.kind === 'host-key' ? `the host key of ${p.slot} (${p.host})` : `the ${p.what} for ${p.user}@${p.host}`
      lab.reportError(`The question about ${what} was not answered in time, so that connection was refused; deploy again to be asked again.`)
    }
    queue.value = queue.value.filter((q) => q.id !== id)
    seqOf.delete(id)
    settled.add(id)
    lastOutcome.value = { id, answer }
  }

  async function answer(id: string, a: { accept?: boolean; secret?: string; remember?: boolean }): Promise<void> {
    answering.value = true
    try {
      await lab.act('prompt.answer', () => useClient().call('prompt.answer', { id, ...a }))
      // the prompt-done event follows; dropping it now keeps the dialog from lingering
      settled.add(id)
      queue.value = queue.value.filter((q) => q.id !== id)
    } finally {
      answering.value = false
    }
  }

  /** Asks the operator to confirm; resolves false when they cancel. */
  function confirm(req: ConfirmRequest): Promise<boolean> {
    confirming.value?.resolve(false)
    return new Promise<boolean>((resolve) => {
      confirming.value = { ...req, resolve }
    })
  }

  function settleConfirm(ok: boolean): void {
    const c = confirming.value
    confirming.value = null
    c?.resolve(ok)
  }

  /** A power cut on a real host switches a machine off: confirm first. Local and simulated labs need no confirmation. */
  async function confirmPowerCut(host: string): Promise<boolean> {
    if (lab.status?.kind !== 'remote') return true
    const h = lab.status.hosts.find((x) => x.id === host)
    const machine = h ? `${h.machine} (${h.address})` : host
    return confirm({
      title: `Cut the power of ${host}?`,
      message: `This switches off the real machine ${machine} through its power driver. It comes back only by power-on or restore redundancy.`,
      confirmLabel: 'Cut power'
    })
  }

  return { queue, current, lastOutcome, answering, confirming, add, sync, done, answer, confirm, settleConfirm, confirmPowerCut }
})
