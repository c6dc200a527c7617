import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { defaultConfig, listenerDefaults } from './config/config.ts';
import type { Config } from './config/config.ts';
import { nullLogger } from './core/ports.ts';
import {
  StartupError,
  dataPaths,
  formatListening,
  openServices,
  prepareDataDir,
  startServer,
} from './main.ts';

describe('composition root', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tern-main-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const configAt = (dataDir: string, overrides: Partial<Config> = {}): Config => ({
    ...defaultConfig(),
    dataDir,
    localDomains: ['example.test'],
    // No admin page: the default one is on a fixed port (127.0.0.1:8025), which parallel tests share.
    admin: { ...defaultConfig().admin, listeners: [] },
    ...overrides,
  });

  test('prepareDataDir creates a missing data dir, nested, with the service folders', async () => {
    const paths = prepareDataDir({ dataDir: join(dir, 'a', 'b', 'data') });
    assert.equal(paths.root, join(dir, 'a', 'b', 'data'));
    for (const p of [paths.root, paths.queue, paths.mail]) assert.ok((await stat(p)).isDirectory(), p);
  });

  test('a data dir that cannot be created is a StartupError naming the path and the reason', async () => {
    await writeFile(join(dir, 'file'), 'x');
    const target = join(dir, 'file', 'data');
    assert.throws(
      () => prepareDataDir({ dataDir: target }),
      (err: unknown) =>
        err instanceof StartupError &&
        err.message === `cannot create data directory ${target}: a parent path is not a directory`,
    );
  });

  test(
    'a read-only data dir is reported as not writable',
    { skip: process.getuid?.() === 0 && 'root ignores modes' },
    async () => {
      const ro = join(dir, 'read-only');
      prepareDataDir({ dataDir: ro });
      await chmod(ro, 0o500);
      try {
        assert.throws(
          () => prepareDataDir({ dataDir: ro }),
          /^StartupError: data directory .* is not writable: permission denied$/,
        );
      } finally {
        await chmod(ro, 0o700);
      }
    },
  );

  test('openServices opens queue, store and directory under data_dir and closes them', async () => {
    const config = configAt(join(dir, 'services'));
    const services = await openServices(config, nullLogger);
    try {
      await services.directory.addUser('alice@example.test', null);
      assert.deepEqual(await services.store.list('alice@example.test'), []);
      assert.deepEqual(await services.queue.list(), []);
    } finally {
      await services.close();
    }
    const paths = dataPaths(config);
    assert.ok((await stat(paths.directory)).isFile());
    // Reopening sees what was written: the same files, not a fresh in-memory copy.
    const again = await openServices(config, nullLogger);
    try {
      assert.deepEqual(
        (await again.directory.listUsers()).map((u) => u.address),
        ['alice@example.test'],
      );
    } finally {
      await again.close();
    }
  });

  test('formatListening: the line tests and scripts parse, IPv6 hosts in brackets', () => {
    assert.equal(
      formatListening({ service: 'smtp', host: '127.0.0.1', port: 2525, tls: 'starttls' }),
      'listening smtp 127.0.0.1:2525 (starttls)',
    );
    assert.equal(
      formatListening({ service: 'submissions', host: '::1', port: 465, tls: 'implicit' }),
      'listening submissions [::1]:465 (implicit)',
    );
  });

  test('startServer binds ephemeral ports, prints the real ones, and stops cleanly', async () => {
    const config = configAt(join(dir, 'server'), {
      listeners: [
        { ...listenerDefaults('smtp'), service: 'smtp', host: '127.0.0.1', port: 0 },
        { ...listenerDefaults('submissions'), service: 'submissions', host: '127.0.0.1', port: 0 },
      ],
      limits: { ...defaultConfig().limits, shutdownGraceMs: 1000 },
    });
    const stdout = new PassThrough();
    let printed = '';
    stdout.on('data', (d: Buffer) => (printed += d.toString()));
    const server = await startServer(config, { stdout, logger: nullLogger });
    try {
      assert.equal(server.bound.length, 2);
      for (const b of server.bound) assert.ok(b.port > 0, `${b.service} bound to port ${b.port}`);
      assert.equal(printed, `${server.bound.map(formatListening).join('\n')}\n`);
      assert.match(
        printed,
        /^listening smtp 127\.0\.0\.1:\d+ \(starttls\)\nlistening submissions 127\.0\.0\.1:\d+ \(implicit\)\n$/,
      );
    } finally {
      await server.stop();
    }
    // stop() is idempotent and the data files are closed: they can be opened again at once.
    await server.stop();
    const services = await openServices(config, nullLogger);
    await services.close();
  });
});
