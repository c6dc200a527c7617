// IMAP against a hostile or clumsy client, over raw sockets, byte for byte: bytes pipelined after STARTTLS
// before the handshake are discarded and never answered (RFC 9051 §6.2.1, the STARTTLS injection of
// CVE-2011-0411's kind); LOGINDISABLED and [PRIVACYREQUIRED] before TLS (§6.2.3, §7.1); overlong lines
// (also inside AUTHENTICATE and IDLE) answered with a tagged BAD [TOOBIG], and huge literal announcements
// answered [TOOBIG] (§7.1, RFC 7888 §4) without a "+"; a synchronizing literal
// refused before it is sent (§7.5); commands in the wrong state answered BAD (§6); a flood of bad commands
// ending with BYE; AUTHENTICATE with SASL-IR (RFC 4959) and an exchange cancelled with "*" (§6.2.2);
// failed logins reaching the lockout submission uses ([auth] lockout_threshold); a pipelined command
// stream answered the same however it is cut (sent whole, in odd pieces, byte by byte); IDLE + DONE
// (RFC 2177); an APPEND literal streamed in small pieces, and one cut off by a dropped connection (nothing
// stored); connections per user and the autologout (RFC 9051 §5.4, shortened by config to be waited for).
// Each scenario with an ASCII and a UTF-8 user where a user appears.
// Deliberately NOT here: well-behaved clients (imap.test.ts, imap-imaplib.test.ts) and the pure reader's
// every branch (src/protocol/imap/reader.test.ts, reader.fuzz.test.ts).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Tern } from './harness.ts';
import { ehlo, havePython, RawSmtpClient, smtplib, startTern, waitFor } from './harness.ts';
import { capabilitiesIn, imapDateMs, quoted, RawImap } from './imap-raw.ts';

const skip = havePython() ? false : 'python3 with smtplib is not available on this machine';

const USERS = [
  { address: 'alice@example.test', password: 'alice pw' },
  { address: 'jürgen@example.test', password: 'jürgen pw' },
  { address: 'bob@example.test', password: 'bob pw' },
  { address: '日本@example.test', password: '日本 pw' },
  { address: 'carol@example.test', password: 'carol pw' },
  { address: 'zoë@example.test', password: 'zoë pw' },
] as const;

function passwordOf(address: string): string {
  return USERS.find((u) => u.address === address)!.password;
}

function loginCommand(address: string): string {
  return `LOGIN ${quoted(address)} ${quoted(passwordOf(address))}`;
}

function plainResponse(address: string, password = passwordOf(address)): string {
  return Buffer.from(`\0${address}\0${password}`).toString('base64');
}

