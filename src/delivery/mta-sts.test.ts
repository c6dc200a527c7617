import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { nullLogger } from '../core/ports.ts';
import { createResolver } from '../net/dns.ts';
import { makeCerts } from '../../test/e2e/outbound-helpers.ts';
import { startDnsServer, type DnsServer } from '../../test/support/dns-server.ts';
import { MtaSts, mxMatches, parseStsPolicy, parseStsRecord } from './mta-sts.ts';
import { MemoryPolicyCache } from './policy-cache.ts';

describe('MTA-STS records and policies (RFC 8461 §3)', () => {
  test('the TXT record: v=STSv1 first, an id of 1-32 alphanumerics', () => {
    assert.deepEqual(parseStsRecord('v=STSv1; id=20260101T000000;'), { id: '20260101T000000' });
    assert.deepEqual(parseStsRecord('v=STSv1;id=abc; ext=1'), { id: 'abc' });
    for (const bad of [
      'v=STSv2; id=1',
      'id=1; v=STSv1',
      'v=STSv1;',
      'v=STSv1; id=has-dash',
      `v=STSv1; id=${'a'.repeat(33)}`,
    ])
      assert.equal(parseStsRecord(bad), null, bad);
  });

  test('the policy file: version, mode, max_age, mx lines; CRLF or LF; unknown keys ignored', () => {
    assert.deepEqual(
      parseStsPolicy(
        'version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\nmx: *.Example.net.\r\nmax_age: 604800\r\nextra: x\r\n',
        'id1',
      ),
      { id: 'id1', mode: 'enforce', mx: ['mx1.example.org', '*.example.net'], maxAgeS: 604800 },
    );
    assert.equal(parseStsPolicy('version: STSv1\nmode: none\nmax_age: 86400\n', 'x').constructor, Object);
    assert.equal(
      (
        parseStsPolicy('version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 9999999999\n', 'x') as {
          maxAgeS: number;
        }
      ).maxAgeS,
      31_557_600,
    );
    for (const [bad, why] of [
      ['mode: enforce\nmx: a.b\nmax_age: 1\n', /version/],
      ['version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n', /mode/],
      ['version: STSv1\nmode: enforce\nmax_age: 1\n', /no mx/],
      ['version: STSv1\nmode: enforce\nmx: a.b\n', /max_age/],
      ['version: STSv1\nmode: enforce\nmx: a.b\nmax_age: soon\n', /max_age/],
      ['version: STSv1\nmode: enforce\nmx: *.*.b\nmax_age: 1\n', /pattern/],
      ['<html>not a policy</html>', /colon/],
    ] as const)
      assert.match(parseStsPolicy(bad, 'x') as string, why);
  });

  test('mx patterns: exact names, or one leftmost label for "*."', () => {
    const p = ['mx1.example.org', '*.example.net'];
    assert.ok(mxMatches('MX1.example.org.', p));
    assert.ok(mxMatches('a.example.net', p));
    assert.ok(!mxMatches('a.b.example.net', p), 'the wildcard covers one label');
    assert.ok(!mxMatches('example.net', p));
    assert.ok(!mxMatches('mx2.example.org', p));
  });
});

