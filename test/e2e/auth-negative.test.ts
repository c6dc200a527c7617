// SMTP AUTH refusals and submission rules over real sockets, byte-exact replies (harness RawSmtpClient):
// no AUTH before STARTTLS on submission (RFC 4954 §4, 538) and 530 5.7.0 for MAIL without AUTH (§6),
// unless allow_plaintext_auth_on_loopback lets a loopback client in; the MX listener offers no AUTH; relaying needs AUTH (554 5.7.1); sender ownership for MAIL FROM and for
// From:/Sender: at the end of DATA (553 5.7.1; an alias or a send-as grant makes an address the user's);
// "*" cancels (501), bad base64 (501 5.5.2), AUTH twice (503), AUTH in a transaction (503), an unknown
// mechanism (504); too many failures on one connection (421 4.7.0 and close); Date: and Message-ID:
// added to an authenticated submission that lacks them (RFC 6409 §8.2, §8.3), read back with
// `tern mailbox cat`, and not added on the MX listener.
// Deliberately NOT here: lockouts and hourly limits (auth-limits), each client's happy path.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AuthTern } from './auth-helpers.ts';
import { b64, plainResponse, rawAuthed, rawData, rawSession, startAuthTern } from './auth-helpers.ts';
import type { SmtpReply } from './harness.ts';
import { splitTrace, waitFor } from './harness.ts';

const ALICE = 'alice@example.test';
const ALICE_PW = 'alice pw';
const BOB = 'bob@example.test';
const BOB_PW = 'bob pw';

function is(reply: SmtpReply, code: number, enhanced: string): void {
  assert.equal(`${reply.code} ${reply.enhanced}`, `${code} ${enhanced}`, reply.raw);
}

