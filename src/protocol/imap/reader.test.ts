// The IMAP command reader: literals ({n}, {n+}, ~{n}), APPEND messages streamed, limits, raw lines,
// refusals, and the fragmentation property (any split of a stream gives the same events).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ImapCommandReader, literalAnnouncement } from './reader.ts';
import { collect, replacer } from './test-support.ts';

const enc = new TextEncoder();

describe('IMAP literal announcements', () => {
  it('are recognised at the line end only', () => {
    assert.deepEqual(literalAnnouncement(enc.encode('a LOGIN {5}')), {
      start: 8,
      sizeBytes: 5,
      sync: true,
      binary: false,
    });
    assert.deepEqual(literalAnnouncement(enc.encode('a LOGIN {12+}')), {
      start: 8,
      sizeBytes: 12,
      sync: false,
      binary: false,
    });
    assert.deepEqual(literalAnnouncement(enc.encode('a APPEND x ~{3}')), {
      start: 11,
      sizeBytes: 3,
      sync: true,
      binary: true,
    });
    assert.equal(literalAnnouncement(enc.encode('a LOGIN {}')), null);
    assert.equal(literalAnnouncement(enc.encode('a LOGIN {5} x')), null);
    assert.equal(literalAnnouncement(enc.encode('a {99999999999999999999}')), 'invalid');
  });
});

describe('IMAP string literals', () => {
  it('RFC 9051 §6.2.3: LOGIN with literals, the driver asked to continue for each synchronizing one', () => {
    const events = collect(['A001 LOGIN {11}\r\n', 'FRED FOOBAR {7}\r\n', 'fat man\r\n']);
    assert.deepEqual(events, [
      {
        kind: 'literal-wanted',
        tag: 'A001',
        sizeBytes: 11,
        sync: true,
        binary: false,
        message: null,
        mailbox: null,
        index: -1,
      },
      {
        kind: 'literal-wanted',
        tag: 'A001',
        sizeBytes: 7,
        sync: true,
        binary: false,
        message: null,
        mailbox: null,
        index: -1,
      },
      { kind: 'command', tag: 'A001', command: { kind: 'login', user: 'FRED FOOBAR', password: 'fat man' } },
    ]);
  });

  it('LITERAL+ literals and UTF-8 bytes counted as bytes', () => {
    const user = 'jürgen@example.test';
    const events = collect([`a LOGIN {${Buffer.byteLength(user)}+}\r\n${user} {9+}\r\n日本語\r\n`]);
    assert.deepEqual(events.at(-1), {
      kind: 'command',
      tag: 'a',
      command: { kind: 'login', user, password: '日本語' },
    });
    assert.equal((events[0] as { sync: boolean }).sync, false);
  });

  it('a literal over the limit is refused: synchronizing ones never sent, non-synchronizing ones skipped whole', () => {
    assert.deepEqual(collect(['a LOGIN {70000}\r\n', 'b NOOP\r\n'], {}), [
      { kind: 'error', tag: 'a', error: { kind: 'too-big', text: 'Literal too large' } },
      { kind: 'command', tag: 'b', command: { kind: 'noop' } },
    ]);
    const big = 'x'.repeat(70000);
    assert.deepEqual(collect([`a LOGIN {70000+}\r\n${big} {3+}\r\nabc\r\nb NOOP\r\n`]), [
      { kind: 'error', tag: 'a', error: { kind: 'too-big', text: 'Literal too large' } },
      { kind: 'command', tag: 'b', command: { kind: 'noop' } },
    ]);
  });

  it('a literal in a place no string goes, a literal8 string, a NUL or bad UTF-8 are errors', () => {
    assert.equal((collect(['a NOOP {3}\r\n'])[0] as { kind: string }).kind, 'error');
    assert.equal((collect(['a LOGIN ~{3}\r\n'])[0] as { kind: string }).kind, 'error');
    const nul = collect(['a LOGIN {3+}\r\na\0b x\r\n', 'b NOOP\r\n']);
    assert.deepEqual(
      nul.map((e) => e.kind),
      ['literal-wanted', 'error', 'command'],
    );
    const bad = collect([
      new Uint8Array([0x61, 0x20, 0x4c, 0x4f, 0x47, 0x49, 0x4e, 0x20, 0xff, 0x20, 0x78, 0x0d, 0x0a]),
    ]);
    assert.deepEqual(bad, [
      { kind: 'error', tag: 'a', error: { kind: 'bad-text', text: 'Command is not UTF-8 text' } },
    ]);
  });

  it('an overlong line is one error with its tag (RFC 9051 §7.1.3), and the reader goes on', () => {
    const events = collect([`a LOGIN ${'x'.repeat(200)}\r\nb NOOP\r\n`], { maxLineBytes: 100 });
    assert.deepEqual(events, [
      { kind: 'error', tag: 'a', error: { kind: 'too-big', text: 'Command line too long' } },
      { kind: 'command', tag: 'b', command: { kind: 'noop' } },
    ]);
    // Without a readable tag the BAD is untagged.
    const untagged = collect([`${'x'.repeat(200)}\r\nb NOOP\r\n`], { maxLineBytes: 100 });
    assert.equal((untagged[0] as { tag: string | null }).tag, null);
  });

  it('an overlong raw line (IDLE, AUTHENTICATE) is handed over as too long, for the driver to end', () => {
    const reader = new ImapCommandReader({ maxLineBytes: 100 });
    reader.push(enc.encode(`a IDLE\r\n${'y'.repeat(300)}\r\nb NOOP\r\n`));
    assert.equal(reader.next()?.kind, 'command');
    reader.expectLine();
    assert.deepEqual(reader.next(), { kind: 'line', line: new Uint8Array(0), tooLong: true });
    assert.deepEqual(reader.next(), { kind: 'command', tag: 'b', command: { kind: 'noop' } });
  });
});

