// The page's only door to the console core: one object, window.ftlab, with a call for
// the contract's named methods and an event subscription. The raw ipcRenderer never
// reaches the page. This runs sandboxed: it may require nothing but 'electron', so it
// imports only types from the contract (whose runtime needs zod); the channel names are
// checked against the contract's at compile time. Main validates every call.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron'
import type { ApiEvent, FtlabBridge, IPC_CALL, IPC_EVENTS, WireResult } from '../main/api/contract.js'

const CALL: typeof IPC_CALL = 'ftlab:call'
const EVENTS: typeof IPC_EVENTS = 'ftlab:events'

const bridge: FtlabBridge = {
  call(method: string, params?: unknown): Promise<WireResult> {
    if (typeof method !== 'string')
      return Promise.resolve({ ok: false, error: { code: 'unknown-method', message: `unknown method ${JSON.stringify(String(method))}` } })
    return ipcRenderer.invoke(CALL, method, params) as Promise<WireResult>
  },
  onEvents(listener: (events: ApiEvent[]) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('ftlab.onEvents needs a function')
    const handler = (_e: IpcRendererEvent, batch: unknown): void => {
      if (Array.isArray(batch)) listener(batch as ApiEvent[])
    }
    ipcRenderer.on(EVENTS, handler)
    return () => {
      ipcRenderer.removeListener(EVENTS, handler)
    }
  }
}

contextBridge.exposeInMainWorld('ftlab', bridge)
