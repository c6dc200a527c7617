// The stub resolver against the loopback test DNS server (never the outside world): answers of every type,
// negative answers, failures as temporary errors, TCP fallback, CNAMEs, caching with an injected clock,
// de-duplication, retries over servers, and answers that must be ignored (spoofed, malformed).
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LogFields, Logger } from '../core/ports.ts';
import { Events } from '../core/events.ts';
import { CLASS_IN, RecordType, decodeMessage, encodeMessage } from '../protocol/dns/message.ts';
import type { DnsMessage } from '../protocol/dns/message.ts';
import { startDnsServer } from '../../test/support/dns-server.ts';
import type { DnsServer, Zones } from '../../test/support/dns-server.ts';
import {
  createResolver,
  parseResolvConf,
  parseServerAddress,
  readSystemServers,
  toQueryName,
} from './dns.ts';

class FakeClock {
  now = 1_000_000;
  nowMs(): number {
    return this.now;
  }
}

class RecordingLogger implements Logger {
  readonly lines: { level: string; name: string; fields: LogFields }[] = [];
  event(name: string, fields: LogFields = {}): void {
    this.lines.push({ level: 'info', name, fields });
  }
  warn(name: string, fields: LogFields = {}): void {
    this.lines.push({ level: 'warn', name, fields });
  }
  error(name: string, fields: LogFields = {}): void {
    this.lines.push({ level: 'error', name, fields });
  }
  debug(name: string, fields: LogFields = {}): void {
    this.lines.push({ level: 'debug', name, fields });
  }
  child(): Logger {
    return this;
  }
}

const DKIM_KEY = 'v=DKIM1; k=rsa; p=' + 'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'.repeat(40);

const zones: Zones = {
  'example.com': {
    '@': [
      { type: 'MX', preference: 20, exchange: 'MX2.Example.COM', ttl: 600 },
      { type: 'MX', preference: 10, exchange: 'mx1.example.com', ttl: 300 },
      { type: 'TXT', text: 'v=spf1 ip4:192.0.2.0/24 -all' },
      { type: 'TXT', text: ['hello ', 'world'] },
    ],
    mx1: [
      { type: 'A', address: '192.0.2.1', ttl: 120 },
      { type: 'A', address: '192.0.2.11', ttl: 60 },
      { type: 'AAAA', address: '2001:db8:0:0::1' },
    ],
    mx2: [{ type: 'A', address: '192.0.2.2' }],
    'sel._domainkey': [{ type: 'TXT', text: DKIM_KEY }],
    www: [{ type: 'CNAME', target: 'alias.example.com', ttl: 30 }],
    alias: [{ type: 'CNAME', target: 'mx2.example.com', ttl: 3000 }],
    loop1: [{ type: 'CNAME', target: 'loop2.example.com' }],
    loop2: [{ type: 'CNAME', target: 'loop1.example.com' }],
    outside: [{ type: 'CNAME', target: 'host.example.org', ttl: 40 }],
    zero: [{ type: 'A', address: '192.0.2.3', ttl: 0 }],
    'bad-a': [{ type: 1, data: Uint8Array.of(1, 2, 3) }],
    broken: 'servfail',
    closed: 'refused',
    silent: 'timeout',
  },
  'example.org': { host: [{ type: 'A', address: '198.51.100.1', ttl: 100 }] },
  'xn--bcher-kva.example': { '@': [{ type: 'MX', preference: 0, exchange: 'mx.xn--bcher-kva.example' }] },
  'nullmx.example': { '@': [{ type: 'MX', preference: 0, exchange: '.' }] },
  'in-addr.arpa': { '1.2.0.192': [{ type: 'PTR', target: 'MX1.example.com' }] },
  'ip6.arpa': {
    '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2': [
      { type: 'PTR', target: 'mx1.example.com' },
    ],
  },
};

