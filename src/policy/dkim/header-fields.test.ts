import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  HeaderBodySplitter,
  headerHashInput,
  removeSignatureValue,
  selectSignedFields,
  splitHeaderFields,
} from './header-fields.ts';

const SECTION =
  'Received: a\r\nFrom: first@example.org\r\nSubject: one\r\n  two\r\nFROM : second@example.org\r\nTo: x@example.org\r\n';

describe('splitHeaderFields', () => {
  test('fields keep their raw octets, folds and CRLF; names are compared in lower case', () => {
    const fields = splitHeaderFields(SECTION);
    assert.deepEqual(
      fields.map((f) => [f.name, f.key, f.raw]),
      [
        ['Received', 'received', 'Received: a\r\n'],
        ['From', 'from', 'From: first@example.org\r\n'],
        ['Subject', 'subject', 'Subject: one\r\n  two\r\n'],
        ['FROM', 'from', 'FROM : second@example.org\r\n'],
        ['To', 'to', 'To: x@example.org\r\n'],
      ],
    );
  });
});

describe('selectSignedFields (§5.4.2)', () => {
  const fields = splitHeaderFields(SECTION);

  test('each name takes the lowest unused instance; a missing instance is undefined', () => {
    const picked = selectSignedFields(fields, ['from', 'To', 'from', 'from', 'cc']);
    assert.deepEqual(
      picked.map((f) => f?.raw),
      [
        'FROM : second@example.org\r\n',
        'To: x@example.org\r\n',
        'From: first@example.org\r\n',
        undefined,
        undefined,
      ],
    );
  });

  test('the excluded index (the signature being verified) is never selected', () => {
    const withSig = splitHeaderFields('DKIM-Signature: old\r\nDKIM-Signature: new\r\nFrom: a\r\n');
    assert.deepEqual(
      selectSignedFields(withSig, ['dkim-signature', 'dkim-signature'], 1).map((f) => f?.raw),
      ['DKIM-Signature: old\r\n', undefined],
    );
  });
});

describe('removeSignatureValue (§3.7)', () => {
  test('only b= loses its value, bh= and the folds elsewhere stay', () => {
    const raw = 'DKIM-Signature: v=1; bh=abc=;\r\n b=dGVz\r\n dA== ; d=example.org\r\n';
    assert.equal(removeSignatureValue(raw), 'DKIM-Signature: v=1; bh=abc=;\r\n b=; d=example.org\r\n');
  });

  test('b= last, with whitespace before the "="', () => {
    assert.equal(removeSignatureValue('DKIM-Signature: a=1; b =xyz \r\n'), 'DKIM-Signature: a=1; b =\r\n');
  });
});

describe('headerHashInput', () => {
  test('selected fields, then the signature field without b= value and without its CRLF', () => {
    const fields = splitHeaderFields('From: A\r\nSubject:  Hi \r\n');
    const data = headerHashInput(
      selectSignedFields(fields, ['subject', 'from', 'cc']),
      'DKIM-Signature: v=1; h=subject:from:cc; b=AAAA\r\n',
      'relaxed',
    );
    assert.equal(
      data.toString('latin1'),
      'subject:Hi\r\nfrom:A\r\ndkim-signature:v=1; h=subject:from:cc; b=',
    );
  });
});

describe('HeaderBodySplitter', () => {
  function split(
    chunks: readonly string[],
    max = 1000,
  ): { section: string | null; body: string; overflow: boolean } {
    const s = new HeaderBodySplitter(max);
    let body = '';
    for (const c of chunks) {
      for (const piece of s.push(Buffer.from(c, 'latin1'))) body += Buffer.from(piece).toString('latin1');
    }
    s.end();
    return { section: s.section, body, overflow: s.overflow };
  }

  test('the empty line may arrive in pieces', () => {
    assert.deepEqual(split(['A: 1\r', '\n', '\r', '\nbody\r\n', 'more']), {
      section: 'A: 1\r\n',
      body: 'body\r\nmore',
      overflow: false,
    });
  });

  test('bare LF line ends are read as CRLF', () => {
    assert.deepEqual(split(['A: 1\n\nb\n']), { section: 'A: 1\r\n', body: 'b\r\n', overflow: false });
  });

  test('a message that starts with the empty line has no header fields', () => {
    assert.deepEqual(split(['\r\nbody']), { section: '', body: 'body', overflow: false });
  });

  test('a message without an empty line is all header section', () => {
    assert.deepEqual(split(['A: 1\r\nB: 2']), { section: 'A: 1\r\nB: 2\r\n', body: '', overflow: false });
  });

  test('a header section over the limit is dropped, also when it comes in one large chunk', () => {
    const big = `X: ${'x'.repeat(2000)}\r\n\r\nbody`;
    assert.deepEqual(split([big]), { section: null, body: '', overflow: true });
    assert.deepEqual(split([...big]), { section: null, body: '', overflow: true });
  });

  test('a section exactly at the limit is kept, and a large chunk is not copied into the buffer', () => {
    const section = `X: ${'x'.repeat(95)}\r\n`;
    assert.equal(section.length, 100);
    const result = split([`${section}\r\n${'b'.repeat(5000)}`], 100);
    assert.equal(result.section, section);
    assert.equal(result.body.length, 5000);
    assert.equal(split([`X: ${'x'.repeat(96)}\r\n\r\nbody`], 100).overflow, true);
  });
});
