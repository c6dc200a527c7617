import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { renderBodyStructure } from './bodystructure.ts';
import { renderEnvelope } from './envelope.ts';
import { MimeScanner, scanMessage, withFieldsInFront, type MimePart } from './structure.ts';

const FIXTURES = new URL('../../../test/fixtures/mime/', import.meta.url).pathname;

function corpus(): { name: string; bytes: Buffer }[] {
  const out: { name: string; bytes: Buffer }[] = [];
  const walk = (dir: string): void => {
    for (const f of readdirSync(dir).sort()) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(eml|txt)$/.test(f)) out.push({ name: relative(FIXTURES, p), bytes: readFileSync(p) });
    }
  };
  walk(FIXTURES);
  return out;
}

function msg(s: string): Buffer {
  return Buffer.from(s.replace(/\n/g, '\r\n'), 'utf8');
}

function bs(s: string | Buffer, extended = true): string {
  return renderBodyStructure(scanMessage(typeof s === 'string' ? msg(s) : s).root, extended);
}

type PyTree = [string, string | null, PyTree[]];

function asPy(p: MimePart): PyTree {
  const kids = p.message ? [p.message] : p.parts;
  const boundary =
    p.type === 'multipart' ? (p.params.find((x) => x.name === 'boundary')?.value ?? null) : null;
  return [`${p.type}/${p.subtype}`, boundary, kids.map(asPy)];
}

describe('MIME structure against Python email', () => {
  const py = JSON.parse(readFileSync(join(FIXTURES, 'python-email.json'), 'utf8')) as {
    files: Record<string, PyTree>;
  };
  // Python reads every message/* body as a message; IMAP nests only message/rfc822 and message/global
  // (RFC 9051 §7.5.2), so message/disposition-notification and message/feedback-report are leaves.
  const imapView = ([type, boundary, kids]: PyTree): PyTree => [
    type,
    boundary,
    type.startsWith('message/') && type !== 'message/rfc822' && type !== 'message/global'
      ? []
      : kids.map(imapView),
  ];
  for (const { name, bytes } of corpus()) {
    const expected = py.files[name];
    if (!expected) continue;
    test(name, () => {
      assert.deepEqual(asPy(scanMessage(bytes).root), imapView(expected));
    });
  }
});

describe('any chunking gives the same structure', () => {
  for (const { name, bytes } of corpus()) {
    test(name, () => {
      const whole = scanMessage(bytes);
      const sizes = bytes.length < 3000 ? [1, 2, 3, 5, 7, 64] : [1, 13, 997, 4096];
      for (const size of sizes) {
        const s = new MimeScanner();
        for (let i = 0; i < bytes.length; i += size) s.push(bytes.subarray(i, i + size));
        assert.deepEqual(s.finish(), whole, `pieces of ${size}`);
      }
    });
  }
});

describe('fields written in front move the structure, never change it', () => {
  // What final delivery writes in front of a message scanned as it streamed in (server/local-accept.ts).
  const head = Buffer.from(
    'Return-Path: <jürgen@exämple.org>\r\nDelivered-To: 日本@例え.jp\r\nAuthentication-Results: mx.example; spf=pass\r\n',
  );
  // What the session scans starts with its own Received: field, whatever the client sent after it.
  const received = Buffer.from(
    'Received: from client.example by mx.example; Mon, 7 Dec 2026 10:00:00 +0000\r\n',
  );
  for (const { name, bytes } of corpus()) {
    test(name, () => {
      const scanned = Buffer.concat([received, bytes]);
      const s = scanMessage(scanned);
      const moved = withFieldsInFront(s, head.length);
      // Null (readers scan the stored message) only where the longer header could read otherwise.
      if (moved === null) assert.ok(s.root.bodyStart + head.length > 64 * 1024);
      else assert.deepEqual(moved, scanMessage(Buffer.concat([head, scanned])));
    });
  }
  test('none when the top header would pass the scan limit; unchanged when nothing is written', () => {
    const big = Buffer.from(`Subject: ${'x'.repeat(65_000)}\r\n\r\nbody\r\n`);
    assert.equal(withFieldsInFront(scanMessage(big), 1000), null);
    assert.deepEqual(withFieldsInFront(scanMessage(big), 0), scanMessage(big));
  });
});

