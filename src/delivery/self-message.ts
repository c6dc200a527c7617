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
 * Queue a report Tern made (ASCII MIME, 7bit unless said) from `from` to one address, NOTIFY=NEVER: a
 * report (or a vacation reply) that cannot be delivered is not worth a bounce. The queue id.
 */
export async function queueReport(
  queue: Queue,
  report: {
    readonly from: string;
    readonly to: string;
    readonly bytes: Uint8Array;
    readonly service: string;
    readonly nowMs: number;
    /** Default 7BIT (a report Tern wrote in ASCII); 8BITMIME for a UTF-8 text such as a vacation reply. */
    readonly body?: Envelope['body'];
    readonly smtputf8?: boolean;
  },
): Promise<string> {
  const writer = queue.begin();
  try {
    await writer.write(report.bytes);
    await writer.commit({
      sender: report.from,
      body: report.body ?? '7BIT',
      smtputf8: report.smtputf8 ?? false,
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
