// The rspamd filter over real sockets: a fake rspamd (a loopback TCP server speaking HTTP/1.1 by hand)
// for the request on the wire, each action, and the failures (bad JSON, a 500, silence, an answer over
// 1 MiB, an early answer), and Debian's real rspamd (test/filters/daemons/rspamd.ts) for what it
// actually answers: GTUBE refused with its message, a clean message scored with the headers it adds,
// add header / rewrite subject / greylist / reject by marker rules, UTF-8 envelopes, a stopped rspamd.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { dial } from '../../src/net/dial.ts';
import { decodeEncodedWords } from '../../src/protocol/headers.ts';
import {
  runFilter,
  type Dial,
  type FilterContext,
  type FilterMessage,
  type HeaderEdit,
  type Verdict,
} from '../../src/policy/filters/filter.ts';
import { RspamdFilter, type RspamdOptions } from '../../src/policy/filters/rspamd.ts';
import { MARKERS, RSPAMD_GTUBE, RSPAMD_SKIP, startRspamd, type Rspamd } from './daemons/rspamd.ts';
import { messageFrom } from './fixtures.ts';

const ASCII = { from: 'sender@example.org', to: 'rcpt@example.net', user: 'mail' } as const;
const UTF8 = { from: 'jürgen@example.org', to: '日本@example.net', user: 'jürgen' } as const;
const TWINS = [
  ['ASCII', ASCII],
  ['UTF-8', UTF8],
] as const;
type Addresses = { readonly from: string; readonly to: string; readonly user: string };

function mail(a: Addresses, opts: { subject?: string; body?: string } = {}): Buffer {
  return Buffer.from(
    [
      `Received: from client.example.org (client.example.org [192.0.2.10]) by mx.example.net with ESMTP id Q0RS for <${a.to}>; Mon, 7 Dec 2026 10:00:00 +0000`,
      `From: Sender <${a.from}>`,
      `To: <${a.to}>`,
      `Subject: ${opts.subject ?? 'Lunch tomorrow'}`,
      'Date: Mon, 7 Dec 2026 10:00:00 +0000',
      'Message-ID: <rspamd-test-1@example.org>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      opts.body ?? 'Hello,\r\n\r\nshall we have lunch tomorrow at noon? Grüße.\r\n',
    ].join('\r\n'),
    'utf8',
  );
}

function ctxFor(message: FilterMessage, a: Addresses, authUser: string | null = null): FilterContext {
  return {
    client: {
      ip: '192.0.2.10',
      port: 40000,
      hostname: 'client.example.org',
      helo: 'client.example.org',
      tls: false,
      authUser,
      service: 'smtp',
      localAddress: '127.0.0.1',
      localPort: 25,
    },
    queueId: 'Q0RS',
    mailFrom: a.from,
    mailParams: new Map(),
    recipients: [a.to],
    message,
    facts: {},
  };
}

function filterFor(url: string, opts: Partial<RspamdOptions> = {}): RspamdFilter {
  return new RspamdFilter({
    url,
    password: null,
    junkOnAddHeader: true,
    timeoutMs: 30_000,
    onFailure: 'tempfail',
    dial,
    ...opts,
  });
}

const check = (f: RspamdFilter, raw: Buffer | FilterMessage, a: Addresses = ASCII): Promise<Verdict> =>
  f.check('message', ctxFor(Buffer.isBuffer(raw) ? messageFrom(raw) : raw, a), AbortSignal.timeout(60_000));

const edits = (v: Verdict): readonly HeaderEdit[] => ('actions' in v ? (v.actions?.headers ?? []) : []);
const added = (v: Verdict, name: string): string | undefined => {
  const e = edits(v).find((h) => h.op === 'add' && h.name === name);
  return e?.op === 'add' ? e.value : undefined;
};

// ——— a fake rspamd ———

interface Connection {
  readonly socket: Socket;
  received: Buffer;
  readonly closed: Promise<void>;
}

interface Fake {
  readonly url: string;
  readonly connections: Connection[];
  connection(): Promise<Connection>;
  close(): Promise<void>;
}

