// The guest's sandbox: a node:vm context stripped of everything that would make two runs
// of the same inputs differ. node:vm is used for determinism, not security (DESIGN.md),
// but guests are written by lab users, so the sandbox must hold for careless guests too:
//
// - Nothing of the host's realm is reachable. A host function handed to the guest brings
//   its constructor, the host's `Function`, which compiles strings in the host's context
//   (`dev.mem.get.constructor('return process')()` reaches `process`, `Date`, `Math.random`).
//   So the devices the guest sees are frozen functions made *inside* the guest's realm; they
//   call the host only with primitives and get only primitives back, and a host error becomes
//   a fresh guest-realm error of the same kind. The context's global is backed by a
//   null-prototype object: a plain `{}` would make `globalThis.constructor` the host's Object.
// - Stacks show guest frames only, formatted by a fixed Error.prepareStackTrace that the guest
//   cannot replace: host frames differ between a primary (execute) and a backup (replay), and
//   show host paths.
// - Locale-dependent built-ins throw: their results follow the host's locale and ICU data.
// - A stack overflow cannot be made deterministic (the depth depends on the host's stack size
//   and on how far the JIT has optimised each frame), so the boundary notices every overflow
//   it can see (one that escapes a handler or passes through dev.atomic, or happens in device
//   code) and reports it; the VMM refuses the input on a primary and halts a backup (vmm.ts).
import vm from 'node:vm'
import { BLOCK_SIZE, type GuestDefinition } from '../guests/api.js'
import { respLibrary } from '../guests/resp.js'
import { serviceLibrary } from '../guests/service.js'

/** Globals a guest must not see: clocks, GC-observable objects, shared memory, locale data, output. */
export const REMOVED_GLOBALS = [
  'Date',
  'WeakRef',
  'FinalizationRegistry',
  'SharedArrayBuffer',
  'Atomics',
  'WebAssembly',
  'Intl',
  'console',
  // not in a fresh context today; removed anyway in case a Node version adds them
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'queueMicrotask',
  'process',
  'require',
  'module',
  'fetch',
  'performance',
  'structuredClone',
  'crypto',
  'navigator',
  'global'
]

/** Built-ins whose result depends on the host's locale or ICU data: they throw inside the guest. */
export const LOCALE_DEPENDENT = [
  'String.prototype.localeCompare',
  'String.prototype.toLocaleUpperCase',
  'String.prototype.toLocaleLowerCase',
  'Number.prototype.toLocaleString',
  'BigInt.prototype.toLocaleString',
  'Array.prototype.toLocaleString',
  'TypedArray.prototype.toLocaleString'
]

/** V8's message for a RangeError thrown when the stack runs out. */
export const STACK_OVERFLOW_MESSAGE = 'Maximum call stack size exceeded'

/** How many frames a guest error's stack keeps (counted before host frames are dropped). */
export const STACK_TRACE_LIMIT = 20

const GUEST_FILE_PREFIX = 'ftlab-guest-'

