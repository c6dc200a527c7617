// Configuration loader: TOML text → one deeply frozen Config snapshot, or every error at once, each with
// its key and line. parseConfig is pure and total (no I/O, never throws); loadConfig adds the file system:
// finding ./tern.toml, reading it, resolving relative paths against the file's directory.
// Lines: smol-toml returns plain objects without positions, so the line of a key comes from a small scan
// of the source text (table headers and `key =` lines). It is best effort, meant to point a person at the
// right line, not a second TOML parser; when it cannot tell, it names the enclosing table's line.
// Deliberately NOT here: reading TLS certificates, binding listeners, reload signalling (the caller
// builds a new snapshot and swaps it whole).
// RFC 5321 §4.5.3.1 (minimum sizes the limits must allow), RFC 8314 §3.3 (implicit TLS for submissions),
// RFC 3207 (STARTTLS on smtp and submission), RFC 4954 and RFC 6409 (AUTH and submission), RFC 7628 and
// RFC 7662 (OAuth bearer tokens, introspection), RFC 7518 §3.2 (HS256 key length), RFC 5321 §4.5.3.2
// (client timeouts: shorter ones load with a warning) and §5.1 (relays named "[host]" skip MX lookup,
// as in Postfix).

import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse, TomlDate, TomlError } from 'smol-toml';
import { formatMailbox, isValidDomain, parseMailbox } from '../core/address.ts';
import { parseDialAddress } from '../core/dial-address.ts';
import { parseZone } from '../core/dnsbl-zone.ts';
import {
  DEFAULT_ADMIN,
  DEFAULT_MTA_STS_PUBLISH,
  DEFAULT_AUTH,
  DEFAULT_CHECKS,
  DEFAULT_DNS,
  DEFAULT_IMAP,
  DEFAULT_LIMITS,
  DEFAULT_OUTBOUND,
  DEFAULT_POP3,
  DEFAULT_QUEUE,
  DEFAULT_SERVER,
  DEFAULT_TRACE,
  DEFAULT_SIEVE,
  DEFAULT_STORAGE,
  type RedisConfig,
  type SieveConfig,
  type StorageConfig,
  DEFAULT_SUBMISSION,
  SERVICES,
  defaultConfig,
  listenerDefaults,
  protocolOf,
  relayTlsOf,
} from './config.ts';
import type {
  AdminConfig,
  AdminListenerConfig,
  ClamavConfig,
  DnsblConfig,
  FilterCommonConfig,
  FilterFailureMode,
  FilterName,
  FiltersConfig,
  GreylistConfig,
  MilterConfig,
  PluginConfig,
  RspamdConfig,
  SpamAssassinConfig,
  MtaStsPublishConfig,
  AuthConfig,
  AuthMechanism,
  ChecksConfig,
  Config,
  DnsConfig,
  ImapConfig,
  LimitsConfig,
  ListenerConfig,
  LogConfig,
  OAuthConfig,
  OutboundConfig,
  OutboundTlsPolicy,
  DestinationTlsPolicy,
  Pop3Config,
  QueueConfig,
  ServerConfig,
  TraceConfig,
  RelayHost,
  Service,
  SmtpConfig,
  SubmissionConfig,
  TlsConfig,
  TlsMode,
} from './config.ts';

/** One problem in a configuration file. key is the TOML key path ("limits.max_recipients",
 * "listeners[1].address"), empty for file-level problems; line is 1-based, null when unknown. */
export interface ConfigError {
  readonly key: string;
  readonly line: number | null;
  readonly message: string;
}

/** Warnings are legal but inadvisable settings (below an RFC minimum, duplicates): reported, not fatal. */
export type ParseConfigResult =
  { ok: true; config: Config; warnings: ConfigError[] } | { ok: false; errors: ConfigError[] };

export class ConfigLoadError extends Error {
  readonly errors: readonly ConfigError[];
  /** The file the errors are in. */
  readonly source: string;

  constructor(source: string, errors: readonly ConfigError[], options?: ErrorOptions) {
    super(formatConfigErrors(errors, source), options);
    this.name = 'ConfigLoadError';
    this.errors = errors;
    this.source = source;
  }
}

export interface LoadConfigOptions {
  /** The file to read; null means ./tern.toml in cwd when it exists, else the embedded defaults. */
  readonly path: string | null;
  readonly cwd: string;
  /** Called once per warning of a file that loaded; warnings never stop a load. */
  readonly onWarning?: (warning: ConfigError, source: string) => void;
}

/** One line per error: `FILE:LINE: key: message` (the line or key left out when unknown or empty). */
export function formatConfigErrors(errors: readonly ConfigError[], source: string): string {
  return errors
    .map((e) => {
      const where = e.line === null ? source : `${source}:${e.line}`;
      return e.key === '' ? `${where}: ${e.message}` : `${where}: ${e.key}: ${e.message}`;
    })
    .join('\n');
}

/**
 * Read the configuration. Relative data_dir, tls.cert, tls.key, tls.client_ca and auth.oauth.jwks_file
 * are resolved against the config file's directory (against cwd for the embedded defaults). Throws
 * ConfigLoadError for a file that is missing (when named explicitly), unreadable, not UTF-8, or invalid.
 */
export function loadConfig(opts: LoadConfigOptions): Config {
  const cwd = resolve(opts.cwd);
  const file = resolve(cwd, opts.path ?? 'tern.toml');
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    if (opts.path === null && errorCode(err) === 'ENOENT') {
      return deepFreeze(resolvePaths(copyConfig(defaultConfig()), cwd));
    }
    throw new ConfigLoadError(file, [{ key: '', line: null, message: describeReadError(err) }], {
      cause: err,
    });
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new ConfigLoadError(file, [{ key: '', line: null, message: 'the file is not valid UTF-8 text' }], {
      cause: err,
    });
  }
  const result = parseConfig(text, file);
  if (!result.ok) throw new ConfigLoadError(file, result.errors);
  for (const warning of result.warnings) opts.onWarning?.(warning, file);
  return deepFreeze(resolvePaths(result.config, dirname(file)));
}

/**
 * The line of a key (`["listeners", 1, "address"]`) in a configuration file's text, or of its nearest
 * written ancestor, found the way the loader finds the lines of its errors; null when none is written.
 */
export function lineOfKey(text: string, path: readonly (string | number)[]): number | null {
  return indexLines(text).lineOf(path);
}

/**
 * Parse and validate TOML text. Pure and total: collects every error (syntax, unknown keys, wrong types,
 * out-of-range values, bad addresses, conflicting listeners) instead of stopping at the first. Paths are
 * returned as written; loadConfig resolves relative ones. `source` becomes Config.source.
 */
