// The server's counters (issue 15): what /metrics serves in Prometheus text format (prom-client) and what
// the admin page's dashboard draws. Fed by the observed log records (core/observe.ts) of every thread,
// the WAL fsyncs (db/group-commit.ts's diagnostics channel), and read at scrape time from the queue and
// the listeners. One place counts; the page and Prometheus see the same numbers.
// Label sets are bounded: services, results, mechanisms, TLS versions, check results and reply codes are
// small closed sets; remote domains are the first MAX_DOMAINS seen, then "other".
// Deliberately NOT here: HTTP (server.ts), what is observed (core/observe.ts).

import { SERVICES as CONFIG_SERVICES } from '../config/config.ts';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { Events } from '../core/events.ts';
import type { Observed, ObservedValue } from '../core/observe.ts';
import type { FsyncObservation } from '../db/group-commit.ts';
import type { QueueStats } from '../queue/queue.ts';

/** Remote domains with their own label; later ones count as "other" (a label set must stay bounded). */
const MAX_DOMAINS = 100;
/** Messages whose arrival is remembered for the delivery latency (the oldest are forgotten first). */
const MAX_PENDING_LATENCY = 100_000;
/** Minutes of history the dashboard's per-minute series keeps. */
export const SERIES_MINUTES = 60;

export interface MetricsSources {
  /** Queue counts at scrape time; null when the queue cannot be read. */
  queueStats(): Promise<QueueStats | null>;
  connectionsByService(): ReadonlyMap<string, number>;
  nowMs(): number;
}

/** One minute of the dashboard's series. */
export interface MinuteCounts {
  /** The minute's start (ms since the epoch). */
  readonly minuteMs: number;
  received: number;
  delivered: number;
  deferred: number;
  bounced: number;
  authFailures: number;
}

const str = (v: ObservedValue | undefined): string | null => (typeof v === 'string' ? v : null);
const num = (v: ObservedValue | undefined): number | null => (typeof v === 'number' ? v : null);

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

/** SPF/DMARC verdict words are a closed set (RFC 7208 §2.6, RFC 7489 §11.2); anything else is "other". */
const RESULTS = new Set(['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror', 'policy']);
const result = (word: string): string => (RESULTS.has(word) ? word : 'other');

