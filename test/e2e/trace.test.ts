// `tern trace` end to end: messages sent with Python's smtplib (an ASCII and a UTF-8 twin, SMTPUTF8)
// through a running server (its sessions on a session thread by default), then their timelines read
// back with the CLI by queue id, Message-ID, sender and recipient, as text and as the JSON contract;
// bad input gets a usage error.
// Deliberately NOT here: which log records become events, operators' queue actions and retention
// (src/trace/sqlite-trace-store.test.ts).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { havePython, queueIdOf, smtplib, startTern, waitFor, type Tern } from './harness.ts';

const skip = havePython() ? false : 'python3 is not available on this machine';

interface TraceJson {
  readonly time: string;
  readonly event: string;
  readonly queueId: string;
  readonly source: string;
  readonly [detail: string]: unknown;
}

describe('tern trace', { skip }, () => {
  let tern: Tern;
  const sent: { id: string; rcpt: string; messageId: string }[] = [];
  before(async () => {
    tern = await startTern({ users: ['bob@example.test', '日本@example.test'] });
    for (const [rcpt, messageId] of [
      ['bob@example.test', '<trace-1@client.example>'],
      ['日本@example.test', '<trace-2@client.example>'],
    ] as const) {
      const r = await smtplib({
        port: tern.ports.smtp,
        mode: 'plain',
        action: 'steps',
        steps: [
          ['mail', 'jürgen@client.example', ['SMTPUTF8']],
          ['rcpt', rcpt],
          [
            'data',
            `From: jürgen@client.example\r\nTo: ${rcpt}\r\nMessage-ID: ${messageId}\r\nSubject: trace\r\n\r\nhi\r\n`,
          ],
        ],
      });
      assert.equal(r.ok, true, JSON.stringify(r));
      const [code, text] = r.steps.at(-1)!;
      assert.equal(code, 250, text);
      sent.push({ id: queueIdOf(text), rcpt, messageId });
    }
  });
  after(() => tern?.stop());

  const trace = async (args: readonly string[]): Promise<TraceJson[]> => {
    const r = await tern.tern(['trace', ...args, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as TraceJson[];
  };

  test('by queue id: received from whom, then delivered into the mailbox, in order', async () => {
    const { id, rcpt } = sent[0]!;
    const events = await waitFor('the trace of the first message', async () => {
      const e = await trace([id]);
      return e.length >= 2 ? e : undefined;
    });
    assert.deepEqual(
      events.map((e) => e.event),
      ['received', 'delivered'],
    );
    const [received, delivered] = events as [TraceJson, TraceJson];
    assert.equal(received.queueId, id);
    assert.equal(received.source, 'smtp.queued');
    assert.equal(received['sender'], 'jürgen@client.example');
    assert.deepEqual(received['to'], [rcpt]);
    assert.equal(received['ip'], '127.0.0.1');
    assert.match(received.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(delivered['rcpt'], rcpt);
    assert.ok(Date.parse(delivered.time) <= Date.parse(received.time) + 1000);
  });

  test('by Message-ID (with or without <>), sender and recipient; the UTF-8 twin too', async () => {
    const [one, two] = sent as [(typeof sent)[0], (typeof sent)[0]];
    assert.deepEqual(
      [...new Set((await trace(['--message-id', 'trace-2@client.example'])).map((e) => e.queueId))],
      [two.id],
    );
    assert.deepEqual(
      [...new Set((await trace(['--message-id', one.messageId])).map((e) => e.queueId))],
      [one.id],
    );
    assert.deepEqual(
      [...new Set((await trace(['--to', '日本@example.test'])).map((e) => e.queueId))],
      [two.id],
    );
    assert.deepEqual(
      [...new Set((await trace(['--from', 'jürgen@client.example', '--since', '1h'])).map((e) => e.queueId))],
      [one.id, two.id],
    );
    assert.deepEqual(await trace(['--from', 'nobody@client.example']), []);
    const text = await tern.tern(['trace', two.id]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^${two.id}\\n.*received .*sender=jürgen@client.example`, 's'));
  });

  test('bad input: no query is a usage error; an unknown id says so; a bad --since is named', async () => {
    const none = await tern.tern(['trace']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /name a queue id, or --message-id, --from or --to/);
    const unknown = await tern.tern(['trace', '01NOSUCHQUEUEID00000']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no trace of such a message/);
    const since = await tern.tern(['trace', '--from', 'a@b.example', '--since', 'yesterday-ish']);
    assert.equal(since.code, 2);
    assert.match(since.stderr, /--since: not a date/);
  });
});
