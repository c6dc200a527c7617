// Outbound DKIM signing end to end (RFC 6376, RFC 8463): `tern dkim keygen` makes a key for a domain and
// prints its TXT record, which is published in the test DNS; an authenticated user submits mail from that
// domain to a remote recipient whose MX (test DNS) is an smtp-server receiver; what the receiver got
// carries a DKIM-Signature that verifies with an independent implementation (python3-dkim, through a
// dnsfunc serving the published record) and with Tern's own verifier resolving through the test DNS.
// RSA alone, Ed25519 alone, both (dual signatures, RFC 8463 §5), and a From: domain without a key, which
// goes out unsigned. A tampered copy fails in both verifiers, so the checks cannot pass by accident.
// Deliberately NOT here: the signer's unit tests (src/delivery/dkim-sign.test.ts), interop at the module
// level (test/conformance/dkim-interop.test.ts), inbound verification (authchecks-dkim.test.ts).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createResolver } from '../../src/net/dns.ts';
import type { DkimResult } from '../../src/policy/dkim/verifier.ts';
import { DkimVerifier } from '../../src/policy/dkim/verifier.ts';
import type { DnsServer } from '../support/dns-server.ts';
import type { AuthTern } from './authchecks-helpers.ts';
import {
  NO_DKIMPY,
  dkimpyVerify,
  findDkimPython,
  headerFields,
  message,
  startAuthTern,
  startZones,
  submit,
} from './authchecks-helpers.ts';
import { waitFor } from './harness.ts';
import type { Receiver } from './outbound-helpers.ts';
import { startReceiver } from './outbound-helpers.ts';

const ALICE = { address: 'alice@example.test', password: 'alice-signs-1' };
const REMOTE = 'dave@remote.test';
const python = findDkimPython();

/** Keys made with `tern dkim keygen`, per From: domain: [selector, algo]. */
const KEYS: readonly (readonly [domain: string, selector: string, algo: 'rsa' | 'ed25519'])[] = [
  ['example.test', 'r1', 'rsa'],
  ['ed.test', 'e1', 'ed25519'],
  ['dual.test', 'dr', 'rsa'],
  ['dual.test', 'de', 'ed25519'],
];

/** One `name. IN TXT "…" "…"` zone line → the record name (no trailing dot) and its text. */
function parseZoneLine(line: string): { name: string; text: string } {
  const m = /^(\S+?)\.?\s+IN\s+TXT\s+((?:"[^"]*"\s*)+)$/.exec(line.trim());
  if (!m) throw new Error(`not a TXT zone line: ${JSON.stringify(line)}`);
  const text = [...m[2]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]!).join('');
  return { name: m[1]!.toLowerCase(), text };
}

