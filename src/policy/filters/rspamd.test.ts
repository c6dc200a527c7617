import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FilterClient, HeaderField, Verdict } from './filter.ts';
import {
  formatCheckRequest,
  parseRspamdAnswer,
  parseRspamdUrl,
  rspamdVerdict,
  type RspamdAnswer,
} from './rspamd.ts';

const enc = (s: string): Uint8Array => Buffer.from(s, 'utf8');

const CLIENT: FilterClient = {
  ip: '192.0.2.10',
  port: 40000,
  hostname: 'client.example.org',
  helo: 'client.example.org',
  tls: false,
  authUser: null,
  service: 'smtp',
  localAddress: '127.0.0.1',
  localPort: 25,
};

// rspamd 3.4's answers in test/filters/rspamd.test.ts's setup (symbols trimmed).
const GTUBE_ANSWER =
  '{"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0.0,"metric_score":0.0}},"messages":{"smtp_message":"Gtube pattern"},"message-id":"undef","time_real":0.230745}';
const ADD_HEADER_ANSWER =
  '{"is_skipped":false,"score":7.9,"required_score":15.0,"action":"add header","symbols":{"TERN_TEST_ADD_HEADER":{"name":"TERN_TEST_ADD_HEADER","score":8.0},"MIME_GOOD":{"name":"MIME_GOOD","score":-0.1,"options":["text/plain"]}},"messages":{},"message-id":"abc@example.org","milter":{"remove_headers":{"X-Spamd-Result":0,"X-Rspamd-Queue-Id":0,"X-Spam":0,"X-Spam-Status":0},"add_headers":{"X-Spamd-Result":{"order":-1,"value":"default: False [7.90 / 15.00];\\r\\n\\tTERN_TEST_ADD_HEADER(8.00)[];\\r\\n\\tMIME_GOOD(-0.10)[text/plain]"},"X-Rspamd-Queue-Id":{"order":-1,"value":"Q1"},"X-Spam-Status":{"order":-1,"value":"Yes, score=7.90"}}}}';

function answer(over: Partial<RspamdAnswer> = {}): RspamdAnswer {
  return {
    action: 'no action',
    score: 1.5,
    requiredScore: 15,
    subject: null,
    smtpMessage: null,
    symbols: [{ name: 'ONCE_RECEIVED', score: 0.1 }],
    removeHeaders: [],
    addHeaders: [],
    addRecipients: [],
    deleteRecipients: [],
    ...over,
  };
}

function parsed(json: string): RspamdAnswer {
  const p = parseRspamdAnswer(enc(json));
  assert.ok(p.ok, JSON.stringify(p));
  return p.value;
}

const edits = (v: Verdict) => ('actions' in v ? (v.actions?.headers ?? []) : []);

describe('rspamd: base URL', () => {
  test('host and port for the Dial port, the Host header, a path prefix', () => {
    assert.deepEqual(parseRspamdUrl('http://127.0.0.1:11333'), {
      address: '127.0.0.1:11333',
      host: '127.0.0.1:11333',
      path: '',
    });
    assert.deepEqual(parseRspamdUrl('http://[::1]:11333/'), {
      address: '[::1]:11333',
      host: '[::1]:11333',
      path: '',
    });
    assert.deepEqual(parseRspamdUrl('http://rspamd.example/scan/'), {
      address: 'rspamd.example:80',
      host: 'rspamd.example',
      path: '/scan',
    });
    for (const bad of [
      'https://127.0.0.1:11333',
      'http://u:p@127.0.0.1',
      'http://h/?q=1',
      '127.0.0.1:11333',
      '',
    ])
      assert.equal(parseRspamdUrl(bad), null, bad);
  });
});

