// The test DNS server, checked with an independent client: Node's c-ares resolver (node:dns), pointed at
// loopback only. This cross-checks the codec too: c-ares decodes what our encoder wrote, and our decoder
// reads the queries c-ares wrote.
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { RecordType, decodeMessage, encodeQuery } from '../../src/protocol/dns/message.ts';
import type { DnsMessage } from '../../src/protocol/dns/message.ts';
import { startDnsServer } from './dns-server.ts';
import type { DnsServer, Zones } from './dns-server.ts';

const zones: Zones = {
  'example.com': {
    '@': [
      { type: 'MX', preference: 10, exchange: 'mx1.example.com' },
      { type: 'MX', preference: 20, exchange: 'mx2.example.com', ttl: 60 },
      { type: 'TXT', text: 'v=spf1 -all' },
    ],
    mx1: [
      { type: 'A', address: '192.0.2.1', ttl: 120 },
      { type: 'AAAA', address: '2001:db8::1' },
    ],
    'mx2.example.com': [{ type: 'A', address: '192.0.2.2' }],
    www: [{ type: 'CNAME', target: 'mx1.example.com' }],
    'sel._domainkey': [{ type: 'TXT', text: 'v=DKIM1; k=rsa; p=' + 'A'.repeat(2000) }],
    'deep.below': [{ type: 'A', address: '192.0.2.9' }],
    broken: 'servfail',
    closed: 'refused',
    silent: 'timeout',
  },
  '2.0.192.in-addr.arpa': { '1': [{ type: 'PTR', target: 'mx1.example.com' }] },
};

describe('startDnsServer, read by node:dns (c-ares)', () => {
  let server: DnsServer;
  let dns: Resolver;
  before(async () => {
    server = await startDnsServer({ zones, negativeTtl: 30 });
    dns = new Resolver({ timeout: 300, tries: 1 });
    dns.setServers([server.endpoint]);
  });
  after(() => server.close());

  it('serves MX, A with TTL, AAAA, TXT and PTR, relative names resolved against the apex', async () => {
    const mx = await dns.resolveMx('example.com');
    assert.deepEqual(
      mx.sort((a, b) => a.priority - b.priority),
      [
        { exchange: 'mx1.example.com', priority: 10 },
        { exchange: 'mx2.example.com', priority: 20 },
      ].map((r) => ({ ...r, type: 'MX' })),
    );
    assert.deepEqual(await dns.resolve4('mx1.example.com', { ttl: true }), [
      { address: '192.0.2.1', ttl: 120 },
    ]);
    assert.deepEqual(await dns.resolve4('MX2.Example.COM'), ['192.0.2.2']);
    assert.deepEqual(await dns.resolve6('mx1.example.com'), ['2001:db8::1']);
    assert.deepEqual(await dns.resolveTxt('example.com'), [['v=spf1 -all']]);
    assert.deepEqual(await dns.reverse('192.0.2.1'), ['mx1.example.com']);
  });

  it('splits long TXT into 255-octet strings and answers over TCP when UDP truncates', async () => {
    server.clearQueries();
    const txt = await dns.resolveTxt('sel._domainkey.example.com');
    assert.equal(txt.length, 1);
    assert.deepEqual(
      txt[0]!.map((s) => s.length),
      [...new Array<number>(7).fill(255), 2018 - 7 * 255],
    );
    assert.equal(txt[0]!.join(''), 'v=DKIM1; k=rsa; p=' + 'A'.repeat(2000));
    assert.deepEqual(
      server.queries.map((q) => [q.name, q.type, q.transport]),
      [
        ['sel._domainkey.example.com', 'TXT', 'udp'],
        ['sel._domainkey.example.com', 'TXT', 'tcp'],
      ],
    );
  });

  it('follows CNAMEs inside its zones', async () => {
    assert.deepEqual(await dns.resolve4('www.example.com'), ['192.0.2.1']);
    assert.deepEqual(await dns.resolveCname('www.example.com'), ['mx1.example.com']);
  });

  it('says NXDOMAIN for unknown names, NODATA for missing types and empty non-terminals', async () => {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e: NodeJS.ErrnoException) => e.code,
      );
    assert.equal(await code(dns.resolveMx('nope.example.com')), 'ENOTFOUND');
    assert.equal(await code(dns.resolveMx('mx1.example.com')), 'ENODATA');
    assert.equal(await code(dns.resolve4('below.example.com')), 'ENODATA');
    assert.equal(await code(dns.resolve4('broken.example.com')), 'ESERVFAIL');
    assert.equal(await code(dns.resolve4('closed.example.com')), 'EREFUSED');
    assert.equal(await code(dns.resolve4('example.org')), 'EREFUSED');
    assert.equal(await code(dns.resolve4('silent.example.com')), 'ETIMEOUT');
  });

  it('logs queries and can be changed while running', async () => {
    server.clearQueries();
    server.setZone('example.net', { '@': [{ type: 'A', address: '198.51.100.7' }] });
    assert.deepEqual(await dns.resolve4('example.net'), ['198.51.100.7']);
    assert.deepEqual(
      server.queries.map((q) => [q.name, q.type, q.transport]),
      [['example.net', 'A', 'udp']],
    );
    assert.deepEqual(server.config(), {
      servers: [server.endpoint],
      timeoutMs: 500,
      attempts: 1,
      maxCacheTtlMs: 3_600_000,
      dnssec: false,
    });
  });
});

