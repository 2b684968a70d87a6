// Questions for the operator: an unknown host key (accept or refuse, shown with its SHA256
// fingerprint) and a password or key passphrase. Each is a `prompt` event that the page
// answers with prompt.answer; `prompt-done` tells every page the question is settled.
//
// A changed host key is never asked: the SSH layer refuses it and the deploy fails for that
// host with the explanation (old and new fingerprint, how to fix known_hosts).
//
// Secrets: never logged, never in an event, never in the renderer's state (the page sends
// the answer and forgets it). They are kept only when the operator ticks "remember" and the
// console can keep them safely (Electron's safeStorage, behind SecretStore); browser mode
// never keeps them.
import { randomBytes } from 'node:crypto'
import { ApiError, type Prompt, type PromptAnswerParams } from '../api/contract.js'
import type { UnnumberedEvent } from '../api/event-log.js'
import type { HostKeyPrompt, SecretSource } from '../ssh/connection.js'

/** Where remembered secrets live: Electron's safeStorage (main/electron), or nowhere. */
export interface SecretStore {
  /** true only where secrets can be kept encrypted by the OS (Electron with safeStorage) */
  readonly canRemember: boolean
  get(key: string): string | null
  remember(key: string, secret: string): void
  forget(key: string): void
}

/** Browser mode: nothing is ever kept. */
export const forgetfulSecretStore: SecretStore = {
  canRemember: false,
  get: () => null,
  remember: () => {},
  forget: () => {}
}

export type PromptAnswer = { accept: boolean; secret?: string; remember: boolean }

type PromptBody = Prompt extends infer P ? (P extends Prompt ? Omit<P, 'id'> : never) : never

interface Open {
  prompt: Prompt
  settle: (a: PromptAnswer | null) => void
  timer: ReturnType<typeof setTimeout>
  scope?: PromptScope
}

/**
 * The questions of one lab's connections. The console closes it when it lets go of the lab
 * (detach, teardown, a failed deploy, quitting): the questions still open are withdrawn, and
 * one asked later (a reconnect that was already under way) is answered "no" at once instead of
 * being shown to an operator who has moved on.
 */
export class PromptScope {
  private shut = false
  readonly open = new Set<string>()

  constructor(private readonly onClose: (scope: PromptScope) => void) {}

  get closed(): boolean {
    return this.shut
  }

  close(): void {
    if (this.shut) return
    this.shut = true
    this.onClose(this)
  }
}

export const PROMPT_TIMEOUT_MS = 5 * 60_000

export class Prompts {
  private readonly open = new Map<string, Open>()

  constructor(
    private readonly sink: { publish(ev: UnnumberedEvent): void },
    readonly store: SecretStore = forgetfulSecretStore,
    private readonly timeoutMs = PROMPT_TIMEOUT_MS
  ) {}

  /** The questions not answered yet (a reloaded page shows them again). */
  pending(): Prompt[] {
    return [...this.open.values()].map((o) => ({ ...o.prompt }))
  }

  /** A scope for one lab's questions (see PromptScope). */
  scope(): PromptScope {
    return new PromptScope((s) => {
      for (const id of [...s.open]) this.settle(id, null, 'refused')
    })
  }

  /** Ask the operator; null when nobody answers in time, the question is withdrawn, or its scope is closed. */
  ask(body: PromptBody, scope?: PromptScope): Promise<PromptAnswer | null> {
    if (scope?.closed) return Promise.resolve(null)
    const id = `p${randomBytes(6).toString('hex')}`
    const prompt = { ...body, id } as Prompt
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(id, null, 'timeout'), this.timeoutMs)
      timer.unref?.()
      scope?.open.add(id)
      this.open.set(id, { prompt, settle: resolve, timer, ...(scope ? { scope } : {}) })
      this.sink.publish({ ts: Date.now(), topic: 'prompt', prompt })
    })
  }

  answer(p: PromptAnswerParams): { ok: true } {
    const o = this.open.get(p.id)
    if (!o) throw new ApiError('conflict', `prompt.answer: no open question ${JSON.stringify(p.id)} (it was answered, withdrawn or timed out)`)
    if (p.accept === undefined && p.secret === undefined) throw new ApiError('bad-request', 'prompt.answer needs accept (true or false) or a secret')
    if (o.prompt.kind === 'host-key' && p.secret !== undefined)
      throw new ApiError('bad-request', 'prompt.answer: a host-key question takes accept, not a secret')
    const accept = p.accept ?? true
    this.settle(
      p.id,
      { accept, ...(accept && p.secret !== undefined ? { secret: p.secret } : {}), remember: p.remember === true },
      accept ? 'accepted' : 'refused'
    )
    return { ok: true }
  }

  /** Withdraw every open question (the deploy they belong to ended). */
  withdrawAll(): void {
    for (const id of [...this.open.keys()]) this.settle(id, null, 'refused')
  }

  private settle(id: string, a: PromptAnswer | null, answer: 'accepted' | 'refused' | 'timeout'): void {
    const o = this.open.get(id)
    if (!o) return
    this.open.delete(id)
    o.scope?.open.delete(id)
    clearTimeout(o.timer)
    this.sink.publish({ ts: Date.now(), topic: 'prompt-done', id, answer })
    o.settle(a)
  }

  /** For RemoteLab: asks about an unknown host key; true records it in FT Lab's known_hosts. */
  confirmHostKey = async (p: HostKeyPrompt & { slot: string }, scope?: PromptScope): Promise<boolean> => {
    const a = await this.ask({ kind: 'host-key', slot: p.slot, host: p.host, port: p.port, keyType: p.keyType, fingerprint: p.fingerprint }, scope)
    return a?.accept === true
  }

  /**
   * For the hosts' SSH connections: a password or passphrase from the store (first attempt
   * only: a remembered secret that fails is forgotten), else asked. `slotOf` names the lab
   * slot a host address plays, for the question.
   */
  secretsFor(slotOf: (host: string) => string, scope?: PromptScope): SecretSource {
    const ask = async (key: string, body: PromptBody, attempt: number): Promise<string | null> => {
      if (attempt === 1) {
        const kept = this.store.get(key)
        if (kept !== null) return kept
      } else this.store.forget(key)
      const a = await this.ask(body, scope)
      if (!a || !a.accept || a.secret === undefined) return null
      if (a.remember && this.store.canRemember) this.store.remember(key, a.secret)
      return a.secret
    }
    return {
      password: (r) =>
        ask(
          `password:${r.user}@${r.host}:${r.port}`,
          { kind: 'secret', slot: slotOf(r.host), host: r.host, user: r.user, what: 'password', keyPath: null, canRemember: this.store.canRemember },
          r.attempt
        ),
      passphrase: (r) =>
        ask(
          `passphrase:${r.keyPath}`,
          { kind: 'secret', slot: slotOf(r.host), host: r.host, user: r.user, what: 'passphrase', keyPath: r.keyPath, canRemember: this.store.canRemember },
          r.attempt
        )
    }
  }
}