describe('rspamd: the request head', () => {
  const target = parseRspamdUrl('http://127.0.0.1:11333')!;

  test('ASCII: every protocol header, one Rcpt per recipient', () => {
    const head = formatCheckRequest(
      target,
      {
        client: { ...CLIENT, authUser: 'mail' },
        queueId: 'Q1',
        mailFrom: 'sender@example.org',
        recipients: ['a@example.net', 'b@example.net'],
      },
      1234,
      'secret',
    );
    assert.equal(
      Buffer.from(head).toString('utf8'),
      [
        'POST /checkv2 HTTP/1.1',
        'Host: 127.0.0.1:11333',
        'Content-Length: 1234',
        'Connection: close',
        'IP: 192.0.2.10',
        'Helo: client.example.org',
        'Hostname: client.example.org',
        'From: sender@example.org',
        'Rcpt: a@example.net',
        'Rcpt: b@example.net',
        'Queue-Id: Q1',
        'User: mail',
        'Password: secret',
        '',
        '',
      ].join('\r\n'),
    );
  });

  test('UTF-8: a UTF-8 local part is left out (rspamd 3.4 flags it BROKEN_HEADERS), a UTF-8 domain goes as its A-label', () => {
    const head = Buffer.from(
      formatCheckRequest(
        target,
        {
          client: { ...CLIENT, hostname: null, authUser: 'jürgen' },
          queueId: null,
          mailFrom: 'jürgen@example.org',
          recipients: ['日本@example.net', 'bob@exämple.org'],
        },
        10,
        null,
      ),
    ).toString('utf8');
    assert.doesNotMatch(head, /^From:/m);
    assert.doesNotMatch(head, /日本/);
    assert.match(head, /^Rcpt: bob@xn--exmple-cua\.org\r$/m);
    assert.equal(head.match(/^Rcpt:/gm)?.length, 1);
    assert.match(head, /^User: jürgen\r$/m);
    assert.doesNotMatch(head, /^(Hostname|Queue-Id|Password):/m);
  });

  test('the null sender is <>; controls in values are dropped (no header injection)', () => {
    const head = Buffer.from(
      formatCheckRequest(
        target,
        {
          client: { ...CLIENT, helo: 'evil\r\nRcpt: x@y' },
          queueId: 'Q2',
          mailFrom: '',
          recipients: ['a@example.net'],
        },
        1,
        null,
      ),
    ).toString('utf8');
    assert.match(head, /^From: <>\r$/m);
    assert.match(head, /^Helo: evilRcpt: x@y\r$/m);
    assert.equal(head.match(/^Rcpt:/gm)?.length, 1);
  });
});

