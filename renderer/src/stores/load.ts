import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { LoadStatus } from '../../../main/api/contract'
import { useClient } from '../api/client'
import { useLabStore } from './lab'

/** The load generator: its settings, its progress, and an ops/s history for the sparkline. */
export const useLoadStore = defineStore('load', () => {
  const lab = useLabStore()
  const clients = ref(8)
  const seconds = ref(120)
  const keys = ref(1000)
  const load = ref<LoadStatus | null>(null)
  const opsHistory = ref<number[]>([])

  function apply(l: LoadStatus): void {
    load.value = l
  }

  /** one sample per status snapshot, so the sparkline moves at a steady pace */
  function sample(): void {
    const v = load.value?.state === 'running' ? load.value.opsPerSec : 0
    opsHistory.value = [...opsHistory.value.slice(-119), v]
  }

  const start = () =>
    lab.act('load.start', async () => apply(await useClient().call('load.start', { clients: clients.value, seconds: seconds.value, keys: keys.value })))
  const stop = () => lab.act('load.stop', async () => apply(await useClient().call('load.stop')))

  return { clients, seconds, keys, load, opsHistory, apply, sample, start, stop }
})
