// The desktop app's native file dialogs for recording import and export (browser mode uploads
// and downloads instead). Only the choice of a path happens here; the backend imports or
// copies (main/record/playback.ts), so everything but the dialog itself is tested without
// Electron. `dialog` and the window come in as parameters for the same reason.
import type { BrowserWindow, Dialog } from 'electron'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { RecordingDialogs } from '../record/playback.js'

const FILTERS = [{ name: 'FT Lab recordings', extensions: ['ftrec'] }]

export function recordingDialogs(
  dialog: Pick<Dialog, 'showOpenDialog' | 'showSaveDialog'>,
  window: () => BrowserWindow | null,
  downloads: () => string = () => join(homedir(), 'Downloads')
): RecordingDialogs {
  return {
    async open() {
      const opts = { title: 'Import a recording', filters: FILTERS, properties: ['openFile' as const] }
      const win = window()
      const r = win ? await dialog.showOpenDialog(win, opts) : await dialog.showOpenDialog(opts)
      return r.canceled || r.filePaths.length === 0 ? null : r.filePaths[0]
    },
    async save(name) {
      const opts = {
        title: `Export recording ${name}`,
        defaultPath: join(downloads(), `${name}.ftrec`),
        filters: FILTERS,
        properties: ['createDirectory' as const, 'showOverwriteConfirmation' as const]
      }
      const win = window()
      const r = win ? await dialog.showSaveDialog(win, opts) : await dialog.showSaveDialog(opts)
      return r.canceled || !r.filePath ? null : r.filePath
    }
  }
}
