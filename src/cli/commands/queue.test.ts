import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { Envelope } from '../../core/envelope.ts';
import { openQueue } from '../../main.ts';
import type { Sandbox } from '../test-harness.ts';
import { createSandbox } from '../test-harness.ts';
import { readHeaderSection } from './queue.ts';
import { nullLogger } from '../../core/ports.ts';
import type { Queue } from '../../queue/queue.ts';

const ARRIVAL_MS = Date.UTC(2026, 0, 15, 12, 0, 0);
const NEXT_MS = Date.UTC(2026, 0, 15, 12, 30, 0);

const envelope: Envelope = {
  sender: 'bob@example.org',
  body: '8BITMIME',
  smtputf8: false,
  ret: 'HDRS',
  envid: 'env-42',
  recipients: [
    { address: 'carol@remote.example', notify: ['FAILURE', 'DELAY'], orcpt: null },
    {
      address: 'dave@remote.example',
      notify: null,
      orcpt: { addrType: 'rfc822', address: 'Dave@remote.example' },
    },
  ],
  client: {
    ip: '192.0.2.7',
    port: 40123,
    hostname: 'client.example.org',
    helo: 'client.example.org',
    esmtp: true,
    tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    authUser: null,
    service: 'smtp',
  },
  receivedAtMs: ARRIVAL_MS,
};

const MESSAGE =
  'Received: from client.example.org\r\n\tby localhost; Thu, 15 Jan 2026 12:00:00 +0000\r\n' +
  'From: bob@example.org\r\nSubject: queued\r\n\r\nbody text that queue show must not print\r\n';

