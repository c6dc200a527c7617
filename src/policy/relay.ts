// SECURITY: the relay decision for a recipient — Tern is never an open relay.
// A client may send to a domain that is not ours only when it may relay (authenticated, or from a trusted
// network). Sender-specified routing inside a local address (the percent hack "u%remote@local", bang paths
// "remote!u@local", a quoted local part hiding "@") is refused for untrusted clients as Postfix does with
// allow_untrusted_routing=no: such addresses can be turned into relaying by a downstream hop.
// Source routes (@a,@b:u@d) were already reduced to the final mailbox by the parser (RFC 5321 §C).

import type { Mailbox } from '../core/address.ts';
import { addressKey, formatMailbox, normalizeDomain } from '../core/address.ts';
import { Replies, type Reply } from '../core/reply.ts';

export type RecipientDecision =
  /** Local domain: look the address (key form) up in the directory. */
  | { readonly kind: 'local'; readonly address: string }
  /** Another domain, and the client may relay. */
  | { readonly kind: 'relay'; readonly address: string }
  | { readonly kind: 'reject'; readonly reply: Reply; readonly reason: string };

export interface RelayContext {
  isLocalDomain(domain: string): boolean;
  /** The domain that "<Postmaster>" without a domain means (RFC 5321 §4.1.1.3). */
  readonly primaryDomain: string;
  readonly mayRelay: boolean;
}

export function decideRecipient(mailbox: Mailbox, ctx: RelayContext): RecipientDecision {
  if (mailbox.domain === '') {
    return { kind: 'local', address: `postmaster@${normalizeDomain(ctx.primaryDomain)}` };
  }
  const local = !mailbox.domain.startsWith('[') && ctx.isLocalDomain(normalizeDomain(mailbox.domain));
  if (!local) {
    if (ctx.mayRelay) return { kind: 'relay', address: formatMailbox(mailbox) };
    return { kind: 'reject', reply: Replies.relayDenied, reason: 'relay to a domain that is not local' };
  }
  if (!ctx.mayRelay && /[%!@]/.test(mailbox.local)) {
    return { kind: 'reject', reply: Replies.relayDenied, reason: 'sender-specified routing in local part' };
  }
  return { kind: 'local', address: addressKey(mailbox) };
}
