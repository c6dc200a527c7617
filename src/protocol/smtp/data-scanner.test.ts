// Tests of the DATA/BDAT byte scanner: the end of data is only <CRLF>.<CRLF> (RFC 5321 §4.1.1.4), every
// SMTP smuggling variant (bare CR/LF around the dot, CVE-2023-51764 class) is content, dot-unstuffing
// (§4.5.2), bare line-ending policy, long lines, and fragmentation: the scanner is checked against a
// separate whole-buffer reference model, in properties and on a 10 MiB random stream cut at random.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { DataScanner, type ScanOptions } from './data-scanner.ts';

const CR = 13;
const LF = 10;
const DOT = 46;

const REJECT: ScanOptions = { bareLineEndings: 'reject', maxLineBytes: 1000, dotStuffed: true };
const NORMALIZE: ScanOptions = { bareLineEndings: 'normalize', maxLineBytes: 1000, dotStuffed: true };

const bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const text = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

interface Outcome {
  output: string;
  /** Index just past the end-of-data line in the whole input, -1 when not reached. */
  endIndex: number;
  bareLineEnding: boolean;
  longLine: boolean;
}

/** Feed `input` cut at `cuts` (sorted or not); stop at the end of data as the session does. */
function scanPieces(input: Uint8Array, options: ScanOptions, cuts: readonly number[] = []): Outcome {
  const scanner = new DataScanner(options);
  const points = [...new Set(cuts.filter((c) => c > 0 && c < input.length))].sort((a, b) => a - b);
  points.push(input.length);
  const parts: Uint8Array[] = [];
  let start = 0;
  let endIndex = -1;
  for (const p of points) {
    const r = scanner.scan(input.subarray(start, p));
    parts.push(Buffer.from(r.output)); // copy: the scanner may reuse nothing, but do not rely on it
    if (r.endIndex >= 0) {
      endIndex = start + r.endIndex;
      break;
    }
    start = p;
  }
  const output = Buffer.concat(parts);
  assert.equal(scanner.outputBytes, output.length, 'outputBytes counts what was returned');
  return {
    output: output.toString('latin1'),
    endIndex,
    bareLineEnding: scanner.bareLineEnding,
    longLine: scanner.longLine,
  };
}

const scanOnce = (s: string, options: ScanOptions = REJECT): Outcome => scanPieces(bytes(s), options);

/**
 * Reference model, written independently of the scanner: tokenise the whole buffer into lines and
 * terminators, then apply the rules. A real CRLF is a terminator; with "normalize" a bare CR or LF is
 * one too (written as CRLF); with "reject" a bare LF ends a line (written as is) and a bare CR is content.
 * A line starting with "." loses that dot unless a terminator byte follows it. Only "." alone on a line
 * that follows a real CRLF (or the start), itself ended by a real CRLF, ends the data.
 */
function reference(input: Uint8Array, options: ScanOptions): Outcome {
  const normalize = options.bareLineEndings === 'normalize';
  const out: number[] = [];
  let bare = false;
  let long = false;
  let i = 0;
  let properStart = true;
  const n = input.length;
  while (i < n) {
    // One line: [start, j) content, then a terminator (or the end of input).
    const lineOut: number[] = [];
    let j = i;
    let term: 'crlf' | 'cr' | 'lf' | 'eof' = 'eof';
    let lineLen = 0;
    // The scanner checks the length at each ordinary byte and at a line's end, not at a held CR.
    let lenAtLastByte = 0;
    for (; j < n; j++) {
      const b = input[j]!;
      if (b === CR && input[j + 1] === LF) {
        term = 'crlf';
        break;
      }
      if (b === CR && j + 1 === n) {
        term = 'eof'; // undecided: the scanner holds it
        break;
      }
      if (b === CR) {
        bare = true;
        if (normalize) {
          term = 'cr';
          break;
        }
        lineOut.push(CR);
        lineLen++;
        continue;
      }
      if (b === LF) {
        bare = true;
        term = 'lf';
        break;
      }
      lineOut.push(b);
      lineLen++;
      lenAtLastByte = lineLen;
    }
    const lineEnd = j;
    // Dot handling on the raw line bytes [i, lineEnd).
    if (options.dotStuffed && input[i] === DOT && lineEnd === i + 1 && term === 'crlf' && properStart) {
      return {
        output: Buffer.from(out).toString('latin1'),
        endIndex: lineEnd + 2,
        bareLineEnding: bare,
        longLine: long,
      };
    }
    // Stuffing, unless a CR follows (in "reject" a bare CR stays in the line, and so does the dot).
    if (options.dotStuffed && input[i] === DOT && lineEnd > i + 1 && input[i + 1] !== CR) lineOut.shift();
    if (options.dotStuffed && input[i] === DOT && lineEnd === i + 1 && term === 'eof') lineOut.pop(); // held
    out.push(...lineOut);
    if ((term === 'eof' ? lenAtLastByte : lineLen) > options.maxLineBytes - 2) long = true;
    if (term === 'eof') break;
    if (term === 'crlf') {
      out.push(CR, LF);
      i = lineEnd + 2;
      properStart = true;
    } else {
      if (normalize) out.push(CR, LF);
      else out.push(LF);
      i = lineEnd + 1;
      properStart = false;
    }
  }
  return { output: Buffer.from(out).toString('latin1'), endIndex: -1, bareLineEnding: bare, longLine: long };
}

