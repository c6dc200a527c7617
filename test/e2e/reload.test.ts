// End to end: SIGHUP and `tern reload` against a real `tern serve`. A reload parses the file into a new
// snapshot and swaps it whole for new sessions (an open session keeps the one it started with), re-reads
// the TLS certificate, binds added listeners and closes removed ones; a file with errors is refused and
// the running snapshot stays. Each test rewrites the server's config file, then signals it, then waits
// for the server's own log line saying the reload was applied or refused.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, test } from 'node:test';
import { generate } from 'selfsigned';
import { RawSmtpClient, closedPort, ehlo, startTern, ternConfigToml } from './harness.ts';
import type { LogLine, Tern, TernOptions } from './harness.ts';

const servers: Tern[] = [];
after(async () => {
  for (const s of servers) await s.stop();
});

async function start(opts: TernOptions = {}): Promise<Tern> {
  const tern = await startTern(opts);
  servers.push(tern);
  return tern;
}

/** The `reloaded` or `refused` log line of reload attempt number `attempt` (1 for the first). */
function reloadOutcome(tern: Tern, attempt: number): Promise<LogLine> {
  return tern.waitForLog(
    `reload attempt ${attempt}`,
    (l) => (l.event === 'config.reloaded' || l.event === 'config.reload.refused') && l['attempt'] === attempt,
  );
}

async function sighup(tern: Tern, attempt: number): Promise<LogLine> {
  process.kill(tern.pid, 'SIGHUP');
  return reloadOutcome(tern, attempt);
}

async function sizeOf(client: RawSmtpClient): Promise<number> {
  const size = (await ehlo(client)).find((k) => k.startsWith('SIZE '));
  return Number(size?.slice(5));
}

async function newSessionSize(port: number): Promise<number> {
  const client = await RawSmtpClient.open(port);
  try {
    return await sizeOf(client);
  } finally {
    client.close();
  }
}

function connectRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(false)));
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

test('SIGHUP: a changed key applies to new sessions; an open session keeps its snapshot', async () => {
  const tern = await start({ limits: { max_message_bytes: 100_000 } });
  const open = await RawSmtpClient.open(tern.ports.smtp);
  assert.equal(await sizeOf(open), 100_000);

  await writeFile(tern.configPath, ternConfigToml(tern.dataDir, { limits: { max_message_bytes: 200_000 } }));
  const outcome = await sighup(tern, 1);
  assert.equal(outcome.event, 'config.reloaded', JSON.stringify(outcome));
  assert.equal(tern.alive(), true);

  assert.equal(await newSessionSize(tern.ports.smtp), 200_000, 'a new session sees the new snapshot');
  assert.equal(await newSessionSize(tern.ports.submission), 200_000);
  assert.equal(await sizeOf(open), 100_000, 'the open session still runs on the snapshot it started with');
  assert.equal((await open.command('MAIL FROM:<a@example.test> SIZE=150000')).code, 552);
  open.close();
});

test('SIGHUP: an added listener accepts, a removed one stops accepting, its open session finishes', async () => {
  const tern = await start();
  const session = await RawSmtpClient.open(tern.ports.submissions, { tls: true });
  await ehlo(session);
  const addedPort = await closedPort();
  const listeners = [
    '[[listeners]]',
    'service = "smtp"',
    `address = "127.0.0.1:${addedPort}"`,
    'tls = "none"',
    '',
  ].join('\n');
  // Keep smtp and submission (the first two port-0 listeners), drop submissions, add one on addedPort.
  const text = ternConfigToml(tern.dataDir, {}).replace(
    /\[\[listeners\]\]\nservice = "submissions"\naddress = "127.0.0.1:0"\ntls = "implicit"\n/,
    '',
  );
  assert.doesNotMatch(text, /submissions/);
  await writeFile(tern.configPath, `${text}\n${listeners}`);
  const outcome = await sighup(tern, 1);
  assert.equal(outcome.event, 'config.reloaded', JSON.stringify(outcome));
  assert.match(
    tern.outputText(),
    new RegExp(`^listening smtp 127\\.0\\.0\\.1:${addedPort} \\(none\\)$`, 'm'),
  );

  const added = await RawSmtpClient.open(addedPort);
  assert.ok(
    (await ehlo(added)).every((k) => k !== 'STARTTLS'),
    'the new listener has tls = "none"',
  );
  added.close();
  assert.equal(await connectRefused(tern.ports.submissions), true, 'the removed listener no longer accepts');
  assert.equal((await newSessionSize(tern.ports.smtp)) > 0, true, 'a kept listener still accepts');

  const noop = await session.command('NOOP');
  assert.equal(noop.code, 250, 'the session opened on the removed listener goes on');
  assert.equal((await session.command('QUIT')).code, 221);
  session.close();
});

async function writePair(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const pems = await generate([{ name: 'commonName', value: name }], { keySize: 2048, algorithm: 'sha256' });
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await writeFile(key, pems.private);
  await writeFile(cert, pems.cert);
  return { cert, key };
}

function servedCommonName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    s.once('secureConnect', () => {
      const cn = s.getPeerCertificate().subject.CN;
      s.destroy();
      resolve(Array.isArray(cn) ? cn.join(',') : String(cn));
    });
    s.once('error', reject);
  });
}

