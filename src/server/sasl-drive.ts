// The one SASL drive, for every protocol's AUTH: which mechanisms a listener offers (configuration, TLS,
// loopback), the exchange loop around protocol/sasl's pure mechanisms, credential checks through the
// Authenticator, TLS client certificates for EXTERNAL (verified against tls.client_ca or mapped by
// fingerprint), channel binding for SCRAM-SHA-256-PLUS, and the brute-force defences: lockouts per
// address and per account (policy/auth-guard.ts, shared by every listener and protocol), a growing delay
// before each failure answer, and a cap on failures per connection. What goes on the wire is the
// protocol's framing (protocol/sasl/framing.ts): SMTP 334/235/535, POP3 +/+OK/-ERR, IMAP +/OK/NO/BAD.
// Deliberately NOT here: reading lines, the protocol's rules on when AUTH may be used (the sessions),
// what a driver does with the identity (SMTP loads the user's sending policy).
//
// SECURITY: every failure reason costs the same delay, and the lockout answer for a locked account comes
// only after its credentials were checked like any other, so neither timing nor replies tell an attacker
// whether an account exists or which part of the attempt was wrong.

import { randomBytes, type X509Certificate } from 'node:crypto';
import type { Config, ListenerConfig } from '../config/config.ts';
import { Events } from '../core/events.ts';
import type { Clock, Logger } from '../core/ports.ts';
import type { AuthLimits } from '../policy/auth-guard.ts';
import { isLoopback, type Connection } from '../net/connection.ts';
import { encodeBase64 } from '../protocol/sasl/codec.ts';
import { createAuthExchange, type AuthAction, type AuthExchange } from '../protocol/sasl/exchange.ts';
import type { SaslFailure, SaslFraming } from '../protocol/sasl/framing.ts';
import { createMechanism, isMechanismName, offeredMechanisms } from '../protocol/sasl/index.ts';
import type { MechanismName } from '../protocol/sasl/mechanism.ts';
import type { Authenticator, PeerCertificate } from './authenticator.ts';

/** Longest delay before answering a failed AUTH, however many failures came before. */
const MAX_AUTH_DELAY_MS = 8000;

export interface SaslDriveDeps {
  readonly config: Pick<Config, 'hostname' | 'auth'>;
  readonly authenticator: Pick<Authenticator, 'verify'>;
  readonly authGuard: AuthLimits;
  readonly clock: Clock;
  /** The certificates of tls.client_ca, to verify client certificates against. */
  readonly clientCas: readonly X509Certificate[];
}

/** Log event names for the protocol's own lines; failures and lockouts are the shared security.* events. */
export interface SaslEvents {
  readonly verify: string;
  readonly succeeded: string;
}

export const SMTP_SASL_EVENTS: SaslEvents = {
  verify: Events.smtpAuthVerify,
  succeeded: Events.smtpAuthSucceeded,
};

export type SaslStep<Out> =
  /** Write `out`; the client's next line goes to line(). */
  | { readonly kind: 'challenge'; readonly out: Out }
  | {
      readonly kind: 'success';
      readonly identity: string;
      readonly mechanism: MechanismName;
      readonly out: Out;
    }
  /** Write `out`; with `close`, this was the connection's last allowed failure: close after it. */
  | { readonly kind: 'failure'; readonly reason: SaslFailure; readonly close: boolean; readonly out: Out };

/** The mechanisms a listener offers at all: none without `auth`, EXTERNAL only where certificates are asked. */
export function listenerMechanisms(listener: ListenerConfig, config: Pick<Config, 'auth'>): string[] {
  if (!listener.auth) return [];
  return config.auth.mechanisms.filter((m) => m !== 'EXTERNAL' || listener.clientCertificates !== 'none');
}

/** AUTH before TLS: only on loopback, and only where the listener allows it (for local tools). */
export function plaintextAuthAllowed(listener: ListenerConfig, remoteIp: string): boolean {
  return listener.plaintextAuthOnLoopback && isLoopback(remoteIp);
}

