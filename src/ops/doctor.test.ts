// tern doctor's checks against an in-memory zone (a fake Resolver), real certificates made with the
// selfsigned package (a private CA, leaves signed by it, expired and expiring ones), and small real SMTP
// servers on loopback for the listener and open-relay checks: a good setup passes everything, and each
// broken zone, certificate or server gets the status and fix it should.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generate } from 'selfsigned';
import type { Config } from '../config/config.ts';
import { defaultConfig } from '../config/config.ts';
import type { DnsAnswer, MxRecord, Resolver } from '../core/dns.ts';
import type { DkimKey } from '../delivery/dkim-sign.ts';
import { dkimDnsRecord, generateDkimKey } from '../delivery/dkim-sign.ts';
import type { DoctorCheck, DoctorConfig, DoctorDeps } from './doctor.ts';
import {
  checkCertificatePem,
  checkDomain,
  checkListeners,
  checkOpenRelay,
  publicLocalDomains,
  runDoctor,
  toALabel,
} from './doctor.ts';
import { mtaStsPolicyId, mtaStsPolicyText } from './dns.ts';

const DAY = 86_400_000;
const NOW = Date.parse('2026-06-01T12:00:00Z');
const HOST = 'mx.example.org';
const V4 = '192.0.2.10';
const V6 = '2001:db8::10';

// ---------------------------------------------------------------------------------------------------
// A fake resolver over a plain zone: name → records by type; PTR keyed by address.

interface Node {
  readonly A?: readonly string[];
  readonly AAAA?: readonly string[];
  readonly MX?: readonly MxRecord[];
  readonly TXT?: readonly string[];
  readonly PTR?: readonly string[];
}
type Zone = Readonly<Record<string, Node | 'servfail'>>;

function fakeResolver(zone: Zone): Resolver {
  const ask = <T>(name: string, type: keyof Node): Promise<DnsAnswer<T>> => {
    const key = name.toLowerCase().replace(/\.$/, '');
    const node = zone[key];
    if (node === 'servfail') return Promise.resolve({ kind: 'error', temporary: true, reason: 'SERVFAIL' });
    if (node === undefined) return Promise.resolve({ kind: 'nxdomain' });
    const records = node[type] as readonly T[] | undefined;
    if (records === undefined || records.length === 0) return Promise.resolve({ kind: 'nodata' });
    return Promise.resolve({ kind: 'ok', records, ttlMs: 300_000 });
  };
  return {
    mx: (n) => ask<MxRecord>(n, 'MX'),
    a: (n) => ask<string>(n, 'A'),
    aaaa: (n) => ask<string>(n, 'AAAA'),
    txt: (n) => ask<string>(n, 'TXT'),
    ptr: (address) => ask<string>(address, 'PTR'),
  };
}

function goodZone(domain: string, keys: readonly DkimKey[], stsId: string): Record<string, Node> {
  return {
    [domain]: {
      MX: [{ preference: 10, exchange: HOST }],
      TXT: ['v=spf1 mx -all', 'google-site-verification=x'],
    },
    [`_dmarc.${domain}`]: { TXT: [`v=DMARC1; p=quarantine; rua=mailto:postmaster@${domain}`] },
    [`_mta-sts.${domain}`]: { TXT: [`v=STSv1; id=${stsId}`] },
    [`_smtp._tls.${domain}`]: { TXT: [`v=TLSRPTv1; rua=mailto:postmaster@${domain}`] },
    ...Object.fromEntries(
      keys.map((k) => [`${k.selector}._domainkey.${domain}`, { TXT: [dkimDnsRecord(k).value] }]),
    ),
  };
}

const hostNodes: Record<string, Node> = {
  [HOST]: { A: [V4], AAAA: [V6] },
  [V4]: { PTR: [HOST] },
  [V6]: { PTR: [HOST] },
};

// ---------------------------------------------------------------------------------------------------
// Certificates

interface Pems {
  readonly cert: string;
  readonly key: string;
}

