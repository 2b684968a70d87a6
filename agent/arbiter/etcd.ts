// The test-and-set tie-breaker on an etcd cluster, for labs that do not want the disk
// server to be the single point of failure (DESIGN.md: "the tie-breaker is pluggable").
//
// One key per generation, <prefix>/gen/<gen>. The test-and-set is one etcd transaction:
// if the key was never created (create_revision == 0) put our id into it, else read it.
// etcd commits the transaction through raft, so exactly one contender's put succeeds per
// generation, on any member. Asking again is safe: a contender whose answer was lost (a
// timeout, then the next endpoint) reads its own id back and hears "won" again.
//
// Spoken over the grpc-gateway's JSON API (POST /v3/kv/txn, keys and values in base64),
// with node:http only, so the agent stays dependency-free. The answer is shaped like the
// disk server's (DiskRes) so the replica runtime uses either without knowing which.
import { createHash } from 'node:crypto'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { DiskReq, DiskRes, ReplicaId } from '../replica/types.js'

export interface EtcdArbiterOptions {
  /** client URLs of the cluster's members, e.g. http://10.87.0.13:2379; tried in turn */
  endpoints: string[]
  /** key prefix; default "ftlab" (keys are <prefix>/gen/<gen>) */
  prefix?: string
  /** per request, ms; default 1000 */
  timeoutMs?: number
  /** the gateway's path prefix: /v3 for etcd 3.4 and later (default), /v3beta for 3.3 */
  apiPrefix?: string
}

/**
 * etcd keys outlive a lab: each lab session gets keys of its own, named after its lab key
 * (hashed: the key itself is a secret), so generation 1 of a new lab is not already won.
 */
export function etcdPrefixForLab(labKey: Uint8Array): string {
  return `ftlab/${createHash('sha256').update(labKey).digest('hex').slice(0, 16)}`
}

export type TasVerdict = 'won' | 'lost' | 'unreachable' | 'bad-request'

/** A DiskRes with the verdict spelled out: an unreachable cluster is an 'io' error, and nobody goes live on it. */
export type EtcdTasAnswer = DiskRes & { verdict: TasVerdict }

const MAX_BODY = 1 << 20

interface Endpoint {
  url: URL
  label: string
}

export class EtcdArbiter {
  private readonly endpoints: Endpoint[]
  private readonly prefix: string
  private readonly timeoutMs: number
  private readonly apiPrefix: string
  /** start with the member that answered last */
  private preferred = 0

