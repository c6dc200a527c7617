// Which `[[outbound.transport]]` a domain takes: read by the router (delivery/route.ts) and by whoever must
// know, before delivery, that a local domain's users are served by an LMTP mailbox server (the SMTP
// session does not store their mail itself; the worker hands it over).

import type { OutboundConfig, RelayHost } from './config.ts';

/** The transport for a domain: exact match, then "*.parent" patterns from the nearest parent up. */
export function transportFor(domain: string, transports: ReadonlyMap<string, RelayHost>): RelayHost | null {
  const d = domain.toLowerCase();
  const exact = transports.get(d);
  if (exact) return exact;
  const labels = d.split('.');
  for (let i = 1; i < labels.length; i++) {
    const t = transports.get(`*.${labels.slice(i).join('.')}`);
    if (t) return t;
  }
  return null;
}

/** An LMTP transport takes this address's mail (its domain's, a local domain handed to Dovecot/Cyrus). */
export function lmtpTransportOf(
  address: string,
  outbound: Pick<OutboundConfig, 'transports'>,
): RelayHost | null {
  if (outbound.transports.size === 0) return null;
  const at = address.lastIndexOf('@');
  if (at < 0) return null;
  const t = transportFor(address.slice(at + 1), outbound.transports);
  return t?.lmtp === true ? t : null;
}
