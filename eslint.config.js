// ESLint for the whole tree: JS and TypeScript recommended rules (not type-checked: `npm run
// typecheck` already runs tsc, and type-aware linting costs too much on every `npm test`), Vue's
// recommended rules for the renderer's components, and FT Lab's layering (lint/layering.js).
// Formatting is Prettier's job (.prettierrc.json): no layout rules here.
import js from '@eslint/js'
import { defineConfig, globalIgnores } from 'eslint/config'
import pluginVue from 'eslint-plugin-vue'
import globals from 'globals'
import tseslint from 'typescript-eslint'
import { layeringConfigs } from './lint/layering.js'

export default defineConfig([
  globalIgnores(['out/', 'dist/', 'coverage/', 'test-results/', 'screenshots/', '.ftlab/', '**/*.d.ts.map']),

  js.configs.recommended,
  tseslint.configs.recommended,
  pluginVue.configs['flat/recommended'],
  {
    name: 'ftlab/vue',
    files: ['**/*.vue'],
    languageOptions: { parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.vue'] } },
    rules: {
      ...pluginVue.configs['no-layout-rules'].rules,
      // vue-tsc checks names in .vue files, as tsc does in .ts files
      'no-undef': 'off'
    }
  },

  // which globals exist where: Node for the agent, the console core, scripts and tests; the
  // browser for the renderer; the sandboxed preload has the browser's plus a limited `process`
  {
    name: 'ftlab/globals-node',
    files: ['**/*.{ts,mts,cts,js,mjs,cjs}'],
    ignores: ['renderer/**', 'preload/**'],
    languageOptions: { globals: { ...globals.node } }
  },
  { name: 'ftlab/globals-browser', files: ['renderer/**'], languageOptions: { globals: { ...globals.browser } } },
  { name: 'ftlab/globals-preload', files: ['preload/**'], languageOptions: { globals: { ...globals.browser, process: 'readonly' } } },

  {
    name: 'ftlab/tuning',
    rules: {
      // `_` marks a parameter or binding kept for its position (callbacks, destructuring)
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true }
      ],
      // byte strings and terminal escapes are FT Lab's daily bread: /[^\x00-\xff]/ is meant
      'no-control-regex': 'off'
    }
  },
  {
    name: 'ftlab/tests',
    files: ['test/**'],
    rules: {
      // sandbox tests write require() on purpose, to show that a guest cannot reach it
      '@typescript-eslint/no-require-imports': 'off'
    }
  },

  layeringConfigs
])
