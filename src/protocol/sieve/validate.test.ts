import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SieveError } from './ast.ts';
import { SIEVE_EXTENSIONS, parseSieve } from './validate.ts';

function errors(src: string | Uint8Array): readonly SieveError[] {
  const r = parseSieve(src);
  assert.ok(!r.ok, `expected errors for ${String(src)}`);
  return r.errors;
}

function firstError(src: string | Uint8Array): string {
  return errors(src)[0]!.message;
}

function ok(src: string): void {
  const r = parseSieve(src);
  assert.ok(r.ok, `expected ${src} to be valid: ${r.ok ? '' : JSON.stringify(r.errors)}`);
}

// RFC 5228 §9.
const RFC5228_EXAMPLE = `#
# Example Sieve Filter
# Declare any optional features or extension used by the script
#
require ["fileinto"];

#
# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
#
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
`;

describe('sieve validation', () => {
  test('the RFC 5228 example script is valid', () => {
    const r = parseSieve(RFC5228_EXAMPLE);
    assert.ok(r.ok);
    assert.deepEqual(r.script.requires, ['fileinto']);
    assert.equal(r.script.commands.length, 1);
    const first = r.script.commands[0]!;
    assert.equal(first.kind === 'if' && first.branches.length, 4);
  });

  test('the capability list', () => {
    for (const ext of ['fileinto', 'vacation', 'variables', 'editheader', 'comparator-i;ascii-numeric']) {
      assert.ok(SIEVE_EXTENSIONS.includes(ext), ext);
    }
    assert.ok(Object.isFrozen(SIEVE_EXTENSIONS));
  });

  test('require: only known capabilities, only at the start, never in a block', () => {
    assert.deepEqual(errors('require "foo";'), [
      { line: 1, column: 1, message: "unknown Sieve capability 'foo'" },
    ]);
    assert.deepEqual(errors('keep;\nrequire "fileinto";'), [
      { line: 2, column: 1, message: 'require commands can only be placed at the start of the script' },
    ]);
    assert.match(firstError('if true { require "fileinto"; }'), /only be placed at the start/);
    ok('require "fileinto"; require ["envelope", "comparator-i;octet", "comparator-i;ascii-casemap"]; keep;');
    assert.match(firstError('require "fileinto" { }'), /takes no tests or block/);
  });

  test('an administrator may switch capabilities off', () => {
    const r = parseSieve('require "vacation"; vacation "x";', { extensions: ['fileinto'] });
    assert.ok(!r.ok);
    assert.equal(r.errors[0]!.message, "unknown Sieve capability 'vacation'");
  });

  test('commands, tests and tags of an extension need its require, and the error names it', () => {
    assert.deepEqual(errors('\n  fileinto "x";'), [
      { line: 2, column: 3, message: 'the fileinto command needs require "fileinto"' },
    ]);
    assert.equal(firstError('if envelope "to" "x" {}'), 'the envelope test needs require "envelope"');
    assert.equal(
      firstError('redirect :copy "a@example.org";'),
      'tagged argument \':copy\' for the redirect command needs require "copy"',
    );
    assert.equal(
      firstError('if header :count "gt" "x" "1" {}'),
      'tagged argument \':count\' for the header test needs require "relational"',
    );
    assert.equal(
      firstError('if address :user "to" "x" {}'),
      'tagged argument \':user\' for the address test needs require "subaddress"',
    );
    assert.equal(
      firstError('if header :index 1 "x" "y" {}'),
      'tagged argument \':index\' for the header test needs require "index"',
    );
    assert.equal(
      firstError('require "fileinto"; fileinto :flags "\\\\Seen" "x";'),
      'tagged argument \':flags\' for the fileinto command needs require "imap4flags"',
    );
    assert.equal(
      firstError('require "spamtest"; if spamtest :percent "5" {}'),
      'tagged argument \':percent\' for the spamtest test needs require "spamtestplus"',
    );
    assert.equal(
      firstError('require "vacation"; vacation :seconds 60 "x";'),
      'tagged argument \':seconds\' for the vacation command needs require "vacation-seconds"',
    );
    // Implied capabilities.
    ok('require "vacation-seconds"; vacation :seconds 60 "x";');
    ok(
      'require ["spamtestplus", "relational", "comparator-i;ascii-numeric"]; if spamtest :percent :value "gt" :comparator "i;ascii-numeric" "50" { discard; }',
    );
  });

  test('unknown commands, tests and tags are errors at their position', () => {
    assert.deepEqual(errors('keep;\n  frobnicate;'), [
      { line: 2, column: 3, message: "unknown command 'frobnicate'" },
    ]);
    assert.deepEqual(errors('if frob {}'), [{ line: 1, column: 4, message: "unknown test 'frob'" }]);
    assert.deepEqual(errors('keep :frob;'), [
      { line: 1, column: 6, message: "unknown tagged argument ':frob' for the keep command" },
    ]);
  });

  test('several errors are reported at once', () => {
    assert.equal(errors('frob;\nfrobnicate;\nif nothere {}').length, 3);
  });

  test('argument counts and types', () => {
    assert.equal(firstError('stop 1;'), 'the stop command takes 0 positional argument(s), but 1 given');
    assert.equal(firstError('redirect;'), 'the redirect command takes 1 positional argument(s), but 0 given');
    assert.equal(
      firstError('redirect ["a@b.c", "d@e.f"];'),
      'argument 1 of the redirect command must be a string',
    );
    assert.equal(firstError('if size 10 {}'), 'the size test needs :over or :under');
    assert.equal(firstError('if size :over "10" {}'), 'argument 1 of the size test must be a number');
    assert.equal(
      firstError('if header :comparator 5 "a" "b" {}'),
      ':comparator for the header test takes a string',
    );
    assert.equal(
      firstError('require "fileinto"; fileinto "x" :copy;'),
      "unexpected tagged argument ':copy' after the positional arguments of the fileinto command",
    );
    assert.equal(
      firstError('if header :is :contains "x" "y" {}'),
      ':contains conflicts with :is given before for the header test',
    );
    assert.equal(
      firstError('if size :over :under 2 {}'),
      ':under conflicts with :over given before for the size test',
    );
    assert.equal(firstError('keep true;'), 'the keep command takes no tests');
    assert.equal(firstError('keep { }'), 'the keep command takes no block');
    assert.equal(firstError('if true keep;'), 'the true test takes no tests');
    assert.equal(firstError('if true;'), 'the if command needs a block');
    assert.deepEqual(
      errors('if "x" {}').map((e) => e.message),
      ['the if command takes no arguments', 'the if command needs a test'],
    );
  });

  test('if / elsif / else chaining', () => {
    ok('if true {} elsif false {} elsif true {} else {}');
    assert.equal(firstError('elsif true {}'), 'elsif must follow if or elsif');
    assert.equal(firstError('if true {} keep; else {}'), 'else must follow if or elsif');
    assert.deepEqual(errors('if true {}\nelse {} else {}'), [
      { line: 2, column: 9, message: 'else must follow if or elsif' },
    ]);
    assert.equal(firstError('if (true) {}'), 'the if command takes one test, not a test list');
    assert.equal(firstError('if true {} else true {}'), 'the else command takes no test');
    assert.equal(firstError('if anyof true {}'), 'the anyof test takes a test list in parentheses');
    assert.equal(firstError('if not (true, false) {}'), 'the not test takes exactly one test');
  });

  test('comparators and match types', () => {
    ok('if header :comparator "i;octet" :contains "x" "y" {}');
    assert.equal(firstError('if header :comparator "i;foo" "x" "y" {}'), "unknown comparator 'i;foo'");
    assert.equal(
      firstError('if header :comparator "i;ascii-numeric" "x" "1" {}'),
      'comparator \'i;ascii-numeric\' needs require "comparator-i;ascii-numeric"',
    );
    assert.equal(
      firstError(
        'require "comparator-i;ascii-numeric"; if header :contains :comparator "i;ascii-numeric" "x" "1" {}',
      ),
      'comparator i;ascii-numeric cannot do the :contains of the header test',
    );
    assert.equal(
      firstError('require "relational"; if header :value "xx" "a" "b" {}'),
      ':value needs one of "gt", "ge", "lt", "le", "eq" or "ne", not "xx"',
    );
    ok('require "relational"; if header :value "GE" "a" "b" {}');
  });

  test('address headers, envelope parts and field names', () => {
    assert.equal(
      firstError('if address :is "subject" "x" {}'),
      "header 'subject' is not allowed for the address test",
    );
    ok('if address :is ["from", "Resent-To", "x-beenthere"] "x" {}');
    assert.equal(
      firstError('require "envelope"; if envelope "fromx" "z" {}'),
      "envelope part 'fromx' is not supported",
    );
    const r = parseSieve('if header :is "x y" "z" {}');
    assert.ok(r.ok);
    assert.deepEqual(r.warnings, [{ line: 1, column: 15, message: "invalid header field name 'x y'" }]);
  });

  test('redirect and vacation addresses are checked when constant', () => {
    assert.equal(firstError('redirect "not an address";'), "invalid redirect address 'not an address'");
    ok('redirect "Jürgen <jürgen@example.org>"; redirect "日本@example.jp";');
    assert.equal(
      firstError('require "vacation"; vacation :from "bad" "x";'),
      "invalid :from address 'bad' for vacation",
    );
    ok('require ["vacation", "variables"]; set "a" "x"; vacation :from "${a}" "x"; redirect "${a}";');
  });

  test('variables: names, match variables, namespaces, modifiers', () => {
    assert.equal(firstError('require "variables"; set "1" "x";'), 'cannot assign to a match variable');
    assert.equal(
      firstError('require "variables"; set "a.b" "x";'),
      "referring to variable in unknown namespace 'a'",
    );
    assert.equal(
      firstError('require "variables"; set "a" "${foo.bar}";'),
      "referring to variable in unknown namespace 'foo'",
    );
    assert.equal(firstError('require "variables"; set "a-b" "x";'), "invalid variable name 'a-b'");
    assert.equal(
      firstError('require "variables"; set :lower :upper "a" "x";'),
      ':upper conflicts with :lower given before for the set command',
    );
    const r = parseSieve('require "variables"; set :length :upper :quotewildcard :lowerfirst "A" "x";');
    assert.ok(r.ok);
    const set = r.script.commands[0]!;
    assert.deepEqual(set.kind === 'set' && [set.name, set.modifiers], [
      'a',
      ['upper', 'lowerfirst', 'quotewildcard', 'length'],
    ]);
    // Without the variables extension "${...}" is just text.
    ok('set;'.replace('set;', 'keep;'));
    ok('if header :is "x" "${foo.bar}" {}');
  });

  test('imap4flags: a variable name only with variables', () => {
    assert.equal(
      firstError('require "imap4flags"; setflag "v" "\\\\Seen";'),
      'the setflag command names a variable only with require "variables"',
    );
    ok('require ["imap4flags", "variables"]; setflag "v" "\\\\Seen"; if hasflag "v" "\\\\Seen" {}');
    assert.equal(
      firstError('require "imap4flags"; if hasflag "v" "x" {}'),
      'the hasflag test names variables only with require "variables"',
    );
  });

  test('index, date and editheader arguments', () => {
    assert.equal(
      firstError('require "index"; if header :index 0 "x" "y" {}'),
      'the :index of the header test cannot be zero',
    );
    assert.equal(
      firstError('require "index"; if header :last "x" "y" {}'),
      ':last for the header test needs :index',
    );
    ok('require ["date", "index"]; if date :index 2 :last :zone "-0500" "received" "year" "2024" {}');
    assert.equal(
      firstError('require "date"; if currentdate :originalzone "year" "x" {}'),
      "unknown tagged argument ':originalzone' for the currentdate test",
    );
    const warned = parseSieve('require "date"; if date :zone "abc" "date" "foo" "x" {}');
    assert.ok(warned.ok);
    assert.deepEqual(
      warned.warnings.map((w) => w.message),
      ["invalid :zone 'abc'", "unknown date part 'foo'"],
    );
    assert.equal(
      firstError('require "editheader"; addheader "bad name" "x";'),
      "the addheader command: invalid field name 'bad name'",
    );
    assert.equal(
      firstError('require "editheader"; deleteheader :last "x";'),
      ':last for the deleteheader command needs :index',
    );
    ok(
      'require "editheader"; deleteheader :index 1 :last :contains "x" ["a", "b"]; addheader :last "X-A" "1";',
    );
  });

  test('vacation arguments', () => {
    assert.equal(
      firstError('require "vacation"; vacation :days 2 :days 3 "x";'),
      ':days conflicts with :days given before for the vacation command',
    );
    assert.equal(
      firstError('require "vacation-seconds"; vacation :days 1 :seconds 3 "x";'),
      ':seconds conflicts with :days given before for the vacation command',
    );
    assert.equal(
      firstError('require "vacation"; vacation :subject "x";'),
      'the vacation command takes 1 positional argument(s), but 0 given',
    );
    const r = parseSieve(
      'require "vacation"; vacation :days 3 :subject "s" :from "a@b.c" :addresses ["x@y.z"] :mime :handle "h" "why";',
    );
    assert.ok(r.ok);
    assert.deepEqual(r.script.commands[0], {
      kind: 'vacation',
      days: 3,
      seconds: null,
      subject: 's',
      from: 'a@b.c',
      addresses: ['x@y.z'],
      mime: true,
      handle: 'h',
      reason: 'why',
    });
  });

  test('encoded-character decodes at parse time; bad code points are errors', () => {
    const r = parseSieve(
      'require ["encoded-character", "fileinto"]; fileinto "${hex: 49 4e 42 4f 58 }-${unicode:65e5 672c}";',
    );
    assert.ok(r.ok);
    const f = r.script.commands[0]!;
    assert.equal(f.kind === 'fileinto' && f.mailbox, 'INBOX-日本');
    assert.equal(
      firstError('require "encoded-character"; redirect "a${unicode:110000}b.c";'),
      'invalid unicode character 0x110000 in encoded character',
    );
    assert.equal(
      firstError('require "encoded-character"; redirect "a${unicode:D800}b.c";'),
      'invalid unicode character 0xD800 in encoded character',
    );
    assert.match(
      firstError('require ["encoded-character", "fileinto"]; fileinto "${hex:ff}";'),
      /not valid UTF-8/,
    );
    // Without the extension, or when it does not fit the grammar, the text stays.
    const plain = parseSieve('require "fileinto"; fileinto "${hex:41}${hex:zz}";');
    assert.ok(plain.ok);
    const p = plain.script.commands[0]!;
    assert.equal(p.kind === 'fileinto' && p.mailbox, '${hex:41}${hex:zz}');
  });

  test('text checks: size, UTF-8 bytes, NUL', () => {
    assert.match(firstError('keep;'.repeat(300_000)), /script too large/);
    assert.deepEqual(errors(new Uint8Array([0x6b, 0x65, 0x65, 0x70, 0x3b, 0x0a, 0x22, 0xc3, 0x28, 0x22])), [
      { line: 2, column: 2, message: 'invalid UTF-8 in script' },
    ]);
    assert.deepEqual(errors(new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22])), [
      { line: 1, column: 2, message: 'invalid UTF-8 in script' },
    ]);
    assert.deepEqual(errors(new Uint8Array([0x22, 0xc0, 0xaf, 0x22])), [
      { line: 1, column: 2, message: 'invalid UTF-8 in script' },
    ]);
    assert.deepEqual(errors('keep;\n"a\0"'), [{ line: 2, column: 3, message: 'NUL character in script' }]);
    const utf8 = parseSieve(new TextEncoder().encode('require "fileinto"; fileinto "日本 jürgen";'));
    assert.ok(utf8.ok);
    assert.equal(parseSieve('keep;', { maxScriptBytes: 4 }).ok, false);
  });
});
