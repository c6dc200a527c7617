// What final delivery into a local mailbox adds to a message, shared by the two ways mail gets there:
// the delivery worker (delivery/local.ts, from the queue) and the SMTP session (server/message-intake.ts,
// before its 250). Both must write the same trace fields and use the same idempotency key, so a message
// that goes one way after a failure of the other is recognised as the same delivery.
// PURE.

/**
 * The store's idempotency key. The user is part of it: one recipient can expand (alias) to several
 * users, and the store's key is global, so "<queue id>/<index>" alone would hand the second user the
 * first user's message.
 */
export function localDeliveryKey(queueId: string, recipientIndex: number, user: string): string {
  return `${queueId}/${recipientIndex}/${user}`;
}

/** The lines prepended on final delivery, CRLF-terminated. Throws on a line break (header injection). */
export function finalDeliveryHeaders(sender: string, user: string): string {
  if (/[\r\n]/.test(sender) || /[\r\n]/.test(user)) throw new Error('line break in envelope address');
  // RFC 5321 §4.4: the reverse-path as it was in MAIL FROM, "<>" for the null sender.
  return `Return-Path: <${sender}>\r\nDelivered-To: ${user}\r\n`;
}

/**
 * What a stored copy carries in front of the queued or received bytes: the trace fields, then the
 * fields known only at end of data (Authentication-Results:, the queue's prefix), if any.
 */
export function finalDeliveryHead(sender: string, user: string, prefix: Uint8Array | null): Uint8Array {
  const trace = Buffer.from(finalDeliveryHeaders(sender, user), 'utf8');
  return prefix === null || prefix.length === 0 ? trace : Buffer.concat([trace, prefix]);
}

/**
 * The bytes a delivery adds to the user's mailbox: the queued message plus the trace fields. An upper
 * bound by the Return-Path: fields the message carried (removed on the way in), never below the truth,
 * so a quota is not exceeded by a message that looked small enough.
 */
export function storedSizeBytes(queuedBytes: number, sender: string, user: string): number {
  return queuedBytes + Buffer.byteLength(finalDeliveryHeaders(sender, user), 'utf8');
}

/**
 * The key of a copy the SMTP session stored before its 250. Apart from the worker's keys: the recipients
 * the session leaves to the queue are numbered again there, so a queued recipient could carry the index
 * of a stored one, and an alias that also reaches the same user must still give that user its copy.
 */
export function acceptDeliveryKey(messageId: string, recipientIndex: number, user: string): string {
  return `${messageId}/accept/${recipientIndex}/${user}`;
}
