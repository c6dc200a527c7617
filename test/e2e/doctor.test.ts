// `tern doctor` as a program against a running Tern (real listeners, its self-signed certificate) and the
// test DNS server as its only resolver ([dns] servers), serving a good zone (example.test and its UTF-8
// twin bücher.test: MX to us, SPF, the DKIM key `tern dkim keygen` made, DMARC, MTA-STS, TLS-RPT, PTR of
// 127.0.0.1 back to mx.example.test) and a broken one (broken.test: no MX, two SPF records, no DMARC).
// Checks the text lines, the --json report (its shape is a contract: docs/doctor.md) and the exit code.
// The harness binds every listener to port 0; once they are up, the config file is rewritten with the
// bound ports so that doctor can connect to them (the running server never reads the file again).

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { DnsServer, NameSpec } from '../support/dns-server.ts';
import { HOSTNAME, startAuthTern, startZones } from './authchecks-helpers.ts';
import type { AuthTern } from './authchecks-helpers.ts';

interface Check {
  readonly id: string;
  readonly status: 'pass' | 'warn' | 'fail';
  readonly domain?: string;
  readonly summary: string;
  readonly fix?: string;
  readonly detail?: Record<string, unknown>;
}

interface Report {
  readonly hostname: string;
  readonly domains: string[];
  readonly ok: boolean;
  readonly counts: { pass: number; warn: number; fail: number };
  readonly checks: Check[];
}

let dns: DnsServer;
let tern: AuthTern;

async function dkimTxt(domain: string): Promise<string> {
  const keygen = await tern.tern(['dkim', 'keygen', '--domain', domain, '--selector', 's1']);
  assert.equal(keygen.code, 0, keygen.stderr);
  const records = await tern.tern(['dns', 'records', '--domain', domain, '--json']);
  assert.equal(records.code, 0, records.stderr);
  const parsed = JSON.parse(records.stdout) as { records: { name: string; value: string }[] };
  const dkim = parsed.records.find((r) => r.name.startsWith('s1._domainkey.'));
  assert.ok(dkim, records.stdout);
  return dkim.value;
}

function goodZone(domain: string, dkim: string): Record<string, NameSpec> {
  return {
    '@': [
      { type: 'MX', preference: 10, exchange: HOSTNAME },
      { type: 'TXT', text: 'v=spf1 mx -all' },
    ],
    _dmarc: [{ type: 'TXT', text: `v=DMARC1; p=reject; rua=mailto:postmaster@${domain}` }],
    's1._domainkey': [{ type: 'TXT', text: dkim }],
    '_mta-sts': [{ type: 'TXT', text: 'v=STSv1; id=20260101' }],
    '_smtp._tls': [{ type: 'TXT', text: `v=TLSRPTv1; rua=mailto:postmaster@${domain}` }],
  };
}

async function doctor(...args: string[]): Promise<{ code: number | null; report: Report; stderr: string }> {
  const r = await tern.tern(['doctor', ...args, '--json']);
  let report: Report;
  try {
    report = JSON.parse(r.stdout) as Report;
  } catch {
    throw new Error(`tern doctor ${args.join(' ')} exited ${r.code}: ${r.stdout}${r.stderr}`);
  }
  return { code: r.code, report, stderr: r.stderr };
}

function byId(report: Report, id: string, domain?: string): Check {
  const found = report.checks.filter((c) => c.id === id && c.domain === domain);
  assert.equal(
    found.length,
    1,
    `one ${id} for ${domain ?? 'the host'}: ${JSON.stringify(report.checks, null, 2)}`,
  );
  return found[0]!;
}

before(async () => {
  dns = await startZones({
    'example.test': { mx: [{ type: 'A', address: '127.0.0.1' }] },
    'in-addr.arpa': { '1.0.0.127': [{ type: 'PTR', target: HOSTNAME }] },
    'broken.test': {
      '@': [
        { type: 'TXT', text: ['v=spf1 mx -all'] },
        { type: 'TXT', text: 'v=spf1 -all' },
      ],
    },
  });
  tern = await startAuthTern(dns, { tern: { localDomains: ['example.test', 'xn--bcher-kva.test'] } });
  dns.setZone('example.test', {
    ...goodZone('example.test', await dkimTxt('example.test')),
    mx: [{ type: 'A', address: '127.0.0.1' }],
  });
  dns.setZone('xn--bcher-kva.test', goodZone('xn--bcher-kva.test', await dkimTxt('bücher.test')));
  // The listeners in the order the harness writes them, each `127.0.0.1:0` in the file.
  const order = ['smtp', 'submission', 'submissions', 'pop3', 'pop3s', 'imap', 'imaps'] as const;
  let toml = await readFile(tern.configPath, 'utf8');
  for (const service of order) {
    const port = tern.ports[service];
    assert.ok(port !== undefined, service);
    toml = toml.replace('address = "127.0.0.1:0"', `address = "127.0.0.1:${port}"`);
  }
  assert.ok(!toml.includes('127.0.0.1:0'), toml);
  await writeFile(tern.configPath, toml);
});

after(async () => {
  await tern?.stop();
  await dns?.close();
});

