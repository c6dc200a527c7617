// Extensions that keep state during a run: variables (RFC 5229), imap4flags (RFC 5232), editheader
// (RFC 5293). Examples from the RFCs where they give them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { makeInput, run } from './test-helpers.ts';

const msg = (headers: string, body = 'body'): string => `${headers}\n\n${body}\n`;

/** The mailboxes filed into, in order (a way to read variables back out of a run). */
const filed = (script: string, message?: string): string[] =>
  run(script, message === undefined ? makeInput() : makeInput(message)).actions.flatMap((a) =>
    a.kind === 'fileinto' ? [a.mailbox] : [],
  );

describe('sieve variables (RFC 5229)', () => {
  test('the RFC 5229 §3 example: a multi-line string with references, names case-insensitive', () => {
    const r = run(`require ["variables", "vacation"];
set "honorific"  "Mr";
set "first_name" "Wile";
set "last_name"  "Coyote";
set "vacation" text:
Dear \${HONORIFIC} \${last_name},
I'm out, please leave a message after the meep.
.
;
vacation :subject "Gone" "\${vacation}";`);
    const v = r.actions[0]!;
    assert.equal(
      v.kind === 'vacation' && v.reason,
      "Dear Mr Coyote,\r\nI'm out, please leave a message after the meep.\r\n",
    );
  });

  test('the RFC 5229 §4.1 modifier examples', () => {
    assert.deepEqual(
      filed(`require ["variables", "fileinto"];
set "a" "juMBlEd lETteRS";
set :length "b" "\${a}"; fileinto "\${b}";
set :lower "b" "\${a}"; fileinto "\${b}";
set :upperfirst "b" "\${a}"; fileinto "\${b}";
set :upperfirst :lower "b" "\${a}"; fileinto "\${b}";
set :quotewildcard "b" "Rock*"; fileinto "\${b}";`),
      ['15', 'jumbled letters', 'JuMBlEd lETteRS', 'Jumbled letters', 'Rock\\*'],
    );
  });

  test('letters fold as ASCII only; :length counts characters (as Pigeonhole)', () => {
    assert.deepEqual(
      filed(
        'require ["variables", "fileinto"]; set :upper "u" "jürgen"; set :length "l" "日本"; fileinto "${u}-${l}";',
      ),
      ['JüRGEN-2'],
    );
  });

  test('match variables from :matches (the RFC 5229 §3.2 List-ID example)', () => {
    const m = msg('List-ID: Sieve discussion <ietf-mta-filters.imc.org@lists.example.org>');
    assert.deepEqual(
      filed(
        'require ["fileinto", "variables"]; if header :matches "List-ID" "*<*@*" { fileinto "INBOX.lists.${2}"; stop; }',
        m,
      ),
      ['INBOX.lists.ietf-mta-filters.imc.org'],
    );
  });

  test('${0} is the whole value; ${10} and unknown variables are empty; a failed :matches keeps the old ones', () => {
    assert.deepEqual(
      filed(`require ["fileinto", "variables"];
if header :matches "subject" "Hel*" { fileinto "[\${0}][\${1}][\${10}][\${nope}][\${01}]"; }
if header :matches "subject" "zz*" { keep; }
fileinto "after:\${1}";`),
      ['[Hello there][lo there][][][lo there]', 'after:lo there'],
    );
  });

  test('a reference that is not one stays as written; an inserted value is not expanded again', () => {
    assert.deepEqual(
      filed(
        'require ["fileinto", "variables"]; set "b" "x"; if header :matches "subject" "*" { set "a" "${1}"; } fileinto "${ a}${a}-${b";',
        msg('Subject: ${b}'),
      ),
      ['${ a}${b}-${b'],
    );
  });

  test('UTF-8 values through :matches and set (日本, jürgen)', () => {
    const m = msg('Subject: Grüße aus 日本\nFrom: jürgen@example.org');
    assert.deepEqual(
      filed(
        'require ["fileinto", "variables"]; if header :matches "subject" "Gr??e aus *" { fileinto "${1}${2}/${3}"; } if address :localpart :matches "from" "j*" { fileinto "${1}"; }',
        m,
      ),
      ['üß/日本', 'ürgen'],
    );
  });

  test('the string test; :count counts only the strings that are not empty', () => {
    assert.deepEqual(
      filed(`require ["fileinto", "variables", "relational", "comparator-i;ascii-numeric"];
set "state" "busy pending";
if string :matches " \${state} " "* pending *" { fileinto "pending"; }
if string :count "eq" :comparator "i;ascii-numeric" ["a", "", "b"] "2" { fileinto "two"; }
if string :is "\${nothing}" "" { fileinto "empty"; }`),
      ['pending', 'two', 'empty'],
    );
  });

  test('values are cut to maxVariableBytes; too many variables is a runtime error', () => {
    const r = run('require ["variables", "fileinto"]; set "a" "0123456789"; fileinto "${a}";', makeInput(), {
      maxVariableBytes: 4,
    });
    assert.deepEqual(r.actions, [
      { kind: 'fileinto', mailbox: '0123', flags: [], create: false, copy: false },
    ]);
    const many = `require "variables"; ${Array.from({ length: 5 }, (_, i) => `set "v${i}" "x";`).join('')}`;
    assert.deepEqual(run(many, makeInput(), { maxVariables: 4 }).errors, ['too many variables (limit 4)']);
  });

  test('expansion is bounded: a short script cannot build a huge string', () => {
    const r = run(
      `require ["variables", "fileinto"]; set "a" "${'x'.repeat(4000)}"; set "b" "${'${a}'.repeat(200)}"; fileinto "${'${b}'.repeat(200)}";`,
    );
    const f = r.actions[0]!;
    assert.ok(f.kind === 'fileinto' && f.mailbox.length <= 64 * 1024);
  });
});

