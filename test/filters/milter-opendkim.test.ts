// The milter filter against a real milter: Debian's OpenDKIM, signing for example.org. The filter drives
// connect, HELO, MAIL, RCPT and the message over a loopback socket; OpenDKIM answers with a
// DKIM-Signature field to insert; the field is put into the stored message where the edit says and the
// signature is verified by dkimpy (python3-dkim, an independent implementation) and by Tern's own
// verifier, each with the test key served as the selector's TXT record. simple/simple canonicalization
// (OpenDKIM's default) makes the check byte-exact: a header sent with its folding changed, or a body
// chunk out of place, breaks the signature. Skipped, saying why, where opendkim or dkimpy is missing.
// Deliberately NOT here: the protocol's corner cases (test/filters/milter.test.ts, with a scripted milter).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { DnsAnswer, Resolver } from '../../src/core/dns.ts';
import { dial } from '../../src/net/dial.ts';
import type { Dial } from '../../src/policy/filters/filter.ts';
import { DkimVerifier } from '../../src/policy/dkim/verifier.ts';
import type {
  FilterClient,
  FilterContext,
  FilterMessage,
  HeaderEdit,
  Verdict,
} from '../../src/policy/filters/filter.ts';
import { MilterFilter } from '../../src/policy/filters/milter.ts';
import { applyFieldEdits, fieldOf, splitFields, type FieldEdit } from '../../src/protocol/header-edit.ts';
import { OPENDKIM_SKIP, startOpendkim, type Opendkim } from './daemons/opendkim.ts';

const DKIMPY = String.raw`
import base64, json, sys
import dkim
req = json.load(sys.stdin)
zone = {k.lower(): v for k, v in req["zone"].items()}
def dnsfunc(name, timeout=5):
    name = name.decode("ascii") if isinstance(name, bytes) else name
    return zone.get(name.rstrip(".").lower())
msg = base64.b64decode(req["message"])
try:
    print(json.dumps(bool(dkim.verify(msg, dnsfunc=dnsfunc, minkey=1024))))
except Exception as e:
    print(json.dumps("error: %s" % e))
`;

function findDkimpy(): string | null {
  for (const python of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(python, ['-c', 'import dkim'], { stdio: 'ignore' }).status === 0) return python;
  }
  return null;
}
const PYTHON = findDkimpy();
const SKIP: string | false =
  OPENDKIM_SKIP !== false
    ? OPENDKIM_SKIP
    : PYTHON === null
      ? 'no python3 can import dkim (Debian package python3-dkim)'
      : false;

