// IMAP end to end with Python's imaplib (test/e2e/py/imap_client.py), the client a script or a backup job
// uses: STARTTLS then LOGIN, and IMAP4_SSL (RFC 9051 §6.2.1, RFC 8314), SELECT, FETCH of RFC822,
// BODY.PEEK[HEADER] and a partial BODY[TEXT]<0.10> (§6.4.5), STORE, COPY (UIDPLUS COPYUID, RFC 4315),
// EXPUNGE, STATUS, APPEND with a synchronizing literal, LOGOUT, with an ASCII and a UTF-8 user; the
// bytes compared with `tern mailbox cat`. SEARCH, SORT and THREAD (RFC 5256) in their own describe block.
// Deliberately NOT here: imapflow (imap.test.ts) and raw-socket abuse (imap-hostile.test.ts).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Tern } from './harness.ts';
import { havePython, ROOT, runProcess, smtplib, startTern } from './harness.ts';

const skip = havePython() ? false : 'python3 with imaplib is not available on this machine';

const PY_IMAP_CLIENT = join(ROOT, 'test', 'e2e', 'py', 'imap_client.py');

const USERS = [
  { address: 'alice@example.test', password: 'alice pw' },
  { address: 'jürgen@example.test', password: 'jürgen pw' },
  { address: 'bob@example.test', password: 'bob pw' },
  { address: '日本@example.test', password: '日本 pw' },
  { address: 'sort@example.test', password: 'sort pw' },
  { address: '日本.sort@example.test', password: '日本 sort pw' },
] as const;

function passwordOf(address: string): string {
  return USERS.find((u) => u.address === address)!.password;
}

/** An item of imaplib's data: a string, or a (head, literal) tuple with the literal's bytes. */
type ImaplibItem = string | { readonly head: string; readonly b64: string } | null;

interface ImaplibAnswer {
  readonly ok: boolean;
  readonly error?: string;
  readonly typ?: string;
  readonly data?: readonly ImaplibItem[];
  readonly untagged?: Readonly<Record<string, readonly ImaplibItem[]>>;
}

interface ImaplibResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly welcome?: string;
  readonly tls?: string | null;
  readonly capabilities?: readonly string[];
  readonly steps: readonly ImaplibAnswer[];
}

