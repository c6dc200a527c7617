import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../../core/ports.ts';
import { openStore } from '../../main.ts';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';

interface Seed {
  readonly folder: string;
  readonly flags: string[];
  readonly internalDateMs: number;
  readonly bytes: Buffer;
}

// CRLF as SMTP delivers it, From lines in the body (mbox must quote them), an 8-bit byte, UTF-8 headers,
// keywords, every system flag, and an internal date with milliseconds.
const SEEDS: readonly Seed[] = [
  {
    folder: 'INBOX',
    flags: ['\\Seen', '$Later'],
    internalDateMs: Date.UTC(2026, 0, 15, 12, 0, 5),
    bytes: Buffer.from(
      'From: Bob <bob@example.org>\r\nSubject: Hello\r\n\r\nFrom the start\r\n>From quoted\r\n',
    ),
  },
  {
    folder: 'INBOX',
    flags: [],
    internalDateMs: Date.UTC(2026, 0, 16, 8, 30, 0, 250),
    bytes: Buffer.concat([
      Buffer.from('From: =?UTF-8?Q?J=C3=BCrgen?= <jürgen@example.org>\r\nSubject: 日本\r\n\r\nbyte: '),
      Buffer.from([0xe9]),
      Buffer.from('\r\n'),
    ]),
  },
  {
    folder: 'Work',
    flags: ['\\Answered', '\\Flagged', '\\Deleted', '\\Draft', '$Forwarded', 'custom1'],
    internalDateMs: Date.UTC(2025, 11, 31, 23, 59, 59),
    bytes: Buffer.from('Subject: work\r\n\r\nlast\r\n'),
  },
  {
    folder: '日本',
    flags: ['\\Seen'],
    internalDateMs: Date.UTC(2024, 1, 29, 0, 0, 0),
    bytes: Buffer.from('Subject: =?UTF-8?B?5pel5pys?=\r\n\r\n東京\r\n'),
  },
];

const USERS = ['alice@example.test', 'jürgen@example.test'] as const;

async function seed(box: Sandbox, user: string): Promise<void> {
  const store = await openStore(box.config(), systemClock);
  try {
    for (const s of SEEDS) {
      if (s.folder !== 'INBOX' && (await store.status(user, s.folder)) === null) {
        await store.createFolder(user, s.folder);
      }
      const message = { flags: s.flags, internalDateMs: s.internalDateMs, content: Readable.from([s.bytes]) };
      // INBOX exists once something was delivered to it; append wants an existing folder.
      if (s.folder === 'INBOX') {
        const summary = { from: '', subject: '', date: '' };
        await store.deliver({
          ...message,
          user,
          mailbox: 'INBOX',
          deliveryKey: `${user}/${s.internalDateMs}`,
          summary,
        });
      } else await store.append(user, s.folder, message);
    }
    await store.subscribe(user, 'Work');
  } finally {
    await store.close();
  }
}

/** Every folder that holds messages, with each message's bytes, flags and internal date. */
async function contents(box: Sandbox, user: string): Promise<Record<string, unknown[]>> {
  const store = await openStore(box.config(), systemClock);
  try {
    const out: Record<string, unknown[]> = {};
    for (const f of await store.folders(user)) {
      const list = await store.list(user, f.name);
      if (list.length === 0) continue;
      out[f.name] = [];
      for (const m of list) {
        const chunks: Buffer[] = [];
        for await (const c of store.read(user, m.id)!) chunks.push(Buffer.from(c));
        out[f.name]!.push({ flags: m.flags, internalDateMs: m.internalDateMs, bytes: Buffer.concat(chunks) });
      }
    }
    return out;
  } finally {
    await store.close();
  }
}

/** What a copy should hold; an mbox From_ line carries whole seconds only. */
const expected = (wholeSeconds = false): Record<string, unknown[]> => {
  const out: Record<string, unknown[]> = {};
  for (const s of SEEDS) {
    (out[s.folder] ??= []).push({
      flags: [...s.flags].sort(systemFirst),
      internalDateMs: wholeSeconds ? Math.floor(s.internalDateMs / 1000) * 1000 : s.internalDateMs,
      bytes: s.bytes,
    });
  }
  return out;
};
const RANK = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'];
const systemFirst = (a: string, b: string): number =>
  (RANK.includes(a) ? RANK.indexOf(a) : 9) - (RANK.includes(b) ? RANK.indexOf(b) : 9);

