// Tests of the Authentication-Results: field InboundAuth writes (RFC 8601), with a fake resolver: the
// DMARC resinfo says "dmarc=none" alone when the author domain has no DMARC record and keeps its
// "(p=… dis=…)" comment when a record exists; the field is UTF-8 text for an SMTPUTF8 message
// (RFC 6532) and plain ASCII otherwise (a U-label HELO becomes A-labels). The bytes that reach the
// queue are checked end to end in test/e2e/headers-utf8.test.ts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_CHECKS } from '../config/config.ts';
import type { DnsAnswer, Resolver } from '../core/dns.ts';
import { InboundAuth } from './inbound-auth.ts';

/** TXT answers from `zone` (name → records, or a failure's reason); every other question has no answer. */
function fakeResolver(zone: Readonly<Record<string, readonly string[] | { error: string }>>): Resolver {
  const none = <T>(): Promise<DnsAnswer<T>> => Promise.resolve({ kind: 'nodata' });
  return {
    txt: (name) => {
      const records = zone[name.toLowerCase().replace(/\.$/, '')];
      if (records !== undefined && 'error' in records)
        return Promise.resolve({ kind: 'error', temporary: true, reason: records.error });
      return Promise.resolve(records ? { kind: 'ok', records, ttlMs: 1000 } : { kind: 'nxdomain' });
    },
    mx: none,
    a: none,
    aaaa: none,
    ptr: none,
  };
}

async function header(opts: {
  zone?: Readonly<Record<string, readonly string[] | { error: string }>>;
  helo?: string;
  mailFrom: string;
  from: readonly string[];
  smtputf8: boolean;
}): Promise<string> {
  const auth = new InboundAuth({
    resolver: fakeResolver(opts.zone ?? {}),
    checks: DEFAULT_CHECKS,
    hostname: 'mx.example.test',
    clock: { nowMs: () => 1_770_000_000_000 },
  });
  await auth.atMail({ ip: '192.0.2.1', helo: opts.helo ?? 'client.example.org', mailFrom: opts.mailFrom });
  auth.push(new TextEncoder().encode('From: x\r\n\r\nbody\r\n'));
  return (await auth.atEnd(opts.from, { smtputf8: opts.smtputf8 })).header;
}

/** The dmarc resinfo, unfolded. */
function dmarcPart(field: string): string {
  const part = field
    .replace(/\r\n\t/g, ' ')
    .split(';')
    .map((p) => p.trim())
    .find((p) => p.startsWith('dmarc='));
  assert.ok(part !== undefined, field);
  return part;
}

const isAscii = (s: string): boolean => /^[\x00-\x7f]*$/.test(s);

describe('Authentication-Results: dmarc', () => {
  test('no DMARC record: plain "dmarc=none", no policy comment', async () => {
    const field = await header({ mailFrom: 'a@nodmarc.test', from: ['a@nodmarc.test'], smtputf8: false });
    assert.equal(dmarcPart(field), 'dmarc=none header.from=nodmarc.test');
  });

  test('a record with p=none: the comment stays', async () => {
    const field = await header({
      zone: { '_dmarc.monitor.test': ['v=DMARC1; p=none'] },
      mailFrom: 'a@monitor.test',
      from: ['a@monitor.test'],
      smtputf8: false,
    });
    assert.equal(dmarcPart(field), 'dmarc=fail (p=none dis=none) header.from=monitor.test');
  });
});

describe('Authentication-Results: UTF-8 only where the message is SMTPUTF8', () => {
  for (const local of ['jürgen', '日本']) {
    test(`${local}@ with SMTPUTF8: the address stays as UTF-8 text`, async () => {
      const mailFrom = `${local}@example.org`;
      const field = await header({ mailFrom, from: [mailFrom], smtputf8: true });
      assert.match(field, new RegExp(`smtp\\.mailfrom="${local}@example\\.org"`));
      // What is written to the queue is this text as UTF-8, and it reads back the same.
      const bytes = new TextEncoder().encode(field);
      assert.equal(new TextDecoder('utf-8', { fatal: true }).decode(bytes), field);
    });
  }

  test('without SMTPUTF8 the field is ASCII: a U-label HELO is written as A-labels', async () => {
    const field = await header({
      helo: 'bücher.example',
      mailFrom: 'a@example.org',
      from: ['a@example.org'],
      smtputf8: false,
    });
    assert.ok(isAscii(field), field);
    assert.match(field, /smtp\.helo=xn--bcher-kva\.example\b/);
  });

  test('without SMTPUTF8 the null sender with a U-label HELO: postmaster@ the A-label', async () => {
    const field = await header({ helo: '日本.example', mailFrom: '', from: [], smtputf8: false });
    assert.ok(isAscii(field), field);
    assert.match(field, /smtp\.mailfrom=postmaster@xn--wgv71a\.example\b/);
  });

  test('with SMTPUTF8 a U-label HELO stays as it is', async () => {
    const field = await header({
      helo: 'bücher.example',
      mailFrom: 'a@example.org',
      from: [],
      smtputf8: true,
    });
    assert.match(field, /smtp\.helo="bücher\.example"/);
  });
});

describe('Authentication-Results: reason comments', () => {
  test('a long reason is cut before escaping: the cut never leaves a "\\" that quotes the ")"', async () => {
    // "cut.test: TXT lookup for cut.test failed: " is 42 characters: the "(" is the 200th.
    const reason = `${'x'.repeat(200 - 42 - 1)}(more)`;
    const field = await header({
      zone: { 'cut.test': { error: reason } },
      mailFrom: 'a@cut.test',
      from: [],
      smtputf8: false,
    });
    const spf = field.split(';')[1]!;
    assert.match(
      spf,
      /^\s*spf=temperror \(cut\.test: TXT lookup for cut\.test failed: x+\\\(\) smtp\.mailfrom=a@cut\.test$/,
    );
  });
});
