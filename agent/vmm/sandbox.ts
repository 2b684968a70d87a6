// The guest's sandbox: a node:vm context stripped of everything that would make two runs
// of the same inputs differ. node:vm is used for determinism, not security (DESIGN.md):
// guests are the lab's own code.
import vm from 'node:vm'
import type { GuestDefinition, GuestDevices } from '../guests/api.js'
import { respLibrary } from '../guests/resp.js'
import { serviceLibrary } from '../guests/service.js'

/** Globals a guest must not see: clocks, GC-observable objects, shared memory, locale data, output. */
export const REMOVED_GLOBALS = [
  'Date', 'WeakRef', 'FinalizationRegistry', 'SharedArrayBuffer', 'Atomics', 'WebAssembly', 'Intl', 'console',
  // not in a fresh context today; removed anyway in case a Node version adds them
  'setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask',
  'process', 'require', 'module', 'fetch', 'performance', 'structuredClone', 'crypto', 'navigator', 'global'
]

// Locale-dependent comparisons give different answers on hosts with different ICU data.
const HARDEN = `(function () {
  'use strict';
  for (const name of ${JSON.stringify(REMOVED_GLOBALS)}) delete globalThis[name];
  delete Math.random;
  const unavailable = (what) => function () { throw new TypeError(what + ' is not available to guests: it depends on the host') };
  Object.defineProperty(String.prototype, 'localeCompare', { value: unavailable('String.prototype.localeCompare'), writable: false, configurable: false });
  // esbuild's keepNames puts __name(fn, "name") calls inside function bodies; the helper
  // itself stays outside the guest's source, so supply a harmless one.
  Object.defineProperty(globalThis, '__name', { value: function (f) { return f }, writable: false, configurable: false });
})()`

export interface Sandbox {
  /** Call a guest handler (boot, open, data, close, diskRead, timer); a missing one is a no-op. */
  call(handler: string, a?: unknown, b?: unknown, c?: unknown): void
}

export function createSandbox(def: GuestDefinition, dev: GuestDevices): Sandbox {
  // afterEvaluate: promises a guest creates settle before call() returns, never between
  // two inputs, so async code in a guest stays inside the input that started it.
  const ctx = vm.createContext(
    {},
    { name: `ftlab guest ${def.name}`, codeGeneration: { strings: false, wasm: false }, microtaskMode: 'afterEvaluate' }
  )
  vm.runInContext(HARDEN, ctx, { filename: 'ftlab-sandbox.js' })

  const factorySource = def.factory.toString()
  if (!/^(async\s+)?(function\b|\()/.test(factorySource) && !/^[A-Za-z_$][\w$]*\s*=>/.test(factorySource)) {
    throw new Error(`guest '${def.name}': its factory must be a function expression or arrow function (method shorthand cannot be evaluated on its own)`)
  }
  const install = `(function (dev) {
  'use strict';
  const resp = (${respLibrary.toString()})();
  const service = (${serviceLibrary.toString()})(resp);
  const guest = (${factorySource})(dev, { resp: resp, service: service });
  if (guest === null || typeof guest !== 'object') throw new TypeError('guest factory returned ' + guest + ', not an object of handlers');
  const dispatch = function (h, a, b, c) {
    const f = guest[h];
    if (typeof f === 'function') f.call(guest, a, b, c);
  };
  Object.defineProperty(globalThis, '__ftlabDispatch', { value: dispatch, writable: false, configurable: false });
})`
  let installer: (d: GuestDevices) => void
  try {
    installer = vm.runInContext(install, ctx, { filename: `ftlab-guest-${def.name}.js` }) as (d: GuestDevices) => void
  } catch (e) {
    throw new Error(`guest '${def.name}' does not compile in the sandbox: ${(e as Error).message}`, { cause: e })
  }
  installer(dev)

  const callScript = new vm.Script('__ftlabDispatch(__ftlabIn[0], __ftlabIn[1], __ftlabIn[2], __ftlabIn[3])', {
    filename: 'ftlab-dispatch.js'
  })
  const slot = ctx as { __ftlabIn?: unknown[] }
  return {
    call(handler, a, b, c) {
      slot.__ftlabIn = [handler, a, b, c]
      try {
        callScript.runInContext(ctx)
      } finally {
        slot.__ftlabIn = undefined
      }
    }
  }
}
