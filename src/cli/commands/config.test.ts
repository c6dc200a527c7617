import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';

describe('tern config check', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await createSandbox();
  });
  after(async () => {
    await sandbox.remove();
  });

  test('a valid file: exit 0, says ok, and creates no data directory', async () => {
    await writeFile(sandbox.configPath, 'local_domains = ["example.test"]\n');
    const r = await sandbox.tern(['config', 'check']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${sandbox.configPath}: ok\n`);
    assert.equal(existsSync(join(sandbox.dir, 'data')), false, 'config check never creates data_dir');
  });

  test('warnings alone: exit 0, each as FILE:LINE: key: warning: message', async () => {
    await writeFile(
      sandbox.configPath,
      ['local_domains = ["example.test"]', '[smtp]', 'trusted_networks = ["0.0.0.0/0"]', ''].join('\n'),
    );
    const r = await sandbox.tern(['config', 'check']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(
      lines[0]!,
      new RegExp(
        `^${escape(sandbox.configPath)}:3: smtp\\.trusted_networks\\[0\\]: warning: "0\\.0\\.0\\.0/0" is every IPv4 address: .*open relay`,
      ),
    );
    assert.equal(lines[1], `${sandbox.configPath}: ok, 1 warning`);
  });

  test('errors: exit 1, every error as FILE:LINE: key: message, then how many', async () => {
    await writeFile(
      sandbox.configPath,
      [
        'local_domains = ["example.test"]',
        '[limits]',
        'max_recipients = 10',
        'max_message_bytes = "big"',
        '[smtp]',
        'trusted_networks = ["10.0.0.0/33"]',
        '',
      ].join('\n'),
    );
    const r = await sandbox.tern(['config', 'check']);
    assert.equal(r.code, 1);
    const lines = r.stdout.trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => l.replace(/(: [^:]+: (warning: )?).*$/, '$1')),
      [
        `${sandbox.configPath}:4: limits.max_message_bytes: `,
        `${sandbox.configPath}:6: smtp.trusted_networks[0]: `,
        `${sandbox.configPath}: 2 errors`,
      ],
    );
  });

  test('--json: file, valid, errors and warnings with line, key and message', async () => {
    await writeFile(
      sandbox.configPath,
      ['local_domains = ["example.test"]', '[limits]', 'max_recipients = 10', ''].join('\n'),
    );
    const ok = await sandbox.tern(['config', 'check', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    const parsed = JSON.parse(ok.stdout) as {
      file: string;
      valid: boolean;
      errors: unknown[];
      warnings: { line: number; key: string; message: string }[];
    };
    assert.equal(parsed.file, sandbox.configPath);
    assert.equal(parsed.valid, true);
    assert.deepEqual(parsed.errors, []);
    assert.deepEqual(
      parsed.warnings.map((w) => [w.line, w.key]),
      [[3, 'limits.max_recipients']],
    );

    await writeFile(sandbox.configPath, 'hostname = "not a name"\n');
    const bad = await sandbox.tern(['config', 'check', '--json']);
    assert.equal(bad.code, 1);
    const b = JSON.parse(bad.stdout) as { valid: boolean; errors: { line: number; key: string }[] };
    assert.equal(b.valid, false);
    assert.deepEqual(
      b.errors.map((e) => [e.line, e.key]),
      [[1, 'hostname']],
    );
  });

  // The second case: the postmaster is an alias to a UTF-8 address that is no user yet.
  for (const target of [null, '日本@example.test']) {
    test(`a postmaster without a mailbox in an existing data directory (${target ?? 'no alias'}): a warning`, async () => {
      const postmaster = 'postmaster@example.test';
      const mailbox = target ?? postmaster;
      await writeFile(
        sandbox.configPath,
        ['local_domains = ["example.test"]', '[queue]', `postmaster = "${postmaster}"`, ''].join('\n'),
      );
      const added = await sandbox.tern(['user', 'add', 'bob@example.test'], { stdin: '' });
      assert.equal(added.code, 0, added.stderr);
      if (target !== null) {
        const alias = await sandbox.tern(['alias', 'add', postmaster, target]);
        assert.equal(alias.code, 0, alias.stderr);
      }
      const r = await sandbox.tern(['config', 'check', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(r.stdout) as { valid: boolean; warnings: { key: string; message: string }[] };
      assert.equal(report.valid, true);
      const warning = report.warnings.find((w) => w.key === 'queue.postmaster');
      assert.ok(warning, r.stdout);
      assert.match(warning.message, new RegExp(`${escape(postmaster)} has no mailbox`));

      const pm = await sandbox.tern(['user', 'add', mailbox], { stdin: '' });
      assert.equal(pm.code, 0, pm.stderr);
      const again = await sandbox.tern(['config', 'check']);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout, `${sandbox.configPath}: ok\n`);
      for (const cleanup of [
        ['user', 'del', mailbox],
        ['user', 'del', 'bob@example.test'],
        ...(target === null ? [] : [['alias', 'del', postmaster]]),
      ]) {
        assert.equal((await sandbox.tern(cleanup)).code, 0);
      }
    });
  }

  test('a missing file is an error (exit 1); bad usage exits 2', async () => {
    const missing = await sandbox.tern(['config', 'check', '--config', join(sandbox.dir, 'nope.toml')], {
      withConfig: false,
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /nope\.toml: cannot read the configuration file/);
    const usage = await sandbox.tern(['config', 'check', 'extra']);
    assert.equal(usage.code, 2);
    const flag = await sandbox.tern(['config', 'check', '--jsn']);
    assert.equal(flag.code, 2);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