export function parseConfig(text: string, source: string): ParseConfigResult {
  let root: Record<string, unknown>;
  try {
    root = parse(text);
  } catch (err) {
    if (err instanceof TomlError) {
      // The first line of smol-toml's message is the diagnosis; the rest is a code excerpt we need not repeat.
      const head = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document:\s*/, '');
      return {
        ok: false,
        errors: [{ key: '', line: err.line, message: `TOML syntax error: ${head} (column ${err.column})` }],
      };
    }
    return { ok: false, errors: [{ key: '', line: null, message: `cannot parse TOML: ${String(err)}` }] };
  }

  const ctx: Ctx = { lines: indexLines(text), errors: [], warnings: [] };
  const defaults = defaultConfig();
  const top = readTable(ctx, [], root, TOP_KEYS) ?? {};

  const hostname = opt(top['hostname'], (v) => readHostname(ctx, ['hostname'], v)) ?? defaults.hostname;
  const dataDir = opt(top['data_dir'], (v) => readPath(ctx, ['data_dir'], v)) ?? defaults.dataDir;
  const localDomainsRead = opt(top['local_domains'], (v) => readDomains(ctx, ['local_domains'], v));
  const localDomains = localDomainsRead ?? defaults.localDomains;
  const recipientDelimiter =
    opt(top['recipient_delimiter'], (v) => {
      const d = readString(ctx, ['recipient_delimiter'], v);
      // Characters that can be in a local part and are no address syntax of their own.
      if (d !== undefined && !/^[-+_=.#~]{0,4}$/.test(d))
        return fail(
          ctx,
          ['recipient_delimiter'],
          `"${d}" is not up to four of - + _ = . # ~ ("" turns it off)`,
          d,
        );
      return d;
    }) ?? defaults.recipientDelimiter;
  // Checks against local_domains need the list as written; a bad one is reported once, not again by them.
  const knownLocalDomains =
    top['local_domains'] !== undefined && localDomainsRead === undefined ? undefined : localDomains;
  // A listener asking for client certificates needs a CA to check them against; whether tls.client_ca
  // is valid is reported by readTls, so a bad one is not also reported as missing.
  const clientCaGiven = isTable(top['tls']) && top['tls']['client_ca'] !== undefined;
  const listenersRead = opt(top['listeners'], (v) => readListeners(ctx, v, clientCaGiven));
  const listeners = listenersRead?.listeners ?? defaults.listeners;
  const tls = readTls(ctx, top['tls'], defaults.tls);
  const limits = readLimits(ctx, top['limits']);
  const smtp = readSmtp(ctx, top['smtp'], defaults.smtp);
  const pop3 = readPop3(ctx, top['pop3']);
  const imap = readImap(ctx, top['imap']);
  const log = readLog(ctx, top['log'], defaults.log);
  const auth = readAuth(ctx, top['auth']);
  const submission = readSubmission(ctx, top['submission']);
  const dns = readDns(ctx, top['dns']);
  const outbound = readOutbound(ctx, top['outbound'], knownLocalDomains);
  const queue = readQueue(ctx, top['queue'], knownLocalDomains);
  const checks = readChecks(ctx, top['checks']);
  const server = readServer(ctx, top['server']);
  const trace = readTrace(ctx, top['trace']);
  // Listeners given replace the defaults, the admin page's too: a file without one has no admin page.
  const admin = readAdmin(ctx, top['admin'], listenersRead?.admin ?? defaults.admin.listeners);
  const mtaStsPublish = readMtaStsPublish(ctx, top['mta_sts'], listenersRead?.mtaSts ?? []);
  const filters = readFilters(ctx, top['filters']);
  const sieve = readSieve(ctx, top['sieve']);
  const catchMode = opt(top['catch'], (v) => readBoolean(ctx, ['catch'], v)) ?? false;
  const storage = readStorage(ctx, top['storage']);
  const redis = readRedis(ctx, top['redis']);

  if (ctx.errors.length > 0) return { ok: false, errors: sortByLine(ctx.errors) };
  const config: Config = {
    hostname,
    dataDir,
    localDomains,
    recipientDelimiter,
    catch: catchMode,
    listeners,
    tls,
    limits,
    smtp,
    pop3,
    imap,
    log,
    auth,
    submission,
    dns,
    outbound,
    queue,
    checks,
    server,
    trace,
    admin,
    mtaStsPublish,
    filters,
    sieve,
    storage,
    redis,
    source,
  };
  return { ok: true, config: deepFreeze(copyConfig(config)), warnings: sortByLine(ctx.warnings) };
}

/** File order reads best; errors without a line go last. The sort is stable, so ties keep check order. */
function sortByLine(list: ConfigError[]): ConfigError[] {
  const rank = (e: ConfigError): number => e.line ?? Number.MAX_SAFE_INTEGER;
  return list.toSorted((a, b) => rank(a) - rank(b));
}

// ---------------------------------------------------------------------------------------------------
// Sections

const TOP_KEYS = [
  'hostname',
  'data_dir',
  'local_domains',
  'recipient_delimiter',
  'catch',
  'listeners',
  'tls',
  'limits',
  'smtp',
  'pop3',
  'imap',
  'log',
  'auth',
  'submission',
  'dns',
  'outbound',
  'queue',
  'checks',
  'server',
  'trace',
  'admin',
  'mta_sts',
  'filters',
  'sieve',
  'storage',
  'redis',
];
const LISTENER_KEYS = [
  'service',
  'address',
  'tls',
  'auth',
  'require_auth',
  'allow_plaintext_auth_on_loopback',
  'client_certificates',
  'filters',
  'proxy_from',
  'path',
  'mode',
];
const TLS_KEYS = ['cert', 'key', 'client_ca'];
const AUTH_KEYS = [
  'mechanisms',
  'max_failures_per_connection',
  'failure_delay_seconds',
  'lockout_threshold',
  'lockout_window_seconds',
  'lockout_seconds',
  'oauth',
];
const OAUTH_KEYS = [
  'issuer',
  'audience',
  'jwks_file',
  'hmac_secret',
  'introspection_url',
  'introspection_client_id',
  'introspection_client_secret',
  'username_claim',
];
const SUBMISSION_KEYS = [
  'max_hold_seconds',
  'sender_check',
  'add_missing_headers',
  'max_messages_per_hour',
  'max_recipients_per_hour',
];
const SMTP_KEYS = ['bare_line_endings', 'vrfy', 'trusted_networks', 'max_junk_commands', 'xclient_from'];
const LOG_KEYS = ['level', 'format'];
const TLS_MODES: readonly TlsMode[] = ['starttls', 'implicit', 'none'];
const LOG_LEVELS: readonly LogConfig['level'][] = ['trace', 'debug', 'info', 'warn', 'error'];
const LOG_FORMATS: readonly LogConfig['format'][] = ['auto', 'json', 'pretty'];
const CLIENT_CERTIFICATE_MODES: readonly ListenerConfig['clientCertificates'][] = [
  'none',
  'request',
  'require',
];

/** Every mechanism once: a Record, so a mechanism added to AuthMechanism but not here fails to compile. */
const MECHANISMS: Readonly<Record<AuthMechanism, true>> = {
  PLAIN: true,
  LOGIN: true,
  'SCRAM-SHA-256': true,
  'SCRAM-SHA-256-PLUS': true,
  OAUTHBEARER: true,
  XOAUTH2: true,
  EXTERNAL: true,
  'CRAM-MD5': true,
};
const OAUTH_MECHANISMS: readonly AuthMechanism[] = ['OAUTHBEARER', 'XOAUTH2'];

function isMechanism(s: string): s is AuthMechanism {
  return Object.hasOwn(MECHANISMS, s);
}

type NumericLimit = {
  [K in keyof LimitsConfig]: LimitsConfig[K] extends number ? K : never;
}[keyof LimitsConfig];

interface LimitSpec {
  readonly key: string;
  readonly field: NumericLimit;
  readonly read: (ctx: Ctx, path: KeyPath, value: unknown) => number | undefined;
}

/** Node timers hold a signed 32-bit millisecond count; a longer delay fires at once instead. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const LIMIT_SPECS: readonly LimitSpec[] = [
  {
    key: 'max_message_bytes',
    field: 'maxMessageBytes',
    read: (c, p, v) =>
      readInteger(c, p, v, {
        min: 1,
        adviseMin: { value: 65_536, why: 'RFC 5321 §4.5.3.1.7 requires room for at least 64K octets' },
      }),
  },
  {
    key: 'max_recipients',
    field: 'maxRecipients',
    read: (c, p, v) =>
      readInteger(c, p, v, {
        min: 1,
        adviseMin: { value: 100, why: 'RFC 5321 §4.5.3.1.8 requires accepting at least 100 recipients' },
      }),
  },
  {
    key: 'max_transactions_per_connection',
    field: 'maxTransactionsPerConnection',
    read: (c, p, v) => readInteger(c, p, v, { min: 1 }),
  },
  { key: 'max_connections', field: 'maxConnections', read: (c, p, v) => readInteger(c, p, v, { min: 1 }) },
  {
    key: 'max_connections_per_ip',
    field: 'maxConnectionsPerIp',
    read: (c, p, v) => readInteger(c, p, v, { min: 1 }),
  },
  {
    key: 'max_command_line_bytes',
    field: 'maxCommandLineBytes',
    read: (c, p, v) =>
      readInteger(c, p, v, {
        min: 512,
        minWhy: 'RFC 5321 §4.5.3.1.4: a command line may be 512 octets including CRLF',
      }),
  },
  {
    key: 'max_text_line_bytes',
    field: 'maxTextLineBytes',
    read: (c, p, v) =>
      readInteger(c, p, v, {
        min: 1000,
        minWhy: 'RFC 5321 §4.5.3.1.6: a text line may be 1000 octets including CRLF',
      }),
  },
  { key: 'max_errors', field: 'maxErrors', read: (c, p, v) => readInteger(c, p, v, { min: 1 }) },
  {
    key: 'greeting_timeout_seconds',
    field: 'greetingTimeoutMs',
    read: (c, p, v) => readSeconds(c, p, v, false),
  },
  {
    key: 'command_timeout_seconds',
    field: 'commandTimeoutMs',
    read: (c, p, v) => readSeconds(c, p, v, false),
  },
  {
    key: 'data_block_timeout_seconds',
    field: 'dataBlockTimeoutMs',
    read: (c, p, v) => readSeconds(c, p, v, false),
  },
  {
    key: 'data_total_timeout_seconds',
    field: 'dataTotalTimeoutMs',
    read: (c, p, v) => readSeconds(c, p, v, false),
  },
  { key: 'shutdown_grace_seconds', field: 'shutdownGraceMs', read: (c, p, v) => readSeconds(c, p, v, true) },
  { key: 'greeting_delay_seconds', field: 'greetingDelayMs', read: (c, p, v) => readSeconds(c, p, v, true) },
  { key: 'min_free_bytes', field: 'minFreeBytes', read: (c, p, v) => readInteger(c, p, v, { min: 0 }) },
  {
    key: 'tls_handshake_timeout_seconds',
    field: 'tlsHandshakeTimeoutMs',
    read: (c, p, v) => readSeconds(c, p, v, false),
  },
  // 0 = unlimited; per-user overrides live in the directory (`tern user quota`).
  {
    key: 'mailbox_quota_bytes',
    field: 'mailboxQuotaBytes',
    read: (c, p, v) => readInteger(c, p, v, { min: 0 }),
  },
  {
    key: 'mailbox_quota_messages',
    field: 'mailboxQuotaMessages',
    read: (c, p, v) => readInteger(c, p, v, { min: 0 }),
  },
];
const LIMIT_KEYS = [...LIMIT_SPECS.map((s) => s.key), 'long_lines'];

function readLimits(ctx: Ctx, value: unknown): LimitsConfig {
  const out: Mutable<LimitsConfig> = { ...DEFAULT_LIMITS };
  const t = opt(value, (v) => readTable(ctx, ['limits'], v, LIMIT_KEYS));
  if (t === undefined) return out;
  for (const spec of LIMIT_SPECS) {
    const n = opt(t[spec.key], (v) => spec.read(ctx, ['limits', spec.key], v));
    if (n !== undefined) out[spec.field] = n;
  }
  const longLines = opt(t['long_lines'], (v) =>
    readEnum(ctx, ['limits', 'long_lines'], v, ['reject', 'accept'] as const),
  );
  if (longLines !== undefined) out.longLines = longLines;
  return out;
}

function readTls(ctx: Ctx, value: unknown, defaults: TlsConfig): TlsConfig {
  const t = opt(value, (v) => readTable(ctx, ['tls'], v, TLS_KEYS));
  if (t === undefined) return defaults;
  const cert = opt(t['cert'], (v) => readPath(ctx, ['tls', 'cert'], v));
  const key = opt(t['key'], (v) => readPath(ctx, ['tls', 'key'], v));
  const message =
    'give both tls.cert and tls.key, or neither (then a self-signed certificate is kept in data_dir/tls)';
  if (t['cert'] !== undefined && t['key'] === undefined) fail(ctx, ['tls', 'key'], message);
  if (t['key'] !== undefined && t['cert'] === undefined) fail(ctx, ['tls', 'cert'], message);
  const clientCa = opt(t['client_ca'], (v) => readPath(ctx, ['tls', 'client_ca'], v));
  return { cert: cert ?? null, key: key ?? null, clientCa: clientCa ?? null };
}

function readAuth(ctx: Ctx, value: unknown): AuthConfig {
  const t = opt(value, (v) => readTable(ctx, ['auth'], v, AUTH_KEYS));
  if (t === undefined) return DEFAULT_AUTH;
  const p = (key: string): KeyPath => ['auth', key];
  const oauth = opt(t['oauth'], (v) => readOAuth(ctx, v));
  const mechanisms = opt(t['mechanisms'], (v) => readMechanisms(ctx, p('mechanisms'), v));
  if (mechanisms !== undefined && t['oauth'] === undefined) {
    for (const m of mechanisms.filter((x) => OAUTH_MECHANISMS.includes(x))) {
      fail(
        ctx,
        p('mechanisms'),
        `${m} needs [auth.oauth] to say how bearer tokens are verified (jwks_file, hmac_secret or introspection_url)`,
      );
    }
  }
  if (
    oauth !== undefined &&
    !(mechanisms ?? DEFAULT_AUTH.mechanisms).some((m) => OAUTH_MECHANISMS.includes(m))
  ) {
    warn(
      ctx,
      p('oauth'),
      'has no effect: add "OAUTHBEARER" or "XOAUTH2" to auth.mechanisms to accept bearer tokens',
    );
  }
  const int = (key: string, min: number): number | undefined =>
    opt(t[key], (v) => readInteger(ctx, p(key), v, { min }));
  const seconds = (key: string, allowZero: boolean): number | undefined =>
    opt(t[key], (v) => readSeconds(ctx, p(key), v, allowZero));
  return {
    mechanisms: mechanisms ?? DEFAULT_AUTH.mechanisms,
    maxFailuresPerConnection: int('max_failures_per_connection', 1) ?? DEFAULT_AUTH.maxFailuresPerConnection,
    failureDelayMs: seconds('failure_delay_seconds', true) ?? DEFAULT_AUTH.failureDelayMs,
    lockoutThreshold: int('lockout_threshold', 1) ?? DEFAULT_AUTH.lockoutThreshold,
    lockoutWindowMs: seconds('lockout_window_seconds', false) ?? DEFAULT_AUTH.lockoutWindowMs,
    lockoutMs: seconds('lockout_seconds', false) ?? DEFAULT_AUTH.lockoutMs,
    oauth: oauth ?? DEFAULT_AUTH.oauth,
  };
}

/** Names in any case, stored upper-case (RFC 4954 §3: mechanism names are case-insensitive). */
function readMechanisms(ctx: Ctx, path: KeyPath, value: unknown): AuthMechanism[] | undefined {
  const list = readArray(ctx, path, value);
  if (list === undefined) return undefined;
  if (list.length === 0) {
    return fail(
      ctx,
      path,
      'give at least one mechanism; to turn AUTH off, set auth = false on the listeners',
    );
  }
  const out: AuthMechanism[] = [];
  let bad = false;
  list.forEach((item, i) => {
    const s = readString(ctx, [...path, i], item);
    const name = s?.toUpperCase();
    if (s === undefined || name === undefined) {
      bad = true;
    } else if (!isMechanism(name)) {
      bad = true;
      fail(ctx, [...path, i], `"${s}" is not one of ${Object.keys(MECHANISMS).join(', ')}`, s);
    } else if (out.includes(name)) {
      warn(ctx, [...path, i], `"${s}" is listed twice`, s);
    } else {
      out.push(name);
    }
  });
  return bad ? undefined : out;
}

function readOAuth(ctx: Ctx, value: unknown): OAuthConfig | undefined {
  const base: KeyPath = ['auth', 'oauth'];
  const t = readTable(ctx, base, value, OAUTH_KEYS);
  if (t === undefined) return undefined;
  const p = (key: string): KeyPath => [...base, key];
  const text = (key: string): string | undefined => opt(t[key], (v) => readText(ctx, p(key), v));

  const issuer = text('issuer');
  const audience = opt(t['audience'], (v) => readAudience(ctx, p('audience'), v));
  const jwksFile = opt(t['jwks_file'], (v) => readPath(ctx, p('jwks_file'), v));
  const hmacSecret = text('hmac_secret');
  // RFC 7518 §3.2: an HS256 key must be at least as long as the hash output, 256 bits.
  if (hmacSecret !== undefined && Buffer.byteLength(hmacSecret) < 32) {
    warn(
      ctx,
      p('hmac_secret'),
      'is shorter than 32 bytes; RFC 7518 §3.2 asks for at least 256 bits for HS256',
    );
  }
  const introspectionUrl = opt(t['introspection_url'], (v) => readHttpUrl(ctx, p('introspection_url'), v));
  const clientId = text('introspection_client_id');
  const clientSecret = text('introspection_client_secret');
  const usernameClaim = text('username_claim');

  for (const [key, other] of [
    ['introspection_client_id', 'introspection_client_secret'],
    ['introspection_client_secret', 'introspection_client_id'],
  ] as const) {
    if (t[key] === undefined) continue;
    if (t['introspection_url'] === undefined) {
      fail(ctx, p(key), 'is only used with introspection_url; give the endpoint too, or leave this out');
    } else if (t[other] === undefined) {
      fail(ctx, p(other), 'give both introspection_client_id and introspection_client_secret, or neither');
    }
  }
  if (
    t['jwks_file'] === undefined &&
    t['hmac_secret'] === undefined &&
    t['introspection_url'] === undefined
  ) {
    return fail(
      ctx,
      base,
      'give at least one way to verify bearer tokens: jwks_file, hmac_secret or introspection_url',
    );
  }
  return {
    issuer: issuer ?? null,
    audience: audience ?? [],
    jwksFile: jwksFile ?? null,
    hmacSecret: hmacSecret ?? null,
    introspectionUrl: introspectionUrl ?? null,
    introspectionClientId: clientId ?? null,
    introspectionClientSecret: clientSecret ?? null,
    usernameClaim: usernameClaim ?? 'email',
  };
}

/** One audience or a list of them; any one of them in the token's "aud" is enough. */
function readAudience(ctx: Ctx, path: KeyPath, value: unknown): string[] | undefined {
  if (typeof value === 'string') {
    const s = readText(ctx, path, value);
    return s === undefined ? undefined : [s];
  }
  const list = readArray(ctx, path, value, 'a string or an array of strings');
  if (list === undefined) return undefined;
  const out: string[] = [];
  let bad = false;
  list.forEach((item, i) => {
    const s = readText(ctx, [...path, i], item);
    if (s === undefined) bad = true;
    else if (!out.includes(s)) out.push(s);
  });
  return bad ? undefined : out;
}

function readHttpUrl(ctx: Ctx, path: KeyPath, value: unknown): string | undefined {
  const s = readString(ctx, path, value);
  if (s === undefined) return undefined;
  const url = URL.parse(s);
  if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    return fail(ctx, path, `"${s}" is not an http or https URL`, s);
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    warn(
      ctx,
      path,
      'plain http sends tokens and the client secret in clear; use https unless the endpoint is on this host',
      s,
    );
  }
  return s;
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const CHECKS_KEYS = [
  'enabled',
  'authserv_id',
  'dmarc_reject',
  'dmarc_quarantine',
  'dns_failure',
  'spf_timeout_seconds',
  'data_timeout_seconds',
  'skip_networks',
];
const DISPOSITIONS = ['reject', 'junk', 'none'] as const;

function readChecks(ctx: Ctx, value: unknown): ChecksConfig {
  const t = opt(value, (v) => readTable(ctx, ['checks'], v, CHECKS_KEYS));
  if (t === undefined) return DEFAULT_CHECKS;
  const p = (key: string): KeyPath => ['checks', key];
  const d = DEFAULT_CHECKS;
  return {
    enabled: opt(t['enabled'], (v) => readBoolean(ctx, p('enabled'), v)) ?? d.enabled,
    authservId: opt(t['authserv_id'], (v) => readHostname(ctx, p('authserv_id'), v)) ?? d.authservId,
    dmarcReject:
      opt(t['dmarc_reject'], (v) => readEnum(ctx, p('dmarc_reject'), v, DISPOSITIONS)) ?? d.dmarcReject,
    dmarcQuarantine:
      opt(t['dmarc_quarantine'], (v) => readEnum(ctx, p('dmarc_quarantine'), v, DISPOSITIONS)) ??
      d.dmarcQuarantine,
    dnsFailure:
      opt(t['dns_failure'], (v) => readEnum(ctx, p('dns_failure'), v, ['tempfail', 'neutral'] as const)) ??
      d.dnsFailure,
    spfTimeoutMs:
      opt(t['spf_timeout_seconds'], (v) => readSeconds(ctx, p('spf_timeout_seconds'), v, false)) ??
      d.spfTimeoutMs,
    dataTimeoutMs:
      opt(t['data_timeout_seconds'], (v) => readSeconds(ctx, p('data_timeout_seconds'), v, false)) ??
      d.dataTimeoutMs,
    skipNetworks: opt(t['skip_networks'], (v) => readNetworks(ctx, p('skip_networks'), v)) ?? d.skipNetworks,
  };
}

/** More session threads than this is a typo, not a machine (each thread holds its own heap). */
const MAX_WORKERS = 256;

function readServer(ctx: Ctx, value: unknown): ServerConfig {
  const t = opt(value, (v) => readTable(ctx, ['server'], v, ['workers']));
  if (t === undefined) return DEFAULT_SERVER;
  const workers = t['workers'];
  const read =
    workers === undefined
      ? undefined
      : typeof workers === 'string'
        ? readEnum(ctx, ['server', 'workers'], workers, ['auto'] as const)
        : readInteger(ctx, ['server', 'workers'], workers, {
            min: 0,
            minWhy: '0 runs sessions on the main thread',
            max: MAX_WORKERS,
          });
  return { workers: read ?? DEFAULT_SERVER.workers };
}

/** Ten years: longer is a typo (and past what a timer or a date in milliseconds should hold). */
const MAX_TRACE_DAYS = 3650;

function readStorage(ctx: Ctx, value: unknown): StorageConfig {
  const t = opt(value, (v) => readTable(ctx, ['storage'], v, ['backend', 'url']));
  if (t === undefined) return DEFAULT_STORAGE;
  const backend = opt(t['backend'], (v) =>
    readEnum(ctx, ['storage', 'backend'], v, ['sqlite', 'postgres'] as const),
  );
  const url = opt(t['url'], (v) => readString(ctx, ['storage', 'url'], v));
  if (url !== undefined && !/^postgres(ql)?:\/\//.test(url)) {
    fail(
      ctx,
      ['storage', 'url'],
      'give a postgres:// URL, for example "postgres://tern@db.example.org/tern"',
      url,
    );
  }
  if (backend === 'postgres' && t['url'] === undefined) {
    fail(ctx, ['storage', 'backend'], 'backend "postgres" needs [storage] url = "postgres://…"', 'postgres');
  }
  return { backend: backend ?? DEFAULT_STORAGE.backend, url: url ?? null };
}

function readRedis(ctx: Ctx, value: unknown): RedisConfig {
  const t = opt(value, (v) => readTable(ctx, ['redis'], v, ['url', 'key_prefix']));
  if (t === undefined) return { url: null, keyPrefix: 'tern:' };
  const url = opt(t['url'], (v) => readString(ctx, ['redis', 'url'], v));
  if (url !== undefined && !/^rediss?:\/\//.test(url)) {
    fail(
      ctx,
      ['redis', 'url'],
      'give a redis:// (or rediss://) URL, for example "redis://127.0.0.1:6379"',
      url,
    );
  }
  const keyPrefix = opt(t['key_prefix'], (v) => readString(ctx, ['redis', 'key_prefix'], v));
  return { url: url ?? null, keyPrefix: keyPrefix ?? 'tern:' };
}

function readSieve(ctx: Ctx, value: unknown): SieveConfig {
  const t = opt(value, (v) =>
    readTable(ctx, ['sieve'], v, [
      'max_scripts',
      'max_script_bytes',
      'max_redirects',
      'vacation_min_seconds',
    ]),
  );
  if (t === undefined) return DEFAULT_SIEVE;
  const int = (key: string, bounds: { min: number; max?: number }): number | undefined =>
    opt(t[key], (v) => readInteger(ctx, ['sieve', key], v, bounds));
  return {
    maxScripts: int('max_scripts', { min: 0 }) ?? DEFAULT_SIEVE.maxScripts,
    maxScriptBytes:
      int('max_script_bytes', { min: 1024, max: 16 * 1024 * 1024 }) ?? DEFAULT_SIEVE.maxScriptBytes,
    maxRedirects: int('max_redirects', { min: 0, max: 64 }) ?? DEFAULT_SIEVE.maxRedirects,
    vacationMinSeconds:
      int('vacation_min_seconds', { min: 0, max: 90 * 86_400 }) ?? DEFAULT_SIEVE.vacationMinSeconds,
  };
}

function readTrace(ctx: Ctx, value: unknown): TraceConfig {
  const t = opt(value, (v) => readTable(ctx, ['trace'], v, ['retention_days']));
  if (t === undefined) return DEFAULT_TRACE;
  const days = opt(t['retention_days'], (v) =>
    readInteger(ctx, ['trace', 'retention_days'], v, {
      min: 0,
      minWhy: '0 keeps no trace',
      max: MAX_TRACE_DAYS,
    }),
  );
  return days === undefined ? DEFAULT_TRACE : { retentionMs: days * 86_400_000 };
}

const FILTER_NAMES: readonly FilterName[] = [
  'dnsbl',
  'greylist',
  'rspamd',
  'spamassassin',
  'clamav',
  'milter',
];
const FAILURE_MODES: readonly FilterFailureMode[] = ['tempfail', 'accept'];
/** SPF/DKIM/DMARC/ARC ([checks]): on the pipeline under this name, first unless `order` places it. */
const AUTH_FILTER = 'auth';
const FILTER_TABLE_KEYS = ['order', 'networks', 'plugin', ...FILTER_NAMES];

/** timeout_seconds and on_failure, which every filter table takes. */
function readFilterCommon(
  ctx: Ctx,
  path: KeyPath,
  t: Record<string, unknown>,
  defaults: FilterCommonConfig,
): FilterCommonConfig {
  return {
    timeoutMs:
      opt(t['timeout_seconds'], (v) =>
        readSeconds(ctx, [...path, 'timeout_seconds'], v, false, { maxMs: 600_000, maxWhy: '10 minutes' }),
      ) ?? defaults.timeoutMs,
    onFailure:
      opt(t['on_failure'], (v) => readEnum(ctx, [...path, 'on_failure'], v, FAILURE_MODES)) ??
      defaults.onFailure,
  };
}

function readDialAddress(ctx: Ctx, path: KeyPath, value: unknown): string | undefined {
  const s = readString(ctx, path, value);
  if (s === undefined) return undefined;
  if (parseDialAddress(s) === null)
    return fail(ctx, path, `"${s}" is not an address ("host:port", "[v6]:port" or "unix:/path")`, s);
  return s;
}

function readZones(ctx: Ctx, path: KeyPath, value: unknown): string[] | undefined {
  const zones = readStringArray(ctx, path, value);
  zones?.forEach((z, i) => {
    if (parseZone(z) === null)
      fail(
        ctx,
        [...path, i],
        `"${z}" is not a DNS list zone ("zone", "zone*2" for a weight, "zone=127.0.0.2" for listed codes)`,
        z,
      );
  });
  return zones;
}

function readDnsbl(ctx: Ctx, value: unknown): DnsblConfig | undefined {
  const base: KeyPath = ['filters', 'dnsbl'];
  const p = (k: string): KeyPath => [...base, k];
  const t = readTable(ctx, base, value, [
    'zones',
    'threshold',
    'dqs_key',
    'allow_zones',
    'domain_zones',
    'body_domains',
    'timeout_seconds',
    'on_failure',
  ]);
  if (t === undefined) return undefined;
  const zones = opt(t['zones'], (z) => readZones(ctx, p('zones'), z)) ?? [];
  const allowZones = opt(t['allow_zones'], (z) => readZones(ctx, p('allow_zones'), z)) ?? [];
  const domainZones = opt(t['domain_zones'], (z) => readZones(ctx, p('domain_zones'), z)) ?? [];
  if (zones.length + allowZones.length + domainZones.length === 0 && t['zones'] !== undefined)
    fail(ctx, p('zones'), 'give at least one zone');
  else if (t['zones'] === undefined && t['allow_zones'] === undefined && t['domain_zones'] === undefined)
    fail(ctx, p('zones'), 'give at least one zone (zones, allow_zones or domain_zones)');
  return {
    zones,
    threshold: opt(t['threshold'], (v) => readInteger(ctx, p('threshold'), v, { min: 1, max: 100 })) ?? 1,
    dqsKey: opt(t['dqs_key'], (v) => readString(ctx, p('dqs_key'), v)) ?? null,
    allowZones,
    domainZones,
    bodyDomains: opt(t['body_domains'], (v) => readBoolean(ctx, p('body_domains'), v)) ?? true,
    ...readFilterCommon(ctx, base, t, { timeoutMs: 5000, onFailure: 'accept' }),
  };
}

function readGreylist(ctx: Ctx, value: unknown): GreylistConfig | undefined {
  const base: KeyPath = ['filters', 'greylist'];
  const p = (k: string): KeyPath => [...base, k];
  const t = readTable(ctx, base, value, [
    'enabled',
    'delay_seconds',
    'retry_window_hours',
    'pass_lifetime_days',
    'auto_allow_after',
    'ipv4_prefix',
    'ipv6_prefix',
    'skip_spf_domains',
    'skip_networks',
    'timeout_seconds',
    'on_failure',
  ]);
  if (t === undefined) return undefined;
  const hours = opt(t['retry_window_hours'], (v) =>
    readInteger(ctx, p('retry_window_hours'), v, { min: 1, max: 24 * 30 }),
  );
  const days = opt(t['pass_lifetime_days'], (v) =>
    readInteger(ctx, p('pass_lifetime_days'), v, { min: 1, max: 3650 }),
  );
  const delayMs =
    opt(t['delay_seconds'], (v) =>
      readSeconds(ctx, p('delay_seconds'), v, true, {
        maxMs: 24 * 3_600_000,
        maxWhy: 'a day',
        adviseMin: { seconds: 60, why: 'RFC 6647 §4.3: most senders retry after several minutes anyway' },
      }),
    ) ?? 300_000;
  return {
    enabled: opt(t['enabled'], (v) => readBoolean(ctx, p('enabled'), v)) ?? true,
    delayMs,
    retryWindowMs: (hours ?? 24) * 3_600_000,
    passLifetimeMs: (days ?? 36) * 86_400_000,
    autoAllowAfter:
      opt(t['auto_allow_after'], (v) =>
        readInteger(ctx, p('auto_allow_after'), v, { min: 0, max: 10_000 }),
      ) ?? 5,
    ipv4Prefix:
      opt(t['ipv4_prefix'], (v) => readInteger(ctx, p('ipv4_prefix'), v, { min: 8, max: 32 })) ?? 24,
    ipv6Prefix:
      opt(t['ipv6_prefix'], (v) => readInteger(ctx, p('ipv6_prefix'), v, { min: 16, max: 128 })) ?? 64,
    skipSpfDomains: opt(t['skip_spf_domains'], (v) => readStringArray(ctx, p('skip_spf_domains'), v)) ?? [],
    skipNetworks: opt(t['skip_networks'], (v) => readNetworks(ctx, p('skip_networks'), v)) ?? [],
    ...readFilterCommon(ctx, base, t, { timeoutMs: 5000, onFailure: 'accept' }),
  };
}

function readRspamd(ctx: Ctx, value: unknown): RspamdConfig | undefined {
  const base: KeyPath = ['filters', 'rspamd'];
  const p = (k: string): KeyPath => [...base, k];
  const t = readTable(ctx, base, value, [
    'url',
    'password',
    'junk_on_add_header',
    'timeout_seconds',
    'on_failure',
  ]);
  if (t === undefined) return undefined;
  let url: string | undefined;
  if (t['url'] === undefined)
    fail(ctx, p('url'), 'missing; give the daemon\'s base URL, e.g. "http://127.0.0.1:11333"');
  else {
    url = readString(ctx, p('url'), t['url']);
    if (url !== undefined && !/^http:\/\/(?:\[[0-9A-Fa-f:.]+\]|[^/:[\]\s]+)(?::\d{1,5})?\/?$/.test(url))
      url = fail(ctx, p('url'), `"${url}" is not a base URL like "http://127.0.0.1:11333"`, url);
  }
  if (url === undefined) return undefined;
  return {
    url: url.replace(/\/$/, ''),
    password: opt(t['password'], (v) => readText(ctx, p('password'), v)) ?? null,
    junkOnAddHeader:
      opt(t['junk_on_add_header'], (v) => readBoolean(ctx, p('junk_on_add_header'), v)) ?? true,
    ...readFilterCommon(ctx, base, t, { timeoutMs: 20_000, onFailure: 'accept' }),
  };
}

function requiredAddress(
  ctx: Ctx,
  base: KeyPath,
  t: Record<string, unknown>,
  example: string,
): string | undefined {
  if (t['address'] === undefined)
    return fail(ctx, [...base, 'address'], `missing; give "host:port" or "unix:/path", e.g. "${example}"`);
  return readDialAddress(ctx, [...base, 'address'], t['address']);
}

function readSpamAssassin(ctx: Ctx, value: unknown): SpamAssassinConfig | undefined {
  const base: KeyPath = ['filters', 'spamassassin'];
  const p = (k: string): KeyPath => [...base, k];
  const t = readTable(ctx, base, value, [
    'address',
    'reject_score',
    'user',
    'max_scan_bytes',
    'timeout_seconds',
    'on_failure',
  ]);
  if (t === undefined) return undefined;
  const address = requiredAddress(ctx, base, t, '127.0.0.1:783');
  let rejectScore: number | undefined = 10;
  if (t['reject_score'] !== undefined) {
    const v = t['reject_score'];
    rejectScore =
      typeof v === 'number' && Number.isFinite(v) ? v : fail(ctx, p('reject_score'), 'must be a number');
  }
  if (address === undefined || rejectScore === undefined) return undefined;
  return {
    address,
    rejectScore,
    user: opt(t['user'], (v) => readString(ctx, p('user'), v)) ?? null,
    maxScanBytes:
      opt(t['max_scan_bytes'], (v) => readInteger(ctx, p('max_scan_bytes'), v, { min: 1024 })) ?? 512_000,
    ...readFilterCommon(ctx, base, t, { timeoutMs: 30_000, onFailure: 'accept' }),
  };
}

function readClamav(ctx: Ctx, value: unknown): ClamavConfig | undefined {
  const base: KeyPath = ['filters', 'clamav'];
  const p = (k: string): KeyPath => [...base, k];
  const t = readTable(ctx, base, value, [
    'address',
    'add_header',
    'on_too_large',
    'timeout_seconds',
    'on_failure',
  ]);
  if (t === undefined) return undefined;
  const address = requiredAddress(ctx, base, t, '127.0.0.1:3310');
  if (address === undefined) return undefined;
  return {
    address,
    addHeader: opt(t['add_header'], (v) => readBoolean(ctx, p('add_header'), v)) ?? true,
    onTooLarge:
      opt(t['on_too_large'], (v) =>
        readEnum(ctx, p('on_too_large'), v, ['accept', 'tempfail', 'reject'] as const),
      ) ?? 'accept',
    maxScanBytes:
      opt(t['max_scan_bytes'], (v) => readInteger(ctx, p('max_scan_bytes'), v, { min: 1024 })) ?? 26_214_400,
    ...readFilterCommon(ctx, base, t, { timeoutMs: 60_000, onFailure: 'tempfail' }),
  };
}

/** `[[filters.milter]]`, or one `[filters.milter]` table. */
function readMilters(ctx: Ctx, value: unknown): MilterConfig[] {
  const base: KeyPath = ['filters', 'milter'];
  const items: readonly unknown[] = Array.isArray(value) ? value : [value];
  const out: MilterConfig[] = [];
  items.forEach((item, i) => {
    const path: KeyPath = Array.isArray(value) ? [...base, i] : base;
    const t = readTable(ctx, path, item, ['name', 'address', 'timeout_seconds', 'on_failure']);
    if (t === undefined) return;
    const name = opt(t['name'], (v) => readString(ctx, [...path, 'name'], v));
    if (name !== undefined && !/^[a-z0-9][a-z0-9_-]{0,31}$/.test(name))
      fail(ctx, [...path, 'name'], `"${name}" is not a name (lower-case letters, digits, - and _)`, name);
    const address = requiredAddress(ctx, path, t, '127.0.0.1:8891');
    if (address === undefined) return;
    const full = name === undefined ? 'milter' : `milter:${name}`;
    if (out.some((m) => m.name === full))
      fail(ctx, [...path, 'name'], `two milters are called "${full}"; give each a different name`);
    out.push({
      name: full,
      address,
      ...readFilterCommon(ctx, path, t, { timeoutMs: 30_000, onFailure: 'tempfail' }),
    });
  });
  return out;
}

function readPlugins(ctx: Ctx, value: unknown): PluginConfig[] {
  const base: KeyPath = ['filters', 'plugin'];
  const list = readArray(ctx, base, value, 'an array of tables ([[filters.plugin]])') ?? [];
  const out: PluginConfig[] = [];
  list.forEach((item, i) => {
    const path: KeyPath = [...base, i];
    if (!isTable(item)) {
      fail(ctx, path, `must be a table ([[filters.plugin]]), not ${describe(item)}`);
      return;
    }
    const name =
      item['name'] === undefined
        ? fail(ctx, [...path, 'name'], 'missing; the name `[filters] order` lists')
        : readString(ctx, [...path, 'name'], item['name']);
    if (
      name !== undefined &&
      (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(name) ||
        name === AUTH_FILTER ||
        FILTER_NAMES.includes(name as FilterName))
    )
      fail(
        ctx,
        [...path, 'name'],
        `"${name}" is not a plugin name (lower-case letters, digits, - and _; not a built-in filter's)`,
        name,
      );
    const file =
      item['path'] === undefined
        ? fail(
            ctx,
            [...path, 'path'],
            'missing; the module file (.ts or .js) whose default export makes the filter',
          )
        : readPath(ctx, [...path, 'path'], item['path']);
    const common = readFilterCommon(ctx, path, item, { timeoutMs: 10_000, onFailure: 'tempfail' });
    if (name === undefined || file === undefined) return;
    const settings: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(item))
      if (!['name', 'path', 'timeout_seconds', 'on_failure'].includes(k)) settings[k] = v;
    out.push({ name, path: file, settings, ...common });
  });
  return out;
}

