// Tests of the configuration loader: defaults, a full round trip, one case per kind of error (each names
// its key and line), many errors at once, syntax errors, path resolution, file errors, and the example
// file and docs staying in step with the loader. AUTH, client certificates, OAuth and submission keys
// have their own round trips, errors and warnings; so do [dns], [outbound] (relay forms, transports, TLS
// policies, the credential rule, frozen Maps) and [queue].

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  DEFAULT_AUTH,
  DEFAULT_FILTERS,
  DEFAULT_OUTBOUND,
  defaultConfig,
  listenerDefaults,
} from './config.ts';
import type { Config } from './config.ts';
import { ConfigLoadError, formatConfigErrors, loadConfig, parseConfig } from './load.ts';
import type { ConfigError } from './load.ts';

const ROOT = join(import.meta.dirname, '..', '..');

function parsedOk(text: string): { config: Config; warnings: ConfigError[] } {
  const r = parseConfig(text, 'test.toml');
  if (!r.ok) assert.fail(`expected success, got:\n${formatConfigErrors(r.errors, 'test.toml')}`);
  return r;
}

function parsedErrors(text: string): ConfigError[] {
  const r = parseConfig(text, 'test.toml');
  if (r.ok) assert.fail('expected errors, got a config');
  return r.errors;
}

const tmpRoot = mkdtempSync(join(tmpdir(), 'tern-config-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));
let tmpCount = 0;
function freshDir(): string {
  const dir = join(tmpRoot, String(tmpCount++));
  mkdirSync(dir, { recursive: true });
  return dir;
}

describe('parseConfig: defaults', () => {
  test('an empty file gives the defaults of config.ts, with source set', () => {
    const { config, warnings } = parsedOk('');
    assert.deepEqual(config, { ...defaultConfig(), source: 'test.toml' });
    assert.deepEqual(warnings, []);
  });

  test('a key left out keeps its default while its neighbours change', () => {
    const { config } = parsedOk('[limits]\nmax_recipients = 500\n');
    assert.equal(config.limits.maxRecipients, 500);
    assert.equal(config.limits.maxMessageBytes, defaultConfig().limits.maxMessageBytes);
    assert.deepEqual(config.listeners, defaultConfig().listeners);
  });

  test('the snapshot is deeply frozen', () => {
    const { config } = parsedOk('local_domains = ["example.org"]\n');
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.limits));
    assert.ok(Object.isFrozen(config.localDomains));
    assert.ok(Object.isFrozen(config.listeners[0]));
    assert.ok(Object.isFrozen(config.auth.mechanisms));
    assert.ok(Object.isFrozen(config.submission));
    assert.throws(() => (config.localDomains as string[]).push('x'), TypeError);
  });

  test('freezing a snapshot leaves the shared defaults of config.ts mutable', () => {
    parsedOk('');
    assert.ok(!Object.isFrozen(DEFAULT_AUTH));
    assert.ok(!Object.isFrozen(DEFAULT_AUTH.mechanisms));
  });

  test('listener AUTH settings default per service', () => {
    const { config } = parsedOk(
      'listeners = [\n  { service = "smtp", address = "127.0.0.1:25" },\n  { service = "submission", address = "127.0.0.1:587" },\n  { service = "submissions", address = "127.0.0.1:465" },\n]\n',
    );
    assert.deepEqual(
      config.listeners.map((l) => [
        l.service,
        l.auth,
        l.requireAuth,
        l.plaintextAuthOnLoopback,
        l.clientCertificates,
      ]),
      [
        ['smtp', false, false, false, 'none'],
        ['submission', true, true, false, 'none'],
        ['submissions', true, true, false, 'none'],
      ],
    );
  });
});

const FULL = `
hostname = "mx1.Example.org"
data_dir = "/var/lib/tern"
local_domains = ["Example.ORG", "example.net"]
recipient_delimiter = "+-"

[[listeners]]
service = "smtp"
address = "0.0.0.0:25"

[[listeners]]
service = "admin"
address = "127.0.0.1:8080"

[[listeners]]
service = "admin"
address = "0.0.0.0:8443"
tls = "implicit"

[[listeners]]
service = "mta-sts"
address = "[::]:443"

[[listeners]]
service = "smtp"
address = "[2001:db8::1]:25"
tls = "none"

[[listeners]]
service = "submission"
address = "127.0.0.1:587"
allow_plaintext_auth_on_loopback = true
client_certificates = "request"

[[listeners]]
service = "submissions"
address = "mail.example.org:465"
client_certificates = "require"

[[listeners]]
service = "smtp"
address = "192.0.2.1:2525"
auth = true
require_auth = true

[[listeners]]
service = "submission"
address = "192.0.2.1:587"
auth = false
require_auth = false

[tls]
cert = "/etc/tern/cert.pem"
key = "/etc/tern/key.pem"
client_ca = "/etc/tern/client-ca.pem"

[limits]
max_message_bytes = 10485760
max_recipients = 250
max_transactions_per_connection = 50
max_connections = 500
max_connections_per_ip = 10
max_command_line_bytes = 2048
max_text_line_bytes = 4096
long_lines = "accept"
max_errors = 5
greeting_timeout_seconds = 30
command_timeout_seconds = 60
data_block_timeout_seconds = 120.5
data_total_timeout_seconds = 900
shutdown_grace_seconds = 0
greeting_delay_seconds = 1.5
min_free_bytes = 0
tls_handshake_timeout_seconds = 5
mailbox_quota_bytes = 1073741824
mailbox_quota_messages = 50000

[smtp]
bare_line_endings = "normalize"
vrfy = true
trusted_networks = ["192.0.2.0/24", "2001:DB8::/32", "198.51.100.7"]
max_junk_commands = 0

[pop3]
idle_timeout_seconds = 900

[imap]
idle_timeout_seconds = 3600
max_connections_per_user = 20
max_line_bytes = 16384
append_limit_bytes = 1048576

[log]
level = "debug"
format = "json"

[auth]
mechanisms = ["plain", "Scram-Sha-256", "OAUTHBEARER", "xoauth2", "cram-md5"]
max_failures_per_connection = 5
failure_delay_seconds = 0.25
lockout_threshold = 20
lockout_window_seconds = 600
lockout_seconds = 3600

[auth.oauth]
issuer = "https://login.example.org/"
audience = ["mail.example.org", "smtp"]
jwks_file = "/etc/tern/jwks.json"
hmac_secret = "0123456789abcdef0123456789abcdef"
introspection_url = "https://login.example.org/introspect"
introspection_client_id = "tern"
introspection_client_secret = "s3cret"
username_claim = "preferred_username"

[submission]
sender_check = false
add_missing_headers = false
max_messages_per_hour = 0
max_recipients_per_hour = 250

[dns]
servers = ["192.0.2.53", "127.0.0.1:5353", "2001:DB8:0::53", "[::1]:5353"]
timeout_seconds = 2.5
attempts = 3
max_cache_ttl_seconds = 600

[outbound]
tls = "encrypt"
tls_ca = "/etc/tern/relay-ca.pem"
mta_sts = false
port = 2525
source_address = "2001:DB8::25"
max_connections = 50
max_connections_per_destination = 5
max_messages_per_connection = 20
connection_idle_seconds = 0
connect_timeout_seconds = 10
greeting_timeout_seconds = 400
command_timeout_seconds = 500
data_init_timeout_seconds = 150
data_block_timeout_seconds = 200
data_done_timeout_seconds = 900

[outbound.relay]
host = "Smtp.Example.NET"
port = 587
mx = false
tls = "verify"
username = "tern@example.org"
password = "s3cret"

[outbound.tls_policy]
"Example.COM" = "verify"
"*.example.net" = "none"
"secure.example" = "dane-only"

[[outbound.transport]]
domain = "Example.COM"
relay = "[mx.internal.example.com]:2525"
username = "tern"
password = "hunter2"

[[outbound.transport]]
domain = "*.partner.example"
relay = "Relay.Partner.example"

[[outbound.transport]]
domain = "legacy.example"
relay = "[2001:DB8::2]"
tls = "none"

[queue]
retry_min_seconds = 60
retry_max_seconds = 3600
lifetime_seconds = 172800
delay_warning_seconds = 0
postmaster = "Hostmaster@EXAMPLE.org"

[checks]
enabled = false
authserv_id = "auth.example.org"
dmarc_reject = "junk"
dmarc_quarantine = "none"
dns_failure = "tempfail"
spf_timeout_seconds = 3
data_timeout_seconds = 7.5
skip_networks = ["10.0.0.0/8"]

[server]
workers = 3

[trace]
retention_days = 7

[admin]
open_networks = ["10.0.0.0/8"]
session_idle_minutes = 30

[mta_sts]
mode = "enforce"
max_age_seconds = 1209600

[sieve]
max_scripts = 5
max_script_bytes = 65536
max_redirects = 2
vacation_min_seconds = 3600

[filters]
order = ["dnsbl"]

[filters.dnsbl]
zones = ["zen.example.net=127.0.0.2,127.0.0.4", "bl.example.org*2"]
threshold = 2
dqs_key = "abc123"
timeout_seconds = 3
on_failure = "tempfail"
`;

