// The console core as the API sees it. The API layer (Electron IPC in main/electron/,
// the WebSocket in main/api/server.ts) validates every request against contract.ts and
// then calls exactly one of these methods; the backend never sees unchecked input.
//
// Two implementations: the real embedded local lab (lab-backend.ts: agent processes on this
// machine, the load clients and the checkers), the default; and the simulated lab
// (fake-backend.ts), for UI development and the UI tests, chosen with FTLAB_FAKE_BACKEND=1.
import type {
  ApiEvent,
  ConsoleInfo,
  EventsSince,
  FaultHealParams,
  FaultInfo,
  FaultInjectParams,
  LabStartParams,
  LabStatus,
  LoadStartParams,
  LoadStatus
} from './contract.js'
import { FakeBackend } from './fake-backend.js'
import { LabBackend } from './lab-backend.js'

export interface ConsoleBackend {
  info(): ConsoleInfo
  labStart(p: LabStartParams): Promise<LabStatus>
  labStop(): Promise<LabStatus>
  labStatus(): Promise<LabStatus>
  labRestore(): Promise<LabStatus>
  faultInject(p: FaultInjectParams): Promise<FaultInfo>
  faultHeal(p: FaultHealParams): Promise<{ healed: string[] }>
  loadStart(p: LoadStartParams): Promise<LoadStatus>
  loadStop(): Promise<LoadStatus>
  /** events with seq > since, from the backend's ring */
  eventsSince(since: number): EventsSince
  /** every event as it happens (unbatched); returns an unsubscribe function */
  subscribe(listener: (ev: ApiEvent) => void): () => void
  /** stop timers and child processes; the backend is not used afterwards */
  close(): Promise<void>
}

/** The real local lab, or the simulated one when FTLAB_FAKE_BACKEND=1 (or `fake: true`). */
export function createBackend(opts: { fake?: boolean; env?: NodeJS.ProcessEnv } = {}): ConsoleBackend {
  const env = opts.env ?? process.env
  return opts.fake || env.FTLAB_FAKE_BACKEND === '1' ? new FakeBackend() : new LabBackend()
}