describe('end of data', () => {
  test('only <CRLF>.<CRLF> ends; the CRLF before the dot is content', () => {
    assert.deepEqual(scanOnce('Hello\r\n.\r\n'), {
      output: 'Hello\r\n',
      endIndex: 10,
      bareLineEnding: false,
      longLine: false,
    });
  });

  test('a "." line right after DATA is an empty message', () => {
    assert.deepEqual(scanOnce('.\r\n'), { output: '', endIndex: 3, bareLineEnding: false, longLine: false });
  });

  test('bytes after the end belong to the next command', () => {
    const r = scanOnce('Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n');
    assert.equal(r.endIndex, 23);
    assert.equal(r.output, 'Subject: x\r\n\r\nbody\r\n');
  });

  test('no end: everything so far is output except what may still be the marker', () => {
    const r = scanOnce('line\r\n.');
    assert.equal(r.endIndex, -1);
    assert.equal(r.output, 'line\r\n');
    const r2 = scanOnce('line\r\n.\r');
    assert.equal(r2.endIndex, -1);
    assert.equal(r2.output, 'line\r\n');
  });

  test('" ." , ". " and ".." lines are content, not the end', () => {
    const r = scanOnce('a\r\n .\r\n. \r\n..\r\n.\r\n');
    assert.equal(r.output, 'a\r\n .\r\n \r\n.\r\n');
    assert.equal(r.endIndex, 18);
  });
});

describe('smuggling: a bare CR or LF never makes an end of data', () => {
  const variants: Record<string, string> = {
    'LF.LF': '\n.\n',
    'LF.CRLF': '\n.\r\n',
    'CRLF.LF': '\r\n.\n',
    'CR.CR': '\r.\r',
    'CR.CRLF': '\r.\r\n',
    'CRLF.CR': '\r\n.\rX',
    'LF.CR': '\n.\rX',
    'CRLF.CR CRLF': '\r\n.\r\r\n',
    'CRLF.NUL CRLF': '\r\n.\x00\r\n',
    'CRLF.LF CRLF': '\r\n.\n\r\n',
  };
  const smuggled = 'MAIL FROM:<admin@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\n';
  for (const policy of [REJECT, NORMALIZE]) {
    for (const [name, v] of Object.entries(variants)) {
      test(`${policy.bareLineEndings}: ${name}`, () => {
        const input = `Subject: hi\r\n\r\nbody${v}${smuggled}evil\r\n.\r\n`;
        const r = scanOnce(input, policy);
        assert.equal(r.endIndex, input.length, 'ends only at the real end');
        assert.equal(r.bareLineEnding, name !== 'CRLF.NUL CRLF', 'bare line ending seen');
        assert.ok(r.output.includes('MAIL FROM:<admin@example.test>'), 'smuggled text stays content');
        assert.deepEqual(r, reference(bytes(input), policy));
        // Fragmented at every position around the variant, the answer is the same.
        const at = input.indexOf(v);
        for (let c = at - 1; c <= at + v.length + 1; c++) {
          assert.deepEqual(scanPieces(bytes(input), policy, [c]), r, `cut at ${c}`);
        }
      });
    }
  }

  test('in normalize mode a "." after a bare LF then CRLF is kept as a content line', () => {
    const r = scanOnce('a\n.\r\nb\r\n.\r\n', NORMALIZE);
    assert.equal(r.output, 'a\r\n.\r\nb\r\n');
    assert.equal(r.endIndex, 11);
  });
});