describe('tern mailbox export → import round trip', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
    for (const u of [...USERS, 'copy@example.test', 'kopie-日本@example.test', 'mcopy@example.test']) {
      assert.equal((await box.tern(['user', 'add', u])).code, 0);
    }
    for (const u of USERS) await seed(box, u);
  });
  after(() => box.remove());

  for (const [user, target] of [
    ['alice@example.test', 'copy@example.test'],
    ['jürgen@example.test', 'kopie-日本@example.test'],
  ] as const) {
    test(`Maildir keeps bytes, flags, keywords, internal dates and subscriptions (${user})`, async () => {
      const dir = join(box.dir, `maildir-${target}`);
      const out = await box.tern(['mailbox', 'export', user, dir, '--json']);
      assert.equal(out.code, 0, out.stderr);
      const report = JSON.parse(out.stdout) as Record<string, unknown>;
      assert.equal(report['exported'], 4);
      assert.equal(report['format'], 'maildir');
      // What Dovecot reads: flags in names, keywords in dovecot-keywords, folders as Maildir++.
      assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('.')).sort(), ['.&ZeVnLA-', '.Work']);
      const work = await readdir(join(dir, '.Work', 'cur'));
      assert.equal(work.length, 1);
      assert.match(work[0]!, /^1767225599\.V\d+U1\.tern,S=\d+:2,DFRTab$/);
      assert.equal(
        await readFile(join(dir, '.Work', 'dovecot-keywords'), 'utf8'),
        '0 $Forwarded\n1 custom1\n',
      );
      assert.equal(
        (await stat(join(dir, '.Work', 'cur', work[0]!))).mtimeMs,
        Date.UTC(2025, 11, 31, 23, 59, 59),
      );
      assert.match(await readFile(join(dir, 'subscriptions'), 'utf8'), /^V\t2\n\n(.*\n)*Work\n/);

      const imp = await box.tern(['mailbox', 'import', target, dir]);
      assert.equal(imp.code, 0, imp.stderr);
      assert.match(imp.stdout, /^imported 4 messages \(\d+ B\) into 3 folders of /);
      assert.deepEqual(await contents(box, target), expected());
      const again = await box.tern(['mailbox', 'import', target, dir, '--json']);
      const second = JSON.parse(again.stdout) as Record<string, unknown>;
      assert.deepEqual([second['imported'], second['skipped']], [0, 4]);
      assert.deepEqual(await contents(box, target), expected());
      const folders = JSON.parse((await box.tern(['mailbox', 'folders', target, '--json'])).stdout) as {
        name: string;
        subscribed: boolean;
      }[];
      assert.equal(folders.find((f) => f.name === 'Work')?.subscribed, true);
      // A second export into the same Maildir writes nothing new.
      const reexport = JSON.parse(
        (await box.tern(['mailbox', 'export', user, dir, '--json'])).stdout,
      ) as Record<string, unknown>;
      assert.deepEqual([reexport['exported'], reexport['skipped']], [0, 4]);
    });

    test(`mbox (one file per folder) keeps bytes, flags, keywords and internal dates (${user})`, async () => {
      const dir = join(box.dir, `mbox-${target}`);
      const out = await box.tern(['mailbox', 'export', user, dir, '--format', 'mbox']);
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual((await readdir(dir)).sort(), ['&ZeVnLA-', 'Work', 'inbox']);
      const inbox = await readFile(join(dir, 'inbox'), 'utf8');
      assert.match(inbox, /^From MAILER-DAEMON Thu Jan 15 12:00:05 2026\n/);
      assert.match(inbox, /\r\n>From the start\r\n>>From quoted\r\n/);
      assert.match(inbox, /X-Keywords: \$Later\r\n/);
      const again = await box.tern([
        'mailbox',
        'export',
        user,
        join(dir, 'inbox'),
        '--format',
        'mbox',
        '--folder',
        'INBOX',
      ]);
      assert.equal(again.code, 1);
      assert.equal(again.stderr, `tern: ${join(dir, 'inbox')} exists: mbox export writes a new file\n`);

      const into = target === 'copy@example.test' ? 'mcopy@example.test' : target;
      if (into === target) {
        // jürgen's copy goes below a folder of its own, so it does not meet the Maildir copy.
        const imp = await box.tern(['mailbox', 'import', target, dir, '--format', 'mbox', '--folder', 'Alt']);
        assert.equal(imp.code, 0, imp.stderr);
        const all = await contents(box, target);
        const alt: Record<string, unknown[]> = {};
        for (const [name, list] of Object.entries(all)) {
          if (name === 'Alt') alt['INBOX'] = list;
          else if (name.startsWith('Alt/')) alt[name.slice(4)] = list;
        }
        assert.deepEqual(alt, expected(true));
      } else {
        const imp = await box.tern(['mailbox', 'import', into, dir, '--format', 'mbox']);
        assert.equal(imp.code, 0, imp.stderr);
        assert.deepEqual(await contents(box, into), expected(true));
      }
    });
  }
});

