import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, TLSSocket } from 'node:tls';
import { defaultConfig } from '../config/config.ts';
import type { Config } from '../config/config.ts';
import type { LogFields, Logger } from '../core/ports.ts';
import {
  createSecureContext,
  loadTlsMaterial,
  selfSignedPaths,
  serverTlsOptions,
  TlsMaterialError,
} from './tls.ts';

function recordingLogger(): Logger & { names: string[] } {
  const names: string[] = [];
  const log = (name: string, _fields?: LogFields) => void names.push(name);
  const logger = { names, event: log, warn: log, error: log, debug: log, child: () => logger };
  return logger;
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'tern-tls-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function config(dataDir: string, hostname = 'mail.example.test', tls: Config['tls'] = defaultConfig().tls) {
  return { ...defaultConfig(), dataDir, hostname, tls };
}

type Material = { cert: string; key: string };

/** A plain TCP server that upgrades each connection in place, the way STARTTLS does. */
function startTlsServer(material: Material): Server {
  const secureContext = createSecureContext(material);
  return createNetServer((raw) => {
    const socket = new TLSSocket(raw, { isServer: true, secureContext });
    socket.on('error', () => socket.destroy());
    socket.on('secure', () => socket.end('hello'));
  });
}

/** Connect a Node TLS client that trusts only the given certificate; resolves with what the server sent. */
async function handshake(server: Server, material: Material, servername: string): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    const socket = connect({ host: '127.0.0.1', port, servername, ca: material.cert });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'secureConnect');
    assert.ok(socket.authorized, String(socket.authorizationError));
    assert.match(String(socket.getProtocol()), /^TLSv1\.[23]$/);
    await once(socket, 'end');
    socket.destroy();
    return Buffer.concat(chunks).toString();
  } finally {
    server.close();
  }
}

test('self-signed: first call creates cert and 0600 key, second call reuses them', async () => {
  await withDir(async (dir) => {
    const log = recordingLogger();
    const first = await loadTlsMaterial(config(dir), log);
    assert.equal(first.selfSigned, true);
    const paths = selfSignedPaths(dir);
    assert.equal(await readFile(paths.cert, 'utf8'), first.cert);
    assert.equal(await readFile(paths.key, 'utf8'), first.key);
    assert.equal((await stat(paths.key)).mode & 0o777, 0o600);
    assert.equal((await stat(paths.dir)).mode & 0o077, 0);

    const x509 = new X509Certificate(first.cert);
    assert.match(x509.subject, /CN=mail\.example\.test/);
    assert.equal(x509.checkHost('mail.example.test'), 'mail.example.test');
    assert.equal(x509.checkHost('localhost'), 'localhost');
    assert.equal(x509.checkIP('127.0.0.1'), '127.0.0.1');
    const years = (Date.parse(x509.validTo) - Date.now()) / (365.25 * 86_400_000);
    assert.ok(years > 9.9 && years < 10.1, `valid for ${years} years`);

    const second = await loadTlsMaterial(config(dir), log);
    assert.equal(second.cert, first.cert);
    assert.equal(second.key, first.key);
    assert.deepEqual(log.names, ['tls.selfsigned.created', 'tls.selfsigned.loaded']);
  });
});

test('a Node TLS client verifies the self-signed certificate by hostname (STARTTLS and implicit TLS)', async () => {
  await withDir(async (dir) => {
    const material = await loadTlsMaterial(config(dir), recordingLogger());
    assert.equal(await handshake(startTlsServer(material), material, 'mail.example.test'), 'hello');
    assert.equal(await handshake(startTlsServer(material), material, 'localhost'), 'hello');
    const implicit = createServer(serverTlsOptions(material), (s) => s.end('hello'));
    assert.equal(await handshake(implicit, material, 'mail.example.test'), 'hello');
  });
});

test('self-signed is replaced when the hostname changes, expires, or the pair is broken', async () => {
  await withDir(async (dir) => {
    const log = recordingLogger();
    const a = await loadTlsMaterial(config(dir, 'a.example.test'), log);
    const b = await loadTlsMaterial(config(dir, 'b.example.test'), log);
    assert.notEqual(b.cert, a.cert);
    assert.equal(new X509Certificate(b.cert).checkHost('b.example.test'), 'b.example.test');

    // Made eleven years ago: expired now.
    const old = await loadTlsMaterial(config(dir, 'b.example.test'), log, {
      nowMs: Date.now() - 11 * 365 * 86_400_000,
    });
    const renewed = await loadTlsMaterial(config(dir, 'b.example.test'), log);
    assert.notEqual(renewed.cert, old.cert);

    // A key that does not match (e.g. a crash between the two renames).
    await writeFile(selfSignedPaths(dir).key, a.key);
    const fixed = await loadTlsMaterial(config(dir, 'b.example.test'), log);
    assert.notEqual(fixed.key, a.key);
    assert.ok(new X509Certificate(fixed.cert).checkHost('b.example.test'));
    // hostname changed, not yet valid (made "now" but loaded eleven years ago), expired, broken pair
    assert.equal(log.names.filter((n) => n === 'tls.selfsigned.replaced').length, 4);
  });
});

