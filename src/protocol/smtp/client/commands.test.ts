// Tests of the client's command lines. Each MAIL and RCPT line written here is read back with Tern's
// own server-side parser (command.ts), so both sides agree on SIZE/BODY/SMTPUTF8/RET/ENVID/NOTIFY/ORCPT
// and on xtext (RFC 3461 §4) and utf-8-addr-xtext (RFC 6533 §3), in examples and properties.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { DsnNotify } from '../../../core/envelope.ts';
import { decodeXtext, parseCommandLine, parseMail, parseRcpt } from '../command.ts';
import {
  encodeUtf8AddrXtext,
  encodeXtext,
  formatAuthPlain,
  formatBdat,
  formatMail,
  formatOrcpt,
  formatRcpt,
  formatSaslResponse,
  hasControl,
  needsUtf8LocalPart,
  toAsciiDomain,
  wireAddress,
} from './commands.ts';

/** A command line as the server sees it: CRLF gone, verb split off. */
function asServer(line: string): { verb: string; arg: string } {
  assert.ok(line.endsWith('\r\n'));
  assert.equal(line.indexOf('\r'), line.length - 2, 'exactly one CR, at the end');
  assert.equal(line.indexOf('\n'), line.length - 1, 'exactly one LF, at the end');
  return parseCommandLine(line.slice(0, -2));
}

describe('xtext', () => {
  test('examples', () => {
    assert.equal(encodeXtext('abc'), 'abc');
    assert.equal(encodeXtext('a+b=c d'), 'a+2Bb+3Dc+20d');
    // The octets of the UTF-8 text, whatever the code point (not Latin-1 below U+0100).
    assert.equal(encodeXtext('\u00e9'), '+C3+A9');
    assert.equal(encodeXtext('\u20ac'), '+E2+82+AC');
    assert.equal(encodeXtext('\u65e5\u672c'), '+E6+97+A5+E6+9C+AC');
    assert.equal(encodeXtext('\n'), '+0A');
  });

  test('property: decodeXtext(encodeXtext(s)) === s for any text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const encoded = encodeXtext(s);
        assert.ok(/^[!-~]*$/.test(encoded));
        assert.equal(decodeXtext(encoded), s);
      }),
    );
  });

  test('utf-8-addr-xtext escapes non-ASCII and the three specials', () => {
    assert.equal(encodeUtf8AddrXtext('j\u00f6rg+x=y\\z@b'), 'j\\x{F6}rg\\x{2B}x\\x{3D}y\\x{5C}z@b');
    assert.equal(encodeUtf8AddrXtext('\u{1F600}'), '\\x{1F600}');
  });
});

describe('addresses on the wire', () => {
  test('IDN domains become A-labels without SMTPUTF8, stay as they are with it', () => {
    assert.equal(toAsciiDomain('b\u00fccher.example'), 'xn--bcher-kva.example');
    assert.equal(toAsciiDomain('[192.0.2.1]'), '[192.0.2.1]');
    assert.equal(wireAddress('a@b\u00fccher.example', false), 'a@xn--bcher-kva.example');
    assert.equal(wireAddress('a@b\u00fccher.example', true), 'a@b\u00fccher.example');
    assert.equal(wireAddress('', false), '');
    assert.equal(toAsciiDomain('b\u00fccher.example:25/x'), null);
    assert.equal(toAsciiDomain('user@b\u00fccher.example'), null);
  });

  test('a non-ASCII local part cannot go without SMTPUTF8; control characters never', () => {
    assert.equal(wireAddress('j\u00f6rg@example.org', false), null);
    assert.equal(wireAddress('j\u00f6rg@example.org', true), 'j\u00f6rg@example.org');
    assert.equal(wireAddress('a@example.org>\r\nRCPT TO:<b@evil', true), null);
    assert.equal(wireAddress('a\u0000@example.org', false), null);
    assert.ok(needsUtf8LocalPart('j\u00f6rg@example.org'));
    assert.ok(!needsUtf8LocalPart('a@b\u00fccher.example'));
    assert.ok(hasControl('x\ty'));
  });
});

describe('MAIL', () => {
  test('all parameters, read back by the server parser', () => {
    const line = formatMail({
      sender: 'a@example.org',
      sizeBytes: 1234,
      body: '8BITMIME',
      smtputf8: true,
      ret: 'HDRS',
      envid: 'QQ+1 =x',
    });
    assert.equal(
      line,
      'MAIL FROM:<a@example.org> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1+20+3Dx\r\n',
    );
    const { verb, arg } = asServer(line);
    assert.equal(verb, 'MAIL');
    const parsed = parseMail(arg, true);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.value.params, {
      sizeBytes: 1234,
      body: '8BITMIME',
      smtputf8: true,
      ret: 'HDRS',
      envid: 'QQ+1 =x',
    });
  });

  test('the null sender and no parameters', () => {
    assert.equal(
      formatMail({ sender: '', sizeBytes: null, body: null, smtputf8: false, ret: null, envid: null }),
      'MAIL FROM:<>\r\n',
    );
  });

  test('an ENVID longer than 100 xtext characters is left out rather than refused', () => {
    const line = formatMail({
      sender: '',
      sizeBytes: null,
      body: null,
      smtputf8: false,
      ret: null,
      envid: '+'.repeat(40),
    });
    assert.equal(line, 'MAIL FROM:<>\r\n');
  });
});

