// Tests of the RFC 5321 §4.1.2 path and mailbox grammar (with RFC 6531 UTF-8): null path, source
// routes, quoted local parts, address literals, length limits, and properties: the parsers are total and
// formatMailbox/parseMailbox round-trip. Relay questions (percent hack, bang paths) are policy's tests.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  addressKey,
  formatMailbox,
  isValidAddressLiteral,
  isValidDomain,
  normalizeDomain,
  parseMailbox,
  parsePath,
  type AddressResult,
} from './address.ts';

const ascii = { allowNull: false, utf8: false } as const;
const utf8 = { allowNull: false, utf8: true } as const;

function mailboxOf(r: AddressResult): { local: string; domain: string; quoted: boolean; utf8: boolean } {
  assert.ok(r.ok, `expected a parsed path, got ${JSON.stringify(r)}`);
  assert.ok(r.mailbox !== null, 'expected a mailbox, got the null path');
  return { ...r.mailbox };
}

describe('parsePath: brackets, null path, parameters', () => {
  test('a plain path', () => {
    assert.deepEqual(parsePath('<user@example.org>', ascii), {
      ok: true,
      mailbox: { local: 'user', quoted: false, domain: 'example.org', utf8: false },
      hadSourceRoute: false,
      rest: '',
    });
  });

  test('the null path only where allowed', () => {
    assert.deepEqual(parsePath('<>', { allowNull: true, utf8: false }), {
      ok: true,
      mailbox: null,
      hadSourceRoute: false,
      rest: '',
    });
    assert.deepEqual(parsePath('<> SIZE=10', { allowNull: true, utf8: false }), {
      ok: true,
      mailbox: null,
      hadSourceRoute: false,
      rest: 'SIZE=10',
    });
    assert.deepEqual(parsePath('<>', ascii), { ok: false, error: 'syntax' });
  });

  test('parameters after one or more spaces are returned as rest; glued text is an error', () => {
    const r = parsePath('<a@example.org>   SIZE=100 BODY=8BITMIME', ascii);
    assert.ok(r.ok);
    assert.equal(r.rest, 'SIZE=100 BODY=8BITMIME');
    assert.deepEqual(parsePath('<a@example.org>SIZE=100', ascii), { ok: false, error: 'syntax' });
  });

  for (const bad of [
    '',
    'a@example.org',
    '<a@example.org',
    'a@example.org>',
    ' <a@example.org>',
    '<<a@example.org>>',
    '<a@example.org><b@example.org>',
    '<a>',
    '<@>',
    '<a@>',
    '<@example.org>',
    '<a b@example.org>',
    '<a@exa mple.org>',
    '<a@@example.org>',
    '<a@example.org@example.net>',
  ]) {
    test(`syntax error: ${JSON.stringify(bad)}`, () => {
      assert.deepEqual(parsePath(bad, { allowNull: true, utf8: true }), { ok: false, error: 'syntax' });
    });
  }
});

describe('parsePath: source routes (RFC 5321 §4.1.1.3, Appendix C) are accepted and dropped', () => {
  test('one hop and several hops', () => {
    const one = parsePath('<@relay.example:user@example.org>', ascii);
    assert.ok(one.ok);
    assert.equal(one.hadSourceRoute, true);
    assert.deepEqual(mailboxOf(one), { local: 'user', quoted: false, domain: 'example.org', utf8: false });
    const many = parsePath('<@a.example,@b.example,@c.example:user@example.org> NOTIFY=NEVER', ascii);
    assert.ok(many.ok);
    assert.equal(many.hadSourceRoute, true);
    assert.equal(many.rest, 'NOTIFY=NEVER');
    assert.equal(mailboxOf(many).domain, 'example.org');
  });

  for (const bad of [
    '<@relay.example user@example.org>',
    '<@relay.example,user@example.org>',
    '<@:user@example.org>',
    '<@bad_hop.example:user@example.org>',
    '<@a.example,b.example:user@example.org>',
    '<@a.example,:user@example.org>',
    '<@a.example:>',
    '<@a.example:@b.example:u@example.org>',
  ]) {
    test(`bad source route ${bad}`, () => {
      assert.deepEqual(parsePath(bad, ascii), { ok: false, error: 'syntax' });
    });
  }
});

