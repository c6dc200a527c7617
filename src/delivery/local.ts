// Local delivery of one queued message to one local user's INBOX: the final-delivery trace fields go on
// top (Return-Path, RFC 5321 §4.4; Delivered-To, the de facto loop marker of Postfix and qmail) and the
// bytes stream into the mailbox store. Return-Path: fields the message already carried are removed (§4.4:
// the final MTA's is the one), so exactly one stands; only the header section is held for that. Idempotent: the store keys the delivery by queue id, recipient
// index and user, so a retry after a crash between store and queue bookkeeping makes no duplicate.
// The MIME structure IMAP FETCH reads (RFC 9051 §7.5.2 BODYSTRUCTURE, ENVELOPE) is scanned from the chunks
// as the store reads them, so the bytes are read once and never held whole; the store asks for it once
// the content has ended and keeps it beside the message.
// storedSizeBytes() is what a delivery adds to the user's quota, for the worker's check before it stores.
// Deliberately not here: recipient resolution, retries, sieve/filters, the quota decision (worker.ts).

import type { Envelope } from '../core/envelope.ts';
import type { Clock } from '../core/ports.ts';
import { encodeStructure } from '../protocol/mime/codec.ts';
import { MimeScanner } from '../protocol/mime/structure.ts';
import { isReturnPathField, withoutHeaderFields } from '../protocol/smtp/header-capture.ts';
import { finalDeliveryHead, localDeliveryKey } from '../store/final-delivery.ts';
import type { MailboxStore } from '../store/mailbox-store.ts';

export { finalDeliveryHeaders, localDeliveryKey, storedSizeBytes } from '../store/final-delivery.ts';

export interface LocalDeliveryRequest {
  readonly queueId: string;
  readonly recipientIndex: number;
  /** The owner's address key (lower-case), as the directory resolved it. */
  readonly user: string;
  readonly envelope: Envelope;
  /** The queued bytes; called once per delivery so each one streams from the start. */
  readonly body: () => AsyncIterable<Uint8Array>;
  readonly summary: { readonly from: string; readonly subject: string; readonly date: string };
  /** Another mailbox than the envelope's folder or INBOX (Sieve fileinto). */
  readonly mailbox?: string;
  /** IMAP flags of the stored copy (Sieve imap4flags); checked by the store. */
  readonly flags?: readonly string[];
  /** Tells this copy from the recipient's others in the delivery key (one per mailbox of a Sieve run). */
  readonly keySuffix?: string;
  /** The message as it is to be stored instead of the queued bytes (Sieve editheader). */
  readonly content?: Uint8Array;
}

export const INBOX = 'INBOX';

/** One chunk as a stream. */
function once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () => {
      let done = false;
      return {
        next: () => {
          const result = done
            ? ({ done: true, value: undefined } as const)
            : ({ done: false, value: bytes } as const);
          done = true;
          return Promise.resolve(result);
        },
      };
    },
  };
}

async function* withPrefix(prefix: Uint8Array, body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  yield prefix;
  yield* body;
}

/** The chunks unchanged, each shown to the scanner as it passes. */
async function* scanned(scanner: MimeScanner, body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    scanner.push(chunk);
    yield chunk;
  }
}

/**
 * A body the queue keeps in a spool file, from mail whose Return-Path: fields went at intake: the store
 * links that file behind the trace fields (and the Authentication-Results: prefix), so a large message
 * is on disk once from DATA to mailbox on this path too. The structure is scanned from the file, read
 * once and never written again.
 */
export interface SpooledBody {
  readonly path: string;
  readonly sizeBytes: number;
  readonly prefix: Uint8Array | null;
  readonly read: () => AsyncIterable<Uint8Array>;
}

export async function deliverLocal(
  deps: { readonly store: MailboxStore; readonly clock: Clock },
  req: LocalDeliveryRequest,
  spooled: SpooledBody | null = null,
): Promise<{ uid: number; id: string }> {
  const mailbox = req.mailbox ?? req.envelope.folder ?? INBOX;
  const deliveryKey = `${localDeliveryKey(req.queueId, req.recipientIndex, req.user)}${req.keySuffix ?? ''}`;
  const flags = req.flags ?? [];
  const content = req.content;
  const body = content === undefined ? req.body : (): AsyncIterable<Uint8Array> => once(content);
  if (spooled !== null && req.envelope.returnPathDropped === true && content === undefined) {
    const head = finalDeliveryHead(req.envelope.sender, req.user, spooled.prefix);
    const scanner = new MimeScanner();
    scanner.push(head);
    for await (const chunk of spooled.read()) scanner.push(chunk);
    let structure: string | null = null;
    try {
      structure = encodeStructure(scanner.finish());
    } catch {
      // A cache readers rebuild: a scanner bug must not stop a delivery.
    }
    const [stored] = await deps.store.deliverAccepted({
      body: { kind: 'file', path: spooled.path, sizeBytes: spooled.sizeBytes },
      internalDateMs: deps.clock.nowMs(),
      summary: { from: req.summary.from, subject: req.summary.subject, date: req.summary.date },
      copies: [
        {
          user: req.user,
          mailbox,
          deliveryKey,
          flags,
          head,
          structure,
        },
      ],
    });
    return { uid: stored!.uid, id: stored!.id };
  }
  const prefix = finalDeliveryHead(req.envelope.sender, req.user, null);
  const scanner = new MimeScanner();
  return deps.store.deliver({
    user: req.user,
    mailbox,
    // IMAP INTERNALDATE of delivered mail is the time of final delivery (RFC 3501 §2.3.3).
    internalDateMs: deps.clock.nowMs(),
    flags,
    deliveryKey,
    summary: { from: req.summary.from, subject: req.summary.subject, date: req.summary.date },
    content: scanned(scanner, withPrefix(prefix, withoutHeaderFields(body(), isReturnPathField))),
    // The stored bytes, Return-Path: and Delivered-To: included: the offsets must match what FETCH reads.
    structure: () => encodeStructure(scanner.finish()),
  });
}
