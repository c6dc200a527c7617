// The domain blocklist (DBL) and DNS allow-list (DNSWL) filters on the wire: zones served by the
// project's test DNS server over loopback UDP, asked through the production resolver (src/net/dns.ts),
// each check run through runFilter as the pipeline runs it (its timeout and failure mode included).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createResolver } from '../../src/net/dns.ts';
import { DblFilter, parseZone } from '../../src/policy/filters/dbl.ts';
import { DnswlFilter } from '../../src/policy/filters/dnswl.ts';
import {
  runFilter,
  type FilterClient,
  type FilterContext,
  type FilterFacts,
  type FilterMessage,
} from '../../src/policy/filters/filter.ts';
import { startDnsServer, type DnsServer } from '../support/dns-server.ts';

function client(ip: string, helo: string): FilterClient {
  return {
    ip,
    port: 40000,
    hostname: null,
    helo,
    tls: false,
    authUser: null,
    service: 'smtp',
    localAddress: '127.0.0.1',
    localPort: 25,
  };
}

function ctx(over: {
  ip?: string;
  helo?: string;
  from?: string;
  message?: FilterMessage;
  facts?: FilterFacts;
}): FilterContext {
  return {
    client: client(over.ip ?? '127.0.0.10', over.helo ?? '[127.0.0.10]'),
    queueId: over.message === undefined ? null : 'Q1',
    mailFrom: over.from ?? '',
    mailParams: new Map(),
    recipients: [],
    ...(over.message === undefined ? {} : { message: over.message }),
    facts: over.facts ?? {},
  };
}

function message(text: string): FilterMessage {
  const bytes = new TextEncoder().encode(text);
  return {
    headers: [],
    fromAddresses: [],
    sizeBytes: bytes.byteLength,
    read: async function* () {
      for (let i = 0; i < bytes.byteLength; i += 100) yield await Promise.resolve(bytes.subarray(i, i + 100));
    },
  };
}

