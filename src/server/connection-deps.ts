// What a session is given: one snapshot of configuration, TLS material and services, built per reload
// generation by the listener (listeners.ts) and kept by each session until it ends. Shared by every
// protocol driver; a driver picks what it needs (Pick<ConnectionDeps, ...>).

import type { SieveScriptStore } from '../store/sieve-scripts.ts';
import type { X509Certificate } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import type { Config } from '../config/config.ts';
import type { Resolver } from '../core/dns.ts';
import type { Clock, Logger } from '../core/ports.ts';
import type { Directory } from '../directory/directory.ts';
import type { DiskSpace } from '../net/disk-space.ts';
import type { ClientNameLookup } from '../net/reverse-dns.ts';
import type { AuthLimits, SendRates } from '../policy/auth-guard.ts';
import type { Network } from '../policy/networks.ts';
import type { FilterCatalogue } from '../policy/filters/build.ts';
import type { Queue } from '../queue/queue.ts';
import type { MailboxStore } from '../store/mailbox-store.ts';
import type { MaildropLocks } from '../store/maildrop-locks.ts';
import type { Authenticator } from './authenticator.ts';
import type { ImapSharedState } from './imap/shared-uids.ts';

export interface ConnectionDeps {
  readonly config: Config;
  readonly queue: Queue;
  readonly directory: Directory;
  readonly store: MailboxStore;
  readonly maildropLocks: MaildropLocks;
  /** Shared by every IMAP session of the thread (made once per thread, kept across reloads). */
  readonly imap: ImapSharedState;
  readonly logger: Logger;
  readonly clock: Clock;
  /** For STARTTLS and implicit TLS; null when no certificate is available. */
  readonly secureContext: SecureContext | null;
  readonly trustedNetworks: readonly Network[];
  /** Users' Sieve scripts (ManageSieve), opened on first use. */
  readonly sieveScripts?: () => Promise<SieveScriptStore>;
  /** [smtp] xclient_from: who may name another client with XCLIENT. */
  readonly xclientNetworks?: readonly Network[];
  readonly authenticator: Pick<Authenticator, 'verify'>;
  /** AUTH lockouts and hourly rates: one count for the process, whichever thread runs the session. */
  readonly authGuard: AuthLimits;
  readonly rateLimiter: SendRates;
  /** For the inbound authentication checks ([checks]); null turns them off. */
  readonly resolver: Resolver | null;
  readonly skipCheckNetworks: readonly Network[];
  /** The certificates of tls.client_ca, to verify client certificates against. */
  readonly clientCas: readonly X509Certificate[];
  /** Free space of the data directory; absent in tests that do not care. */
  readonly diskSpace?: DiskSpace;
  /** The client's reverse DNS name (FCrDNS) for Received: and the logs; absent: "unknown". */
  readonly clientNames?: ClientNameLookup | null;
  /** The generation's filters and the rules choosing a client's pipeline (policy/filters); absent: none. */
  readonly filters?: FilterCatalogue;
}
