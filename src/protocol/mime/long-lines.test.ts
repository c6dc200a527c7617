import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LongLineEncoder, LongLineScan, MAX_LINE_OCTETS, type LongLinePlan } from './long-lines.ts';

function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** Both passes over `message`, fed in pieces of `size` octets. */
function encode(message: Buffer, size = message.length || 1): { plan: LongLinePlan; out: Buffer } {
  const scan = new LongLineScan();
  for (const c of chunks(message, size)) scan.push(c);
  const plan = scan.plan();
  const enc = new LongLineEncoder(plan);
  const parts: Uint8Array[] = [];
  for (const c of chunks(message, size)) parts.push(enc.push(c));
  parts.push(enc.finish());
  return { plan, out: Buffer.concat(parts) };
}

/** Every line ends in CRLF (no bare CR or LF) and holds at most 998 octets. */
function assertShortLines(out: Buffer): void {
  const text = out.toString('latin1');
  assert.doesNotMatch(text, /\r(?!\n)|(?<!\r)\n/, 'a bare CR or LF');
  const longest = Math.max(...text.split('\r\n').map((l) => l.length));
  assert.ok(longest <= MAX_LINE_OCTETS, `a line of ${longest} octets`);
}

/** RFC 2045 §6.7 decoding: soft breaks vanish, =XX is an octet, a hard break is CRLF. */
function qpDecode(encoded: Buffer): Buffer {
  const lines = encoded.toString('latin1').split('\r\n');
  const ends = lines.at(-1) === '';
  if (ends) lines.pop();
  const out: number[] = [];
  lines.forEach((line, i) => {
    const soft = line.endsWith('=');
    const body = soft ? line.slice(0, -1) : line.replace(/[ \t]+$/, '');
    for (let j = 0; j < body.length; j++) {
      if (body[j] === '=') {
        out.push(parseInt(body.slice(j + 1, j + 3), 16));
        j += 2;
      } else out.push(body.charCodeAt(j));
    }
    if (!soft && (i < lines.length - 1 || ends)) out.push(13, 10);
  });
  return Buffer.from(out);
}

function b64Decode(encoded: Buffer): Buffer {
  return Buffer.from(encoded.toString('latin1').replace(/\s+/g, ''), 'base64');
}

function split(message: Buffer): { head: string; body: Buffer } {
  const at = message.indexOf('\r\n\r\n');
  return { head: message.subarray(0, at + 2).toString('utf8'), body: message.subarray(at + 4) };
}

/** The parts between `--boundary` lines: each one's header section and body (the CRLF before a boundary excluded). */
function partsOf(body: Buffer, boundary: string): { head: string; body: Buffer }[] {
  const text = body.toString('latin1');
  const pieces = text.split(new RegExp(`(?:^|\\r\\n)--${boundary}(?:--)?[ \\t]*\\r\\n`));
  return pieces.slice(1, -1).map((p) => split(Buffer.from(p, 'latin1')));
}

function field(head: string, name: string): string | undefined {
  return new RegExp(`^${name}:[ \\t]*(.*(?:\\r\\n[ \\t].*)*)`, 'im').exec(head)?.[1]?.replace(/\r\n/g, '');
}

/** Decode a part by its Content-Transfer-Encoding. */
function decoded(part: { head: string; body: Buffer }): Buffer {
  const cte = field(part.head, 'Content-Transfer-Encoding')?.trim().toLowerCase();
  if (cte === 'quoted-printable') return qpDecode(part.body);
  if (cte === 'base64') return b64Decode(part.body);
  return part.body;
}

const LONG = (n: number, seed = 'abcdefghij klmnopqrstuvwxyz0123456789 '): string =>
  seed.repeat(Math.ceil(n / seed.length)).slice(0, n);

