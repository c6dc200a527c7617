// The imaptest runner checked against the server the scripts were written for: a private Dovecot (its own
// config, base_dir, Maildir and passwd-file under a temporary folder, plain IMAP on a free loopback port,
// started in the foreground and killed by its pid) plays every script; Dovecot 2.3 passes all but the
// four that need what it does not offer without more set-up (CONTEXT=SORT, URLAUTH), which are skipped,
// as real imaptest reports them. An ASCII user and jürgen@ (with 日本@ as the second user) both play.
//
// Skipped where Dovecot is not installed or the test does not run as root (Dovecot drops privileges to
// its own users; running it unprivileged needs a different set-up this test does not attempt).
// Deliberately NOT here: Tern (imaptest.test.ts).

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { listScripts, runScript, type ImaptestTarget, type ScriptResult } from './runner.ts';

const DOVECOT = '/usr/sbin/dovecot';
const skip = !existsSync(DOVECOT)
  ? 'dovecot is not installed'
  : process.getuid?.() !== 0
    ? 'starting a private Dovecot needs root'
    : false;

const USERS = [
  { user: 'testuser', password: 'testpass' },
  { user: 'testuser2', password: 'testpass2' },
  { user: 'jürgen@example.test', password: 'jürgen pw' },
  { user: '日本@example.test', password: '日本 pw' },
] as const;

/** What Dovecot 2.3 without URLAUTH set-up lacks. */
const EXPECTED_SKIPS = ['sort-partial', 'urlauth', 'urlauth-binary', 'urlauth2'];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

function dovecotConfig(dir: string, port: number): string {
  return `
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = imaptest-${port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# UTF-8 user names (jürgen@) are refused by the default character set.
auth_username_chars =
log_path = ${dir}/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
mail_location = maildir:${dir}/mail/%u
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
first_valid_gid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=${dir}/mail/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
protocol imap {
  mail_max_userip_connections = 100
}
`;
}

async function greeted(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('data', (d: Buffer) => {
      socket.destroy();
      resolve(d.toString('latin1').startsWith('* OK'));
    });
    socket.once('error', () => resolve(false));
  });
}

describe('the imaptest runner against a private Dovecot', { skip }, () => {
  let dir = '';
  let port = 0;
  let dovecot: ChildProcess | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'imaptest-dovecot-'));
    await chmod(dir, 0o755);
    await mkdir(join(dir, 'mail'));
    await mkdir(join(dir, 'run'));
    await mkdir(join(dir, 'state'));
    port = await freePort();
    await writeFile(join(dir, 'dovecot.conf'), dovecotConfig(dir, port));
    await writeFile(join(dir, 'passwd'), USERS.map((u) => `${u.user}:{PLAIN}${u.password}\n`).join(''));
    // The mail folders belong to the user Dovecot runs mail processes as.
    const chown = spawn('chown', ['nobody:nogroup', join(dir, 'mail')]);
    await new Promise((resolve) => chown.once('exit', resolve));
    dovecot = spawn(DOVECOT, ['-F', '-c', join(dir, 'dovecot.conf')], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !(await greeted(port)); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(await greeted(port), 'the private Dovecot did not start');
  });

  after(async () => {
    if (dovecot !== undefined && dovecot.exitCode === null) {
      const exited = new Promise((resolve) => dovecot!.once('exit', resolve));
      dovecot.kill('SIGTERM');
      await exited;
    }
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  const connect = (): Promise<Duplex> =>
    new Promise((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port }, () => resolve(socket));
      socket.once('error', reject);
    });

  for (const [first, second] of [
    [USERS[0], USERS[1]],
    [USERS[2], USERS[3]],
  ] as const) {
    test(`every script as ${first.user}: all pass but the four Dovecot lacks the capabilities for`, async () => {
      const target: ImaptestTarget = {
        connect,
        user: first.user,
        password: first.password,
        user2: second,
        replyTimeoutMs: 10_000,
      };
      const results: ScriptResult[] = [];
      for (const path of await listScripts()) results.push(await runScript(path, target));
      const failed = results.filter((r) => r.status === 'fail');
      assert.deepEqual(
        failed.map((r) => `${r.name}: ${r.detail}`),
        [],
      );
      assert.deepEqual(
        results.filter((r) => r.status === 'skip').map((r) => r.name),
        EXPECTED_SKIPS,
      );
      assert.equal(results.filter((r) => r.status === 'pass').length, 68);
    });
  }
});
