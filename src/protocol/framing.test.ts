// Line and literal framing: CRLF and bare LF lines, overlong lines reported once and skipped, literals
// passed through in pieces, discard, and the property that any fragmentation gives the same frames.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LineFramer, type Frame } from './framing.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Frames as text, for readable assertions; literal pieces are joined per literal. */
function drain(framer: LineFramer, onLine?: (line: string) => void, acc = { literal: '' }): string[] {
  const out: string[] = [];
  for (let f: Frame | null = framer.next(); f !== null; f = framer.next()) {
    switch (f.kind) {
      case 'line': {
        const line = Buffer.from(f.line).toString('utf8');
        out.push(f.crlf ? `line ${line}` : `lf-line ${line}`);
        onLine?.(line);
        break;
      }
      case 'overlong':
        out.push('overlong');
        break;
      case 'literal':
        acc.literal += Buffer.from(f.chunk).toString('utf8');
        if (f.last) {
          out.push(`literal ${acc.literal}`);
          acc.literal = '';
        }
        break;
    }
  }
  return out;
}

/** IMAP-style: a line ending in {n} announces a literal of n octets. */
function literals(framer: LineFramer): (line: string) => void {
  return (line) => {
    const m = /\{(\d+)\}$/.exec(line);
    if (m) framer.expectLiteral(Number(m[1]));
  };
}

describe('LineFramer', () => {
  it('splits CRLF lines and marks bare-LF ones; a partial line waits', () => {
    const f = new LineFramer({ maxLineBytes: 100 });
    f.push(enc('USER jürgen@example.org\r\nPASS x\nSTAT'));
    assert.deepEqual(drain(f), ['line USER jürgen@example.org', 'lf-line PASS x']);
    assert.equal(f.bufferedBytes, 4);
    f.push(enc('\r\n'));
    assert.deepEqual(drain(f), ['line STAT']);
  });

  it('an overlong line is reported once, as soon as it is known, and skipped up to its LF', () => {
    const f = new LineFramer({ maxLineBytes: 10 });
    f.push(enc('0123456789abc'));
    assert.deepEqual(drain(f), ['overlong']);
    f.push(enc('more and more'));
    assert.deepEqual(drain(f), []);
    assert.equal(f.bufferedBytes, 0, 'the skipped line is not buffered');
    f.push(enc('end\r\nNOOP\r\n'));
    assert.deepEqual(drain(f), ['line NOOP']);
    f.push(enc('12345678901\r\nok\r\n'));
    assert.deepEqual(drain(f), ['overlong', 'line ok']);
  });

  it('a line of exactly maxLineBytes (with its CRLF) is a line', () => {
    const f = new LineFramer({ maxLineBytes: 6 });
    f.push(enc('ABCD\r\n'));
    assert.deepEqual(drain(f), ['line ABCD']);
  });

  it('literals pass through as bytes, CRLFs and all, then lines resume', () => {
    const f = new LineFramer({ maxLineBytes: 100 });
    f.push(enc('A1 APPEND INBOX {12}\r\nhi\r\n日本\r\n A2 NOOP\r\n'));
    assert.deepEqual(drain(f, literals(f)), [
      'line A1 APPEND INBOX {12}',
      'literal hi\r\n日本\r\n',
      'line  A2 NOOP',
    ]);
  });

  it('discard drops what is buffered (STARTTLS)', () => {
    const f = new LineFramer({ maxLineBytes: 100 });
    f.push(enc('STLS\r\nUSER injected\r\n'));
    assert.equal(f.next()?.kind, 'line');
    assert.equal(f.discard(), 'USER injected\r\n'.length);
    assert.equal(f.next(), null);
  });

  it('any fragmentation of the input gives the same frames', () => {
    const input = enc('A1 LOGIN {3}\r\nabc x\r\nNOOP\n' + 'y'.repeat(40) + '\r\nQUIT\r\n{2}\r\n\r\n\r\n');
    const whole = new LineFramer({ maxLineBytes: 32 });
    whole.push(input);
    const expected = drain(whole, literals(whole));
    assert.deepEqual(expected, [
      'line A1 LOGIN {3}',
      'literal abc',
      'line  x',
      'lf-line NOOP',
      'overlong',
      'line QUIT',
      'line {2}',
      'literal \r\n',
      'line ',
    ]);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: input.length }), { maxLength: 12 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const f = new LineFramer({ maxLineBytes: 32 });
        const onLine = literals(f);
        const got: string[] = [];
        const acc = { literal: '' };
        let from = 0;
        for (const to of [...points, input.length]) {
          f.push(input.subarray(from, to));
          got.push(...drain(f, onLine, acc));
          from = to;
        }
        assert.deepEqual(got, expected);
      }),
    );
  });
});