describe('IMAP against hostile clients', { skip }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [...USERS],
      tables: {
        imap: { max_line_bytes: 8192, append_limit_bytes: 1_000_000 },
        auth: { failure_delay_seconds: 0.05, lockout_threshold: 100 },
      },
    });
  });
  after(() => tern?.stop());

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
        body: 'body\n',
        cte: '8bit',
      },
    });
    assert.equal(sent.ok, true, JSON.stringify(sent));
    await tern.waitForMessages(to, before + 1);
  };

  /** A logged-in raw session over implicit TLS. */
  const loggedIn = async (address: string): Promise<RawImap> => {
    const c = await RawImap.open(tern.ports.imaps!, { tls: true });
    const a = await c.command('L1', loginCommand(address));
    assert.match(a.tagged, /^L1 OK /, a.tagged);
    return c;
  };

  test('STARTTLS: commands pipelined behind it before the handshake are discarded, never answered', async () => {
    const c = await RawImap.open(tern.ports.imap!);
    try {
      const caps = await c.command('a', 'CAPABILITY');
      assert.ok(capabilitiesIn(caps.untagged[0]!).includes('STARTTLS'), caps.untagged[0]);
      // The injected LOGIN and SELECT ride in the same packet as STARTTLS.
      await c.write(`b STARTTLS\r\nc ${loginCommand('alice@example.test')}\r\nd SELECT INBOX\r\n`);
      const ok = await c.response();
      assert.match(ok, /^b OK /);
      assert.equal(c.pending.length, 0, 'nothing in plaintext after the OK');
      await c.startTls();
      const first = await c.command('e', 'NOOP');
      assert.deepEqual(first.untagged, [], 'no answers to the injected commands over TLS');
      assert.match(first.tagged, /^e OK /);
      // Not logged in: the injected LOGIN was never run.
      const select = await c.command('f', 'SELECT INBOX');
      assert.match(select.tagged, /^f BAD /);
      const after = await c.command('g', 'CAPABILITY');
      const words = capabilitiesIn(after.untagged[0]!);
      assert.ok(!words.includes('STARTTLS'), 'STARTTLS is not offered once TLS is on');
      assert.match((await c.command('h', 'STARTTLS')).tagged, /^h BAD /, 'a second STARTTLS is BAD');
      assert.match((await c.command('i', loginCommand('jürgen@example.test'))).tagged, /^i OK /);
    } finally {
      c.close();
    }
  });

  for (const address of ['alice@example.test', 'jürgen@example.test']) {
    test(`${address}: an overlong command line is BAD [TOOBIG]; the session goes on`, async () => {
      const c = await loggedIn(address);
      try {
        await c.write(`t1 NOOP ${'x'.repeat(20_000)}\r\n`);
        // The tag is the line's first bytes: the BAD is tagged, so a client waiting for t1 is not left
        // hanging (RFC 9051 §7.1.3: untagged BAD only when the command cannot be determined).
        const r = await c.answerOrClose('t1', 3000);
        assert.match(r.tagged ?? '(closed)', /^t1 BAD \[TOOBIG\]/, JSON.stringify(r));
        // A long but allowed line (RFC 7162 §4: at least 8192 octets) is fine.
        const set = Array.from({ length: 1500 }, (_, i) => i + 1).join(',');
        const line = `t3 UID FETCH ${set} (FLAGS)`;
        assert.ok(line.length > 6000 && line.length < 8190, String(line.length));
        assert.match((await c.command('t2', 'SELECT INBOX')).tagged, /^t2 OK/);
        assert.match((await c.command('t3', line.slice(3))).tagged, /^t3 OK/);
        assert.match((await c.command('t4', 'NOOP')).tagged, /^t4 OK/);
      } finally {
        c.close();
      }
    });
  }

  test('huge literal announcements get [TOOBIG] and no "+"; the session goes on', async () => {
    const c = await RawImap.open(tern.ports.imaps!, { tls: true });
    try {
      // A string literal far above any limit, synchronizing: refused before a byte of it is sent.
      await c.write('h1 LOGIN {4294967296}\r\n');
      const r1 = await c.response();
      assert.match(r1, /^h1 BAD \[TOOBIG\]/, r1);
      // More digits than any integer.
      await c.write('h2 LOGIN {123456789012345678901234567890}\r\n');
      const r2 = await c.response();
      assert.match(r2, /^h2 BAD/, r2);
      assert.match((await c.command('h3', loginCommand('日本@example.test'))).tagged, /^h3 OK/);
      // An APPEND above APPENDLIMIT (RFC 7889): refused at the announcement.
      await c.write('h4 APPEND INBOX {5000000}\r\n');
      const r4 = await c.response();
      assert.match(r4, /^h4 (NO|BAD) \[TOOBIG\]/, r4);
      assert.match((await c.command('h5', 'NOOP')).tagged, /^h5 OK/);
      // A non-synchronizing one (LITERAL+) that large: refused at once (RFC 7888 §4); the server may
      // then close the connection rather than read it.
      await c.write('h6 APPEND INBOX {5000000000+}\r\n');
      const r6 = await c.response();
      assert.match(r6, /^h6 (NO|BAD) \[TOOBIG\]/, r6);
    } finally {
      c.close();
    }
  });

  for (const address of ['bob@example.test', '日本@example.test']) {
    test(`${address}: a synchronizing APPEND literal refused before it is sent ([TRYCREATE]), a LITERAL+ one dropped whole`, async () => {
      const c = await loggedIn(address);
      try {
        // A UTF-8 mailbox name needs UTF8=ACCEPT first (RFC 6855 §3); an ASCII user stays in IMAP4rev1 mode.
        const utf8 = !/^[\x20-\x7e]*$/.test(address);
        if (utf8) assert.match((await c.command('s0', 'ENABLE UTF8=ACCEPT')).tagged, /^s0 OK/);
        const target = utf8 ? '"Nirgendwo/東京"' : 'Nirgendwo/Tokyo';
        await c.write(`s1 APPEND ${target} {20}\r\n`);
        const r = await c.response();
        assert.match(r, /^s1 NO \[TRYCREATE\]/, `no "+" for a literal the server will not take: ${r}`);
        // The client abandons the command: its next line is a new command.
        assert.match((await c.command('s2', 'NOOP')).tagged, /^s2 OK/);
        // A non-synchronizing literal for the same refused target: its bytes, which look like a
        // command, are read and dropped, never run.
        const smuggled = 's3x DELETE INBOX\r\ns3y LOGOUT\r\n';
        await c.write(`s3 APPEND ${target} {${Buffer.byteLength(smuggled)}+}\r\n${smuggled}\r\n`);
        const r3 = await c.answer('s3');
        assert.match(r3.tagged, /^s3 NO \[TRYCREATE\]/, r3.tagged);
        const next = await c.command('s4', 'NOOP');
        assert.deepEqual(next.untagged, []);
        assert.match(next.tagged, /^s4 OK/, "the literal's bytes were not run as commands");
        // Before login, an APPEND literal is refused for the state.
        const d = await RawImap.open(tern.ports.imaps!, { tls: true });
        try {
          await d.write('p1 APPEND INBOX {5}\r\n');
          assert.match(await d.response(), /^p1 BAD/);
          assert.match((await d.command('p2', 'NOOP')).tagged, /^p2 OK/);
        } finally {
          d.close();
        }
      } finally {
        c.close();
      }
    });
  }

  test('commands in the wrong state are BAD (RFC 9051 §6), and the session goes on', async () => {
    const c = await RawImap.open(tern.ports.imaps!, { tls: true });
    try {
      for (const [tag, cmd] of [
        ['w1', 'SELECT INBOX'],
        ['w2', 'LIST "" *'],
        ['w3', 'FETCH 1 FLAGS'],
        ['w4', 'IDLE'],
        ['w5', 'ENABLE QRESYNC'],
      ] as const) {
        assert.match((await c.command(tag, cmd)).tagged, new RegExp(`^${tag} BAD`), `${cmd} before login`);
      }
      assert.match((await c.command('w6', loginCommand('zoë@example.test'))).tagged, /^w6 OK/);
      for (const [tag, cmd] of [
        ['w7', 'FETCH 1 FLAGS'],
        ['w8', 'STORE 1 +FLAGS (\\Seen)'],
        ['w9', 'EXPUNGE'],
        ['w10', 'CLOSE'],
        ['w11', loginCommand('zoë@example.test')],
        ['w12', 'AUTHENTICATE PLAIN'],
        ['w13', 'STARTTLS'],
      ] as const) {
        assert.match(
          (await c.command(tag, cmd)).tagged,
          new RegExp(`^${tag} BAD`),
          `${cmd} when authenticated`,
        );
      }
      assert.match((await c.command('w14', 'SELECT INBOX')).tagged, /^w14 OK/);
      // ENABLE is for the authenticated state only (RFC 5161 §3.1).
      assert.match((await c.command('w15', 'ENABLE CONDSTORE')).tagged, /^w15 BAD/);
      assert.match((await c.command('w16', 'NOOP')).tagged, /^w16 OK/);
    } finally {
      c.close();
    }
  });

  test('a flood of bad commands ends with BYE and a closed connection', async () => {
    const c = await RawImap.open(tern.ports.imaps!, { tls: true });
    try {
      let flood = '';
      for (let i = 0; i < 50; i++) flood += `f${i} BOGUS ${i}\r\n`;
      await c.write(flood);
      const rest = await c.untilClosed();
      const lines = rest.split('\r\n').filter((l) => l.length > 0);
      const bads = lines.filter((l) => /^f\d+ BAD/.test(l));
      assert.ok(bads.length >= 3 && bads.length < 50, `some BADs, then the end: ${bads.length}`);
      assert.match(lines.at(-1)!, /^\* BYE /, lines.at(-1));
    } finally {
      c.close();
    }
  });

  for (const address of ['carol@example.test', 'jürgen@example.test']) {
    test(`${address}: AUTHENTICATE PLAIN with SASL-IR, and an exchange cancelled with "*"`, async () => {
      const c = await RawImap.open(tern.ports.imaps!, { tls: true });
      try {
        const greetingCaps = await c.command('x0', 'CAPABILITY');
        const words = capabilitiesIn(greetingCaps.untagged[0]!);
        assert.ok(words.includes('SASL-IR') && words.includes('AUTH=PLAIN'), words.join(' '));
        // Cancelled: "+" then "*" (RFC 9051 §6.2.2: a tagged BAD).
        await c.write('x1 AUTHENTICATE PLAIN\r\n');
        assert.match(await c.response(), /^\+ ?$/);
        await c.write('*\r\n');
        assert.match(await c.response(), /^x1 BAD /);
        // Not base64: BAD too.
        await c.write('x2 AUTHENTICATE PLAIN\r\n');
        assert.match(await c.response(), /^\+ ?$/);
        await c.write('!!!not base64!!!\r\n');
        assert.match(await c.response(), /^x2 BAD /);
        // The session is still usable: SASL-IR logs in with one command.
        const ok = await c.command('x3', `AUTHENTICATE PLAIN ${plainResponse(address)}`);
        assert.match(ok.tagged, /^x3 OK /, ok.tagged);
        assert.match((await c.command('x4', 'SELECT INBOX')).tagged, /^x4 OK/);
      } finally {
        c.close();
      }
      // And as a continuation.
      const d = await RawImap.open(tern.ports.imaps!, { tls: true });
      try {
        await d.write('y1 AUTHENTICATE PLAIN\r\n');
        assert.match(await d.response(), /^\+ ?$/);
        await d.write(`${plainResponse(address)}\r\n`);
        assert.match(await d.response(), /^y1 OK /);
      } finally {
        d.close();
      }
    });
  }

  for (const address of ['alice@example.test', '日本@example.test']) {
    test(`${address}: a pipelined command stream gets the same answers whole, in pieces and byte by byte`, async () => {
      await deliver(address, `pipelined für ${address}`);
      const user = Buffer.from(address);
      const pass = Buffer.from(passwordOf(address));
      const script = Buffer.concat([
        Buffer.from('a CAPABILITY\r\n'),
        // LITERAL+ for both strings: the client does not wait.
        Buffer.from(`b LOGIN {${user.length}+}\r\n`),
        user,
        Buffer.from(` {${pass.length}+}\r\n`),
        pass,
        Buffer.from('\r\n'),
        Buffer.from('c EXAMINE INBOX\r\n'),
        Buffer.from('d FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n'),
        Buffer.from('e STATUS Drafts (MESSAGES UIDNEXT)\r\n'),
        Buffer.from('f LIST "" *\r\n'),
        Buffer.from('g NOOP\r\n'),
        Buffer.from('h LOGOUT\r\n'),
      ]);
      const run = async (pieces: (script: Buffer) => Buffer[]): Promise<string> => {
        const c = await RawImap.connect(tern.ports.imap!);
        try {
          for (const piece of pieces(script)) {
            await c.write(piece);
            // Let each piece go out on its own.
            await sleep(piece.length === 1 ? 1 : 3);
          }
          return await c.untilClosed();
        } finally {
          c.close();
        }
      };
      const whole = await run((s) => [s]);
      assert.match(whole, /\r\nh OK /, whole);
      assert.match(whole, /\r\nb OK /);
      assert.match(whole, /\r\nd OK /);
      let seed = 7;
      const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const odd = await run((s) => {
        const out: Buffer[] = [];
        for (let i = 0; i < s.length;) {
          const n = 1 + Math.floor(random() * 17);
          out.push(s.subarray(i, i + n));
          i += n;
        }
        return out;
      });
      assert.equal(odd, whole, 'cut in odd pieces');
      const bytes = await run((s) => [...s].map((b) => Buffer.from([b])));
      assert.equal(bytes, whole, 'byte by byte');
    });
  }

  for (const address of ['carol@example.test', 'zoë@example.test']) {
    test(`${address}: an overlong line inside AUTHENTICATE ends it with a tagged BAD`, async () => {
      const c = await RawImap.open(tern.ports.imaps!, { tls: true });
      try {
        // RFC 9051 §6.2.2: a response the server cannot take rejects AUTHENTICATE with a tagged BAD.
        await c.write('o1 AUTHENTICATE PLAIN\r\n');
        assert.match(await c.response(), /^\+ ?$/);
        await c.write(`${'QUFB'.repeat(2600)}\r\n`);
        const auth = await c.answerOrClose('o1', 3000);
        assert.match(auth.tagged ?? '(closed)', /^o1 BAD/, JSON.stringify(auth));
        assert.match((await c.command('o2', loginCommand(address))).tagged, /^o2 OK/);
      } finally {
        c.close();
      }
    });

    test(`${address}: an overlong line inside IDLE ends it with a tagged BAD`, async () => {
      const c = await loggedIn(address);
      try {
        await c.command('o3', 'SELECT INBOX');
        // IDLE waits for DONE; an overlong line instead ends it, tagged, as any other line does.
        await c.write('o4 IDLE\r\n');
        assert.match(await c.response(), /^\+ /);
        await c.write(`${'D'.repeat(10_000)}\r\n`);
        const idle = await c.answerOrClose('o4', 3000);
        assert.match(idle.tagged ?? '(closed)', /^o4 BAD/, JSON.stringify(idle));
        // Out of IDLE: DONE is not expected any more, commands are commands.
        assert.match((await c.command('o5', 'NOOP')).tagged, /^o5 OK/);
      } finally {
        c.close();
      }
    });
  }

  for (const address of ['bob@example.test', 'jürgen@example.test']) {
    test(`${address}: IDLE: a delivery arrives as untagged EXISTS, DONE ends it`, async () => {
      const c = await loggedIn(address);
      try {
        const select = await c.command('i1', 'SELECT INBOX');
        const exists = Number(/^\* (\d+) EXISTS$/m.exec(select.untagged.join('\n'))![1]);
        await c.write('i2 IDLE\r\n');
        assert.match(await c.response(), /^\+ /);
        await deliver(address, `während IDLE für ${address}`);
        const pushed = await c.response(10_000);
        assert.equal(pushed, `* ${exists + 1} EXISTS`);
        await c.write('DONE\r\n');
        const done = await c.answer('i2');
        assert.match(done.tagged, /^i2 OK /);
        // IDLE ended by something other than DONE is BAD (RFC 2177 §3).
        await c.write('i3 IDLE\r\n');
        assert.match(await c.response(), /^\+ /);
        await c.write('i4 NOOP\r\n');
        assert.match(await c.response(), /^i3 BAD/);
        assert.match((await c.command('i5', 'NOOP')).tagged, /^i5 OK/);
      } finally {
        c.close();
      }
    });
  }

  for (const address of ['alice@example.test', 'zoë@example.test']) {
    test(`${address}: a connection dropped in the middle of an APPEND literal stores nothing`, async () => {
      const count = async (): Promise<number> => {
        const c = await loggedIn(address);
        try {
          const r = await c.command('n', 'STATUS Drafts (MESSAGES)');
          return Number(/MESSAGES (\d+)/.exec(r.untagged[0]!)![1]);
        } finally {
          c.close();
        }
      };
      const before = await count();
      const aborted = (): number =>
        tern.logs().filter((l) => l.event === 'imap.close' && l['appendAborted'] === true).length;
      const abortedBefore = aborted();
      const c = await loggedIn(address);
      await c.write('d1 APPEND Drafts {4000}\r\n');
      assert.match(await c.response(), /^\+ /);
      await c.write(`Subject: halb\r\n\r\n${'x'.repeat(1000)}`);
      await sleep(100);
      c.close();
      // A LITERAL+ one cut short the same way.
      const d = await loggedIn(address);
      await d.write(`d2 APPEND Drafts {4000+}\r\nSubject: halb\r\n\r\n${'y'.repeat(1000)}`);
      await sleep(100);
      d.close();
      // Both sessions' ends are logged once their APPEND is undone: then the count must be as before.
      await waitFor('both cut-short APPENDs undone', () =>
        aborted() >= abortedBefore + 2 ? true : undefined,
      );
      assert.equal(await count(), before, 'no partial message in Drafts');
    });
  }

  for (const address of ['carol@example.test', '日本@example.test']) {
    test(`${address}: an APPEND literal streamed in small pieces is stored byte for byte`, async () => {
      const c = await loggedIn(address);
      try {
        const lines: string[] = [`From: ${address}`, 'Subject: in Stücken 日本', ''];
        for (let i = 0; i < 400; i++) lines.push(`Zeile ${i}: ${'äöü東京'.repeat(8)}`);
        const message = Buffer.from(`${lines.join('\r\n')}\r\n`);
        // Synchronizing: wait for "+", then 97-byte pieces.
        await c.write(`a1 APPEND Drafts (\\Draft) "01-Jan-2025 10:00:00 +0100" {${message.length}}\r\n`);
        assert.match(await c.response(), /^\+ /);
        for (let i = 0; i < message.length; i += 97) {
          await c.write(message.subarray(i, i + 97));
          if (i % (97 * 20) === 0) await sleep(2);
        }
        await c.write('\r\n');
        const appended = await c.answer('a1');
        const m = /^a1 OK \[APPENDUID (\d+) (\d+)\]/.exec(appended.tagged);
        assert.ok(m, appended.tagged);
        // LITERAL+: no wait, the same pieces.
        await c.write(`a2 APPEND Drafts {${message.length}+}\r\n`);
        for (let i = 0; i < message.length; i += 13) await c.write(message.subarray(i, i + 13));
        await c.write('\r\n');
        assert.match((await c.answer('a2')).tagged, /^a2 OK \[APPENDUID /);

        await c.command('a3', 'SELECT Drafts');
        const fetched = await c.command('a4', `UID FETCH ${m[2]} (FLAGS INTERNALDATE BODY.PEEK[])`);
        assert.match(fetched.tagged, /^a4 OK/);
        const body = fetched.untagged.find((u) => u.includes('BODY[]'));
        assert.ok(body, fetched.untagged.join('\n'));
        // This IMAP4rev1 session is the first to see the message: \Recent (RFC 3501 §2.3.2).
        assert.match(body, /FLAGS \(\\Draft \\Recent\)/);
        // The same instant; the zone may be the server's (RFC 9051 §2.3.3 leaves it open).
        const date = /INTERNALDATE "([^"]+)"/.exec(body)![1]!;
        assert.equal(imapDateMs(date), Date.UTC(2025, 0, 1, 9, 0, 0), date);
        const literal = /BODY\[\] \{(\d+)\}\r\n/.exec(body)!;
        assert.equal(Number(literal[1]), message.length);
        const start = body.indexOf(literal[0]) + literal[0].length;
        assert.ok(Buffer.from(body.slice(start)).subarray(0, message.length).equals(message));
      } finally {
        c.close();
      }
    });
  }
});