async function makeCa(name: string): Promise<Pems> {
  const r = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: new Date(NOW - 30 * DAY),
    notAfterDate: new Date(NOW + 3650 * DAY),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { cert: r.cert, key: r.private };
}

async function makeLeaf(
  names: readonly string[],
  opts: { ca?: Pems; notAfterMs?: number; notBeforeMs?: number } = {},
): Promise<Pems> {
  const r = await generate([{ name: 'commonName', value: names[0]! }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate: new Date(opts.notBeforeMs ?? NOW - DAY),
    notAfterDate: new Date(opts.notAfterMs ?? NOW + 90 * DAY),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      // As Tern's own self-signed certificate has it (src/net/tls.ts): no keyCertSign.
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'subjectAltName', altNames: names.map((value) => ({ type: 2 as const, value })) },
    ],
    ...(opts.ca === undefined ? {} : { ca: opts.ca }),
  });
  return { cert: r.cert, key: r.private };
}

// ---------------------------------------------------------------------------------------------------
// Small SMTP servers: a scripted RCPT reply, garbage, or silence.

type Behaviour = { rcpt: string } | 'garbage' | 'silent';

async function smtpServer(
  behaviour: Behaviour,
): Promise<{ port: number; server: Server; commands: string[] }> {
  const commands: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (behaviour === 'silent') return;
    if (behaviour === 'garbage') {
      socket.write('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    socket.write('220 fake ESMTP\r\n');
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\r\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 2);
        commands.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-fake\r\n250 8BITMIME\r\n');
        else if (verb === 'MAIL') socket.write('250 2.1.0 OK\r\n');
        else if (verb === 'RCPT') socket.write(`${behaviour.rcpt}\r\n`);
        else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
        else socket.write('250 2.0.0 OK\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const close = server.close.bind(server);
  Object.assign(server, {
    close: (cb?: (err?: Error) => void) => {
      for (const s of sockets) s.destroy();
      return close(cb);
    },
  });
  return { port: address.port, server, commands };
}

async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

// ---------------------------------------------------------------------------------------------------

let dir: string;
let keys: DkimKey[];
let utf8Keys: DkimKey[];
let ca: Pems;
let caPath: string;
let goodCertPath: string;
let relay: Awaited<ReturnType<typeof smtpServer>>;
let stsId: string;

function config(over: Partial<Config> = {}): DoctorConfig {
  const base = defaultConfig();
  return {
    ...base,
    hostname: HOST,
    dataDir: join(dir, 'data'),
    localDomains: ['example.org', 'bücher.example', 'localhost'],
    listeners: [{ ...base.listeners[0]!, host: '127.0.0.1', port: relay.port }],
    admin: { ...base.admin, listeners: [] },
    tls: { cert: goodCertPath, key: null, clientCa: null },
    outbound: { ...base.outbound, tlsCa: caPath },
    ...over,
  };
}

function deps(zone: Zone, over: Partial<Config> = {}): DoctorDeps {
  return { config: config(over), resolver: fakeResolver(zone), nowMs: NOW, networkTimeoutMs: 1000 };
}

function only(checks: readonly DoctorCheck[], id: DoctorCheck['id']): DoctorCheck {
  const found = checks.filter((c) => c.id === id);
  assert.equal(found.length, 1, `one ${id} check in ${JSON.stringify(checks, null, 2)}`);
  return found[0]!;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tern-doctor-'));
  keys = [
    (
      await generateDkimKey({
        dataDir: join(dir, 'data'),
        domain: 'example.org',
        selector: 's1',
        algorithm: 'ed25519-sha256',
        nowMs: NOW,
      })
    ).key,
  ];
  utf8Keys = [
    (
      await generateDkimKey({
        dataDir: join(dir, 'data'),
        domain: 'bücher.example',
        selector: 's1',
        algorithm: 'ed25519-sha256',
        nowMs: NOW,
      })
    ).key,
  ];
  ca = await makeCa('Doctor Test CA');
  caPath = join(dir, 'ca.pem');
  await writeFile(caPath, ca.cert);
  const leaf = await makeLeaf([HOST, 'mail.example.org'], { ca });
  goodCertPath = join(dir, 'good.pem');
  await writeFile(goodCertPath, leaf.cert);
  relay = await smtpServer({ rcpt: '554 5.7.1 Relay access denied' });
  stsId = mtaStsPolicyId(mtaStsPolicyText(config()));
});

after(async () => {
  await closeServer(relay.server);
  await rm(dir, { recursive: true, force: true });
});

describe('names', () => {
  test('U-labels become A-labels; single-label local domains are skipped', () => {
    assert.equal(toALabel('Bücher.Example.'), 'xn--bcher-kva.example');
    assert.equal(toALabel('EXAMPLE.org'), 'example.org');
    assert.equal(toALabel('bad domain'), null);
    assert.equal(toALabel(''), null);
    assert.deepEqual(publicLocalDomains(config()), ['example.org', 'xn--bcher-kva.example']);
  });
});

describe('a good setup', () => {
  test('every check passes (ASCII domain)', async () => {
    const zone = { ...hostNodes, ...goodZone('example.org', keys, stsId) };
    const report = await runDoctor(deps(zone), ['example.org']);
    assert.deepEqual(
      report.checks.filter((c) => c.status !== 'pass').map((c) => `${c.id}: ${c.summary}`),
      [],
    );
    assert.equal(report.ok, true);
    assert.deepEqual(report.domains, ['example.org']);
    assert.deepEqual(
      report.checks.map((c) => c.id),
      [
        'host-address',
        'ptr',
        'ptr',
        'tls-names',
        'tls-expiry',
        'tls-chain',
        'port',
        'open-relay',
        'mx',
        'spf',
        'dkim',
        'dmarc',
        'mta-sts',
        'tls-rpt',
      ],
    );
    assert.equal(report.counts.pass, report.checks.length);
    assert.ok(
      report.checks.every((c) => c.fix === undefined),
      'no fix on a pass',
    );
    assert.equal(only(report.checks, 'mx').summary, 'example.org MX 10 mx.example.org');
    assert.match(only(report.checks, 'open-relay').summary, /554 5\.7\.1 Relay access denied/);
    assert.ok(relay.commands.includes('RCPT TO:<relay-test@example.invalid>'));
    assert.ok(!relay.commands.some((c) => c.toUpperCase() === 'DATA'), 'the relay test never sends DATA');
  });

  test('every check passes for a UTF-8 domain given as U-label, checked as its A-label', async () => {
    const zone = { ...hostNodes, ...goodZone('xn--bcher-kva.example', utf8Keys, stsId) };
    const report = await runDoctor(deps(zone), ['bücher.example']);
    assert.deepEqual(
      report.checks.filter((c) => c.status !== 'pass').map((c) => c.summary),
      [],
    );
    assert.deepEqual(report.domains, ['xn--bcher-kva.example']);
    assert.ok(
      report.checks.filter((c) => c.domain !== undefined).every((c) => c.domain === 'xn--bcher-kva.example'),
    );
    assert.equal(
      only(report.checks, 'dkim').summary,
      's1._domainkey.xn--bcher-kva.example publishes our ed25519-sha256 key',
    );
  });
});

describe('broken zones', () => {
  const domainChecks = async (
    zone: Zone,
    over: Partial<Config> = {},
    domain = 'example.org',
  ): Promise<DoctorCheck[]> => checkDomain(deps({ ...hostNodes, ...zone }, over), domain, [V4, V6]);
  const good = (): Record<string, Node> => goodZone('example.org', keys, stsId);

  test('no SPF, no DMARC, no MX: each a fail with the record to publish', async () => {
    const zone = good();
    zone['example.org'] = { TXT: ['unrelated'] };
    delete zone['_dmarc.example.org'];
    const checks = await domainChecks(zone);
    const spf = only(checks, 'spf');
    assert.equal(spf.status, 'fail');
    assert.equal(spf.summary, 'no SPF record for example.org');
    assert.equal(spf.fix, 'publish: example.org. IN TXT "v=spf1 mx -all"');
    const mx = only(checks, 'mx');
    assert.equal(mx.status, 'fail');
    assert.equal(mx.fix, 'publish: example.org. IN MX 10 mx.example.org.');
    const dmarc = only(checks, 'dmarc');
    assert.equal(dmarc.status, 'fail');
    assert.match(dmarc.fix ?? '', /^publish: _dmarc\.example\.org\. IN TXT "v=DMARC1; p=quarantine/);
  });

  test('a domain that does not exist fails MX', async () => {
    const checks = await checkDomain(deps(hostNodes), 'nowhere.example', [V4]);
    assert.equal(only(checks, 'mx').status, 'fail');
    assert.match(only(checks, 'mx').summary, /does not exist/);
  });

  test('two SPF records are a permerror: fail', async () => {
    const zone = good();
    zone['example.org'] = { ...zone['example.org'], TXT: ['v=spf1 mx -all', 'v=spf1 ip4:192.0.2.0/24 -all'] };
    const spf = only(await domainChecks(zone), 'spf');
    assert.equal(spf.status, 'fail');
    assert.match(spf.summary, /2 SPF records/);
  });

  test('SPF syntax error, +all, and a record that does not cover us', async () => {
    const cases: [string, 'fail' | 'warn', RegExp][] = [
      ['v=spf1 mx foo:bar -all', 'fail', /syntax error/],
      ['v=spf1 +all', 'fail', /\+all/],
      [
        'v=spf1 ip4:198.51.100.1 -all',
        'fail',
        /does not pass our address \(192\.0\.2\.10: fail, 2001:db8::10: fail\)/,
      ],
      ['v=spf1 ip4:192.0.2.10 ~all', 'warn', /2001:db8::10: softfail/],
      ['v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all', 'pass', /passes/],
      ['v=spf1 a:mx.example.org -all', 'pass', /passes/],
    ] as [string, 'fail' | 'warn', RegExp][];
    for (const [record, status, summary] of cases) {
      const zone = good();
      zone['example.org'] = { ...zone['example.org'], TXT: [record] };
      const spf = only(await domainChecks(zone), 'spf');
      assert.equal(spf.status, status, record);
      assert.match(spf.summary, summary, record);
    }
  });

  test('SPF through a relay host is a warn naming the relay', async () => {
    const base = defaultConfig().outbound;
    const spf = only(
      await domainChecks(good(), {
        outbound: {
          ...base,
          relay: { host: 'smtp.provider.example', port: 587, mx: false, tls: 'verify', auth: null },
        },
      }),
      'spf',
    );
    assert.equal(spf.status, 'warn');
    assert.match(spf.summary, /relay smtp\.provider\.example/);
  });

  test('DKIM: a different key, a revoked key, no record, garbage: each a fail', async () => {
    const other = (
      await generateDkimKey({
        dataDir: join(dir, 'other'),
        domain: 'example.org',
        selector: 's1',
        algorithm: 'ed25519-sha256',
        nowMs: NOW,
      })
    ).key;
    const cases: [Node | undefined, RegExp][] = [
      [{ TXT: [dkimDnsRecord(other).value] }, /publishes a different key than ours/],
      [{ TXT: ['v=DKIM1; k=ed25519; p='] }, /revoked/],
      [undefined, /no DKIM key record at s1\._domainkey\.example\.org/],
      [{ TXT: ['\u0000garbage=;;=='] }, /not a usable DKIM key record/],
    ];
    for (const [node, summary] of cases) {
      const zone = good();
      if (node === undefined) delete zone['s1._domainkey.example.org'];
      else zone['s1._domainkey.example.org'] = node;
      const dkim = only(await domainChecks(zone), 'dkim');
      assert.equal(dkim.status, 'fail', String(summary));
      assert.match(dkim.summary, summary);
      assert.match(dkim.fix ?? '', /^publish: s1\._domainkey\.example\.org\. IN TXT "v=DKIM1; k=ed25519; p=/);
    }
  });

  test('DKIM: no key held is a warn with the keygen command', async () => {
    const dkim = only(await checkDomain(deps(hostNodes), 'no-keys.example', [V4]), 'dkim');
    assert.equal(dkim.status, 'warn');
    assert.equal(
      dkim.fix,
      'tern dkim keygen --domain no-keys.example --selector s1, then publish the record tern dns records prints',
    );
  });

  test('DMARC: p=none warns, two records fail, no p= fails', async () => {
    const cases: [readonly string[], 'warn' | 'fail', RegExp][] = [
      [['v=DMARC1; p=none; rua=mailto:d@example.org'], 'warn', /p=none/],
      [['v=DMARC1; p=reject', 'v=DMARC1; p=none'], 'fail', /2 DMARC records/],
      [['v=DMARC1; p=bogus'], 'fail', /no valid policy/],
    ];
    for (const [txt, status, summary] of cases) {
      const zone = good();
      zone['_dmarc.example.org'] = { TXT: txt };
      const dmarc = only(await domainChecks(zone), 'dmarc');
      assert.equal(dmarc.status, status, txt.join(' | '));
      assert.match(dmarc.summary, summary);
    }
  });

  test('MX: null MX fails, an MX that is not us warns, MX hosts without addresses fail', async () => {
    const cases: [readonly MxRecord[], 'warn' | 'fail', RegExp][] = [
      [[{ preference: 0, exchange: '' }], 'fail', /null MX/],
      [[{ preference: 10, exchange: 'mx.elsewhere.example' }], 'warn', /not among them/],
      [[{ preference: 10, exchange: 'ghost.example.org' }], 'fail', /no MX host has an address/],
    ];
    const zone0: Record<string, Node> = { ...good(), 'mx.elsewhere.example': { A: ['198.51.100.7'] } };
    for (const [mx, status, summary] of cases) {
      const zone = { ...zone0, 'example.org': { ...zone0['example.org'], MX: mx } };
      const check = only(await domainChecks(zone), 'mx');
      assert.equal(check.status, status);
      assert.match(check.summary, summary);
    }
  });

  test('MTA-STS: missing warns, two records fail, a stale id warns when we serve the policy', async () => {
    const missing = good();
    delete missing['_mta-sts.example.org'];
    assert.equal(only(await domainChecks(missing), 'mta-sts').status, 'warn');

    const two = good();
    two['_mta-sts.example.org'] = { TXT: ['v=STSv1; id=1', 'v=STSv1; id=2'] };
    assert.equal(only(await domainChecks(two), 'mta-sts').status, 'fail');

    const stale = good();
    stale['_mta-sts.example.org'] = { TXT: ['v=STSv1; id=20200101'] };
    const serving = {
      mtaStsPublish: {
        ...defaultConfig().mtaStsPublish,
        listeners: [{ host: '127.0.0.1', port: 8443, tls: 'implicit' as const }],
      },
    };
    const check = only(await domainChecks(stale, serving), 'mta-sts');
    assert.equal(check.status, 'warn');
    assert.match(check.summary, new RegExp(`id=20200101, but the policy served now has id=${stsId}`));
    assert.equal(check.fix, `publish: _mta-sts.example.org. IN TXT "v=STSv1; id=${stsId}"`);
    // Not serving it ourselves: any well-formed id is someone else's policy, and fine.
    assert.equal(only(await domainChecks(stale), 'mta-sts').status, 'pass');
  });

  test('TLS-RPT: missing warns, no rua fails', async () => {
    const missing = good();
    delete missing['_smtp._tls.example.org'];
    assert.equal(only(await domainChecks(missing), 'tls-rpt').status, 'warn');
    const norua = good();
    norua['_smtp._tls.example.org'] = { TXT: ['v=TLSRPTv1; ruf=x'] };
    assert.equal(only(await domainChecks(norua), 'tls-rpt').status, 'fail');
  });

  test('a DNS failure is a warn that says what was not checked, never a pass', async () => {
    const zone: Zone = { ...good(), 'example.org': 'servfail', '_dmarc.example.org': 'servfail' };
    const checks = await domainChecks(zone);
    for (const id of ['mx', 'spf', 'dmarc'] as const) {
      assert.equal(only(checks, id).status, 'warn', id);
      assert.match(only(checks, id).summary, /DNS lookup failed \(SERVFAIL\)/);
    }
  });
});

describe('this host', () => {
  test('no address for our hostname fails; PTR missing or not forward-confirmed fails; another name warns', async () => {
    const none = await runDoctor(deps({}), []);
    assert.equal(only(none.checks, 'host-address').status, 'fail');
    assert.equal(none.ok, false);

    const zone: Zone = {
      [HOST]: { A: [V4, '192.0.2.11', '192.0.2.12'] },
      [V4]: { PTR: ['liar.example.net'] },
      '192.0.2.11': { PTR: ['static-11.isp.example'] },
      'static-11.isp.example': { A: ['192.0.2.11'] },
      'liar.example.net': { A: ['198.51.100.99'] },
    };
    const report = await runDoctor(deps(zone), []);
    const ptr = report.checks.filter((c) => c.id === 'ptr');
    assert.deepEqual(
      ptr.map((c) => [c.status, c.summary]),
      [
        ['fail', '192.0.2.10 PTR liar.example.net does not resolve back to 192.0.2.10 (no FCrDNS)'],
        [
          'warn',
          '192.0.2.11 PTR static-11.isp.example, forward-confirmed, but it is not our hostname mx.example.org',
        ],
        ['fail', '192.0.2.12 has no PTR record'],
      ],
    );
  });

  test('a listener that does not answer fails; port 0 is not checked', async () => {
    const gone = await smtpServer({ rcpt: '554 no' });
    const port = gone.port;
    await closeServer(gone.server);
    const base = defaultConfig();
    const checks = await checkListeners(
      deps(
        {},
        {
          listeners: [
            { ...base.listeners[0]!, port: relay.port },
            { ...base.listeners[3]!, port },
            { ...base.listeners[5]!, host: '0.0.0.0', port: 0 },
          ],
        },
      ),
    );
    assert.deepEqual(
      checks.map((c) => c.status),
      ['pass', 'fail', 'warn'],
    );
    assert.match(checks[1]!.summary, new RegExp(`pop3 127\\.0\\.0\\.1:${port} does not answer`));
  });

  test('open relay: 250 to an outside recipient fails; from trusted_networks it is a warn', async () => {
    const open = await smtpServer({ rcpt: '250 2.1.5 OK' });
    try {
      const base = defaultConfig();
      const listeners = [{ ...base.listeners[0]!, port: open.port }];
      const fail = await checkOpenRelay(deps({}, { listeners }));
      assert.equal(fail.status, 'fail');
      assert.match(fail.summary, /^OPEN RELAY/);
      assert.ok(open.commands.includes('RSET'), 'the accepted recipient is dropped with RSET');
      assert.ok(!open.commands.some((c) => c.toUpperCase() === 'DATA'));
      const trusted = await checkOpenRelay(
        deps({}, { listeners, smtp: { ...base.smtp, trustedNetworks: ['127.0.0.0/8'] } }),
      );
      assert.equal(trusted.status, 'warn');
      assert.match(trusted.summary, /trusted_networks/);
      assert.match(trusted.fix ?? '', /^test from a host outside trusted_networks: swaks/);
    } finally {
      await closeServer(open.server);
    }
  });

  test('open relay: garbage, silence and a refused MAIL are handled, never thrown', async () => {
    const base = defaultConfig();
    for (const [behaviour, status, summary] of [
      ['garbage', 'warn', /broke off: garbage from the server/],
      ['silent', 'warn', /broke off: no reply within 1000 ms/],
      [{ rcpt: '451 4.7.1 try later' }, 'pass', /451 4\.7\.1 try later/],
    ] as const) {
      const s = await smtpServer(behaviour);
      try {
        const r = await checkOpenRelay(deps({}, { listeners: [{ ...base.listeners[0]!, port: s.port }] }));
        assert.equal(r.status, status, JSON.stringify(behaviour));
        assert.match(r.summary, summary);
      } finally {
        await closeServer(s.server);
      }
    }
  });
});

describe('the certificate', () => {
  const roots = (): string => ca.cert;

  test('names: a certificate for another name fails', async () => {
    const leaf = await makeLeaf(['other.example.org'], { ca });
    const checks = checkCertificatePem(leaf.cert, HOST, NOW, roots());
    assert.equal(only(checks, 'tls-names').status, 'fail');
    assert.match(only(checks, 'tls-names').summary, /other\.example\.org.*do not cover mx\.example\.org/);
  });

  test('expiry: within 14 days warns, expired fails, not yet valid fails', async () => {
    const soon = await makeLeaf([HOST], { ca, notAfterMs: NOW + 5 * DAY });
    const s = only(checkCertificatePem(soon.cert, HOST, NOW, roots()), 'tls-expiry');
    assert.equal(s.status, 'warn');
    assert.match(s.summary, /^certificate expires in 5 days/);
    const expired = await makeLeaf([HOST], { ca, notBeforeMs: NOW - 100 * DAY, notAfterMs: NOW - DAY });
    assert.equal(only(checkCertificatePem(expired.cert, HOST, NOW, roots()), 'tls-expiry').status, 'fail');
    const future = await makeLeaf([HOST], { ca, notBeforeMs: NOW + DAY, notAfterMs: NOW + 90 * DAY });
    assert.equal(only(checkCertificatePem(future.cert, HOST, NOW, roots()), 'tls-expiry').status, 'fail');
  });

  test('chain: self-signed warns, a missing intermediate warns, leaf + CA in one file passes, wrong order fails', async () => {
    const self = await makeLeaf([HOST]);
    assert.equal(only(checkCertificatePem(self.cert, HOST, NOW), 'tls-chain').status, 'warn');
    assert.match(only(checkCertificatePem(self.cert, HOST, NOW), 'tls-chain').summary, /self-signed/);
    const leaf = await makeLeaf([HOST], { ca });
    const incomplete = only(checkCertificatePem(leaf.cert, HOST, NOW), 'tls-chain');
    assert.equal(incomplete.status, 'warn');
    assert.match(incomplete.summary, /chain incomplete: no issuer for "CN=Doctor Test CA"/);
    assert.equal(only(checkCertificatePem(leaf.cert + ca.cert, HOST, NOW), 'tls-chain').status, 'pass');
    const stranger = await makeCa('Unrelated CA');
    assert.equal(only(checkCertificatePem(leaf.cert + stranger.cert, HOST, NOW), 'tls-chain').status, 'fail');
  });

  test('hostile files: no certificate, or a broken one, fail without throwing', () => {
    assert.equal(only(checkCertificatePem('not pem at all', HOST, NOW), 'tls-names').status, 'fail');
    const broken = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    assert.equal(only(checkCertificatePem(broken, HOST, NOW), 'tls-names').status, 'fail');
  });

  test('no [tls] cert and no self-signed one yet: a warn, not a crash', async () => {
    const report = await runDoctor(deps(hostNodes, { tls: { cert: null, key: null, clientCa: null } }), []);
    const chain = only(report.checks, 'tls-chain');
    assert.equal(chain.status, 'warn');
    assert.match(chain.summary, /self-signed certificate at start/);
    assert.ok(!report.checks.some((c) => c.id === 'tls-names'));
  });
});
