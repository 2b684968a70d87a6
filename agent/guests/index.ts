// The guests an agent can run, by name.
import type { GuestDefinition } from './api.js'
import { bank } from './bank.js'
import { kv } from './kv.js'

const guests: readonly GuestDefinition[] = [kv, bank]

export const guestNames: string[] = guests.map((g) => g.name)

export function findGuest(name: string): GuestDefinition | undefined {
  return guests.find((g) => g.name === name)
}

export function getGuest(name: string): GuestDefinition {
  const g = findGuest(name)
  if (g === undefined) throw new Error(`unknown guest ${JSON.stringify(name)}; this agent knows: ${guestNames.join(', ')}`)
  return g
}

export type { Guest, GuestDefinition, GuestDevices, GuestFactory, GuestLib, GuestMemory } from './api.js'
export { BLOCK_SIZE } from './api.js'
