import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DnsAnswer } from '../../core/dns.ts';
import { DblFilter, lookupDomain, parseZone, UrlHostScanner, type DblOptions } from './dbl.ts';
import type { FilterContext, FilterMessage, Verdict } from './filter.ts';

const ok = (...records: string[]): DnsAnswer<string> => ({ kind: 'ok', records, ttlMs: 0 });

function resolver(answers: Record<string, DnsAnswer<string>>) {
  const asked: string[] = [];
  return {
    asked,
    a: (name: string) => {
      asked.push(name);
      return Promise.resolve(answers[name] ?? ({ kind: 'nxdomain' } as const));
    },
  };
}

/** A message read back in `chunkBytes` pieces, counting how often and how far it was read. */
function message(text: string, chunkBytes = 7) {
  const bytes = new TextEncoder().encode(text);
  const stats = { reads: 0, bytesRead: 0, closed: 0 };
  const m: FilterMessage = {
    headers: [],
    fromAddresses: [],
    sizeBytes: bytes.byteLength,
    read: () => {
      stats.reads++;
      return (async function* () {
        try {
          for (let i = 0; i < bytes.byteLength; i += chunkBytes) {
            const chunk = bytes.subarray(i, i + chunkBytes);
            stats.bytesRead += chunk.byteLength;
            yield await Promise.resolve(chunk); // as a file read would, a turn of the event loop
          }
        } finally {
          stats.closed++;
        }
      })();
    },
  };
  return { m, stats };
}

function ctx(over: { from?: string; helo?: string; message?: FilterMessage } = {}): FilterContext {
  return {
    client: {
      ip: '192.0.2.10',
      port: 40000,
      hostname: null,
      helo: over.helo ?? '[192.0.2.10]',
      tls: false,
      authUser: null,
      service: 'smtp',
      localAddress: '127.0.0.1',
      localPort: 25,
    },
    queueId: over.message === undefined ? null : 'Q1',
    mailFrom: over.from ?? '',
    mailParams: new Map(),
    recipients: [],
    ...(over.message === undefined ? {} : { message: over.message }),
    facts: {},
  };
}

function make(
  answers: Record<string, DnsAnswer<string>>,
  opts: Partial<DblOptions> & { zoneSpecs?: string[] } = {},
) {
  const r = resolver(answers);
  const f = new DblFilter({
    zones: (opts.zoneSpecs ?? ['dbl.test']).map((z) => parseZone(z)!),
    threshold: 1,
    resolver: r,
    timeoutMs: 1000,
    onFailure: 'tempfail',
    dqsKey: null,
    ...opts,
  });
  return { r, f };
}

const signal = new AbortController().signal;

function scan(text: string, chunk: number, max = 20): string[] {
  const s = new UrlHostScanner(max);
  const bytes = new TextEncoder().encode(text);
  for (let i = 0; i < bytes.byteLength; i += chunk) s.feed(bytes.subarray(i, i + chunk));
  s.end();
  return [...s.hosts].sort();
}

describe('DBL: what is looked up', () => {
  test('registered domains (A-labels); IP literals, single labels and bare suffixes never', () => {
    assert.equal(lookupDomain('mail.Example.CO.UK.'), 'example.co.uk');
    assert.equal(lookupDomain('a.b.example.com'), 'example.com');
    assert.equal(lookupDomain('mx.bücher.example'), 'xn--bcher-kva.example');
    assert.equal(lookupDomain('日本.example'), 'xn--wgv71a.example');
    for (const no of [
      '192.0.2.1',
      '[192.0.2.1]',
      '[IPv6:2001:db8::1]',
      '2001:db8::1',
      'localhost',
      'co.uk',
      '',
    ])
      assert.equal(lookupDomain(no), null, no);
  });

  test('URL hosts from any chunking: user info, ports, paths, QP soft breaks, =3D, UTF-8 hosts', () => {
    const text = [
      'Received: from x\r\n\r\n',
      '<a href=3D"https://user:pw@Spam.Example/path?x=1">click</a>\r\n',
      'see http://www.exam=\r\nple.org:8080/x and HTTPS://日本.example/ok.\r\n',
      'not a url: ftp://ftp.example.net/ mailto:a@b.example; bare words example.com\r\n',
      'ip http://192.0.2.1/x and v6 http://[2001:db8::1]/ end http://last.example.net',
    ].join('');
    const want = ['192.0.2.1', 'last.example.net', 'spam.example', 'www.example.org', '日本.example'];
    for (const chunk of [1, 2, 3, 7, 64, 100_000])
      assert.deepEqual(scan(text, chunk), want, `chunk ${chunk}`);
  });

  test('bounded: at most `max` hosts; a long line without URLs carries no more than the tail', () => {
    const many = Array.from({ length: 50 }, (_, i) => `http://h${i}.example/`).join(' ');
    assert.equal(scan(many, 13, 20).length, 20);
    assert.deepEqual(scan('x'.repeat(100_000) + ' http://found.example', 4096), ['found.example']);
    // Hostile: an endless host name is cut at 253 characters, not buffered whole.
    const endless = scan('http://' + 'a'.repeat(10_000) + '.example', 1000);
    assert.ok(endless.every((h) => h.length <= 253));
  });
});

