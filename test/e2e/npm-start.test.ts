// The README's first run, exactly as written: `npm start` in the repository (no configuration file, so
// the built-in defaults: ./data, local domain localhost, 127.0.0.1:2525/2587/2465/2110/2995/2143/2993/2419
// and the admin page on 8025),
// `npx tern user add` while it runs, a message sent with Python's smtplib to 127.0.0.1:2525, read back
// with `npx tern mailbox list/cat`, then over IMAP with imapflow on imaps (2993: read, flag, search,
// copy to Archive), then with Python's poplib over STLS (2110) and implicit TLS (2995), which delete what
// they read, then the Archive copy deleted over IMAP, then the admin page (the first admin made with
// `npx tern admin add`, a login at http://127.0.0.1:8025 that finds the message's trace), then Ctrl-C
// (SIGINT to the process group, as a terminal sends it).
// The defaults use fixed ports and ./data, so this test skips (saying why) when a port is taken or a
// ./tern.toml would change the defaults, and removes only what it made: its uniquely named user, and
// ./data if there was none before.
// Deliberately NOT here: anything the other e2e files cover on ephemeral ports.

import assert from 'node:assert/strict';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import type { ProcessResult } from './harness.ts';
import { ROOT, havePython, poplib, runProcess, smtplib, waitFor } from './harness.ts';

const PORTS = [2525, 2587, 2465, 2110, 2995, 2143, 2993, 2419, 8025] as const;
const DATA_DIR = join(ROOT, 'data');

async function portFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function whyNot(): Promise<string | false> {
  if (!havePython()) return 'python3 with smtplib is not available on this machine';
  if (existsSync(join(ROOT, 'tern.toml')))
    return `${join(ROOT, 'tern.toml')} exists: npm start would not use the defaults`;
  for (const port of PORTS) {
    if (!(await portFree(port))) return `127.0.0.1:${port} is in use: npm start needs the default ports`;
  }
  return false;
}

const skip = await whyNot();

/** The environment of a person's shell: no TERN_CONFIG, so the defaults apply. */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env['TERN_CONFIG'];
  return env;
}

/** `npx tern ARGS` in the repository, as the README says. */
function npxTern(args: readonly string[], stdin = ''): Promise<ProcessResult> {
  return runProcess('npx', ['tern', ...args], { cwd: ROOT, stdin, env: userEnv() });
}

/**
 * Both npm and the server it starts stop themselves when this process goes away (their stdin pipe ends),
 * so a test run that dies never leaves a server on the default ports. Changes nothing else.
 */
const WATCHDOG =
  '--import=data:text/javascript,' +
  encodeURIComponent(
    // The main thread only: NODE_OPTIONS preloads run in every worker thread too (session threads).
    'import{isMainThread}from"node:worker_threads";if(isMainThread){' +
      'process.stdin.on("end",()=>process.kill(process.pid,"SIGTERM"));' +
      'process.stdin.on("error",()=>{});process.stdin.resume();process.stdin.unref();}',
  );

