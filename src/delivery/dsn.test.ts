// DSN tests: NOTIFY rules, byte-exact golden files (testdata/dsn-*.eml; TERN_UPDATE_GOLDEN=1 rewrites
// them after a deliberate change: read the diff), a parse by an independent MIME parser (Python's
// `email` package) of every golden case, and hostile input that must not escape its header line.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import type { Envelope, EnvelopeRecipient } from '../core/envelope.ts';
import type { DsnRequest } from './dsn.ts';
import { buildDsn, dsnBytes, dsnRecipientsFor, readHeaderBytes } from './dsn.ts';

const ARRIVAL_MS = Date.UTC(2026, 0, 15, 12, 0, 0);
const NOW_MS = ARRIVAL_MS + 4 * 3_600_000 + 5_000;
const enc = new TextEncoder();

function envelope(over: Partial<Envelope> = {}, recipients?: EnvelopeRecipient[]): Envelope {
  return {
    sender: 'bob@example.net',
    body: '8BITMIME',
    smtputf8: false,
    ret: null,
    envid: 'QQ314159',
    recipients: recipients ?? [
      {
        address: 'carol@remote.example',
        notify: null,
        orcpt: { addrType: 'rfc822', address: 'Carol@remote.example' },
      },
      { address: 'dave@remote.example', notify: ['SUCCESS', 'FAILURE'], orcpt: null },
      { address: 'erin@remote.example', notify: [], orcpt: null },
    ],
    client: {
      ip: '192.0.2.1',
      port: 40000,
      hostname: null,
      helo: 'client.example.net',
      esmtp: true,
      tls: null,
      authUser: null,
      service: 'submission',
    },
    receivedAtMs: ARRIVAL_MS,
    ...over,
  };
}

const HEADERS =
  'Received: from client.example.net ([192.0.2.1])\r\n\tby mx.example.org (Tern) with ESMTPSA id 01JABC\r\n' +
  'From: Bob <bob@example.net>\r\nTo: carol@remote.example\r\nSubject: quarterly figures\r\n' +
  'Message-ID: <1234@example.net>\r\n';
const MESSAGE = `${HEADERS}\r\nHello Carol,\r\n\r\nthe figures are attached.\r\n`;

function original(message = MESSAGE): DsnRequest['original'] {
  const headerEnd = message.indexOf('\r\n\r\n');
  return {
    headers: enc.encode(message.slice(0, headerEnd + 2)),
    body: () => {
      // Several chunks, as a spooled message is read.
      const bytes = enc.encode(message);
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; i += 40) chunks.push(bytes.subarray(i, i + 40));
      return Readable.from(chunks);
    },
    sizeBytes: enc.encode(message).length,
  };
}

function request(over: Partial<DsnRequest> = {}): DsnRequest {
  return {
    kind: 'failure',
    hostname: 'mx.example.org',
    nowMs: NOW_MS,
    envelope: envelope(),
    recipients: [
      {
        address: 'carol@remote.example',
        orcpt: { addrType: 'rfc822', address: 'Carol@remote.example' },
        action: 'failed',
        status: '5.1.1',
        remoteMta: 'mx1.remote.example',
        diagnostic:
          '550-5.1.1 <carol@remote.example>: Recipient address rejected:\r\n550 5.1.1 User unknown in virtual mailbox table',
        lastAttemptMs: NOW_MS - 1_000,
      },
    ],
    original: original(),
    queueId: '01JABCDEF0123456789',
    messageId: '<dsn.01JABCDEF0123456789@mx.example.org>',
    boundary: '01JABCDEF0123456789.1768478405/mx.example.org',
    ...over,
  };
}

const golden = (name: string): URL => new URL(`testdata/${name}`, import.meta.url);

async function assertGolden(req: DsnRequest, name: string): Promise<Buffer> {
  const got = await dsnBytes(buildDsn(req));
  if (process.env['TERN_UPDATE_GOLDEN'] === '1') writeFileSync(golden(name), got);
  const expected = readFileSync(golden(name));
  assert.equal(got.toString('utf8'), expected.toString('utf8'), name);
  assert.ok(got.equals(expected), `${name}: bytes differ`);
  return got;
}

