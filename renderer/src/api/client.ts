// The renderer's side of the console API. Inside Electron the preload's window.ftlab
// carries calls over IPC; in a browser the same calls go over the token-guarded
// WebSocket. Both give the components one ConsoleClient, so nothing above this folder
// knows which transport is in use.
import type { ConsoleApi } from '../../../main/api/contract'
import { IpcClient } from './ipc'
import { WsClient } from './ws'

export type ConnectionState = 'connecting' | 'open' | 'closed'

export interface ConsoleClient extends ConsoleApi {
  readonly transport: 'ipc' | 'websocket'
  /** called at once with the current state, then on every change */
  onConnection(listener: (state: ConnectionState, detail: string | null) => void): () => void
  /** events received before a reconnect catch-up; the feed uses it to resume */
  setResumeFrom(seq: () => number): void
}

let client: ConsoleClient | null = null

export function createClient(): ConsoleClient {
  if (window.ftlab) return new IpcClient(window.ftlab)
  return new WsClient(readToken())
}

export function useClient(): ConsoleClient {
  if (!client) client = createClient()
  return client
}

const TOKEN_KEY = 'ftlab.token'

/**
 * The token arrives once in the address (#token=…). It is kept for this tab only
 * (sessionStorage, so a reload still works) and removed from the address bar, so it does
 * not end up in screenshots or shared links.
 */
export function readToken(): string {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash)
  if (m) {
    const token = decodeURIComponent(m[1])
    try {
      sessionStorage.setItem(TOKEN_KEY, token)
    } catch {
      // storage may be disabled; the token still works for this page load
    }
    history.replaceState(null, '', location.pathname + location.search)
    return token
  }
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? ''
  } catch {
    return ''
  }
}