describe('parseConfig: a full file', () => {
  test('every key round-trips into Config, with units and case converted', () => {
    const { config, warnings } = parsedOk(FULL);
    assert.deepEqual(warnings, []);
    const expected: Config = {
      hostname: 'mx1.Example.org',
      dataDir: '/var/lib/tern',
      localDomains: ['example.org', 'example.net'],
      recipientDelimiter: '+-',
      catch: false,
      listeners: [
        { ...listenerDefaults('smtp'), service: 'smtp', host: '0.0.0.0', port: 25 },
        { ...listenerDefaults('smtp'), service: 'smtp', host: '2001:db8::1', port: 25, tls: 'none' },
        {
          ...listenerDefaults('submission'),
          service: 'submission',
          host: '127.0.0.1',
          port: 587,
          plaintextAuthOnLoopback: true,
          clientCertificates: 'request',
        },
        {
          ...listenerDefaults('submissions'),
          service: 'submissions',
          host: 'mail.example.org',
          port: 465,
          clientCertificates: 'require',
        },
        {
          ...listenerDefaults('smtp'),
          service: 'smtp',
          host: '192.0.2.1',
          port: 2525,
          auth: true,
          requireAuth: true,
        },
        {
          ...listenerDefaults('submission'),
          service: 'submission',
          host: '192.0.2.1',
          port: 587,
          auth: false,
          requireAuth: false,
        },
      ],
      tls: { cert: '/etc/tern/cert.pem', key: '/etc/tern/key.pem', clientCa: '/etc/tern/client-ca.pem' },
      limits: {
        maxMessageBytes: 10_485_760,
        maxRecipients: 250,
        maxTransactionsPerConnection: 50,
        maxConnections: 500,
        maxConnectionsPerIp: 10,
        maxCommandLineBytes: 2048,
        maxTextLineBytes: 4096,
        longLines: 'accept',
        maxErrors: 5,
        greetingTimeoutMs: 30_000,
        commandTimeoutMs: 60_000,
        dataBlockTimeoutMs: 120_500,
        dataTotalTimeoutMs: 900_000,
        shutdownGraceMs: 0,
        greetingDelayMs: 1500,
        minFreeBytes: 0,
        tlsHandshakeTimeoutMs: 5000,
        mailboxQuotaBytes: 1_073_741_824,
        mailboxQuotaMessages: 50_000,
      },
      smtp: {
        bareLineEndings: 'normalize',
        vrfy: true,
        trustedNetworks: ['192.0.2.0/24', '2001:db8::/32', '198.51.100.7/32'],
        maxJunkCommands: 0,
      },
      pop3: { idleTimeoutMs: 900_000 },
      imap: {
        idleTimeoutMs: 3_600_000,
        maxConnectionsPerUser: 20,
        maxLineBytes: 16_384,
        appendLimitBytes: 1_048_576,
      },
      log: { level: 'debug', format: 'json' },
      auth: {
        mechanisms: ['PLAIN', 'SCRAM-SHA-256', 'OAUTHBEARER', 'XOAUTH2', 'CRAM-MD5'],
        maxFailuresPerConnection: 5,
        failureDelayMs: 250,
        lockoutThreshold: 20,
        lockoutWindowMs: 600_000,
        lockoutMs: 3_600_000,
        oauth: {
          issuer: 'https://login.example.org/',
          audience: ['mail.example.org', 'smtp'],
          jwksFile: '/etc/tern/jwks.json',
          hmacSecret: '0123456789abcdef0123456789abcdef',
          introspectionUrl: 'https://login.example.org/introspect',
          introspectionClientId: 'tern',
          introspectionClientSecret: 's3cret',
          usernameClaim: 'preferred_username',
        },
      },
      submission: {
        senderCheck: false,
        addMissingHeaders: false,
        maxMessagesPerHour: 0,
        maxRecipientsPerHour: 250,
        maxHoldSeconds: 604_800,
      },
      dns: {
        servers: ['192.0.2.53:53', '127.0.0.1:5353', '[2001:db8::53]:53', '[::1]:5353'],
        timeoutMs: 2500,
        attempts: 3,
        maxCacheTtlMs: 600_000,
        dnssec: false,
      },
      outbound: {
        relay: {
          host: 'smtp.example.net',
          port: 587,
          mx: false,
          tls: 'verify',
          auth: { username: 'tern@example.org', password: 's3cret' },
        },
        transports: new Map([
          [
            'example.com',
            {
              host: 'mx.internal.example.com',
              port: 2525,
              mx: false,
              // Inherited from tls_policy "Example.COM", the same domain.
              tls: 'verify',
              auth: { username: 'tern', password: 'hunter2' },
            },
          ],
          [
            '*.partner.example',
            { host: 'relay.partner.example', port: 25, mx: true, tls: 'encrypt', auth: null },
          ],
          ['legacy.example', { host: '2001:db8::2', port: 25, mx: false, tls: 'none', auth: null }],
        ]),
        tls: 'encrypt',
        tlsPolicies: new Map([
          ['example.com', 'verify'],
          ['*.example.net', 'none'],
          ['secure.example', 'dane-only'],
        ]),
        mtaSts: false,
        tlsCa: '/etc/tern/relay-ca.pem',
        port: 2525,
        sourceAddress: '2001:db8::25',
        maxConnections: 50,
        maxConnectionsPerDestination: 5,
        maxMessagesPerConnection: 20,
        connectionIdleMs: 0,
        connectTimeoutMs: 10_000,
        greetingTimeoutMs: 400_000,
        commandTimeoutMs: 500_000,
        dataInitTimeoutMs: 150_000,
        dataBlockTimeoutMs: 200_000,
        dataDoneTimeoutMs: 900_000,
      },
      queue: {
        retryMinMs: 60_000,
        retryMaxMs: 3_600_000,
        lifetimeMs: 172_800_000,
        delayWarningMs: 0,
        postmaster: 'Hostmaster@example.org',
        localDelivery: 'accept',
        leaseMs: 60_000,
      },
      checks: {
        enabled: false,
        authservId: 'auth.example.org',
        dmarcReject: 'junk',
        dmarcQuarantine: 'none',
        dnsFailure: 'tempfail',
        spfTimeoutMs: 3000,
        dataTimeoutMs: 7500,
        skipNetworks: ['10.0.0.0/8'],
      },
      server: { workers: 3 },
      trace: { retentionMs: 7 * 86_400_000 },
      admin: {
        listeners: [
          { host: '127.0.0.1', port: 8080, tls: 'none' },
          { host: '0.0.0.0', port: 8443, tls: 'implicit' },
        ],
        openNetworks: ['10.0.0.0/8'],
        sessionIdleMs: 30 * 60_000,
      },
      mtaStsPublish: {
        listeners: [{ host: '::', port: 443, tls: 'implicit' }],
        mode: 'enforce',
        maxAgeS: 1_209_600,
      },
      filters: {
        order: ['dnsbl'],
        dnsbl: {
          zones: ['zen.example.net=127.0.0.2,127.0.0.4', 'bl.example.org*2'],
          threshold: 2,
          dqsKey: 'abc123',
          allowZones: [],
          domainZones: [],
          bodyDomains: true,
          timeoutMs: 3000,
          onFailure: 'tempfail',
        },
        greylist: null,
        rspamd: null,
        spamassassin: null,
        clamav: null,
        milters: [],
        plugins: [],
        networks: [],
      },
      sieve: { maxScripts: 5, maxScriptBytes: 65_536, maxRedirects: 2, vacationMinSeconds: 3600 },
      storage: { backend: 'sqlite', url: null },
      redis: { url: null, keyPrefix: 'tern:' },
      source: 'test.toml',
    };
    assert.deepEqual(config, expected);
  });

  test('[server] workers: "auto", 0 or a count; anything else names the key and line', () => {
    assert.equal(parsedOk('').config.server.workers, 'auto');
    assert.equal(parsedOk('[server]\nworkers = "auto"\n').config.server.workers, 'auto');
    assert.equal(parsedOk('[server]\nworkers = 0\n').config.server.workers, 0);
    for (const [value, message] of [
      ['"all"', '"all" is not one of "auto"'],
      ['-1', 'must be at least 0'],
      ['1.5', 'must be an integer'],
      ['1000', 'must be at most 256'],
    ] as const) {
      const r = parseConfig(`[server]\nworkers = ${value}\n`, 'x.toml');
      assert.equal(r.ok, false, value);
      if (r.ok) continue;
      assert.equal(r.errors[0]?.key, 'server.workers', value);
      assert.equal(r.errors[0]?.line, 2, value);
      assert.match(
        r.errors[0]?.message ?? '',
        new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
        value,
      );
    }
  });

  test('[auth.oauth] needs only one way to verify tokens; audience may be one string', () => {
    const { config, warnings } = parsedOk(
      '[auth]\nmechanisms = ["OAUTHBEARER"]\n[auth.oauth]\njwks_file = "jwks.json"\naudience = "mail"\n',
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.auth.oauth, {
      issuer: null,
      audience: ['mail'],
      jwksFile: 'jwks.json',
      hmacSecret: null,
      introspectionUrl: null,
      introspectionClientId: null,
      introspectionClientSecret: null,
      usernameClaim: 'email',
    });
    assert.deepEqual(config.auth.mechanisms, ['OAUTHBEARER']);
    assert.equal(config.auth.maxFailuresPerConnection, DEFAULT_AUTH.maxFailuresPerConnection);
  });

  test('introspection alone, over http to this host, loads without warnings', () => {
    const { config, warnings } = parsedOk(
      '[auth]\nmechanisms = ["XOAUTH2"]\n[auth.oauth]\nintrospection_url = "http://127.0.0.1:8080/introspect"\n',
    );
    assert.deepEqual(warnings, []);
    assert.equal(config.auth.oauth?.introspectionUrl, 'http://127.0.0.1:8080/introspect');
  });

  test('a zero failure delay is allowed (answer failed AUTH at once)', () => {
    const { config } = parsedOk('[auth]\nfailure_delay_seconds = 0\n');
    assert.equal(config.auth.failureDelayMs, 0);
  });

  test('listeners as an inline array of tables work too', () => {
    const { config } = parsedOk(
      'listeners = [\n  { service = "smtp", address = "[::1]:2525" },\n  { service = "submissions", address = "127.0.0.1:0" },\n]\n',
    );
    assert.deepEqual(config.listeners, [
      { ...listenerDefaults('smtp'), service: 'smtp', host: '::1', port: 2525 },
      { ...listenerDefaults('submissions'), service: 'submissions', host: '127.0.0.1', port: 0 },
    ]);
  });

  test('proxy_from: the networks a listener takes PROXY headers from, normalised; absent when not set', () => {
    const { config, warnings } = parsedOk(
      '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:0"\nproxy_from = ["10.0.0.0/8", "2001:DB8::1", "192.0.2.7"]\n[[listeners]]\nservice = "imaps"\naddress = "127.0.0.1:0"\n',
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.listeners[0]?.proxyFrom, ['10.0.0.0/8', '2001:db8::1/128', '192.0.2.7/32']);
    assert.equal(config.listeners[1]?.proxyFrom, undefined);
  });

  test('lmtp: no AUTH and cleartext by default; a Unix socket path with its mode', () => {
    const { config, warnings } = parsedOk(
      '[[listeners]]\nservice = "lmtp"\naddress = "127.0.0.1:24"\n[[listeners]]\nservice = "lmtp"\npath = "/run/tern/lmtp"\nmode = "0600"\n[[listeners]]\nservice = "lmtp"\npath = "/run/tern/lmtp2"\n',
    );
    assert.deepEqual(warnings, []);
    const [tcp, unix, unix2] = config.listeners;
    assert.deepEqual(
      { auth: tcp?.auth, requireAuth: tcp?.requireAuth, tls: tcp?.tls, port: tcp?.port, path: tcp?.path },
      { auth: false, requireAuth: false, tls: 'none', port: 24, path: undefined },
    );
    assert.deepEqual(
      { path: unix?.path, mode: unix?.socketMode, host: unix?.host, port: unix?.port },
      {
        path: '/run/tern/lmtp',
        mode: 0o600,
        host: 'unix',
        port: 0,
      },
    );
    assert.equal(unix2?.socketMode, 0o660);
  });

  test('[[outbound.transport]] transport: LMTP over TCP (port 24 unless given) or a Unix socket, smtp: as relay', () => {
    const { config } = parsedOk(
      'local_domains = ["example.test"]\n[[outbound.transport]]\ndomain = "example.test"\ntransport = "lmtp:unix:/run/dovecot/lmtp"\n[[outbound.transport]]\ndomain = "a.test"\ntransport = "lmtp:[192.0.2.5]"\n[[outbound.transport]]\ndomain = "b.test"\ntransport = "LMTP:mail.b.test:2424"\n[[outbound.transport]]\ndomain = "c.test"\ntransport = "smtp:[192.0.2.9]:2525"\n',
    );
    const t = config.outbound.transports;
    assert.deepEqual(t.get('example.test'), {
      host: 'localhost',
      port: 0,
      mx: false,
      lmtp: true,
      path: '/run/dovecot/lmtp',
      tls: 'none',
      auth: null,
    });
    assert.deepEqual(
      { ...t.get('a.test'), tls: undefined },
      { host: '192.0.2.5', port: 24, mx: false, lmtp: true, tls: undefined, auth: null },
    );
    assert.equal(t.get('b.test')?.port, 2424);
    assert.equal(t.get('b.test')?.mx, false);
    assert.equal(t.get('c.test')?.lmtp, undefined);
    assert.equal(t.get('c.test')?.port, 2525);
  });

  test('port 0 listeners never conflict (the OS picks each port)', () => {
    const { config } = parsedOk(
      '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:0"\n[[listeners]]\nservice = "submission"\naddress = "127.0.0.1:0"\n',
    );
    assert.equal(config.listeners.length, 2);
  });
});