/** Send one raw query over UDP and return the decoded answer (or null after 300 ms of silence). */
async function ask(
  server: DnsServer,
  name: string,
  type: number,
  ednsPayloadSize: number | null,
): Promise<DnsMessage | null> {
  const q = encodeQuery({ id: 7, name, type, ednsPayloadSize });
  assert.ok(q.ok);
  const socket = createSocket('udp4');
  try {
    socket.send(q.bytes, server.port, server.address);
    const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), 300));
    const reply = await Promise.race([once(socket, 'message') as Promise<[Buffer]>, timeout]);
    if (reply === null) return null;
    const d = decodeMessage(new Uint8Array(reply[0]));
    assert.ok(d.ok);
    return d.message;
  } finally {
    socket.close();
  }
}

describe('startDnsServer details', () => {
  it('sets TC above 512 octets without EDNS and above the EDNS size with it', async () => {
    const server = await startDnsServer({
      zones: {
        'example.com': {
          t: [{ type: 'TXT', text: 'x'.repeat(700) }],
          u: [{ type: 'TXT', text: 'y'.repeat(1500) }],
        },
      },
    });
    try {
      const plain = await ask(server, 't.example.com', RecordType.TXT, null);
      assert.equal(plain?.tc, true);
      assert.deepEqual(plain?.answers, []);
      assert.equal(plain?.edns, null);
      const edns = await ask(server, 't.example.com', RecordType.TXT, 1232);
      assert.equal(edns?.tc, false);
      assert.equal(edns?.answers.length, 1);
      assert.equal(edns?.edns?.payloadSize, 1232);
      assert.equal((await ask(server, 'u.example.com', RecordType.TXT, 4096))?.tc, true);
      assert.deepEqual(
        server.queries.map((q) => q.ednsPayloadSize),
        [null, 1232, 4096],
      );
    } finally {
      await server.close();
    }
  });

  it('puts the zone SOA in negative answers, its minimum the negative TTL', async () => {
    const server = await startDnsServer({ zones: { 'example.com': { a: [] } }, negativeTtl: 42 });
    try {
      const nx = await ask(server, 'b.example.com', RecordType.A, 1232);
      assert.equal(nx?.rcode, 3);
      assert.equal(nx?.aa, true);
      const soa = nx?.authorities[0];
      assert.equal(soa?.name, 'example.com');
      assert.equal(soa?.data.kind === 'SOA' ? soa.data.minimum : -1, 42);
      const nodata = await ask(server, 'a.example.com', RecordType.A, 1232);
      assert.equal(nodata?.rcode, 0);
      assert.deepEqual(nodata?.answers, []);
      assert.equal(nodata?.authorities[0]?.type, RecordType.SOA);
    } finally {
      await server.close();
    }
  });

  it('takes a function instead of zones, and an onQuery override for hostile answers', async () => {
    const server = await startDnsServer({
      zones: (name) => (name.endsWith('.test') ? [{ type: 'A', address: '203.0.113.5' }] : undefined),
      onQuery: (query) => (query.questions[0]?.name === 'drop.test' ? 'drop' : undefined),
    });
    try {
      const a = await ask(server, 'any.test', RecordType.A, null);
      assert.equal(a?.answers[0]?.data.kind === 'A' ? a.answers[0].data.address : '', '203.0.113.5');
      assert.equal((await ask(server, 'other.example', RecordType.A, null))?.rcode, 3);
      assert.equal(await ask(server, 'drop.test', RecordType.A, null), null);
    } finally {
      await server.close();
    }
  });

  it('listens on IPv6 loopback too', async (t) => {
    let server: DnsServer;
    try {
      server = await startDnsServer({ zones, host: '::1' });
    } catch {
      t.skip('no IPv6 loopback here');
      return;
    }
    try {
      assert.match(server.endpoint, /^\[::1\]:\d+$/);
      const dns = new Resolver({ timeout: 300, tries: 1 });
      dns.setServers([server.endpoint]);
      assert.deepEqual(await dns.resolve4('mx1.example.com'), ['192.0.2.1']);
    } finally {
      await server.close();
    }
  });
});
