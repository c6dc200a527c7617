// The SpamAssassin filter over real sockets: a fake spamd on loopback for what goes on the wire and
// the failures (EX_ codes, garbage, a close, silence, an oversize reply), and Debian's real spamd
// (test/filters/daemons/spamd.ts) for what it actually answers: GTUBE refused, a clean message scored
// with X-Spam-Status: No, a marker rule over the threshold filed in Junk, a stopped spamd.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { dial } from '../../src/net/dial.ts';
import {
  runFilter,
  type Dial,
  type FilterContext,
  type FilterMessage,
  type Verdict,
} from '../../src/policy/filters/filter.ts';
import {
  SpamAssassinFilter,
  spamassassinVerdict,
  type SpamAssassinOptions,
} from '../../src/policy/filters/spamassassin.ts';
import { SPAMD_GTUBE, SPAMD_MARKER, SPAMD_SKIP, startSpamd, type Spamd } from './daemons/spamd.ts';
import { messageFrom } from './fixtures.ts';

const ASCII = { from: 'sender@example.org', to: 'rcpt@example.net', user: 'mail' } as const;
const UTF8 = { from: 'jürgen@example.org', to: '日本@example.net', user: 'jürgen' } as const;
const TWINS = [
  ['ASCII', ASCII],
  ['UTF-8', UTF8],
] as const;
type Addresses = { readonly from: string; readonly to: string };

function mail(a: Addresses, opts: { subject?: string; body?: string; extra?: string[] } = {}): Buffer {
  return Buffer.from(
    [
      `Received: from client.example.org (client.example.org [192.0.2.10]) by mx.example.net with ESMTP id Q0SA for <${a.to}>; Mon, 7 Dec 2026 10:00:00 +0000`,
      `From: Sender <${a.from}>`,
      `To: <${a.to}>`,
      `Subject: ${opts.subject ?? 'Lunch tomorrow'}`,
      'Date: Mon, 7 Dec 2026 10:00:00 +0000',
      'Message-ID: <spamassassin-test-1@example.org>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      ...(opts.extra ?? []),
      '',
      opts.body ?? 'Hello,\r\n\r\nshall we have lunch tomorrow at noon? Grüße.\r\n',
    ].join('\r\n'),
    'utf8',
  );
}

function ctxFor(message: FilterMessage, a: Addresses): FilterContext {
  return {
    client: {
      ip: '192.0.2.10',
      port: 40000,
      hostname: 'client.example.org',
      helo: 'client.example.org',
      tls: false,
      authUser: null,
      service: 'smtp',
      localAddress: '127.0.0.1',
      localPort: 25,
    },
    queueId: 'Q0SA',
    mailFrom: a.from,
    mailParams: new Map(),
    recipients: [a.to],
    message,
    facts: {},
  };
}

function filterFor(address: string, opts: Partial<SpamAssassinOptions> = {}): SpamAssassinFilter {
  return new SpamAssassinFilter({
    address,
    rejectScore: 10,
    user: null,
    timeoutMs: 30_000,
    onFailure: 'tempfail',
    dial,
    ...opts,
  });
}

const check = (f: SpamAssassinFilter, raw: Buffer | FilterMessage, a: Addresses = ASCII): Promise<Verdict> =>
  f.check('message', ctxFor(Buffer.isBuffer(raw) ? messageFrom(raw) : raw, a), AbortSignal.timeout(60_000));

const headerEdits = (v: Verdict) => ('actions' in v ? (v.actions?.headers ?? []) : []);

// ——— a fake spamd ———

interface Connection {
  readonly socket: Socket;
  received: Buffer;
  readonly closed: Promise<void>;
}

interface Fake {
  readonly address: string;
  readonly connections: Connection[];
  connection(): Promise<Connection>;
  close(): Promise<void>;
}