const HARDEN = `(function () {
  'use strict';
  const defineProperty = Object.defineProperty, apply = Reflect.apply, getPrototypeOf = Object.getPrototypeOf;
  const startsWith = String.prototype.startsWith, errorToString = Error.prototype.toString;
  for (const name of ${JSON.stringify(REMOVED_GLOBALS)}) delete globalThis[name];
  delete Math.random;
  const fixed = (o, k, v) => defineProperty(o, k, { value: v, writable: false, enumerable: false, configurable: false });
  const owners = { String: String.prototype, Number: Number.prototype, BigInt: BigInt.prototype, Array: Array.prototype, TypedArray: getPrototypeOf(Uint8Array.prototype) };
  for (const path of ${JSON.stringify(LOCALE_DEPENDENT)}) {
    const parts = path.split('.');
    const what = path.replace('.prototype', '');
    fixed(owners[parts[0]], parts[2], function () {
      throw new TypeError(what + " is not available to guests: its result depends on the host's locale and ICU data, which differ between primary and backup; format or compare it yourself");
    });
  }
  // Node formats a stack with Error.prepareStackTrace of the realm that made the error
  // (here, the guest's): keep guest frames only, so that a stack is the same on every replica.
  fixed(Error, 'prepareStackTrace', function (error, trace) {
    let text;
    try { text = apply(errorToString, error, []) } catch (e) { text = 'Error' }
    for (let i = 0; i < trace.length; i++) {
      const f = trace[i];
      const file = f.getFileName();
      if (typeof file !== 'string') continue; // a built-in's frame: shown by some Node versions, not by others
      if (file === 'ftlab-devices.js' || file === 'ftlab-sandbox.js') continue; // the sandbox's own guest-realm code
      if (!apply(startsWith, file, [${JSON.stringify(GUEST_FILE_PREFIX)}])) break; // the host's frames start here
      const fn = f.getFunctionName();
      const at = file + ':' + f.getLineNumber() + ':' + f.getColumnNumber();
      text += '\\n    at ' + (f.isAsync() ? 'async ' : '') + (typeof fn === 'string' && fn !== '' ? fn + ' (' + at + ')' : at);
    }
    return text;
  });
  fixed(Error, 'stackTraceLimit', ${STACK_TRACE_LIMIT});
  // Node looks the formatter up as globalThis.Error.prepareStackTrace: the binding must stay ours
  fixed(globalThis, 'Error', Error);
  // esbuild's keepNames puts __name(fn, "name") calls inside function bodies; the helper
  // itself stays outside the guest's source, so supply a harmless one.
  fixed(globalThis, '__name', function (f) { return f });
})()`

/**
 * The devices as the host implements them: primitives in, primitives out (mem.keys returns
 * a host array, copied inside the guest's realm). Any of them may throw; the guest sees a
 * guest-realm error with the same name and message.
 */
export interface HostDevices {
  memGet(key: string): string | undefined
  memHas(key: string): boolean
  memSet(key: string, value: string): void
  memDelete(key: string): void
  memKeys(prefix: string): string[]
  /** `afterSync`: held until that disk barrier completes (see GuestDevices.nic.send) */
  nicSend(conn: string, bytes: string, afterSync?: number): void
  nicClose(conn: string, afterSync?: number): void
  nicIsOpen(conn: string): boolean
  diskRead(block: number): number
  /** `offset`: an append at that offset of the block (see GuestDevices.disk.write); undefined: a whole-block write */
  diskWrite(block: number, bytes: string, offset?: number): void
  diskSync(): number
  clockNow(): number
  replicaInfo(): string
  randomU32(): number
  timerSet(id: number, ms: number): void
  timerCancel(id: number): void
  /** a point in the current input to roll back to (memory, outputs, I/O); for dev.atomic */
  mark(): number
  rollback(mark: number): void
  /** the host's own code ran out of stack while serving the guest during the current input */
  overflow(): void
}

