import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { Mark } from '../../../main/api/contract'

export interface TimelineMark extends Mark {
  seq: number
  ts: number
}

const MAX_MARKS = 500

/** Marked moments: faults, heals, suspicion, test-and-set, go-live, restore. */
export const useTimelineStore = defineStore('timeline', () => {
  const marks = ref<TimelineMark[]>([])

  function add(m: TimelineMark): void {
    const next = [...marks.value, m]
    marks.value = next.length > MAX_MARKS ? next.slice(-MAX_MARKS) : next
  }

  function clear(): void {
    marks.value = []
  }

  return { marks, add, clear }
})
