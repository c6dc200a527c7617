// Mailbox quotas, the pure part: whether adding to a mailbox would take its user over a limit (the one
// check local delivery and IMAP APPEND/COPY/MOVE share), the config's default limits, the RFC 9208 §5.1
// QUOTA resource list, and the sizes an operator types ("500M", "2G", "unlimited").
// The limits are the directory's (getQuota), the usage the mailbox store's (quota(user)); this file reads
// neither and knows nothing of how a refusal is worded (552 5.2.2 in delivery, [OVERQUOTA] in IMAP).
// Implements RFC 9208 §5.1 (STORAGE in units of 1024 octets, MESSAGE as a count) and the rule of §4.1/§5
// that only an operation that adds to a resource may be refused for it: a user already over a lowered
// limit can still flag, expunge and move within the mailbox.

import type { LimitsConfig } from '../config/config.ts';
import type { QuotaLimits, QuotaSetting } from './directory.ts';

/** What a user holds now: the store's QuotaUsage has this shape (the directory may not import it). */
export interface QuotaUsageLike {
  readonly messages: number;
  readonly bytes: number;
}

/** The resource a change would exceed; 'storage' is named first when both would be. */
export type QuotaResource = 'storage' | 'messages';

/**
 * Which limit adding `adding` to `usage` would go over, or null when it fits. A resource the change does
 * not add to (0 bytes or 0 messages) is never the one refused, however full it already is.
 */
export function overQuota(
  limits: QuotaLimits,
  usage: QuotaUsageLike,
  adding: { readonly bytes: number; readonly messages: number },
): QuotaResource | null {
  const over = (limit: number | null, used: number, more: number): boolean =>
    limit !== null && more > 0 && used + more > limit;
  if (over(limits.storageBytes, usage.bytes, adding.bytes)) return 'storage';
  if (over(limits.messages, usage.messages, adding.messages)) return 'messages';
  return null;
}

/** A delivery over quota: what was exceeded, with the figures its log line gives. */
export interface QuotaExceeded {
  readonly resource: QuotaResource;
  readonly limits: QuotaLimits;
  readonly usage: QuotaUsageLike;
}

/**
 * Whether storing one message of `bytes` would take a user over a limit, read from the directory's
 * limits and the store's usage (given as functions: this file imports neither). The one check both ways
 * into a mailbox share (the SMTP session before its 250, the delivery worker from the queue). The usage
 * is not read when the user has no limit.
 */
export async function deliveryOverQuota(
  limitsOf: () => Promise<QuotaLimits | null>,
  usageOf: () => Promise<QuotaUsageLike>,
  bytes: number,
): Promise<QuotaExceeded | null> {
  const limits = await limitsOf();
  if (limits === null || (limits.storageBytes === null && limits.messages === null)) return null;
  const usage = await usageOf();
  const resource = overQuota(limits, usage, { bytes, messages: 1 });
  return resource === null ? null : { resource, limits, usage };
}

/** The fields of a `delivery.over_quota` log line. */
export function overQuotaFields(x: QuotaExceeded, sizeBytes: number): Record<string, unknown> {
  return {
    resource: x.resource,
    sizeBytes,
    usageBytes: x.usage.bytes,
    usageMessages: x.usage.messages,
    limitBytes: x.limits.storageBytes,
    limitMessages: x.limits.messages,
  };
}

/** The config's default limits ([limits] mailbox_quota_bytes / _messages; 0 is unlimited). */
export function configQuota(
  limits: Pick<LimitsConfig, 'mailboxQuotaBytes' | 'mailboxQuotaMessages'>,
): QuotaLimits {
  return {
    storageBytes: limits.mailboxQuotaBytes === 0 ? null : limits.mailboxQuotaBytes,
    messages: limits.mailboxQuotaMessages === 0 ? null : limits.mailboxQuotaMessages,
  };
}

/** One resource of an RFC 9208 QUOTA response: `STORAGE 12 1024` (usage, limit). */
export interface QuotaResourceLine {
  readonly name: 'STORAGE' | 'MESSAGE';
  readonly usage: number;
  readonly limit: number;
}

/**
 * The resources a GETQUOTA/GETQUOTAROOT response lists (RFC 9208 §5.1): only limited ones (an unlimited
 * resource is left out, as the RFC has no way to say "no limit"). STORAGE is in units of 1024 octets:
 * usage rounds up and the limit down, so a client never sees room the server would refuse.
 */
export function quotaResources(limits: QuotaLimits, usage: QuotaUsageLike): QuotaResourceLine[] {
  const lines: QuotaResourceLine[] = [];
  if (limits.storageBytes !== null) {
    lines.push({
      name: 'STORAGE',
      usage: Math.ceil(usage.bytes / 1024),
      limit: Math.floor(limits.storageBytes / 1024),
    });
  }
  if (limits.messages !== null)
    lines.push({ name: 'MESSAGE', usage: usage.messages, limit: limits.messages });
  return lines;
}

const UNITS: Readonly<Record<string, number>> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * A storage limit as an operator types it: bytes ("1048576"), or with a binary suffix as Dovecot's
 * quota_rule reads them ("500M", "2G", "1.5G", "512KiB"; K/M/G/T are powers of 1024), "unlimited" (or 0,
 * as in the config: null), or "default". undefined when it is none of these, or over 2^53 − 1 bytes.
 */
export function parseStorageSize(text: string): QuotaSetting | undefined {
  const s = text.trim();
  if (/^(unlimited|none)$/i.test(s)) return null;
  if (/^default$/i.test(s)) return 'default';
  const m = /^(\d{1,16}(?:\.\d{1,6})?)\s*(?:([KMGT])(?:i?B)?|B)?$/i.exec(s);
  if (m === null) return undefined;
  const bytes = Math.floor(Number(m[1]) * UNITS[(m[2] ?? '').toUpperCase()]!);
  if (!Number.isSafeInteger(bytes)) return undefined;
  return bytes === 0 ? null : bytes;
}

/** A message-count limit: a whole number, "unlimited" (or 0), or "default"; undefined when none of these. */
export function parseMessageLimit(text: string): QuotaSetting | undefined {
  const s = text.trim();
  if (/^(unlimited|none)$/i.test(s)) return null;
  if (/^default$/i.test(s)) return 'default';
  if (!/^\d{1,15}$/.test(s)) return undefined;
  const n = Number(s);
  return n === 0 ? null : n;
}

/** Bytes for a person: "512 B", "1.5 KiB", "2 GiB" (at most one decimal, trailing ".0" dropped). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = unit === 0 ? String(value) : (Math.floor(value * 10) / 10).toFixed(1).replace(/\.0$/, '');
  return `${shown} ${units[unit]!}`;
}
