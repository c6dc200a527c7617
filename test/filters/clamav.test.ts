// The ClamAV filter over real sockets: a fake clamd on loopback for framing, every answer form and the
// failures (silence, a close mid-stream, backpressure), and Debian's real clamd (test/filters/daemons/
// clamd.ts) for what it actually answers: the EICAR file attached in base64, a clean message, a message
// over StreamMaxLength, a stopped clamd, and a 20 MiB message streamed without growing memory.

import { messageFrom as messageOf } from './fixtures.ts';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { dial } from '../../src/net/dial.ts';
import { ClamavFilter, type ClamavOptions } from '../../src/policy/filters/clamav.ts';
import {
  runFilter,
  type FilterContext,
  type FilterMessage,
  type Verdict,
} from '../../src/policy/filters/filter.ts';
import { CLAMD_SKIP, EICAR_SIGNATURE, eicar, startClamd, type Clamd } from './daemons/clamd.ts';

const messageFrom = (raw: Buffer, pieceBytes = 10_000) => messageOf(raw, pieceBytes);

const ASCII = { from: 'sender@example.org', to: 'rcpt@example.net' } as const;
const UTF8 = { from: 'jürgen@example.org', to: '日本@example.net' } as const;
const TWINS = [
  ['ASCII', ASCII],
  ['UTF-8', UTF8],
] as const;

/**
 * A message of `totalBytes` made up as it is read, in fresh 64 KiB buffers (as a spool file's reads
 * are), so holding it whole would show in memory. `yielded` counts the octets handed out so far.
 */
function generatedMessage(
  totalBytes: number,
  addresses: { from: string; to: string },
): FilterMessage & { yielded: number; finished: boolean; returned: boolean } {
  const head = Buffer.from(
    `From: <${addresses.from}>\r\nTo: <${addresses.to}>\r\nSubject: big\r\n` +
      'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n',
    'utf8',
  );
  const m = {
    headers: [
      { name: 'From', value: `<${addresses.from}>`, raw: ` <${addresses.from}>` },
      { name: 'Subject', value: 'big', raw: ' big' },
    ],
    fromAddresses: [addresses.from],
    sizeBytes: totalBytes,
    yielded: 0,
    finished: false,
    returned: false,
    async *read(): AsyncIterable<Uint8Array> {
      m.yielded = 0;
      try {
        m.yielded += head.length;
        yield head;
        let line = 0;
        while (m.yielded < totalBytes) {
          const size = Math.min(65536, totalBytes - m.yielded);
          const chunk = Buffer.alloc(size);
          // Text lines that differ from chunk to chunk (76 octets and CRLF), as a long body would.
          for (let at = 0; at < size; at += 78) {
            chunk.write(`line ${line++} of the body `.padEnd(76, 'abcdefghij').slice(0, 76), at, 'utf8');
            if (at + 77 < size) chunk.write('\r\n', at + 76, 'utf8');
          }
          m.yielded += size;
          await Promise.resolve();
          yield chunk;
        }
        m.finished = true;
      } finally {
        m.returned = true;
      }
    },
  };
  return m;
}

function mail(opts: {
  from: string;
  to: string;
  subject: string;
  body?: string;
  attachment?: { name: string; content: string };
}): Buffer {
  const head = [
    `From: <${opts.from}>`,
    `To: <${opts.to}>`,
    `Subject: ${opts.subject}`,
    'Message-ID: <clamav-test@example.org>',
    'MIME-Version: 1.0',
  ];
  const body = opts.body ?? 'Hello,\r\n\r\nnothing to see here.\r\n';
  if (opts.attachment === undefined)
    return Buffer.from([...head, 'Content-Type: text/plain; charset=utf-8', '', body].join('\r\n'), 'utf8');
  const b64 = (
    Buffer.from(opts.attachment.content, 'utf8')
      .toString('base64')
      .match(/.{1,76}/g) ?? []
  ).join('\r\n');
  return Buffer.from(
    [
      ...head,
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      body,
      '--b1',
      `Content-Type: application/octet-stream; name="${opts.attachment.name}"`,
      `Content-Disposition: attachment; filename="${opts.attachment.name}"`,
      'Content-Transfer-Encoding: base64',
      '',
      b64,
      '--b1--',
      '',
    ].join('\r\n'),
    'utf8',
  );
}

