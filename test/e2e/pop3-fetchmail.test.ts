// Debian's fetchmail against Tern's POP3 listeners, as a person runs it from cron: with `keep` and UIDL
// tracking over STLS (a second run fetches nothing, a new message is fetched alone, the mailbox keeps
// everything), then without `keep` over implicit TLS (everything fetched once and deleted: gone from
// `tern mailbox list`). Each fetched message goes through an MDA that saves it to a file, and the saved
// messages are compared with what Tern stored.
// Deliberately NOT here: protocol details (pop3.test.ts, with poplib and a raw socket).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Tern } from './harness.ts';
import { runProcess, smtplib, startTern, waitFor } from './harness.ts';

const haveFetchmail = spawnSync('fetchmail', ['--version'], { stdio: 'ignore' }).status === 0;
const skip = haveFetchmail
  ? false
  : 'fetchmail is not installed here (Debian: fetchmail; .ci/run installs it)';

const USERS = [
  { address: 'alice@example.test', password: 'alice pw' },
  { address: 'jürgen@example.test', password: 'jürgen pw' },
] as const;

describe('fetchmail', { skip }, () => {
  let tern: Tern;
  let work: string;
  before(async () => {
    tern = await startTern({ users: [...USERS] });
    work = await mkdtemp(join(tmpdir(), 'tern-fetchmail-'));
  });
  after(async () => {
    await tern?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const deliver = async (to: string, subject: string): Promise<void> => {
    const before = (await tern.storedMessages(to)).length;
    const sent = await smtplib({
      port: tern.ports.smtp,
      mode: 'plain',
      action: 'send_message',
      mail_options: ['SMTPUTF8'],
      message: {
        headers: [
          ['From', 'sender@example.org'],
          ['To', to],
          ['Subject', subject],
        ],
        body: `Body of ${subject}.\n.A line that starts with a dot.\n`,
        cte: '8bit',
      },
    });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    await waitFor(`${subject} stored`, async () =>
      (await tern.storedMessages(to)).length > before ? true : undefined,
    );
  };

  /** Run fetchmail once for `user`; messages land as files in `box`. Exit 0 = mail fetched, 1 = none. */
  const fetch = async (
    user: (typeof USERS)[number],
    box: string,
    opts: { mode: 'stls' | 'implicit'; keep: boolean },
  ): Promise<{ code: number | null; files: string[]; output: string }> => {
    const mda = join(work, 'save.sh');
    await writeFile(mda, `#!/bin/sh\nexec cat > "${box}/$(date +%s%N)-$$.eml"\n`);
    await chmod(mda, 0o755);
    const port = opts.mode === 'stls' ? tern.ports.pop3! : tern.ports.pop3s!;
    const rc = join(work, `fetchmailrc-${opts.mode}`);
    await writeFile(
      rc,
      [
        'set no bouncemail',
        `poll 127.0.0.1 service ${port} protocol POP3 uidl auth password`,
        `  user "${user.address}" there with password "${user.password}" is "root" here`,
        opts.mode === 'stls' ? '  sslproto "TLS1.2+" no sslcertck' : '  ssl sslproto "TLS1.2+" no sslcertck',
        opts.keep ? '  keep' : '  no keep fetchall',
        `  mda "${mda}"`,
        '',
      ].join('\n'),
    );
    await chmod(rc, 0o600);
    const r = await runProcess(
      'fetchmail',
      [
        '--fetchmailrc',
        rc,
        '--idfile',
        join(work, `fetchids-${opts.mode}`),
        '--pidfile',
        join(work, 'fetchmail.pid'),
        '--nosyslog',
        '--nodetach',
        '--verbose',
      ],
      { cwd: work, timeoutMs: 60_000, env: { ...process.env, HOME: work, LC_ALL: 'C.UTF-8' } },
    );
    return { code: r.code, files: (await readdir(box)).sort(), output: `${r.stdout}${r.stderr}` };
  };

  for (const user of USERS) {
    test(`${user.address}: keep + UIDL over STLS, then no keep over implicit TLS`, async () => {
      const box = await mkdtemp(join(work, 'box-'));
      await deliver(user.address, `first for ${user.address}`);
      await deliver(user.address, `second for ${user.address}`);

      const first = await fetch(user, box, { mode: 'stls', keep: true });
      assert.equal(first.code, 0, first.output);
      assert.equal(first.files.length, 2, first.output);
      const stored = await tern.storedMessages(user.address);
      assert.equal(stored.length, 2, 'keep: the messages stay on the server');
      // fetchmail adds its own Received: (below Return-Path and Delivered-To); without it, what Tern
      // stored arrives line for line.
      for (const [i, m] of stored.entries()) {
        const original = (await tern.storedMessage(user.address, m.id)).toString('utf8');
        const saved = (await readFile(join(box, first.files[i]!), 'utf8')).replace(/\r\n/g, '\n');
        const withoutFetchmail = saved.replace(
          /^Received: from 127\.0\.0\.1 [^\n]*\n(?:[ \t][^\n]*\n)*/m,
          '',
        );
        assert.notEqual(withoutFetchmail, saved, 'fetchmail added its Received: line');
        assert.equal(withoutFetchmail, original.replace(/\r\n/g, '\n'), `fetched copy ${i + 1}`);
      }

      const again = await fetch(user, box, { mode: 'stls', keep: true });
      assert.equal(again.code, 1, `UIDL tracking: nothing new to fetch\n${again.output}`);
      assert.equal(again.files.length, 2);

      await deliver(user.address, `third for ${user.address}`);
      const third = await fetch(user, box, { mode: 'stls', keep: true });
      assert.equal(third.code, 0, third.output);
      assert.equal(third.files.length, 3, 'only the new message was fetched');
      const newest = await readFile(join(box, third.files[2]!), 'utf8');
      assert.match(newest, new RegExp(`Subject: third for ${user.address}`));

      const flush = await mkdtemp(join(work, 'flush-'));
      const all = await fetch(user, flush, { mode: 'implicit', keep: false });
      assert.equal(all.code, 0, all.output);
      assert.equal(all.files.length, 3, all.output);
      assert.deepEqual(
        await tern.mailboxList(user.address),
        [],
        'fetched without keep: deleted on the server',
      );
    });
  }
});
