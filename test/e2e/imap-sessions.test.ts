// IMAP with more than one session on a mailbox, over raw sockets, byte for byte: when one session's change
// reaches another (RFC 9051 §7.5.1: no EXPUNGE during FETCH/STORE/SEARCH by sequence number, but at the
// next command that allows it, NOOP and IDLE included); a folder deleted or renamed under a session that
// has it selected (RFC 2180 §3.2: NO or a BYE, never a crash); UIDVALIDITY of a re-created name (RFC 9051
// §2.3.1.1); and the responses a syncing client depends on (these sessions stay IMAP4rev1, so the first
// session to see a message also sees \Recent, RFC 3501 §2.3.2): UID in every FETCH answering a UID command
// (§6.4.9), CONDSTORE's MODSEQ and [MODIFIED] (RFC 7162 §3.1), QRESYNC's VANISHED for EXPUNGE (§3.2.10)
// and [CLOSED] (§3.2.11), EXISTS after an APPEND to the selected mailbox (§6.3.12), COPYUID before the
// EXPUNGE of a MOVE (RFC 6851 §4.3), MULTIAPPEND's APPENDUID set (RFC 3502, RFC 4315). Each with an ASCII
// and a UTF-8 user.
// Deliberately NOT here: real client libraries (imap.test.ts, imap-imaplib.test.ts) and abuse
// (imap-hostile.test.ts).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Tern } from './harness.ts';
import { havePython, smtplib, startTern } from './harness.ts';
import { quoted, RawImap } from './imap-raw.ts';

const skip = havePython() ? false : 'python3 with smtplib is not available on this machine';

const SCENARIOS = [
  'held',
  'idle',
  'deleted',
  'renamed',
  'copy',
  'uid',
  'condstore',
  'qresync',
  'append',
  'uidvalidity',
];
const USERS = SCENARIOS.flatMap((s) => [`alice.${s}@example.test`, `日本.${s}@example.test`]).map(
  (address) => ({
    address,
    password: `${address.split('@')[0]} pw`,
  }),
);

/** A non-synchronizing literal (LITERAL+, RFC 7888) holding `text`. */
function literal(text: string): string {
  return `{${Buffer.byteLength(text)}+}\r\n${text}`;
}

function pair(scenario: string): [string, string] {
  return [`alice.${scenario}@example.test`, `日本.${scenario}@example.test`];
}

function passwordOf(address: string): string {
  return USERS.find((u) => u.address === address)!.password;
}

