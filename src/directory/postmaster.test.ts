import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { defaultConfig } from '../config/config.ts';
import type { Config } from '../config/config.ts';
import type { LogFields, Logger } from '../core/ports.ts';
import { ensurePostmaster, postmasterAddress, postmasterProblem } from './postmaster.ts';
import { SqliteDirectory } from './sqlite-directory.ts';

function config(localDomains: string[], postmaster: string | null = null): Config {
  const d = defaultConfig();
  return { ...d, localDomains, queue: { ...d.queue, postmaster } };
}

/** A logger that keeps what it was told. */
function recorder(): Logger & { lines: { level: string; name: string; fields: LogFields }[] } {
  const lines: { level: string; name: string; fields: LogFields }[] = [];
  const logger = {
    lines,
    debug: (name: string, fields: LogFields = {}) => void lines.push({ level: 'debug', name, fields }),
    event: (name: string, fields: LogFields = {}) => void lines.push({ level: 'info', name, fields }),
    warn: (name: string, fields: LogFields = {}) => void lines.push({ level: 'warn', name, fields }),
    error: (name: string, fields: LogFields = {}) => void lines.push({ level: 'error', name, fields }),
    child: () => logger,
  };
  return logger;
}

async function withDirectory(cfg: Config, fn: (d: SqliteDirectory) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tern-postmaster-'));
  const d = await SqliteDirectory.open({
    path: join(dir, 'd.sqlite'),
    localDomains: cfg.localDomains,
    postmaster: postmasterAddress(cfg),
  });
  try {
    await fn(d);
  } finally {
    await d.close();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('postmaster', () => {
  test('postmasterAddress: queue.postmaster, else postmaster@<first local domain>', () => {
    assert.equal(postmasterAddress(defaultConfig()), 'postmaster@localhost');
    assert.equal(postmasterAddress(config(['b.example', 'a.example'])), 'postmaster@b.example');
    assert.equal(postmasterAddress(config(['a.example'], 'Ops@a.example')), 'Ops@a.example');
  });

  test('a fresh directory: the problem is named, ensurePostmaster adds the user once and it is gone', async () => {
    const cfg = config(['localhost', 'example.test']);
    await withDirectory(cfg, async (d) => {
      assert.match((await postmasterProblem(cfg, d)) ?? '', /postmaster@localhost has no mailbox/);
      const log = recorder();
      assert.equal(await ensurePostmaster(cfg, d, log), null);
      assert.deepEqual(log.lines, [
        {
          level: 'info',
          name: 'directory.postmaster.created',
          fields: { address: 'postmaster@localhost', password: false },
        },
      ]);
      assert.deepEqual(
        (await d.listUsers()).map((u) => [u.address, u.hasPassword]),
        [['postmaster@localhost', false]],
      );
      assert.equal(await postmasterProblem(cfg, d), null);
      // A second start finds it and adds nothing.
      const again = recorder();
      assert.equal(await ensurePostmaster(cfg, d, again), null);
      assert.deepEqual(again.lines, []);
    });
  });

  test('an alias (to a UTF-8 user) or a catch-all is enough: nothing is created', async () => {
    const cfg = config(['example.test'], 'Postmaster@example.test');
    await withDirectory(cfg, async (d) => {
      await d.addUser('jürgen@example.test', null);
      await d.addAlias('@example.test', 'jürgen@example.test');
      const log = recorder();
      assert.equal(await ensurePostmaster(cfg, d, log), null);
      assert.deepEqual(log.lines, []);
      assert.deepEqual(
        (await d.listUsers()).map((u) => u.address),
        ['jürgen@example.test'],
      );
    });
  });

  test('an alias that leads nowhere: warned, not papered over with a user', async () => {
    const cfg = config(['localhost', 'example.test']);
    await withDirectory(cfg, async (d) => {
      await d.addAlias('postmaster@localhost', 'gone@localhost');
      const log = recorder();
      const problem = await ensurePostmaster(cfg, d, log);
      assert.match(problem ?? '', /postmaster@localhost has no mailbox/);
      assert.deepEqual(
        log.lines.map((l) => [l.level, l.name]),
        [['warn', 'directory.postmaster.undeliverable']],
      );
      assert.deepEqual(await d.listUsers(), []);
      // Fixed, but another local domain's own postmaster alias still leads nowhere.
      await d.addUser('gone@localhost', null);
      await d.addAlias('postmaster@example.test', 'nobody@example.test');
      assert.match(
        (await postmasterProblem(cfg, d)) ?? '',
        /^postmaster@example\.test has an alias that reaches no mailbox/,
      );
    });
  });

  test('no local domains: a problem, and nothing created', async () => {
    const cfg = config([]);
    await withDirectory(cfg, async (d) => {
      const log = recorder();
      assert.match((await ensurePostmaster(cfg, d, log)) ?? '', /local_domains is empty/);
      assert.deepEqual(await d.listUsers(), []);
    });
  });
});