const TLS_VERSIONS = new Set(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']);
const MECHANISMS = new Set([
  'PLAIN',
  'LOGIN',
  'SCRAM-SHA-256',
  'SCRAM-SHA-256-PLUS',
  'OAUTHBEARER',
  'XOAUTH2',
  'EXTERNAL',
  'CRAM-MD5',
  'USER',
  'APOP',
  'admin',
]);
const SERVICES: ReadonlySet<string> = new Set([...CONFIG_SERVICES, 'admin']);

export class ServerMetrics {
  readonly registry = new Registry();
  readonly #sources: MetricsSources;
  readonly #domains = new Set<string>();
  readonly #arrivals = new Map<string, number>();
  readonly #minutes: MinuteCounts[] = [];

  readonly #connections: Counter<'service'>;
  readonly #received: Counter<'via'>;
  readonly #receivedBytes: Counter;
  readonly #refused: Counter<'stage' | 'code'>;
  readonly #deliveries: Counter<'result' | 'domain'>;
  readonly #latency: Histogram<'kind'>;
  readonly #dsns: Counter<'kind'>;
  readonly #auth: Counter<'result' | 'mechanism'>;
  readonly #tls: Counter<'version'>;
  readonly #checks: Counter<'check' | 'result'>;
  readonly #filterVerdicts: Counter<'filter' | 'stage' | 'verdict'>;
  readonly #filterFailures: Counter<'filter'>;
  readonly #filterSeconds: Histogram<'filter'>;
  readonly #fsync: Histogram;

  constructor(sources: MetricsSources) {
    this.#sources = sources;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#connections = new Counter({
      name: 'tern_connections_total',
      help: 'Connections accepted, by service',
      labelNames: ['service'],
      registers,
    });
    new Gauge({
      name: 'tern_connections_open',
      help: 'Connections open now, by service',
      labelNames: ['service'],
      registers,
      collect() {
        this.reset();
        for (const [service, n] of sources.connectionsByService()) this.set({ service }, n);
      },
    });
    this.#received = new Counter({
      name: 'tern_messages_received_total',
      help: 'Messages accepted (250 after DATA/BDAT), by how they came: inbound (MX) or submission (authenticated)',
      labelNames: ['via'],
      registers,
    });
    this.#receivedBytes = new Counter({
      name: 'tern_received_bytes_total',
      help: 'Bytes of the messages accepted',
      registers,
    });
    this.#refused = new Counter({
      name: 'tern_transactions_refused_total',
      help: 'Refused MAIL, RCPT and message content, by stage and reply code',
      labelNames: ['stage', 'code'],
      registers,
    });
    this.#deliveries = new Counter({
      name: 'tern_delivery_attempts_total',
      help: 'Delivery outcomes per recipient: delivered, deferred, bounced; domain "local" for mailboxes here',
      labelNames: ['result', 'domain'],
      registers,
    });
    this.#latency = new Histogram({
      name: 'tern_delivery_latency_seconds',
      help: 'From acceptance to the first delivery of a message, local or remote',
      labelNames: ['kind'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 14_400, 86_400],
      registers,
    });
    this.#dsns = new Counter({
      name: 'tern_dsn_total',
      help: 'Delivery status notifications queued, by kind (failed, delayed, delivered, relayed, expanded)',
      labelNames: ['kind'],
      registers,
    });
    this.#auth = new Counter({
      name: 'tern_auth_total',
      help: 'Logins (SMTP AUTH, POP3, IMAP, the admin page) by result and mechanism',
      labelNames: ['result', 'mechanism'],
      registers,
    });
    this.#tls = new Counter({
      name: 'tern_tls_handshakes_total',
      help: 'TLS handshakes completed by clients (STARTTLS and implicit TLS), by protocol version',
      labelNames: ['version'],
      registers,
    });
    this.#checks = new Counter({
      name: 'tern_authchecks_total',
      help: 'Inbound SPF, DKIM, DMARC and ARC verdicts',
      labelNames: ['check', 'result'],
      registers,
    });
    this.#filterVerdicts = new Counter({
      name: 'tern_filter_verdicts_total',
      help: 'Inbound filter verdicts (docs/filtering.md) by filter, stage and verdict',
      labelNames: ['filter', 'stage', 'verdict'],
      registers,
    });
    this.#filterFailures = new Counter({
      name: 'tern_filter_failures_total',
      help: 'Filter checks that failed or ran out of time (their on_failure decided), by filter',
      labelNames: ['filter'],
      registers,
    });
    this.#filterSeconds = new Histogram({
      name: 'tern_filter_seconds',
      help: 'How long each filter check took, by filter',
      labelNames: ['filter'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#fsync = new Histogram({
      name: 'tern_fsync_seconds',
      help: 'WAL fsync duration of the queue and mailbox store group commits',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    // One queue read per scrape, shared by the four queue gauges (each collects on its own).
    let pending: Promise<QueueStats | null> | null = null;
    const stats = (): Promise<QueueStats | null> => {
      pending ??= sources.queueStats().finally(() => setImmediate(() => (pending = null)));
      return pending;
    };
    const queueGauge = (
      name: string,
      help: string,
      labelNames: string[],
      fill: (g: Gauge, s: QueueStats) => void,
    ): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          const s = await stats();
          this.reset();
          if (s !== null) fill(this, s);
        },
      });
    };
    queueGauge(
      'tern_queue_messages',
      'Messages in the queue (held: kept back by an operator)',
      ['state'],
      (g, s) => {
        g.set({ state: 'all' }, s.messages);
        g.set({ state: 'held' }, s.held);
      },
    );
    queueGauge('tern_queue_recipients', 'Recipients of queued messages by status', ['status'], (g, s) => {
      for (const [status, n] of Object.entries(s.recipients)) g.set({ status }, n);
    });
    queueGauge(
      'tern_queue_pending_messages',
      'Messages with a recipient still to deliver, by age (under 5m, 1h, 1d, or older)',
      ['age'],
      (g, s) => {
        for (const [age, n] of Object.entries(s.pendingByAge)) g.set({ age }, n);
      },
    );
    queueGauge(
      'tern_queue_oldest_pending_seconds',
      'Age of the oldest message still to deliver',
      [],
      (g, s) => {
        g.set(s.oldestPendingMs === null ? 0 : (sources.nowMs() - s.oldestPendingMs) / 1000);
      },
    );
  }

  #domain(address: string): string {
    const d = domainOf(address);
    if (this.#domains.has(d)) return d;
    if (this.#domains.size < MAX_DOMAINS && d !== '') {
      this.#domains.add(d);
      return d;
    }
    return 'other';
  }

  #minute(atMs: number): MinuteCounts {
    const minuteMs = atMs - (atMs % 60_000);
    let last = this.#minutes.at(-1);
    if (last === undefined || last.minuteMs < minuteMs) {
      last = { minuteMs, received: 0, delivered: 0, deferred: 0, bounced: 0, authFailures: 0 };
      this.#minutes.push(last);
      if (this.#minutes.length > SERIES_MINUTES) this.#minutes.shift();
      return last;
    }
    // A record from a thread can arrive after the minute turned: it counts in the minute it names.
    return this.#minutes.findLast((m) => m.minuteMs <= minuteMs) ?? last;
  }

  /** The last SERIES_MINUTES minutes, oldest first (minutes with nothing are absent). */
  series(): readonly MinuteCounts[] {
    return this.#minutes.map((m) => ({ ...m }));
  }

  #latencyFor(queueId: string | null, kind: string, atMs: number): void {
    if (queueId === null) return;
    const arrived = this.#arrivals.get(queueId);
    if (arrived === undefined) return;
    this.#arrivals.delete(queueId);
    this.#latency.observe({ kind }, Math.max(0, (atMs - arrived) / 1000));
  }

  observeFsync(o: FsyncObservation): void {
    this.#fsync.observe(o.seconds);
  }

  observe(o: Observed): void {
    const f = o.fields;
    switch (o.event) {
      case Events.smtpConnect:
      case Events.pop3Connect:
      case Events.imapConnect: {
        const service = str(f['service']);
        this.#connections.inc({ service: service !== null && SERVICES.has(service) ? service : 'other' });
        return;
      }
      case Events.smtpQueued: {
        this.#received.inc({ via: str(f['user']) === null ? 'inbound' : 'submission' });
        this.#receivedBytes.inc(num(f['sizeBytes']) ?? 0);
        this.#minute(o.atMs).received++;
        const queueId = str(f['queueId']);
        // Stored at once (local mail in one durable step): delivered in the same breath.
        if (queueId !== null && (num(f['queued']) ?? 1) > 0) {
          this.#arrivals.set(queueId, o.atMs);
          if (this.#arrivals.size > MAX_PENDING_LATENCY) {
            const oldest = this.#arrivals.keys().next().value;
            if (oldest !== undefined) this.#arrivals.delete(oldest);
          }
        }
        return;
      }
      case Events.smtpMailRejected:
      case Events.smtpRcptRejected:
      case Events.smtpDataRejected: {
        const code = num(f['code']);
        this.#refused.inc({ stage: o.event.split('.')[1]!, code: code === null ? 'other' : String(code) });
        return;
      }
      case Events.deliveryLocal: {
        this.#deliveries.inc({ result: 'delivered', domain: 'local' });
        this.#minute(o.atMs).delivered++;
        // Stored by the session before its 250 (stage "accept"): delivered as it was accepted.
        if (str(f['stage']) === 'accept') this.#latency.observe({ kind: 'local' }, 0);
        else this.#latencyFor(str(f['queueId']), 'local', o.atMs);
        return;
      }
      case Events.deliveryRemote: {
        const rcpts = Array.isArray(f['recipients']) ? f['recipients'] : [];
        for (const r of rcpts) {
          if (typeof r !== 'string') continue;
          // Refused recipients are counted by the delivery.deferred / delivery.bounced that follow.
          const [address = '', verdict = ''] = r.split(' ');
          if (verdict !== 'delivered') continue;
          this.#deliveries.inc({ result: 'delivered', domain: this.#domain(address) });
          this.#minute(o.atMs).delivered++;
        }
        this.#latencyFor(str(f['queueId']), 'remote', o.atMs);
        return;
      }
      case Events.deliveryDeferred: {
        this.#deliveries.inc({ result: 'deferred', domain: this.#domainOrLocal(str(f['rcpt'])) });
        this.#minute(o.atMs).deferred++;
        return;
      }
      case Events.deliveryFailed:
      case Events.deliveryBounced:
      case Events.deliveryOverQuota: {
        this.#deliveries.inc({ result: 'bounced', domain: this.#domainOrLocal(str(f['rcpt'])) });
        this.#minute(o.atMs).bounced++;
        return;
      }
      case Events.dsnQueued: {
        const kind = str(f['kind']);
        this.#dsns.inc({ kind: kind !== null && /^[a-z]{1,12}$/.test(kind) ? kind : 'other' });
        return;
      }
      case Events.smtpAuthSucceeded:
      case Events.pop3AuthSucceeded:
      case Events.imapAuthSucceeded:
        this.#auth.inc({ result: 'success', mechanism: this.#mechanism(f['mechanism']) });
        return;
      case Events.smtpAuthFailed:
        this.#auth.inc({ result: 'failure', mechanism: this.#mechanism(f['mechanism']) });
        this.#minute(o.atMs).authFailures++;
        return;
      case Events.smtpAuthLocked:
        this.#auth.inc({ result: 'locked', mechanism: this.#mechanism(f['mechanism']) });
        return;
      case Events.tlsHandshake:
      case Events.pop3Tls:
      case Events.imapTls: {
        const v = str(f['version']);
        this.#tls.inc({ version: v !== null && TLS_VERSIONS.has(v) ? v : 'other' });
        return;
      }
      case Events.smtpFilter: {
        // The pipeline's own line (its choice) has no verdict; names come from config, so they are bounded.
        const filter = str(f['filter']);
        const verdict = str(f['verdict']);
        if (filter === null || verdict === null) return;
        this.#filterVerdicts.inc({ filter, stage: str(f['stage']) ?? 'unknown', verdict });
        if (f['failed'] !== undefined) this.#filterFailures.inc({ filter });
        if (typeof f['ms'] === 'number') this.#filterSeconds.observe({ filter }, f['ms'] / 1000);
        return;
      }
      case Events.smtpAuthChecks:
        this.#observeChecks(f);
        return;
      default:
        return;
    }
  }

  #domainOrLocal(address: string | null): string {
    return address === null ? 'other' : this.#domain(address);
  }

  #mechanism(v: ObservedValue | undefined): string {
    const m = str(v);
    return m !== null && MECHANISMS.has(m) ? m : 'other';
  }

  #observeChecks(f: Observed['fields']): void {
    const spf = str(f['spf']);
    if (spf !== null) this.#checks.inc({ check: 'spf', result: result(spf) });
    const dkim = Array.isArray(f['dkim']) ? f['dkim'] : [];
    if (dkim.length === 0) this.#checks.inc({ check: 'dkim', result: 'none' });
    for (const d of dkim) {
      if (typeof d === 'string') this.#checks.inc({ check: 'dkim', result: result(d.split(':')[0] ?? '') });
    }
    const dmarc = str(f['dmarc']);
    this.#checks.inc({ check: 'dmarc', result: dmarc === null ? 'none' : result(dmarc.split(':')[0] ?? '') });
    const arc = str(f['arc']);
    if (arc !== null) this.#checks.inc({ check: 'arc', result: result(arc) });
  }

  /** Count an admin page login (the API's own logins are no log event a thread sees). */
  adminLogin(ok: boolean): void {
    this.#auth.inc({ result: ok ? 'success' : 'failure', mechanism: 'admin' });
    if (!ok) this.#minute(this.#sources.nowMs()).authFailures++;
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric with its values, as the dashboard reads them. */
  async json(): Promise<unknown> {
    return this.registry.getMetricsAsJSON();
  }
}
