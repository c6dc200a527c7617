import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { describeError, usageText } from './main.ts';
import type { Sandbox } from './test-harness.ts';
import { createSandbox, runTern } from './test-harness.ts';

describe('tern: usage and argument handling', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
  });
  after(() => box.remove());

  test('`tern help`, `--help` and `-h` print usage listing every command, exit 0', async () => {
    for (const args of [['help'], ['--help'], ['-h']]) {
      const r = await runTern(args, { cwd: box.dir });
      assert.equal(r.code, 0, args.join(' '));
      assert.equal(r.stderr, '');
      for (const cmd of [
        'serve',
        'user add ADDRESS',
        'alias del ALIAS [TARGET]',
        'mailbox cat ADDRESS ID',
        'queue show ID',
      ]) {
        assert.match(r.stdout, new RegExp(`tern ${cmd.replace(/[[\]]/g, '\\$&')}`), cmd);
      }
    }
  });

  test('no command prints usage to stderr and exits 2', async () => {
    const r = await runTern([], { cwd: box.dir });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `${usageText()}\n`);
  });

  test('an unknown command is named, followed by usage, exit 2', async () => {
    const r = await runTern(['frobnicate'], { cwd: box.dir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^tern: unknown command 'frobnicate'\nUsage: tern <command>/);
    const sub = await runTern(['user', 'frob'], { cwd: box.dir });
    assert.equal(sub.code, 2);
    assert.match(sub.stderr, /^tern: unknown command 'user frob'\n/);
  });

  test('a group without a subcommand lists its subcommands; with --help that is success', async () => {
    const bare = await runTern(['queue'], { cwd: box.dir });
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /'queue' needs a subcommand/);
    assert.match(bare.stderr, /tern queue list/);
    assert.doesNotMatch(bare.stderr, /tern user add/);
    const help = await runTern(['queue', '--help'], { cwd: box.dir });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /tern queue show ID/);
  });

  test('`tern help user add` and `tern user add --help` show that command', async () => {
    for (const args of [
      ['help', 'user', 'add'],
      ['user', 'add', '--help'],
    ]) {
      const r = await runTern(args, { cwd: box.dir });
      assert.equal(r.code, 0);
      assert.match(
        r.stdout,
        /^Usage: tern user add ADDRESS \[--password-stdin\] \[--json\] \[--config FILE\]\n/,
      );
    }
  });

  test('missing and extra arguments are usage errors (exit 2) that name what is wrong', async () => {
    const missing = await box.tern(['user', 'add']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^tern: missing ADDRESS\nusage: tern user add ADDRESS/);
    const missingTarget = await box.tern(['alias', 'add', 'a@example.test']);
    assert.match(missingTarget.stderr, /^tern: missing TARGET\n/);
    const extra = await box.tern(['user', 'list', 'surplus']);
    assert.equal(extra.code, 2);
    assert.match(extra.stderr, /^tern: unexpected argument 'surplus'/);
  });

  test('an unknown option is a usage error, not a stack trace', async () => {
    const r = await box.tern(['user', 'list', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^tern: unknown option '--bogus'/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    // A flag of another command is unknown here too.
    const other = await box.tern(['user', 'del', 'a@example.test', '--list']);
    assert.equal(other.code, 2);
  });

  test('--config may come before the command words', async () => {
    const r = await runTern(['--config', box.configPath, 'user', 'add', 'lead@example.test'], {
      cwd: box.dir,
    });
    assert.equal(r.code, 0, r.stderr);
    const list = await runTern(['-c', box.configPath, 'user', 'list', '--json'], { cwd: box.dir });
    assert.deepEqual(
      (JSON.parse(list.stdout) as { address: string }[]).map((u) => u.address),
      ['lead@example.test'],
    );
  });
});

describe('tern: configuration and data directory errors', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tern-cli-errors-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('a named config file that does not exist is reported with its path, exit 1', async () => {
    const missing = join(dir, 'nope.toml');
    const r = await runTern(['user', 'list', '--config', missing], { cwd: dir });
    assert.equal(r.code, 1);
    assert.ok(r.stderr.startsWith(`tern: ${missing}`), r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  test('an invalid config lists every error as FILE:LINE: key: message', async () => {
    const file = join(dir, 'bad.toml');
    await writeFile(file, 'hostname = "ok"\nlocal_domains = 7\n[limits]\nmax_recipients = "many"\n');
    const r = await runTern(['user', 'list', '--config', file], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:2: local_domains: `));
    assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:4: limits\\.max_recipients: `));
  });

  test('TERN_CONFIG is used when --config is absent', async () => {
    const file = join(dir, 'env.toml');
    await writeFile(file, `data_dir = "env-data"\nlocal_domains = ["env.test"]\n`);
    const r = await runTern(['user', 'add', 'x@env.test'], { cwd: dir, env: { TERN_CONFIG: file } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'env-data')), 'data_dir is relative to the config file');
  });

  test('without any config, ./tern.toml is absent: built-in defaults, data in ./data under cwd', async () => {
    const cwd = await mkdtemp(join(dir, 'defaults-'));
    const r = await runTern(['user', 'add', 'alice@localhost'], { cwd });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(cwd, 'data')));
    const other = await runTern(['user', 'add', 'alice@example.test'], { cwd });
    assert.equal(other.code, 1);
    assert.equal(
      other.stderr,
      'tern: example.test is not a local domain (local domains: localhost); add it to local_domains in the config\n',
    );
  });

  test('a data directory that cannot be created gives a clear message, exit 1', async () => {
    const blocker = join(dir, 'a-file');
    await writeFile(blocker, 'not a directory');
    const file = join(dir, 'blocked.toml');
    await writeFile(file, `data_dir = "a-file/data"\n`);
    const r = await runTern(['user', 'add', 'a@localhost', '--config', file], { cwd: dir });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `tern: cannot create data directory ${join(dir, 'a-file', 'data')}: a parent path is not a directory\n`,
    );
  });
});