describe('parsePath: local parts', () => {
  test('dot-strings with every atext special', () => {
    const local = "a!#$%&'*+-/=?^_`{|}~.b";
    assert.equal(mailboxOf(parsePath(`<${local}@example.org>`, ascii)).local, local);
  });

  for (const bad of ['<.a@example.org>', '<a.@example.org>', '<a..b@example.org>', '<a(b)@example.org>']) {
    test(`bad dot-string ${bad}`, () => {
      assert.deepEqual(parsePath(bad, ascii), { ok: false, error: 'syntax' });
    });
  }

  test('quoted local parts: quotes removed, quoted-pairs unescaped, marked quoted', () => {
    assert.deepEqual(mailboxOf(parsePath('<"john doe"@example.org>', ascii)), {
      local: 'john doe',
      quoted: true,
      domain: 'example.org',
      utf8: false,
    });
    assert.equal(mailboxOf(parsePath('<"a\\"b\\\\c"@example.org>', ascii)).local, 'a"b\\c');
    // Specials inside quotes do not end the path or split the address.
    assert.equal(mailboxOf(parsePath('<"a>b"@example.org>', ascii)).local, 'a>b');
    assert.equal(mailboxOf(parsePath('<"a@b"@example.org>', ascii)).local, 'a@b');
    assert.equal(mailboxOf(parsePath('<"a<b"@example.org>', ascii)).local, 'a<b');
    // A needlessly quoted plain local part is the same local part.
    assert.deepEqual(mailboxOf(parsePath('<"user"@example.org>', ascii)), {
      local: 'user',
      quoted: true,
      domain: 'example.org',
      utf8: false,
    });
  });

  for (const bad of [
    '<"unterminated@example.org>',
    '<"a"b@example.org>',
    '<"a\tb"@example.org>',
    '<"a\rb"@example.org>',
    '<"a\x7fb"@example.org>',
    '<"a\\\x01"@example.org>',
    '<"a\\',
    '<"a"@>',
  ]) {
    test(`bad quoted local part ${JSON.stringify(bad)}`, () => {
      assert.deepEqual(parsePath(bad, ascii), { ok: false, error: 'syntax' });
    });
  }
});

describe('parsePath: domains and address literals (RFC 5321 §4.1.3)', () => {
  for (const good of [
    'u@[192.0.2.1]',
    'u@[0.0.0.0]',
    'u@[255.255.255.255]',
    'u@[IPv6:2001:db8::1]',
    'u@[IPv6:::1]',
    'u@[IPv6:::]',
    'u@[IPv6:1:2:3:4:5:6:7:8]',
    'u@[IPv6:1:2:3:4:5:6::8]',
    'u@[IPv6:::ffff:192.0.2.1]',
    'u@[IPv6:1:2:3:4:5:6:192.0.2.1]',
    'u@[ipv6:2001:DB8::1]',
  ]) {
    test(`address literal accepted: ${good}`, () => {
      const m = mailboxOf(parsePath(`<${good}>`, ascii));
      assert.equal(m.domain, good.slice(2));
    });
  }

  for (const bad of [
    'u@[256.0.0.1]',
    'u@[192.0.2]',
    'u@[192.0.2.1.5]',
    'u@[01.2.3.4]',
    'u@[192.0.2.1',
    'u@192.0.2.1]',
    'u@[]',
    'u@[IPv6:]',
    'u@[IPv6:1:2:3:4:5:6:7]',
    'u@[IPv6:1:2:3:4:5:6:7:8:9]',
    'u@[IPv6:1:2:3:4:5:6:7::8]',
    'u@[IPv6:1::2::3]',
    'u@[IPv6:12345::1]',
    'u@[IPv6:g::1]',
    'u@[IPv6:192.0.2.1::]',
    'u@[IPv6:1:2:3:4:5:6:7:192.0.2.1]',
    'u@[2001:db8::1]',
    'u@[x-tag:general literal]',
    'u@[IPv4:192.0.2.1]',
  ]) {
    test(`address literal refused: ${bad}`, () => {
      assert.deepEqual(parsePath(`<${bad}>`, ascii), { ok: false, error: 'syntax' });
    });
  }

  test('isValidAddressLiteral directly', () => {
    assert.equal(isValidAddressLiteral('[192.0.2.1]'), true);
    assert.equal(isValidAddressLiteral('192.0.2.1'), false);
    assert.equal(isValidAddressLiteral('[IPv6:fe80::1]'), true);
    assert.equal(isValidAddressLiteral('[IPv6:fe80::1%eth0]'), false);
  });

  for (const bad of [
    'u@example.org.',
    'u@.example.org',
    'u@example..org',
    'u@-example.org',
    'u@example-.org',
    'u@exa_mple.org',
    'u@exam!ple.org',
  ]) {
    test(`bad domain ${bad}`, () => {
      assert.deepEqual(parsePath(`<${bad}>`, utf8), { ok: false, error: 'syntax' });
    });
  }
});