/** What Python's email package makes of a DSN: the structure and every field of the report. */
interface Parsed {
  contentType: string;
  reportType: string | null;
  defects: string[];
  headers: Record<string, string>;
  parts: { type: string; defects: string[] }[];
  text: string;
  perMessage: Record<string, string> | null;
  perRecipient: Record<string, string>[];
  returned: { type: string; subject: string | null; body: string | null } | null;
}

const PARSER = String.raw`
import email, email.policy, json, sys
raw = sys.stdin.buffer.read()
m = email.message_from_bytes(raw, policy=email.policy.default)
parts = m.get_payload() if m.is_multipart() else []
def blocks(p):
    if p.get_content_type() == 'message/delivery-status':
        return [dict((k, str(v)) for k, v in b.items()) for b in p.get_payload()]
    # Python parses message/global-delivery-status like an embedded message and loses its UTF-8 on the
    # way: cut the part from the raw bytes at the boundary Python found, and parse each block alone.
    raw_part = raw.split(b'\r\n--' + m.get_boundary().encode())[2]
    text = raw_part.split(b'\r\n\r\n', 1)[1].decode('utf-8')
    return [dict((k, str(v)) for k, v in email.message_from_string(b, policy=email.policy.default).items())
            for b in text.replace('\r\n', '\n').split('\n\n') if b.strip()]
status = blocks(parts[1]) if len(parts) > 1 else []
ret = None
if len(parts) > 2:
    p = parts[2]
    if p.get_content_type() in ('message/rfc822', 'message/global') and p.is_multipart():
        inner = p.get_payload()[0]
        ret = {'type': p.get_content_type(), 'subject': inner['subject'], 'body': inner.get_payload()}
    elif p.get_content_type() == 'message/global':
        inner = email.message_from_bytes(p.get_payload(decode=True), policy=email.policy.default)
        ret = {'type': p.get_content_type(), 'subject': inner['subject'], 'body': inner.get_payload()}
    else:
        hdrs = email.message_from_bytes(p.get_payload(decode=True), policy=email.policy.default)
        ret = {'type': p.get_content_type(), 'subject': hdrs['subject'], 'body': None}
print(json.dumps({
  'contentType': m.get_content_type(),
  'reportType': m.get_param('report-type'),
  'defects': [type(d).__name__ for d in m.defects] + [type(d).__name__ for p in parts for d in p.defects],
  'headers': dict((k, str(v)) for k, v in m.items()),
  'parts': [{'type': p.get_content_type(), 'defects': [type(d).__name__ for d in p.defects]} for p in parts],
  'text': parts[0].get_content() if parts else '',
  'perMessage': status[0] if status else None,
  'perRecipient': status[1:],
  'returned': ret,
}))
`;

async function parseWithPython(bytes: Buffer): Promise<Parsed> {
  const child = execFile('python3', ['-c', PARSER], { maxBuffer: 64 * 1024 * 1024 });
  const out = new Promise<string>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`python3 exited ${code}: ${stderr}`)),
    );
  });
  child.stdin!.end(bytes);
  return JSON.parse(await out) as Parsed;
}

