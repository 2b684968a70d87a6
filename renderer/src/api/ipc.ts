import { ApiError, type ApiEvent, type FtlabBridge, type MethodName, type ResultOf } from '../../../main/api/contract'
import type { ConnectionState, ConsoleClient } from './client'

/** Calls through the Electron preload's window.ftlab. */
export class IpcClient implements ConsoleClient {
  readonly transport = 'ipc' as const

  constructor(private readonly bridge: FtlabBridge) {}

  async call<M extends MethodName>(method: M, params?: unknown): Promise<ResultOf<M>> {
    const res = await this.bridge.call(method, params ?? {})
    if (!res.ok) throw new ApiError(res.error.code, res.error.message)
    return res.result as ResultOf<M>
  }

  onEvents(listener: (events: ApiEvent[]) => void): () => void {
    return this.bridge.onEvents(listener)
  }

  onConnection(listener: (state: ConnectionState, detail: string | null) => void): () => void {
    listener('open', null)
    return () => {}
  }

  setResumeFrom(): void {
    // IPC does not drop: nothing to resume
  }
}