function readFilters(ctx: Ctx, value: unknown): FiltersConfig {
  const t = opt(value, (v) => readTable(ctx, ['filters'], v, FILTER_TABLE_KEYS)) ?? {};
  const dnsbl = opt(t['dnsbl'], (v) => readDnsbl(ctx, v)) ?? null;
  const greylistRead = opt(t['greylist'], (v) => readGreylist(ctx, v)) ?? null;
  const greylist = greylistRead?.enabled === false ? null : greylistRead;
  const rspamd = opt(t['rspamd'], (v) => readRspamd(ctx, v)) ?? null;
  const spamassassin = opt(t['spamassassin'], (v) => readSpamAssassin(ctx, v)) ?? null;
  const clamav = opt(t['clamav'], (v) => readClamav(ctx, v)) ?? null;
  const milters = opt(t['milter'], (v) => readMilters(ctx, v)) ?? [];
  const plugins = opt(t['plugin'], (v) => readPlugins(ctx, v)) ?? [];
  // The default order: cheap reputation first, then greylisting, content scanners, milters, plugins.
  const configured: string[] = [
    ...(dnsbl === null ? [] : ['dnsbl']),
    ...(greylist === null ? [] : ['greylist']),
    ...(rspamd === null ? [] : ['rspamd']),
    ...(spamassassin === null ? [] : ['spamassassin']),
    ...(clamav === null ? [] : ['clamav']),
    ...milters.map((m) => m.name),
    ...plugins.map((pl) => pl.name),
  ];
  const known = (n: string): boolean =>
    configured.includes(n) || n === AUTH_FILTER || (n === 'milter' && milters.length > 0);
  const readNames = (path: KeyPath, v: unknown): string[] | undefined => {
    const names = readStringArray(ctx, path, v);
    if (names === undefined) return undefined;
    const out: string[] = [];
    names.forEach((n, i) => {
      if (n === 'greylist' && greylistRead !== null && greylist === null) return;
      if (known(n)) out.push(...(n === 'milter' ? milters.map((m) => m.name) : [n]));
      else if (FILTER_NAMES.includes(n as FilterName) || n.startsWith('milter:'))
        fail(
          ctx,
          [...path, i],
          `"${n}" has no [filters.${n.split(':')[0]!}] table${n.startsWith('milter:') ? ' with that name' : ''}`,
          n,
        );
      else
        fail(
          ctx,
          [...path, i],
          `"${n}" is not a filter (${[...FILTER_NAMES, AUTH_FILTER].join(', ')}, milter:NAME, or a [[filters.plugin]] name)`,
          n,
        );
    });
    return out;
  };
  const order = opt(t['order'], (v) => readNames(['filters', 'order'], v));
  const networks: { network: string; filters: string[] }[] = [];
  const nt = opt(t['networks'], (v) =>
    isTable(v) ? v : fail(ctx, ['filters', 'networks'], 'must be a table of "CIDR" = [filter names]'),
  );
  for (const [cidr, names] of Object.entries(nt ?? {})) {
    const network = normalizeCidr(cidr);
    if (network === undefined) {
      fail(ctx, ['filters', 'networks', cidr], `"${cidr}" is not a network in CIDR form`);
      continue;
    }
    const list = readNames(['filters', 'networks', cidr], names);
    if (list !== undefined) networks.push({ network, filters: list });
  }
  return {
    order: order ?? configured,
    dnsbl,
    greylist,
    rspamd,
    spamassassin,
    clamav,
    milters,
    plugins,
    networks,
  };
}