describe('dsnRecipientsFor (RFC 3461 §4.1)', () => {
  const outcomes = [{ index: 0 }, { index: 1 }, { index: 2 }];
  const rcpt = (notify: EnvelopeRecipient['notify']): EnvelopeRecipient => ({
    address: 'x@remote.example',
    notify,
    orcpt: null,
  });
  const env = envelope({}, [rcpt(null), rcpt(['SUCCESS']), rcpt([]), rcpt(['DELAY', 'FAILURE'])]);
  const all = [0, 1, 2, 3].map((index) => ({ index }));

  test('no NOTIFY: failure and delay yes, success no; NEVER: nothing; a list: exactly what it names', () => {
    const pick = (kind: 'failure' | 'delay' | 'success'): number[] =>
      dsnRecipientsFor(kind, env, all).map((o) => o.index);
    assert.deepEqual(pick('failure'), [0, 3]);
    assert.deepEqual(pick('delay'), [0, 3]);
    assert.deepEqual(pick('success'), [1]);
  });

  test('never a DSN about a message from the null sender, whatever NOTIFY says', () => {
    const bounce = envelope({ sender: '' }, [rcpt(null), rcpt(['SUCCESS', 'FAILURE', 'DELAY'])]);
    for (const kind of ['failure', 'delay', 'success'] as const) {
      assert.deepEqual(dsnRecipientsFor(kind, bounce, outcomes), []);
    }
  });

  test('an index outside the envelope is never reported; extra fields of the outcome are kept', () => {
    const got = dsnRecipientsFor('failure', envelope(), [
      { index: 0, reply: 'a' },
      { index: 9, reply: 'b' },
    ]);
    assert.deepEqual(got, [{ index: 0, reply: 'a' }]);
  });
});

