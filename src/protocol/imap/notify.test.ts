// NOTIFY (RFC 5465) checks and filters: which NOTIFY SET is BAD, which is NO [BADEVENT], which filter
// governs a mailbox and what STATUS reports it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ImapCommand, NotifyGroup } from './command.ts';
import { checkNotify, eventsFor, filterMatches, statusItems, type NotifyCheck } from './notify.ts';
import { parseOne } from './test-support.ts';

function check(line: string, decode: (n: string) => string | null = (n) => n): NotifyCheck {
  const cmd = parseOne(line) as Extract<ImapCommand, { kind: 'notify' }>;
  assert.notEqual(cmd.set, null);
  const set = cmd.set as { status: boolean; groups: readonly NotifyGroup[] };
  return checkNotify(set.status, set.groups, decode);
}

function plan(line: string) {
  const r = check(line);
  assert.equal(r.ok, true, JSON.stringify(r));
  return r.plan;
}

describe('checkNotify', () => {
  it('accepts the RFC 5465 §3.1 example', () => {
    const p = plan(
      'a NOTIFY SET STATUS (selected (MessageNew (uid flags) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge FlagChange))',
    );
    assert.equal(p.status, true);
    assert.equal(p.selected?.delayed, false);
    assert.deepEqual(p.selected?.events.fetch, [{ kind: 'uid' }, { kind: 'flags' }]);
    assert.deepEqual(p.others, [
      {
        filter: { kind: 'subtree', names: ['Lists'] },
        events: {
          messageNew: true,
          messageExpunge: true,
          flagChange: true,
          mailboxName: false,
          subscriptionChange: false,
          fetch: null,
        },
      },
    ]);
    assert.equal(plan('a NOTIFY SET (selected-delayed (MessageNew MessageExpunge))').selected?.delayed, true);
  });

  it('is BAD for what §3.1 forbids', () => {
    for (const line of [
      'a NOTIFY SET (personal (MessageNew))',
      'a NOTIFY SET (personal (MessageExpunge))',
      'a NOTIFY SET (personal (FlagChange))',
      'a NOTIFY SET (inboxes (MessageNew (uid) MessageExpunge))',
      'a NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))',
    ]) {
      const r = check(line);
      assert.equal(r.ok === false && r.status, 'BAD', line);
    }
    const undecodable = check('a NOTIFY SET (mailboxes (x&) (MessageNew MessageExpunge))', () => null);
    assert.equal(undecodable.ok === false && undecodable.status, 'BAD');
  });

  it('is NO [BADEVENT] for the events Tern does not deliver', () => {
    for (const line of [
      'a NOTIFY SET (selected (MessageNew MessageExpunge AnnotationChange))',
      'a NOTIFY SET (personal (MailboxMetadataChange))',
      'a NOTIFY SET (personal (ServerMetadataChange))',
      'a NOTIFY SET (personal (XUnknown))',
    ]) {
      const r = check(line);
      assert.equal(r.ok === false && r.status, 'NO', line);
      assert.equal(r.ok === false && r.status === 'NO' && r.badEvent, true, line);
    }
  });

  it('decodes mailbox names through the function given (UTF-8 and modified UTF-7)', () => {
    const p = checkNotify(
      false,
      [
        {
          filter: { kind: 'mailboxes', mailboxes: ['J&APw-rgen', '&ZeVnLA-'] },
          events: [{ name: 'MailboxName', fetch: null }],
        },
      ],
      (n) => ({ 'J&APw-rgen': 'Jürgen', '&ZeVnLA-': '日本' })[n] ?? null,
    );
    assert.equal(p.ok, true);
    const filter = p.plan.others[0]?.filter;
    assert.deepEqual(filter, { kind: 'mailboxes', names: ['Jürgen', '日本'] });
  });
});

describe('filters', () => {
  it('match by kind (§6)', () => {
    assert.equal(filterMatches({ kind: 'personal' }, 'a/b', false), true);
    assert.equal(filterMatches({ kind: 'inboxes' }, 'INBOX', false), true);
    assert.equal(filterMatches({ kind: 'inboxes' }, 'Sent', false), false);
    assert.equal(filterMatches({ kind: 'subscribed' }, 'Sent', true), true);
    assert.equal(filterMatches({ kind: 'subscribed' }, 'Sent', false), false);
    assert.equal(filterMatches({ kind: 'mailboxes', names: ['Lists'] }, 'Lists', false), true);
    assert.equal(filterMatches({ kind: 'mailboxes', names: ['Lists'] }, 'Lists/x', false), false);
    assert.equal(filterMatches({ kind: 'subtree', names: ['Lists'] }, 'Lists/x', false), true);
    assert.equal(filterMatches({ kind: 'subtree', names: ['Lists'] }, 'Lists', false), true);
    assert.equal(filterMatches({ kind: 'subtree', names: ['Lists'] }, 'Listsx', false), false);
  });

  it('match UTF-8 names', () => {
    assert.equal(filterMatches({ kind: 'subtree', names: ['日本'] }, '日本/東京', false), true);
    assert.equal(filterMatches({ kind: 'mailboxes', names: ['Jürgen'] }, 'Jürgen', false), true);
    assert.equal(filterMatches({ kind: 'subtree', names: ['Jürgen'] }, 'Jürgenx', false), false);
  });

  it('the first filter that matches governs; STATUS items follow its events', () => {
    const p = plan(
      'a NOTIFY SET (mailboxes Lists (MessageNew MessageExpunge FlagChange)) (personal (MessageNew MessageExpunge)) (subtree Other (MailboxName))',
    );
    const lists = eventsFor(p, 'Lists', false);
    assert.ok(lists !== null);
    assert.deepEqual(statusItems(lists), ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'HIGHESTMODSEQ']);
    const inbox = eventsFor(p, 'INBOX', false);
    assert.ok(inbox !== null);
    assert.deepEqual(statusItems(inbox), ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY']);
    // "Other" is under personal first: the later subtree filter never applies.
    assert.equal(eventsFor(p, 'Other', false)?.mailboxName, false);
    const names = plan('a NOTIFY SET (subtree 日本 (MailboxName))');
    assert.deepEqual(statusItems(eventsFor(names, '日本/東京', false)!), []);
    assert.equal(eventsFor(names, 'INBOX', false), null);
  });
});
