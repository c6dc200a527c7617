// Releasing a kept message (catcher mode, docs/catch.md): a message in a mailbox goes back on the queue
// to be delivered for real — to its original recipient or to the addresses given — from its original
// envelope sender (the Return-Path: final delivery wrote), marked `released` so a server that is still
// catching delivers it instead of keeping it again. Shared by `tern mailbox release` and the admin API.
// Deliberately NOT here: how it is delivered (the worker, by MX, relay or transport as any message).

import { parseMailbox } from '../core/address.ts';
import type { Clock } from '../core/ports.ts';
import { selfClient } from '../delivery/self-message.ts';
import type { Queue } from '../queue/queue.ts';
import { MailboxError, type MailboxStore } from '../store/mailbox-store.ts';
import { OpError } from './errors.ts';

export interface Released {
  readonly queueId: string;
  readonly sender: string;
  readonly recipients: readonly string[];
}

/** The most bytes a released message may have (the message size limit applies when it was caught). */
const MAX_RELEASE_BYTES = 64 * 1024 * 1024;

export async function releaseMessage(
  deps: { readonly store: MailboxStore; readonly queue: Queue; readonly clock: Clock },
  user: string,
  id: string,
  to: readonly string[],
): Promise<Released> {
  const body = deps.store.read(user, id);
  if (body === null) throw new OpError('not-found', `no message ${id} for ${user}`);
  const recipients = to.length === 0 ? [user] : [...to];
  for (const r of recipients) {
    if (parseMailbox(r, true) === null) throw new OpError('invalid', `not an address: ${r}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      size += chunk.length;
      if (size > MAX_RELEASE_BYTES) throw new OpError('invalid', `message ${id} is too large to release`);
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    // A store that finds out only when reading (PostgreSQL) says "nonexistent" then.
    if (err instanceof MailboxError && err.code === 'nonexistent')
      throw new OpError('not-found', `no message ${id} for ${user}`);
    throw err;
  }
  const { sender, rest } = withoutDeliveryTrace(Buffer.concat(chunks));
  const nonAscii = (s: string): boolean => /[^\x00-\x7f]/.test(s);
  const writer = deps.queue.begin();
  try {
    await writer.write(rest);
    await writer.commit({
      sender,
      body: rest.some((b) => b > 0x7f) ? '8BITMIME' : '7BIT',
      smtputf8: nonAscii(sender) || recipients.some(nonAscii),
      ret: null,
      envid: null,
      recipients: recipients.map((address) => ({ address, notify: null, orcpt: null })),
      client: selfClient('release'),
      receivedAtMs: deps.clock.nowMs(),
      released: true,
    });
  } catch (err) {
    await writer.abort().catch(() => undefined);
    throw err;
  }
  return { queueId: writer.id, sender, recipients };
}

/**
 * The stored bytes without the Return-Path: and Delivered-To: that final delivery put on top, and the
 * envelope sender the Return-Path: names ("" for "<>", or when there is none).
 */
export function withoutDeliveryTrace(bytes: Buffer): { sender: string; rest: Buffer } {
  let offset = 0;
  let sender = '';
  for (;;) {
    const end = bytes.indexOf('\r\n', offset);
    if (end < 0) break;
    const line = bytes.toString('utf8', offset, end);
    const rp = /^return-path:\s*<([^>]*)>\s*$/i.exec(line);
    if (rp !== null) sender = rp[1]!;
    else if (!/^delivered-to:/i.test(line)) break;
    offset = end + 2;
  }
  return { sender, rest: bytes.subarray(offset) };
}
