// Outbound byte streams to the daemons the filters talk to (rspamd, spamd, clamd, milters): a TCP
// `host:port` (`[v6]:port` for IPv6) or a Unix socket (`unix:/path`). The filters hold only the
// `Dial` port (policy/filters/filter.ts), so they never touch sockets themselves.

import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { parseDialAddress } from '../core/dial-address.ts';

/** Connect, or reject when the address is bad, the connection fails, or `signal` aborts first. */
export function dial(address: string, signal: AbortSignal): Promise<Duplex> {
  const target = parseDialAddress(address);
  if (target === null) return Promise.reject(new Error(`not an address: ${address}`));
  return new Promise<Duplex>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      return;
    }
    const socket: Socket = 'path' in target ? connect(target.path) : connect(target.port, target.host);
    const onAbort = (): void => {
      socket.destroy();
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      // Later aborts close the stream: whoever holds it sees an error or its end.
      signal.removeEventListener('abort', onAbort);
      signal.addEventListener('abort', () => socket.destroy(), { once: true });
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(new Error(`${address}: ${err.message}`));
    });
  });
}
