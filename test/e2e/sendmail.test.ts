// `tern sendmail` as real callers run it, against a real `tern serve`: a shell pipeline, Python's
// subprocess, PHP's mail() (Debian's php-cli, skipped when absent), each through a `sendmail` wrapper
// script of the kind docs/install.md describes (and `mailq` linked to it), and a `sendmail` symlink
// straight to bin/tern.mjs. Mail is queued by the CLI process and delivered by the server's worker, which
// notices through the queue's change counter. -bs talks to the server's smtp listener and may not relay.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { COMMANDS } from '../../src/cli/main.ts';
import { ROOT, runProcess, startTern, type ProcessResult, type Tern } from './harness.ts';

const registered = COMMANDS.some((c) => c.name === 'sendmail');
const notRegistered = registered ? false : 'tern sendmail is not registered in src/cli/main.ts COMMANDS yet';
const phpMissing =
  spawnSync('php', ['-v'], { stdio: 'ignore' }).status === 0
    ? false
    : 'php is not installed (apt-get install php-cli)';
const pythonMissing =
  spawnSync('python3', ['-c', 'pass'], { stdio: 'ignore' }).status === 0 ? false : 'python3 is not installed';

const NODE_BIN = join(ROOT, 'node_modules', '.bin');

describe('tern sendmail from real callers', { skip: notRegistered }, () => {
  let tern: Tern;
  let bin: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    tern = await startTern({
      users: ['bob@example.test', 'jürgen@example.test', '日本@example.test', 'root@example.test'],
      aliases: [['team@example.test', 'bob@example.test']],
    });
    // The client's configuration: the server's, with the smtp listener's real port (for -bs).
    const clientConfig = join(tern.dir, 'client.toml');
    const text = await readFile(tern.configPath, 'utf8');
    await writeFile(
      clientConfig,
      text.replace('address = "127.0.0.1:0"', `address = "127.0.0.1:${tern.ports.smtp}"`),
    );
    bin = await mkdtemp(join(tmpdir(), 'tern-sendmail-bin-'));
    const wrapper = join(bin, 'sendmail');
    await writeFile(
      wrapper,
      [
        '#!/bin/sh',
        `PATH=${NODE_BIN}:$PATH`,
        'case "${0##*/}" in mailq) set -- -bp "$@" ;; newaliases) set -- -bi "$@" ;; esac',
        `exec env TERN_CONFIG=${clientConfig} ${join(ROOT, 'bin', 'tern.mjs')} sendmail "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(wrapper, 0o755);
    await symlink(wrapper, join(bin, 'mailq'));
    await mkdtemp(join(bin, 'direct-')).then(async (dir) => {
      await symlink(join(ROOT, 'bin', 'tern.mjs'), join(dir, 'sendmail'));
      env = { ...process.env, DIRECT_SENDMAIL: join(dir, 'sendmail') };
    });
    env = { ...env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, TERN_CONFIG: clientConfig };
  });

  after(async () => {
    await tern.stop();
    await rm(bin, { recursive: true, force: true });
  });

  const sh = (script: string, stdin = ''): Promise<ProcessResult> =>
    runProcess('bash', ['-c', script], { env, stdin, cwd: tmpdir() });

  async function delivered(address: string, subject: string): Promise<string> {
    const found = await tern.waitForMessages(address, 1, 15_000).then(async () => {
      for (let i = 0; i < 150; i++) {
        const hit = (await tern.storedMessages(address)).find((m) => m.subject === subject);
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 100));
      }
      return undefined;
    });
    assert.ok(found, `no message "${subject}" for ${address}`);
    return (await tern.storedMessage(address, found.id)).toString('utf8');
  }

  test('a shell pipeline: printf | sendmail -t -i, Bcc removed, caller stamped', async () => {
    const r = await sh(
      "printf 'To: bob@example.test\\nBcc: team@example.test\\nSubject: from bash\\n\\nhello\\n.\\nstill here\\n' | sendmail -t -i",
    );
    assert.equal(r.code, 0, r.stderr);
    const message = await delivered('bob@example.test', 'from bash');
    assert.match(message, /Received: by mx\.example\.test \(Tern sendmail, from userid \d+\)/);
    assert.match(message, /\r\nFrom: <[^>]+@example\.test>\r\n/);
    assert.doesNotMatch(message, /^Bcc:/im);
    assert.match(message, /\r\n\r\nhello\r\n\.\r\nstill here\r\n$/);
  });

  test('a shell pipeline with UTF-8: -F name, -f sender, recipient jürgen@', async () => {
    const r = await sh(
      "printf 'To: Jürgen <jürgen@example.test>\\nSubject: Grüße aus bash\\n\\nGrüße\\n' | sendmail -oi -t -F 'Jürgen Cron' -f 日本@example.test",
    );
    assert.equal(r.code, 0, r.stderr);
    const message = await delivered('jürgen@example.test', 'Grüße aus bash');
    assert.match(message, /^Return-Path: <日本@example\.test>/m);
    assert.match(
      message,
      new RegExp(
        `From: =\\?UTF-8\\?B\\?${Buffer.from('Jürgen Cron').toString('base64')}\\?= <日本@example\\.test>`,
      ),
    );
  });

  test('an unknown local user: exit 67 to the shell, nothing delivered', async () => {
    const r = await sh('printf \'Subject: x\\n\\nx\\n\' | sendmail nobody@example.test; echo "exit=$?"');
    assert.match(r.stdout, /exit=67/);
    assert.match(r.stderr, /nobody@example\.test: user unknown/);
  });

  test(
    'Python subprocess: sendmail -t -oi, ASCII and UTF-8 recipients',
    { skip: pythonMissing },
    async () => {
      const script = [
        'import subprocess, sys',
        'for rcpt, subj in (("bob@example.test", "from python"), ("日本@example.test", "日本 from python")):',
        '    msg = f"To: {rcpt}\\nSubject: {subj}\\nContent-Type: text/plain; charset=utf-8\\n\\nbody\\n"',
        '    r = subprocess.run(["sendmail", "-t", "-oi"], input=msg.encode("utf-8"), capture_output=True)',
        '    print(rcpt, r.returncode, r.stderr.decode().strip())',
        'r = subprocess.run(["sendmail", "nobody@example.test"], input=b"x\\n", capture_output=True)',
        'print("unknown", r.returncode)',
      ].join('\n');
      const r = await runProcess('python3', ['-c', script], { env, cwd: tmpdir() });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), [
        'bob@example.test 0 ',
        '日本@example.test 0 ',
        'unknown 67',
      ]);
      await delivered('bob@example.test', 'from python');
      const message = await delivered('日本@example.test', '日本 from python');
      assert.match(message, /^To: 日本@example\.test\r$/m);
    },
  );

  test("PHP's mail() through sendmail_path, ASCII and UTF-8", { skip: phpMissing }, async () => {
    const php = [
      'var_dump(mail("bob@example.test", "from php", "hello from php\\n", "From: bob@example.test"));',
      'var_dump(mail("jürgen@example.test", "=?UTF-8?B?' +
        Buffer.from('Grüße from php').toString('base64') +
        '?=", "Grüße\\n", "Content-Type: text/plain; charset=utf-8"));',
      'var_dump(mail("nobody@example.test", "lost", "x"));',
    ].join('\n');
    const r = await runProcess('php', ['-d', `sendmail_path=${join(bin, 'sendmail')} -t -i`, '-r', php], {
      env,
      cwd: tmpdir(),
    });
    assert.deepEqual(r.stdout.trim().split('\n'), ['bool(true)', 'bool(true)', 'bool(false)'], r.stderr);
    const ascii = await delivered('bob@example.test', 'from php');
    assert.match(ascii, /\r\nFrom: bob@example\.test\r\n/);
    await delivered('jürgen@example.test', 'Grüße from php');
  });

  test('mailq (a link to the wrapper) lists the queue; -bv verifies; newaliases', async () => {
    const q = await sh('mailq');
    assert.equal(q.code, 0, q.stderr);
    assert.ok(q.stdout.length > 0);
    const v = await sh('sendmail -bv team@example.test 日本@example.test x@remote.test');
    assert.equal(v.code, 0, v.stderr);
    assert.deepEqual(v.stdout.trim().split('\n'), [
      'team@example.test... deliverable: mailbox bob@example.test',
      '日本@example.test... deliverable: mailbox 日本@example.test',
      'x@remote.test... deliverable: remote (queued for remote.test)',
    ]);
  });

  test('a `sendmail` symlink straight to bin/tern.mjs is `tern sendmail`', async () => {
    const r = await sh(
      'PATH=' + NODE_BIN + ':$PATH "$DIRECT_SENDMAIL" -bv bob@example.test jürgen@nowhere.example.test',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^bob@example\.test\.\.\. deliverable: mailbox bob@example\.test$/m);
  });

  test('-bs speaks SMTP with the smtp listener and is no open relay', async () => {
    const dialogue = [
      'EHLO client.test',
      'MAIL FROM:<someone@remote.test>',
      'RCPT TO:<victim@elsewhere.test>',
      'RCPT TO:<日本@example.test>',
      'QUIT',
      '',
    ].join('\r\n');
    const r = await sh('sendmail -bs', dialogue);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^220 /);
    assert.match(r.stdout, /\r\n55\d 5\.7\.1 [^\r]*\r\n/, 'the remote recipient is refused');
    assert.match(r.stdout, /\r\n221 /);
  });
});
