// What an authenticated sender may do (RFC 6409): use only the addresses it owns, in MAIL FROM and in
// From:/Sender:, within its hourly message and recipient rates (per user, from its policy or the
// [submission] defaults). One per connection: it holds the policy of the user who authenticated.
// Deliberately NOT here: header completion and Bcc: removal (message-intake.ts), relay decisions
// (policy/relay.ts), counting failures (policy/auth-guard.ts).

import type { Mailbox } from '../core/address.ts';
import { formatMailbox } from '../core/address.ts';
import { Events } from '../core/events.ts';
import type { Logger } from '../core/ports.ts';
import { Replies, type Reply } from '../core/reply.ts';
import { DEFAULT_USER_POLICY, type UserPolicy } from '../directory/directory.ts';
import type { HeaderFacts } from '../protocol/smtp/header-capture.ts';
import type { ConnectionDeps } from './connection-deps.ts';

export class SubmissionPolicy {
  private readonly deps: Pick<ConnectionDeps, 'config' | 'directory' | 'rateLimiter'>;
  private readonly log: Logger;
  private userPolicy: UserPolicy = DEFAULT_USER_POLICY;

  constructor(deps: Pick<ConnectionDeps, 'config' | 'directory' | 'rateLimiter'>, log: Logger) {
    this.deps = deps;
    this.log = log;
  }

  /** After AUTH: this user's limits and checks (the defaults when the directory cannot say). */
  async load(user: string): Promise<void> {
    this.userPolicy = await this.deps.directory.getUserPolicy(user).catch(() => DEFAULT_USER_POLICY);
  }

  /** MAIL: within the hourly message rate, and the sender owned by the user. */
  async checkSender(user: string, sender: Mailbox | null): Promise<Reply | null> {
    if (!(await this.withinRate(user, { messages: 1, recipients: 0 }))) {
      this.log.warn(Events.smtpRateLimited, { user, what: 'messages per hour' });
      return Replies.userRateLimited;
    }
    if (sender === null || !this.senderCheckApplies()) return null;
    const address = formatMailbox(sender);
    if (await this.deps.directory.ownsAddress(user, address)) return null;
    this.log.warn(Events.smtpSenderRefused, { user, sender: address, where: 'MAIL FROM' });
    return Replies.senderNotOwned;
  }

  /** RCPT: one more recipient of this message within the hourly rates. */
  allowsRecipient(user: string, recipientsSoFar: number): Promise<boolean> {
    return this.withinRate(user, { messages: 1, recipients: recipientsSoFar + 1 });
  }

  /** End of data: From: (and Sender:) must be owned too. */
  async checkHeaderSenders(user: string | null, facts: HeaderFacts | null): Promise<Reply | null> {
    if (user === null || facts === null || !this.senderCheckApplies()) return null;
    for (const address of [...facts.from, ...facts.sender]) {
      if (!(await this.deps.directory.ownsAddress(user, address))) {
        this.log.warn(Events.smtpSenderRefused, { user, sender: address, where: 'From:' });
        return Replies.senderNotOwned;
      }
    }
    return null;
  }

  /** A message was queued: count it against the hourly rates. */
  async recordSent(user: string, recipients: number): Promise<void> {
    await this.deps.rateLimiter.record(user, recipients);
  }

  private senderCheckApplies(): boolean {
    return this.deps.config.submission.senderCheck && this.userPolicy.senderCheck;
  }

  private async withinRate(user: string, add: { messages: number; recipients: number }): Promise<boolean> {
    const cfg = this.deps.config.submission;
    return await this.deps.rateLimiter.allows(
      user,
      {
        maxMessages: this.userPolicy.maxMessagesPerHour ?? cfg.maxMessagesPerHour,
        maxRecipients: this.userPolicy.maxRecipientsPerHour ?? cfg.maxRecipientsPerHour,
      },
      add,
    );
  }
}