describe("golden DSNs, checked again by Python's email package", () => {
  test('failure, RET unspecified: the full message comes back as message/rfc822', async () => {
    const bytes = await assertGolden(request(), 'dsn-failure-full.eml');
    const p = await parseWithPython(bytes);
    assert.equal(p.contentType, 'multipart/report');
    assert.equal(p.reportType, 'delivery-status');
    assert.deepEqual(p.defects, []);
    assert.deepEqual(
      p.parts.map((x) => x.type),
      ['text/plain', 'message/delivery-status', 'message/rfc822'],
    );
    // Python drops the quotes it does not need: the display name was parsed as one phrase.
    assert.equal(p.headers['From'], 'Mail Delivery System <MAILER-DAEMON@mx.example.org>');
    assert.equal(p.headers['To'], 'bob@example.net');
    assert.equal(p.headers['Auto-Submitted'], 'auto-replied');
    assert.equal(p.headers['Subject'], 'Undelivered Mail Returned to Sender');
    assert.deepEqual(p.perMessage, {
      'Reporting-MTA': 'dns; mx.example.org',
      'X-Tern-Queue-ID': '01JABCDEF0123456789',
      'Original-Envelope-Id': 'QQ314159',
      'Arrival-Date': 'Thu, 15 Jan 2026 12:00:00 +0000',
    });
    assert.deepEqual(p.perRecipient, [
      {
        'Original-Recipient': 'rfc822; Carol@remote.example',
        'Final-Recipient': 'rfc822; carol@remote.example',
        Action: 'failed',
        Status: '5.1.1',
        'Remote-MTA': 'dns; mx1.remote.example',
        'Diagnostic-Code':
          'smtp; 550-5.1.1 <carol@remote.example>: Recipient address rejected: 550 5.1.1 User unknown in virtual mailbox table',
        'Last-Attempt-Date': 'Thu, 15 Jan 2026 16:00:04 +0000',
      },
    ]);
    assert.deepEqual(p.returned, {
      type: 'message/rfc822',
      subject: 'quarterly figures',
      body: 'Hello Carol,\r\n\r\nthe figures are attached.\r\n',
    });
    assert.match(p.text, /<carol@remote\.example>: host mx1\.remote\.example said: 550-5\.1\.1/);
  });

  test('failure with RET=HDRS: headers only, as text/rfc822-headers', async () => {
    const req = request({ envelope: envelope({ ret: 'HDRS', envid: null }) });
    const bytes = await assertGolden(req, 'dsn-failure-hdrs.eml');
    const p = await parseWithPython(bytes);
    assert.deepEqual(p.defects, []);
    assert.deepEqual(
      p.parts.map((x) => x.type),
      ['text/plain', 'message/delivery-status', 'text/rfc822-headers'],
    );
    assert.equal(p.perMessage?.['Original-Envelope-Id'], undefined);
    assert.deepEqual(p.returned, { type: 'text/rfc822-headers', subject: 'quarterly figures', body: null });
    assert.doesNotMatch(bytes.toString(), /the figures are attached/);
  });

  test('delay: Action delayed, 4.x.x status, Will-Retry-Until, headers only', async () => {
    const req = request({
      kind: 'delay',
      recipients: [
        {
          address: 'carol@remote.example',
          orcpt: null,
          action: 'delayed',
          status: '4.4.1',
          lastAttemptMs: NOW_MS - 60_000,
        },
        {
          address: 'dave@remote.example',
          orcpt: null,
          action: 'delayed',
          status: '4.2.2',
          remoteMta: 'mx2.remote.example',
          diagnostic: '452 4.2.2 Mailbox full',
          lastAttemptMs: NOW_MS - 30_000,
        },
      ],
      willRetryUntilMs: ARRIVAL_MS + 5 * 86_400_000,
    });
    const bytes = await assertGolden(req, 'dsn-delay.eml');
    const p = await parseWithPython(bytes);
    assert.deepEqual(p.defects, []);
    assert.equal(p.headers['Subject'], 'Delayed Mail (still being retried)');
    assert.deepEqual(
      p.perRecipient.map((r) => [
        r['Final-Recipient'],
        r['Action'],
        r['Status'],
        r['Will-Retry-Until'],
        r['Diagnostic-Code'],
      ]),
      [
        ['rfc822; carol@remote.example', 'delayed', '4.4.1', 'Tue, 20 Jan 2026 12:00:00 +0000', undefined],
        [
          'rfc822; dave@remote.example',
          'delayed',
          '4.2.2',
          'Tue, 20 Jan 2026 12:00:00 +0000',
          'smtp; 452 4.2.2 Mailbox full',
        ],
      ],
    );
    assert.equal(p.returned?.type, 'text/rfc822-headers');
    assert.match(p.text, /will keep trying until Tue, 20 Jan 2026 12:00:00 \+0000/);
  });

  test('success: delivered and relayed, headers only', async () => {
    const req = request({
      kind: 'success',
      recipients: [
        {
          address: 'dave@remote.example',
          orcpt: null,
          action: 'relayed',
          status: '2.0.0',
          remoteMta: 'mx1.remote.example',
          diagnostic: '250 2.0.0 Ok: queued as 4Fx1',
          lastAttemptMs: NOW_MS,
        },
        {
          address: 'frank@example.org',
          orcpt: null,
          action: 'delivered',
          status: '2.0.0',
          lastAttemptMs: NOW_MS,
        },
      ],
    });
    const bytes = await assertGolden(req, 'dsn-success.eml');
    const p = await parseWithPython(bytes);
    assert.deepEqual(p.defects, []);
    assert.equal(p.headers['Subject'], 'Successful Mail Delivery Report');
    assert.deepEqual(
      p.perRecipient.map((r) => [r['Action'], r['Status']]),
      [
        ['relayed', '2.0.0'],
        ['delivered', '2.0.0'],
      ],
    );
    assert.equal(p.returned?.type, 'text/rfc822-headers');
  });

  test('an SMTPUTF8 original: message/global-delivery-status, message/global, utf-8 address types', async () => {
    const message =
      'From: Jörg <jörg@bücher.example>\r\nTo: 用户@例子.广告\r\nSubject: Grüße\r\n\r\nHallo\r\n';
    const req = request({
      envelope: envelope({ sender: 'jörg@bücher.example', smtputf8: true, envid: null }, [
        {
          address: '用户@例子.广告',
          notify: null,
          orcpt: { addrType: 'utf-8', address: '用户+tag@例子.广告' },
        },
      ]),
      recipients: [
        {
          address: '用户@例子.广告',
          orcpt: { addrType: 'utf-8', address: '用户+tag@例子.广告' },
          action: 'failed',
          status: '5.1.1',
          remoteMta: 'mx.xn--fsqu00a.xn--3lr804guic',
          diagnostic: '550 5.1.1 mailbox unavailable',
        },
      ],
      original: original(message),
    });
    const dsn = buildDsn(req);
    assert.equal(dsn.smtputf8, true);
    assert.equal(dsn.bodyType, '8BITMIME');
    const bytes = await assertGolden(req, 'dsn-failure-utf8.eml');
    const p = await parseWithPython(bytes);
    assert.deepEqual(
      p.parts.map((x) => x.type),
      ['text/plain', 'message/global-delivery-status', 'message/global'],
    );
    assert.equal(p.headers['To'], 'jörg@bücher.example');
    assert.deepEqual(
      p.perRecipient.map((r) => [r['Original-Recipient'], r['Final-Recipient']]),
      [['utf-8; 用户\\x{2B}tag@例子.广告', 'utf-8; 用户@例子.广告']],
    );
    assert.equal(p.returned?.subject, 'Grüße');
  });
});

