import { onBeforeUnmount, ref } from 'vue'

/** The wall clock, refreshed every `everyMs`, for countdowns and ages. */
export function useNow(everyMs = 500) {
  const now = ref(Date.now())
  const t = setInterval(() => (now.value = Date.now()), everyMs)
  onBeforeUnmount(() => clearInterval(t))
  return now
}