describe('parseConfig: [dns], [outbound] and [queue]', () => {
  test('dns.servers: port 53 unless given, IPv6 bracketed and compressed, a duplicate kept once', () => {
    const { config, warnings } = parsedOk(
      '[dns]\nservers = ["127.0.0.1", "::1", "[0:0::1]:53", "[::1]",\n  "127.0.0.1:53", "127.0.0.1:5353"]\n',
    );
    assert.deepEqual(config.dns.servers, ['127.0.0.1:53', '[::1]:53', '127.0.0.1:5353']);
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [
        ['dns.servers[2]', 2],
        ['dns.servers[3]', 2],
        ['dns.servers[4]', 3],
      ],
    );
  });

  test('dns: an empty server list means the system resolvers; a zero cache TTL is allowed', () => {
    const { config } = parsedOk('[dns]\nservers = []\nmax_cache_ttl_seconds = 0\nattempts = 10\n');
    assert.deepEqual(config.dns.servers, []);
    assert.equal(config.dns.maxCacheTtlMs, 0);
    assert.equal(config.dns.attempts, 10);
  });

  test('the string form of a relay: brackets or an IP address skip the MX lookup; port 25 by default', () => {
    const relayOf = (s: string): unknown => parsedOk(`[outbound]\nrelay = "${s}"\n`).config.outbound.relay;
    const plain = { tls: 'may', auth: null };
    assert.deepEqual(relayOf('Smtp.Example.NET'), { host: 'smtp.example.net', port: 25, mx: true, ...plain });
    assert.deepEqual(relayOf('smtp.example.net:587'), {
      host: 'smtp.example.net',
      port: 587,
      mx: true,
      ...plain,
    });
    assert.deepEqual(relayOf('[smtp.example.net]:587'), {
      host: 'smtp.example.net',
      port: 587,
      mx: false,
      ...plain,
    });
    assert.deepEqual(relayOf('[smtp.example.net]'), {
      host: 'smtp.example.net',
      port: 25,
      mx: false,
      ...plain,
    });
    assert.deepEqual(relayOf('192.0.2.25:2525'), { host: '192.0.2.25', port: 2525, mx: false, ...plain });
    assert.deepEqual(relayOf('[192.0.2.25]'), { host: '192.0.2.25', port: 25, mx: false, ...plain });
    assert.deepEqual(relayOf('[2001:DB8:0::25]:26'), { host: '2001:db8::25', port: 26, mx: false, ...plain });
  });

  test('a relay inherits outbound.tls; a relay table may set its own, and mx follows the host kind', () => {
    const { config } = parsedOk('[outbound]\ntls = "encrypt"\nrelay = "[smtp.example.net]"\n');
    assert.equal(config.outbound.relay?.tls, 'encrypt');
    const named = parsedOk('[outbound.relay]\nhost = "smtp.example.net"\n').config.outbound.relay;
    assert.deepEqual(named, { host: 'smtp.example.net', port: 25, mx: true, tls: 'may', auth: null });
    const ip = parsedOk('[outbound.relay]\nhost = "2001:db8::25"\ntls = "none"\n').config.outbound.relay;
    assert.deepEqual(ip, { host: '2001:db8::25', port: 25, mx: false, tls: 'none', auth: null });
  });

  test('credentials load with tls "encrypt" or "verify", set on the relay or inherited', () => {
    const own = parsedOk(
      '[outbound.relay]\nhost = "smtp.example.net"\ntls = "encrypt"\nusername = "u"\npassword = "p"\n',
    );
    assert.deepEqual(own.config.outbound.relay?.auth, { username: 'u', password: 'p' });
    const inherited = parsedOk(
      '[outbound]\ntls = "verify"\nrelay = { host = "smtp.example.net", username = "u", password = "p" }\n',
    );
    assert.equal(inherited.config.outbound.relay?.tls, 'verify');
    assert.deepEqual(inherited.config.outbound.relay?.auth, { username: 'u', password: 'p' });
  });

  test('a credential error never echoes the password', () => {
    const errors = parsedErrors(
      '[outbound.relay]\nhost = "smtp.example.net"\nusername = "u"\npassword = "hunter2"\n',
    );
    assert.equal(errors.length, 1);
    assert.doesNotMatch(formatConfigErrors(errors, 'test.toml'), /hunter2/);
  });

  test('a bad outbound.tls is reported once, not again as a credential problem of the relays', () => {
    const errors = parsedErrors(
      '[outbound]\ntls = "sometimes"\nrelay = { host = "smtp.example.net", username = "u", password = "p" }\n[[outbound.transport]]\ndomain = "example.com"\nrelay = "smtp.example.net"\nusername = "u"\npassword = "p"\n',
    );
    assert.deepEqual(
      errors.map((e) => e.key),
      ['outbound.tls'],
    );
  });

  test('a transport takes its own tls, else a tls_policy for exactly its domain, else outbound.tls', () => {
    const { config } = parsedOk(
      [
        '[outbound]',
        'tls = "encrypt"',
        '[outbound.tls_policy]',
        '"a.example" = "verify"',
        '"*.c.example" = "none"',
        '[[outbound.transport]]',
        'domain = "a.example"',
        'relay = "[hop.example]"',
        '[[outbound.transport]]',
        'domain = "b.example"',
        'relay = "[hop.example]"',
        'tls = "none"',
        '[[outbound.transport]]',
        'domain = "x.c.example"',
        'relay = "[hop.example]"',
      ].join('\n'),
    );
    const tlsOf = (d: string): string | undefined => config.outbound.transports.get(d)?.tls;
    assert.equal(tlsOf('a.example'), 'verify');
    assert.equal(tlsOf('b.example'), 'none');
    // A wildcard policy is for MX delivery; only an exact key carries over to a transport.
    assert.equal(tlsOf('x.c.example'), 'encrypt');
    assert.deepEqual([...config.outbound.transports.keys()], ['a.example', 'b.example', 'x.c.example']);
  });

  test('a wildcard transport and a transport for a subdomain of a local domain are allowed', () => {
    const { config } = parsedOk(
      'local_domains = ["example.org"]\n[[outbound.transport]]\ndomain = "*.example.org"\nrelay = "[inside.example.org]"\n',
    );
    assert.equal(config.outbound.transports.get('*.example.org')?.host, 'inside.example.org');
  });

  test('timeouts below RFC 5321 §4.5.3.2 load with a warning each, naming key and line', () => {
    const { config, warnings } = parsedOk(
      [
        '[outbound]',
        'greeting_timeout_seconds = 299',
        'command_timeout_seconds = 1',
        'data_init_timeout_seconds = 119.5',
        'data_block_timeout_seconds = 10',
        'data_done_timeout_seconds = 599',
        'connect_timeout_seconds = 0.5',
      ].join('\n'),
    );
    assert.equal(config.outbound.dataInitTimeoutMs, 119_500);
    assert.equal(config.outbound.connectTimeoutMs, 500);
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [
        ['outbound.greeting_timeout_seconds', 2],
        ['outbound.command_timeout_seconds', 3],
        ['outbound.data_init_timeout_seconds', 4],
        ['outbound.data_block_timeout_seconds', 5],
        ['outbound.data_done_timeout_seconds', 6],
      ],
    );
    assert.match(warnings[4]!.message, /599 is below 600: RFC 5321 §4\.5\.3\.2\.6/);
  });

  test('more connections per destination than in all warns', () => {
    const { config, warnings } = parsedOk(
      '[outbound]\nmax_connections = 4\nmax_connections_per_destination = 5\n',
    );
    assert.equal(config.outbound.maxConnectionsPerDestination, 5);
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [['outbound.max_connections_per_destination', 3]],
    );
    assert.match(warnings[0]!.message, /more than outbound\.max_connections \(4\)/);
  });

  test('source_address and the MX port', () => {
    const { config } = parsedOk('[outbound]\nsource_address = "192.0.2.25"\nport = 2525\n');
    assert.equal(config.outbound.sourceAddress, '192.0.2.25');
    assert.equal(config.outbound.port, 2525);
  });

  test('queue: lifetime 0 (one attempt) needs delay warnings off; retry max may equal min', () => {
    const { config } = parsedOk(
      '[queue]\nlifetime_seconds = 0\ndelay_warning_seconds = 0\nretry_min_seconds = 0.5\nretry_max_seconds = 0.5\n',
    );
    assert.deepEqual(config.queue, {
      retryMinMs: 500,
      retryMaxMs: 500,
      lifetimeMs: 0,
      delayWarningMs: 0,
      postmaster: null,
      localDelivery: 'accept',
      leaseMs: 60_000,
    });
  });

  test('queue.local_delivery: "accept" by default, "queue" when asked, anything else named', () => {
    assert.equal(parsedOk('').config.queue.localDelivery, 'accept');
    assert.equal(parsedOk('[queue]\nlocal_delivery = "queue"\n').config.queue.localDelivery, 'queue');
    const errors = formatConfigErrors(parsedErrors('[queue]\nlocal_delivery = "later"\n'), 'test.toml');
    assert.match(errors, /queue\.local_delivery/);
    assert.match(errors, /^test\.toml:2: /);
  });

  test('queue: a lifetime past 24 days is allowed (compared with the clock, not a timer)', () => {
    const { config } = parsedOk('[queue]\nlifetime_seconds = 31536000\ndelay_warning_seconds = 2592000\n');
    assert.equal(config.queue.lifetimeMs, 31_536_000_000);
    assert.equal(config.queue.delayWarningMs, 2_592_000_000);
  });

  test('queue.postmaster: the domain lower-cased, the local part as written', () => {
    const { config } = parsedOk(
      'local_domains = ["example.org"]\n[queue]\npostmaster = "Bounces@Example.ORG"\n',
    );
    assert.equal(config.queue.postmaster, 'Bounces@example.org');
  });

  test('a bad local_domains is reported once, not again through postmaster or transports', () => {
    const errors = parsedErrors(
      'local_domains = ["bad_domain"]\n[queue]\npostmaster = "postmaster@example.org"\n[[outbound.transport]]\ndomain = "example.org"\nrelay = "smtp.example.net"\n',
    );
    assert.deepEqual(
      errors.map((e) => e.key),
      ['local_domains[0]'],
    );
  });

  test('the Maps survive the deep freeze: still Maps, writes throw, entries frozen', () => {
    const { config } = parsedOk(
      '[outbound.tls_policy]\n"example.com" = "verify"\n[[outbound.transport]]\ndomain = "example.net"\nrelay = "smtp.example.net"\ntls = "encrypt"\nusername = "u"\npassword = "p"\n',
    );
    const { transports, tlsPolicies } = config.outbound;
    // assert.equal, not assert.ok: narrowing to Map<any, any> would lose the entry types below.
    assert.equal(transports instanceof Map, true);
    assert.equal(tlsPolicies instanceof Map, true);
    assert.ok(Object.isFrozen(config.outbound));
    assert.ok(Object.isFrozen(transports));
    const hop = transports.get('example.net');
    assert.ok(Object.isFrozen(hop));
    assert.ok(Object.isFrozen(hop?.auth));
    const writable = transports as Map<string, unknown>;
    assert.throws(() => writable.set('x', 1), TypeError);
    assert.throws(() => writable.delete('example.net'), TypeError);
    assert.throws(() => writable.clear(), TypeError);
    assert.throws(() => (tlsPolicies as Map<string, string>).set('x', 'none'), TypeError);
    assert.equal(transports.size, 1);
    assert.equal(tlsPolicies.get('example.com'), 'verify');
  });

  test('freezing leaves the Maps of DEFAULT_OUTBOUND writable and empty', () => {
    const { config } = parsedOk('[outbound]\nport = 2525\n');
    assert.notEqual(config.outbound.transports, DEFAULT_OUTBOUND.transports);
    assert.ok(!Object.isFrozen(DEFAULT_OUTBOUND.transports));
    assert.ok(!Object.isFrozen(DEFAULT_OUTBOUND.tlsPolicies));
    assert.equal(DEFAULT_OUTBOUND.transports.size, 0);
  });
});