describe('buildDsn', () => {
  test('a utf-8 ORCPT in an ASCII report is written as utf-8-addr-xtext (RFC 6533 §3)', async () => {
    const req = request({
      recipients: [
        {
          address: 'carol@remote.example',
          orcpt: { addrType: 'utf-8', address: 'kärol=1\\x@remote.example' },
          action: 'failed',
          status: '5.1.1',
        },
      ],
    });
    const p = await parseWithPython(await dsnBytes(buildDsn(req)));
    assert.equal(p.parts[1]?.type, 'message/delivery-status');
    assert.equal(
      p.perRecipient[0]?.['Original-Recipient'],
      'utf-8; k\\x{E4}rol\\x{3D}1\\x{5C}x@remote.example',
    );
  });

  test('hostile remote replies and ENVID cannot add header lines or end a part early', async () => {
    const boundary = '01JABCDEF0123456789.1768478405/mx.example.org';
    const req = request({
      envelope: envelope({ envid: 'x\r\nBcc: victim@example.org' }),
      recipients: [
        {
          address: 'carol@remote.example',
          orcpt: null,
          action: 'failed',
          status: '5.1.1\r\nX-Evil: 1',
          remoteMta: 'mx.evil.example\r\nX-Evil: 2',
          diagnostic: `550 no\r\nX-Evil: 3\r\n\r\n--${boundary}\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\u0000\u00e9`,
        },
      ],
    });
    const bytes = await dsnBytes(buildDsn(req));
    assert.doesNotMatch(bytes.toString('latin1'), /\r\n(X-Evil|Bcc):/);
    const lines = bytes.toString('latin1').split('\r\n');
    assert.equal(lines.filter((l) => l.startsWith(`--${boundary}`)).length, 4, 'three parts and the end');
    assert.equal(lines.filter((l) => l === `--${boundary}--`).length, 1);
    const p = await parseWithPython(bytes);
    assert.deepEqual(p.defects, []);
    assert.equal(p.parts.length, 3);
    const r = p.perRecipient[0]!;
    assert.equal(r['Status'], '5.0.0', 'a malformed status becomes the generic one');
    assert.equal(r['Remote-MTA'], 'dns; mx.evil.example X-Evil: 2');
    assert.match(r['Diagnostic-Code']!, /^smtp; 550 no X-Evil: 3 --01JABC.* <b>hi<\/b> \?$/);
    assert.equal(p.perMessage?.['Original-Envelope-Id'], 'x+0D+0ABcc:+20victim@example.org');
  });

  test('RET=FULL of a message above maxReturnBytes returns its headers and says why', async () => {
    const dsn = buildDsn(request({ envelope: envelope({ ret: 'FULL' }), maxReturnBytes: 100 }));
    assert.equal(dsn.returned, 'headers');
    const p = await parseWithPython(await dsnBytes(dsn));
    assert.equal(p.returned?.type, 'text/rfc822-headers');
    assert.match(p.text, /too large to return in full/);
  });

  test('a BINARYMIME original is never returned in full', () => {
    assert.equal(buildDsn(request({ envelope: envelope({ body: 'BINARYMIME' }) })).returned, 'headers');
  });

  test('the original is read only when returned in full, and anew for each content() call', async () => {
    let reads = 0;
    const base = original();
    const counted = { ...base, body: () => (reads++, base.body!()) };
    const hdrs = buildDsn(
      request({
        kind: 'delay',
        original: counted,
        recipients: [{ ...request().recipients[0]!, action: 'delayed', status: '4.4.1' }],
      }),
    );
    await dsnBytes(hdrs);
    assert.equal(reads, 0);
    const full = buildDsn(request({ original: counted }));
    const a = await dsnBytes(full);
    const b = await dsnBytes(full);
    assert.equal(reads, 2);
    assert.ok(a.equals(b));
  });

  test('7-bit in, 7-bit out; 8-bit headers or an 8BITMIME original returned need 8BITMIME', async () => {
    const seven = buildDsn(request({ envelope: envelope({ body: '7BIT' }) }));
    assert.equal(seven.bodyType, '7BIT');
    assert.equal(seven.smtputf8, false);
    assert.doesNotMatch((await dsnBytes(seven)).toString(), /Content-Transfer-Encoding: 8bit/);
    assert.equal(buildDsn(request()).bodyType, '8BITMIME');
    const latin = original('Subject: caf\u00e9\r\n\r\nx\r\n');
    assert.equal(
      buildDsn(request({ envelope: envelope({ body: '7BIT', ret: 'HDRS' }), original: latin })).bodyType,
      '8BITMIME',
    );
  });

  test('never to the null sender: a double bounce names the postmaster', async () => {
    const bounce = envelope({ sender: '' });
    assert.throws(() => buildDsn(request({ envelope: bounce })), RangeError);
    const dsn = buildDsn(request({ envelope: bounce, to: 'postmaster@example.org' }));
    assert.equal(dsn.sender, '');
    assert.equal(dsn.recipient, 'postmaster@example.org');
    assert.match((await dsnBytes(dsn)).toString(), /\r\nTo: <postmaster@example\.org>\r\n/);
    assert.throws(() => buildDsn(request({ recipients: [] })), RangeError);
  });

  test('defaults: a random Message-ID and boundary, different every time', async () => {
    const req = { ...request(), messageId: undefined, boundary: undefined };
    const a = buildDsn(req);
    const b = buildDsn(req);
    assert.match(a.messageId, /^<[0-9a-z]+\.[\w-]+@mx\.example\.org>$/);
    assert.notEqual(a.messageId, b.messageId);
    const p = await parseWithPython(await dsnBytes(a));
    assert.deepEqual(p.defects, []);
    assert.equal(p.headers['Message-ID'], a.messageId);
    assert.equal(p.parts.length, 3);
  });
});