for (const [label, from, helo] of [
  ['ASCII', 'sender@mail.spam.example', 'mx.spam.example'],
  ['UTF-8', 'jürgen@mail.bücher.example', 'mx.bücher.example'],
] as const) {
  const domain = label === 'ASCII' ? 'spam.example' : 'xn--bcher-kva.example';
  describe(`DBL filter at MAIL (${label})`, () => {
    test('a listed MAIL FROM domain is refused with 554 5.7.1 naming it and the zone', async () => {
      const { f, r } = make({ [`${domain}.dbl.test`]: ok('127.0.1.2') });
      const v = await f.check('mail', ctx({ from }), signal);
      assert.equal(v.kind, 'reject', JSON.stringify(v));
      if (v.kind !== 'reject') return;
      assert.deepEqual([v.reply.code, v.reply.enhanced], [554, '5.7.1']);
      assert.equal(v.reply.text, `Service unavailable; domain ${domain} listed in dbl.test`);
      assert.equal(v.reason, `listed: ${domain} in dbl.test (127.0.1.2)`);
      assert.deepEqual(r.asked, [`${domain}.dbl.test`]);
    });

    test('the HELO name counts; both asked once when they share a domain; the null sender is no domain', async () => {
      const { f, r } = make({ [`${domain}.dbl.test`]: ok('127.0.1.2') });
      assert.equal((await f.check('mail', ctx({ from: '', helo }), signal)).kind, 'reject');
      assert.equal((await f.check('mail', ctx({ from, helo }), signal)).kind, 'reject');
      assert.deepEqual(r.asked, [`${domain}.dbl.test`, `${domain}.dbl.test`]);
    });

    test('no lookups for our own domains, IP literal HELOs, or when the answer is no listing', async () => {
      const { f, r } = make({ [`${domain}.dbl.test`]: ok('127.0.1.2') }, { skipDomains: [helo] });
      assert.deepEqual(await f.check('mail', ctx({ from, helo }), signal), { kind: 'accept' });
      assert.deepEqual(r.asked, []);
      for (const answer of ['127.0.0.1', '127.0.1.255', '127.255.255.254']) {
        const g = make({ [`${domain}.dbl.test`]: ok(answer) }).f;
        assert.equal((await g.check('mail', ctx({ from }), signal)).kind, 'accept', answer);
      }
    });

    test('weights add up to the threshold; codes filter; a DQS key goes in front of the zone', async () => {
      const answers = {
        [`${domain}.a.test`]: ok('127.0.1.2'),
        [`${domain}.b.test`]: ok('127.0.1.5'),
      };
      const two = { threshold: 2 };
      assert.equal(
        (
          await make(answers, { ...two, zoneSpecs: ['a.test', 'c.test'] }).f.check(
            'mail',
            ctx({ from }),
            signal,
          )
        ).kind,
        'accept',
      );
      assert.equal(
        (
          await make(answers, { ...two, zoneSpecs: ['a.test', 'b.test'] }).f.check(
            'mail',
            ctx({ from }),
            signal,
          )
        ).kind,
        'reject',
      );
      assert.equal(
        (await make(answers, { ...two, zoneSpecs: ['a.test*2'] }).f.check('mail', ctx({ from }), signal))
          .kind,
        'reject',
      );
      assert.equal(
        (await make(answers, { zoneSpecs: ['b.test=127.0.1.2'] }).f.check('mail', ctx({ from }), signal))
          .kind,
        'accept',
      );
      const dqs = make({ [`${domain}.KEY.dbl.test`]: ok('127.0.1.2') }, { dqsKey: 'KEY' });
      const v = await dqs.f.check('mail', ctx({ from }), signal);
      assert.equal(v.kind, 'reject');
      if (v.kind === 'reject')
        assert.match(v.reply.text, /listed in dbl\.test$/, 'the key is not in the reply');
    });

    test('every lookup failing is a failure; one failing among others is not', async () => {
      const err: DnsAnswer<string> = { kind: 'error', temporary: true, reason: 'timeout' };
      await assert.rejects(
        make({ [`${domain}.dbl.test`]: err }).f.check('mail', ctx({ from }), signal),
        /every DBL lookup failed/,
      );
      const mixed = make({ [`${domain}.dbl.test`]: err }, { zoneSpecs: ['dbl.test', 'other.test'] });
      assert.equal((await mixed.f.check('mail', ctx({ from }), signal)).kind, 'accept');
    });
  });
}