describe('sieve imap4flags (RFC 5232)', () => {
  test('the internal variable flags keep, fileinto and the implicit keep', () => {
    const r = run(`require ["imap4flags", "fileinto"];
if header :contains "from" "jo@example.org" {
  setflag "\\\\Flagged";
  fileinto "From Jo";
}
addflag ["\\\\Seen \\\\Answered", "\\\\seen"];
removeflag "\\\\Answered";
keep;`);
    assert.deepEqual(r.actions, [
      { kind: 'fileinto', mailbox: 'From Jo', flags: ['\\Flagged'], create: false, copy: false },
      { kind: 'keep', flags: ['\\Flagged', '\\Seen'] },
    ]);
  });

  test(':flags replaces the internal variable for one action; the implicit keep takes the last value', () => {
    const r = run(
      'require ["imap4flags", "fileinto"]; setflag "\\\\Seen"; fileinto :flags ["$Junk", "bad(flag"] "Junk"; fileinto :copy "A";'.replace(
        ' fileinto :copy "A";',
        '',
      ),
    );
    assert.deepEqual(r.actions, [
      { kind: 'fileinto', mailbox: 'Junk', flags: ['$Junk'], create: false, copy: false },
    ]);
    const implicit = run('require "imap4flags"; addflag "$Later"; addflag "\\\\Flagged";');
    assert.equal(implicit.implicitKeep, true);
    assert.deepEqual(implicit.implicitKeepFlags, ['$Later', '\\Flagged']);
  });

  test('flags in a named variable, and hasflag (RFC 5232 §4 example)', () => {
    assert.deepEqual(
      filed(`require ["imap4flags", "variables", "fileinto", "relational", "comparator-i;ascii-numeric"];
setflag "MyVar" "\\\\Seen Junk";
addflag "MyVar" "NonJunk";
if hasflag :contains "MyVar" "Junk" { fileinto "has-junk"; }
if hasflag :count "ge" :comparator "i;ascii-numeric" "MyVar" "3" { fileinto "three"; }
if hasflag "MyVar" "\\\\SEEN" { fileinto "seen"; }
if not hasflag "\\\\Seen" { fileinto "internal-empty"; }
set "copy" "\${MyVar}"; fileinto "\${copy}";`),
      ['has-junk', 'three', 'seen', 'internal-empty', '\\Seen Junk NonJunk'],
    );
  });

  test('without imap4flags, keep has no flags', () => {
    assert.deepEqual(run('keep;').actions, [{ kind: 'keep', flags: [] }]);
  });
});

