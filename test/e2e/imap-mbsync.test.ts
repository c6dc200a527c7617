// mbsync (Debian's isync) against Tern's IMAP listeners, as a person runs it: a private mbsyncrc with
// an IMAPStore (implicit TLS for one user, STARTTLS for the other, the server's self-signed certificate
// pinned with CertificateFile), a Maildir store with SubFolders Verbatim, and one Channel with
// `Patterns *`, `Sync All`, `Create Both`, `Expunge Both`. Users are added with `tern user add
// --password-stdin` (so their SCRAM-SHA-256 secret exists: mbsync picks the strongest mechanism offered
// and never falls back). The scenario, one step after the other for `alice@` and for `jürgen@`:
// mail delivered over SMTP is pulled into the Maildir (bytes equal to `tern mailbox cat`, the file's mtime
// the INTERNALDATE: CopyArrivalDate); flags set and cleared in the Maildir (file names `:2,FPRS`) reach
// Tern, and flags set on Tern reach the Maildir; mail delivered later is pulled alone; messages written
// into local folders are APPENDed with their flags and dates (one of 1.1 MiB); a message deleted and
// expunged on Tern goes locally, one trashed locally (T) goes from Tern; a folder created locally (nested,
// Verbatim) is created on Tern, and a second run brings its parent back; `Entwürfe`, a UTF-8 folder
// name, is created on Tern (isync ≥ 1.5; isync 1.4 sends the name raw without ENABLE, which RFC 3501
// §5.1.3 forbids: then Tern must refuse it and create nothing); a UTF-8 folder made on Tern (Über)
// syncs both ways (under its modified UTF-7 name with isync 1.4); and a run with nothing to do changes
// nothing on either side (no write command sent, same files, same UIDNEXT/HIGHESTMODSEQ). With
// `Remove Both`: a folder made on Tern comes and goes with it; one emptied and removed locally is
// DELETEd on Tern.
// Every mbsync run records the IMAP dialogue (-Dn), and a failing step prints it.
// Deliberately NOT here: IMAP protocol details (imap.test.ts with imapflow, the pure session's tests);
// the Tern-side view and changes use imapflow and `tern mailbox list --json` only as tools.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import type { Tern } from './harness.ts';
import { runProcess, smtplib, startTern, waitFor } from './harness.ts';

const version = /isync (\d+)\.(\d+)/.exec(
  spawnSync('mbsync', ['--version'], { encoding: 'utf8' }).stdout ?? '',
);
const skip = version ? false : 'mbsync is not installed here (Debian: isync; .ci/run installs it)';
const major = Number(version?.[1] ?? 0);
const minor = Number(version?.[2] ?? 0);
/** isync 1.5 renamed SSLType to TLSType and learnt non-ASCII mailbox names (its NEWS). */
const isync15 = major > 1 || (major === 1 && minor >= 5);

const USERS = [
  {
    address: 'alice@example.test',
    password: 'alice pw',
    tls: 'IMAPS',
    tag: 'alice',
    nested: 'Projects/2026',
  },
  {
    address: 'jürgen@example.test',
    password: 'jürgen pw',
    tls: 'STARTTLS',
    tag: 'Grüße 日本',
    nested: 'Projekte/2026',
  },
] as const;
type User = (typeof USERS)[number];

/** The arrival date of the messages written into the Maildir (their mtime; CopyArrivalDate). */
const ARRIVED = new Date('2024-03-01T12:34:56Z');

/** The special-use folders Tern creates at first login (issue 13), and INBOX. */
const FIRST_FOLDERS = ['Archive', 'Drafts', 'INBOX', 'Junk', 'Sent', 'Trash'];

/** Maildir info flags (the `:2,` suffix) and the IMAP flags mbsync maps them to. */
const MAILDIR_FLAGS: Readonly<Record<string, string>> = {
  D: '\\Draft',
  F: '\\Flagged',
  P: '$Forwarded',
  R: '\\Answered',
  S: '\\Seen',
  T: '\\Deleted',
};

