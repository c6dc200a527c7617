// The configuration snapshot: one deeply readonly object, parsed once, swapped whole on reload.
// Keys and defaults are documented in docs/configuration.md; tern.example.toml shows them all.
// This file holds the types and defaults only; load.ts turns TOML into this (or every error at once).

export type Service =
  'smtp' | 'submission' | 'submissions' | 'pop3' | 'pop3s' | 'imap' | 'imaps' | 'lmtp' | 'managesieve';
export const SERVICES: readonly Service[] = [
  'smtp',
  'submission',
  'submissions',
  'pop3',
  'pop3s',
  'imap',
  'imaps',
  'lmtp',
  'managesieve',
];

/**
 * The protocol a service speaks: SMTP (MX and submission; LMTP, RFC 2033, is SMTP's driver in its LMTP
 * mode), POP3 (RFC 1939) or IMAP (RFC 9051), each of those two with STARTTLS/STLS or implicit TLS, and
 * ManageSieve (RFC 5804).
 */
export type Protocol = 'smtp' | 'pop3' | 'imap' | 'managesieve';

export function protocolOf(service: Service): Protocol {
  if (service === 'pop3' || service === 'pop3s') return 'pop3';
  if (service === 'imap' || service === 'imaps') return 'imap';
  if (service === 'managesieve') return 'managesieve';
  return 'smtp';
}

/** Services whose TLS is implicit by definition (RFC 8314 §3.3). */
export function isImplicitTlsService(service: Service): boolean {
  return service === 'submissions' || service === 'pop3s' || service === 'imaps';
}

/** How a listener uses TLS: STARTTLS offered, implicit TLS from the first byte (RFC 8314), or none. */
export type TlsMode = 'starttls' | 'implicit' | 'none';

export interface ListenerConfig {
  readonly service: Service;
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
  /** Offer SMTP AUTH here (RFC 4954). Default: submission and submissions yes, smtp no. POP3: always. */
  readonly auth: boolean;
  /** MAIL without authentication gets 530 5.7.0. Default: submission and submissions yes, smtp no. */
  readonly requireAuth: boolean;
  /** Allow AUTH without TLS when the client is on a loopback address. Default false. */
  readonly plaintextAuthOnLoopback: boolean;
  /** TLS client certificates: not asked for, requested (optional), or required. Needs tls.client_ca. */
  readonly clientCertificates: 'none' | 'request' | 'require';
  /**
   * This listener's filter pipeline (`filters = [...]`, names as in `[filters] order`), for every
   * client of it; null: `[filters] order` for unauthenticated clients of an smtp listener, none else.
   */
  readonly filters?: readonly string[] | null;
  /**
   * `proxy_from = ["CIDR", ...]`: every connection must start with a PROXY protocol header (v1 or v2)
   * from one of these networks (a load balancer), and the address it names is the client's; absent: none.
   */
  readonly proxyFrom?: readonly string[];
  /**
   * `path = "/run/tern/lmtp"`: an LMTP listener on a Unix socket instead of `address` (host is then
   * "unix", port 0); its clients are local processes, named 127.0.0.1 in logs and Received:.
   */
  readonly path?: string;
  /** The socket file's permission bits (`mode = "0660"`), for a path listener. */
  readonly socketMode?: number;
}

/**
 * A listener of the admin web page and HTTP API (`[[listeners]] service = "admin"`, src/admin). Plain
 * HTTP only on a loopback address; anywhere else it must be HTTPS (`tls = "implicit"`, the [tls] certificate).
 */
export interface AdminListenerConfig {
  readonly host: string;
  readonly port: number;
  readonly tls: 'none' | 'implicit';
}

export interface AdminConfig {
  /** From `[[listeners]]` tables with service = "admin"; the embedded defaults have 127.0.0.1:8025. */
  readonly listeners: readonly AdminListenerConfig[];
  /** Clients that may read /healthz, /readyz and /metrics without logging in (CIDR); empty = any client. */
  readonly openNetworks: readonly string[];
  /** A page login lasts this long without use (the cookie's session; API tokens do not expire). */
  readonly sessionIdleMs: number;
}