/** One bad setting each: the error must name this key, on this line, with a message matching this. */
const ERROR_CASES: { name: string; toml: string; key: string; line: number; message: RegExp }[] = [
  {
    name: 'unknown top-level key, with a suggestion',
    toml: 'hostname = "a.example"\ndataDir = "x"\n',
    key: 'dataDir',
    line: 2,
    message: /unknown key; did you mean "data_dir"/,
  },
  {
    name: 'unknown key in a section, with a suggestion',
    toml: '[limits]\nmax_recipients = 100\nmax_recipents = 5\n',
    key: 'limits.max_recipents',
    line: 3,
    message: /did you mean "max_recipients"/,
  },
  {
    name: 'unknown key with nothing close lists the known keys',
    toml: '\n[log]\ncolour = true\n',
    key: 'log.colour',
    line: 3,
    message: /known here: level, format/,
  },
  {
    name: 'unknown section',
    toml: '\n\n[spam]\nscore = 3\n',
    key: 'spam',
    line: 3,
    message: /unknown key/,
  },
  {
    name: 'wrong type: string for an integer',
    toml: '[limits]\nmax_recipients = "100"\n',
    key: 'limits.max_recipients',
    line: 2,
    message: /must be an integer, not a string/,
  },
  {
    name: 'wrong type: float for an integer',
    toml: '[limits]\n\nmax_errors = 2.5\n',
    key: 'limits.max_errors',
    line: 3,
    message: /must be an integer, not a float/,
  },
  {
    name: 'smtp.max_junk_commands below 0',
    toml: '[smtp]\nvrfy = false\nmax_junk_commands = -1\n',
    key: 'smtp.max_junk_commands',
    line: 3,
    message: /must be at least 0/,
  },
  {
    name: 'wrong type: string for a boolean',
    toml: '[smtp]\nvrfy = "yes"\n',
    key: 'smtp.vrfy',
    line: 2,
    message: /must be true or false, not a string/,
  },
  {
    name: 'wrong type: a scalar where a section belongs',
    toml: 'hostname = "a.example"\nlimits = 5\n',
    key: 'limits',
    line: 2,
    message: /must be a table \(\[limits\]\), not an integer/,
  },
  {
    name: 'wrong type: a date where a string belongs',
    toml: 'data_dir = 1979-05-27\n',
    key: 'data_dir',
    line: 1,
    message: /must be a string, not a date-time/,
  },
  {
    name: 'wrong type: [listeners] as a single table',
    toml: '[listeners]\nservice = "smtp"\n',
    key: 'listeners',
    line: 1,
    message: /must be an array of tables \(\[\[listeners\]\]\)/,
  },
  {
    name: 'out of range: command line below 512',
    toml: '[limits]\nmax_command_line_bytes = 511\n',
    key: 'limits.max_command_line_bytes',
    line: 2,
    message: /at least 512 \(RFC 5321 §4\.5\.3\.1\.4/,
  },
  {
    name: 'out of range: text line below 1000',
    toml: '[limits]\nmax_text_line_bytes = 998\n',
    key: 'limits.max_text_line_bytes',
    line: 2,
    message: /at least 1000/,
  },
  {
    name: 'out of range: zero recipients',
    toml: '[limits]\nmax_recipients = 0\n',
    key: 'limits.max_recipients',
    line: 2,
    message: /at least 1/,
  },
  {
    name: 'out of range: a zero timeout',
    toml: '[limits]\ncommand_timeout_seconds = 0\n',
    key: 'limits.command_timeout_seconds',
    line: 2,
    message: /greater than 0/,
  },
  {
    name: 'out of range: a timeout past what Node timers can hold',
    toml: '[limits]\ndata_total_timeout_seconds = 2147484\n',
    key: 'limits.data_total_timeout_seconds',
    line: 2,
    message: /at most 2147483 seconds/,
  },
  {
    name: 'out of range: negative shutdown grace',
    toml: '[limits]\nshutdown_grace_seconds = -1\n',
    key: 'limits.shutdown_grace_seconds',
    line: 2,
    message: /must not be negative/,
  },
  {
    name: 'mailbox quota: negative bytes',
    toml: '[limits]\nmailbox_quota_messages = 10\nmailbox_quota_bytes = -1\n',
    key: 'limits.mailbox_quota_bytes',
    line: 3,
    message: /must be at least 0/,
  },
  {
    name: 'mailbox quota: a size with a unit is not an integer',
    toml: '[limits]\nmailbox_quota_bytes = "2G"\n',
    key: 'limits.mailbox_quota_bytes',
    line: 2,
    message: /must be an integer, not a string/,
  },
  {
    name: 'mailbox quota: a fraction of a message',
    toml: '\n[limits]\nmailbox_quota_messages = 1.5\n',
    key: 'limits.mailbox_quota_messages',
    line: 3,
    message: /must be an integer, not a float/,
  },
  {
    name: 'bad enum value',
    toml: '[log]\nlevel = "verbose"\n',
    key: 'log.level',
    line: 2,
    message: /"verbose" is not one of "trace", "debug", "info", "warn", "error"/,
  },
  {
    name: 'bad hostname',
    toml: 'hostname = "mail server"\n',
    key: 'hostname',
    line: 1,
    message: /not a domain name/,
  },
  {
    name: 'bad local domain, found on its own line of a multi-line array',
    toml: 'local_domains = [\n  "example.org",\n  "bad_domain.example",\n]\n',
    key: 'local_domains[1]',
    line: 3,
    message: /"bad_domain\.example" is not a domain name/,
  },
  {
    name: 'bad trusted network: prefix too long',
    toml: '[smtp]\ntrusted_networks = ["10.0.0.0/8",\n  "10.0.0.0/33"]\n',
    key: 'smtp.trusted_networks[1]',
    line: 3,
    message: /not a network in CIDR form/,
  },
  {
    name: 'bad trusted network: not an address',
    toml: '[smtp]\ntrusted_networks = ["intranet"]\n',
    key: 'smtp.trusted_networks[0]',
    line: 2,
    message: /"intranet" is not a network/,
  },
  {
    name: "a listener's proxy_from entry that is not a network",
    toml: '[[listeners]]\nservice = "pop3"\naddress = "127.0.0.1:0"\nproxy_from = ["10.0.0.0/8",\n  "999.1.1.1"]\n',
    key: 'listeners[0].proxy_from[1]',
    line: 5,
    message: /"999\.1\.1\.1" is not a network in CIDR form/,
  },
  {
    name: 'backend "postgres" without a url',
    toml: '[storage]\nbackend = "postgres"\n',
    key: 'storage.backend',
    line: 2,
    message: /needs \[storage\] url/,
  },
  {
    name: 'a storage url that is not postgres://',
    toml: '[storage]\nbackend = "postgres"\nurl = "mysql://db/tern"\n',
    key: 'storage.url',
    line: 3,
    message: /give a postgres:\/\/ URL/,
  },
  {
    name: 'a redis url that is not redis://',
    toml: '[redis]\nurl = "127.0.0.1:6379"\n',
    key: 'redis.url',
    line: 2,
    message: /give a redis:\/\//,
  },
  {
    name: 'an lmtp listener asked for AUTH',
    toml: '[[listeners]]\nservice = "lmtp"\naddress = "127.0.0.1:24"\nauth = true\n',
    key: 'listeners[0].auth',
    line: 4,
    message: /lmtp takes mail from trusted MTAs without AUTH/,
  },
  {
    name: 'a Unix socket path on a service other than lmtp',
    toml: '[[listeners]]\nservice = "smtp"\npath = "/run/tern/smtp"\n',
    key: 'listeners[0].path',
    line: 3,
    message: /a Unix socket path is for service = "lmtp"/,
  },
  {
    name: 'a relative socket path',
    toml: '[[listeners]]\nservice = "lmtp"\npath = "run/lmtp"\n',
    key: 'listeners[0].path',
    line: 3,
    message: /absolute path/,
  },
  {
    name: 'a socket mode that is not octal',
    toml: '[[listeners]]\nservice = "lmtp"\npath = "/run/lmtp"\nmode = "rw-rw----"\n',
    key: 'listeners[0].mode',
    line: 4,
    message: /in octal/,
  },
  {
    name: 'a transport that is neither lmtp nor smtp',
    toml: '[[outbound.transport]]\ndomain = "a.test"\ntransport = "uucp:host"\n',
    key: 'outbound.transport[0].transport',
    line: 3,
    message: /is not a transport/,
  },
  {
    name: 'an smtp transport for a local domain',
    toml: 'local_domains = ["a.test"]\n[[outbound.transport]]\ndomain = "a.test"\ntransport = "smtp:[192.0.2.1]"\n',
    key: 'outbound.transport[0].domain',
    line: 3,
    message: /is in local_domains/,
  },
  {
    name: 'listener address without a port',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "0.0.0.0"\n',
    key: 'listeners[0].address',
    line: 3,
    message: /has no port/,
  },
  {
    name: 'listener IPv6 address without brackets',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "::1:25"\n',
    key: 'listeners[0].address',
    line: 3,
    message: /IPv6 addresses go in brackets/,
  },
  {
    name: 'listener port out of range',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:65536"\n',
    key: 'listeners[0].address',
    line: 3,
    message: /not a port number/,
  },
  {
    name: 'listener with a bad IPv4 address',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.256:25"\n',
    key: 'listeners[0].address',
    line: 3,
    message: /neither an IPv4 address nor a host name/,
  },
  {
    name: 'listener with a bad IPv6 address',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "[::g]:25"\n',
    key: 'listeners[0].address',
    line: 3,
    message: /not an IPv6 address/,
  },
  {
    name: 'listener without a service points at its header',
    toml: 'hostname = "a.example"\n\n[[listeners]]\naddress = "127.0.0.1:25"\n',
    key: 'listeners[0].service',
    line: 3,
    message: /missing/,
  },
  {
    name: 'listener with an unknown service',
    toml: '[[listeners]]\nservice = "smtps"\naddress = "127.0.0.1:465"\n',
    key: 'listeners[0].service',
    line: 2,
    message: /"smtps" is not one of/,
  },
  {
    name: 'submissions without implicit TLS',
    toml: '[[listeners]]\nservice = "submissions"\naddress = "127.0.0.1:465"\ntls = "starttls"\n',
    key: 'listeners[0].tls',
    line: 4,
    message: /implicit TLS by definition/,
  },
  {
    name: 'smtp with implicit TLS',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:25"\ntls = "implicit"\n',
    key: 'listeners[0].tls',
    line: 4,
    message: /STARTTLS/,
  },
  {
    name: 'an empty listener list',
    toml: 'listeners = []\n',
    key: 'listeners',
    line: 1,
    message: /at least one listener/,
  },
  {
    name: 'duplicate listener address, reported on the second',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:25"\n\n[[listeners]]\nservice = "submission"\naddress = "127.0.0.1:25"\n',
    key: 'listeners[1].address',
    line: 7,
    message: /127\.0\.0\.1:25 conflicts with listeners\[0\] \(127\.0\.0\.1:25, line 3\)/,
  },
  {
    name: 'duplicate IPv6 listener written two ways',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "[::1]:25"\n[[listeners]]\nservice = "smtp"\naddress = "[0:0::1]:25"\n',
    key: 'listeners[1].address',
    line: 6,
    message: /conflicts with listeners\[0\]/,
  },
  {
    name: 'a listener under a wildcard on the same port',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "0.0.0.0:25"\n[[listeners]]\nservice = "smtp"\naddress = "192.0.2.1:25"\n',
    key: 'listeners[1].address',
    line: 6,
    message: /conflicts with listeners\[0\] \(0\.0\.0\.0:25/,
  },
  {
    name: 'an IPv4 listener beside dual-stack [::] on the same port',
    toml: 'listeners = [{ service = "smtp", address = "[::]:25" },\n  { service = "smtp", address = "0.0.0.0:25" }]\n',
    key: 'listeners[1].address',
    line: 2,
    message: /conflicts with listeners\[0\] \(\[::\]:25, line 1\)/,
  },
  {
    name: 'tls.cert without tls.key',
    toml: '\n[tls]\ncert = "cert.pem"\n',
    key: 'tls.key',
    line: 2,
    message: /give both tls\.cert and tls\.key, or neither/,
  },
  {
    name: 'an empty path',
    toml: 'data_dir = ""\n',
    key: 'data_dir',
    line: 1,
    message: /must not be empty/,
  },
  {
    name: 'listener auth that is not a boolean',
    toml: '[[listeners]]\nservice = "submission"\naddress = "127.0.0.1:587"\nauth = "yes"\n',
    key: 'listeners[0].auth',
    line: 4,
    message: /must be true or false, not a string/,
  },
  {
    name: 'require_auth = true with auth = false: nobody could send',
    toml: '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:25"\nauth = false\nrequire_auth = true\n',
    key: 'listeners[0].require_auth',
    line: 5,
    message: /needs auth = true/,
  },
  {
    name: 'auth = false on submission, whose require_auth defaults to true',
    toml: '[[listeners]]\nservice = "submission"\naddress = "127.0.0.1:587"\n\nauth = false\n',
    key: 'listeners[0].auth',
    line: 5,
    message:
      /submission listeners require authentication by default; with auth = false also set require_auth = false/,
  },
  {
    name: 'allow_plaintext_auth_on_loopback that is not a boolean',
    toml: '[[listeners]]\nservice = "submission"\naddress = "127.0.0.1:587"\nallow_plaintext_auth_on_loopback = 1\n',
    key: 'listeners[0].allow_plaintext_auth_on_loopback',
    line: 4,
    message: /must be true or false, not an integer/,
  },
  {
    name: 'client_certificates with an unknown value',
    toml: '[tls]\nclient_ca = "ca.pem"\n[[listeners]]\nservice = "submission"\naddress = "127.0.0.1:587"\nclient_certificates = "optional"\n',
    key: 'listeners[0].client_certificates',
    line: 6,
    message: /"optional" is not one of "none", "request", "require"/,
  },
  {
    name: 'client_certificates without tls.client_ca',
    toml: '[[listeners]]\nservice = "submissions"\naddress = "127.0.0.1:465"\nclient_certificates = "require"\n',
    key: 'listeners[0].client_certificates',
    line: 4,
    message: /"require" needs tls\.client_ca/,
  },
  {
    name: 'client_certificates in an inline listener, located by its value',
    toml: 'listeners = [\n  { service = "smtp", address = "127.0.0.1:25" },\n  { service = "submission", address = "127.0.0.1:587", client_certificates = "request" },\n]\n',
    key: 'listeners[1].client_certificates',
    line: 3,
    message: /"request" needs tls\.client_ca/,
  },
  {
    name: 'client_certificates with tls = "none"',
    toml: '[tls]\nclient_ca = "ca.pem"\n[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:25"\ntls = "none"\nclient_certificates = "request"\n',
    key: 'listeners[0].client_certificates',
    line: 7,
    message: /needs TLS; client certificates cannot be asked for with tls = "none"/,
  },
  {
    name: 'an empty tls.client_ca is reported once, not also as missing',
    toml: '[[listeners]]\nservice = "submissions"\naddress = "127.0.0.1:465"\nclient_certificates = "require"\n[tls]\nclient_ca = ""\n',
    key: 'tls.client_ca',
    line: 6,
    message: /must not be empty/,
  },
  {
    name: 'auth.mechanisms with an unknown mechanism',
    toml: '[auth]\nmechanisms = [\n  "PLAIN",\n  "DIGEST-MD5",\n]\n',
    key: 'auth.mechanisms[1]',
    line: 4,
    message:
      /"DIGEST-MD5" is not one of PLAIN, LOGIN, SCRAM-SHA-256, SCRAM-SHA-256-PLUS, OAUTHBEARER, XOAUTH2, EXTERNAL, CRAM-MD5/,
  },
  {
    name: 'auth.mechanisms with a non-string',
    toml: '[auth]\nmechanisms = ["PLAIN", 1]\n',
    key: 'auth.mechanisms[1]',
    line: 2,
    message: /must be a string, not an integer/,
  },
  {
    name: 'auth.mechanisms as one string',
    toml: '[auth]\nmechanisms = "PLAIN"\n',
    key: 'auth.mechanisms',
    line: 2,
    message: /must be an array, not a string/,
  },
  {
    name: 'auth.mechanisms empty',
    toml: '\n[auth]\nmechanisms = []\n',
    key: 'auth.mechanisms',
    line: 3,
    message: /at least one mechanism; to turn AUTH off, set auth = false on the listeners/,
  },
  {
    name: 'OAUTHBEARER without [auth.oauth]',
    toml: '[auth]\nmechanisms = ["PLAIN", "oauthbearer"]\n',
    key: 'auth.mechanisms',
    line: 2,
    message: /OAUTHBEARER needs \[auth\.oauth\]/,
  },
  {
    name: 'XOAUTH2 without [auth.oauth]',
    toml: '[auth]\nmax_failures_per_connection = 3\nmechanisms = ["XOAUTH2"]\n',
    key: 'auth.mechanisms',
    line: 3,
    message: /XOAUTH2 needs \[auth\.oauth\]/,
  },
  {
    name: 'unknown key in [auth], with a suggestion',
    toml: '[auth]\nmechanism = ["PLAIN"]\n',
    key: 'auth.mechanism',
    line: 2,
    message: /did you mean "mechanisms"/,
  },
  {
    name: 'auth.max_failures_per_connection below 1',
    toml: '[auth]\nmax_failures_per_connection = 0\n',
    key: 'auth.max_failures_per_connection',
    line: 2,
    message: /at least 1/,
  },
  {
    name: 'auth.failure_delay_seconds negative',
    toml: '[auth]\nfailure_delay_seconds = -0.5\n',
    key: 'auth.failure_delay_seconds',
    line: 2,
    message: /must not be negative/,
  },
  {
    name: 'auth.lockout_threshold below 1',
    toml: '[auth]\nlockout_threshold = 0\n',
    key: 'auth.lockout_threshold',
    line: 2,
    message: /at least 1/,
  },
  {
    name: 'auth.lockout_window_seconds zero',
    toml: '[auth]\nlockout_window_seconds = 0\n',
    key: 'auth.lockout_window_seconds',
    line: 2,
    message: /greater than 0/,
  },
  {
    name: 'auth.lockout_seconds not a number',
    toml: '[auth]\nlockout_seconds = "15m"\n',
    key: 'auth.lockout_seconds',
    line: 2,
    message: /must be a number of seconds, not a string/,
  },
  {
    name: 'auth.oauth not a table',
    toml: '[auth]\noauth = true\n',
    key: 'auth.oauth',
    line: 2,
    message: /must be a table \(\[auth\.oauth\]\), not a boolean/,
  },
  {
    name: '[auth.oauth] without jwks_file, hmac_secret or introspection_url',
    toml: '[auth]\nmechanisms = ["OAUTHBEARER"]\n\n[auth.oauth]\nissuer = "https://login.example.org/"\n',
    key: 'auth.oauth',
    line: 4,
    message: /at least one way to verify bearer tokens: jwks_file, hmac_secret or introspection_url/,
  },
  {
    name: 'unknown key in [auth.oauth]',
    toml: '[auth.oauth]\njwks_file = "k.json"\naudiences = ["mail"]\n',
    key: 'auth.oauth.audiences',
    line: 3,
    message: /did you mean "audience"/,
  },
  {
    name: 'auth.oauth.introspection_url that is not http(s)',
    toml: '[auth.oauth]\nintrospection_url = "ftp://login.example.org/introspect"\n',
    key: 'auth.oauth.introspection_url',
    line: 2,
    message: /"ftp:\/\/login\.example\.org\/introspect" is not an http or https URL/,
  },
  {
    name: 'auth.oauth.introspection_url that is not a URL',
    toml: '[auth.oauth]\nintrospection_url = "login.example.org/introspect"\n',
    key: 'auth.oauth.introspection_url',
    line: 2,
    message: /is not an http or https URL/,
  },
  {
    name: 'auth.oauth.introspection_client_id without introspection_url',
    toml: '[auth.oauth]\njwks_file = "k.json"\nintrospection_client_id = "tern"\n',
    key: 'auth.oauth.introspection_client_id',
    line: 3,
    message: /only used with introspection_url/,
  },
  {
    name: 'auth.oauth.introspection_client_id without its secret',
    toml: '[auth.oauth]\nintrospection_url = "https://a.example/i"\nintrospection_client_id = "tern"\n',
    key: 'auth.oauth.introspection_client_secret',
    line: 1,
    message: /give both introspection_client_id and introspection_client_secret, or neither/,
  },
  {
    name: 'auth.oauth.audience with an empty string',
    toml: '[auth.oauth]\njwks_file = "k.json"\naudience = ["mail", ""]\n',
    key: 'auth.oauth.audience[1]',
    line: 3,
    message: /must not be empty/,
  },
  {
    name: 'auth.oauth.audience of the wrong type',
    toml: '[auth.oauth]\njwks_file = "k.json"\naudience = 5\n',
    key: 'auth.oauth.audience',
    line: 3,
    message: /must be a string or an array of strings, not an integer/,
  },
  {
    name: 'auth.oauth.username_claim empty',
    toml: '[auth.oauth]\njwks_file = "k.json"\nusername_claim = ""\n',
    key: 'auth.oauth.username_claim',
    line: 3,
    message: /must not be empty/,
  },
  {
    name: 'auth.oauth.jwks_file empty',
    toml: '[auth.oauth]\njwks_file = ""\n',
    key: 'auth.oauth.jwks_file',
    line: 2,
    message: /must not be empty/,
  },
  {
    name: 'submission.sender_check that is not a boolean',
    toml: '[submission]\nsender_check = "yes"\n',
    key: 'submission.sender_check',
    line: 2,
    message: /must be true or false, not a string/,
  },
  {
    name: 'submission.add_missing_headers that is not a boolean',
    toml: '[submission]\nadd_missing_headers = 1\n',
    key: 'submission.add_missing_headers',
    line: 2,
    message: /must be true or false, not an integer/,
  },
  {
    name: 'submission.max_messages_per_hour negative',
    toml: '[submission]\nmax_messages_per_hour = -1\n',
    key: 'submission.max_messages_per_hour',
    line: 2,
    message: /at least 0/,
  },
  {
    name: 'submission.max_recipients_per_hour a float',
    toml: '[submission]\nmax_recipients_per_hour = 1.5\n',
    key: 'submission.max_recipients_per_hour',
    line: 2,
    message: /must be an integer, not a float/,
  },
  {
    name: 'unknown key in [submission], with a suggestion',
    toml: '[submission]\nmaxMessagesPerHour = 5\n',
    key: 'submission.maxMessagesPerHour',
    line: 2,
    message: /did you mean "max_messages_per_hour"/,
  },
  {
    name: 'dns.servers with a host name',
    toml: '[dns]\nservers = ["127.0.0.1",\n  "ns1.example.org"]\n',
    key: 'dns.servers[1]',
    line: 3,
    message: /"ns1\.example\.org" is not an IP address; name servers are given by address/,
  },
  {
    name: 'dns.servers with port 0',
    toml: '[dns]\nservers = ["127.0.0.1:0"]\n',
    key: 'dns.servers[0]',
    line: 2,
    message: /"0" in "127\.0\.0\.1:0" is not a port number \(1 to 65535\)/,
  },
  {
    name: 'dns.servers with an unclosed bracket',
    toml: '[dns]\nservers = ["[::1:53"]\n',
    key: 'dns.servers[0]',
    line: 2,
    message: /is not a name server address/,
  },
  {
    name: 'dns.servers as one string',
    toml: '[dns]\nservers = "127.0.0.1"\n',
    key: 'dns.servers',
    line: 2,
    message: /must be an array, not a string/,
  },
  {
    name: 'dns.attempts above 10',
    toml: '[dns]\nattempts = 11\n',
    key: 'dns.attempts',
    line: 2,
    message: /must be at most 10/,
  },
  {
    name: 'dns.attempts zero',
    toml: '[dns]\nattempts = 0\n',
    key: 'dns.attempts',
    line: 2,
    message: /must be at least 1/,
  },
  {
    name: 'dns.timeout_seconds zero',
    toml: '[dns]\ntimeout_seconds = 0\n',
    key: 'dns.timeout_seconds',
    line: 2,
    message: /greater than 0/,
  },
  {
    name: 'dns.max_cache_ttl_seconds negative',
    toml: '[dns]\nmax_cache_ttl_seconds = -1\n',
    key: 'dns.max_cache_ttl_seconds',
    line: 2,
    message: /must not be negative/,
  },
  {
    name: 'unknown key in [dns], with a suggestion',
    toml: '[dns]\nserver = ["127.0.0.1"]\n',
    key: 'dns.server',
    line: 2,
    message: /did you mean "servers"/,
  },
  {
    name: 'outbound.relay with a port out of range',
    toml: '[outbound]\nrelay = "smtp.example.net:65536"\n',
    key: 'outbound.relay',
    line: 2,
    message: /"65536" in "smtp\.example\.net:65536" is not a port number/,
  },
  {
    name: 'outbound.relay with an empty port',
    toml: '[outbound]\nrelay = "[smtp.example.net]:"\n',
    key: 'outbound.relay',
    line: 2,
    message: /"" in "\[smtp\.example\.net\]:" is not a port number/,
  },
  {
    name: 'outbound.relay with IPv6 outside brackets',
    toml: '[outbound]\nrelay = "2001:db8::1:25"\n',
    key: 'outbound.relay',
    line: 2,
    message: /IPv6 addresses go in brackets/,
  },
  {
    name: 'outbound.relay that is not a host',
    toml: '[outbound]\nrelay = "smtp_relay:25"\n',
    key: 'outbound.relay',
    line: 2,
    message: /"smtp_relay" is neither a host name nor an IP address/,
  },
  {
    name: 'outbound.relay with nothing after the bracket but junk',
    toml: '[outbound]\nrelay = "[smtp.example.net]587"\n',
    key: 'outbound.relay',
    line: 2,
    message: /is not a relay; write "host:port" or "\[host\]:port"/,
  },
  {
    name: 'outbound.relay of the wrong type',
    toml: '[outbound]\nrelay = 25\n',
    key: 'outbound.relay',
    line: 2,
    message: /must be a string \("host:port" or "\[host\]:port"\) or a table, not an integer/,
  },
  {
    name: 'outbound.relay table without a host points at its header',
    toml: '[outbound]\ntls = "may"\n\n[outbound.relay]\nport = 587\n',
    key: 'outbound.relay.host',
    line: 4,
    message: /missing; give the host name or IP address/,
  },
  {
    name: 'outbound.relay.host in brackets',
    toml: '[outbound.relay]\nhost = "[smtp.example.net]"\n',
    key: 'outbound.relay.host',
    line: 2,
    message: /without brackets; set mx = false/,
  },
  {
    name: 'outbound.relay.mx = true for an IP address',
    toml: '[outbound.relay]\nhost = "192.0.2.25"\nmx = true\n',
    key: 'outbound.relay.mx',
    line: 3,
    message: /an IP address has no MX records/,
  },
  {
    name: 'outbound.relay.port zero',
    toml: '[outbound.relay]\nhost = "smtp.example.net"\nport = 0\n',
    key: 'outbound.relay.port',
    line: 3,
    message: /must be at least 1/,
  },
  {
    name: 'outbound.relay.username without a password',
    toml: '[outbound.relay]\nhost = "smtp.example.net"\ntls = "verify"\nusername = "tern"\n',
    key: 'outbound.relay.password',
    line: 1,
    message: /missing; a relay with a username needs its password/,
  },
  {
    name: 'outbound.relay.password without a username',
    toml: '[outbound.relay]\nhost = "smtp.example.net"\ntls = "encrypt"\npassword = "secret"\n',
    key: 'outbound.relay.username',
    line: 1,
    message: /missing; a password is sent only with a username/,
  },
  {
    name: 'credentials with the relay\'s own tls = "may"',
    toml: '[outbound.relay]\nhost = "smtp.example.net"\ntls = "may"\nusername = "tern"\npassword = "secret"\n',
    key: 'outbound.relay.tls',
    line: 3,
    message:
      /"may" would let the username and password travel in clear; with credentials use "encrypt" or "verify"/,
  },
  {
    name: 'credentials with tls inherited from outbound.tls',
    toml: '[outbound]\ntls = "none"\n[outbound.relay]\nhost = "smtp.example.net"\nusername = "tern"\npassword = "secret"\n',
    key: 'outbound.relay.username',
    line: 5,
    message:
      /credentials are never sent in clear: set tls = "encrypt" or "verify" here \(the "none" of outbound\.tls/,
  },
  {
    name: 'credentials in an inline relay table, located by value',
    toml: '[outbound]\nrelay = { host = "smtp.example.net",\n  tls = "may", username = "u", password = "p" }\n',
    key: 'outbound.relay.tls',
    line: 3,
    message: /travel in clear/,
  },
  {
    name: 'unknown key in a relay table, with a suggestion',
    toml: '[outbound.relay]\nhost = "smtp.example.net"\npasswd = "x"\n',
    key: 'outbound.relay.passwd',
    line: 3,
    message: /did you mean "password"/,
  },
  {
    name: 'outbound.tls with an unknown policy',
    toml: '[outbound]\ntls = "required"\n',
    key: 'outbound.tls',
    line: 2,
    message: /"required" is not one of "none", "may", "encrypt", "verify"/,
  },
  {
    name: 'outbound.tls_ca empty',
    toml: '[outbound]\ntls_ca = ""\n',
    key: 'outbound.tls_ca',
    line: 2,
    message: /must not be empty/,
  },
  {
    name: 'outbound.port zero',
    toml: '[outbound]\nport = 0\n',
    key: 'outbound.port',
    line: 2,
    message: /must be at least 1/,
  },
  {
    name: 'outbound.port above 65535',
    toml: '[outbound]\nport = 65536\n',
    key: 'outbound.port',
    line: 2,
    message: /must be at most 65535/,
  },
  {
    name: 'outbound.source_address that is a name',
    toml: '[outbound]\nsource_address = "mail.example.org"\n',
    key: 'outbound.source_address',
    line: 2,
    message: /"mail\.example\.org" is not an IP address/,
  },
  {
    name: 'outbound.source_address in brackets',
    toml: '[outbound]\nsource_address = "[::1]"\n',
    key: 'outbound.source_address',
    line: 2,
    message: /write IPv6 without brackets/,
  },
  {
    name: 'outbound.max_connections zero',
    toml: '[outbound]\nmax_connections = 0\n',
    key: 'outbound.max_connections',
    line: 2,
    message: /must be at least 1/,
  },
  {
    name: 'outbound.max_connections_per_destination zero',
    toml: '[outbound]\nmax_connections_per_destination = 0\n',
    key: 'outbound.max_connections_per_destination',
    line: 2,
    message: /must be at least 1/,
  },
  {
    name: 'outbound.max_messages_per_connection a float',
    toml: '[outbound]\nmax_messages_per_connection = 1.5\n',
    key: 'outbound.max_messages_per_connection',
    line: 2,
    message: /must be an integer, not a float/,
  },
  {
    name: 'outbound.connection_idle_seconds negative',
    toml: '[outbound]\nconnection_idle_seconds = -1\n',
    key: 'outbound.connection_idle_seconds',
    line: 2,
    message: /must not be negative/,
  },
  {
    name: 'outbound.connect_timeout_seconds zero',
    toml: '[outbound]\nconnect_timeout_seconds = 0\n',
    key: 'outbound.connect_timeout_seconds',
    line: 2,
    message: /greater than 0/,
  },
  {
    name: 'outbound.greeting_timeout_seconds a string',
    toml: '[outbound]\ngreeting_timeout_seconds = "300"\n',
    key: 'outbound.greeting_timeout_seconds',
    line: 2,
    message: /must be a number of seconds, not a string/,
  },
  {
    name: 'outbound.command_timeout_seconds zero',
    toml: '[outbound]\ncommand_timeout_seconds = 0\n',
    key: 'outbound.command_timeout_seconds',
    line: 2,
    message: /greater than 0/,
  },
  {
    name: 'outbound.data_init_timeout_seconds negative',
    toml: '[outbound]\ndata_init_timeout_seconds = -5\n',
    key: 'outbound.data_init_timeout_seconds',
    line: 2,
    message: /greater than 0/,
  },
  {
    name: 'outbound.data_block_timeout_seconds zero',
    toml: '[outbound]\ndata_block_timeout_seconds = 0\n',
    key: 'outbound.data_block_timeout_seconds',
    line: 2,
    message: /greater than 0/,
  },
  {
    name: 'outbound.data_done_timeout_seconds past what Node timers can hold',
    toml: '[outbound]\ndata_done_timeout_seconds = 2147484\n',
    key: 'outbound.data_done_timeout_seconds',
    line: 2,
    message: /at most 2147483 seconds/,
  },
  {
    name: 'unknown key in [outbound], with a suggestion',
    toml: '[outbound]\nmaxConnections = 5\n',
    key: 'outbound.maxConnections',
    line: 2,
    message: /did you mean "max_connections"/,
  },
  {
    name: 'outbound.tls_policy with a bad domain',
    toml: '[outbound.tls_policy]\n"example.com" = "verify"\n"exa mple.com" = "verify"\n',
    key: 'outbound.tls_policy."exa mple.com"',
    line: 3,
    message: /"exa mple\.com" is not a domain name or "\*\.domain" pattern/,
  },
  {
    name: 'outbound.tls_policy with a bare "*"',
    toml: '[outbound.tls_policy]\n"*" = "verify"\n',
    key: 'outbound.tls_policy."*"',
    line: 2,
    message: /is not a domain name or "\*\.domain" pattern/,
  },
  {
    name: 'outbound.tls_policy with an unknown policy',
    toml: '[outbound.tls_policy]\n"example.com" = "strict"\n',
    key: 'outbound.tls_policy."example.com"',
    line: 2,
    message: /"strict" is not one of "none", "may", "encrypt", "verify"/,
  },
  {
    name: 'outbound.tls_policy naming a domain twice in another case',
    toml: '[outbound.tls_policy]\n"example.com" = "verify"\n"EXAMPLE.com" = "none"\n',
    key: 'outbound.tls_policy."EXAMPLE.com"',
    line: 3,
    message: /the same domain as "example\.com" \(domains ignore case\)/,
  },
  {
    name: 'outbound.tls_policy that is not a table',
    toml: '[outbound]\ntls_policy = "verify"\n',
    key: 'outbound.tls_policy',
    line: 2,
    message: /must be a table of domain = policy/,
  },
  {
    name: 'a transport without a domain points at its header',
    toml: '[outbound]\n\n[[outbound.transport]]\nrelay = "smtp.example.net"\n',
    key: 'outbound.transport[0].domain',
    line: 3,
    message: /missing; give the destination domain/,
  },
  {
    name: 'a transport without a relay',
    toml: '[[outbound.transport]]\ndomain = "example.com"\nrelay = "smtp.example.net"\n[[outbound.transport]]\ndomain = "example.net"\n',
    key: 'outbound.transport[1].relay',
    line: 4,
    message: /missing; give the next hop/,
  },
  {
    name: 'a transport with a bad domain pattern',
    toml: '[[outbound.transport]]\ndomain = "*.*.example.com"\nrelay = "smtp.example.net"\n',
    key: 'outbound.transport[0].domain',
    line: 2,
    message: /"\*\.\*\.example\.com" is not a domain name or "\*\.domain" pattern/,
  },
  {
    name: 'a transport with a bad relay',
    toml: '[[outbound.transport]]\ndomain = "example.com"\nrelay = "[::1]:99999"\n',
    key: 'outbound.transport[0].relay',
    line: 3,
    message: /"99999" in "\[::1\]:99999" is not a port number/,
  },
  {
    name: 'a transport with a port key (the port goes in relay)',
    toml: '[[outbound.transport]]\ndomain = "example.com"\nrelay = "smtp.example.net"\nport = 587\n',
    key: 'outbound.transport[0].port',
    line: 4,
    message: /unknown key \(known here: domain, relay, transport, tls, username, password\)/,
  },
  {
    name: 'transport credentials with tls inherited from outbound.tls',
    toml: '[[outbound.transport]]\ndomain = "example.com"\nrelay = "[smtp.example.net]:587"\nusername = "u"\npassword = "p"\n',
    key: 'outbound.transport[0].username',
    line: 4,
    message: /set tls = "encrypt" or "verify" here \(the "may" of outbound\.tls/,
  },
  {
    name: "transport credentials with tls inherited from the domain's tls_policy",
    toml: '[outbound]\ntls = "verify"\n[outbound.tls_policy]\n"example.com" = "none"\n[[outbound.transport]]\ndomain = "example.com"\nrelay = "[smtp.example.net]:587"\nusername = "u"\npassword = "p"\n',
    key: 'outbound.transport[0].username',
    line: 8,
    message: /the "none" of outbound\.tls_policy\."example\.com"/,
  },
  {
    name: 'transport with an unknown tls policy',
    toml: '[[outbound.transport]]\ndomain = "example.com"\nrelay = "smtp.example.net"\ntls = "always"\n',
    key: 'outbound.transport[0].tls',
    line: 4,
    message: /"always" is not one of/,
  },
  {
    name: 'a transport for a local domain',
    toml: 'local_domains = ["example.org"]\n[[outbound.transport]]\ndomain = "Example.ORG"\nrelay = "smtp.example.net"\n',
    key: 'outbound.transport[0].domain',
    line: 3,
    message: /"Example\.ORG" is in local_domains: its mail is delivered here, never through a transport/,
  },
  {
    name: 'two transports for one domain, reported on the second',
    toml: '[[outbound.transport]]\ndomain = "example.com"\nrelay = "a.example.net"\n\n[[outbound.transport]]\ndomain = "EXAMPLE.COM"\nrelay = "b.example.net"\n',
    key: 'outbound.transport[1].domain',
    line: 6,
    message: /"EXAMPLE\.COM" already has a transport \(outbound\.transport\[0\], line 2\)/,
  },
  {
    name: '[outbound.transport] as a single table',
    toml: '[outbound.transport]\ndomain = "example.com"\nrelay = "smtp.example.net"\n',
    key: 'outbound.transport',
    line: 1,
    message: /must be an array of tables \(\[\[outbound\.transport\]\]\)/,
  },
  {
    name: 'queue.retry_min_seconds zero',
    toml: '[queue]\nretry_min_seconds = 0\n',
    key: 'queue.retry_min_seconds',
    line: 2,
    message: /greater than 0/,
  },
  {
    name: 'queue.retry_max_seconds below retry_min_seconds',
    toml: '[queue]\nretry_min_seconds = 600\nretry_max_seconds = 300\n',
    key: 'queue.retry_max_seconds',
    line: 3,
    message: /must be at least retry_min_seconds \(600\)/,
  },
  {
    name: 'queue.retry_max_seconds below the default retry_min_seconds',
    toml: '[queue]\nretry_max_seconds = 60\n',
    key: 'queue.retry_max_seconds',
    line: 2,
    message: /must be at least retry_min_seconds \(300, the default\)/,
  },
  {
    name: 'queue.retry_min_seconds above the default retry_max_seconds',
    toml: '[queue]\nretry_min_seconds = 5000\n',
    key: 'queue.retry_min_seconds',
    line: 2,
    message: /must not be more than retry_max_seconds \(4000, the default\)/,
  },
  {
    name: 'queue.retry_max_seconds past what Node timers can hold',
    toml: '[queue]\nretry_max_seconds = 2147484\n',
    key: 'queue.retry_max_seconds',
    line: 2,
    message: /at most 2147483 seconds/,
  },
  {
    name: 'queue.lifetime_seconds over a year',
    toml: '[queue]\nlifetime_seconds = 31536001\n',
    key: 'queue.lifetime_seconds',
    line: 2,
    message: /must be at most 31536000 seconds \(365 days\)/,
  },
  {
    name: 'queue.lifetime_seconds negative',
    toml: '[queue]\nlifetime_seconds = -1\n',
    key: 'queue.lifetime_seconds',
    line: 2,
    message: /must not be negative/,
  },
  {
    name: 'queue.delay_warning_seconds not below lifetime_seconds',
    toml: '[queue]\nlifetime_seconds = 3600\ndelay_warning_seconds = 3600\n',
    key: 'queue.delay_warning_seconds',
    line: 3,
    message: /must be shorter than lifetime_seconds \(3600\).*0 turns delay warnings off/,
  },
  {
    name: 'queue.delay_warning_seconds past the default lifetime',
    toml: '[queue]\ndelay_warning_seconds = 432000\n',
    key: 'queue.delay_warning_seconds',
    line: 2,
    message: /must be shorter than lifetime_seconds \(432000, the default\)/,
  },
  {
    name: 'queue.lifetime_seconds below the default delay warning',
    toml: '[queue]\nlifetime_seconds = 3600\n',
    key: 'queue.lifetime_seconds',
    line: 2,
    message: /must be longer than delay_warning_seconds \(14400, the default\)/,
  },
  {
    name: 'queue.postmaster that is not an address',
    toml: '[queue]\npostmaster = "postmaster"\n',
    key: 'queue.postmaster',
    line: 2,
    message: /"postmaster" is not an email address/,
  },
  {
    name: 'queue.postmaster outside the local domains',
    toml: 'local_domains = ["example.org"]\n[queue]\npostmaster = "postmaster@example.net"\n',
    key: 'queue.postmaster',
    line: 3,
    message: /"example\.net" is not in local_domains; double bounces must be delivered here/,
  },
  {
    name: 'queue.postmaster with an address literal',
    toml: '[queue]\npostmaster = "postmaster@[127.0.0.1]"\n',
    key: 'queue.postmaster',
    line: 2,
    message: /"\[127\.0\.0\.1\]" is not in local_domains/,
  },
  {
    name: 'queue.postmaster empty',
    toml: '[queue]\npostmaster = ""\n',
    key: 'queue.postmaster',
    line: 2,
    message: /must not be empty/,
  },
  {
    name: 'unknown key in [queue], with a suggestion',
    toml: '[queue]\nlifetime_second = 3600\n',
    key: 'queue.lifetime_second',
    line: 2,
    message: /did you mean "lifetime_seconds"/,
  },
  {
    name: 'dotted keys are located too',
    toml: 'hostname = "a.example"\nlimits.max_errors = 0\n',
    key: 'limits.max_errors',
    line: 2,
    message: /at least 1/,
  },
];

describe('parseConfig: each kind of error names its key and line', () => {
  for (const c of ERROR_CASES) {
    test(c.name, () => {
      const errors = parsedErrors(c.toml);
      assert.equal(errors.length, 1, formatConfigErrors(errors, 'test.toml'));
      const [e] = errors;
      assert.equal(e!.key, c.key);
      assert.equal(e!.line, c.line);
      assert.match(e!.message, c.message);
    });
  }
});

describe('parseConfig: many errors at once', () => {
  test('every error in the file is reported, in file order', () => {
    const errors = parsedErrors(
      [
        'hostname = "bad host"', // 1
        'local_domains = ["ok.example", "-bad.example"]', // 2
        '', // 3
        '[[listeners]]', // 4
        'service = "smtp"', // 5
        'address = "nowhere"', // 6
        '', // 7
        '[limits]', // 8
        'max_recipients = "lots"', // 9
        'max_command_line_bytes = 10', // 10
        'colour = "blue"', // 11
        '', // 12
        '[log]', // 13
        'format = "xml"', // 14
      ].join('\n'),
    );
    assert.deepEqual(
      errors.map((e) => [e.line, e.key]),
      [
        [1, 'hostname'],
        [2, 'local_domains[1]'],
        [6, 'listeners[0].address'],
        [9, 'limits.max_recipients'],
        [10, 'limits.max_command_line_bytes'],
        [11, 'limits.colour'],
        [14, 'log.format'],
      ],
    );
  });

  test('keys inside multi-line strings do not confuse the line scan', () => {
    const errors = parsedErrors('hostname = """\nlimits = 1\n"""\n[limits]\nmax_errors = 0\n');
    assert.deepEqual(
      errors.map((e) => [e.line, e.key]),
      [
        [1, 'hostname'],
        [5, 'limits.max_errors'],
      ],
    );
  });
});

describe('parseConfig: TOML syntax errors', () => {
  test('a syntax error is one error with its line', () => {
    const errors = parsedErrors('hostname = "a.example"\n[limits]\nmax_recipients = = 3\n');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.key, '');
    assert.equal(errors[0]!.line, 3);
    assert.match(errors[0]!.message, /^TOML syntax error: .+ \(column \d+\)$/);
  });

  test('a key defined twice is a syntax error on the second line', () => {
    const errors = parsedErrors('[smtp]\nvrfy = true\nvrfy = false\n');
    assert.equal(errors[0]!.line, 3);
    assert.match(errors[0]!.message, /TOML syntax error/);
  });
});

describe('parseConfig: warnings', () => {
  test('fewer than 100 recipients is allowed, with a warning that names key and line', () => {
    const { config, warnings } = parsedOk('[limits]\nmax_recipients = 10\n');
    assert.equal(config.limits.maxRecipients, 10);
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.key, 'limits.max_recipients');
    assert.equal(warnings[0]!.line, 2);
    assert.match(warnings[0]!.message, /RFC 5321 §4\.5\.3\.1\.8/);
  });

  test('a message limit under 64K is allowed with a warning', () => {
    const { warnings } = parsedOk('[limits]\nmax_message_bytes = 1000\n');
    assert.deepEqual(
      warnings.map((w) => w.key),
      ['limits.max_message_bytes'],
    );
  });

  test('an AUTH mechanism listed twice (in any case) is kept once, with a warning', () => {
    const { config, warnings } = parsedOk('[auth]\nmechanisms = ["PLAIN",\n  "login", "plain"]\n');
    assert.deepEqual(config.auth.mechanisms, ['PLAIN', 'LOGIN']);
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [['auth.mechanisms[2]', 3]],
    );
  });

  test('a submission listener without TLS that requires AUTH warns: nobody could send', () => {
    const { warnings } = parsedOk(
      '[[listeners]]\nservice = "submission"\naddress = "127.0.0.1:587"\ntls = "none"\n',
    );
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [['listeners[0].tls', 4]],
    );
    assert.match(warnings[0]!.message, /AUTH is offered only over TLS/);
  });

  test('without TLS, plaintext AUTH on loopback or require_auth = false silences that warning', () => {
    for (const extra of ['allow_plaintext_auth_on_loopback = true', 'require_auth = false']) {
      const { warnings } = parsedOk(
        `[[listeners]]\nservice = "submission"\naddress = "127.0.0.1:587"\ntls = "none"\n${extra}\n`,
      );
      assert.deepEqual(warnings, [], extra);
    }
  });

  test('allow_plaintext_auth_on_loopback with auth = false warns that it does nothing', () => {
    const { config, warnings } = parsedOk(
      '[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:25"\nallow_plaintext_auth_on_loopback = true\n',
    );
    assert.equal(config.listeners[0]!.plaintextAuthOnLoopback, true);
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [['listeners[0].allow_plaintext_auth_on_loopback', 4]],
    );
  });

  test('[auth.oauth] that no listed mechanism uses warns', () => {
    const { config, warnings } = parsedOk('[auth.oauth]\nhmac_secret = "0123456789abcdef0123456789abcdef"\n');
    assert.notEqual(config.auth.oauth, null);
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [['auth.oauth', 1]],
    );
    assert.match(warnings[0]!.message, /add "OAUTHBEARER" or "XOAUTH2" to auth\.mechanisms/);
  });

  test('an HS256 secret under 32 bytes warns (RFC 7518 §3.2), without echoing the secret', () => {
    const { warnings } = parsedOk(
      '[auth]\nmechanisms = ["OAUTHBEARER"]\n[auth.oauth]\nhmac_secret = "hunter2"\n',
    );
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [['auth.oauth.hmac_secret', 4]],
    );
    assert.match(warnings[0]!.message, /RFC 7518 §3\.2/);
    assert.doesNotMatch(warnings[0]!.message, /hunter2/);
  });

  test('introspection over plain http to another host warns', () => {
    const { warnings } = parsedOk(
      '[auth]\nmechanisms = ["XOAUTH2"]\n[auth.oauth]\nintrospection_url = "http://login.example.org/introspect"\n',
    );
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [['auth.oauth.introspection_url', 4]],
    );
  });

  test('a local domain listed twice (in any case) is kept once, with a warning', () => {
    const { config, warnings } = parsedOk('local_domains = ["a.example",\n "A.Example"]\n');
    assert.deepEqual(config.localDomains, ['a.example']);
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [['local_domains[1]', 2]],
    );
  });
});

