import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { Mark } from '../../../main/api/contract'

export interface TimelineMark extends Mark {
  seq: number
  ts: number
  /** the same mark repeated right after itself this many more times (collapsed) */
  repeats?: number
}

const MAX_MARKS = 500
/** the same mark again within this long is counted on the first, not listed again */
const COLLAPSE_MS = 10_000

/** Marked moments: faults, heals, suspicion, test-and-set, go-live, restore. */
export const useTimelineStore = defineStore('timeline', () => {
  const marks = ref<TimelineMark[]>([])
  /** the mark (or evidence event) the operator jumped to, by seq */
  const highlighted = ref<number | null>(null)

  function add(m: TimelineMark): void {
    const last = marks.value[marks.value.length - 1]
    if (last && m.seq <= last.seq) return // a reload's catch-up overlapping what we have
    if (last && last.kind === m.kind && last.label === m.label && m.ts - last.ts < COLLAPSE_MS) {
      last.repeats = (last.repeats ?? 0) + 1
      last.ts = m.ts
      return
    }
    const next = [...marks.value, m]
    marks.value = next.length > MAX_MARKS ? next.slice(-MAX_MARKS) : next
  }

  function highlight(seq: number | null): void {
    highlighted.value = seq
  }

  /** the mark at or just after seq: evidence may point at an agent event between marks */
  function nearest(seq: number): TimelineMark | null {
    return marks.value.find((m) => m.seq >= seq) ?? null
  }

  function clear(): void {
    marks.value = []
  }

  return { marks, highlighted, add, highlight, nearest, clear }
})
