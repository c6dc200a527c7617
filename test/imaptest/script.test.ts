// The imaptest script parser (script.ts) and mbox source (mbox.ts) on small scripts written for the
// purpose: header keys, the three command forms, pipelining and connection numbers, `{{{ }}}` literals,
// `!ifenv`, imaptest's own errors, the LOGOUT it adds; and the suite's own scripts all parse. UTF-8
// twins: a script with jürgen@ / 日本 bytes in its literal keeps their byte counts.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { bufferToBytes, utf8ToBytes } from './imap-args.ts';
import { MboxSource, parseMbox } from './mbox.ts';
import { listScripts } from './runner.ts';
import { parseScript, type Script } from './script.ts';

function parse(text: string, env: Record<string, string> = {}): Script {
  const r = parseScript('t', text, env);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.script;
}

function parseError(text: string): string {
  const r = parseScript('t', text, {});
  assert.ok(!r.ok, 'expected a parse error');
  return r.error;
}

describe('script header', () => {
  test('reads every key, with imaptest defaults for the rest', () => {
    const s = parse(
      'capabilities: ESEARCH CONDSTORE\nconnections: 2\nmessages: all\nstate: auth\nignore_extra_untagged: no\n\n1 ok noop\n',
    );
    assert.deepEqual(s.requiredCapabilities, ['ESEARCH', 'CONDSTORE']);
    assert.equal(s.connectionCount, 2);
    assert.equal(s.messageCount, 'all');
    assert.equal(s.startupState, 'auth');
    assert.equal(s.ignoreExtraUntagged, false);
    const d = parse('\nok noop\n');
    assert.deepEqual(
      [d.connectionCount, d.messageCount, d.startupState, d.ignoreExtraUntagged],
      // imaptest's test-parser.c starts message_count at UINT_MAX: every message of the mbox.
      [1, 'all', 'selected', true],
    );
  });

  test('a second user, and unknown keys are errors', () => {
    assert.equal(parse('user 2: $user2\nconnections: 2\n\n1 ok noop\n').requireUser2, true);
    assert.match(parseError('colour: blue\n\nok noop\n'), /line 1: Unknown setting/);
    assert.match(parseError('state: sleeping\n\nok noop\n'), /Unknown state value/);
  });
});

