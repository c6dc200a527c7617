import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runSieve } from './interpret.ts';
import { DEFAULT_MESSAGE, compile, makeInput, run, stores } from './test-helpers.ts';

const RFC5228_EXAMPLE = `require ["fileinto"];
if header :is "Sender" "owner-ietf-mta-filters@imc.org" { fileinto "filter"; }
elsif address :DOMAIN :is ["From", "To"] "example.com" { keep; }
elsif anyof (NOT address :all :contains ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject" ["*make*money*fast*", "*university*dipl*mas*"]) { fileinto "spam"; }
else { fileinto "personal"; }`;

const msg = (headers: string, body = 'body'): string => `${headers}\n\n${body}\n`;

describe('sieve interpreter: base language (RFC 5228)', () => {
  test('the RFC 5228 §9 example files each kind of message where it says', () => {
    const script = compile(RFC5228_EXAMPLE);
    const where = (headers: string): string[] => stores(runSieve(script, makeInput(msg(headers))));
    assert.deepEqual(where('Sender: owner-ietf-mta-filters@imc.org\nTo: x@example.net'), ['filter']);
    assert.deepEqual(where('From: boss@EXAMPLE.COM\nTo: me@example.net'), ['INBOX']);
    assert.deepEqual(where('From: a@example.net\nTo: other@example.net'), ['spam']);
    assert.deepEqual(where('From: a@example.net\nCc: me@example.com\nSubject: Make lots of MONEY fast'), [
      'spam',
    ]);
    assert.deepEqual(
      where('From: a@example.net\nTo: list@example.net\nBcc: Me <me@example.com>\nSubject: hi'),
      ['personal'],
    );
  });

  test('no actions: the implicit keep', () => {
    const r = run('if false { discard; }');
    assert.deepEqual(r, {
      actions: [],
      implicitKeep: true,
      implicitKeepFlags: [],
      errors: [],
      headerEdits: [],
    });
  });

  test('keep, discard, fileinto and redirect cancel the implicit keep', () => {
    assert.equal(run('keep;').implicitKeep, false);
    assert.equal(run('discard;').implicitKeep, false);
    assert.equal(run('require "fileinto"; fileinto "Archive";').implicitKeep, false);
    assert.equal(run('redirect "other@example.net";').implicitKeep, false);
    assert.deepEqual(run('discard; keep;').actions, [{ kind: 'discard' }, { kind: 'keep', flags: [] }]);
  });

  test('stop ends the script; the implicit keep still applies', () => {
    const r = run('require "fileinto"; if true { stop; } fileinto "never";');
    assert.deepEqual(r.actions, []);
    assert.equal(r.implicitKeep, true);
  });

  test('keep and fileinto of the same mailbox store once; the same redirect goes once', () => {
    const r = run(
      'require "fileinto"; keep; fileinto "INBOX"; fileinto "inbox"; fileinto "A"; fileinto "A"; redirect "x@example.net"; redirect "x@EXAMPLE.net";',
    );
    assert.deepEqual(r.actions, [
      { kind: 'keep', flags: [] },
      { kind: 'fileinto', mailbox: 'A', flags: [], create: false, copy: false },
      { kind: 'redirect', address: 'x@example.net', copy: false },
    ]);
  });

  test('more redirects than allowed is a runtime error: every action dropped, implicit keep', () => {
    const script = Array.from({ length: 5 }, (_, i) => `redirect "r${i}@example.net";`).join('');
    const r = run(script);
    assert.deepEqual(r, {
      actions: [],
      implicitKeep: true,
      implicitKeepFlags: [],
      errors: ['too many redirect actions (limit 4)'],
      headerEdits: [],
    });
    assert.equal(run(script, makeInput(), { maxRedirects: 5 }).errors.length, 0);
  });

  test('more actions than allowed is a runtime error', () => {
    const script = `require "fileinto"; ${Array.from({ length: 40 }, (_, i) => `fileinto "f${i}";`).join('')}`;
    assert.deepEqual(run(script).errors, ['too many actions (limit 32)']);
  });

  test('reject and ereject (RFC 5429): cancel the implicit keep, exclude other deliveries and vacation', () => {
    assert.deepEqual(run('require "reject"; reject "no thanks";'), {
      actions: [{ kind: 'reject', reason: 'no thanks', extended: false }],
      implicitKeep: false,
      implicitKeepFlags: [],
      errors: [],
      headerEdits: [],
    });
    assert.deepEqual(run('require "ereject"; ereject "go away";').actions, [
      { kind: 'reject', reason: 'go away', extended: true },
    ]);
    assert.deepEqual(
      run('require "reject"; reject "x"; discard;').actions.map((a) => a.kind),
      ['reject', 'discard'],
    );
    assert.deepEqual(run('require ["reject", "fileinto"]; reject "x"; fileinto "A";').errors, [
      'fileinto conflicts with the reject action',
    ]);
    assert.deepEqual(run('require "reject"; keep; reject "x";').errors, [
      'reject conflicts with the keep action',
    ]);
    assert.deepEqual(run('require "reject"; reject "x"; redirect "a@example.net";').errors, [
      'redirect conflicts with the reject action',
    ]);
    assert.deepEqual(run('require ["reject", "vacation"]; vacation "away"; reject "x";').errors, [
      'reject conflicts with the vacation action',
    ]);
    assert.deepEqual(run('require ["reject", "ereject"]; reject "x"; ereject "y";').errors, [
      'reject conflicts with the reject action',
    ]);
    assert.equal(run('require "reject"; reject "x"; reject "y";').implicitKeep, true);
  });

  test('header: RFC 2047 words are decoded before comparing (RFC 5228 §2.7.2)', () => {
    const input = makeInput(
      msg('Subject: =?utf-8?q?J=C3=BCrgen_sagt_hallo?=\nX-Jp: =?ISO-2022-JP?B?GyRCRnxLXBsoQg==?='),
    );
    assert.equal(run('if header :contains "subject" "Jürgen" { discard; }', input).implicitKeep, false);
    assert.equal(run('if header :is "x-jp" "日本" { discard; }', input).implicitKeep, false);
    const utf8 = makeInput(msg('Subject: 日本語のメール'));
    assert.equal(run('if header :matches "subject" "日本*" { discard; }', utf8).implicitKeep, false);
  });

  test('header: absent fields never match, names are case-insensitive, several names and keys', () => {
    assert.equal(run('if header :contains "x-missing" "" { discard; }').implicitKeep, true);
    assert.equal(
      run('if header :contains ["x-missing", "SUBJECT"] ["zzz", "hello"] { discard; }').implicitKeep,
      false,
    );
    assert.equal(run('if header :is "subject" "" { discard; }').implicitKeep, true);
  });

  test('exists needs every field; size compares strictly', () => {
    assert.equal(run('if exists ["From", "Subject"] { discard; }').implicitKeep, false);
    assert.equal(run('if exists ["From", "X-Nope"] { discard; }').implicitKeep, true);
    const input = makeInput(DEFAULT_MESSAGE, { sizeBytes: 1000 });
    assert.equal(run('if size :over 999 { discard; }', input).implicitKeep, false);
    assert.equal(run('if size :over 1000 { discard; }', input).implicitKeep, true);
    assert.equal(run('if size :under 1K { discard; }', input).implicitKeep, false);
    assert.equal(run('if size :under 1000 { discard; }', input).implicitKeep, true);
  });

  test('address parts, display names and groups', () => {
    const input = makeInput(
      msg(
        'From: "Doe, Jo" <Jo.Doe@Example.ORG>\nTo: undisclosed-recipients:;\nCc: a@x.example, "B" <b@y.example>',
      ),
    );
    const hit = (s: string): boolean => !run(`if ${s} { discard; }`, input).implicitKeep;
    assert.ok(hit('address :is "from" "jo.doe@example.org"'));
    assert.ok(hit('address :localpart :is "from" "jo.doe"'));
    assert.ok(hit('address :domain :is "from" "example.org"'));
    assert.ok(hit('address :domain :is "cc" "y.example"'));
    assert.ok(!hit('address :contains "to" "undisclosed"'));
    assert.ok(!hit('address :is "from" "Doe, Jo"'));
  });

  test('UTF-8 addresses: jürgen@example.org and 日本@example.jp', () => {
    const input = makeInput(msg('From: Jürgen <jürgen@example.org>\nTo: 日本 <日本@example.jp>'), {
      envelope: { from: 'jürgen@example.org', to: '日本@example.jp' },
    });
    const hit = (s: string): boolean => !run(`require "envelope"; if ${s} { discard; }`, input).implicitKeep;
    assert.ok(hit('address :localpart :is "from" "jürgen"'));
    assert.ok(hit('address :all :is "to" "日本@example.jp"'));
    assert.ok(hit('envelope :localpart :is "to" "日本"'));
    assert.ok(hit('envelope :domain :is "from" "EXAMPLE.org"'));
    assert.ok(hit('header :contains "from" "Jürgen"'));
  });

  test('envelope: from and to, the null sender', () => {
    const nul = makeInput(DEFAULT_MESSAGE, { envelope: { from: '', to: 'me@example.com' } });
    const hit = (s: string, input = makeInput()): boolean =>
      !run(`require "envelope"; if ${s} { discard; }`, input).implicitKeep;
    assert.ok(hit('envelope :is "from" "jo@example.org"'));
    assert.ok(hit('envelope :is "to" "me@example.com"'));
    assert.ok(hit('envelope :is "from" ""', nul));
    assert.ok(!hit('envelope :localpart :is "from" ""', nul));
  });

  test('anyof / allof / not', () => {
    assert.equal(run('if allof (true, not false) { discard; }').implicitKeep, false);
    assert.equal(run('if anyof (false, false) { discard; }').implicitKeep, true);
    assert.equal(run('if not anyof (false, true) { discard; }').implicitKeep, true);
  });

  test('fileinto of an empty name (built at run time or written) is a runtime error', () => {
    assert.deepEqual(run('require "fileinto"; fileinto "";').errors, ['fileinto: empty mailbox name']);
  });

  test('a run that spends its matching budget ends in an error and the implicit keep', () => {
    const input = makeInput(msg('Subject: x', 'a'.repeat(200_000)));
    const script = `require "body"; if body :raw :matches "*${'a'.repeat(50)}b*" { discard; }`;
    const r = run(script, input, { maxMatchSteps: 100_000 });
    assert.deepEqual(r.errors, ['the script spent its matching budget']);
    assert.equal(r.implicitKeep, true);
    const started = performance.now();
    assert.deepEqual(
      run(`require "body"; if body :raw :matches "${'*a'.repeat(30)}*b" { discard; }`, input).errors,
      [],
    );
    assert.ok(performance.now() - started < 2000);
  });

  test('an empty or hostile message does not break the run', () => {
    const inputs = [
      makeInput(''),
      makeInput('no header at all'),
      makeInput('Subject\n\n'),
      makeInput(`Subject: ${'=?utf-8?B?'.repeat(1000)}\n\nx`),
      { ...makeInput(), headerBlock: new Uint8Array([0xff, 0xfe, 0x3a, 0x0a, 0x0a]), body: () => null },
    ];
    const script = compile(
      'require ["body", "date", "envelope"]; if anyof (header :matches "subject" "*", address :all :is "from" "x", body :contains "x", date :is "date" "year" "2008", exists "from") { keep; }',
    );
    for (const input of inputs) assert.deepEqual(runSieve(script, input).errors, []);
  });
});