describe('formatConfigErrors', () => {
  test('FILE:LINE: key: message, leaving out what is unknown', () => {
    const text = formatConfigErrors(
      [
        { key: 'limits.max_errors', line: 4, message: 'must be at least 1' },
        { key: '', line: 2, message: 'TOML syntax error: x' },
        { key: '', line: null, message: 'cannot read' },
        { key: 'hostname', line: null, message: 'bad' },
      ],
      '/etc/tern.toml',
    );
    assert.equal(
      text,
      [
        '/etc/tern.toml:4: limits.max_errors: must be at least 1',
        '/etc/tern.toml:2: TOML syntax error: x',
        '/etc/tern.toml: cannot read',
        '/etc/tern.toml: hostname: bad',
      ].join('\n'),
    );
  });
});

describe('loadConfig', () => {
  test('no path and no ./tern.toml: the defaults, data_dir resolved against cwd', () => {
    const cwd = freshDir();
    const config = loadConfig({ path: null, cwd });
    assert.deepEqual(config, { ...defaultConfig(), dataDir: join(cwd, 'data'), source: null });
    assert.ok(Object.isFrozen(config.limits));
  });

  test('no path: ./tern.toml in cwd is used when it exists', () => {
    const cwd = freshDir();
    writeFileSync(join(cwd, 'tern.toml'), 'hostname = "mx.example.org"\n');
    const config = loadConfig({ path: null, cwd });
    assert.equal(config.hostname, 'mx.example.org');
    assert.equal(config.source, join(cwd, 'tern.toml'));
  });

  test('relative paths resolve against the config file directory, not cwd', () => {
    const cwd = freshDir();
    const etc = join(cwd, 'etc', 'tern');
    mkdirSync(etc, { recursive: true });
    writeFileSync(
      join(etc, 'main.toml'),
      'data_dir = "../../var/mail"\n[tls]\ncert = "certs/cert.pem"\nkey = "/abs/key.pem"\n',
    );
    const config = loadConfig({ path: 'etc/tern/main.toml', cwd });
    assert.equal(config.source, join(etc, 'main.toml'));
    assert.equal(config.dataDir, join(cwd, 'var', 'mail'));
    assert.equal(config.tls.cert, join(etc, 'certs', 'cert.pem'));
    assert.equal(config.tls.key, '/abs/key.pem');
  });

  test('tls.client_ca and auth.oauth.jwks_file resolve against the config file directory', () => {
    const cwd = freshDir();
    const etc = join(cwd, 'etc');
    mkdirSync(etc);
    writeFileSync(
      join(etc, 'tern.toml'),
      '[tls]\nclient_ca = "ca/clients.pem"\n[auth]\nmechanisms = ["OAUTHBEARER"]\n[auth.oauth]\njwks_file = "../jwks.json"\n',
    );
    const config = loadConfig({ path: 'etc/tern.toml', cwd });
    assert.equal(config.tls.clientCa, join(etc, 'ca', 'clients.pem'));
    assert.equal(config.auth.oauth?.jwksFile, join(cwd, 'jwks.json'));
    assert.ok(Object.isFrozen(config.auth.oauth));
  });

  test('outbound.tls_ca resolves against the config file directory; the Maps stay frozen Maps', () => {
    const cwd = freshDir();
    const etc = join(cwd, 'etc');
    mkdirSync(etc);
    writeFileSync(
      join(etc, 'tern.toml'),
      '[outbound]\ntls_ca = "ca/relays.pem"\n[outbound.tls_policy]\n"example.com" = "verify"\n',
    );
    const config = loadConfig({ path: 'etc/tern.toml', cwd });
    assert.equal(config.outbound.tlsCa, join(etc, 'ca', 'relays.pem'));
    assert.ok(Object.isFrozen(config.outbound));
    assert.ok(config.outbound.tlsPolicies instanceof Map);
    assert.throws(() => (config.outbound.tlsPolicies as Map<string, string>).clear(), TypeError);
    assert.equal(config.outbound.tlsPolicies.get('example.com'), 'verify');
  });

  test('an absolute outbound.tls_ca is kept', () => {
    const cwd = freshDir();
    writeFileSync(join(cwd, 'tern.toml'), '[outbound]\ntls_ca = "/etc/ssl/relay.pem"\n');
    assert.equal(loadConfig({ path: null, cwd }).outbound.tlsCa, '/etc/ssl/relay.pem');
  });

  test('parseConfig itself leaves relative paths as written', () => {
    const { config } = parsedOk('data_dir = "mail"\n');
    assert.equal(config.dataDir, 'mail');
  });

  test('a named file that is missing throws ConfigLoadError naming the file', () => {
    const cwd = freshDir();
    const err = catchLoad({ path: 'nope.toml', cwd });
    assert.equal(err.source, join(cwd, 'nope.toml'));
    assert.deepEqual(err.errors, [
      { key: '', line: null, message: 'cannot read the configuration file: it does not exist' },
    ]);
    assert.equal(
      err.message,
      `${join(cwd, 'nope.toml')}: cannot read the configuration file: it does not exist`,
    );
  });

  test('./tern.toml that is a directory is an error, not a silent fallback', () => {
    const cwd = freshDir();
    mkdirSync(join(cwd, 'tern.toml'));
    const err = catchLoad({ path: null, cwd });
    assert.match(err.message, /it is a directory/);
  });

  test('a bad file throws ConfigLoadError listing each error as FILE:LINE: key: message', () => {
    const cwd = freshDir();
    const file = join(cwd, 'tern.toml');
    writeFileSync(file, '[limits]\nmax_errors = 0\n[log]\nlevel = "loud"\n');
    const err = catchLoad({ path: 'tern.toml', cwd });
    assert.equal(err.errors.length, 2);
    assert.equal(
      err.message,
      `${file}:2: limits.max_errors: must be at least 1\n${file}:4: log.level: "loud" is not one of "trace", "debug", "info", "warn", "error"`,
    );
  });

  test('a file that is not UTF-8 is refused', () => {
    const cwd = freshDir();
    writeFileSync(join(cwd, 'tern.toml'), Buffer.from([0x68, 0x3d, 0x22, 0xff, 0xfe, 0x22, 0x0a]));
    assert.match(catchLoad({ path: null, cwd }).message, /not valid UTF-8/);
  });

  test('warnings of a file that loads go to onWarning', () => {
    const cwd = freshDir();
    writeFileSync(join(cwd, 'tern.toml'), '[limits]\nmax_recipients = 5\n');
    const seen: string[] = [];
    const config = loadConfig({
      path: null,
      cwd,
      onWarning: (w, source) => seen.push(formatConfigErrors([w], source)),
    });
    assert.equal(config.limits.maxRecipients, 5);
    assert.equal(seen.length, 1);
    assert.match(
      seen[0]!,
      new RegExp(`^${escapeRegExp(join(cwd, 'tern.toml'))}:2: limits\\.max_recipients: `),
    );
  });
});