function ctxFor(message: FilterMessage, addresses: { from: string; to: string }): FilterContext {
  return {
    client: {
      ip: '127.0.0.1',
      port: 40000,
      hostname: null,
      helo: 'client.example.org',
      tls: false,
      authUser: null,
      service: 'smtp',
      localAddress: '127.0.0.1',
      localPort: 25,
    },
    queueId: 'Q0CLAMAV',
    mailFrom: addresses.from,
    mailParams: new Map(),
    recipients: [addresses.to],
    message,
    facts: {},
  };
}

function filterFor(address: string, opts: Partial<ClamavOptions> = {}): ClamavFilter {
  return new ClamavFilter({ address, timeoutMs: 30_000, onFailure: 'tempfail', dial, ...opts });
}

const scan = (
  f: ClamavFilter,
  raw: Buffer | FilterMessage,
  addresses: { from: string; to: string } = ASCII,
) =>
  f.check(
    'message',
    ctxFor(Buffer.isBuffer(raw) ? messageFrom(raw) : raw, addresses),
    AbortSignal.timeout(60_000),
  );

// ——— a fake clamd ———

interface Connection {
  readonly socket: Socket;
  received: Buffer;
  readonly closed: Promise<void>;
}

interface Fake {
  readonly address: string;
  readonly connections: Connection[];
  /** The next connection, once made. */
  connection(): Promise<Connection>;
  close(): Promise<void>;
}

