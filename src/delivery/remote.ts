// Remote delivery of one message to the recipients of one destination domain: route (route.ts), then
// each host in order and each of its addresses until one takes the message, reusing pooled connections.
// Per RFC 5321 §4.2.5 and §5.1: a connection or protocol failure moves on to the next host; a permanent
// reply from a host that took the connection is final for the recipients it concerns; temporary replies
// defer. Outcomes carry what a DSN needs (status, remote MTA, diagnostic).
// Deliberately NOT here: the retry schedule and bounce decisions (worker.ts), DSN texts (dsn.ts).

import type { Config, OutboundTlsPolicy } from '../config/config.ts';
import type { Resolver } from '../core/dns.ts';
import type { Envelope } from '../core/envelope.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import { ConnectionPool } from './connection-pool.ts';
import type { MtaSts } from './mta-sts.ts';
import { mxMatches } from './mta-sts.ts';
import { resolveRoute } from './route.ts';
import { planTls, requireTlsHosts, type HostPlan, type TlsPlan } from './tls-plan.ts';
import type { TlsResultStore } from './policy-cache.ts';
import { classifyTlsFailure, stsPolicyStrings, type TlsPolicyType, type TlsResultType } from './tls-rpt.ts';
import {
  connectSmtp,
  formatRemoteReply,
  timeoutsFromConfig,
  type ConnectOptions,
  type ConnectResult,
  type Failure,
  type RecipientResult,
} from './smtp-client.ts';

export interface RemoteOutcome {
  readonly address: string;
  readonly verdict: 'delivered' | 'temporary' | 'permanent';
  /** Enhanced status (RFC 3463). */
  readonly status: string;
  /** "550 5.1.1 text" as the remote (or we) said it. */
  readonly reply: string;
  /** The host that answered, for the DSN's Remote-MTA; null when none did. */
  readonly remoteMta: string | null;
  /** Handed to a smart host, or to a server without DSN: the DSN action is "relayed" (RFC 3464 §2.3.3). */
  readonly relayed: boolean;
  /**
   * The next hop supports DSN and got NOTIFY/ORCPT: success notices are its business now, not ours
   * (RFC 3461 §6.2.3).
   */
  readonly dsnPassedOn: boolean;
}

export interface RemoteMessage {
  readonly id: string;
  readonly envelope: Envelope;
  readonly sizeBytes: number;
  readonly body: () => AsyncIterable<Uint8Array>;
}

export interface RemoteDeliveryDeps {
  readonly config: Config;
  readonly resolver: Resolver;
  readonly logger: Logger;
  /** PEM of outbound.tls_ca, read at start. */
  readonly tlsCa: string | null;
  /** For tests: the connect function (default connectSmtp). */
  readonly connect?: (opts: ConnectOptions) => Promise<ConnectResult>;
  /** MTA-STS policies (null: `[outbound] mta_sts = false`). */
  readonly mtaSts?: MtaSts | null;
  /** Where each session's TLS result goes for the daily TLS-RPT reports (RFC 8460); null: nowhere. */
  readonly tlsResults?: TlsResultStore | null;
}

/** Postfix's smtp_mx_address_limit: addresses tried per delivery attempt, over all hosts. */
const MAX_ADDRESSES_PER_ATTEMPT = 5;

export class RemoteDelivery {
  private readonly deps: RemoteDeliveryDeps;
  private readonly pool: ConnectionPool;

  constructor(deps: RemoteDeliveryDeps) {
    this.deps = deps;
    const o = deps.config.outbound;
    this.pool = new ConnectionPool({
      maxConnections: o.maxConnections,
      maxConnectionsPerDestination: o.maxConnectionsPerDestination,
      maxMessagesPerConnection: o.maxMessagesPerConnection,
      idleMs: o.connectionIdleMs,
      connect: deps.connect ?? connectSmtp,
    });
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /** One session's TLS outcome for TLS-RPT (RFC 8460 §4.3); never fails a delivery. */
  #recordTls(domain: string, plan: TlsPlan, host: HostPlan, ip: string, result: TlsResultType): void {
    const store = this.deps.tlsResults;
    if (store === undefined || store === null) return;
    const type = policyTypeOf(host);
    const strings =
      type === 'sts' && plan.sts !== null
        ? stsPolicyStrings(plan.sts)
        : type === 'tlsa'
          ? (host.dane?.records ?? []).map(
              (r) => `${r.usage} ${r.selector} ${r.matchingType} ${Buffer.from(r.data).toString('hex')}`,
            )
          : [];
    try {
      store.record({
        day: new Date().toISOString().slice(0, 10),
        policyDomain: domain,
        policyType: type,
        policyStrings: strings,
        mxHost: host.target.host,
        receivingIp: ip,
        result,
      });
    } catch {
      // A report is worth less than a delivery: a full disk here must not fail one.
    }
  }

