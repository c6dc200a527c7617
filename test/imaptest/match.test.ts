// The imaptest matcher's rules (match.ts), each against imaptest's documented behaviour
// (scripted_test.md): variables, `$`, `$]`, `$N`, `${case:}`, `$modseqN`, the list directives and the
// prefix match of status responses; also the argument parser and framer they stand on (imap-args.ts).
// Every case with an ASCII value has a UTF-8 twin (jürgen@, 日本), compared as bytes.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseImapArgs, takeResponse, utf8ToBytes, type ImapArg } from './imap-args.ts';
import { expandAll, FULL, matchArgs, MatchState } from './match.ts';
import { parseScript } from './script.ts';

function args(text: string): ImapArg[] {
  const parsed = parseImapArgs(text);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  return parsed.args;
}

/** The expected line as the script parser leaves it (default directives added). */
function expected(line: string): ImapArg[] {
  const parsed = parseScript('t', `\nok noop\n* ${line}\n`, {});
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  return parsed.script.groups[0]!.untagged[0]!.args;
}

function matches(state: MatchState, pattern: string, reply: string, prefix = false): boolean {
  return matchArgs(state, expected(pattern), args(reply), FULL, prefix) === FULL;
}

describe('imap-args', () => {
  test('keeps a section with spaces and parentheses in one atom, but splits a resp-text-code', () => {
    assert.deepEqual(args('1 FETCH (BODY[HEADER.FIELDS (FROM)] NIL)'), [
      { kind: 'atom', value: '1' },
      { kind: 'atom', value: 'FETCH' },
      {
        kind: 'list',
        items: [
          { kind: 'atom', value: 'BODY[HEADER.FIELDS (FROM)]' },
          { kind: 'nil', value: 'NIL' },
        ],
      },
    ]);
    assert.deepEqual(args('OK [CAPABILITY IMAP4rev2] done').slice(0, 3), [
      { kind: 'atom', value: 'OK' },
      { kind: 'atom', value: '[CAPABILITY' },
      { kind: 'atom', value: 'IMAP4rev2]' },
    ]);
  });

  test('reads quoted strings with escapes and literals by byte count, UTF-8 included', () => {
    const jurgen = utf8ToBytes('jürgen');
    assert.equal(jurgen.length, 7);
    assert.deepEqual(args(`"a\\"b" {7}\r\n${jurgen} ~{2}\r\n\0x`), [
      { kind: 'string', value: 'a"b' },
      { kind: 'literal', value: jurgen },
      { kind: 'literal', value: '\0x' },
    ]);
    const nihon = utf8ToBytes('日本');
    assert.deepEqual(args(`"${nihon}"`), [{ kind: 'string', value: nihon }]);
  });

  test('frames a response with its literals and waits for the rest', () => {
    const whole = Buffer.from('* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\n* OK x\r\n', 'latin1');
    assert.equal(takeResponse(whole.subarray(0, 20)), undefined);
    const first = takeResponse(whole);
    assert.deepEqual(first, { line: '* 1 FETCH (BODY[] {5}\r\nab\r\nc)', used: 31 });
    assert.deepEqual(takeResponse(whole.subarray(31)), { line: '* OK x', used: 8 });
  });
});

