// End to end: the `tern` program as a person runs it, as child processes. `npx tern ...` for the
// management commands (the bin script, the pinned Node, real exit codes and streams), and `tern serve`
// started, probed over a real socket, and stopped with SIGTERM. Then the README's quick start: add a
// user while the server runs, send with nodemailer, read it back with `tern mailbox`.

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { createTransport } from 'nodemailer';
import { systemClock } from '../../src/core/ports.ts';
import { nullLogger } from '../../src/core/ports.ts';
import { openQueue } from '../../src/main.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { ProcessResult, Tern } from './harness.ts';
import { startTern } from './harness.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `npx tern ARGS` from the repository root, feeding `stdin`. */
async function npxTern(args: readonly string[], stdin = ''): Promise<Result> {
  const child = spawn('npx', ['tern', ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(stdin);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  // The first npx run in a fresh npm cache links the package and warns (engines: npm itself runs on
  // the system Node); that is npm talking, not tern.
  return { code, signal, stdout, stderr: stderr.replace(/^npm (warn|notice)\b.*\n/gm, '') };
}

function configToml(dataDir: string, listeners: string): string {
  return [
    `data_dir = ${JSON.stringify(dataDir)}`,
    'local_domains = ["example.test"]',
    listeners,
    '[limits]',
    'shutdown_grace_seconds = 2',
    '[log]',
    'level = "warn"',
    'format = "json"',
    '',
  ].join('\n');
}

describe('tern management commands as a program (npx tern)', () => {
  let dir: string;
  let config: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tern-e2e-cli-'));
    config = join(dir, 'tern.toml');
    await writeFile(config, configToml(join(dir, 'data'), ''));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('user add, duplicate, list --json and del: exit codes, stdout and stderr', async () => {
    const add = await npxTern(
      ['user', 'add', 'alice@example.test', '--password-stdin', '--config', config],
      'pw\n',
    );
    assert.equal(add.code, 0, add.stderr);
    assert.equal(add.stdout, 'added user alice@example.test\n');

    const dup = await npxTern(['user', 'add', 'alice@example.test', '--config', config]);
    assert.equal(dup.code, 1);
    assert.equal(dup.stderr, 'tern: user alice@example.test already exists\n');
    assert.equal(dup.stdout, '');

    const list = await npxTern(['user', 'list', '--json', '--config', config]);
    assert.equal(list.code, 0, list.stderr);
    const users = JSON.parse(list.stdout) as { address: string; hasPassword: boolean }[];
    assert.deepEqual(
      users.map((u) => [u.address, u.hasPassword]),
      [['alice@example.test', true]],
    );

    const del = await npxTern(['user', 'del', 'alice@example.test', '--config', config]);
    assert.equal(del.code, 0, del.stderr);
    const empty = await npxTern(['user', 'list', '--json', '--config', config]);
    assert.deepEqual(JSON.parse(empty.stdout), []);
  });

  test('usage errors exit 2 and unknown commands print usage, with no stack trace', async () => {
    const unknown = await npxTern(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^tern: unknown command 'frobnicate'\nUsage: tern <command>/);
    assert.doesNotMatch(unknown.stderr, /\n\s+at /);
    const help = await npxTern(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /tern mailbox list ADDRESS \[--folder NAME \| --all\] \[--json\]/);
  });
});

/** Start `tern serve` and wait until it has printed one `listening` line per configured listener. */
async function startServe(
  config: string,
  expected: number,
): Promise<{ child: ChildProcess; ports: Map<string, number>; lines: string[]; stderr: () => string }> {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'tern.mjs'), 'serve', '--config', config], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const lines: string[] = [];
  const ports = new Map<string, number>();
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tern serve did not start:\n${stderr}`));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tern serve exited with ${code}:\n${stderr}`));
    });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buffered += d;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const m = /^listening (\S+) (\S+):(\d+) \((\w+)\)$/.exec(line);
        if (m === null) continue;
        lines.push(line);
        ports.set(m[1]!, Number(m[3]));
        if (lines.length === expected) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
  });
  child.removeAllListeners('exit');
  return { child, ports, lines, stderr: () => stderr };
}

async function stopServe(
  child: ChildProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const closed = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  child.kill('SIGTERM');
  const [code, signal] = await closed;
  return { code, signal };
}

/** The first reply line the server sends on a new connection. */
async function greeting(port: number): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  try {
    let text = '';
    for await (const chunk of socket) {
      text += chunk as string;
      if (text.includes('\r\n')) return text.slice(0, text.indexOf('\r\n'));
    }
    return text;
  } finally {
    socket.destroy();
  }
}

