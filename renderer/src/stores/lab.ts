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
  /** the last action that partly worked (heal all with one fault that would not heal), shown until dismissed */
  const lastWarning = ref<string | null>(null)
  /** the action in flight, e.g. 'lab.start' */
  const busy = ref<string | null>(null)
  /** a recording drives the views: operator actions are off (set by the playback store) */
  const playback = ref<string | null>(null)
  const guest = ref<GuestName>('kv')
  const mode = ref<ReplicationMode>('rsm')

  const state = computed(() => status.value?.state ?? 'stopped')
  const running = computed(() => state.value === 'running')
  const hosts = computed<HostStatus[]>(() => status.value?.hosts ?? [])
  const liveAlone = computed(() => hosts.value.some((h) => h.role === 'live'))
  /** the console is gone: what the page shows is the last it heard, not the lab now */
  const stale = computed(() => connection.value !== 'open' && status.value !== null)
  /** live actions are possible: connected, nothing else in flight */
  const live = computed(() => connection.value === 'open')

  /**
   * Why restore redundancy cannot work now, or null when it can: it needs a replica live
   * alone and a path from it to the host it restores onto (an open cut, isolation or pause
   * on that path makes the snapshot fail).
   */
  const restoreWhyNot = computed<string | null>(() => {
    if (connection.value !== 'open') return 'the console is not connected'
    if (state.value !== 'running') return 'no lab is running'
    const liveHost = hosts.value.find((h) => h.role === 'live')
    if (!liveHost) return 'needs a replica that is live alone (after a failover)'
    const other = liveHost.id === 'a' ? 'b' : 'a'
    const blocking = (status.value?.faults ?? []).find(
      (f) =>
        (f.target === 'a-b' && (f.kind === 'cut' || f.kind === 'loss')) ||
        ((f.target === liveHost.id || f.target === other) && (f.kind === 'isolate' || f.kind === 'pause')) ||
        (f.target === 'disk' && f.kind !== 'delay') ||
        ((f.target === `${liveHost.id}-disk` || f.target === `${other}-disk`) && f.kind === 'cut')
    )
    if (blocking) return `heal ${blocking.what || `${blocking.kind} ${blocking.target}`} first: the snapshot and the new generation need that path`
    return null
  })

  function apply(s: LabStatus): void {
    status.value = s
    // the running lab's guest and mode, not this page's defaults (a reload, another window)
    if (s.state !== 'stopped' && s.guest) guest.value = s.guest
    if (s.state !== 'stopped' && s.mode) mode.value = s.mode
  }

  function setConnection(s: ConnectionState, detail: string | null): void {
    connection.value = s
    connectionDetail.value = detail
  }

  function reportError(message: string): void {
    lastError.value = message
  }

  function reportWarning(message: string | null): void {
    lastWarning.value = message
  }

  /** Runs an operator action; a refusal becomes lastError instead of an exception. */
  async function act<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
    if (playback.value && !name.startsWith('recording.') && !name.startsWith('playback.')) {
      lastError.value = `${name}: the views show the recording ${playback.value}, not the lab; leave playback to act on the lab`
      return undefined
    }
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
      apply(await client.call('lab.status'))
    } catch (err) {
      lastError.value = `cannot read the lab status: ${err instanceof Error ? err.message : String(err)}`
    }
  }

  // a stopped simulated lab starts again as a simulated lab; anything else starts the local lab
  const start = () =>
    act('lab.start', async () =>
      apply(await useClient().call('lab.start', { kind: status.value?.kind === 'simulated' ? 'simulated' : 'local', guest: guest.value, mode: mode.value }))
    )
  const stop = () => act('lab.stop', async () => apply(await useClient().call('lab.stop')))
  const restore = () => act('lab.restore', async () => apply(await useClient().call('lab.restore')))

  return {
    status,
    info,
    connection,
    connectionDetail,
    lastError,
    lastWarning,
    busy,
    playback,
    stale,
    live,
    restoreWhyNot,
    guest,
    mode,
    state,
    running,
    hosts,
    liveAlone,
    apply,
    setConnection,
    reportError,
    reportWarning,
    act,
    refresh,
    start,
    stop,
    restore
  }
})