/** The tag=value pairs of a DKIM-Signature field (white space removed, as RFC 6376 §3.2 allows). */
function tagsOf(field: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of field.replace(/\s+/g, '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

describe('outbound DKIM signing (keys from tern dkim keygen)', () => {
  let dns: DnsServer;
  let receiver: Receiver;
  let tern: AuthTern;
  /** Published DKIM records: name → text. */
  const zone: Record<string, string> = {};

  before(async () => {
    receiver = await startReceiver({ name: 'mx.remote.test' });
    dns = await startZones({
      test: {
        'remote.test': [{ type: 'MX', preference: 10, exchange: 'mx.remote.test' }],
        'mx.remote.test': [{ type: 'A', address: '127.0.0.1' }],
      },
    });
    tern = await startAuthTern(dns, {
      users: [ALICE],
      tables: {
        outbound: {
          port: receiver.port,
          tls: 'none',
          connect_timeout_seconds: 3,
          greeting_timeout_seconds: 5,
          command_timeout_seconds: 5,
          data_init_timeout_seconds: 5,
          data_block_timeout_seconds: 5,
          data_done_timeout_seconds: 5,
        },
        queue: { retry_min_seconds: 1, retry_max_seconds: 2 },
        // Alice may write From: any of the test domains; signing follows the From: domain.
        submission: { sender_check: false },
      },
    });
    // Keys are made before the first message: the worker reads the key folder when it first signs.
    const published: Record<string, Record<string, [{ type: 'TXT'; text: string }]>> = {};
    for (const [domain, selector, algo] of KEYS) {
      const r = await tern.tern([
        'dkim',
        'keygen',
        '--domain',
        domain,
        '--selector',
        selector,
        '--algo',
        algo,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const record = parseZoneLine(r.stdout);
      assert.equal(record.name, `${selector}._domainkey.${domain}`);
      assert.match(record.text, new RegExp(`^v=DKIM1; k=${algo}; p=[A-Za-z0-9+/=]+$`));
      zone[record.name] = record.text;
      (published[`_domainkey.${domain}`] ??= {})[selector] = [{ type: 'TXT', text: record.text }];
    }
    for (const [apex, names] of Object.entries(published)) dns.setZone(apex, names);
  });
  after(async () => {
    await tern?.stop();
    await receiver?.close();
    await dns?.close();
  });

  /** Submit From: <author> to the remote recipient; the bytes the receiver got. */
  const sendOut = async (author: string, subject: string): Promise<Buffer> => {
    const body = 'A line.\r\n.A line that starts with a dot.\r\n\r\nTrailing blank lines follow.\r\n\r\n\r\n';
    await submit({
      port: tern.ports.submission,
      user: ALICE.address,
      password: ALICE.password,
      from: ALICE.address,
      to: [REMOTE],
      message: message({ from: author, to: REMOTE, subject, body }),
    });
    const got = await waitFor(
      `"${subject}" at the receiver`,
      () => receiver.accepted.find((m) => headerFields(m.data, 'Subject')[0] === subject),
      15_000,
    );
    return got.data;
  };

  /** Tern's verifier, asking the test DNS through Tern's resolver. */
  const ternVerify = async (data: Buffer): Promise<DkimResult[]> => {
    const verifier = new DkimVerifier({ resolver: createResolver(dns.config()), nowMs: Date.now() });
    for (let i = 0; i < data.length; i += 700) verifier.push(data.subarray(i, i + 700));
    return verifier.finish();
  };

  const tampered = (data: Buffer): Buffer =>
    Buffer.from(data.toString('latin1').replace('A line.\r\n', 'A line!\r\n'), 'latin1');

  for (const [domain, expected] of [
    ['example.test', [['r1', 'rsa-sha256']]],
    ['ed.test', [['e1', 'ed25519-sha256']]],
    [
      'dual.test',
      [
        ['dr', 'rsa-sha256'],
        ['de', 'ed25519-sha256'],
      ],
    ],
  ] as const) {
    const what = expected.map(([, a]) => a).join(' + ');
    test(`From: @${domain} (${what}): signed at delivery, verified by python3-dkim and by Tern`, async (t) => {
      const data = await sendOut(`alice@${domain}`, `signed ${domain}`);
      const sigs = headerFields(data, 'DKIM-Signature').map(tagsOf);
      assert.deepEqual(
        sigs.map((s) => [s['d'], s['s'], s['a']]).sort(),
        expected.map(([s, a]) => [domain, s, a]).sort(),
      );
      for (const s of sigs) {
        const h = (s['h'] ?? '').toLowerCase().split(':');
        assert.ok(h.includes('from'), `h= must cover From: ${s['h']}`);
        // Oversigned: From: listed once more than it occurs, so that none can be added (RFC 6376 §8.15).
        assert.ok(h.filter((x) => x === 'from').length >= 2, `From: is not oversigned: ${s['h']}`);
      }
      // Signed after every header change of ours: the signatures are the topmost fields.
      const firstField = data.toString('latin1').slice(0, data.indexOf(':'));
      assert.equal(firstField.toLowerCase(), 'dkim-signature');

      const ours = await ternVerify(data);
      assert.deepEqual(
        ours.map((r) => [r.result, r.domain, r.selector]).sort(),
        expected.map(([s]) => ['pass', domain, s]).sort(),
        JSON.stringify(ours),
      );
      assert.ok(
        (await ternVerify(tampered(data))).every((r) => r.result === 'fail'),
        'a tampered copy must fail in Tern',
      );

      if (python === null) {
        t.diagnostic(`python3-dkim part skipped: ${NO_DKIMPY}`);
        return;
      }
      const [good, bad] = dkimpyVerify(python, zone, [data, tampered(data)]);
      assert.deepEqual(
        good,
        expected.map(() => true),
        `dkimpy on the message as received: ${JSON.stringify(good)}`,
      );
      // dkimpy says false, or raises on the body hash: either way, not verified.
      assert.equal(bad?.length, expected.length);
      assert.ok(
        bad.every((r) => r === false || /body hash mismatch/.test(String(r))),
        `dkimpy on a tampered copy: ${JSON.stringify(bad)}`,
      );
    });
  }

  test('a message queued with tern sendmail (cron, PHP) is signed like a submission', async () => {
    const subject = 'signed via sendmail';
    const r = await tern.tern(
      ['sendmail', '-t', '-i', '-f', ALICE.address],
      `From: <alice@example.test>\r\nTo: <${REMOTE}>\r\nSubject: ${subject}\r\n\r\nFrom a cron job.\r\n`,
    );
    assert.equal(r.code, 0, r.stderr);
    const got = await waitFor(
      `"${subject}" at the receiver`,
      () => receiver.accepted.find((m) => headerFields(m.data, 'Subject')[0] === subject),
      15_000,
    );
    const ours = await ternVerify(got.data);
    assert.deepEqual(
      ours.map((v) => [v.result, v.domain]),
      [['pass', 'example.test']],
      JSON.stringify(ours),
    );
  });

  test('From: a domain without a key: delivered unsigned', async () => {
    const data = await sendOut('alice@nokey.test', 'unsigned nokey.test');
    assert.deepEqual(headerFields(data, 'DKIM-Signature'), []);
    // Delivered through the same path as the signed ones.
    assert.deepEqual(headerFields(data, 'From'), ['<alice@nokey.test>']);
  });
});
