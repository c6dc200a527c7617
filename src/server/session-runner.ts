// What turns an accepted, counted socket into a running session: the snapshot of a reload generation
// (ConnectionDeps built from ListenerDeps), the implicit-TLS handshake, the connection shell and the
// service's driver, and the graceful stop of every session. The same code runs on the main thread
// (`[server] workers = 0`, listeners.ts calls it directly) and on each session thread (src/session-thread.ts,
// with the limits that must be exact reached through the coordinator).
// A PROXY protocol header was read by the listener: its addresses become the shell's, and the bytes
// read after it are put back into the socket, ahead of the session's input or the TLS handshake.
// Deliberately NOT here: accepting, the connection limits, refusals (listeners.ts, main thread only).

import { PostgresGreylistStore } from '../store/greylist-postgres.ts';
import { PostgresSieveScriptStore } from '../store/sieve-scripts-postgres.ts';
import { sharedPool } from '../services.ts';
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Config, ListenerConfig } from '../config/config.ts';
import type { Resolver } from '../core/dns.ts';
import type { Clock, Logger } from '../core/ports.ts';
import type { Directory } from '../directory/directory.ts';
import { Connection, normalizeIp, type ConnectionOptions, type ProxiedEndpoints } from '../net/connection.ts';
import type { DiskSpace } from '../net/disk-space.ts';
import { createClientNameLookup, type ClientNameLookup } from '../net/reverse-dns.ts';
import { createSecureContext } from '../net/tls.ts';
import type { AuthLimits, SendRates } from '../policy/auth-guard.ts';
import { parseCidr, type Network } from '../policy/networks.ts';
import type { Queue } from '../queue/queue.ts';
import type { MailboxStore } from '../store/mailbox-store.ts';
import type { MaildropLocks } from '../store/maildrop-locks.ts';
import { acceptAnyCredentials, Authenticator, type TokenCheck } from './authenticator.ts';
import type { ConnectionDeps } from './connection-deps.ts';
import { buildFilters } from '../policy/filters/build.ts';
import type { Filter } from '../policy/filters/filter.ts';
import type { GreylistStore } from '../core/greylist.ts';
import { SqliteGreylistStore } from '../store/greylist-sqlite.ts';
import { SqliteSieveScriptStore, sieveScriptsPath } from '../store/sieve-scripts-sqlite.ts';
import {
  DEFAULT_SIEVE_SCRIPT_LIMITS,
  type SieveScriptLimits,
  type SieveScriptStore,
} from '../store/sieve-scripts.ts';
import { dial } from '../net/dial.ts';
import { join, resolve as resolvePath } from 'node:path';
import type { Driver } from './driver.ts';
import { DRIVERS, type DriverRegistry } from './drivers.ts';
import type { ImapSharedState } from './imap/shared-uids.ts';

/** One generation's services and material, as the thread that runs its sessions holds them. */
export interface GenerationDeps {
  readonly config: Config;
  readonly queue: Queue;
  readonly directory: Directory;
  /** The mailboxes POP3 and IMAP sessions read, and POP3's exclusive-access locks. */
  readonly store: MailboxStore;
  readonly maildropLocks: MaildropLocks;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly tls: { readonly cert: string; readonly key: string; readonly clientCa?: string | null } | null;
  /** Bearer-token verification for OAUTHBEARER/XOAUTH2; null when [auth.oauth] is not configured. */
  readonly tokens?: TokenCheck | null;
  /** The `[[filters.plugin]]` filters, made by their modules (filter-plugins.ts). */
  readonly plugins?: ReadonlyMap<string, Filter>;
}

/** One snapshot's worth of what a new session is given. */
export interface Generation {
  readonly config: Config;
  readonly connDeps: ConnectionDeps;
  readonly secureContext: SecureContext | null;
}

/** A PROXY protocol header read by the listener (listeners.ts): whom it named, and what came after it. */
export interface ProxiedSession {
  /** null: a LOCAL/UNKNOWN header (a health check): the socket's own addresses stand. */
  readonly endpoints: ProxiedEndpoints | null;
  /** Bytes read after the header: the session's first input, or the start of its TLS handshake. */
  readonly rest: Uint8Array;
}

/** What the sessions of a thread share across generations. */
export interface RunnerShared {
  /** The current AUTH limits (a reload with other lockout options replaces them). */
  readonly authGuard: () => AuthLimits;
  readonly rateLimiter: SendRates;
  readonly imap: ImapSharedState;
  readonly diskSpace: DiskSpace;
  /** DNS for the inbound checks and clients' names; null turns both off. */
  readonly resolver: Resolver | null;
  readonly drivers?: DriverRegistry;
}

