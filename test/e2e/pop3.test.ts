// POP3 end to end (RFC 1939, 2449, 2595, 5034, 6856): mail delivered over SMTP, read with Python's poplib
// over STLS and implicit TLS (USER/PASS, STAT, LIST, UIDL, TOP, RETR, DELE, RSET, UTF8), byte for byte
// against what `tern mailbox cat` shows; deleted over POP3 and gone from `tern mailbox list`; UIDLs stable
// across sessions and tied to the store's UIDVALIDITY.UID; a dropped connection deletes nothing; a second
// session on one maildrop gets [IN-USE]; and what a hostile client sends, over a raw socket: bytes after
// STLS before the handshake (discarded, never answered), logins before TLS, AUTH PLAIN with an initial
// response, overlong lines, and failed logins that hit the same lockouts as submission.
// Deliberately NOT here: fetchmail (pop3-fetchmail.test.ts) and the pure session's every branch
// (src/protocol/pop3/session.test.ts).

import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { formatStatusLine, Pop3Replies } from '../../src/protocol/pop3/replies.ts';
import type { PoplibAnswer, Tern } from './harness.ts';
import { havePython, poplib, smtplib, startTern, waitFor } from './harness.ts';

const skip = havePython() ? false : 'python3 with poplib is not available on this machine';

const USERS = [
  { address: 'alice@example.test', password: 'alice pw' },
  { address: 'jürgen@example.test', password: 'jürgen pw' },
  { address: '日本@example.test', password: '日本 pw' },
  { address: 'carol@example.test', password: 'carol pw' },
  { address: 'dave@example.test', password: 'dave pw' },
  { address: 'erin@example.test', password: 'erin pw' },
] as const;

function passwordOf(address: string): string {
  return USERS.find((u) => u.address === address)!.password;
}

/** A line-oriented POP3 client over a raw socket, for byte-exact dialogues. */
class RawPop3 {
  #socket: Socket | TLSSocket;
  #buffer = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  closed = false;

  constructor(socket: Socket | TLSSocket) {
    this.#socket = socket;
    this.#attach(socket);
  }

  #attach(socket: Socket | TLSSocket): void {
    socket.on('data', (d: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, d]);
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<RawPop3> {
    const socket = netConnect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawPop3(socket);
  }

  static async openTls(port: number): Promise<RawPop3> {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    return new RawPop3(socket);
  }

  write(bytes: string | Buffer): void {
    this.#socket.write(bytes);
  }

  /** The next CRLF-terminated line, without the CRLF; null when the server closed first. */
  async line(timeoutMs = 10_000): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.#buffer.indexOf('\r\n');
      if (at >= 0) {
        const line = this.#buffer.subarray(0, at).toString('utf8');
        this.#buffer = this.#buffer.subarray(at + 2);
        return line;
      }
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no line within ${timeoutMs} ms; have ${JSON.stringify(this.#buffer.toString())}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async command(line: string): Promise<string | null> {
    this.write(`${line}\r\n`);
    return this.line();
  }

  /** Lines of a multi-line answer after its status line, up to the lone ".". */
  async multiline(): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const l = await this.line();
      if (l === null) throw new Error('closed inside a multi-line answer');
      if (l === '.') return lines;
      lines.push(l);
    }
  }

  /** Bytes received and not yet read as lines. */
  pending(): Buffer {
    return this.#buffer;
  }

  /** STLS: upgrade this connection; whatever the server sent after +OK and before the handshake is kept. */
  async startTls(): Promise<void> {
    const plain = this.#socket;
    plain.removeAllListeners('data');
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.#socket = secure;
    this.#attach(secure);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.#socket.destroy();
    await waitFor('socket closed', () => (this.closed ? true : undefined), 2000);
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await waitFor('the server to close the connection', () => (this.closed ? true : undefined), timeoutMs);
  }
}

function login(address: string): (readonly (string | number)[])[] {
  return [
    ['user', address],
    ['pass', passwordOf(address)],
  ];
}

function okAll(answers: readonly PoplibAnswer[]): void {
  const bad = answers.filter((a) => !a.ok);
  assert.deepEqual(bad, [], JSON.stringify(answers));
}

