// Validates one request against the contract and hands it to the backend. Both
// transports (Electron IPC and the browser mode's WebSocket) go through here, so they
// accept and refuse exactly the same things.
import type { ConsoleBackend } from './backend.js'
import { ApiError, validateRequest, type ApiEvent, type MethodName, type ParamsOf, type ResultOf } from './contract.js'

export async function dispatch(backend: ConsoleBackend, method: unknown, params: unknown): Promise<unknown> {
  const checked = validateRequest(method, params)
  return call(backend, method as MethodName, checked)
}

async function call<M extends MethodName>(b: ConsoleBackend, method: M, p: ParamsOf<MethodName>): Promise<ResultOf<M>> {
  const any = p as never
  switch (method as MethodName) {
    case 'console.info':
      return b.info() as ResultOf<M>
    case 'lab.start':
      return (await b.labStart(any)) as ResultOf<M>
    case 'lab.stop':
      return (await b.labStop()) as ResultOf<M>
    case 'lab.status':
      return (await b.labStatus()) as ResultOf<M>
    case 'lab.restore':
      return (await b.labRestore()) as ResultOf<M>
    case 'fault.inject':
      return (await b.faultInject(any)) as ResultOf<M>
    case 'load.start':
      return (await b.loadStart(any)) as ResultOf<M>
    case 'load.stop':
      return (await b.loadStop()) as ResultOf<M>
    case 'fault.heal':
      return { warnings: [], ...(await b.faultHeal(any)) } as ResultOf<M>
    case 'events.since':
      return b.eventsSince((p as ParamsOf<'events.since'>).seq) as ResultOf<M>
    default:
      throw new ApiError('unavailable', `${method}: not served by this console backend yet`)
  }
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
