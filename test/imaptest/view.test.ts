// imaptest's hard mailbox-state checks (view.ts): each error it ends a script for, and the replies it
// lets through. UTF-8 twin: a keyword and an INTERNALDATE-carrying FETCH next to a UTF-8 flag-less one.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseImapArgs, utf8ToBytes, type ImapArg } from './imap-args.ts';
import { MailboxView } from './view.ts';

function args(text: string): ImapArg[] {
  const parsed = parseImapArgs(text);
  assert.ok(parsed.ok);
  return parsed.args;
}

function viewWith(count: number): MailboxView {
  const view = new MailboxView();
  assert.equal(view.untagged(args(`${count} EXISTS`)), undefined);
  return view;
}

describe('MailboxView', () => {
  test('EXISTS may grow the mailbox but never shrink it', () => {
    const view = viewWith(3);
    assert.equal(view.untagged(args('4 EXISTS')), undefined);
    assert.equal(view.untagged(args('2 EXISTS')), 'Message count dropped 4 -> 2');
  });

  test('EXPUNGE must name an existing sequence and shrinks the view', () => {
    const view = viewWith(2);
    assert.equal(view.untagged(args('0 EXPUNGE')), 'Tried to expunge sequence 0');
    assert.equal(view.untagged(args('3 EXPUNGE')), 'Tried to expunge sequence 3 with only 2 msgs');
    assert.equal(view.untagged(args('1 EXPUNGE')), undefined);
    assert.equal(view.count, 1);
  });

  test('a UID is a non-zero number that never changes for a sequence; EXPUNGE moves them down', () => {
    const view = viewWith(2);
    assert.equal(view.untagged(args('1 FETCH (UID 0)')), 'Invalid UID number 0');
    assert.equal(view.untagged(args('1 FETCH (UID 5)')), undefined);
    assert.equal(view.untagged(args('2 FETCH (UID 6)')), undefined);
    assert.equal(view.untagged(args('1 FETCH (UID 7)')), 'UID changed for sequence 1: 5 -> 7');
    view.reset();
    assert.equal(view.untagged(args('2 EXISTS')), undefined);
    assert.equal(view.untagged(args('2 FETCH (UID 6)')), undefined);
    assert.equal(view.untagged(args('1 EXPUNGE')), undefined);
    assert.equal(view.untagged(args('1 FETCH (UID 6)')), undefined);
  });

  test('FLAGS: atoms only, known system flags, keywords (UTF-8 bytes too) and NIL as an atom', () => {
    const view = viewWith(1);
    assert.equal(view.untagged(args('1 FETCH (FLAGS (\\Seen \\Recent $kw NIL))')), undefined);
    assert.equal(view.untagged(args(`1 FETCH (FLAGS (${utf8ToBytes('jürgen')}))`)), undefined);
    assert.equal(view.untagged(args('1 FETCH (FLAGS (\\Bogus))')), 'Invalid system flag: \\Bogus');
    assert.equal(view.untagged(args('1 FETCH (FLAGS ("x"))')), 'Flags list contains non-atoms.');
    assert.equal(view.untagged(args('1 FETCH FLAGS')), "FETCH didn't return a list");
    assert.equal(view.untagged(args('1 FETCH (FLAGS)')), "FETCH reply doesn't have key-value pairs");
  });

  test('INTERNALDATE parses and never changes', () => {
    const view = viewWith(1);
    assert.equal(view.untagged(args('1 FETCH (INTERNALDATE "22-Feb-2008 17:06:23 +0000")')), undefined);
    assert.equal(view.untagged(args('1 FETCH (INTERNALDATE "22-Feb-2008 17:06:23 +0000")')), undefined);
    assert.match(view.untagged(args('1 FETCH (INTERNALDATE "23-Feb-2008 17:06:23 +0000")')) ?? '', /changed/);
    assert.match(view.untagged(args('1 FETCH (INTERNALDATE "yesterday")')) ?? '', /Invalid INTERNALDATE/);
  });
});