describe('readHeaderBytes', () => {
  const read = async (chunks: string[], max?: number): Promise<string> =>
    Buffer.from(await readHeaderBytes(Readable.from(chunks.map((c) => Buffer.from(c))), max)).toString();

  test('stops at the empty line (CRLF or LF), also when it straddles chunks', async () => {
    assert.equal(await read(['A: 1\r\nB: 2\r', '\n\r', '\nbody']), 'A: 1\r\nB: 2\r\n');
    assert.equal(await read(['A: 1\n', '\nbody']), 'A: 1\n');
    assert.equal(await read(['\r\nbody']), '');
    assert.equal(await read(['Only: header\r\n']), 'Only: header\r\n');
  });

  test('a header section longer than the limit is cut at a line end', async () => {
    assert.equal(await read(['A: 1234\r\nB: 5678\r\nC: 9'], 12), 'A: 1234\r\n');
  });

  test('stops reading the stream once the headers are in', async () => {
    let pulled = 0;
    async function* body(): AsyncIterable<Uint8Array> {
      for (const c of ['A: 1\r\n\r\n', 'x'.repeat(100), 'y'.repeat(100)]) {
        await Promise.resolve(); // as a file read would
        pulled++;
        yield Buffer.from(c);
      }
    }
    await readHeaderBytes(body());
    assert.equal(pulled, 1);
  });
});