/**
 * Publishing MTA-STS for our own domains (RFC 8461 §3.2): `[[listeners]] service = "mta-sts"` serve
 * `https://mta-sts.<domain>/.well-known/mta-sts.txt` for every local domain; `[mta_sts]` says what.
 */
export interface MtaStsPublishConfig {
  readonly listeners: readonly AdminListenerConfig[];
  /** The policy's mode: start with testing, move to enforce once the TLS reports are clean. */
  readonly mode: 'enforce' | 'testing' | 'none';
  readonly maxAgeS: number;
}

export const DEFAULT_MTA_STS_PUBLISH: MtaStsPublishConfig = {
  listeners: [],
  mode: 'testing',
  maxAgeS: 604_800,
};

/** The filters of `[filters] order` (issue 17); each table's presence turns its filter on. */
export type FilterName = 'dnsbl' | 'greylist' | 'rspamd' | 'spamassassin' | 'clamav' | 'milter';

/** What a filter that fails or takes too long does: a 451 4.7.1 the client retries, or go on. */
export type FilterFailureMode = 'tempfail' | 'accept';

export interface FilterCommonConfig {
  readonly timeoutMs: number;
  readonly onFailure: FilterFailureMode;
}

export interface DnsblConfig extends FilterCommonConfig {
  /** Zone specs: "zone", "zone*2" (weight), "zone=127.0.0.2,127.0.0.4" (listed codes). */
  readonly zones: readonly string[];
  /** Refused when the listed zones' weights add up to this. */
  readonly threshold: number;
  /** A Spamhaus DQS key, put in front of each zone. */
  readonly dqsKey: string | null;
  /** DNS allow-lists (DNSWL, RFC 5782): a listed client skips the block lists and greylisting. */
  readonly allowZones: readonly string[];
  /** Domain block lists (DBL/URIBL style) for the MAIL FROM and HELO domains and the body's links. */
  readonly domainZones: readonly string[];
  /** Look up the domains of the links in the message text too (domain_zones). */
  readonly bodyDomains: boolean;
}

export interface GreylistConfig extends FilterCommonConfig {
  readonly enabled: boolean;
  readonly delayMs: number;
  readonly retryWindowMs: number;
  readonly passLifetimeMs: number;
  readonly autoAllowAfter: number;
  readonly ipv4Prefix: number;
  readonly ipv6Prefix: number;
  readonly skipSpfDomains: readonly string[];
  readonly skipNetworks: readonly string[];
}

export interface RspamdConfig extends FilterCommonConfig {
  /** The daemon's base URL (its normal worker, port 11333 by default). */
  readonly url: string;
  readonly password: string | null;
  /** rspamd's "add header" action files the message in Junk too. */
  readonly junkOnAddHeader: boolean;
}

export interface SpamAssassinConfig extends FilterCommonConfig {
  /** spamd's `host:port` or `unix:/path`. */
  readonly address: string;
  /** At or over this score the message is refused (5xx); over spamd's own threshold it is filed in Junk. */
  readonly rejectScore: number;
  /** spamd's User header (whose preferences apply). */
  readonly user: string | null;
  /** Larger messages are not sent to spamd (accepted unscanned, as spamc does). */
  readonly maxScanBytes: number;
}

export interface ClamavConfig extends FilterCommonConfig {
  /** clamd's `host:port` or `unix:/path`. */
  readonly address: string;
  readonly addHeader: boolean;
  /** A message over clamd's StreamMaxLength, which it cannot scan. */
  readonly onTooLarge: 'accept' | 'tempfail' | 'reject';
  /** Larger messages are not sent to clamd at all (keep it at or below clamd's StreamMaxLength). */
  readonly maxScanBytes: number;
}

export interface MilterConfig extends FilterCommonConfig {
  /** "milter", or "milter:NAME" when the table has a name; what `[filters] order` lists. */
  readonly name: string;
  readonly address: string;
}

export interface PluginConfig extends FilterCommonConfig {
  /** What `[filters] order` lists. */
  readonly name: string;
  /** The module file (TypeScript or JavaScript), resolved against the config file's folder. */
  readonly path: string;
  /** The table's other keys, given to the plugin as they are. */
  readonly settings: Readonly<Record<string, unknown>>;
}

