// The PROXY protocol codec: v1 and v2 as HAProxy sends them, LOCAL/UNKNOWN, the bytes after the header
// left alone, and hostile input: garbage, every truncation, wrong signatures, overlong lines, bad
// addresses and ports, oversized v2 blocks, broken TLVs; any fragmentation decides the same way.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseProxyHeader, PROXY_V1_MAX_BYTES, type ProxyHeader } from './proxy.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A v2 header: signature, ver/cmd, fam/transport, big-endian length, then `body`. */
function v2(verCmd: number, famTransport: number, body: readonly number[], length = body.length): Uint8Array {
  return Uint8Array.from([...SIG, verCmd, famTransport, length >> 8, length & 0xff, ...body]);
}
const be16 = (n: number): number[] => [n >> 8, n & 0xff];
const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
const invalid = (r: ProxyHeader): boolean => r.kind === 'invalid';

describe('PROXY v1', () => {
  it('TCP4: addresses, ports and the header length; what follows is not consumed', () => {
    const header = 'PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n';
    const r = parseProxyHeader(enc(`${header}EHLO x\r\n`));
    assert.deepEqual(r, {
      kind: 'proxied',
      version: 1,
      source: { ip: '203.0.113.7', port: 40000 },
      destination: { ip: '127.0.0.1', port: 25 },
      consumed: header.length,
    });
  });

  it('TCP6: written back in RFC 5952 form; an IPv4-mapped source is given as IPv4', () => {
    const r = parseProxyHeader(enc('PROXY TCP6 2001:DB8:0:0:0:0:0:7 ::1 65535 0\r\n'));
    assert.equal(r.kind, 'proxied');
    if (r.kind !== 'proxied') return;
    assert.deepEqual(r.source, { ip: '2001:db8::7', port: 65535 });
    assert.deepEqual(r.destination, { ip: '::1', port: 0 });
    const mapped = parseProxyHeader(enc('PROXY TCP6 ::ffff:198.51.100.9 2001:db8::1 1 2\r\n'));
    assert.equal(mapped.kind === 'proxied' && mapped.source.ip, '198.51.100.9');
  });

  it('UNKNOWN (with or without addresses) keeps the socket addresses', () => {
    assert.deepEqual(parseProxyHeader(enc('PROXY UNKNOWN\r\n')), { kind: 'local', version: 1, consumed: 15 });
    const long = 'PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n';
    assert.deepEqual(parseProxyHeader(enc(long)), { kind: 'local', version: 1, consumed: long.length });
  });

  it('the longest legal line (107 bytes) is accepted; one byte more is refused', () => {
    const f8 = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const max = `PROXY UNKNOWN ${f8} ${f8} 65535 65535\r\n`;
    assert.equal(max.length, PROXY_V1_MAX_BYTES);
    assert.equal(parseProxyHeader(enc(max)).kind, 'local');
    assert.equal(parseProxyHeader(enc(`PROXY TCP6 ${f8} ${f8} 65535 65535\r\n`)).kind, 'proxied');
    const over = `PROXY UNKNOWN ${'x'.repeat(PROXY_V1_MAX_BYTES - 15)}\r\n`;
    assert.equal(over.length, PROXY_V1_MAX_BYTES + 1);
    assert.ok(invalid(parseProxyHeader(enc(over))));
    // Without a CRLF, 107 bytes are enough to give up: nothing is buffered beyond the limit.
    assert.ok(invalid(parseProxyHeader(enc(`PROXY ${'A'.repeat(200)}`))));
    assert.equal(parseProxyHeader(enc(`PROXY ${'A'.repeat(PROXY_V1_MAX_BYTES - 7)}`)).kind, 'need-more');
  });

  const bad: readonly [string, string][] = [
    ['an octet over 255', 'PROXY TCP4 999.1.1.1 127.0.0.1 1 25\r\n'],
    ['a leading zero', 'PROXY TCP4 10.0.0.01 127.0.0.1 1 25\r\n'],
    ['three octets', 'PROXY TCP4 10.0.0 127.0.0.1 1 25\r\n'],
    ['IPv6 under TCP4', 'PROXY TCP4 2001:db8::1 127.0.0.1 1 25\r\n'],
    ['IPv4 under TCP6', 'PROXY TCP6 10.0.0.1 ::1 1 25\r\n'],
    ['two "::"', 'PROXY TCP6 2001::db8::1 ::1 1 25\r\n'],
    ['a zone', 'PROXY TCP6 fe80::1%eth0 ::1 1 25\r\n'],
    ['brackets', 'PROXY TCP6 [2001:db8::1] ::1 1 25\r\n'],
    ['a port over 65535', 'PROXY TCP4 10.0.0.1 127.0.0.1 65536 25\r\n'],
    ['a negative port', 'PROXY TCP4 10.0.0.1 127.0.0.1 -1 25\r\n'],
    ['a port with a leading zero', 'PROXY TCP4 10.0.0.1 127.0.0.1 040000 25\r\n'],
    ['a missing port', 'PROXY TCP4 10.0.0.1 127.0.0.1 40000\r\n'],
    ['an extra field', 'PROXY TCP4 10.0.0.1 127.0.0.1 40000 25 x\r\n'],
    ['double spaces', 'PROXY TCP4  10.0.0.1 127.0.0.1 40000 25\r\n'],
    ['an unknown protocol', 'PROXY UDP4 10.0.0.1 127.0.0.1 40000 25\r\n'],
    ['lower case', 'PROXY tcp4 10.0.0.1 127.0.0.1 40000 25\r\n'],
    ['a bare LF', 'PROXY TCP4 10.0.0.1 127.0.0.1 40000 25\n'],
    ['CR without LF', 'PROXY TCP4 10.0.0.1 127.0.0.1 40000 25\rX'],
    ['a NUL', 'PROXY TCP4 10.0.0.1\0 127.0.0.1 40000 25\r\n'],
    ['UTF-8', 'PROXY TCP4 1０.0.0.1 127.0.0.1 40000 25\r\n'],
    ['nothing after PROXY', 'PROXY \r\n'],
  ];
  for (const [what, line] of bad) {
    it(`refused: ${what}`, () => {
      const r = parseProxyHeader(enc(line));
      assert.equal(r.kind, 'invalid', JSON.stringify(r));
    });
  }
});

