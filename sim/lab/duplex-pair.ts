// Two connected in-memory streams: what one side writes, the other reads; destroying one
// closes the other, as a reset connection would. (stream.duplexPair arrived in Node 22.6.)
import { Duplex } from 'node:stream'

export function duplexPair(): [Duplex, Duplex] {
  const sides: Duplex[] = []
  const make = (other: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk, _enc, cb) {
        const o = other()
        if (!o.destroyed) o.push(chunk)
        cb()
      },
      final(cb) {
        const o = other()
        if (!o.destroyed) o.push(null)
        cb()
      },
      destroy(err, cb) {
        const o = other()
        if (!o.destroyed) o.destroy()
        cb(err)
      }
    })
  sides.push(make(() => sides[1]), make(() => sides[0]))
  return [sides[0], sides[1]]
}
