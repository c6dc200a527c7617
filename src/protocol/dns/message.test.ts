// The DNS message codec: golden bytes, round trips of every record type, compression, and hostile input
// (the decoder must return an error, never throw, whatever the bytes).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  CLASS_IN,
  Rcode,
  RecordType,
  decodeMessage,
  encodeMessage,
  encodeQuery,
  recordTypeName,
  splitTxt,
} from './message.ts';
import type { DnsMessage, RecordData, ResourceRecord } from './message.ts';
import { formatIPv4, formatIPv6 } from './address.ts';
import { formatName } from './name.ts';

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

const response = (over: Partial<DnsMessage>): DnsMessage => ({
  id: 0xbeef,
  qr: true,
  opcode: 0,
  aa: false,
  tc: false,
  rd: true,
  ra: true,
  ad: false,
  cd: false,
  rcode: 0,
  questions: [{ name: 'example.com', type: RecordType.MX, class: CLASS_IN }],
  answers: [],
  authorities: [],
  additionals: [],
  edns: null,
  ...over,
});

function decodeOk(bytes: Uint8Array): DnsMessage {
  const d = decodeMessage(bytes);
  if (!d.ok) assert.fail(`decode failed: ${d.error}`);
  return d.message;
}

function encodeOk(m: DnsMessage, compress = true): Uint8Array {
  const e = encodeMessage(m, { compress });
  if (!e.ok) assert.fail(`encode failed: ${e.error}`);
  return e.bytes;
}

// A response for example.com MX written out by hand (RFC 1035 §4.1), with compression pointers.
const GOLDEN_MX_RESPONSE = hex(`
  beef 8180 0001 0002 0000 0000
  07 6578616d706c65 03 636f6d 00  000f 0001
  c00c 000f 0001 00000e10 0009 000a 04 6d61696c c00c
  c00c 000f 0001 00000e10 0008 0014 03 6d7832 c00c
`);

describe('encodeQuery', () => {
  it('writes the header, one question and an EDNS OPT advertising 1232 octets', () => {
    // The codec is byte-level: the name's case is kept (the resolver lower-cases before it asks).
    const q = encodeQuery({ id: 0x1234, name: 'Example.COM.', type: RecordType.MX });
    assert.ok(q.ok);
    assert.equal(
      toHex(q.bytes),
      '1234 0100 0001 0000 0000 0001'.replace(/ /g, '') +
        '074578616d706c6503434f4d00000f0001' +
        '00' +
        '0029' +
        '04d0' +
        '00000000' +
        '0000',
    );
  });

  it('can leave out EDNS and recursion', () => {
    const q = encodeQuery({
      id: 1,
      name: 'a.b',
      type: RecordType.A,
      ednsPayloadSize: null,
      recursionDesired: false,
    });
    assert.ok(q.ok);
    assert.equal(toHex(q.bytes), '000100000001000000000000' + '0161016200' + '00010001');
  });

  it('fails on names that cannot be encoded', () => {
    const q = encodeQuery({ id: 1, name: 'a..b', type: RecordType.A });
    assert.equal(q.ok, false);
    assert.equal(encodeQuery({ id: 70000, name: 'a', type: 1 }).ok, false);
  });
});

