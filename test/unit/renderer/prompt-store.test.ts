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
    s.add(hostKey('p1', 'a'), 4)
    s.add(hostKey('p2', 'b'), 5)
    // the page was away: p1 was answered elsewhere, p3 was asked; the list is as of event 9
    s.sync([hostKey('p2', 'b'), hostKey('p3', 'disk')], 9)
    expect(s.queue.map((p) => p.id)).toEqual(['p2', 'p3'])
    expect(s.current?.id).toBe('p2')
    s.sync([], 12)
    expect(s.current).toBeNull()
  })

  it('a question seen twice (ring replay and the open list) is shown once', () => {
    const s = usePromptStore()
    s.add(hostKey('p1', 'a'), 3)
    s.sync([hostKey('p1', 'a')], 3)
    expect(s.queue).toHaveLength(1)
  })

  it('a question settled after the list was read does not come back with it', () => {
    const s = usePromptStore()
    s.add(hostKey('p4', 'spare'), 6)
    // the list was read while p4 was open; its prompt-done came before the page synced
    s.done('p4', 'accepted')
    s.sync([hostKey('p4', 'spare')], 6)
    expect(s.queue).toHaveLength(0)
    // nor does a replayed prompt event
    s.add(hostKey('p4', 'spare'), 6)
    expect(s.current).toBeNull()
  })

  it('a question asked after the list was read stays: the list is older than it', () => {
    const s = usePromptStore()
    // console.info answered as of event 7; the host-key question came as event 8 before the page synced
    s.add(hostKey('p9', 'b'), 8)
    s.sync([], 7)
    expect(s.queue.map((p) => p.id)).toEqual(['p9'])
  })
})
