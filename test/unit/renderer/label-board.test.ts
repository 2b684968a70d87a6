// The space-time diagram's label layout: a burst of labels at one moment (a restore) stays
// legible: a host's touching role labels become one, what must show is placed first on a free
// place, and a label with no free place is left out.
import { describe, expect, it } from 'vitest'
import { layoutLabels, type PendingLabel } from '../../../renderer/src/label-board'

/** 6 px a character, as a 10 px monospace font */
const width = (text: string) => text.length * 6
const joinRoles = (a: string, b: string) => (a.endsWith(b.slice(1)) ? a : `${a} → ${b.slice(1)}`)
const item = (text: string, x: number, y: number, opts: Partial<PendingLabel> = {}): PendingLabel => ({
  text,
  x,
  y,
  color: '#fff',
  font: 'mono',
  offsets: [0],
  must: false,
  ...opts
})
const role = (text: string, x: number, host = 'b') => item(text, x, 100, { must: true, offsets: [0, 11], series: { key: `role ${host}`, join: joinRoles } })

describe('the label layout', () => {
  it("joins a host's touching roles into one label, and keeps apart those that do not touch or are another host's", () => {
    const out = layoutLabels([role('▸joining', 50), role('▸joining', 51), role('▸backup', 52), role('▸joining', 60, 'a'), role('▸primary', 200)], width, 11)
    expect(out.map((l) => [l.text, l.x, l.y])).toEqual([
      ['▸joining → backup', 50, 100],
      // a's label would lie on b's: its next place
      ['▸joining', 60, 111],
      ['▸primary', 200, 100]
    ])
  })

  it('places what must show first; the rest take a free place or are left out', () => {
    const out = layoutLabels(
      [
        // an entry label drawn before the role it would cover
        item('e100–180', 48, 100, { offsets: [0, 11] }),
        role('▸backup', 50),
        item('snapshot', 52, 100, { offsets: [0] }),
        item('e181–200', 200, 100)
      ],
      width,
      11
    )
    expect(out.map((l) => [l.text, l.y])).toEqual([
      ['▸backup', 100],
      ['e100–180', 111],
      ['e181–200', 100]
    ])
  })

  it('puts a label that must show on its own place when every place is taken', () => {
    const out = layoutLabels([item('LIVE g2', 10, 50, { must: true }), item('TAS g2 won', 12, 50, { must: true })], width, 11)
    expect(out.map((l) => [l.text, l.y])).toEqual([
      ['LIVE g2', 50],
      ['TAS g2 won', 50]
    ])
  })
})