describe('IMAP without cleartext logins (LOGINDISABLED)', { skip }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ users: [...USERS], imapPlaintextAuthOnLoopback: false });
  });
  after(() => tern?.stop());

  for (const address of ['alice@example.test', 'jürgen@example.test']) {
    test(`${address}: LOGINDISABLED before STARTTLS, LOGIN and AUTHENTICATE refused; both work after it`, async () => {
      const c = await RawImap.connect(tern.ports.imap!);
      try {
        const greeting = await c.response();
        const words = capabilitiesIn(greeting);
        assert.ok(words.includes('LOGINDISABLED'), words.join(' '));
        assert.ok(words.includes('STARTTLS'), words.join(' '));
        assert.ok(!words.some((w) => w.startsWith('AUTH=')), `no SASL before TLS: ${words.join(' ')}`);
        const login = await c.command('l1', loginCommand(address));
        assert.match(login.tagged, /^l1 NO \[PRIVACYREQUIRED\]/, login.tagged);
        const auth = await c.command('l2', `AUTHENTICATE PLAIN ${plainResponse(address)}`);
        assert.match(auth.tagged, /^l2 NO/, auth.tagged);
        assert.match((await c.command('l3', 'STARTTLS')).tagged, /^l3 OK/);
        await c.startTls();
        const after = capabilitiesIn((await c.command('l4', 'CAPABILITY')).untagged[0]!);
        assert.ok(!after.includes('LOGINDISABLED'), after.join(' '));
        assert.ok(after.includes('AUTH=PLAIN'), after.join(' '));
        assert.match((await c.command('l5', loginCommand(address))).tagged, /^l5 OK/);
      } finally {
        c.close();
      }
    });
  }
});

