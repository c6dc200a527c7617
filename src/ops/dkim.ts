// The JSON of a DKIM signing key (`tern dkim list|keygen --json`, GET /api/dkim): names, algorithm,
// creation time and the TXT record to publish.

import type { DkimKeyInfo } from '../delivery/dkim-sign.ts';
import { dkimDnsRecord } from '../delivery/dkim-sign.ts';

const isoTime = (ms: number): string => new Date(ms).toISOString();

/** The JSON shape of one key in `dkim list --json` and `dkim keygen --json` (a documented contract). */
export function dkimKeyJson(info: DkimKeyInfo): Record<string, unknown> {
  const record = dkimDnsRecord(info.key);
  return {
    domain: info.key.domain,
    selector: info.key.selector,
    algorithm: info.key.algorithm,
    created: info.createdMs === null ? null : isoTime(info.createdMs),
    dnsName: record.name,
    value: record.value,
  };
}