describe('MTA-STS discovery over DNS and HTTPS, with the cache', () => {
  let dns: DnsServer;
  let https: Server;
  let port: number;
  let ca: string;
  let requests: string[] = [];
  let answer: { status: number; type: string; body: string; location?: string } = {
    status: 200,
    type: 'text/plain',
    body: '',
  };
  const policy = (mode = 'enforce', maxAge = 86400): string =>
    `version: STSv1\nmode: ${mode}\nmx: mx.example.test\nmax_age: ${maxAge}\n`;

  before(async () => {
    const certs = await makeCerts(['mta-sts.example.test', 'mta-sts.other.test']);
    ca = certs.caCert;
    https = createServer({ cert: certs.cert, key: certs.key }, (req, res) => {
      requests.push(`${req.headers.host ?? ''}${req.url ?? ''}`);
      res.writeHead(answer.status, {
        'Content-Type': answer.type,
        ...(answer.location === undefined ? {} : { Location: answer.location }),
      });
      res.end(answer.body);
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    port = (https.address() as { port: number }).port;
    dns = await startDnsServer({
      zones: {
        'example.test': {
          '_mta-sts': [{ type: 'TXT', text: 'v=STSv1; id=one;' }],
          'mta-sts': [{ type: 'A', address: '127.0.0.1' }],
        },
        'other.test': {
          'mta-sts': [{ type: 'A', address: '127.0.0.1' }],
        },
      },
    });
  });
  after(async () => {
    https?.close();
    await dns?.close();
  });

  const make = (clock: { now: number }, cache = new MemoryPolicyCache(), tlsCa: string | null = ca) =>
    new MtaSts({
      resolver: createResolver(dns.config({ maxCacheTtlMs: 0 })),
      cache,
      clock: { nowMs: () => clock.now },
      logger: nullLogger,
      tlsCa,
      httpsPort: port,
    });

  test('fetched once over HTTPS (certificate checked, our resolver), then from the cache until the id changes', async () => {
    requests = [];
    answer = { status: 200, type: 'text/plain; charset=utf-8', body: policy() };
    const clock = { now: 1_000_000 };
    const cache = new MemoryPolicyCache();
    const sts = make(clock, cache);
    const first = await sts.policyFor('Example.Test.');
    assert.equal(first?.source, 'fetched');
    assert.deepEqual(first?.policy, { id: 'one', mode: 'enforce', mx: ['mx.example.test'], maxAgeS: 86400 });
    assert.deepEqual(requests, [`mta-sts.example.test:${port}/.well-known/mta-sts.txt`]);
    assert.equal((await sts.policyFor('example.test'))?.source, 'cache');
    assert.equal(requests.length, 1);
    // A new id in DNS: fetched again.
    dns.setZone('example.test', {
      '_mta-sts': [{ type: 'TXT', text: 'v=STSv1; id=two;' }],
      'mta-sts': [{ type: 'A', address: '127.0.0.1' }],
    });
    answer = { status: 200, type: 'text/plain', body: policy('testing') };
    const second = await sts.policyFor('example.test');
    assert.equal(second?.policy.mode, 'testing');
    assert.equal(requests.length, 2);
    // The TXT record gone (an attacker stripping it): the cached policy stays in force until max_age.
    dns.setZone('example.test', { 'mta-sts': [{ type: 'A', address: '127.0.0.1' }] });
    assert.equal((await sts.policyFor('example.test'))?.policy.id, 'two');
    clock.now += 86_401_000;
    assert.equal(await sts.policyFor('example.test'), null, 'expired and not renewed');
    await sts.close();
  });

  test('refused: an untrusted certificate, redirects, other statuses and types, oversize, invalid policies', async () => {
    dns.setZone('other.test', {
      '_mta-sts': [{ type: 'TXT', text: 'v=STSv1; id=x1;' }],
      'mta-sts': [{ type: 'A', address: '127.0.0.1' }],
    });
    const cases: [typeof answer, string | null][] = [
      [{ status: 200, type: 'text/plain', body: policy() }, null],
      [
        {
          status: 301,
          type: 'text/plain',
          body: '',
          location: `https://mta-sts.example.test:${port}/.well-known/mta-sts.txt`,
        },
        null,
      ],
      [{ status: 404, type: 'text/plain', body: 'no' }, null],
      [{ status: 200, type: 'text/html', body: policy() }, null],
      [{ status: 200, type: 'text/plain', body: `${policy()}${'#'.repeat(70_000)}` }, null],
      [{ status: 200, type: 'text/plain', body: 'version: STSv1\nmode: enforce\n' }, null],
    ];
    for (const [i, [a]] of cases.entries()) {
      answer = a;
      // The first case is fetched with no trust in the test CA: an untrusted certificate.
      const sts = make({ now: 0 }, new MemoryPolicyCache(), i === 0 ? null : ca);
      assert.equal(
        await sts.policyFor('other.test'),
        null,
        JSON.stringify({ i, status: a.status, type: a.type }),
      );
      await sts.close();
    }
  });

  test('no TXT record and nothing cached: no policy, and no HTTPS request', async () => {
    requests = [];
    dns.setZone('other.test', { 'mta-sts': [{ type: 'A', address: '127.0.0.1' }] });
    const sts = make({ now: 0 });
    assert.equal(await sts.policyFor('other.test'), null);
    assert.deepEqual(requests, []);
    await sts.close();
  });
});