describe('tern serve as a program', () => {
  let dir: string;
  let config: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tern-e2e-serve-'));
    config = join(dir, 'tern.toml');
    const listeners = [
      '[[listeners]]',
      'service = "smtp"',
      'address = "127.0.0.1:0"',
      'tls = "starttls"',
      '[[listeners]]',
      'service = "submissions"',
      'address = "127.0.0.1:0"',
      'tls = "implicit"',
    ].join('\n');
    await writeFile(config, configToml(join(dir, 'data'), listeners));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('prints one line per listener with the real port, answers 220, exits 0 on SIGTERM', async () => {
    const { child, ports, lines } = await startServe(config, 2);
    try {
      assert.match(lines[0]!, /^listening smtp 127\.0\.0\.1:\d+ \(starttls\)$/);
      assert.match(lines[1]!, /^listening submissions 127\.0\.0\.1:\d+ \(implicit\)$/);
      assert.notEqual(ports.get('smtp'), 0);
      assert.match(await greeting(ports.get('smtp')!), /^220 /);
    } finally {
      const { code, signal } = await stopServe(child);
      assert.equal(signal, null);
      assert.equal(code, 0);
    }
  });

  test('quick start: add a user while serving, send a message, read it with tern mailbox', async () => {
    const { child, ports, stderr } = await startServe(config, 2);
    try {
      const add = await npxTern(['user', 'add', 'alice@example.test', '--config', config]);
      assert.equal(add.code, 0, add.stderr);
      const transport = createTransport({
        host: '127.0.0.1',
        port: ports.get('smtp')!,
        secure: false,
        ignoreTLS: true,
      });
      await transport.sendMail({
        from: 'bob@example.org',
        to: 'alice@example.test',
        subject: 'quick start',
        text: 'Hello from the README.',
      });
      transport.close();

      // Delivery is asynchronous (queue → worker → mailbox): poll for a while.
      let messages: { id: string; subject: string; from: string }[] = [];
      for (let i = 0; i < 100 && messages.length === 0; i++) {
        const list = await npxTern(['mailbox', 'list', 'alice@example.test', '--json', '--config', config]);
        assert.equal(list.code, 0, list.stderr);
        messages = JSON.parse(list.stdout) as typeof messages;
        if (messages.length === 0) await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(messages.length, 1, `not delivered; server stderr:\n${stderr()}`);
      assert.equal(messages[0]!.subject, 'quick start');
      const cat = await npxTern([
        'mailbox',
        'cat',
        'alice@example.test',
        messages[0]!.id,
        '--config',
        config,
      ]);
      assert.equal(cat.code, 0, cat.stderr);
      assert.match(cat.stdout, /\r\nSubject: quick start\r\n/);
      assert.match(cat.stdout, /Hello from the README\./);
    } finally {
      const { code } = await stopServe(child);
      assert.equal(code, 0);
    }
  });
});

describe('issue 11: the CLI as an admin expects it (real processes)', () => {
  let dir: string;
  let config: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tern-e2e-cli11-'));
    config = join(dir, 'tern.toml');
    await writeFile(config, configToml(join(dir, 'data'), ''));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('exit codes: 0 for --version, 2 for usage (with the command usage), 1 for a read with no data', async () => {
    const version = await npxTern(['--version']);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^tern \d+\.\d+\.\d+\n$/);
    const unknown = await npxTern(['queue', 'hold', '--bogus', '--config', config]);
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /^tern: unknown option '--bogus'\nusage: tern queue hold ID\.\.\. \| --all \| - /,
    );
    const noIds = await npxTern(['queue', 'hold', '--config', config]);
    assert.equal(noIds.code, 2);
    const read = await npxTern(['queue', 'list', '--config', config]);
    assert.equal(read.code, 1);
    assert.equal(
      read.stderr,
      `tern: no data directory at ${join(dir, 'data')} (data_dir of ${config}): nothing to read\n`,
    );
  });
});

