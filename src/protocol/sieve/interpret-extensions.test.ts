// Extensions that look at more of the message or the world: body (RFC 5173), date and index (RFC 5260),
// relational (RFC 5231), subaddress (RFC 5233), copy (RFC 3894), mailbox (RFC 5490), spamtest and
// spamtestplus (RFC 5235). Examples from the RFCs where they give them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { datePart, parseDateTime } from './date.ts';
import type { SieveInput } from './interpret.ts';
import { makeInput, run, stores } from './test-helpers.ts';
import { spamValue } from './tests.ts';

const hits = (script: string, input: SieveInput = makeInput()): boolean => {
  const r = run(script, input);
  assert.deepEqual(r.errors, []);
  return r.actions.some((a) => a.kind === 'discard');
};

const MULTIPART = [
  'From: jo@example.org',
  'To: me@example.com',
  'Subject: parts',
  'MIME-Version: 1.0',
  'Content-Type: multipart/alternative; boundary="b1"',
  '',
  'preamble',
  '--b1',
  'Content-Type: text/plain; charset=iso-8859-1',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'Gr=FC=DFe, MAKE MONEY FAST',
  '--b1',
  'Content-Type: text/html; charset=utf-8',
  'Content-Transfer-Encoding: base64',
  '',
  Buffer.from('<p>日本 <b>bold</b> &amp; more</p>').toString('base64'),
  '--b1',
  'Content-Type: application/octet-stream',
  '',
  'BINARYSECRET',
  '--b1--',
  '',
].join('\n');

describe('sieve body (RFC 5173)', () => {
  const input = makeInput(MULTIPART);

  test(':raw sees the undecoded body, boundaries included', () => {
    assert.ok(hits('require "body"; if body :raw :contains "Gr=FC=DFe" { discard; }', input));
    assert.ok(hits('require "body"; if body :raw :contains "--b1" { discard; }', input));
    assert.ok(!hits('require "body"; if body :raw :contains "Subject" { discard; }', input));
  });

  test(':text (the default) decodes text parts, charsets and HTML', () => {
    assert.ok(hits('require "body"; if body :contains "Grüße" { discard; }', input));
    assert.ok(hits('require "body"; if body :text :contains "日本 bold & more" { discard; }', input));
    assert.ok(!hits('require "body"; if body :text :contains "BINARYSECRET" { discard; }', input));
    assert.ok(!hits('require "body"; if body :contains "<b>" { discard; }', input));
  });

  test(':content picks parts by type ("text", "text/html", "" for all)', () => {
    assert.ok(
      hits('require "body"; if body :content "text" :contains "MAKE MONEY FAST" { discard; }', input),
    );
    assert.ok(
      !hits('require "body"; if body :content "text/html" :contains "MAKE MONEY" { discard; }', input),
    );
    assert.ok(
      hits(
        'require "body"; if body :content "application/octet-stream" :contains "SECRET" { discard; }',
        input,
      ),
    );
    assert.ok(hits('require "body"; if body :content "" :contains "SECRET" { discard; }', input));
  });

  test('the body is read only when a body test runs; no body, no match', () => {
    let reads = 0;
    const counted = { ...makeInput(), body: (): Uint8Array => (reads++, new TextEncoder().encode('x')) };
    run('require "body"; if header :is "x" "y" { if body :contains "x" { discard; } }', counted);
    assert.equal(reads, 0);
    run('require "body"; if body :contains "a" { discard; } if body :contains "b" { discard; }', counted);
    assert.equal(reads, 1);
    assert.ok(
      !hits('require "body"; if body :contains "" { discard; }', { ...makeInput(), body: () => null }),
    );
  });
});