describe('BODYSTRUCTURE of hand-made cases', () => {
  test('no Content-Type at all: text/plain; charset=us-ascii', () => {
    assert.equal(
      bs('Subject: x\n\nhello\n'),
      '("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 7 1 NIL NIL NIL NIL)',
    );
  });

  test('an unreadable Content-Type is text/plain (missing subtype)', () => {
    assert.equal(
      bs('Content-Type: text\n\nhi', false),
      '("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 2 1)',
    );
  });

  test('nested multipart with message/rfc822 inside, and BODY without extension data', () => {
    const m = `From: a@example.org
Subject: outer
Content-Type: multipart/mixed; boundary="out"

preamble
--out
Content-Type: multipart/alternative; boundary=in

--in
Content-Type: text/plain; charset=utf-8

plain
--in
Content-Type: text/html

<b>x</b>
--in--
--out
Content-Type: message/rfc822
Content-Disposition: attachment; filename=fwd.eml

From: "Jürgen" <jürgen@example.org>
Subject: inner

body
--out--
epilogue
`;
    const env =
      '(NIL "inner" (("Jürgen" NIL "jürgen" "example.org")) (("Jürgen" NIL "jürgen" "example.org")) (("Jürgen" NIL "jürgen" "example.org")) NIL NIL NIL NIL NIL)';
    assert.equal(
      bs(m, false),
      `((("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 5 1)("text" "html" ("charset" "us-ascii") NIL NIL "7BIT" 8 1) "alternative")` +
        `("message" "rfc822" NIL NIL NIL "7BIT" 61 ${env} ("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 4 1) 4) "mixed")`,
    );
    assert.match(
      bs(m),
      /4 NIL \("attachment" \("filename" "fwd\.eml"\)\) NIL NIL\) "mixed" \("boundary" "out"\) NIL NIL NIL\)$/,
    );
  });

  test('missing final boundary: the last part runs to the end', () => {
    const m = 'Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\nthree\n';
    assert.equal(
      bs(m, false),
      '(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 3 1)("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 12 2) "mixed")',
    );
  });

  test('a boundary-like line inside a quoted-printable body that merely starts alike is content', () => {
    const m = 'Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--bx is not it\n--b --\n--b--\n';
    assert.equal(bs(m, false), '(("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 22 2) "mixed")');
  });

  test('RFC 2231 filename in UTF-8, continued, sent decoded to UTF-8 clients and as name* to others', () => {
    const m =
      "Content-Type: application/pdf; name*0*=utf-8''%E6%97%A5%E6%9C%AC; name*1=.pdf\nContent-Disposition: attachment;\n filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.pdf\nContent-Transfer-Encoding: base64\n\nAAAA\n";
    const s = scanMessage(msg(m)).root;
    assert.equal(
      renderBodyStructure(s, true),
      '("application" "pdf" ("name" "日本.pdf") NIL NIL "base64" 6 NIL ("attachment" ("filename" "日本語.pdf")) NIL NIL)',
    );
    assert.equal(
      renderBodyStructure(s, true, { utf8: false }),
      `("application" "pdf" ("name*" "utf-8''%E6%97%A5%E6%9C%AC.pdf") NIL NIL "base64" 6 NIL ("attachment" ("filename*" "utf-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.pdf")) NIL NIL)`,
    );
  });

  test('a multipart without boundary is text; a base64 multipart is one leaf', () => {
    assert.equal(
      bs('Content-Type: multipart/mixed\n\nx\n', false),
      '("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 3 1)',
    );
    assert.equal(
      bs('Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nAAAA\n', false),
      '("message" "rfc822" NIL NIL NIL "base64" 6)',
    );
  });

  test('nesting deeper than the cap is a leaf, and scanning does not recurse', () => {
    let m = '';
    for (let i = 0; i < 2000; i++) m += `Content-Type: multipart/mixed; boundary=b${i}\n\n--b${i}\n`;
    m += '\nleaf\n';
    const s = scanMessage(msg(m));
    let depth = 0;
    for (let p: MimePart | undefined = s.root; p; p = p.parts[0]) depth++;
    assert.equal(depth, 51);
  });

  test('limits: a header past maxHeaderBytes is not read further; parts past maxParts do not begin', () => {
    const big = `X-Pad: ${'a'.repeat(70_000)}\nContent-Type: image/png\n\nxx`;
    const s = scanMessage(msg(big)).root;
    assert.equal(`${s.type}/${s.subtype}`, 'text/plain');
    assert.equal(s.bodyEnd - s.bodyStart, 2);
    const many = new MimeScanner({ maxParts: 3 });
    many.push(msg(`Content-Type: multipart/mixed; boundary=b\n\n${'--b\n\nx\n'.repeat(10)}--b--\n`));
    const root = many.finish().root;
    assert.equal(root.parts.length, 2);
    assert.equal(root.parts[1]!.lines, 25);
  });

  test('Content-Language, Content-Location, Content-ID, Description, MD5 in BODYSTRUCTURE', () => {
    const m =
      'Content-Type: text/plain\nContent-ID: <c1@x>\nContent-Description: =?utf-8?q?caf=C3=A9?=\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\nContent-Language: en, de (German)\nContent-Location: http://x/y\n\nz';
    assert.equal(
      bs(m),
      '("text" "plain" ("charset" "us-ascii") "<c1@x>" "=?utf-8?q?caf=C3=A9?=" "7BIT" 1 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" NIL ("en" "de") "http://x/y")',
    );
  });
});

