import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { filterHeaderFields, parseSectionSpec, resolveSection } from './section.ts';
import { scanMessage } from './structure.ts';

const M = Buffer.from(
  `From: a@example.org
Subject: outer
Content-Type: multipart/mixed; boundary="out"

preamble
--out
Content-Type: text/plain

one
--out
Content-Type: message/rfc822

From: 日本@example.jp
Subject: inner
Content-Type: multipart/alternative; boundary=in

--in
Content-Type: text/plain

inner plain
--in
Content-Type: text/html

<p>inner</p>
--in--
--out--
`.replace(/\n/g, '\r\n'),
  'utf8',
);
const S = scanMessage(M);

function read(spec: string): string | null {
  const parsed = parseSectionSpec(spec);
  assert.ok(parsed, spec);
  const r = resolveSection(S, parsed);
  if (!r) return null;
  const bytes = M.subarray(r.start, r.end);
  return (r.fields ? Buffer.from(filterHeaderFields(bytes, r.fields.names, r.fields.not)) : bytes).toString(
    'utf8',
  );
}

describe('section lookup (RFC 9051 §6.4.5)', () => {
  test('the whole message, HEADER, TEXT', () => {
    assert.equal(read(''), M.toString('utf8'));
    assert.equal(
      read('HEADER'),
      'From: a@example.org\r\nSubject: outer\r\nContent-Type: multipart/mixed; boundary="out"\r\n\r\n',
    );
    assert.ok(read('TEXT')!.startsWith('preamble\r\n--out'));
  });

  test('numbered parts, MIME, and numbers into a message/rfc822', () => {
    assert.equal(read('1'), 'one');
    assert.equal(read('1.MIME'), 'Content-Type: text/plain\r\n\r\n');
    assert.ok(read('2')!.startsWith('From: 日本@example.jp\r\n'));
    assert.ok(read('2')!.endsWith('<p>inner</p>\r\n--in--'));
    assert.equal(read('2.HEADER.FIELDS (SUBJECT from)'), 'From: 日本@example.jp\r\nSubject: inner\r\n\r\n');
    assert.equal(read('2.HEADER.FIELDS.NOT (From Content-Type)'), 'Subject: inner\r\n\r\n');
    assert.equal(read('2.1'), 'inner plain');
    assert.equal(read('2.2'), '<p>inner</p>');
    assert.equal(read('2.2.MIME'), 'Content-Type: text/html\r\n\r\n');
    assert.ok(read('2.TEXT')!.startsWith('--in\r\n'));
  });

  test('sections that do not exist resolve to null', () => {
    assert.equal(read('3'), null);
    assert.equal(read('1.1'), null);
    assert.equal(read('1.HEADER'), null);
    assert.equal(read('2.3'), null);
  });

  test('a non-multipart message has part 1, its body', () => {
    const m = Buffer.from('Subject: x\r\n\r\nbody\r\n');
    const r = resolveSection(scanMessage(m), parseSectionSpec('1')!)!;
    assert.equal(m.subarray(r.start, r.end).toString(), 'body\r\n');
  });

  test('malformed specs are refused', () => {
    for (const bad of ['0', '1.', '.1', 'HEADER.FIELDS ()', 'FOO', '1.2.', 'MIME'])
      assert.equal(parseSectionSpec(bad), null, bad);
  });
});
