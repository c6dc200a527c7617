// FETCH responses: golden examples from RFC 9051 §7.5.2 / RFC 3501 / RFC 7162 / RFC 8474, the
// sections of Dovecot's imaptest fetch-body*, fetch-binary-mime* scripts, partials at every boundary,
// BINARY decoding, broken input, and UTF-8 twins.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { scanMessage, type MessageStructure } from '../mime/structure.ts';
import type { FetchItem } from './command.ts';
import {
  fetchItemName,
  fetchNeeds,
  fetchSetsSeen,
  renderFetch,
  withFlags,
  type FetchChunk,
  type FetchMessage,
  type FetchOptions,
  type FetchResult,
} from './fetch.ts';
import { parseOne } from './test-support.ts';

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');

function items(spec: string): readonly FetchItem[] {
  const c = parseOne(`a FETCH 1 ${spec}`);
  if (c.kind !== 'fetch') throw new Error('not a FETCH');
  return c.items;
}

const OPTIONS: FetchOptions = { utf8: false, condstore: false, imap4rev2: false };

function message(raw: Buffer, over: Partial<FetchMessage> = {}): FetchMessage {
  return {
    uid: 7,
    flags: [],
    modseq: 1,
    sizeBytes: raw.length,
    internalDateMs: Date.UTC(1996, 6, 17, 9, 44, 25),
    saveDateMs: null,
    emailId: 'M1',
    threadId: null,
    structure: scanMessage(raw),
    ...over,
  };
}

/** The chunks as the driver sends them: raw ranges copied from the stored message. */
function assemble(raw: Buffer, chunks: readonly FetchChunk[]): Buffer {
  return Buffer.concat(chunks.map((c) => (c.kind === 'bytes' ? c.bytes : raw.subarray(c.start, c.end))));
}

function result(
  raw: Buffer,
  spec: string,
  options: Partial<FetchOptions> = {},
  over: Partial<FetchMessage> = {},
): FetchResult {
  const m = message(raw, over);
  const its = items(spec);
  const loaded = fetchNeeds(its, m.structure).map((r) => ({ ...r, bytes: raw.subarray(r.start, r.end) }));
  return renderFetch(1, its, m, loaded, { ...OPTIONS, ...options });
}

/** The response line, octets read as UTF-8 (latin1 with `binary`). */
function fetch(
  raw: Buffer,
  spec: string,
  options: Partial<FetchOptions> = {},
  over: Partial<FetchMessage> = {},
  encoding: BufferEncoding = 'utf8',
): string {
  const r = result(raw, spec, options, over);
  if (!r.ok) throw new Error(`FETCH failed: ${r.text}`);
  return assemble(raw, r.chunks).toString(encoding);
}

/** `* 1 FETCH (NAME {n}\r\ndata)\r\n` for one item. */
function literal(name: string, data: string, l8 = false): string {
  return `* 1 FETCH (${name} ${l8 ? '~' : ''}{${Buffer.byteLength(data, 'latin1')}}\r\n${data})\r\n`;
}

const SIMPLE = crlf(`From: Terry Gray <gray@cac.washington.edu>
To: imap@cac.washington.edu
Subject: IMAP4rev2 WG mtg summary and minutes
Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)
Message-Id: <B27397-0100000@cac.washington.edu>

Hello Joe, do you think we can meet at 3:30 tomorrow?
`);

