import { onBeforeUnmount, onMounted, type Ref } from 'vue'
import { Terminal } from '@xterm/xterm'
import { FitAddon } from '@xterm/addon-fit'
import '@xterm/xterm/css/xterm.css'

/**
 * An xterm pane in `el`. write() queues text; the queue is flushed once per animation
 * frame, so a burst of hundreds of lines costs one terminal write. The pane refits
 * itself when its box changes size.
 */
export function useXterm(el: Ref<HTMLElement | null>, onReady?: (write: (text: string) => void) => void) {
  let term: Terminal | null = null
  let fit: FitAddon | null = null
  let queue: string[] = []
  let frame = 0
  let observer: ResizeObserver | null = null

  function flush(): void {
    frame = 0
    if (!term || queue.length === 0) return
    const text = queue.join('')
    queue = []
    term.write(text)
  }

  function write(text: string): void {
    queue.push(text)
    if (!frame) frame = requestAnimationFrame(flush)
  }

  function clear(): void {
    queue = []
    term?.clear()
  }

  onMounted(() => {
    if (!el.value) return
    term = new Terminal({
      convertEol: false,
      disableStdin: true,
      cursorBlink: false,
      cursorStyle: 'bar',
      cursorInactiveStyle: 'none',
      scrollback: 5000,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', 'Liberation Mono', Menlo, monospace",
      fontSize: 12,
      lineHeight: 1.15,
      theme: {
        background: '#0b0f14',
        foreground: '#c9d4df',
        cursor: '#0b0f14',
        selectionBackground: '#2a3b4d',
        cyan: '#5cc8d8',
        green: '#7bc67b',
        yellow: '#e5c07b',
        red: '#ef6b73',
        magenta: '#c397d8',
        brightBlack: '#5c6773'
      }
    })
    fit = new FitAddon()
    term.loadAddon(fit)
    term.open(el.value)
    fit.fit()
    observer = new ResizeObserver(() => {
      try {
        fit?.fit()
      } catch {
        // the pane may be hidden for a moment; the next resize fits it
      }
    })
    observer.observe(el.value)
    onReady?.(write)
  })

  onBeforeUnmount(() => {
    if (frame) cancelAnimationFrame(frame)
    observer?.disconnect()
    term?.dispose()
    term = null
  })

  return { write, clear }
}