function imapFlags(letters: string): string[] {
  return [...letters].map((l) => MAILDIR_FLAGS[l]!).sort();
}

/** LF line ends, and without the X-TUID header mbsync inserts into every message it propagates. */
function comparable(bytes: Buffer | string): string {
  return bytes
    .toString()
    .replace(/\r\n/g, '\n')
    .replace(/^X-TUID: [^\n]*\n/m, '');
}

interface LocalMessage {
  readonly path: string;
  readonly flags: string;
  readonly subject: string;
}

/** All messages of one local Maildir folder (cur and new), with the flags of their file names. */
async function localMessages(folderDir: string): Promise<LocalMessage[]> {
  const out: LocalMessage[] = [];
  for (const sub of ['new', 'cur']) {
    let names: string[];
    try {
      names = await readdir(join(folderDir, sub));
    } catch {
      continue;
    }
    for (const name of names) {
      const path = join(folderDir, sub, name);
      const subject = /^Subject: ([^\r\n]*)/m.exec(await readFile(path, 'utf8'))?.[1] ?? '';
      out.push({ path, flags: /:2,([A-Za-z]*)$/.exec(name)?.[1] ?? '', subject });
    }
  }
  return out;
}

/** Every file under `root` (relative paths, sorted): the local side's state for "nothing changed". */
async function treeOf(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(root.length))
    .sort();
}

/** Rename a Maildir message into cur/ with exactly these flags (Maildir wants them in ASCII order). */
async function setLocalFlags(message: LocalMessage, letters: string): Promise<string> {
  const name = message.path.slice(message.path.lastIndexOf('/') + 1);
  const base = name.replace(/:2,[A-Za-z]*$/, '');
  const folderDir = message.path.slice(0, message.path.lastIndexOf('/', message.path.lastIndexOf('/') - 1));
  const target = join(folderDir, 'cur', `${base}:2,${[...letters].sort().join('')}`);
  await rename(message.path, target);
  return target;
}

