// Electron IPC: the console's contract over ipcMain.handle and webContents.send. Written
// against the few methods it uses (structural types, no import of 'electron') so it runs,
// and is tested, without the Electron binary; main/electron/ hands it the real objects.
//
// Every call is first checked for its sender (only our own window's top frame may call),
// then for its size, then validated against the contract by the same dispatch as the
// WebSocket: both transports accept and refuse exactly the same requests. Errors come back
// as values ({ ok: false, error }) because Electron flattens thrown errors into strings.
import { IPC_CALL, IPC_EVENTS, MAX_MESSAGE_BYTES, toWireError, type WireResult } from '../api/contract.js'
import { dispatch, EventBatcher, type ConsoleService } from '../api/dispatch.js'

/** What ipcMain.handle's listener gets as its event; only what the sender check needs. */
export interface IpcCallEvent {
  sender: unknown
  senderFrame: { url: string; parent: unknown } | null
}

/** The part of Electron's ipcMain used here. */
export interface IpcMainLike {
  handle(channel: string, listener: (event: IpcCallEvent, ...args: unknown[]) => Promise<unknown>): void
  removeHandler(channel: string): void
}

/** The part of Electron's WebContents used here. */
export interface WebContentsLike {
  send(channel: string, ...args: unknown[]): void
  isDestroyed(): boolean
}

export interface IpcTransportOptions {
  ipcMain: IpcMainLike
  service: ConsoleService
  /** true only for our own window's top frame showing our own page */
  isTrusted: (event: IpcCallEvent) => boolean
  maxMessageBytes?: number
}

export const REFUSED_SENDER = 'refused: the call did not come from the console window'

/** Answers the page's calls on IPC_CALL. Returns a function that stops answering. */
export function serveIpc(opts: IpcTransportOptions): () => void {
  const max = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES
  opts.ipcMain.handle(IPC_CALL, async (event, method: unknown, params: unknown): Promise<WireResult> => {
    if (!opts.isTrusted(event)) return { ok: false, error: { code: 'bad-request', message: REFUSED_SENDER } }
    try {
      // the WebSocket refuses what exceeds its message limit; IPC refuses the same size here
      const size = params === undefined ? 0 : Buffer.byteLength(JSON.stringify(params) ?? '', 'utf8')
      if (size > max) return { ok: false, error: { code: 'bad-request', message: `request too large: ${size} bytes of params (at most ${max})` } }
      return { ok: true, result: await dispatch(opts.service, method, params) }
    } catch (err) {
      return { ok: false, error: toWireError(err) }
    }
  })
  return () => opts.ipcMain.removeHandler(IPC_CALL)
}

/** Sends the console's events to one window in batches (about a frame apart). Returns a function that stops. */
export function streamEventsTo(contents: WebContentsLike, service: ConsoleService, batchMs = 16): () => void {
  const batcher = new EventBatcher((events) => {
    if (!contents.isDestroyed()) contents.send(IPC_EVENTS, events)
  }, batchMs)
  const unsubscribe = service.subscribe((ev) => batcher.add(ev))
  return () => {
    unsubscribe()
    batcher.close()
  }
}