describe('IMAP failed logins and the shared lockout', { skip }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [...USERS],
      tables: {
        auth: {
          failure_delay_seconds: 0.05,
          lockout_threshold: 3,
          lockout_window_seconds: 600,
          lockout_seconds: 600,
        },
      },
    });
  });
  after(() => tern?.stop());

  for (const [address, ip] of [
    ['carol@example.test', '127.0.0.2'],
    ['zoë@example.test', '127.0.0.5'],
  ] as const) {
    test(`${address}: failed logins lock the account for IMAP and submission alike`, async () => {
      for (let i = 0; i < 3; i++) {
        const c = await RawImap.open(tern.ports.imaps!, { tls: true, localAddress: ip });
        try {
          const r = await c.command('f', `LOGIN ${quoted(address)} "wrong ${i}"`);
          assert.match(r.tagged, /^f NO \[AUTHENTICATIONFAILED\]/, r.tagged);
        } finally {
          c.close();
        }
      }
      await tern.waitForLog(
        `the account lockout of ${address}`,
        (l) => l.event === 'security.auth.locked' && l['by'] === 'account' && l['account'] === address,
      );
      // From another address, with the right password: the account is locked.
      const other = ip.replace(/\d+$/, (n) => String(Number(n) + 1));
      const c = await RawImap.open(tern.ports.imaps!, { tls: true, localAddress: other });
      try {
        const locked = await c.command('g', loginCommand(address));
        assert.match(locked.tagged, /^g NO \[(UNAVAILABLE|AUTHENTICATIONFAILED)\]/, locked.tagged);
        const sasl = await c.command('h', `AUTHENTICATE PLAIN ${plainResponse(address)}`);
        assert.match(sasl.tagged, /^h NO /, sasl.tagged);
      } finally {
        c.close();
      }
      // Submission shares the lockout (a raw client: smtplib cannot send a UTF-8 user name).
      const smtp = await RawSmtpClient.open(tern.ports.submissions, { tls: true });
      try {
        await ehlo(smtp);
        const reply = await smtp.command(`AUTH PLAIN ${plainResponse(address)}`);
        assert.equal(reply.code, 454, reply.raw);
      } finally {
        smtp.close();
      }
    });
  }
});

