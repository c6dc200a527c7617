// The POP3 state machine stepped without sockets: every command in every state, argument checks,
// limits, STLS, AUTH, UTF8, the UPDATE state, and the fragmentation property.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Harness, MESSAGE_1, MESSAGE_2, plainResponse } from './test-harness.ts';

const USERS = ['alice@example.test', 'jürgen@example.test', '日本@example.test'] as const;
const PASSWORDS: Record<(typeof USERS)[number], string> = {
  'alice@example.test': 'secret pass',
  'jürgen@example.test': 'pässwörd',
  '日本@example.test': '秘密',
};
const octets = (s: string): number => Buffer.byteLength(s, 'utf8');
const SIZE_1 = octets(MESSAGE_1);
const SIZE_2 = octets(MESSAGE_2);
const TOTAL = SIZE_1 + SIZE_2;

/** A session over TLS, logged in as `user` with USER/PASS. */
function loggedIn(user: (typeof USERS)[number] = 'alice@example.test'): Harness {
  const h = new Harness({ tlsActive: true }).send(`USER ${user}\r\nPASS ${PASSWORDS[user]}\r\n`);
  assert.equal(h.session.phase, 'transaction');
  h.wire = '';
  return h;
}

/** The status lines a dialogue produced after the greeting. */
const after = (h: Harness, skip = 1): string[] => h.statuses.slice(skip);

describe('POP3 session: greeting and CAPA', () => {
  it('greets with +OK and no APOP timestamp by default', () => {
    assert.deepEqual(new Harness().lines, ['+OK POP3 server ready']);
  });

  it('puts the APOP timestamp in the greeting when APOP is on', () => {
    const h = new Harness({ apopTimestamp: '<1896.697170952@pop.example.test>' });
    assert.deepEqual(h.lines, ['+OK POP3 server ready <1896.697170952@pop.example.test>']);
  });

  it('CAPA before TLS offers STLS but neither USER nor SASL', () => {
    const h = new Harness().send('CAPA\r\n');
    assert.deepEqual(h.lines.slice(1), [
      '+OK Capability list follows',
      'TOP',
      'UIDL',
      'STLS',
      'RESP-CODES',
      'AUTH-RESP-CODE',
      'PIPELINING',
      'EXPIRE NEVER',
      'UTF8 USER',
      'IMPLEMENTATION Tern',
      '.',
    ]);
  });

  it('CAPA over TLS offers USER and every mechanism, no STLS', () => {
    const h = new Harness({ tlsActive: true }).send('capa\r\n');
    const caps = h.lines.slice(2, -1);
    assert.ok(caps.includes('USER'));
    assert.ok(caps.includes('SASL PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS EXTERNAL'));
    assert.ok(!caps.includes('STLS'));
  });

  it('CAPA on loopback with plaintext auth allowed: USER and SASL without TLS-bound mechanisms', () => {
    const caps = new Harness({ plaintextAuth: true }).send('CAPA\r\n').lines.slice(2, -1);
    assert.ok(caps.includes('USER'));
    assert.ok(caps.includes('SASL PLAIN SCRAM-SHA-256'));
    assert.ok(caps.includes('STLS'));
  });

  it('CAPA without STLS when TLS is not available', () => {
    const caps = new Harness({ starttls: false }).send('CAPA\r\n').lines.slice(2, -1);
    assert.ok(!caps.includes('STLS'));
  });

  it('CAPA in TRANSACTION leaves out the login capabilities', () => {
    const h = loggedIn().send('CAPA\r\n');
    assert.deepEqual(h.lines, [
      '+OK Capability list follows',
      'TOP',
      'UIDL',
      'RESP-CODES',
      'AUTH-RESP-CODE',
      'PIPELINING',
      'EXPIRE NEVER',
      'UTF8 USER',
      'IMPLEMENTATION Tern',
      '.',
    ]);
  });

  it('CAPA with an argument is a syntax error', () => {
    assert.deepEqual(after(new Harness().send('CAPA x\r\n')), ['-ERR Syntax error in arguments']);
  });
});

