// Type-checked by tsconfig.web.json. The page's questions after a reconnect: what the core
// still has open is shown again, what it settled while the page was away goes.
import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import type { Prompt } from '../../../main/api/contract'
import { usePromptStore } from '../../../renderer/src/stores/prompt'

beforeEach(() => setActivePinia(createPinia()))

const hostKey = (id: string, slot: string): Prompt => ({
  id,
  kind: 'host-key',
  slot,
  host: `h-${slot}`,
  port: 22,
  keyType: 'ssh-ed25519',
  fingerprint: `SHA256:${id}`
})

describe('prompt store sync', () => {
  it('shows again the questions still open in the core, in its order, and drops those settled meanwhile', () => {
    const s = usePromptStore()
    s.add(hostKey('p1', 'a'))
    s.add(hostKey('p2', 'b'))
    // the page was away: p1 was answered elsewhere, p3 was asked
    s.sync([hostKey('p2', 'b'), hostKey('p3', 'disk')])
    expect(s.queue.map((p) => p.id)).toEqual(['p2', 'p3'])
    expect(s.current?.id).toBe('p2')
    s.sync([])
    expect(s.current).toBeNull()
  })

  it('a question seen twice (ring replay and the open list) is shown once', () => {
    const s = usePromptStore()
    s.add(hostKey('p1', 'a'))
    s.sync([hostKey('p1', 'a')])
    expect(s.queue).toHaveLength(1)
  })
})