describe('IMAP limits: connections per user, autologout', { skip }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [...USERS],
      // An autologout far below RFC 9051 §5.4's 30 minutes, only so that the test can wait for it.
      tables: { imap: { max_connections_per_user: 2, idle_timeout_seconds: 2 } },
    });
  });
  after(() => tern?.stop());

  for (const address of ['alice@example.test', 'jürgen@example.test']) {
    test(`${address}: a third session of one user is refused; a session that logs out frees its place`, async () => {
      const sessions: RawImap[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          const c = await RawImap.open(tern.ports.imaps!, { tls: true });
          sessions.push(c);
          assert.match((await c.command('m', loginCommand(address))).tagged, /^m OK/);
        }
        const third = await RawImap.open(tern.ports.imaps!, { tls: true });
        sessions.push(third);
        const refused = await third.command('n', loginCommand(address));
        assert.match(refused.tagged, /^n NO /, refused.tagged);
        await sessions[0]!.command('o', 'LOGOUT');
        const again = await waitFor('a free place after LOGOUT', async () => {
          const r = await third.command('p', loginCommand(address));
          return /^p OK/.test(r.tagged) ? r : undefined;
        });
        assert.match(again.tagged, /^p OK/);
        // Connections dropped without LOGOUT free their places too.
        sessions[1]!.close();
        third.close();
        await waitFor('free places after two dropped connections', async () => {
          const probes = [
            await RawImap.open(tern.ports.imaps!, { tls: true }),
            await RawImap.open(tern.ports.imaps!, { tls: true }),
          ];
          sessions.push(...probes);
          const answers = [];
          for (const p of probes) answers.push((await p.command('s', loginCommand(address))).tagged);
          for (const p of probes) p.close();
          return answers.every((a) => /^s OK/.test(a)) ? true : undefined;
        });
      } finally {
        for (const c of sessions) c.close();
      }
    });
  }

  test('an inactive client is logged out with an untagged BYE (RFC 9051 §5.4), before and after login', async () => {
    const c = await RawImap.open(tern.ports.imaps!, { tls: true });
    const d = await RawImap.open(tern.ports.imaps!, { tls: true });
    try {
      assert.match((await d.command('q', loginCommand('日本@example.test'))).tagged, /^q OK/);
      await d.command('r', 'SELECT INBOX');
      const started = Date.now();
      for (const session of [c, d]) {
        const rest = await session.untilClosed(8000);
        assert.match(rest, /^\* BYE /, rest);
      }
      assert.ok(Date.now() - started >= 1000, 'not before the timeout');
    } finally {
      c.close();
      d.close();
    }
  });
});