describe('sieve editheader (RFC 5293)', () => {
  const m = msg(
    'X-Mailer: Foo 1.0\nX-Spam-Level: **********\nDelivered-To: bob@example.com\nDelivered-To: alice@example.com\nReceived: from a\nSubject: Hi',
  );

  test('the RFC 5293 examples: addheader, deleteheader with :contains and :index', () => {
    const r = run(
      `require ["editheader"];
addheader "X-Sieve-Filtered" "<kim@job.example.com>";
deleteheader "X-Mailer";
deleteheader :contains "X-Spam-Level" "**********";
deleteheader :index 1 :contains "Delivered-To" "bob@example.com";
addheader :last "X-Last" "1";`,
      makeInput(m),
    );
    assert.deepEqual(r.headerEdits, [
      { op: 'insert', index: 0, name: 'X-Sieve-Filtered', value: '<kim@job.example.com>' },
      { op: 'change', name: 'X-Mailer', occurrence: 1, value: null },
      { op: 'change', name: 'X-Spam-Level', occurrence: 1, value: null },
      { op: 'change', name: 'Delivered-To', occurrence: 1, value: null },
      { op: 'insert', index: Number.MAX_SAFE_INTEGER, name: 'X-Last', value: '1' },
    ]);
  });

  test('later tests see the edits', () => {
    const r = run(
      `require ["editheader", "fileinto"];
addheader "X-Tag" "tagged";
if header :is "x-tag" "tagged" { fileinto "seen-tag"; }
deleteheader "subject";
if not exists "subject" { fileinto "no-subject"; }`,
      makeInput(m),
    );
    assert.deepEqual(
      r.actions.map((a) => (a.kind === 'fileinto' ? a.mailbox : a.kind)),
      ['seen-tag', 'no-subject'],
    );
  });

  test('deleteheader :index :last counts from the end; every match otherwise, last first', () => {
    const last = run('require "editheader"; deleteheader :index 1 :last "delivered-to";', makeInput(m));
    assert.deepEqual(last.headerEdits, [{ op: 'change', name: 'Delivered-To', occurrence: 2, value: null }]);
    const all = run('require "editheader"; deleteheader "delivered-to";', makeInput(m));
    assert.deepEqual(all.headerEdits, [
      { op: 'change', name: 'Delivered-To', occurrence: 2, value: null },
      { op: 'change', name: 'Delivered-To', occurrence: 1, value: null },
    ]);
  });

  test('Received and Auto-Submitted are protected; Subject never is', () => {
    const r = run(
      'require "editheader"; deleteheader "received"; addheader "Auto-Submitted" "no"; addheader "X-Mine" "1"; deleteheader "subject";',
      makeInput(m),
      { protectedHeaders: ['X-Mine', 'Subject'] },
    );
    assert.deepEqual(r.headerEdits, [{ op: 'change', name: 'Subject', occurrence: 1, value: null }]);
  });

  test('non-ASCII values are RFC 2047 encoded; line breaks cannot start a field', () => {
    const r = run(
      'require "editheader"; addheader "X-Who" "Jürgen aus 日本"; addheader "X-Two" "a\r\nBcc: victim@example.org";',
    );
    assert.deepEqual(r.headerEdits, [
      {
        op: 'insert',
        index: 0,
        name: 'X-Who',
        value: '=?utf-8?q?J=C3=BCrgen?= aus =?utf-8?q?=E6=97=A5=E6=9C=AC?=',
      },
      { op: 'insert', index: 0, name: 'X-Two', value: 'a Bcc: victim@example.org' },
    ]);
    const seen = run(
      'require ["editheader", "fileinto"]; addheader "X-Who" "Jürgen aus 日本"; if header :is "x-who" "Jürgen aus 日本" { fileinto "decoded"; }',
    );
    assert.equal(seen.actions.length, 1);
  });

  test('an invalid name built at run time, or a value too long, is a runtime error', () => {
    assert.deepEqual(
      run('require ["editheader", "variables"]; set "n" "bad name"; addheader "${n}" "x";').errors,
      ["addheader: invalid field name 'bad name'"],
    );
    assert.deepEqual(run(`require "editheader"; addheader "X-Long" "${'x'.repeat(3000)}";`).errors, [
      'addheader: value longer than 2048 bytes',
    ]);
  });

  test('a runtime error drops the header edits too', () => {
    const r = run(
      'require ["editheader", "fileinto"]; addheader "X-A" "1"; fileinto ""; '.replace(
        'fileinto ""',
        'redirect "x@example.net"; redirect "y@example.net"; redirect "z@example.net"; redirect "w@example.net"; redirect "v@example.net"',
      ),
    );
    assert.deepEqual(r.headerEdits, []);
    assert.equal(r.errors.length, 1);
  });
});