describe('decodeMessage', () => {
  it('decodes a hand-written response with compressed names', () => {
    const m = decodeOk(GOLDEN_MX_RESPONSE);
    assert.equal(m.id, 0xbeef);
    assert.ok(m.qr && m.rd && m.ra && !m.aa && !m.tc);
    assert.equal(m.rcode, Rcode.noError);
    assert.deepEqual(m.questions, [{ name: 'example.com', type: RecordType.MX, class: CLASS_IN }]);
    assert.deepEqual(
      m.answers.map((r) => [r.name, r.ttl, r.data]),
      [
        ['example.com', 3600, { kind: 'MX', preference: 10, exchange: 'mail.example.com' }],
        ['example.com', 3600, { kind: 'MX', preference: 20, exchange: 'mx2.example.com' }],
      ],
    );
    assert.equal(m.edns, null);
  });

  it('reads every flag and the extended rcode from OPT (RFC 6891 §6.1.3)', () => {
    // QR opcode=2 AA TC RD RA AD CD rcode=0 ; OPT with ext-rcode 1 (→ 16 BADVERS), version 0, DO.
    const bytes = hex('0001 97b0 0000 0000 0000 0001 00 0029 1000 01 00 8000 0004 000a 0000');
    const m = decodeOk(bytes);
    assert.deepEqual(
      [m.qr, m.opcode, m.aa, m.tc, m.rd, m.ra, m.ad, m.cd],
      [true, 2, true, true, true, true, true, true],
    );
    assert.equal(m.rcode, Rcode.badVers);
    assert.deepEqual(m.edns, {
      payloadSize: 4096,
      version: 0,
      dnssecOk: true,
      options: [{ code: 10, data: new Uint8Array(0) }],
    });
  });

  it('treats a TTL with the top bit set as 0 (RFC 2181 §8) and tolerates trailing octets', () => {
    const bytes = hex('0001 8000 0000 0001 0000 0000 00 0001 0001 80000000 0004 7f000001 ffff');
    const m = decodeOk(bytes);
    assert.deepEqual(m.answers, [
      { name: '', type: RecordType.A, class: CLASS_IN, ttl: 0, data: { kind: 'A', address: '127.0.0.1' } },
    ]);
  });

  it('keeps unknown types raw and decodes TXT strings as octets, joined and listed', () => {
    const bytes = hex(
      '0001 8000 0000 0002 0000 0000' +
        '00 0063 0001 00000001 0003 010203' +
        '00 0010 0001 00000001 0009 03 616263 00 03 64e9 66',
    );
    const m = decodeOk(bytes);
    assert.deepEqual(m.answers[0]!.data, { kind: 'raw', bytes: Uint8Array.of(1, 2, 3) });
    assert.deepEqual(m.answers[1]!.data, {
      kind: 'TXT',
      strings: ['abc', '', 'd\u00e9f'],
      text: 'abcd\u00e9f',
    });
    assert.equal(recordTypeName(99), 'TYPE99');
    assert.equal(recordTypeName(RecordType.AAAA), 'AAAA');
  });

  const hostile: [string, string, RegExp][] = [
    ['empty', '', /truncated header/],
    ['short header', '0001 8000 0001', /truncated header/],
    ['question count beyond the data', '0001 8000 0002 0000 0000 0000 00 0001 0001', /truncated/],
    ['pointer to itself', '0001 8000 0001 0000 0000 0000 c00c 0001 0001', /not backwards/],
    ['forward pointer', '0001 8000 0001 0000 0000 0000 c00e 0001 0001 00', /not backwards/],
    [
      'two pointers in a loop',
      '0001 8000 0002 0000 0000 0000 01 61 c012 0001 0001 c00c 0001 0001',
      /not backwards/,
    ],
    ['0x40 label type (RFC 6891 §5)', '0001 8000 0001 0000 0000 0000 41 00 0001 0001', /label type/],
    ['0x80 label type', '0001 8000 0001 0000 0000 0000 81 00 0001 0001', /label type/],
    ['label running off the end', '0001 8000 0001 0000 0000 0000 05 6162', /truncated/],
    [
      'A record of 5 octets',
      '0001 8000 0000 0001 0000 0000 00 0001 0001 00000001 0005 0102030405',
      /4 octets/,
    ],
    [
      'AAAA record of 4 octets',
      '0001 8000 0000 0001 0000 0000 00 001c 0001 00000001 0004 01020304',
      /16 octets/,
    ],
    [
      'RDLENGTH beyond the data',
      '0001 8000 0000 0001 0000 0000 00 0001 0001 00000001 0004 0102',
      /truncated/,
    ],
    [
      'MX exchange running past RDLENGTH',
      '0001 8000 0000 0001 0000 0000 00 000f 0001 00000001 0003 000a 01 61 00',
      /does not fill/,
    ],
    [
      'MX with a stray octet',
      '0001 8000 0000 0001 0000 0000 00 000f 0001 00000001 0004 000a 00 ff',
      /does not fill/,
    ],
    [
      'TXT string past RDLENGTH',
      '0001 8000 0000 0001 0000 0000 00 0010 0001 00000001 0002 05 61',
      /overruns/,
    ],
    [
      'SOA cut short',
      '0001 8000 0000 0001 0000 0000 00 0006 0001 00000001 0006 00 00 00000001',
      /does not fill|truncated/,
    ],
    [
      'OPT in the answer section',
      '0001 8000 0000 0001 0000 0000 00 0029 04d0 00000000 0000',
      /outside the additional/,
    ],
    [
      'two OPT records',
      '0001 8000 0000 0000 0000 0002 00 0029 04d0 00000000 0000 00 0029 04d0 00000000 0000',
      /more than one OPT/,
    ],
    ['OPT owned by a name', '0001 8000 0000 0000 0000 0001 01 61 00 0029 04d0 00000000 0000', /root/],
    [
      'OPT option past its record',
      '0001 8000 0000 0000 0000 0001 00 0029 04d0 00000000 0004 000a 0005',
      /overruns/,
    ],
  ];
  for (const [what, bytes, why] of hostile) {
    it(`refuses ${what}`, () => {
      const d = decodeMessage(hex(bytes));
      assert.equal(d.ok, false);
      if (!d.ok) assert.match(d.error, why);
    });
  }

  it('refuses a name made longer than 255 octets by pointers, however few octets it takes', () => {
    // The first answer is of an unknown type, so its data is opaque: a chain of 62-octet labels, each ending
    // in a pointer to the one before. The second answer's owner points at the last label of the chain.
    const withChain = (labels: number): Uint8Array => {
      const chain: number[] = [];
      const dataAt = 12 + 11;
      let previous = -1;
      for (let i = 0; i < labels; i++) {
        const at = dataAt + chain.length;
        chain.push(62, ...new Array<number>(62).fill(0x61));
        if (previous < 0) chain.push(0);
        else chain.push(0xc0 | (previous >> 8), previous & 0xff);
        previous = at;
      }
      return Uint8Array.from([
        ...[0, 1, 0x81, 0x80, 0, 0, 0, 2, 0, 0, 0, 0],
        ...[0, 0, 0x63, 0, 1, 0, 0, 0, 0, chain.length >> 8, chain.length & 0xff, ...chain],
        ...[0xc0 | (previous >> 8), previous & 0xff, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1],
      ]);
    };
    const three = decodeMessage(withChain(3));
    assert.ok(three.ok);
    assert.equal(three.message.answers[1]!.name, ['a'.repeat(62), 'a'.repeat(62), 'a'.repeat(62)].join('.'));
    const five = decodeMessage(withChain(5));
    assert.equal(five.ok, false);
    if (!five.ok) assert.match(five.error, /255/);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Round trips

const labelArb = fc.uint8Array({ minLength: 1, maxLength: 20 });
// Up to 8 labels of up to 21 wire octets each stays below 255; a small alphabet makes shared suffixes
// (and so compression) common.
const nameArb = fc.oneof(
  fc.array(labelArb, { maxLength: 8 }).map(formatName),
  fc
    .array(fc.constantFrom('a', 'b', 'Mail', 'example', 'com', 'xn--bcher-kva'), { maxLength: 4 })
    .map((labels) => labels.join('.')),
);
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const latin1 = fc
  .array(fc.integer({ min: 0, max: 255 }), { maxLength: 255 })
  .map((codes) => String.fromCharCode(...codes));

type TypedData = { type: number; data: RecordData };
const rd = (type: number, data: RecordData): TypedData => ({ type, data });

const dataArb: fc.Arbitrary<TypedData> = fc.oneof(
  fc
    .uint8Array({ minLength: 4, maxLength: 4 })
    .map((b) => rd(RecordType.A, { kind: 'A', address: formatIPv4(b) })),
  fc
    .uint8Array({ minLength: 16, maxLength: 16 })
    .map((b) => rd(RecordType.AAAA, { kind: 'AAAA', address: formatIPv6(b) })),
  fc
    .tuple(fc.constantFrom<'NS' | 'CNAME' | 'PTR'>('NS', 'CNAME', 'PTR'), nameArb)
    .map(([kind, target]) => rd(RecordType[kind], { kind, target })),
  fc
    .tuple(u16, nameArb)
    .map(([preference, exchange]) => rd(RecordType.MX, { kind: 'MX', preference, exchange })),
  fc
    .array(latin1, { minLength: 1, maxLength: 3 })
    .map((strings) => rd(RecordType.TXT, { kind: 'TXT', strings, text: strings.join('') })),
  fc
    .tuple(nameArb, nameArb, u32, u32, u32, u32, u32)
    .map(([mname, rname, serial, refresh, retry, expire, minimum]) =>
      rd(RecordType.SOA, { kind: 'SOA', mname, rname, serial, refresh, retry, expire, minimum }),
    ),
  fc
    .tuple(
      fc.integer({ min: 0, max: 0xffff }).filter((t) => !Object.values(RecordType).includes(t as never)),
      fc.uint8Array({ maxLength: 40 }),
    )
    .map(([type, bytes]) => rd(type, { kind: 'raw', bytes })),
);

const recordArb: fc.Arbitrary<ResourceRecord> = fc
  .tuple(nameArb, dataArb, u16, fc.integer({ min: 0, max: 0x7fffffff }))
  .map(([name, { type, data }, cls, ttl]) => ({ name, type, class: cls, ttl, data }));

const ednsArb = fc.option(
  fc
    .record({
      payloadSize: u16,
      version: fc.integer({ min: 0, max: 255 }),
      dnssecOk: fc.boolean(),
      options: fc.array(
        fc.record({ code: u16, data: fc.uint8Array({ maxLength: 8 }) }).map((o) => ({ ...o })),
        { maxLength: 2 },
      ),
    })
    .map((e) => ({ ...e })),
);

const messageArb: fc.Arbitrary<DnsMessage> = fc
  .record({
    id: u16,
    qr: fc.boolean(),
    opcode: fc.integer({ min: 0, max: 15 }),
    aa: fc.boolean(),
    tc: fc.boolean(),
    rd: fc.boolean(),
    ra: fc.boolean(),
    ad: fc.boolean(),
    cd: fc.boolean(),
    rcode: fc.integer({ min: 0, max: 0xfff }),
    questions: fc.array(
      fc.record({ name: nameArb, type: u16, class: u16 }).map((q) => ({ ...q })),
      { maxLength: 2 },
    ),
    answers: fc.array(recordArb, { maxLength: 4 }),
    authorities: fc.array(recordArb, { maxLength: 2 }),
    additionals: fc.array(recordArb, { maxLength: 2 }),
    edns: ednsArb,
  })
  // fc.record builds null-prototype objects; spread them into plain ones so deepEqual compares values.
  .map((m) => ({ ...m, rcode: m.edns === null ? m.rcode & 0xf : m.rcode }));

describe('round trips', () => {
  it('decode(encode(m)) = m for every message, with and without compression', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const compressed = encodeOk(m, true);
        const plain = encodeOk(m, false);
        assert.deepEqual(decodeOk(compressed), m);
        assert.deepEqual(decodeOk(plain), m);
        assert.ok(compressed.length <= plain.length);
      }),
      { numRuns: 2000 },
    );
  });

  it('compresses repeated names to 2-octet pointers', () => {
    const m = response({
      answers: [10, 20, 30].map((preference) => ({
        name: 'example.com',
        type: RecordType.MX,
        class: CLASS_IN,
        ttl: 60,
        data: { kind: 'MX', preference, exchange: `mx${preference}.example.com` },
      })),
    });
    const compressed = encodeOk(m);
    const plain = encodeOk(m, false);
    // Each owner name (13 octets) becomes a pointer (2), each exchange suffix "example.com" too.
    assert.equal(plain.length - compressed.length, 3 * 11 + 3 * 11);
  });

  it('compresses only exact suffixes, so a pointer never changes the case of a name', () => {
    const rec = (name: string): ResourceRecord => ({
      name,
      type: RecordType.A,
      class: CLASS_IN,
      ttl: 1,
      data: { kind: 'A', address: '192.0.2.1' },
    });
    const m = response({ answers: [rec('Example.com'), rec('example.com'), rec('www.Example.com')] });
    assert.deepEqual(
      decodeOk(encodeOk(m)).answers.map((r) => r.name),
      ['Example.com', 'example.com', 'www.Example.com'],
    );
  });

  it('re-encodes anything it decoded to the same meaning (mutated valid messages)', () => {
    const mutated = fc
      .tuple(
        messageArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(),
      )
      .map(([m, flips, cut]) => {
        const bytes = encodeOk(m);
        for (const [at, value] of flips) bytes[at % bytes.length] = value;
        return bytes.subarray(0, bytes.length - (cut % 4 === 0 ? cut % bytes.length : 0));
      });
    fc.assert(
      fc.property(mutated, (bytes) => {
        const d = decodeMessage(bytes);
        if (!d.ok) return;
        assert.deepEqual(decodeOk(encodeOk(d.message)), d.message);
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        const d = decodeMessage(bytes);
        assert.equal(typeof d.ok, 'boolean');
      }),
      { numRuns: 5000 },
    );
    // Mostly-valid headers with pointer-heavy bodies reach deeper than uniform noise.
    const pointerSoup = fc
      .array(fc.oneof(fc.constant(0xc0), fc.constant(0), fc.integer({ min: 0, max: 255 })), {
        maxLength: 200,
      })
      .map((body) => Uint8Array.from([0, 1, 0x81, 0x80, 0, 2, 0, 3, 0, 1, 0, 1, ...body]));
    fc.assert(
      fc.property(pointerSoup, (bytes) => {
        assert.equal(typeof decodeMessage(bytes).ok, 'boolean');
      }),
      { numRuns: 5000 },
    );
  });
});