describe('simple items (RFC 9051 §7.5.2, RFC 8474, RFC 8514, RFC 7162)', () => {
  test('FLAGS, RFC822.SIZE, INTERNALDATE, UID in the client order', () => {
    assert.equal(
      fetch(SIMPLE, '(FLAGS RFC822.SIZE INTERNALDATE UID)', {}, { flags: ['\\Seen'], sizeBytes: 44827 }),
      '* 1 FETCH (FLAGS (\\Seen) RFC822.SIZE 44827 INTERNALDATE "17-Jul-1996 09:44:25 +0000" UID 7)\r\n',
    );
    // date-day-fixed: a one-digit day leads with a space.
    assert.equal(
      fetch(SIMPLE, 'INTERNALDATE', {}, { internalDateMs: Date.UTC(2026, 0, 2, 3, 4, 5) }),
      '* 1 FETCH (INTERNALDATE " 2-Jan-2026 03:04:05 +0000")\r\n',
    );
  });

  test('EMAILID, THREADID (NIL when not threaded), SAVEDATE, MODSEQ', () => {
    assert.equal(
      fetch(SIMPLE, '(EMAILID THREADID)', {}, { emailId: 'M6d99ac3275bb4e', threadId: 'T64b478a75b7ea9' }),
      '* 1 FETCH (EMAILID (M6d99ac3275bb4e) THREADID (T64b478a75b7ea9))\r\n',
    );
    assert.equal(fetch(SIMPLE, 'THREADID'), '* 1 FETCH (THREADID NIL)\r\n');
    assert.equal(fetch(SIMPLE, 'SAVEDATE'), '* 1 FETCH (SAVEDATE NIL)\r\n');
    assert.equal(
      fetch(SIMPLE, 'SAVEDATE', {}, { saveDateMs: Date.UTC(2020, 10, 30, 23, 59, 59) }),
      '* 1 FETCH (SAVEDATE "30-Nov-2020 23:59:59 +0000")\r\n',
    );
    assert.equal(fetch(SIMPLE, 'MODSEQ', {}, { modseq: 624140003n }), '* 1 FETCH (MODSEQ (624140003))\r\n');
  });

  test('with CONDSTORE every response carries MODSEQ once (RFC 7162 §3.1.4.1)', () => {
    assert.equal(
      fetch(SIMPLE, '(FLAGS)', { condstore: true }, { flags: ['\\Deleted'], modseq: 12121231000 }),
      '* 1 FETCH (FLAGS (\\Deleted) MODSEQ (12121231000))\r\n',
    );
    assert.equal(
      fetch(SIMPLE, '(MODSEQ FLAGS)', { condstore: true }, { modseq: 5 }),
      '* 1 FETCH (MODSEQ (5) FLAGS ())\r\n',
    );
  });

  test('UID FETCH gets UID; duplicates answer once; BODY.PEEK answers as BODY', () => {
    const c = parseOne('a UID FETCH 1 FLAGS');
    assert.ok(c.kind === 'fetch');
    const m = message(SIMPLE);
    const r = renderFetch(3, c.items, m, [], OPTIONS);
    assert.ok(r.ok);
    assert.equal(assemble(SIMPLE, r.chunks).toString(), '* 3 FETCH (FLAGS () UID 7)\r\n');
    assert.equal(fetch(SIMPLE, '(UID UID FLAGS UID)'), '* 1 FETCH (UID 7 FLAGS ())\r\n');
    assert.equal(
      fetch(SIMPLE, '(BODY.PEEK[HEADER.FIELDS (Subject)] BODY[HEADER.FIELDS (Subject)])'),
      literal('BODY[HEADER.FIELDS (Subject)]', 'Subject: IMAP4rev2 WG mtg summary and minutes\r\n\r\n'),
    );
  });

  test('the ALL, FAST and FULL macros', () => {
    assert.equal(
      fetch(SIMPLE, 'FAST'),
      `* 1 FETCH (FLAGS () INTERNALDATE "17-Jul-1996 09:44:25 +0000" RFC822.SIZE ${SIMPLE.length})\r\n`,
    );
    assert.match(
      fetch(SIMPLE, 'ALL'),
      /RFC822\.SIZE \d+ ENVELOPE \("Wed, 17 Jul 1996 02:23:25 -0700 \(PDT\)" /,
    );
    assert.match(
      fetch(SIMPLE, 'FULL'),
      / BODY \("text" "plain" \("charset" "us-ascii"\) NIL NIL "7BIT" \d+ 1\)\)\r\n$/,
    );
  });

  test('ENVELOPE of the RFC 9051 example', () => {
    assert.equal(
      fetch(SIMPLE, 'ENVELOPE'),
      '* 1 FETCH (ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev2 WG mtg summary and minutes" ' +
        '(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ' +
        '(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) NIL NIL NIL ' +
        '"<B27397-0100000@cac.washington.edu>"))\r\n',
    );
  });

  test('BODY and BODYSTRUCTURE: encoded words kept, RFC 2231 parameters decoded', () => {
    const raw = crlf(`Subject: =?utf-8?q?caf=C3=A9?=
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; charset=utf-8

hi
--b
Content-Type: application/octet-stream
Content-Disposition: attachment; filename*=utf-8''%E6%97%A5%E6%9C%AC.txt
Content-Transfer-Encoding: base64

AAEC
--b--
`);
    assert.equal(
      fetch(raw, 'BODY'),
      '* 1 FETCH (BODY (("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 2 1)' +
        '("application" "octet-stream" NIL NIL NIL "base64" 4) "mixed"))\r\n',
    );
    const utf8 = fetch(raw, 'BODYSTRUCTURE', { utf8: true });
    assert.match(utf8, /\("attachment" \("filename" "日本\.txt"\)\)/);
    assert.match(fetch(raw, 'BODYSTRUCTURE', { imap4rev2: true }), /"filename" "日本\.txt"/);
    assert.match(fetch(raw, 'BODYSTRUCTURE'), /"filename\*" "utf-8''%E6%97%A5%E6%9C%AC\.txt"/);
    assert.match(fetch(raw, 'ENVELOPE'), /^\* 1 FETCH \(ENVELOPE \(NIL "=\?utf-8\?q\?caf=C3=A9\?="/);
  });
});

describe('UTF-8 twins', () => {
  const raw = crlf(`From: Jürgen <jürgen@例え.jp>
To: 日本 <日本@example.jp>
Subject: 日本語の件名

Grüße aus 日本
`);

  test('ENVELOPE: quoted UTF-8 for UTF8=ACCEPT and IMAP4rev2, literals for others', () => {
    const quoted = fetch(raw, 'ENVELOPE', { utf8: true });
    assert.match(quoted, /"日本語の件名" \(\("Jürgen" NIL "jürgen" "例え\.jp"\)\)/);
    assert.equal(fetch(raw, 'ENVELOPE', { imap4rev2: true }), quoted);
    const ascii = fetch(raw, 'ENVELOPE');
    assert.match(ascii, /\{18\}\r\n日本語の件名 /);
    assert.match(ascii, /\(\(\{7\}\r\nJürgen NIL \{7\}\r\njürgen \{9\}\r\n例え\.jp\)\)/);
  });

  test('PREVIEW in UTF-8; "" when there is no text', () => {
    assert.equal(fetch(raw, 'PREVIEW', { utf8: true }), '* 1 FETCH (PREVIEW "Grüße aus 日本")\r\n');
    assert.equal(
      fetch(raw, 'PREVIEW'),
      `* 1 FETCH (PREVIEW {${Buffer.byteLength('Grüße aus 日本')}}\r\nGrüße aus 日本)\r\n`,
    );
    const ascii = crlf('Subject: x\n\nHello jurgen\n');
    assert.equal(fetch(ascii, 'PREVIEW'), '* 1 FETCH (PREVIEW "Hello jurgen")\r\n');
    const none = crlf('Content-Type: image/png\nContent-Transfer-Encoding: base64\n\nAAAA\n');
    assert.equal(fetch(none, 'PREVIEW'), '* 1 FETCH (PREVIEW "")\r\n');
  });

  test('HEADER.FIELDS with UTF-8 values; literal lengths count octets', () => {
    const header = 'From: Jürgen <jürgen@例え.jp>\r\n\r\n';
    assert.equal(
      fetch(raw, 'BODY.PEEK[HEADER.FIELDS (FROM)]'),
      `* 1 FETCH (BODY[HEADER.FIELDS (FROM)] {${Buffer.byteLength(header)}}\r\n${header})\r\n`,
    );
    const ascii = crlf('From: Jurgen <jurgen@example.org>\nTo: x@y\n\nbody\n');
    assert.equal(
      fetch(ascii, 'BODY.PEEK[HEADER.FIELDS (FROM)]'),
      literal('BODY[HEADER.FIELDS (FROM)]', 'From: Jurgen <jurgen@example.org>\r\n\r\n'),
    );
    // A field name that is no atom is echoed as a string.
    assert.equal(
      fetch(ascii, 'BODY.PEEK[HEADER.FIELDS ("X Y")]'),
      literal('BODY[HEADER.FIELDS ("X Y")]', '\r\n'),
    );
  });

  test('BINARY of a base64 UTF-8 part', () => {
    const b64 = Buffer.from('jürgen 日本\r\n').toString('base64');
    const m = crlf(
      `Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\n\n${b64}\n--b--\n`,
    );
    assert.equal(
      fetch(m, 'BINARY.PEEK[1]'),
      literal('BINARY[1]', Buffer.from('jürgen 日本\r\n').toString('latin1')).replace(/[\x80-\xff]+/g, (s) =>
        Buffer.from(s, 'latin1').toString('utf8'),
      ),
    );
    assert.equal(
      fetch(m, 'BINARY.SIZE[1]'),
      `* 1 FETCH (BINARY.SIZE[1] ${Buffer.byteLength('jürgen 日本\r\n')})\r\n`,
    );
  });
});

// imaptest fetch-body-mime.mbox / fetch-binary-mime.mbox.
const MIME = crlf(`From: user@domain.org
Date: Sat, 24 Mar 2007 23:00:00 +0200
Mime-Version: 1.0
Content-Type: multipart/mixed; boundary="foo
 bar"

Root MIME prologue

--foo bar
Content-Type: text/x-myown; charset=us-ascii

hello

--foo bar
Content-Type: message/rfc822

From: sub@domain.org
Date: Sun, 12 Aug 2012 12:34:56 +0300
Subject: submsg
Content-Type: multipart/alternative; boundary="sub1"

Sub MIME prologue
--sub1
Content-Type: text/html

<p>Hello world</p>

--sub1
Content-Type: text/plain

Hello another world

--sub1--
Sub MIME epilogue

--foo bar--
Root MIME epilogue
`);

const SUB = `From: sub@domain.org
Date: Sun, 12 Aug 2012 12:34:56 +0300
Subject: submsg
Content-Type: multipart/alternative; boundary="sub1"

Sub MIME prologue
--sub1
Content-Type: text/html

<p>Hello world</p>

--sub1
Content-Type: text/plain

Hello another world

--sub1--
Sub MIME epilogue
`.replace(/\n/g, '\r\n');

describe('BODY[section] (imaptest fetch-body-mime, RFC 9051 §6.4.5)', () => {
  const cases: [string, string, string][] = [
    ['body.peek[]', 'BODY[]', MIME.toString()],
    ['body.peek[text]', 'BODY[TEXT]', MIME.toString().slice(MIME.indexOf('Root MIME prologue'))],
    ['body.peek[1]', 'BODY[1]', 'hello\r\n'],
    ['body.peek[1.mime]', 'BODY[1.MIME]', 'Content-Type: text/x-myown; charset=us-ascii\r\n\r\n'],
    ['body.peek[2]', 'BODY[2]', SUB],
    ['body.peek[2.mime]', 'BODY[2.MIME]', 'Content-Type: message/rfc822\r\n\r\n'],
    ['body.peek[2.header]', 'BODY[2.HEADER]', SUB.slice(0, SUB.indexOf('\r\n\r\n') + 4)],
    [
      'body.peek[2.header.fields (from subject X-foo)]',
      'BODY[2.HEADER.FIELDS (from subject X-foo)]',
      'From: sub@domain.org\r\nSubject: submsg\r\n\r\n',
    ],
    [
      'body.peek[2.header.fields.not (from subject X-foo)]',
      'BODY[2.HEADER.FIELDS.NOT (from subject X-foo)]',
      'Date: Sun, 12 Aug 2012 12:34:56 +0300\r\nContent-Type: multipart/alternative; boundary="sub1"\r\n\r\n',
    ],
    ['body.peek[2.text]', 'BODY[2.TEXT]', SUB.slice(SUB.indexOf('Sub MIME prologue'))],
    ['body.peek[2.1.mime]', 'BODY[2.1.MIME]', 'Content-Type: text/html\r\n\r\n'],
    ['body.peek[2.1]', 'BODY[2.1]', '<p>Hello world</p>\r\n'],
    ['body.peek[2.2]', 'BODY[2.2]', 'Hello another world\r\n'],
    ['rfc822.header', 'RFC822.HEADER', MIME.toString().slice(0, MIME.indexOf('Root MIME prologue'))],
    ['rfc822', 'RFC822', MIME.toString()],
    ['rfc822.text', 'RFC822.TEXT', MIME.toString().slice(MIME.indexOf('Root MIME prologue'))],
  ];
  for (const [spec, name, data] of cases) {
    test(`${spec} → ${name}`, () => assert.equal(fetch(MIME, spec), literal(name, data)));
  }

  test('BODY[...] is streamed: raw chunks, nothing to load', () => {
    const its = items('(BODY[] BODY[2.1] RFC822.TEXT)');
    const m = message(MIME);
    assert.deepEqual(fetchNeeds(its, m.structure), []);
    const r = renderFetch(1, its, m, [], OPTIONS);
    assert.ok(r.ok);
    assert.deepEqual(
      r.chunks.filter((c) => c.kind === 'raw'),
      [
        { kind: 'raw', start: 0, end: MIME.length },
        { kind: 'raw', start: MIME.indexOf('<p>'), end: MIME.indexOf('<p>') + 20 },
        { kind: 'raw', start: MIME.indexOf('Root MIME prologue'), end: MIME.length },
      ],
    );
  });

  test('sections that do not exist answer ""', () => {
    for (const spec of [
      'body.peek[3]',
      'body.peek[1.header]',
      'body.peek[1.2]',
      'body.peek[2.3.mime]',
      'body.peek[1.text]',
    ]) {
      const name = spec.replace('body.peek', 'BODY').replace(/[a-z]+/g, (w) => w.toUpperCase());
      assert.equal(fetch(MIME, spec), `* 1 FETCH (${name} "")\r\n`, spec);
    }
    assert.equal(fetch(MIME, 'binary.peek[9]'), '* 1 FETCH (BINARY[9] "")\r\n');
    assert.equal(fetch(MIME, 'binary.size[9]'), '* 1 FETCH (BINARY.SIZE[9] 0)\r\n');
  });

  test('HEADER.FIELDS needs only the header range; a field asked twice is sent once', () => {
    const its = items('(BODY.PEEK[HEADER.FIELDS (from from)] BODY.PEEK[2.HEADER.FIELDS (subject)])');
    const m = message(MIME);
    const sub = MIME.indexOf('From: sub');
    assert.deepEqual(fetchNeeds(its, m.structure), [
      { start: 0, end: MIME.indexOf('Root MIME') },
      { start: sub, end: sub + SUB.indexOf('\r\n\r\n') + 4 },
    ]);
    assert.equal(
      fetch(MIME, 'body.peek[header.fields (from from)]'),
      literal('BODY[HEADER.FIELDS (from from)]', 'From: user@domain.org\r\n\r\n'),
    );
    assert.equal(fetch(MIME, 'body.peek[header.fields (xyz)]'), literal('BODY[HEADER.FIELDS (xyz)]', '\r\n'));
  });
});

describe('message/rfc822 numbering (imaptest fetch-body-message-rfc822, -x2)', () => {
  const X2 = crlf(`From: user@domain.org
Content-Type: message/rfc822

From: user2@domain.org
Content-Type: message/rfc822

From: sub@domain.org
Subject: submsg

Hello world
`);
  const inner2 = X2.toString().slice(X2.indexOf('From: user2'));
  const inner3 = X2.toString().slice(X2.indexOf('From: sub'));
  const cases: [string, string][] = [
    ['TEXT', inner2],
    ['1', inner2],
    ['1.1', inner3],
    ['1.HEADER', 'From: user2@domain.org\r\nContent-Type: message/rfc822\r\n\r\n'],
    ['1.TEXT', inner3],
    ['1.1.1', 'Hello world\r\n'],
    ['1.1.HEADER', 'From: sub@domain.org\r\nSubject: submsg\r\n\r\n'],
    ['1.1.TEXT', 'Hello world\r\n'],
  ];
  for (const [section, data] of cases) {
    test(`BODY[${section}]`, () =>
      assert.equal(fetch(X2, `BODY.PEEK[${section}]`), literal(`BODY[${section}]`, data)));
  }
});

describe('partials', () => {
  const raw = crlf('Subject: p\n\nbody33\n');
  const text = 'body33\r\n';

  test('every origin and length, past the end included (RFC 9051 §6.4.5)', () => {
    for (let o = 0; o <= text.length + 2; o++) {
      for (let n = 1; n <= text.length + 2; n++) {
        const want = text.slice(o, o + n);
        const got = fetch(raw, `BODY.PEEK[TEXT]<${o}.${n}>`);
        const expected =
          want === '' ? `* 1 FETCH (BODY[TEXT]<${o}> "")\r\n` : literal(`BODY[TEXT]<${o}>`, want);
        assert.equal(got, expected, `<${o}.${n}>`);
      }
    }
    assert.equal(fetch(raw, 'BODY.PEEK[]<0.4294967295>'), literal('BODY[]<0>', raw.toString()));
    assert.equal(fetch(raw, 'BODY.PEEK[]<4294967295.1>'), '* 1 FETCH (BODY[]<4294967295> "")\r\n');
  });

  test('UTF-8 twin: a partial may cut a character; the octets are sent as they are', () => {
    const u = crlf('Subject: 日本\n\n日本\n');
    const body = Buffer.from('日本\r\n');
    for (let o = 0; o <= body.length; o++) {
      const got = Buffer.from(fetch(u, `BODY.PEEK[TEXT]<${o}.2>`, {}, {}, 'latin1'), 'latin1');
      const want = body.subarray(o, o + 2);
      const head = `* 1 FETCH (BODY[TEXT]<${o}> `;
      assert.equal(
        got.toString('latin1'),
        want.length === 0 ? `${head}"")\r\n` : `${head}{${want.length}}\r\n${want.toString('latin1')})\r\n`,
      );
    }
  });

  test('across a header and a decoded body: BINARY[] of a one-part base64 message', () => {
    const m = crlf('Content-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQ=\n');
    const whole = 'Content-Transfer-Encoding: base64\r\n\r\nhello world';
    assert.equal(fetch(m, 'BINARY.PEEK[]'), literal('BINARY[]', whole));
    assert.equal(fetch(m, 'BINARY.SIZE[]'), `* 1 FETCH (BINARY.SIZE[] ${whole.length})\r\n`);
    for (let o = 0; o <= whole.length + 1; o++) {
      for (const n of [1, 3, 11, 40, 100]) {
        const want = whole.slice(o, o + n);
        assert.equal(
          fetch(m, `BINARY.PEEK[]<${o}.${n}>`),
          want === '' ? `* 1 FETCH (BINARY[]<${o}> "")\r\n` : literal(`BINARY[]<${o}>`, want),
        );
      }
    }
    // BINARY[1] is the body alone.
    assert.equal(fetch(m, 'BINARY.PEEK[1]'), literal('BINARY[1]', 'hello world'));
  });
});

describe('BINARY (RFC 3516; imaptest fetch-binary-mime*)', () => {
  test('no conversion needed: multiparts and message/rfc822 parts are sent as they are', () => {
    assert.equal(fetch(MIME, 'binary.peek[]'), literal('BINARY[]', MIME.toString()));
    assert.equal(fetch(MIME, 'binary.size[]'), `* 1 FETCH (BINARY.SIZE[] ${MIME.length})\r\n`);
    assert.equal(fetch(MIME, 'binary.size[1]'), '* 1 FETCH (BINARY.SIZE[1] 7)\r\n');
    assert.equal(fetch(MIME, 'binary.peek[2]'), literal('BINARY[2]', SUB));
    assert.equal(fetch(MIME, 'binary.size[2]'), `* 1 FETCH (BINARY.SIZE[2] ${Buffer.byteLength(SUB)})\r\n`);
    assert.equal(fetch(MIME, 'binary.size[2.1]'), '* 1 FETCH (BINARY.SIZE[2.1] 20)\r\n');
    assert.equal(fetch(MIME, 'binary.peek[2.2]'), literal('BINARY[2.2]', 'Hello another world\r\n'));
    assert.equal(fetch(MIME, 'binary.size[2.2]'), '* 1 FETCH (BINARY.SIZE[2.2] 21)\r\n');
    assert.deepEqual(fetchNeeds(items('(binary.peek[] binary.size[2.1])'), scanMessage(MIME)), []);
  });

  const B64 = crlf(`Content-Type: multipart/mixed; boundary="foo
 bar"

--foo bar
Content-Transfer-Encoding: base64


aGVs
bG8gd29y
bGQ=

--foo bar
Content-Transfer-Encoding: base64

  aGVs    
 bG8g  
   d29y  \t 
    bGQ= 


--foo bar
Content-Transfer-Encoding: base64

aGVsbG8g
dG8geW91IHRv
bw==

--foo bar
Content-Transfer-Encoding: base64

aGVsbG8gdG8gZXZlcnlvbmUh
--foo bar
Content-Transfer-Encoding: base64

YWJjZGVmZw1oaWprbA0KbW5vCnBxcnN0dXZxeHl6

--foo bar--
`);
  const five = 'abcdefg\rhijkl\r\nmno\npqrstuvqxyz';

  test('base64 parts (fetch-binary-mime-base64)', () => {
    assert.equal(
      fetch(B64, '(binary.size[1] binary.size[5])'),
      '* 1 FETCH (BINARY.SIZE[1] 11 BINARY.SIZE[5] 30)\r\n',
    );
    assert.equal(
      fetch(B64, '(binary.peek[1] binary.peek[2] binary.peek[3] binary.peek[4] binary.peek[5])'),
      '* 1 FETCH (BINARY[1] {11}\r\nhello world BINARY[2] {11}\r\nhello world BINARY[3] {16}\r\nhello to you too ' +
        `BINARY[4] {18}\r\nhello to everyone! BINARY[5] {30}\r\n${five})\r\n`,
    );
    for (const [o, n] of [
      [0, 7],
      [0, 8],
      [0, 10],
      [10, 10],
      [5, 10],
      [15, 100],
    ] as const) {
      assert.equal(fetch(B64, `binary.peek[5]<${o}.${n}>`), literal(`BINARY[5]<${o}>`, five.slice(o, o + n)));
    }
  });

  test('the decoded bodies are loaded, merged, and only those', () => {
    const s = scanMessage(B64);
    const needs = fetchNeeds(items('(binary.size[1] binary.peek[1] binary.peek[2] body.peek[3])'), s);
    const p = s.root.parts;
    assert.deepEqual(needs, [
      { start: p[0]!.bodyStart, end: p[0]!.bodyEnd },
      { start: p[1]!.bodyStart, end: p[1]!.bodyEnd },
    ]);
  });

  test('quoted-printable part (fetch-binary-mime-qp)', () => {
    const qp = crlf(`Content-Type: multipart/mixed; boundary=b

--b
Content-Transfer-Encoding: quoted-printable

hello  
bar=

foo\t=
bar
foo\t \t= 
=62
foo = \t
bar
foo =
=62
foo  
bar=

foo_bar

--b--
`);
    const d = 'hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n';
    assert.equal(fetch(qp, 'binary.size[1]'), '* 1 FETCH (BINARY.SIZE[1] 65)\r\n');
    assert.equal(fetch(qp, 'binary.peek[1]'), literal('BINARY[1]', d));
    for (const [o, n] of [
      [0, 10],
      [10, 10],
      [20, 10],
      [15, 10],
      [40, 100],
    ] as const) {
      assert.equal(fetch(qp, `binary.peek[1]<${o}.${n}>`), literal(`BINARY[1]<${o}>`, d.slice(o, o + n)));
    }
  });

  test('decoding matches Buffer base64 for random octets; literal8 exactly when a NUL is sent', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (octets) => {
        const b64 = (
          Buffer.from(octets)
            .toString('base64')
            .match(/.{1,76}/g) ?? []
        ).join('\r\n');
        const m = Buffer.from(`Content-Transfer-Encoding: base64\r\n\r\n${b64}\r\n`, 'latin1');
        const got = Buffer.from(fetch(m, 'BINARY.PEEK[1]', {}, {}, 'latin1'), 'latin1');
        const head = octets.length === 0 ? '' : `${octets.includes(0) ? '~' : ''}{${octets.length}}\r\n`;
        const want = Buffer.concat([
          Buffer.from(`* 1 FETCH (BINARY[1] ${octets.length === 0 ? '""' : head}`, 'latin1'),
          Buffer.from(octets),
          Buffer.from(')\r\n'),
        ]);
        assert.deepEqual(got, want);
      }),
      { numRuns: 200 },
    );
  });

  test('a part declared binary goes as literal8; BODY[] of it never does', () => {
    const m = Buffer.concat([
      Buffer.from('Content-Transfer-Encoding: binary\r\n\r\n'),
      Uint8Array.of(0x61, 0, 0x62),
    ]);
    assert.equal(fetch(m, 'BINARY.PEEK[1]', {}, {}, 'latin1'), '* 1 FETCH (BINARY[1] ~{3}\r\na\0b)\r\n');
    assert.equal(fetch(m, 'BODY.PEEK[1]', {}, {}, 'latin1'), '* 1 FETCH (BODY[1] {3}\r\na\0b)\r\n');
  });

  test('an unknown Content-Transfer-Encoding fails the command with UNKNOWN-CTE; BODY still answers', () => {
    const m = crlf(
      'Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 a\n--b--\n',
    );
    for (const spec of ['BINARY.PEEK[1]', 'BINARY[1]<0.5>', 'BINARY.SIZE[1]', '(UID BINARY.SIZE[1])']) {
      const r = result(m, spec);
      assert.equal(r.ok, false, spec);
      assert.ok(!r.ok);
      assert.deepEqual(r.code, { kind: 'UNKNOWN-CTE' });
      assert.match(r.text, /x-uuencode/);
    }
    assert.equal(fetch(m, 'BODY.PEEK[1]'), literal('BODY[1]', 'begin 644 a'));
  });
});

