import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';

describe('tern dns records', () => {
  let sandbox: Sandbox;
  before(async () => {
    sandbox = await createSandbox();
  });
  after(async () => {
    await sandbox.remove();
  });

  test('prints MX, SPF, DMARC, MTA-STS and TLS-RPT, and says a DKIM key is missing', async () => {
    const r = await sandbox.tern(['dns', 'records', '--domain', 'example.test']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^example\.test\. IN MX 10 \S+\.$/m);
    assert.match(r.stdout, /^example\.test\. IN TXT "v=spf1 mx -all"$/m);
    assert.match(
      r.stdout,
      /^_dmarc\.example\.test\. IN TXT "v=DMARC1; p=quarantine; .*rua=mailto:postmaster@example\.test"$/m,
    );
    const id = /^_mta-sts\.example\.test\. IN TXT "v=STSv1; id=([0-9a-f]{20})"$/m.exec(r.stdout)?.[1];
    assert.ok(id, r.stdout);
    // The id is the policy's digest: the same policy, the same id, run after run.
    const again = await sandbox.tern(['dns', 'records', '--domain', 'example.test']);
    assert.ok(again.stdout.includes(`id=${id}"`));
    assert.match(
      r.stdout,
      /^_smtp\._tls\.example\.test\. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example\.test"$/m,
    );
    assert.match(r.stdout, /^;\s+version: STSv1$/m);
    assert.match(r.stderr, /no DKIM key for example\.test/);
  });

  test('every DKIM key of the domain appears, the same record keygen printed; --json for scripts', async () => {
    const k = await sandbox.tern([
      'dkim',
      'keygen',
      '--domain',
      'example.test',
      '--selector',
      'd1',
      '--algo',
      'ed25519',
    ]);
    assert.equal(k.code, 0, k.stderr);
    const r = await sandbox.tern(['dns', 'records', '--domain', 'Example.Test']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(k.stdout.trim()), 'the keygen record is listed');
    const j = await sandbox.tern(['dns', 'records', '--domain', 'example.test', '--json']);
    const parsed = JSON.parse(j.stdout) as {
      domain: string;
      records: Array<{ name: string; type: string; value: string }>;
    };
    assert.equal(parsed.domain, 'example.test');
    assert.deepEqual(
      parsed.records.map((x) => `${x.type} ${x.name}`),
      [
        'MX example.test',
        'TXT example.test',
        'TXT d1._domainkey.example.test',
        'TXT _dmarc.example.test',
        'TXT _mta-sts.example.test',
        'TXT _smtp._tls.example.test',
      ],
    );
  });

  test('--domain is required', async () => {
    const r = await sandbox.tern(['dns', 'records']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /missing --domain/);
  });

  test('9c: for a name without a dot (localhost) it suggests no keygen that would be refused, and says why', async () => {
    const r = await sandbox.tern(['dns', 'records', '--domain', 'localhost']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /tern dkim keygen/);
    assert.match(
      r.stderr,
      /no DKIM key for localhost, and none can be made: DKIM keys are published in DNS, so the domain must be a DNS name with a dot/,
    );
    // And keygen refuses it with the same reason.
    const k = await sandbox.tern(['dkim', 'keygen', '--domain', 'localhost', '--selector', 's1']);
    assert.equal(k.code, 1);
    assert.match(
      k.stderr,
      /^tern: localhost: DKIM keys are published in DNS, so the domain must be a DNS name with a dot/,
    );
    // A domain that can have a key still gets the suggestion, UTF-8 ones as A-labels included.
    const idn = await sandbox.tern(['dns', 'records', '--domain', 'bücher.example']);
    assert.match(idn.stderr, /create one with: tern dkim keygen --domain bücher\.example --selector s1/);
  });
});