export interface FiltersConfig {
  /** The filters that run, in order: built-in names, "milter:NAME", plugin names. */
  readonly order: readonly string[];
  readonly dnsbl: DnsblConfig | null;
  readonly greylist: GreylistConfig | null;
  readonly rspamd: RspamdConfig | null;
  readonly spamassassin: SpamAssassinConfig | null;
  readonly clamav: ClamavConfig | null;
  readonly milters: readonly MilterConfig[];
  readonly plugins: readonly PluginConfig[];
  /** Per-network pipelines (`[filters.networks]`): the most specific network a client is in wins. */
  readonly networks: readonly { readonly network: string; readonly filters: readonly string[] }[];
}

export const DEFAULT_FILTERS: FiltersConfig = {
  order: [],
  dnsbl: null,
  greylist: null,
  rspamd: null,
  spamassassin: null,
  clamav: null,
  milters: [],
  plugins: [],
  networks: [],
};

export const DEFAULT_ADMIN: AdminConfig = { listeners: [], openNetworks: [], sessionIdleMs: 8 * 3_600_000 };

export type AuthMechanism =
  | 'PLAIN'
  | 'LOGIN'
  | 'SCRAM-SHA-256'
  | 'SCRAM-SHA-256-PLUS'
  | 'OAUTHBEARER'
  | 'XOAUTH2'
  | 'EXTERNAL'
  | 'CRAM-MD5';

export interface OAuthConfig {
  /** Expected "iss"; null accepts any. */
  readonly issuer: string | null;
  /** Expected "aud" (one of); empty accepts any. */
  readonly audience: readonly string[];
  /** A JWKS document (JSON file) with the public keys that sign tokens (RS256, ES256, EdDSA). */
  readonly jwksFile: string | null;
  /** A shared secret for HS256 tokens. */
  readonly hmacSecret: string | null;
  /** RFC 7662 token introspection endpoint; used when set instead of local JWT verification. */
  readonly introspectionUrl: string | null;
  readonly introspectionClientId: string | null;
  readonly introspectionClientSecret: string | null;
  /** The claim that names the user (default "email"). */
  readonly usernameClaim: string;
}

export interface AuthConfig {
  /** Mechanisms offered, in order. OAUTHBEARER/XOAUTH2 need [auth.oauth]; CRAM-MD5 only when listed. */
  readonly mechanisms: readonly AuthMechanism[];
  /** Failed AUTH attempts on one connection before 421 4.7.0 and close. */
  readonly maxFailuresPerConnection: number;
  /** Delay before answering a failed AUTH; doubles with each failure on the connection. */
  readonly failureDelayMs: number;
  /** Failures (per client IP, and per account) within the window that cause a lockout (454 4.7.0). */
  readonly lockoutThreshold: number;
  readonly lockoutWindowMs: number;
  readonly lockoutMs: number;
  readonly oauth: OAuthConfig | null;
}

export interface SubmissionConfig {
  /** MAIL FROM and From: must be addresses the authenticated user owns (553 5.7.1 otherwise). */
  readonly senderCheck: boolean;
  /** Add Date: and Message-ID: when missing (RFC 6409 §8). */
  readonly addMissingHeaders: boolean;
  /** Per authenticated user and hour; 0 = unlimited. Exceeding gives 451 4.7.1. */
  readonly maxMessagesPerHour: number;
  readonly maxRecipientsPerHour: number;
  /**
   * FUTURERELEASE (RFC 4865): the longest HOLDFOR/HOLDUNTIL an authenticated or trusted client may ask
   * for, in seconds; 0: not offered.
   */
  readonly maxHoldSeconds: number;
}

export interface TlsConfig {
  /** PEM paths; both null means a self-signed certificate kept in data_dir/tls. */
  readonly cert: string | null;
  readonly key: string | null;
  /** PEM bundle of CAs that issue client certificates (for EXTERNAL); null = none accepted by CA. */
  readonly clientCa: string | null;
}

