// DNS failures during the inbound checks, end to end: the test DNS server never answers some names
// ('timeout'), so the lookup of an SPF record, a DKIM key or a DMARC record runs out of time. With
// [checks] dns_failure = "tempfail" the client is asked to retry: 451 4.7.24 at MAIL FROM for SPF (RFC 7208
// §8.6 → RFC 8601's temperror), 451 4.x.x at end of data for DKIM and DMARC, and nothing is stored; with
// "neutral" the message is accepted and the header records temperror. Either way the server keeps
// serving (no crash), answers within the configured time and the next transaction on the same listener
// works.
// Deliberately NOT here: the resolver's own timeout and retry logic (src/net/dns.test.ts).

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { DkimKey } from '../../src/delivery/dkim-sign.ts';
import { signMessage } from '../../src/delivery/dkim-sign.ts';
import type { DnsServer, RecordSpec } from '../support/dns-server.ts';
import type { AuthTern, Transaction } from './authchecks-helpers.ts';
import {
  message,
  ourAuthResults,
  resultsFor,
  startAuthTern,
  startZones,
  storedBySubject,
  subjectIn,
  transact,
} from './authchecks-helpers.ts';

const RCPT = 'rcpt@example.test';
const SPF_PASS: RecordSpec[] = [{ type: 'TXT', text: 'v=spf1 ip4:127.0.0.1 -all' }];

// A key whose record lookup never answers: the signature cannot be checked.
const KEY: DkimKey = {
  domain: 'ok.test',
  selector: 'slow',
  algorithm: 'ed25519-sha256',
  privateKeyPem: generateKeyPairSync('ed25519')
    .privateKey.export({ format: 'pem', type: 'pkcs8' })
    .toString(),
};

const ZONES = {
  test: {
    // Every query of this name goes unanswered: SPF for MAIL FROM <…@spf-timeout.test> times out.
    'spf-timeout.test': 'timeout' as const,
    // Answered, but with SERVFAIL: a failure of another kind, also temporary.
    'spf-servfail.test': 'servfail' as const,
    'ok.test': SPF_PASS,
    'slow._domainkey.ok.test': 'timeout' as const,
    // The From: domain whose DMARC record never comes.
    'dmarc-slow.test': SPF_PASS,
    '_dmarc.dmarc-slow.test': 'timeout' as const,
  },
};

async function signed(body: Buffer): Promise<Buffer> {
  const sig = await signMessage({
    keys: [KEY],
    nowMs: Date.now(),
    content: () => Readable.from([body]),
  });
  return Buffer.concat([Buffer.from(sig, 'latin1'), body]);
}

interface Timed {
  readonly tx: Transaction;
  readonly ms: number;
}

async function send(
  tern: AuthTern,
  opts: { mailFrom: string; from: string; subject: string; sign?: boolean },
): Promise<Timed> {
  const body = message({ from: opts.from, to: RCPT, subject: opts.subject });
  const started = Date.now();
  const tx = await transact({
    port: tern.ports.smtp,
    helo: 'client.example.net',
    from: opts.mailFrom,
    to: RCPT,
    message: opts.sign === true ? await signed(body) : body,
    timeoutMs: 15_000,
  });
  return { tx, ms: Date.now() - started };
}

/** The server still takes mail: a clean message is accepted and stored. */
async function assertStillServing(tern: AuthTern, after: string): Promise<void> {
  const subject = `still serving after ${after}`;
  const { tx } = await send(tern, { mailFrom: 'a@ok.test', from: 'a@ok.test', subject });
  assert.equal(tx.data?.code, 250, JSON.stringify(tx));
  await storedBySubject(tern, RCPT, subject);
  assert.ok(tern.alive());
}

