import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const vscodeImport = {
  paths: [{ name: 'vscode', message: 'Only the glue folders (extension/review, extension/panel, extension/commands, extension/workbench, extension.ts, wiring.ts) import vscode; the engine and vm-host run under plain Node.' }],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.test-work/**', '.vscode-test/**', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] }],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      'no-restricted-imports': ['error', vscodeImport],
    },
  },
  {
    files: ['extension/extension.ts', 'extension/wiring.ts', 'extension/review/**', 'extension/panel/**', 'extension/commands/**', 'extension/workbench/**', 'test/e2e/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