test('configured cert/key are read as they are; errors name tls.cert or tls.key', async () => {
  await withDir(async (dir) => {
    const made = await loadTlsMaterial(config(join(dir, 'gen'), 'mx.example.test'), recordingLogger());
    const other = await loadTlsMaterial(config(join(dir, 'other'), 'mx.example.test'), recordingLogger());
    const certPath = join(dir, 'fullchain.pem');
    const keyPath = join(dir, 'privkey.pem');
    await writeFile(certPath, made.cert);
    await writeFile(keyPath, made.key);
    const log = recordingLogger();
    const loaded = await loadTlsMaterial(
      config(dir, 'ignored', { ...defaultConfig().tls, cert: certPath, key: keyPath }),
      log,
    );
    assert.deepEqual(loaded, { cert: made.cert, key: made.key, selfSigned: false });
    assert.deepEqual(log.names, ['tls.cert.loaded']);

    const missing = join(dir, 'nope.pem');
    const expectError = async (paths: Pick<Config['tls'], 'cert' | 'key'>, key: string, pattern: RegExp) => {
      const tls: Config['tls'] = { ...defaultConfig().tls, ...paths };
      await assert.rejects(loadTlsMaterial(config(dir, 'x', tls), log), (err: unknown) => {
        assert.ok(err instanceof TlsMaterialError);
        assert.equal(err.key, key);
        assert.match(err.message, pattern);
        return true;
      });
    };
    await expectError(
      { cert: missing, key: keyPath },
      'tls.cert',
      /^tls\.cert: cannot read .*nope\.pem.*ENOENT/,
    );
    await expectError({ cert: certPath, key: missing }, 'tls.key', /^tls\.key: cannot read .*nope\.pem/);
    await expectError({ cert: keyPath, key: keyPath }, 'tls.cert', /^tls\.cert: .*not a PEM certificate/);
    await expectError({ cert: certPath, key: certPath }, 'tls.key', /^tls\.key: .*private key/);
    await writeFile(join(dir, 'otherkey.pem'), other.key);
    await expectError({ cert: certPath, key: join(dir, 'otherkey.pem') }, 'tls.key', /does not match/);
    await expectError({ cert: certPath, key: null }, 'tls.key', /must be set/);
    await expectError({ cert: null, key: keyPath }, 'tls.cert', /must be set/);
  });
});

test('minVersion: TLS 1.2 by default (1.0/1.1 off), TLS 1.3 only on request', async () => {
  await withDir(async (dir) => {
    const material = await loadTlsMaterial(config(dir), recordingLogger());
    assert.equal(serverTlsOptions(material).minVersion, 'TLSv1.2');
    const attempt = async (server: Server, maxVersion: 'TLSv1.1' | 'TLSv1.2'): Promise<string> => {
      server.on('tlsClientError', () => {});
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      try {
        const { port } = server.address() as AddressInfo;
        const socket = connect({
          host: '127.0.0.1',
          port,
          ca: material.cert,
          servername: 'localhost',
          maxVersion,
        });
        const result = await new Promise<string>((resolve) => {
          socket.on('secureConnect', () => resolve(String(socket.getProtocol())));
          socket.on('error', () => resolve('refused'));
        });
        socket.destroy();
        return result;
      } finally {
        server.close();
      }
    };
    const tls13Only = createSecureContext(material, { minVersion: 'TLSv1.3' });
    const strict = () =>
      createNetServer((raw) => {
        const socket = new TLSSocket(raw, { isServer: true, secureContext: tls13Only });
        socket.on('error', () => socket.destroy());
      });
    assert.equal(await attempt(startTlsServer(material), 'TLSv1.2'), 'TLSv1.2');
    assert.equal(await attempt(strict(), 'TLSv1.2'), 'refused');
    assert.equal(await attempt(createServer(serverTlsOptions(material)), 'TLSv1.2'), 'TLSv1.2');
    assert.equal(
      await attempt(createServer(serverTlsOptions(material, { minVersion: 'TLSv1.3' })), 'TLSv1.2'),
      'refused',
    );
  });
});
