// The page's only door to the console core: one object, window.ftlab, with a call for
// the contract's named methods and an event subscription. The raw ipcRenderer never
// reaches the page. This runs sandboxed: it may import nothing but 'electron' (the
// contract is bundled in by electron-vite).
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron'
import { IPC_CALL, IPC_EVENTS, isMethodName, METHOD_NAMES, type ApiEvent, type FtlabBridge, type WireResult } from '../main/api/contract.js'

const bridge: FtlabBridge = {
  call(method: string, params?: unknown): Promise<WireResult> {
    // checked here for a quick, clear refusal; main validates everything again
    if (!isMethodName(method)) {
      return Promise.resolve({
        ok: false,
        error: { code: 'unknown-method', message: `unknown method ${JSON.stringify(String(method))} (known: ${METHOD_NAMES.join(', ')})` }
      })
    }
    return ipcRenderer.invoke(IPC_CALL, method, params) as Promise<WireResult>
  },
  onEvents(listener: (events: ApiEvent[]) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('ftlab.onEvents needs a function')
    const handler = (_e: IpcRendererEvent, batch: unknown): void => {
      if (Array.isArray(batch)) listener(batch as ApiEvent[])
    }
    ipcRenderer.on(IPC_EVENTS, handler)
    return () => {
      ipcRenderer.removeListener(IPC_EVENTS, handler)
    }
  }
}

contextBridge.exposeInMainWorld('ftlab', bridge)
