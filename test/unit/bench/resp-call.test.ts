// The benchmark's one-shot command (it switches kv's appendfsync between runs): a reply, or an
// error that says which command, to where, and what went wrong.
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { respCall } from '../../../main/bench/measure.js'

const servers: Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))))
})

function serve(onData: (sock: Socket, got: string) => void): Promise<number> {
  const s = createServer((sock) => {
    let got = ''
    sock.on('data', (d) => {
      got += d.toString('latin1')
      onData(sock, got)
    })
    sock.on('error', () => {})
  })
  servers.push(s)
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port)))
}

describe('respCall', () => {
  it('sends the command as RESP and answers with the reply', async () => {
    let seen = ''
    const port = await serve((sock, got) => {
      seen = got
      if (got.endsWith('no\r\n')) sock.write('+O')
      setTimeout(() => sock.write('K\r\n'), 10) // a reply in two pieces
    })
    await expect(respCall({ host: '127.0.0.1', port }, ['CONFIG', 'SET', 'appendfsync', 'no'])).resolves.toBe('OK')
    expect(seen).toBe('*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$11\r\nappendfsync\r\n$2\r\nno\r\n')
  })

  it('rejects an error reply with the command and the service', async () => {
    const port = await serve((sock) => sock.write("-ERR CONFIG SET appendfsync: this guest knows 'always' and 'no'\r\n"))
    await expect(respCall({ host: '127.0.0.1', port }, ['CONFIG', 'SET', 'appendfsync', 'x'])).rejects.toThrow(
      `CONFIG SET appendfsync x to 127.0.0.1:${port}: ERR CONFIG SET appendfsync: this guest knows`
    )
  })

  it('rejects a connection closed before the reply, a silent service and a closed port', async () => {
    const closing = await serve((sock) => sock.end())
    await expect(respCall({ host: '127.0.0.1', port: closing }, ['PING'])).rejects.toThrow(/PING to 127\.0\.0\.1:\d+: the connection closed before a reply/)
    const silent = await serve(() => {})
    await expect(respCall({ host: '127.0.0.1', port: silent }, ['PING'], 100)).rejects.toThrow(/no reply within 100 ms/)
    const gone = await serve(() => {})
    await new Promise((r) => servers.pop()!.close(r))
    await expect(respCall({ host: '127.0.0.1', port: gone }, ['PING'])).rejects.toThrow(/PING to 127\.0\.0\.1:\d+: connect ECONNREFUSED/)
  })
})