test('tern serve on a port already in use fails with one readable line and releases everything', async () => {
  const blocker = createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  const port = (blocker.address() as AddressInfo).port;
  const box = await createSandbox(
    [
      'local_domains = ["example.test"]',
      '[[listeners]]',
      'service = "smtp"',
      `address = "127.0.0.1:${port}"`,
      '[log]',
      'level = "error"',
      'format = "json"',
      '',
    ].join('\n'),
  );
  try {
    const r = await box.tern(['serve']);
    assert.equal(r.code, 1);
    // The listener is named by its key and line in the file (issue 11).
    assert.equal(r.stderr, `tern: ${box.configPath}:4: listeners[0].address: 127.0.0.1:${port} is in use\n`);
    assert.equal(r.stdout, '');
    // The databases were closed on the way out: the CLI can use them at once.
    assert.equal((await box.tern(['user', 'add', 'after@example.test'])).code, 0);
  } finally {
    blocker.close();
    await box.remove();
  }
});

test('describeError turns listen failures into one sentence', () => {
  const err = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:2525'), {
    code: 'EADDRINUSE',
    syscall: 'listen',
    address: '127.0.0.1',
    port: 2525,
  });
  assert.equal(describeError(err), 'cannot listen on 127.0.0.1:2525: address already in use');
  assert.equal(describeError('plain'), 'plain');
});

describe('tern: version, verbose, read-only commands (issue 11)', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
  });
  after(() => box.remove());

  test('`tern --version` and `tern version` print the package version; --json gives an object', async () => {
    const pkg = JSON.parse(await readFile(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
      version: string;
    };
    for (const args of [['--version'], ['version'], ['-V']]) {
      const r = await runTern(args, { cwd: box.dir });
      assert.equal(r.code, 0, args.join(' '));
      assert.equal(r.stdout, `tern ${pkg.version}\n`);
      assert.equal(r.stderr, '');
    }
    const json = await runTern(['version', '--json'], { cwd: box.dir });
    assert.equal(json.code, 0);
    assert.deepEqual(JSON.parse(json.stdout), { version: pkg.version, node: process.versions.node });
  });

  test('an unknown option names the option and shows the command usage, without parseArgs text', async () => {
    const r = await box.tern(['queue', 'list', '--bogus']);
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      "tern: unknown option '--bogus'\nusage: tern queue list [--json] [--config FILE]\n" +
        "run 'tern help' for all commands\n",
    );
    const missingValue = await box.tern(['dns', 'records', '--domain']);
    assert.equal(missingValue.code, 2);
    assert.match(missingValue.stderr, /^tern: option --domain needs a value\nusage: tern dns records /);
    const valueForFlag = await box.tern(['queue', 'list', '--json=yes']);
    assert.equal(valueForFlag.code, 2);
    assert.match(valueForFlag.stderr, /^tern: option --json takes no value\n/);
  });

  test('--verbose says on stderr which data directory and config a command used', async () => {
    assert.equal((await box.tern(['user', 'add', 'jürgen@example.test'])).code, 0);
    const r = await box.tern(['user', 'list', '--json', '--verbose']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as unknown[]).length, 1);
    assert.equal(r.stderr, `tern: data directory ${join(box.dir, 'data')} (config ${box.configPath})\n`);
    const quiet = await box.tern(['user', 'list']);
    assert.equal(quiet.stderr, '');
  });

  test('read-only commands never create a data directory: they say which one they looked for, exit 1', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'tern-cli-nodata-'));
    try {
      const data = join(cwd, 'data');
      for (const args of [
        ['queue', 'list'],
        ['queue', 'show', 'X'],
        ['queue', 'cat', 'X'],
        ['user', 'list', '--json'],
        ['alias', 'list'],
        ['mailbox', 'list', 'a@localhost'],
        ['mailbox', 'cat', 'a@localhost', '1'],
        ['dkim', 'list'],
        ['user', 'cert', '--list'],
        ['user', 'sendas', 'a@localhost', 'list'],
        ['user', 'policy', '日本@localhost'],
      ]) {
        const r = await runTern(args, { cwd });
        assert.equal(r.code, 1, args.join(' '));
        assert.equal(r.stdout, '', args.join(' '));
        assert.equal(
          r.stderr,
          `tern: no data directory at ${data} (data_dir of the built-in defaults): nothing to read\n`,
          args.join(' '),
        );
        assert.equal(existsSync(data), false, `${args.join(' ')} created ${data}`);
      }
      // A data directory without the queue database: the file is named, and not created.
      await mkdir(data);
      const r = await runTern(['queue', 'list'], { cwd });
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `tern: no queue database at ${join(data, 'queue', 'queue.db')}: nothing to read\n`,
      );
      assert.equal(existsSync(join(data, 'queue', 'queue.db')), false);
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