describe('IMAP APPEND streaming', () => {
  const msg =
    'Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: jürgen@example.test\r\nSubject: afternoon meeting\r\n\r\nHello Joe\r\n';
  const n = Buffer.byteLength(msg);

  it('RFC 9051 §6.3.12: the message is streamed, then the command carries its place', () => {
    const events = collect([
      `A003 APPEND saved-messages (\\Seen) "07-Feb-1994 21:52:25 -0800" {${n}}\r\n`,
      msg,
      '\r\n',
    ]);
    assert.equal(events.length, 3);
    const wanted = events[0] as { message: { flags: unknown; date: { epochMs: number } } };
    assert.deepEqual(wanted.message.flags, ['\\Seen']);
    assert.equal(wanted.message.date.epochMs, Date.UTC(1994, 1, 8, 5, 52, 25));
    assert.deepEqual(events[1], { kind: 'message', text: msg });
    const cmd = events[2] as unknown as { command: { messages: { data: unknown }[]; mailbox: string } };
    assert.equal(cmd.command.mailbox, 'saved-messages');
    assert.deepEqual(cmd.command.messages[0]!.data, {
      kind: 'literal',
      data: { index: 0, sizeBytes: n, binary: false },
      utf8: false,
    });
  });

  it('MULTIAPPEND, CATENATE, UTF8 and literal8 messages, to a UTF-8 mailbox given as a literal', () => {
    const mbox = '日本';
    const events = collect([
      `a APPEND {${Buffer.byteLength(mbox)}+}\r\n${mbox} {${n}+}\r\n${msg} (\\Draft) ~{3+}\r\nabc CATENATE (URL "/INBOX;UIDVALIDITY=1/;UID=2" TEXT {2+}\r\nhi) UTF8 (~{1+}\r\nz)\r\n`,
    ]);
    assert.deepEqual(
      events.map((e) => e.kind),
      [
        'literal-wanted',
        'literal-wanted',
        'message',
        'literal-wanted',
        'message',
        'literal-wanted',
        'message',
        'literal-wanted',
        'message',
        'command',
      ],
    );
    const cmd = events.at(-1) as unknown as { command: { mailbox: string; messages: unknown[] } };
    assert.equal(cmd.command.mailbox, mbox);
    assert.equal(cmd.command.messages.length, 4);
    assert.deepEqual((events[3] as { message: unknown; binary: boolean; index: number }).message, {
      flags: ['\\Draft'],
      date: null,
    });
    assert.equal((events[3] as { binary: boolean }).binary, true);
    assert.equal((events[7] as { index: number }).index, 3);
  });

  it('a message over maxMessageBytes is refused before it is read; the driver may refuse one too', () => {
    assert.deepEqual(collect([`a APPEND x {${n}}\r\n`, 'b NOOP\r\n'], { maxMessageBytes: 10 }), [
      { kind: 'error', tag: 'a', error: { kind: 'too-big', text: 'Message too large' } },
      { kind: 'command', tag: 'b', command: { kind: 'noop' } },
    ]);
    const reader = new ImapCommandReader();
    reader.push(enc.encode(`a APPEND x {${n}+}\r\n${msg}\r\nb NOOP\r\n`));
    assert.equal(reader.next()?.kind, 'literal-wanted');
    assert.equal(reader.refuseLiteral(), true);
    assert.deepEqual(reader.next(), { kind: 'command', tag: 'b', command: { kind: 'noop' } });
    assert.equal(reader.refuseLiteral(), false);
  });

  it('raw lines for IDLE and AUTHENTICATE, and discard for STARTTLS', () => {
    const reader = new ImapCommandReader();
    reader.push(enc.encode('a IDLE\r\nDONE\r\nb STARTTLS\r\nc LOGIN injected x\r\n'));
    assert.deepEqual(reader.next(), { kind: 'command', tag: 'a', command: { kind: 'idle' } });
    reader.expectLine();
    assert.deepEqual(reader.next(), { kind: 'line', line: enc.encode('DONE'), tooLong: false });
    assert.deepEqual(reader.next(), { kind: 'command', tag: 'b', command: { kind: 'starttls' } });
    assert.equal(reader.discard(), 'c LOGIN injected x\r\n'.length);
    assert.equal(reader.next(), null);
  });
});