export interface LimitsConfig {
  readonly maxMessageBytes: number;
  readonly maxRecipients: number;
  readonly maxTransactionsPerConnection: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  readonly maxCommandLineBytes: number;
  readonly maxTextLineBytes: number;
  /** What to do with a message line longer than maxTextLineBytes: reject the message (550 5.6.0) or accept it. */
  readonly longLines: 'reject' | 'accept';
  readonly maxErrors: number;
  readonly greetingTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly dataBlockTimeoutMs: number;
  readonly dataTotalTimeoutMs: number;
  readonly shutdownGraceMs: number;
  /**
   * Hold the 220 greeting this long; a client that talks before it is an early talker (a spam engine that
   * does not wait) and gets 554 5.5.0 (Postfix postscreen's pregreet test). 0 = greet at once.
   */
  readonly greetingDelayMs: number;
  /**
   * Free space kept in reserve on the data directory's filesystem: below it (or below 1.5 × the SIZE a
   * client declares), MAIL gets 452 4.3.1, so queue bookkeeping and delivery keep room to work.
   */
  readonly minFreeBytes: number;
  /** A TLS handshake (STARTTLS or implicit TLS) that takes longer is cut. */
  readonly tlsHandshakeTimeoutMs: number;
  /**
   * Every user's mailbox quota unless the directory sets the user's own (`tern user quota`): bytes over
   * all folders, and messages. 0 = unlimited. Local delivery refuses a message that would go over
   * (5.2.2), IMAP APPEND/COPY/MOVE answer [OVERQUOTA] (RFC 9208).
   */
  readonly mailboxQuotaBytes: number;
  readonly mailboxQuotaMessages: number;
}

export interface Pop3Config {
  /** Idle time before the server closes a POP3 connection; RFC 1939 §3 asks for at least 10 minutes. */
  readonly idleTimeoutMs: number;
}

export const DEFAULT_POP3: Pop3Config = { idleTimeoutMs: 600_000 };

export interface ImapConfig {
  /** Idle time before autologout; RFC 9051 §5.4 asks for at least 30 minutes (IDLE counts as activity). */
  readonly idleTimeoutMs: number;
  /** Connections one user may hold at once, over all IMAP listeners (clients open one per folder). */
  readonly maxConnectionsPerUser: number;
  /** One command line (RFC 7162 §4 asks servers to take at least 8192 octets). */
  readonly maxLineBytes: number;
  /** APPEND's largest message (the APPENDLIMIT capability, RFC 7889); 0: limits.max_message_bytes. */
  readonly appendLimitBytes: number;
}

export const DEFAULT_IMAP: ImapConfig = {
  idleTimeoutMs: 30 * 60_000,
  maxConnectionsPerUser: 50,
  maxLineBytes: 64 * 1024,
  appendLimitBytes: 0,
};

export interface SmtpConfig {
  /** Bare CR or LF in DATA or commands: reject (default, smuggling defence) or normalize to CRLF. */
  readonly bareLineEndings: 'reject' | 'normalize';
  /** VRFY answers 252 unless enabled. */
  readonly vrfy: boolean;
  /** Trusted networks (CIDR) whose clients may relay without authentication. */
  readonly trustedNetworks: readonly string[];
  /** Commands that move no mail (NOOP, RSET, VRFY, HELP, refused ones...) between accepted messages
   * before 421 4.7.0 and close; 0 = no limit. */
  readonly maxJunkCommands: number;
  /**
   * Clients (CIDR) that may use XCLIENT (Postfix's extension) to name the client they speak for: a
   * proxy or a test harness. Empty (default): nobody; EHLO does not offer it.
   */
  readonly xclientFrom?: readonly string[];
}

export interface LogConfig {
  readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** json always, pretty always, or auto (pretty on a TTY). */
  readonly format: 'auto' | 'json' | 'pretty';
}

export interface DnsConfig {
  /** Resolver addresses, always "ip:port" ("127.0.0.1:53", "[::1]:5353": IPv6 bracketed and compressed),
   * the form Node's Resolver#setServers takes; empty = the system's /etc/resolv.conf. */
  readonly servers: readonly string[];
  /** Per query attempt. */
  readonly timeoutMs: number;
  /** Attempts per query across the servers (1 to 10). */
  readonly attempts: number;
  /** Upper bound on cached TTLs; 0 = no cache. */
  readonly maxCacheTtlMs: number;
  /**
   * The resolvers in `servers` validate DNSSEC: their AD bit is believed, which turns DANE on for
   * outbound mail (RFC 7672). Only for resolvers you run or trust on a trusted path (loopback).
   */
  readonly dnssec: boolean;
}

