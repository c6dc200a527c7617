// The fields of the SMTP summary log lines, one shape for every listener: `smtp.queued` per accepted
// message, `smtp.mail.rejected` / `smtp.rcpt.rejected` / `smtp.data.rejected` per refused transaction step
// (Postfix's "NOQUEUE: reject" lines). Operators grep and alert on these, so fields are only ever added.
// Deliberately NOT here: when to log (the session driver) and per-command detail (debug lines there).

import type { LogFields } from '../core/ports.ts';
import type { ClientInfo, Envelope } from '../core/envelope.ts';
import type { Reply } from '../core/reply.ts';

/** "550 5.1.1 No such user here": the reply as the client saw it, on one line. */
export function replyText(reply: Reply): string {
  return [String(reply.code), reply.enhanced, reply.text].filter((p) => p !== '').join(' ');
}

/** "TLSv1.3/TLS_AES_256_GCM_SHA384", or "none" for a plaintext session. */
export function tlsText(tls: ClientInfo['tls']): string {
  return tls === null ? 'none' : `${tls.version}/${tls.cipher}`;
}

/** Who the client is: address, confirmed reverse DNS name (null without one), HELO name. */
export function clientFields(client: Pick<ClientInfo, 'ip' | 'hostname' | 'helo'>): LogFields {
  return { ip: client.ip, rdns: client.hostname, helo: client.helo };
}

/** smtp.queued: one line per accepted message. */
export function acceptedFields(queueId: string, envelope: Envelope, sizeBytes: number): LogFields {
  const { client } = envelope;
  return {
    queueId,
    ...clientFields(client),
    sender: envelope.sender,
    to: envelope.recipients.map((r) => r.address),
    recipients: envelope.recipients.length,
    sizeBytes,
    tls: tlsText(client.tls),
    user: client.authUser,
    ...(envelope.requireTls === true ? { requireTls: true } : {}),
    ...(envelope.tlsOptional === true ? { tlsRequired: 'no' } : {}),
    ...(envelope.priority === undefined ? {} : { priority: envelope.priority }),
    ...(envelope.holdUntilMs === undefined
      ? {}
      : { holdUntil: new Date(envelope.holdUntilMs).toISOString() }),
    ...(envelope.deliverBy === undefined
      ? {}
      : { deliverBy: `${new Date(envelope.deliverBy.deadlineMs).toISOString()};${envelope.deliverBy.mode}` }),
  };
}

/** smtp.*.rejected: one line per refused MAIL, RCPT or message content. */
export function refusedFields(
  client: Pick<ClientInfo, 'ip' | 'hostname' | 'helo'>,
  refusal: {
    readonly sender: string | null;
    readonly rcpt?: string;
    readonly to?: readonly string[];
    readonly reply: Reply;
    readonly reason?: string;
  },
): LogFields {
  return {
    ...clientFields(client),
    sender: refusal.sender,
    ...(refusal.rcpt === undefined ? {} : { rcpt: refusal.rcpt }),
    ...(refusal.to === undefined ? {} : { to: refusal.to }),
    reply: replyText(refusal.reply),
    code: refusal.reply.code,
    ...(refusal.reason === undefined ? {} : { reason: refusal.reason }),
  };
}
