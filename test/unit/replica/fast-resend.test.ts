// A message lost on the logging channel is resent at the backup's second duplicate ack, not a
// resend timeout later: under steady loss the timer alone let a healthy pair miss its progress
// limit and suspect each other round after round (sim kv seed 24156). Only the gap is resent,
// once per gap.
import { describe, expect, it } from 'vitest'
import type { PeerMsg } from '../../../agent/replica/types.js'
import { confirmedPrimary, deliver, ftreq, makeCore, pairWithSlicedSet, peerMsgs, releases } from './harness.js'

const sendAll = (msgs: PeerMsg[]) => msgs.map((msg) => ({ t: 'send-peer' as const, msg }))

describe('a lost logging-channel message', () => {
  it('is resent, alone, at the duplicate ack that shows the gap, and only once per gap', () => {
    const p = confirmedPrimary()
    const b = makeCore('backup')
    b.core.takeActions()
    deliver(deliver(p.start, b.core, 1), p.core, 1) // the boot entry, acked
    p.core.takeActions()
    const sent: PeerMsg[][] = []
    for (let i = 1; i <= 4; i++) {
      p.core.step({ t: 'input', now: 2, input: ftreq('c1', i, 'SET', `k${i}`, `v${i}`) })
      sent.push(peerMsgs(p.core.takeActions()).filter((m) => m.t === 'entries'))
    }
    expect(sent.every((m) => m.length === 1)).toBe(true)
    const lostN = sent[1][0].t === 'entries' ? sent[1][0].entries.map((e) => e.n) : []
    // the second message is lost; the others arrive
    const acks = [sent[0], sent[2], sent[3]].flatMap((m) => deliver(sendAll(m), b.core, 3))
    expect(peerMsgs(acks).map((m) => (m.t === 'ack' ? m.n : -1))).toEqual([2, 2, 2]) // two repeat the first: a gap
    // one duplicate could be a reordering; the second makes the primary resend (no tick: no resend timer has run)
    expect(peerMsgs(deliver(acks.slice(0, 2), p.core, 4))).toEqual([])
    const answer = deliver(acks.slice(2), p.core, 4)
    const resent = peerMsgs(answer)
    expect(resent).toHaveLength(1)
    expect(resent[0].t === 'entries' && resent[0].entries.map((e) => e.n)).toEqual(lostN)
    // the same duplicate ack again resends nothing more
    expect(peerMsgs(deliver(acks.slice(1), p.core, 4))).toEqual([])
    // the resend brings the backup level (it kept what came behind the gap) and the held replies leave
    const out = deliver(deliver(answer, b.core, 5), p.core, 5)
    expect(b.core.status().lastEntry).toBe(p.core.status().lastEntry)
    expect(releases(out)).toHaveLength(3)
  })

  it('inside a sliced entry resends its slices from the gap on, not the entries before it', () => {
    const { p, b, parts, value } = pairWithSlicedSet()
    expect(parts.length).toBeGreaterThanOrEqual(5)
    // the third slice is lost, the rest arrive
    const acks = deliver(sendAll(parts.filter((_, i) => i !== 2)), b.core, 3)
    const resent = peerMsgs(deliver(acks, p.core, 3))
    expect(resent.map((m) => (m.t === 'entry-part' ? m.at : -1))).toEqual(parts.slice(2).map((m) => (m.t === 'entry-part' ? m.at : -2)))
    const out = deliver(deliver(sendAll(resent), b.core, 4), p.core, 4)
    expect(b.vmm.peek('k')).toBe(value)
    expect(releases(out)).toHaveLength(1)
  })
})