/** Outbound TLS policy (Postfix's smtp_tls_security_level): none, may (opportunistic), encrypt, verify. */
export type OutboundTlsPolicy = 'none' | 'may' | 'encrypt' | 'verify';

/**
 * A destination's policy in [outbound.tls_policy]: the four above, or `dane` (DANE where the domain's MX
 * and TLSA records are DNSSEC-authenticated, else `may`) and `dane-only` (DANE or no delivery).
 */
export type DestinationTlsPolicy = OutboundTlsPolicy | 'dane' | 'dane-only';

/** The connection policy a transport (a relay, no MX by DANE) takes from a destination policy. */
export function relayTlsOf(policy: DestinationTlsPolicy): OutboundTlsPolicy {
  return policy === 'dane' ? 'may' : policy === 'dane-only' ? 'encrypt' : policy;
}

export interface RelayHost {
  /** Lower-case host name, or an IP address (IPv6 without brackets, compressed); with `mx = true` the
   * host's MX records are used (Postfix "host" vs "[host]"). An IP address always has mx false. */
  readonly host: string;
  readonly port: number;
  readonly mx: boolean;
  readonly tls: OutboundTlsPolicy;
  /** SMTP AUTH to the relay (PLAIN or LOGIN over TLS); null = none. Only with tls encrypt or verify. */
  readonly auth: { readonly username: string; readonly password: string } | null;
  /** The next hop speaks LMTP (RFC 2033): a mailbox server (Dovecot, Cyrus) takes final delivery. */
  readonly lmtp?: boolean;
  /** LMTP on a Unix socket of this host (host is then "localhost", port 0). */
  readonly path?: string;
}

export interface OutboundConfig {
  /** Smart host for every remote domain; null = deliver by MX. */
  readonly relay: RelayHost | null;
  /** Per destination domain: a relay that overrides `relay` and MX routing. Keys are lower-case A-label
   * patterns: "example.com" matches that domain only, "*.example.com" any subdomain at any depth (not
   * example.com itself); an exact key wins over a wildcard, a longer wildcard over a shorter one. */
  readonly transports: ReadonlyMap<string, RelayHost>;
  /** Default TLS policy for MX delivery. Relays carry their own (defaulting to this at load). */
  readonly tls: OutboundTlsPolicy;
  /** Per destination domain overrides of `tls` for MX delivery; keys are patterns as in `transports`. */
  readonly tlsPolicies: ReadonlyMap<string, DestinationTlsPolicy>;
  /** Honour destinations' MTA-STS policies (RFC 8461) for MX delivery. */
  readonly mtaSts: boolean;
  /** Extra CA bundle (PEM path) trusted for `verify`, beside the system store; null = system only. */
  readonly tlsCa: string | null;
  /** The port remote MX hosts are contacted on (25; tests may change it). */
  readonly port: number;
  /** Local IP address to connect from; null = the system's choice. It can only reach hosts of its own
   * family (an IPv4 source cannot connect to an IPv6 MX). */
  readonly sourceAddress: string | null;
  readonly maxConnections: number;
  readonly maxConnectionsPerDestination: number;
  readonly maxMessagesPerConnection: number;
  /** Idle connections kept for reuse this long; 0 = closed after each delivery. */
  readonly connectionIdleMs: number;
  readonly connectTimeoutMs: number;
  // RFC 5321 §4.5.3.2 client timeouts
  readonly greetingTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly dataInitTimeoutMs: number;
  readonly dataBlockTimeoutMs: number;
  readonly dataDoneTimeoutMs: number;
}