describe('rspamd: the JSON answer', () => {
  test('real answers: GTUBE, add header with milter headers (folded values unfolded)', () => {
    const g = parsed(GTUBE_ANSWER);
    assert.deepEqual(
      [g.action, g.score, g.requiredScore, g.smtpMessage],
      ['reject', 15, 15, 'Gtube pattern'],
    );
    const a = parsed(ADD_HEADER_ANSWER);
    assert.equal(a.action, 'add header');
    assert.deepEqual(a.removeHeaders, [
      { name: 'X-Spamd-Result', occurrence: 0 },
      { name: 'X-Rspamd-Queue-Id', occurrence: 0 },
      { name: 'X-Spam', occurrence: 0 },
      { name: 'X-Spam-Status', occurrence: 0 },
    ]);
    assert.deepEqual(a.addHeaders[0], {
      name: 'X-Spamd-Result',
      value: 'default: False [7.90 / 15.00];\tTERN_TEST_ADD_HEADER(8.00)[];\tMIME_GOOD(-0.10)[text/plain]',
      order: null,
    });
  });

  test("bad answers: not JSON, not an object, no or an unknown action, no score; rspamd's error field kept", () => {
    const bad: [string, RegExp][] = [
      ['{"action": "reject", "score": 1', /not JSON/],
      ['<html>busy</html>', /not JSON/],
      ['\xff\xfe', /not JSON/],
      ['[1,2]', /not a JSON object/],
      ['{"score": 3}', /no action/],
      ['{"action": "bounce", "score": 3}', /unknown action "bounce"/],
      ['{"action": "reject"}', /no score/],
      ['{"action": "reject", "score": "high"}', /no score/],
    ];
    for (const [json, reason] of bad) {
      const p = parseRspamdAnswer(Buffer.from(json, 'latin1'));
      assert.equal(p.ok, false, json);
      if (!p.ok) assert.match(p.reason, reason, json);
    }
    const e = parseRspamdAnswer(enc('{"error":"cannot parse\\r\\ninput"}'));
    assert.ok(!e.ok && e.error === 'cannot parse  input');
  });

  test('milter headers in every form; hostile names and values made safe; recipients', () => {
    const a = parsed(
      JSON.stringify({
        action: 'no action',
        score: 0,
        milter: {
          add_headers: {
            'X-One': 'plain',
            'X-Two': { value: 'at top', order: 0 },
            'X-Three': [{ value: 'a', order: -1 }, 'b'],
            'X-Evil\r\nBcc': 'dropped',
            'X-Inject': 'v\r\nBcc: victim@example.org',
            'X-Bad': { novalue: true },
          },
          remove_headers: { 'X-Old': 2, 'X-Last': -1, 'X-Str': 'all', 'Bad Name': 0 },
          add_rcpt: ['archive@example.org', 'not an address'],
          del_rcpt: 'old@example.org',
        },
      }),
    );
    assert.deepEqual(a.addHeaders, [
      { name: 'X-One', value: 'plain', order: null },
      { name: 'X-Two', value: 'at top', order: 0 },
      { name: 'X-Three', value: 'a', order: null },
      { name: 'X-Three', value: 'b', order: null },
      { name: 'X-Inject', value: 'v  Bcc: victim@example.org', order: null },
    ]);
    assert.deepEqual(a.removeHeaders, [
      { name: 'X-Old', occurrence: 2 },
      { name: 'X-Last', occurrence: -1 },
    ]);
    assert.deepEqual(a.addRecipients, ['archive@example.org']);
    assert.deepEqual(a.deleteRecipients, ['old@example.org']);
  });
});