// Guest-realm code between the guest and the host. Runs before any guest code, so the
// intrinsics it captures are the originals. It never applies anything the guest could
// have replaced to a host value: a guest-defined hook handed a host object would leak it.
const BOUNDARY = `(function (host, blockSize, overflowMessage) {
  'use strict';
  const freeze = Object.freeze, getPrototypeOf = Object.getPrototypeOf, getOwn = Object.getOwnPropertyDescriptor;
  const apply = Reflect.apply, then = Promise.prototype.then, PromiseProto = Promise.prototype;
  const RangeErrorProto = RangeError.prototype, GuestString = String;
  const E = { Error: Error, TypeError: TypeError, RangeError: RangeError, SyntaxError: SyntaxError, ReferenceError: ReferenceError, URIError: URIError, EvalError: EvalError };
  const takeError = host.takeError;
  const memGet = host.memGet, memHas = host.memHas, memSet = host.memSet, memDelete = host.memDelete, memKeys = host.memKeys;
  const nicSend = host.nicSend, nicClose = host.nicClose, nicIsOpen = host.nicIsOpen, diskRead = host.diskRead, diskWrite = host.diskWrite, diskSync = host.diskSync;
  const clockNow = host.clockNow, replicaInfo = host.replicaInfo, randomU32 = host.randomU32, timerSet = host.timerSet, timerCancel = host.timerCancel;
  const mark = host.mark, rollback = host.rollback;

  // set without a call, so that it cannot fail when the stack is exhausted; the host reads it after each handler
  let overflowed = false;
  const isOverflow = (e) => {
    if (e === null || typeof e !== 'object' || getPrototypeOf(e) !== RangeErrorProto) return false;
    const d = getOwn(e, 'message');
    return d !== undefined && d.value === overflowMessage;
  };
  const note = (e) => { try { if (isOverflow(e)) overflowed = true } catch (_) { overflowed = true } };

  // What the host threw, remade in this realm. An empty description means the call failed at
  // the boundary itself, which only running out of stack does: V8 then throws a RangeError
  // of the *host's* realm, which must never reach the guest.
  const remake = () => {
    let d = '';
    try { d = takeError() } catch (_) { d = '' }
    if (d === '') { overflowed = true; throw new RangeError(overflowMessage) }
    const nl = d.indexOf('\\n');
    const name = d.slice(0, nl), C = name === 'TypeError' ? E.TypeError : name === 'RangeError' ? E.RangeError : name === 'SyntaxError' ? E.SyntaxError
      : name === 'ReferenceError' ? E.ReferenceError : name === 'URIError' ? E.URIError : name === 'EvalError' ? E.EvalError : E.Error;
    return new C(d.slice(nl + 1));
  };
  // only primitives cross to the host: a guest object there would run guest code from host frames
  const prim = (x, what) => {
    if (x !== null && (typeof x === 'object' || typeof x === 'function')) throw new TypeError(what + ': expected a string or a number, got ' + (typeof x === 'function' ? 'a function' : 'an object'));
    return x;
  };
  const str = (x, what) => '' + prim(x, what);
  const h0 = (f) => { try { return f() } catch (_) { throw remake() } };
  const h1 = (f, a) => { try { return f(a) } catch (_) { throw remake() } };
  const h2 = (f, a, b) => { try { return f(a, b) } catch (_) { throw remake() } };
  const h3 = (f, a, b, c) => { try { return f(a, b, c) } catch (_) { throw remake() } };

  const dev = freeze({
    mem: freeze({
      get: function get(k) { return h1(memGet, str(k, 'mem.get key')) },
      has: function has(k) { return h1(memHas, str(k, 'mem.has key')) },
      set: function set(k, v) { return void h2(memSet, prim(k, 'mem.set key'), prim(v, 'mem.set value')) },
      delete: function (k) { return void h1(memDelete, str(k, 'mem.delete key')) },
      keys: function keys(prefix) {
        const found = h1(memKeys, GuestString(prim(prefix, 'mem.keys prefix')));
        const out = [];
        for (let i = 0, n = found.length; i < n; i++) out[i] = found[i];
        return out;
      }
    }),
    nic: freeze({
      send: function send(conn, bytes, afterSync) {
        return void (afterSync === undefined ? h2(nicSend, str(conn, 'nic.send connection'), prim(bytes, 'nic.send bytes')) : h3(nicSend, str(conn, 'nic.send connection'), prim(bytes, 'nic.send bytes'), prim(afterSync, 'nic.send afterSync')))
      },
      close: function close(conn, afterSync) {
        return void (afterSync === undefined ? h1(nicClose, str(conn, 'nic.close connection')) : h2(nicClose, str(conn, 'nic.close connection'), prim(afterSync, 'nic.close afterSync')))
      },
      isOpen: function isOpen(conn) { return h1(nicIsOpen, str(conn, 'nic.isOpen connection')) }
    }),
    disk: freeze({
      blockSize: blockSize,
      read: function read(block) { return h1(diskRead, prim(block, 'disk.read block')) },
      write: function write(block, bytes, offset) {
        return void (offset === undefined ? h2(diskWrite, prim(block, 'disk.write block'), prim(bytes, 'disk.write bytes')) : h3(diskWrite, prim(block, 'disk.write block'), prim(bytes, 'disk.write bytes'), prim(offset, 'disk.write offset')))
      },
      sync: function sync() { return h0(diskSync) }
    }),
    clock: freeze({ now: function now() { return h0(clockNow) } }),
    replica: freeze({ info: function info() { return h0(replicaInfo) } }),
    random: freeze({ u32: function u32() { return h0(randomU32) } }),
    timer: freeze({
      set: function set(id, ms) { return void h2(timerSet, prim(id, 'timer.set id'), prim(ms, 'timer.set ms')) },
      cancel: function cancel(id) { return void h1(timerCancel, prim(id, 'timer.cancel id')) }
    }),
    atomic: function atomic(fn) {
      if (typeof fn !== 'function') throw new TypeError('atomic: expected a function, got ' + (fn === null ? 'null' : typeof fn));
      const m = h0(mark);
      try {
        return fn();
      } catch (e) {
        note(e);
        h1(rollback, m);
        throw e;
      }
    }
  });

  let guest = null, args = null, fault = null;
  const describe = (e) => {
    try {
      const m = e !== null && (typeof e === 'object' || typeof e === 'function') && 'message' in e ? e.message : e;
      return GuestString(m);
    } catch (_) {
      return 'the guest threw a value that cannot be turned into a message';
    }
  };
  const failed = (e) => { note(e); if (fault === null) fault = describe(e) };
  const run = function () {
    if (args === null) return;
    const h = args[0], a = args[1], b = args[2], c = args[3];
    args = null;
    const f = guest[h];
    if (typeof f !== 'function') return;
    try {
      const r = apply(f, guest, [a, b, c]);
      // an async handler's rejection is a fault of the same input: its jobs run before the host looks
      if (r !== null && typeof r === 'object' && getPrototypeOf(r) === PromiseProto) apply(then, r, [undefined, failed]);
    } catch (e) {
      failed(e);
    }
  };
  // the only global the boundary adds, fixed before any guest code runs; a guest that calls it runs nothing
  Object.defineProperty(globalThis, '__ftlabRun', { value: function __ftlabRun() { run() }, writable: false, enumerable: false, configurable: false });
  return freeze({
    dev: dev,
    adopt: function (g) { guest = g },
    /** the arguments for the next run of the dispatch script */
    next: function (h, a, b, c) { args = [h, a, b, c]; overflowed = false; fault = null },
    /** after the script and its promise jobs: '<overflowed 0|1><failed 0|1><message>' */
    result: function () { return (overflowed ? '1' : '0') + (fault === null ? '0' : '1' + fault) }
  });
})`

