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
    assert.match(help.stdout, /tern mailbox list ADDRESS \[--json\]/);
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
