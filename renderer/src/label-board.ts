// Where the space-time diagram's small labels go. A busy moment (a restore: the new replica's
// roles, the snapshot, the first batches, a stall, within a few pixels of each other) would print
// label over label. So the diagram collects its labels for a frame and lays them out at once:
// labels of one series (a host's roles) that would touch become one ("▸joining → backup"); the
// labels that must show are placed first, each on the first of its candidate places that is free
// (or, with none free, on its own place regardless); then the others, each left out where no place
// is free.

export interface PendingLabel {
  text: string
  /** left end, and vertical middle, of the label's own place */
  x: number
  y: number
  color: string
  font: string
  /** vertical offsets to try, the label's own place (usually 0) first */
  offsets: readonly number[]
  /** shown even with no free place */
  must: boolean
  /** labels of one series that would touch are drawn as one, joined by `join` */
  series?: { key: string; join: (a: string, b: string) => string }
}

export interface PlacedLabel {
  text: string
  x: number
  y: number
  color: string
  font: string
}

interface Box {
  x1: number
  y1: number
  x2: number
  y2: number
}

const GAP = 3

/** Lay out one frame's labels; `width` measures a text in a font, `height` is a label's height. */
export function layoutLabels(items: readonly PendingLabel[], width: (text: string, font: string) => number, height: number): PlacedLabel[] {
  // 1. a series' touching labels become one
  const merged: PendingLabel[] = []
  const lastOf = new Map<string, PendingLabel>()
  for (const item of [...items].sort((p, q) => p.x - q.x)) {
    const key = item.series?.key
    const prev = key === undefined ? undefined : lastOf.get(key)
    if (prev && item.series && item.x <= prev.x + width(prev.text, prev.font) + GAP) {
      prev.text = item.series.join(prev.text, item.text)
      continue
    }
    const own = { ...item }
    merged.push(own)
    if (key !== undefined) lastOf.set(key, own)
  }
  // 2. what must show, then the rest
  const boxes: Box[] = []
  const out: PlacedLabel[] = []
  for (const must of [true, false]) {
    for (const item of merged) {
      if (item.must !== must) continue
      const w = width(item.text, item.font)
      const at = (dy: number): Box => ({ x1: item.x, y1: item.y + dy - height / 2, x2: item.x + w, y2: item.y + dy + height / 2 })
      let dy = item.offsets.find((o) => !boxes.some((b) => overlap(b, at(o))))
      if (dy === undefined) {
        if (!must) continue
        dy = item.offsets[0] ?? 0
      }
      boxes.push(at(dy))
      out.push({ text: item.text, x: item.x, y: item.y + dy, color: item.color, font: item.font })
    }
  }
  return out
}

function overlap(a: Box, b: Box): boolean {
  return a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2
}
