// A minimal control-port client for tests: JSON lines in, responses by id, events collected.
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import type { AgentEvent, ControlMessage } from '../../../agent/control/protocol.js'

export interface TestControlClient {
  socket: Socket
  events: AgentEvent[]
  /** every message received, in order */
  messages: ControlMessage[]
  request(req: Record<string, unknown>): Promise<ControlMessage & { t: 'res' }>
  sendLine(line: string): void
  waitFor(pred: (m: ControlMessage) => boolean): Promise<ControlMessage>
  closed: Promise<void>
  close(): void
}

export async function controlClient(port: number, token: string | null): Promise<TestControlClient> {
  const socket = connect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  await once(socket, 'connect')
  const closed = once(socket, 'close').then(() => undefined)
  const messages: ControlMessage[] = []
  const events: AgentEvent[] = []
  const waiters: { pred: (m: ControlMessage) => boolean; resolve: (m: ControlMessage) => void }[] = []
  let buf = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => {
    buf += chunk
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, nl)) as ControlMessage
      buf = buf.slice(nl + 1)
      messages.push(m)
      if (m.t === 'event') events.push(m.ev)
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].pred(m)) waiters.splice(i, 1)[0].resolve(m)
      }
    }
  })
  let nextId = 1
  const waitFor = (pred: (m: ControlMessage) => boolean) =>
    new Promise<ControlMessage>((resolve, reject) => {
      const seen = messages.find(pred)
      if (seen) return resolve(seen)
      waiters.push({ pred, resolve })
      closed.then(() => reject(new Error('control connection closed while waiting')))
    })
  if (token !== null) socket.write(JSON.stringify({ t: 'auth', token }) + '\n')
  return {
    socket,
    events,
    messages,
    request(req) {
      const id = nextId++
      socket.write(JSON.stringify({ ...req, id }) + '\n')
      return waitFor((m) => m.t === 'res' && m.id === id) as Promise<ControlMessage & { t: 'res' }>
    },
    sendLine(line) {
      socket.write(line + '\n')
    },
    waitFor,
    closed,
    close() {
      socket.destroy()
    }
  }
}