describe('long lines: a message that is not MIME', () => {
  for (const [what, text, charset, cte] of [
    ['ASCII', `first line\r\n${LONG(5000)}\r\nlast line \r\n`, 'us-ascii', 'quoted-printable'],
    ['mostly ASCII, UTF-8', `Grüße, jürgen\r\n${LONG(3000)}ü=\r\n`, 'utf-8', 'quoted-printable'],
    ['Japanese, UTF-8', `${'日本語のテキスト'.repeat(400)}\r\n`, 'utf-8', 'base64'],
  ] as const) {
    test(`${what}: becomes text/plain ${cte}, decodes to the same octets, lines ≤ 998`, () => {
      const head = 'From: <a@example.org>\r\nSubject: hello\r\n';
      const message = Buffer.from(`${head}\r\n${text}`, 'utf8');
      const { plan, out } = encode(message);
      assert.equal(plan.needed, true);
      assertShortLines(out);
      const got = split(out);
      assert.ok(got.head.startsWith(head), got.head);
      assert.equal(field(got.head, 'MIME-Version'), '1.0');
      assert.equal(field(got.head, 'Content-Type'), `text/plain; charset=${charset}`);
      assert.equal(field(got.head, 'Content-Transfer-Encoding'), cte);
      assert.deepEqual(decoded(got), Buffer.from(text, 'utf8'));
    });
  }

  test('8-bit octets that are not UTF-8 are labelled unknown-8bit', () => {
    const body = Buffer.concat([Buffer.from(LONG(1200)), Buffer.from([0xe9, 0x0d, 0x0a])]);
    const { out } = encode(Buffer.concat([Buffer.from('Subject: x\r\n\r\n'), body]));
    const got = split(out);
    assert.equal(field(got.head, 'Content-Type'), 'text/plain; charset=unknown-8bit');
    assert.deepEqual(decoded(got), body);
  });

  test('a body without a final line break still decodes to the same octets and ends in CRLF', () => {
    const body = Buffer.from(`x=y\t ${LONG(2500)} \t`);
    const { out } = encode(Buffer.concat([Buffer.from('Subject: x\r\n\r\n'), body]));
    assertShortLines(out);
    assert.ok(out.subarray(-2).equals(Buffer.from('\r\n')));
    assert.deepEqual(decoded(split(out)), body);
  });
});

