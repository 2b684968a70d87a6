// Newline-delimited framing shared by the control channel and the agents' stdout.
// A line longer than the limit is a protocol error, not a reason to buffer forever.
import { StringDecoder } from 'node:string_decoder'

export class LineTooLongError extends Error {}

export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8')
  private buffered = ''

  constructor(
    private readonly maxLineChars: number,
    private readonly onLine: (line: string) => void
  ) {}

  /** Feed bytes or text; calls onLine for every complete line (without the '\n'). */
  push(chunk: Buffer | string): void {
    this.buffered += typeof chunk === 'string' ? chunk : this.decoder.write(chunk)
    let nl: number
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      let line = this.buffered.slice(0, nl)
      this.buffered = this.buffered.slice(nl + 1)
      if (line.endsWith('\r')) line = line.slice(0, -1)
      if (line.length > this.maxLineChars) throw new LineTooLongError(`line of ${line.length} characters exceeds the limit of ${this.maxLineChars}`)
      this.onLine(line)
    }
    if (this.buffered.length > this.maxLineChars) {
      const n = this.buffered.length
      this.buffered = ''
      throw new LineTooLongError(`unterminated line of more than ${n} characters exceeds the limit of ${this.maxLineChars}`)
    }
  }
}