describe('tern queue', () => {
  let box: Sandbox;
  let id: string;
  before(async () => {
    box = await createSandbox();
    const queue = await openQueue(box.config(), { nowMs: () => ARRIVAL_MS }, nullLogger);
    try {
      const writer = queue.begin();
      await writer.write(Buffer.from(MESSAGE));
      await writer.commit(envelope);
      id = writer.id;
      await queue.settle(id, 1, {
        status: 'deferred',
        reply: '451 4.4.1 connection refused',
        nextAttemptMs: NEXT_MS,
        remoteMta: 'mx.remote.example',
        diagnostic: '451-4.4.1 try again\r\n451 4.4.1 later',
      });
      await queue.markDelayWarned(id, 1);
    } finally {
      await queue.close();
    }
  });
  after(() => box.remove());

  test('list --json gives the envelope and every recipient with its state', async () => {
    const r = await box.tern(['queue', 'list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { recipients: Record<string, unknown>[] }[];
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0], {
      id,
      sender: 'bob@example.org',
      size: Buffer.byteLength(MESSAGE),
      arrival: '2026-01-15T12:00:00.000Z',
      held: false,
      recipients: [
        {
          address: 'carol@remote.example',
          status: 'queued',
          attempts: 0,
          nextAttempt: rows[0]!.recipients[0]!['nextAttempt'],
          lastReply: null,
          delayWarned: false,
          bounceRequested: false,
        },
        {
          address: 'dave@remote.example',
          status: 'deferred',
          attempts: 1,
          nextAttempt: '2026-01-15T12:30:00.000Z',
          lastReply: '451 4.4.1 connection refused',
          delayWarned: true,
          bounceRequested: false,
        },
      ],
    });
    assert.match(String(rows[0].recipients[0]!['nextAttempt']), /^\d{4}-\d\d-\d\dT/);
  });

  test('list without --json shows the message and the reason for each recipient', async () => {
    const r = await box.tern(['queue', 'list']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `^${id}  ${Buffer.byteLength(MESSAGE)} bytes  2026-01-15T12:00:00.000Z  <bob@example.org>\n`,
      ),
    );
    assert.match(
      r.stdout,
      /\n {4}dave@remote\.example {2}deferred {2}attempts 1 {2}next 2026-01-15T12:30:00\.000Z {2}451 4\.4\.1 connection refused\n/,
    );
  });

  test('show prints envelope, recipients and the headers, not the body', async () => {
    const r = await box.tern(['queue', 'show', id]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^id: +${id}\n`));
    assert.match(r.stdout, /\nsender: +<bob@example\.org>\n/);
    assert.match(
      r.stdout,
      /\nclient: +client\.example\.org \[192\.0\.2\.7\]:40123 helo=client\.example\.org service=smtp tls=TLSv1\.3/,
    );
    assert.match(r.stdout, /\nenvid: +env-42\n/);
    assert.match(r.stdout, /\n {4}notify: +FAILURE,DELAY\n/);
    assert.match(r.stdout, /\n {4}orcpt: +rfc822;Dave@remote\.example\n/);
    assert.match(r.stdout, /\n {4}last reply: +451 4\.4\.1 connection refused\n/);
    assert.match(r.stdout, /\n {4}remote MTA: +mx\.remote\.example\n/);
    assert.match(r.stdout, /\n {4}remote said: +451-4\.4\.1 try again\n {18}451 4\.4\.1 later\n/);
    assert.match(r.stdout, /\n {4}delay warning sent\n/);
    assert.ok(
      r.stdout.endsWith(
        'headers:\nReceived: from client.example.org\n\tby localhost; Thu, 15 Jan 2026 12:00:00 +0000\n' +
          'From: bob@example.org\nSubject: queued\n',
      ),
      r.stdout,
    );
    assert.doesNotMatch(r.stdout, /must not print/);
  });

  test('show of an unknown id fails with a message', async () => {
    const r = await box.tern(['queue', 'show', 'NOSUCHID']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'tern: no queued message NOSUCHID\n');
  });
});

test('queue list on an empty queue says so; --json gives []', async () => {
  const box = await createSandbox();
  try {
    // A read-only command does not create the queue: open it the way the server does first.
    await (await openQueue(box.config(), { nowMs: () => Date.now() }, nullLogger)).close();
    assert.equal((await box.tern(['queue', 'list'])).stdout, 'queue is empty\n');
    assert.equal((await box.tern(['queue', 'list', '--json'])).stdout, '[]\n');
  } finally {
    await box.remove();
  }
});

test('readHeaderSection stops at the empty line, across chunk boundaries, LF or CRLF', async () => {
  const chunks = ['Subject: a\r', '\nX: b\r\n\r', '\nbody\r\n'].map((s) => Buffer.from(s));
  assert.deepEqual(await readHeaderSection(Readable.from(chunks)), {
    text: 'Subject: a\r\nX: b',
    cut: false,
  });
  assert.deepEqual(await readHeaderSection(Readable.from([Buffer.from('A: 1\nB: 2\n\nbody')])), {
    text: 'A: 1\nB: 2',
    cut: false,
  });
  assert.deepEqual(await readHeaderSection(Readable.from([Buffer.from('Only: header\r\n')])), {
    text: 'Only: header',
    cut: false,
  });
  const huge = await readHeaderSection(Readable.from([Buffer.alloc(300 * 1024, 'a')]));
  assert.equal(huge.cut, true);
  assert.equal(huge.text.length, 256 * 1024);
});

/** A sandbox with messages seeded through the queue the CLI opens, to be steered by the CLI. */
async function seeded(
  count: number,
  recipients = ['carol@remote.example', 'dave@remote.example'],
): Promise<{ box: Sandbox; ids: string[]; open: () => Promise<Queue> }> {
  const box = await createSandbox();
  const open = (): Promise<Queue> => openQueue(box.config(), { nowMs: () => Date.now() }, nullLogger);
  const queue = await open();
  const ids: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const writer = queue.begin();
      await writer.write(Buffer.from(MESSAGE));
      await writer.commit({
        ...envelope,
        recipients: recipients.map((address) => ({ address, notify: null, orcpt: null })),
      });
      for (let r = 0; r < recipients.length; r++) {
        await queue.settle(writer.id, r, {
          status: 'deferred',
          reply: '451 4.4.1 later',
          nextAttemptMs: FAR_MS,
        });
      }
      ids.push(writer.id);
    }
  } finally {
    await queue.close();
  }
  return { box, ids, open };
}

/** Far ahead: a recipient deferred until then is certainly not due when the test runs. */
const FAR_MS = Date.UTC(2100, 0, 1);

async function inspect<T>(open: () => Promise<Queue>, fn: (q: Queue) => Promise<T>): Promise<T> {
  const q = await open();
  try {
    return await fn(q);
  } finally {
    await q.close();
  }
}

describe('tern queue: steering', () => {
  test('flush ID makes that message due now; flush makes every message not held due', async () => {
    const { box, ids, open } = await seeded(3);
    try {
      const before = Date.now();
      let r = await box.tern(['queue', 'flush', ids[0]!]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `message ${ids[0]!}: 2 recipients due now\n`);
      const due = await inspect(open, (q) => q.due(Date.now(), 10));
      assert.deepEqual(
        due.map((m) => m.id),
        [ids[0]],
      );
      assert.ok(due[0]!.recipients.every((x) => x.nextAttemptMs >= before && x.nextAttemptMs <= Date.now()));

      assert.equal((await box.tern(['queue', 'hold', ids[2]!])).code, 0);
      r = await box.tern(['queue', 'flush']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '4 recipients due now\n');
      assert.deepEqual(
        (await inspect(open, (q) => q.due(Date.now(), 10))).map((m) => m.id),
        [ids[0], ids[1]],
      );
    } finally {
      await box.remove();
    }
  });

  test('flush of a held message says to release it first; of an unknown one, that it does not exist', async () => {
    const { box, ids } = await seeded(1);
    try {
      await box.tern(['queue', 'hold', ids[0]!]);
      let r = await box.tern(['queue', 'flush', ids[0]!]);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `tern: message ${ids[0]!} is held: release it first (tern queue release ${ids[0]!})\n`,
      );
      r = await box.tern(['queue', 'flush', 'NOSUCHID']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'tern: no queued message NOSUCHID\n');
    } finally {
      await box.remove();
    }
  });

  test('hold keeps a message from delivery and list shows it; release undoes it', async () => {
    const { box, ids, open } = await seeded(1);
    try {
      let r = await box.tern(['queue', 'hold', ids[0]!]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `message ${ids[0]!} held\n`);
      await inspect(open, async (q) => {
        await q.flush();
        assert.deepEqual(await q.due(FAR_MS, 10), []);
      });
      r = await box.tern(['queue', 'list']);
      assert.match(r.stdout, new RegExp(`^${ids[0]!} .* <bob@example\\.org> \\(held\\)\n`));
      r = await box.tern(['queue', 'list', '--json']);
      assert.equal((JSON.parse(r.stdout) as { held: boolean }[])[0]?.held, true);

      r = await box.tern(['queue', 'release', ids[0]!]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `message ${ids[0]!} released\n`);
      assert.equal((await inspect(open, (q) => q.due(FAR_MS, 10))).length, 1);
    } finally {
      await box.remove();
    }
  });

  test('delete removes the message without a trace; a second delete fails', async () => {
    const { box, ids, open } = await seeded(2);
    try {
      let r = await box.tern(['queue', 'delete', ids[0]!]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `message ${ids[0]!} deleted\n`);
      assert.deepEqual(
        (await inspect(open, (q) => q.list())).map((m) => m.id),
        [ids[1]],
      );
      r = await box.tern(['queue', 'delete', ids[0]!]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `tern: no queued message ${ids[0]!}\n`);
    } finally {
      await box.remove();
    }
  });

  test('bounce marks the pending recipients for the worker and makes them due', async () => {
    const { box, ids, open } = await seeded(1);
    try {
      await inspect(open, (q) => q.settle(ids[0]!, 0, { status: 'delivered', reply: '250 2.0.0 ok' }));
      await box.tern(['queue', 'hold', ids[0]!]);
      const r = await box.tern(['queue', 'bounce', ids[0]!]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        r.stdout,
        `message ${ids[0]!}: 1 recipient will bounce; the server sends the sender a DSN\n`,
      );
      const due = await inspect(open, (q) => q.due(Date.now(), 10));
      assert.deepEqual(
        due.map((m) => [m.id, m.held, m.recipients.map((x) => [x.address, x.bounceRequested])]),
        [[ids[0], false, [['dave@remote.example', true]]]],
      );
      const list = await box.tern(['queue', 'list', '--json']);
      const rows = JSON.parse(list.stdout) as { recipients: { bounceRequested: boolean }[] }[];
      assert.deepEqual(
        rows[0]?.recipients.map((x) => x.bounceRequested),
        [false, true],
      );
      const show = await box.tern(['queue', 'show', ids[0]!]);
      assert.match(show.stdout, /\n {4}bounce requested: bounces at the next look of the delivery worker\n/);
      const text = await box.tern(['queue', 'list']);
      assert.match(
        text.stdout,
        /\n {4}dave@remote\.example {2}deferred {2}\(bounce requested\) {2}attempts 1/,
      );
    } finally {
      await box.remove();
    }
  });

  test('every steering command: an unknown id fails with exit 1, a missing id is a usage error', async () => {
    const box = await createSandbox();
    try {
      for (const cmd of ['hold', 'release', 'delete', 'bounce']) {
        const r = await box.tern(['queue', cmd, 'NOSUCHID']);
        assert.equal(r.code, 1, cmd);
        assert.equal(r.stderr, 'tern: no queued message NOSUCHID\n', cmd);
        const u = await box.tern(['queue', cmd]);
        assert.equal(u.code, 2, cmd);
        assert.match(u.stderr, /^tern: missing ID\nusage: tern queue /, cmd);
      }
      const r = await box.tern(['queue', 'flush']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '0 recipients due now\n');
      const both = await box.tern(['queue', 'hold', 'A', '--all']);
      assert.equal(both.code, 2);
      assert.match(both.stderr, /^tern: give message ids or --all, not both\n/);
    } finally {
      await box.remove();
    }
  });

  test('tern help queue lists the steering commands', async () => {
    const box = await createSandbox();
    try {
      const r = await box.tern(['help', 'queue'], { withConfig: false });
      assert.equal(r.code, 0);
      for (const c of ['list', 'show', 'cat', 'flush', 'hold', 'release', 'delete', 'bounce']) {
        assert.match(r.stdout, new RegExp(`tern queue ${c}`));
      }
    } finally {
      await box.remove();
    }
  });
});

describe('tern queue: several messages at once, --json, cat (issue 11)', () => {
  test('hold, release, delete and bounce take several ids: each is reported, one unknown id is exit 1', async () => {
    const { box, ids, open } = await seeded(3);
    try {
      let r = await box.tern(['queue', 'hold', ids[0]!, 'NOSUCHID', ids[1]!]);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, `message ${ids[0]!} held\nmessage ${ids[1]!} held\n`);
      assert.equal(r.stderr, 'tern: no queued message NOSUCHID\n');
      const held = await inspect(open, (q) => q.list());
      assert.deepEqual(
        held.map((m) => [m.id, m.held]),
        [
          [ids[0], true],
          [ids[1], true],
          [ids[2], false],
        ],
      );
      r = await box.tern(['queue', 'release', ids[0]!, ids[1]!, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), [
        { id: ids[0], ok: true },
        { id: ids[1], ok: true },
      ]);
      r = await box.tern(['queue', 'bounce', ids[0]!, 'NOSUCHID', '--json']);
      assert.equal(r.code, 1);
      assert.deepEqual(JSON.parse(r.stdout), [
        { id: ids[0], ok: true, recipients: 2 },
        { id: 'NOSUCHID', ok: false, error: 'no queued message NOSUCHID' },
      ]);
      assert.equal(r.stderr, '', 'with --json the failure is in the JSON, not repeated on stderr');
      r = await box.tern(['queue', 'delete', ids[1]!, ids[2]!]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        (await inspect(open, (q) => q.list())).map((m) => m.id),
        [ids[0]],
      );
    } finally {
      await box.remove();
    }
  });

  test('ids on standard input with -: one per line or separated by spaces, as `queue list --json | jq` gives', async () => {
    const { box, ids, open } = await seeded(3);
    try {
      const r = await box.tern(['queue', 'hold', '-'], { stdin: `${ids[0]!}\n${ids[2]!} \n\n` });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `message ${ids[0]!} held\nmessage ${ids[2]!} held\n`);
      assert.deepEqual(
        (await inspect(open, (q) => q.list())).filter((m) => m.held).map((m) => m.id),
        [ids[0], ids[2]],
      );
      const none = await box.tern(['queue', 'release', '-'], { stdin: '' });
      assert.equal(none.code, 0, none.stderr);
      assert.equal(none.stdout, '');
    } finally {
      await box.remove();
    }
  });

  test('--all: hold every message, release every held one, flush --all skips held, delete --all empties', async () => {
    const { box, ids, open } = await seeded(3);
    try {
      let r = await box.tern(['queue', 'hold', '--all']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, ids.map((id) => `message ${id} held\n`).join(''));
      r = await box.tern(['queue', 'release', ids[1]!]);
      assert.equal(r.code, 0, r.stderr);
      r = await box.tern(['queue', 'flush', '--all', '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), [{ id: ids[1], ok: true, recipients: 2 }]);
      r = await box.tern(['queue', 'release', '--all']);
      assert.equal(r.stdout, `message ${ids[0]!} released\nmessage ${ids[2]!} released\n`);
      r = await box.tern(['queue', 'delete', '--all']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await inspect(open, (q) => q.list()), []);
      r = await box.tern(['queue', 'delete', '--all', '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '[]\n');
    } finally {
      await box.remove();
    }
  });

  test('every queue change made here is in the change log the server reads: what and which ids', async () => {
    const { box, ids, open } = await seeded(2);
    try {
      await box.tern(['queue', 'hold', ids[0]!, ids[1]!, 'NOSUCHID']);
      await box.tern(['queue', 'release', '--all']);
      await box.tern(['queue', 'flush', ids[0]!]);
      await box.tern(['queue', 'bounce', ids[0]!]);
      await box.tern(['queue', 'delete', ids[1]!]);
      await box.tern(['queue', 'delete', 'NOSUCHID']);
      const changes = await inspect(open, (q) => q.changesSince(0, 100));
      assert.deepEqual(
        changes.map((c) => [c.event, c.detail]),
        [
          ['queue.hold', { ids: [ids[0], ids[1]] }],
          ['queue.release', { ids: [ids[0], ids[1]] }],
          ['queue.flush', { ids: [ids[0]], recipients: 2 }],
          ['queue.bounce', { ids: [ids[0]], recipients: 2 }],
          ['queue.delete', { ids: [ids[1]] }],
        ],
      );
    } finally {
      await box.remove();
    }
  });

  test('cat writes the queued message byte for byte, with the prefix header Tern added in front', async () => {
    const box = await createSandbox();
    try {
      const body = Buffer.concat([
        Buffer.from('From: jürgen@example.org\r\nSubject: 日本\r\n\r\n'),
        Buffer.from([0xff, 0x00, 0x0d, 0x0a]),
      ]);
      const prefix = Buffer.from('Authentication-Results: mx.example.test; spf=pass\r\n');
      const queue = await openQueue(box.config(), { nowMs: () => ARRIVAL_MS }, nullLogger);
      let id: string;
      try {
        const writer = queue.begin();
        await writer.write(body);
        await writer.commit(envelope, { prefix });
        id = writer.id;
      } finally {
        await queue.close();
      }
      const r = await box.tern(['queue', 'cat', id]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdoutBytes, Buffer.concat([prefix, body]));
      const missing = await box.tern(['queue', 'cat', 'NOSUCHID']);
      assert.equal(missing.code, 1);
      assert.equal(missing.stderr, 'tern: no queued message NOSUCHID\n');
      assert.equal(missing.stdout, '');
    } finally {
      await box.remove();
    }
  });

  test('show --json: the list shape for one message, extended with envelope, remote detail and headers', async () => {
    const { box, ids } = await seeded(1);
    try {
      const r = await box.tern(['queue', 'show', ids[0]!, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const shown = JSON.parse(r.stdout) as Record<string, unknown> & {
        recipients: Record<string, unknown>[];
      };
      const listed = (
        JSON.parse((await box.tern(['queue', 'list', '--json'])).stdout) as Record<string, unknown>[]
      )[0]!;
      for (const [key, value] of Object.entries(listed)) {
        if (key !== 'recipients') assert.deepEqual(shown[key], value, key);
      }
      assert.deepEqual(
        shown.recipients.map((x) => [x['address'], x['status'], x['notify'], x['orcpt']]),
        [
          ['carol@remote.example', 'deferred', null, null],
          ['dave@remote.example', 'deferred', null, null],
        ],
      );
      assert.equal(shown['envid'], 'env-42');
      assert.equal(shown['ret'], 'HDRS');
      assert.equal(shown['body'], '8BITMIME');
      assert.equal(shown['smtputf8'], false);
      assert.deepEqual(shown['client'], { ...envelope.client });
      assert.equal(
        shown['headers'],
        'Received: from client.example.org\r\n\tby localhost; Thu, 15 Jan 2026 12:00:00 +0000\r\n' +
          'From: bob@example.org\r\nSubject: queued',
      );
      const missing = await box.tern(['queue', 'show', 'NOSUCHID', '--json']);
      assert.equal(missing.code, 1);
    } finally {
      await box.remove();
    }
  });
});