describe('createResolver against a loopback DNS server', () => {
  let server: DnsServer;
  before(async () => {
    server = await startDnsServer({
      zones,
      negativeTtl: 60,
      // A resolver that does not chase this CNAME out of its zone: the stub must ask for the target itself.
      onQuery: (query) => {
        const q = query.questions[0];
        if (q?.name !== 'outside.example.com') return undefined;
        return {
          ...query,
          qr: true,
          ra: true,
          edns: null,
          answers: [
            {
              name: q.name,
              type: RecordType.CNAME,
              class: CLASS_IN,
              ttl: 40,
              data: { kind: 'CNAME', target: 'host.example.org' },
            },
          ],
        };
      },
    });
  });
  after(() => server.close());

  const fresh = (
    over: Parameters<DnsServer['config']>[0] = {},
    clock = new FakeClock(),
    logger = new RecordingLogger(),
  ) => createResolver(server.config({ timeoutMs: 200, ...over }), { clock, logger });

  it('answers MX with preferences, exchanges lower-cased, TTL the smallest of the set', async () => {
    const mx = await fresh().mx('example.com');
    assert.equal(mx.kind, 'ok');
    assert.deepEqual(mx.kind === 'ok' ? [...mx.records].sort((a, b) => a.preference - b.preference) : [], [
      { preference: 10, exchange: 'mx1.example.com' },
      { preference: 20, exchange: 'mx2.example.com' },
    ]);
    assert.equal(mx.kind === 'ok' && mx.ttlMs, 300_000);
  });

  it('reports a null MX (RFC 7505) as exchange ""', async () => {
    assert.deepEqual(await fresh().mx('nullmx.example'), {
      kind: 'ok',
      records: [{ preference: 0, exchange: '' }],
      ttlMs: 300_000,
    });
  });

  it('answers A and AAAA (canonical IPv6 text)', async () => {
    const r = fresh();
    assert.deepEqual(await r.a('mx1.example.com'), {
      kind: 'ok',
      records: ['192.0.2.1', '192.0.2.11'],
      ttlMs: 60_000,
    });
    assert.deepEqual(await r.aaaa('mx1.example.com'), {
      kind: 'ok',
      records: ['2001:db8::1'],
      ttlMs: 300_000,
    });
  });

  it('answers TXT one string per record, long records joined from 255-octet chunks over TCP', async () => {
    const r = fresh();
    const txt = await r.txt('example.com');
    assert.equal(txt.kind, 'ok');
    assert.deepEqual(txt.kind === 'ok' ? [...txt.records].sort() : [], [
      'hello world',
      'v=spf1 ip4:192.0.2.0/24 -all',
    ]);
    server.clearQueries();
    assert.deepEqual(await r.txt('sel._domainkey.example.com'), {
      kind: 'ok',
      records: [DKIM_KEY],
      ttlMs: 300_000,
    });
    assert.deepEqual(
      server.queries.map((q) => q.transport),
      ['udp', 'tcp'],
      'the UDP answer was truncated (TC) and the resolver asked again over TCP',
    );
    assert.equal(server.queries[0]!.ednsPayloadSize, 1232);
  });

  it('answers PTR for IPv4, IPv6 and IPv4-mapped IPv6 addresses', async () => {
    const r = fresh();
    const expected = { kind: 'ok', records: ['mx1.example.com'], ttlMs: 300_000 };
    assert.deepEqual(await r.ptr('192.0.2.1'), expected);
    assert.deepEqual(await r.ptr('2001:db8::1'), expected);
    server.clearQueries();
    assert.deepEqual(await fresh().ptr('::ffff:192.0.2.1'), expected);
    assert.deepEqual(
      server.queries.map((q) => q.name),
      ['1.2.0.192.in-addr.arpa'],
    );
    assert.deepEqual(await r.ptr('not-an-address'), { kind: 'nxdomain' });
  });

  it('follows a CNAME chain in the answer; the TTL is the smallest along the chain', async () => {
    assert.deepEqual(await fresh().a('www.example.com'), {
      kind: 'ok',
      records: ['192.0.2.2'],
      ttlMs: 30_000,
      canonical: 'mx2.example.com',
    });
  });

  it('asks for the target itself when the server did not follow the CNAME', async () => {
    server.clearQueries();
    assert.deepEqual(await fresh().a('outside.example.com'), {
      kind: 'ok',
      records: ['198.51.100.1'],
      ttlMs: 40_000,
      canonical: 'host.example.org',
    });
    assert.deepEqual(
      server.queries.map((q) => q.name),
      ['outside.example.com', 'host.example.org'],
    );
  });

  it('turns a CNAME loop into a temporary error', async () => {
    const a = await fresh().a('loop1.example.com');
    assert.equal(a.kind, 'error');
    assert.match(a.kind === 'error' ? a.reason : '', /CNAME chain/);
  });

  it('tells NXDOMAIN from NODATA', async () => {
    const r = fresh();
    assert.deepEqual(await r.mx('nope.example.com'), { kind: 'nxdomain' });
    assert.deepEqual(await r.mx('mx1.example.com'), { kind: 'nodata' });
    assert.deepEqual(await r.aaaa('mx2.example.com'), { kind: 'nodata' });
  });

  it('turns SERVFAIL, REFUSED, silence and malformed answers into temporary errors', async () => {
    const logger = new RecordingLogger();
    const r = fresh({}, new FakeClock(), logger);
    const cases: [Promise<unknown>, RegExp][] = [
      [r.a('broken.example.com'), /SERVFAIL/],
      [r.a('closed.example.com'), /REFUSED/],
      [r.a('silent.example.com'), /timeout after 200 ms/],
      [r.a('bad-a.example.com'), /timeout/],
    ];
    for (const [answer, why] of cases) {
      const a = (await answer) as { kind: string; temporary?: boolean; reason?: string };
      assert.equal(a.kind, 'error');
      assert.equal(a.temporary, true);
      assert.match(a.reason ?? '', why);
    }
    assert.equal(logger.lines.filter((l) => l.name === Events.dnsQueryFailed).length, 4);
    const ignored = logger.lines.find((l) => l.name === Events.dnsAnswerIgnored);
    assert.match(String(ignored?.fields['why']), /A record data is not 4 octets/);
  });

  it('caches within the TTL and asks again after it (injected clock)', async () => {
    const clock = new FakeClock();
    const r = fresh({}, clock);
    server.clearQueries();
    assert.equal((await r.a('mx1.example.com')).kind, 'ok');
    clock.now += 59_000;
    assert.deepEqual(await r.a('MX1.example.com.'), {
      kind: 'ok',
      records: ['192.0.2.1', '192.0.2.11'],
      ttlMs: 1000,
    });
    assert.equal(server.queries.length, 1, 'the second answer came from the cache');
    clock.now += 1000;
    assert.deepEqual(await r.a('mx1.example.com'), {
      kind: 'ok',
      records: ['192.0.2.1', '192.0.2.11'],
      ttlMs: 60_000,
    });
    assert.equal(server.queries.length, 2, 'expired: asked again');
  });

  it('caps cached TTLs at maxCacheTtlMs and does not cache TTL 0', async () => {
    const clock = new FakeClock();
    const r = fresh({ maxCacheTtlMs: 10_000 }, clock);
    server.clearQueries();
    assert.deepEqual(await r.mx('example.com'), {
      kind: 'ok',
      records: [
        { preference: 20, exchange: 'mx2.example.com' },
        { preference: 10, exchange: 'mx1.example.com' },
      ],
      ttlMs: 10_000,
    });
    clock.now += 9_999;
    await r.mx('example.com');
    assert.equal(server.queries.length, 1, 'still cached just before the cap');
    clock.now += 1;
    await r.mx('example.com');
    assert.equal(server.queries.length, 2, 'the 600 s TTL was capped at 10 s');
    assert.deepEqual(await r.a('zero.example.com'), { kind: 'ok', records: ['192.0.2.3'], ttlMs: 0 });
    await r.a('zero.example.com');
    assert.equal(server.queries.filter((q) => q.name === 'zero.example.com').length, 2);
  });

  it('caches NXDOMAIN and NODATA for the SOA negative TTL (RFC 2308), not errors', async () => {
    const clock = new FakeClock();
    const r = fresh({}, clock);
    server.clearQueries();
    await r.a('nope.example.com');
    await r.mx('mx2.example.com');
    await r.a('broken.example.com');
    clock.now += 59_999;
    assert.deepEqual(await r.a('nope.example.com'), { kind: 'nxdomain' });
    assert.deepEqual(await r.mx('mx2.example.com'), { kind: 'nodata' });
    await r.a('broken.example.com');
    assert.deepEqual(
      server.queries.map((q) => q.name),
      ['nope.example.com', 'mx2.example.com', 'broken.example.com', 'broken.example.com'],
    );
    clock.now += 1;
    await r.a('nope.example.com');
    assert.equal(server.queries.length, 5);
  });

  it('asks once for concurrent identical questions', async () => {
    const r = fresh();
    server.clearQueries();
    const answers = await Promise.all([
      r.a('mx2.example.com'),
      r.a('mx2.example.com'),
      r.a('MX2.example.com'),
    ]);
    for (const a of answers) assert.deepEqual(a, { kind: 'ok', records: ['192.0.2.2'], ttlMs: 300_000 });
    assert.equal(server.queries.length, 1);
  });

  it('converts U-labels to A-labels and refuses impossible names without a query', async () => {
    const r = fresh();
    server.clearQueries();
    assert.deepEqual(await r.mx('Bücher.example.'), {
      kind: 'ok',
      records: [{ preference: 0, exchange: 'mx.xn--bcher-kva.example' }],
      ttlMs: 300_000,
    });
    assert.deepEqual(
      server.queries.map((q) => q.name),
      ['xn--bcher-kva.example'],
    );
    server.clearQueries();
    for (const bad of [
      '',
      '.',
      'a..b',
      'exa mple.com',
      'ex\\ample.com',
      'x'.repeat(64) + '.com',
      'a'.repeat(254),
    ]) {
      assert.deepEqual(await r.mx(bad), { kind: 'nxdomain' }, bad);
    }
    assert.deepEqual(server.queries, []);
  });

  it('tries the next server after a failure, and counts attempts as rounds over the list', async () => {
    const dead = await startDnsServer({ zones: { 'example.com': { '@': 'servfail', mx1: 'timeout' } } });
    try {
      const r = createResolver(
        {
          servers: [dead.endpoint, server.endpoint],
          timeoutMs: 150,
          attempts: 2,
          maxCacheTtlMs: 60_000,
          dnssec: false,
        },
        { clock: new FakeClock() },
      );
      server.clearQueries();
      assert.equal((await r.mx('example.com')).kind, 'ok');
      assert.equal((await r.a('mx1.example.com')).kind, 'ok');
      assert.deepEqual(
        dead.queries.map((q) => q.name),
        ['example.com', 'mx1.example.com'],
      );
      assert.equal(server.queries.length, 2);

      const alone = createResolver({
        servers: [dead.endpoint],
        timeoutMs: 100,
        attempts: 3,
        maxCacheTtlMs: 0,
        dnssec: false,
      });
      dead.clearQueries();
      const started = Date.now();
      const a = await alone.a('mx1.example.com');
      assert.equal(a.kind, 'error');
      assert.equal(dead.queries.length, 3);
      assert.ok(Date.now() - started >= 290);
    } finally {
      await dead.close();
    }
  });
});

