import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { ConsoleInfo, GuestName, HostStatus, LabStatus, ReplicationMode } from '../../../main/api/contract'
import { useClient, type ConnectionState } from '../api/client'

/** The lab as a whole: its status snapshot, the backend connection, and the last error. */
export const useLabStore = defineStore('lab', () => {
  const status = ref<LabStatus | null>(null)
  const info = ref<ConsoleInfo | null>(null)
  const connection = ref<ConnectionState>('connecting')
  const connectionDetail = ref<string | null>(null)
  /** the last refused or failed operator action, shown until dismissed */
  const lastError = ref<string | null>(null)
  /** the action in flight, e.g. 'lab.start' */
  const busy = ref<string | null>(null)
  const guest = ref<GuestName>('kv')
  const mode = ref<ReplicationMode>('rsm')

  const state = computed(() => status.value?.state ?? 'stopped')
  const running = computed(() => state.value === 'running')
  const hosts = computed<HostStatus[]>(() => status.value?.hosts ?? [])
  const liveAlone = computed(() => hosts.value.some((h) => h.role === 'live'))

  function apply(s: LabStatus): void {
    status.value = s
  }

  function setConnection(s: ConnectionState, detail: string | null): void {
    connection.value = s
    connectionDetail.value = detail
  }

  function reportError(message: string): void {
    lastError.value = message
  }

  /** Runs an operator action; a refusal becomes lastError instead of an exception. */
  async function act<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
    busy.value = name
    try {
      const r = await fn()
      lastError.value = null
      return r
    } catch (err) {
      lastError.value = err instanceof Error ? err.message : String(err)
      return undefined
    } finally {
      if (busy.value === name) busy.value = null
    }
  }

  async function refresh(): Promise<void> {
    const client = useClient()
    try {
      info.value = await client.call('console.info')
      status.value = await client.call('lab.status')
    } catch (err) {
      lastError.value = `cannot read the lab status: ${err instanceof Error ? err.message : String(err)}`
    }
  }

  // a stopped simulated lab starts again as a simulated lab; anything else starts the local lab
  const start = () =>
    act('lab.start', async () => apply(await useClient().call('lab.start', { kind: status.value?.kind === 'simulated' ? 'simulated' : 'local', guest: guest.value, mode: mode.value })))
  const stop = () => act('lab.stop', async () => apply(await useClient().call('lab.stop')))
  const restore = () => act('lab.restore', async () => apply(await useClient().call('lab.restore')))

  return { status, info, connection, connectionDetail, lastError, busy, guest, mode, state, running, hosts, liveAlone, apply, setConnection, reportError, act, refresh, start, stop, restore }
})