/** A loopback server; `onData` sees each connection's bytes so far after every read. */
async function fakeClamd(
  onData: (c: Connection) => void,
  onConnect: (c: Connection) => void = () => {},
): Promise<Fake> {
  const connections: Connection[] = [];
  let waiting: ((c: Connection) => void) | null = null;
  const server: Server = createServer((socket) => {
    const c: Connection = {
      socket,
      received: Buffer.alloc(0),
      closed: once(socket, 'close').then(() => undefined),
    };
    connections.push(c);
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      c.received = Buffer.concat([c.received, d]);
      onData(c);
    });
    onConnect(c);
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

/** The INSTREAM chunks in what a connection received, and whether its end-of-stream chunk came. */
function unframe(received: Buffer): { command: string; chunks: Buffer[]; ended: boolean } {
  const command = received.subarray(0, 10).toString('utf8');
  const chunks: Buffer[] = [];
  let at = 10;
  while (at + 4 <= received.length) {
    const n = received.readUInt32BE(at);
    if (n === 0) return { command, chunks, ended: true };
    if (at + 4 + n > received.length) break;
    chunks.push(received.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return { command, chunks, ended: false };
}

/** A fake that answers `answer` once the stream has ended. */
const answering = (answer: string | Buffer) =>
  fakeClamd((c) => {
    if (unframe(c.received).ended && c.socket.writable) c.socket.end(answer);
  });

describe('ClamAV filter against a fake clamd', () => {
  for (const [label, addresses] of TWINS) {
    test(`${label}: zINSTREAM, chunks of at most 64 KiB that add up to the message, a zero chunk; OK adds X-Virus-Scanned`, async () => {
      const fake = await answering('stream: OK\0');
      try {
        const raw = mail({
          ...addresses,
          subject: 'Grüße, 日本',
          body: `${'x'.repeat(998)}\r\n`.repeat(300),
        });
        const v = await scan(filterFor(fake.address), messageFrom(raw, 100_000), addresses);
        assert.deepEqual(v, {
          kind: 'accept',
          reason: 'clamav: clean',
          actions: { headers: [{ op: 'add', name: 'X-Virus-Scanned', value: 'ClamAV' }] },
        });
        const { command, chunks, ended } = unframe(fake.connections[0]!.received);
        assert.equal(command, 'zINSTREAM\0');
        assert.ok(ended);
        assert.ok(chunks.length >= 5, `${chunks.length} chunks`);
        assert.ok(
          chunks.every((c) => c.length > 0 && c.length <= 65536),
          'every chunk 1..64 KiB',
        );
        assert.deepEqual(Buffer.concat(chunks), raw);
      } finally {
        await fake.close();
      }
    });
  }

  test('add_header off: a clean message is accepted with no header edit', async () => {
    const fake = await answering('stream: OK\0');
    try {
      const v = await scan(
        filterFor(fake.address, { addHeader: false }),
        mail({ ...UTF8, subject: 'x' }),
        UTF8,
      );
      assert.deepEqual(v, { kind: 'accept', reason: 'clamav: clean' });
    } finally {
      await fake.close();
    }
  });

  test("a sender's own X-Virus-Scanned fields are removed before ours is added", async () => {
    const fake = await answering('stream: OK\0');
    try {
      const raw = Buffer.concat([
        Buffer.from('X-Virus-Scanned: by the sender, honest\r\nX-Virus-Scanned: twice\r\n'),
        mail({ ...UTF8, subject: 'forged' }),
      ]);
      const v = await scan(filterFor(fake.address), raw, UTF8);
      assert.deepEqual(v.kind === 'accept' ? v.actions?.headers : null, [
        { op: 'change', name: 'X-Virus-Scanned', occurrence: 2, value: null },
        { op: 'change', name: 'X-Virus-Scanned', occurrence: 1, value: null },
        { op: 'add', name: 'X-Virus-Scanned', value: 'ClamAV' },
      ]);
    } finally {
      await fake.close();
    }
  });

  test('FOUND: 554 5.7.1 naming the virus; a hostile name is made printable and bounded', async () => {
    const fake = await answering(
      Buffer.from(`stream: Evil\r\n250 OK\u0007日本${'Z'.repeat(500)} FOUND\0`, 'utf8'),
    );
    try {
      const v = await scan(filterFor(fake.address), mail({ ...ASCII, subject: 'x' }));
      assert.equal(v.kind, 'reject');
      if (v.kind !== 'reject') return;
      assert.deepEqual([v.reply.code, v.reply.enhanced], [554, '5.7.1']);
      assert.match(v.reply.text, /^Message refused: virus Evil\?\?250 OK\?\?\?Z+\.\.\. found$/);
      assert.ok(v.reply.text.length < 140, v.reply.text);
      assert.ok(/^[\x20-\x7e]*$/.test(v.reply.text));
    } finally {
      await fake.close();
    }
  });

  for (const [onTooLarge, expected] of [
    ['accept', { kind: 'accept' }],
    ['tempfail', { kind: 'defer', code: 451, enhanced: '4.7.1' }],
    ['reject', { kind: 'reject', code: 552, enhanced: '5.3.4' }],
  ] as const) {
    test(`size limit exceeded (clamd answers and closes mid-stream): on_too_large = ${onTooLarge}`, async () => {
      // As clamd does: once past its limit it answers, closes, and leaves the rest unread.
      const fake = await fakeClamd((c) => {
        if (c.received.length > 200_000 && c.socket.writable) {
          c.socket.end('INSTREAM size limit exceeded. ERROR\0');
          c.socket.pause();
        }
      });
      try {
        const message = generatedMessage(16 * 1024 * 1024, ASCII);
        const v = await scan(filterFor(fake.address, { onTooLarge, maxScanBytes: null }), message);
        assert.equal(v.kind, expected.kind, JSON.stringify(v));
        assert.match(
          (v as { reason?: string }).reason ?? '',
          /not scanned: 16777216 octets is more than clamd's StreamMaxLength/,
        );
        if ('code' in expected && (v.kind === 'defer' || v.kind === 'reject'))
          assert.deepEqual([v.reply.code, v.reply.enhanced], [expected.code, expected.enhanced]);
        assert.ok(!message.finished, 'stopped sending once answered');
        assert.ok(message.returned, 'the message reader was closed');
      } finally {
        await fake.close();
      }
    });
  }

  for (const [what, answer, error] of [
    [
      'another ERROR',
      "stream: Can't allocate memory ERROR\0",
      /clamd 127\.0\.0\.1:\d+: Can't allocate memory/,
    ],
    ['garbage', 'HTTP/1.1 400 Bad Request\r\n\r\n\0', /unexpected answer "HTTP\/1\.1 400 Bad Request"/],
    ['an answer without its NUL', 'stream: OK', /answer without its NUL: "stream: OK"/],
    ['an oversize answer', `stream: ${'A'.repeat(10_000)}`, /answer longer than 4096 bytes/],
    ['nothing, then close', '', /closed without answering/],
  ] as const) {
    test(`${what} throws, so the pipeline applies on_failure`, async () => {
      const fake = await answering(answer);
      try {
        await assert.rejects(scan(filterFor(fake.address), mail({ ...ASCII, subject: 'x' })), error);
        const outcome = await runFilter(
          filterFor(fake.address, { timeoutMs: 5_000 }),
          filterFor(fake.address),
          'message',
          ctxFor(messageFrom(mail({ ...UTF8, subject: 'x' })), UTF8),
        );
        assert.equal(outcome.verdict.kind, 'defer');
        assert.match(outcome.failed ?? '', error);
      } finally {
        await fake.close();
      }
    });
  }

  test('a server that never answers: aborting the signal closes the socket and the check rejects', async () => {
    const fake = await fakeClamd(() => {});
    try {
      const controller = new AbortController();
      const message = messageFrom(mail({ ...UTF8, subject: 'silence' }));
      const checking = filterFor(fake.address).check('message', ctxFor(message, UTF8), controller.signal);
      const conn = fake.connections[0] ?? (await fake.connection());
      // Wait for the whole stream, so that the abort meets a check that is waiting for the answer.
      while (!unframe(conn.received).ended) await once(conn.socket, 'data');
      controller.abort(new Error('clamav: timed out'));
      await assert.rejects(checking, /clamav: timed out/);
      await conn.closed;
      assert.equal(conn.socket.destroyed, true);
    } finally {
      await fake.close();
    }
  });

  test('a server that never answers, through runFilter: the timeout defers (tempfail) or accepts (accept)', async () => {
    const fake = await fakeClamd(() => {});
    try {
      for (const onFailure of ['tempfail', 'accept'] as const) {
        const f = filterFor(fake.address, { timeoutMs: 300, onFailure });
        const started = performance.now();
        const outcome = await runFilter(
          f,
          f,
          'message',
          ctxFor(messageFrom(mail({ ...ASCII, subject: 'x' })), ASCII),
        );
        assert.ok(performance.now() - started < 5_000);
        assert.equal(outcome.failed, 'no answer within 300 ms');
        assert.equal(outcome.verdict.kind, onFailure === 'tempfail' ? 'defer' : 'accept');
      }
      await Promise.all(fake.connections.map((c) => c.closed));
      assert.equal(fake.connections.length, 2);
    } finally {
      await fake.close();
    }
  });

  test('a server that closes mid-stream: the check rejects, the message reader is closed', async () => {
    const fake = await fakeClamd((c) => {
      if (c.received.length > 300_000) c.socket.destroy();
    });
    try {
      const message = generatedMessage(32 * 1024 * 1024, UTF8);
      await assert.rejects(
        scan(filterFor(fake.address, { maxScanBytes: null }), message, UTF8),
        /clamd 127\.0\.0\.1:\d+: |closed the connection before answering/,
      );
      assert.ok(!message.finished);
      assert.ok(message.returned);
    } finally {
      await fake.close();
    }
  });

  test('backpressure: while clamd does not read, the filter stops reading the message', async (t) => {
    const fake = await fakeClamd(
      (c) => {
        if (unframe(c.received).ended && c.socket.writable) c.socket.end('stream: OK\0');
      },
      (c) => c.socket.pause(),
    );
    try {
      const total = 96 * 1024 * 1024;
      const message = generatedMessage(total, ASCII);
      const checking = scan(filterFor(fake.address, { maxScanBytes: null }), message);
      const conn = fake.connections[0] ?? (await fake.connection());
      // The filter fills the socket's buffers, then must wait for 'drain': the count stops moving.
      let seen = -1;
      while (seen !== message.yielded) {
        seen = message.yielded;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      t.diagnostic(`${message.yielded} octets read while clamd was paused`);
      assert.ok(message.yielded < 32 * 1024 * 1024, `read ${message.yielded} octets ahead of a paused clamd`);
      assert.ok(message.yielded > 0);
      // Resume reading, but drop what arrives: the check only needs to finish.
      conn.received = Buffer.alloc(0);
      let ended = false;
      conn.socket.removeAllListeners('data');
      conn.socket.on('data', (d: Buffer) => {
        const tail = Buffer.concat([conn.received, d]).subarray(-4);
        conn.received = tail;
        if (!ended && message.finished && tail.equals(Buffer.alloc(4))) {
          ended = true;
          conn.socket.end('stream: OK\0');
        }
      });
      conn.socket.resume();
      assert.equal((await checking).kind, 'accept');
      assert.equal(message.yielded, total);
    } finally {
      await fake.close();
    }
  });

  test('over max_scan_bytes: no connection at all, the on_too_large verdict', async () => {
    const fake = await answering('stream: OK\0');
    try {
      const raw = mail({ ...UTF8, subject: 'x', body: 'y'.repeat(5000) });
      const v = await scan(
        filterFor(fake.address, { maxScanBytes: 4096, onTooLarge: 'tempfail' }),
        raw,
        UTF8,
      );
      assert.equal(v.kind, 'defer');
      assert.equal(fake.connections.length, 0);
      const under = await scan(filterFor(fake.address, { maxScanBytes: raw.length }), raw, UTF8);
      assert.equal(under.kind, 'accept', 'a message of exactly max_scan_bytes is scanned');
      assert.equal(fake.connections.length, 1);
    } finally {
      await fake.close();
    }
  });

  test('no message at the stage is an error, not a verdict', async () => {
    const f = filterFor('127.0.0.1:9');
    const ctx = {
      ...ctxFor(messageFrom(Buffer.from('x')), ASCII),
      message: undefined,
    } as unknown as FilterContext;
    await assert.rejects(f.check('rcpt', ctx, AbortSignal.timeout(1000)), /no message at the rcpt stage/);
  });
});

// ——— the real clamd ———

describe('ClamAV filter against Debian clamd', { skip: CLAMD_SKIP }, () => {
  let clamd: Clamd;
  let small: Clamd;

  before(async () => {
    [clamd, small] = await Promise.all([startClamd(), startClamd({ streamMaxLength: '1M' })]);
  });
  after(async () => {
    await Promise.all([clamd?.stop(), small?.stop()]);
  });

  for (const [label, addresses] of TWINS) {
    test(`${label}: the EICAR file attached in base64 is refused with 554 5.7.1 naming the signature`, async () => {
      const raw = mail({
        ...addresses,
        subject: 'the report',
        attachment: { name: 'report.com', content: eicar() },
      });
      assert.ok(!raw.includes(eicar()), 'only clamd decoding the MIME part can find it');
      const v = await scan(filterFor(clamd.address), raw, addresses);
      assert.deepEqual(v, {
        kind: 'reject',
        reply: { code: 554, enhanced: '5.7.1', text: `Message refused: virus ${EICAR_SIGNATURE} found` },
        reason: `virus ${EICAR_SIGNATURE}`,
      });
    });

    test(`${label}: a clean message (UTF-8 subject) is accepted with X-Virus-Scanned: ClamAV`, async () => {
      const raw = mail({
        ...addresses,
        subject: 'Grüße aus Köln, 日本語の件名',
        body: 'Hallo Jürgen,\r\n\r\nこんにちは。EICAR is only a word here.\r\n',
        attachment: { name: 'notes.txt', content: 'harmless notes' },
      });
      const v: Verdict = await scan(filterFor(clamd.address), raw, addresses);
      assert.deepEqual(v, {
        kind: 'accept',
        reason: 'clamav: clean',
        actions: { headers: [{ op: 'add', name: 'X-Virus-Scanned', value: 'ClamAV' }] },
      });
    });
  }

  test('the EICAR file in a plain text body, and at the end of a 3 MiB message, is found too', async () => {
    const inline = mail({ ...ASCII, subject: 'inline', body: `see:\r\n${eicar()}\r\n` });
    assert.equal((await scan(filterFor(clamd.address), inline)).kind, 'reject');
    const late = mail({
      ...UTF8,
      subject: 'late',
      body: `${'y'.repeat(76)}\r\n`.repeat(40_000),
      attachment: { name: 'x.com', content: eicar() },
    });
    assert.ok(late.length > 3_000_000);
    assert.equal((await scan(filterFor(clamd.address), messageFrom(late, 65536), UTF8)).kind, 'reject');
  });

  for (const onTooLarge of ['accept', 'tempfail', 'reject'] as const) {
    test(`a message over max_scan_bytes is not sent: on_too_large = ${onTooLarge}`, async () => {
      const message = generatedMessage(2 * 1024 * 1024, ASCII);
      const f = filterFor(small.address, { onTooLarge, maxScanBytes: 1024 * 1024 });
      const v = await scan(f, message);
      const expected = { accept: 'accept', tempfail: 'defer', reject: 'reject' }[onTooLarge];
      assert.equal(v.kind, expected, JSON.stringify(v));
      if (v.kind === 'accept' || v.kind === 'defer' || v.kind === 'reject')
        assert.equal(v.reason, 'not scanned: 2097152 octets is more than max_scan_bytes');
      if (v.kind === 'accept')
        assert.equal(v.actions, undefined, 'no X-Virus-Scanned on an unscanned message');
      if (v.kind === 'reject')
        assert.deepEqual(v.reply, {
          code: 552,
          enhanced: '5.3.4',
          text: 'Message too large to be scanned for viruses',
        });
      if (v.kind === 'defer') assert.deepEqual([v.reply.code, v.reply.enhanced], [451, '4.7.1']);
      assert.equal(message.yielded, 0, 'not read at all');
    });
  }

  test('over StreamMaxLength (1M), streamed: the on_too_large verdict, or a failure when the answer is lost', async (t) => {
    // clamd answers "INSTREAM size limit exceeded. ERROR" and closes with our chunks unread; a write
    // of ours after its reset loses the answer (see ClamavFilter#send). Both outcomes are allowed here,
    // anything else (clean, a hang) is not.
    const outcomes = { verdict: 0, failure: 0 };
    for (let i = 0; i < 10; i++) {
      const message = generatedMessage(3 * 1024 * 1024, i % 2 === 0 ? ASCII : UTF8);
      try {
        const v = await scan(filterFor(small.address, { onTooLarge: 'reject', maxScanBytes: null }), message);
        assert.equal(v.kind, 'reject', JSON.stringify(v));
        if (v.kind === 'reject') {
          assert.equal(v.reason, "not scanned: 3145728 octets is more than clamd's StreamMaxLength");
          assert.equal(v.reply.code, 552);
        }
        outcomes.verdict++;
      } catch (err) {
        assert.match(String(err), /EPIPE|ECONNRESET|closed the connection/);
        outcomes.failure++;
      }
      assert.ok(!message.finished, 'stopped sending once clamd answered or closed');
      assert.ok(message.returned);
    }
    t.diagnostic(`too-large verdicts ${outcomes.verdict}, failures ${outcomes.failure}`);
    assert.match(await small.log(), /INSTREAM: Size limit reached/);
  });

  test('just under StreamMaxLength is scanned', async () => {
    const v = await scan(filterFor(small.address), generatedMessage(1024 * 1024 - 1024, ASCII));
    assert.equal(v.kind, 'accept');
    assert.ok(v.kind === 'accept' && v.actions !== undefined, 'scanned, so the header is added');
  });

  test('clamd stopped: the check throws; the pipeline defers (tempfail) or accepts (accept)', async () => {
    const gone = await startClamd();
    await gone.stop();
    await assert.rejects(scan(filterFor(gone.address), mail({ ...ASCII, subject: 'x' })), /ECONNREFUSED/);
    for (const [onFailure, kind] of [
      ['tempfail', 'defer'],
      ['accept', 'accept'],
    ] as const) {
      const f = filterFor(gone.address, { onFailure, timeoutMs: 5_000 });
      const outcome = await runFilter(
        f,
        f,
        'message',
        ctxFor(messageFrom(mail({ ...UTF8, subject: 'x' })), UTF8),
      );
      assert.equal(outcome.verdict.kind, kind);
      assert.match(outcome.failed ?? '', /ECONNREFUSED/);
    }
  });

  test('a 20 MiB message is streamed to clamd without memory growing by its size', async (t) => {
    // Warm up (code paths, socket buffers), then measure the resident set while the big one streams.
    await scan(filterFor(clamd.address), generatedMessage(1024 * 1024, ASCII));
    const total = 20 * 1024 * 1024;
    const message = generatedMessage(total, UTF8);
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    try {
      const v = await scan(filterFor(clamd.address), message, UTF8);
      assert.equal(v.kind, 'accept', JSON.stringify(v));
      assert.ok(v.kind === 'accept' && v.actions !== undefined, 'scanned whole: the header is added');
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    assert.equal(message.yielded, total);
    const growth = peak - base;
    t.diagnostic(
      `rss ${(base / 1048576).toFixed(1)} MiB before, grew by ${(growth / 1048576).toFixed(1)} MiB`,
    );
    assert.ok(growth < 10 * 1024 * 1024, `rss grew by ${(growth / 1048576).toFixed(1)} MiB streaming 20 MiB`);
    assert.match(await clamd.log(), /instream\(127\.0\.0\.1@\d+\): OK/);
  });
});