describe('DBL and DNSWL against a loopback DNS server through the production resolver', () => {
  let dns: DnsServer;
  before(async () => {
    dns = await startDnsServer({
      zones: {
        'dbl.test': {
          '@': [{ type: 'SOA', minimum: 60 }],
          'spam.example': [
            { type: 'A', address: '127.0.1.2' },
            { type: 'TXT', text: 'https://check.example/spam.example' },
          ],
          'xn--bcher-kva.example': [{ type: 'A', address: '127.0.1.4' }],
          'refused.example': [{ type: 'A', address: '127.255.255.254' }],
        },
        'dbl-down.test': { '@': [], 'spam.example': 'timeout', 'clean.example': 'timeout' },
        'list.dnswl.test': {
          '10.0.0.127': [{ type: 'A', address: '127.0.15.2' }],
          '11.0.0.127': [{ type: 'A', address: '127.0.15.0' }],
          '12.0.0.127': [{ type: 'A', address: '127.0.0.255' }],
        },
      },
    });
  });
  after(async () => {
    await dns?.close();
  });

  const resolver = () => createResolver(dns.config({ timeoutMs: 300, maxCacheTtlMs: 0 }));
  const dbl = (zones: string[], opts: { dqsKey?: string; onFailure?: 'tempfail' | 'accept' } = {}) =>
    new DblFilter({
      zones: zones.map((z) => parseZone(z)!),
      threshold: 1,
      resolver: resolver(),
      timeoutMs: 2000,
      onFailure: opts.onFailure ?? 'tempfail',
      dqsKey: opts.dqsKey ?? null,
      skipDomains: ['ours.example'],
    });

  for (const [label, from, domain, code] of [
    ['ASCII', 'sender@mail.spam.example', 'spam.example', '127.0.1.2'],
    ['UTF-8', 'jürgen@mail.bücher.example', 'xn--bcher-kva.example', '127.0.1.4'],
  ] as const) {
    test(`a listed MAIL FROM domain is refused at MAIL: 554 5.7.1 naming it (${label})`, async () => {
      const f = dbl(['dbl.test']);
      dns.clearQueries();
      const o = await runFilter(f, f, 'mail', ctx({ from }));
      assert.equal(o.failed, undefined);
      assert.deepEqual(o.verdict, {
        kind: 'reject',
        reply: {
          code: 554,
          enhanced: '5.7.1',
          text: `Service unavailable; domain ${domain} listed in dbl.test`,
        },
        reason: `listed: ${domain} in dbl.test (${code})`,
      });
      assert.deepEqual(
        dns.queries.map((q) => [q.name.toLowerCase(), q.type]),
        [[`${domain}.dbl.test`, 'A']],
      );
    });

    test(`a listed URL domain in the message is refused at the end of data (${label})`, async () => {
      const f = dbl(['dbl.test']);
      const host = label === 'ASCII' ? 'www.spam.example' : 'www.bücher.example';
      const text = `Subject: x\r\n\r\nhref=3D"https://${host}/a=\r\nb" and http://clean.example/ and http://ours.example/\r\n`;
      dns.clearQueries();
      const o = await runFilter(f, f, 'message', ctx({ message: message(text) }));
      assert.equal(o.verdict.kind, 'reject', JSON.stringify(o));
      if (o.verdict.kind === 'reject')
        assert.equal(o.verdict.reply.text, `Service unavailable; domain ${domain} listed in dbl.test`);
      assert.deepEqual(
        dns.queries.map((q) => q.name.toLowerCase()).sort(),
        [`${domain}.dbl.test`, 'clean.example.dbl.test'].sort(),
      );
    });
  }

  test('an unlisted domain, a refusal answer, an IP-literal HELO: accepted', async () => {
    const f = dbl(['dbl.test']);
    for (const c of [
      ctx({ from: 'a@clean.example' }),
      ctx({ from: 'a@refused.example' }),
      ctx({ from: '', helo: '[127.0.0.10]' }),
      ctx({ from: '日本@ours.example' }),
    ]) {
      const o = await runFilter(f, f, 'mail', c);
      assert.deepEqual(o.verdict, { kind: 'accept' }, JSON.stringify(c.mailFrom));
    }
  });

  test('a DQS key is put in front of the zone on the wire', async () => {
    const f = dbl(['dbl.test'], { dqsKey: 'abcdefkey' });
    dns.clearQueries();
    await runFilter(f, f, 'mail', ctx({ from: 'a@spam.example' }));
    assert.deepEqual(
      dns.queries.map((q) => q.name.toLowerCase()),
      ['spam.example.abcdefkey.dbl.test'],
    );
  });

  test('a zone whose server does not answer: the failure mode decides (tempfail 451 4.7.1, or accept)', async () => {
    const tempfail = dbl(['dbl-down.test']);
    const o = await runFilter(tempfail, tempfail, 'mail', ctx({ from: 'a@spam.example' }));
    assert.equal(o.failed, 'every DBL lookup failed');
    assert.equal(o.verdict.kind, 'defer');
    if (o.verdict.kind === 'defer')
      assert.deepEqual([o.verdict.reply.code, o.verdict.reply.enhanced], [451, '4.7.1']);
    const open = dbl(['dbl-down.test'], { onFailure: 'accept' });
    assert.equal(
      (await runFilter(open, open, 'mail', ctx({ from: 'a@spam.example' }))).verdict.kind,
      'accept',
    );
    // One zone down among others: the listing of the other still refuses.
    const both = dbl(['dbl-down.test', 'dbl.test']);
    assert.equal(
      (await runFilter(both, both, 'mail', ctx({ from: 'a@spam.example' }))).verdict.kind,
      'reject',
    );
  });

  for (const [label, from] of [
    ['ASCII', 'sender@example.net'],
    ['UTF-8', 'jürgen@bücher.example'],
  ] as const) {
    test(`DNSWL: a listed client gets facts.allowListed; trust none and refusals do not (${label})`, async () => {
      const f = new DnswlFilter({
        zones: [parseZone('list.dnswl.test')!],
        resolver: resolver(),
        timeoutMs: 2000,
        onFailure: 'accept',
      });
      const seen: Record<string, unknown> = {};
      for (const ip of ['127.0.0.10', '127.0.0.11', '127.0.0.12', '127.0.0.13']) {
        const facts: FilterFacts = {};
        const c = ctx({ ip, from, facts });
        const o = await runFilter(f, f.open(c.client), 'connect', c);
        seen[ip] = [o.verdict, facts.allowListed ?? null];
      }
      assert.deepEqual(seen, {
        '127.0.0.10': [
          { kind: 'accept', reason: 'allow-listed in list.dnswl.test (127.0.15.2)' },
          'list.dnswl.test',
        ],
        '127.0.0.11': [{ kind: 'accept' }, null],
        '127.0.0.12': [{ kind: 'accept' }, null],
        '127.0.0.13': [{ kind: 'accept' }, null],
      });
    });
  }
});
