// A client history, Jepsen-style: every invocation and its completion, for the checkers.
export type OpKind = 'set' | 'get' | 'incr'

/**
 * ok:      the service answered; the effect happened (for set/incr) exactly once.
 * fail:    the guest answered with an error; the effect did not happen.
 * unknown: no answer before the client gave up; the effect may or may not have happened,
 *          possibly later than the give-up time.
 */
export type OpStatus = 'ok' | 'fail' | 'unknown'

export interface HistoryOp {
  client: string
  seq: number
  op: OpKind
  key: string
  /** the value written by a set */
  value?: string
  /** console clock (ms, performance.timeOrigin-based) */
  invokeMs: number
  /** null when the status is unknown */
  completeMs: number | null
  status: OpStatus
  /** get: the value read (null = no such key); incr: the new counter value */
  result?: string | number | null
  error?: string
  /** the service address that answered, 'host:port' */
  target?: string
}

/** The values read at the end of a run, one per key; a key missing here could not be read. */
export type FinalRead = Map<string, string | null>
