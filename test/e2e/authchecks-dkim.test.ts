// DKIM verification end to end (RFC 6376, RFC 8463): messages signed by an independent signer, Debian's
// python3-dkim (dkimpy), with an RSA and an Ed25519 key whose public halves are in the test DNS, arrive
// from an unauthenticated client on the MX port; the stored message's Authentication-Results field says
// dkim=pass with header.d / header.s / header.a / header.b (RFC 8601 §2.7.1, RFC 6008) for each good
// signature, dkim=fail once the body or a signed header field changed, dkim=none when unsigned, and a
// permerror when the selector has no key. Canonicalization matters end to end: a relaxed body survives
// trailing white space that breaks a simple one. Skipped, saying why, where python3-dkim is absent.
// Deliberately NOT here: the DKIM vectors and dkimpy interop at the module level (test/conformance/),
// DMARC's use of DKIM (authchecks-dmarc.test.ts), outbound signing (authchecks-signing.test.ts).

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { DnsServer } from '../support/dns-server.ts';
import type { AuthTern, DkimpySignJob, ResInfo } from './authchecks-helpers.ts';
import {
  NO_DKIMPY,
  dkimpySign,
  findDkimPython,
  headerFields,
  message,
  ourAuthResults,
  resultsFor,
  startAuthTern,
  startZones,
  storedBySubject,
  transact,
} from './authchecks-helpers.ts';

const RCPT = 'rcpt@example.test';
const AUTHOR = 'writer@dkim.test';
const python = findDkimPython();

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
// Published key records, built here (not with Tern's dkimDnsRecord): RSA as SPKI, Ed25519 as the raw 32
// octets (RFC 8463 §4.2).
const RSA_RECORD = `v=DKIM1; k=rsa; p=${rsa.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`;
const ED_RECORD = `v=DKIM1; k=ed25519; p=${Buffer.from(ed.publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64')}`;
// What dkimpy reads: PKCS#1 PEM for RSA, the base64 seed for Ed25519.
const RSA_KEY = rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }).toString();
const ED_KEY = Buffer.from(ed.privateKey.export({ format: 'jwk' }).d!, 'base64url').toString('base64');

const RSA_JOB = { domain: 'dkim.test', selector: 'rsa1', key: RSA_KEY, algorithm: 'rsa-sha256' } as const;
const ED_JOB = { domain: 'dkim.test', selector: 'ed1', key: ED_KEY, algorithm: 'ed25519-sha256' } as const;
const RELAXED = ['relaxed', 'relaxed'] as const;
const SIMPLE = ['simple', 'simple'] as const;

// A line starting with a dot: DKIM is computed on the unstuffed message (RFC 6376 §5.3).
const BODY = 'First line of a signed message.\r\n.a line that starts with a dot\r\nLast line.\r\n';

interface Case {
  readonly subject: string;
  /** The message as sent: signature fields on top of the (possibly altered) message. */
  readonly wire: Buffer;
  /** The b= value of each signature, in order. */
  readonly b: readonly string[];
}

/** Sign `m` with each job (all over the same bytes), then apply `alter` and put the signatures on top. */
function plan(
  subject: string,
  jobs: readonly Omit<DkimpySignJob, 'message'>[],
  alter: (m: Buffer) => Buffer = (m) => m,
): { subject: string; jobs: DkimpySignJob[]; finish: (sigs: Buffer[]) => Case } {
  const m = message({ from: AUTHOR, to: RCPT, subject, body: BODY });
  return {
    subject,
    jobs: jobs.map((j) => ({ ...j, message: m })),
    finish: (sigs) => ({
      subject,
      wire: Buffer.concat([...sigs, alter(m)]),
      b: sigs.map((s) => /\bb=([^;]*)/.exec(s.toString('latin1').replace(/\s+/g, ''))?.[1] ?? ''),
    }),
  };
}

const replaceText = (from: string, to: string) => (m: Buffer) =>
  Buffer.from(m.toString('latin1').replace(from, to), 'latin1');