export interface QueueConfig {
  /** First retry after a temporary failure; doubles up to retryMaxMs (Postfix: 300 s and 4000 s). */
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
  /** After this long in the queue a message bounces (Postfix maximal_queue_lifetime: 5 days); 0 = one
   * attempt only, the first temporary failure bounces. */
  readonly lifetimeMs: number;
  /** A delay warning (DSN Action: delayed) after this long; 0 = never. Otherwise below lifetimeMs. */
  readonly delayWarningMs: number;
  /** Where double bounces go: an address in a local domain (domain lower-cased); null =
   * postmaster@<first local domain>. */
  readonly postmaster: string | null;
  /**
   * Mail for local mailboxes: "accept" stores it in the SMTP session before the 250, in one durable
   * commit with no queue entry (recipients with forwards, NOTIFY=SUCCESS or a failed store still go
   * through the queue); "queue" puts every message on the queue for the delivery worker, as before.
   */
  readonly localDelivery: 'accept' | 'queue';
  /**
   * Multi-node (`[storage] backend = "postgres"`): how long a node holds the recipients it took from the
   * queue; a crashed node's are taken by another once this has passed. Default 60 s.
   */
  readonly leaseMs: number;
}

/**
 * Where the state lives (issue 19, docs/scaling.md): the embedded SQLite files under data_dir (default),
 * or one PostgreSQL database shared by several Tern nodes. Restart only.
 */
export interface StorageConfig {
  readonly backend: 'sqlite' | 'postgres';
  /** postgres://user:password@host:port/database (required with backend "postgres"). */
  readonly url: string | null;
}

export const DEFAULT_STORAGE: StorageConfig = { backend: 'sqlite', url: null };

/** `[redis] url`: what nodes share fast (limits, lockouts, connection counts); null: each node alone. */
export interface RedisConfig {
  readonly url: string | null;
  /** Prefix of every key Tern writes ("tern:"): one Redis can serve several clusters. */
  readonly keyPrefix: string;
}

/** Inbound mail authentication (SPF, DKIM, DMARC, ARC) on the smtp listener, for unauthenticated clients. */
export interface ChecksConfig {
  readonly enabled: boolean;
  /** The authserv-id of our Authentication-Results: headers (RFC 8601); default the hostname. */
  readonly authservId: string | null;
  /** DMARC p=reject: refuse at end of data (550 5.7.1), deliver to the Junk mailbox, or only record it. */
  readonly dmarcReject: 'reject' | 'junk' | 'none';
  readonly dmarcQuarantine: 'reject' | 'junk' | 'none';
  /** A DNS failure during the checks: answer 451 4.7.x (tempfail) or carry on with the temperror result. */
  readonly dnsFailure: 'tempfail' | 'neutral';
  /** Per stage: SPF (at MAIL), DKIM + ARC + DMARC (at end of data). */
  readonly spfTimeoutMs: number;
  readonly dataTimeoutMs: number;
  /** Clients (CIDR) the checks skip: by default this host itself, as pypolicyd-spf's Skip_Addresses. */
  readonly skipNetworks: readonly string[];
}

export interface ServerConfig {
  /**
   * Threads that run sessions (SMTP, POP3, IMAP) beside the main thread, which accepts connections, keeps
   * the limits that must be exact, delivers and logs. "auto": one per core but one (the main thread's
   * own); 0: sessions on the main thread (one core). docs/workers.md says why. Restart only.
   */
  readonly workers: number | 'auto';
}

export const DEFAULT_SERVER: ServerConfig = { workers: 'auto' };

export interface TraceConfig {
  /** How long the trace of a message is kept (`retention_days`); 0 keeps none. */
  readonly retentionMs: number;
}

export const DEFAULT_TRACE: TraceConfig = { retentionMs: 30 * 86_400_000 };