describe('mbsync', { skip }, () => {
  let tern: Tern;
  let work: string;
  let certFile: string;
  before(async () => {
    tern = await startTern({
      // Every mbsync run and every imapflow check is a login; keep the lockout out of the way.
      tables: { auth: { lockout_threshold: 100, lockout_window_seconds: 600, lockout_seconds: 600 } },
    });
    work = await mkdtemp(join(tmpdir(), 'tern-mbsync-'));
    certFile = join(tern.dataDir, 'tls', 'cert.pem');
    // As an admin adds a user: the password hash and the SCRAM secret are both stored.
    for (const u of USERS) {
      const r = await tern.tern(['user', 'add', u.address, '--password-stdin'], `${u.password}\n`);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await tern?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const deliver = async (to: string, subject: string, body: string): Promise<void> => {
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
        body,
        cte: '8bit',
      },
    });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    await waitFor(`${subject} stored`, async () =>
      (await tern.storedMessages(to)).length > before ? true : undefined,
    );
  };

  /** A logged-in imapflow client over implicit TLS: the Tern side of each check. */
  const imap = async <T>(user: User, use: (client: ImapFlow) => Promise<T>): Promise<T> => {
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: tern.ports.imaps!,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: user.address, pass: user.password },
      logger: false,
      disableAutoIdle: true,
      connectionTimeout: 10_000,
    });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await use(client);
    } finally {
      await client.logout().catch(() => undefined);
    }
  };

  interface ServerMessage {
    readonly uid: number;
    readonly flags: string[];
    readonly source: Buffer;
    readonly subject: string;
    readonly internalDate: Date | undefined;
  }

  /** One folder's messages on Tern, by IMAP (UID order). */
  const serverMessages = (user: User, folder: string): Promise<ServerMessage[]> =>
    imap(user, async (client) => {
      const box = await client.mailboxOpen(folder, { readOnly: true });
      if (box.exists === 0) return [];
      const all = await client.fetchAll('1:*', { uid: true, flags: true, source: true, internalDate: true });
      return all.map((m) => {
        const source = m.source ?? Buffer.alloc(0);
        return {
          uid: m.uid,
          flags: [...(m.flags ?? new Set<string>())].sort(),
          source,
          subject: /^Subject: ([^\r\n]*)/m.exec(source.toString('utf8'))?.[1] ?? '',
          internalDate: m.internalDate === undefined ? undefined : new Date(m.internalDate),
        };
      });
    });

  /** Tern's folders with the numbers that any change would move. */
  const serverState = (user: User): Promise<Record<string, string>> =>
    imap(user, async (client) => {
      const state: Record<string, string> = {};
      for (const folder of await client.list()) {
        if (folder.flags.has('\\Noselect') || folder.flags.has('\\NonExistent')) {
          state[folder.path] = 'noselect';
          continue;
        }
        const s = await client.status(folder.path, {
          messages: true,
          uidNext: true,
          uidValidity: true,
          highestModseq: true,
        });
        state[folder.path] = s
          ? `messages=${s.messages} uidnext=${s.uidNext} uidvalidity=${s.uidValidity} modseq=${s.highestModseq}`
          : 'status failed';
      }
      return state;
    });

  const serverFolders = (user: User): Promise<string[]> =>
    imap(user, async (client) => (await client.list()).map((f) => f.path).sort());

  /** Where one user's local Maildir and mbsyncrc live (the sync state is in each Maildir folder). */
  const localOf = (user: User): { root: string; rc: string } => {
    const dir = join(work, user.address === USERS[0].address ? 'u0' : 'u1');
    return { root: join(dir, 'mail'), rc: join(dir, 'mbsyncrc') };
  };

  const writeRc = async (user: User): Promise<void> => {
    const { root, rc } = localOf(user);
    await mkdir(root, { recursive: true });
    const tlsKey = isync15 ? 'TLSType' : 'SSLType';
    await writeFile(
      rc,
      [
        'IMAPAccount tern',
        'Host 127.0.0.1',
        `Port ${user.tls === 'IMAPS' ? tern.ports.imaps : tern.ports.imap}`,
        `User ${user.address}`,
        `Pass "${user.password}"`,
        `${tlsKey} ${user.tls}`,
        // Trust exactly the server's own certificate (a "host" certificate in mbsync's terms): the TLS
        // check stays on, and nothing else is trusted.
        'SystemCertificates no',
        `CertificateFile ${certFile}`,
        '',
        'IMAPStore tern-far',
        'Account tern',
        '',
        'MaildirStore tern-near',
        `Path ${root}/`,
        `Inbox ${root}/INBOX`,
        'SubFolders Verbatim',
        '',
        'Channel tern',
        'Far :tern-far:',
        'Near :tern-near:',
        'Patterns *',
        'Sync All',
        'Create Both',
        'Expunge Both',
        // Folder deletions too (mbsync never deletes a folder that still holds messages).
        'Remove Both',
        // Arrival dates travel both ways: INTERNALDATE ↔ the Maildir file's mtime (APPEND with a date).
        'CopyArrivalDate yes',
        // Beside each Maildir folder's messages, as .mbsyncstate.
        'SyncState *',
        '',
      ].join('\n'),
    );
    await chmod(rc, 0o600);
  };

  /** `mbsync -a` with the IMAP dialogue on (-Dn); returns the exit code and everything it wrote. */
  const mbsync = async (user: User): Promise<{ code: number | null; output: string }> => {
    const r = await runProcess('mbsync', ['-c', localOf(user).rc, '-Dn', '-a'], {
      cwd: work,
      timeoutMs: 60_000,
      env: { ...process.env, HOME: work, LC_ALL: 'C.UTF-8' },
    });
    return { code: r.code, output: `${r.stdout}${r.stderr}` };
  };

  /** mbsync must succeed; on failure the message carries the end of the dialogue. */
  const sync = async (user: User): Promise<string> => {
    const r = await mbsync(user);
    assert.equal(r.code, 0, `mbsync failed:\n${r.output.slice(-8000)}`);
    return r.output;
  };

  /** The commands mbsync sent to Tern (the `F: >>> tag COMMAND` lines of -Dn). */
  const commandsIn = (output: string): string[] =>
    [...output.matchAll(/^(?:F: )?>>> \d+ ([^\r\n]*)/gm)].map((m) => m[1]!);

  for (const user of USERS) {
    test(`${user.address}: mbsync syncs both ways (${user.tls})`, async (t) => {
      await writeRc(user);
      const { root } = localOf(user);
      const first = `first ${user.tag}`;
      const second = `second ${user.tag}`;
      await deliver(user.address, first, `Body of ${first}.\n.A line that starts with a dot.\n`);
      await deliver(user.address, second, `Body of ${second}: Grüße, 日本語.\n`);

      await t.test('delivered mail is pulled into the Maildir, byte for byte', async () => {
        await sync(user);
        const local = await localMessages(join(root, 'INBOX'));
        assert.deepEqual(local.map((m) => m.subject).sort(), [first, second].sort());
        for (const m of local) assert.equal(m.flags, '', `${m.subject}: unseen on Tern, no flags here`);
        const stored = await tern.mailboxList(user.address);
        assert.equal(stored.length, 2);
        for (const entry of stored) {
          const mine = local.find((m) => m.subject === entry.subject);
          assert.ok(mine, `${entry.subject} is in the Maildir`);
          const original = await tern.mailboxCat(user.address, entry.id);
          assert.equal(comparable(await readFile(mine.path)), comparable(original), entry.subject);
          assert.equal(
            Math.floor((await stat(mine.path)).mtimeMs / 1000),
            Math.floor(Date.parse(entry.internalDate) / 1000),
            "CopyArrivalDate: the file's mtime is the INTERNALDATE",
          );
        }
        // Create Both: Tern's folders exist locally, as Maildirs under Path (SubFolders Verbatim), each
        // with its sync state (SyncState *).
        for (const folder of FIRST_FOLDERS) {
          const entries = await readdir(join(root, folder));
          assert.ok(
            entries.includes('cur') && entries.includes('.mbsyncstate'),
            `${folder}: ${entries.join(' ')}`,
          );
        }
      });

      await t.test('flags set in the Maildir (S, F, R, P) reach Tern', async () => {
        const [m] = (await localMessages(join(root, 'INBOX'))).filter((x) => x.subject === first);
        await setLocalFlags(m!, 'FPRS');
        await sync(user);
        const entry = (await tern.mailboxList(user.address)).find((e) => e.subject === first)!;
        assert.deepEqual([...entry.flags].sort(), imapFlags('FPRS'));
        const other = (await tern.mailboxList(user.address)).find((e) => e.subject === second)!;
        assert.deepEqual(other.flags, [], 'the other message is untouched');
      });

      await t.test('flags cleared in the Maildir are cleared on Tern', async () => {
        const [m] = (await localMessages(join(root, 'INBOX'))).filter((x) => x.subject === first);
        await setLocalFlags(m!, 'S');
        await sync(user);
        const entry = (await tern.mailboxList(user.address)).find((e) => e.subject === first)!;
        assert.deepEqual(entry.flags, ['\\Seen']);
      });

      await t.test('flags set on Tern reach the Maildir', async () => {
        const entry = (await tern.mailboxList(user.address)).find((e) => e.subject === second)!;
        await imap(user, async (client) => {
          await client.mailboxOpen('INBOX');
          assert.equal(
            await client.messageFlagsAdd(String(entry.uid), ['\\Flagged', '\\Seen'], { uid: true }),
            true,
          );
        });
        await sync(user);
        const [m] = (await localMessages(join(root, 'INBOX'))).filter((x) => x.subject === second);
        assert.equal(m!.flags, 'FS');
        assert.match(m!.path, /\/cur\//, 'a seen message lives in cur/');
      });

      const third = `third ${user.tag}`;
      await t.test('mail delivered after a sync is pulled alone', async () => {
        await deliver(user.address, third, `Body of ${third}.\n`);
        const entry = (await tern.mailboxList(user.address)).find((e) => e.subject === third)!;
        const output = await sync(user);
        const bodies = commandsIn(output).filter((c) => /BODY(\.PEEK)?\[\]/.test(c));
        assert.deepEqual(
          bodies.map((c) => /^UID FETCH (\S+)/.exec(c)?.[1]),
          [String(entry.uid)],
          `only the new message's body is fetched:\n${bodies.join('\n')}`,
        );
        const local = await localMessages(join(root, 'INBOX'));
        assert.deepEqual(local.map((m) => m.subject).sort(), [first, second, third].sort());
        const mine = local.find((m) => m.subject === third)!;
        assert.equal(mine.flags, '');
        assert.equal(
          comparable(await readFile(mine.path)),
          comparable(await tern.mailboxCat(user.address, entry.id)),
        );
      });

      const written = `written offline ${user.tag}`;
      const offline = [
        'From: me@example.org',
        `To: ${user.address}`,
        `Subject: ${written}`,
        `Message-ID: <offline.${USERS.indexOf(user)}@example.org>`,
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
        'MIME-Version: 1.0',
        '',
        'Written on a train, Grüße aus 日本.',
        '',
      ].join('\n');

      await t.test('a message written into a local folder is APPENDed to Tern with its flags', async () => {
        const path = join(root, 'Archive', 'cur', `1700000000.offline.host:2,FS`);
        await writeFile(path, offline);
        await utimes(path, ARRIVED, ARRIVED);
        const output = await sync(user);
        assert.ok(
          commandsIn(output).some((c) => c.startsWith('APPEND "Archive" ')),
          `mbsync APPENDed:\n${commandsIn(output).join('\n')}`,
        );
        const onTern = await serverMessages(user, 'Archive');
        assert.equal(onTern.length, 1);
        assert.equal(onTern[0]!.subject, written);
        assert.deepEqual(onTern[0]!.flags, imapFlags('FS'));
        assert.equal(comparable(onTern[0]!.source), offline);
        assert.match(onTern[0]!.source.toString('latin1'), /^[^\n]*\r\n/, 'stored with CRLF line ends');
        assert.equal(onTern[0]!.internalDate?.toISOString(), ARRIVED.toISOString(), 'APPEND kept the date');
      });

      await t.test('a large message (1.1 MiB) written locally is APPENDed whole', async () => {
        const lines = Array.from(
          { length: 16_000 },
          (_, i) => `line ${String(i).padStart(6, '0')} ${'x'.repeat(60)}\n`,
        );
        const big = `From: me@example.org\nTo: ${user.address}\nSubject: big ${user.tag}\n\n${lines.join('')}`;
        const path = join(root, 'Sent', 'cur', '1700000003.big.host:2,S');
        await writeFile(path, big);
        await utimes(path, ARRIVED, ARRIVED);
        await sync(user);
        const onTern = await serverMessages(user, 'Sent');
        assert.equal(onTern.length, 1);
        assert.equal(onTern[0]!.subject, `big ${user.tag}`);
        assert.deepEqual(onTern[0]!.flags, ['\\Seen']);
        assert.doesNotMatch(onTern[0]!.source.toString('latin1'), /[^\r]\n/, 'every line ends in CRLF');
        assert.equal(comparable(onTern[0]!.source), big);
      });

      await t.test('a message deleted and expunged on Tern goes from the Maildir', async () => {
        const entry = (await tern.mailboxList(user.address)).find((e) => e.subject === first)!;
        await imap(user, async (client) => {
          await client.mailboxOpen('INBOX');
          // STORE +FLAGS (\Deleted), then (UID) EXPUNGE.
          assert.equal(await client.messageDelete(String(entry.uid), { uid: true }), true);
        });
        assert.deepEqual(
          (await tern.mailboxList(user.address)).map((e) => e.subject),
          [second, third],
          'expunged on Tern',
        );
        await sync(user);
        assert.deepEqual(
          (await localMessages(join(root, 'INBOX'))).map((m) => m.subject).sort(),
          [second, third].sort(),
          'gone locally too',
        );
      });

      await t.test('a message trashed locally (T) is expunged from Tern', async () => {
        const [m] = (await localMessages(join(root, 'INBOX'))).filter((x) => x.subject === second);
        await setLocalFlags(m!, `${m!.flags}T`);
        const output = await sync(user);
        assert.deepEqual(
          (await tern.mailboxList(user.address)).map((e) => e.subject),
          [third],
          'gone from Tern',
        );
        assert.deepEqual(
          (await localMessages(join(root, 'INBOX'))).map((x) => x.subject),
          [third],
          'Expunge Both: gone locally',
        );
        assert.ok(
          commandsIn(output).some((c) => /^UID STORE \d+ \+FLAGS(\.SILENT)? \(\\Deleted\)$/.test(c)),
          `mbsync stored \\Deleted:\n${commandsIn(output).join('\n')}`,
        );
      });

      await t.test(`a folder created locally (${user.nested}) is created on Tern`, async () => {
        const dir = join(root, ...user.nested.split('/'));
        for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(dir, sub), { recursive: true });
        const note = offline.replace(written, `note in ${user.nested}`).replace(/<offline\./, '<nested.');
        await writeFile(join(dir, 'cur', '1700000001.nested.host:2,DS'), note);
        await sync(user);
        assert.ok((await serverFolders(user)).includes(user.nested), 'the folder exists on Tern');
        const onTern = await serverMessages(user, user.nested);
        assert.deepEqual(
          onTern.map((m) => [m.subject, m.flags]),
          [[`note in ${user.nested}`, imapFlags('DS')]],
        );
      });

      await t.test('a second run settles what the first created (parent folders)', async () => {
        // The first run may have made Tern create the parent (RFC 9051 §6.3.4 lets it); a second run
        // brings that to the Maildir. After it, the two sides list the same folders.
        await sync(user);
        const local = (await treeOf(root))
          .filter((p) => p.endsWith('/.uidvalidity'))
          .map((p) => p.slice(1, -'/.uidvalidity'.length))
          .sort();
        const selectable = Object.entries(await serverState(user))
          .filter(([, s]) => s !== 'noselect')
          .map(([f]) => f)
          .sort();
        assert.deepEqual(local, selectable);
      });

      if (isync15) {
        await t.test('a folder with a UTF-8 name (Entwürfe) created locally is created on Tern', async () => {
          const dir = join(root, 'Entwürfe');
          for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(dir, sub), { recursive: true });
          const draft = offline.replace(written, `Entwurf für ${user.tag}`).replace(/<offline\./, '<draft.');
          await writeFile(join(dir, 'cur', '1700000002.draft.host:2,D'), draft);
          await sync(user);
          assert.ok((await serverFolders(user)).includes('Entwürfe'), 'the folder exists on Tern');
          const onTern = await serverMessages(user, 'Entwürfe');
          assert.deepEqual(
            onTern.map((m) => [m.subject, m.flags]),
            [[`Entwurf für ${user.tag}`, ['\\Draft']]],
          );
        });
      } else {
        await t.test(
          'isync 1.4 sends a UTF-8 folder name (Entwürfe) raw, without ENABLE: Tern refuses it and creates nothing',
          async () => {
            // RFC 3501 §5.1.3 (and RFC 9051 §5.1 for a client that has not enabled IMAP4rev2 or
            // UTF8=ACCEPT, RFC 6855 §3): such a client must send modified UTF-7; 8-bit bytes in a quoted
            // string are a syntax error (RFC 3501 §9, QUOTED-CHAR is 7-bit). isync 1.5 fixes its side.
            const before = await serverFolders(user);
            const dir = join(root, 'Entwürfe');
            for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(dir, sub), { recursive: true });
            const r = await mbsync(user);
            assert.notEqual(r.code, 0, 'mbsync reports the refusal');
            const tag = /^(?:F: )?>>> (\d+) CREATE "Entw/m.exec(r.output)?.[1];
            assert.ok(tag, `mbsync sent CREATE:\n${r.output.slice(-4000)}`);
            assert.match(
              r.output,
              new RegExp(`^(?:F: )?${tag} (BAD|NO) `, 'm'),
              `the CREATE is answered with a tagged BAD or NO:\n${r.output.slice(-4000)}`,
            );
            assert.deepEqual(await serverFolders(user), before, 'no folder was created on Tern');
            await rm(dir, { recursive: true });
            await sync(user);
          },
        );
      }

      await t.test('a folder with a UTF-8 name made on Tern (Über) syncs', async () => {
        // Made by another client (imapflow). isync 1.5 enables UTF8=ACCEPT and keeps the name; isync 1.4
        // neither decodes nor enables, so the Maildir folder carries the modified UTF-7 name as listed
        // (RFC 3501 §5.1.3: Ü is U+00DC, base64 "ANw" of 00 DC), and SELECTs it by that name.
        const localName = isync15 ? 'Über' : '&ANw-ber';
        await imap(user, async (client) => {
          await client.mailboxCreate('Über');
          await client.append('Über', offline.replace(written, `über ${user.tag}`), ['\\Flagged']);
        });
        await sync(user);
        const local = await localMessages(join(root, localName));
        assert.deepEqual(
          local.map((m) => [m.subject, m.flags]),
          [[`über ${user.tag}`, 'F']],
        );
        await setLocalFlags(local[0]!, 'FS');
        await sync(user);
        const onTern = await serverMessages(user, 'Über');
        assert.deepEqual(
          onTern.map((m) => m.flags),
          [imapFlags('FS')],
          'and its flags go back',
        );
      });

      await t.test('a folder made on Tern comes to the Maildir, and goes when Tern deletes it', async () => {
        await imap(user, async (client) => {
          await client.mailboxCreate('Server-made');
        });
        await sync(user);
        assert.ok((await readdir(join(root, 'Server-made'))).includes('cur'), 'created locally');
        await imap(user, async (client) => {
          await client.mailboxDelete('Server-made');
        });
        const output = await sync(user);
        assert.ok(!(await serverFolders(user)).includes('Server-made'));
        await assert.rejects(readdir(join(root, 'Server-made')), { code: 'ENOENT' }, output.slice(-4000));
      });

      await t.test(`a folder emptied and removed locally (${user.nested}) is deleted on Tern`, async () => {
        const dir = join(root, ...user.nested.split('/'));
        const [m] = await localMessages(dir);
        await setLocalFlags(m!, `${m!.flags}T`);
        await sync(user);
        assert.deepEqual(await serverMessages(user, user.nested), [], 'emptied on Tern first');
        // mbsync's way to say "deleted" for a Maildir: its cur/ is gone (the sync state stays).
        await rm(join(dir, 'cur'), { recursive: true });
        const output = await sync(user);
        assert.ok(
          commandsIn(output).includes(`DELETE "${user.nested}"`),
          `mbsync sent DELETE:\n${commandsIn(output).join('\n')}`,
        );
        const folders = await serverFolders(user);
        assert.ok(!folders.includes(user.nested), `gone from Tern: ${folders.join(', ')}`);
        assert.ok(folders.includes(user.nested.split('/')[0]!), 'its parent stays');
      });

      await t.test('a run with nothing to do changes nothing on either side', async () => {
        const localBefore = await treeOf(root);
        const serverBefore = await serverState(user);
        const output = await sync(user);
        const writes = commandsIn(output).filter((c) =>
          /^(APPEND|CREATE|DELETE|RENAME|EXPUNGE|UID EXPUNGE|UID STORE|STORE|COPY|MOVE|UID COPY|UID MOVE)\b/.test(
            c,
          ),
        );
        assert.deepEqual(writes, [], 'no command that changes anything');
        assert.deepEqual(await treeOf(root), localBefore, 'the Maildir is unchanged');
        assert.deepEqual(await serverState(user), serverBefore, 'Tern is unchanged (counts, UIDs, modseq)');
      });
    });
  }
});