describe('sieve date and index (RFC 5260)', () => {
  test('date parts, written as Pigeonhole writes them', () => {
    const t = parseDateTime('Tue, 1 Apr 2008 13:14:15 +0200')!;
    const utc = { epochMs: t.epochMs, offsetMinutes: 0 };
    const parts = [
      'year',
      'month',
      'day',
      'date',
      'julian',
      'hour',
      'minute',
      'second',
      'time',
      'iso8601',
      'std11',
      'zone',
      'weekday',
    ];
    assert.deepEqual(
      parts.map((p) => datePart(t, p)),
      [
        '2008',
        '04',
        '01',
        '2008-04-01',
        '54557',
        '13',
        '14',
        '15',
        '13:14:15',
        '2008-04-01T13:14:15+02:00',
        'Tue, 01 Apr 2008 13:14:15 +0200',
        '+0200',
        '2',
      ],
    );
    assert.equal(datePart(utc, 'iso8601'), '2008-04-01T11:14:15Z');
    assert.equal(
      datePart({ epochMs: t.epochMs, offsetMinutes: -90 }, 'iso8601'),
      '2008-04-01T09:44:15-01:30',
    );
  });

  test('obsolete date forms (RFC 5322 §4.3) and nonsense', () => {
    assert.equal(parseDateTime('1 Apr 08 13:14 GMT')?.epochMs, Date.UTC(2008, 3, 1, 13, 14));
    assert.equal(parseDateTime('Tue,  1 Apr 2008 13:14:15 EST (Eastern)')?.offsetMinutes, -300);
    assert.equal(parseDateTime('31 Feb 2008 10:00:00 +0000'), null);
    assert.equal(parseDateTime('yesterday'), null);
  });

  test('the RFC 5260 §4 example: office hours in the sender zone', () => {
    const script = `require ["date", "relational", "fileinto"];
if allof(header :is "from" "boss@example.com",
         date :value "ge" :originalzone "date" "hour" "09",
         date :value "lt" :originalzone "date" "hour" "17")
{ fileinto "urgent"; }`;
    const at = (date: string): string[] =>
      stores(run(script, makeInput(`From: boss@example.com\nDate: ${date}\n\nx\n`)));
    assert.deepEqual(at('Tue, 1 Apr 2008 13:14:15 +0200'), ['urgent']);
    assert.deepEqual(at('Tue, 1 Apr 2008 18:00:00 +0200'), ['INBOX (implicit)']);
  });

  test('without a zone tag the date is moved to the local zone; :zone moves it anywhere', () => {
    const local = makeInput(undefined, { now: { epochMs: 0, zone: '-0500' } });
    assert.ok(hits('require "date"; if date :is "date" "hour" "06" { discard; }', local));
    assert.ok(
      hits(
        'require "date"; if date :zone "+0900" :is "date" "iso8601" "2008-04-01T20:14:15+09:00" { discard; }',
      ),
    );
    assert.ok(hits('require "date"; if date :originalzone :is "date" "zone" "+0200" { discard; }'));
  });

  test('currentdate uses the time given, in its zone or :zone (the RFC 5260 §5 vacation example)', () => {
    const july = makeInput(undefined, { now: { epochMs: Date.UTC(2007, 6, 2, 10), zone: '+0000' } });
    const r = run(
      `require ["date", "relational", "vacation"];
if allof(currentdate :value "ge" "date" "2007-06-30", currentdate :value "le" "date" "2007-07-07")
{ vacation :days 7 "I'm away during the first week in July."; }`,
      july,
    );
    assert.deepEqual(
      r.actions.map((a) => a.kind),
      ['vacation'],
    );
    assert.ok(
      hits('require "date"; if currentdate :zone "-1100" :is "date" "2007-07-01" { discard; }', july),
    );
    assert.ok(hits('require "date"; if currentdate :is "weekday" "1" { discard; }', july));
  });

  test('the first occurrence by default; :index / :last pick another; Received dates after the ";"', () => {
    const m = [
      'Received: from a by b; Wed, 2 Apr 2008 10:00:00 +0000',
      'Received: from c by d; Tue, 1 Apr 2008 09:00:00 +0000',
      'Date: Mon, 31 Mar 2008 08:00:00 +0000',
      'Date: Sun, 30 Mar 2008 08:00:00 +0000',
      '',
      'x',
    ].join('\n');
    const input = makeInput(m);
    assert.ok(hits('require "date"; if date :is "date" "day" "31" { discard; }', input));
    assert.ok(!hits('require "date"; if date :is "date" "day" "30" { discard; }', input));
    assert.ok(hits('require ["date", "index"]; if date :index 2 :is "date" "day" "30" { discard; }', input));
    assert.ok(
      hits('require ["date", "index"]; if date :index 1 :last :is "received" "day" "01" { discard; }', input),
    );
    assert.ok(
      hits(
        'require ["date", "index", "relational"]; if date :value "gt" :index 2 :zone "-0500" "received" "iso8601" "2008-04-01T03:00:00-05:00" { discard; }',
        input,
      ),
    );
    assert.ok(hits('require "index"; if header :index 2 :contains "received" "from c" { discard; }', input));
    assert.ok(!hits('require "index"; if header :index 3 :contains "received" "from" { discard; }', input));
    assert.ok(hits('require "index"; if address :index 1 :last :is "from" "jo@example.org" { discard; }'));
  });

  test('a missing or unreadable date never matches', () => {
    assert.ok(!hits('require "date"; if date :matches "x-none" "year" "*" { discard; }'));
    assert.ok(!hits('require "date"; if date :matches "subject" "year" "*" { discard; }'));
  });
});

describe('sieve relational (RFC 5231)', () => {
  test(':count on headers and addresses, :value on header values', () => {
    const input = makeInput('To: a@x.example, b@x.example\nCc: c@y.example\nX-Score: 42\n\nx\n');
    const req = 'require ["relational", "comparator-i;ascii-numeric"];';
    assert.ok(
      hits(
        `${req} if address :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "3" { discard; }`,
        input,
      ),
    );
    assert.ok(
      hits(`${req} if header :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] "2" { discard; }`, input),
    );
    assert.ok(
      hits(`${req} if header :value "gt" :comparator "i;ascii-numeric" "x-score" "9" { discard; }`, input),
    );
    assert.ok(
      !hits(`${req} if header :value "gt" "x-score" "9" { discard; }`, input),
      'as strings, "42" < "9"',
    );
  });
});

