// Addresses as record data: strict IPv4, RFC 4291 IPv6 parsing, RFC 5952 output, reverse names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6, reverseName } from './address.ts';

describe('IPv4', () => {
  it('parses dotted quads only', () => {
    assert.deepEqual(parseIPv4('192.0.2.1'), Uint8Array.of(192, 0, 2, 1));
    assert.deepEqual(parseIPv4('0.0.0.0'), Uint8Array.of(0, 0, 0, 0));
    for (const bad of [
      '127.1',
      '1.2.3.4.5',
      '01.2.3.4',
      '256.0.0.1',
      '1.2.3.',
      ' 1.2.3.4',
      '0x7f.0.0.1',
      '',
    ]) {
      assert.equal(parseIPv4(bad), null, bad);
    }
    assert.equal(formatIPv4(Uint8Array.of(10, 0, 0, 255)), '10.0.0.255');
  });
});

describe('IPv6', () => {
  it('formats per RFC 5952 (§4.2.1–4.2.3, §4.3, §5)', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single 0 group is not shortened
      ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'], // the longest run wins
      ['2001:DB8::ABCD', '2001:db8::abcd'],
      ['::', '::'],
      ['::1', '::1'],
      ['1::', '1::'],
      ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
      ['::ffff:c000:0201', '::ffff:192.0.2.1'],
      ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ];
    for (const [input, expected] of cases) {
      const bytes = parseIPv6(input);
      assert.ok(bytes, input);
      assert.equal(formatIPv6(bytes), expected, input);
    }
  });

  it('refuses malformed text', () => {
    for (const bad of [
      '',
      ':',
      ':::',
      '1::2::3',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7:8::',
      '12345::',
      'g::1',
      ':1::',
      '1.2.3.4::',
      '::1.2.3',
      '::1.2.3.4:5',
      'fe80::1%eth0',
    ]) {
      assert.equal(parseIPv6(bad), null, bad);
    }
  });

  it('round-trips any 16 octets and agrees with the WHATWG URL serializer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const text = formatIPv6(bytes);
        assert.deepEqual(parseIPv6(text), bytes);
        const mapped =
          bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
        if (!mapped) assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname);
      }),
    );
    // Runs of zeros are what make the shortening rules interesting: generate many of them.
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
        const bytes = new Uint8Array(groups.flatMap((g) => [g >> 8, g & 0xff]));
        const text = formatIPv6(bytes);
        assert.deepEqual(parseIPv6(text), bytes);
        const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
        if (!mapped) assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname);
      }),
    );
  });
});

describe('reverseName', () => {
  it('builds in-addr.arpa and ip6.arpa names (RFC 1035 §3.5, RFC 3596 §2.5)', () => {
    assert.equal(reverseName('192.0.2.1'), '1.2.0.192.in-addr.arpa');
    assert.equal(
      reverseName('4321:0:1:2:3:4:567:89ab'),
      'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa',
    );
    assert.equal(reverseName('mail.example.com'), null);
    assert.equal(reverseName('127.1'), null);
  });
});