function dkimpyVerify(message: Buffer, zone: Record<string, string>): unknown {
  const run = spawnSync(PYTHON!, ['-c', DKIMPY], {
    input: JSON.stringify({ zone, message: message.toString('base64') }),
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as unknown;
}

async function ternVerify(message: Buffer, zone: Record<string, string>): Promise<string[]> {
  const resolver: Pick<Resolver, 'txt'> = {
    txt(name: string): Promise<DnsAnswer<string>> {
      const record = zone[name.toLowerCase()];
      return Promise.resolve(
        record === undefined ? { kind: 'nxdomain' } : { kind: 'ok', records: [record], ttlMs: 0 },
      );
    },
  };
  const verifier = new DkimVerifier({ resolver, nowMs: Date.now() });
  for (let i = 0; i < message.length; i += 777) verifier.push(message.subarray(i, i + 777));
  return (await verifier.finish()).map((r) => r.result);
}

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8');
const RECEIVED =
  'Received: from client.example (localhost [127.0.0.1])\r\n\tby mx.tern.test with ESMTP id 4Q1x; Mon, 1 Jan 2024 00:00:00 +0000\r\n';

/** The stored message (our Received: first) as FilterMessage serves it, read back in small chunks. */
function stored(clientMessage: Buffer): FilterMessage {
  const bytes = Buffer.concat([Buffer.from(RECEIVED), clientMessage]);
  return {
    headers: splitFields(clientMessage).fields.flatMap((f) => fieldOf(f) ?? []),
    fromAddresses: [],
    sizeBytes: bytes.length,
    // eslint-disable-next-line @typescript-eslint/require-await -- an async iterable, as the spool's is
    async *read() {
      for (let i = 0; i < bytes.length; i += 1000) yield bytes.subarray(i, i + 1000);
    },
  };
}

/**
 * The stored message with the edits applied: `exact` writes each new field as `name: value` CRLF with the
 * value's folding kept (what formatField in header-edit.ts documents); `intake` uses the message
 * intake's own applyFieldEdits.
 */
function applyEdits(clientMessage: Buffer, edits: readonly HeaderEdit[], writer: 'exact' | 'intake'): Buffer {
  const { fields, bodyOffset } = splitFields(clientMessage);
  const fieldEdits = edits.map((e): FieldEdit => {
    assert.ok(e.op === 'insert', `an edit OpenDKIM is not expected to ask for: ${JSON.stringify(e)}`);
    return e;
  });
  let edited: string[];
  if (writer === 'intake') edited = applyFieldEdits(fields, fieldEdits);
  else {
    edited = [...fields];
    for (const e of fieldEdits) {
      if (e.op !== 'insert') continue;
      edited.splice(e.index, 0, Buffer.from(`${e.name}: ${e.value}\r\n`, 'utf8').toString('latin1'));
    }
  }
  return Buffer.concat([
    Buffer.from(RECEIVED),
    Buffer.from(`${edited.join('')}\r\n`, 'latin1'),
    clientMessage.subarray(bodyOffset),
  ]);
}

const CLIENT: FilterClient = {
  ip: '127.0.0.1',
  port: 40001,
  hostname: 'client.example',
  helo: 'client.example',
  tls: false,
  authUser: null,
  service: 'smtp',
  localAddress: '127.0.0.1',
  localPort: 25,
};

async function drive(
  odk: Opendkim,
  mailFrom: string,
  rcpt: string,
  clientMessage: Buffer,
): Promise<Verdict[]> {
  const filter = new MilterFilter({
    name: 'milter:opendkim',
    address: odk.address,
    timeoutMs: 20_000,
    onFailure: 'tempfail',
    dial,
    hostname: 'mx.tern.test',
  });
  const session = filter.open(CLIENT);
  const message = stored(clientMessage);
  const base: Omit<FilterContext, 'facts'> = {
    client: CLIENT,
    queueId: null,
    mailFrom,
    mailParams: new Map(),
    recipients: [],
  };
  const signal = AbortSignal.timeout(20_000);
  const verdicts: Verdict[] = [];
  try {
    verdicts.push(await session.check('connect', { ...base, facts: {} }, signal));
    verdicts.push(await session.check('helo', { ...base, facts: {} }, signal));
    verdicts.push(await session.check('mail', { ...base, facts: {} }, signal));
    verdicts.push(await session.check('rcpt', { ...base, rcpt, facts: {} }, signal));
    verdicts.push(
      await session.check(
        'message',
        { ...base, queueId: '4Q1xTEST', recipients: [rcpt], message, facts: {} },
        signal,
      ),
    );
  } finally {
    session.reset?.();
    session.close?.();
  }
  return verdicts;
}

describe('milter filter with OpenDKIM', { skip: SKIP }, () => {
  let odk: Opendkim;
  let zone: Record<string, string>;
  before(async () => {
    odk = await startOpendkim();
    zone = { [`${odk.selector}._domainkey.${odk.domain}`]: odk.publicKeyTxt };
  });
  after(async () => {
    await odk?.stop();
  });

  const signedBy = async (
    clientMessage: Buffer,
    mailFrom: string,
    rcpt: string,
    writer: 'exact' | 'intake' = 'exact',
  ): Promise<{ verdict: Verdict; final: Buffer }> => {
    const verdicts = await drive(odk, mailFrom, rcpt, clientMessage);
    for (const v of verdicts.slice(0, 4)) assert.equal(v.kind, 'accept', JSON.stringify(v));
    const verdict = verdicts[4]!;
    assert.equal(verdict.kind, 'accept', JSON.stringify(verdict));
    const edits = verdict.kind === 'accept' ? (verdict.actions?.headers ?? []) : [];
    const sig = edits.find((e) => e.op === 'insert' && e.name === 'DKIM-Signature');
    assert.ok(sig !== undefined, `no DKIM-Signature in ${JSON.stringify(edits)}\n${odk.output()}`);
    assert.match(sig.op === 'insert' ? sig.value : '', /\bd=example\.org;/);
    assert.match(sig.op === 'insert' ? sig.value : '', /\bs=sel;/);
    return { verdict, final: applyEdits(clientMessage, edits, writer) };
  };

  test('an ASCII message from a@example.org is signed, and dkimpy and Tern verify the signature', async () => {
    const msg = crlf(
      [
        'From: Alice <a@example.org>',
        'To: Bob <b@example.net>',
        'Subject: a folded',
        '  subject line',
        'Date: Mon, 1 Jan 2024 00:00:00 +0000',
        'Message-ID: <m1@example.org>',
        '',
        'Hello Bob,',
        '',
        `${'x'.repeat(70)}\n`.repeat(2000) + 'bye',
        '',
      ].join('\n'),
    );
    const { verdict, final } = await signedBy(msg, 'a@example.org', 'b@example.net');
    if (verdict.kind === 'accept') {
      const e = verdict.actions!.headers![0]!;
      console.log(`# OpenDKIM answered: ${e.op} ${JSON.stringify(e)}`);
    }
    assert.equal(dkimpyVerify(final, zone), true);
    assert.deepEqual(await ternVerify(final, zone), ['pass']);
    // A negative control: the same message with one body byte changed fails in both.
    const tampered = Buffer.from(final.toString('utf8').replace('Hello Bob', 'Hello Bib'), 'utf8');
    assert.equal(dkimpyVerify(tampered, zone), false);
    assert.deepEqual(await ternVerify(tampered, zone), ['fail']);
  });

  test('the UTF-8 twin: From: Jürgen <jürgen@example.org>, an encoded UTF-8 Subject and a UTF-8 body', async () => {
    const msg = crlf(
      [
        'From: Jürgen <jürgen@example.org>',
        'To: 日本 <日本@example.net>',
        'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=',
        'Date: Mon, 1 Jan 2024 00:00:00 +0000',
        'Message-ID: <m2@example.org>',
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
        '',
        'Grüße, 日本語のテキスト.',
        '',
      ].join('\n'),
    );
    const { verdict, final } = await signedBy(msg, 'jürgen@example.org', '日本@example.net');
    if (verdict.kind === 'accept')
      console.log(`# OpenDKIM answered (UTF-8): ${JSON.stringify(verdict.actions!.headers![0])}`);
    assert.equal(dkimpyVerify(final, zone), true);
    assert.deepEqual(await ternVerify(final, zone), ['pass']);
  });

  test('two messages on one milter connection, an aborted transaction between them', async () => {
    const received: Buffer[] = [];
    let connections = 0;
    const tap: Dial = async (address, signal) => {
      const stream = await dial(address, signal);
      connections++;
      stream.on('data', (d: Buffer) => received.push(d));
      return stream;
    };
    const filter = new MilterFilter({
      name: 'milter:opendkim',
      address: odk.address,
      timeoutMs: 20_000,
      onFailure: 'tempfail',
      dial: tap,
      hostname: 'mx.tern.test',
    });
    const session = filter.open(CLIENT);
    const signal = AbortSignal.timeout(20_000);
    const at = (mailFrom: string, extra: Partial<FilterContext> = {}): FilterContext => ({
      client: CLIENT,
      queueId: null,
      mailFrom,
      mailParams: new Map(),
      recipients: [],
      facts: {},
      ...extra,
    });
    const finals: Verdict[] = [];
    try {
      assert.equal((await session.check('connect', at(''), signal)).kind, 'accept');
      assert.equal((await session.check('helo', at(''), signal)).kind, 'accept');
      // A transaction the client abandons (RSET after RCPT).
      assert.equal((await session.check('mail', at('a@example.org'), signal)).kind, 'accept');
      assert.equal(
        (await session.check('rcpt', at('a@example.org', { rcpt: 'x@example.net' }), signal)).kind,
        'accept',
      );
      session.reset!();
      for (const [from, rcpt] of [
        ['a@example.org', 'b@example.net'],
        ['jürgen@example.org', '日本@example.net'],
      ] as const) {
        const msg = crlf([`From: <${from}>`, `To: <${rcpt}>`, 'Subject: again', '', 'body', ''].join('\n'));
        assert.equal((await session.check('mail', at(from), signal)).kind, 'accept');
        assert.equal((await session.check('rcpt', at(from, { rcpt }), signal)).kind, 'accept');
        const message = stored(msg);
        const v = await session.check(
          'message',
          at(from, { queueId: 'Q2', recipients: [rcpt], message }),
          signal,
        );
        finals.push(v);
        const edits = v.kind === 'accept' ? (v.actions?.headers ?? []) : [];
        assert.equal(dkimpyVerify(applyEdits(msg, edits, 'exact'), zone), true, JSON.stringify(v));
        session.reset!();
      }
    } finally {
      session.close!();
    }
    assert.equal(connections, 1);
    assert.deepEqual(
      finals.map((v) => v.kind),
      ['accept', 'accept'],
    );
    // What OpenDKIM negotiated: its OPTNEG reply is the first frame it sent.
    const first = Buffer.concat(received);
    assert.equal(first.toString('latin1', 4, 5), 'O');
    const [version, actions, flags] = [first.readUInt32BE(5), first.readUInt32BE(9), first.readUInt32BE(13)];
    console.log(
      `# OpenDKIM OPTNEG: version ${version}, actions 0x${actions.toString(16)}, flags 0x${flags.toString(16)}`,
    );
    assert.equal(version, 6);
    assert.ok((actions & 0x01) !== 0, 'OpenDKIM asks to add header fields');
  });

  // formatField (src/protocol/header-edit.ts) must keep CRLF folds: OpenDKIM hashed them under c=simple.
  test('the signed message written by the intake (applyFieldEdits) verifies too', async () => {
    const msg = crlf(['From: a@example.org', 'To: b@example.net', 'Subject: hi', '', 'body', ''].join('\n'));
    const { final } = await signedBy(msg, 'a@example.org', 'b@example.net', 'intake');
    assert.equal(dkimpyVerify(final, zone), true);
    assert.deepEqual(await ternVerify(final, zone), ['pass']);
  });

  test('mail from another domain is not signed: OpenDKIM accepts it with no edits', async () => {
    const msg = crlf(['From: c@example.com', 'To: b@example.net', 'Subject: hi', '', 'body', ''].join('\n'));
    const verdicts = await drive(odk, 'c@example.com', 'b@example.net', msg);
    const last = verdicts[4]!;
    assert.equal(last.kind, 'accept');
    const names = last.kind === 'accept' ? (last.actions?.headers ?? []).map((e) => e.name) : [];
    assert.ok(!names.includes('DKIM-Signature'), JSON.stringify(last));
    console.log(`# OpenDKIM answered (example.com): ${JSON.stringify(last)}`);
  });
});