describe('PROXY v2', () => {
  // HAProxy's send-proxy-v2 bytes for 192.0.2.10:56324 → 198.51.100.1:587, then PP2_TYPE_ALPN ("h2"),
  // PP2_TYPE_SSL with a PP2_SUBTYPE_SSL_VERSION ("TLSv1.3") and PP2_TYPE_NOOP padding.
  const ssl = [0x01, ...[0, 0, 0, 0], 0x21, ...be16(7), ...enc('TLSv1.3')];
  const haproxyTcp4 = v2(0x21, 0x11, [
    192, 0, 2, 10, 198, 51, 100, 1, ...be16(56324), ...be16(587),
    0x01, ...be16(2), ...enc('h2'),
    0x20, ...be16(ssl.length), ...ssl,
    0x04, ...be16(3), 0, 0, 0,
  ]); // prettier-ignore

  it('TCP over IPv4, TLVs skipped', () => {
    assert.deepEqual(parseProxyHeader(concat(haproxyTcp4, enc('\x16\x03\x01'))), {
      kind: 'proxied',
      version: 2,
      source: { ip: '192.0.2.10', port: 56324 },
      destination: { ip: '198.51.100.1', port: 587 },
      consumed: haproxyTcp4.length,
    });
  });

  it('TCP over IPv6, and IPv4-mapped IPv6 given as IPv4', () => {
    const src = [0x20, 0x01, 0x0d, 0xb8, ...Array<number>(11).fill(0), 7];
    const dst = [...Array<number>(15).fill(0), 1];
    const r = parseProxyHeader(v2(0x21, 0x21, [...src, ...dst, ...be16(40000), ...be16(25)]));
    assert.equal(r.kind, 'proxied');
    if (r.kind !== 'proxied') return;
    assert.deepEqual(r.source, { ip: '2001:db8::7', port: 40000 });
    assert.deepEqual(r.destination, { ip: '::1', port: 25 });
    const mapped = [...Array<number>(10).fill(0), 0xff, 0xff, 203, 0, 113, 7];
    const m = parseProxyHeader(v2(0x21, 0x21, [...mapped, ...dst, ...be16(1), ...be16(2)]));
    assert.equal(m.kind === 'proxied' && m.source.ip, '203.0.113.7');
  });

  it('RFC 5952: one zero group is not compressed; the longest run is, the first on a tie', () => {
    const ip = (groups: number[]): string => {
      const bytes = groups.flatMap(be16);
      const r = parseProxyHeader(v2(0x21, 0x21, [...bytes, ...bytes, 0, 1, 0, 2]));
      return r.kind === 'proxied' ? r.source.ip : r.kind;
    };
    assert.equal(ip([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]), '2001:db8:0:1:1:1:1:1');
    assert.equal(ip([0x2001, 0, 0, 1, 0, 0, 0, 1]), '2001:0:0:1::1');
    assert.equal(ip([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]), '2001:db8::1:0:0:1');
    assert.equal(ip([0, 0, 0, 0, 0, 0, 0, 0]), '::');
  });

  it('LOCAL (a health check) and UNSPEC keep the socket addresses, whatever the block holds', () => {
    assert.deepEqual(parseProxyHeader(v2(0x20, 0x00, [])), { kind: 'local', version: 2, consumed: 16 });
    assert.deepEqual(parseProxyHeader(v2(0x20, 0x11, [1, 2, 3])), {
      kind: 'local',
      version: 2,
      consumed: 19,
    });
    assert.deepEqual(parseProxyHeader(v2(0x21, 0x00, [])), { kind: 'local', version: 2, consumed: 16 });
  });

  it('refused: version, command, families it cannot map, short blocks, broken TLVs', () => {
    const addr4 = [10, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 25];
    assert.ok(invalid(parseProxyHeader(v2(0x11, 0x11, addr4))), 'version 1 in the binary form');
    assert.ok(invalid(parseProxyHeader(v2(0x22, 0x11, addr4))), 'command 2');
    assert.ok(invalid(parseProxyHeader(v2(0x21, 0x12, addr4))), 'UDP');
    assert.ok(invalid(parseProxyHeader(v2(0x21, 0x31, Array<number>(216).fill(0)))), 'UNIX socket');
    assert.ok(invalid(parseProxyHeader(v2(0x21, 0x41, addr4))), 'family 4');
    assert.ok(invalid(parseProxyHeader(v2(0x21, 0x11, addr4.slice(0, 11)))), 'IPv4 block of 11');
    assert.ok(invalid(parseProxyHeader(v2(0x21, 0x21, addr4))), 'IPv6 family, IPv4-sized block');
    assert.ok(invalid(parseProxyHeader(v2(0x21, 0x11, [...addr4, 0x01, 0]))), 'TLV without its length');
    assert.ok(invalid(parseProxyHeader(v2(0x21, 0x11, [...addr4, 0x01, 0, 5, 1]))), 'TLV past the end');
    // Decided on the 13th byte, before the length arrives.
    assert.ok(invalid(parseProxyHeader(Uint8Array.from([...SIG, 0x31]))));
  });

  it('a length over the cap is refused from its 16 bytes, without waiting for the body', () => {
    assert.ok(invalid(parseProxyHeader(v2(0x21, 0x11, [], 4097))));
    assert.ok(invalid(parseProxyHeader(v2(0x21, 0x11, [], 0xffff))));
    assert.equal(parseProxyHeader(v2(0x21, 0x11, [], 4096)).kind, 'need-more');
    assert.ok(invalid(parseProxyHeader(v2(0x21, 0x11, [], 200), { maxV2Length: 100 })));
    const tlvs = [
      10,
      0,
      0,
      1,
      127,
      0,
      0,
      1,
      0,
      1,
      0,
      25,
      0x04,
      ...be16(4081),
      ...Array<number>(4081).fill(0),
    ];
    assert.equal(tlvs.length, 4096);
    assert.equal(parseProxyHeader(v2(0x21, 0x11, tlvs)).kind, 'proxied');
  });

  it('a wrong signature is not a header', () => {
    for (let i = 0; i < SIG.length; i++) {
      const bytes = Uint8Array.from([...SIG, 0x21, 0x11, 0, 12, ...Array<number>(12).fill(1)]);
      bytes[i] = bytes[i]! ^ 0x20;
      assert.ok(invalid(parseProxyHeader(bytes)), `byte ${i}`);
    }
  });
});

