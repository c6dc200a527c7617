// The deployment files in contrib/ (docs/install.md): the systemd unit passes systemd's own check and
// runs the `tern` command the way the install puts it there; the container's configuration is one Tern
// accepts, and the Dockerfile exposes, probes and points TERN_CONFIG at what that configuration says.
// Deliberately NOT here: building or running the image (no container engine on test machines).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const UNIT = readFileSync(join(ROOT, 'contrib', 'tern.service'), 'utf8');
const DOCKERFILE = readFileSync(join(ROOT, 'contrib', 'Dockerfile'), 'utf8');

/** Every value of `Key=` in the unit, in order. */
function unitValues(key: string): string[] {
  return [...UNIT.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
}

function haveSystemdAnalyze(): boolean {
  return spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;
}

test(
  'contrib/tern.service: systemd-analyze verify finds nothing to say',
  { skip: haveSystemdAnalyze() ? false : 'systemd-analyze is not installed' },
  () => {
    // verify checks that ExecStart exists and is executable: point /opt/tern at this checkout.
    const dir = mkdtempSync(join(tmpdir(), 'tern-unit-'));
    try {
      const unit = join(dir, 'tern.service');
      writeFileSync(unit, UNIT.replaceAll('/opt/tern/', `${ROOT}/`));
      const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
      // It exits 0 for unknown keys and bad values, and only says so: any output is a finding.
      assert.equal(`${r.stdout}${r.stderr}`, '');
      assert.equal(r.status, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('contrib/tern.service runs the tern command with the pinned Node, reloads with SIGHUP', () => {
  assert.deepEqual(unitValues('ExecStart'), ['/opt/tern/bin/tern.mjs serve --config /etc/tern/tern.toml']);
  // The shebang is `env -S node`: the pinned Node must come first on PATH.
  assert.ok(
    unitValues('Environment').includes('PATH=/opt/tern/node_modules/.bin:/usr/local/bin:/usr/bin:/bin'),
  );
  assert.deepEqual(unitValues('ExecReload'), ['/bin/kill -HUP $MAINPID']);
  assert.deepEqual(unitValues('User'), ['tern']);
  assert.deepEqual(unitValues('AmbientCapabilities'), ['CAP_NET_BIND_SERVICE']);
  assert.deepEqual(unitValues('CapabilityBoundingSet'), ['CAP_NET_BIND_SERVICE']);
  assert.deepEqual(unitValues('ReadWritePaths'), ['/var/lib/tern']);
});

test('contrib/tern.container.toml is a configuration Tern accepts, and the Dockerfile matches it', () => {
  const text = readFileSync(join(ROOT, 'contrib', 'tern.container.toml'), 'utf8');
  const parsed = parseConfig(text, 'contrib/tern.container.toml');
  assert.ok(parsed.ok, parsed.ok ? '' : JSON.stringify(parsed.errors));
  assert.deepEqual(parsed.warnings, []);
  const { config } = parsed;
  assert.equal(config.dataDir, '/var/lib/tern');
  assert.equal(config.log.format, 'json');
  assert.deepEqual(
    config.listeners.map((l) => `${l.service} ${l.host}:${l.port}`),
    [
      'smtp 0.0.0.0:2525',
      'submission 0.0.0.0:2587',
      'submissions 0.0.0.0:2465',
      'pop3 0.0.0.0:2110',
      'pop3s 0.0.0.0:2995',
    ],
  );

  assert.match(DOCKERFILE, /^COPY contrib\/tern\.container\.toml \/etc\/tern\/tern\.toml$/m);
  assert.match(DOCKERFILE, /TERN_CONFIG=\/etc\/tern\/tern\.toml/);
  assert.match(DOCKERFILE, /^VOLUME \/var\/lib\/tern$/m);
  const exposed = /^EXPOSE (.*)$/m.exec(DOCKERFILE)?.[1]?.split(' ').map(Number);
  assert.deepEqual(
    exposed,
    config.listeners.map((l) => l.port),
  );
  const smtp = config.listeners.find((l) => l.service === 'smtp');
  assert.ok(DOCKERFILE.includes(`connect(${smtp?.port},'127.0.0.1')`), 'HEALTHCHECK probes the smtp port');
});
