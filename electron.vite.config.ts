import { resolve } from 'node:path'
import { defineConfig } from 'electron-vite'
import vue from '@vitejs/plugin-vue'

// Entries live at the top-level main/, preload/ and renderer/ folders (see DESIGN.md).
export default defineConfig({
  main: {
    build: { rollupOptions: { input: { index: resolve('main/electron/index.ts') } } }
  },
  preload: {
    // a sandboxed preload cannot be an ES module; package.json's "type": "module" would make it one
    build: { rollupOptions: { input: { index: resolve('preload/index.ts') }, output: { format: 'cjs' } } }
  },
  renderer: {
    root: 'renderer',
    build: { rollupOptions: { input: { index: resolve('renderer/index.html') } } },
    plugins: [vue()]
  }
})