  constructor(opts: EtcdArbiterOptions) {
    if (typeof opts !== 'object' || opts === null) throw new Error('EtcdArbiter: options must be an object')
    if (!Array.isArray(opts.endpoints) || opts.endpoints.length === 0)
      throw new Error('EtcdArbiter: endpoints must list at least one client URL, e.g. http://127.0.0.1:2379')
    this.endpoints = opts.endpoints.map((e, i) => {
      let url: URL
      try {
        url = new URL(e)
      } catch {
        throw new Error(`EtcdArbiter: endpoints[${i}] is not a URL: ${JSON.stringify(e)}`)
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:')
        throw new Error(`EtcdArbiter: endpoints[${i}] must be http:// or https://, got ${JSON.stringify(e)}`)
      return { url, label: url.host }
    })
    const prefix = opts.prefix ?? 'ftlab'
    if (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > 200 || prefix.endsWith('/'))
      throw new Error(`EtcdArbiter: prefix must be 1 to 200 characters, not ending in '/', got ${JSON.stringify(prefix)}`)
    this.prefix = prefix
    const t = opts.timeoutMs ?? 1000
    if (!Number.isInteger(t) || t < 1 || t > 60_000) throw new Error(`EtcdArbiter: timeoutMs must be an integer 1..60000, got ${String(t)}`)
    this.timeoutMs = t
    this.apiPrefix = (opts.apiPrefix ?? '/v3').replace(/\/$/, '')
  }

  keyFor(gen: number): string {
    return `${this.prefix}/gen/${gen}`
  }

  /** Serve a disk request: only 'tas' makes sense here; the rest of the disk protocol stays with the disk server. */
  async handle(req: DiskReq): Promise<EtcdTasAnswer> {
    const id = typeof (req as { id?: unknown } | null)?.id === 'number' ? req.id : 0
    if (req?.op !== 'tas')
      return {
        id,
        ok: false,
        error: 'bad-request',
        message: `the etcd tie-breaker answers only test-and-set, not ${JSON.stringify((req as { op?: unknown } | null)?.op)}`,
        verdict: 'bad-request'
      }
    return this.tas(req.gen, req.from, id)
  }

  /** Test-and-set for generation `gen` on behalf of replica `from`. Never throws. */
  async tas(gen: number, from: ReplicaId, id = 0): Promise<EtcdTasAnswer> {
    if (typeof gen !== 'number' || !Number.isSafeInteger(gen) || gen < 0)
      return { id, ok: false, error: 'bad-request', message: `tas.gen must be a non-negative integer, got ${String(gen)}`, verdict: 'bad-request' }
    if (typeof from !== 'string' || from.length === 0 || from.length > 128)
      return {
        id,
        ok: false,
        error: 'bad-request',
        message: `tas.from must be a replica id (1 to 128 characters), got ${JSON.stringify(from)}`,
        verdict: 'bad-request'
      }
    const key = b64(this.keyFor(gen))
    const body = JSON.stringify({
      compare: [{ key, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      success: [{ request_put: { key, value: b64(from) } }],
      failure: [{ request_range: { key } }]
    })
    const failures: string[] = []
    for (let k = 0; k < this.endpoints.length; k++) {
      const i = (this.preferred + k) % this.endpoints.length
      const ep = this.endpoints[i]
      let res: unknown
      try {
        res = await this.post(ep, '/kv/txn', body)
      } catch (err) {
        failures.push(`${ep.label}: ${(err as Error).message}`)
        continue
      }
      this.preferred = i
      let winner: string | null
      try {
        winner = winnerOf(res, from)
      } catch (err) {
        failures.push(`${ep.label}: ${(err as Error).message}`)
        continue
      }
      if (winner === from) return { id, ok: true, winner: from, verdict: 'won' }
      return {
        id,
        ok: false,
        error: 'tas-lost',
        message: `test-and-set for generation ${gen} already won by ${winner} (etcd key ${this.keyFor(gen)})`,
        winner,
        verdict: 'lost'
      }
    }
    return {
      id,
      ok: false,
      error: 'io',
      message: `etcd unreachable, no test-and-set verdict for generation ${gen}: ${failures.join('; ')}`,
      verdict: 'unreachable'
    }
  }

  private post(ep: Endpoint, path: string, body: string): Promise<unknown> {
    const url = new URL(ep.url.pathname.replace(/\/$/, '') + this.apiPrefix + path, ep.url)
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest
    return new Promise((resolve, reject) => {
      let settled = false
      const done = (err: Error | null, value?: unknown) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (err) {
          req.destroy()
          reject(err)
        } else resolve(value)
      }
      const req = send(
        url,
        { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (c: Buffer) => {
            size += c.length
            if (size > MAX_BODY) done(new Error(`answer larger than ${MAX_BODY} bytes`))
            else chunks.push(c)
          })
          res.on('error', (e) => done(e))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            let json: unknown
            try {
              json = JSON.parse(text)
            } catch {
              return done(new Error(`HTTP ${res.statusCode}, not JSON: ${text.slice(0, 120)}`))
            }
            if (res.statusCode !== 200) {
              const msg = (json as { message?: unknown; error?: unknown }).message ?? (json as { error?: unknown }).error ?? text.slice(0, 120)
              return done(new Error(`HTTP ${res.statusCode}: ${String(msg)}`))
            }
            done(null, json)
          })
        }
      )
      const timer = setTimeout(() => done(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs)
      req.on('error', (e: NodeJS.ErrnoException) => done(new Error(socketWords(e))))
      req.end(body)
    })
  }
}

/** The id stored under the generation's key after our transaction: ours if the put ran, else what the range read. */
function winnerOf(res: unknown, from: string): string {
  const r = res as { succeeded?: unknown; responses?: { response_range?: { kvs?: { value?: unknown }[] } }[] }
  if (typeof r !== 'object' || r === null) throw new Error('txn answer is not an object')
  // the gateway omits false booleans: "succeeded" is absent when the compare failed
  if (r.succeeded === true) return from
  const kv = r.responses?.[0]?.response_range?.kvs?.[0]
  if (!kv || typeof kv.value !== 'string') throw new Error(`txn answer has neither a successful put nor the key's value: ${JSON.stringify(res).slice(0, 200)}`)
  const winner = Buffer.from(kv.value, 'base64').toString('utf8')
  if (winner.length === 0) throw new Error('the generation key holds an empty replica id')
  return winner
}

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64')
}

function socketWords(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused'
    case 'ECONNRESET':
      return 'connection reset'
    case 'EHOSTUNREACH':
      return 'host unreachable'
    case 'ENETUNREACH':
      return 'network unreachable'
    case 'ENOTFOUND':
      return 'host name not found'
    default:
      return e.message
  }
}
