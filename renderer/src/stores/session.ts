import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { DEPLOY_STEPS, type DeployProgressEvent, type DeployStep, type HostId, type LabEntry, type LabFileForm, type LabKind } from '../../../main/api/contract'
import { useClient } from '../api/client'
import { useLabStore } from './lab'

export type StepState = 'pending' | 'running' | 'done' | 'failed'

export interface SlotProgress {
  slot: string
  steps: Record<DeployStep, StepState>
  /** the newest detail line for this host (what it is doing, or why it failed) */
  detail: string
  failed: boolean
}

/** What the picker shows in the main area instead of the lab (recordings: the session library). */
export type PickerView = 'choose' | 'form' | 'recordings'

function freshSlot(slot: string): SlotProgress {
  const steps = Object.fromEntries(DEPLOY_STEPS.map((s) => [s, 'pending'])) as Record<DeployStep, StepState>
  return { slot, steps, detail: '', failed: false }
}

/**
 * Which lab the console drives and how the operator got there: the lab picker (local,
 * simulated, recent remote labs, a lab file, the host form), a deploy in progress with its
 * per-host steps, and the lab-wide actions only real labs have (power-on, restore onto
 * the spare, teardown, detach).
 */
export const useSessionStore = defineStore('session', () => {
  const lab = useLabStore()

  const labs = ref<LabEntry[]>([])
  const labsError = ref<string | null>(null)
  /** the operator asked for the picker although a lab is current */
  const pickerWanted = ref(false)
  const pickerView = ref<PickerView>('choose')
  /** a lab file opened or being written in the form (possibly with errors, as parsed); null = an empty form */
  const draft = ref<LabFileForm | Record<string, unknown> | null>(null)
  const draftName = ref('')
  /** errors of the last labfile.check, by dotted field ('' = the whole file) */
  const fieldErrors = ref<Record<string, string>>({})

  const deploying = ref<string | null>(null)
  const deployFailed = ref<string | null>(null)
  const progress = ref<SlotProgress[]>([])

  const kind = computed<LabKind | null>(() => lab.status?.kind ?? lab.info?.lab?.kind ?? null)
  const name = computed<string | null>(() => lab.status?.name ?? lab.info?.lab?.name ?? null)
  const remote = computed(() => kind.value === 'remote')
  const recent = computed(() => labs.value.filter((l) => l.kind === 'remote'))
  /** the picker fills the main area: no current lab, a deploy under way, or the operator asked */
  const showPicker = computed(
    () => pickerWanted.value || deploying.value !== null || (kind.value === null && !lab.playback && lab.info !== null && lab.connection === 'open')
  )

  async function refreshLabs(): Promise<void> {
    try {
      labs.value = (await useClient().call('lab.list')).labs
      labsError.value = null
    } catch (err) {
      labsError.value = `cannot list the labs: ${err instanceof Error ? err.message : String(err)}`
    }
  }

  function openPicker(view: PickerView = 'choose'): void {
    pickerWanted.value = true
    pickerView.value = view
    void refreshLabs()
  }

  function closePicker(): void {
    pickerWanted.value = false
    pickerView.value = 'choose'
  }

  function editDraft(file: LabFileForm | Record<string, unknown> | null, labName = ''): void {
    draft.value = file
    draftName.value = labName || (typeof file?.name === 'string' ? file.name : '')
    fieldErrors.value = {}
    openPicker('form')
  }

  /**
   * A lab file the operator opened: its text goes to labfile.check as it is. A valid file
   * fills the form; one with errors fills it as far as it parses, errors at their fields.
   */
  async function openFileText(text: string, fileName: string): Promise<void> {
    const file = await check(text)
    let raw: LabFileForm | Record<string, unknown> | null = file
    if (!raw) {
      try {
        const parsed: unknown = JSON.parse(text)
        raw = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null
      } catch {
        raw = null
      }
    }
    const named = raw && typeof raw.name === 'string' ? raw.name : fileName.replace(/\.json$/i, '')
    const errors = fieldErrors.value
    editDraft(raw, named)
    fieldErrors.value = errors
  }

  async function start(k: 'local' | 'simulated', opts: { speed?: number; seed?: number } = {}): Promise<void> {
    const r = await lab.act('lab.start', async () => {
      const s = await useClient().call('lab.start', { kind: k, guest: lab.guest, mode: lab.mode, ...(k === 'simulated' ? opts : {}) })
      lab.apply(s)
      return s
    })
    if (r) closePicker()
  }

  async function open(k: 'local' | 'remote', labName: string): Promise<void> {
    const r = await lab.act('lab.open', async () => {
      const s = await useClient().call('lab.open', { kind: k, name: labName })
      lab.apply(s)
      return s
    })
    if (r) closePicker()
  }

  /** Checks a lab file's text; the errors land at their fields. Returns the parsed file when it is valid. */
  async function check(text: string): Promise<LabFileForm | null> {
    const r = await lab.act('labfile.check', () => useClient().call('labfile.check', { text }))
    if (!r) return null
    if (r.ok) {
      fieldErrors.value = {}
      return r.file
    }
    const errs: Record<string, string> = {}
    for (const e of r.errors) errs[e.field] = errs[e.field] ? `${errs[e.field]}; ${e.message}` : e.message
    fieldErrors.value = errs
    return null
  }

  async function save(labName: string, file: LabFileForm): Promise<string | null> {
    const r = await lab.act('labfile.save', () => useClient().call('labfile.save', { name: labName, file }))
    return r?.path ?? null
  }

  function onDeploy(ev: DeployProgressEvent): void {
    let row = progress.value.find((p) => p.slot === ev.slot)
    if (!row) {
      row = freshSlot(ev.slot)
      progress.value.push(row)
    }
    row.steps[ev.step] = ev.state
    if (ev.detail) row.detail = ev.detail
    if (ev.state === 'failed') row.failed = true
    // a step that runs means every earlier step is behind it (some hosts skip steps, e.g. runtime)
    if (ev.state !== 'failed') {
      for (const s of DEPLOY_STEPS) {
        if (s === ev.step) break
        if (row.steps[s] === 'pending' || row.steps[s] === 'running') row.steps[s] = 'done'
      }
    }
  }

  async function deploy(labName: string, file: LabFileForm): Promise<void> {
    const slots = (['a', 'b', 'disk', 'spare'] as const).filter((s) => file.hosts[s] !== undefined)
    progress.value = slots.map(freshSlot)
    // the form comes back with this file if the deploy fails
    draft.value = file
    draftName.value = labName
    deployFailed.value = null
    deploying.value = labName
    try {
      const s = await useClient().call('lab.deploy', { name: labName, file })
      lab.apply(s)
      lab.lastError = null
      deploying.value = null
      closePicker()
      void refreshLabs()
    } catch (err) {
      deployFailed.value = err instanceof Error ? err.message : String(err)
    }
  }

  /** Leaves the deploy screen after a failure, back to the form with the file as it was. */
  function dismissDeploy(): void {
    deploying.value = null
    deployFailed.value = null
    progress.value = []
  }

  const detach = () =>
    lab.act('lab.detach', async () => {
      lab.apply(await useClient().call('lab.detach'))
      await lab.refresh()
      openPicker()
    })

  const teardown = (confirm: string) =>
    lab.act('lab.teardown', async () => {
      lab.apply(await useClient().call('lab.teardown', { confirm }))
      await lab.refresh()
      openPicker()
    })

  const powerOn = (host: HostId) => lab.act(`lab.powerOn:${host}`, async () => lab.apply(await useClient().call('lab.powerOn', { host })))

  const restore = (onto?: string) => lab.act('lab.restore', async () => lab.apply(await useClient().call('lab.restore', onto ? { onto } : {})))

  return {
    labs,
    labsError,
    pickerView,
    draft,
    draftName,
    fieldErrors,
    deploying,
    deployFailed,
    progress,
    kind,
    name,
    remote,
    recent,
    showPicker,
    refreshLabs,
    openPicker,
    closePicker,
    editDraft,
    openFileText,
    start,
    open,
    check,
    save,
    onDeploy,
    deploy,
    dismissDeploy,
    detach,
    teardown,
    powerOn,
    restore
  }
})