describe('matching untagged replies', () => {
  test('binds a variable once and then requires the same value', () => {
    const state = new MatchState();
    assert.ok(matches(state, '1 fetch (uid $uid1)', '1 FETCH (UID 42)'));
    assert.equal(state.variables.get('uid1'), '42');
    assert.ok(!matches(state, '2 fetch (uid $uid1)', '2 FETCH (UID 43)'));
    assert.ok(matches(state, '2 fetch (uid $uid1)', '2 FETCH (UID 42)'));
  });

  test('a bound variable holds UTF-8 bytes and compares them exactly', () => {
    const state = new MatchState();
    const box = utf8ToBytes('jürgen');
    assert.ok(matches(state, 'list () "/" $box', `LIST () "/" "${box}"`));
    assert.equal(state.variables.get('box'), box);
    assert.ok(!matches(state, 'list () "/" $box', `LIST () "/" "${utf8ToBytes('日本')}"`));
  });

  test('a failed attempt unbinds the variables it bound', () => {
    const state = new MatchState();
    const n = matchArgs(
      state,
      expected('1 fetch (uid $u flags (\\seen))'),
      args('1 FETCH (UID 7 FLAGS ())'),
      FULL,
      false,
    );
    assert.notEqual(n, FULL);
    state.revertAdded();
    assert.equal(state.variables.has('u'), false);
  });

  test('`$` matches any value, a list included; `$]` skips a resp-text-code', () => {
    const state = new MatchState();
    assert.ok(matches(state, '1 fetch (uid $ flags $)', '1 FETCH (FLAGS (\\Seen) UID 9)'));
    assert.ok(matches(state, 'ok [capability $]', 'OK [CAPABILITY IMAP4rev2 IDLE] ready', true));
  });

  test('atoms compare without regard to ASCII case; ${case:} makes it exact', () => {
    const state = new MatchState();
    assert.ok(matches(state, 'list () "/" inbox', 'LIST () "/" INBOX'));
    assert.ok(matches(state, 'list () "/" ${case:INBOX}', 'LIST () "/" INBOX'));
    assert.ok(!matches(state, 'list () "/" ${case:Inbox}', 'LIST () "/" INBOX'));
    // Case folding is ASCII only, as in imaptest: ü and Ü are different bytes.
    assert.ok(
      !matches(state, `list () "/" ${utf8ToBytes('jürgen')}`, `LIST () "/" ${utf8ToBytes('JÜRGEN')}`),
    );
  });

  test('FETCH items are unordered pairs; FLAGS are unordered, complete, and may add \\Recent', () => {
    const state = new MatchState();
    assert.ok(
      matches(
        state,
        '1 fetch (flags (\\seen \\flagged) uid 3)',
        '1 FETCH (UID 3 FLAGS (\\Flagged \\Recent \\Seen))',
      ),
    );
    assert.ok(!matches(state, '1 fetch (flags (\\seen))', '1 FETCH (FLAGS (\\Seen \\Flagged))'));
    assert.ok(matches(state, '1 fetch (uid 3)', '1 FETCH (UID 3 FLAGS (\\Seen))'));
    assert.ok(!matches(state, '1 fetch ($!ordered flags () uid 3)', '1 FETCH (UID 3 FLAGS ())'));
  });

  test('$!noextra, $!ignore, $!ban', () => {
    const state = new MatchState();
    const reply = 'LIST (\\HasNoChildren \\Marked) "/" box';
    assert.ok(matches(state, 'list (\\hasnochildren) "/" box', reply));
    assert.ok(!matches(state, 'list ($!unordered $!noextra \\hasnochildren) "/" box', reply));
    assert.ok(
      matches(state, 'list ($!unordered $!noextra $!ignore=\\marked \\hasnochildren) "/" box', reply),
    );
    assert.ok(!matches(state, 'list ($!unordered $!ban=\\marked \\hasnochildren) "/" box', reply));
    assert.ok(matches(state, 'list ($!unordered $!ban=\\noselect \\hasnochildren) "/" box', reply));
  });

  test('$N follows message N through EXPUNGEs seen during the group', () => {
    const state = new MatchState();
    state.seqmap = [1, 2, 3, 4];
    state.expunge(2);
    assert.equal(state.relativeSeq(2), '<expunged>');
    assert.equal(state.relativeSeq(3), '2');
    assert.ok(matches(state, '$4 fetch (flags ())', '3 FETCH (FLAGS ())'));
  });

  test('$modseqN must grow at least by the difference of the indexes', () => {
    const state = new MatchState();
    assert.ok(matches(state, '1 fetch (modseq ($modseq2))', '1 FETCH (MODSEQ (10))'));
    assert.ok(!matches(state, '2 fetch (modseq ($modseq5))', '2 FETCH (MODSEQ (12))'));
    const fresh = new MatchState();
    assert.ok(matches(fresh, '1 fetch (modseq ($modseq2))', '1 FETCH (MODSEQ (10))'));
    assert.ok(matches(fresh, '2 fetch (modseq ($modseq5))', '2 FETCH (MODSEQ (13))'));
  });

  test('status replies match as a prefix; other replies must match whole', () => {
    const state = new MatchState();
    assert.ok(matches(state, 'ok [read-write]', 'OK [READ-WRITE] Select completed', true));
    assert.ok(!matches(state, '3 exists', '3 EXISTS extra'));
  });
});

describe('expanding commands', () => {
  test('$$ is a dollar, variables and $N expand, an unbound one is an error', () => {
    const state = new MatchState();
    state.variables.set('mailbox', 'imaptest');
    state.variables.set('user', utf8ToBytes('jürgen@example.test'));
    state.seqmap = [1, 0, 2];
    assert.deepEqual(expandAll(state, 'store $3 +flags ($$kw) ${mailbox}2 $user', false), {
      text: `store 2 +flags ($kw) imaptest2 ${utf8ToBytes('jürgen@example.test')}`,
    });
    assert.equal(expandAll(state, 'select $nope', false).error, 'Uninitialized variable: nope');
  });
});