describe(
  'DKIM verification on the MX listener (messages signed by python3-dkim)',
  { skip: python ? false : NO_DKIMPY },
  () => {
    let dns: DnsServer;
    let tern: AuthTern;
    const cases = new Map<string, Case>();

    before(async () => {
      const plans = [
        plan('rsa relaxed', [{ ...RSA_JOB, c: RELAXED }]),
        plan('ed25519 relaxed', [{ ...ED_JOB, c: RELAXED }]),
        plan('dual', [
          { ...RSA_JOB, c: RELAXED },
          { ...ED_JOB, c: RELAXED },
        ]),
        plan('rsa simple', [{ ...RSA_JOB, c: SIMPLE }]),
        plan('body altered', [{ ...RSA_JOB, c: RELAXED }], replaceText('Last line.', 'Last line, changed.')),
        plan(
          'header altered',
          [{ ...ED_JOB, c: RELAXED }],
          replaceText('Subject: header altered', 'Subject: header altered!'),
        ),
        plan(
          'relaxed trailing space',
          [{ ...RSA_JOB, c: RELAXED }],
          replaceText('Last line.\r\n', 'Last line.   \r\n'),
        ),
        plan(
          'simple trailing space',
          [{ ...RSA_JOB, c: SIMPLE }],
          replaceText('Last line.\r\n', 'Last line.   \r\n'),
        ),
        plan('no key', [{ ...RSA_JOB, selector: 'missing', c: RELAXED }]),
      ];
      const sigs = dkimpySign(
        python!,
        plans.flatMap((p) => p.jobs),
      );
      for (const p of plans) {
        const mine = sigs.splice(0, p.jobs.length);
        cases.set(p.subject, p.finish(mine));
      }
      dns = await startZones({
        test: {
          'rsa1._domainkey.dkim.test': [{ type: 'TXT', text: RSA_RECORD }],
          'ed1._domainkey.dkim.test': [{ type: 'TXT', text: ED_RECORD }],
          // The envelope sender's domain: SPF none, so that only DKIM speaks.
          'nospf.test': [{ type: 'A', address: '192.0.2.1' }],
        },
      });
      tern = await startAuthTern(dns, { users: [RCPT] });
    });
    after(async () => {
      await tern?.stop();
      await dns?.close();
    });

    /** Send one case (or an unsigned message) and return the dkim resinfos of the stored copy. */
    const dkimOf = async (
      name: string,
      opts: { wire?: Buffer; subject?: string } = {},
    ): Promise<{ dkim: ResInfo[]; stored: Buffer }> => {
      const r = await transact({
        port: tern.ports.smtp,
        helo: 'client.nospf.test',
        from: 'bounce@nospf.test',
        to: RCPT,
        message: opts.wire ?? cases.get(name)!.wire,
      });
      assert.equal(r.data?.code, 250, JSON.stringify(r));
      const stored = await storedBySubject(tern, RCPT, opts.subject ?? name);
      return { dkim: resultsFor(ourAuthResults(stored), 'dkim'), stored };
    };

    const assertPass = (info: ResInfo | undefined, selector: string, algorithm: string, b: string): void => {
      assert.equal(info?.result, 'pass', JSON.stringify(info));
      assert.equal(info.props['header.d'], 'dkim.test');
      assert.equal(info.props['header.s'], selector);
      assert.equal(info.props['header.a'], algorithm);
      // RFC 6008: header.b is a prefix of the signature's b= (at least 8 characters).
      const headerB = info.props['header.b'] ?? '';
      assert.ok(headerB.length >= 8 && b.startsWith(headerB), `header.b=${headerB} is not a prefix of ${b}`);
    };

    test('RSA (rsa-sha256, relaxed/relaxed): dkim=pass header.d=dkim.test header.s=rsa1', async () => {
      const { dkim, stored } = await dkimOf('rsa relaxed');
      assert.equal(dkim.length, 1, JSON.stringify(dkim));
      assertPass(dkim[0], 'rsa1', 'rsa-sha256', cases.get('rsa relaxed')!.b[0]!);
      // The signature itself reaches the mailbox unchanged.
      assert.equal(headerFields(stored, 'DKIM-Signature').length, 1);
    });

    test('Ed25519 (ed25519-sha256, RFC 8463): dkim=pass header.s=ed1', async () => {
      const { dkim } = await dkimOf('ed25519 relaxed');
      assert.equal(dkim.length, 1, JSON.stringify(dkim));
      assertPass(dkim[0], 'ed1', 'ed25519-sha256', cases.get('ed25519 relaxed')!.b[0]!);
    });

    test('two signatures (RSA and Ed25519): one dkim=pass each', async () => {
      const { dkim } = await dkimOf('dual');
      const { b } = cases.get('dual')!;
      assert.equal(dkim.length, 2, JSON.stringify(dkim));
      assertPass(
        dkim.find((d) => d.props['header.s'] === 'rsa1'),
        'rsa1',
        'rsa-sha256',
        b[0]!,
      );
      assertPass(
        dkim.find((d) => d.props['header.s'] === 'ed1'),
        'ed1',
        'ed25519-sha256',
        b[1]!,
      );
    });

    test('simple/simple canonicalization verifies as sent', async () => {
      const { dkim } = await dkimOf('rsa simple');
      assertPass(dkim[0], 'rsa1', 'rsa-sha256', cases.get('rsa simple')!.b[0]!);
    });

    test('a body changed after signing: dkim=fail for that signature', async () => {
      const { dkim } = await dkimOf('body altered');
      assert.equal(dkim.length, 1, JSON.stringify(dkim));
      assert.equal(dkim[0]!.result, 'fail');
      assert.equal(dkim[0]!.props['header.d'], 'dkim.test');
      assert.equal(dkim[0]!.props['header.s'], 'rsa1');
    });

    test('a signed header field changed after signing: dkim=fail', async () => {
      const { dkim } = await dkimOf('header altered', { subject: 'header altered!' });
      assert.equal(dkim.length, 1, JSON.stringify(dkim));
      assert.equal(dkim[0]!.result, 'fail');
      assert.equal(dkim[0]!.props['header.s'], 'ed1');
    });

    test('trailing white space added to a body line: relaxed still passes, simple fails', async () => {
      const relaxed = await dkimOf('relaxed trailing space');
      assert.equal(relaxed.dkim[0]?.result, 'pass', JSON.stringify(relaxed.dkim));
      const simple = await dkimOf('simple trailing space');
      assert.equal(simple.dkim[0]?.result, 'fail', JSON.stringify(simple.dkim));
    });

    test('no key published for the selector: dkim=permerror (RFC 6376 §6.1.2, RFC 8601 §2.7.1)', async () => {
      const { dkim } = await dkimOf('no key');
      assert.equal(dkim.length, 1, JSON.stringify(dkim));
      assert.equal(dkim[0]!.result, 'permerror');
      assert.equal(dkim[0]!.props['header.s'], 'missing');
    });

    test('an unsigned message: dkim=none, nothing else', async () => {
      const subject = 'unsigned';
      const { dkim } = await dkimOf(subject, {
        wire: message({ from: AUTHOR, to: RCPT, subject, body: BODY }),
      });
      assert.deepEqual(
        dkim.map((d) => [d.result, Object.keys(d.props).length]),
        [['none', 0]],
      );
    });
  },
);
