// The console core as the API sees it. The API layer (Electron IPC in main/electron/,
// the WebSocket in main/api/server.ts) validates every request against contract.ts and
// then calls exactly one of these methods; the backend never sees unchecked input.
//
// This is the single adapter between the UI and the console core: the simulated lab in
// fake-backend.ts implements it today; the real lab (main/lab, main/load) is wired in
// createBackend() below.
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

/** The one line to change when the real lab is wired in. */
export function createBackend(): ConsoleBackend {
  return new FakeBackend()
}