const MTA_STS_KEYS = ['mode', 'max_age_seconds'];
const MTA_STS_MODES: readonly MtaStsPublishConfig['mode'][] = ['enforce', 'testing', 'none'];

function readMtaStsPublish(
  ctx: Ctx,
  value: unknown,
  listeners: readonly AdminListenerConfig[],
): MtaStsPublishConfig {
  const t = opt(value, (v) => readTable(ctx, ['mta_sts'], v, MTA_STS_KEYS)) ?? {};
  return {
    listeners,
    mode:
      opt(t['mode'], (v) => readEnum(ctx, ['mta_sts', 'mode'], v, MTA_STS_MODES)) ??
      DEFAULT_MTA_STS_PUBLISH.mode,
    maxAgeS:
      opt(t['max_age_seconds'], (v) =>
        readInteger(ctx, ['mta_sts', 'max_age_seconds'], v, { min: 60, max: 31_557_600 }),
      ) ?? DEFAULT_MTA_STS_PUBLISH.maxAgeS,
  };
}

const ADMIN_KEYS = ['open_networks', 'session_idle_minutes'];

function readAdmin(ctx: Ctx, value: unknown, listeners: readonly AdminListenerConfig[]): AdminConfig {
  const t = opt(value, (v) => readTable(ctx, ['admin'], v, ADMIN_KEYS)) ?? {};
  const minutes = opt(t['session_idle_minutes'], (v) =>
    readInteger(ctx, ['admin', 'session_idle_minutes'], v, { min: 1, max: 30 * 24 * 60 }),
  );
  return {
    listeners,
    openNetworks:
      opt(t['open_networks'], (v) => readNetworks(ctx, ['admin', 'open_networks'], v)) ??
      DEFAULT_ADMIN.openNetworks,
    sessionIdleMs: minutes === undefined ? DEFAULT_ADMIN.sessionIdleMs : minutes * 60_000,
  };
}

function readSubmission(ctx: Ctx, value: unknown): SubmissionConfig {
  const t = opt(value, (v) => readTable(ctx, ['submission'], v, SUBMISSION_KEYS));
  if (t === undefined) return DEFAULT_SUBMISSION;
  const p = (key: string): KeyPath => ['submission', key];
  const bool = (key: string): boolean | undefined => opt(t[key], (v) => readBoolean(ctx, p(key), v));
  const count = (key: string): number | undefined =>
    opt(t[key], (v) => readInteger(ctx, p(key), v, { min: 0 }));
  return {
    senderCheck: bool('sender_check') ?? DEFAULT_SUBMISSION.senderCheck,
    addMissingHeaders: bool('add_missing_headers') ?? DEFAULT_SUBMISSION.addMissingHeaders,
    maxMessagesPerHour: count('max_messages_per_hour') ?? DEFAULT_SUBMISSION.maxMessagesPerHour,
    maxRecipientsPerHour: count('max_recipients_per_hour') ?? DEFAULT_SUBMISSION.maxRecipientsPerHour,
    maxHoldSeconds:
      opt(t['max_hold_seconds'], (v) =>
        readInteger(ctx, p('max_hold_seconds'), v, { min: 0, max: 31_536_000 }),
      ) ?? DEFAULT_SUBMISSION.maxHoldSeconds,
  };
}

const POP3_KEYS = ['idle_timeout_seconds'];

function readPop3(ctx: Ctx, value: unknown): Pop3Config {
  const t = opt(value, (v) => readTable(ctx, ['pop3'], v, POP3_KEYS));
  if (t === undefined) return DEFAULT_POP3;
  const idle = opt(t['idle_timeout_seconds'], (v) =>
    readInteger(ctx, ['pop3', 'idle_timeout_seconds'], v, { min: 1 }),
  );
  if (idle !== undefined && idle < 600) {
    warn(
      ctx,
      ['pop3', 'idle_timeout_seconds'],
      `${idle} is below RFC 1939 §3's 10 minutes: clients that wait between commands get disconnected`,
    );
  }
  return { idleTimeoutMs: idle === undefined ? DEFAULT_POP3.idleTimeoutMs : idle * 1000 };
}

const IMAP_KEYS = [
  'idle_timeout_seconds',
  'max_connections_per_user',
  'max_line_bytes',
  'append_limit_bytes',
];

function readImap(ctx: Ctx, value: unknown): ImapConfig {
  const t = opt(value, (v) => readTable(ctx, ['imap'], v, IMAP_KEYS));
  if (t === undefined) return DEFAULT_IMAP;
  const int = (key: string, min: number): number | undefined =>
    opt(t[key], (v) => readInteger(ctx, ['imap', key], v, { min }));
  const idle = int('idle_timeout_seconds', 1);
  if (idle !== undefined && idle < 1800) {
    warn(
      ctx,
      ['imap', 'idle_timeout_seconds'],
      `${idle} is below RFC 9051 §5.4's 30 minutes: clients that IDLE or wait get logged out`,
    );
  }
  return {
    idleTimeoutMs: idle === undefined ? DEFAULT_IMAP.idleTimeoutMs : idle * 1000,
    maxConnectionsPerUser: int('max_connections_per_user', 1) ?? DEFAULT_IMAP.maxConnectionsPerUser,
    // RFC 7162 §4: at least 8192 octets per command line.
    maxLineBytes: int('max_line_bytes', 8192) ?? DEFAULT_IMAP.maxLineBytes,
    appendLimitBytes: int('append_limit_bytes', 0) ?? DEFAULT_IMAP.appendLimitBytes,
  };
}

function readSmtp(ctx: Ctx, value: unknown, defaults: SmtpConfig): SmtpConfig {
  const t = opt(value, (v) => readTable(ctx, ['smtp'], v, SMTP_KEYS));
  if (t === undefined) return defaults;
  return {
    bareLineEndings:
      opt(t['bare_line_endings'], (v) =>
        readEnum(ctx, ['smtp', 'bare_line_endings'], v, ['reject', 'normalize'] as const),
      ) ?? defaults.bareLineEndings,
    vrfy: opt(t['vrfy'], (v) => readBoolean(ctx, ['smtp', 'vrfy'], v)) ?? defaults.vrfy,
    trustedNetworks:
      opt(t['trusted_networks'], (v) => {
        const list = readNetworks(ctx, ['smtp', 'trusted_networks'], v);
        if (list !== undefined) warnWideTrusted(ctx, ['smtp', 'trusted_networks'], list, v as unknown[]);
        return list;
      }) ?? defaults.trustedNetworks,
    maxJunkCommands:
      opt(t['max_junk_commands'], (v) => readInteger(ctx, ['smtp', 'max_junk_commands'], v, { min: 0 })) ??
      defaults.maxJunkCommands,
    ...(t['xclient_from'] === undefined
      ? {}
      : { xclientFrom: readNetworks(ctx, ['smtp', 'xclient_from'], t['xclient_from']) ?? [] }),
  };
}

/** IPv4 clients are matched as IPv4-mapped IPv6 (::ffff:a.b.c.d): an IPv6 network can hold them too. */
const IPV4_MAPPED = new BlockList();
IPV4_MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');

/**
 * Trusted clients relay without authenticating, so a trusted network wider than the widest private
 * range (10.0.0.0/8; fd00::/8 for IPv6) trusts a good part of the Internet, and 0.0.0.0/0 or ::/0 all
 * of it: an open relay. IPv4 coverage counts IPv4-mapped addresses, which "::/64" includes in full.
 */
function warnWideTrusted(
  ctx: Ctx,
  path: KeyPath,
  list: readonly string[],
  written: readonly unknown[],
): void {
  list.forEach((cidr, i) => {
    const slash = cidr.lastIndexOf('/');
    const addr = cidr.slice(0, slash);
    const prefix = Number(cidr.slice(slash + 1));
    const family = isIP(addr);
    const block = new BlockList();
    if (family === 6) block.addSubnet(addr, prefix, 'ipv6');
    // The IPv4 prefix length of the IPv4 addresses this network holds, or null when it holds none.
    const ipv4Prefix =
      family === 4
        ? prefix
        : prefix <= 96
          ? block.check('::ffff:0:0', 'ipv6')
            ? 0
            : null
          : IPV4_MAPPED.check(addr, 'ipv6')
            ? prefix - 96
            : null;
    const literal = typeof written[i] === 'string' ? written[i] : undefined;
    const advice = 'list only your own networks; your users relay by authenticating on submission';
    if (prefix === 0 || ipv4Prefix === 0) {
      const what = family === 6 && prefix === 0 ? 'every address' : 'every IPv4 address';
      warn(
        ctx,
        [...path, i],
        `"${cidr}" is ${what}: any client there may relay without authenticating, which makes an open relay; ${advice}`,
        literal,
      );
    } else if ((ipv4Prefix !== null && ipv4Prefix < 8) || (family === 6 && prefix < 8)) {
      warn(
        ctx,
        [...path, i],
        `"${cidr}" is wider than a /8: every client in it may relay without authenticating; ${advice}`,
        literal,
      );
    }
  });
}

function readLog(ctx: Ctx, value: unknown, defaults: LogConfig): LogConfig {
  const t = opt(value, (v) => readTable(ctx, ['log'], v, LOG_KEYS));
  if (t === undefined) return defaults;
  return {
    level: opt(t['level'], (v) => readEnum(ctx, ['log', 'level'], v, LOG_LEVELS)) ?? defaults.level,
    format: opt(t['format'], (v) => readEnum(ctx, ['log', 'format'], v, LOG_FORMATS)) ?? defaults.format,
  };
}

function readHostname(ctx: Ctx, path: KeyPath, value: unknown): string | undefined {
  const s = readString(ctx, path, value);
  if (s === undefined) return undefined;
  if (!isValidDomain(s, false)) {
    return fail(
      ctx,
      path,
      `"${s}" is not a domain name; give the fully qualified name this server announces in its greeting and EHLO (RFC 5321 §4.1.1.1)`,
      s,
    );
  }
  return s;
}

function readPath(ctx: Ctx, path: KeyPath, value: unknown): string | undefined {
  return readText(ctx, path, value);
}

/** A string that must not be empty (an empty one is almost always a placeholder left unfilled). */
function readText(ctx: Ctx, path: KeyPath, value: unknown): string | undefined {
  const s = readString(ctx, path, value);
  if (s === '') return fail(ctx, path, 'must not be empty', s);
  return s;
}

function readDomains(ctx: Ctx, path: KeyPath, value: unknown): string[] | undefined {
  const list = readArray(ctx, path, value);
  if (list === undefined) return undefined;
  const out: string[] = [];
  let bad = false;
  list.forEach((item, i) => {
    const s = readString(ctx, [...path, i], item);
    if (s === undefined) {
      bad = true;
    } else if (!isValidDomain(s, false)) {
      bad = true;
      fail(
        ctx,
        [...path, i],
        `"${s}" is not a domain name (write internationalized names as A-labels, xn--...)`,
        s,
      );
    } else if (out.includes(s.toLowerCase())) {
      warn(ctx, [...path, i], `"${s}" is listed twice`, s);
    } else {
      out.push(s.toLowerCase());
    }
  });
  return bad ? undefined : out;
}

function readNetworks(ctx: Ctx, path: KeyPath, value: unknown): string[] | undefined {
  const list = readArray(ctx, path, value);
  if (list === undefined) return undefined;
  const out: string[] = [];
  let bad = false;
  list.forEach((item, i) => {
    const s = readString(ctx, [...path, i], item);
    const cidr = s === undefined ? undefined : normalizeCidr(s);
    if (s !== undefined && cidr === undefined) {
      fail(
        ctx,
        [...path, i],
        `"${s}" is not a network in CIDR form (for example 192.0.2.0/24, 2001:db8::/32, or one address)`,
        s,
      );
    }
    if (cidr === undefined) bad = true;
    else out.push(cidr);
  });
  return bad ? undefined : out;
}

