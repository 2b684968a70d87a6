/// <reference types="vite/client" />
import type { FtlabBridge } from '../../main/api/contract'

declare module '*.vue' {
  import type { DefineComponent } from 'vue'
  const component: DefineComponent<object, object, unknown>
  export default component
}

declare global {
  interface Window {
    /** present only inside the Electron shell (preload/index.ts) */
    ftlab?: FtlabBridge
  }
}