describe('IMAP reader fragmentation', () => {
  const stream =
    'a1 LOGIN {20+}\r\njürgen@example.test "日本"\r\n' +
    'a2 SELECT "Entwürfe" (CONDSTORE)\r\n' +
    'a3 APPEND INBOX (\\Seen) {11}\r\nHello\r\nJoe! {2+}\r\nhi\r\n' +
    'a4 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From)]<0.100>)\r\n' +
    'bad line\r\n\r\n' +
    'a5 LOGIN {70000+}\r\n' +
    'y'.repeat(70000) +
    ' x\r\n' +
    'a6 SEARCH OR FROM {6}\r\n日本 SEEN\r\n' +
    'a7 LOGOUT\r\n';
  const bytes = enc.encode(stream);
  const whole = JSON.stringify(collect([bytes]), replacer);

  it('any split of the stream gives the same events', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 40 }),
        (cuts) => {
          cuts.sort((a, b) => a - b);
          const pieces: Uint8Array[] = [];
          let at = 0;
          for (const c of cuts) {
            pieces.push(bytes.subarray(at, c));
            at = c;
          }
          pieces.push(bytes.subarray(at));
          assert.equal(JSON.stringify(collect(pieces), replacer), whole);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('byte by byte too', () => {
    const pieces = Array.from(bytes, (_, k) => bytes.subarray(k, k + 1));
    assert.equal(JSON.stringify(collect(pieces), replacer), whole);
    assert.equal(collect([bytes]).filter((e) => e.kind === 'command').length, 6);
  });

  it('any stream of commands, split anywhere, gives the events of the whole stream', () => {
    const commands = [
      'a LOGIN {20+}\r\njürgen@example.test x\r\n',
      'b APPEND "日本" (\\Seen) {5}\r\nhello\r\n',
      'c APPEND x {3+}\r\nabc ~{2+}\r\nde\r\n',
      'd SEARCH OR FROM {6}\r\n日本 SEEN\r\n',
      'e LOGIN {600+}\r\n' + 'z'.repeat(600) + ' x\r\n',
      'f NOOP x\r\n',
      '\r\n',
      'g FETCH 1:* (FLAGS)\n',
      'h LOGIN {3}\r\n',
    ];
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...commands), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (chosen, rawCuts) => {
          const bytes = enc.encode(chosen.join(''));
          const cuts = [...new Set(rawCuts.map((c) => c % bytes.length))].sort((a, b) => a - b);
          const pieces = [...cuts, bytes.length].map((end, k) =>
            bytes.subarray(k === 0 ? 0 : cuts[k - 1], end),
          );
          assert.equal(
            JSON.stringify(collect(pieces, { maxLiteralBytes: 512 }), replacer),
            JSON.stringify(collect([bytes], { maxLiteralBytes: 512 }), replacer),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('CATENATE literal positions (RFC 4469)', () => {
  it('each streamed literal says which message it belongs to and the parts before it', () => {
    const url = '/Entw%C3%BCrfe/;uid=1/;section=HEADER';
    const events = collect([
      `a APPEND 日本 CATENATE (URL "/INBOX/;uid=9") CATENATE (URL "${url}" TEXT {2+}\r\nhi TEXT {3+}\r\nabc URL "/x/;uid=2") {1+}\r\nz\r\n`,
    ]);
    const wanted = events.filter((e) => e.kind === 'literal-wanted');
    assert.equal(wanted.length, 3);
    const positions = wanted.map((e) => (e.kind === 'literal-wanted' ? e.position : undefined));
    const first = positions[0];
    assert.equal(first?.earlier.length, 1);
    assert.deepEqual(first?.earlier[0]?.data, {
      kind: 'catenate',
      parts: [{ kind: 'url', url: '/INBOX/;uid=9' }],
    });
    assert.deepEqual(first?.catenate, [{ kind: 'url', url }]);
    assert.equal(positions[1]?.earlier.length, 1);
    assert.deepEqual(
      positions[1]?.catenate?.map((p) => p.kind),
      ['url', 'text'],
    );
    // The plain literal message after them: two messages before it, no CATENATE parts.
    assert.equal(positions[2]?.earlier.length, 2);
    assert.equal(positions[2]?.catenate, null);
    assert.equal(events.at(-1)?.kind, 'command');
  });
});