async function imaplib(req: {
  port: number;
  mode: 'plain' | 'starttls' | 'ssl';
  steps: readonly (readonly (string | number | boolean | null)[])[];
}): Promise<ImaplibResult> {
  const r = await runProcess('python3', [PY_IMAP_CLIENT], {
    stdin: JSON.stringify({ ...req, host: '127.0.0.1' }),
  });
  if (r.code !== 0) throw new Error(`imap_client.py exited ${r.code}: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout) as ImaplibResult;
  } catch {
    throw new Error(`imap_client.py wrote no JSON: ${r.stdout} ${r.stderr}`);
  }
}

/** An item as text: a string as it is, a (head, literal) tuple by its head. */
function textOf(item: ImaplibItem | undefined): string {
  if (item === null || item === undefined) return '';
  return typeof item === 'string' ? item : item.head;
}

function okAll(answers: readonly ImaplibAnswer[]): void {
  const bad = answers.filter((a) => !a.ok || (a.typ !== 'OK' && a.typ !== 'BYE'));
  assert.deepEqual(bad, [], JSON.stringify(answers, null, 1));
}

/** The literal of the first (head, literal) tuple in an answer's data. */
function literalOf(a: ImaplibAnswer, index = 0): { head: string; bytes: Buffer } {
  const tuples = (a.data ?? []).filter(
    (d): d is { head: string; b64: string } => typeof d === 'object' && d !== null,
  );
  const t = tuples[index];
  assert.ok(t, `no literal #${index} in ${JSON.stringify(a)}`);
  return { head: t.head, bytes: Buffer.from(t.b64, 'base64') };
}

function loginStep(address: string): (string | number)[] {
  return ['login', address, passwordOf(address)];
}

describe('IMAP with Python imaplib', { skip }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ users: [...USERS] });
  });
  after(() => tern?.stop());

  const deliver = async (
    to: string,
    messages: readonly { subject: string; body: string }[],
  ): Promise<void> => {
    const before = (await tern.storedMessages(to)).length;
    for (const m of messages) {
      const sent = await smtplib({
        port: tern.ports.smtp,
        mode: 'plain',
        action: 'send_message',
        mail_options: ['SMTPUTF8'],
        message: {
          headers: [
            ['From', 'sender@example.org'],
            ['To', to],
            ['Subject', m.subject],
          ],
          body: m.body,
          cte: '8bit',
        },
      });
      assert.equal(sent.ok, true, JSON.stringify(sent));
    }
    await tern.waitForMessages(to, before + messages.length);
  };

  for (const [address, mode] of [
    ['alice@example.test', 'starttls'],
    ['jürgen@example.test', 'ssl'],
  ] as const) {
    test(`${address} over ${mode}: SELECT, FETCH RFC822 / BODY.PEEK[HEADER] / BODY[TEXT]<0.10>, STORE, COPY, EXPUNGE, STATUS, LOGOUT`, async () => {
      await deliver(address, [
        { subject: 'erste Nachricht', body: 'Hallo Welt, grüße aus 東京.\n' },
        { subject: 'second', body: 'second message body\n' },
      ]);
      const listed = await tern.mailboxList(address);
      const stored = await Promise.all(listed.map((m) => tern.mailboxCat(address, m.id)));
      const port = mode === 'ssl' ? tern.ports.imaps! : tern.ports.imap!;
      const r = await imaplib({
        port,
        mode,
        steps: [
          loginStep(address),
          ['select', 'INBOX'],
          ['fetch', '1', '(RFC822)'],
          ['fetch', '1', '(BODY.PEEK[HEADER])'],
          ['fetch', '1', '(FLAGS)'],
          ['fetch', '2', '(BODY[TEXT]<0.10>)'],
          ['fetch', '2', '(FLAGS)'],
          ['store', '1', '+FLAGS', '(\\Flagged \\Deleted)'],
          ['copy', '1', 'Archive'],
          ['expunge'],
          ['status', 'INBOX', '(MESSAGES UIDNEXT UNSEEN)'],
          ['status', 'Archive', '(MESSAGES)'],
          ['logout'],
        ],
      });
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.match(r.tls ?? '', /^TLSv1\.[23]$/);
      assert.ok(r.welcome?.startsWith('* OK'), r.welcome);
      okAll(r.steps);
      const [
        ,
        select,
        rfc822,
        header,
        flags1,
        partial,
        flags2,
        store,
        copy,
        expunge,
        status,
        archive,
        logout,
      ] = r.steps as ImaplibAnswer[];
      assert.deepEqual(select!.data, ['2']);
      assert.deepEqual(select!.untagged?.['EXISTS'], ['2']);

      const whole = literalOf(rfc822!);
      assert.match(whole.head, /^1 \(RFC822 \{\d+\}$/);
      assert.ok(whole.bytes.equals(stored[0]!), 'RFC822 is the stored message byte for byte');

      const head = literalOf(header!);
      const headerEnd = stored[0]!.indexOf('\r\n\r\n') + 4;
      assert.ok(head.bytes.equals(stored[0]!.subarray(0, headerEnd)), head.bytes.toString());
      // RFC822 sets \Seen (it is BODY[]); BODY.PEEK does not add anything else.
      assert.match(textOf(flags1!.data![0]), /\\Seen/);

      const text = literalOf(partial!);
      const body2 = stored[1]!.subarray(stored[1]!.indexOf('\r\n\r\n') + 4);
      assert.ok(
        text.bytes.equals(body2.subarray(0, 10)),
        `partial: ${JSON.stringify(text.bytes.toString())}`,
      );
      assert.match(
        text.head,
        /BODY\[TEXT\]<0> \{10\}$/,
        'the partial is answered with its origin (RFC 9051 §7.5.2)',
      );
      assert.match(textOf(flags2!.data![0]), /\\Seen/, 'BODY[TEXT] without PEEK sets \\Seen');

      assert.match(textOf(store!.data![0]), /^1 \(FLAGS \(.*\\Deleted.*\)\)$/);
      assert.match(textOf(store!.data![0]), /\\Flagged/);
      assert.match(
        textOf(copy!.data?.[0]),
        /COPYUID \d+ \d+ \d+/,
        `COPYUID (UIDPLUS): ${JSON.stringify(copy)}`,
      );
      assert.deepEqual(expunge!.data, ['1'], 'EXPUNGE reports message 1');
      assert.match(textOf(status!.data![0]), /^"?INBOX"? \(MESSAGES 1 UIDNEXT \d+ UNSEEN 0\)$/);
      assert.match(textOf(archive!.data![0]), /\(MESSAGES 1\)$/);
      assert.equal(logout!.typ, 'BYE');

      assert.deepEqual(
        (await tern.mailboxList(address)).map((m) => m.uid),
        [listed[1]!.uid],
        'the expunged message is gone from the store',
      );
    });
  }

  for (const address of ['bob@example.test', '日本@example.test']) {
    test(`${address}: AUTHENTICATE PLAIN, APPEND with a literal, flags and date, read back`, async () => {
      const message = Buffer.from(
        `From: ${address}\r\nSubject: angehängt 日本\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nZeile eins\r\nZeile zwei ü\r\n`,
      );
      const date = Date.UTC(2023, 11, 24, 18, 0, 0) / 1000;
      const r = await imaplib({
        port: tern.ports.imaps!,
        mode: 'ssl',
        steps: [
          ['auth_plain', address, passwordOf(address)],
          ['append', 'Drafts', '(\\Draft $Later)', date, message.toString('base64')],
          ['select', 'Drafts'],
          ['fetch', '1', '(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])'],
          ['noop'],
          ['close'],
          ['logout'],
        ],
      });
      assert.equal(r.ok, true, JSON.stringify(r));
      okAll(r.steps);
      const [, append, select, fetch] = r.steps as ImaplibAnswer[];
      assert.match(textOf(append!.data![0]), /\[APPENDUID \d+ \d+\]/, JSON.stringify(append));
      assert.deepEqual(select!.data, ['1']);
      const got = literalOf(fetch!);
      assert.ok(got.bytes.equals(message), 'APPENDed bytes come back unchanged');
      assert.match(got.head, /FLAGS \(([^)]*)\)/);
      const flags = /FLAGS \(([^)]*)\)/.exec(got.head)![1]!.split(' ').sort();
      // imaplib is an IMAP4rev1 client and this session the first to see the message (RFC 3501 §2.3.2).
      assert.deepEqual(flags, ['$Later', '\\Draft', '\\Recent']);
      assert.match(got.head, /INTERNALDATE "24-Dec-2023 18:00:00 \+0000"/);
      assert.match(got.head, new RegExp(`RFC822\\.SIZE ${message.length}`));
    });
  }

  test('a UTF-8 user name with LOGIN (quoted UTF-8, RFC 9051 §4.3) and a folder with a UTF-8 name', async () => {
    const address = '日本@example.test';
    const r = await imaplib({
      port: tern.ports.imap!,
      mode: 'starttls',
      steps: [
        loginStep(address),
        ['enable', 'UTF8=ACCEPT'],
        ['create', 'Entwürfe'],
        ['status', 'Entwürfe', '(MESSAGES UIDVALIDITY)'],
        ['logout'],
      ],
    });
    assert.equal(r.ok, true, JSON.stringify(r));
    const [login, enable, , status] = r.steps;
    assert.equal(login!.ok, true, JSON.stringify(login));
    assert.equal(enable!.ok, true, JSON.stringify(enable));
    assert.match(textOf(status!.data?.[0]), /\(MESSAGES 0 UIDVALIDITY \d+\)/, JSON.stringify(r.steps));
  });

  test('before STARTTLS the imap port offers STARTTLS, and a wrong password is NO', async () => {
    const r = await imaplib({
      port: tern.ports.imap!,
      mode: 'plain',
      steps: [['capability'], ['login', 'alice@example.test', 'wrong password']],
    });
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.ok(r.capabilities?.includes('STARTTLS'), JSON.stringify(r.capabilities));
    assert.equal(r.steps[1]!.ok, false);
    assert.match(r.steps[1]!.error!, /AUTHENTICATIONFAILED|failed/i);
  });

  describe('SEARCH, SORT and THREAD', () => {
    for (const address of ['sort@example.test', '日本.sort@example.test']) {
      test(`${address}: SEARCH (CHARSET UTF-8), UID SEARCH, SORT (SUBJECT), THREAD REFERENCES`, async () => {
        await deliver(address, [
          { subject: 'Zebra', body: 'über alles\n' },
          { subject: 'apfel', body: 'nothing\n' },
          { subject: 'Re: Zebra', body: 'reply über\n' },
        ]);
        const r = await imaplib({
          port: tern.ports.imaps!,
          mode: 'ssl',
          steps: [
            loginStep(address),
            ['select', 'INBOX'],
            ['search', 'ALL'],
            ['search', 'CHARSET', 'UTF-8', 'BODY', '"über"'],
            ['uid', 'SEARCH', 'SUBJECT', 'zebra'],
            ['sort', '(SUBJECT)', 'UTF-8', 'ALL'],
            ['thread', 'REFERENCES', 'UTF-8', 'ALL'],
            ['logout'],
          ],
        });
        assert.equal(r.ok, true, JSON.stringify(r));
        okAll(r.steps);
        const [, , all, body, uidSearch, sort, thread] = r.steps as ImaplibAnswer[];
        assert.deepEqual(all!.data, ['1 2 3']);
        assert.deepEqual(body!.data, ['1 3']);
        assert.equal(textOf(uidSearch!.data![0]).split(' ').length, 2);
        // SORT SUBJECT uses the base subject ("Re: " removed), i;ascii-casemap (RFC 5256 §2.1).
        assert.deepEqual(sort!.data, ['2 1 3']);
        assert.match(textOf(thread!.data![0]), /\(2\)/);
      });
    }
  });
});
