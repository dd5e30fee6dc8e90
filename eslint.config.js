// ESLint flat config (`npm run lint` runs it after the two tsc checks).
// Typed linting with typescript-eslint over every TypeScript folder, eslint-disable comments that
// must say why, and no import cycle in the library (lib/, security/).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import comments from '@eslint-community/eslint-plugin-eslint-comments/configs';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },

  {
    files: ['{lib,security,test,examples,bench}/**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // The nearest tsconfig.json of each file: ./tsconfig.json, or test/types/tsconfig.json for its checks.
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // The code writes `xs[i]!` as if noUncheckedIndexedAccess were on (147 of its 155 reports); without
      // that flag the rule calls every one of them unnecessary.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // `async` without `await` is how a function keeps to a Promise-returning contract (handlers,
      // backends, stop()) and turns a throw into a rejection; dropping `async` would change behaviour.
      '@typescript-eslint/require-await': 'off',
      // A peer passes on whatever a handler threw or an AbortSignal carried, Error or not: the same
      // leniency only-throw-error has by default.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      // tsc's noUnusedLocals/noUnusedParameters convention: a leading underscore means unused on purpose.
      '@typescript-eslint/no-unused-vars': ['error', {
        argsIgnorePattern: '^_',
        varsIgnorePattern: '^_',
        caughtErrorsIgnorePattern: '^_',
        destructuredArrayIgnorePattern: '^_',
      }],
      // Server/Client hand closures to their Session before super() returns, so they reach the instance
      // through `self`, assigned once after super(); the codec makes itself the `active` one while msgpackr
      // runs its extension hooks.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self', 'active'] }],
      // Same `let self; ...; self = this` pattern: it cannot be a const declared before super().
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },

  {
    files: ['test/**/*.ts'],
    rules: {
      // chai assertions are property reads: expect(x).to.be.true, .to.exist, .that.is.not.empty.
      '@typescript-eslint/no-unused-expressions': 'off',
      // Tests drive the untyped call proxies (`client.call.anything()` resolves to any) on purpose.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Tests detach members on purpose: registerRpc is bound by the Registry (that is under test),
      // and the setups' `call` members are arrow functions.
      '@typescript-eslint/unbound-method': 'off',
    },
  },

  {
    files: ['{lib,security}/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      // Without it import-x only follows .js files, and sees no module behind `./x.js` -> x.ts.
      'import-x/extensions': ['.ts'],
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: 'tsconfig.json' })],
    },
    rules: {
      'import-x/no-cycle': 'error',
    },
  },

  // Every eslint-disable says why (`-- reason`), and none is left once it disables nothing.
  comments.recommended,
  {
    rules: {
      '@eslint-community/eslint-comments/require-description': 'error',
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
  },

  {
    files: ['eslint.config.js'],
    extends: [js.configs.recommended],
  },
);
