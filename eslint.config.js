// @ts-check
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/.scratch*/**',
      '.tmp/**',
      '**/dist/**',
      '**/node_modules/**',
      'benchmarks/results/**',
      '**/*.js',
      '**/*.mjs',
      '**/*.cjs',
    ],
  },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': [
        'error',
        { selector: 'ExportAllDeclaration', message: 'List exports explicitly; no export *.' },
      ],
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['@xmppbus/*/src', '@xmppbus/*/src/*'], message: 'No deep imports.' }] },
      ],
    },
  },
  {
    // Library code never logs to the console; it takes an optional logger.
    files: ['packages/*/src/**/*.ts'],
    ignores: ['packages/*/src/**/*.test.ts'],
    rules: { 'no-console': 'error' },
  },
  {
    // core and schema do no I/O.
    files: ['packages/core/src/**/*.ts', 'packages/schema/src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: ['node:net', 'node:tls', 'net', 'tls', 'node:fs', 'fs', '@xmpp/component', '@xmpp/client'] },
      ],
    },
  },
);
