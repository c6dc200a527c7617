// SECURITY end to end, over raw sockets against a running `tern serve`:
// - SMTP smuggling (CVE-2023-51764 class): no bare-CR/LF variant of <CRLF>.<CRLF> ends DATA, so no
//   second message can ride inside the first; checked with policy "reject" (the message is refused) and
//   "normalize" (one message, the would-be commands stored as text), also byte by byte.
// - STARTTLS command injection (CVE-2011-0411 class): plaintext pipelined after STARTTLS is never run.
// - Open relay tricks from an unauthenticated client: percent hack, bang paths, quoted local parts,
//   source routes, address literals, case games: all refused (RFC 5321 §3.6, Postfix allow_untrusted_routing).
// - Hostile input: bare LF/CR in commands, over-long lines (RFC 5321 §4.5.3.1.4), early talkers,
//   binary garbage, plaintext on the TLS port, dropped connections: the server answers and lives on.
// Deliberately NOT here: ordinary protocol behaviour (smtp-raw) and independent clients (smtplib, nodemailer).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SmtpReply, Tern } from './harness.ts';
import { RawSmtpClient, ehlo, startTern, waitFor } from './harness.ts';

/** Every way of almost writing <CRLF>.<CRLF> with a bare CR or LF somewhere in it. */
const SMUGGLING_VARIANTS: readonly string[] = [
  '\n.\n',
  '\r.\r',
  '\r.\n',
  '\n.\r',
  '\n.\r\n',
  '\r.\r\n',
  '\r\n.\n',
  '\r\n.\r',
  '\n.\n\r\n',
  '\r\n.\r\r\n',
  '\r\n\r.\r\n',
  '\r\n.\n\r\n',
];

const printable = (s: string): string => JSON.stringify(s).slice(1, -1);

/** A message whose body carries a complete second transaction after a fake end of data. */
function smugglingPayload(variant: string, victim: string): string {
  return (
    `From: <bob@remote.test>\r\nTo: <${victim}>\r\nSubject: carrier\r\n\r\nbefore the fake end` +
    variant +
    `MAIL FROM:<evil@remote.test>\r\nRCPT TO:<${victim}>\r\nDATA\r\n` +
    `From: <evil@remote.test>\r\nTo: <${victim}>\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n` +
    // The real end of data, then QUIT: what the last hop would see of the smuggled transaction.
    '.\r\nQUIT\r\n'
  );
}

async function openTransaction(port: number, rcpt: string): Promise<RawSmtpClient> {
  const c = await RawSmtpClient.open(port);
  await ehlo(c);
  assert.equal((await c.command('MAIL FROM:<bob@remote.test>')).code, 250);
  assert.equal((await c.command(`RCPT TO:<${rcpt}>`)).code, 250);
  assert.equal((await c.command('DATA')).code, 354);
  return c;
}

const codes = (replies: readonly SmtpReply[]): string[] =>
  replies.map((r) => `${r.code} ${r.enhanced}`.trim());

