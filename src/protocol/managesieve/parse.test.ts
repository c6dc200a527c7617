// ManageSieve syntax pieces: tokens of a line, literal announcements, script names (RFC 5804 §1.6, §4),
// commands, and the output strings (format.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatReply, formatString, formatStatusLine } from './format.ts';
import { checkScriptName, literalAnnouncement, parseCommand, tokenizeLine, type Item } from './parse.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (value: string, literal = false): Item => ({ kind: 'string', value, literal });
const atom = (value: string): Item => ({ kind: 'atom', value });

describe('ManageSieve tokens', () => {
  it('atoms, quoted strings with \\" and \\\\, UTF-8', () => {
    assert.deepEqual(tokenizeLine('PUTSCRIPT "a \\"b\\" \\\\ 日本"', false, false), [
      atom('PUTSCRIPT'),
      str('a "b" \\ 日本'),
    ]);
    assert.deepEqual(tokenizeLine('HAVESPACE  "x"  12 ', false, false), [
      atom('HAVESPACE'),
      str('x'),
      atom('12'),
    ]);
  });

  it('refuses unterminated quotes, unknown escapes, glued tokens and stray braces', () => {
    for (const line of ['NOOP "a', 'NOOP "a\\n"', 'NOOP "a"b', 'NOOP a"b"', 'NOOP {5}x', 'NOOP \u0001'])
      assert.equal(tokenizeLine(line, false, false), null, line);
  });

  it('a line after a literal starts with SP or is empty; text before a literal ends with SP', () => {
    assert.deepEqual(tokenizeLine('', true, false), []);
    assert.deepEqual(tokenizeLine(' "b"', true, false), [str('b')]);
    assert.equal(tokenizeLine('"b"', true, false), null);
    assert.equal(tokenizeLine('PUTSCRIPT "a"', false, true), null);
    assert.deepEqual(tokenizeLine('PUTSCRIPT "a" ', false, true), [atom('PUTSCRIPT'), str('a')]);
  });

  it('literal announcements: {n+} and {n}, 32 bits at most', () => {
    assert.deepEqual(literalAnnouncement(bytes('PUTSCRIPT "a" {12+}')), {
      start: 14,
      sizeBytes: 12,
      sync: false,
    });
    assert.deepEqual(literalAnnouncement(bytes('{0}')), { start: 0, sizeBytes: 0, sync: true });
    assert.equal(literalAnnouncement(bytes('{4294967295+}')) === 'invalid', false);
    assert.equal(literalAnnouncement(bytes('{4294967296+}')), 'invalid');
    assert.equal(literalAnnouncement(bytes('{99999999999}')), 'invalid');
    for (const line of ['NOOP', '{}', '{+}', 'x}', '{1a}', '{-1}'])
      assert.equal(literalAnnouncement(bytes(line)), null, line);
  });
});

describe('ManageSieve script names (RFC 5804 §1.6)', () => {
  it('keeps UTF-8, normalizes to NFC', () => {
    assert.equal(checkScriptName('Ferien ü'), 'Ferien ü');
    assert.equal(checkScriptName('Ferien u\u0308'), 'Ferien ü');
    assert.equal(checkScriptName('日本'), '日本');
    assert.equal(checkScriptName('a'.repeat(1024)), 'a'.repeat(1024));
  });

  it('refuses empty names, controls, C1, line/paragraph separators and names over 1024 octets', () => {
    for (const name of [
      '',
      'a\u0000',
      'a\tb',
      'a\u007f',
      'a\u0085',
      'a\u2028',
      'a\u2029',
      'a'.repeat(1025),
      '日'.repeat(342),
    ])
      assert.equal(checkScriptName(name), null, JSON.stringify(name.slice(0, 10)));
  });
});

describe('ManageSieve commands', () => {
  it('parses every command', () => {
    const ok = (items: Item[]): unknown => {
      const r = parseCommand(items);
      return r.ok ? r.command : r;
    };
    assert.deepEqual(ok([atom('authenticate'), str('PLAIN'), str('AGEAYg==', true)]), {
      kind: 'authenticate',
      mechanism: 'PLAIN',
      initialResponse: 'AGEAYg==',
    });
    assert.deepEqual(ok([atom('HaveSpace'), str('a'), atom('007')]), {
      kind: 'havespace',
      name: 'a',
      sizeBytes: 7,
    });
    assert.deepEqual(ok([atom('HAVESPACE'), str('a'), atom('4294967296')]), {
      kind: 'havespace',
      name: 'a',
      sizeBytes: null,
    });
    assert.deepEqual(ok([atom('SETACTIVE'), str('')]), { kind: 'setactive', name: '' });
    assert.deepEqual(ok([atom('RENAMESCRIPT'), str('a'), str('syntax')]), {
      kind: 'renamescript',
      from: 'a',
      to: 'syntax',
    });
    assert.deepEqual(ok([atom('NOOP'), str('t')]), { kind: 'noop', tag: 't' });
  });

  it('reports unknown commands, bad arguments and bad names', () => {
    const err = (items: Item[]): unknown => {
      const r = parseCommand(items);
      return r.ok ? r.command : [r.verb, r.error];
    };
    assert.deepEqual(err([atom('FROB')]), ['FROB', 'unknown-command']);
    assert.deepEqual(err([str('NOOP')]), ['?', 'unknown-command']);
    assert.deepEqual(err([atom('LOGOUT'), str('x')]), ['LOGOUT', 'syntax']);
    assert.deepEqual(err([atom('GETSCRIPT'), atom('x')]), ['GETSCRIPT', 'syntax']);
    assert.deepEqual(err([atom('GETSCRIPT'), str('a\nb')]), ['GETSCRIPT', 'bad-name']);
    assert.deepEqual(err([atom('PUTSCRIPT'), str('a')]), ['PUTSCRIPT', 'syntax']);
    assert.deepEqual(err([atom('AUTHENTICATE'), str('PLAIN'), atom('x'), atom('y')]), [
      'AUTHENTICATE',
      'syntax',
    ]);
  });
});

describe('ManageSieve output strings', () => {
  it('quoted when plain and short, a literal otherwise', () => {
    assert.equal(formatString('Ferien ü'), '"Ferien ü"');
    assert.equal(formatString(''), '""');
    assert.equal(formatString('say "hi"'), '{8}\r\nsay "hi"');
    assert.equal(formatString('a\\b'), '{3}\r\na\\b');
    assert.equal(formatString('line 1\r\nline 2'), '{14}\r\nline 1\r\nline 2');
    assert.equal(formatString('日'.repeat(342)).slice(0, 8), '{1026}\r\n');
  });

  it('status lines: code, code argument, text', () => {
    assert.equal(formatStatusLine({ status: 'OK', code: null, text: '' }), 'OK');
    assert.equal(
      formatStatusLine({ status: 'NO', code: 'QUOTA/MAXSIZE', text: 'big' }),
      'NO (QUOTA/MAXSIZE) "big"',
    );
    assert.equal(
      formatStatusLine({ status: 'OK', code: 'TAG', codeArg: 'x', text: 'Done' }),
      'OK (TAG "x") "Done"',
    );
    assert.equal(
      new TextDecoder().decode(
        formatReply({ status: 'OK', code: null, text: 'x' }, [
          [
            { kind: 'string', value: 'a' },
            { kind: 'atom', value: 'ACTIVE' },
          ],
        ]),
      ),
      '"a" ACTIVE\r\nOK "x"\r\n',
    );
  });
});
