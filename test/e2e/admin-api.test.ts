// The admin HTTP API end to end (issue 15): a real `tern serve` with an admin listener, mail sent with
// Python's smtplib, the API driven with Node's fetch, /metrics parsed by the Prometheus project's own
// Python parser (prometheus_client). Covers every resource, logins and tokens, CSRF and the other
// refusals (every /api route without credentials, a foreign Host, another Origin), problem details, and
// an HTML message with a script and a remote image served only sandboxed.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Tern } from './harness.ts';
import { havePython, runProcess, smtplib, waitFor } from './harness.ts';
import {
  AdminClient,
  addAdmin,
  assertProblem,
  httpsRequest,
  newToken,
  rawGet,
  startAdminTern,
} from './admin-helpers.ts';
import { findPython } from './outbound-helpers.ts';

const skip = havePython() ? false : 'python3 is not installed';
const PASSWORD = 'admin password 1';
const USER = 'jürgen@example.test';
const USER_PASSWORD = 'user password 1';
/** Python's smtplib logs in with ASCII only: the submission user is ASCII, the mailbox UTF-8. */
const SENDER = 'sender@example.test';

async function send(
  tern: Tern,
  raw: string,
  from: string,
  to: readonly string[],
  login = false,
): Promise<void> {
  const r = await smtplib({
    port: login ? tern.ports.submission : tern.ports.smtp,
    mode: 'starttls',
    ...(login ? { login: [SENDER, USER_PASSWORD] as const } : {}),
    action: 'sendmail',
    from,
    to,
    raw: raw.replace(/\r?\n/g, '\r\n'),
    mail_options: ['SMTPUTF8'],
  });
  assert.equal(r.ok, true, JSON.stringify(r));
}

const HTML_MESSAGE = `From: Mallory <mallory@example.net>
To: ${USER}
Subject: =?UTF-8?B?R3LDvMOfZSDinIk=?=
Message-ID: <html-1@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: multipart/alternative; boundary="b2"

--b2
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Grüße aus der Nachricht.
--b2
Content-Type: text/html; charset=utf-8

<html><body><h1>Hallo jürgen</h1><script>parent.document.title='pwned'</script>
<img src="http://198.51.100.7/track.png"></body></html>
--b2--
--b1
Content-Type: application/pdf; name="Rechnung.pdf"
Content-Disposition: attachment; filename="Rechnung.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--b1--
`;