describe('encodeMessage', () => {
  it('refuses values that do not fit the wire', () => {
    const bad: [Partial<DnsMessage>, RegExp][] = [
      [{ id: -1 }, /id/],
      [{ rcode: 16 }, /needs EDNS/],
      [{ questions: [{ name: 'a..b', type: 1, class: 1 }] }, /empty label/],
      [
        { answers: [{ name: 'a', type: 1, class: 1, ttl: 1, data: { kind: 'A', address: '1.2.3' } }] },
        /IPv4/,
      ],
      [
        { answers: [{ name: 'a', type: 28, class: 1, ttl: 1, data: { kind: 'AAAA', address: '1.2.3.4' } }] },
        /IPv6/,
      ],
      [
        {
          answers: [
            {
              name: 'a',
              type: 16,
              class: 1,
              ttl: 1,
              data: { kind: 'TXT', strings: ['x'.repeat(256)], text: '' },
            },
          ],
        },
        /255/,
      ],
      [
        {
          answers: [
            { name: 'a', type: 16, class: 1, ttl: 1, data: { kind: 'TXT', strings: ['€'], text: '' } },
          ],
        },
        /U\+00FF/,
      ],
      [
        {
          answers: [{ name: 'a', type: 1, class: 1, ttl: 2 ** 32, data: { kind: 'A', address: '1.2.3.4' } }],
        },
        /TTL/,
      ],
    ];
    for (const [over, why] of bad) {
      const e = encodeMessage(response(over));
      assert.equal(e.ok, false, JSON.stringify(over));
      if (!e.ok) assert.match(e.error, why);
    }
  });

  it('refuses messages larger than 65535 octets', () => {
    const big = response({
      answers: Array.from({ length: 300 }, () => ({
        name: 'example.com',
        type: RecordType.TXT,
        class: CLASS_IN,
        ttl: 1,
        data: { kind: 'TXT' as const, strings: ['x'.repeat(255)], text: '' },
      })),
    });
    const e = encodeMessage(big);
    assert.equal(e.ok, false);
    if (!e.ok) assert.match(e.error, /65535/);
  });
});

describe('splitTxt', () => {
  it('cuts text into 255-octet character-strings', () => {
    const text = 'v=DKIM1; k=rsa; p=' + 'A'.repeat(600);
    const parts = splitTxt(text);
    assert.deepEqual(
      parts.map((p) => p.length),
      [255, 255, 108],
    );
    assert.equal(parts.join(''), text);
    assert.deepEqual(splitTxt(''), ['']);
  });
});