/** "addr/prefix" with the prefix checked against the family; a bare address means a single host. */
function normalizeCidr(s: string): string | undefined {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  if (addr.includes('%')) return undefined; // zone ids name an interface, not a network
  const family = isIP(addr);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  if (slash < 0) return `${addr.toLowerCase()}/${max}`;
  const prefixText = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  return prefix <= max ? `${addr.toLowerCase()}/${prefix}` : undefined;
}

// ---------------------------------------------------------------------------------------------------
// DNS, outbound delivery, queue

const DNS_KEYS = ['servers', 'timeout_seconds', 'attempts', 'max_cache_ttl_seconds', 'dnssec'];
const OUTBOUND_KEYS = [
  'relay',
  'transport',
  'tls',
  'tls_policy',
  'tls_ca',
  'mta_sts',
  'port',
  'source_address',
  'max_connections',
  'max_connections_per_destination',
  'max_messages_per_connection',
  'connection_idle_seconds',
  'connect_timeout_seconds',
  'greeting_timeout_seconds',
  'command_timeout_seconds',
  'data_init_timeout_seconds',
  'data_block_timeout_seconds',
  'data_done_timeout_seconds',
];
const RELAY_KEYS = ['host', 'port', 'mx', 'tls', 'username', 'password'];
const TRANSPORT_KEYS = ['domain', 'relay', 'transport', 'tls', 'username', 'password'];
const QUEUE_KEYS = [
  'retry_min_seconds',
  'retry_max_seconds',
  'lifetime_seconds',
  'delay_warning_seconds',
  'postmaster',
  'local_delivery',
  'lease_seconds',
];
const OUTBOUND_TLS: readonly OutboundTlsPolicy[] = ['none', 'may', 'encrypt', 'verify'];
const DESTINATION_TLS: readonly DestinationTlsPolicy[] = [...OUTBOUND_TLS, 'dane', 'dane-only'];
const SMTP_PORT = 25;
const DNS_PORT = 53;
/** Queue times are compared with the clock, never waited for by one timer, so they may pass 24 days. */
const QUEUE_MAX_MS = 365 * 86_400_000;

function readDns(ctx: Ctx, value: unknown): DnsConfig {
  const t = opt(value, (v) => readTable(ctx, ['dns'], v, DNS_KEYS));
  if (t === undefined) return DEFAULT_DNS;
  const p = (key: string): KeyPath => ['dns', key];
  return {
    servers: opt(t['servers'], (v) => readDnsServers(ctx, p('servers'), v)) ?? DEFAULT_DNS.servers,
    timeoutMs:
      opt(t['timeout_seconds'], (v) => readSeconds(ctx, p('timeout_seconds'), v, false)) ??
      DEFAULT_DNS.timeoutMs,
    attempts:
      opt(t['attempts'], (v) => readInteger(ctx, p('attempts'), v, { min: 1, max: 10 })) ??
      DEFAULT_DNS.attempts,
    maxCacheTtlMs:
      opt(t['max_cache_ttl_seconds'], (v) => readSeconds(ctx, p('max_cache_ttl_seconds'), v, true)) ??
      DEFAULT_DNS.maxCacheTtlMs,
    dnssec: opt(t['dnssec'], (v) => readBoolean(ctx, p('dnssec'), v)) ?? DEFAULT_DNS.dnssec,
  };
}

/** Name servers by address only: finding a name server by name would need DNS first. */
function readDnsServers(ctx: Ctx, path: KeyPath, value: unknown): string[] | undefined {
  const list = readArray(ctx, path, value);
  if (list === undefined) return undefined;
  const out: string[] = [];
  let bad = false;
  list.forEach((item, i) => {
    const s = readString(ctx, [...path, i], item);
    const r = s === undefined ? undefined : parseDnsServer(s);
    if (s === undefined || r === undefined) {
      bad = true;
    } else if (typeof r === 'string') {
      bad = true;
      fail(ctx, [...path, i], r, s);
    } else if (out.includes(r.server)) {
      warn(ctx, [...path, i], `"${s}" is listed twice`, s);
    } else {
      out.push(r.server);
    }
  });
  return bad ? undefined : out;
}

/** "ip", "ip:port" or "[ipv6]:port" → canonical "ip:port" / "[ipv6]:port", or an error message. A whole
 * string that is an IPv6 address is taken as one ("::1:53" is an address), so a port needs brackets. */
function parseDnsServer(s: string): { server: string } | string {
  const example = 'for example "192.0.2.53", "127.0.0.1:5353", "2001:db8::53" or "[::1]:5353"';
  let host = s;
  let portText: string | undefined;
  if (isIP(s) === 0) {
    if (s.startsWith('[')) {
      const close = s.indexOf(']');
      if (close < 0 || (close + 1 < s.length && s[close + 1] !== ':')) {
        return `"${s}" is not a name server address; ${example}`;
      }
      host = s.slice(1, close);
      if (close + 1 < s.length) portText = s.slice(close + 2);
    } else {
      const colon = s.lastIndexOf(':');
      if (colon >= 0) {
        host = s.slice(0, colon);
        portText = s.slice(colon + 1);
      }
    }
  }
  const family = isIP(host);
  if (family === 0) {
    return `"${host}" is not an IP address; name servers are given by address (finding one by name would need DNS), ${example}`;
  }
  const port = portText === undefined ? DNS_PORT : parsePort(portText);
  if (port === undefined) return `"${portText ?? ''}" in "${s}" is not a port number (1 to 65535)`;
  const ip = canonicalIp(host);
  return { server: family === 6 ? `[${ip}]:${port}` : `${ip}:${port}` };
}

function readOutbound(ctx: Ctx, value: unknown, localDomains: readonly string[] | undefined): OutboundConfig {
  const t = opt(value, (v) => readTable(ctx, ['outbound'], v, OUTBOUND_KEYS));
  if (t === undefined) return DEFAULT_OUTBOUND;
  const p = (key: string): KeyPath => ['outbound', key];
  const d = DEFAULT_OUTBOUND;
  const int = (key: string, min: number, max?: number): number | undefined =>
    opt(t[key], (v) => readInteger(ctx, p(key), v, max === undefined ? { min } : { min, max }));
  const seconds = (key: string, allowZero: boolean, bounds: SecondsBounds = {}): number | undefined =>
    opt(t[key], (v) => readSeconds(ctx, p(key), v, allowZero, bounds));
  // A client that gives up on a slow server only retries later, except after the final dot: a message
  // the server then accepts anyway is sent twice (RFC 1047).
  const rfc = (seconds: number, section: string, after = 'the message waits for a retry'): SecondsBounds => ({
    adviseMin: {
      seconds,
      why: `RFC 5321 ${section} asks clients to wait at least ${seconds} seconds; giving up on a slow server sooner, ${after}`,
    },
  });

  const tlsRead = opt(t['tls'], (v) => readEnum(ctx, p('tls'), v, OUTBOUND_TLS));
  // With a bad outbound.tls, what relays inherit is unknown: their credential check waits for a good one.
  const inheritedTls = t['tls'] !== undefined && tlsRead === undefined ? undefined : (tlsRead ?? d.tls);
  const tlsPolicies = opt(t['tls_policy'], (v) => readTlsPolicies(ctx, p('tls_policy'), v));
  const relay = opt(t['relay'], (v) => readRelay(ctx, p('relay'), v, inheritedTls));
  const transports = opt(t['transport'], (v) =>
    readTransports(ctx, v, inheritedTls, tlsPolicies ?? d.tlsPolicies, localDomains),
  );
  const sourceAddress = opt(t['source_address'], (v) => readIpAddress(ctx, p('source_address'), v));

  const out: OutboundConfig = {
    relay: relay ?? d.relay,
    transports: transports ?? d.transports,
    tls: tlsRead ?? d.tls,
    tlsPolicies: tlsPolicies ?? d.tlsPolicies,
    mtaSts: opt(t['mta_sts'], (v) => readBoolean(ctx, p('mta_sts'), v)) ?? d.mtaSts,
    tlsCa: opt(t['tls_ca'], (v) => readPath(ctx, p('tls_ca'), v)) ?? d.tlsCa,
    port: int('port', 1, 65_535) ?? d.port,
    sourceAddress: sourceAddress ?? d.sourceAddress,
    maxConnections: int('max_connections', 1) ?? d.maxConnections,
    maxConnectionsPerDestination: int('max_connections_per_destination', 1) ?? d.maxConnectionsPerDestination,
    maxMessagesPerConnection: int('max_messages_per_connection', 1) ?? d.maxMessagesPerConnection,
    connectionIdleMs: seconds('connection_idle_seconds', true) ?? d.connectionIdleMs,
    connectTimeoutMs: seconds('connect_timeout_seconds', false) ?? d.connectTimeoutMs,
    greetingTimeoutMs:
      seconds('greeting_timeout_seconds', false, rfc(300, '§4.5.3.2.1')) ?? d.greetingTimeoutMs,
    commandTimeoutMs: seconds('command_timeout_seconds', false, rfc(300, '§4.5.3.2.2')) ?? d.commandTimeoutMs,
    dataInitTimeoutMs:
      seconds('data_init_timeout_seconds', false, rfc(120, '§4.5.3.2.4')) ?? d.dataInitTimeoutMs,
    dataBlockTimeoutMs:
      seconds('data_block_timeout_seconds', false, rfc(180, '§4.5.3.2.5')) ?? d.dataBlockTimeoutMs,
    dataDoneTimeoutMs:
      seconds(
        'data_done_timeout_seconds',
        false,
        rfc(600, '§4.5.3.2.6', 'a message it accepts anyway is sent twice'),
      ) ?? d.dataDoneTimeoutMs,
  };
  if (
    t['max_connections_per_destination'] !== undefined &&
    out.maxConnectionsPerDestination > out.maxConnections
  ) {
    warn(
      ctx,
      p('max_connections_per_destination'),
      `is more than outbound.max_connections (${out.maxConnections}), which caps it`,
    );
  }
  return out;
}

/** The string "host:port" / "[host]:port", or a table with TLS and credentials. */
function readRelay(
  ctx: Ctx,
  path: KeyPath,
  value: unknown,
  inheritedTls: OutboundTlsPolicy | undefined,
): RelayHost | undefined {
  if (typeof value === 'string') {
    const r = parseRelay(value);
    if (typeof r === 'string') return fail(ctx, path, r, value);
    return { ...r, tls: inheritedTls ?? DEFAULT_OUTBOUND.tls, auth: null };
  }
  if (!isTable(value)) {
    return fail(
      ctx,
      path,
      `must be a string ("host:port" or "[host]:port") or a table, not ${describe(value)}`,
    );
  }
  const t = readTable(ctx, path, value, RELAY_KEYS);
  if (t === undefined) return undefined;
  const p = (key: string): KeyPath => [...path, key];

  let host: { host: string; family: number } | undefined;
  if (t['host'] === undefined) {
    fail(ctx, p('host'), 'missing; give the host name or IP address of the relay');
  } else {
    const s = readText(ctx, p('host'), t['host']);
    const r = s === undefined ? undefined : parseRelayHost(s);
    if (typeof r === 'string') fail(ctx, p('host'), r, s);
    else host = r;
  }
  const port = opt(t['port'], (v) => readInteger(ctx, p('port'), v, { min: 1, max: 65_535 }));
  const mx = opt(t['mx'], (v) => readBoolean(ctx, p('mx'), v));
  if (mx === true && host !== undefined && host.family !== 0) {
    fail(ctx, p('mx'), `an IP address has no MX records; leave mx out (or false) for ${host.host}`);
  }
  const tls = opt(t['tls'], (v) => readEnum(ctx, p('tls'), v, OUTBOUND_TLS));
  const tlsBad = t['tls'] !== undefined && tls === undefined;
  const auth = readRelayAuth(ctx, path, t, tlsBad ? undefined : (tls ?? inheritedTls), 'outbound.tls');
  const unread = (key: string, read: unknown): boolean => t[key] !== undefined && read === undefined;
  if (host === undefined || auth === undefined || unread('port', port) || unread('mx', mx) || tlsBad) {
    return undefined;
  }
  if (mx === true && host.family !== 0) return undefined;
  return {
    host: host.host,
    port: port ?? SMTP_PORT,
    mx: mx ?? host.family === 0,
    tls: tls ?? inheritedTls ?? DEFAULT_OUTBOUND.tls,
    auth,
  };
}

/**
 * username and password of a relay table: both or neither, and only where TLS is required (tls "may"
 * falls back to plaintext when STARTTLS is missing or fails, so it would send them in clear). tls is the
 * relay's effective policy, undefined when that is unknown (a bad value already reported).
 * Returns null for no credentials, undefined after an error.
 */
function readRelayAuth(
  ctx: Ctx,
  base: KeyPath,
  t: Record<string, unknown>,
  tls: OutboundTlsPolicy | undefined,
  tlsDefaultFrom: string,
): RelayHost['auth'] | undefined {
  if (t['username'] === undefined && t['password'] === undefined) return null;
  const username = opt(t['username'], (v) => readText(ctx, [...base, 'username'], v));
  const password = opt(t['password'], (v) => readText(ctx, [...base, 'password'], v));
  let bad = username === undefined || password === undefined;
  if (t['username'] === undefined) {
    fail(ctx, [...base, 'username'], 'missing; a password is sent only with a username');
  } else if (t['password'] === undefined) {
    fail(ctx, [...base, 'password'], 'missing; a relay with a username needs its password');
  }
  if (tls !== undefined && tls !== 'encrypt' && tls !== 'verify') {
    bad = true;
    if (t['tls'] !== undefined) {
      fail(
        ctx,
        [...base, 'tls'],
        `"${tls}" would let the username and password travel in clear; with credentials use "encrypt" or "verify"`,
        tls,
      );
    } else {
      fail(
        ctx,
        [...base, 'username'],
        `credentials are never sent in clear: set tls = "encrypt" or "verify" here (the "${tls}" of ${tlsDefaultFrom} may fall back to plaintext)`,
      );
    }
  }
  if (bad || username === undefined || password === undefined) return undefined;
  return { username, password };
}

/** "host", "host:port", "[host]" or "[host]:port"; brackets mean "this host, no MX lookup" (Postfix). */
function parseRelay(s: string): { host: string; port: number; mx: boolean } | string {
  const example =
    'write "host:port" or "[host]:port", for example "smtp.example.net:587" or "[192.0.2.25]:25" (brackets: no MX lookup)';
  let hostText: string;
  let portText: string | undefined;
  const bracketed = s.startsWith('[');
  if (bracketed) {
    const close = s.indexOf(']');
    if (close < 0 || (close + 1 < s.length && s[close + 1] !== ':'))
      return `"${s}" is not a relay; ${example}`;
    hostText = s.slice(1, close);
    if (close + 1 < s.length) portText = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(':');
    hostText = colon < 0 ? s : s.slice(0, colon);
    if (colon >= 0) portText = s.slice(colon + 1);
    if (hostText.includes(':'))
      return `"${s}": IPv6 addresses go in brackets, for example "[2001:db8::25]:25"`;
  }
  if (hostText === '') return `"${s}" has no host; ${example}`;
  const host = parseRelayHost(hostText);
  if (typeof host === 'string') return host;
  const port = portText === undefined ? SMTP_PORT : parsePort(portText);
  if (port === undefined) return `"${portText ?? ''}" in "${s}" is not a port number (1 to 65535)`;
  // An IP address has no MX records: with or without brackets it is the host itself.
  return { host: host.host, port, mx: !bracketed && host.family === 0 };
}