describe('isValidDomain', () => {
  test('LDH labels, single labels, digits', () => {
    assert.equal(isValidDomain('example.org', false), true);
    assert.equal(isValidDomain('localhost', false), true);
    assert.equal(isValidDomain('a-b.c0.1', false), true);
    assert.equal(isValidDomain('xn--bcher-kva.example', false), true);
    assert.equal(isValidDomain('', false), false);
    assert.equal(isValidDomain('.', false), false);
  });

  test('label length 63 is the limit, total 255', () => {
    assert.equal(isValidDomain(`${'a'.repeat(63)}.org`, false), true);
    assert.equal(isValidDomain(`${'a'.repeat(64)}.org`, false), false);
    const label = 'a'.repeat(63);
    const d255 = [label, label, label, 'a'.repeat(63)].join('.'); // 63*4 + 3 = 255
    assert.equal(d255.length, 255);
    assert.equal(isValidDomain(d255, false), true);
    assert.equal(isValidDomain(`${d255}.a`, false), false); // every label fine, 257 in all
  });

  test('U-labels only with SMTPUTF8; no controls, specials or edge hyphens', () => {
    assert.equal(isValidDomain('bücher.example', false), false);
    assert.equal(isValidDomain('bücher.example', true), true);
    assert.equal(isValidDomain('例え.テスト', true), true);
    assert.equal(isValidDomain('bü_cher.example', true), false);
    assert.equal(isValidDomain('bü cher.example', true), false);
    assert.equal(isValidDomain('bü\u0085cher.example', true), false); // C1 control
    assert.equal(isValidDomain('-bücher.example', true), false);
    assert.equal(isValidDomain('bücher-.example', true), false);
    assert.equal(isValidDomain('bücher..example', true), false);
    assert.equal(isValidDomain(`${'ü'.repeat(64)}.example`, true), false);
  });
});

