// Tests of the transaction plan (what may be sent to this server, with which parameters) and of the
// reply matching (pipelined replies in order, RFC 2920 §3.1) into per-recipient results.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EnvelopeRecipient } from '../../../core/envelope.ts';
import type { Capabilities } from './capabilities.ts';
import { NO_CAPABILITIES } from './capabilities.ts';
import { makeReply } from './reply-parser.ts';
import type { TransactionRequest } from './transaction.ts';
import {
  evaluateEnvelope,
  evaluateFinal,
  evaluateLmtpFinal,
  failAll,
  localFailure,
  planTransaction,
  statusOf,
} from './transaction.ts';

const FULL: Capabilities = {
  ...NO_CAPABILITIES,
  esmtp: true,
  pipelining: true,
  size: true,
  sizeLimitBytes: 1000,
  eightBitMime: true,
  smtputf8: true,
  chunking: false,
  binaryMime: false,
  dsn: true,
  enhancedStatusCodes: true,
};

const rcpt = (address: string, extra: Partial<EnvelopeRecipient> = {}): EnvelopeRecipient => ({
  address,
  notify: null,
  orcpt: null,
  ...extra,
});

function request(
  over: Partial<TransactionRequest['envelope']> = {},
  rest: Partial<TransactionRequest> = {},
): TransactionRequest {
  return {
    envelope: { sender: 's@example.org', body: '7BIT', smtputf8: false, ret: null, envid: null, ...over },
    recipients: [rcpt('a@example.net'), rcpt('b@example.net')],
    sizeBytes: 500,
    ...rest,
  };
}

const r = (code: number, text = 'x') => makeReply(code, [text]);

function plan(req: TransactionRequest, caps: Capabilities) {
  const p = planTransaction(req, caps);
  assert.ok(p.ok, JSON.stringify(p));
  return p.plan;
}

describe('planTransaction', () => {
  test('all parameters when the server offers them', () => {
    const p = plan(
      request(
        { body: '8BITMIME', ret: 'HDRS', envid: 'id 1' },
        {
          recipients: [
            rcpt('a@example.net', {
              notify: ['FAILURE'],
              orcpt: { addrType: 'rfc822', address: 'o@example.net' },
            }),
          ],
        },
      ),
      FULL,
    );
    assert.equal(p.mailCommand, 'MAIL FROM:<s@example.org> SIZE=500 BODY=8BITMIME RET=HDRS ENVID=id+201\r\n');
    assert.deepEqual(p.recipients, [
      {
        address: 'a@example.net',
        command: 'RCPT TO:<a@example.net> NOTIFY=FAILURE ORCPT=rfc822;o@example.net\r\n',
      },
    ]);
    assert.equal(p.content, 'data');
    assert.equal(p.pipelining, true);
    assert.equal(p.smtputf8, false);
  });

  test('without DSN, SIZE and 8BITMIME no such parameter is sent', () => {
    const p = plan(
      request(
        { body: '8BITMIME', ret: 'FULL', envid: 'x' },
        {
          recipients: [rcpt('a@example.net', { notify: [], orcpt: { addrType: 'rfc822', address: 'o@x' } })],
        },
      ),
      { ...NO_CAPABILITIES, esmtp: true },
    );
    assert.equal(p.mailCommand, 'MAIL FROM:<s@example.org>\r\n');
    assert.equal(p.recipients[0]!.command, 'RCPT TO:<a@example.net>\r\n');
    assert.equal(p.pipelining, false);
  });

  test('a message bigger than SIZE fails permanently with 5.3.4 before anything is sent', () => {
    const p = planTransaction(request({}, { sizeBytes: 1001 }), FULL);
    assert.ok(!p.ok);
    assert.equal(p.failure.status, '5.3.4');
    assert.equal(p.failure.temporary, false);
    assert.match(p.failure.reason, /1001 bytes exceeds .* 1000 bytes/);
    assert.ok(planTransaction(request({}, { sizeBytes: 1000 }), FULL).ok);
    assert.ok(planTransaction(request({}, { sizeBytes: 10 ** 9 }), { ...FULL, sizeLimitBytes: null }).ok);
  });

  test('SMTPUTF8 needed but not offered: 5.6.7; offered: the MAIL carries it', () => {
    const noUtf8 = { ...FULL, smtputf8: false };
    for (const req of [
      request({ smtputf8: true }),
      request({ sender: 'j\u00f6rg@example.org' }),
      request({}, { recipients: [rcpt('\u00e9@example.net')] }),
    ]) {
      const p = planTransaction(req, noUtf8);
      assert.ok(!p.ok);
      assert.equal(p.failure.status, '5.6.7');
      assert.equal(p.failure.temporary, false);
    }
    const p = plan(request({ smtputf8: true, sender: 'j\u00f6rg@example.org' }), FULL);
    assert.match(p.mailCommand, /^MAIL FROM:<j\u00f6rg@example\.org> SIZE=500 SMTPUTF8\r\n$/);
  });

  test('an IDN domain alone needs no SMTPUTF8: it goes as A-labels', () => {
    const p = plan(request({}, { recipients: [rcpt('a@b\u00fccher.example')] }), {
      ...FULL,
      smtputf8: false,
    });
    assert.equal(p.recipients[0]!.command, 'RCPT TO:<a@xn--bcher-kva.example>\r\n');
    assert.equal(p.recipients[0]!.address, 'a@b\u00fccher.example');
  });

  test('the caller may say a flagged message does not need SMTPUTF8 after all', () => {
    assert.ok(
      planTransaction(request({ smtputf8: true }, { smtputf8Required: false }), { ...FULL, smtputf8: false })
        .ok,
    );
  });

  test('BINARYMIME needs CHUNKING and BINARYMIME, else 5.6.3', () => {
    for (const caps of [FULL, { ...FULL, chunking: true }, { ...FULL, binaryMime: true }]) {
      const p = planTransaction(request({ body: 'BINARYMIME' }), caps);
      assert.ok(!p.ok);
      assert.equal(p.failure.status, '5.6.3');
    }
    const p = plan(request({ body: 'BINARYMIME' }), { ...FULL, chunking: true, binaryMime: true });
    assert.equal(p.content, 'bdat-binary');
    assert.match(p.mailCommand, / BODY=BINARYMIME/);
    assert.equal(plan(request(), { ...FULL, chunking: true }).content, 'bdat');
  });

  test('a recipient with a control character is refused locally; the others go', () => {
    const p = plan(request({}, { recipients: [rcpt('a@x\r\nDATA'), rcpt('b@example.net')] }), FULL);
    assert.deepEqual(
      p.refused.map((x) => [x.address, x.verdict, x.status]),
      [['a@x\r\nDATA', 'permanent', '5.1.3']],
    );
    assert.equal(p.recipients.length, 1);
  });

  test('a sender with a control character fails the message', () => {
    const p = planTransaction(request({ sender: 'a@x>\r\nRSET' }), FULL);
    assert.ok(!p.ok);
    assert.equal(p.failure.status, '5.1.7');
  });
});