describe('tern.example.toml and docs/configuration.md', () => {
  const example = readFileSync(join(ROOT, 'tern.example.toml'), 'utf8');

  test('the example parses, without warnings, to exactly the defaults', () => {
    const { config, warnings } = parsedOk(example);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config, { ...defaultConfig(), source: 'test.toml' });
  });

  test('the example still parses with its commented keys switched on', () => {
    const uncommented = example.replace(/^# ((?:cert|key) = .*)$/gm, '$1');
    assert.notEqual(uncommented, example);
    const { config } = parsedOk(uncommented);
    assert.notEqual(config.tls.cert, null);
    assert.notEqual(config.tls.key, null);
  });

  test('the example parses with every commented key and table switched on', () => {
    const uncommented = example.replace(
      /^# ((?:\[auth\.oauth\]|\[outbound\.[a-z_]+\]|\[filters\.[a-z_]+\]|\[\[outbound\.transport\]\]|"[^"]+" = |[a-z_]+ = ).*)$/gm,
      '$1',
    );
    const { config } = parsedOk(uncommented);
    assert.notEqual(config.tls.clientCa, null);
    assert.notEqual(config.auth.oauth, null);
    assert.equal(config.auth.oauth?.usernameClaim, 'email');
    assert.notEqual(config.outbound.tlsCa, null);
    assert.notEqual(config.outbound.sourceAddress, null);
    assert.notEqual(config.outbound.relay?.auth ?? null, null);
    assert.equal(config.outbound.tlsPolicies.size, 2);
    assert.deepEqual(config.filters.order, [
      'dnsbl',
      'greylist',
      'rspamd',
      'spamassassin',
      'clamav',
      'milter',
    ]);
    assert.equal(config.outbound.transports.size, 1);
    assert.notEqual(config.queue.postmaster, null);
  });

  test('every key of the example is documented in docs/configuration.md', () => {
    const docs = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
    const keys = [...example.matchAll(/^(?:# )?([a-z_]+) = /gm)].map((m) => m[1]!);
    assert.ok(keys.length >= 25, `found only ${keys.length} keys in the example`);
    const missing = keys.filter((k) => !docs.includes(`\`${k}\``));
    assert.deepEqual(missing, []);
  });
});

function catchLoad(opts: { path: string | null; cwd: string }): ConfigLoadError {
  try {
    loadConfig(opts);
  } catch (err) {
    assert.ok(err instanceof ConfigLoadError, `expected ConfigLoadError, got ${String(err)}`);
    return err;
  }
  return assert.fail('expected loadConfig to throw');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('warnings for settings that make an open relay or refuse mail', () => {
  test('trusted_networks with every address, or wider than a /8 (IPv4, also IPv4-mapped) or an IPv6 /8', () => {
    const { warnings } = parsedOk(
      [
        '[smtp]',
        'trusted_networks = [',
        '  "0.0.0.0/0",',
        '  "::/0",',
        '  "10.0.0.0/8",',
        '  "64.0.0.0/2",',
        '  "::ffff:0:0/100",',
        '  "::/64",',
        '  "fd00::/8",',
        '  "2000::/3",',
        '  "192.0.2.7",',
        ']',
      ].join('\n'),
    );
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [
        ['smtp.trusted_networks[0]', 3],
        ['smtp.trusted_networks[1]', 4],
        ['smtp.trusted_networks[3]', 6],
        ['smtp.trusted_networks[4]', 7],
        ['smtp.trusted_networks[5]', 8],
        ['smtp.trusted_networks[7]', 10],
      ],
    );
    assert.match(warnings[0]!.message, /every IPv4 address.*open relay/);
    assert.match(warnings[1]!.message, /every address.*open relay/);
    assert.match(warnings[2]!.message, /wider than a \/8/);
    assert.match(warnings[4]!.message, /every IPv4 address/, '::/64 holds ::ffff:0:0/96, all of IPv4');
  });

  test('an smtp listener that requires AUTH refuses mail from other servers', () => {
    const { warnings } = parsedOk(
      [
        '[[listeners]]',
        'service = "smtp"',
        'address = "0.0.0.0:25"',
        'auth = true',
        'require_auth = true',
      ].join('\n'),
    );
    assert.deepEqual(
      warnings.map((w) => [w.key, w.line]),
      [['listeners[0].require_auth', 5]],
    );
    assert.match(warnings[0]!.message, /other mail servers do not authenticate/);
  });

  test('the defaults and the example file load without these warnings', () => {
    assert.deepEqual(parsedOk('').warnings, []);
    const example = readFileSync(join(ROOT, 'tern.example.toml'), 'utf8');
    assert.deepEqual(parsedOk(example).warnings, []);
  });
});

describe('POP3 listeners and [pop3]', () => {
  test('the defaults include pop3 (STLS) on 2110 and pop3s (implicit TLS) on 2995, both logging users in', () => {
    const { config } = parsedOk('');
    const pop3 = config.listeners.filter((l) => l.service === 'pop3' || l.service === 'pop3s');
    assert.deepEqual(
      pop3.map((l) => [l.service, l.host, l.port, l.tls, l.auth, l.requireAuth]),
      [
        ['pop3', '127.0.0.1', 2110, 'starttls', true, true],
        ['pop3s', '127.0.0.1', 2995, 'implicit', true, true],
      ],
    );
    assert.equal(config.pop3.idleTimeoutMs, 600_000);
  });

  test('pop3s defaults to implicit TLS; pop3 to STLS, or none with loopback logins', () => {
    const { config, warnings } = parsedOk(
      [
        '[[listeners]]',
        'service = "pop3s"',
        'address = "0.0.0.0:995"',
        '[[listeners]]',
        'service = "pop3"',
        'address = "127.0.0.1:110"',
        'tls = "none"',
        'allow_plaintext_auth_on_loopback = true',
        '',
      ].join('\n'),
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(
      config.listeners.map((l) => [l.service, l.tls, l.plaintextAuthOnLoopback]),
      [
        ['pop3s', 'implicit', false],
        ['pop3', 'none', true],
      ],
    );
  });

  test('wrong TLS modes and turning logins off are errors naming the key and line', () => {
    const errors = parsedErrors(
      [
        '[[listeners]]',
        'service = "pop3s"',
        'address = "0.0.0.0:995"',
        'tls = "starttls"',
        '[[listeners]]',
        'service = "pop3"',
        'address = "0.0.0.0:110"',
        'tls = "implicit"',
        '[[listeners]]',
        'service = "pop3"',
        'address = "0.0.0.0:1110"',
        'auth = false',
        'require_auth = false',
        '',
      ].join('\n'),
    );
    assert.deepEqual(
      errors.map((e) => [e.line, e.key]),
      [
        [4, 'listeners[0].tls'],
        [8, 'listeners[1].tls'],
        [12, 'listeners[2].auth'],
        [13, 'listeners[2].require_auth'],
      ],
    );
    assert.match(errors[0]!.message, /pop3s is implicit TLS/);
    assert.match(errors[1]!.message, /use service = "pop3s"/);
    assert.match(errors[2]!.message, /always requires a login/);
  });

  test('[pop3] idle_timeout_seconds: seconds to ms, below 600 warned (RFC 1939 §3), 0 refused', () => {
    assert.equal(parsedOk('[pop3]\nidle_timeout_seconds = 1800\n').config.pop3.idleTimeoutMs, 1_800_000);
    const { config, warnings } = parsedOk('[pop3]\nidle_timeout_seconds = 60\n');
    assert.equal(config.pop3.idleTimeoutMs, 60_000);
    assert.deepEqual(
      warnings.map((w) => [w.line, w.key]),
      [[2, 'pop3.idle_timeout_seconds']],
    );
    assert.match(warnings[0]!.message, /RFC 1939/);
    assert.deepEqual(
      parsedErrors('[pop3]\nidle_timeout_seconds = 0\n').map((e) => [e.line, e.key]),
      [[2, 'pop3.idle_timeout_seconds']],
    );
    assert.deepEqual(
      parsedErrors('[pop3]\nidle = 5\n').map((e) => e.key),
      ['pop3.idle'],
    );
  });
});

describe('IMAP listeners and [imap]', () => {
  test('the defaults include imap (STARTTLS) on 2143 and imaps (implicit TLS) on 2993, both logging users in', () => {
    const { config } = parsedOk('');
    const imap = config.listeners.filter((l) => l.service === 'imap' || l.service === 'imaps');
    assert.deepEqual(
      imap.map((l) => [l.service, l.host, l.port, l.tls, l.auth, l.requireAuth]),
      [
        ['imap', '127.0.0.1', 2143, 'starttls', true, true],
        ['imaps', '127.0.0.1', 2993, 'implicit', true, true],
      ],
    );
    assert.equal(config.imap.idleTimeoutMs, 1_800_000);
  });

  test('wrong TLS modes and turning logins off are errors naming the key and line', () => {
    const errors = parsedErrors(
      [
        '[[listeners]]',
        'service = "imaps"',
        'address = "0.0.0.0:993"',
        'tls = "starttls"',
        '[[listeners]]',
        'service = "imap"',
        'address = "0.0.0.0:143"',
        'tls = "implicit"',
        'auth = false',
        '',
      ].join('\n'),
    );
    assert.deepEqual(
      errors.map((e) => [e.line, e.key]),
      [
        [4, 'listeners[0].tls'],
        [8, 'listeners[1].tls'],
        [9, 'listeners[1].auth'],
      ],
    );
    assert.match(errors[0]!.message, /imaps is implicit TLS/);
    assert.match(errors[1]!.message, /use service = "imaps"/);
  });

  test('[imap] keys: idle below 30 minutes warned (RFC 9051 §5.4), a line limit below 8192 refused', () => {
    const { config, warnings } = parsedOk('[imap]\nidle_timeout_seconds = 600\n');
    assert.equal(config.imap.idleTimeoutMs, 600_000);
    assert.deepEqual(
      warnings.map((w) => [w.line, w.key]),
      [[2, 'imap.idle_timeout_seconds']],
    );
    assert.match(warnings[0]!.message, /RFC 9051/);
    assert.deepEqual(
      parsedErrors('[imap]\nmax_line_bytes = 1000\n').map((e) => [e.line, e.key]),
      [[2, 'imap.max_line_bytes']],
    );
    assert.deepEqual(
      parsedErrors('[imap]\nidle = 5\n').map((e) => e.key),
      ['imap.idle'],
    );
  });
});

describe('[limits] mailbox quota', () => {
  test('unlimited (0) by default', () => {
    const { config } = parsedOk('');
    assert.equal(config.limits.mailboxQuotaBytes, 0);
    assert.equal(config.limits.mailboxQuotaMessages, 0);
  });

  test('bytes and messages set separately; one left out stays unlimited', () => {
    const { config, warnings } = parsedOk('[limits]\nmailbox_quota_bytes = 2147483648\n');
    assert.deepEqual(warnings, []);
    assert.equal(config.limits.mailboxQuotaBytes, 2_147_483_648);
    assert.equal(config.limits.mailboxQuotaMessages, 0);
    const other = parsedOk('[limits]\nmailbox_quota_messages = 1000\nmailbox_quota_bytes = 0\n').config;
    assert.equal(other.limits.mailboxQuotaBytes, 0);
    assert.equal(other.limits.mailboxQuotaMessages, 1000);
  });
});

describe('admin listeners and [admin]', () => {
  test('the defaults have the admin page on 127.0.0.1:8025 over plain HTTP', () => {
    const { config } = parsedOk('');
    assert.deepEqual(config.admin.listeners, [{ host: '127.0.0.1', port: 8025, tls: 'none' }]);
    assert.deepEqual(config.admin.openNetworks, []);
  });

  test('listeners given without an admin one mean no admin page', () => {
    const { config } = parsedOk('[[listeners]]\nservice = "smtp"\naddress = "127.0.0.1:2525"\n');
    assert.deepEqual(config.admin.listeners, []);
    assert.equal(config.listeners.length, 1);
  });

  test('plain HTTP away from loopback, a bad tls mode, a foreign key and a port clash are errors with lines', () => {
    const errors = parsedErrors(
      [
        '[[listeners]]',
        'service = "admin"',
        'address = "0.0.0.0:8025"',
        '[[listeners]]',
        'service = "admin"',
        'address = "[::1]:8026"',
        'tls = "starttls"',
        '[[listeners]]',
        'service = "admin"',
        'address = "127.0.0.1:8027"',
        'auth = true',
        '[[listeners]]',
        'service = "smtp"',
        'address = "127.0.0.1:8028"',
        '[[listeners]]',
        'service = "admin"',
        'address = "127.0.0.1:8028"',
        '[admin]',
        'open_networks = ["10.0.0.0/33"]',
        'session_idle_minutes = 0',
        '',
      ].join('\n'),
    );
    const byKey = new Map(errors.map((e) => [e.key, e]));
    assert.match(byKey.get('listeners[0].address')?.message ?? '', /loopback/);
    assert.equal(byKey.get('listeners[0].address')?.line, 3);
    assert.ok(byKey.has('listeners[1].tls'));
    assert.equal(byKey.get('listeners[2].auth')?.line, 11);
    assert.match(byKey.get('listeners[4].address')?.message ?? '', /conflicts with listeners\[3\]/);
    assert.ok(byKey.has('admin.open_networks[0]'));
    assert.ok(byKey.has('admin.session_idle_minutes'));
  });

  test('HTTPS on every address is accepted, [::1] over plain HTTP too', () => {
    const { config } = parsedOk(
      [
        '[[listeners]]',
        'service = "admin"',
        'address = "[::]:8443"',
        'tls = "implicit"',
        '[[listeners]]',
        'service = "admin"',
        'address = "[::1]:8025"',
      ].join('\n'),
    );
    assert.deepEqual(config.admin.listeners, [
      { host: '::', port: 8443, tls: 'implicit' },
      { host: '::1', port: 8025, tls: 'none' },
    ]);
  });
});

describe('[filters]', () => {
  test('no filters by default; a [filters.dnsbl] table turns it on, in the default order', () => {
    assert.deepEqual(parsedOk('').config.filters, DEFAULT_FILTERS);
    const { config } = parsedOk('[filters.dnsbl]\nzones = ["bl.example.org"]\n');
    assert.deepEqual(config.filters.order, ['dnsbl']);
    assert.equal(config.filters.dnsbl?.onFailure, 'accept');
  });

  test('every filter table, milters by name, a plugin, per-network and per-listener pipelines', () => {
    const { config, warnings } = parsedOk(
      [
        '[[listeners]]',
        'service = "submission"',
        'address = "127.0.0.1:587"',
        'filters = ["clamav", "milter:dkim"]',
        '[filters]',
        'order = ["auth", "dnsbl", "greylist", "rspamd", "spamassassin", "clamav", "milter", "mine"]',
        '[filters.networks]',
        '"10.0.0.0/8" = ["clamav"]',
        '[filters.dnsbl]',
        'allow_zones = ["list.dnswl.example=127.0.10.2,127.0.10.3"]',
        'domain_zones = ["dbl.example"]',
        '[filters.greylist]',
        'enabled = true',
        'delay_seconds = 120',
        'skip_spf_domains = ["*.bigmail.example"]',
        '[filters.rspamd]',
        'url = "http://127.0.0.1:11333/"',
        '[filters.spamassassin]',
        'address = "127.0.0.1:783"',
        'reject_score = 12.5',
        '[filters.clamav]',
        'address = "unix:/run/clamav/clamd.ctl"',
        'on_too_large = "tempfail"',
        '[[filters.milter]]',
        'name = "dkim"',
        'address = "[::1]:8891"',
        '[[filters.milter]]',
        'address = "127.0.0.1:8893"',
        'on_failure = "accept"',
        '[[filters.plugin]]',
        'name = "mine"',
        'path = "plugins/mine.ts"',
        'words = ["viagra"]',
      ].join('\n'),
    );
    assert.deepEqual(warnings, []);
    const f = config.filters;
    assert.deepEqual(f.order, [
      'auth',
      'dnsbl',
      'greylist',
      'rspamd',
      'spamassassin',
      'clamav',
      'milter:dkim',
      'milter',
      'mine',
    ]);
    assert.deepEqual(f.networks, [{ network: '10.0.0.0/8', filters: ['clamav'] }]);
    assert.equal(f.greylist?.delayMs, 120_000);
    assert.equal(f.greylist?.retryWindowMs, 24 * 3_600_000);
    assert.equal(f.rspamd?.url, 'http://127.0.0.1:11333');
    assert.equal(f.spamassassin?.rejectScore, 12.5);
    assert.equal(f.clamav?.onTooLarge, 'tempfail');
    assert.equal(f.clamav?.onFailure, 'tempfail');
    assert.deepEqual(
      f.milters.map((m) => [m.name, m.address, m.onFailure]),
      [
        ['milter:dkim', '[::1]:8891', 'tempfail'],
        ['milter', '127.0.0.1:8893', 'accept'],
      ],
    );
    assert.deepEqual(f.plugins[0]?.settings, { words: ['viagra'] });
    assert.match(f.plugins[0]?.path ?? '', /plugins\/mine\.ts$/);
    assert.deepEqual(config.listeners[0]?.filters, ['clamav', 'milter:dkim']);
  });

  test('a greylist table with enabled = false turns it off, and order may still name it', () => {
    const { config } = parsedOk('[filters]\norder = ["greylist"]\n[filters.greylist]\nenabled = false\n');
    assert.equal(config.filters.greylist, null);
    assert.deepEqual(config.filters.order, []);
  });

  test('bad zones, addresses, URLs, unknown or unconfigured names are errors with lines', () => {
    const errors = parsedErrors(
      [
        '[filters]',
        'order = ["dnsbl", "spamfilter", "greylist", "milter:nope"]',
        '[filters.dnsbl]',
        'zones = ["bl.example.org", "no-dot", "x.example=8.8.8.8"]',
        'on_failure = "ignore"',
        '[filters.rspamd]',
        'url = "https://rspamd.example/x"',
        '[filters.clamav]',
        'address = "localhost"',
        '[filters.spamassassin]',
        '[[filters.milter]]',
        'name = "Bad Name"',
        'address = "127.0.0.1:99999"',
        '[[filters.plugin]]',
        'name = "dnsbl"',
        'path = "x.ts"',
        '[filters.networks]',
        '"10.0.0.0/33" = ["clamav"]',
      ].join('\n'),
    );
    const byKey = new Map(errors.map((e) => [e.key, e]));
    assert.match(byKey.get('filters.order[1]')?.message ?? '', /not a filter/);
    assert.match(byKey.get('filters.order[2]')?.message ?? '', /no \[filters\.greylist\] table/);
    assert.match(byKey.get('filters.order[3]')?.message ?? '', /with that name/);
    assert.equal(byKey.get('filters.dnsbl.zones[1]')?.line, 4);
    assert.ok(byKey.has('filters.dnsbl.zones[2]'));
    assert.ok(byKey.has('filters.dnsbl.on_failure'));
    assert.equal(byKey.get('filters.rspamd.url')?.line, 7);
    assert.equal(byKey.get('filters.clamav.address')?.line, 9);
    assert.match(byKey.get('filters.spamassassin.address')?.message ?? '', /missing/);
    assert.equal(byKey.get('filters.milter[0].name')?.line, 12);
    assert.equal(byKey.get('filters.milter[0].address')?.line, 13);
    assert.match(byKey.get('filters.plugin[0].name')?.message ?? '', /built-in/);
    assert.ok(
      byKey.has('filters.networks.10.0.0.0/33') ||
        [...byKey.keys()].some((k) => k.startsWith('filters.networks')),
    );
  });
});

describe('recipient_delimiter', () => {
  test('"+" by default, "" turns subaddressing off, anything that is address syntax is an error', () => {
    assert.equal(parsedOk('').config.recipientDelimiter, '+');
    assert.equal(parsedOk('recipient_delimiter = ""\n').config.recipientDelimiter, '');
    for (const bad of ['@', ' ', '++++-', 'a'])
      assert.equal(
        parsedErrors(`recipient_delimiter = ${JSON.stringify(bad)}\n`)[0]?.key,
        'recipient_delimiter',
        bad,
      );
  });
});
