// Remembered secrets (SSH passwords, key passphrases) for the Electron console, encrypted by
// the OS through Electron's safeStorage (Keychain, DPAPI, libsecret/kwallet) and kept in
// ~/.ftlab/secrets.json (mode 0600) as ciphertext only. Used only when the operator ticks
// "remember"; when safeStorage has no real OS backend (Linux's "basic_text" fallback) nothing
// is kept, since that would be plain text with extra steps.
import { safeStorage } from 'electron'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { SecretStore } from '../console/prompts.js'

export class SafeStorageSecrets implements SecretStore {
  readonly canRemember: boolean
  private readonly file: string

  constructor(home: string) {
    this.file = join(home, 'secrets.json')
    const backend = process.platform === 'linux' ? safeStorage.getSelectedStorageBackend?.() : 'os'
    this.canRemember = safeStorage.isEncryptionAvailable() && backend !== 'basic_text'
  }

  get(key: string): string | null {
    if (!this.canRemember) return null
    const b64 = this.read()[key]
    if (typeof b64 !== 'string') return null
    try {
      return safeStorage.decryptString(Buffer.from(b64, 'base64'))
    } catch {
      // encrypted under another OS user or keyring: useless, forget it
      this.forget(key)
      return null
    }
  }

  remember(key: string, secret: string): void {
    if (!this.canRemember) return
    const all = this.read()
    all[key] = safeStorage.encryptString(secret).toString('base64')
    this.write(all)
  }

  forget(key: string): void {
    const all = this.read()
    if (!(key in all)) return
    delete all[key]
    this.write(all)
  }

  private read(): Record<string, unknown> {
    try {
      const v = JSON.parse(readFileSync(this.file, 'utf8')) as unknown
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {}
    } catch {
      return {}
    }
  }

  private write(all: Record<string, unknown>): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 })
    writeFileSync(this.file, JSON.stringify(all, null, 2) + '\n', { mode: 0o600 })
    chmodSync(this.file, 0o600)
  }
}