async function fakeRspamd(onData: (c: Connection) => void): Promise<Fake> {
  const connections: Connection[] = [];
  let waiting: ((c: Connection) => void) | null = null;
  const server: Server = createServer((socket) => {
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
    url: `http://127.0.0.1:${address.port}`,
    connections,
    connection: () => new Promise<Connection>((resolve) => (waiting = resolve)),
    close: async () => {
      for (const c of connections) c.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The request line, its headers (in order) and the body so far, once the head is complete. */
function request(received: Buffer): { line: string; headers: [string, string][]; body: Buffer } | null {
  const end = received.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [line, ...rest] = received.subarray(0, end).toString('utf8').split('\r\n');
  const headers = rest.map((h): [string, string] => [
    h.slice(0, h.indexOf(':')),
    h.slice(h.indexOf(':') + 2),
  ]);
  return { line: line!, headers, body: received.subarray(end + 4) };
}

const complete = (c: Connection): boolean => {
  const r = request(c.received);
  const length = Number(r?.headers.find(([n]) => n === 'Content-Length')?.[1] ?? NaN);
  return r !== null && r.body.length >= length;
};

const http = (status: string, body: string | Buffer, extra: string[] = []): Buffer => {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const head = [`HTTP/1.1 ${status}`, 'Connection: close', ...extra, `Content-Length: ${b.length}`, '', ''];
  return Buffer.concat([Buffer.from(head.join('\r\n'), 'latin1'), b]);
};

/** Answers once the whole request has come. */
const answering = (answer: Buffer | string) =>
  fakeRspamd((c) => {
    if (complete(c) && c.socket.writable) c.socket.end(answer);
  });

const json = (o: Record<string, unknown>) =>
  http('200 OK', JSON.stringify(o), ['Content-Type: application/json']);

describe('rspamd filter against a fake rspamd', () => {
  for (const [label, a] of TWINS) {
    test(`${label}: POST /checkv2, the protocol headers, Content-Length = size, the message's exact octets`, async () => {
      const fake = await answering(json({ action: 'no action', score: 0.5, required_score: 15 }));
      try {
        const raw = mail(a);
        const f = filterFor(fake.url, { password: 'pw' });
        const v = await f.check(
          'message',
          ctxFor(messageFrom(raw, 7), a, a.user),
          AbortSignal.timeout(10_000),
        );
        const r = request(fake.connections[0]!.received)!;
        assert.equal(r.line, 'POST /checkv2 HTTP/1.1');
        const port = new URL(fake.url).port;
        const expected: [string, string][] = [
          ['Host', `127.0.0.1:${port}`],
          ['Content-Length', String(raw.length)],
          ['Connection', 'close'],
          ['IP', '192.0.2.10'],
          ['Helo', 'client.example.org'],
          ['Hostname', 'client.example.org'],
          // rspamd 3.4 cannot parse a UTF-8 local part: those addresses are left out.
          ...(a === ASCII
            ? ([
                ['From', a.from],
                ['Rcpt', a.to],
              ] as [string, string][])
            : []),
          ['Queue-Id', 'Q0RS'],
          ['User', a.user],
          ['Password', 'pw'],
        ];
        assert.deepEqual(r.headers, expected);
        assert.ok(r.body.equals(raw));
        assert.equal(v.kind, 'score');
        assert.equal(added(v, 'X-Rspamd-Action'), 'no action, score=0.50 required=15.00');
      } finally {
        await fake.close();
      }
    });
  }

  const actions: [string, Record<string, unknown>, (v: Verdict) => void][] = [
    [
      'reject',
      {
        action: 'reject',
        score: 20,
        required_score: 15,
        messages: { smtp_message: 'Spam message rejected' },
      },
      (v) =>
        assert.ok(v.kind === 'reject' && v.reply.code === 554 && v.reply.text === 'Spam message rejected'),
    ],
    [
      'soft reject',
      { action: 'soft reject', score: 3, required_score: 15, messages: { smtp_message: 'Try again later' } },
      (v) => assert.ok(v.kind === 'defer' && v.reply.code === 451 && v.reply.enhanced === '4.7.1'),
    ],
    [
      'greylist (greylisted)',
      {
        action: 'greylist',
        score: 5,
        symbols: { GREYLIST: { name: 'GREYLIST', score: 0, options: ['greylisted'] } },
      },
      (v) => assert.ok(v.kind === 'defer' && v.reply.code === 451 && /greylisted/i.test(v.reply.text)),
    ],
    ['greylist (only a score)', { action: 'greylist', score: 5 }, (v) => assert.equal(v.kind, 'score')],
    [
      'add header',
      { action: 'add header', score: 8, required_score: 15 },
      (v) => {
        assert.equal(v.kind, 'quarantine');
        assert.equal(added(v, 'X-Spam'), 'Yes');
      },
    ],
    [
      'rewrite subject',
      { action: 'rewrite subject', score: 12, subject: '[SPAM] Lunch tomorrow' },
      (v) => {
        assert.equal(v.kind, 'quarantine');
        assert.ok(
          edits(v).some(
            (e) =>
              e.op === 'change' &&
              e.name === 'Subject' &&
              e.occurrence === 1 &&
              e.value === '[SPAM] Lunch tomorrow',
          ),
        );
      },
    ],
    [
      'no action',
      { action: 'no action', score: -1, required_score: 15 },
      (v) => assert.ok(v.kind === 'score' && v.score === -1),
    ],
    ['discard', { action: 'discard', score: 30 }, (v) => assert.equal(v.kind, 'discard')],
  ];
  for (const [action, answer, expect] of actions) {
    test(`action ${action}`, async () => {
      const fake = await answering(json(answer));
      try {
        for (const [, a] of TWINS) expect(await check(filterFor(fake.url), mail(a), a));
      } finally {
        await fake.close();
      }
    });
  }

  test('a chunked answer is read whole', async () => {
    const body = JSON.stringify({ action: 'add header', score: 7, required_score: 15 });
    const wire =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
      `${(10).toString(16)}\r\n${body.slice(0, 10)}\r\n${(body.length - 10).toString(16)}\r\n${body.slice(10)}\r\n0\r\n\r\n`;
    const fake = await answering(wire);
    try {
      assert.equal((await check(filterFor(fake.url), mail(UTF8), UTF8)).kind, 'quarantine');
    } finally {
      await fake.close();
    }
  });

  const failures: [string, Buffer | string, RegExp][] = [
    ['bad JSON', http('200 OK', '{"action": "reject", "sc'), /not JSON/],
    ['an unknown action', json({ action: 'explode', score: 1 }), /unknown action "explode"/],
    [
      "a 500 with rspamd's error",
      http('500 Internal Server Error', '{"error":"task timeout"}'),
      /500 Internal Server Error: task timeout/,
    ],
    ['a 400 with a text body', http('400 Bad Request', 'bad request'), /400 Bad Request: bad request$/],
    [
      'an answer over 1 MiB (Content-Length)',
      http('200 OK', Buffer.alloc(2 * 1024 * 1024, 0x20)),
      /over 1048576/,
    ],
    ['garbage', Buffer.from([0, 1, 2, 3, 13, 10, 13, 10]), /not an HTTP\/1\.1 status line/],
    [
      'an answer cut short',
      http('200 OK', '{"action":"reject","score":20}').subarray(0, -5),
      /closed within the body/,
    ],
    ['a close without a word', '', /closed within the response head/],
  ];
  for (const [what, answer, error] of failures) {
    test(`${what}: the check throws, so the pipeline applies on_failure`, async () => {
      const fake = await answering(answer);
      try {
        await assert.rejects(check(filterFor(fake.url), mail(ASCII)), error);
        for (const onFailure of ['tempfail', 'accept'] as const) {
          const f = filterFor(fake.url, { onFailure, timeoutMs: 5_000 });
          const outcome = await runFilter(f, f, 'message', ctxFor(messageFrom(mail(UTF8)), UTF8));
          assert.equal(outcome.verdict.kind, onFailure === 'tempfail' ? 'defer' : 'accept');
          assert.match(outcome.failed ?? '', error);
        }
      } finally {
        await fake.close();
      }
    });
  }

  test('a huge answer without a length (to the close) stops being read at the bound', async () => {
    const fake = await fakeRspamd((c) => {
      if (!complete(c) || !c.socket.writable) return;
      c.socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n');
      const junk = Buffer.alloc(64 * 1024, 0x41);
      // Endless, as far as the client is concerned: write until the socket is closed on us.
      const pump = (): void => {
        while (!c.socket.destroyed && c.socket.write(junk));
        if (!c.socket.destroyed) c.socket.once('drain', pump);
      };
      pump();
    });
    try {
      await assert.rejects(check(filterFor(fake.url), mail(ASCII)), /over 1048576/);
      await fake.connections[0]!.closed;
    } finally {
      await fake.close();
    }
  });

  test('an answer before the message is all sent (413, then close): the status is the error, not EPIPE', async () => {
    const fake = await fakeRspamd((c) => {
      if (request(c.received) !== null && c.socket.writable) {
        c.socket.end(http('413 Payload Too Large', '{"error":"message too large"}'));
        c.socket.destroySoon();
      }
    });
    try {
      const big = mail(ASCII, { body: 'line of a long body\r\n'.repeat(300_000) });
      const message = messageFrom(big, 64 * 1024);
      await assert.rejects(check(filterFor(fake.url), message), /413 Payload Too Large: message too large/);
      assert.equal(message.returned, 1, 'the message reader is closed');
    } finally {
      await fake.close();
    }
  });

  test('an rspamd that never answers: the abort closes the socket; through runFilter the timeout defers', async () => {
    const fake = await fakeRspamd(() => {});
    const streams: Duplex[] = [];
    const recording: Dial = async (address, signal) => {
      const stream = await dial(address, signal);
      streams.push(stream);
      return stream;
    };
    try {
      const controller = new AbortController();
      const checking = filterFor(fake.url, { dial: recording }).check(
        'message',
        ctxFor(messageFrom(mail(UTF8)), UTF8),
        controller.signal,
      );
      const conn = fake.connections[0] ?? (await fake.connection());
      while (!complete(conn)) await once(conn.socket, 'data');
      assert.equal(streams[0]!.destroyed, false);
      controller.abort(new Error('rspamd: timed out'));
      await assert.rejects(checking, /rspamd: timed out/);
      assert.equal(streams[0]!.destroyed, true);
      await conn.closed;

      for (const onFailure of ['tempfail', 'accept'] as const) {
        const f = filterFor(fake.url, { timeoutMs: 300, onFailure, dial: recording });
        const started = performance.now();
        const outcome = await runFilter(f, f, 'message', ctxFor(messageFrom(mail(ASCII)), ASCII));
        assert.ok(performance.now() - started < 5_000);
        assert.equal(outcome.failed, 'no answer within 300 ms');
        assert.equal(outcome.verdict.kind, onFailure === 'tempfail' ? 'defer' : 'accept');
      }
      await Promise.all(fake.connections.map((c) => c.closed));
      assert.ok(streams.every((s) => s.destroyed));
    } finally {
      await fake.close();
    }
  });

  test('a bad URL or password is a config error at construction', () => {
    assert.throws(() => filterFor('https://127.0.0.1:11333'), /not a URL like/);
    assert.throws(() => filterFor('http://127.0.0.1:11333', { password: 'a\r\nb' }), /password/);
  });

  test('rspamd not listening: the check throws', async () => {
    const fake = await fakeRspamd(() => {});
    const url = fake.url;
    await fake.close();
    await assert.rejects(check(filterFor(url), mail(ASCII)), /ECONNREFUSED/);
  });
});

describe('rspamd filter against Debian rspamd', { skip: RSPAMD_SKIP }, () => {
  let rspamd: Rspamd;
  before(async () => {
    rspamd = await startRspamd();
  });
  after(async () => {
    await rspamd?.stop();
  });

  for (const [label, a] of TWINS) {
    test(`${label}: GTUBE is refused 554 5.7.1 with rspamd's message`, async () => {
      const v = await check(filterFor(rspamd.url), mail(a, { body: `Hello\r\n\r\n${RSPAMD_GTUBE}\r\n` }), a);
      assert.equal(v.kind, 'reject', JSON.stringify(v));
      if (v.kind === 'reject') {
        assert.deepEqual([v.reply.code, v.reply.enhanced, v.reply.text], [554, '5.7.1', 'Gtube pattern']);
        assert.match(v.reason, /^rspamd: reject, score 15\.00 \/ 15\.00 \[GTUBE\(0\.00\)\]/);
      }
    });

    test(`${label}: a clean message is scored, with the headers rspamd adds (no BROKEN_HEADERS)`, async () => {
      const v = await check(filterFor(rspamd.url), mail(a), a);
      assert.equal(v.kind, 'score', JSON.stringify(v));
      if (v.kind === 'score') assert.ok(v.score < 4, String(v.score));
      assert.doesNotMatch(v.kind === 'score' ? v.reason : '', /BROKEN_HEADERS/);
      assert.match(added(v, 'X-Spamd-Result') ?? '', /^default: False \[-?\d+\.\d\d \/ 15\.00\];/);
      assert.doesNotMatch(added(v, 'X-Spamd-Result') ?? '', /[\r\n]/);
      assert.equal(added(v, 'X-Rspamd-Queue-Id'), 'Q0RS');
      assert.match(added(v, 'X-Spam-Status') ?? '', /^No, score=-?\d+\.\d\d$/);
      assert.equal(added(v, 'X-Spam'), undefined);
      assert.equal(added(v, 'X-Rspamd-Action'), undefined, 'rspamd added headers: none of ours');
    });

    test(`${label}: add header (score 8) is filed in Junk with X-Spam: Yes`, async () => {
      const v = await check(filterFor(rspamd.url), mail(a, { body: `Offer ${MARKERS.addHeader}\r\n` }), a);
      assert.equal(v.kind, 'quarantine', JSON.stringify(v));
      assert.equal(added(v, 'X-Spam'), 'Yes');
      assert.match(added(v, 'X-Spam-Status') ?? '', /^Yes, score=/);
      assert.match(
        v.kind === 'quarantine' ? v.reason : '',
        /^rspamd: add header, score \d+\.\d\d \/ 15\.00 \[TERN_TEST_ADD_HEADER\(8\.00\)/,
      );
      const scored = await check(
        filterFor(rspamd.url, { junkOnAddHeader: false }),
        mail(a, { body: `${MARKERS.addHeader}\r\n` }),
        a,
      );
      assert.equal(scored.kind, 'score');
    });

    test(`${label}: rewrite subject (score 12) changes the Subject as rspamd says`, async () => {
      const v = await check(
        filterFor(rspamd.url),
        mail(a, { subject: 'Grüße', body: `${MARKERS.rewriteSubject}\r\n` }),
        a,
      );
      assert.equal(v.kind, 'quarantine', JSON.stringify(v));
      const subject = edits(v).find((e) => e.op === 'change' && e.name === 'Subject');
      assert.ok(subject?.op === 'change' && subject.occurrence === 1 && subject.value !== null);
      // rspamd sends a non-ASCII subject as an RFC 2047 encoded-word.
      assert.equal(decodeEncodedWords(subject.value), '***SPAM*** Grüße');
    });

    test(`${label}: a score over the greylist threshold without rspamd's greylist module is a score, not a defer`, async () => {
      const v = await check(filterFor(rspamd.url), mail(a, { body: `${MARKERS.greylist}\r\n` }), a);
      assert.equal(v.kind, 'score', JSON.stringify(v));
      assert.match(v.kind === 'score' ? v.reason : '', /^rspamd: greylist, .*\(no greylisting\)$/);
    });

    test(`${label}: a score over reject (20) is refused naming the score`, async () => {
      const v = await check(filterFor(rspamd.url), mail(a, { body: `${MARKERS.reject}\r\n` }), a);
      assert.equal(v.kind, 'reject', JSON.stringify(v));
      if (v.kind === 'reject') assert.match(v.reply.text, /^Message rejected as spam \(score \d+\.\d\d\)$/);
    });
  }

  test('a 3 MiB message is streamed and scored', async () => {
    const body = 'A long line of an ordinary newsletter, nothing special about it at all.\r\n'.repeat(45_000);
    const raw = mail(ASCII, { body });
    assert.ok(raw.length > 3 * 1024 * 1024);
    const v = await check(filterFor(rspamd.url), messageFrom(raw, 64 * 1024));
    assert.ok(v.kind === 'score' || v.kind === 'quarantine', JSON.stringify(v));
  });

  test('rspamd stopped: the check throws; the pipeline defers (tempfail) or accepts (accept)', async () => {
    const own = await startRspamd();
    const url = own.url;
    assert.equal((await check(filterFor(url), mail(ASCII))).kind, 'score');
    await own.stop();
    await assert.rejects(check(filterFor(url), mail(ASCII)), /ECONNREFUSED/);
    for (const onFailure of ['tempfail', 'accept'] as const) {
      const f = filterFor(url, { onFailure });
      const outcome = await runFilter(f, f, 'message', ctxFor(messageFrom(mail(UTF8)), UTF8));
      assert.equal(outcome.verdict.kind, onFailure === 'tempfail' ? 'defer' : 'accept');
    }
  });
});