/** A host name (lower-cased) or an IP address (canonical, IPv6 without brackets). */
function parseRelayHost(s: string): { host: string; family: number } | string {
  const family = isIP(s);
  if (family !== 0) return { host: canonicalIp(s), family };
  if (s.startsWith('[')) {
    return `"${s}": write the host without brackets; set mx = false to connect to it without an MX lookup`;
  }
  if (/^[\d.]+$/.test(s) || !isValidDomain(s, false)) {
    return `"${s}" is neither a host name nor an IP address (write internationalized names as A-labels, xn--...)`;
  }
  return { host: s.toLowerCase(), family: 0 };
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65_535 ? port : undefined;
}

/** Compressed lower-case text of an IP address ("2001:DB8:0::1" → "2001:db8::1"). */
function canonicalIp(ip: string): string {
  const host = canonicalHost(ip, isIP(ip));
  return host.startsWith('[') ? host.slice(1, -1) : host;
}

function readIpAddress(ctx: Ctx, path: KeyPath, value: unknown): string | undefined {
  const s = readString(ctx, path, value);
  if (s === undefined) return undefined;
  if (isIP(s) === 0) {
    return fail(
      ctx,
      path,
      `"${s}" is not an IP address (write IPv6 without brackets, for example "2001:db8::25")`,
      s,
    );
  }
  return canonicalIp(s);
}

/** "example.com" or "*.example.com" (any subdomain), lower-cased; undefined when it is neither. */
function parseDomainPattern(s: string): string | undefined {
  const name = s.startsWith('*.') ? s.slice(2) : s;
  return isValidDomain(name, false) && !/^[\d.]+$/.test(name) ? s.toLowerCase() : undefined;
}

function domainPatternError(s: string): string {
  return `"${s}" is not a domain name or "*.domain" pattern (write internationalized names as A-labels, xn--...)`;
}

function readTlsPolicies(
  ctx: Ctx,
  path: KeyPath,
  value: unknown,
): Map<string, DestinationTlsPolicy> | undefined {
  if (!isTable(value)) {
    return fail(
      ctx,
      path,
      `must be a table of domain = policy ([outbound.tls_policy]), not ${describe(value)}`,
    );
  }
  const out = new Map<string, DestinationTlsPolicy>();
  const keyOf = new Map<string, string>();
  let bad = false;
  for (const [key, item] of Object.entries(value)) {
    const p = [...path, key];
    const pattern = parseDomainPattern(key);
    const policy = readEnum(ctx, p, item, DESTINATION_TLS);
    if (pattern === undefined) {
      bad = true;
      fail(ctx, p, domainPatternError(key));
    } else if (keyOf.has(pattern)) {
      // TOML refuses a key written twice, but not the same domain in another case.
      bad = true;
      fail(ctx, p, `the same domain as "${keyOf.get(pattern) ?? ''}" (domains ignore case)`);
    } else {
      keyOf.set(pattern, key);
    }
    if (policy === undefined) bad = true;
    else if (pattern !== undefined) out.set(pattern, policy);
  }
  return bad ? undefined : out;
}

function readTransports(
  ctx: Ctx,
  value: unknown,
  inheritedTls: OutboundTlsPolicy | undefined,
  tlsPolicies: ReadonlyMap<string, DestinationTlsPolicy>,
  localDomains: readonly string[] | undefined,
): Map<string, RelayHost> | undefined {
  const path: KeyPath = ['outbound', 'transport'];
  const list = readArray(ctx, path, value, 'an array of tables ([[outbound.transport]])');
  if (list === undefined) return undefined;
  const out = new Map<string, RelayHost>();
  const firstIndex = new Map<string, number>();
  let bad = false;
  list.forEach((item, i) => {
    const r = readTransport(ctx, [...path, i], item, inheritedTls, tlsPolicies);
    if (r === undefined) {
      bad = true;
      return;
    }
    const domainPath = [...path, i, 'domain'];
    const earlier = firstIndex.get(r.domain);
    // An LMTP transport of a local domain hands its users' mail to a mailbox server (Dovecot, Cyrus).
    if (localDomains?.includes(r.domain) === true && r.relay.lmtp !== true) {
      bad = true;
      fail(
        ctx,
        domainPath,
        `"${r.written}" is in local_domains: its mail is delivered here, never through a transport`,
        r.written,
      );
    } else if (earlier !== undefined) {
      bad = true;
      const line = ctx.lines.lineOf([...path, earlier, 'domain']);
      fail(
        ctx,
        domainPath,
        `"${r.written}" already has a transport (outbound.transport[${earlier}]${line === null ? '' : `, line ${line}`})`,
        r.written,
      );
    } else {
      firstIndex.set(r.domain, i);
      out.set(r.domain, r.relay);
    }
  });
  return bad ? undefined : out;
}

function readTransport(
  ctx: Ctx,
  base: KeyPath,
  value: unknown,
  inheritedTls: OutboundTlsPolicy | undefined,
  tlsPolicies: ReadonlyMap<string, DestinationTlsPolicy>,
): { domain: string; written: string; relay: RelayHost } | undefined {
  const t = readTable(ctx, base, value, TRANSPORT_KEYS);
  if (t === undefined) return undefined;
  const p = (key: string): KeyPath => [...base, key];

  let domain: string | undefined;
  const written = t['domain'] === undefined ? undefined : readString(ctx, p('domain'), t['domain']);
  if (t['domain'] === undefined) {
    fail(ctx, p('domain'), 'missing; give the destination domain, "example.com" or "*.example.com"');
  } else if (written !== undefined) {
    domain = parseDomainPattern(written);
    if (domain === undefined) fail(ctx, p('domain'), domainPatternError(written), written);
  }

  let hop: { host: string; port: number; mx: boolean; lmtp?: boolean; path?: string } | undefined;
  if (t['relay'] !== undefined && t['transport'] !== undefined) {
    fail(ctx, p('transport'), 'give either relay or transport, not both');
  } else if (t['transport'] !== undefined) {
    const s = readString(ctx, p('transport'), t['transport']);
    const r = s === undefined ? undefined : parseTransport(s);
    if (typeof r === 'string') fail(ctx, p('transport'), r, s);
    else hop = r;
  } else if (t['relay'] === undefined) {
    fail(
      ctx,
      p('relay'),
      'missing; give the next hop, "host:port" or "[host]:port" (or transport = "lmtp:...")',
    );
  } else {
    const s = readString(ctx, p('relay'), t['relay']);
    const r = s === undefined ? undefined : parseRelay(s);
    if (typeof r === 'string') fail(ctx, p('relay'), r, s);
    else hop = r;
  }

  const tls = opt(t['tls'], (v) => readEnum(ctx, p('tls'), v, OUTBOUND_TLS));
  const tlsBad = t['tls'] !== undefined && tls === undefined;
  // A policy written for exactly this domain still holds when its mail goes through a transport.
  const written_ = domain === undefined ? undefined : tlsPolicies.get(domain);
  // DANE is for MX delivery; a transport's next hop takes its nearest plain policy.
  const policy = written_ === undefined ? undefined : relayTlsOf(written_);
  const effective = tlsBad ? undefined : (tls ?? policy ?? inheritedTls);
  const from = policy === undefined ? 'outbound.tls' : pathText(['outbound', 'tls_policy', domain ?? '']);
  const auth = readRelayAuth(ctx, base, t, effective, from);
  if (domain === undefined || written === undefined || hop === undefined || auth === undefined || tlsBad) {
    return undefined;
  }
  // A Unix socket is this host: no TLS to ask for.
  const hopTls = hop.path === undefined ? (effective ?? DEFAULT_OUTBOUND.tls) : 'none';
  return { domain, written, relay: { ...hop, tls: hopTls, auth } };
}

/** LMTP's port (RFC 2033 §5 leaves it to the site; 24 is the one IANA lists and Dovecot uses). */
const LMTP_PORT = 24;

/**
 * `transport = "lmtp:unix:/path"`, `"lmtp:[host]:port"` (port 24 by default), or `"smtp:host:port"` (the
 * same as relay = "host:port").
 */
function parseTransport(
  s: string,
): { host: string; port: number; mx: boolean; lmtp?: boolean; path?: string } | string {
  const example = 'write "lmtp:unix:/path", "lmtp:[host]:port" or "smtp:[host]:port"';
  const colon = s.indexOf(':');
  const scheme = colon < 0 ? '' : s.slice(0, colon).toLowerCase();
  const rest = s.slice(colon + 1);
  if (scheme === 'smtp') return parseRelay(rest);
  if (scheme !== 'lmtp') return `"${s}" is not a transport; ${example}`;
  if (rest.toLowerCase().startsWith('unix:')) {
    const path = rest.slice(5);
    if (!path.startsWith('/') || path.includes('\0'))
      return `"${s}": the socket path must be absolute, for example "lmtp:unix:/run/dovecot/lmtp"`;
    return { host: 'localhost', port: 0, mx: false, lmtp: true, path };
  }
  const r = parseRelay(rest);
  if (typeof r === 'string') return r;
  const portGiven = rest.startsWith('[') ? rest.includes(']:') : rest.includes(':');
  // LMTP names the server itself: never an MX lookup (brackets or not), port 24 unless given.
  return { host: r.host, port: portGiven ? r.port : LMTP_PORT, mx: false, lmtp: true };
}

function readQueue(ctx: Ctx, value: unknown, localDomains: readonly string[] | undefined): QueueConfig {
  const t = opt(value, (v) => readTable(ctx, ['queue'], v, QUEUE_KEYS));
  if (t === undefined) return DEFAULT_QUEUE;
  const p = (key: string): KeyPath => ['queue', key];
  const d = DEFAULT_QUEUE;
  const seconds = (key: string, allowZero: boolean, maxMs?: number): number | undefined =>
    opt(t[key], (v) =>
      readSeconds(ctx, p(key), v, allowZero, maxMs === undefined ? {} : { maxMs, maxWhy: '365 days' }),
    );
  const retryMin = seconds('retry_min_seconds', false);
  const retryMax = seconds('retry_max_seconds', false);
  const lifetime = seconds('lifetime_seconds', true, QUEUE_MAX_MS);
  const delayWarning = seconds('delay_warning_seconds', true, QUEUE_MAX_MS);
  const postmaster = opt(t['postmaster'], (v) => readPostmaster(ctx, p('postmaster'), v, localDomains));
  const out: QueueConfig = {
    retryMinMs: retryMin ?? d.retryMinMs,
    retryMaxMs: retryMax ?? d.retryMaxMs,
    lifetimeMs: lifetime ?? d.lifetimeMs,
    delayWarningMs: delayWarning ?? d.delayWarningMs,
    postmaster: postmaster ?? d.postmaster,
    localDelivery:
      opt(t['local_delivery'], (v) => readEnum(ctx, p('local_delivery'), v, ['accept', 'queue'] as const)) ??
      d.localDelivery,
    leaseMs: seconds('lease_seconds', false) ?? d.leaseMs,
  };
  const given = (key: string, read: number | undefined): boolean =>
    t[key] !== undefined && read !== undefined;
  const bad = (key: string, read: number | undefined): boolean => t[key] !== undefined && read === undefined;
  const secs = (ms: number): number => ms / 1000;

  // Blame the key the person wrote: the other one may be a default they never saw.
  if (
    !bad('retry_min_seconds', retryMin) &&
    !bad('retry_max_seconds', retryMax) &&
    out.retryMaxMs < out.retryMinMs
  ) {
    if (given('retry_max_seconds', retryMax)) {
      const origin = given('retry_min_seconds', retryMin) ? '' : ', the default';
      fail(
        ctx,
        p('retry_max_seconds'),
        `must be at least retry_min_seconds (${secs(out.retryMinMs)}${origin})`,
      );
    } else {
      fail(
        ctx,
        p('retry_min_seconds'),
        `must not be more than retry_max_seconds (${secs(out.retryMaxMs)}, the default); raise retry_max_seconds too`,
      );
    }
  }
  if (
    !bad('lifetime_seconds', lifetime) &&
    !bad('delay_warning_seconds', delayWarning) &&
    out.delayWarningMs > 0 &&
    out.delayWarningMs >= out.lifetimeMs
  ) {
    if (given('delay_warning_seconds', delayWarning)) {
      const origin = given('lifetime_seconds', lifetime) ? '' : ', the default';
      fail(
        ctx,
        p('delay_warning_seconds'),
        `must be shorter than lifetime_seconds (${secs(out.lifetimeMs)}${origin}): by then the message has bounced; 0 turns delay warnings off`,
      );
    } else {
      fail(
        ctx,
        p('lifetime_seconds'),
        `must be longer than delay_warning_seconds (${secs(out.delayWarningMs)}, the default); lower that, or set it to 0 for no delay warnings`,
      );
    }
  }
  return out;
}

/** An address in a local domain: double bounces go there, and must not leave this server. */
function readPostmaster(
  ctx: Ctx,
  path: KeyPath,
  value: unknown,
  localDomains: readonly string[] | undefined,
): string | undefined {
  const s = readText(ctx, path, value);
  if (s === undefined) return undefined;
  const mailbox = parseMailbox(s, false);
  if (mailbox === null) {
    return fail(ctx, path, `"${s}" is not an email address (local-part@domain, ASCII)`, s);
  }
  const domain = mailbox.domain.toLowerCase();
  if (localDomains !== undefined && !localDomains.includes(domain)) {
    return fail(
      ctx,
      path,
      `"${mailbox.domain}" is not in local_domains; double bounces must be delivered here, not sent out again`,
      s,
    );
  }
  return formatMailbox({ local: mailbox.local, domain });
}

// ---------------------------------------------------------------------------------------------------
// Listeners

interface ParsedListener {
  readonly index: number;
  readonly address: string;
  readonly listener: ListenerConfig | AdminListenerConfig;
  /** An HTTP listener (the admin page, the MTA-STS policy) rather than a mail protocol's. */
  readonly admin: false | 'admin' | 'mta-sts';
  /** Comparable host: canonical IP text or lower-cased name. */
  readonly hostKey: string;
  readonly family: 0 | 4 | 6;
}

function readListeners(
  ctx: Ctx,
  value: unknown,
  clientCaGiven: boolean,
): { listeners: ListenerConfig[]; admin: AdminListenerConfig[]; mtaSts: AdminListenerConfig[] } | undefined {
  const list = readArray(ctx, ['listeners'], value, 'an array of tables ([[listeners]])');
  if (list === undefined) return undefined;
  if (list.length === 0) {
    return fail(ctx, ['listeners'], 'give at least one listener, or leave listeners out to use the defaults');
  }
  const parsed: ParsedListener[] = [];
  let bad = false;
  list.forEach((item, index) => {
    const p =
      isTable(item) && (item['service'] === 'admin' || item['service'] === 'mta-sts')
        ? readAdminListener(ctx, index, item, item['service'])
        : readListener(ctx, index, item, clientCaGiven);
    if (p === undefined) bad = true;
    else parsed.push(p);
  });
  for (const [i, a] of parsed.entries()) {
    const earlier = parsed.slice(0, i).find((b) => listenersConflict(a, b));
    if (earlier === undefined) continue;
    bad = true;
    const line = ctx.lines.lineOf(['listeners', earlier.index, 'address'], earlier.address);
    fail(
      ctx,
      ['listeners', a.index, 'address'],
      `${a.address} conflicts with listeners[${earlier.index}] (${earlier.address}${line === null ? '' : `, line ${line}`}): both cannot be bound`,
      a.address,
    );
  }
  if (bad) return undefined;
  return {
    listeners: parsed.filter((p) => p.admin === false).map((p) => p.listener as ListenerConfig),
    admin: parsed.filter((p) => p.admin === 'admin').map((p) => p.listener as AdminListenerConfig),
    mtaSts: parsed.filter((p) => p.admin === 'mta-sts').map((p) => p.listener as AdminListenerConfig),
  };
}