test('SIGHUP re-reads the certificate files (a renewal): new TLS connections get the new certificate', async () => {
  const certDir = await (await import('./auth-helpers.ts')).tempDir('tern-e2e-reload-certs-');
  const pair = await writePair(certDir, 'first.example');
  const opts: TernOptions = { tables: { tls: { cert: pair.cert, key: pair.key } } };
  const tern = await start(opts);
  assert.equal(await servedCommonName(tern.ports.submissions), 'first.example');

  await writePair(certDir, 'renewed.example');
  const outcome = await sighup(tern, 1);
  assert.equal(outcome.event, 'config.reloaded', JSON.stringify(outcome));
  assert.equal(await servedCommonName(tern.ports.submissions), 'renewed.example');

  // STARTTLS too.
  const client = await RawSmtpClient.open(tern.ports.smtp);
  await ehlo(client);
  assert.equal((await client.command('STARTTLS')).code, 220);
  await client.startTls();
  client.close();
});

test('SIGHUP with a broken file is refused with its errors logged; the server keeps running as it was', async () => {
  const tern = await start({ limits: { max_message_bytes: 100_000 } });
  await writeFile(tern.configPath, ternConfigToml(tern.dataDir, { limits: { max_message_bytes: 'big' } }));
  const refused = await sighup(tern, 1);
  assert.equal(refused.event, 'config.reload.refused');
  assert.equal(refused.level, 'error');
  assert.match(JSON.stringify(refused['errors']), /tern\.toml:\d+: limits\.max_message_bytes: /);
  assert.equal(tern.alive(), true);
  assert.equal(await newSessionSize(tern.ports.smtp), 100_000, 'the old snapshot still serves');

  // A data_dir change cannot be applied by a reload: refused too.
  await writeFile(tern.configPath, ternConfigToml(`${tern.dataDir}-moved`, {}));
  const moved = await sighup(tern, 2);
  assert.equal(moved.event, 'config.reload.refused');
  assert.match(JSON.stringify(moved['errors']), /data_dir: .*restart/);

  // Nor can catcher mode be switched on (sessions would accept anything the worker then delivers).
  await writeFile(tern.configPath, ternConfigToml(tern.dataDir, { catchMode: 'config' }));
  const catching = await sighup(tern, 3);
  assert.equal(catching.event, 'config.reload.refused');
  assert.match(JSON.stringify(catching['errors']), /catch: changed from false to true.*restart/);

  // The handler is still there: a good file is then applied.
  await writeFile(tern.configPath, ternConfigToml(tern.dataDir, { limits: { max_message_bytes: 300_000 } }));
  assert.equal((await sighup(tern, 4)).event, 'config.reloaded');
  assert.equal(await newSessionSize(tern.ports.smtp), 300_000);
});

test('tern reload signals the server found through the data directory lock and reports the outcome', async () => {
  const tern = await start({ limits: { max_message_bytes: 100_000 } });
  await writeFile(tern.configPath, ternConfigToml(tern.dataDir, { limits: { max_message_bytes: 250_000 } }));
  const ok = await tern.tern(['reload']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`reloaded tern serve \\(pid ${tern.pid}\\)`));
  assert.equal(await newSessionSize(tern.ports.smtp), 250_000);

  // A certificate path that cannot be read: the file parses, the server refuses, tern reload says why.
  await writeFile(
    tern.configPath,
    ternConfigToml(tern.dataDir, {
      tables: { tls: { cert: '/nonexistent/c.pem', key: '/nonexistent/k.pem' } },
    }),
  );
  const bad = await tern.tern(['reload']);
  assert.equal(bad.code, 1, bad.stdout);
  assert.match(bad.stderr, /refused.*\n.*tls\.cert: cannot read/);
  assert.equal(tern.alive(), true);
  assert.equal(await newSessionSize(tern.ports.smtp), 250_000);
});

test('tern reload without a running server fails and says so', async () => {
  const tern = await start();
  await tern.kill('SIGTERM');
  const r = await tern.tern(['reload']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no tern serve is running/);
});

test('the file warnings are logged at start and again at each reload, as FILE:LINE: key: message', async () => {
  const tern = await start({ limits: { max_recipients: 10 }, smtp: { trusted_networks: ['0.0.0.0/0'] } });
  const warnings = (): LogLine[] => tern.logs().filter((l) => l.event === 'config.warning');
  const texts = warnings().map((l) => String(l['text']));
  assert.equal(
    warnings().every((l) => l.level === 'warn'),
    true,
  );
  assert.ok(
    texts.some((t) => /tern\.toml:\d+: limits\.max_recipients: 10 is below 100/.test(t)),
    texts.join('\n'),
  );
  assert.ok(
    texts.some((t) =>
      /tern\.toml:\d+: smtp\.trusted_networks\[0\]: "0\.0\.0\.0\/0" is every IPv4 address/.test(t),
    ),
    texts.join('\n'),
  );
  const before = warnings().length;
  assert.equal((await sighup(tern, 1)).event, 'config.reloaded');
  assert.equal(warnings().length, before * 2, 'the reloaded file is checked and its warnings logged again');
});