export interface CallResult {
  /** the handler threw (or its promise rejected): the message */
  fault: string | null
  /** the guest, or the host serving it, ran out of stack during this call */
  overflow: boolean
}

export interface Sandbox {
  /** Call a guest handler (boot, open, data, close, diskRead, timer); a missing one is a no-op. */
  call(handler: string, a?: unknown, b?: unknown, c?: unknown): CallResult
}

interface Boundary {
  dev: unknown
  adopt(guest: unknown): void
  next(handler: string, a: unknown, b: unknown, c: unknown): void
  result(): string
}

export function isStackOverflow(e: unknown): boolean {
  return e instanceof RangeError && e.message === STACK_OVERFLOW_MESSAGE
}

export function createSandbox(def: GuestDefinition, host: HostDevices): Sandbox {
  // afterEvaluate: promises a guest creates settle before call() returns, never between
  // two inputs, so async code in a guest stays inside the input that started it.
  const ctx = vm.createContext(Object.create(null) as object, {
    name: `ftlab guest ${def.name}`,
    codeGeneration: { strings: false, wasm: false },
    microtaskMode: 'afterEvaluate'
  })
  vm.runInContext(HARDEN, ctx, { filename: 'ftlab-sandbox.js' })

  // The host side of the boundary: whatever a device throws is described for the guest's
  // side to remake, and a host stack overflow is reported even if the guest swallows the error.
  let pending = ''
  const failed = (e: unknown): void => {
    pending = e instanceof Error ? `${e.name}\n${e.message}` : `Error\n${String(e)}`
    if (isStackOverflow(e)) host.overflow()
  }
  // Devices take two arguments (disk.write and nic.send three): a fixed-arity wrapper, called several times per
  // command, spares the rest array and the spread that a variadic one costs on each call.
  const guard =
    <A, B, R>(f: (a: A, b: B) => R) =>
    (a: A, b: B): R => {
      try {
        return f(a, b)
      } catch (e) {
        failed(e)
        throw e
      }
    }
  const guard3 =
    <A, B, C, R>(f: (a: A, b: B, c: C) => R) =>
    (a: A, b: B, c: C): R => {
      try {
        return f(a, b, c)
      } catch (e) {
        failed(e)
        throw e
      }
    }
  const bridge = {
    takeError: (): string => {
      const d = pending
      pending = ''
      return d
    },
    memGet: guard(host.memGet),
    memHas: guard(host.memHas),
    memSet: guard(host.memSet),
    memDelete: guard(host.memDelete),
    memKeys: guard(host.memKeys),
    nicSend: guard3(host.nicSend),
    nicClose: guard(host.nicClose),
    nicIsOpen: guard(host.nicIsOpen),
    diskRead: guard(host.diskRead),
    diskWrite: guard3(host.diskWrite),
    diskSync: guard(host.diskSync),
    clockNow: guard(host.clockNow),
    replicaInfo: guard(host.replicaInfo),
    randomU32: guard(host.randomU32),
    timerSet: guard(host.timerSet),
    timerCancel: guard(host.timerCancel),
    mark: guard(host.mark),
    rollback: guard(host.rollback)
  }
  const connect = vm.runInContext(BOUNDARY, ctx, { filename: 'ftlab-devices.js' }) as (h: typeof bridge, blockSize: number, overflow: string) => Boundary
  const boundary = connect(bridge, BLOCK_SIZE, STACK_OVERFLOW_MESSAGE)

  const factorySource = def.factory.toString()
  if (!/^(async\s+)?(function\b|\()/.test(factorySource) && !/^[A-Za-z_$][\w$]*\s*=>/.test(factorySource)) {
    throw new Error(`guest '${def.name}': its factory must be a function expression or arrow function (method shorthand cannot be evaluated on its own)`)
  }
  const install = `(function (dev) {
  'use strict';
  const resp = (${respLibrary.toString()})();
  const service = (${serviceLibrary.toString()})(resp);
  const guest = (${factorySource})(dev, Object.freeze({ resp: resp, service: service }));
  if (guest === null || typeof guest !== 'object') throw new TypeError('guest factory returned ' + guest + ', not an object of handlers');
  return guest;
})`
  let installer: (dev: unknown) => unknown
  try {
    installer = vm.runInContext(install, ctx, { filename: `${GUEST_FILE_PREFIX}${def.name}.js` }) as (dev: unknown) => unknown
  } catch (e) {
    throw new Error(`guest '${def.name}' does not compile in the sandbox: ${(e as Error).message}`, { cause: e })
  }
  boundary.adopt(installer(boundary.dev))
  const callScript = new vm.Script('__ftlabRun()', { filename: 'ftlab-dispatch.js' })

  return {
    call(handler, a, b, c) {
      boundary.next(handler, a, b, c)
      pending = ''
      try {
        callScript.runInContext(ctx)
      } catch (e) {
        // the dispatch catches everything the guest throws; only a stack already exhausted before the guest ran gets here
        if (isStackOverflow(e)) return { fault: STACK_OVERFLOW_MESSAGE, overflow: true }
        throw e
      }
      const r = boundary.result()
      return { overflow: r[0] === '1', fault: r[1] === '1' ? r.slice(2) : null }
    }
  }
}