describe('script commands', () => {
  test('method 1: the reply first, then the untagged lines; LOGOUT is added at the end', () => {
    const s = parse('\nok select $mailbox\n* 0 exists\n! 1 exists\n? 0 recent\n');
    assert.equal(s.groups.length, 2);
    const g = s.groups[0]!;
    assert.equal(g.commands[0]!.command, 'select $mailbox');
    assert.deepEqual(g.commands[0]!.reply, [{ kind: 'atom', value: 'ok' }]);
    assert.deepEqual(
      g.untagged.map((u) => u.existence),
      ['must', 'mustNot', 'may'],
    );
    assert.equal(s.groups[1]!.commands[0]!.command, 'logout');
  });

  test('method 2 and 3: the reply after the untagged lines, pipelined tags, connection numbers', () => {
    const s = parse(
      'connections: 2\n\n2 tag1 status ${mailbox} (messages)\n2 tag2 noop\n* status ${mailbox} (messages 0)\n2 tag2 ok\n2 tag1 ok [x]\n1 logout\n* bye\n1 ok\n',
    );
    const g = s.groups[0]!;
    assert.equal(g.connectionIdx, 1);
    assert.deepEqual(
      g.commands.map((c) => [c.tag, c.command]),
      [
        [1, 'status ${mailbox} (messages)'],
        [2, 'noop'],
      ],
    );
    assert.deepEqual(g.commands[0]!.reply, [
      { kind: 'atom', value: 'ok' },
      { kind: 'atom', value: '[x]' },
    ]);
    // STATUS gets its default $!unordered=2.
    const status = g.untagged[0]!.args[2];
    assert.ok(status?.kind === 'list');
    assert.deepEqual(status.items[0], { kind: 'atom', value: '$!unordered=2' });
    // The script logs out itself (with a BYE): no LOGOUT is added.
    assert.equal(s.groups.length, 2);
    assert.equal(s.groups[1]!.haveUntaggedBye, true);
  });

  test('{{{ }}} becomes a literal of the right byte count; ~{{{ lines end in LF alone', () => {
    const s = parse(
      '\nok append $mailbox {{{\nSubject: x\n\nbody\n}}}\nok append $mailbox ~{{{\na\r\nb\n}}}\n',
    );
    assert.equal(s.groups[0]!.commands[0]!.command, 'append $mailbox {18}\r\nSubject: x\r\n\r\nbody');
    assert.equal(s.groups[1]!.commands[0]!.command, 'append $mailbox ~{4}\r\na\r\nb');
  });

  test('a literal with UTF-8 counts bytes, not characters', () => {
    const jurgen = utf8ToBytes('From: jürgen@example.test');
    const s = parse(`\nok append $mailbox {{{\n${jurgen}\n}}}\n`);
    assert.equal(s.groups[0]!.commands[0]!.command, `append $mailbox {26}\r\n${jurgen}`);
    const nihon = utf8ToBytes('Subject: 日本');
    const t = parse(`\nok append $mailbox {{{\n${nihon}\n}}}\n`);
    assert.equal(t.groups[0]!.commands[0]!.command, `append $mailbox {15}\r\n${nihon}`);
  });

  test('!ifenv / !ifnenv / !else choose lines by the environment', () => {
    const text = '\n!ifenv HAVE_FOO\nok foo\n!else\nok bar\n!endif\n!ifnenv HAVE_FOO\nok baz\n!endif\n';
    const cmds = (s: Script): string[] => s.groups.flatMap((g) => g.commands.map((c) => c.command));
    assert.deepEqual(cmds(parse(text, { HAVE_FOO: '1' })), ['foo', 'logout']);
    assert.deepEqual(cmds(parse(text)), ['bar', 'baz', 'logout']);
    assert.match(parseError('\nok noop\n!ifenv X\nok noop\n'), /not closed with !endif/);
  });

  test("imaptest's script errors", () => {
    assert.match(parseError('connections: 2\n\nok noop\n'), /Missing client index/);
    assert.match(parseError('\nnoop\n'), /Missing reply from previous command/);
    assert.match(parseError('\nok append {{{\nx\n'), /not ended/);
    assert.match(
      parseError('\nok fetch 1 flags\n* 1 fetch (flags ($!sideways))\n'),
      /Unknown directive: sideways/,
    );
    assert.match(parseError('\nok noop'), /doesn't end with LF/);
  });

  test('every script of the suite parses', async () => {
    const paths = await listScripts();
    assert.equal(paths.length, 72);
    for (const path of paths) {
      const r = parseScript(path, bufferToBytes(await readFile(path)), {});
      assert.ok(r.ok, r.ok ? '' : r.error);
    }
  });
});

describe('mbox source', () => {
  test('splits at From lines, keeps the dates, ends lines in CRLF and wraps around', () => {
    const text =
      'From user@domain  Fri Feb 22 17:06:23 2008\nSubject: a\n\nFrom here\n\nFrom user@domain  Sat Mar 24 23:00:00 2007 +0200\nSubject: b\n';
    const msgs = parseMbox(text);
    assert.deepEqual(msgs, [
      { body: 'Subject: a\r\n\r\nFrom here\r\n\r\n', internalDate: '22-Feb-2008 17:06:23 +0000' },
      { body: 'Subject: b\r\n', internalDate: '24-Mar-2007 23:00:00 +0200' },
    ]);
    const src = new MboxSource(msgs);
    assert.equal(src.next().internalDate, '22-Feb-2008 17:06:23 +0000');
    assert.equal(src.eof, false);
    src.next();
    assert.equal(src.eof, true);
    assert.equal(src.next().internalDate, '22-Feb-2008 17:06:23 +0000');
  });

  test('UTF-8 bodies stay bytes', () => {
    const body = utf8ToBytes('From: jürgen@example.test\nSubject: 日本\n');
    const msgs = parseMbox(`From user@domain  Fri Feb 22 17:06:23 2008\n${body}`);
    assert.equal(msgs[0]!.body, body.replace(/\n/g, '\r\n'));
  });
});