describe('evaluateEnvelope', () => {
  const p = plan(request(), FULL);

  test('all accepted, DATA 354: send the content', () => {
    const o = evaluateEnvelope(p, { mail: r(250), rcpts: [r(250), r(251)], data: r(354) });
    assert.deepEqual(o, { next: 'content', accepted: ['a@example.net', 'b@example.net'], refused: [] });
  });

  test('one recipient refused permanently, one temporarily: verdicts per recipient', () => {
    const o = evaluateEnvelope(p, {
      mail: r(250),
      rcpts: [makeReply(550, ['5.1.1 no such user']), makeReply(250, ['ok'])],
      data: null,
    });
    assert.equal(o.next, 'content');
    assert.ok(o.next === 'content');
    assert.deepEqual(o.accepted, ['b@example.net']);
    assert.deepEqual(
      o.refused.map((x) => [x.address, x.verdict, x.status, x.reply?.text]),
      [['a@example.net', 'permanent', '5.1.1', 'no such user']],
    );
    const o2 = evaluateEnvelope(p, { mail: r(250), rcpts: [r(452), r(250)], data: null });
    assert.ok(o2.next === 'content');
    assert.deepEqual(o2.refused[0]!.verdict, 'temporary');
    assert.deepEqual(o2.refused[0]!.status, '4.0.0');
  });

  test('MAIL refused: every recipient gets its reply; a pipelined 354 must be ended with an empty message', () => {
    const o = evaluateEnvelope(p, {
      mail: makeReply(553, ['5.7.1 sender rejected']),
      rcpts: [r(503), r(503)],
      data: r(354),
    });
    assert.ok(o.next === 'fail');
    assert.equal(o.endEmptyData, true);
    assert.equal(o.result.kind, 'failed');
    assert.ok(o.result.kind === 'failed');
    assert.equal(o.result.stage, 'mail');
    assert.deepEqual(
      o.result.recipients.map((x) => [x.address, x.verdict, x.status]),
      [
        ['a@example.net', 'permanent', '5.7.1'],
        ['b@example.net', 'permanent', '5.7.1'],
      ],
    );
    const o2 = evaluateEnvelope(p, { mail: r(421), rcpts: [], data: null });
    assert.ok(o2.next === 'fail' && o2.result.kind === 'failed');
    assert.equal(o2.endEmptyData, false);
    assert.equal(o2.result.temporary, true);
    assert.equal(o2.result.recipients.length, 2);
  });

  test('no recipient accepted: failed, each with its own reply', () => {
    const o = evaluateEnvelope(p, {
      mail: r(250),
      rcpts: [r(550), r(450)],
      data: makeReply(554, ['5.5.1 no valid recipients']),
    });
    assert.ok(o.next === 'fail' && o.result.kind === 'failed');
    assert.equal(o.endEmptyData, false);
    assert.equal(o.result.stage, 'rcpt');
    assert.deepEqual(
      o.result.recipients.map((x) => x.verdict),
      ['permanent', 'temporary'],
    );
    const o2 = evaluateEnvelope(p, { mail: r(250), rcpts: [r(550), r(550)], data: r(354) });
    assert.ok(o2.next === 'fail');
    assert.equal(o2.endEmptyData, true);
  });

  test('DATA refused after accepted recipients: those get the DATA reply, refused ones keep theirs', () => {
    const o = evaluateEnvelope(p, {
      mail: r(250),
      rcpts: [r(550), r(250)],
      data: makeReply(451, ['4.3.0 later']),
    });
    assert.ok(o.next === 'fail' && o.result.kind === 'failed');
    assert.equal(o.result.stage, 'data');
    assert.deepEqual(
      o.result.recipients.map((x) => [x.address, x.verdict, x.status]),
      [
        ['a@example.net', 'permanent', '5.0.0'],
        ['b@example.net', 'temporary', '4.3.0'],
      ],
    );
  });

  test('a missing RCPT reply (a server that said less than it was asked) is temporary', () => {
    const o = evaluateEnvelope(p, { mail: r(250), rcpts: [r(250)], data: null });
    assert.ok(o.next === 'content');
    assert.deepEqual(
      o.refused.map((x) => [x.address, x.verdict]),
      [['b@example.net', 'temporary']],
    );
  });
});