describe('npm start, as the README says', { skip }, () => {
  const address = `e2e-${randomBytes(6).toString('hex')}@localhost`;
  const dataExisted = existsSync(DATA_DIR);
  let npm: ChildProcessWithoutNullStreams | null = null;
  let output = '';
  let outputClosed: Promise<void> = Promise.resolve();
  let userAdded = false;
  const adminName = `e2e-${randomBytes(4).toString('hex')}`;
  let adminAdded = false;

  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      if (npm?.pid !== undefined) process.kill(-npm.pid, signal);
    } catch {
      // The group is already gone.
    }
  };
  const onExit = (): void => killGroup('SIGKILL');
  process.once('exit', onExit);

  after(async () => {
    // Normally stopped by the test; after a failure, stop it here (Ctrl-C, then harder).
    killGroup('SIGINT');
    const timer = setTimeout(() => killGroup('SIGKILL'), 15_000);
    await outputClosed;
    clearTimeout(timer);
    process.off('exit', onExit);
    if (userAdded) {
      const del = await npxTern(['user', 'del', address]);
      assert.equal(del.code, 0, `could not delete ${address}: ${del.stderr}`);
    }
    if (adminAdded) {
      const del = await npxTern(['admin', 'del', adminName]);
      assert.equal(del.code, 0, `could not delete admin ${adminName}: ${del.stderr}`);
    }
    if (!dataExisted) rmSync(DATA_DIR, { recursive: true, force: true });
  });

  test('start, add a user, send with smtplib, read it back, stop with Ctrl-C', async () => {
    const nodeOptions = [process.env['NODE_OPTIONS'], WATCHDOG].filter(Boolean).join(' ');
    // Its own process group, so that SIGINT reaches npm and the server together, as a terminal's Ctrl-C.
    npm = spawn('npm', ['start'], {
      cwd: ROOT,
      detached: true,
      env: userEnv({ NODE_OPTIONS: nodeOptions }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    npm.stdin.on('error', () => undefined);
    npm.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    npm.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    // The server shares npm's stdout: the pipe closes only once every process of the group has exited.
    outputClosed = new Promise((resolve) => npm!.stdout.once('close', () => resolve()));

    await waitFor(
      'the nine listening lines of the defaults',
      () => {
        if (npm!.exitCode !== null && !output.includes('listening admin'))
          throw new Error(`npm start exited ${npm!.exitCode}:\n${output}`);
        return output.includes('listening admin') ? true : undefined;
      },
      30_000,
    );
    for (const line of [
      'listening smtp 127.0.0.1:2525 (starttls)',
      'listening submission 127.0.0.1:2587 (starttls)',
      'listening submissions 127.0.0.1:2465 (implicit)',
      'listening pop3 127.0.0.1:2110 (starttls)',
      'listening pop3s 127.0.0.1:2995 (implicit)',
      'listening imap 127.0.0.1:2143 (starttls)',
      'listening imaps 127.0.0.1:2993 (implicit)',
      'listening managesieve 127.0.0.1:2419 (starttls)',
      'listening admin 127.0.0.1:8025 (none)',
    ]) {
      assert.ok(output.split('\n').includes(line), `missing "${line}" in:\n${output}`);
    }

    // While the server runs, as in the README's quick start.
    const password = 'correct horse battery staple';
    const add = await npxTern(['user', 'add', address, '--password-stdin'], `${password}\n`);
    assert.equal(add.code, 0, add.stderr);
    userAdded = true;

    const subject = `npm start ${address}`;
    const sent = await smtplib({
      port: 2525,
      mode: 'plain',
      action: 'send_message',
      message: {
        headers: [
          ['From', 'bob@example.org'],
          ['To', address],
          ['Subject', subject],
        ],
        body: 'First message.\n',
      },
    });
    assert.equal(sent.ok, true, JSON.stringify(sent));

    const listed = await waitFor(
      `the message in ${address}'s mailbox`,
      async () => {
        const r = await npxTern(['mailbox', 'list', address, '--json']);
        assert.equal(r.code, 0, r.stderr);
        const messages = JSON.parse(r.stdout) as { id: string; from: string; subject: string }[];
        return messages.length > 0 ? messages : undefined;
      },
      20_000,
      200,
    );
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.subject, subject);
    assert.equal(listed[0]!.from, 'bob@example.org');
    const cat = await npxTern(['mailbox', 'cat', address, listed[0]!.id]);
    assert.equal(cat.code, 0, cat.stderr);
    assert.match(cat.stdout, /^Return-Path: <bob@example\.org>\r\n/);
    assert.match(cat.stdout, /\r\nReceived: from [^\r\n]+\r\n\tby localhost \(Tern\) with ESMTP id /);
    assert.ok(cat.stdout.endsWith('\r\n\r\nFirst message.\r\n'), JSON.stringify(cat.stdout));

    // An IMAP client (imapflow, implicit TLS) reads it byte for byte, flags it, finds it by SEARCH and
    // copies it to Archive, leaving the INBOX copy for POP3.
    const imap = new ImapFlow({
      host: '127.0.0.1',
      port: 2993,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: address, pass: password },
      logger: false,
    });
    await imap.connect();
    try {
      const lock = await imap.getMailboxLock('INBOX');
      try {
        const message = await imap.fetchOne('1', { source: true, envelope: true, uid: true });
        assert.ok(message !== false);
        assert.equal(message.source?.toString('utf8'), cat.stdout);
        assert.equal(message.envelope?.subject, subject);
        assert.equal(await imap.messageFlagsAdd('1', ['\\Flagged']), true);
        assert.deepEqual(await imap.search({ flagged: true, subject: 'npm start' }), [1]);
        const copied = await imap.messageCopy('1', 'Archive');
        assert.ok(copied !== false && copied.uidMap?.size === 1, 'COPY gave a COPYUID mapping');
      } finally {
        lock.release();
      }
    } finally {
      await imap.logout();
    }

    // A mail client reads it over POP3 with STLS, byte for byte, and leaves it; then one on pop3s
    // (implicit TLS) reads it again and deletes it.
    const login = [
      ['user', address],
      ['pass', password],
    ];
    const stls = await poplib({
      port: 2110,
      mode: 'stls',
      steps: [...login, ['stat'], ['retr', 1], ['quit']],
    });
    assert.equal(stls.ok, true, JSON.stringify(stls));
    assert.match(stls.tls ?? '', /^TLSv1\.[23]$/);
    assert.deepEqual(
      stls.steps.map((a) => a.ok),
      [true, true, true, true, true],
      JSON.stringify(stls.steps),
    );
    assert.equal(stls.steps[2]!.count, 1);
    assert.equal(stls.steps[2]!.size, Buffer.byteLength(cat.stdout));
    assert.equal(Buffer.from(stls.steps[3]!.b64!, 'base64').toString('utf8'), cat.stdout);
    const implicit = await poplib({
      port: 2995,
      mode: 'ssl',
      steps: [...login, ['retr', 1], ['dele', 1], ['quit']],
    });
    assert.equal(implicit.ok, true, JSON.stringify(implicit));
    assert.deepEqual(
      implicit.steps.map((a) => a.ok),
      [true, true, true, true, true],
      JSON.stringify(implicit.steps),
    );
    assert.equal(Buffer.from(implicit.steps[2]!.b64!, 'base64').toString('utf8'), cat.stdout);
    const after = await npxTern(['mailbox', 'list', address, '--json']);
    assert.deepEqual(JSON.parse(after.stdout), [], 'deleted over POP3: gone from tern mailbox list');

    // The Archive copy, deleted over IMAP.
    const imap2 = new ImapFlow({
      host: '127.0.0.1',
      port: 2993,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: address, pass: password },
      logger: false,
    });
    await imap2.connect();
    try {
      const lock = await imap2.getMailboxLock('Archive');
      try {
        assert.equal(await imap2.messageDelete('1:*'), true);
        const status = await imap2.status('Archive', { messages: true });
        assert.equal(status === false ? -1 : status.messages, 0);
      } finally {
        lock.release();
      }
    } finally {
      await imap2.logout();
    }

    // The admin page, as the README says: the first admin from the command line, then a login at
    // http://127.0.0.1:8025 that finds the message's trace.
    const adminPassword = 'admin password for the e2e run';
    const made = await npxTern(['admin', 'add', adminName, '--password-stdin'], `${adminPassword}\n`);
    assert.equal(made.code, 0, made.stderr);
    adminAdded = true;
    const page = await fetch('http://127.0.0.1:8025/');
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>Tern admin<\/title>/);
    const adminLogin = await fetch('http://127.0.0.1:8025/api/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: adminName, password: adminPassword }),
    });
    assert.equal(adminLogin.status, 200, await adminLogin.clone().text());
    const cookie = (adminLogin.headers.get('set-cookie') ?? '').split(';')[0]!;
    const trace = await fetch(`http://127.0.0.1:8025/api/trace?to=${encodeURIComponent(address)}`, {
      headers: { Cookie: cookie },
    });
    const traced = (await trace.json()) as { messages: { events: { event: string }[] }[] };
    assert.ok(
      traced.messages[0]?.events.some((e) => e.event === 'delivered'),
      JSON.stringify(traced),
    );

    // Ctrl-C: the whole foreground group gets SIGINT; the server shuts down in order.
    killGroup('SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      outputClosed.then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 20_000))),
    ]);
    clearTimeout(timer);
    assert.ok(stopped, `still running 20 s after SIGINT:\n${output.slice(-2000)}`);
    assert.match(output, /"event":"server\.stopped"/, 'the server logged a clean stop');
    for (const port of PORTS) assert.ok(await portFree(port), `127.0.0.1:${port} still bound after the stop`);
  });
});
