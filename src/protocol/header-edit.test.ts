import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyFieldEdits, fieldOf, formatField, splitFields } from './header-edit.ts';

const bytes = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const latin1 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

describe('header fields for filters', () => {
  test('split keeps each field exactly (folds, CRLF), and finds the body', () => {
    const msg = 'Subject: one\r\n two\r\nFrom: <a@example.org>\r\n\r\nbody\r\n';
    const { fields, bodyOffset } = splitFields(bytes(msg));
    assert.deepEqual(fields, ['Subject: one\r\n two\r\n', 'From: <a@example.org>\r\n']);
    assert.equal(msg.slice(bodyOffset), 'body\r\n');
  });

  test('a message that is all header, and one with no header at all', () => {
    assert.deepEqual(splitFields(bytes('X-A: 1\r\nX-B: 2')).fields, ['X-A: 1\r\n', 'X-B: 2\r\n']);
    const none = splitFields(bytes('\r\nbody'));
    assert.deepEqual(none.fields, []);
    assert.equal(none.bodyOffset, 2);
  });

  test('fieldOf: unfolded value, raw value with folds, UTF-8 decoded (日本語, jürgen)', () => {
    const f = fieldOf(latin1('Subject: 日本語の\r\n\tjürgen\r\n'));
    assert.deepEqual(f, { name: 'Subject', value: '日本語の\tjürgen', raw: ' 日本語の\r\n\tjürgen' });
    assert.equal(fieldOf('no colon here\r\n'), null);
    assert.equal(fieldOf(': empty name\r\n'), null);
    assert.equal(fieldOf('Bad Name: x\r\n'), null);
  });

  test('formatField keeps folds and turns any other CR or LF into a space (no injected fields)', () => {
    assert.equal(formatField('X-Sig', 'a;\r\n\tb=c'), 'X-Sig: a;\r\n\tb=c\r\n');
    assert.equal(formatField('X-Sig', 'a;\n\tb'), 'X-Sig: a;\r\n\tb\r\n');
    assert.equal(
      formatField('X-Evil', 'a\r\nBcc: victim@example.org'),
      'X-Evil: a Bcc: victim@example.org\r\n',
    );
    assert.equal(formatField('X-Evil', 'a\rb\nc'), 'X-Evil: a b c\r\n');
    assert.equal(formatField('Subject', '日本'), latin1('Subject: 日本\r\n'));
  });

  test('edits: insert at an index (clamped), change the nth occurrence, delete, add when missing', () => {
    const fields = ['A: 1\r\n', 'B: 1\r\n', 'A: 2\r\n'];
    assert.deepEqual(applyFieldEdits(fields, [{ op: 'insert', index: 1, name: 'C', value: 'x' }]), [
      'A: 1\r\n',
      'C: x\r\n',
      'B: 1\r\n',
      'A: 2\r\n',
    ]);
    assert.deepEqual(
      applyFieldEdits(fields, [{ op: 'insert', index: 99, name: 'C', value: 'x' }]).at(-1),
      'C: x\r\n',
    );
    assert.deepEqual(applyFieldEdits(fields, [{ op: 'change', name: 'a', occurrence: 2, value: 'two' }]), [
      'A: 1\r\n',
      'B: 1\r\n',
      'A: two\r\n',
    ]);
    assert.deepEqual(applyFieldEdits(fields, [{ op: 'change', name: 'A', occurrence: 1, value: null }]), [
      'B: 1\r\n',
      'A: 2\r\n',
    ]);
    assert.deepEqual(
      applyFieldEdits(fields, [{ op: 'change', name: 'D', occurrence: 3, value: 'new' }]).at(-1),
      'D: new\r\n',
    );
    assert.deepEqual(
      applyFieldEdits(fields, [{ op: 'change', name: 'D', occurrence: 1, value: null }]),
      fields,
    );
  });
});