describe('names, \\Seen, broken input', () => {
  test('fetchSetsSeen: non-PEEK BODY[]/BINARY[], RFC822, RFC822.TEXT', () => {
    for (const [spec, seen] of [
      ['BODY[]', true],
      ['BODY.PEEK[]', false],
      ['BINARY[1]', true],
      ['BINARY.PEEK[1]', false],
      ['BINARY.SIZE[1]', false],
      ['RFC822', true],
      ['RFC822.TEXT', true],
      ['RFC822.HEADER', false],
      ['(FLAGS BODY ENVELOPE)', false],
      ['(UID BODY[HEADER])', true],
    ] as const) {
      assert.equal(fetchSetsSeen(items(spec)), seen, spec);
    }
    assert.deepEqual(
      withFlags(items('BODY[]')).map((i) => i.kind),
      ['section', 'flags'],
    );
    assert.deepEqual(
      withFlags(items('(FLAGS BODY[])')).map((i) => i.kind),
      ['flags', 'section'],
    );
  });

  test('response names', () => {
    const names = items(
      '(BODY.PEEK[1.2.HEADER.FIELDS.NOT (Date "X Y")]<5.9> BINARY.PEEK[1.2] BINARY.SIZE[] BODY[] RFC822.SIZE PREVIEW)',
    ).map((i) => fetchItemName(i));
    assert.deepEqual(names, [
      'BODY[1.2.HEADER.FIELDS.NOT (Date "X Y")]<5>',
      'BINARY[1.2]',
      'BINARY.SIZE[]',
      'BODY[]',
      'RFC822.SIZE',
      'PREVIEW',
    ]);
  });

  test('a structure whose offsets lie outside the message answers "", not garbage', () => {
    const raw = crlf('Subject: x\n\nbody\n');
    const s = scanMessage(raw);
    const broken: MessageStructure = {
      ...s,
      root: { ...s.root, bodyStart: 5, bodyEnd: 1000 },
    };
    assert.equal(fetch(raw, 'BODY.PEEK[TEXT]', {}, { structure: broken }), '* 1 FETCH (BODY[TEXT] "")\r\n');
  });

  test('a loaded range missing (a driver bug) is a SERVERBUG result, not a throw', () => {
    const m = message(MIME);
    const r = renderFetch(1, items('BODY.PEEK[HEADER.FIELDS (FROM)]'), m, [], OPTIONS);
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.deepEqual(r.code, { kind: 'SERVERBUG' });
  });

  test('property: any message and section, literal lengths match the octets sent', () => {
    const specs = [
      'BODY.PEEK[]',
      'BODY.PEEK[1]',
      'BODY.PEEK[1.MIME]',
      'BODY.PEEK[2.HEADER]',
      'BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]',
      'BINARY.PEEK[1]',
      'BINARY.PEEK[2.1]<3.7>',
      'BINARY.SIZE[2]',
      'BODYSTRUCTURE',
      'ENVELOPE',
    ];
    fc.assert(
      fc.property(
        fc.array(
          fc.constantFrom(
            '--b\r\n',
            '--b--\r\n',
            'Content-Type: multipart/mixed; boundary=b\r\n',
            '\r\n',
            'x: y\r\n',
            'Content-Transfer-Encoding: base64\r\n',
            'aGk=\r\n',
            'Content-Type: message/rfc822\r\n',
            '日本\r\n',
            '=41\r\n',
            'Content-Transfer-Encoding: quoted-printable\r\n',
          ),
          { maxLength: 40 },
        ),
        fc.subarray(specs, { minLength: 1 }),
        (lines, chosen) => {
          const raw = Buffer.from(lines.join(''), 'utf8');
          const r = result(raw, `(${chosen.join(' ')})`);
          if (!r.ok) return;
          // Every raw range lies inside the stored message.
          for (const c of r.chunks) {
            if (c.kind === 'raw') assert.ok(0 <= c.start && c.start < c.end && c.end <= raw.length);
          }
          const out = assemble(raw, r.chunks);
          // Walk the response: every {n} / ~{n} is followed by CRLF and exactly n octets, then more.
          let pos = 0;
          for (;;) {
            const open = out.indexOf('{', pos);
            if (open < 0) break;
            const close = out.indexOf('}\r\n', open);
            assert.ok(close > open);
            const n = Number(out.subarray(open + 1, close).toString());
            assert.ok(Number.isInteger(n) && n > 0);
            pos = close + 3 + n;
            assert.ok(pos <= out.length - 3);
          }
          assert.equal(out.subarray(out.length - 3).toString(), ')\r\n');
          assert.ok(out.subarray(0, 11).toString() === '* 1 FETCH (');
        },
      ),
      { numRuns: 300 },
    );
  });
});
