import { onBeforeUnmount, onMounted, type Ref } from 'vue'
import { Terminal, type ITheme } from '@xterm/xterm'
import { FitAddon } from '@xterm/addon-fit'
import { SearchAddon, type ISearchOptions } from '@xterm/addon-search'
import '@xterm/xterm/css/xterm.css'

export interface XtermOptions {
  /** keyboard input reaches onData and the cursor shows (an SSH shell); off for read-only panes */
  interactive?: boolean
  /** lines kept above the screen */
  scrollback?: number
  /** what the operator typed or pasted */
  onData?: (data: string) => void
  /** the pane's size in cells after a fit (only when it changed) */
  onResize?: (cols: number, rows: number) => void
  /** search results changed: index of the active match (-1 when unknown) and how many there are */
  onSearchResults?: (index: number, count: number) => void
}

export interface XtermHandle {
  /** queue text; it is written once per animation frame */
  write(text: string): void
  clear(): void
  /** wipe the screen and scrollback (before a redraw from a saved scrollback) */
  reset(): void
  focus(): void
  fit(): void
  size(): { cols: number; rows: number } | null
  findNext(term: string, opts?: ISearchOptions): boolean
  findPrevious(term: string, opts?: ISearchOptions): boolean
  clearSearch(): void
  /** the selected text, or '' */
  selection(): string
  /** sends text as typed input, bracketed when the shell asked for it */
  paste(text: string): void
}

const THEME: ITheme = {
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

const SEARCH_DECORATIONS: ISearchOptions['decorations'] = {
  matchBackground: '#3a4a2a',
  matchOverviewRuler: '#e5c07b',
  activeMatchBackground: '#8a6d1f',
  activeMatchColorOverviewRuler: '#ffd866'
}

/**
 * An xterm pane in `el`. write() queues text; the queue is flushed once per animation
 * frame, so a burst of hundreds of lines costs one terminal write. The pane refits
 * itself when its box changes size. Interactive panes (SSH shells) also get search and
 * copy/paste with Ctrl+Shift+C / Ctrl+Shift+V, since plain Ctrl+C belongs to the shell.
 */
export function useXterm(el: Ref<HTMLElement | null>, onReady?: (write: (text: string) => void) => void, opts: XtermOptions = {}): XtermHandle {
  let term: Terminal | null = null
  let fitAddon: FitAddon | null = null
  let search: SearchAddon | null = null
  let queue: string[] = []
  let frame = 0
  let observer: ResizeObserver | null = null
  let lastSize = ''

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

  function reset(): void {
    queue = []
    term?.reset()
  }

  function fit(): void {
    if (!term || !fitAddon || !el.value || el.value.offsetParent === null) return
    try {
      fitAddon.fit()
    } catch {
      // the pane may be hidden for a moment; the next resize fits it
      return
    }
    const size = `${term.cols}x${term.rows}`
    if (size !== lastSize) {
      lastSize = size
      opts.onResize?.(term.cols, term.rows)
    }
  }

  async function copySelection(): Promise<void> {
    const text = term?.getSelection() ?? ''
    if (text) await navigator.clipboard?.writeText(text).catch(() => {})
  }

  async function pasteClipboard(): Promise<void> {
    const text = await navigator.clipboard?.readText().catch(() => '')
    if (text) term?.paste(text)
  }

  onMounted(() => {
    if (!el.value) return
    const interactive = opts.interactive ?? false
    term = new Terminal({
      convertEol: false,
      disableStdin: !interactive,
      cursorBlink: interactive,
      cursorStyle: interactive ? 'block' : 'bar',
      cursorInactiveStyle: interactive ? 'outline' : 'none',
      scrollback: opts.scrollback ?? 5000,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', 'Liberation Mono', Menlo, monospace",
      fontSize: 12,
      lineHeight: 1.15,
      // search decorations use the decoration API, which xterm still marks as proposed
      allowProposedApi: interactive,
      theme: interactive ? { ...THEME, cursor: '#c9d4df', cursorAccent: '#0b0f14' } : THEME
    })
    fitAddon = new FitAddon()
    term.loadAddon(fitAddon)
    if (interactive) {
      search = new SearchAddon()
      term.loadAddon(search)
      search.onDidChangeResults((r) => opts.onSearchResults?.(r.resultIndex, r.resultCount))
      term.attachCustomKeyEventHandler((e) => {
        if (e.type !== 'keydown' || !e.ctrlKey || !e.shiftKey) return true
        if (e.code === 'KeyC') {
          void copySelection()
          return false
        }
        if (e.code === 'KeyV') {
          void pasteClipboard()
          return false
        }
        return true
      })
      term.onData((d) => opts.onData?.(d))
    }
    term.open(el.value)
    fit()
    observer = new ResizeObserver(() => fit())
    observer.observe(el.value)
    onReady?.(write)
  })

  onBeforeUnmount(() => {
    if (frame) cancelAnimationFrame(frame)
    observer?.disconnect()
    term?.dispose()
    term = null
    search = null
  })

  return {
    write,
    clear,
    reset,
    focus: () => term?.focus(),
    fit,
    size: () => (term ? { cols: term.cols, rows: term.rows } : null),
    findNext: (t, o) => search?.findNext(t, { decorations: SEARCH_DECORATIONS, ...o }) ?? false,
    findPrevious: (t, o) => search?.findPrevious(t, { decorations: SEARCH_DECORATIONS, ...o }) ?? false,
    clearSearch: () => {
      search?.clearDecorations()
      term?.clearSelection()
    },
    selection: () => term?.getSelection() ?? '',
    paste: (text) => term?.paste(text)
  }
}