describe('hostile input and fragmentation', () => {
  const headers: readonly Uint8Array[] = [
    enc('PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n'),
    enc('PROXY TCP6 2001:db8::7 ::1 40000 25\r\n'),
    enc('PROXY UNKNOWN\r\n'),
    v2(0x21, 0x11, [203, 0, 113, 7, 127, 0, 0, 1, ...be16(40000), 0, 25]),
    v2(0x20, 0x00, []),
  ];

  it('every truncation of a good header asks for more; the whole header decides', () => {
    for (const h of headers) {
      for (let n = 0; n < h.length; n++) {
        assert.deepEqual(parseProxyHeader(h.subarray(0, n)), { kind: 'need-more' }, `${n} of ${h.length}`);
      }
      assert.notEqual(parseProxyHeader(h).kind, 'need-more');
    }
  });

  it('garbage and other protocols are refused at once', () => {
    for (const s of [
      'EHLO client.example\r\n',
      'GET / HTTP/1.1\r\n',
      'A1 LOGIN',
      'proxy',
      '\r\n\r\nQUIT',
      ' PROXY',
    ]) {
      assert.ok(invalid(parseProxyHeader(enc(s))), s);
    }
    // A TLS ClientHello where a header should be (an implicit-TLS client that skipped the proxy).
    assert.ok(invalid(parseProxyHeader(Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00))));
  });

  it('any bytes: a decision or need-more, never a throw; need-more only for a prefix of a header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = parseProxyHeader(bytes);
        assert.ok(['need-more', 'proxied', 'local', 'invalid'].includes(r.kind));
        if (r.kind === 'proxied' || r.kind === 'local') assert.ok(r.consumed <= bytes.length);
        if (r.kind === 'need-more') assert.ok(bytes.length < 16 + 4096);
      }),
    );
  });

  it('a header then session bytes, cut anywhere: the first decision is the same', () => {
    const whole = concat(headers[0]!, enc('EHLO x\r\n'));
    const expected = parseProxyHeader(whole);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: whole.length }), (cut) => {
        const first = parseProxyHeader(whole.subarray(0, cut));
        if (first.kind !== 'need-more') assert.deepEqual(first, expected);
        assert.deepEqual(parseProxyHeader(whole), expected);
      }),
    );
  });
});