describe('POP3 session: USER/PASS', () => {
  for (const user of USERS) {
    it(`logs in ${user} over TLS and opens the maildrop`, () => {
      const h = new Harness({ tlsActive: true }).send(`USER ${user}\r\nPASS ${PASSWORDS[user]}\r\n`);
      assert.deepEqual(after(h), ['+OK Send PASS', `+OK 2 messages (${TOTAL} octets)`]);
      assert.deepEqual(h.of('login'), [{ kind: 'login', user, password: PASSWORDS[user] }]);
      assert.deepEqual(h.of('open-maildrop'), [{ kind: 'open-maildrop', user, utf8: false }]);
      assert.equal(h.session.user, user);
      assert.equal(h.session.phase, 'transaction');
    });
  }

  it('the password is the rest of the line, spaces included (RFC 1939 §7)', () => {
    const h = new Harness({ tlsActive: true }).send('USER alice@example.test\r\nPASS secret pass\r\n');
    assert.equal(h.of('login')[0]?.password, 'secret pass');
    assert.equal(h.session.phase, 'transaction');
  });

  it('refuses USER and PASS before TLS with [AUTH], and counts them as errors', () => {
    const h = new Harness().send('USER alice@example.test\r\nPASS x\r\n');
    assert.deepEqual(after(h), [
      '-ERR [AUTH] Plaintext authentication disallowed without TLS',
      '-ERR [AUTH] Plaintext authentication disallowed without TLS',
    ]);
    assert.equal(h.of('login').length, 0);
    assert.equal(h.session.errors, 2);
  });

  it('allows USER/PASS without TLS on loopback (plaintextAuth)', () => {
    const h = new Harness({ plaintextAuth: true }).send('USER 日本@example.test\r\nPASS 秘密\r\n');
    assert.equal(h.session.phase, 'transaction');
  });

  it('a wrong password is -ERR [AUTH]; the next attempt starts again with USER', () => {
    const h = new Harness({ tlsActive: true }).send(
      'USER jürgen@example.test\r\nPASS wrong\r\nPASS pässwörd\r\nUSER jürgen@example.test\r\nPASS pässwörd\r\n',
    );
    assert.deepEqual(after(h), [
      '+OK Send PASS',
      '-ERR [AUTH] Authentication failed',
      '-ERR USER first',
      '+OK Send PASS',
      `+OK 2 messages (${TOTAL} octets)`,
    ]);
  });

  it('USER says +OK for an unknown name too (no user enumeration)', () => {
    const h = new Harness({ tlsActive: true }).send('USER nobody@example.test\r\nPASS x\r\n');
    assert.deepEqual(after(h), ['+OK Send PASS', '-ERR [AUTH] Authentication failed']);
  });

  it('the last allowed failure sends its reply and closes', () => {
    const h = new Harness({ tlsActive: true });
    h.failuresBeforeClose = 2;
    h.send('USER a@example.test\r\nPASS x\r\nUSER a@example.test\r\nPASS y\r\nCAPA\r\n');
    assert.deepEqual(after(h), [
      '+OK Send PASS',
      '-ERR [AUTH] Authentication failed',
      '+OK Send PASS',
      '-ERR [AUTH] Authentication failed',
    ]);
    assert.ok(h.closed);
  });

  it('USER needs exactly one argument; PASS needs a password and a USER', () => {
    const h = new Harness({ tlsActive: true }).send(
      'USER\r\nUSER a b\r\nPASS x\r\nUSER a@example.test\r\nPASS\r\n',
    );
    assert.deepEqual(after(h), [
      '-ERR Syntax error in arguments',
      '-ERR Syntax error in arguments',
      '-ERR USER first',
      '+OK Send PASS',
      '-ERR Syntax error in arguments',
    ]);
  });

  it('a maildrop locked by another session is -ERR [IN-USE]; the client may QUIT', () => {
    const h = new Harness({ tlsActive: true });
    h.locked.add('jürgen@example.test');
    h.send('USER jürgen@example.test\r\nPASS pässwörd\r\nSTAT\r\nQUIT\r\n');
    assert.deepEqual(after(h), [
      '+OK Send PASS',
      '-ERR [IN-USE] Maildrop is locked by another session',
      '-ERR Command not valid in this state',
      '+OK Bye',
    ]);
    assert.equal(h.session.user, null);
    assert.equal(h.updates.length, 0);
  });
});