describe('admin API', { skip }, () => {
  let tern: Tern;
  let client: AdminClient;
  let bearer: AdminClient;
  let deferredId: string;

  before(async () => {
    tern = await startAdminTern({
      users: [USER, { address: SENDER, password: USER_PASSWORD }, 'postmaster@example.test'],
    });
    await addAdmin(tern, 'root', PASSWORD);
    await addAdmin(tern, 'jürgen', PASSWORD);
    client = new AdminClient(tern.ports.admin!);
    bearer = new AdminClient(tern.ports.admin!);
    bearer.token = await newToken(tern, 'root');
    // A local message (stored at once) and a remote one (deferred: the relay never answers).
    await send(tern, HTML_MESSAGE, 'mallory@example.net', [USER]);
    await send(
      tern,
      `From: ${SENDER}\nTo: bob@remote.test\nSubject: out\n\nto a remote host\n`,
      SENDER,
      ['bob@remote.test'],
      true,
    );
    await tern.waitForMessages(USER, 1);
    deferredId = await waitFor(
      'the remote message deferred',
      async () => {
        const r = await bearer.get('/api/queue?state=deferred');
        const list = r.json as { messages: { id: string }[] };
        return list.messages[0]?.id;
      },
      20_000,
    );
  });
  after(() => tern?.stop());

  test('/healthz and /readyz answer without a login; /readyz lists its checks', async () => {
    const health = await client.request('GET', '/healthz', { auth: false });
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: 'ok' });
    const ready = await client.request('GET', '/readyz', { auth: false });
    assert.equal(ready.status, 200);
    const body = ready.json as { status: string; checks: { name: string; ok: boolean }[] };
    assert.equal(body.status, 'ready');
    assert.deepEqual(body.checks.map((c) => c.name).sort(), [
      'accepting',
      'directory',
      'disk',
      'queue',
      'store',
    ]);
    assert.ok(body.checks.every((c) => c.ok));
  });

  test('/metrics is Prometheus text that prometheus_client parses, with the counters of what happened', async () => {
    const r = await client.request('GET', '/metrics', { auth: false });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const script = [
      'import sys, json',
      'from prometheus_client.parser import text_string_to_metric_families',
      'out = {}',
      'for f in text_string_to_metric_families(sys.stdin.read()):',
      '    for s in f.samples:',
      '        out.setdefault(s.name, []).append([s.labels, s.value])',
      'print(json.dumps(out))',
    ].join('\n');
    const python = findPython('prometheus_client');
    assert.ok(python, 'python3-prometheus-client is not installed (.ci/run installs it)');
    const parsed = await runProcess(python, ['-c', script], { stdin: r.text });
    assert.equal(parsed.code, 0, parsed.stderr);
    const samples = JSON.parse(parsed.stdout) as Record<string, [Record<string, string>, number][]>;
    const value = (name: string, labels: Record<string, string> = {}): number =>
      (samples[name] ?? [])
        .filter(([l]) => Object.entries(labels).every(([k, v]) => l[k] === v))
        .reduce((n, [, v]) => n + v, 0);
    assert.ok(value('tern_messages_received_total', { via: 'inbound' }) >= 1);
    assert.ok(value('tern_messages_received_total', { via: 'submission' }) >= 1);
    assert.ok(value('tern_connections_total', { service: 'smtp' }) >= 1);
    assert.ok(value('tern_delivery_attempts_total', { result: 'delivered', domain: 'local' }) >= 1);
    assert.ok(value('tern_auth_total', { result: 'success', mechanism: 'PLAIN' }) >= 1);
    assert.ok(value('tern_tls_handshakes_total', { version: 'TLSv1.3' }) >= 2);
    assert.ok(value('tern_received_bytes_total') > 0);
    assert.ok(value('tern_fsync_seconds_count') >= 1, 'the WAL fsyncs are timed');
    assert.equal(value('tern_queue_messages', { state: 'all' }), 1);
    assert.ok(
      value('tern_queue_recipients', { status: 'deferred' }) +
        value('tern_queue_recipients', { status: 'queued' }) ===
        1,
    );
    assert.ok('nodejs_eventloop_lag_seconds' in samples);
    assert.ok('tern_delivery_latency_seconds_bucket' in samples);
  });

  test('every /api route the OpenAPI description lists answers 401 without credentials, except the public ones', async () => {
    const doc = (await client.request('GET', '/api/openapi.json', { auth: false })).json as {
      openapi: string;
      paths: Record<string, Record<string, { security?: unknown[] }>>;
    };
    assert.equal(doc.openapi, '3.1.0');
    const publicOnes: string[] = [];
    let checked = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const url = path.replace(/\{[^}]+\}/g, (m) =>
          m === '{action}' ? 'hold' : m === '{part}' ? '1' : 'x@example.test',
        );
        if (op.security !== undefined && op.security.length === 0) {
          publicOnes.push(`${method.toUpperCase()} ${path}`);
          continue;
        }
        const r = await client.request(
          method.toUpperCase(),
          `${url}${url.includes('message') ? '?id=1&part=1' : ''}`,
          {
            auth: false,
            ...(method === 'get' || method === 'delete' ? {} : { body: {} }),
          },
        );
        assert.equal(r.status, 401, `${method.toUpperCase()} ${url}: ${r.status} ${r.text}`);
        checked++;
      }
    }
    assert.ok(checked >= 30, `only ${checked} routes`);
    assert.deepEqual(publicOnes.sort(), [
      'GET /api/openapi.json',
      'GET /api/status',
      'GET /healthz',
      'GET /metrics',
      'GET /readyz',
      'POST /api/login',
    ]);
  });

  test('logins: wrong password 401, right one a HttpOnly SameSite=Strict cookie and a CSRF token; UTF-8 names', async () => {
    const anon = new AdminClient(tern.ports.admin!);
    assertProblem(await anon.login('root', 'wrong'), 401, /bad-credentials$/);
    assertProblem(await anon.login('nobody', 'wrong'), 401, /bad-credentials$/);
    const ok = await anon.login('jürgen', PASSWORD);
    assert.equal(ok.status, 200, ok.text);
    const cookie = ok.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^tern_admin=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
    const session = await anon.get('/api/session');
    assert.deepEqual(session.json, { name: 'jürgen', via: 'session', csrf: anon.csrf });
    const out = await anon.post('/api/logout');
    assert.equal(out.status, 200);
    assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0/);
    assertProblem(await anon.get('/api/session'), 401);
  });

  test('CSRF: a cookie session changes nothing without the token, with a wrong one, or from another origin', async () => {
    const s = new AdminClient(tern.ports.admin!);
    await s.login('root', PASSWORD);
    assertProblem(
      await s.request('POST', `/api/queue/${deferredId}/hold`, { csrf: false, body: {} }),
      403,
      /csrf$/,
    );
    assertProblem(
      await s.request('POST', `/api/queue/${deferredId}/hold`, {
        csrf: false,
        body: {},
        headers: { 'X-CSRF-Token': 'x'.repeat(43) },
      }),
      403,
      /csrf$/,
    );
    assertProblem(
      await s.request('POST', `/api/queue/${deferredId}/hold`, {
        body: {},
        headers: { Origin: 'http://evil.example' },
      }),
      403,
      /cross-origin$/,
    );
    const held = (await bearer.get(`/api/queue/${deferredId}`)).json as { held: boolean };
    assert.equal(held.held, false, 'nothing was held by the refused requests');
    // The same request with the token works; a bearer token needs none.
    assert.equal((await s.post(`/api/queue/${deferredId}/hold`)).status, 200);
    assert.equal((await bearer.post(`/api/queue/${deferredId}/release`)).status, 200);
  });

  test('a bad bearer token is 401 with a challenge; a foreign Host is refused (DNS rebinding)', async () => {
    const bad = new AdminClient(tern.ports.admin!);
    bad.token = 'tern_000000000000_' + 'A'.repeat(43);
    const r = await bad.get('/api/queue');
    assertProblem(r, 401, /bad-token$/);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    // fetch() keeps Host to itself: node:http sends the names a rebinding page would.
    const auth = { Authorization: `Bearer ${bearer.token!}` };
    const port = tern.ports.admin!;
    const foreign = await rawGet(port, '/api/queue', { ...auth, Host: 'attacker.example:8025' });
    assert.equal(foreign.status, 421, foreign.body);
    assert.match(foreign.body, /wrong-host/);
    assert.equal((await rawGet(port, '/api/queue', { ...auth, Host: 'localhost:8025' })).status, 200);
    assert.equal((await rawGet(port, '/api/queue', { ...auth, Host: 'mx.example.test' })).status, 200);
    assert.equal((await rawGet(port, '/api/queue', { ...auth, Host: '[::1]:8025' })).status, 200);
    assert.equal(
      (await rawGet(port, '/healthz', { Host: 'evil.example.test.attacker.example' })).status,
      421,
    );
  });

  test('security headers: a strict CSP, no sniffing, no framing, no caching of API answers', async () => {
    const r = await bearer.get('/api/queue');
    const csp = r.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const page = await client.request('GET', '/', { auth: false });
    assert.equal(page.status, 200);
    assert.match(page.text, /<script type="module" src="\/app\/main\.ts"><\/script>/);
    assert.doesNotMatch(page.text, /<script>|style=/, 'no inline script or style (the CSP forbids them)');
    const js = await client.request('GET', '/app/main.ts', { auth: false });
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.doesNotMatch(js.text, /: Cleanup \| null/, 'types are stripped');
    assertProblem(await client.request('GET', '/app/../server.ts', { auth: false }), 404);
  });

  test('queue: list with filters and paging, show, source, and each action with the CLI rules', async () => {
    const all = (await bearer.get('/api/queue')).json as {
      total: number;
      messages: { id: string; sender: string }[];
    };
    assert.equal(all.total, 1);
    assert.equal(all.messages[0]!.sender, SENDER);
    assert.equal(((await bearer.get('/api/queue?sender=SENDER%40')).json as { total: number }).total, 1);
    assert.equal(((await bearer.get('/api/queue?recipient=j%C3%BCrgen')).json as { total: number }).total, 0);
    assert.equal(((await bearer.get('/api/queue?domain=remote.test')).json as { total: number }).total, 1);
    assert.equal(((await bearer.get('/api/queue?domain=elsewhere.test')).json as { total: number }).total, 0);
    assert.equal(((await bearer.get('/api/queue?state=held')).json as { total: number }).total, 0);
    assert.equal(
      ((await bearer.get('/api/queue?limit=1&offset=1')).json as { messages: unknown[] }).messages.length,
      0,
    );
    assertProblem(await bearer.get('/api/queue?state=bogus'), 400, /invalid-request$/);
    assertProblem(await bearer.get('/api/queue?limit=100000'), 400);

    const shown = (await bearer.get(`/api/queue/${deferredId}`)).json as {
      headers: string;
      recipients: { address: string; status: string }[];
    };
    assert.match(shown.headers, /Subject: out/);
    assert.equal(shown.recipients[0]!.address, 'bob@remote.test');
    const source = await bearer.get(`/api/queue/${deferredId}/source`);
    assert.match(source.text, /to a remote host/);
    assertProblem(await bearer.get('/api/queue/NOSUCHID'), 404, /not-found$/);

    assert.equal((await bearer.post(`/api/queue/${deferredId}/hold`)).status, 200);
    assert.equal(((await bearer.get('/api/queue?state=held')).json as { total: number }).total, 1);
    // Flushing a held message is refused with the CLI's words.
    const flush = await bearer.post(`/api/queue/${deferredId}/flush`);
    assertProblem(flush, 409, /conflict$/);
    assert.match((flush.json as { detail: string }).detail, /is held: release it first/);
    assert.equal((await bearer.post(`/api/queue/${deferredId}/release`)).status, 200);
    const bulk = (await bearer.post('/api/queue/actions', { action: 'flush', ids: [deferredId, 'NOSUCHID'] }))
      .json as {
      results: { id: string; ok: boolean; error?: string }[];
    };
    assert.deepEqual(
      bulk.results.map((r) => [r.id, r.ok]),
      [
        [deferredId, true],
        ['NOSUCHID', false],
      ],
    );
    assertProblem(await bearer.post('/api/queue/actions', { action: 'hold' }), 422);
    assertProblem(await bearer.post('/api/queue/actions', { action: 'explode', all: true }), 400);
    // What the API did is in the message's trace, with who did it.
    const trace = (await bearer.get(`/api/trace?queueId=${deferredId}`)).json as {
      messages: { events: { event: string; admin?: string }[] }[];
    };
    const events = trace.messages[0]!.events;
    assert.ok(
      events.some((e) => e.event === 'held' && e.admin === 'root'),
      JSON.stringify(events),
    );
    assert.ok(events.some((e) => e.event === 'released'));
  });

  test('trace: search by sender, recipient and Message-ID; received, checked and delivered with the mailbox', async () => {
    const byTo = (await bearer.get(`/api/trace?to=${encodeURIComponent(USER)}`)).json as {
      messages: { queueId: string; events: { event: string; user?: string; time: string }[] }[];
    };
    const local = byTo.messages.find((m) => m.events.some((e) => e.event === 'delivered'));
    assert.ok(local, JSON.stringify(byTo));
    const names = local.events.map((e) => e.event);
    assert.equal(names[0], 'received');
    assert.ok(names.includes('delivered'));
    assert.equal(local.events.find((e) => e.event === 'delivered')!.user, USER);
    const byId = (await bearer.get('/api/trace?messageId=%3Chtml-1%40example.net%3E')).json as {
      messages: { queueId: string }[];
    };
    assert.deepEqual(
      byId.messages.map((m) => m.queueId),
      [local.queueId],
    );
    const byFrom = (await bearer.get('/api/trace?from=mallory%40example.net')).json as {
      messages: unknown[];
    };
    assert.equal(byFrom.messages.length, 1);
    const none = (await bearer.get('/api/trace?from=nobody%40example.net')).json as { messages: unknown[] };
    assert.equal(none.messages.length, 0);
    assertProblem(await bearer.get('/api/trace?since=yesterday'), 400);
  });

  test('mailboxes: folders, messages, the view with text, attachments and Authentication-Results, delete', async () => {
    const u = encodeURIComponent(USER);
    const folders = (await bearer.get(`/api/mailboxes/${u}/folders`)).json as {
      folders: { name: string; messages: number }[];
    };
    assert.equal(folders.folders.find((f) => f.name === 'INBOX')?.messages, 1);
    const list = (await bearer.get(`/api/mailboxes/${u}/messages`)).json as {
      messages: { id: string; subject: string }[];
    };
    assert.equal(list.messages[0]!.subject, 'Grüße ✉');
    const id = list.messages[0]!.id;
    const view = (await bearer.get(`/api/mailboxes/${u}/message?id=${id}`)).json as {
      subject: string;
      text: string;
      htmlPart: string;
      attachments: { part: string; filename: string; contentType: string; size: number }[];
      headers: { name: string }[];
    };
    assert.equal(view.subject, 'Grüße ✉');
    assert.match(view.text, /Grüße aus der Nachricht/);
    assert.equal(view.htmlPart, '1.2');
    assert.deepEqual(view.attachments, [
      { part: '2', filename: 'Rechnung.pdf', contentType: 'application/pdf', size: 9 },
    ]);
    const part = await bearer.get(`/api/mailboxes/${u}/message/part?id=${id}&part=2`);
    assert.equal(part.text, '%PDF-1.4\n');
    assert.equal(part.headers.get('content-type'), 'application/octet-stream');
    assert.match(part.headers.get('content-disposition') ?? '', /^attachment; filename="Rechnung\.pdf"/);
    assertProblem(await bearer.get(`/api/mailboxes/${u}/message?id=999`), 404);
    assertProblem(await bearer.get(`/api/mailboxes/${encodeURIComponent('x@elsewhere.test')}/folders`), 422);
  });

  test('message HTML is served alone, sandboxed: CSP sandbox, no script, no remote image', async () => {
    const u = encodeURIComponent(USER);
    const id = ((await bearer.get(`/api/mailboxes/${u}/messages`)).json as { messages: { id: string }[] })
      .messages[0]!.id;
    const html = await bearer.get(`/api/mailboxes/${u}/message/html?id=${id}&part=1.2`);
    assert.equal(html.status, 200);
    assert.match(html.text, /Hallo jürgen/);
    const csp = html.headers.get('content-security-policy') ?? '';
    assert.match(csp, /^sandbox;/);
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /script-src|img-src[^;]*http/);
    assert.equal(html.headers.get('x-frame-options'), 'SAMEORIGIN');
    assertProblem(await bearer.get(`/api/mailboxes/${u}/message/html?id=${id}&part=1.1`), 404);
  });

  test('users, send-as grants and aliases, with UTF-8 addresses and the CLI rules', async () => {
    const created = await bearer.post('/api/users', { address: '日本@example.test', password: 'pw 日本' });
    assert.equal(created.status, 201, created.text);
    assertProblem(await bearer.post('/api/users', { address: '日本@example.test' }), 409);
    assertProblem(await bearer.post('/api/users', { address: 'x@not-local.test' }), 422);
    assertProblem(await bearer.post('/api/users', { address: 'x@example.test', extra: 1 }), 400);
    const users = (await bearer.get('/api/users')).json as {
      users: { address: string; hasPassword: boolean }[];
    };
    assert.ok(users.users.some((x) => x.address === '日本@example.test' && x.hasPassword));
    // The directory the CLI reads has the same user.
    const cli = await tern.tern(['user', 'list', '--json']);
    assert.match(cli.stdout, /日本@example\.test/);
    const e = encodeURIComponent('日本@example.test');
    assert.equal(
      (await bearer.request('PUT', `/api/users/${e}/password`, { body: { password: 'new 日本' } })).status,
      200,
    );
    assert.equal((await bearer.post(`/api/users/${e}/sendas`, { pattern: '@example.test' })).status, 201);
    assert.equal(
      (await bearer.request('DELETE', `/api/users/${e}/sendas?pattern=%40example.test`)).status,
      200,
    );

    const alias = await bearer.post('/api/aliases', {
      alias: 'vertrieb@example.test',
      target: 'nobody@example.test',
    });
    assert.equal(alias.status, 201);
    assert.match((alias.json as { warnings: string[] }).warnings[0] ?? '', /no user and no alias/);
    const aliases = (await bearer.get('/api/aliases')).json as {
      aliases: { alias: string; target: string }[];
    };
    assert.ok(aliases.aliases.some((a) => a.alias === 'vertrieb@example.test'));
    assert.equal((await bearer.request('DELETE', '/api/aliases?alias=vertrieb%40example.test')).status, 200);
    assertProblem(await bearer.request('DELETE', '/api/aliases?alias=vertrieb%40example.test'), 404);
    assert.equal((await bearer.request('DELETE', `/api/users/${e}`)).status, 200);
    assertProblem(await bearer.request('DELETE', `/api/users/${e}`), 404);
  });

  test('domains with the records to publish, and DKIM keys made, listed and deleted', async () => {
    const made = await bearer.post('/api/dkim', {
      domain: 'example.test',
      selector: 's1',
      algorithm: 'ed25519',
    });
    assert.equal(made.status, 201, made.text);
    assert.match((made.json as { value: string }).value, /^v=DKIM1; k=ed25519; p=/);
    assertProblem(await bearer.post('/api/dkim', { domain: 'example.test', selector: 's1' }), 422);
    const keys = (await bearer.get('/api/dkim')).json as { keys: { dnsName: string }[] };
    assert.deepEqual(
      keys.keys.map((k) => k.dnsName),
      ['s1._domainkey.example.test.'],
    );
    const domains = (await bearer.get('/api/domains')).json as {
      domains: { domain: string; records: { name: string; type: string }[]; dkimKeys: number }[];
    };
    const d = domains.domains.find((x) => x.domain === 'example.test');
    assert.ok(d);
    assert.equal(d.dkimKeys, 1);
    assert.deepEqual(
      d.records.map((r) => `${r.type} ${r.name}`),
      [
        'MX example.test',
        'TXT example.test',
        'TXT s1._domainkey.example.test',
        'TXT _dmarc.example.test',
        'TXT _mta-sts.example.test',
        'TXT _smtp._tls.example.test',
      ],
    );
    assert.equal((await bearer.request('DELETE', '/api/dkim/example.test/s1')).status, 200);
    assertProblem(await bearer.request('DELETE', '/api/dkim/example.test/s1'), 422);
  });

  test('the configuration with secrets redacted; reload with no file is a 409 problem', async () => {
    const config = (await bearer.get('/api/config')).json as {
      hostname: string;
      admin: { listeners: unknown[] };
    };
    assert.equal(config.hostname, 'mx.example.test');
    assert.equal(config.admin.listeners.length, 1);
    const reload = await bearer.post('/api/reload');
    // The harness runs with a config file: the reload applies it.
    assert.equal(reload.status, 200, reload.text);
    assert.equal((reload.json as { ok: boolean }).ok, true);
  });

  test('live events: a stream that shows an accepted message and its delivery', async () => {
    const controller = new AbortController();
    const res = await fetch(`${bearer.base}/api/events`, {
      headers: { Authorization: `Bearer ${bearer.token!}` },
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    let text = '';
    const seen = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        if (/event: accepted\n/.test(text) && /event: delivery\n/.test(text)) break;
      }
    })();
    await send(tern, `From: a@example.net\nTo: ${USER}\nSubject: live\n\nlive\n`, 'a@example.net', [USER]);
    await Promise.race([
      seen,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no events: ${text}`)), 10_000)),
    ]);
    controller.abort();
    const accepted = /event: accepted\ndata: (.*)\n/.exec(text);
    assert.ok(accepted);
    const data = JSON.parse(accepted[1]!) as { event: string; sender: string; to: string[] };
    assert.equal(data.event, 'smtp.queued');
    assert.equal(data.sender, 'a@example.net');
    assert.deepEqual(data.to, [USER]);
  });
});

describe('admin logins share the AUTH lockout (lockout_threshold = 3)', { skip }, () => {
  let tern: Tern;
  before(async () => {
    tern = await startAdminTern({
      tables: { auth: { lockout_threshold: 3, lockout_window_seconds: 600, lockout_seconds: 600 } },
    });
    await addAdmin(tern, 'root', PASSWORD);
  });
  after(() => tern?.stop());

  test('three failures lock the client out: even the right password gets 429 with Retry-After', async () => {
    const c = new AdminClient(tern.ports.admin!);
    for (let i = 0; i < 3; i++) assertProblem(await c.login('root', `wrong ${i}`), 401);
    const locked = await c.login('root', PASSWORD);
    assertProblem(locked, 429, /locked$/);
    assert.ok(Number(locked.headers.get('retry-after')) > 0);
    await tern.waitForLog(
      'the lockout logged',
      (l) => l['event'] === 'security.admin.login_failed' && l['reason'] === 'locked',
    );
  });
});

describe('an admin listener over HTTPS, with open_networks', { skip }, () => {
  let tern: Tern;
  before(async () => {
    // The harness's admin listener is plain HTTP on loopback; this one is HTTPS (the [tls] certificate:
    // here the self-signed one), and /metrics is open only to 10.0.0.0/8.
    tern = await startAdminTern({
      admin: 'https',
      tables: { admin: { open_networks: ['10.0.0.0/8'] } },
    });
    await addAdmin(tern, 'root', PASSWORD);
  });
  after(() => tern?.stop());

  test('HTTPS: a Secure cookie, HSTS; /metrics from outside open_networks needs a login', async () => {
    const port = tern.ports.admin!;
    const login = await httpsRequest(
      port,
      'POST',
      '/api/login',
      { 'Content-Type': 'application/json' },
      JSON.stringify({ name: 'root', password: PASSWORD }),
    );
    assert.equal(login.status, 200, login.body);
    assert.match(String(login.headers['set-cookie'] ?? ''), /; Secure/);
    assert.match(String(login.headers['strict-transport-security'] ?? ''), /max-age=\d+/);
    const anonymous = await httpsRequest(port, 'GET', '/metrics', {});
    assert.equal(anonymous.status, 401, anonymous.body);
    const health = await httpsRequest(port, 'GET', '/healthz', {});
    assert.equal(health.status, 401, 'open_networks covers /healthz too');
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    const withLogin = await httpsRequest(port, 'GET', '/metrics', { Cookie: cookie });
    assert.equal(withLogin.status, 200);
    assert.match(withLogin.body, /^# HELP /m);
    const plain = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      () => 'answered',
      () => 'refused',
    );
    assert.equal(plain, 'refused', 'no plain HTTP on an HTTPS listener');
  });
});