describe('SMTP AUTH refusals and submission rules', () => {
  let tern: AuthTern;
  before(async () => {
    tern = await startAuthTern({
      users: [
        { address: ALICE, password: ALICE_PW },
        { address: BOB, password: BOB_PW },
        { address: 'box@example.test' },
      ],
      aliases: [['sales@example.test', ALICE]],
      sendAs: [
        [ALICE, 'news@example.test'],
        [BOB, '@partner.test'],
      ],
      listeners: [
        { service: 'smtp', tls: 'starttls' },
        { service: 'submission', tls: 'starttls' },
        { service: 'submissions', tls: 'implicit' },
        { service: 'submission', tls: 'starttls', allow_plaintext_auth_on_loopback: true },
      ],
      // Failures below must not lock 127.0.0.1 out of the rest of this file (auth-limits tests that).
      auth: { lockout_threshold: 1000 },
    });
  });
  after(() => tern?.stop());

  describe('before and without AUTH', () => {
    test('submission before STARTTLS: EHLO has no AUTH; AUTH gets 538 5.7.11; MAIL gets 530 5.7.0', async () => {
      const { client, ehlo } = await rawSession(tern.ports.submission, 'plain');
      try {
        assert.ok(ehlo.includes('STARTTLS'), ehlo.join(','));
        assert.equal(
          ehlo.find((k) => k.startsWith('AUTH')),
          undefined,
        );
        is(await client.command(`AUTH PLAIN ${plainResponse(ALICE, ALICE_PW)}`), 538, '5.7.11');
        is(await client.command(`MAIL FROM:<${ALICE}>`), 530, '5.7.0');
      } finally {
        client.close();
      }
      // The credentials sent in clear were not even looked at.
      assert.equal(tern.events('smtp.auth.succeeded').filter((l) => l['user'] === ALICE).length, 0);
    });

    test('submission after STARTTLS without AUTH: AUTH offered, MAIL gets 530 5.7.0 Authentication required', async () => {
      const { client, ehlo } = await rawSession(tern.ports.submission, 'starttls');
      try {
        assert.ok(ehlo.includes('AUTH SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN'), ehlo.join(','));
        const r = await client.command(`MAIL FROM:<${ALICE}>`);
        is(r, 530, '5.7.0');
        assert.equal(r.lines[0], '5.7.0 Authentication required');
        // Nothing of a transaction started: RCPT is out of sequence.
        assert.equal((await client.command('RCPT TO:<box@example.test>')).code, 503);
      } finally {
        client.close();
      }
    });

    test('allow_plaintext_auth_on_loopback: AUTH before TLS from 127.0.0.1, without the TLS-bound mechanisms', async () => {
      const { client, ehlo } = await rawSession(tern.listenerPorts[3]!, 'plain');
      try {
        assert.ok(ehlo.includes('AUTH SCRAM-SHA-256 PLAIN LOGIN'), ehlo.join(','));
        // Without TLS MAIL asks for AUTH, not for STARTTLS, since AUTH is possible here.
        const r = await client.command(`MAIL FROM:<${ALICE}>`);
        assert.equal(r.lines[0], '5.7.0 Authentication required');
        is(await client.command('AUTH SCRAM-SHA-256-PLUS'), 538, '5.7.11');
        assert.equal((await client.command(`AUTH PLAIN ${plainResponse(ALICE, ALICE_PW)}`)).code, 235);
        assert.equal((await client.command(`MAIL FROM:<${ALICE}>`)).code, 250);
      } finally {
        client.close();
      }
    });

    test('the MX listener (smtp) offers no AUTH, before or after STARTTLS, and answers AUTH with 503', async () => {
      const { client, ehlo } = await rawSession(tern.ports.smtp, 'starttls');
      try {
        assert.equal(
          ehlo.find((k) => k.startsWith('AUTH')),
          undefined,
        );
        is(await client.command(`AUTH PLAIN ${plainResponse(ALICE, ALICE_PW)}`), 503, '5.5.1');
      } finally {
        client.close();
      }
    });

    test('relay without AUTH on the MX listener: 554 5.7.1; a local recipient is fine', async () => {
      const { client } = await rawSession(tern.ports.smtp, 'starttls');
      try {
        assert.equal((await client.command('MAIL FROM:<someone@remote.test>')).code, 250);
        is(await client.command('RCPT TO:<victim@elsewhere.test>'), 554, '5.7.1');
        assert.equal((await client.command('RCPT TO:<box@example.test>')).code, 250);
      } finally {
        client.close();
      }
    });
  });

  describe('the SASL exchange', () => {
    test('"*" cancels an exchange: 501, and the session is as before', async () => {
      const { client } = await rawSession(tern.ports.submissions, 'tls');
      try {
        const c = await client.command('AUTH LOGIN');
        assert.equal(c.code, 334);
        assert.equal(Buffer.from(c.lines[0]!, 'base64').toString(), 'Username:');
        is(await client.command('*'), 501, '5.7.0');
        is(await client.command(`MAIL FROM:<${ALICE}>`), 530, '5.7.0');
        assert.equal((await client.command(`AUTH PLAIN ${plainResponse(ALICE, ALICE_PW)}`)).code, 235);
      } finally {
        client.close();
      }
    });

    test('bad base64 as initial response and as a continuation line: 501 5.5.2', async () => {
      const { client } = await rawSession(tern.ports.submissions, 'tls');
      try {
        // Base64 letters, but three of them cannot be decoded.
        is(await client.command('AUTH PLAIN abc'), 501, '5.5.2');
        assert.equal((await client.command('AUTH PLAIN')).code, 334);
        is(await client.command('%%%%'), 501, '5.5.2');
        // Still usable afterwards (two failures are below max_failures_per_connection).
        assert.equal((await client.command(`AUTH PLAIN ${plainResponse(ALICE, ALICE_PW)}`)).code, 235);
      } finally {
        client.close();
      }
    });

    test('an initial response with characters outside base64: 501 5.5.2 like any undecodable response', async () => {
      const { client } = await rawSession(tern.ports.submissions, 'tls');
      try {
        is(await client.command('AUTH PLAIN not*base64!'), 501, '5.5.2');
      } finally {
        client.close();
      }
    });

    test('AUTH twice: 503 5.5.1; AUTH inside a transaction: 503; unknown mechanism: 504 5.5.4', async () => {
      const { client } = await rawSession(tern.ports.submissions, 'tls');
      try {
        is(await client.command('AUTH DIGEST-MD5'), 504, '5.5.4');
        assert.equal((await client.command(`AUTH PLAIN ${plainResponse(ALICE, ALICE_PW)}`)).code, 235);
        is(await client.command(`AUTH PLAIN ${plainResponse(BOB, BOB_PW)}`), 503, '5.5.1');
        assert.equal((await client.command(`MAIL FROM:<${ALICE}>`)).code, 250);
        assert.equal((await client.command('RSET')).code, 250);
        // Still alice after RSET: her address is hers, bob's is not.
        is(await client.command(`MAIL FROM:<${BOB}>`), 553, '5.7.1');
      } finally {
        client.close();
      }
    });

    test('a transaction in progress refuses AUTH with 503', async () => {
      const client = await rawAuthed(tern.ports.submissions, 'tls', ALICE, ALICE_PW);
      try {
        assert.equal((await client.command(`MAIL FROM:<${ALICE}>`)).code, 250);
        assert.equal((await client.command(`AUTH LOGIN ${b64(BOB)}`)).code, 503);
      } finally {
        client.close();
      }
    });

    test('max_failures_per_connection (3): 535, 535, then 535 and 421 4.7.0, and the connection is closed', async () => {
      const { client } = await rawSession(tern.ports.submissions, 'tls');
      const wrong = `AUTH PLAIN ${plainResponse(ALICE, 'guess')}`;
      is(await client.command(wrong), 535, '5.7.8');
      is(await client.command(wrong), 535, '5.7.8');
      await client.send(`${wrong}\r\n`);
      const last = await client.readUntilClose();
      assert.equal(last.length, 2, JSON.stringify(last.map((r) => r.raw)));
      is(last[0]!, 535, '5.7.8');
      is(last[1]!, 421, '4.7.0');
    });

    test('bad base64 as the last allowed failure: its 501 5.5.2 still comes, then 421 4.7.0 and a close', async () => {
      const { client } = await rawSession(tern.ports.submissions, 'tls');
      const wrong = `AUTH PLAIN ${plainResponse(ALICE, 'guess')}`;
      is(await client.command(wrong), 535, '5.7.8');
      is(await client.command(wrong), 535, '5.7.8');
      await client.send('AUTH PLAIN not*base64!\r\n');
      const last = await client.readUntilClose();
      assert.deepEqual(
        last.map((r) => `${r.code} ${r.enhanced}`),
        ['501 5.5.2', '421 4.7.0'],
        JSON.stringify(last.map((r) => r.raw)),
      );
    });
  });

  describe('sender ownership (authenticated as alice)', () => {
    for (const [sender, code] of [
      [ALICE, 250],
      ['sales@example.test', 250], // an alias that delivers to alice
      ['news@example.test', 250], // a send-as grant
      [BOB, 553],
      ['alice@elsewhere.test', 553],
      ['anyone@partner.test', 553], // bob's grant, not alice's
    ] as const) {
      test(`MAIL FROM:<${sender}> → ${code}`, async () => {
        const client = await rawAuthed(tern.ports.submissions, 'tls', ALICE, ALICE_PW);
        try {
          const r = await client.command(`MAIL FROM:<${sender}>`);
          if (code === 553) {
            is(r, 553, '5.7.1');
            assert.equal(r.lines[0], '5.7.1 Sender address not owned by authenticated user');
          } else assert.equal(r.code, 250, r.raw);
        } finally {
          client.close();
        }
      });
    }

    test('a domain send-as grant (@partner.test) covers any address of that domain for bob', async () => {
      const client = await rawAuthed(tern.ports.submission, 'starttls', BOB, BOB_PW);
      try {
        assert.equal((await client.command('MAIL FROM:<sales-team@partner.test>')).code, 250);
      } finally {
        client.close();
      }
    });

    const submit = async (headers: string, subject: string): Promise<SmtpReply> => {
      const client = await rawAuthed(tern.ports.submissions, 'tls', ALICE, ALICE_PW);
      try {
        assert.equal((await client.command(`MAIL FROM:<${ALICE}>`)).code, 250);
        assert.equal((await client.command('RCPT TO:<box@example.test>')).code, 250);
        return await rawData(client, `${headers}Subject: ${subject}\r\n\r\nBody.`);
      } finally {
        client.close();
      }
    };

    test('From: not owned: 553 5.7.1 at the end of DATA, and nothing is delivered', async () => {
      const before = (await tern.storedMessages('box@example.test')).length;
      const r = await submit(`From: Bob <${BOB}>\r\n`, 'forged from');
      is(r, 553, '5.7.1');
      const refused = await tern.waitForLog(
        'the From: refusal',
        (l) => l.event === 'security.sender.refused' && l['where'] === 'From:',
      );
      assert.equal(refused['sender'], BOB);
      // A message with an owned From: sent afterwards arrives; the refused one never does.
      assert.equal((await submit(`From: <${ALICE}>\r\n`, 'after forged')).code, 250);
      const list = await tern.waitForMessages('box@example.test', before + 1);
      assert.ok(!list.some((m) => m.subject === 'forged from'));
    });

    test('Sender: not owned is refused too; a From: list with one foreign address is refused', async () => {
      is(await submit(`From: ${ALICE}\r\nSender: ${BOB}\r\n`, 'forged sender'), 553, '5.7.1');
      is(await submit(`From: ${ALICE}, ${BOB}\r\n`, 'two from'), 553, '5.7.1');
    });

    for (const [from, why] of [
      ['Sales <sales@example.test>', 'an alias of alice'],
      ['"The News" <news@example.test>', "alice's send-as grant"],
    ] as const) {
      test(`From: ${from} (${why}) is accepted and delivered`, async () => {
        const subject = `from ${why}`;
        const r = await submit(`From: ${from}\r\n`, subject);
        assert.equal(r.code, 250, r.raw);
        await waitFor(`the message "${subject}"`, async () =>
          (await tern.storedMessages('box@example.test')).find((m) => m.subject === subject),
        );
      });
    }
  });

  describe('header completion (RFC 6409 §8)', () => {
    const read = async (subject: string): Promise<string> => {
      const entry = await waitFor(`"${subject}" in box`, async () =>
        (await tern.mailboxList('box@example.test')).find((m) => m.subject === subject),
      );
      return splitTrace(await tern.mailboxCat('box@example.test', entry.id)).rest.toString('utf8');
    };

    test('an authenticated submission without Date: and Message-ID: gets both; the body is untouched', async () => {
      const client = await rawAuthed(tern.ports.submission, 'starttls', ALICE, ALICE_PW);
      let queueId: string;
      try {
        assert.equal((await client.command(`MAIL FROM:<${ALICE}>`)).code, 250);
        assert.equal((await client.command('RCPT TO:<box@example.test>')).code, 250);
        const r = await rawData(client, `From: ${ALICE}\r\nSubject: bare headers\r\n\r\nJust the body.`);
        assert.equal(r.code, 250, r.raw);
        queueId = /queued as (\S+)/.exec(r.lines[0]!)![1]!;
      } finally {
        client.close();
      }
      const text = await read('bare headers');
      const [header, body] = text.split('\r\n\r\n') as [string, string];
      const dates = header.match(/^Date: .*$/gm) ?? [];
      assert.equal(dates.length, 1, header);
      assert.match(
        dates[0],
        /^Date: [A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$/,
      );
      const ids = header.match(/^Message-ID: .*$/gm) ?? [];
      assert.equal(ids.length, 1, header);
      assert.match(ids[0], new RegExp(`^Message-ID: <${queueId}\\.[0-9a-f]+@mx\\.example\\.test>$`));
      assert.match(header, /^From: alice@example\.test$/m);
      assert.equal(body, 'Just the body.\r\n');
    });

    test('a submission that has them keeps its own, unchanged and not doubled', async () => {
      const client = await rawAuthed(tern.ports.submissions, 'tls', ALICE, ALICE_PW);
      try {
        assert.equal((await client.command(`MAIL FROM:<${ALICE}>`)).code, 250);
        assert.equal((await client.command('RCPT TO:<box@example.test>')).code, 250);
        const r = await rawData(
          client,
          `Date: Mon, 02 Feb 2026 10:00:00 +0000\r\nMessage-ID: <mine@example.test>\r\nFrom: ${ALICE}\r\n` +
            'Subject: full headers\r\n\r\nBody.',
        );
        assert.equal(r.code, 250, r.raw);
      } finally {
        client.close();
      }
      const header = (await read('full headers')).split('\r\n\r\n')[0]!;
      assert.deepEqual(header.match(/^Date: .*$/gm), ['Date: Mon, 02 Feb 2026 10:00:00 +0000']);
      assert.deepEqual(header.match(/^Message-ID: .*$/gim), ['Message-ID: <mine@example.test>']);
    });

    test('the MX listener adds neither (it relays what it receives; completion is a submission job)', async () => {
      const { client } = await rawSession(tern.ports.smtp, 'plain');
      try {
        assert.equal((await client.command('MAIL FROM:<someone@remote.test>')).code, 250);
        assert.equal((await client.command('RCPT TO:<box@example.test>')).code, 250);
        const r = await rawData(client, 'From: someone@remote.test\r\nSubject: mx bare\r\n\r\nBody.');
        assert.equal(r.code, 250, r.raw);
      } finally {
        client.close();
      }
      const header = (await read('mx bare')).split('\r\n\r\n')[0]!;
      assert.doesNotMatch(header, /^Date:/m);
      assert.doesNotMatch(header, /^Message-ID:/im);
    });
  });
});