describe('POP3 session: APOP', () => {
  it('is off by default: -ERR, no decision asked', () => {
    const h = new Harness().send('APOP alice@example.test c4c9334bac560ecc979e58001b3e22fb\r\n');
    assert.deepEqual(after(h), ['-ERR APOP not available']);
    assert.equal(h.of('apop').length, 0);
  });

  it('when on, asks for a decision with the digest and the greeting timestamp', () => {
    const ts = '<1896.697170952@pop.example.test>';
    const h = new Harness({ apopTimestamp: ts }).send(
      'APOP 日本@example.test C4C9334BAC560ECC979E58001B3E22FB\r\n',
    );
    assert.deepEqual(h.of('apop'), [
      { kind: 'apop', user: '日本@example.test', digest: 'c4c9334bac560ecc979e58001b3e22fb', timestamp: ts },
    ]);
    assert.deepEqual(after(h), ['-ERR [AUTH] Authentication failed']);
  });

  it('refuses a digest that is not 32 hex digits', () => {
    const h = new Harness({ apopTimestamp: '<1@x>' }).send(
      'APOP a@example.test xyz\r\nAPOP a@example.test\r\n',
    );
    assert.deepEqual(after(h), ['-ERR Syntax error in arguments', '-ERR Syntax error in arguments']);
  });
});

describe('POP3 session: AUTH (RFC 5034)', () => {
  for (const user of USERS) {
    it(`AUTH PLAIN with an initial response logs ${user} in`, () => {
      const ir = plainResponse(user, PASSWORDS[user]);
      const h = new Harness({ tlsActive: true }).send(`AUTH PLAIN ${ir}\r\nSTAT\r\n`);
      assert.deepEqual(h.of('auth-start'), [{ kind: 'auth-start', mechanism: 'PLAIN', initialResponse: ir }]);
      assert.deepEqual(after(h), [`+OK 2 messages (${TOTAL} octets)`, `+OK 2 ${TOTAL}`]);
    });
  }

  it('AUTH PLAIN without an initial response gets "+ " and reads the response line', () => {
    const h = new Harness({ tlsActive: true }).send(
      `auth plain\r\n${plainResponse('jürgen@example.test', 'pässwörd')}\r\n`,
    );
    assert.deepEqual(h.lines.slice(1), ['+ ', `+OK 2 messages (${TOTAL} octets)`]);
    assert.equal(h.of('auth-response').length, 1);
  });

  it('"*" cancels the exchange with -ERR and returns to AUTHORIZATION', () => {
    const h = new Harness({ tlsActive: true }).send('AUTH PLAIN\r\n*\r\nCAPA\r\n');
    assert.deepEqual(after(h).slice(0, 3), [
      '+ ',
      '-ERR Authentication cancelled',
      '+OK Capability list follows',
    ]);
    assert.equal(h.session.phase, 'authorization');
    assert.equal(h.of('auth-response').length, 0);
  });

  it('a failed exchange is -ERR [AUTH]', () => {
    const h = new Harness({ tlsActive: true }).send(
      `AUTH PLAIN ${plainResponse('a@example.test', 'no')}\r\n`,
    );
    assert.deepEqual(after(h), ['-ERR [AUTH] Authentication failed']);
    assert.equal(h.session.phase, 'authorization');
  });

  it('AUTH alone lists the mechanisms offered now', () => {
    assert.deepEqual(new Harness({ tlsActive: true }).send('AUTH\r\n').lines.slice(1), [
      '+OK Mechanisms follow',
      'PLAIN',
      'SCRAM-SHA-256',
      'SCRAM-SHA-256-PLUS',
      'EXTERNAL',
      '.',
    ]);
    assert.deepEqual(new Harness().send('AUTH\r\n').lines.slice(1), ['+OK Mechanisms follow', '.']);
  });

  it('before TLS a known mechanism needs encryption; an unknown one is unrecognized', () => {
    const h = new Harness().send('AUTH PLAIN\r\nAUTH X-NONE\r\n');
    assert.deepEqual(after(h), [
      '-ERR [AUTH] Encryption required for this authentication mechanism',
      '-ERR Unrecognized authentication mechanism',
    ]);
    const loop = new Harness({ plaintextAuth: true }).send('AUTH SCRAM-SHA-256-PLUS\r\nAUTH EXTERNAL\r\n');
    assert.equal(after(loop).length, 2);
    assert.ok(after(loop).every((s) => s.startsWith('-ERR [AUTH] Encryption required')));
  });

  it('bad AUTH arguments are a syntax error', () => {
    const h = new Harness({ tlsActive: true }).send('AUTH PLAIN a b\r\nAUTH PL@IN\r\n');
    assert.deepEqual(after(h), ['-ERR Syntax error in arguments', '-ERR Syntax error in arguments']);
  });

  it('an AUTH line may exceed 255 octets; a response line over 12288 octets ends the exchange', () => {
    const long = 'A'.repeat(1000);
    const h = new Harness({ tlsActive: true }).send(`AUTH PLAIN ${long}\r\n`);
    assert.equal(h.of('auth-start')[0]?.initialResponse, long);
    const h2 = new Harness({ tlsActive: true }).send(`AUTH PLAIN\r\n${'A'.repeat(12_300)}\r\nCAPA\r\n`);
    assert.deepEqual(after(h2).slice(0, 3), [
      '+ ',
      '-ERR Authentication exchange line is too long',
      '+OK Capability list follows',
    ]);
  });

  it('a response line that is not text ends the exchange', () => {
    const h = new Harness({ tlsActive: true }).send('AUTH PLAIN\r\n');
    h.send(new Uint8Array([0xff, 0xfe, 13, 10]));
    assert.deepEqual(after(h), ['+ ', '-ERR Cannot decode client response']);
    assert.equal(h.session.phase, 'authorization');
  });

  it('the mechanisms may change once TLS is up', () => {
    const h = new Harness({ authMechanisms: ['PLAIN'], plaintextAuth: true });
    h.mechanismsAfterTls = ['PLAIN', 'EXTERNAL'];
    h.send('STLS\r\n').send('CAPA\r\n');
    assert.ok(h.lines.includes('SASL PLAIN EXTERNAL'));
  });
});