/** Every certificate of a PEM bundle. */
function parsePemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

function networks(cidrs: readonly string[]): Network[] {
  return cidrs.map((c) => parseCidr(c)).filter((n): n is Network => n !== null);
}

export class SessionRunner {
  readonly #shared: RunnerShared;
  readonly #drivers: DriverRegistry;
  readonly #sessions = new Set<{ readonly shell: Connection; readonly driver: Driver }>();
  /** One lookup (and cache) for every generation: [dns] takes effect only at a restart. */
  #clientNames: ClientNameLookup | null | undefined;
  /** Implicit-TLS sockets still in their handshake: stop() must end them too. */
  readonly #handshakes = new Set<Socket>();
  /** data/greylist.sqlite, opened when a generation first greylists; one per thread, kept across reloads. */
  #greylist: { readonly path: string; readonly store: GreylistStore } | null = null;
  /** data/sieve.sqlite, opened when a ManageSieve session first needs it; its limits follow reloads. */
  #sieve: { readonly path: string; readonly store: Promise<SieveScriptStore> } | null = null;
  #sieveLimits: SieveScriptLimits = DEFAULT_SIEVE_SCRIPT_LIMITS;
  #stopping = false;

  constructor(shared: RunnerShared) {
    this.#shared = shared;
    this.#drivers = shared.drivers ?? DRIVERS;
  }

  /** Sessions running now. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Sessions plus implicit-TLS handshakes in progress. */
  get open(): number {
    return this.#sessions.size + this.#handshakes.size;
  }