/** Issued (and signed) by one of the CAs, and valid now. One level: client CAs issue directly. */
export function issuedByClientCa(
  cert: X509Certificate,
  cas: readonly X509Certificate[],
  nowMs: number,
): boolean {
  if (nowMs < Date.parse(cert.validFrom) || nowMs > Date.parse(cert.validTo)) return false;
  return cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
}

export interface SaslDriveOptions<Out> {
  readonly deps: SaslDriveDeps;
  readonly shell: Pick<Connection, 'remoteIp' | 'tls' | 'closed' | 'channelBinding' | 'clientCertificate'>;
  /** The session's logger (it carries the session id). */
  readonly log: Logger;
  readonly framing: SaslFraming<Out>;
  /** What the listener offers at all (listenerMechanisms) and whether it may before TLS. */
  readonly mechanisms: readonly string[];
  readonly plaintextAllowed: boolean;
  readonly events: SaslEvents;
}

/** One per connection: it counts the connection's failures across AUTH commands. */
export class SaslDrive<Out> {
  private readonly o: SaslDriveOptions<Out>;
  private exchange: AuthExchange | null = null;
  /** The account named by the current attempt, for per-account failure counting. */
  private account: string | null = null;
  private failureCount = 0;

  constructor(options: SaslDriveOptions<Out>) {
    this.o = options;
  }

  /** The mechanisms to advertise now (EHLO AUTH, CAPA SASL, CAPABILITY AUTH=). */
  offered(): string[] {
    return offeredMechanisms(this.o.mechanisms, {
      tls: this.o.shell.tls !== null,
      plaintextAllowed: this.o.plaintextAllowed,
    });
  }

  get failures(): number {
    return this.failureCount;
  }

  /** True while an exchange waits for the client's next line. */
  get active(): boolean {
    return this.exchange !== null;
  }

  /**
   * AUTH <mechanism> [initial-response]. Null when the connection closed while the answer was delayed
   * (nothing is left to write).
   */
  async start(mechanism: string, initialResponse: string | null): Promise<SaslStep<Out> | null> {
    const { deps, shell, log } = this.o;
    this.exchange = null;
    const lock = await deps.authGuard.check(shell.remoteIp, null);
    if (lock.locked) {
      log.warn(Events.smtpAuthLocked, { ip: shell.remoteIp, by: lock.by });
      return this.refuse('locked-out');
    }
    if (!isMechanismName(mechanism)) return this.refuse('unknown-mechanism');
    const offered = this.offered();
    if (!offered.includes(mechanism)) {
      const needsTls = shell.tls === null && this.o.mechanisms.includes(mechanism);
      return this.refuse(needsTls ? 'needs-tls' : 'unknown-mechanism');
    }
    // A SCRAM client answering "y" is refused as a downgrade only if -PLUS really is on offer (scram.ts).
    const channelBinding =
      mechanism.endsWith('-PLUS') || offered.some((m) => m.endsWith('-PLUS'))
        ? shell.channelBinding()
        : undefined;
    const m = createMechanism(mechanism, {
      hostname: deps.config.hostname,
      ...(channelBinding ? { channelBinding } : {}),
      random: (n) => randomBytes(n),
      nowMs: deps.clock.nowMs(),
    });
    this.exchange = createAuthExchange(m);
    this.account = null;
    return this.step(this.exchange.begin(initialResponse));
  }

  /**
   * A password login outside SASL (POP3 USER/PASS, IMAP LOGIN): the same credential check, delays,
   * failure cap and lockouts as AUTH PLAIN without an authorization identity, whether or not PLAIN is
   * among the offered mechanisms. The caller has already checked TLS (or the loopback option).
   */
  async password(user: string, password: string): Promise<SaslStep<Out> | null> {
    const { deps, shell, log } = this.o;
    this.exchange = null;
    const lock = await deps.authGuard.check(shell.remoteIp, null);
    if (lock.locked) {
      log.warn(Events.smtpAuthLocked, { ip: shell.remoteIp, by: lock.by });
      return this.refuse('locked-out');
    }
    const plain = createMechanism('PLAIN', {
      hostname: deps.config.hostname,
      random: (n) => randomBytes(n),
      nowMs: deps.clock.nowMs(),
    });
    this.exchange = createAuthExchange(plain);
    this.account = null;
    const response = encodeBase64(new TextEncoder().encode(`\0${user}\0${password}`));
    return this.step(this.exchange.begin(response));
  }