/**
 * A Maildir as Dovecot 2.3.19 leaves it (names, dovecot-keywords, dovecot-uidlist and subscriptions copied
 * from what `doveadm save`, `doveadm flags add` and `doveadm mailbox create -s` wrote, LF line endings),
 * built by hand so the test runs where Dovecot is not installed.
 */
async function dovecotStyleMaildir(root: string): Promise<void> {
  const file = async (path: string, text: string, mtimeMs?: number): Promise<void> => {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), text);
    if (mtimeMs !== undefined) await utimes(join(root, path), mtimeMs / 1000, mtimeMs / 1000);
  };
  for (const d of ['', '.Sent', '.&ZeVnLA-.&Z3FOrA-']) {
    for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(root, d, sub), { recursive: true });
  }
  await file('dovecot-keywords', '0 $Forwarded\n1 custom1\n2 $Junk\n');
  await file(
    'dovecot-uidlist',
    '3 V1796603540 N3 G0d3c\n1 :1796603535.M9P1.vm,S=24,W=26\n2 :1700000000.M1P1.vm,S=32,W=35\n',
  );
  await file('subscriptions', 'V\t2\n\n&ZeVnLA-\t&Z3FOrA-\nSent\n');
  // The UID list puts the newer file first: import follows Dovecot's UIDs, not the names.
  await file(
    'cur/1796603535.M9P1.vm,S=24,W=26:2,FPSac',
    'Subject: one\n\nbody one\n',
    Date.UTC(2026, 11, 7, 0, 32, 15),
  );
  await file(
    'new/1700000000.M1P1.vm,S=32,W=35',
    'Subject: two\n\nbody\nFrom here\n',
    Date.UTC(2023, 10, 14, 22, 13, 20),
  );
  await file('.Sent/maildirfolder', '');
  await file('.&ZeVnLA-.&Z3FOrA-/maildirfolder', '');
  await file('.&ZeVnLA-.&Z3FOrA-/dovecot-keywords', '0 日本\n1 $Work\n');
  await file(
    '.&ZeVnLA-.&Z3FOrA-/cur/1796603600.M5P5.vm,S=22,W=24:2,RTabz',
    'Subject: 東\n\n京\n',
    Date.UTC(2026, 11, 7, 0, 33, 20),
  );
}

