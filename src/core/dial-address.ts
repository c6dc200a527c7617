// The address of a daemon Tern dials (filters: rspamd, spamd, clamd, milters), as config writes it.

/** `host:port`, `[v6]:port` or `unix:/path`; null when it is none of them. */
export function parseDialAddress(
  address: string,
): { readonly host: string; readonly port: number } | { readonly path: string } | null {
  if (address.startsWith('unix:')) {
    const path = address.slice(5);
    return path.startsWith('/') ? { path } : null;
  }
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(address);
  if (m === null) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2]!, port };
}
