// Validates one request against the contract and hands it to the console. Both transports
// (Electron IPC in main/transport/ipc.ts and the browser mode's WebSocket in
// main/transport/ws-server.ts) go through here, so they accept and refuse exactly the same things.
import { ApiError, validateRequest, type ApiEvent, type MethodName, type ParamsOf, type RecordingInfo, type ResultOf } from './contract.js'

/** One handler per contract method; each gets params already checked against the method's schema. */
export type ApiHandlers = { [M in MethodName]: (params: ParamsOf<M>) => Promise<ResultOf<M>> | ResultOf<M> }

/** The console core as the transports see it. */
export interface ConsoleService {
  /** runs one checked request */
  handle<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>>
  /** every event as it happens (unbatched); returns an unsubscribe function */
  subscribe(listener: (ev: ApiEvent) => void): () => void
  /** stops timers and lets go of the lab (its agents keep running); not used afterwards */
  close(): Promise<void>
  /** the session library's files, for browser mode's download and upload of recordings (absent: not served) */
  readonly recordings?: {
    fileOf(name: string): string | null
    import(path: string, as?: string): RecordingInfo
    report(name: string): Promise<{ path: string; view: string }>
  }
}

/** A ConsoleService's handle() over a table of handlers. */
export async function callHandler<M extends MethodName>(handlers: ApiHandlers, method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
  const h = handlers[method] as ((p: ParamsOf<M>) => Promise<ResultOf<M>> | ResultOf<M>) | undefined
  if (!h) throw new ApiError('unknown-method', `${method}: this console does not serve it`)
  return await h(params)
}

export async function dispatch(service: ConsoleService, method: unknown, params: unknown): Promise<unknown> {
  const checked = validateRequest(method, params)
  return service.handle(method as MethodName, checked)
}

/**
 * Collects events and hands them on in batches, at most one batch every `intervalMs`
 * (about a frame), so a burst of log entries costs one message, not thousands.
 * A batch never exceeds `maxEvents`; the rest waits for the next flush.
 */
export class EventBatcher {
  private queue: ApiEvent[] = []
  private timer: ReturnType<typeof setTimeout> | null = null
  private closed = false

  constructor(
    private readonly send: (events: ApiEvent[]) => void,
    private readonly intervalMs = 16,
    private readonly maxEvents = 2000
  ) {}

  add(ev: ApiEvent): void {
    if (this.closed) return
    this.queue.push(ev)
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.intervalMs)
  }

  flush(): void {
    this.timer = null
    if (this.closed || this.queue.length === 0) return
    const batch = this.queue.splice(0, this.maxEvents)
    try {
      this.send(batch)
    } finally {
      if (this.queue.length > 0 && !this.closed) this.timer = setTimeout(() => this.flush(), this.intervalMs)
    }
  }

  close(): void {
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.queue = []
  }
}