  /** Deliver `message` to `recipients`, all in `domain`. One outcome per recipient, in order. */
  async deliver(
    message: RemoteMessage,
    domain: string,
    recipients: readonly string[],
  ): Promise<RemoteOutcome[]> {
    const { config, resolver } = this.deps;
    const log = this.deps.logger.child({ queueId: message.id, domain });
    const route = await resolveRoute(domain, resolver, {
      outbound: config.outbound,
      hostname: config.hostname,
    });
    if (route.kind === 'error') {
      log.warn(Events.deliveryRouteFailed, { reason: route.text, temporary: route.temporary });
      const reply = `${route.code} ${route.enhanced} ${route.text}`;
      return recipients.map((address) => ({
        address,
        verdict: route.temporary ? 'temporary' : 'permanent',
        status: route.enhanced,
        reply,
        remoteMta: null,
        relayed: false,
        dsnPassedOn: false,
      }));
    }

    const { envelope } = message;
    // TLS-Required: No (RFC 8689 §5): the recipient's published policies do not stop this message.
    const optional = envelope.tlsOptional === true && envelope.requireTls !== true;
    const planned = await planTls(domain, route, {
      resolver,
      mtaSts: optional ? null : (this.deps.mtaSts ?? null),
      dane: !optional,
    });
    let plan = planned;
    if (envelope.requireTls === true) {
      const hosts = requireTlsHosts(planned, route.viaRelay);
      if (hosts.length === 0) {
        // RFC 8689 §5: no next hop can keep the requirement: a bounce now, not after the queue lifetime.
        const reason = `REQUIRETLS: no mail exchanger of ${domain} is authenticated by MTA-STS or DANE`;
        log.warn(Events.tlsPolicyRefused, { mechanism: 'requiretls', reason });
        return recipients.map((address) => ({
          address,
          verdict: 'permanent' as const,
          status: '5.7.10',
          reply: `550 5.7.10 ${reason}`,
          remoteMta: null,
          relayed: false,
          dsnPassedOn: false,
        }));
      }
      plan = { ...planned, hosts };
    }
    const final = new Map<string, RemoteOutcome>();
    let pending = [...recipients];
    let lastFailure: { failure: Failure; host: string | null } | null = null;
    let tried = 0;
    outer: for (const host of plan.hosts) {
      const target = host.target;
      if (host.refused !== null) {
        // SECURITY: a host the policy refuses is never connected to (RFC 8461 §5.2, RFC 7672 §2.2).
        log.warn(Events.tlsPolicyRefused, {
          host: target.host,
          mechanism: host.mechanism,
          reason: host.refused,
        });
        lastFailure = {
          failure: { stage: 'tls', temporary: true, status: '4.7.5', reason: host.refused, reply: null },
          host: null,
        };
        continue;
      }
      for (const address of target.addresses) {
        if (pending.length === 0 || tried >= MAX_ADDRESSES_PER_ATTEMPT) break outer;
        tried++;
        const attempt = await this.tryHost(message, pending, {
          host: target.host,
          address,
          port: target.port,
          tls: host.tls,
          dane: host.dane,
          mechanism: host.mechanism,
          auth: route.auth,
          relayed: route.viaRelay,
          lmtp: route.lmtp === true,
          path: target.path,
          log,
        });
        if (!route.viaRelay) {
          if (attempt.kind === 'sent')
            this.#recordTls(domain, plan, host, address, attempt.tls ? 'success' : 'starttls-not-supported');
          else if (attempt.failure.stage === 'tls' || attempt.failure.stage === 'starttls') {
            this.#recordTls(
              domain,
              plan,
              host,
              address,
              classifyTlsFailure(attempt.failure.reason, policyTypeOf(host)),
            );
          }
        }
        if (attempt.kind === 'sent' && host.mechanism === 'mta-sts-testing' && plan.sts !== null) {
          // What enforce would have refused, delivered anyway (RFC 8461 §5: testing mode reports).
          const why = !mxMatches(target.host, plan.sts.mx)
            ? `MX host ${target.host} is not named by the policy`
            : !attempt.verified
              ? `the TLS certificate of ${target.host} did not verify`
              : null;
          if (why !== null)
            log.warn(Events.mtaStsTestingFailure, { host: target.host, id: plan.sts.id, reason: why });
        }
        if (attempt.kind === 'failed') {
          lastFailure = { failure: attempt.failure, host: attempt.answered ? target.host : null };
          // A permanent refusal of the whole transaction by a host that answered is final (e.g. 554 at MAIL).
          if (!attempt.failure.temporary && attempt.answered && attempt.failure.stage !== 'greeting') {
            for (const r of attempt.recipients) final.set(r.address, outcomeOf(r, target.host, false, false));
            pending = pending.filter((a) => !final.has(a));
          }
          continue;
        }
        for (const r of attempt.recipients) {
          final.set(r.address, outcomeOf(r, target.host, attempt.relayed, attempt.dsnPassedOn));
        }
        pending = [];
      }
    }
    for (const address of pending) {
      const f = lastFailure?.failure;
      final.set(address, {
        address,
        verdict: 'temporary',
        status: f ? (f.temporary ? f.status : '4.4.1') : '4.4.1',
        reply: f
          ? f.reply
            ? formatRemoteReply(f.reply)
            : `451 ${f.temporary ? f.status : '4.4.1'} ${f.reason}`
          : '451 4.4.1 No mail exchanger answered',
        remoteMta: lastFailure?.host ?? null,
        relayed: false,
        dsnPassedOn: false,
      });
    }
    return recipients.map((a) => final.get(a)!);
  }

  private async tryHost(
    message: RemoteMessage,
    recipients: readonly string[],
    where: {
      host: string;
      address: string;
      port: number;
      tls: OutboundTlsPolicy;
      dane: HostPlan['dane'];
      mechanism: HostPlan['mechanism'];
      auth: { username: string; password: string } | null;
      relayed: boolean;
      lmtp: boolean;
      path: string | undefined;
      log: Logger;
    },
  ): Promise<
    | {
        kind: 'sent';
        recipients: readonly RecipientResult[];
        relayed: boolean;
        dsnPassedOn: boolean;
        verified: boolean;
        tls: boolean;
      }
    | { kind: 'failed'; failure: Failure; recipients: readonly RecipientResult[]; answered: boolean }
  > {
    const { config } = this.deps;
    const base: ConnectOptions = {
      host: where.host,
      address: where.address,
      port: where.port,
      helo: config.hostname,
      tls: where.tls,
      dane: where.dane,
      ca: this.deps.tlsCa,
      sourceAddress: config.outbound.sourceAddress,
      timeouts: timeoutsFromConfig(config.outbound),
      auth: where.auth,
      log: where.log,
      ...(where.lmtp ? { lmtp: true } : {}),
      ...(where.path === undefined ? {} : { path: where.path }),
    };
    let leased = await this.pool.lease(base);
    if (leased.kind === 'failed' && leased.failure.retryWithoutTls) {
      // Opportunistic TLS that fails to negotiate falls back to plaintext, as Postfix does for "may".
      where.log.warn(Events.deliveryTlsFallback, { host: where.host, reason: leased.failure.reason });
      leased = await this.pool.lease({ ...base, tls: 'none' });
    }
    if (leased.kind === 'failed') {
      return {
        kind: 'failed',
        failure: leased.failure,
        recipients: [],
        answered: leased.failure.banner !== null,
      };
    }
    const { lease } = leased;
    const result = await lease.session.send({
      envelope: message.envelope,
      recipients,
      sizeBytes: message.sizeBytes,
      body: message.body,
    });
    await lease.done(result.kind === 'sent');
    // LMTP is final delivery (RFC 2033): its 250 is "delivered", not "relayed", in a DSN.
    const relayed = !where.lmtp && (where.relayed || !lease.session.capabilities.dsn);
    if (result.kind === 'sent') {
      where.log.event(Events.deliveryRemote, {
        host: where.host,
        address: where.address,
        reused: lease.reused,
        tls: lease.session.tls?.version ?? null,
        tlsVerified: lease.session.tls?.verified ?? false,
        tlsPolicy: where.mechanism === 'policy' ? where.tls : where.mechanism,
        ...(lease.session.tls?.dane === undefined ? {} : { dane: lease.session.tls.dane }),
        reply: formatRemoteReply(result.dataReply),
        recipients: result.recipients.map((r) => `${r.address} ${r.verdict}`),
      });
      return {
        kind: 'sent',
        recipients: result.recipients,
        relayed,
        dsnPassedOn: lease.session.capabilities.dsn,
        verified: lease.session.tls?.verified ?? false,
        tls: lease.session.tls !== null,
      };
    }
    where.log.warn(Events.deliveryRemoteFailed, {
      host: where.host,
      address: where.address,
      stage: result.stage,
      status: result.status,
      reason: result.reason,
    });
    return { kind: 'failed', failure: result, recipients: result.recipients, answered: true };
  }
}

function policyTypeOf(host: HostPlan): TlsPolicyType {
  if (host.mechanism === 'dane' || host.mechanism === 'dane-no-usable') return 'tlsa';
  if (host.mechanism === 'mta-sts' || host.mechanism === 'mta-sts-testing') return 'sts';
  return 'no-policy-found';
}

function outcomeOf(r: RecipientResult, host: string, relayed: boolean, dsnPassedOn: boolean): RemoteOutcome {
  const reply = r.reply
    ? formatRemoteReply(r.reply)
    : `${r.verdict === 'permanent' ? 550 : 451} ${r.status} ${r.reason}`;
  return {
    address: r.address,
    verdict: r.verdict,
    status: r.status,
    reply,
    // A decision the client made itself (SIZE, SMTPUTF8) names no remote MTA: the server never said it.
    remoteMta: r.reply ? host : null,
    relayed,
    dsnPassedOn,
  };
}
