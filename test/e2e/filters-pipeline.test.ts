// The filter pipeline over real SMTP (issue 17), with filters loaded as plugins from files: a test
// plugin whose verdict the Subject picks (test/e2e/plugins/gate.ts) and the example plugin
// (examples/filters/subject-words.ts). Proven here: config order (a trail file the plugins append to),
// per-filter timeouts with both failure modes (a per-network pipeline gives 127.0.0.2 the "accept" one),
// a filter dying mid-message never losing the message (451: the client keeps it; or accepted whole),
// reject, discard, quarantine to Junk, header edits and a new body written into the stored message,
// scores in X-Tern-Filter, each verdict in the log and the trace.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DnsServer } from '../support/dns-server.ts';
import type { AuthTern } from './authchecks-helpers.ts';
import { headerFields, message, startAuthTern, startZones, transact } from './authchecks-helpers.ts';

const RCPT = 'rcpt@example.test';
const UTF8_RCPT = '日本@example.test';
const ROOT = join(import.meta.dirname, '..', '..');

describe('the filter pipeline end to end (plugins from files)', () => {
  let dns: DnsServer;
  let tern: AuthTern;
  let trail: string;

  before(async () => {
    dns = await startZones({});
    tern = await startAuthTern(dns, {
      users: [RCPT, UTF8_RCPT],
      tern: {
        logLevel: 'debug',
        admin: true,
        extraToml: [
          '[filters]',
          'order = ["gate", "words"]',
          '[filters.networks]',
          '"127.0.0.2/32" = ["gate-open"]',
          '[[filters.plugin]]',
          'name = "gate"',
          `path = ${JSON.stringify(join(ROOT, 'test/e2e/plugins/gate.ts'))}`,
          'timeout_seconds = 0.5',
          'on_failure = "tempfail"',
          'trail = "trail.txt"',
          '[[filters.plugin]]',
          'name = "gate-open"',
          `path = ${JSON.stringify(join(ROOT, 'test/e2e/plugins/gate.ts'))}`,
          'timeout_seconds = 0.5',
          'on_failure = "accept"',
          '[[filters.plugin]]',
          'name = "words"',
          `path = ${JSON.stringify(join(ROOT, 'examples/filters/subject-words.ts'))}`,
          'reject = ["viagra"]',
          'score = { "free money" = 3.5 }',
          'trail = "trail.txt"',
          '',
        ].join('\n'),
      },
    });
    // The plugin resolves its trail file against the server's working directory (its data folder's parent).
    trail = join(tern.dir, 'trail.txt');
  });
  after(async () => {
    await tern?.stop();
    await dns?.close();
  });

  const send = (
    subject: string,
    opts: { from?: string; to?: string; body?: string; extra?: [string, string][] } = {},
  ) => {
    const to = opts.to ?? RCPT;
    const utf8 = /[^\x00-\x7f]/.test(to + subject);
    return transact({
      port: tern.ports.smtp,
      localAddress: opts.from ?? '127.0.0.1',
      helo: 'client.example.net',
      from: 'sender@example.net',
      to,
      ...(utf8 ? { mailParams: 'SMTPUTF8' } : {}),
      message: Buffer.from(
        message({
          from: 'sender@example.net',
          to,
          subject,
          ...(opts.body === undefined ? {} : { body: opts.body }),
          extraHeaders: opts.extra ?? [],
        }).toString('latin1'),
        'latin1',
      ),
      timeoutMs: 10_000,
    });
  };

  const stored = async (address: string, subject: RegExp, mailbox = 'INBOX'): Promise<Buffer> => {
    for (let i = 0; i < 100; i++) {
      const found = (await tern.messagesIn(address, mailbox)).find((m) => subject.test(m.subject));
      if (found !== undefined) return tern.storedMessage(address, found.id);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no message ${subject} in ${address}'s ${mailbox}`);
  };

  test('filters run in config order at every stage they name; a clean message is accepted', async () => {
    const tx = await send('plain and clean');
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    await stored(RCPT, /^plain and clean$/);
    const lines = (await readFile(trail, 'utf8')).trim().split('\n');
    assert.deepEqual(lines.slice(-4), ['gate:mail', 'gate:rcpt', 'gate:headers', 'gate:message']);
    // Both plugins at the header stage, in config order, then SPF/DKIM/DMARC ("auth", last by default).
    const queueId = /queued as (\S+)/.exec(tx.data?.text ?? '')?.[1];
    await tern.waitForLog(
      'the auth verdict',
      (l) => l['event'] === 'smtp.filter' && l['queueId'] === queueId && l['filter'] === 'auth',
    );
    const verdicts = tern
      .logs()
      .filter((l) => l['event'] === 'smtp.filter' && l['queueId'] === queueId)
      .map((l) => `${String(l['filter'])}:${String(l['stage'])}`);
    assert.deepEqual(verdicts, ['gate:headers', 'words:headers', 'gate:message', 'auth:message']);
  });

  test('a filter that does not answer in time: tempfail gives 451 4.7.1 within the timeout, nothing stored', async () => {
    const started = performance.now();
    const tx = await send('hang');
    assert.equal(tx.data?.code, 451, JSON.stringify(tx));
    assert.match(tx.data?.text ?? '', /^4\.7\.1 /);
    assert.ok(performance.now() - started < 5000);
    const line = await tern.waitForLog(
      'the timed-out verdict',
      (l) => l['event'] === 'smtp.filter' && l['filter'] === 'gate' && typeof l['failed'] === 'string',
    );
    assert.match(String(line['failed']), /no answer within 500 ms/);
    assert.equal(line['verdict'], 'defer');
  });

  test('the same filter with on_failure = "accept" (the network 127.0.0.2/32 pipeline): accepted, the failure logged', async () => {
    const tx = await send('hang', { from: '127.0.0.2', to: UTF8_RCPT });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    await stored(UTF8_RCPT, /^hang$/);
    const line = await tern.waitForLog(
      'the failed-open verdict',
      (l) => l['event'] === 'smtp.filter' && l['filter'] === 'gate-open',
    );
    assert.equal(line['verdict'], 'accept');
  });

  test('a filter dying mid-message loses nothing: tempfail → 451 (the client keeps it); accept → stored whole', async () => {
    const body = 'x'.repeat(76) + '\r\n';
    const big = body.repeat(200);
    const refused = await send('midway', { body: big });
    assert.equal(refused.data?.code, 451, JSON.stringify(refused));
    const kept = await send('midway', { from: '127.0.0.2', body: big });
    assert.equal(kept.data?.code, 250, JSON.stringify(kept));
    const raw = await stored(RCPT, /^midway$/);
    assert.ok(raw.toString('latin1').endsWith(big), 'the whole body is stored');
  });

  test('a crashing filter (throws) with tempfail: 451; its error is in the log', async () => {
    const tx = await send('throw');
    assert.equal(tx.data?.code, 451, JSON.stringify(tx));
    await tern.waitForLog(
      'the crash',
      (l) => l['event'] === 'smtp.filter' && l['failed'] === 'the filter crashed',
    );
  });

  test("reject: the filter's own reply; the example plugin refuses a listed word (554 5.7.1)", async () => {
    const a = await send('reject');
    assert.equal(a.data?.code, 554, JSON.stringify(a));
    assert.match(a.data?.text ?? '', /Refused by the gate/);
    const b = await send('cheap viagra here');
    assert.equal(b.data?.code, 554, JSON.stringify(b));
    assert.match(b.data?.text ?? '', /subject is on our list/);
  });

  test('discard: 250, then nothing is stored; the log says why', async () => {
    const tx = await send('discard');
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const line = await tern.waitForLog('the discard', (l) => l['event'] === 'smtp.discarded');
    assert.match(String(line['reason']), /subject says discard/);
    // The trace tells the story: each check's verdict, then the discard.
    const trace = await tern.tern(['trace', String(line['queueId'])]);
    assert.equal(trace.code, 0, trace.stderr);
    assert.match(
      trace.stdout,
      /filtered +filter=gate verdict=discard stage=message reason=subject says discard/,
    );
    assert.match(trace.stdout, /discarded +reason=gate: subject says discard/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await tern.messagesIn(RCPT, 'INBOX')).filter((m) => m.subject === 'discard').length, 0);
  });

  test('quarantine: filed in Junk with the added field and X-Tern-Filter', async () => {
    const tx = await send('junk', { to: UTF8_RCPT });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const raw = await stored(UTF8_RCPT, /^junk$/, 'Junk');
    assert.deepEqual(headerFields(raw, 'X-Gate'), ['junk']);
    assert.match(headerFields(raw, 'X-Tern-Filter')[0] ?? '', /gate=quarantine/);
  });

  test('header edits: on top, inserted, changed (UTF-8) and removed; the body unchanged; traced under both ids', async () => {
    const tx = await send('edit', {
      to: UTF8_RCPT,
      extra: [
        ['X-Remove-Me', 'please'],
        ['X-Keep', 'kept'],
      ],
    });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const raw = await stored(UTF8_RCPT, /^edited: /);
    const text = raw.toString('utf8');
    assert.deepEqual(headerFields(raw, 'X-Remove-Me'), []);
    assert.deepEqual(headerFields(raw, 'X-Keep'), ['kept']);
    assert.match(text, /X-Gate-Top: on top\r\n/);
    assert.match(text, /Subject: edited: 日本語の件名\r\n/);
    // Inserted at position 0 of the client's fields: right after our Received: block.
    const received = text.indexOf('Received: ');
    const first = text.indexOf('X-Gate-First: first of the client fields');
    const from = text.indexOf('From: <sender@example.net>');
    assert.ok(received >= 0 && received < first && first < from, text.slice(0, 800));
    assert.ok(text.endsWith('Hello from the authentication tests.\r\n'));
    const rewritten = await tern.waitForLog(
      'the rewrite',
      (l) => l['event'] === 'smtp.rewritten' && typeof l['newQueueId'] === 'string',
    );
    const trace = await tern.tern(['trace', String(rewritten['newQueueId']), '--json']);
    assert.equal(trace.code, 0, trace.stderr);
    assert.match(trace.stdout, /"event": "rewritten"/, trace.stdout.slice(-3000));
  });

  test('a new body replaces the old one; the header block stays', async () => {
    const tx = await send('body');
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const raw = await stored(RCPT, /^body$/);
    assert.ok(
      raw.toString('latin1').endsWith('\r\n\r\nThe gate replaced this body.\r\n'),
      raw.toString('latin1'),
    );
  });

  test('recipients added and removed by a filter: the message goes to the new one only', async () => {
    const tx = await send('redirect');
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    await stored(UTF8_RCPT, /^redirect$/);
    assert.equal((await tern.messagesIn(RCPT, 'INBOX')).filter((m) => m.subject === 'redirect').length, 0);
  });

  test('scores add up into X-Tern-Filter (the example plugin scores "free money" 3.5)', async () => {
    const tx = await send('score:1.25 free money', {
      extra: [['X-Tern-Filter', 'mx.example.test; spam=0 (a sender pretending to be us)']],
    });
    assert.equal(tx.data?.code, 250, JSON.stringify(tx));
    const raw = await stored(RCPT, /^score:1\.25 free money$/);
    const fields = headerFields(raw, 'X-Tern-Filter');
    assert.equal(fields.length, 1, 'the forged verdict in our name is gone');
    const [field] = fields;
    assert.match(field ?? '', /words=3\.5/);
    assert.match(field ?? '', /gate=1\.25/);
    assert.match(field ?? '', /score=4\.75/);
  });

  test('verdicts are counted as metrics by filter, stage and verdict; failures and durations too', async () => {
    const res = await fetch(`http://127.0.0.1:${tern.ports.admin}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const count = (labels: string): number => {
      const m = new RegExp(`^tern_filter_verdicts_total\\{${labels}\\} (\\d+)`, 'm').exec(text);
      return m === null ? 0 : Number(m[1]);
    };
    assert.ok(count('filter="gate",stage="message",verdict="defer"') >= 3, text.slice(0, 2000));
    assert.ok(count('filter="words",stage="headers",verdict="reject"') >= 1);
    assert.ok(count('filter="gate",stage="message",verdict="discard"') >= 1);
    assert.match(text, /^tern_filter_failures_total\{filter="gate"\} [1-9]/m);
    assert.match(text, /^tern_filter_seconds_count\{filter="gate-open"\} [1-9]/m);
  });
});
