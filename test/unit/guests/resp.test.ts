import { describe, expect, it } from 'vitest'
import { RespError, RespReader, encodeCommand, resp } from '../../../agent/guests/resp.js'

const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1')

describe('encodeCommand', () => {
  it('encodes strings as UTF-8 bulk strings and bytes as they are', () => {
    expect(text(encodeCommand(['SET', 'k', 'é']))).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n')
    expect(text(encodeCommand(['GET', new Uint8Array([0, 255, 13, 10])]))).toBe('*2\r\n$3\r\nGET\r\n$4\r\n\x00\xff\r\n\r\n')
  })
})

describe('RespReader', () => {
  const stream = '+OK\r\n-ERR no\r\n:42\r\n$4\r\nh\xc3\xa9y\r\n$-1\r\n*2\r\n*1\r\n:1\r\n$0\r\n\r\n*-1\r\n*0\r\n'
  const expected = ['OK', new RespError('ERR no'), 42, 'héy', null, [[1], ''], null, []]

  it('reads every reply type', () => {
    const r = new RespReader()
    r.push(Buffer.from(stream, 'latin1'))
    const got = []
    for (let v = r.next(); v !== undefined; v = r.next()) got.push(v)
    expect(got).toEqual(expected)
    expect(got[1]).toBeInstanceOf(RespError)
    expect(r.buffered).toBe(0)
  })

  it('gives the same replies when the bytes arrive one at a time', () => {
    const r = new RespReader()
    const got = []
    for (const ch of Buffer.from(stream, 'latin1')) {
      r.push(new Uint8Array([ch]))
      for (let v = r.next(); v !== undefined; v = r.next()) got.push(v)
    }
    expect(got).toEqual(expected)
  })

  it('throws a protocol error on garbage instead of waiting forever', () => {
    const r = new RespReader()
    r.push(Buffer.from('?what\r\n'))
    expect(() => r.next()).toThrow(/Protocol error: unknown reply type '\?'/)
    const s = new RespReader()
    s.push(Buffer.from(':12x\r\n'))
    expect(() => s.next()).toThrow(/Protocol error: invalid integer '12x'/)
  })
})

describe('parseCommand', () => {
  it('parses a command split anywhere only once it is complete', () => {
    const wire = text(encodeCommand(['SET', 'key', 'a\r\nb']))
    for (let cut = 0; cut < wire.length; cut++) expect(resp.parseCommand(wire.slice(0, cut), 0)).toBeNull()
    expect(resp.parseCommand(wire, 0)).toEqual({ args: ['SET', 'key', 'a\r\nb'], end: wire.length })
  })

  it('parses pipelined commands one after another', () => {
    const wire = text(encodeCommand(['PING'])) + 'GET a\r\n' + text(encodeCommand(['ECHO', 'x']))
    const seen: string[][] = []
    let pos = 0
    for (let c = resp.parseCommand(wire, pos); c !== null; c = resp.parseCommand(wire, pos)) {
      seen.push(c.args)
      pos = c.end
    }
    expect(seen).toEqual([['PING'], ['GET', 'a'], ['ECHO', 'x']])
    expect(pos).toBe(wire.length)
  })

  it('splits inline commands into words, with quotes and escapes', () => {
    expect(resp.parseCommand('set  "a b" \'it\\\'s\' "\\x41\\n"\n', 0)?.args).toEqual(['set', 'a b', "it's", 'A\n'])
    expect(resp.parseCommand('\r\n', 0)).toEqual({ args: [], end: 2 })
    expect(resp.parseCommand('PING', 0)).toBeNull()
  })

  it.each([
    ['*2\r\n+OK\r\n', /expected '\$', got '\+'/],
    ['*x\r\n', /invalid multibulk length 'x'/],
    ['*1\r\n$-5\r\n', /invalid bulk length -5/],
    ['*1\r\n$1\r\nabc\r\n', /bulk string not followed by CRLF/],
    ['*1\r\n$-1\r\n', /nil bulk string in a command/],
    ['set "open\n', /unbalanced quotes/],
    ['x'.repeat(70_000), /inline request longer than/]
  ])('refuses %# with a protocol error', (wire, msg) => {
    expect(() => resp.parseCommand(wire, 0)).toThrow(msg)
  })
})
