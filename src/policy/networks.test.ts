// Tests of trusted-network matching: IPv4, IPv6, IPv4-mapped IPv6 (what a dual-stack socket reports),
// CIDR edges (/0, /32, /128, host bits set, bad prefixes), and malformed addresses that must not parse.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { inNetworks, parseCidr, parseIp, type Network } from './networks.ts';

function nets(...cidrs: string[]): Network[] {
  return cidrs.map((c) => {
    const n = parseCidr(c);
    assert.ok(n !== null, `bad test CIDR ${c}`);
    return n;
  });
}

describe('parseIp', () => {
  test('IPv4 becomes IPv4-mapped IPv6, so both spellings are one address', () => {
    assert.equal(parseIp('192.0.2.1'), 0xffff_c000_0201n);
    assert.equal(parseIp('::ffff:192.0.2.1'), parseIp('192.0.2.1'));
    assert.equal(parseIp('::FFFF:c000:201'), parseIp('192.0.2.1'));
  });

  test('IPv6 forms: compressed, full, brackets, zone id, embedded IPv4', () => {
    assert.equal(parseIp('::1'), 1n);
    assert.equal(parseIp('::'), 0n);
    assert.equal(parseIp('[::1]'), 1n);
    assert.equal(parseIp('fe80::1%eth0'), (0xfe80n << 112n) | 1n);
    assert.equal(parseIp('2001:db8:0:0:0:0:0:1'), parseIp('2001:db8::1'));
    assert.equal(parseIp('2001:DB8::1'), parseIp('2001:db8::1'));
    assert.equal(parseIp('1:2:3:4:5:6:7::'), 0x0001_0002_0003_0004_0005_0006_0007_0000n);
    assert.equal(parseIp('1:2:3:4:5:6:192.0.2.1'), 0x0001_0002_0003_0004_0005_0006_c000_0201n);
    // IPv4-compatible (deprecated) is not IPv4-mapped: a different address.
    assert.equal(parseIp('::192.0.2.1'), 0xc000_0201n);
  });

  for (const bad of [
    '',
    ' 192.0.2.1',
    '192.0.2.1 ',
    '192.0.2',
    '192.0.2.1.1',
    '256.0.0.1',
    '192.0.2.-1',
    '010.0.0.1',
    '1.2.3.4/32',
    ':::',
    ':1::2',
    '1::2:',
    '1::2::3',
    '12345::1',
    'g::1',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:192.0.2.1',
    '192.0.2.1::',
    '::192.0.2',
    // "::" stands for at least one group of zeros (RFC 4291 §2.2): never with eight groups given.
    '1:2:3:4::5:6:7:8',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    'localhost',
  ]) {
    test(`refused: ${JSON.stringify(bad)}`, () => assert.equal(parseIp(bad), null));
  }
});

describe('parseCidr', () => {
  test('IPv4 prefixes live on the 128-bit scale (96 + n)', () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { base: 0xffff_0a00_0000n, prefix: 104 });
    assert.deepEqual(parseCidr('192.0.2.1'), { base: 0xffff_c000_0201n, prefix: 128 });
    assert.deepEqual(parseCidr('0.0.0.0/0'), { base: 0xffff_0000_0000n, prefix: 96 });
  });

  test('host bits are masked off', () => {
    assert.deepEqual(parseCidr('10.1.2.3/8'), parseCidr('10.0.0.0/8'));
    assert.deepEqual(parseCidr('2001:db8::1/32'), parseCidr('2001:db8::/32'));
  });

  test('IPv6 prefixes, including /0 and /128', () => {
    assert.deepEqual(parseCidr('::/0'), { base: 0n, prefix: 0 });
    assert.deepEqual(parseCidr('::1/128'), { base: 1n, prefix: 128 });
    assert.deepEqual(parseCidr('::ffff:10.0.0.0/104'), parseCidr('10.0.0.0/8'));
  });

  for (const bad of [
    '',
    '/8',
    '10.0.0.0/',
    '10.0.0.0/33',
    '10.0.0.0/-1',
    '10.0.0.0/+8',
    '10.0.0.0/8.0',
    '10.0.0.0/ 8',
    '10.0.0.0/8/9',
    '::1/129',
    '::1/1000',
    'example.test/24',
  ]) {
    test(`refused: ${JSON.stringify(bad)}`, () => assert.equal(parseCidr(bad), null));
  }
});

