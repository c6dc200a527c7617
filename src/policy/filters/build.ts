// The filters of a configuration snapshot, built once per reload generation (per session thread), and
// the choice of pipeline for one client: per network, per listener, or `[filters] order`.
// Deliberately NOT here: running them (pipeline.ts), loading plugin modules (server/filter-plugins.ts).

import type { Config, ListenerConfig } from '../../config/config.ts';
import type { Resolver } from '../../core/dns.ts';
import { parseZone } from '../../core/dnsbl-zone.ts';
import type { GreylistStore } from '../../core/greylist.ts';
import type { Clock } from '../../core/ports.ts';
import { inNetworks, parseCidr, type Network } from '../networks.ts';
import { AUTH_FILTER, AuthFilter } from './auth.ts';
import { ClamavFilter } from './clamav.ts';
import { DblFilter } from './dbl.ts';
import { DnsblFilter } from './dnsbl.ts';
import { DnswlFilter } from './dnswl.ts';
import type { Dial, Filter } from './filter.ts';
import { GreylistFilter } from './greylist.ts';
import { MilterFilter } from './milter.ts';
import { RspamdFilter } from './rspamd.ts';
import { SpamAssassinFilter } from './spamassassin.ts';

export interface FilterDeps {
  readonly resolver: Resolver | null;
  readonly clock: Clock;
  readonly dial: Dial;
  /** Opened only when greylisting is configured. */
  readonly greylistStore: () => GreylistStore;
  /** The `[[filters.plugin]]` filters, by name, made by their modules (server/filter-plugins.ts). */
  readonly plugins: ReadonlyMap<string, Filter>;
}

/** A generation's filters and the rules that choose among them. */
export interface FilterCatalogue {
  /** By the names `order` lists; "dnsbl" may stand for up to three (allow list, IP list, domain list). */
  readonly byName: ReadonlyMap<string, readonly Filter[]>;
  readonly order: readonly string[];
  readonly networks: readonly {
    readonly text: string;
    readonly network: Network;
    readonly filters: readonly string[];
  }[];
  /** SPF/DKIM/DMARC/ARC, when [checks] are on and DNS is available. */
  readonly auth: Filter | null;
}

export function buildFilters(config: Config, deps: FilterDeps): FilterCatalogue {
  const f = config.filters;
  const byName = new Map<string, readonly Filter[]>();
  const { resolver } = deps;
  if (f.dnsbl !== null && resolver !== null) {
    const d = f.dnsbl;
    const zones = (specs: readonly string[]) => specs.map(parseZone).filter((z) => z !== null);
    const common = { resolver, timeoutMs: d.timeoutMs, onFailure: d.onFailure };
    const list: Filter[] = [];
    if (d.allowZones.length > 0) list.push(new DnswlFilter({ ...common, zones: zones(d.allowZones) }));
    if (d.zones.length > 0)
      list.push(
        new DnsblFilter({ ...common, zones: zones(d.zones), threshold: d.threshold, dqsKey: d.dqsKey }),
      );
    if (d.domainZones.length > 0)
      list.push(
        new DblFilter({
          ...common,
          zones: zones(d.domainZones),
          threshold: d.threshold,
          dqsKey: d.dqsKey,
          bodyDomains: d.bodyDomains,
          skipDomains: config.localDomains,
        }),
      );
    byName.set('dnsbl', list);
  }
  if (f.greylist !== null) {
    const g = f.greylist;
    byName.set('greylist', [
      new GreylistFilter({
        store: deps.greylistStore(),
        nowMs: () => deps.clock.nowMs(),
        timeoutMs: g.timeoutMs,
        onFailure: g.onFailure,
        delaySeconds: g.delayMs / 1000,
        retryWindowHours: g.retryWindowMs / 3_600_000,
        passLifetimeDays: g.passLifetimeMs / 86_400_000,
        autoAllowAfter: g.autoAllowAfter,
        ipv4Prefix: g.ipv4Prefix,
        ipv6Prefix: g.ipv6Prefix,
        skipSpfDomains: g.skipSpfDomains,
        skipNetworks: g.skipNetworks,
      }),
    ]);
  }
  if (f.rspamd !== null) byName.set('rspamd', [new RspamdFilter({ ...f.rspamd, dial: deps.dial })]);
  if (f.spamassassin !== null)
    byName.set('spamassassin', [new SpamAssassinFilter({ ...f.spamassassin, dial: deps.dial })]);
  if (f.clamav !== null) byName.set('clamav', [new ClamavFilter({ ...f.clamav, dial: deps.dial })]);
  for (const m of f.milters)
    byName.set(m.name, [new MilterFilter({ ...m, dial: deps.dial, hostname: config.hostname })]);
  for (const [name, filter] of deps.plugins) byName.set(name, [filter]);
  const auth =
    config.checks.enabled && resolver !== null
      ? new AuthFilter({ resolver, checks: config.checks, hostname: config.hostname, clock: deps.clock })
      : null;
  return {
    byName,
    order: f.order,
    networks: f.networks.flatMap((n) => {
      const network = parseCidr(n.network);
      return network === null ? [] : [{ text: n.network, network, filters: n.filters }];
    }),
    auth,
  };
}

export const NO_FILTERS: FilterCatalogue = { byName: new Map(), order: [], networks: [], auth: null };

export interface PipelineChoice {
  /** The filters to run, in order. */
  readonly filters: readonly Filter[];
  /** What chose them, for the log: "network 10.0.0.0/8", "listener", "order", "none". */
  readonly by: string;
}

/**
 * The pipeline for one client: the most specific `[filters.networks]` entry it is in, else its
 * listener's `filters`, else `[filters] order` for an unauthenticated client of an smtp listener outside
 * trusted_networks and [checks] skip_networks, else none. SPF/DKIM/DMARC/ARC run where they always did
 * (that last case), last unless a list places "auth" itself.
 */
export function choosePipeline(
  cat: FilterCatalogue,
  client: {
    readonly ip: string;
    readonly listener: ListenerConfig;
    readonly authenticated: boolean;
    /** In trusted_networks or [checks] skip_networks. */
    readonly skipped: boolean;
  },
): PipelineChoice {
  const inbound = client.listener.service === 'smtp' && !client.authenticated && !client.skipped;
  let names: readonly string[] = [];
  let by = 'none';
  const net = cat.networks
    .filter((n) => inNetworks(client.ip, [n.network]))
    .sort((a, b) => b.network.prefix - a.network.prefix)[0];
  if (net !== undefined) {
    names = net.filters;
    by = `network ${net.text}`;
  } else if (client.listener.filters != null) {
    names = client.listener.filters;
    by = 'listener';
  } else if (inbound) {
    names = cat.order;
    by = 'order';
  }
  const filters: Filter[] = [];
  for (const name of names) {
    if (name === AUTH_FILTER) {
      if (cat.auth !== null) filters.push(cat.auth);
    } else filters.push(...(cat.byName.get(name) ?? []));
  }
  if (inbound && cat.auth !== null && !names.includes(AUTH_FILTER)) filters.push(cat.auth);
  return { filters, by };
}