async function fakeSpamd(onData: (c: Connection) => void): Promise<Fake> {
  const connections: Connection[] = [];
  let waiting: ((c: Connection) => void) | null = null;
  // Half-open, as spamd is: our end of the request (a FIN) does not end its side of the connection.
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    const c: Connection = {
      socket,
      received: Buffer.alloc(0),
      closed: new Promise<void>((resolve) => socket.once('close', () => resolve())),
    };
    connections.push(c);
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      c.received = Buffer.concat([c.received, d]);
      onData(c);
    });
    waiting?.(c);
    waiting = null;
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(typeof address === 'object' && address !== null);
  return {
    address: `127.0.0.1:${address.port}`,
    connections,
    connection: () => new Promise<Connection>((resolve) => (waiting = resolve)),
    close: async () => {
      for (const c of connections) c.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The request head and the body so far, when the head is complete. */
function request(received: Buffer): { head: string; body: Buffer } | null {
  const end = received.indexOf('\r\n\r\n');
  if (end < 0) return null;
  return { head: received.subarray(0, end).toString('utf8'), body: received.subarray(end + 4) };
}

/** Answers `reply` once the whole message (by the request's Content-length) has come. */
const answering = (reply: string | Buffer) =>
  fakeSpamd((c) => {
    const r = request(c.received);
    const length = r === null ? NaN : Number(/Content-length: (\d+)/.exec(r.head)?.[1]);
    if (r !== null && r.body.length >= length && c.socket.writable) c.socket.end(reply);
  });

const HAM_REPLY =
  'SPAMD/1.1 0 EX_OK\r\nContent-length: 21\r\nSpam: False ; 1.2 / 5.0\r\n\r\nMISSING_MID,NO_RELAYS';

describe('SpamAssassin filter against a fake spamd', () => {
  for (const [label, a] of TWINS) {
    test(`${label}: SYMBOLS SPAMC/1.5, Content-length = message size, User, the message's exact octets`, async () => {
      const fake = await answering(HAM_REPLY);
      try {
        const raw = mail(a);
        const v = await check(filterFor(fake.address, { user: a.user }), messageFrom(raw, 7), a);
        const r = request(fake.connections[0]!.received)!;
        assert.equal(r.head, `SYMBOLS SPAMC/1.5\r\nContent-length: ${raw.length}\r\nUser: ${a.user}`);
        assert.ok(r.body.equals(raw));
        assert.equal(v.kind, 'score');
        if (v.kind === 'score') {
          assert.equal(v.score, 1.2);
          assert.match(v.reason, /score 1\.2 \/ 5\.0 \(MISSING_MID,NO_RELAYS\)/);
        }
        assert.deepEqual(headerEdits(v), [
          {
            op: 'add',
            name: 'X-Spam-Status',
            value: 'No, score=1.2 required=5.0 tests=MISSING_MID,NO_RELAYS',
          },
        ]);
      } finally {
        await fake.close();
      }
    });
  }

  test('no user configured: no User line; a user with a line break is a config error', async () => {
    const fake = await answering(HAM_REPLY);
    try {
      await check(filterFor(fake.address), mail(ASCII));
      assert.doesNotMatch(request(fake.connections[0]!.received)!.head, /User:/);
    } finally {
      await fake.close();
    }
    assert.throws(() => filterFor('127.0.0.1:1', { user: 'x\r\nUser: root' }), /cannot be sent/);
  });

  test('spam over spamd threshold, under reject_score: Junk, X-Spam-Flag YES; forged X-Spam fields removed', async () => {
    const fake = await answering(
      'SPAMD/1.1 0 EX_OK\r\nContent-length: 14\r\nSpam: True ; 7.3 / 5.0\r\n\r\nTERN_TEST_SPAM',
    );
    try {
      const raw = mail(UTF8, {
        extra: ['X-Spam-Flag: NO', 'X-Spam-Status: No, score=-100', 'X-Spam-Flag: NO'],
      });
      const v = await check(filterFor(fake.address), raw, UTF8);
      assert.equal(v.kind, 'quarantine');
      assert.deepEqual(headerEdits(v), [
        { op: 'change', name: 'X-Spam-Flag', occurrence: 2, value: null },
        { op: 'change', name: 'X-Spam-Flag', occurrence: 1, value: null },
        { op: 'change', name: 'X-Spam-Status', occurrence: 1, value: null },
        { op: 'add', name: 'X-Spam-Flag', value: 'YES' },
        { op: 'add', name: 'X-Spam-Status', value: 'Yes, score=7.3 required=5.0 tests=TERN_TEST_SPAM' },
      ]);
    } finally {
      await fake.close();
    }
  });

  test('verdicts: at reject_score refused 554 5.7.1 with the score; just under is Junk; ham with no tests', () => {
    const at = spamassassinVerdict({ isSpam: true, score: 10, threshold: 5, tests: ['X'] }, 10, []);
    assert.equal(at.kind, 'reject');
    if (at.kind === 'reject') {
      assert.deepEqual([at.reply.code, at.reply.enhanced], [554, '5.7.1']);
      assert.match(at.reply.text, /score 10\.0/);
    }
    assert.equal(
      spamassassinVerdict({ isSpam: true, score: 9.9, threshold: 5, tests: [] }, 10, []).kind,
      'quarantine',
    );
    const ham = spamassassinVerdict({ isSpam: false, score: -0.5, threshold: 5, tests: [] }, 10, []);
    assert.deepEqual(headerEdits(ham), [
      { op: 'add', name: 'X-Spam-Status', value: 'No, score=-0.5 required=5.0 tests=none' },
    ]);
    // A reject score under spamd's own threshold refuses what spamd calls ham, as configured.
    assert.equal(
      spamassassinVerdict({ isSpam: false, score: 4, threshold: 5, tests: [] }, 3, []).kind,
      'reject',
    );
    // A long list of tests is cut, so that the field stays under 998 octets.
    const many = Array.from({ length: 200 }, (_, i) => `RULE_NUMBER_${i}`);
    const status = headerEdits(
      spamassassinVerdict({ isSpam: false, score: 1, threshold: 5, tests: many }, 10, []),
    );
    const value = status[0]?.op === 'add' ? status[0].value : '';
    assert.ok(value.length < 900, String(value.length));
    assert.match(value, /,\.\.\.$/);
  });

  const failures: [string, string | Buffer, RegExp][] = [
    ['EX_TEMPFAIL', 'SPAMD/1.1 75 EX_TEMPFAIL\r\n', /EX_TEMPFAIL \(75\)/],
    ['EX_NOUSER', 'SPAMD/1.1 67 EX_NOUSER\r\n', /EX_NOUSER \(67\)/],
    ['garbage', Buffer.from([0, 1, 2, 0xff, 13, 10]), /not a spamd status line/],
    ['an HTTP answer', 'HTTP/1.1 400 Bad Request\r\n\r\n', /not a spamd status line/],
    ['a reply without a Spam line', 'SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n', /no Spam header/],
    [
      'a truncated reply',
      'SPAMD/1.1 0 EX_OK\r\nContent-length: 50\r\nSpam: True ; 9 / 5\r\n\r\nA,B',
      /closed within the body/,
    ],
    [
      'an oversize reply',
      `SPAMD/1.1 0 EX_OK\r\nSpam: True ; 9 / 5\r\n\r\n${'A,'.repeat(40_000)}`,
      /longer than 65536/,
    ],
    ['a close without a word', '', /closed within the status line/],
  ];
  for (const [what, reply, error] of failures) {
    test(`${what}: the check throws, so the pipeline applies on_failure`, async () => {
      const fake = await answering(reply);
      try {
        await assert.rejects(check(filterFor(fake.address), mail(ASCII)), error);
        for (const onFailure of ['tempfail', 'accept'] as const) {
          const f = filterFor(fake.address, { onFailure, timeoutMs: 5_000 });
          const outcome = await runFilter(f, f, 'message', ctxFor(messageFrom(mail(UTF8)), UTF8));
          assert.equal(outcome.verdict.kind, onFailure === 'tempfail' ? 'defer' : 'accept');
          assert.match(outcome.failed ?? '', error);
        }
      } finally {
        await fake.close();
      }
    });
  }

  test('spamd refuses the request before the message is sent and closes: its EX_ code is the error, not EPIPE', async () => {
    const fake = await fakeSpamd((c) => {
      if (request(c.received) !== null && c.socket.writable) {
        c.socket.end('SPAMD/1.0 76 Bad header line: (Content-length mismatch)\r\n');
        c.socket.destroySoon();
      }
    });
    try {
      const big = mail(ASCII, { body: 'x'.repeat(76) + '\r\n'.repeat(1) + 'y\r\n'.repeat(400_000) });
      const message = messageFrom(big, 64 * 1024);
      await assert.rejects(
        check(filterFor(fake.address, { maxScanBytes: 64 * 1024 * 1024 }), message),
        /EX_PROTOCOL \(76\)/,
      );
      assert.equal(message.returned, 1, 'the message reader is closed');
    } finally {
      await fake.close();
    }
  });

  test('a spamd that never answers: the timeout aborts and closes the socket; the pipeline defers', async () => {
    const fake = await fakeSpamd(() => {});
    const streams: Duplex[] = [];
    const recording: Dial = async (address, signal) => {
      const stream = await dial(address, signal);
      streams.push(stream);
      return stream;
    };
    try {
      const controller = new AbortController();
      const raw = mail(UTF8);
      const checking = filterFor(fake.address, { dial: recording }).check(
        'message',
        ctxFor(messageFrom(raw), UTF8),
        controller.signal,
      );
      const conn = fake.connections[0] ?? (await fake.connection());
      // The whole message first, so that the abort meets a check waiting for the reply.
      while ((request(conn.received)?.body.length ?? -1) < raw.length) await once(conn.socket, 'data');
      assert.equal(streams[0]!.destroyed, false);
      controller.abort(new Error('spamassassin: timed out'));
      await assert.rejects(checking, /spamassassin: timed out/);
      assert.equal(streams[0]!.destroyed, true);

      const f = filterFor(fake.address, { timeoutMs: 300, dial: recording });
      const started = performance.now();
      const outcome = await runFilter(f, f, 'message', ctxFor(messageFrom(mail(ASCII)), ASCII));
      assert.ok(performance.now() - started < 5_000);
      assert.equal(outcome.failed, 'no answer within 300 ms');
      assert.equal(outcome.verdict.kind, 'defer');
      assert.equal(streams.length, 2);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(streams[1]!.destroyed, true);
    } finally {
      await fake.close();
    }
  });

  test('a message whose read() yields more or fewer octets than its size is an error', async () => {
    const fake = await answering(HAM_REPLY);
    try {
      const raw = mail(ASCII);
      await assert.rejects(
        check(filterFor(fake.address), { ...messageFrom(raw), sizeBytes: raw.length - 1 }),
        /longer than its size/,
      );
      await assert.rejects(
        check(filterFor(fake.address), { ...messageFrom(raw), sizeBytes: raw.length + 1 }),
        /shorter/,
      );
    } finally {
      await fake.close();
    }
  });

  test('spamd not listening: the check throws', async () => {
    const fake = await fakeSpamd(() => {});
    const address = fake.address;
    await fake.close();
    await assert.rejects(check(filterFor(address), mail(ASCII)), /ECONNREFUSED/);
  });
});

describe('SpamAssassin filter against Debian spamd', { skip: SPAMD_SKIP }, () => {
  let spamd: Spamd;
  before(async () => {
    spamd = await startSpamd();
  });
  after(async () => {
    await spamd?.stop();
  });

  for (const [label, a] of TWINS) {
    test(`${label}: GTUBE scores over 1000 and is refused with 554 5.7.1`, async () => {
      const v = await check(
        filterFor(spamd.address),
        mail(a, { body: `Hello\r\n\r\n${SPAMD_GTUBE}\r\n` }),
        a,
      );
      assert.equal(v.kind, 'reject', JSON.stringify(v));
      if (v.kind === 'reject') {
        assert.deepEqual([v.reply.code, v.reply.enhanced], [554, '5.7.1']);
        assert.match(v.reply.text, /^Message rejected as spam \(score 100\d\.\d\)$/);
        assert.match(v.reason, /GTUBE/);
      }
    });

    test(`${label}: a clean message is scored, X-Spam-Status: No (User ${a.user})`, async () => {
      const v = await check(filterFor(spamd.address, { user: a.user }), mail(a), a);
      assert.equal(v.kind, 'score', JSON.stringify(v));
      if (v.kind === 'score') assert.ok(v.score < 5, String(v.score));
      const edits = headerEdits(v);
      assert.equal(edits.length, 1);
      assert.equal(edits[0]?.op, 'add');
      if (edits[0]?.op === 'add') {
        assert.equal(edits[0].name, 'X-Spam-Status');
        assert.match(edits[0].value, /^No, score=-?\d+\.\d required=5\.0 tests=\S+$/);
      }
    });

    test(`${label}: a marker rule scoring 7 (over 5, under 10) is filed in Junk with X-Spam-Flag: YES`, async () => {
      const v = await check(
        filterFor(spamd.address),
        mail(a, { body: `Hello\r\n\r\n${SPAMD_MARKER}\r\n` }),
        a,
      );
      assert.equal(v.kind, 'quarantine', JSON.stringify(v));
      const edits = headerEdits(v);
      assert.deepEqual(edits[0], { op: 'add', name: 'X-Spam-Flag', value: 'YES' });
      assert.equal(edits[1]?.op, 'add');
      if (edits[1]?.op === 'add')
        assert.match(edits[1].value, /^Yes, score=\d+\.\d required=5\.0 tests=.*TERN_TEST_SPAM/);
    });
  }

  test('reject_score lower than the marker: the same message is refused', async () => {
    const v = await check(
      filterFor(spamd.address, { rejectScore: 6 }),
      mail(ASCII, { body: `${SPAMD_MARKER}\r\n` }),
    );
    assert.equal(v.kind, 'reject');
  });

  test('spamd stopped: the check throws; the pipeline defers (tempfail) or accepts (accept)', async () => {
    const own = await startSpamd();
    const address = own.address;
    assert.equal((await check(filterFor(address), mail(ASCII))).kind, 'score');
    await own.stop();
    await assert.rejects(check(filterFor(address), mail(ASCII)), /ECONNREFUSED/);
    for (const onFailure of ['tempfail', 'accept'] as const) {
      const f = filterFor(address, { onFailure });
      const outcome = await runFilter(f, f, 'message', ctxFor(messageFrom(mail(UTF8)), UTF8));
      assert.equal(outcome.verdict.kind, onFailure === 'tempfail' ? 'defer' : 'accept');
    }
  });
});

describe('spamassassin: max_scan_bytes', () => {
  test('a message over it is accepted unscanned and spamd is never dialled', async () => {
    let dialled = 0;
    const f = filterFor('127.0.0.1:1', {
      maxScanBytes: 1024,
      dial: (address, signal) => {
        dialled++;
        return dial(address, signal);
      },
    });
    const v = await check(f, Buffer.from(`Subject: big\r\n\r\n${'x'.repeat(2000)}\r\n`));
    assert.equal(v.kind, 'accept');
    assert.match(
      v.kind === 'accept' ? (v.reason ?? '') : '',
      /not scanned: \d+ octets is more than max_scan_bytes/,
    );
    assert.equal(dialled, 0);
  });
});