const ADMIN_LISTENER_KEYS = ['service', 'address', 'tls'];
const ADMIN_TLS_MODES: readonly AdminListenerConfig['tls'][] = ['none', 'implicit'];

/**
 * `service = "admin"` (the web page and HTTP API) or `"mta-sts"` (our MTA-STS policies): HTTP listeners;
 * plain HTTP only where nobody else can listen in (a loopback address, e.g. behind a TLS proxy).
 */
function readAdminListener(
  ctx: Ctx,
  index: number,
  value: unknown,
  service: 'admin' | 'mta-sts',
): ParsedListener | undefined {
  const base: KeyPath = ['listeners', index];
  const t = readTable(ctx, base, value, ADMIN_LISTENER_KEYS);
  if (t === undefined) return undefined;
  const address =
    t['address'] === undefined
      ? fail(ctx, [...base, 'address'], 'missing; give "host:port", for example "127.0.0.1:8025"')
      : readString(ctx, [...base, 'address'], t['address']);
  // RFC 8461 §3.3: policies are fetched over HTTPS, so that listener is HTTPS unless said otherwise.
  const tls =
    opt(t['tls'], (v) => readEnum(ctx, [...base, 'tls'], v, ADMIN_TLS_MODES)) ??
    (service === 'mta-sts' ? 'implicit' : 'none');
  if (address === undefined || (t['tls'] !== undefined && !ADMIN_TLS_MODES.includes(t['tls'] as 'none')))
    return undefined;
  const where = parseListenAddress(address);
  if (typeof where === 'string') return fail(ctx, [...base, 'address'], where, address);
  if (tls === 'none' && !isLoopbackHost(where.hostKey)) {
    const given = t['tls'] !== undefined;
    return fail(
      ctx,
      [...base, given ? 'tls' : 'address'],
      `${service === 'admin' ? 'the admin page logs administrators in: plain' : 'plain'} HTTP is allowed only on a loopback address (127.0.0.1, [::1]); set tls = "implicit" (HTTPS with the [tls] certificate) to listen on ${address}`,
      given ? 'none' : address,
    );
  }
  return {
    index,
    address,
    hostKey: where.hostKey,
    family: where.family,
    admin: service,
    listener: { host: where.host, port: where.port, tls },
  };
}

function readListener(
  ctx: Ctx,
  index: number,
  value: unknown,
  clientCaGiven: boolean,
): ParsedListener | undefined {
  const base: KeyPath = ['listeners', index];
  const t = readTable(ctx, base, value, LISTENER_KEYS);
  if (t === undefined) return undefined;

  const service =
    t['service'] === undefined
      ? fail(
          ctx,
          [...base, 'service'],
          'missing; give one of "smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "lmtp", "managesieve"',
        )
      : readEnum(ctx, [...base, 'service'], t['service'], SERVICES);

  let where: { host: string; port: number; hostKey: string; family: 0 | 4 | 6 } | undefined;
  const socket = readSocketPath(ctx, base, t, service);
  if (socket === null) return undefined;
  const address =
    t['address'] === undefined ? socket?.address : readString(ctx, [...base, 'address'], t['address']);
  if (socket !== undefined) {
    where = { host: 'unix', port: 0, hostKey: `unix:${socket.path}`, family: 0 };
    if (t['address'] !== undefined)
      fail(ctx, [...base, 'address'], 'give either address or path, not both', address);
  } else if (t['address'] === undefined) {
    fail(ctx, [...base, 'address'], 'missing; give "host:port", for example "0.0.0.0:25" or "[::]:25"');
  } else if (address !== undefined) {
    const r = parseListenAddress(address);
    if (typeof r === 'string') fail(ctx, [...base, 'address'], r, address);
    else where = r;
  }

  const tls = opt(t['tls'], (v) => readEnum(ctx, [...base, 'tls'], v, TLS_MODES));
  const mode = tls ?? (service === undefined ? 'starttls' : listenerDefaults(service).tls);
  const mismatch = service === undefined ? undefined : tlsMismatch(service, mode);
  if (mismatch !== undefined) fail(ctx, [...base, 'tls'], mismatch, tls);

  const authPolicy = readListenerAuth(ctx, base, t, service, mode, clientCaGiven);

  if (service === undefined || where === undefined || address === undefined || mismatch !== undefined) {
    return undefined;
  }
  if (t['tls'] !== undefined && tls === undefined) return undefined;
  if (authPolicy === undefined) return undefined;
  const proxyFrom = opt(t['proxy_from'], (v) => readNetworks(ctx, [...base, 'proxy_from'], v));
  if (t['proxy_from'] !== undefined && proxyFrom === undefined) return undefined;
  // Port 25 is where other servers deliver; on another port an smtp listener may be a private relay.
  if (service === 'smtp' && authPolicy.requireAuth && where.port === 25) {
    warn(
      ctx,
      [...base, 'require_auth'],
      'other mail servers do not authenticate when they deliver (RFC 5321), so an smtp listener on port 25 that requires AUTH refuses all incoming mail for local_domains (530 5.7.0); let your users authenticate on a submission listener instead',
    );
  }
  return {
    index,
    address,
    hostKey: where.hostKey,
    family: where.family,
    admin: false,
    listener: {
      service,
      host: where.host,
      port: where.port,
      tls: mode,
      ...authPolicy,
      ...(t['filters'] === undefined
        ? {}
        : { filters: readStringArray(ctx, [...base, 'filters'], t['filters']) ?? [] }),
      ...(proxyFrom === undefined ? {} : { proxyFrom }),
      ...(socket === undefined ? {} : { path: socket.path, socketMode: socket.mode }),
    },
  };
}

/**
 * An LMTP listener's Unix socket (`path`, `mode`): undefined when there is none, null when what was
 * written is wrong (reported).
 */
function readSocketPath(
  ctx: Ctx,
  base: KeyPath,
  t: Record<string, unknown>,
  service: Service | undefined,
): { path: string; mode: number; address: string } | undefined | null {
  if (t['path'] === undefined) {
    if (t['mode'] !== undefined)
      return fail(ctx, [...base, 'mode'], 'only for a listener with a path') ?? null;
    return undefined;
  }
  const path = readString(ctx, [...base, 'path'], t['path']);
  if (path === undefined) return null;
  if (service !== undefined && service !== 'lmtp') {
    return (
      fail(
        ctx,
        [...base, 'path'],
        `a Unix socket path is for service = "lmtp"; ${service} listens on an address`,
        path,
      ) ?? null
    );
  }
  if (!path.startsWith('/') || path.includes('\0') || Buffer.byteLength(path) > 100) {
    return (
      fail(
        ctx,
        [...base, 'path'],
        'give an absolute path of at most 100 octets, for example "/run/tern/lmtp"',
        path,
      ) ?? null
    );
  }
  let mode = 0o660;
  if (t['mode'] !== undefined) {
    const text = readString(ctx, [...base, 'mode'], t['mode']);
    if (text === undefined) return null;
    if (!/^0?[0-7]{3}$/.test(text)) {
      return (
        fail(
          ctx,
          [...base, 'mode'],
          'give the permission bits in octal as a string, for example "0660"',
          text,
        ) ?? null
      );
    }
    mode = Number.parseInt(text, 8);
  }
  return { path, mode, address: `unix:${path}` };
}

type ListenerAuth = Pick<
  ListenerConfig,
  'auth' | 'requireAuth' | 'plaintextAuthOnLoopback' | 'clientCertificates'
>;

/** The AUTH and client-certificate settings of one listener, defaults from its service. */
function readListenerAuth(
  ctx: Ctx,
  base: KeyPath,
  t: Record<string, unknown>,
  service: Service | undefined,
  mode: TlsMode,
  clientCaGiven: boolean,
): ListenerAuth | undefined {
  const bool = (key: string): boolean | undefined => opt(t[key], (v) => readBoolean(ctx, [...base, key], v));
  const auth = bool('auth');
  const requireAuth = bool('require_auth');
  const plaintext = bool('allow_plaintext_auth_on_loopback');
  const certs = opt(t['client_certificates'], (v) =>
    readEnum(ctx, [...base, 'client_certificates'], v, CLIENT_CERTIFICATE_MODES),
  );
  const unread = (key: string, read: unknown): boolean => t[key] !== undefined && read === undefined;
  const readBad =
    unread('auth', auth) ||
    unread('require_auth', requireAuth) ||
    unread('allow_plaintext_auth_on_loopback', plaintext) ||
    unread('client_certificates', certs);
  if (service === undefined || readBad) return undefined;

  const d = listenerDefaults(service);
  const out: ListenerAuth = {
    auth: auth ?? d.auth,
    requireAuth: requireAuth ?? d.requireAuth,
    plaintextAuthOnLoopback: plaintext ?? d.plaintextAuthOnLoopback,
    clientCertificates: certs ?? d.clientCertificates,
  };
  let bad = false;
  if (service === 'lmtp' && out.auth) {
    // RFC 2033 §1: LMTP is spoken to a trusted MTA on this host or network; nobody logs in.
    return fail(
      ctx,
      [...base, auth === true ? 'auth' : 'require_auth'],
      'lmtp takes mail from trusted MTAs without AUTH; restrict who can reach it (a Unix socket path or a private address) instead',
    );
  }
  if (protocolOf(service) !== 'smtp') {
    // A maildrop is only ever opened for a logged-in user (RFC 1939 §4, RFC 9051 §3): nothing to turn off.
    for (const [key, read] of [
      ['auth', auth],
      ['require_auth', requireAuth],
    ] as const) {
      if (read === false) {
        bad = true;
        fail(ctx, [...base, key], `${service} always requires a login; remove ${key}`);
      }
    }
    if (bad) return undefined;
  }
  if (out.requireAuth && !out.auth) {
    bad = true;
    // Name the key the person wrote: require_auth when given, else the auth = false that undid a default.
    if (requireAuth !== undefined) {
      fail(ctx, [...base, 'require_auth'], 'needs auth = true: without AUTH nobody could ever send here');
    } else {
      fail(
        ctx,
        [...base, 'auth'],
        `${service} listeners require authentication by default; with auth = false also set require_auth = false (otherwise nobody could ever send here)`,
      );
    }
  }
  if (out.clientCertificates !== 'none') {
    if (mode === 'none') {
      bad = true;
      fail(
        ctx,
        [...base, 'client_certificates'],
        `"${out.clientCertificates}" needs TLS; client certificates cannot be asked for with tls = "none"`,
        out.clientCertificates,
      );
    } else if (!clientCaGiven) {
      bad = true;
      fail(
        ctx,
        [...base, 'client_certificates'],
        `"${out.clientCertificates}" needs tls.client_ca, the PEM bundle of CAs that issue client certificates`,
        out.clientCertificates,
      );
    }
  }
  // Only an explicit tls = "none" gets here: every service defaults to some TLS.
  if (mode === 'none' && out.auth && out.requireAuth && !out.plaintextAuthOnLoopback) {
    warn(
      ctx,
      [...base, 'tls'],
      'AUTH is offered only over TLS, so with tls = "none" and require_auth nobody can send here; set allow_plaintext_auth_on_loopback = true (loopback clients only) or require_auth = false',
      'none',
    );
  }
  if (out.plaintextAuthOnLoopback && !out.auth) {
    warn(ctx, [...base, 'allow_plaintext_auth_on_loopback'], 'has no effect with auth = false');
  }
  return bad ? undefined : out;
}

function tlsMismatch(service: Service, mode: TlsMode): string | undefined {
  switch (service) {
    case 'submissions':
      return mode === 'implicit'
        ? undefined
        : 'submissions is implicit TLS by definition (RFC 8314 §3.3); use service = "submission" for STARTTLS or cleartext';
    case 'submission':
      return mode === 'implicit'
        ? 'for implicit TLS use service = "submissions" (RFC 8314 §3.3); submission offers STARTTLS or none'
        : undefined;
    case 'smtp':
      return mode === 'implicit'
        ? 'smtp peers expect STARTTLS (RFC 3207), not implicit TLS; use "starttls" or "none"'
        : undefined;
    case 'pop3s':
      return mode === 'implicit'
        ? undefined
        : 'pop3s is implicit TLS by definition (RFC 8314 §3.3); use service = "pop3" for STLS or cleartext';
    case 'pop3':
      return mode === 'implicit'
        ? 'for implicit TLS use service = "pop3s" (RFC 8314 §3.3); pop3 offers STLS (RFC 2595) or none'
        : undefined;
    case 'imaps':
      return mode === 'implicit'
        ? undefined
        : 'imaps is implicit TLS by definition (RFC 8314 §3.3); use service = "imap" for STARTTLS or cleartext';
    case 'imap':
      return mode === 'implicit'
        ? 'for implicit TLS use service = "imaps" (RFC 8314 §3.3); imap offers STARTTLS (RFC 9051 §6.2.1) or none'
        : undefined;
    case 'lmtp':
      return mode === 'implicit' ? 'lmtp offers STARTTLS or none, not implicit TLS' : undefined;
    case 'managesieve':
      return mode === 'implicit'
        ? 'ManageSieve clients expect STARTTLS (RFC 5804 §2.2), not implicit TLS; use "starttls" or "none"'
        : undefined;
  }
}

/** "host:port", IPv6 in brackets. Port 0 lets the OS pick a free port (useful in tests). */
function parseListenAddress(
  s: string,
): { host: string; port: number; hostKey: string; family: 0 | 4 | 6 } | string {
  const example = 'write "host:port", for example "0.0.0.0:25", "127.0.0.1:2525" or "[::1]:25"';
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s[close + 1] !== ':') return `"${s}" is not a listen address; ${example}`;
    host = s.slice(1, close);
    portText = s.slice(close + 2);
    if (isIP(host) !== 6) return `"${host}" in "${s}" is not an IPv6 address`;
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) return `"${s}" has no port; ${example}`;
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(':')) return `"${s}": IPv6 addresses go in brackets, for example "[::1]:25"`;
    if (host === '')
      return `"${s}" has no host; use "0.0.0.0:PORT" for every IPv4 address or "[::]:PORT" for all`;
    if (isIP(host) !== 4 && (/^[\d.]+$/.test(host) || !isValidDomain(host, false))) {
      return `"${host}" in "${s}" is neither an IPv4 address nor a host name`;
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65_535) {
    return `"${portText}" in "${s}" is not a port number (0 to 65535)`;
  }
  const family = isIP(host);
  return {
    host,
    port: Number(portText),
    hostKey: canonicalHost(host, family),
    family: family === 0 ? 0 : family === 4 ? 4 : 6,
  };
}

