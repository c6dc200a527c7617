// The filters of a configuration snapshot, in `[filters] order`, built once per reload generation.

import type { FiltersConfig } from '../../config/config.ts';
import type { Resolver } from '../../core/dns.ts';
import { parseZone } from '../../core/dnsbl-zone.ts';
import { DnsblFilter } from './dnsbl.ts';
import type { Filter } from './filter.ts';

export function buildFilters(config: FiltersConfig, resolver: Pick<Resolver, 'a'>): Filter[] {
  const out: Filter[] = [];
  for (const name of config.order) {
    if (name === 'dnsbl' && config.dnsbl !== null) {
      const d = config.dnsbl;
      out.push(
        new DnsblFilter({
          zones: d.zones.map(parseZone).filter((z) => z !== null),
          threshold: d.threshold,
          resolver,
          timeoutMs: d.timeoutMs,
          onFailure: d.onFailure,
          dqsKey: d.dqsKey,
        }),
      );
    }
  }
  return out;
}
