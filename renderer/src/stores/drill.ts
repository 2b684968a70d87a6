import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { DrillCheck, DrillInfo, DrillRun, LabKind } from '../../../main/api/contract'
import { useClient } from '../api/client'
import { useLabStore } from './lab'

/**
 * Drills: the built-ins, a pasted or opened scenario, and the run in progress (the whole
 * DrillRun arrives with each `drill` event). Only drill runs, never soaks, are shown here.
 */
export const useDrillStore = defineStore('drill', () => {
  const lab = useLabStore()
  /** the Drills view is open instead of the live lab view */
  const open = ref(false)
  const drills = ref<DrillInfo[]>([])
  const selected = ref<string | null>(null)
  /** 'builtin': run the selected built-in; 'text': run the scenario in `text` */
  const source = ref<'builtin' | 'text'>('builtin')
  const text = ref('')
  const check = ref<DrillCheck | null>(null)
  const labKind = ref<LabKind>('simulated')
  const remoteName = ref('')
  const repeats = ref(1)
  const seed = ref<string>('')
  const run = ref<DrillRun | null>(null)
  const running = computed(() => run.value?.state === 'running')
  const current = computed(() => drills.value.find((d) => d.name === selected.value) ?? null)

  function apply(r: DrillRun): void {
    if (r.kind !== 'drill') return
    run.value = r
  }

  async function load(): Promise<void> {
    await lab.act('drill.list', async () => {
      drills.value = (await useClient().call('drill.list')).drills
      if (!selected.value && drills.value.length) select(drills.value[0].name)
    })
  }

  function select(name: string): void {
    selected.value = name
    source.value = 'builtin'
    const d = drills.value.find((x) => x.name === name)
    if (d && !d.labs.includes(labKind.value)) labKind.value = d.labs[0]
    check.value = null
  }

  /** a scenario typed, pasted or opened from a file: checked as it changes */
  async function setText(t: string): Promise<void> {
    text.value = t
    source.value = 'text'
    check.value = t.trim() ? await useClient().call('drill.check', { text: t }) : null
  }

  async function start(): Promise<void> {
    const s = seed.value.trim() === '' ? undefined : Number(seed.value)
    await lab.act('drill.run', async () => {
      run.value = await useClient().call('drill.run', {
        ...(source.value === 'builtin' ? { name: selected.value ?? '' } : { text: text.value }),
        lab: labKind.value,
        ...(labKind.value === 'remote' ? { remote: remoteName.value } : {}),
        repeats: repeats.value,
        ...(s !== undefined && Number.isInteger(s) && s >= 0 ? { seed: s } : {})
      })
    })
  }

  const stop = () => lab.act('drill.stop', async () => useClient().call('drill.stop'))

  return { open, drills, selected, source, text, check, labKind, remoteName, repeats, seed, run, running, current, apply, load, select, setText, start, stop }
})