describe('DBL filter at the end of data', () => {
  const body = (host: string) =>
    `Received: from client\r\nFrom: a@example.net\r\nSubject: hi\r\n\r\nVisit https://www.${host}/offer=\r\n now http://ok.example/\r\n`;

  for (const [label, host, domain] of [
    ['ASCII', 'spam.example', 'spam.example'],
    ['UTF-8', '日本.example', 'xn--wgv71a.example'],
  ] as const) {
    test(`a listed URL domain refuses the message (${label})`, async () => {
      const { f, r } = make({ [`${domain}.dbl.test`]: ok('127.0.1.2') });
      const { m, stats } = message(body(host));
      const v: Verdict = await f.check('message', ctx({ message: m }), signal);
      assert.equal(v.kind, 'reject', JSON.stringify(v));
      if (v.kind === 'reject')
        assert.equal(v.reply.text, `Service unavailable; domain ${domain} listed in dbl.test`);
      assert.deepEqual(r.asked.sort(), [`${domain}.dbl.test`, 'ok.example.dbl.test'].sort());
      assert.deepEqual([stats.reads, stats.closed], [1, 1]);
    });
  }

  test('body_domains = false: the filter runs at MAIL only', () => {
    assert.deepEqual(make({}).f.stages, ['mail', 'message']);
    assert.deepEqual(make({}, { bodyDomains: false }).f.stages, ['mail']);
  });

  test('bounded reading: stops at maxScanBytes and at maxBodyDomains, and closes the spool', async () => {
    const far = 'x'.repeat(5000) + ' http://far.example/';
    const a = make({ 'far.example.dbl.test': ok('127.0.1.2') }, { maxScanBytes: 4096 });
    const first = message(far, 1024);
    assert.deepEqual(await a.f.check('message', ctx({ message: first.m }), signal), { kind: 'accept' });
    assert.equal(first.stats.bytesRead, 4096);
    assert.equal(first.stats.closed, 1);
    const many =
      Array.from({ length: 30 }, (_, i) => `http://h${i}.example/`).join('\r\n') +
      '\r\n' +
      'y'.repeat(10_000);
    const b = make({}, { maxBodyDomains: 5 });
    const second = message(many, 64);
    await b.f.check('message', ctx({ message: second.m }), signal);
    assert.equal(b.r.asked.length, 5);
    assert.ok(second.stats.bytesRead < 1000, `read ${second.stats.bytesRead}`);
    assert.equal(second.stats.closed, 1);
  });

  test('an aborted check stops reading and closes the spool', async () => {
    const { f } = make({});
    const { m, stats } = message('http://a.example/ '.repeat(1000), 16);
    const controller = new AbortController();
    controller.abort(new Error('dbl: timed out'));
    await assert.rejects(f.check('message', ctx({ message: m }), controller.signal), /aborted/);
    assert.equal(stats.closed, 1);
    assert.ok(stats.bytesRead <= 16);
  });

  test('our own domains in the body are not looked up', async () => {
    const { f, r } = make({}, { skipDomains: ['example.org', 'bücher.example'] });
    const { m } = message(
      'http://www.example.org/ https://mx.bücher.example/ http://xn--bcher-kva.example/ http://them.example/',
    );
    await f.check('message', ctx({ message: m }), signal);
    assert.deepEqual(r.asked, ['them.example.dbl.test']);
  });
});