  /** One client line answering the last challenge ("*" cancels). */
  async line(line: string): Promise<SaslStep<Out> | null> {
    const exchange = this.exchange;
    if (exchange === null) return this.refuse('bad-sequence');
    return this.step(exchange.line(line));
  }

  private refuse(reason: SaslFailure): SaslStep<Out> {
    return { kind: 'failure', reason, close: false, out: this.o.framing.failure(reason) };
  }

  private async step(first: AuthAction): Promise<SaslStep<Out> | null> {
    const { deps, shell, log, framing, events } = this.o;
    let action = first;
    for (;;) {
      const exchange = this.exchange;
      if (exchange === null) return this.refuse('bad-sequence');
      switch (action.kind) {
        case 'challenge':
          return { kind: 'challenge', out: framing.challenge(action.data) };
        case 'verify': {
          const result = await deps.authenticator.verify(action.request, { peer: this.peerCertificate() });
          this.account = result.account;
          let answer = result.answer;
          if (
            result.account !== null &&
            (await deps.authGuard.check(shell.remoteIp, result.account)).locked
          ) {
            // A locked account fails whatever the credentials, so guessing cannot continue.
            log.warn(Events.smtpAuthLocked, { ip: shell.remoteIp, account: result.account, by: 'account' });
            answer = { kind: 'temporary' };
          }
          log.event(events.verify, {
            kind: action.request.kind,
            account: result.account,
            detail: result.detail,
          });
          action = exchange.answer(answer);
          continue;
        }
        case 'done': {
          this.exchange = null;
          const { outcome } = action;
          if (outcome.ok) {
            await deps.authGuard.recordSuccess(shell.remoteIp);
            log.event(events.succeeded, { user: outcome.identity, mechanism: outcome.mechanism });
            return {
              kind: 'success',
              identity: outcome.identity,
              mechanism: outcome.mechanism,
              out: framing.success(),
            };
          }
          return this.failed(outcome.mechanism, outcome.reason, outcome.detail);
        }
        default:
          return action satisfies never;
      }
    }
  }

  private async failed(
    mechanism: string,
    reason: SaslFailure,
    detail: string,
  ): Promise<SaslStep<Out> | null> {
    const { deps, shell, log } = this.o;
    this.failureCount++;
    const lock = await deps.authGuard.recordFailure(shell.remoteIp, this.account);
    log.warn(Events.smtpAuthFailed, {
      ip: shell.remoteIp,
      account: this.account,
      mechanism,
      reason,
      detail,
      failures: this.failureCount,
    });
    if (lock.locked)
      log.warn(Events.smtpAuthLocked, { ip: shell.remoteIp, account: this.account, by: lock.by });
    // A growing delay makes guessing slow; the same for every failure reason, so timing tells nothing.
    const delay = Math.min(deps.config.auth.failureDelayMs * 2 ** (this.failureCount - 1), MAX_AUTH_DELAY_MS);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    if (shell.closed) return null;
    const close = this.failureCount >= deps.config.auth.maxFailuresPerConnection;
    return { kind: 'failure', reason, close, out: this.o.framing.failure(reason) };
  }

  private peerCertificate(): PeerCertificate | null {
    const cert = this.o.shell.clientCertificate();
    if (cert === null) return null;
    const { deps } = this.o;
    return {
      x509: cert.x509,
      authorized: cert.authorized || issuedByClientCa(cert.x509, deps.clientCas, deps.clock.nowMs()),
    };
  }
}