describe('issue 11: the running server logs what the CLI changed; tern send uses SCRAM', () => {
  let tern: Tern;
  const FAR_MS = Date.UTC(2100, 0, 1);
  before(async () => {
    // 'old@': made without a SCRAM secret (as accounts made before SCRAM are); jürgen@ by `tern user add`.
    tern = await startTern({ users: [{ address: 'old@example.test', password: 'pencil' }] });
    const add = await tern.tern(['user', 'add', 'jürgen@example.test', '--password-stdin'], 'pencil\n');
    assert.equal(add.code, 0, add.stderr);
  });
  after(() => tern.stop());

  /** A message for a remote recipient, put on the queue beside the server and deferred far ahead. */
  async function queued(): Promise<string> {
    const queue = await openQueue(
      loadConfig({ path: tern.configPath, cwd: tern.dir }),
      systemClock,
      nullLogger,
    );
    try {
      const writer = queue.begin();
      await writer.write(Buffer.from('From: jürgen@example.test\r\nSubject: held\r\n\r\nbody\r\n'));
      await writer.commit({
        sender: 'jürgen@example.test',
        body: '8BITMIME',
        smtputf8: true,
        ret: null,
        envid: null,
        recipients: [{ address: '日本@remote.example', notify: null, orcpt: null }],
        client: {
          ip: '127.0.0.1',
          port: 1,
          hostname: null,
          helo: 'test',
          esmtp: true,
          tls: null,
          authUser: null,
          service: 'submission',
        },
        receivedAtMs: Date.now(),
      });
      await queue.settle(writer.id, 0, {
        status: 'deferred',
        reply: '451 4.4.1 later',
        nextAttemptMs: FAR_MS,
      });
      return writer.id;
    } finally {
      await queue.close();
    }
  }

  test('queue hold with ids on stdin, user add, alias add: each is a cli.* line in the server log', async () => {
    const ids = [await queued(), await queued()];
    const hold = await tern.tern(['queue', 'hold', '-'], `${ids.join('\n')}\n`);
    assert.equal(hold.code, 0, hold.stderr);
    assert.equal(hold.stdout, ids.map((id) => `message ${id} held\n`).join(''));
    const line = await tern.waitForLog('cli.queue.hold', (l) => l.event === 'cli.queue.hold');
    assert.deepEqual(line['ids'], ids);
    assert.match(String(line['changedAt']), /^\d{4}-\d\d-\d\dT/);

    const add = await tern.tern(['user', 'add', '日本@example.test']);
    assert.equal(add.code, 0, add.stderr);
    const user = await tern.waitForLog(
      'cli.user.add',
      (l) => l.event === 'cli.user.add' && l['address'] !== 'jürgen@example.test',
    );
    assert.equal(user['address'], '日本@example.test');

    const alias = await tern.tern(['alias', 'add', 'info@example.test', '日本@example.test']);
    assert.equal(alias.code, 0, alias.stderr);
    const a = await tern.waitForLog('cli.alias.add', (l) => l.event === 'cli.alias.add');
    assert.deepEqual([a['alias'], a['target']], ['info@example.test', '日本@example.test']);

    const del = await tern.tern(['queue', 'delete', '--all', '--json']);
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(
      (JSON.parse(del.stdout) as { id: string }[]).map((r) => r.id),
      ids,
    );
    const deleted = await tern.waitForLog('cli.queue.delete', (l) => l.event === 'cli.queue.delete');
    assert.deepEqual(deleted['ids'], ids);
  });

  test('tern send prefers SCRAM-SHA-256, names it with --verbose, and --json reports the exchange', async () => {
    const r = await tern.tern(
      [
        'send',
        '--server',
        `127.0.0.1:${tern.ports.submission}`,
        '--tls',
        'may',
        '--auth',
        'jürgen@example.test',
        '--password-stdin',
        '--from',
        'jürgen@example.test',
        '--to',
        'jürgen@example.test',
        '--verbose',
        '--json',
      ],
      'pencil\n',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^tern: data directory .*\ntern: authenticated as jürgen@example\.test with SCRAM-SHA-256\n$/,
    );
    const report = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(report['mechanism'], 'SCRAM-SHA-256');
    assert.equal(report['authenticated'], 'jürgen@example.test');
    assert.equal(report['sent'], true);
    assert.deepEqual(report['recipients'], [
      {
        address: 'jürgen@example.test',
        accepted: true,
        reply: (report['recipients'] as { reply: string }[])[0]!.reply,
      },
    ]);
    assert.match(String(report['reply']), /^250 /);
    await tern.waitForMessages('jürgen@example.test', 1);
  });

  test('tern send: an account without a SCRAM secret still logs in (PLAIN after SCRAM is refused)', async () => {
    const send = (password: string): Promise<ProcessResult> =>
      tern.tern(
        [
          'send',
          '--server',
          `127.0.0.1:${tern.ports.submission}`,
          '--tls',
          'may',
          '--auth',
          'old@example.test',
          '--password-stdin',
          '--from',
          'old@example.test',
          '--to',
          'jürgen@example.test',
          '--verbose',
        ],
        `${password}\n`,
      );
    const ok = await send('pencil');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /\ntern: authenticated as old@example\.test with PLAIN\n$/);
    const wrong = await send('not-it');
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /tern: 127\.0\.0\.1:\d+: authentication failed \(535 /);
  });
});
