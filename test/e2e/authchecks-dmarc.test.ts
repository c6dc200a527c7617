// DMARC end to end (RFC 7489, with RFC 9989 where it changed things): SPF or DKIM aligned with the From:
// domain (relaxed by default, strict with aspf=s) gives dmarc=pass; a failing message is refused with
// 550 5.7.1 at end of data for p=reject (the client sees it, nothing is stored), delivered to the Junk
// mailbox for p=quarantine, and the [checks] dmarc_reject / dmarc_quarantine switches move those
// dispositions; pct=0 lowers the policy one step (§6.6.4: quarantine → none, reject → quarantine) and
// sp= governs subdomains. [checks] authserv_id names our Authentication-Results field and decides which
// incoming ones are forgeries.
// Deliberately NOT here: the DMARC cases at the module level (test/conformance/dmarc-cases.test.ts),
// DNS failures (authchecks-dns.test.ts).

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { DkimKey } from '../../src/delivery/dkim-sign.ts';
import { dkimDnsRecord, signMessage } from '../../src/delivery/dkim-sign.ts';
import type { DnsServer, RecordSpec } from '../support/dns-server.ts';
import type { AuthTern, ResInfo, Transaction } from './authchecks-helpers.ts';
import {
  HOSTNAME,
  authResultsOf,
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
const txt = (text: string): RecordSpec[] => [{ type: 'TXT', text }];
const SPF_PASS = txt('v=spf1 ip4:127.0.0.1 -all');
const SPF_FAIL = txt('v=spf1 ip4:192.0.2.1 -all');

// A DKIM key for dkimonly.test; the signature is made with Tern's signer, as any signer would do.
const KEY: DkimKey = {
  domain: 'dkimonly.test',
  selector: 'k1',
  algorithm: 'ed25519-sha256',
  privateKeyPem: generateKeyPairSync('ed25519')
    .privateKey.export({ format: 'pem', type: 'pkcs8' })
    .toString(),
};

const ZONES = {
  test: {
    // Aligned SPF pass, exact and relaxed (the MAIL FROM is a subdomain of the From: domain).
    'dmarc-pass.test': SPF_PASS,
    '_dmarc.dmarc-pass.test': txt('v=DMARC1; p=reject'),
    'bounces.relaxed.test': SPF_PASS,
    '_dmarc.relaxed.test': txt('v=DMARC1; p=reject'),
    'bounces.strict.test': SPF_PASS,
    '_dmarc.strict.test': txt('v=DMARC1; p=reject; aspf=s'),
    // SPF fails but an aligned DKIM signature passes.
    'dkimonly.test': SPF_FAIL,
    '_dmarc.dkimonly.test': txt('v=DMARC1; p=reject'),
    'k1._domainkey.dkimonly.test': txt(dkimDnsRecord(KEY).value),
    // Failing domains, one per policy.
    'reject.test': SPF_FAIL,
    '_dmarc.reject.test': txt('v=DMARC1; p=reject'),
    'quarantine.test': SPF_FAIL,
    '_dmarc.quarantine.test': txt('v=DMARC1; p=quarantine'),
    'monitor.test': SPF_FAIL,
    '_dmarc.monitor.test': txt('v=DMARC1; p=none'),
    'pct-q.test': SPF_FAIL,
    '_dmarc.pct-q.test': txt('v=DMARC1; p=quarantine; pct=0'),
    'pct-r.test': SPF_FAIL,
    '_dmarc.pct-r.test': txt('v=DMARC1; p=reject; pct=0'),
    // sp= for subdomains: the organizational domain's record applies to news.parent.test.
    'news.parent.test': SPF_FAIL,
    '_dmarc.parent.test': txt('v=DMARC1; p=reject; sp=none'),
    // The sentinel's domain: passes, so it is delivered, and after a refusal proves the queue moved on.
    'sentinel.test': SPF_PASS,
  },
};

interface Sent {
  readonly tx: Transaction;
  readonly subject: string;
}

/** Send from 127.0.0.1 with MAIL FROM <bounce@mailDomain> and From: <author@fromDomain>. */
async function send(
  tern: AuthTern,
  opts: { mailDomain: string; fromDomain?: string; subject: string; sign?: boolean; bdatChunkBytes?: number },
): Promise<Sent> {
  let wire = message({
    from: `author@${opts.fromDomain ?? opts.mailDomain}`,
    to: RCPT,
    subject: opts.subject,
  });
  if (opts.sign === true) {
    const body = wire;
    const sig = await signMessage({
      keys: [KEY],
      nowMs: Date.now(),
      content: () => Readable.from([body]),
    });
    wire = Buffer.concat([Buffer.from(sig, 'latin1'), body]);
  }
  const tx = await transact({
    port: tern.ports.smtp,
    helo: 'client.example.net',
    from: `bounce@${opts.mailDomain}`,
    to: RCPT,
    message: wire,
    ...(opts.bdatChunkBytes === undefined ? {} : { bdatChunkBytes: opts.bdatChunkBytes }),
  });
  assert.equal(tx.mail.code, 250, JSON.stringify(tx));
  assert.equal(tx.rcpt?.code, 250, JSON.stringify(tx));
  return { tx, subject: opts.subject };
}

/** The dmarc resinfo of our field: result, header.from and the (p= dis=) comment. */
function dmarcOf(stored: Buffer, authservId = HOSTNAME): ResInfo {
  const dmarc = resultsFor(ourAuthResults(stored, authservId), 'dmarc');
  assert.equal(dmarc.length, 1, JSON.stringify(dmarc));
  return dmarc[0]!;
}

/**
 * Nothing was stored for `subject`: a sentinel sent afterwards arrives (so the queue moved on) while
 * the refused message is in neither INBOX nor Junk.
 */
async function assertNothingStored(tern: AuthTern, subject: string): Promise<void> {
  const sentinel = `sentinel after ${subject}`;
  const s = await send(tern, { mailDomain: 'sentinel.test', subject: sentinel });
  assert.equal(s.tx.data?.code, 250);
  await storedBySubject(tern, RCPT, sentinel);
  assert.deepEqual(await subjectIn(tern, RCPT, subject), []);
}

describe('DMARC with the default dispositions (reject → 550, quarantine → Junk)', () => {
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones(ZONES);
    tern = await startAuthTern(dns, { users: [RCPT] });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  test('aligned SPF pass: dmarc=pass header.from=<From: domain>, delivered to INBOX', async () => {
    const { tx, subject } = await send(tern, { mailDomain: 'dmarc-pass.test', subject: 'aligned spf' });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const stored = await storedBySubject(tern, RCPT, subject);
    const dmarc = dmarcOf(stored);
    assert.equal(dmarc.result, 'pass');
    assert.equal(dmarc.props['header.from'], 'dmarc-pass.test');
    assert.match(dmarc.comments, /p=reject/);
    assert.deepEqual(await subjectIn(tern, RCPT, subject), ['INBOX']);
  });

  test('relaxed alignment: MAIL FROM in a subdomain of the From: domain passes', async () => {
    const { tx, subject } = await send(tern, {
      mailDomain: 'bounces.relaxed.test',
      fromDomain: 'relaxed.test',
      subject: 'relaxed alignment',
    });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    assert.equal(dmarcOf(await storedBySubject(tern, RCPT, subject)).result, 'pass');
  });

  test('strict alignment (aspf=s): the same subdomain does not align, p=reject refuses', async () => {
    const { tx, subject } = await send(tern, {
      mailDomain: 'bounces.strict.test',
      fromDomain: 'strict.test',
      subject: 'strict alignment',
    });
    assert.equal(tx.data?.code, 550, JSON.stringify(tx));
    assert.equal(tx.data.enhanced, '5.7.1');
    await assertNothingStored(tern, subject);
  });

  test('SPF fails but an aligned DKIM signature passes: dmarc=pass, delivered', async () => {
    const { tx, subject } = await send(tern, {
      mailDomain: 'dkimonly.test',
      subject: 'aligned dkim',
      sign: true,
    });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const ar = ourAuthResults(await storedBySubject(tern, RCPT, subject));
    assert.equal(resultsFor(ar, 'spf').find((r) => 'smtp.mailfrom' in r.props)?.result, 'fail');
    assert.equal(resultsFor(ar, 'dkim')[0]?.result, 'pass');
    assert.equal(resultsFor(ar, 'dmarc')[0]?.result, 'pass');
  });

  test('the same domain unsigned: SPF fail, no DKIM, p=reject → 550 5.7.1 at end of data', async () => {
    const { tx, subject } = await send(tern, { mailDomain: 'dkimonly.test', subject: 'unsigned dkimonly' });
    assert.equal(tx.data?.code, 550, JSON.stringify(tx));
    assert.equal(tx.data.enhanced, '5.7.1');
    await assertNothingStored(tern, subject);
  });

  test('p=reject with SPF fail and no DKIM: 550 5.7.1 after the data, nothing stored, the refusal logged', async () => {
    const { tx, subject } = await send(tern, { mailDomain: 'reject.test', subject: 'dmarc reject' });
    // MAIL and RCPT were accepted (checked in send()); the refusal comes after the final dot.
    assert.equal(tx.data?.code, 550, JSON.stringify(tx));
    assert.equal(tx.data.enhanced, '5.7.1');
    await tern.waitForLog(
      'the DMARC refusal',
      (l) =>
        l.event === 'smtp.authchecks' && l['refused'] === '5.7.1' && /reject\.test/.test(String(l['dmarc'])),
    );
    await assertNothingStored(tern, subject);
  });

  test('BDAT (RFC 3030) in small chunks: the checks see the same message; aligned DKIM passes', async () => {
    // 37-octet chunks: the signature, the header/body boundary and the body all straddle chunks.
    const { tx, subject } = await send(tern, {
      mailDomain: 'dkimonly.test',
      subject: 'bdat signed',
      sign: true,
      bdatChunkBytes: 37,
    });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const ar = ourAuthResults(await storedBySubject(tern, RCPT, subject));
    assert.equal(resultsFor(ar, 'dkim')[0]?.result, 'pass', JSON.stringify(ar));
    assert.equal(resultsFor(ar, 'dmarc')[0]?.result, 'pass', JSON.stringify(ar));
  });

  test('BDAT LAST of a p=reject failure: 550 5.7.1, nothing stored', async () => {
    const { tx, subject } = await send(tern, {
      mailDomain: 'reject.test',
      subject: 'bdat reject',
      bdatChunkBytes: 64,
    });
    assert.equal(tx.data?.code, 550, JSON.stringify(tx));
    assert.equal(tx.data.enhanced, '5.7.1');
    await assertNothingStored(tern, subject);
  });

  test('p=quarantine: accepted with 250, stored in Junk (not INBOX), dmarc=fail dis=quarantine', async () => {
    const { tx, subject } = await send(tern, { mailDomain: 'quarantine.test', subject: 'dmarc quarantine' });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const stored = await storedBySubject(tern, RCPT, subject, 'Junk');
    assert.deepEqual(await subjectIn(tern, RCPT, subject), ['Junk']);
    const dmarc = dmarcOf(stored);
    assert.equal(dmarc.result, 'fail');
    assert.equal(dmarc.props['header.from'], 'quarantine.test');
    assert.match(dmarc.comments, /p=quarantine dis=quarantine/);
  });

  test('p=none: dmarc=fail recorded, delivered to INBOX', async () => {
    const { tx, subject } = await send(tern, { mailDomain: 'monitor.test', subject: 'dmarc monitor' });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const stored = await storedBySubject(tern, RCPT, subject);
    assert.equal(dmarcOf(stored).result, 'fail');
    assert.deepEqual(await subjectIn(tern, RCPT, subject), ['INBOX']);
  });

  test('p=quarantine; pct=0: not sampled, the policy drops to none → INBOX', async () => {
    const { tx, subject } = await send(tern, { mailDomain: 'pct-q.test', subject: 'pct zero quarantine' });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const stored = await storedBySubject(tern, RCPT, subject);
    assert.deepEqual(await subjectIn(tern, RCPT, subject), ['INBOX']);
    assert.match(dmarcOf(stored).comments, /dis=none/);
  });

  test('p=reject; pct=0: RFC 7489 §6.6.4 applies the next lower policy, quarantine → Junk, not 550', async () => {
    const { tx, subject } = await send(tern, { mailDomain: 'pct-r.test', subject: 'pct zero reject' });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const stored = await storedBySubject(tern, RCPT, subject, 'Junk');
    assert.deepEqual(await subjectIn(tern, RCPT, subject), ['Junk']);
    assert.match(dmarcOf(stored).comments, /p=reject dis=quarantine/);
  });

  test('a subdomain follows sp= of the organizational domain (sp=none): fail recorded, delivered', async () => {
    const { tx, subject } = await send(tern, { mailDomain: 'news.parent.test', subject: 'subdomain policy' });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const stored = await storedBySubject(tern, RCPT, subject);
    const dmarc = dmarcOf(stored);
    assert.equal(dmarc.result, 'fail');
    assert.equal(dmarc.props['header.from'], 'news.parent.test');
    assert.deepEqual(await subjectIn(tern, RCPT, subject), ['INBOX']);
  });
});

describe('DMARC with dmarc_reject = "junk", dmarc_quarantine = "none" and a custom authserv_id', () => {
  const AUTHSERV = 'auth.example.test';
  let dns: DnsServer;
  let tern: AuthTern;

  before(async () => {
    dns = await startZones(ZONES);
    tern = await startAuthTern(dns, {
      users: [RCPT],
      checks: { dmarc_reject: 'junk', dmarc_quarantine: 'none', authserv_id: AUTHSERV },
    });
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  test('p=reject failure: accepted and stored in Junk; the header names the configured authserv-id', async () => {
    const { tx, subject } = await send(tern, { mailDomain: 'reject.test', subject: 'reject to junk' });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const stored = await storedBySubject(tern, RCPT, subject, 'Junk');
    assert.deepEqual(await subjectIn(tern, RCPT, subject), ['Junk']);
    const dmarc = dmarcOf(stored, AUTHSERV);
    assert.equal(dmarc.result, 'fail');
    assert.match(dmarc.comments, /p=reject dis=reject/);
    // No field in the hostname's name: the authserv-id is the configured one.
    assert.deepEqual(
      authResultsOf(stored).map((a) => a.authservId),
      [AUTHSERV],
    );
  });

  test('p=quarantine failure with dmarc_quarantine = "none": recorded, delivered to INBOX', async () => {
    const { tx, subject } = await send(tern, {
      mailDomain: 'quarantine.test',
      subject: 'quarantine ignored',
    });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const stored = await storedBySubject(tern, RCPT, subject);
    assert.deepEqual(await subjectIn(tern, RCPT, subject), ['INBOX']);
    assert.equal(dmarcOf(stored, AUTHSERV).result, 'fail');
  });

  test('forgeries are judged by the configured authserv-id: ours removed, the hostname one kept', async () => {
    const subject = 'custom authserv forgery';
    const tx = await transact({
      port: tern.ports.smtp,
      helo: 'client.example.net',
      from: 'bounce@dmarc-pass.test',
      to: RCPT,
      message: message({
        from: 'author@dmarc-pass.test',
        to: RCPT,
        subject,
        extraHeaders: [
          ['Authentication-Results', `${AUTHSERV}; dmarc=pass header.from=bank.test`],
          ['Authentication-Results', `${HOSTNAME}; dmarc=pass header.from=elsewhere.test`],
        ],
      }),
    });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const stored = await storedBySubject(tern, RCPT, subject);
    const fields = authResultsOf(stored);
    assert.equal(fields.filter((a) => a.authservId === AUTHSERV).length, 1, JSON.stringify(fields));
    assert.equal(dmarcOf(stored, AUTHSERV).props['header.from'], 'dmarc-pass.test');
    assert.ok(
      fields.some(
        (a) => a.authservId === HOSTNAME && a.results[0]?.props['header.from'] === 'elsewhere.test',
      ),
      JSON.stringify(fields),
    );
  });
});