export interface Config {
  readonly hostname: string;
  readonly dataDir: string;
  readonly localDomains: readonly string[];
  /**
   * Subaddressing (RFC 5233): `user+tag@domain` is delivered to `user@domain` when no alias or user has
   * the whole address. Characters that may start a tag (Postfix's recipient_delimiter); "" turns it off.
   */
  readonly recipientDelimiter: string;
  /**
   * Catcher mode (`catch = true`, `tern serve --catch`; docs/catch.md): every message on every listener is
   * accepted, whoever sends it and whatever the recipient, and kept in a mailbox per original recipient;
   * nothing leaves unless released. For developers, never for a real MX.
   */
  readonly catch: boolean;
  readonly listeners: readonly ListenerConfig[];
  readonly tls: TlsConfig;
  readonly limits: LimitsConfig;
  readonly smtp: SmtpConfig;
  readonly pop3: Pop3Config;
  readonly imap: ImapConfig;
  readonly log: LogConfig;
  readonly auth: AuthConfig;
  readonly submission: SubmissionConfig;
  readonly dns: DnsConfig;
  readonly outbound: OutboundConfig;
  readonly queue: QueueConfig;
  readonly checks: ChecksConfig;
  readonly server: ServerConfig;
  readonly trace: TraceConfig;
  readonly admin: AdminConfig;
  readonly mtaStsPublish: MtaStsPublishConfig;
  readonly filters: FiltersConfig;
  /** Sieve at delivery and ManageSieve (issue 18). */
  readonly sieve: SieveConfig;
  readonly storage: StorageConfig;
  readonly redis: RedisConfig;
  /** Where the snapshot came from: a file path, or null for embedded defaults. */
  readonly source: string | null;
}

/** `[sieve]`: users' Sieve scripts (RFC 5228), managed over ManageSieve (RFC 5804), run at delivery. */
export interface SieveConfig {
  /** Scripts one user may keep (QUOTA/MAXSCRIPTS past it); 0 = no limit. */
  readonly maxScripts: number;
  /** One script's size in octets (QUOTA/MAXSIZE past it). */
  readonly maxScriptBytes: number;
  /** redirect actions one delivery may carry out (the MAXREDIRECTS capability). */
  readonly maxRedirects: number;
  /** The shortest vacation period a script may ask for (RFC 5230 §4.1 suggests a day). */
  readonly vacationMinSeconds: number;
}

export const DEFAULT_SIEVE: SieveConfig = {
  maxScripts: 32,
  maxScriptBytes: 1024 * 1024,
  maxRedirects: 4,
  vacationMinSeconds: 86_400,
};

export const DEFAULT_LIMITS: LimitsConfig = {
  maxMessageBytes: 26_214_400,
  maxRecipients: 100,
  maxTransactionsPerConnection: 1000,
  maxConnections: 20_000,
  maxConnectionsPerIp: 100,
  maxCommandLineBytes: 512,
  maxTextLineBytes: 1000,
  longLines: 'reject',
  maxErrors: 20,
  greetingTimeoutMs: 300_000,
  commandTimeoutMs: 300_000,
  dataBlockTimeoutMs: 180_000,
  dataTotalTimeoutMs: 600_000,
  shutdownGraceMs: 10_000,
  greetingDelayMs: 0,
  minFreeBytes: 4 * 1024 * 1024,
  tlsHandshakeTimeoutMs: 30_000,
  mailboxQuotaBytes: 0,
  mailboxQuotaMessages: 0,
};

export const DEFAULT_AUTH: AuthConfig = {
  mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN', 'LOGIN', 'EXTERNAL'],
  maxFailuresPerConnection: 3,
  failureDelayMs: 1000,
  lockoutThreshold: 10,
  lockoutWindowMs: 900_000,
  lockoutMs: 900_000,
  oauth: null,
};

export const DEFAULT_SUBMISSION: SubmissionConfig = {
  senderCheck: true,
  addMissingHeaders: true,
  maxMessagesPerHour: 1000,
  maxRecipientsPerHour: 5000,
  maxHoldSeconds: 604_800,
};

export const DEFAULT_DNS: DnsConfig = {
  servers: [],
  timeoutMs: 5000,
  attempts: 2,
  maxCacheTtlMs: 3_600_000,
  dnssec: false,
};

export const DEFAULT_OUTBOUND: OutboundConfig = {
  relay: null,
  transports: new Map(),
  tls: 'may',
  tlsPolicies: new Map(),
  mtaSts: true,
  tlsCa: null,
  port: 25,
  sourceAddress: null,
  maxConnections: 100,
  maxConnectionsPerDestination: 10,
  maxMessagesPerConnection: 100,
  connectionIdleMs: 5000,
  connectTimeoutMs: 30_000,
  greetingTimeoutMs: 300_000,
  commandTimeoutMs: 300_000,
  dataInitTimeoutMs: 120_000,
  dataBlockTimeoutMs: 180_000,
  dataDoneTimeoutMs: 600_000,
};

