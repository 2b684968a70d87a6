import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { RecordingInfo } from '../../../main/api/contract'
import { readToken, useClient } from '../api/client'
import { useLabStore } from './lab'
import { usePromptStore } from './prompt'

/**
 * The session library: every lab session the console recorded, newest first. Rename,
 * delete (confirmed), import a .ftrec file and export one. In browser mode the file goes
 * over the console's own HTTP server with this page's token (a download, an upload); in
 * the desktop app import and export take a path on this machine until a file dialog is added.
 */
export const useRecordingStore = defineStore('recordings', () => {
  const lab = useLabStore()
  const recordings = ref<RecordingInfo[]>([])
  const dir = ref('')
  const loading = ref(false)
  const error = ref<string | null>(null)
  /** what the last import or export did, in a line */
  const notice = ref<string | null>(null)
  const browser = useClient().transport === 'websocket'

  async function refresh(): Promise<void> {
    loading.value = true
    try {
      const r = await useClient().call('recording.list')
      recordings.value = r.recordings
      dir.value = r.dir
      error.value = null
    } catch (err) {
      error.value = `cannot list the recordings: ${err instanceof Error ? err.message : String(err)}`
    } finally {
      loading.value = false
    }
  }

  async function rename(name: string, to: string): Promise<boolean> {
    const r = await lab.act('recording.rename', () => useClient().call('recording.rename', { name, to }))
    await refresh()
    return r !== undefined
  }

  async function remove(name: string): Promise<void> {
    const ok = await usePromptStore().confirm({
      title: `Delete the recording ${name}?`,
      message: `The file ${name}.ftrec is removed from ${dir.value || 'the library'}. Export it first to keep a copy.`,
      confirmLabel: 'Delete'
    })
    if (!ok) return
    await lab.act('recording.delete', () => useClient().call('recording.delete', { name }))
    await refresh()
  }

  /** A .ftrec file the operator chose: uploaded to the console, checked there and added to the library. */
  async function importFile(file: File): Promise<void> {
    notice.value = null
    const as =
      file.name
        .replace(/\.ftrec$/i, '')
        .replace(/[^A-Za-z0-9_.-]/g, '-')
        .replace(/^[^A-Za-z0-9]+/, '') || 'imported'
    if (!browser) return importWithDialog()
    try {
      const res = await fetch(`/recordings?token=${encodeURIComponent(readToken())}&name=${encodeURIComponent(as)}`, { method: 'POST', body: file })
      const text = await res.text()
      if (!res.ok) throw new Error(text)
      const info = JSON.parse(text) as RecordingInfo
      notice.value = `imported ${file.name} as ${info.name}${info.problems.length ? ` (damaged: ${info.problems.join('; ')})` : ''}`
      lab.lastError = null
    } catch (err) {
      lab.reportError(`cannot import ${file.name}: ${err instanceof Error ? err.message : String(err)}`)
    }
    await refresh()
  }

  /** The desktop app: the console's native open dialog, then the import (nothing happens when cancelled). */
  async function importWithDialog(): Promise<void> {
    notice.value = null
    const info = await lab.act('recording.importDialog', () => useClient().call('recording.importDialog', {}))
    if (info) notice.value = `imported ${info.name}${info.problems.length ? ` (damaged: ${info.problems.join('; ')})` : ''}`
    await refresh()
  }

  /** Browser mode: a download link; the desktop app: a native save dialog. */
  async function exportRecording(name: string): Promise<void> {
    if (!browser) {
      const saved = await lab.act('recording.exportDialog', () => useClient().call('recording.exportDialog', { name }))
      if (saved) notice.value = `exported ${name} to ${saved.path}`
      return
    }
    const r = await lab.act('recording.export', () => useClient().call('recording.export', { name }))
    if (!r) return
    if (browser) {
      const a = document.createElement('a')
      a.href = `${r.download}?token=${encodeURIComponent(readToken())}`
      a.download = `${name}.ftrec`
      document.body.appendChild(a)
      a.click()
      a.remove()
      notice.value = `exporting ${name}.ftrec (your browser saves it)`
    }
  }

  /** Writes the recording's HTML report; browser mode opens it in a new tab, the desktop app says where it is. */
  async function report(name: string): Promise<void> {
    const r = await lab.act('recording.report', () => useClient().call('recording.report', { name }))
    if (!r) return
    if (browser) {
      window.open(`${r.view}?token=${encodeURIComponent(readToken())}`, '_blank', 'noopener')
      notice.value = `the report of ${name} opened in a new tab (also written to ${r.path})`
    } else notice.value = `the report is ${r.path}: open it in any browser`
  }

  return { recordings, dir, loading, error, notice, browser, refresh, rename, remove, importFile, importWithDialog, exportRecording, report }
})