describe('rspamd: verdicts', () => {
  const received: HeaderField[] = [
    { name: 'Subject', value: 'Lunch', raw: ' Lunch' },
    { name: 'X-Spam', value: 'No', raw: ' No' },
    { name: 'x-spam', value: 'No', raw: ' No' },
    { name: 'X-Rspamd-Action', value: 'no action, score=-100', raw: ' no action, score=-100' },
  ];

  test("reject: 554 5.7.1 with rspamd's SMTP message, or one naming the score", () => {
    const v = rspamdVerdict(parsed(GTUBE_ANSWER), received, true);
    assert.equal(v.kind, 'reject');
    if (v.kind === 'reject') {
      assert.deepEqual([v.reply.code, v.reply.enhanced, v.reply.text], [554, '5.7.1', 'Gtube pattern']);
      assert.match(v.reason, /^rspamd: reject, score 15\.00 \/ 15\.00 \[GTUBE\(0\.00\)\]$/);
    }
    const plain = rspamdVerdict(answer({ action: 'reject', score: 21.5 }), received, true);
    assert.ok(plain.kind === 'reject' && plain.reply.text === 'Message rejected as spam (score 21.50)');
  });

  test('soft reject: 451 4.7.1; greylist: 451 4.7.1 when greylisted, a score when only over the threshold', () => {
    const soft = rspamdVerdict(
      answer({ action: 'soft reject', smtpMessage: 'Ratelimit exceeded' }),
      received,
      true,
    );
    assert.ok(soft.kind === 'defer');
    if (soft.kind === 'defer')
      assert.deepEqual(
        [soft.reply.code, soft.reply.enhanced, soft.reply.text],
        [451, '4.7.1', 'Ratelimit exceeded'],
      );
    const grey = rspamdVerdict(
      answer({ action: 'greylist', symbols: [{ name: 'GREYLIST', score: 0 }] }),
      received,
      true,
    );
    assert.ok(grey.kind === 'defer' && grey.reply.code === 451 && /greylisted/i.test(grey.reply.text));
    const greyMessage = rspamdVerdict(
      answer({ action: 'greylist', smtpMessage: 'Try again later' }),
      received,
      true,
    );
    assert.ok(greyMessage.kind === 'defer' && greyMessage.reply.text === 'Try again later');
    const scoreOnly = rspamdVerdict(answer({ action: 'greylist', score: 5 }), received, true);
    assert.equal(scoreOnly.kind, 'score');
    assert.match(scoreOnly.kind === 'score' ? scoreOnly.reason : '', /no greylisting/);
  });

  test("add header: Junk (or a score), rspamd's removals first then its fields, X-Spam: Yes", () => {
    const a = parsed(ADD_HEADER_ANSWER);
    const v = rspamdVerdict(a, received, true);
    assert.equal(v.kind, 'quarantine');
    assert.deepEqual(edits(v), [
      { op: 'change', name: 'X-Spam', occurrence: 2, value: null },
      { op: 'change', name: 'X-Spam', occurrence: 1, value: null },
      {
        op: 'add',
        name: 'X-Spamd-Result',
        value: 'default: False [7.90 / 15.00];\tTERN_TEST_ADD_HEADER(8.00)[];\tMIME_GOOD(-0.10)[text/plain]',
      },
      { op: 'add', name: 'X-Rspamd-Queue-Id', value: 'Q1' },
      { op: 'add', name: 'X-Spam-Status', value: 'Yes, score=7.90' },
      { op: 'add', name: 'X-Spam', value: 'Yes' },
    ]);
    const scored = rspamdVerdict(a, received, false);
    assert.equal(scored.kind, 'score');
    assert.deepEqual(edits(scored), edits(v));
  });

  test("rewrite subject: the Subject changed to rspamd's, X-Spam: Yes, Junk", () => {
    const v = rspamdVerdict(
      answer({ action: 'rewrite subject', score: 12, subject: '***SPAM*** Lunch' }),
      received,
      true,
    );
    assert.equal(v.kind, 'quarantine');
    const e = edits(v);
    assert.deepEqual(e.slice(0, 2), [
      { op: 'add', name: 'X-Spam', value: 'Yes' },
      { op: 'change', name: 'Subject', occurrence: 1, value: '***SPAM*** Lunch' },
    ]);
  });

  test('no action: a score; without milter headers one X-Rspamd-Action of ours (a forged one removed)', () => {
    const v = rspamdVerdict(answer({ score: -0.25 }), received, true);
    assert.equal(v.kind, 'score');
    if (v.kind === 'score') assert.equal(v.score, -0.25);
    assert.deepEqual(edits(v), [
      { op: 'change', name: 'X-Rspamd-Action', occurrence: 1, value: null },
      { op: 'add', name: 'X-Rspamd-Action', value: 'no action, score=-0.25 required=15.00' },
    ]);
  });

  test('remove_headers: 0 is all, n the nth, -1 the last, none that does not exist; insert at an order', () => {
    const v = rspamdVerdict(
      answer({
        removeHeaders: [
          { name: 'x-spam', occurrence: -1 },
          { name: 'Subject', occurrence: 2 },
          { name: 'X-Absent', occurrence: 0 },
        ],
        addHeaders: [{ name: 'X-Top', value: 'first', order: 0 }],
      }),
      received,
      true,
    );
    assert.deepEqual(edits(v), [
      { op: 'change', name: 'x-spam', occurrence: 2, value: null },
      { op: 'insert', index: 0, name: 'X-Top', value: 'first' },
    ]);
  });

  test('discard and quarantine actions; recipients rspamd adds or removes', () => {
    assert.equal(rspamdVerdict(answer({ action: 'discard' }), received, true).kind, 'discard');
    const q = rspamdVerdict(
      answer({
        action: 'quarantine',
        addRecipients: ['archive@example.org'],
        deleteRecipients: ['x@example.org'],
      }),
      received,
      false,
    );
    assert.equal(q.kind, 'quarantine');
    if (q.kind === 'quarantine') {
      assert.deepEqual(q.actions?.addRecipients, ['archive@example.org']);
      assert.deepEqual(q.actions?.deleteRecipients, ['x@example.org']);
    }
  });
});