describe('IMAP: sessions seeing each other, and the responses sync depends on', { skip }, () => {
  let tern: Tern;
  const open = new Set<RawImap>();
  before(async () => {
    tern = await startTern({ users: USERS });
  });
  after(async () => {
    for (const c of open) c.close();
    await tern?.stop();
  });

  const deliver = async (to: string, count: number): Promise<void> => {
    const before = (await tern.storedMessages(to)).length;
    for (let i = 0; i < count; i++) {
      const sent = await smtplib({
        port: tern.ports.smtp,
        mode: 'plain',
        action: 'send_message',
        mail_options: ['SMTPUTF8'],
        message: {
          headers: [
            ['From', 'sender@example.org'],
            ['To', to],
            ['Subject', `Nachricht ${i + 1}`],
          ],
          body: `Inhalt ${i + 1}\n`,
          cte: '8bit',
        },
      });
      assert.equal(sent.ok, true, JSON.stringify(sent));
    }
    await tern.waitForMessages(to, before + count);
  };

  /** A logged-in session over implicit TLS. */
  const session = async (address: string): Promise<RawImap> => {
    const c = await RawImap.open(tern.ports.imaps!, { tls: true });
    open.add(c);
    const r = await c.command('L', `LOGIN ${quoted(address)} ${quoted(passwordOf(address))}`);
    assert.match(r.tagged, /^L OK /, r.tagged);
    return c;
  };

  /** Send a command and assert it completed OK; returns its untagged responses. */
  const ok = async (c: RawImap, tag: string, command: string): Promise<readonly string[]> => {
    const r = await c.command(tag, command);
    assert.match(r.tagged, new RegExp(`^${tag} OK`), `${command}: ${r.tagged}`);
    return r.untagged;
  };

  const internalErrors = (): number => tern.logs().filter((l) => l.level === 'error').length;

  for (const address of pair('held')) {
    test(`${address}: an expunge held back during two FETCHes by sequence number comes with the next NOOP`, async () => {
      await deliver(address, 3);
      const a = await session(address);
      const b = await session(address);
      await ok(a, 'a1', 'SELECT INBOX');
      await ok(b, 'b1', 'SELECT INBOX');
      await ok(b, 'b2', 'STORE 1 +FLAGS.SILENT (\\Deleted)');
      assert.deepEqual(await ok(b, 'b3', 'EXPUNGE'), ['* 1 EXPUNGE']);
      // §7.5.1: not during FETCH by sequence number...
      const f1 = await ok(a, 'a2', 'FETCH 1:* (FLAGS)');
      assert.ok(!f1.some((l) => /EXPUNGE/.test(l)), f1.join('\n'));
      const f2 = await ok(a, 'a3', 'FETCH 2 (UID)');
      assert.ok(!f2.some((l) => /EXPUNGE/.test(l)), f2.join('\n'));
      // ...but at the next command that allows it.
      assert.deepEqual(await ok(a, 'a4', 'NOOP'), ['* 1 EXPUNGE'], 'NOOP reports the expunge held back');
      assert.deepEqual(await ok(a, 'a5', 'NOOP'), [], 'once');
      assert.deepEqual(await ok(a, 'a6', 'FETCH 1:* (UID)'), ['* 1 FETCH (UID 2)', '* 2 FETCH (UID 3)']);
    });
  }

  for (const address of pair('idle')) {
    test(`${address}: an expunge held back during FETCH is sent when IDLE starts`, async () => {
      await deliver(address, 3);
      const a = await session(address);
      const b = await session(address);
      await ok(a, 'a1', 'SELECT INBOX');
      await ok(b, 'b1', 'SELECT INBOX');
      await ok(b, 'b2', 'STORE 2 +FLAGS.SILENT (\\Deleted)');
      await ok(b, 'b3', 'EXPUNGE');
      await ok(a, 'a2', 'FETCH 1:* (FLAGS)');
      await ok(a, 'a3', 'STORE 1 +FLAGS.SILENT (\\Seen)');
      await a.write('a4 IDLE\r\n');
      assert.match(await a.response(), /^\+ /);
      assert.equal(await a.response(3000), '* 2 EXPUNGE', 'IDLE is a point where EXPUNGE may be sent');
      await a.write('DONE\r\n');
      assert.match((await a.answer('a4')).tagged, /^a4 OK/);
    });
  }

  for (const [how, address] of [
    ['deleted', pair('deleted')[0]],
    ['deleted', pair('deleted')[1]],
    ['renamed', pair('renamed')[0]],
    ['renamed', pair('renamed')[1]],
  ] as const) {
    test(`${address}: the selected folder ${how} by another session: NO or BYE, never an internal error (RFC 2180 §3.2)`, async () => {
      const b = await session(address);
      await ok(b, 'b0', 'ENABLE UTF8=ACCEPT');
      const commands = [
        'FETCH 1 (FLAGS)',
        'UID FETCH 1:* (FLAGS)',
        'STORE 1 +FLAGS (\\Seen)',
        'EXPUNGE',
        'CLOSE',
      ];
      const errorsBefore = internalErrors();
      const answers: string[] = [];
      for (const [i, command] of commands.entries()) {
        const name = `Ordner ${i} 東京`;
        const a = await session(address);
        await ok(a, 'a0', 'ENABLE UTF8=ACCEPT');
        await ok(a, 'a1', `CREATE ${quoted(name)}`);
        await a.write(`a2 APPEND ${quoted(name)} ${literal('Subject: x\r\n\r\nx\r\n')}\r\n`);
        assert.match((await a.answer('a2')).tagged, /^a2 OK/);
        await ok(a, 'a3', `SELECT ${quoted(name)}`);
        await ok(
          b,
          `b${i}`,
          how === 'deleted' ? `DELETE ${quoted(name)}` : `RENAME ${quoted(name)} ${quoted(`${name} neu`)}`,
        );
        await a.write(`a4 ${command}\r\n`);
        const r = await a.answerOrClose('a4');
        answers.push(`${command} → ${r.tagged ?? `(closed) ${r.untagged.join(' | ')}`}`);
        a.close();
      }
      for (const line of answers) {
        assert.ok(
          !/SERVERBUG|Internal error/i.test(line),
          `a NO or a BYE, not a server bug:\n${answers.join('\n')}`,
        );
        assert.match(line, /→ (a4 NO|\(closed\) \* BYE)/, answers.join('\n'));
      }
      assert.equal(internalErrors(), errorsBefore, 'nothing logged as an internal error');
    });
  }

  for (const address of pair('copy')) {
    test(`${address}: COPY and MOVE out of a folder deleted meanwhile: NO without [TRYCREATE] (that names the target), or BYE`, async () => {
      const a = await session(address);
      const b = await session(address);
      await ok(a, 'a0', 'CREATE Quelle');
      await a.write(`a1 APPEND Quelle ${literal('Subject: x\r\n\r\nx\r\n')}\r\n`);
      assert.match((await a.answer('a1')).tagged, /^a1 OK/);
      await ok(a, 'a2', 'SELECT Quelle');
      await ok(b, 'b1', 'DELETE Quelle');
      for (const [tag, command] of [
        ['a3', 'COPY 1 INBOX'],
        ['a4', 'UID MOVE 1 INBOX'],
      ] as const) {
        await a.write(`${tag} ${command}\r\n`);
        const r = await a.answerOrClose(tag);
        const answer = r.tagged ?? `(closed) ${r.untagged.join(' | ')}`;
        // RFC 9051 §6.4.7: TRYCREATE tells the client to CREATE the destination and retry; INBOX exists.
        assert.ok(!answer.includes('[TRYCREATE]'), `${command}: ${answer}`);
        // As for the other commands: a NO, or a deliberate BYE (RFC 2180 §3.2), not a server bug.
        assert.match(
          answer,
          new RegExp(`^(${tag} NO|\\(closed\\) \\* BYE (?!\\[SERVERBUG\\]))`),
          `${command}: ${answer}`,
        );
        if (r.tagged === null) break;
      }
    });
  }

  for (const address of pair('uid')) {
    test(`${address}: every FETCH answering a UID command carries the UID (RFC 9051 §6.4.9)`, async () => {
      await deliver(address, 2);
      const a = await session(address);
      await ok(a, 'a1', 'SELECT INBOX');
      assert.deepEqual(await ok(a, 'a2', 'UID STORE 2 +FLAGS (\\Flagged)'), [
        '* 2 FETCH (FLAGS (\\Flagged \\Recent) UID 2)',
      ]);
      assert.deepEqual(await ok(a, 'a3', 'UID FETCH 1:* (FLAGS)'), [
        '* 1 FETCH (FLAGS (\\Recent) UID 1)',
        '* 2 FETCH (FLAGS (\\Flagged \\Recent) UID 2)',
      ]);
      // A UID set past the end is not an error for UID commands.
      assert.deepEqual(await ok(a, 'a4', 'UID FETCH 4000000000 (FLAGS)'), []);
      // FETCH of BODY[] sets \Seen and reports it (§6.4.5).
      const body = await ok(a, 'a5', 'UID FETCH 1 (BODY[TEXT])');
      assert.equal(body.length, 1);
      assert.match(body[0]!, /^\* 1 FETCH \(/);
      assert.match(body[0]!, /UID 1/);
      assert.match(body[0]!, /FLAGS \(\\Seen \\Recent\)/);
      assert.ok(body[0]!.includes('BODY[TEXT] {10}\r\nInhalt 1\r\n'), body[0]);
    });
  }

  for (const address of pair('condstore')) {
    test(`${address}: CONDSTORE: MODSEQ in FETCH, UNCHANGEDSINCE refused with [MODIFIED], CHANGEDSINCE`, async () => {
      await deliver(address, 2);
      const a = await session(address);
      await ok(a, 'a0', 'ENABLE CONDSTORE');
      const select = await ok(a, 'a1', 'SELECT INBOX (CONDSTORE)');
      const highest = Number(/HIGHESTMODSEQ (\d+)/.exec(select.join('\n'))![1]);
      const fetched = await ok(a, 'a2', 'FETCH 1:* (UID MODSEQ)');
      const modseqs = fetched.map((l) => Number(/MODSEQ \((\d+)\)/.exec(l)![1]));
      assert.equal(Math.max(...modseqs), highest);
      const stored = await ok(a, 'a3', `STORE 1 (UNCHANGEDSINCE ${modseqs[0]}) +FLAGS (\\Seen)`);
      assert.equal(stored.length, 1);
      const newModseq = Number(/MODSEQ \((\d+)\)/.exec(stored[0]!)![1]);
      assert.ok(newModseq > highest, 'a change gets a higher MODSEQ');
      // The same UNCHANGEDSINCE again: message 1 changed since, so it is not stored.
      const again = await a.command('a4', `STORE 1 (UNCHANGEDSINCE ${modseqs[0]}) +FLAGS (\\Answered)`);
      assert.match(again.tagged, /^a4 OK \[MODIFIED 1\]/, again.tagged);
      const changed = await ok(a, 'a5', `FETCH 1:* (FLAGS) (CHANGEDSINCE ${highest})`);
      assert.deepEqual(changed, [`* 1 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (${newModseq}))`]);
    });
  }

  for (const address of pair('qresync')) {
    test(`${address}: QRESYNC: EXPUNGE answered with VANISHED, SELECT with known UIDs, [CLOSED]`, async () => {
      await deliver(address, 3);
      const a = await session(address);
      await ok(a, 'a0', 'ENABLE QRESYNC');
      const select = await ok(a, 'a1', 'SELECT INBOX');
      const uidValidity = /UIDVALIDITY (\d+)/.exec(select.join('\n'))![1];
      const highest = /HIGHESTMODSEQ (\d+)/.exec(select.join('\n'))![1];
      await ok(a, 'a2', 'STORE 2 +FLAGS.SILENT (\\Deleted)');
      assert.deepEqual(await ok(a, 'a3', 'EXPUNGE'), ['* VANISHED 2'], 'RFC 7162 §3.2.10');
      await ok(a, 'a4', 'UID STORE 3 +FLAGS.SILENT (\\Flagged)');
      // Reselect with what a client cached before: UIDs 1:3 at the old HIGHESTMODSEQ.
      const resync = await ok(a, 'a5', `SELECT INBOX (QRESYNC (${uidValidity} ${highest} 1:3))`);
      assert.equal(resync[0], '* OK [CLOSED] Previous mailbox closed');
      assert.ok(resync.includes('* VANISHED (EARLIER) 2'), resync.join('\n'));
      assert.ok(
        resync.some((l) => /^\* 2 FETCH \(.*UID 3.*\)$/.test(l) && l.includes('\\Flagged')),
        resync.join('\n'),
      );
      assert.ok(!resync.some((l) => /UID 1\b/.test(l)), 'the unchanged message is not reported');
    });
  }

  for (const address of pair('append')) {
    test(`${address}: APPEND to the selected mailbox sends EXISTS; MULTIAPPEND's APPENDUID is a set; MOVE sends COPYUID first`, async () => {
      await deliver(address, 1);
      const a = await session(address);
      await ok(a, 'a1', 'SELECT INBOX');
      await a.write(
        `a2 APPEND INBOX (\\Seen) ${literal('Subject: 1\r\n\r\n1\r\n')} ${literal('Subject: 2\r\n\r\n2\r\n')}\r\n`,
      );
      const appended = await a.answer('a2');
      // An IMAP4rev1 session is the first to see all three: RECENT too (RFC 3501 §7.3.2).
      assert.deepEqual(appended.untagged, ['* 3 EXISTS', '* 3 RECENT']);
      assert.match(appended.tagged, /^a2 OK \[APPENDUID \d+ 2:3\]/, appended.tagged);
      const moved = await ok(a, 'a3', 'UID MOVE 2:3 Archive');
      assert.match(moved[0]!, /^\* OK \[COPYUID \d+ 2:3 1:2\]/, moved.join('\n'));
      assert.deepEqual(moved.slice(1), ['* 3 EXPUNGE', '* 2 EXPUNGE']);
    });
  }

  for (const address of pair('uidvalidity')) {
    test(`${address}: a folder deleted (or renamed away) and created again gets a new UIDVALIDITY`, async () => {
      const a = await session(address);
      await ok(a, 'a0', 'ENABLE UTF8=ACCEPT');
      const seen = new Set<string>();
      const status = async (tag: string): Promise<string> => {
        const u = await ok(a, tag, 'STATUS "Zwischenablage 日本" (UIDVALIDITY)');
        return /UIDVALIDITY (\d+)/.exec(u[0]!)![1]!;
      };
      await ok(a, 'a1', 'CREATE "Zwischenablage 日本"');
      seen.add(await status('a2'));
      await ok(a, 'a3', 'DELETE "Zwischenablage 日本"');
      await ok(a, 'a4', 'CREATE "Zwischenablage 日本"');
      seen.add(await status('a5'));
      await ok(a, 'a6', 'RENAME "Zwischenablage 日本" "Weg"');
      await ok(a, 'a7', 'CREATE "Zwischenablage 日本"');
      seen.add(await status('a8'));
      assert.equal(seen.size, 3, [...seen].join(' '));
    });
  }
});
