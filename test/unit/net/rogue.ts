// A hand-driven peer for link tests: it speaks the frame protocol step by step, so tests
// can forge, tamper with and replay frames the real Session would never send.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { decode, encode } from '../../../agent/net/codec.js'
import { FrameReader, FrameType, HELLO_NONCE, encodeFrame } from '../../../agent/net/frame.js'

export interface Rogue {
  socket: Socket
  /** the server's nonce from its hello (frames to the server are MACed over it) */
  serverNonce: Uint8Array
  seq: number
  /** a message frame as a real peer would build it (next sequence number) */
  frame(msg: unknown, opts?: { key?: Uint8Array; nonce?: Uint8Array; seq?: number }): Buffer
  closed: Promise<void>
}

export async function roguePeer(port: number, key: Uint8Array, id = 'rogue'): Promise<Rogue> {
  const socket = connect({ host: '127.0.0.1', port })
  await once(socket, 'connect')
  const closed = once(socket, 'close').then(() => undefined)
  const myNonce = randomBytes(16)
  socket.write(encodeFrame(FrameType.Hello, 0, encode({ v: 1, id, nonce: myNonce }), key, HELLO_NONCE))
  const reader = new FrameReader()
  const serverNonce = await new Promise<Uint8Array>((resolve, reject) => {
    socket.on('data', (chunk) => {
      for (const r of reader.push(chunk)) {
        if (r.kind === 'frame' && r.frame.type === FrameType.Hello) resolve((decode(r.frame.payload) as { nonce: Uint8Array }).nonce)
      }
    })
    socket.once('close', () => reject(new Error('server closed before its hello')))
  })
  socket.write(encodeFrame(FrameType.Ack, 1, new Uint8Array(0), key, serverNonce))
  const rogue: Rogue = {
    socket,
    serverNonce,
    seq: 2,
    frame(msg, opts = {}) {
      const seq = opts.seq ?? rogue.seq++
      return encodeFrame(FrameType.Message, seq, encode(msg), opts.key ?? key, opts.nonce ?? serverNonce)
    },
    closed
  }
  return rogue
}