describe('ENVELOPE', () => {
  test('groups, defaults, encoded words kept, UTF-8 names and 日本 addresses', () => {
    const m = msg(
      'Date: Mon, 7 Feb 1994 21:52:25 -0800\nFrom: =?utf-8?B?5pel5pys6Kqe?= <日本@例え.jp>\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\nTo: Undisclosed:;, friends: a@x.org, "B, C" <b@y.org>;\nCc: d@z.org (Dee)\nMessage-ID: <1@x>\nIn-Reply-To: <0@x>\n\n',
    );
    const from = '(("=?utf-8?B?5pel5pys6Kqe?=" NIL "日本" "例え.jp"))';
    assert.equal(
      renderEnvelope(scanMessage(m).root.envelope!),
      `("Mon, 7 Feb 1994 21:52:25 -0800" "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=" ${from} ${from} ${from} ` +
        '((NIL NIL "Undisclosed" NIL)(NIL NIL NIL NIL)(NIL NIL "friends" NIL)(NIL NIL "a" "x.org")("B, C" NIL "b" "y.org")(NIL NIL NIL NIL)) ' +
        '(("Dee" NIL "d" "z.org")) NIL "<0@x>" "<1@x>")',
    );
    assert.match(
      renderEnvelope(scanMessage(m).root.envelope!, { utf8: false }),
      /\(\("=\?utf-8\?B\?5pel5pys6Kqe\?=" NIL \{6\}\r\n日本 \{9\}\r\n例え\.jp\)\)/,
    );
  });

  test('a raw UTF-8 subject (RFC 6532) in message/global: quoted for UTF-8 clients, a literal for others', () => {
    const m = msg(
      'Content-Type: Message/Global (comment); X = "y"\n\nSubject: 件名 ü\nFrom: jürgen@例え.jp\nContent-Type: TEXT/Plain; Charset = "UTF-8"\n\nhi\n',
    );
    const root = scanMessage(m).root;
    assert.equal(`${root.type}/${root.subtype}`, 'message/global');
    const inner = root.message!;
    assert.deepEqual(inner.params, [{ name: 'charset', value: 'UTF-8' }]);
    assert.match(renderEnvelope(inner.envelope!), /^\(NIL "件名 ü" \(\(NIL NIL "jürgen" "例え\.jp"\)\)/);
    assert.match(
      renderEnvelope(inner.envelope!, { utf8: false }),
      /^\(NIL \{9\}\r\n件名 ü \(\(NIL NIL \{7\}\r\njürgen \{9\}\r\n例え\.jp\)\)/,
    );
    assert.match(
      renderBodyStructure(root, false),
      /^\("message" "global" \("x" "y"\) NIL NIL "7BIT" \d+ \(NIL "件名 ü"/,
    );
  });

  test('no fields: all NIL; a mailbox without a domain', () => {
    assert.equal(
      renderEnvelope(scanMessage(msg('X: y\n\n')).root.envelope!),
      '(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)',
    );
    assert.match(
      renderEnvelope(scanMessage(msg('From: root\n\n')).root.envelope!),
      /^\(NIL NIL \(\(NIL NIL "root" "\.MISSING-HOST-NAME\."\)\)/,
    );
  });
});

test('property: random splits of every corpus message give the same structure', () => {
  const all = corpus().filter((c) => c.bytes.length < 50_000);
  fc.assert(
    fc.property(fc.nat(all.length - 1), fc.array(fc.nat(), { maxLength: 40 }), (which, cuts) => {
      const { bytes } = all[which]!;
      const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const s = new MimeScanner();
      let prev = 0;
      for (const c of [...at, bytes.length]) {
        s.push(bytes.subarray(prev, c));
        prev = c;
      }
      assert.deepEqual(s.finish(), scanMessage(bytes));
    }),
    { numRuns: 300 },
  );
});

describe('fuzzed and mutated messages', () => {
  test('10^5 mutations of corpus messages: no throw, offsets nested and inside the message', async () => {
    const seeds = corpus()
      .map((c) => c.bytes)
      .filter((b) => b.length < 3000);
    const pieces = [
      '--',
      '\r\n',
      '\n',
      '\r\n\r\n',
      'Content-Type: multipart/mixed; boundary=',
      'message/rfc822',
      ':',
      '"',
      '*0*=',
      "utf-8''%E6",
    ].map((s) => Buffer.from(s));
    let seed = 0x9e3779b9;
    const rand = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const check = (p: MimePart, lo: number, hi: number): void => {
      const ok =
        lo <= p.headerStart && p.headerStart <= p.bodyStart && p.bodyStart <= p.bodyEnd && p.bodyEnd <= hi;
      assert.ok(
        ok,
        `${p.type}/${p.subtype} [${p.headerStart} ${p.bodyStart} ${p.bodyEnd}] outside [${lo} ${hi}]`,
      );
      for (const c of p.parts) check(c, p.bodyStart, p.bodyEnd);
      if (p.message) check(p.message, p.bodyStart, p.bodyEnd);
    };
    for (let n = 0; n < 100_000; n++) {
      const base = seeds[rand(seeds.length)]!;
      const m = Buffer.from(base);
      const parts: Buffer[] = [];
      let at = 0;
      for (let k = rand(6); k >= 0; k--) {
        const cut = at + rand(Math.max(1, m.length - at));
        parts.push(m.subarray(at, cut));
        const op = rand(4);
        if (op === 0) parts.push(pieces[rand(pieces.length)]!);
        else if (op === 1) parts.push(Buffer.of(rand(256)));
        else if (op === 2) at = Math.min(m.length, cut + rand(40));
        if (op !== 2) at = cut;
      }
      parts.push(m.subarray(at, rand(8) === 0 ? at + rand(m.length - at + 1) : m.length));
      const bytes = Buffer.concat(parts);
      const s = scanMessage(bytes);
      if (process.env['MIME_FUZZ_DUMP'] !== undefined) {
        try {
          check(s.root, 0, bytes.length);
        } catch (e) {
          (await import('node:fs')).writeFileSync(process.env['MIME_FUZZ_DUMP'], bytes);
          throw e;
        }
      }
      check(s.root, 0, bytes.length);
      renderBodyStructure(s.root, true, { utf8: n % 2 === 0 });
      if (s.root.envelope) renderEnvelope(s.root.envelope);
    }
  });
});