describe('tern doctor', () => {
  test('a good zone: every DNS check passes, exit 0 (the self-signed certificate is a warn)', async () => {
    const { code, report } = await doctor('--domain', 'example.test');
    const notPassing = report.checks.filter((c) => c.status !== 'pass').map((c) => `${c.id}: ${c.summary}`);
    assert.deepEqual(notPassing, [
      'tls-chain: certificate is self-signed: senders encrypt, but cannot authenticate us',
    ]);
    assert.equal(code, 0);
    assert.equal(report.ok, true);
    assert.equal(report.hostname, HOSTNAME);
    assert.deepEqual(report.domains, ['example.test']);
    assert.deepEqual(
      report.checks.map((c) => c.id),
      [
        'host-address',
        'ptr',
        'tls-names',
        'tls-expiry',
        'tls-chain',
        ...Array<string>(7).fill('port'),
        'open-relay',
        'mx',
        'spf',
        'dkim',
        'dmarc',
        'mta-sts',
        'tls-rpt',
      ],
    );
    assert.deepEqual(report.counts, { pass: report.checks.length - 1, warn: 1, fail: 0 });
    assert.equal(byId(report, 'mx', 'example.test').summary, 'example.test MX 10 mx.example.test');
    assert.equal(byId(report, 'ptr').summary, '127.0.0.1 PTR mx.example.test, forward-confirmed');
    assert.match(byId(report, 'open-relay').summary, /^not an open relay: .*\b554 5\.7\.1\b/);
    assert.match(byId(report, 'spf', 'example.test').summary, /passes 127\.0\.0\.1/);
    // The doctor asked the test server, never the system resolver.
    assert.ok(dns.queries.some((q) => q.name === '_dmarc.example.test'));
  });

  test('the same for a UTF-8 domain given as U-label: checked as its A-label', async () => {
    const { code, report } = await doctor('--domain', 'bücher.test');
    assert.equal(code, 0);
    assert.deepEqual(report.domains, ['xn--bcher-kva.test']);
    for (const id of ['mx', 'spf', 'dkim', 'dmarc', 'mta-sts', 'tls-rpt']) {
      assert.equal(byId(report, id, 'xn--bcher-kva.test').status, 'pass', id);
    }
    assert.equal(
      byId(report, 'dkim', 'xn--bcher-kva.test').summary,
      's1._domainkey.xn--bcher-kva.test publishes our rsa-sha256 key',
    );
  });

  test('without --domain: every local domain', async () => {
    const { code, report } = await doctor();
    assert.equal(code, 0);
    assert.deepEqual(report.domains, ['example.test', 'xn--bcher-kva.test']);
  });

  test('a broken zone: missing MX and DMARC, two SPF records: fails with fixes, exit 1', async () => {
    const { code, report, stderr } = await doctor('--domain', 'broken.test');
    assert.equal(code, 1);
    assert.equal(report.ok, false);
    assert.match(stderr, /broken\.test is not one of local_domains/);
    const mx = byId(report, 'mx', 'broken.test');
    assert.equal(mx.status, 'fail');
    assert.equal(mx.fix, 'publish: broken.test. IN MX 10 mx.example.test.');
    const spf = byId(report, 'spf', 'broken.test');
    assert.equal(spf.status, 'fail');
    assert.match(spf.summary, /^2 SPF records for broken\.test/);
    const dmarc = byId(report, 'dmarc', 'broken.test');
    assert.equal(dmarc.status, 'fail');
    assert.match(dmarc.fix ?? '', /^publish: _dmarc\.broken\.test\. IN TXT "v=DMARC1; p=quarantine;/);
    assert.equal(byId(report, 'dkim', 'broken.test').status, 'warn');
    assert.equal(byId(report, 'mta-sts', 'broken.test').status, 'warn');
    assert.equal(report.counts.fail, 3);
  });

  test('text output: one PASS/WARN/FAIL line per check, the fix after a dash, a count at the end', async () => {
    const r = await tern.tern(['doctor', '--domain', 'broken.test']);
    assert.equal(r.code, 1);
    const lines = r.stdout.trimEnd().split('\n');
    assert.ok(
      lines.includes(
        'FAIL  spf          2 SPF records for broken.test: receivers treat that as permerror (RFC 7208 §4.5) — keep one v=spf1 record, e.g.: broken.test. IN TXT "v=spf1 mx -all"',
      ),
      r.stdout,
    );
    assert.ok(
      lines.includes(
        'FAIL  mx           no MX record for broken.test — publish: broken.test. IN MX 10 mx.example.test.',
      ),
      r.stdout,
    );
    assert.match(lines.at(-1)!, /^\d+ passed, \d+ warnings?, 3 failed$/);
    assert.ok(
      lines.slice(0, -1).every((l) => /^(PASS|WARN|FAIL)  \S/.test(l)),
      r.stdout,
    );
    const good = await tern.tern(['doctor', '--domain', 'example.test']);
    assert.equal(good.code, 0);
    const goodLines = good.stdout.trimEnd().split('\n');
    assert.ok(goodLines.includes('PASS  mx           example.test MX 10 mx.example.test'), good.stdout);
    assert.equal(goodLines.at(-1), `${goodLines.length - 2} passed, 1 warning, 0 failed`);
  });

  test('a stopped server: its ports fail, exit 1', async () => {
    await tern.kill('SIGTERM');
    const { code, report } = await doctor('--domain', 'example.test');
    assert.equal(code, 1);
    const ports = report.checks.filter((c) => c.id === 'port');
    assert.equal(ports.length, 7);
    assert.ok(
      ports.every((c) => c.status === 'fail'),
      JSON.stringify(ports),
    );
    assert.equal(byId(report, 'open-relay').status, 'warn');
  });
});