export const DEFAULT_QUEUE: QueueConfig = {
  retryMinMs: 300_000,
  retryMaxMs: 4_000_000,
  lifetimeMs: 5 * 86_400_000,
  delayWarningMs: 4 * 3_600_000,
  postmaster: null,
  localDelivery: 'accept',
  leaseMs: 60_000,
};

export const DEFAULT_CHECKS: ChecksConfig = {
  enabled: true,
  authservId: null,
  dmarcReject: 'reject',
  dmarcQuarantine: 'junk',
  dnsFailure: 'neutral',
  spfTimeoutMs: 10_000,
  dataTimeoutMs: 20_000,
  skipNetworks: ['127.0.0.0/8', '::1/128'],
};

/** Per-service listener defaults: submission ports authenticate, the MX port does not. */
export function listenerDefaults(
  service: Service,
): Pick<ListenerConfig, 'tls' | 'auth' | 'requireAuth' | 'plaintextAuthOnLoopback' | 'clientCertificates'> {
  // Submission and POP3 ports log users in; the MX port does not, nor LMTP (RFC 2033: a trusted MTA's).
  const submission = service !== 'smtp' && service !== 'lmtp';
  return {
    // LMTP is spoken inside a host or a private network (RFC 2033 §1); TLS can be asked for.
    tls: isImplicitTlsService(service) ? 'implicit' : service === 'lmtp' ? 'none' : 'starttls',
    auth: submission,
    requireAuth: submission,
    plaintextAuthOnLoopback: false,
    clientCertificates: 'none',
  };
}

/** Embedded defaults: loopback listeners on unprivileged ports, data in ./data, local domain localhost. */
export function defaultConfig(): Config {
  return {
    hostname: 'localhost',
    dataDir: './data',
    localDomains: ['localhost'],
    recipientDelimiter: '+',
    catch: false,
    listeners: [
      { ...listenerDefaults('smtp'), service: 'smtp', host: '127.0.0.1', port: 2525 },
      { ...listenerDefaults('submission'), service: 'submission', host: '127.0.0.1', port: 2587 },
      { ...listenerDefaults('submissions'), service: 'submissions', host: '127.0.0.1', port: 2465 },
      { ...listenerDefaults('pop3'), service: 'pop3', host: '127.0.0.1', port: 2110 },
      { ...listenerDefaults('pop3s'), service: 'pop3s', host: '127.0.0.1', port: 2995 },
      { ...listenerDefaults('imap'), service: 'imap', host: '127.0.0.1', port: 2143 },
      { ...listenerDefaults('imaps'), service: 'imaps', host: '127.0.0.1', port: 2993 },
      { ...listenerDefaults('managesieve'), service: 'managesieve', host: '127.0.0.1', port: 2419 },
    ],
    tls: { cert: null, key: null, clientCa: null },
    limits: DEFAULT_LIMITS,
    smtp: { bareLineEndings: 'reject', vrfy: false, trustedNetworks: [], maxJunkCommands: 100 },
    pop3: DEFAULT_POP3,
    imap: DEFAULT_IMAP,
    log: { level: 'info', format: 'auto' },
    auth: DEFAULT_AUTH,
    submission: DEFAULT_SUBMISSION,
    dns: DEFAULT_DNS,
    outbound: DEFAULT_OUTBOUND,
    queue: DEFAULT_QUEUE,
    checks: DEFAULT_CHECKS,
    server: DEFAULT_SERVER,
    trace: DEFAULT_TRACE,
    admin: { ...DEFAULT_ADMIN, listeners: [{ host: '127.0.0.1', port: 8025, tls: 'none' }] },
    mtaStsPublish: DEFAULT_MTA_STS_PUBLISH,
    filters: DEFAULT_FILTERS,
    sieve: DEFAULT_SIEVE,
    storage: DEFAULT_STORAGE,
    redis: { url: null, keyPrefix: 'tern:' },
    source: null,
  };
}
