// Messages Tern writes itself (DSNs, forwards, TLS-RPT and DMARC reports): the envelope client they come
// from, and queueing a whole message that Tern made, in one durable step.

import type { Envelope } from '../core/envelope.ts';
import type { Queue } from '../queue/queue.ts';

/** Envelope client of messages Tern writes itself: they come from here. */
export function selfClient(service: string): Envelope['client'] {
  return {
    ip: '127.0.0.1',
    port: 0,
    hostname: null,
    helo: 'localhost',
    esmtp: true,
    tls: null,
    authUser: null,
    service,
  };
}

/**
 * Queue a report Tern made (ASCII MIME, 7bit) from `from` to one address, NOTIFY=NEVER: a report that
 * cannot be delivered is not worth a bounce to our own postmaster. The queue id.
 */
export async function queueReport(
  queue: Queue,
  report: {
    readonly from: string;
    readonly to: string;
    readonly bytes: Uint8Array;
    readonly service: string;
    readonly nowMs: number;
  },
): Promise<string> {
  const writer = queue.begin();
  try {
    await writer.write(report.bytes);
    await writer.commit({
      sender: report.from,
      body: '7BIT',
      smtputf8: false,
      ret: null,
      envid: null,
      recipients: [{ address: report.to, notify: [], orcpt: null }],
      client: selfClient(report.service),
      receivedAtMs: report.nowMs,
    });
  } catch (err) {
    await writer.abort().catch(() => undefined);
    throw err;
  }
  return writer.id;
}