describe('POP3 session: STLS (RFC 2595)', () => {
  it('starts TLS, then offers USER and SASL, and no STLS', () => {
    const h = new Harness().send('STLS\r\n');
    assert.deepEqual(after(h), ['+OK Begin TLS negotiation']);
    assert.equal(h.of('starttls').length, 1);
    assert.equal(h.session.tlsActive, true);
    h.wire = '';
    h.send('CAPA\r\nSTLS\r\n');
    assert.ok(h.lines.includes('USER'));
    assert.ok(!h.lines.includes('STLS'));
    assert.equal(h.lines.at(-1), '-ERR Command not permitted when TLS active');
  });

  it('discards commands pipelined after STLS (plaintext injection)', () => {
    const h = new Harness().send('STLS\r\nCAPA\r\n');
    assert.deepEqual(after(h), ['+OK Begin TLS negotiation']);
    assert.deepEqual(h.of('violation'), [{ kind: 'violation', what: 'data pipelined after STLS discarded' }]);
  });

  it('forgets USER given before STLS', () => {
    const h = new Harness({ plaintextAuth: true })
      .send('USER alice@example.test\r\nSTLS\r\n')
      .send('PASS secret pass\r\n');
    assert.deepEqual(after(h), ['+OK Send PASS', '+OK Begin TLS negotiation', '-ERR USER first']);
  });

  it('a failed handshake closes', () => {
    const h = new Harness();
    h.tlsFails = true;
    h.send('STLS\r\n');
    assert.ok(h.closed);
  });

  it('is refused without a certificate, with arguments, and after login', () => {
    assert.deepEqual(after(new Harness({ starttls: false }).send('STLS\r\n')), ['-ERR TLS not available']);
    assert.deepEqual(after(new Harness().send('STLS now\r\n')), ['-ERR Syntax error in arguments']);
    const h = new Harness({ plaintextAuth: true }).send(
      'USER alice@example.test\r\nPASS secret pass\r\nSTLS\r\n',
    );
    assert.equal(after(h).at(-1), '-ERR Command not valid in this state');
  });
});

describe('POP3 session: UTF8 (RFC 6856)', () => {
  it('enables UTF-8 mode in AUTHORIZATION; the maildrop opens in UTF-8 mode', () => {
    const h = new Harness({ tlsActive: true }).send('UTF8\r\nUSER 日本@example.test\r\nPASS 秘密\r\n');
    assert.deepEqual(after(h).slice(0, 1), ['+OK UTF8 enabled']);
    assert.deepEqual(h.of('open-maildrop'), [
      { kind: 'open-maildrop', user: '日本@example.test', utf8: true },
    ]);
  });

  it('is refused in TRANSACTION and with arguments', () => {
    assert.deepEqual(after(new Harness().send('UTF8 x\r\n')), ['-ERR Syntax error in arguments']);
    assert.deepEqual(loggedIn().send('UTF8\r\n').lines, ['-ERR Command not valid in this state']);
  });
});

