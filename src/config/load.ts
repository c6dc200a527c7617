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
// RFC 7662 (OAuth bearer tokens, introspection), RFC 7518 §3.2 (HS256 key length).

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse, TomlDate, TomlError } from 'smol-toml';
import { isValidDomain } from '../core/address.ts';
import {
  DEFAULT_AUTH,
  DEFAULT_LIMITS,
  DEFAULT_SUBMISSION,
  SERVICES,
  defaultConfig,
  listenerDefaults,
} from './config.ts';
import type {
  AuthConfig,
  AuthMechanism,
  Config,
  LimitsConfig,
  ListenerConfig,
  LogConfig,
  OAuthConfig,
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
  const localDomains =
    opt(top['local_domains'], (v) => readDomains(ctx, ['local_domains'], v)) ?? defaults.localDomains;
  // A listener asking for client certificates needs a CA to check them against; whether tls.client_ca
  // is valid is reported by readTls, so a bad one is not also reported as missing.
  const clientCaGiven = isTable(top['tls']) && top['tls']['client_ca'] !== undefined;
  const listeners = opt(top['listeners'], (v) => readListeners(ctx, v, clientCaGiven)) ?? defaults.listeners;
  const tls = readTls(ctx, top['tls'], defaults.tls);
  const limits = readLimits(ctx, top['limits']);
  const smtp = readSmtp(ctx, top['smtp'], defaults.smtp);
  const log = readLog(ctx, top['log'], defaults.log);
  const auth = readAuth(ctx, top['auth']);
  const submission = readSubmission(ctx, top['submission']);

  if (ctx.errors.length > 0) return { ok: false, errors: sortByLine(ctx.errors) };
  const config: Config = {
    hostname,
    dataDir,
    localDomains,
    listeners,
    tls,
    limits,
    smtp,
    log,
    auth,
    submission,
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
  'listeners',
  'tls',
  'limits',
  'smtp',
  'log',
  'auth',
  'submission',
];
const LISTENER_KEYS = [
  'service',
  'address',
  'tls',
  'auth',
  'require_auth',
  'allow_plaintext_auth_on_loopback',
  'client_certificates',
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
  'sender_check',
  'add_missing_headers',
  'max_messages_per_hour',
  'max_recipients_per_hour',
];
const SMTP_KEYS = ['bare_line_endings', 'vrfy', 'trusted_networks'];
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
      opt(t['trusted_networks'], (v) => readNetworks(ctx, ['smtp', 'trusted_networks'], v)) ??
      defaults.trustedNetworks,
  };
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
// Listeners

interface ParsedListener {
  readonly index: number;
  readonly address: string;
  readonly listener: ListenerConfig;
  /** Comparable host: canonical IP text or lower-cased name. */
  readonly hostKey: string;
  readonly family: 0 | 4 | 6;
}

function readListeners(ctx: Ctx, value: unknown, clientCaGiven: boolean): ListenerConfig[] | undefined {
  const list = readArray(ctx, ['listeners'], value, 'an array of tables ([[listeners]])');
  if (list === undefined) return undefined;
  if (list.length === 0) {
    return fail(ctx, ['listeners'], 'give at least one listener, or leave listeners out to use the defaults');
  }
  const parsed: ParsedListener[] = [];
  let bad = false;
  list.forEach((item, index) => {
    const p = readListener(ctx, index, item, clientCaGiven);
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
  return bad ? undefined : parsed.map((p) => p.listener);
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
      ? fail(ctx, [...base, 'service'], 'missing; give one of "smtp", "submission", "submissions"')
      : readEnum(ctx, [...base, 'service'], t['service'], SERVICES);

  let where: { host: string; port: number; hostKey: string; family: 0 | 4 | 6 } | undefined;
  const address =
    t['address'] === undefined ? undefined : readString(ctx, [...base, 'address'], t['address']);
  if (t['address'] === undefined) {
    fail(ctx, [...base, 'address'], 'missing; give "host:port", for example "0.0.0.0:25" or "[::]:25"');
  } else if (address !== undefined) {
    const r = parseListenAddress(address);
    if (typeof r === 'string') fail(ctx, [...base, 'address'], r, address);
    else where = r;
  }

  const tls = opt(t['tls'], (v) => readEnum(ctx, [...base, 'tls'], v, TLS_MODES));
  const mode = tls ?? (service === 'submissions' ? 'implicit' : 'starttls');
  const mismatch = service === undefined ? undefined : tlsMismatch(service, mode);
  if (mismatch !== undefined) fail(ctx, [...base, 'tls'], mismatch, tls);

  const authPolicy = readListenerAuth(ctx, base, t, service, mode, clientCaGiven);

  if (service === undefined || where === undefined || address === undefined || mismatch !== undefined) {
    return undefined;
  }
  if (t['tls'] !== undefined && tls === undefined) return undefined;
  if (authPolicy === undefined) return undefined;
  return {
    index,
    address,
    hostKey: where.hostKey,
    family: where.family,
    listener: { service, host: where.host, port: where.port, tls: mode, ...authPolicy },
  };
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
  range: { min: number; minWhy?: string; adviseMin?: { value: number; why: string } },
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
  if (range.adviseMin !== undefined && value < range.adviseMin.value) {
    warn(ctx, path, `${value} is below ${range.adviseMin.value}: ${range.adviseMin.why}`);
  }
  return value;
}

/** Seconds in the file (fractions allowed), milliseconds in Config. */
function readSeconds(ctx: Ctx, path: KeyPath, value: unknown, allowZero: boolean): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return fail(ctx, path, `must be a number of seconds, not ${describe(value)}`);
  }
  const ms = Math.round(value * 1000);
  if (ms < 0 || (!allowZero && ms < 1)) {
    return fail(ctx, path, allowZero ? 'must not be negative' : 'must be greater than 0 (at least 0.001)');
  }
  if (ms > MAX_TIMER_MS) {
    return fail(
      ctx,
      path,
      `must be at most ${Math.floor(MAX_TIMER_MS / 1000)} seconds (about 24 days): longer waits overflow Node timers`,
    );
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
  };
}

/** Own copies of every nested object, so freezing never touches shared defaults like DEFAULT_LIMITS. */
function copyConfig(c: Config): Config {
  return {
    ...c,
    localDomains: [...c.localDomains],
    listeners: c.listeners.map((l) => ({ ...l })),
    tls: { ...c.tls },
    limits: { ...c.limits },
    smtp: { ...c.smtp, trustedNetworks: [...c.smtp.trustedNetworks] },
    log: { ...c.log },
    auth: {
      ...c.auth,
      mechanisms: [...c.auth.mechanisms],
      oauth: c.auth.oauth === null ? null : { ...c.auth.oauth, audience: [...c.auth.oauth.audience] },
    },
    submission: { ...c.submission },
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
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