function canonicalHost(host: string, family: number): string {
  if (family !== 6) return host.toLowerCase();
  try {
    return new URL(`http://[${host}]/`).hostname; // compresses and lower-cases: "[0:0::1]" → "[::1]"
  } catch {
    return host.toLowerCase(); // a zone id ("fe80::1%eth0") is not URL syntax; compare it as written
  }
}

/** Two listeners that would fail with EADDRINUSE: the same address, or one under a wildcard. Node binds
 * "::" dual-stack by default, so it also covers every IPv4 address. Names are not resolved here. */
function listenersConflict(a: ParsedListener, b: ParsedListener): boolean {
  const { port } = a.listener;
  if (port !== b.listener.port || port === 0) return false;
  if (a.hostKey === b.hostKey) return true;
  const covers = (w: ParsedListener, o: ParsedListener): boolean =>
    (w.hostKey === '[::]' && o.family !== 0) || (w.hostKey === '0.0.0.0' && o.family === 4);
  return covers(a, b) || covers(b, a);
}

// ---------------------------------------------------------------------------------------------------
// Value readers: each reports its own error and returns undefined on a bad value.

type KeyPath = readonly (string | number)[];
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface Ctx {
  readonly lines: LineIndex;
  readonly errors: ConfigError[];
  readonly warnings: ConfigError[];
}

/** Read value when present; a key TOML leaves out is undefined here, and gets its default. */
function opt<T>(value: unknown, read: (v: unknown) => T | undefined): T | undefined {
  return value === undefined ? undefined : read(value);
}

function fail(ctx: Ctx, path: KeyPath, message: string, literal?: string): undefined {
  ctx.errors.push({ key: pathText(path), line: ctx.lines.lineOf(path, literal), message });
  return undefined;
}

function warn(ctx: Ctx, path: KeyPath, message: string, literal?: string): void {
  ctx.warnings.push({ key: pathText(path), line: ctx.lines.lineOf(path, literal), message });
}

function describe(v: unknown): string {
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'boolean') return 'a boolean';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a float';
  if (typeof v === 'bigint') return 'an integer';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof TomlDate) return 'a date-time';
  return 'a table';
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof TomlDate);
}

function readTable(
  ctx: Ctx,
  path: KeyPath,
  value: unknown,
  known: readonly string[],
): Record<string, unknown> | undefined {
  if (!isTable(value)) {
    const name = pathText(path);
    return fail(ctx, path, `must be a table ([${name}]), not ${describe(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const hint = suggestKey(key, known);
    fail(
      ctx,
      [...path, key],
      hint === undefined
        ? `unknown key (known here: ${known.join(', ')})`
        : `unknown key; did you mean "${hint}"?`,
    );
  }
  return value;
}

function readArray(
  ctx: Ctx,
  path: KeyPath,
  value: unknown,
  what = 'an array',
): readonly unknown[] | undefined {
  if (!Array.isArray(value)) return fail(ctx, path, `must be ${what}, not ${describe(value)}`);
  const items: readonly unknown[] = value;
  return items;
}

/** An array of strings; every element that is not one is reported by its index. */
function readStringArray(ctx: Ctx, path: KeyPath, value: unknown): string[] | undefined {
  const list = readArray(ctx, path, value, 'an array of strings');
  if (list === undefined) return undefined;
  const out: string[] = [];
  let bad = false;
  list.forEach((item, i) => {
    const s = readString(ctx, [...path, i], item);
    if (s === undefined) bad = true;
    else out.push(s);
  });
  return bad ? undefined : out;
}

function readString(ctx: Ctx, path: KeyPath, value: unknown): string | undefined {
  if (typeof value !== 'string') return fail(ctx, path, `must be a string, not ${describe(value)}`);
  return value;
}

function readBoolean(ctx: Ctx, path: KeyPath, value: unknown): boolean | undefined {
  if (typeof value !== 'boolean') return fail(ctx, path, `must be true or false, not ${describe(value)}`);
  return value;
}

function readEnum<T extends string>(
  ctx: Ctx,
  path: KeyPath,
  value: unknown,
  choices: readonly T[],
): T | undefined {
  const list = choices.map((c) => `"${c}"`).join(', ');
  if (typeof value !== 'string') return fail(ctx, path, `must be one of ${list}, not ${describe(value)}`);
  const found = choices.find((c) => c === value);
  if (found === undefined) return fail(ctx, path, `"${value}" is not one of ${list}`, value);
  return found;
}

function readInteger(
  ctx: Ctx,
  path: KeyPath,
  value: unknown,
  range: { min: number; minWhy?: string; max?: number; adviseMin?: { value: number; why: string } },
): number | undefined {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    return fail(ctx, path, `must be an integer, not ${describe(value)}`);
  }
  if (value < range.min) {
    return fail(
      ctx,
      path,
      `must be at least ${range.min}${range.minWhy === undefined ? '' : ` (${range.minWhy})`}`,
    );
  }
  if (range.max !== undefined && value > range.max) return fail(ctx, path, `must be at most ${range.max}`);
  if (range.adviseMin !== undefined && value < range.adviseMin.value) {
    warn(ctx, path, `${value} is below ${range.adviseMin.value}: ${range.adviseMin.why}`);
  }
  return value;
}

interface SecondsBounds {
  /** A bound other than what Node timers hold, for times compared with a clock rather than waited for. */
  readonly maxMs?: number;
  readonly maxWhy?: string;
  /** Legal but below what an RFC asks for: loads with this warning. */
  readonly adviseMin?: { readonly seconds: number; readonly why: string };
}

/** Seconds in the file (fractions allowed), milliseconds in Config. */
function readSeconds(
  ctx: Ctx,
  path: KeyPath,
  value: unknown,
  allowZero: boolean,
  bounds: SecondsBounds = {},
): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return fail(ctx, path, `must be a number of seconds, not ${describe(value)}`);
  }
  const ms = Math.round(value * 1000);
  if (ms < 0 || (!allowZero && ms < 1)) {
    return fail(ctx, path, allowZero ? 'must not be negative' : 'must be greater than 0 (at least 0.001)');
  }
  if (bounds.maxMs !== undefined) {
    if (ms > bounds.maxMs) {
      const why = bounds.maxWhy === undefined ? '' : ` (${bounds.maxWhy})`;
      return fail(ctx, path, `must be at most ${Math.floor(bounds.maxMs / 1000)} seconds${why}`);
    }
  } else if (ms > MAX_TIMER_MS) {
    return fail(
      ctx,
      path,
      `must be at most ${Math.floor(MAX_TIMER_MS / 1000)} seconds (about 24 days): longer waits overflow Node timers`,
    );
  }
  if (bounds.adviseMin !== undefined && ms < bounds.adviseMin.seconds * 1000) {
    warn(ctx, path, `${value} is below ${bounds.adviseMin.seconds}: ${bounds.adviseMin.why}`);
  }
  return ms;
}

/** A likely intended key: the snake_case of a camelCase key, or one within two edits. */
function suggestKey(key: string, known: readonly string[]): string | undefined {
  const snake = key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/-/g, '_')
    .toLowerCase();
  if (known.includes(snake)) return snake;
  let best: { key: string; distance: number } | undefined;
  for (const k of known) {
    const d = editDistance(snake, k);
    if (d <= 2 && (best === undefined || d < best.distance)) best = { key: k, distance: d };
  }
  return best?.key;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

// ---------------------------------------------------------------------------------------------------
// Line index: a best-effort scan of the TOML text for the line where each key path is written.

interface LineIndex {
  /** Line of path, else of its nearest written ancestor; with literal, a value inside that ancestor
   * (an array element, an inline table field) is looked for as a quoted string on the following lines. */
  lineOf(path: KeyPath, literal?: string): number | null;
}

/** "limits.max_recipients", "listeners[1].address"; keys that are not bare TOML keys are quoted. */
function pathText(path: KeyPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const key = /^[A-Za-z0-9_-]+$/.test(seg) ? seg : JSON.stringify(seg);
      out += out === '' ? key : `.${key}`;
    }
  }
  return out;
}

function indexLines(text: string): LineIndex {
  const lines = text.split('\n');
  const at = new Map<string, number>();
  const arrayCounts = new Map<string, number>();
  const record = (path: KeyPath, line: number): void => {
    const t = pathText(path);
    if (!at.has(t)) at.set(t, line);
  };
  let table: KeyPath = [];
  let openString: string | undefined;

  for (const [i, raw] of lines.entries()) {
    const line = i + 1;
    if (openString !== undefined) {
      if (raw.includes(openString)) openString = undefined;
      continue;
    }
    const s = raw.trim();
    if (s.startsWith('[')) {
      const isArray = s.startsWith('[[');
      const keys = readKeys(s, isArray ? 2 : 1);
      if (keys === undefined) continue;
      const path: (string | number)[] = [];
      keys.segments.forEach((seg, j) => {
        path.push(seg);
        record(path, line);
        const t = pathText(path);
        if (isArray && j === keys.segments.length - 1) {
          const n = arrayCounts.get(t) ?? 0;
          arrayCounts.set(t, n + 1);
          path.push(n);
        } else {
          // A header below [[x]] continues the last element of x.
          const n = arrayCounts.get(t);
          if (n !== undefined) path.push(n - 1);
        }
      });
      record(path, line);
      table = path;
      continue;
    }
    const keys = readKeys(s, 0);
    if (keys === undefined || s[keys.end] !== '=') continue;
    const path = [...table, ...keys.segments];
    for (let n = table.length + 1; n <= path.length; n++) record(path.slice(0, n), line);
    openString = opensMultilineString(s.slice(keys.end + 1));
  }

  const findLiteral = (from: number, literal: string): number | undefined => {
    const quoted = [JSON.stringify(literal), `'${literal}'`];
    for (let i = from - 1; i < lines.length; i++) {
      const l = lines[i]!;
      if (quoted.some((q) => l.includes(q))) return i + 1;
    }
    return undefined;
  };

  return {
    lineOf(path, literal) {
      for (let n = path.length; n > 0; n--) {
        const line = at.get(pathText(path.slice(0, n)));
        if (line === undefined) continue;
        if (literal !== undefined && n < path.length) return findLiteral(line, literal) ?? line;
        return line;
      }
      return null;
    },
  };
}

/** Dotted key segments (bare, "basic" or 'literal') starting at s[start]; end is past trailing spaces. */
function readKeys(s: string, start: number): { segments: string[]; end: number } | undefined {
  const segments: string[] = [];
  let i = start;
  const skipSpace = (): void => {
    while (s[i] === ' ' || s[i] === '\t') i++;
  };
  for (;;) {
    skipSpace();
    const ch = s[i];
    if (ch === '"' || ch === "'") {
      let j = i + 1;
      while (j < s.length && s[j] !== ch) j += ch === '"' && s[j] === '\\' ? 2 : 1;
      if (j >= s.length) return undefined;
      const body = s.slice(i + 1, j);
      segments.push(ch === '"' ? unescapeBasic(body) : body);
      i = j + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(s.slice(i));
      if (m === null) return undefined;
      segments.push(m[0]);
      i += m[0].length;
    }
    skipSpace();
    if (s[i] !== '.') return { segments, end: i };
    i++;
  }
}

function unescapeBasic(body: string): string {
  try {
    return JSON.parse(`"${body}"`) as string;
  } catch {
    return body; // TOML escapes JSON lacks (\UXXXXXXXX): good enough for locating a line
  }
}

/** The delimiter of a multi-line string opened and not closed in this value text, if any. */
function opensMultilineString(value: string): string | undefined {
  const m = /"""|'''/.exec(value);
  if (m === null) return undefined;
  return value.includes(m[0], m.index + 3) ? undefined : m[0];
}

// ---------------------------------------------------------------------------------------------------
// Snapshot helpers

function resolvePaths(config: Config, base: string): Config {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const absOrNull = (p: string | null): string | null => (p === null ? null : abs(p));
  const { oauth } = config.auth;
  return {
    ...config,
    dataDir: abs(config.dataDir),
    tls: {
      cert: absOrNull(config.tls.cert),
      key: absOrNull(config.tls.key),
      clientCa: absOrNull(config.tls.clientCa),
    },
    auth:
      oauth === null
        ? config.auth
        : { ...config.auth, oauth: { ...oauth, jwksFile: absOrNull(oauth.jwksFile) } },
    outbound: { ...config.outbound, tlsCa: absOrNull(config.outbound.tlsCa) },
    filters: {
      ...config.filters,
      plugins: config.filters.plugins.map((pl) => ({ ...pl, path: abs(pl.path) })),
    },
  };
}

/** Own copies of every nested object, so freezing never touches shared defaults like DEFAULT_LIMITS. */
function copyConfig(c: Config): Config {
  return {
    ...c,
    localDomains: [...c.localDomains],
    listeners: c.listeners.map((l) => ({ ...l, ...(l.filters ? { filters: [...l.filters] } : {}) })),
    tls: { ...c.tls },
    limits: { ...c.limits },
    smtp: {
      ...c.smtp,
      trustedNetworks: [...c.smtp.trustedNetworks],
      ...(c.smtp.xclientFrom === undefined ? {} : { xclientFrom: [...c.smtp.xclientFrom] }),
    },
    pop3: { ...c.pop3 },
    imap: { ...c.imap },
    log: { ...c.log },
    auth: {
      ...c.auth,
      mechanisms: [...c.auth.mechanisms],
      oauth: c.auth.oauth === null ? null : { ...c.auth.oauth, audience: [...c.auth.oauth.audience] },
    },
    submission: { ...c.submission },
    dns: { ...c.dns, servers: [...c.dns.servers] },
    outbound: {
      ...c.outbound,
      relay: c.outbound.relay === null ? null : copyRelay(c.outbound.relay),
      transports: new Map([...c.outbound.transports].map(([k, v]) => [k, copyRelay(v)])),
      tlsPolicies: new Map(c.outbound.tlsPolicies),
    },
    queue: { ...c.queue },
    server: { ...c.server },
    trace: { ...c.trace },
    admin: {
      ...c.admin,
      listeners: c.admin.listeners.map((l) => ({ ...l })),
      openNetworks: [...c.admin.openNetworks],
    },
    mtaStsPublish: { ...c.mtaStsPublish, listeners: c.mtaStsPublish.listeners.map((l) => ({ ...l })) },
    filters: structuredClone(c.filters),
  };
}

function copyRelay(r: RelayHost): RelayHost {
  return { ...r, auth: r.auth === null ? null : { ...r.auth } };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    if (value instanceof Map) freezeMap(value);
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Object.freeze leaves a Map's entries writable. It stays a real Map (instanceof, deepEqual with a Map
 * of the same entries, what ReadonlyMap promises) whose writing methods throw, like a frozen object in
 * strict mode. Map.prototype.set.call still gets through: this stops mistakes, not malice. */
function freezeMap(map: Map<unknown, unknown>): void {
  for (const [k, v] of map) {
    deepFreeze(k);
    deepFreeze(v);
  }
  const refuse = (): never => {
    throw new TypeError('the configuration snapshot is read-only');
  };
  for (const method of ['set', 'delete', 'clear']) {
    Object.defineProperty(map, method, { value: refuse, enumerable: false });
  }
}

function errorCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

const READ_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'it does not exist',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory',
};

function describeReadError(err: unknown): string {
  const known = READ_ERRORS[errorCode(err) ?? ''];
  return `cannot read the configuration file: ${known ?? (err instanceof Error ? err.message : String(err))}`;
}