describe('DNS failures with dns_failure = "tempfail"', () => {
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones(ZONES);
    tern = await startAuthTern(dns, { users: [RCPT], checks: { dns_failure: 'tempfail' } });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  test('SPF record lookup times out: 451 4.7.24 at MAIL FROM, quickly', async () => {
    const { tx, ms } = await send(tern, {
      mailFrom: 'a@spf-timeout.test',
      from: 'a@ok.test',
      subject: 'spf timeout tempfail',
    });
    assert.equal(tx.mail.code, 451, JSON.stringify(tx));
    assert.equal(tx.mail.enhanced, '4.7.24');
    assert.equal(tx.rcpt, null);
    // One attempt of 0.5 s per lookup: the answer comes long before the 10 s SPF stage limit.
    assert.ok(ms < 5000, `took ${ms} ms`);
    assert.ok(
      dns.queries.some((q) => q.name.toLowerCase() === 'spf-timeout.test' && q.type === 'TXT'),
      'the SPF lookup was made',
    );
    await assertStillServing(tern, 'an SPF timeout');
  });

  test('SPF record lookup answered with SERVFAIL: 451 4.7.24 at MAIL FROM as well', async () => {
    const { tx } = await send(tern, {
      mailFrom: 'a@spf-servfail.test',
      from: 'a@ok.test',
      subject: 'spf servfail tempfail',
    });
    assert.equal(tx.mail.code, 451, JSON.stringify(tx));
    assert.equal(tx.mail.enhanced, '4.7.24');
  });

  test('DKIM key lookup times out: 451 at end of data (4.x.x), nothing stored', async () => {
    const subject = 'dkim timeout tempfail';
    const { tx } = await send(tern, { mailFrom: 'a@ok.test', from: 'a@ok.test', subject, sign: true });
    assert.equal(tx.mail.code, 250);
    assert.equal(tx.data?.code, 451, JSON.stringify(tx));
    assert.match(tx.data.enhanced, /^4\.\d+\.\d+$/);
    await assertStillServing(tern, 'a DKIM timeout');
    assert.deepEqual(await subjectIn(tern, RCPT, subject), []);
  });

  test('DMARC record lookup times out: 451 at end of data, nothing stored', async () => {
    const subject = 'dmarc timeout tempfail';
    const { tx } = await send(tern, { mailFrom: 'a@dmarc-slow.test', from: 'a@dmarc-slow.test', subject });
    assert.equal(tx.mail.code, 250);
    assert.equal(tx.data?.code, 451, JSON.stringify(tx));
    assert.match(tx.data.enhanced, /^4\.\d+\.\d+$/);
    await assertStillServing(tern, 'a DMARC timeout');
    assert.deepEqual(await subjectIn(tern, RCPT, subject), []);
  });
});

describe('DNS failures with dns_failure = "neutral"', () => {
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones(ZONES);
    tern = await startAuthTern(dns, { users: [RCPT], checks: { dns_failure: 'neutral' } });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  test('SPF lookup times out: accepted, spf=temperror smtp.mailfrom=…', async () => {
    const subject = 'spf timeout neutral';
    const { tx } = await send(tern, { mailFrom: 'a@spf-timeout.test', from: 'a@ok.test', subject });
    assert.equal(tx.mail.code, 250, JSON.stringify(tx));
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const ar = ourAuthResults(await storedBySubject(tern, RCPT, subject));
    const mailfrom = resultsFor(ar, 'spf').find((r) => 'smtp.mailfrom' in r.props);
    assert.equal(mailfrom?.result, 'temperror', JSON.stringify(ar));
    assert.equal(mailfrom.props['smtp.mailfrom'], 'a@spf-timeout.test');
  });

  test('DKIM key lookup times out: accepted, dkim=temperror header.d=ok.test header.s=slow', async () => {
    const subject = 'dkim timeout neutral';
    const { tx } = await send(tern, { mailFrom: 'a@ok.test', from: 'a@ok.test', subject, sign: true });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const ar = ourAuthResults(await storedBySubject(tern, RCPT, subject));
    const dkim = resultsFor(ar, 'dkim');
    assert.equal(dkim.length, 1, JSON.stringify(ar));
    assert.equal(dkim[0]!.result, 'temperror');
    assert.equal(dkim[0]!.props['header.d'], 'ok.test');
    assert.equal(dkim[0]!.props['header.s'], 'slow');
  });

  test('DMARC lookup times out: accepted into INBOX, dmarc=temperror', async () => {
    const subject = 'dmarc timeout neutral';
    const { tx } = await send(tern, { mailFrom: 'a@dmarc-slow.test', from: 'a@dmarc-slow.test', subject });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const ar = ourAuthResults(await storedBySubject(tern, RCPT, subject));
    assert.equal(resultsFor(ar, 'dmarc')[0]?.result, 'temperror', JSON.stringify(ar));
    assert.deepEqual(await subjectIn(tern, RCPT, subject), ['INBOX']);
  });
});