describe('parsePath: UTF-8 addresses (RFC 6531 §3.3)', () => {
  test('non-ASCII needs SMTPUTF8: error "utf8" without it', () => {
    for (const p of ['<jöran@example.org>', '<u@bücher.example>', '<"jö ran"@example.org>']) {
      assert.deepEqual(parsePath(p, ascii), { ok: false, error: 'utf8' }, p);
    }
  });

  test('with SMTPUTF8: local part, domain and quoted local part', () => {
    assert.deepEqual(mailboxOf(parsePath('<jöran@bücher.example>', utf8)), {
      local: 'jöran',
      quoted: false,
      domain: 'bücher.example',
      utf8: true,
    });
    assert.deepEqual(mailboxOf(parsePath('<"jö ran"@example.org>', utf8)), {
      local: 'jö ran',
      quoted: true,
      domain: 'example.org',
      utf8: true,
    });
    assert.equal(mailboxOf(parsePath('<用户@例子.广告>', utf8)).local, '用户');
    assert.equal(mailboxOf(parsePath('<😀@example.org>', utf8)).local, '😀');
  });

  test('a quoted-pair cannot bring non-ASCII in without SMTPUTF8 (parseMailbox used directly)', () => {
    assert.equal(parseMailbox('"\\é"@example.org', false), null);
    assert.equal(parseMailbox('"\\é"@example.org', true)?.local, 'é');
  });

  test('utf8 flag is false for an ASCII address even when SMTPUTF8 is on', () => {
    assert.equal(mailboxOf(parsePath('<user@example.org>', utf8)).utf8, false);
  });
});

describe('parsePath: length limits (RFC 5321 §4.5.3.1)', () => {
  const d189 = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(61)].join('.');

  test('local part: 64 octets accepted, 65 refused', () => {
    assert.equal(mailboxOf(parsePath(`<${'a'.repeat(64)}@example.org>`, ascii)).local.length, 64);
    assert.deepEqual(parsePath(`<${'a'.repeat(65)}@example.org>`, ascii), { ok: false, error: 'syntax' });
  });

  test('a quoted local part counts with its quotes (the limit is on the local-part as sent)', () => {
    assert.ok(parsePath(`<"${'a'.repeat(61)} "@example.org>`, ascii).ok);
    assert.deepEqual(parsePath(`<"${'a'.repeat(63)} "@example.org>`, ascii), { ok: false, error: 'syntax' });
  });

  test('UTF-8 limits are in octets, not characters', () => {
    // 32 × "é" is 64 octets; 33 is 66.
    assert.ok(parsePath(`<${'é'.repeat(32)}@example.org>`, utf8).ok);
    assert.deepEqual(parsePath(`<${'é'.repeat(33)}@example.org>`, utf8), { ok: false, error: 'syntax' });
  });

  test('the mailbox inside the path: 254 octets accepted, 255 refused', () => {
    const m254 = `${'x'.repeat(64)}@${d189}`;
    assert.equal(m254.length, 254);
    assert.ok(parsePath(`<${m254}>`, ascii).ok);
    const m255 = `${'x'.repeat(64)}@${d189}a`;
    assert.deepEqual(parsePath(`<${m255}>`, ascii), { ok: false, error: 'syntax' });
  });

  test('the mailbox limit counts octets of UTF-8 too', () => {
    // 40 × "é" in the domain is 80 octets but 40 characters.
    const domain = `${'é'.repeat(40)}.${'b'.repeat(63)}.${'c'.repeat(63)}`;
    const m = `${'x'.repeat(60)}@${domain}`;
    assert.ok(m.length <= 254);
    assert.ok(new TextEncoder().encode(m).length > 254);
    assert.deepEqual(parsePath(`<${m}>`, utf8), { ok: false, error: 'syntax' });
  });
});

describe('formatMailbox', () => {
  test('dot-atoms stay as they are, everything else is quoted with quoted-pairs', () => {
    assert.equal(
      formatMailbox({ local: 'user.name+tag', domain: 'example.org' }),
      'user.name+tag@example.org',
    );
    assert.equal(formatMailbox({ local: 'john doe', domain: 'example.org' }), '"john doe"@example.org');
    assert.equal(formatMailbox({ local: 'a"b\\c', domain: 'example.org' }), '"a\\"b\\\\c"@example.org');
    assert.equal(formatMailbox({ local: 'a..b', domain: 'example.org' }), '"a..b"@example.org');
    assert.equal(formatMailbox({ local: '.a', domain: 'example.org' }), '".a"@example.org');
    assert.equal(formatMailbox({ local: 'a@b', domain: 'example.org' }), '"a@b"@example.org');
    assert.equal(formatMailbox({ local: 'jöran', domain: 'bücher.example' }), 'jöran@bücher.example');
    assert.equal(formatMailbox({ local: 'u', domain: '[192.0.2.1]' }), 'u@[192.0.2.1]');
  });

  test('addressKey and normalizeDomain fold case of the domain and of ASCII in the local part', () => {
    assert.equal(normalizeDomain('Example.ORG.'), 'example.org');
    assert.equal(addressKey({ local: 'John.Doe', domain: 'Example.ORG' }), 'john.doe@example.org');
  });
});