describe('evaluateLmtpFinal (RFC 2033 §4.2)', () => {
  test('each accepted recipient takes its own reply: delivered, deferred or bounced', () => {
    const res = evaluateLmtpFinal(
      ['a@b', 'jürgen@b', '日本@b'],
      [],
      [makeReply(250, ['2.0.0 ok']), makeReply(452, ['4.2.2 full']), makeReply(550, ['5.1.1 gone'])],
    );
    assert.equal(res.kind, 'sent');
    assert.deepEqual(
      res.recipients.map((x) => [x.address, x.verdict, x.status]),
      [
        ['a@b', 'delivered', '2.0.0'],
        ['jürgen@b', 'temporary', '4.2.2'],
        ['日本@b', 'permanent', '5.1.1'],
      ],
    );
  });

  test('no recipient delivered: failed, with each recipient still carrying its own reply', () => {
    const res = evaluateLmtpFinal(
      ['a@b', 'c@d'],
      [],
      [makeReply(452, ['4.3.0 later']), makeReply(550, ['5.1.1 no'])],
    );
    assert.ok(res.kind === 'failed' && !res.temporary, 'a permanent refusal among them is final');
    const later = evaluateLmtpFinal(['a@b'], [], [makeReply(451, ['4.3.0 later'])]);
    assert.ok(later.kind === 'failed' && later.temporary);
    assert.deepEqual(
      res.recipients.map((x) => x.verdict),
      ['temporary', 'permanent'],
    );
  });
});

describe('evaluateFinal and helpers', () => {
  test('250 after the content: the accepted recipients are delivered', () => {
    const refused = [
      { address: 'x@y', verdict: 'permanent' as const, status: '5.1.1', reply: r(550), reason: 'no' },
    ];
    const res = evaluateFinal(['a@b'], refused, makeReply(250, ['2.0.0 queued as X']));
    assert.equal(res.kind, 'sent');
    assert.deepEqual(
      res.recipients.map((x) => [x.address, x.verdict, x.status]),
      [
        ['x@y', 'permanent', '5.1.1'],
        ['a@b', 'delivered', '2.0.0'],
      ],
    );
  });

  test('4xx or 5xx after the content: failed, temporary or not', () => {
    const t = evaluateFinal(['a@b'], [], r(452));
    assert.ok(t.kind === 'failed' && t.temporary && t.stage === 'end-of-data');
    const p = evaluateFinal(['a@b'], [], makeReply(554, ['5.7.1 spam']));
    assert.ok(p.kind === 'failed' && !p.temporary && p.status === '5.7.1');
    assert.equal(p.recipients[0]!.verdict, 'permanent');
  });

  test('statusOf and failAll', () => {
    assert.equal(statusOf(r(250)), '2.0.0');
    assert.equal(statusOf(r(421)), '4.0.0');
    assert.equal(statusOf(r(554)), '5.0.0');
    assert.equal(statusOf(r(354)), '4.0.0');
    const res = failAll(['a', 'b'], localFailure('content', 'timeout'));
    assert.ok(res.kind === 'failed');
    assert.deepEqual(
      res.recipients.map((x) => [x.address, x.verdict, x.status, x.reply]),
      [
        ['a', 'temporary', '4.4.2', null],
        ['b', 'temporary', '4.4.2', null],
      ],
    );
  });
});