describe('RCPT', () => {
  test('NOTIFY and ORCPT, read back by the server parser', () => {
    const line = formatRcpt({
      recipient: 'b@example.net',
      notify: ['SUCCESS', 'DELAY'],
      orcpt: { addrType: 'rfc822', address: 'B+x@example.net' },
    });
    assert.equal(line, 'RCPT TO:<b@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;B+2Bx@example.net\r\n');
    const parsed = parseRcpt(asServer(line).arg, true, false);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.value.notify, ['SUCCESS', 'DELAY']);
    assert.deepEqual(parsed.value.orcpt, { addrType: 'rfc822', address: 'B+x@example.net' });
  });

  test('NOTIFY=NEVER for an empty list; no parameters when there are none', () => {
    assert.equal(formatRcpt({ recipient: 'b@x', notify: [], orcpt: null }), 'RCPT TO:<b@x> NOTIFY=NEVER\r\n');
    assert.equal(formatRcpt({ recipient: 'b@x', notify: null, orcpt: null }), 'RCPT TO:<b@x>\r\n');
  });

  test('a non-ASCII original recipient goes as utf-8 addr-type, ASCII-only on the wire', () => {
    const value = formatOrcpt({ addrType: 'rfc822', address: 'j\u00f6rg@b\u00fccher.example' });
    assert.equal(value, 'utf-8;j\\x{F6}rg@b\\x{FC}cher.example');
    const parsed = parseRcpt(`TO:<a@example.org> ORCPT=${value}`, true, false);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.value.orcpt, { addrType: 'utf-8', address: 'j\u00f6rg@b\u00fccher.example' });
  });

  test('an ORCPT that cannot be said is left out', () => {
    assert.equal(formatOrcpt({ addrType: 'x-odd', address: '\u00e9@x' }), null);
    assert.equal(formatOrcpt({ addrType: 'bad;type', address: 'a@x' }), null);
    assert.equal(formatOrcpt({ addrType: 'rfc822', address: `${'a'.repeat(600)}@x` }), null);
  });

  const notifyArb = fc.option(
    fc.oneof(
      fc.constant<DsnNotify[]>([]),
      fc.uniqueArray(fc.constantFrom<DsnNotify>('SUCCESS', 'FAILURE', 'DELAY'), { minLength: 1 }),
    ),
    { nil: null },
  );
  const orcptAddress = fc
    .string({
      unit: fc.oneof(
        fc.integer({ min: 33, max: 126 }).map((n) => String.fromCharCode(n)),
        fc.constantFrom('\u00e9', '\u4e2d', '\u{1F600}', '+', '=', '\\'),
      ),
      minLength: 1,
      maxLength: 30,
    })
    .filter((s) => !/[\u0000-\u0020\u007f]/.test(s));

  test('property: what formatRcpt writes, parseRcpt reads back the same', () => {
    fc.assert(
      fc.property(
        notifyArb,
        fc.option(orcptAddress, { nil: null }),
        fc.constantFrom('rfc822', 'utf-8'),
        (notify, address, addrType) => {
          const orcpt = address === null ? null : { addrType, address };
          const line = formatRcpt({ recipient: 'r@example.org', notify, orcpt });
          const parsed = parseRcpt(asServer(line).arg, true, false);
          assert.ok(parsed.ok, line);
          assert.deepEqual(parsed.value.notify, notify);
          if (orcpt === null) assert.equal(parsed.value.orcpt, null);
          else assert.equal(parsed.value.orcpt?.address, orcpt.address);
        },
      ),
    );
  });
});

test('BDAT, AUTH PLAIN and SASL response lines', () => {
  assert.equal(formatBdat(65536, false), 'BDAT 65536\r\n');
  assert.equal(formatBdat(0, true), 'BDAT 0 LAST\r\n');
  const plain = formatAuthPlain('user@example.org', 'p\u00e4ss');
  assert.equal(
    Buffer.from(plain.slice('AUTH PLAIN '.length, -2), 'base64').toString('utf8'),
    '\u0000user@example.org\u0000p\u00e4ss',
  );
  assert.equal(formatSaslResponse('user'), 'dXNlcg==\r\n');
});