describe('POP3 session: TRANSACTION', () => {
  it('STAT, LIST and UIDL describe the fixed maildrop', () => {
    const h = loggedIn('jürgen@example.test').send('STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 1\r\n');
    assert.deepEqual(h.lines, [
      `+OK 2 ${TOTAL}`,
      `+OK 2 messages (${TOTAL} octets)`,
      `1 ${SIZE_1}`,
      `2 ${SIZE_2}`,
      '.',
      `+OK 2 ${SIZE_2}`,
      '+OK Unique-ID listing follows',
      '1 1700000000.1',
      '2 1700000000.2',
      '.',
      '+OK 1 1700000000.1',
    ]);
  });

  it('RETR sends the message byte-stuffed and ends with "."', () => {
    const h = loggedIn().send('RETR 1\r\n');
    assert.equal(
      h.wire,
      `+OK ${SIZE_1} octets\r\nFrom: a@example.org\r\nSubject: one\r\n\r\nline 1\r\n..starts with a dot\r\nline 3\r\n.\r\n`,
    );
  });

  it('RETR of UTF-8 content sends the stored bytes', () => {
    const h = loggedIn('日本@example.test').send('RETR 2\r\n');
    assert.equal(h.wire, `+OK ${SIZE_2} octets\r\n${MESSAGE_2}.\r\n`);
  });

  it('TOP sends the headers, the blank line and n body lines', () => {
    const h = loggedIn().send('TOP 1 0\r\nTOP 1 2\r\nTOP 1 99999999999999999999\r\n');
    const head = 'From: a@example.org\r\nSubject: one\r\n\r\n';
    assert.equal(
      h.wire,
      `+OK Message follows\r\n${head}.\r\n` +
        `+OK Message follows\r\n${head}line 1\r\n..starts with a dot\r\n.\r\n` +
        `+OK Message follows\r\n${head}line 1\r\n..starts with a dot\r\nline 3\r\n.\r\n`,
    );
  });

  it('a message that cannot be opened is -ERR [SYS/TEMP] and nothing is streamed', () => {
    const h = loggedIn();
    h.openMessageFails = true;
    h.send('RETR 1\r\nNOOP\r\n');
    assert.deepEqual(h.lines, ['-ERR [SYS/TEMP] Unable to read message, try again later', '+OK OK']);
    assert.equal(h.of('send-message').length, 0);
  });

  it('DELE marks; STAT, LIST, UIDL leave marked messages out; RETR/LIST/DELE of one is refused', () => {
    const h = loggedIn().send('DELE 1\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nLIST 1\r\nTOP 1 0\r\nDELE 1\r\n');
    assert.deepEqual(h.lines, [
      '+OK Message marked for deletion',
      `+OK 1 ${SIZE_2}`,
      `+OK 1 messages (${SIZE_2} octets)`,
      `2 ${SIZE_2}`,
      '.',
      '+OK Unique-ID listing follows',
      '2 1700000000.2',
      '.',
      '-ERR No such message',
      '-ERR No such message',
      '-ERR No such message',
      '-ERR Message already deleted',
    ]);
  });

  it('RSET unmarks everything', () => {
    const h = loggedIn().send('DELE 1\r\nDELE 2\r\nRSET\r\nSTAT\r\nQUIT\r\n');
    assert.deepEqual(h.lines.slice(2), [`+OK 2 messages (${TOTAL} octets)`, `+OK 2 ${TOTAL}`, '+OK Bye']);
    assert.deepEqual(h.updates, [[]]);
  });

  it('QUIT in TRANSACTION asks for the update with the marked messages, then says +OK and closes', () => {
    const h = loggedIn('jürgen@example.test').send('DELE 2\r\nQUIT\r\nSTAT\r\n');
    assert.deepEqual(h.updates, [[{ number: 2, uid: '1700000000.2', sizeBytes: SIZE_2 }]]);
    assert.deepEqual(h.lines, ['+OK Message marked for deletion', '+OK Bye']);
    assert.ok(h.closed);
    assert.equal(h.accounts.get('jürgen@example.test')!.messages.length, 1);
  });

  it('a failed update is -ERR [SYS/TEMP] and still closes', () => {
    const h = loggedIn();
    h.updateFails = true;
    h.send('DELE 1\r\nQUIT\r\n');
    assert.equal(h.lines.at(-1), '-ERR [SYS/TEMP] Some deleted messages not removed, try again later');
    assert.ok(h.closed);
  });

  it('QUIT in AUTHORIZATION closes without an update', () => {
    const h = new Harness().send('QUIT\r\n');
    assert.deepEqual(after(h), ['+OK Bye']);
    assert.ok(h.closed);
    assert.equal(h.of('update').length, 0);
  });

  it('a close without QUIT (timeout, error limit) deletes nothing', () => {
    const h = loggedIn().send('DELE 1\r\n');
    h.session.close();
    assert.equal(h.of('update').length, 0);
    assert.equal(h.accounts.get('alice@example.test')!.messages.length, 2);
    assert.deepEqual(h.session.feed(new TextEncoder().encode('QUIT\r\n')), []);
  });

  it('message numbers are decimal digits in range; anything else is refused', () => {
    const h = loggedIn().send(
      'LIST +1\r\nLIST -1\r\nLIST 1x\r\nLIST 0\r\nLIST 3\r\nLIST 99999999999999999999\r\nLIST 1 2\r\nRETR\r\n' +
        'TOP 1\r\nTOP 1 -1\r\nTOP x 1\r\nDELE\r\nSTAT 1\r\nNOOP x\r\nRSET x\r\nQUIT x\r\nLIST 01\r\n',
    );
    assert.deepEqual(h.lines, [
      '-ERR Invalid message number',
      '-ERR Invalid message number',
      '-ERR Invalid message number',
      '-ERR No such message',
      '-ERR No such message',
      '-ERR No such message',
      '-ERR Syntax error in arguments',
      '-ERR Syntax error in arguments',
      '-ERR Syntax error in arguments',
      '-ERR Syntax error in arguments',
      '-ERR Invalid message number',
      '-ERR Syntax error in arguments',
      '-ERR Syntax error in arguments',
      '-ERR Syntax error in arguments',
      '-ERR Syntax error in arguments',
      '-ERR Syntax error in arguments',
      `+OK 1 ${SIZE_1}`,
    ]);
    assert.equal(h.session.phase, 'transaction');
  });

  it('commands of the other state are refused', () => {
    const h = new Harness({ tlsActive: true }).send(
      'STAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nNOOP\r\nRSET\r\nTOP 1 1\r\nUIDL\r\n',
    );
    assert.equal(after(h).length, 8);
    assert.ok(after(h).every((s) => s === '-ERR Command not valid in this state'));
    const t = loggedIn().send('USER a\r\nPASS b\r\nAUTH PLAIN\r\nAPOP a b\r\nSTLS\r\n');
    assert.ok(t.lines.every((s) => s === '-ERR Command not valid in this state'));
  });

  it('an empty maildrop', () => {
    const h = new Harness({ tlsActive: true }, { 'a@example.test': { password: 'p', messages: [] } }).send(
      'USER a@example.test\r\nPASS p\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\n',
    );
    assert.deepEqual(h.lines.slice(2), [
      '+OK 0 messages (0 octets)',
      '+OK 0 0',
      '+OK 0 messages (0 octets)',
      '.',
      '+OK Unique-ID listing follows',
      '.',
      '-ERR No such message',
    ]);
  });
});