async function queueIsEmpty(tern: Tern): Promise<boolean> {
  const r = await tern.tern(['queue', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as unknown[]).length === 0;
}

describe('SMTP smuggling with bare_line_endings = "reject" (the default)', () => {
  let tern: Tern;
  const victims = SMUGGLING_VARIANTS.map((_, i) => `victim${i}@example.test`);
  before(async () => {
    tern = await startTern({ users: [...victims, 'frag@example.test', 'control@example.test'] });
  });
  after(() => tern?.stop());

  for (const [i, variant] of SMUGGLING_VARIANTS.entries()) {
    test(`"${printable(variant)}" does not end DATA; the whole message is refused (550 5.6.11)`, async () => {
      const c = await openTransaction(tern.ports.smtp, victims[i]!);
      await c.send(smugglingPayload(variant, victims[i]!));
      // One reply for the message, one for QUIT: a smuggled transaction would add 250 250 354 250.
      assert.deepEqual(codes(await c.readUntilClose()), ['550 5.6.11', '221 2.0.0']);
    });
  }

  test('the same, written one byte at a time around the fake end', async () => {
    const c = await openTransaction(tern.ports.smtp, 'frag@example.test');
    const payload = smugglingPayload('\n.\r\n', 'frag@example.test');
    const cut = payload.indexOf('before the fake end');
    await c.send(payload.slice(0, cut));
    for (const ch of payload.slice(cut, cut + 60)) {
      await c.send(ch);
      await sleep(2);
    }
    await c.send(payload.slice(cut + 60));
    assert.deepEqual(codes(await c.readUntilClose()), ['550 5.6.11', '221 2.0.0']);
  });

  test('nothing was queued or delivered for any victim; a clean message still goes through', async () => {
    const c = await openTransaction(tern.ports.smtp, 'control@example.test');
    await c.send('Subject: control\r\n\r\nclean\r\n.\r\nQUIT\r\n');
    assert.deepEqual(codes(await c.readUntilClose()), ['250 2.0.0', '221 2.0.0']);
    await tern.waitForMessages('control@example.test', 1);
    await waitFor('an empty queue', async () => ((await queueIsEmpty(tern)) ? true : undefined));
    for (const v of [...victims, 'frag@example.test'])
      assert.equal((await tern.storedMessages(v)).length, 0, `${v} got mail`);
  });
});

describe('SMTP smuggling with bare_line_endings = "normalize"', () => {
  let tern: Tern;
  const victims = SMUGGLING_VARIANTS.map((_, i) => `victim${i}@example.test`);
  before(async () => {
    tern = await startTern({ users: victims, smtp: { bare_line_endings: 'normalize' } });
  });
  after(() => tern?.stop());

  test('every variant gives exactly one message, with the would-be commands as its text', async () => {
    for (const [i, variant] of SMUGGLING_VARIANTS.entries()) {
      const c = await openTransaction(tern.ports.smtp, victims[i]!);
      await c.send(smugglingPayload(variant, victims[i]!));
      assert.deepEqual(codes(await c.readUntilClose()), ['250 2.0.0', '221 2.0.0'], printable(variant));
    }
    for (const v of victims) await tern.waitForMessages(v, 1);
    await waitFor('an empty queue', async () => ((await queueIsEmpty(tern)) ? true : undefined));
    for (const [i, v] of victims.entries()) {
      const list = await tern.storedMessages(v);
      assert.equal(list.length, 1, `${v}: ${printable(SMUGGLING_VARIANTS[i]!)}`);
      assert.equal(list[0]!.subject, 'carrier');
      const text = (await tern.storedMessage(v, list[0]!.id)).toString('latin1');
      assert.ok(text.includes('MAIL FROM:<evil@remote.test>'), 'the smuggled commands are message text');
      assert.ok(text.includes('smuggled body'));
      // Normalized: every line ending stored is a CRLF.
      assert.ok(
        !/\r(?!\n)|(?<!\r)\n/.test(text),
        `bare CR/LF stored for ${printable(SMUGGLING_VARIANTS[i]!)}`,
      );
    }
  });
});

describe('STARTTLS injection, relay tricks and hostile input', () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({ users: ['alice@example.test', 'user@example.test'] });
  });
  after(() => tern?.stop());

  test('STARTTLS\\r\\nRSET\\r\\n in one packet: one reply before TLS, nothing executed after', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    await c.send('STARTTLS\r\nRSET\r\n');
    const ready = await c.readReply();
    assert.equal(ready.code, 220);
    assert.equal(ready.enhanced, '2.0.0');
    // The server must now be waiting for a ClientHello, not answering RSET in plaintext.
    assert.equal(c.pending.length, 0, `plaintext after 220: ${JSON.stringify(c.pending.toString())}`);
    await c.startTls();
    assert.equal((await c.drain(300)).length, 0, 'a reply to the injected RSET arrived over TLS');
    const ext = await ehlo(c);
    assert.ok(!ext.includes('STARTTLS'));
    assert.equal((await c.command('QUIT')).code, 221);
  });

  test('an injected MAIL FROM before the handshake is forgotten: RCPT after TLS gets 503', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    await c.send('STARTTLS\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<alice@example.test>\r\n');
    assert.equal((await c.readReply()).code, 220);
    await c.startTls();
    // Before EHLO over TLS, nothing from the plaintext session survives (RFC 3207 §4.2).
    assert.deepEqual(codes([await c.command('RCPT TO:<alice@example.test>')]), ['503 5.5.1']);
    await ehlo(c);
    assert.deepEqual(codes([await c.command('RCPT TO:<alice@example.test>')]), ['503 5.5.1']);
    assert.deepEqual(codes([await c.command('DATA')]), ['503 5.5.1']);
    c.close();
  });

  const RELAY_TRICKS: readonly [string, string][] = [
    ['percent hack', 'user%remote.test@example.test'],
    ['percent hack, upper case', 'USER%REMOTE.TEST@EXAMPLE.TEST'],
    ['bang path', 'remote.test!user@example.test'],
    ['quoted local part hiding an @', '"user@remote.test"@example.test'],
    ['quoted percent hack', '"user%remote.test"@example.test'],
    ['source route ending in a remote address', '@example.test:user@remote.test'],
    ['source route through two local hops', '@example.test,@mx.example.test:user@remote.test'],
    ['plain remote address', 'user@remote.test'],
    ['remote address, upper case', 'USER@REMOTE.TEST'],
    ['address literal', 'user@[127.0.0.1]'],
    ['IPv6 address literal', 'user@[IPv6:::1]'],
    ['subdomain of a local domain', 'user@sub.example.test'],
    ['local domain as a prefix', 'user@example.test.remote.test'],
  ];

  for (const [what, address] of RELAY_TRICKS) {
    test(`relay trick refused: ${what} <${address}>`, async () => {
      const c = await RawSmtpClient.open(tern.ports.smtp);
      await ehlo(c);
      assert.equal((await c.command('MAIL FROM:<bob@remote.test>')).code, 250);
      const r = await c.command(`RCPT TO:<${address}>`);
      assert.ok(
        (r.code === 554 && r.enhanced === '5.7.1') || (r.code === 550 && r.enhanced.startsWith('5.')),
        `RCPT TO:<${address}> got ${r.raw}`,
      );
      // Nothing was accepted, so there is nothing to send.
      assert.equal((await c.command('DATA')).code, 554);
      c.close();
    });
  }

  test('malformed relay attempts are syntax errors, never accepted', async () => {
    for (const address of ['user@remote.test@example.test', 'user@remote.test.', '<user@remote.test>']) {
      const c = await RawSmtpClient.open(tern.ports.smtp);
      await ehlo(c);
      await c.command('MAIL FROM:<bob@remote.test>');
      const r = await c.command(`RCPT TO:<${address}>`);
      assert.ok(r.code === 501 || r.code === 553 || r.code === 554, `RCPT TO:<${address}> got ${r.raw}`);
      c.close();
    }
  });

  test('control: the same dialogue accepts a local user, whatever the case of the domain', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    await c.command('MAIL FROM:<bob@remote.test>');
    assert.deepEqual(codes([await c.command('RCPT TO:<alice@EXAMPLE.TEST>')]), ['250 2.1.5']);
    assert.deepEqual(codes([await c.command('RCPT TO:<User@Example.Test>')]), ['250 2.1.5']);
    c.close();
  });

  test('a bare LF never ends a command line (500 5.5.2), and the session goes on', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    await c.send('NOOP\n');
    assert.deepEqual(codes([await c.readReply()]), ['500 5.5.2']);
    // A MAIL ended by a bare LF is not executed, so the RCPT behind it has no transaction.
    await c.send('MAIL FROM:<bob@remote.test>\nRCPT TO:<alice@example.test>\r\n');
    assert.deepEqual(codes(await c.readReplies(2)), ['500 5.5.2', '503 5.5.1']);
    await c.send('NOOP\rRSET\r\n');
    assert.deepEqual(codes([await c.readReply()]), ['500 5.5.2']);
    assert.equal((await c.drain(200)).length, 0, 'RSET hidden behind a bare CR was answered');
    assert.deepEqual(codes([await c.command('NOOP')]), ['250 2.0.0']);
    c.close();
  });

  test('command lines: 512 octets with CRLF accepted, 513 refused with 500 5.5.6', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    assert.deepEqual(codes([await c.command(`NOOP ${'x'.repeat(512 - 7)}`)]), ['250 2.0.0']);
    assert.deepEqual(codes([await c.command(`NOOP ${'x'.repeat(513 - 7)}`)]), ['500 5.5.6']);
    assert.deepEqual(codes([await c.command('NOOP')]), ['250 2.0.0']);
    c.close();
  });

  test('a 1 MiB line without end gets one 500 5.5.6 and is skipped to its end', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c);
    await c.send(`MAIL FROM:<${'a'.repeat(1024 * 1024)}`);
    await c.send('@remote.test>\r\n');
    assert.deepEqual(codes([await c.readReply()]), ['500 5.5.6']);
    assert.equal((await c.drain(200)).length, 0, 'only one reply for one long line');
    assert.deepEqual(codes([await c.command('MAIL FROM:<bob@remote.test>')]), ['250 2.1.0']);
    c.close();
  });

  test('an early talker does not crash the server', async () => {
    const c = await RawSmtpClient.connect(tern.ports.smtp);
    await c.send('EHLO early.example\r\nNOOP\r\n');
    const first = await c.readReply();
    if (first.code === 554) {
      // Refusing early talkers (as Postfix's postscreen does) is fine too: then the server closes.
      assert.ok(await c.waitForClose(), 'closed after refusing an early talker');
    } else {
      assert.equal(first.code, 220);
      const [e, n] = await c.readReplies(2);
      assert.equal(e!.code, 250);
      assert.equal(n!.code, 250);
      c.close();
    }
  });

  test('binary garbage ends in 421 4.7.0 (too many errors) and a close', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    const chunks: Buffer[] = [];
    for (let i = 0; i < 200; i++) chunks.push(randomBytes(100), Buffer.from('\r\n'));
    await c.send(Buffer.concat(chunks)).catch(() => undefined); // the server may close mid-write
    const replies = await c.readUntilClose();
    assert.ok(replies.length >= 2, `replies: ${JSON.stringify(replies.map((r) => r.raw))}`);
    assert.deepEqual(codes([replies.at(-1)!]), ['421 4.7.0']);
    for (const r of replies.slice(0, -1)) assert.ok(r.code >= 500 && r.code < 600, r.raw);
  });

  test('commands without mail repeated without end: the 101st since the last message gets 421 4.7.0 and a close', async () => {
    const c = await RawSmtpClient.open(tern.ports.smtp);
    await ehlo(c); // the first of the default 100
    // Not unknown verbs: as errors they meet max_errors (20) first.
    const junk = ['NOOP', 'RSET', 'HELP', 'VRFY jürgen@example.test', 'VRFY 日本@example.test'];
    const sent = Array.from({ length: 99 }, (_, i) => junk[i % junk.length]!);
    // A message in between starts the count again: 99 more are still answered after it.
    await c.send(sent.map((l) => `${l}\r\n`).join(''));
    const first = await c.readReplies(99);
    assert.ok(
      first.every((r) => r.code < 400),
      JSON.stringify(first.map((r) => r.raw)),
    );
    assert.equal((await c.command('MAIL FROM:<bob@remote.test>')).code, 250);
    assert.equal((await c.command('RCPT TO:<alice@example.test>')).code, 250);
    assert.equal((await c.command('DATA')).code, 354);
    assert.equal((await c.command('Subject: between\r\n\r\nhello\r\n.')).code, 250);
    await c.send([...sent, 'NOOP', 'NOOP', 'NOOP'].map((l) => `${l}\r\n`).join(''));
    const last = await c.readUntilClose();
    assert.equal(last.length, 101, JSON.stringify(last.slice(-3).map((r) => r.raw)));
    assert.deepEqual(codes(last.slice(-2)), ['250 2.0.0', '421 4.7.0']);
    assert.equal(last.at(-1)!.lines[0], '4.7.0 Too many commands without mail, closing connection');
  });

  test('plaintext on the implicit-TLS port, and connections dropped at once, do no harm', async () => {
    const plain = netConnect({ host: '127.0.0.1', port: tern.ports.submissions });
    plain.on('error', () => undefined);
    await new Promise((resolve) => plain.once('connect', resolve));
    plain.write('EHLO plaintext.example\r\n');
    await new Promise((resolve) => plain.once('close', resolve));
    for (let i = 0; i < 20; i++) {
      const s = netConnect({
        host: '127.0.0.1',
        port: i % 2 === 0 ? tern.ports.smtp : tern.ports.submissions,
      });
      s.on('error', () => undefined);
      s.once('connect', () => s.resetAndDestroy());
    }
    await sleep(200);
  });

  test('after all that, the server is alive and delivers a normal message', async () => {
    assert.ok(tern.alive(), 'tern serve exited');
    const c = await openTransaction(tern.ports.smtp, 'user@example.test');
    await c.send('Subject: still here\r\n\r\nhello\r\n.\r\nQUIT\r\n');
    assert.deepEqual(codes(await c.readUntilClose()), ['250 2.0.0', '221 2.0.0']);
    const [m] = await tern.waitForMessages('user@example.test', 1);
    assert.equal(m!.subject, 'still here');
    const crashes = tern.logs().filter((l) => l.event === 'smtp.internal_error' || l.level === 'fatal');
    assert.deepEqual(crashes, []);
  });
});
