// Lint: type-checked typescript-eslint rules plus the import rules of docs/architecture.md
// (who may import whom). The boundary rules are the point; style is prettier's job.
import tseslint from 'typescript-eslint';

// A banned entry is a pattern, or a list of patterns whose later "!" entries carve out exceptions.
const layer = (dir, banned, message) => ({
  files: [`src/${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: banned.map((group) => ({ group: Array.isArray(group) ? group : [group], message })) },
    ],
  },
});

// ops/ holds what the CLI and the admin API share; only they (and main) sit above it.
const upper = ['**/main.ts', '**/cli/**', '**/admin/**', '**/ops/**'];

export default tseslint.config(
  {
    ignores: [
      'bin/**',
      'node_modules/**',
      'data/**',
      'bench/peers/work/**',
      'bench/results/**',
      // Plain-JS measurement scripts behind docs/workers.md, run one by one, not part of Tern.
      'bench/workers/**',
      'eslint.config.js',
    ],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-floating-promises': 'off',
    },
  },
  layer(
    'core',
    [
      '**/config/**',
      '**/db/**',
      '**/protocol/**',
      '**/policy/**',
      '**/directory/**',
      '**/queue/**',
      '**/delivery/**',
      '**/store/**',
      '**/net/**',
      '**/server/**',
      ...upper,
    ],
    'core imports nothing of the project',
  ),
  layer(
    'protocol',
    [
      'node:net',
      'node:tls',
      'node:fs',
      'node:fs/*',
      'node:dns',
      'node:dns/*',
      'node:timers',
      'node:timers/*',
      '**/config/**',
      '**/db/**',
      '**/policy/**',
      '**/directory/**',
      '**/queue/**',
      '**/delivery/**',
      '**/store/**',
      '**/net/**',
      '**/server/**',
      ...upper,
    ],
    'protocol is pure: only core; no sockets, files, DNS or timers',
  ),
  {
    // Tests beside the pure protocol code may read their golden files (testdata/) with node:fs; nothing more.
    ...layer(
      'protocol',
      [
        'node:net',
        'node:tls',
        'node:dns',
        'node:dns/*',
        'node:timers',
        'node:timers/*',
        '**/config/**',
        '**/db/**',
        '**/policy/**',
        '**/directory/**',
        '**/queue/**',
        '**/delivery/**',
        '**/store/**',
        '**/net/**',
        '**/server/**',
        ...upper,
      ],
      'protocol tests: only core, plus node:fs to read golden files',
    ),
    files: ['src/protocol/**/*.test.ts'],
  },
  layer(
    'policy',
    [
      'node:net',
      'node:tls',
      'node:fs',
      'node:fs/*',
      '**/db/**',
      '**/queue/**',
      '**/delivery/**',
      '**/store/**',
      '**/net/**',
      '**/server/**',
      ...upper,
    ],
    'policy uses core, config, protocol header parsing and ports only',
  ),
  ...['queue', 'store', 'directory', 'net', 'trace'].map((dir) =>
    layer(
      dir,
      [
        // net may use the pure DNS wire codec (its resolver is the socket side of protocol/dns).
        dir === 'net' ? ['**/protocol/**', '!**/protocol/dns', '!**/protocol/dns/**'] : '**/protocol/**',
        '**/policy/**',
        '**/delivery/**',
        '**/server/**',
        ...upper,
        ...(dir === 'net' ? ['**/db/**'] : []),
        ...['queue', 'store', 'directory', 'net', 'trace'].filter((d) => d !== dir).map((d) => `**/${d}/**`),
      ],
      dir === 'net' ? 'net uses core, config and the DNS codec only' : `${dir} uses core, config and db only`,
    ),
  ),
  layer('delivery', ['**/server/**', ...upper], 'delivery never reaches back into server'),
  layer(
    'ops',
    ['**/server/**', '**/main.ts', '**/cli/**', '**/admin/**'],
    'ops are the operations the CLI and the admin API share: services in, no sessions, no callers',
  ),
  {
    // Fastify handlers are async so that a throw (an HttpProblem, an OpError) reaches the error handler.
    files: ['src/admin/**/*.ts'],
    rules: { '@typescript-eslint/require-await': 'off' },
  },
  layer('server', ['**/delivery/**', ...upper], 'sessions enqueue, they never deliver'),
  layer(
    'db',
    [
      '**/config/**',
      '**/protocol/**',
      '**/policy/**',
      '**/directory/**',
      '**/queue/**',
      '**/delivery/**',
      '**/store/**',
      '**/net/**',
      '**/server/**',
      ...upper,
    ],
    'db (embedded storage helpers) imports only core and node builtins',
  ),
  layer(
    'config',
    [
      '**/db/**',
      '**/protocol/**',
      '**/policy/**',
      '**/directory/**',
      '**/queue/**',
      '**/delivery/**',
      '**/store/**',
      '**/net/**',
      '**/server/**',
      ...upper,
    ],
    'config uses core only',
  ),
);
