// End to end: `tern migrate sqlite-to-postgres` on a real single-node installation. A server stores mail
// for alice and jürgen, is refused the copy while it runs, is stopped; the copy moves everything into a
// fresh PostgreSQL database (created and dropped here) and verifies it; a second run copies nothing and
// verifies again; a node started on PostgreSQL then lists the same mail.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { postgresSkip, TEST_POSTGRES_URL } from '../support/postgres.ts';
import type { Tern } from './harness.ts';
import { CLI, havePython, runProcess, smtplib, startTern, ternConfigToml } from './harness.ts';

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

const skip = havePython() ? await postgresSkip() : 'python3 is not available';
const USERS = ['alice@example.test', 'jürgen@example.test'];

describe('tern migrate sqlite-to-postgres', { skip }, () => {
  const database = `tern_copy_${randomBytes(5).toString('hex')}`;
  const url = TEST_POSTGRES_URL.replace(/\/[^/]*$/, `/${database}`);
  let tern: Tern;
  before(async () => {
    await admin(`CREATE DATABASE ${database}`);
    tern = await startTern({ users: USERS });
    for (const user of USERS) {
      const r = await smtplib({
        port: tern.ports.smtp,
        mode: 'plain',
        action: 'sendmail',
        from: 'someone@remote.test',
        to: [user],
        raw: `From: someone@remote.test\r\nSubject: before the move\r\n\r\nhello ${user}\r\n`,
        mail_options: /[^\x20-\x7e]/.test(user) ? ['SMTPUTF8'] : [],
      });
      assert.ok(r.ok, JSON.stringify(r));
    }
  });
  after(async () => {
    await tern?.stop();
    await admin(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  });

  test('refused while the server runs; copied and verified once it stopped; a second run copies nothing', async () => {
    const running = await tern.tern(['migrate', 'sqlite-to-postgres', '--to', url]);
    assert.equal(running.code, 1);
    assert.match(running.stderr, /stop tern serve/);
    await tern.kill('SIGTERM');
    const first = await runProcess(
      process.execPath,
      [CLI, 'migrate', 'sqlite-to-postgres', '--to', url, '--json', '--config', tern.configPath],
      { cwd: tern.dir },
    );
    assert.equal(first.code, 0, first.stderr);
    const report = JSON.parse(first.stdout) as {
      ok: boolean;
      copied: Record<string, number>;
      mismatchCount: number;
    };
    assert.equal(report.ok, true);
    // alice, jürgen, and the postmaster tern serve added at start.
    assert.equal(report.copied['users'], 3);
    assert.equal(report.copied['messages'], 2);
    const again = await runProcess(
      process.execPath,
      [CLI, 'migrate', 'sqlite-to-postgres', '--to', url, '--json', '--config', tern.configPath],
      { cwd: tern.dir },
    );
    assert.equal(again.code, 0, again.stderr);
    const second = JSON.parse(again.stdout) as { ok: boolean; copied: Record<string, number> };
    assert.equal(second.ok, true);
    assert.equal(second.copied['messages'], 0);
    // The same installation, now on PostgreSQL: its mail is there.
    const pgConfig = join(tern.dir, 'tern-pg.toml');
    await writeFile(
      pgConfig,
      ternConfigToml(join(tern.dir, 'data-pg'), { tables: { storage: { backend: 'postgres', url } } }),
    );
    for (const user of USERS) {
      const list = await runProcess(
        process.execPath,
        [CLI, 'mailbox', 'list', user, '--json', '--config', pgConfig],
        { cwd: tern.dir },
      );
      assert.equal(list.code, 0, list.stderr);
      const messages = JSON.parse(list.stdout) as { subject: string }[];
      assert.deepEqual(
        messages.map((m) => m.subject),
        ['before the move'],
      );
    }
  });
});