describe('tern mailbox import', () => {
  let box: Sandbox;
  before(async () => {
    box = await createSandbox();
    for (const u of ['bob@example.test', '日本@example.test']) {
      assert.equal((await box.tern(['user', 'add', u])).code, 0);
    }
  });
  after(() => box.remove());

  for (const user of ['bob@example.test', '日本@example.test']) {
    test(`a Dovecot Maildir: folders, flags, keywords, UID order, dates, CRLF, subscriptions (${user})`, async () => {
      const root = join(box.dir, `dovecot-${user}`);
      await dovecotStyleMaildir(root);
      const r = await box.tern(['mailbox', 'import', user, root, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(r.stdout) as Record<string, unknown>;
      assert.deepEqual(report['folders'], [
        { name: 'INBOX', imported: 2, skipped: 0 },
        { name: '日本/東京', imported: 1, skipped: 0 },
        { name: 'Sent', imported: 0, skipped: 0 },
      ]);
      assert.deepEqual(report['warnings'], [
        `.&ZeVnLA-.&Z3FOrA-/cur/1796603600.M5P5.vm,S=22,W=24:2,RTabz: flag letters z are not in dovecot-keywords: left out`,
        `.&ZeVnLA-.&Z3FOrA-/cur/1796603600.M5P5.vm,S=22,W=24:2,RTabz: flag "日本" is not an IMAP flag: left out`,
      ]);
      const all = await contents(box, user);
      assert.deepEqual(all['INBOX'], [
        {
          flags: ['\\Seen', '\\Flagged', '$Forwarded', '$Junk'],
          internalDateMs: Date.UTC(2026, 11, 7, 0, 32, 15),
          bytes: Buffer.from('Subject: one\r\n\r\nbody one\r\n'),
        },
        {
          flags: [],
          internalDateMs: Date.UTC(2023, 10, 14, 22, 13, 20),
          bytes: Buffer.from('Subject: two\r\n\r\nbody\r\nFrom here\r\n'),
        },
      ]);
      assert.deepEqual(
        (all['日本/東京'] as { flags: string[] }[]).map((m) => m.flags),
        [['\\Answered', '\\Deleted', '$Work']],
      );
      const folders = JSON.parse((await box.tern(['mailbox', 'folders', user, '--json'])).stdout) as {
        name: string;
        subscribed: boolean;
        messages: number;
      }[];
      assert.deepEqual(
        folders.map((f) => [f.name, f.messages, f.subscribed]),
        [
          ['INBOX', 2, false],
          ['Sent', 0, true],
          ['日本', 0, false],
          ['日本/東京', 1, true],
        ],
      );
      const text = await box.tern(['mailbox', 'import', user, root]);
      assert.equal(
        text.stdout,
        `imported 0 messages (0 B) into 3 folders of ${user}; skipped 3 imported before\n`,
      );
    });
  }

  test('an mbox file into --folder, by Content-Length and From_ dates', async () => {
    const file = join(box.dir, 'old.mbox');
    await writeFile(
      file,
      'From mb@vm  Mon Dec 07 00:32:15 2026\nSubject: hi\nStatus: RO\nX-Status: F\nContent-Length: 21\n\n' +
        'body\nFrom the start\n\n\nFrom jürgen@example.org Thu Jan 15 12:00:05 2026\nSubject: 日本\n\n>From x\n',
    );
    const r = await box.tern(['mailbox', 'import', '日本@example.test', file, '--folder', 'Old/2026']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'imported 2 messages (66 B) into 1 folders of 日本@example.test\n');
    assert.deepEqual((await contents(box, '日本@example.test'))['Old/2026'], [
      {
        flags: ['\\Seen', '\\Flagged'],
        internalDateMs: Date.UTC(2026, 11, 7, 0, 32, 15),
        bytes: Buffer.from('Subject: hi\r\n\r\nbody\r\nFrom the start\r\n\r\n'),
      },
      {
        flags: [],
        internalDateMs: Date.UTC(2026, 0, 15, 12, 0, 5),
        bytes: Buffer.from('Subject: 日本\r\n\r\nFrom x\r\n'),
      },
    ]);
  });

  test('mistakes are named: missing path, a file as Maildir, a bad format, not an mbox, no user', async () => {
    const missing = await box.tern(['mailbox', 'import', 'bob@example.test', 'nowhere']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `tern: no such file or directory: ${join(box.dir, 'nowhere')}\n`);
    const notmbox = join(box.dir, 'plain.txt');
    await writeFile(notmbox, 'Subject: x\n\nhello\n');
    const asMaildir = await box.tern([
      'mailbox',
      'import',
      'bob@example.test',
      notmbox,
      '--format',
      'maildir',
    ]);
    assert.equal(asMaildir.stderr, `tern: ${notmbox} is a file, not a Maildir folder\n`);
    const bad = await box.tern(['mailbox', 'import', 'bob@example.test', notmbox, '--format', 'mh']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^tern: --format must be maildir or mbox, not 'mh'\n/);
    const r = await box.tern(['mailbox', 'import', 'bob@example.test', notmbox]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `tern: ${notmbox} is not an mbox file: it does not start with a "From " line\n`);
    const empty = join(box.dir, 'empty-dir');
    await mkdir(empty);
    const nomaildir = await box.tern(['mailbox', 'import', 'bob@example.test', empty]);
    assert.equal(nomaildir.stderr, `tern: no Maildir at ${empty}: no cur/ or new/ in it or in a .folder\n`);
    const ghost = await box.tern(['mailbox', 'import', 'ghost@example.test', notmbox]);
    assert.equal(ghost.stderr, 'tern: no such user: ghost@example.test\n');
    const nofolder = await box.tern([
      'mailbox',
      'export',
      'bob@example.test',
      join(box.dir, 'x'),
      '--folder',
      'Nope',
    ]);
    assert.equal(nofolder.stderr, 'tern: no folder Nope for bob@example.test\n');
  });
});

/** doveadm without a server: USER and HOME instead of a userdb, mail files owned by nobody. */
function doveadmSetup(dir: string): ((args: string[], input?: string) => string) | null {
  if (spawnSync('doveadm', ['help'], { stdio: 'ignore' }).error !== undefined) return null;
  if (process.getuid?.() !== 0) return null; // doveadm refuses root and must become nobody
  const conf = join(dir, 'dovecot.conf');
  execFileSync('mkdir', ['-p', join(dir, 'run'), join(dir, 'state'), join(dir, 'home')]);
  chownSync(join(dir, 'home'), 65534, 65534);
  execFileSync('chmod', ['755', dir]);
  const config = [
    `base_dir = ${dir}/run`,
    `state_dir = ${dir}/state`,
    `log_path = ${dir}/dovecot.log`,
    `mail_location = maildir:${dir}/home/Maildir`,
    'mail_uid = 65534',
    'mail_gid = 65534',
    'first_valid_uid = 0',
    'first_valid_gid = 0',
    'namespace inbox {\n  inbox = yes\n  separator = /\n}',
    '',
  ].join('\n');
  execFileSync('sh', ['-c', `cat > '${conf}'`], { input: config });
  return (args, input) =>
    execFileSync('doveadm', ['-c', conf, ...args], {
      env: { ...process.env, USER: 'dove', HOME: join(dir, 'home') },
      ...(input === undefined ? {} : { input }),
      encoding: 'utf8',
    });
}

describe('with Dovecot itself (doveadm, no server)', () => {
  let box: Sandbox;
  let doveadm: ((args: string[], input?: string) => string) | null = null;
  before(async () => {
    box = await createSandbox();
    execFileSync('chmod', ['755', box.dir]);
    doveadm = doveadmSetup(join(box.dir, 'dovecot'));
    assert.equal((await box.tern(['user', 'add', 'jürgen@example.test'])).code, 0);
  });
  after(() => box.remove());

  test('imports what doveadm wrote, and doveadm reads what Tern exported', async (t) => {
    if (doveadm === null) return t.skip('doveadm is not installed here (or not running as root)');
    const dove = doveadm;
    dove(['save'], 'From: a@example.org\nSubject: hi\n\nbody\nFrom the start\n');
    dove(['mailbox', 'create', '-s', '日本/東京']);
    dove(['save', '-m', '日本/東京'], 'Subject: two\n\nzwei\n');
    dove(['flags', 'add', '\\Seen \\Flagged $Forwarded custom1', 'mailbox', 'INBOX', 'all']);
    const maildir = join(box.dir, 'dovecot', 'home', 'Maildir');
    const r = await box.tern(['mailbox', 'import', 'jürgen@example.test', maildir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const all = await contents(box, 'jürgen@example.test');
    assert.deepEqual(
      Object.entries(all).map(([name, list]) => [name, (list as { flags: string[] }[]).map((m) => m.flags)]),
      [
        ['INBOX', [['\\Seen', '\\Flagged', '$Forwarded', 'custom1']]],
        ['日本/東京', [[]]],
      ],
    );
    assert.deepEqual(
      (all['INBOX'] as { bytes: Buffer }[])[0]!.bytes,
      Buffer.from('From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\nFrom the start\r\n'),
    );

    // Back out, and into Dovecot again: flags, keywords and dates as Tern had them.
    const out = join(box.dir, 'dovecot', 'export');
    assert.equal((await box.tern(['mailbox', 'flags', 'jürgen@example.test', '1', '+$Later'])).code, 0);
    assert.equal((await box.tern(['mailbox', 'export', 'jürgen@example.test', out])).code, 0);
    execFileSync('chown', ['-R', '65534:65534', out]);
    const home2 = join(box.dir, 'dovecot', 'home2');
    await mkdir(home2);
    chownSync(home2, 65534, 65534);
    const conf = join(box.dir, 'dovecot', 'dovecot.conf');
    execFileSync(
      'doveadm',
      [
        '-c',
        conf,
        '-o',
        `mail_location=maildir:${home2}/Maildir`,
        'import',
        '-s',
        `maildir:${out}`,
        '',
        'all',
      ],
      {
        env: { ...process.env, USER: 'dove2', HOME: home2 },
      },
    );
    const fetched = execFileSync(
      'doveadm',
      [
        '-c',
        conf,
        '-o',
        `mail_location=maildir:${home2}/Maildir`,
        'fetch',
        'mailbox flags date.received',
        'all',
      ],
      { env: { ...process.env, USER: 'dove2', HOME: home2 }, encoding: 'utf8' },
    );
    assert.match(
      fetched,
      /mailbox: INBOX\nflags: \\Flagged \\Seen (\\Recent )?\$Forwarded custom1 \$Later\n/,
    );
    assert.match(fetched, /mailbox: 日本\/東京\n/);
    assert.ok(existsSync(join(out, 'dovecot-keywords')));
  });
});