describe('POP3 session: lines and limits', () => {
  it('verbs are case-insensitive', () => {
    const h = new Harness({ tlsActive: true }).send(
      'uSeR alice@example.test\r\npass secret pass\r\nStAt\r\nquit\r\n',
    );
    assert.deepEqual(after(h), [
      '+OK Send PASS',
      `+OK 2 messages (${TOTAL} octets)`,
      `+OK 2 ${TOTAL}`,
      '+OK Bye',
    ]);
  });

  it('unknown commands are -ERR', () => {
    assert.deepEqual(after(new Harness().send('HELO x\r\n\r\nXYZZY12345\r\n')), [
      '-ERR Unknown command',
      '-ERR Unknown command',
      '-ERR Unknown command',
    ]);
  });

  it('a line of 255 octets with CRLF is a command; 256 is too long and the next line works', () => {
    const fits = `USER ${'a'.repeat(255 - 7)}\r\n`;
    assert.equal(fits.length, 255);
    const tooLong = `USER ${'a'.repeat(256 - 7)}\r\n`;
    const h = new Harness({ tlsActive: true }).send(fits + tooLong + 'CAPA\r\n');
    assert.deepEqual(after(h).slice(0, 3), [
      '+OK Send PASS',
      '-ERR Line too long',
      '+OK Capability list follows',
    ]);
  });

  it('an over-long line is answered once and never buffered whole', () => {
    const h = new Harness();
    for (let i = 0; i < 100; i++) h.send('x'.repeat(1000));
    assert.ok(h.session.bufferedBytes <= 255);
    h.send('\r\nNOOP\r\n');
    assert.deepEqual(after(h), ['-ERR Line too long', '-ERR Command not valid in this state']);
  });

  it('a bare LF ends a line; a CR inside one, a NUL or invalid UTF-8 is refused', () => {
    const h = new Harness().send('CAPA\n');
    assert.equal(after(h)[0], '+OK Capability list follows');
    const bad = new Harness().send('CA\rPA\r\nCAPA\0\r\n').send(new Uint8Array([0x55, 0xc3, 0x28, 13, 10]));
    assert.deepEqual(after(bad), [
      '-ERR Syntax error in arguments',
      '-ERR Syntax error in arguments',
      '-ERR Command is not valid UTF-8',
    ]);
  });

  it('too many errors close the connection', () => {
    const h = new Harness({ maxErrors: 3 }).send('A\r\nB\r\nC\r\nCAPA\r\n');
    assert.deepEqual(after(h), [
      '-ERR Unknown command',
      '-ERR Unknown command',
      '-ERR Unknown command',
      '-ERR Too many errors, closing connection',
    ]);
    assert.ok(h.closed);
  });

  it('too many commands without logging in close the connection; after login there is no such limit', () => {
    const h = new Harness({ maxJunkCommands: 3 }).send('CAPA\r\nCAPA\r\nCAPA\r\nCAPA\r\n');
    assert.equal(after(h).at(-1), '-ERR Too many commands without logging in, closing connection');
    assert.ok(h.closed);
    const t = new Harness({ tlsActive: true, maxJunkCommands: 3 }).send(
      'USER alice@example.test\r\nPASS secret pass\r\n',
    );
    t.send('NOOP\r\n'.repeat(50));
    assert.equal(t.closed, false);
  });

  it('input waits while a decision is pending', () => {
    const s = new Harness({ tlsActive: true }).session;
    const effects = s.feed(new TextEncoder().encode('USER a\r\nPASS b\r\nCAPA\r\n'));
    assert.equal(s.pending, 'login');
    assert.ok(!effects.some((e) => e.kind === 'reply' && e.lines !== undefined));
    assert.ok(s.bufferedBytes > 0);
    assert.throws(() => s.resolve({ kind: 'update', ok: true }), /while pending login/);
  });
});

describe('POP3 session: fragmentation', () => {
  it('any fragmentation of the same stream gives the same effects', () => {
    const stream = new TextEncoder().encode(
      'CAPA\r\nUTF8\r\nAUTH\r\nAUTH PLAIN\r\n*\r\nUSER x\r\nPASS wrong\r\n' +
        `AUTH PLAIN\r\n${plainResponse('jürgen@example.test', 'pässwörd')}\r\n` +
        'STAT\r\nLIST\r\nUIDL 2\r\nTOP 1 1\r\nRETR 2\r\nDELE 1\r\nLIST 1\r\nbogus\r\n' +
        `LIST ${'9'.repeat(300)}\r\nRSET\r\nDELE 2\nNOOP\r\nQUIT\r\n`,
    );
    const whole = new Harness({ plaintextAuth: true }).send(stream);
    assert.ok(whole.closed);
    assert.equal(whole.updates.length, 1);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 30 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const h = new Harness({ plaintextAuth: true });
        let prev = 0;
        for (const p of [...points, stream.length]) {
          h.send(stream.subarray(prev, p));
          prev = p;
        }
        assert.deepEqual(h.effects, whole.effects);
        assert.equal(h.wire, whole.wire);
      }),
      { numRuns: 300 },
    );
  });
});