describe('long lines: MIME', () => {
  const B = 'frontier.1';
  const short = 'Content-Type: text/plain; charset=us-ascii\r\n\r\nshort part, kept as it is\r\n';
  const longText = `${LONG(4000)}\r\nand a line with --${B} inside it ${LONG(1500)}\r\n`;
  const binary = Buffer.from(
    Array.from({ length: 3000 }, (_, i) => (i * 7 + 1) % 256).filter((b) => b !== 10 && b !== 13),
  );
  const multipart = (cteLine = ''): Buffer =>
    Buffer.concat([
      Buffer.from(
        `From: <a@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary="${B}"\r\n\r\n` +
          `preamble\r\n--${B}\r\n${short}--${B}\r\nContent-Type: text/plain; charset=utf-8\r\n${cteLine}\r\n${longText}` +
          `--${B}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8bit\r\n\r\n`,
      ),
      binary,
      Buffer.from(`\r\n--${B}--\r\nepilogue\r\n`),
    ]);

  test('only the parts with long lines are encoded; boundaries, other parts and fillers stay as they were', () => {
    const message = multipart('Content-Transfer-Encoding: 8bit\r\n');
    const { plan, out } = encode(message);
    assert.deepEqual(
      plan.parts.map((p) => p.action),
      ['keep', 'keep', 'quoted-printable', 'base64'],
    );
    assertShortLines(out);
    const { head, body } = split(out);
    assert.equal(head, split(message).head);
    assert.ok(body.toString('latin1').startsWith(`preamble\r\n--${B}\r\n${short}--${B}\r\n`));
    assert.ok(body.toString('latin1').endsWith(`\r\n--${B}--\r\nepilogue\r\n`));
    const boundaries = body.toString('latin1').match(new RegExp(`^--${B}`, 'gm'));
    assert.equal(boundaries?.length, 4, 'no encoded line looks like a boundary');
    const parts = partsOf(body, B);
    assert.equal(parts.length, 3);
    assert.equal(field(parts[1]!.head, 'Content-Transfer-Encoding'), 'quoted-printable');
    assert.equal(parts[1]!.head.match(/Content-Transfer-Encoding/g)?.length, 1, 'the old one is gone');
    assert.deepEqual(decoded(parts[1]!), Buffer.from(longText.slice(0, -2)));
    assert.equal(field(parts[2]!.head, 'Content-Transfer-Encoding'), 'base64');
    assert.deepEqual(decoded(parts[2]!), binary);
  });

  test('a part without Content-Transfer-Encoding gets one; any fragmentation gives the same bytes', () => {
    const message = multipart();
    const whole = encode(message).out;
    for (const size of [1, 2, 3, 7, 64, 999, 1000, 1001, 1002, 4096]) {
      assert.ok(encode(message, size).out.equals(whole), `pieces of ${size}`);
    }
    const parts = partsOf(split(whole).body, B);
    assert.deepEqual(decoded(parts[1]!), Buffer.from(longText.slice(0, -2)));
  });

  test('base64 and quoted-printable parts with long lines are only broken where decoders ignore it', () => {
    const data = Buffer.from(Array.from({ length: 6000 }, (_, i) => (i * 31) % 256));
    // Escapes at every offset around where a break must go.
    const qpLine = Array.from({ length: 700 }, (_, i) => (i % 3 === 0 ? '=3D' : 'a-')).join('');
    const qpDecodedWant = qpDecode(Buffer.from(`${qpLine}\r\n`));
    const message = Buffer.from(
      `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=${B}\r\n\r\n` +
        `--${B}\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n${data.toString('base64')}\r\n` +
        `--${B}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${qpLine}\r\n` +
        `--${B}--\r\n`,
    );
    for (const size of [message.length, 1, 997]) {
      const { plan, out } = encode(message, size);
      assert.deepEqual(
        plan.parts.map((p) => p.action),
        ['keep', 'rewrap-base64', 'rewrap-qp'],
      );
      assertShortLines(out);
      const parts = partsOf(split(out).body, B);
      assert.equal(field(parts[0]!.head, 'Content-Transfer-Encoding'), 'base64');
      assert.deepEqual(decoded(parts[0]!), data);
      assert.deepEqual(qpDecode(Buffer.concat([parts[1]!.body, Buffer.from('\r\n')])), qpDecodedWant);
      assert.doesNotMatch(parts[1]!.body.toString('latin1'), /^-/m);
    }
  });

  test('a long line inside an attached message (message/rfc822) is encoded there', () => {
    const inner = `From: <b@example.org>\r\nSubject: inner\r\n\r\n${LONG(2000)}\r\n`;
    const message = Buffer.from(
      `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=${B}\r\n\r\n` +
        `--${B}\r\n${short}--${B}\r\nContent-Type: message/rfc822\r\n\r\n${inner}--${B}--\r\n`,
    );
    const { plan, out } = encode(message);
    assert.deepEqual(
      plan.parts.map((p) => p.action),
      ['keep', 'keep', 'keep', 'quoted-printable'],
    );
    assertShortLines(out);
    const parts = partsOf(split(out).body, B);
    assert.equal(field(parts[1]!.head, 'Content-Type'), 'message/rfc822');
    const nested = split(parts[1]!.body);
    assert.ok(nested.head.startsWith('From: <b@example.org>\r\nSubject: inner\r\n'));
    assert.equal(field(nested.head, 'MIME-Version'), '1.0');
    // The line break before the boundary is the boundary's.
    assert.deepEqual(decoded(nested), Buffer.from(inner.slice(inner.indexOf('\r\n\r\n') + 4, -2)));
  });
});

describe('long lines: header fields and what needs nothing', () => {
  test('a long header field is folded before white space: unfolding gives it back', () => {
    const subject = `Subject: ${LONG(3000, 'word ')}`;
    const message = Buffer.from(`${subject}\r\nX-Long: ${'y'.repeat(2500)}\r\n\r\nbody\r\n`);
    for (const size of [message.length, 5]) {
      const { plan, out } = encode(message, size);
      assert.equal(plan.needed, true);
      assertShortLines(out);
      const text = out.toString('latin1');
      const fields = text.slice(0, text.indexOf('\r\n\r\n')).split(/\r\n(?![ \t])/);
      assert.equal(fields[0]!.replace(/\r\n/g, ''), subject);
      assert.ok(text.endsWith('\r\n\r\nbody\r\n'));
    }
  });

  test('a message without long lines needs nothing, and the encoder would give it back unchanged', () => {
    const message = Buffer.from(
      `MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\n${'x'.repeat(998)}\r\n--b--\r\n`,
    );
    const { plan, out } = encode(message, 3);
    assert.equal(plan.needed, false);
    assert.ok(out.equals(message));
  });
});