describe('bare line endings', () => {
  test('reject: bytes kept as they are, flag set', () => {
    const r = scanOnce('a\nb\rc\r\n.\r\n');
    assert.deepEqual(r, { output: 'a\nb\rc\r\n', endIndex: 10, bareLineEnding: true, longLine: false });
  });

  test('normalize: each bare CR and bare LF becomes CRLF, flag still set', () => {
    const input = 'a\nb\rc\r\r\nx\n\r\n.\r\n';
    const r = scanOnce(input, NORMALIZE);
    assert.deepEqual(r, {
      output: 'a\r\nb\r\nc\r\n\r\nx\r\n\r\n',
      endIndex: input.length,
      bareLineEnding: true,
      longLine: false,
    });
  });

  test('CRLF only: no flag', () => {
    assert.equal(scanOnce('a\r\n\r\nb\r\n.\r\n').bareLineEnding, false);
  });
});

describe('dot-unstuffing (RFC 5321 §4.5.2)', () => {
  test('the first dot of a line is removed', () => {
    assert.equal(scanOnce('..\r\n...x\r\n.y\r\n.\r\n').output, '.\r\n..x\r\ny\r\n');
  });

  test('a dot not at the start of a line is content', () => {
    assert.equal(scanOnce('a.\r\nb..c\r\n.\r\n').output, 'a.\r\nb..c\r\n');
  });

  test('BDAT mode: no unstuffing and no end marker', () => {
    const bdat: ScanOptions = { ...REJECT, dotStuffed: false };
    const r = scanOnce('..x\r\n.\r\nmore\r\n', bdat);
    assert.deepEqual(r, {
      output: '..x\r\n.\r\nmore\r\n',
      endIndex: -1,
      bareLineEnding: false,
      longLine: false,
    });
  });

  test('BDAT mode: flush releases a trailing CR (bare at the end of the last chunk)', () => {
    for (const [policy, expected] of [
      ['reject', '\r'],
      ['normalize', '\r\n'],
    ] as const) {
      const s = new DataScanner({ bareLineEndings: policy, maxLineBytes: 1000, dotStuffed: false });
      assert.equal(text(s.scan(bytes('abc\r')).output), 'abc');
      assert.equal(s.bareLineEnding, false);
      assert.equal(text(s.flush()), expected);
      assert.equal(s.bareLineEnding, true);
      assert.equal(s.outputBytes, 3 + expected.length);
      assert.equal(s.flush().length, 0, 'a second flush has nothing left');
    }
    const s = new DataScanner({ ...REJECT, dotStuffed: false });
    s.scan(bytes('abc\r'));
    assert.equal(text(s.scan(bytes('\n')).output), '\r\n', 'a CR completed by the next chunk is a CRLF');
    assert.equal(s.flush().length, 0);
    assert.equal(s.bareLineEnding, false);
  });
});

describe('long lines', () => {
  const options: ScanOptions = { bareLineEndings: 'reject', maxLineBytes: 100, dotStuffed: true };

  test('98 octets + CRLF is the longest line allowed at maxLineBytes 100', () => {
    assert.equal(scanOnce(`${'a'.repeat(98)}\r\n.\r\n`, options).longLine, false);
    assert.equal(scanOnce(`${'a'.repeat(99)}\r\n.\r\n`, options).longLine, true);
  });

  test('the stuffed dot counts (it is on the wire), the line is still delivered', () => {
    const r = scanOnce(`.${'a'.repeat(98)}\r\n.\r\n`, options);
    assert.equal(r.longLine, true);
    assert.equal(r.output, `${'a'.repeat(98)}\r\n`);
    assert.equal(scanOnce(`.${'a'.repeat(97)}\r\n.\r\n`, options).longLine, false);
  });

  test('a long line is seen however it is cut, and before its end arrives', () => {
    const s = new DataScanner(options);
    for (let i = 0; i < 20; i++) s.scan(bytes('aaaaaaa'));
    assert.equal(s.longLine, true);
  });

  test('a very long line (1 MiB) is streamed, not buffered', () => {
    const s = new DataScanner(REJECT);
    const r = s.scan(new Uint8Array(1 << 20).fill(0x61));
    assert.equal(r.output.length, 1 << 20);
    assert.equal(s.longLine, true);
  });
});