describe('answers that must be ignored', () => {
  /** A raw UDP "server" that answers each query with the given datagrams, in order. */
  async function rawServer(reply: (query: DnsMessage, from: RemoteInfo) => Uint8Array[]) {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    socket.on('message', (msg, rinfo) => {
      const d = decodeMessage(new Uint8Array(msg));
      if (!d.ok) return;
      for (const datagram of reply(d.message, rinfo)) socket.send(datagram, rinfo.port, rinfo.address);
    });
    return {
      endpoint: `127.0.0.1:${socket.address().port}`,
      close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
    };
  }

  const answerTo = (query: DnsMessage, over: Partial<DnsMessage> = {}): Uint8Array => {
    const q = query.questions[0]!;
    const e = encodeMessage({
      ...query,
      qr: true,
      ra: true,
      edns: null,
      answers: [
        {
          name: q.name,
          type: RecordType.A,
          class: CLASS_IN,
          ttl: 60,
          data: { kind: 'A', address: '192.0.2.77' },
        },
      ],
      ...over,
    });
    assert.ok(e.ok);
    return e.bytes;
  };

  it('waits past a wrong id, a wrong question and garbage for the real answer', async () => {
    const raw = await rawServer((query) => [
      answerTo(query, { id: (query.id + 1) & 0xffff }),
      answerTo(query, { questions: [{ name: 'evil.example', type: RecordType.A, class: CLASS_IN }] }),
      answerTo(query, { questions: [{ ...query.questions[0]!, type: RecordType.MX }] }),
      answerTo(query, { qr: false }),
      Uint8Array.of(1, 2, 3),
      answerTo(query, {
        answers: [
          { name: 'x', type: 1, class: CLASS_IN, ttl: 1, data: { kind: 'raw', bytes: Uint8Array.of(1) } },
        ],
      }),
      answerTo(query),
    ]);
    try {
      const logger = new RecordingLogger();
      const r = createResolver(
        { servers: [raw.endpoint], timeoutMs: 1000, attempts: 1, maxCacheTtlMs: 0, dnssec: false },
        { logger },
      );
      assert.deepEqual(await r.a('Host.Example.com'), { kind: 'ok', records: ['192.0.2.77'], ttlMs: 0 });
      const ignored = logger.lines.filter((l) => l.name === Events.dnsAnswerIgnored);
      assert.equal(ignored.length, 6);
      assert.ok(ignored.every((l) => l.level === 'warn'));
    } finally {
      await raw.close();
    }
  });

  it('never takes an answer from another port than the server asked', async () => {
    // A correct answer, but sent from an impostor socket to the resolver's source port: it must not count.
    const impostor = createSocket('udp4');
    impostor.bind(0, '127.0.0.1');
    await once(impostor, 'listening');
    let impostorSent = false;
    const raw = await rawServer((query, from) => {
      impostor.send(answerTo(query), from.port, from.address, () => {
        impostorSent = true;
      });
      return [];
    });
    try {
      const r = createResolver({
        servers: [raw.endpoint],
        timeoutMs: 200,
        attempts: 1,
        maxCacheTtlMs: 0,
        dnssec: false,
      });
      const a = await r.a('host.example.com');
      assert.ok(impostorSent);
      assert.equal(a.kind, 'error');
    } finally {
      impostor.close();
      await raw.close();
    }
  });
});