// --- properties -------------------------------------------------------------------------------------

/** Strings built from the characters that matter to the grammar, plus arbitrary ones. */
const smtpish = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({
    unit: fc.constantFrom(
      ...'<>"\\@:,.[] ()a1-_éü\r\n\t\x00\x7f'.split(''),
      'IPv6:',
      '::',
      '192.0.2.1',
      'example.org',
      '\u{1F600}',
      '\uD800',
    ),
    maxLength: 40,
  }),
);

test('property: parsePath, parseMailbox, isValidDomain, isValidAddressLiteral never throw', () => {
  fc.assert(
    fc.property(smtpish, fc.boolean(), fc.boolean(), (s, allowNull, u) => {
      const r = parsePath(s, { allowNull, utf8: u });
      if (r.ok && r.mailbox !== null) {
        // Whatever was accepted names an address that itself parses.
        assert.ok(parseMailbox(formatMailbox(r.mailbox), u) !== null, formatMailbox(r.mailbox));
      }
      parseMailbox(s, u);
      isValidDomain(s, u);
      isValidAddressLiteral(s);
    }),
    { numRuns: 5000 },
  );
});

test('property: without SMTPUTF8 nothing non-ASCII is ever accepted', () => {
  fc.assert(
    fc.property(smtpish, (s) => {
      const r = parsePath(s, { allowNull: true, utf8: false });
      if (r.ok && r.mailbox !== null) {
        assert.doesNotMatch(r.mailbox.local + r.mailbox.domain, /[^\x00-\x7f]/);
      }
    }),
    { numRuns: 3000 },
  );
});

const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/);
const domainArb = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
const printable = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 25,
});

test('property: parseMailbox(formatMailbox(m)) gives back local part and domain (ASCII)', () => {
  fc.assert(
    fc.property(printable, domainArb, (local, domain) => {
      const text = formatMailbox({ local, domain });
      const back = parseMailbox(text, false);
      assert.ok(back !== null, text);
      assert.equal(back.local, local);
      assert.equal(back.domain, domain);
    }),
    { numRuns: 3000 },
  );
});

test('property: parseMailbox(formatMailbox(m)) gives back local part and domain (UTF-8)', () => {
  const utf8Local = fc.string({
    unit: fc.oneof(
      fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      fc.constantFrom('é', 'ß', '用', '😀', '\u00a0', '\u2028'),
    ),
    minLength: 1,
    maxLength: 12,
  });
  fc.assert(
    fc.property(utf8Local, domainArb, (local, domain) => {
      const text = formatMailbox({ local, domain });
      const back = parseMailbox(text, true);
      assert.ok(back !== null, text);
      assert.equal(back.local, local);
      assert.equal(back.domain, domain);
    }),
    { numRuns: 3000 },
  );
});

test('property: formatMailbox ∘ parseMailbox is stable on every accepted string', () => {
  fc.assert(
    fc.property(smtpish, fc.boolean(), (s, u) => {
      const m = parseMailbox(s, u);
      if (m === null) return;
      const again = parseMailbox(formatMailbox(m), u);
      assert.ok(again !== null);
      assert.equal(again.local, m.local);
      assert.equal(again.domain, m.domain);
      assert.equal(formatMailbox(again), formatMailbox(m));
    }),
    { numRuns: 3000 },
  );
});