describe('sieve subaddress (RFC 5233)', () => {
  const input = makeInput('From: jo+lists@example.org\nTo: me@example.com\n\nx\n', {
    envelope: { from: 'jo+lists@example.org', to: 'ken+mta-filters@example.org' },
  });

  test('the RFC 5233 §6 example', () => {
    const script = `require ["envelope", "subaddress", "fileinto"];
if envelope :user "to" "postmaster" { fileinto "inbox.postmaster"; stop; }
if envelope :detail "to" "mta-filters" { fileinto "inbox.ietf-mta-filters"; stop; }`;
    assert.deepEqual(stores(run(script, input)), ['inbox.ietf-mta-filters']);
  });

  test(':user and :detail; no separator means no detail (as Pigeonhole)', () => {
    assert.ok(hits('require "subaddress"; if address :user "from" "jo" { discard; }', input));
    assert.ok(hits('require "subaddress"; if address :detail "from" "lists" { discard; }', input));
    assert.ok(hits('require "subaddress"; if address :user "to" "me" { discard; }', input));
    assert.ok(!hits('require "subaddress"; if address :detail :matches "to" "*" { discard; }', input));
    assert.ok(!hits('require "subaddress"; if address :detail "to" "" { discard; }', input));
  });

  test('the separator is an option, any of its characters', () => {
    const dash = makeInput('From: jo-lists@example.org\n\nx\n', { subaddressSeparator: '-+' });
    assert.ok(hits('require "subaddress"; if address :detail "from" "lists" { discard; }', dash));
  });
});

describe('sieve copy and mailbox (RFC 3894, RFC 5490)', () => {
  test(':copy keeps the implicit keep', () => {
    const r = run('require ["copy", "fileinto"]; fileinto :copy "Archive"; redirect :copy "b@example.net";');
    assert.equal(r.implicitKeep, true);
    assert.deepEqual(r.actions, [
      { kind: 'fileinto', mailbox: 'Archive', flags: [], create: false, copy: true },
      { kind: 'redirect', address: 'b@example.net', copy: true },
    ]);
  });

  test('fileinto :create and mailboxexists', () => {
    assert.deepEqual(run('require ["fileinto", "mailbox"]; fileinto :create "New";').actions, [
      { kind: 'fileinto', mailbox: 'New', flags: [], create: true, copy: false },
    ]);
    assert.ok(hits('require "mailbox"; if mailboxexists ["Archive", "inbox"] { discard; }'));
    assert.ok(!hits('require "mailbox"; if mailboxexists ["Archive", "Nope"] { discard; }'));
  });
});

describe('sieve spamtest (RFC 5235)', () => {
  test('the scale: 0 untested, 1..10 (or 0..100 with :percent) from score over threshold', () => {
    assert.equal(spamValue(null, false), '0');
    assert.equal(spamValue({ score: -2, threshold: 5 }, false), '1');
    assert.equal(spamValue({ score: 0, threshold: 5 }, false), '1');
    assert.equal(spamValue({ score: 2.5, threshold: 5 }, false), '5');
    assert.equal(spamValue({ score: 5, threshold: 5 }, false), '10');
    assert.equal(spamValue({ score: 50, threshold: 5 }, true), '100');
    assert.equal(spamValue({ score: 3.2, threshold: 5 }, true), '64');
  });

  test('the RFC 5235 §3.1 example', () => {
    const script = `require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric"];
if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "INBOX.unclassified"; }
elsif spamtest :value "ge" :comparator "i;ascii-numeric" "3" { fileinto "INBOX.spam-trap"; }`;
    assert.deepEqual(stores(run(script)), ['INBOX.unclassified']);
    assert.deepEqual(stores(run(script, makeInput(undefined, { spam: { score: 4, threshold: 5 } }))), [
      'INBOX.spam-trap',
    ]);
    assert.deepEqual(stores(run(script, makeInput(undefined, { spam: { score: 0.1, threshold: 5 } }))), [
      'INBOX (implicit)',
    ]);
  });

  test('spamtestplus :percent', () => {
    const script =
      'require ["spamtestplus", "relational", "comparator-i;ascii-numeric"]; if spamtest :percent :value "gt" :comparator "i;ascii-numeric" "60" { discard; }';
    assert.ok(hits(script, makeInput(undefined, { spam: { score: 4, threshold: 5 } })));
    assert.ok(!hits(script, makeInput(undefined, { spam: { score: 2, threshold: 5 } })));
  });
});