describe('configuration helpers', () => {
  it('parses server addresses with optional ports', () => {
    assert.deepEqual(parseServerAddress('127.0.0.1'), { host: '127.0.0.1', port: 53, family: 4 });
    assert.deepEqual(parseServerAddress('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353, family: 4 });
    assert.deepEqual(parseServerAddress('::1'), { host: '::1', port: 53, family: 6 });
    assert.deepEqual(parseServerAddress('[::1]:5353'), { host: '::1', port: 5353, family: 6 });
    assert.deepEqual(parseServerAddress('[2001:db8::53]'), { host: '2001:db8::53', port: 53, family: 6 });
    for (const bad of [
      'dns.example',
      '127.0.0.1:0',
      '127.0.0.1:65536',
      '[::1]:',
      '::1:53x',
      '1.2.3:53',
      '',
    ]) {
      assert.equal(parseServerAddress(bad), null, bad);
    }
    assert.throws(
      () =>
        createResolver({
          servers: ['dns.example'],
          timeoutMs: 1,
          attempts: 1,
          maxCacheTtlMs: 0,
          dnssec: false,
        }),
      /dns\.servers/,
    );
  });

  it('reads nameserver lines from resolv.conf, three at most', async () => {
    const text = [
      '# comment',
      'search example.com',
      'nameserver 192.0.2.53',
      'nameserver   2001:db8::53 ',
      'nameserver fe80::1%eth0',
      'nameserver not-an-ip',
      'nameserver 192.0.2.54',
      'nameserver 192.0.2.55',
      'options timeout:2',
    ].join('\n');
    assert.deepEqual(parseResolvConf(text), [
      { host: '192.0.2.53', port: 53, family: 4 },
      { host: '2001:db8::53', port: 53, family: 6 },
      { host: 'fe80::1%eth0', port: 53, family: 6 },
    ]);
    const dir = await mkdtemp(join(tmpdir(), 'tern-dns-'));
    try {
      const path = join(dir, 'resolv.conf');
      await writeFile(path, 'nameserver 192.0.2.53\n');
      assert.deepEqual(await readSystemServers(path), [{ host: '192.0.2.53', port: 53, family: 4 }]);
      await writeFile(path, '# nothing\n');
      assert.deepEqual(await readSystemServers(path), [{ host: '127.0.0.1', port: 53, family: 4 }]);
      const logger = new RecordingLogger();
      assert.deepEqual(await readSystemServers(join(dir, 'missing'), logger), [
        { host: '127.0.0.1', port: 53, family: 4 },
      ]);
      assert.equal(logger.lines[0]?.name, Events.dnsResolvConfUnreadable);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('normalises query names', () => {
    assert.equal(toQueryName('Mail.Example.COM.'), 'mail.example.com');
    assert.equal(toQueryName('_dmarc.example.com'), '_dmarc.example.com');
    assert.equal(toQueryName('sel._domainkey.example.com'), 'sel._domainkey.example.com');
    assert.equal(toQueryName('bücher.example'), 'xn--bcher-kva.example');
    // ASCII names skip the WHATWG host rules, which would turn this into 127.0.0.1.
    assert.equal(toQueryName('0x7f.1'), '0x7f.1');
    for (const bad of ['', '.', 'a..b', 'a b', 'a\\b', 'a/b', 'x'.repeat(64), 'a'.repeat(254)]) {
      assert.equal(toQueryName(bad), null, bad);
    }
  });
});

describe('DNSSEC: the AD bit of a validating resolver, and TLSA records', () => {
  it('answers are secure only from a resolver configured as validating, and only where it says so', async () => {
    const server = await startDnsServer({
      secureZones: ['signed.example'],
      zones: {
        'signed.example': {
          mx: [{ type: 'A', address: '192.0.2.1' }],
          alias: [{ type: 'CNAME', target: 'mx.signed.example' }],
          _25: [],
          '_25._tcp.mx': [
            { type: 'TLSA', usage: 3, selector: 1, matchingType: 1, data: new Uint8Array(32).fill(0xab) },
            { type: 52, data: new Uint8Array([3]) },
          ],
        },
        'plain.example': { mx: [{ type: 'A', address: '192.0.2.2' }] },
      },
    });
    try {
      const validating = createResolver(server.config({ dnssec: true }));
      const a = await validating.a('mx.signed.example');
      assert.equal(a.kind === 'ok' && a.secure, true);
      // An alias: the records' owner after the CNAME is named (RFC 7672 §2.2.2 needs it for TLSA).
      const alias = await validating.a('alias.signed.example');
      assert.equal(alias.kind === 'ok' && alias.canonical, 'mx.signed.example');
      assert.equal(a.kind === 'ok' && a.canonical, undefined, 'no alias, no canonical name');
      const plain = await validating.a('mx.plain.example');
      assert.equal(plain.kind === 'ok' && plain.secure === true, false);
      const denial = await validating.a('nothing.signed.example');
      assert.deepEqual(denial, { kind: 'nxdomain', secure: true });
      const tlsa = await validating.tlsa!('_25._tcp.mx.signed.example');
      assert.equal(tlsa.kind, 'ok');
      if (tlsa.kind === 'ok') {
        assert.equal(tlsa.secure, true);
        // The malformed record (one octet) is dropped, the good one kept.
        assert.equal(tlsa.records.length, 1);
        assert.deepEqual(
          { ...tlsa.records[0]!, data: tlsa.records[0]!.data.length },
          {
            usage: 3,
            selector: 1,
            matchingType: 1,
            data: 32,
          },
        );
      }
      // The same server, not configured as validating: its AD bit is not believed (nor asked for).
      server.clearQueries();
      const trusting = createResolver(server.config());
      const b = await trusting.a('mx.signed.example');
      assert.equal(b.kind === 'ok' && b.secure === true, false);
      assert.equal(trusting.validating, false);
    } finally {
      await server.close();
    }
  });
});