describe('inNetworks', () => {
  test('IPv4 addresses in and out of a /24, and the edges of the range', () => {
    const n = nets('192.0.2.0/24');
    assert.equal(inNetworks('192.0.2.0', n), true);
    assert.equal(inNetworks('192.0.2.255', n), true);
    assert.equal(inNetworks('192.0.1.255', n), false);
    assert.equal(inNetworks('192.0.3.0', n), false);
  });

  test('a client seen as IPv4-mapped IPv6 matches an IPv4 network, and the reverse', () => {
    assert.equal(inNetworks('::ffff:127.0.0.1', nets('127.0.0.0/8')), true);
    assert.equal(inNetworks('::ffff:7f00:1', nets('127.0.0.0/8')), true);
    assert.equal(inNetworks('127.0.0.1', nets('::ffff:127.0.0.0/104')), true);
    assert.equal(inNetworks('::ffff:128.0.0.1', nets('127.0.0.0/8')), false);
  });

  test('IPv6 networks', () => {
    const n = nets('2001:db8::/32', '::1/128');
    assert.equal(inNetworks('2001:db8:ffff::1', n), true);
    assert.equal(inNetworks('2001:db9::1', n), false);
    assert.equal(inNetworks('::1', n), true);
    assert.equal(inNetworks('::2', n), false);
    assert.equal(inNetworks('fe80::1%eth0', nets('fe80::/10')), true);
  });

  test('0.0.0.0/0 is every IPv4 client and no IPv6 one; ::/0 is everyone', () => {
    assert.equal(inNetworks('203.0.113.9', nets('0.0.0.0/0')), true);
    assert.equal(inNetworks('2001:db8::1', nets('0.0.0.0/0')), false);
    assert.equal(inNetworks('2001:db8::1', nets('::/0')), true);
    assert.equal(inNetworks('203.0.113.9', nets('::/0')), true);
  });

  test('/32 and /128 match one address; /31 two', () => {
    assert.equal(inNetworks('192.0.2.7', nets('192.0.2.7/32')), true);
    assert.equal(inNetworks('192.0.2.6', nets('192.0.2.7/32')), false);
    assert.equal(inNetworks('192.0.2.6', nets('192.0.2.7/31')), true);
    assert.equal(inNetworks('192.0.2.8', nets('192.0.2.7/31')), false);
  });

  test('no networks, or an unparsable client address: not trusted', () => {
    assert.equal(inNetworks('127.0.0.1', []), false);
    assert.equal(inNetworks('not an ip', nets('::/0')), false);
    assert.equal(inNetworks('', nets('::/0')), false);
  });
});

// --- properties -------------------------------------------------------------------------------------

test('property: parseIp and parseCidr never throw', () => {
  const ipish = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 50 }),
    fc.string({
      unit: fc.constantFrom(':', '::', '.', '/', '%', '[', ']', '0', '1', 'f', 'ffff', '255', '1.2.3.4'),
      maxLength: 16,
    }),
  );
  fc.assert(
    fc.property(ipish, (s) => {
      parseIp(s);
      parseCidr(s);
      inNetworks(s, nets('::/0'));
    }),
    { numRuns: 5000 },
  );
});

test('property: an IPv4 address is in a.b.c.d/n exactly when its first n bits agree', () => {
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
  const toText = (t: readonly number[]): string => t.join('.');
  const toInt = (t: readonly number[]): number => t.reduce((acc, x) => acc * 256 + x, 0);
  fc.assert(
    fc.property(v4, v4, fc.integer({ min: 0, max: 32 }), (ip, base, len) => {
      const shift = 2 ** (32 - len);
      const same = Math.floor(toInt(ip) / shift) === Math.floor(toInt(base) / shift);
      assert.equal(inNetworks(toText(ip), nets(`${toText(base)}/${len}`)), same);
      // The IPv4-mapped spelling of the client gives the same answer.
      assert.equal(inNetworks(`::ffff:${toText(ip)}`, nets(`${toText(base)}/${len}`)), same);
    }),
    { numRuns: 3000 },
  );
});

test('property: IPv6 text written out in full and compressed parses to the same value', () => {
  fc.assert(
    fc.property(fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }), (groups) => {
      const full = groups.map((g) => g.toString(16)).join(':');
      const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
      assert.equal(parseIp(full), value);
      // Compress the longest run of zero groups (if any run of 1+ exists) the way RFC 5952 does.
      const text = full.replace(/(^|:)0(:0)*(:|$)/, '::');
      if (text !== full) assert.equal(parseIp(text), value, text);
    }),
    { numRuns: 2000 },
  );
});
