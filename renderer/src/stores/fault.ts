import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { FaultKind, FaultParams, FaultTarget } from '../../../main/api/contract'
import { useClient } from '../api/client'
import { useLabStore } from './lab'
import { usePromptStore } from './prompt'

/** Active faults, injecting and healing them, and the emergency stop. */
export const useFaultStore = defineStore('fault', () => {
  const lab = useLabStore()
  /** every fault heals itself after this long unless healed earlier (dead-man deadline) */
  const durationMs = ref(60_000)

  const faults = computed(() => lab.status?.faults ?? [])
  const count = computed(() => faults.value.length)

  function forTarget(target: FaultTarget) {
    return faults.value.filter((f) => f.target === target)
  }

  async function inject(target: FaultTarget, kind: FaultKind, params: FaultParams = {}) {
    // a power cut on a real host switches a machine off: the operator confirms it first
    if (kind === 'power' && !(await usePromptStore().confirmPowerCut(target))) return undefined
    return lab.act(`fault.inject:${target}:${kind}`, () => useClient().call('fault.inject', { target, kind, params, durationMs: durationMs.value }))
  }

  function heal(id: string) {
    return lab.act(`fault.heal:${id}`, () => useClient().call('fault.heal', { id }))
  }

  /**
   * The emergency stop. Contract v2 answers { healed, warnings }: a fault that would not heal
   * is a warning beside the ones that did, not a refusal of the whole stop.
   */
  async function healAll() {
    lab.reportWarning(null)
    const r = await lab.act('fault.heal:all', () => useClient().call('fault.heal', { id: 'all' }))
    const warnings = (r as { warnings?: unknown } | undefined)?.warnings
    if (Array.isArray(warnings) && warnings.length) {
      lab.reportWarning(`healed ${r!.healed.length}; ${warnings.map(String).join('; ')}`)
    }
    return r
  }

  return { durationMs, faults, count, forTarget, inject, heal, healAll }
})
