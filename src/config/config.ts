// The configuration snapshot: one deeply readonly object, parsed once, swapped whole on reload.
// Keys and defaults are documented in docs/configuration.md; tern.example.toml shows them all.
// This file holds the types and defaults only; load.ts turns TOML into this (or every error at once).

export type Service = 'smtp' | 'submission' | 'submissions';
export const SERVICES: readonly Service[] = ['smtp', 'submission', 'submissions'];

/** How a listener uses TLS: STARTTLS offered, implicit TLS from the first byte (RFC 8314), or none. */
export type TlsMode = 'starttls' | 'implicit' | 'none';

export interface ListenerConfig {
  readonly service: Service;
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
}

export interface TlsConfig {
  /** PEM paths; both null means a self-signed certificate kept in data_dir/tls. */
  readonly cert: string | null;
  readonly key: string | null;
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
}

export interface SmtpConfig {
  /** Bare CR or LF in DATA or commands: reject (default, smuggling defence) or normalize to CRLF. */
  readonly bareLineEndings: 'reject' | 'normalize';
  /** VRFY answers 252 unless enabled. */
  readonly vrfy: boolean;
  /** Trusted networks (CIDR) whose clients may relay without authentication. */
  readonly trustedNetworks: readonly string[];
}

export interface LogConfig {
  readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** json always, pretty always, or auto (pretty on a TTY). */
  readonly format: 'auto' | 'json' | 'pretty';
}

export interface Config {
  readonly hostname: string;
  readonly dataDir: string;
  readonly localDomains: readonly string[];
  readonly listeners: readonly ListenerConfig[];
  readonly tls: TlsConfig;
  readonly limits: LimitsConfig;
  readonly smtp: SmtpConfig;
  readonly log: LogConfig;
  /** Where the snapshot came from: a file path, or null for embedded defaults. */
  readonly source: string | null;
}

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
};

/** Embedded defaults: loopback listeners on unprivileged ports, data in ./data, local domain localhost. */
export function defaultConfig(): Config {
  return {
    hostname: 'localhost',
    dataDir: './data',
    localDomains: ['localhost'],
    listeners: [
      { service: 'smtp', host: '127.0.0.1', port: 2525, tls: 'starttls' },
      { service: 'submission', host: '127.0.0.1', port: 2587, tls: 'starttls' },
      { service: 'submissions', host: '127.0.0.1', port: 2465, tls: 'implicit' },
    ],
    tls: { cert: null, key: null },
    limits: DEFAULT_LIMITS,
    smtp: { bareLineEndings: 'reject', vrfy: false, trustedNetworks: [] },
    log: { level: 'info', format: 'auto' },
    source: null,
  };
}
