import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { LoadStartParams, LoadStatus } from '../../../main/api/contract'
import { useClient } from '../api/client'
import { useLabStore } from './lab'
import { loadWorkload, type Workload } from '../model'

/** The load generator: its settings, its progress, and an ops/s history for the sparkline. */
export const useLoadStore = defineStore('load', () => {
  const lab = useLabStore()
  const clients = ref(8)
  const seconds = ref(120)
  const keys = ref(1000)
  /** kv: registers and counters checked for lost writes; bank: transfers checked for a constant total */
  const workload = ref<Workload>('kv')
  const load = ref<LoadStatus | null>(null)
  const opsHistory = ref<number[]>([])

  function apply(l: LoadStatus): void {
    const wasRunning = load.value?.state === 'running'
    load.value = l
    if (l.state === 'running' && !wasRunning) adopt(l)
  }

  /** a run started elsewhere (or before a reload): show its settings, not this page's defaults */
  function adopt(l: LoadStatus): void {
    if (l.state === 'idle' && l.startedAt === null) return
    if (l.clients) clients.value = l.clients
    if (l.seconds) seconds.value = l.seconds
    if (l.keys) keys.value = l.keys
    const w = loadWorkload(l)
    if (w) workload.value = w
  }

  /** one sample per status snapshot, so the sparkline moves at a steady pace */
  function sample(): void {
    const v = load.value?.state === 'running' ? load.value.opsPerSec : 0
    opsHistory.value = [...opsHistory.value.slice(-119), v]
  }

  function params(): LoadStartParams {
    return { clients: clients.value, seconds: seconds.value, keys: keys.value, workload: workload.value }
  }

  const start = () => lab.act('load.start', async () => apply(await useClient().call('load.start', params())))
  const stop = () => lab.act('load.stop', async () => apply(await useClient().call('load.stop')))

  return { clients, seconds, keys, workload, load, opsHistory, apply, adopt, sample, start, stop }
})