function bytesOf(a: PoplibAnswer): Buffer {
  return Buffer.from(a.b64 ?? '', 'base64');
}

describe('POP3 with Python poplib', { skip }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startTern({
      users: [...USERS],
      tables: { auth: { lockout_threshold: 4, lockout_window_seconds: 600, lockout_seconds: 600 } },
    });
  });
  after(() => tern?.stop());

  const pop3 = (): number => tern.ports.pop3!;
  const pop3s = (): number => tern.ports.pop3s!;

  /** Deliver `count` messages to `to` over SMTP (port 25 style) and wait until they are stored. */
  const deliver = async (to: string, bodies: readonly string[]): Promise<void> => {
    const before = (await tern.storedMessages(to)).length;
    for (const [i, body] of bodies.entries()) {
      const sent = await smtplib({
        port: tern.ports.smtp,
        mode: 'plain',
        action: 'send_message',
        mail_options: ['SMTPUTF8'],
        message: {
          headers: [
            ['From', 'sender@example.org'],
            ['To', to],
            ['Subject', `message ${i + 1} für ${to}`],
          ],
          body,
          cte: '8bit',
        },
      });
      assert.equal(sent.ok, true, JSON.stringify(sent));
    }
    await waitFor(`${bodies.length} messages for ${to}`, async () =>
      (await tern.storedMessages(to)).length >= before + bodies.length ? true : undefined,
    );
  };

  for (const address of ['alice@example.test', 'jürgen@example.test', '日本@example.test']) {
    test(`${address}: STLS, STAT/LIST/UIDL/TOP/RETR byte for byte, DELE and QUIT remove it`, async () => {
      await deliver(address, ['First line.\n.leading dot stays\n', 'Zweite Nachricht: grüße, 日本語.\n']);
      const listed = await tern.mailboxList(address);
      assert.equal(listed.length, 2);
      const stored = await Promise.all(listed.map((m) => tern.mailboxCat(address, m.id)));

      const r = await poplib({
        port: pop3(),
        mode: 'stls',
        steps: [
          ['capa'],
          ...login(address),
          ['stat'],
          ['list'],
          ['uidl'],
          ['top', 1, 0],
          ['retr', 1],
          ['retr', 2],
          ['dele', 1],
          ['stat'],
          ['quit'],
        ],
      });
      assert.equal(r.ok, true, JSON.stringify(r));
      assert.match(r.tls ?? '', /^TLSv1\.[23]$/);
      okAll(r.steps);
      const [capa, , , stat, list, uidl, top, retr1, retr2, , statAfter] = r.steps;
      // After STLS: USER may be used, STLS is no longer offered (RFC 2595 §4).
      assert.ok(capa!.capa!['USER'], JSON.stringify(capa));
      assert.equal(capa!.capa!['STLS'], undefined);
      for (const cap of ['TOP', 'UIDL', 'RESP-CODES', 'PIPELINING', 'UTF8', 'SASL']) {
        assert.ok(capa!.capa![cap], `CAPA lacks ${cap}: ${JSON.stringify(capa)}`);
      }
      assert.equal(stat!.count, 2);
      assert.equal(stat!.size, stored[0]!.length + stored[1]!.length);
      assert.deepEqual(list!.lines, [`1 ${stored[0]!.length}`, `2 ${stored[1]!.length}`]);
      assert.deepEqual(
        uidl!.lines!.map((l) => l.split(' ')[0]),
        ['1', '2'],
      );
      const uids = uidl!.lines!.map((l) => l.split(' ')[1]!);
      assert.equal(new Set(uids).size, 2);
      for (const u of uids) assert.match(u, /^[\x21-\x7e]{1,70}$/, 'RFC 1939 §7: printable, at most 70');
      assert.ok(bytesOf(retr1!).equals(stored[0]!), 'RETR 1 is the stored message byte for byte');
      assert.ok(bytesOf(retr2!).equals(stored[1]!), 'RETR 2 is the stored message byte for byte');
      // TOP n 0: the header section and the blank line after it.
      const headerEnd = stored[0]!.indexOf('\r\n\r\n') + 4;
      assert.ok(bytesOf(top!).equals(stored[0]!.subarray(0, headerEnd)), bytesOf(top!).toString());
      assert.equal(statAfter!.count, 1, 'STAT leaves out a message marked deleted');

      const left = await tern.mailboxList(address);
      assert.deepEqual(
        left.map((m) => m.id),
        [listed[1]!.id],
        'QUIT in TRANSACTION removed exactly the deleted message',
      );

      // The next session sees the same UIDL for the message that stayed, numbered 1 now.
      const again = await poplib({
        port: pop3s(),
        mode: 'ssl',
        steps: [...login(address), ['uidl'], ['quit']],
      });
      okAll(again.steps);
      assert.deepEqual(again.steps[2]!.lines, [`1 ${uids[1]}`]);
      // Empty the maildrop for the other tests.
      const rest = await poplib({
        port: pop3s(),
        mode: 'ssl',
        steps: [...login(address), ['dele', 1], ['quit']],
      });
      okAll(rest.steps);
      assert.deepEqual(await tern.mailboxList(address), []);
    });
  }

  test('implicit TLS with a UTF-8 login: UTF8 (RFC 6856), RSET undoes DELE', async () => {
    const address = '日本@example.test';
    await deliver(address, ['one\n']);
    const r = await poplib({
      port: pop3s(),
      mode: 'ssl',
      steps: [['utf8'], ...login(address), ['dele', 1], ['rset'], ['stat'], ['quit']],
    });
    assert.equal(r.ok, true, JSON.stringify(r));
    okAll(r.steps);
    assert.equal(r.steps[5]!.count, 1);
    assert.equal((await tern.mailboxList(address)).length, 1, 'RSET: nothing removed at QUIT');
    const clean = await poplib({
      port: pop3s(),
      mode: 'ssl',
      steps: [...login(address), ['dele', 1], ['quit']],
    });
    okAll(clean.steps);
  });

  test('a dropped connection deletes nothing', async () => {
    const address = 'carol@example.test';
    await deliver(address, ['keep me\n']);
    const r = await poplib({ port: pop3s(), mode: 'ssl', steps: [...login(address), ['dele', 1], ['drop']] });
    okAll(r.steps);
    // The server notices the drop and frees the maildrop; a new session sees the message still there.
    const again = await waitFor('a new session after the drop', async () => {
      const s = await poplib({ port: pop3s(), mode: 'ssl', steps: [...login(address), ['stat'], ['quit']] });
      return s.steps[1]?.ok === true ? s : undefined;
    });
    assert.equal(again.steps[2]!.count, 1);
    assert.equal((await tern.mailboxList(address)).length, 1);
  });

  test('a second session on the same maildrop gets -ERR [IN-USE]; the first is unaffected', async () => {
    const address = 'dave@example.test';
    await deliver(address, ['locked\n']);
    const first = await RawPop3.openTls(pop3s());
    try {
      assert.match((await first.line())!, /^\+OK/);
      assert.match((await first.command(`USER ${address}`))!, /^\+OK/);
      assert.match((await first.command(`PASS ${passwordOf(address)}`))!, /^\+OK/);
      const second = await poplib({ port: pop3s(), mode: 'ssl', steps: [...login(address)] });
      assert.equal(second.steps[1]!.ok, false);
      assert.match(second.steps[1]!.error!, /^-ERR \[IN-USE\]/);
      assert.match((await first.command('STAT'))!, /^\+OK 1 \d+$/);
      assert.match((await first.command('QUIT'))!, /^\+OK/);
    } finally {
      await first.close();
    }
    const third = await waitFor('the lock released after QUIT', async () => {
      const s = await poplib({ port: pop3s(), mode: 'ssl', steps: [...login(address), ['quit']] });
      return s.steps[1]?.ok === true ? s : undefined;
    });
    okAll(third.steps);
  });

  test('before STLS: no USER in CAPA, USER/PASS and AUTH refused with [AUTH], bytes after STLS discarded', async () => {
    const c = await RawPop3.open(pop3());
    try {
      assert.match((await c.line())!, /^\+OK/);
      assert.match((await c.command('CAPA'))!, /^\+OK/);
      const caps = await c.multiline();
      assert.ok(caps.includes('STLS'), caps.join('|'));
      assert.ok(!caps.includes('USER'), 'USER is not offered before TLS');
      assert.match((await c.command('USER alice@example.test'))!, /^-ERR \[AUTH\]/);
      assert.match(
        (await c.command('AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZSBwdw=='))!,
        /^-ERR \[AUTH\]/,
      );
      // STLS injection: the CAPA in the same packet must be dropped, never answered over TLS.
      c.write('STLS\r\nCAPA\r\n');
      assert.match((await c.line())!, /^\+OK/);
      assert.equal(c.pending().length, 0, 'nothing after +OK before the handshake');
      await c.startTls();
      assert.equal(
        await c.command('USER alice@example.test'),
        formatStatusLine(Pop3Replies.userOk),
        'the first answer over TLS is the USER one, not the injected CAPA',
      );
      assert.match((await c.command('CAPA'))!, /^\+OK/);
      const tlsCaps = await c.multiline();
      assert.ok(tlsCaps.includes('USER'), tlsCaps.join('|'));
      assert.ok(!tlsCaps.includes('STLS'));
      assert.match((await c.command('QUIT'))!, /^\+OK/);
    } finally {
      await c.close();
    }
  });

  test('AUTH PLAIN with an initial response (RFC 5034), and as a continuation', async () => {
    const address = 'jürgen@example.test';
    const response = Buffer.from(`\0${address}\0${passwordOf(address)}`).toString('base64');
    const c = await RawPop3.openTls(pop3s());
    try {
      assert.match((await c.line())!, /^\+OK/);
      assert.match((await c.command(`AUTH PLAIN ${response}`))!, /^\+OK/);
      assert.match((await c.command('STAT'))!, /^\+OK \d+ \d+$/);
      assert.match((await c.command('QUIT'))!, /^\+OK/);
    } finally {
      await c.close();
    }
    const d = await RawPop3.openTls(pop3s());
    try {
      assert.match((await d.line())!, /^\+OK/);
      assert.equal(await d.command('AUTH PLAIN'), '+ ');
      assert.match((await d.command(response))!, /^\+OK/);
      assert.match((await d.command('QUIT'))!, /^\+OK/);
    } finally {
      await d.close();
    }
  });

  test('an overlong command line gets -ERR, and the session goes on', async () => {
    const c = await RawPop3.openTls(pop3s());
    try {
      assert.match((await c.line())!, /^\+OK/);
      assert.match((await c.command(`NOOP ${'x'.repeat(5000)}`))!, /^-ERR/);
      assert.match((await c.command('CAPA'))!, /^\+OK/);
      await c.multiline();
      assert.match((await c.command('QUIT'))!, /^\+OK/);
    } finally {
      await c.close();
    }
  });

  test('failed logins lock the account out as for submission, even with the right password then', async () => {
    const address = 'erin@example.test';
    for (let i = 0; i < 4; i++) {
      const r = await poplib({
        port: pop3s(),
        mode: 'ssl',
        steps: [
          ['user', address],
          ['pass', 'wrong'],
        ],
      });
      assert.equal(r.steps[1]!.ok, false);
      assert.match(r.steps[1]!.error!, /^-ERR/);
    }
    const locked = await poplib({ port: pop3s(), mode: 'ssl', steps: [...login(address)] });
    assert.equal(locked.steps[1]!.ok, false, 'locked out: the right password is refused too');
    assert.match(locked.steps[1]!.error!, /^-ERR \[(SYS\/TEMP|AUTH|LOGIN-DELAY)\]/);
    // Submission shares the lockout: the same account cannot AUTH there either.
    const smtp = await smtplib({
      port: tern.ports.submissions,
      mode: 'ssl',
      login: [address, passwordOf(address)],
      action: 'steps',
      steps: [],
    });
    assert.equal(smtp.ok, false, JSON.stringify(smtp));
    assert.equal(smtp.code, 454);
  });
});
