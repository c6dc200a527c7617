// How Tern is launched: the `tern` command (bin/tern.mjs, run through its shebang) and `npm start` give
// Node the same flags, and the shebang really works (env -S) with the pinned Node on PATH, as under npx.
// Test servers, the soak and the bench read the flags from the shebang (test/support/launch.ts).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ternNodeFlags } from './support/launch.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

test('npm start passes the same Node flags as the tern command', () => {
  const flags = ternNodeFlags();
  assert.ok(flags.includes('--max-semi-space-size=8'), `shebang flags: ${flags.join(' ')}`);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  assert.equal(pkg.scripts['start'], `node ${flags.join(' ')} src/cli/main.ts serve`);
});

test('bin/tern.mjs runs through its shebang with the pinned Node', async () => {
  const bin = join(ROOT, 'node_modules', '.bin');
  const { stdout } = await promisify(execFile)(join(ROOT, 'bin', 'tern.mjs'), ['help'], {
    env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}` },
  });
  assert.match(stdout, /tern help/);
});