// --- properties -------------------------------------------------------------------------------------

/** Bytes from an alphabet rich in what matters (CR, LF, ".") plus arbitrary octets. */
const wireBytes = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(CR, LF, DOT) },
      { weight: 1, arbitrary: fc.constantFrom(0x61, 0x20, 0x00, 0xff) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
    ),
    { maxLength: 120 },
  )
  .map((a) => Uint8Array.from(a));

const optionsArb = fc.record({
  bareLineEndings: fc.constantFrom('reject' as const, 'normalize' as const),
  maxLineBytes: fc.integer({ min: 3, max: 12 }),
  dotStuffed: fc.boolean(),
});

test('property: any fragmentation of the same bytes gives the same output and flags', () => {
  fc.assert(
    fc.property(
      wireBytes,
      optionsArb,
      fc.array(fc.nat({ max: 130 }), { maxLength: 20 }),
      (input, opts, cuts) => {
        assert.deepEqual(scanPieces(input, opts, cuts), scanPieces(input, opts));
      },
    ),
    { numRuns: 3000 },
  );
});

test('property: the scanner agrees with the whole-buffer reference model', () => {
  fc.assert(
    fc.property(wireBytes, optionsArb, (input, opts) => {
      assert.deepEqual(scanPieces(input, opts), reference(input, opts));
    }),
    { numRuns: 5000 },
  );
});

test('property: unstuffing inverts dot-stuffing for CRLF-clean text', () => {
  const line = fc.string({
    unit: fc.oneof(fc.constantFrom('.', 'a', ' ', '\x00', 'é'), fc.string({ maxLength: 1 })),
    maxLength: 30,
  });
  fc.assert(
    fc.property(
      fc.array(line.filter((l) => !/[\r\n]/.test(l))),
      fc.array(fc.nat({ max: 2000 }), { maxLength: 10 }),
      (lines, cuts) => {
        const original = lines.map((l) => `${l}\r\n`).join('');
        const stuffed = lines.map((l) => `${l.startsWith('.') ? '.' : ''}${l}\r\n`).join('');
        const wire = Buffer.from(`${stuffed}.\r\nNEXT`, 'utf8');
        const r = scanPieces(wire, { ...REJECT, maxLineBytes: 1 << 20 }, cuts);
        assert.equal(Buffer.from(r.output, 'latin1').toString('utf8'), original);
        assert.equal(r.endIndex, wire.length - 4);
        assert.equal(r.bareLineEnding, false);
        assert.equal(r.longLine, false);
      },
    ),
    { numRuns: 2000 },
  );
});

test('a 10 MiB random stream fed in random pieces gives the reference result in both policies', () => {
  const size = 10 * 1024 * 1024;
  const raw = randomBytes(size);
  // Skew the bytes so CR, LF and "." are frequent: lines of every length, bare endings, stuffing.
  for (let i = 0; i < size; i++) {
    const b = raw[i]!;
    if (b < 12) raw[i] = CR;
    else if (b < 24) raw[i] = LF;
    else if (b < 40) raw[i] = DOT;
  }
  // Break any early end marker so the one real end is the one appended below.
  for (let i = raw.indexOf('\r\n.\r\n'); i >= 0; i = raw.indexOf('\r\n.\r\n', i + 1)) raw[i + 2] = 0x78;
  if (raw[0] === DOT && raw[1] === CR && raw[2] === LF) raw[0] = 0x78;
  raw[size - 1] = 0x78; // nor may the raw tail and the appended end make an earlier one
  const input = Buffer.concat([raw, Buffer.from('\r\n.\r\nQUIT\r\n')]);
  const end = size + 5;

  const cuts: number[] = [];
  for (let at = 0; at < input.length;) {
    const r = Math.random();
    at += r < 0.2 ? 1 + Math.floor(Math.random() * 3) : 1 + Math.floor(Math.random() * 65536);
    cuts.push(at);
  }
  for (const policy of [REJECT, NORMALIZE]) {
    const expected = reference(input, policy);
    assert.equal(expected.endIndex, end);
    const pieces = scanPieces(input, policy, cuts);
    assert.equal(pieces.endIndex, end);
    assert.equal(pieces.bareLineEnding, expected.bareLineEnding);
    assert.equal(pieces.longLine, expected.longLine);
    assert.ok(pieces.output === expected.output, `${policy.bareLineEndings}: output differs`);
  }
});