  /** Build a generation's snapshot; throws on bad TLS material (nothing changed then). */
  generation(d: GenerationDeps, authGuard: AuthLimits = this.#shared.authGuard()): Generation {
    const { config } = d;
    const clientCa = d.tls?.clientCa ?? null;
    const secureContext = d.tls
      ? createSecureContext(d.tls, clientCa === null ? {} : { ca: clientCa })
      : null;
    for (const listener of config.listeners) {
      if (listener.tls === 'implicit' && secureContext === null) {
        throw new Error(`listener ${listener.service} needs TLS but no certificate is loaded`);
      }
    }
    const resolver = this.#shared.resolver;
    this.#clientNames ??=
      resolver === null
        ? null
        : createClientNameLookup(resolver, { clock: d.clock, maxCacheTtlMs: config.dns.maxCacheTtlMs });
    const connDeps: ConnectionDeps = {
      config,
      queue: d.queue,
      directory: d.directory,
      store: d.store,
      maildropLocks: d.maildropLocks,
      logger: d.logger,
      clock: d.clock,
      secureContext,
      trustedNetworks: networks(config.smtp.trustedNetworks),
      xclientNetworks: networks(config.smtp.xclientFrom ?? []),
      // Catcher mode takes any credentials: an application under test logs in with whatever it has.
      authenticator: config.catch ? acceptAnyCredentials : new Authenticator(d.directory, d.tokens ?? null),
      authGuard,
      rateLimiter: this.#shared.rateLimiter,
      imap: this.#shared.imap,
      resolver,
      clientNames: this.#clientNames,
      diskSpace: this.#shared.diskSpace,
      clientCas: clientCa === null ? [] : parsePemCertificates(clientCa),
      skipCheckNetworks: networks(config.checks.skipNetworks),
      filters: buildFilters(config, {
        resolver,
        clock: d.clock,
        dial,
        greylistStore: () => this.#greylistStore(config),
        plugins: d.plugins ?? new Map(),
      }),
      sieveScripts: () => {
        this.#sieveLimits = {
          maxScripts: config.sieve.maxScripts,
          maxScriptBytes: config.sieve.maxScriptBytes,
        };
        return this.#sieveStore(config);
      },
    };
    return { config, connDeps, secureContext };
  }

  /** data/sieve.sqlite, or the shared PostgreSQL's scripts ([storage] backend = "postgres"). */
  #sieveStore(config: Config): Promise<SieveScriptStore> {
    const limits = (): SieveScriptLimits => this.#sieveLimits;
    const where =
      config.storage.backend === 'postgres' ? `postgres:${config.storage.url}` : sieveScriptsPath(config);
    if (this.#sieve?.path !== where) {
      this.#sieve = {
        path: where,
        store:
          config.storage.backend === 'postgres'
            ? PostgresSieveScriptStore.open({ pool: sharedPool(config), limits })
            : Promise.resolve(SqliteSieveScriptStore.open(where, { limits })),
      };
    }
    return this.#sieve.store;
  }

  /** data/greylist.sqlite, or the shared PostgreSQL's triplets ([storage] backend = "postgres"). */
  #greylistStore(config: Config): GreylistStore {
    const postgres = config.storage.backend === 'postgres';
    const path = postgres
      ? `postgres:${config.storage.url}`
      : join(resolvePath(config.dataDir), 'greylist.sqlite');
    if (this.#greylist?.path !== path) {
      this.#greylist = {
        path,
        store: postgres
          ? lazyGreylist(PostgresGreylistStore.open({ pool: sharedPool(config) }))
          : SqliteGreylistStore.open(path),
      };
    }
    return this.#greylist.store;
  }

  /**
   * Run a session on an accepted socket that nothing has read yet. `ended` is called once, when the
   * session is over or its implicit-TLS handshake failed.
   */
  run(
    gen: Generation,
    listener: ListenerConfig,
    socket: Socket,
    id: string,
    ended: () => void,
    proxied: ProxiedSession | null = null,
  ): void {
    const factory = this.#drivers[listener.service];
    const { config } = gen;
    if (listener.proxyFrom !== undefined && proxied === null) {
      // SECURITY: without the header's addresses this session would run as the balancer's address
      // (perhaps a trusted network): a caller that lost them gets no session at all.
      gen.connDeps.logger.error(factory.events.refused, {
        ip: normalizeIp(socket.remoteAddress ?? '0.0.0.0'),
        reason: 'proxy_from listener without its PROXY header',
      });
      socket.destroy();
      ended();
      return;
    }
    // Back where the session (or the TLS handshake, which reads what the socket holds) reads first.
    if (proxied !== null && proxied.rest.length > 0) socket.unshift(Buffer.from(proxied.rest));
    socket.setNoDelay(true);
    const options: ConnectionOptions = {
      maxBufferedBytes: factory.maxBufferedBytes,
      tls: {
        secureContext: gen.secureContext,
        clientCertificates: listener.clientCertificates,
        timeoutMs: config.limits.tlsHandshakeTimeoutMs,
      },
      ...(proxied?.endpoints ? { proxied: proxied.endpoints } : {}),
    };
    if (listener.tls !== 'implicit') {
      this.#start(gen, listener, new Connection(socket, options), id, ended);
      return;
    }
    // RFC 8314 implicit TLS: the handshake is part of the connection, counted and bounded in time.
    this.#handshakes.add(socket);
    const ip = proxied?.endpoints?.source.ip ?? normalizeIp(socket.remoteAddress ?? '0.0.0.0');
    void Connection.acceptTls(socket, options).then((shell) => {
      this.#handshakes.delete(socket);
      if (shell instanceof Connection) {
        if (!this.#stopping) return this.#start(gen, listener, shell, id, ended);
        // Stopped during the handshake: no session starts on services that are closing.
        shell.destroy();
        ended();
        return;
      }
      ended();
      gen.connDeps.logger.warn(factory.events.tlsFailed, { ip, error: shell.error });
    });
  }

  #start(gen: Generation, listener: ListenerConfig, shell: Connection, id: string, ended: () => void): void {
    const driver = this.#drivers[listener.service].create(shell, { id, listener, deps: gen.connDeps });
    const session = { shell, driver };
    this.#sessions.add(session);
    void shell.done.then(() => {
      this.#sessions.delete(session);
      ended();
    });
    driver.start();
  }

  /** Ask every session to end (the protocol's words), wait up to graceMs, then cut what is left. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    for (const socket of this.#handshakes) socket.destroy();
    for (const s of this.#sessions) s.driver.shutdown();
    const all = Promise.all([...this.#sessions].map((s) => s.shell.done));
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>(
      (resolve) => (timer = setTimeout(() => resolve('expired'), graceMs)),
    );
    const outcome = await Promise.race([all.then(() => 'done' as const), expired]);
    clearTimeout(timer);
    if (outcome === 'expired') for (const s of this.#sessions) s.shell.destroy();
    // No session greylists any more: its pending writes are committed by close().
    await this.#greylist?.store.close().catch(() => undefined);
    this.#greylist = null;
    await this.#sieve?.store.then((s) => s.close()).catch(() => undefined);
    this.#sieve = null;
  }
}

/** A greylist store that is still opening (PostgreSQL migrates first): each call waits for it. */
function lazyGreylist(opening: Promise<GreylistStore>): GreylistStore {
  // A failed open fails each call (the filter's on_failure decides), never the process.
  opening.catch(() => undefined);
  return {
    update: async (triplet, next) => (await opening).update(triplet, next),
    passedCount: async (network, nowMs, atMost) => (await opening).passedCount(network, nowMs, atMost),
    expire: async (nowMs) => (await opening).expire(nowMs),
    close: async () => (await opening.catch(() => null))?.close(),
  };
}
